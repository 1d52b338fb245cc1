/* supervise.c - see supervise.h. */
#include "supervise.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"

extern char **environ;

struct ke_proc {
  pid_t pid;
  int exited;
  int status;
  char *log_path;
};

/* Live child process groups, readable from signal handlers. */
#define KE_MAX_CHILDREN 64
static volatile sig_atomic_t g_children[KE_MAX_CHILDREN];
static volatile sig_atomic_t g_interrupted;

static void registry_add(pid_t pid) {
  for (int i = 0; i < KE_MAX_CHILDREN; i++)
    if (g_children[i] == 0) { g_children[i] = pid; return; }
}

static void registry_remove(pid_t pid) {
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

/* Child side of spawn: never returns. Reports exec failure as errno on errfd. */
static void child_exec(const char *const *argv, const char *const *env, int logfd, int errfd,
                       pid_t parent) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127); /* parent already gone */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, 0);
  dup2(logfd, 1);
  dup2(logfd, 2);
  for (size_t i = 0; env && env[i]; i++) putenv((char *)env[i]);
  execvp(argv[0], (char *const *)argv);
  int e = errno;
  ssize_t w = write(errfd, &e, sizeof e);
  (void)w;
  _exit(127);
}

int ke_spawn(const char *const *argv, const char *const *env, const char *log_path, ke_proc **out,
             char *err, size_t errlen) {
  *out = NULL;
  if (!argv || !argv[0] || !argv[0][0]) {
    snprintf(err, errlen, "empty command");
    return -1;
  }
  int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logfd < 0) {
    snprintf(err, errlen, "cannot open log '%s': %s", log_path, strerror(errno));
    return -1;
  }
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    snprintf(err, errlen, "pipe: %s", strerror(errno));
    close(logfd);
    return -1;
  }
  ke_proc *p = calloc(1, sizeof *p);
  char *lp = strdup(log_path);
  if (!p || !lp) {
    free(p);
    free(lp);
    close(logfd);
    close(pipefd[0]);
    close(pipefd[1]);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  /* Block signals around fork so the child cannot run our handler. */
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    child_exec(argv, env, logfd, pipefd[1], parent);
  }
  int fork_errno = errno;
  if (pid > 0) {
    setpgid(pid, pid); /* also in the parent, so the group exists before we signal it */
    registry_add(pid);
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  close(logfd);
  close(pipefd[1]);
  if (pid < 0) {
    close(pipefd[0]);
    free(p);
    free(lp);
    snprintf(err, errlen, "fork: %s", strerror(fork_errno));
    return -1;
  }
  int child_errno = 0;
  ssize_t r;
  do r = read(pipefd[0], &child_errno, sizeof child_errno);
  while (r < 0 && errno == EINTR);
  close(pipefd[0]);
  p->pid = pid;
  p->log_path = lp;
  if (r == (ssize_t)sizeof child_errno) {
    waitpid(pid, &p->status, 0);
    registry_remove(pid);
    snprintf(err, errlen, "cannot execute '%s': %s", argv[0], strerror(child_errno));
    free(p->log_path);
    free(p);
    return -1;
  }
  *out = p;
  return 0;
}

pid_t ke_proc_pid(const ke_proc *p) { return p->pid; }
int ke_proc_raw_status(const ke_proc *p) { return p->status; }

int ke_proc_exited(ke_proc *p) {
  if (p->exited) return 1;
  int st;
  pid_t r = waitpid(p->pid, &st, WNOHANG);
  if (r == p->pid) {
    p->exited = 1;
    p->status = st;
    /* the leader is gone: make sure nothing else of its group lingers */
    kill(-p->pid, SIGKILL);
    registry_remove(p->pid);
    return 1;
  }
  return 0;
}

void ke_proc_describe_exit(const ke_proc *p, char *buf, size_t len) {
  if (!p->exited) snprintf(buf, len, "still running");
  else if (WIFEXITED(p->status)) snprintf(buf, len, "exited with status %d", WEXITSTATUS(p->status));
  else if (WIFSIGNALED(p->status)) snprintf(buf, len, "killed by signal %d", WTERMSIG(p->status));
  else snprintf(buf, len, "ended (status 0x%x)", p->status);
}

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *ud) {
  (void)ptr; (void)ud;
  return size * nmemb;
}

void ke_proc_describe_exit_with_log(const ke_proc *p, const char *prefix, const char *suffix, char *err,
                                    size_t errlen) {
  char how[64];
  ke_proc_describe_exit(p, how, sizeof how);
  char *tail = ke_tail_lines(p->log_path, 5);
  snprintf(err, errlen, "%sserver %s%s; last log lines:\n%s", prefix, how, suffix,
           tail && tail[0] ? tail : "(log is empty)");
  free(tail);
}

int ke_wait_ready(ke_proc *p, const char *url, double timeout_s, char *err, size_t errlen) {
  CURL *c = curl_easy_init();
  if (!c) { snprintf(err, errlen, "curl_easy_init failed"); return -1; }
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
  curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never send local traffic through a proxy */
  double deadline = ke_now() + timeout_s;
  double interval = 0.005; /* short at first: a fast server is ready in milliseconds */
  int rc = -1;
  long last_code = 0;
  for (;;) {
    if (ke_proc_exited(p)) {
      ke_proc_describe_exit_with_log(p, "server exited before it was ready: ", "", err, errlen);
      break;
    }
    if (curl_easy_perform(c) == CURLE_OK) {
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &last_code);
      if (last_code == 200) { rc = 0; break; }
    }
    if (ke_now() >= deadline) {
      char *tail = ke_tail_lines(p->log_path, 5);
      snprintf(err, errlen, "server not ready after %.0f s (%s %s); last log lines:\n%s", timeout_s,
               url, last_code ? "answered non-200" : "refused or timed out",
               tail && tail[0] ? tail : "(log is empty)");
      free(tail);
      break;
    }
    if (ke_sleep_interruptible(interval) == KE_INTERRUPTED) {
      snprintf(err, errlen, "interrupted while waiting for the server");
      rc = KE_INTERRUPTED;
      break;
    }
    if (interval < 0.1) interval *= 1.5;
  }
  curl_easy_cleanup(c);
  return rc;
}

int ke_proc_stop(ke_proc *p, double timeout_s) {
  if (ke_proc_exited(p)) return 0;
  kill(-p->pid, SIGTERM);
  double deadline = ke_now() + timeout_s;
  while (ke_now() < deadline) {
    if (ke_proc_exited(p)) return 0;
    ke_sleep(0.002);
  }
  kill(-p->pid, SIGKILL);
  kill(p->pid, SIGKILL);
  int st;
  while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {
  }
  p->exited = 1;
  p->status = st;
  registry_remove(p->pid);
  return 1;
}

void ke_proc_free(ke_proc *p) {
  if (!p) return;
  if (!p->exited) ke_proc_stop(p, 0);
  free(p->log_path);
  free(p);
}

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

static int has_marker(const char *pid, const char *marker) { return find_marker(pid, marker, 0, NULL, 0); }

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
    if (pid == self || !has_marker(de->d_name, marker)) continue;
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

int ke_port_in_use(const char *host, int port) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  if (getaddrinfo(host, ps, &hints, &res) != 0 || !res) return -1;
  int in_use = 0;
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    int one = 1;
    /* SO_REUSEADDR: sockets in TIME_WAIT do not count, a listener does */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) in_use = (errno == EADDRINUSE) ? 1 : 0;
    close(fd);
  }
  freeaddrinfo(res);
  return in_use;
}

int ke_wait_port_free(const char *host, int port, double timeout_s) {
  double deadline = ke_now() + timeout_s;
  for (;;) {
    if (ke_port_in_use(host, port) != 1) return 0;
    if (ke_now() >= deadline) return -1;
    ke_sleep(0.005);
  }
}

int ke_run_command(const char *const *argv, const char *const *env, const char *log_path, double timeout_s,
                   char *err, size_t errlen) {
  ke_proc *p;
  if (ke_spawn(argv, env, log_path, &p, err, errlen)) return -1;
  const char *sub = argv[1] ? argv[1] : "";
  double deadline = ke_now() + timeout_s;
  while (!ke_proc_exited(p)) {
    if (ke_interrupted()) { /* Ctrl-C during a long export must not wait for it */
      ke_proc_stop(p, 2.0);
      snprintf(err, errlen, "interrupted during '%s %s'", argv[0], sub);
      ke_proc_free(p);
      return -1;
    }
    if (ke_now() >= deadline) {
      ke_proc_stop(p, 2.0);
      snprintf(err, errlen, "'%s %s' did not finish within %.0f s", argv[0], sub, timeout_s);
      ke_proc_free(p);
      return -1;
    }
    ke_sleep(0.01);
  }
  int st = p->status;
  ke_proc_free(p);
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  snprintf(err, errlen, "'%s %s' was killed by signal %d", argv[0], sub, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  return -1;
}
