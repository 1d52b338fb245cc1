/* supervise_marker.c - see supervise.h: the trial marker in a process's environment,
 * and the processes found by it under /proc (signalled, stopped, reaped as orphans). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "supervise.h"
#include "supervise_internal.h"

/* Finds the environment entry of /proc/<pid>/environ that equals `marker` (exact) or
 * starts with it (prefix); copies it to out. Returns 1 when found. */
static int find_marker(const char *pid, const char *marker, int prefix, char *out, size_t outlen) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%s/environ", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  size_t mlen = strlen(marker);
  char buf[65536];
  size_t len = 0;
  ssize_t n;
  while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)n;
  close(fd);
  for (size_t i = 0; i < len;) {
    size_t e = strnlen(buf + i, len - i);
    if ((prefix ? e >= mlen : e == mlen) && memcmp(buf + i, marker, mlen) == 0) {
      if (out) snprintf(out, outlen, "%.*s", (int)e, buf + i);
      return 1;
    }
    i += e + 1;
  }
  return 0;
}

int ke_pid_has_marker(const char *pid, const char *marker) { return find_marker(pid, marker, 0, NULL, 0); }

void ke_marker_new(char *buf, size_t len) {
  static unsigned long seq;
  snprintf(buf, len, "%s=%ld-%lu", KE_MARKER_NAME, (long)getpid(), ++seq);
}

int ke_reap_orphans(void) {
  DIR *d = opendir("/proc");
  if (!d) return 0;
  int count = 0;
  const char *prefix = KE_MARKER_NAME "=";
  size_t plen = strlen(prefix);
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!isdigit((unsigned char)de->d_name[0])) continue;
    char entry[128];
    if (!find_marker(de->d_name, prefix, 1, entry, sizeof entry)) continue;
    long owner = atol(entry + plen);
    if (owner <= 0 || owner == (long)getpid()) continue;
    if (kill((pid_t)owner, 0) == 0 || errno != ESRCH) continue; /* its knobengine still runs */
    if (kill((pid_t)atol(de->d_name), SIGKILL) == 0) count++;
  }
  closedir(d);
  return count;
}

int ke_signal_marked(const char *marker, int sig) {
  DIR *d = opendir("/proc");
  if (!d) return 0;
  int count = 0;
  pid_t self = getpid();
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!isdigit((unsigned char)de->d_name[0])) continue;
    pid_t pid = (pid_t)atol(de->d_name);
    if (pid == self || !ke_pid_has_marker(de->d_name, marker)) continue;
    /* a zombie still shows its environ as empty, so it never matches */
    if (kill(pid, sig) == 0) count++;
  }
  closedir(d);
  return count;
}

int ke_stop_marked(const char *marker, double timeout_s) {
  if (ke_signal_marked(marker, 0) == 0) return 0;
  ke_signal_marked(marker, SIGTERM);
  double deadline = ke_now() + timeout_s;
  while (ke_now() < deadline) {
    if (ke_signal_marked(marker, 0) == 0) return 0;
    ke_sleep(0.01);
  }
  return ke_signal_marked(marker, SIGKILL);
}
