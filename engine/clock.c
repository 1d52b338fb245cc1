/* clock.c - see clock.h. */
#include "clock.h"

#include <errno.h>
#include <sys/resource.h>
#include <time.h>

double ke_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ke_sleep(double seconds) {
  if (seconds <= 0) return;
  struct timespec ts;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static double seconds_of(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6; }

double ke_cpu_seconds(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return seconds_of(ru.ru_utime) + seconds_of(ru.ru_stime);
}
