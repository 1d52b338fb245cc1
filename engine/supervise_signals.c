/* supervise_signals.c - see supervise.h: the signal handlers, the interrupted flag, and
 * the registry of live child process groups (supervise_internal.h) that a second
 * signal or the exit kills. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "supervise.h"
#include "supervise_internal.h"

/* Live child process groups, readable from signal handlers. */
#define KE_MAX_CHILDREN 64
static volatile sig_atomic_t g_children[KE_MAX_CHILDREN];
static volatile sig_atomic_t g_interrupted;

void ke_children_add(pid_t pid) {
  for (int i = 0; i < KE_MAX_CHILDREN; i++)
    if (g_children[i] == 0) { g_children[i] = pid; return; }
}

void ke_children_remove(pid_t pid) {
  for (int i = 0; i < KE_MAX_CHILDREN; i++)
    if (g_children[i] == pid) g_children[i] = 0;
}

void ke_kill_all_children(void) {
  for (int i = 0; i < KE_MAX_CHILDREN; i++) {
    pid_t pid = g_children[i];
    if (pid > 0) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
    }
  }
}

static void on_signal(int sig) {
  if (g_interrupted) {
    /* second signal: stop everything now */
    ke_kill_all_children();
    static const char msg[] = "knobengine: second interrupt, killed servers, exiting now\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(128 + sig);
  }
  g_interrupted = sig;
}

static void kill_children_at_exit(void) { ke_kill_all_children(); }

void ke_signals_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  static int registered;
  if (!registered) {
    atexit(kill_children_at_exit);
    registered = 1;
  }
}

int ke_interrupted(void) { return (int)g_interrupted; }

int ke_sleep_interruptible(double seconds) {
  double end = ke_now() + seconds;
  for (;;) {
    if (g_interrupted) return KE_INTERRUPTED;
    double left = end - ke_now();
    if (left <= 0) return 0;
    ke_sleep(left < 0.05 ? left : 0.05);
  }
}
