/* supervise.c - see supervise.h. */
#include "supervise.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "logpump.h"

extern char **environ;

struct ke_proc {
  pid_t pid;
  int exited;
  int status;
  char *log_path;
  ke_logpump *pump; /* its output into the log, capped (logpump.h) */
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

/* What a failed child reports on its error pipe: which step failed and its errno. */
typedef struct { int chdir_failed, errnum; } child_failure;

/* Child side of spawn: never returns. Reports a failed chdir or exec on errfd. Only
 * calls that are safe after fork in a process with threads (no allocation). */
static void child_exec(const char *const *argv, char *const *envp, const char *cwd, int outfd, int errfd,
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
  dup2(outfd, 1);
  dup2(outfd, 2);
  child_failure why = {1, 0};
  if (!cwd || chdir(cwd) == 0) {
    execvpe(argv[0], (char *const *)argv, envp);
    why.chdir_failed = 0;
  }
  why.errnum = errno;
  ssize_t w = write(errfd, &why, sizeof why);
  (void)w;
  _exit(127);
}

/* The environment of a child: ours with `env` ("NAME=value") added or replacing. The
 * array is malloc'd (strings borrowed); NULL when memory runs out. */
static char **child_env(const char *const *env) {
  size_t n = 0, k = 0;
  while (environ[n]) n++;
  while (env && env[k]) k++;
  char **out = malloc((n + k + 1) * sizeof *out);
  if (!out) return NULL;
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    size_t name = strcspn(environ[i], "=");
    int replaced = 0;
    for (size_t j = 0; j < k && !replaced; j++)
      replaced = strncmp(env[j], environ[i], name) == 0 && env[j][name] == '=';
    if (!replaced) out[m++] = environ[i];
  }
  for (size_t j = 0; j < k; j++) out[m++] = (char *)env[j];
  out[m] = NULL;
  return out;
}

/* What a spawn opens: the log (append), the pipe of the child's output, and the pipe
 * that reports a failed exec. All close-on-exec: the child keeps only its dup2 copies. */
typedef struct {
  int log, out[2], exec_err[2];
} spawn_fds;

static void close_fds(spawn_fds *f) {
  int *all[] = {&f->log, &f->out[0], &f->out[1], &f->exec_err[0], &f->exec_err[1]};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (*all[i] >= 0) { close(*all[i]); *all[i] = -1; }
}

static int open_fds(spawn_fds *f, const char *log_path, char *err, size_t errlen) {
  f->out[0] = f->out[1] = f->exec_err[0] = f->exec_err[1] = -1;
  f->log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (f->log < 0) {
    snprintf(err, errlen, "cannot open log '%s': %s", log_path, strerror(errno));
    return -1;
  }
  if (pipe2(f->out, O_CLOEXEC) != 0 || pipe2(f->exec_err, O_CLOEXEC) != 0) {
    snprintf(err, errlen, "pipe: %s", strerror(errno));
    close_fds(f);
    return -1;
  }
  return 0;
}

/* Forks and execs; returns the pid (or -1, errno set). Signals are blocked around the
 * fork so the child cannot run our handler. */
static pid_t fork_exec(const char *const *argv, char *const *envp, const char *cwd, spawn_fds *f) {
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) child_exec(argv, envp, cwd, f->out[1], f->exec_err[1], parent);
  int fork_errno = errno;
  if (pid > 0) {
    setpgid(pid, pid); /* also in the parent, so the group exists before we signal it */
    registry_add(pid);
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  errno = fork_errno;
  return pid;
}

int ke_spawn(const char *const *argv, const char *const *env, const char *log_path, ke_proc **out,
             char *err, size_t errlen) {
  return ke_spawn_in(argv, env, NULL, log_path, out, err, errlen);
}

int ke_spawn_in(const char *const *argv, const char *const *env, const char *cwd, const char *log_path,
                ke_proc **out, char *err, size_t errlen) {
  *out = NULL;
  if (!argv || !argv[0] || !argv[0][0]) {
    snprintf(err, errlen, "empty command");
    return -1;
  }
  spawn_fds f;
  if (open_fds(&f, log_path, err, errlen)) return -1;
  char **envp = child_env(env);
  ke_proc *p = calloc(1, sizeof *p);
  char *lp = strdup(log_path);
  pid_t pid = envp && p && lp ? fork_exec(argv, envp, cwd, &f) : (errno = ENOMEM, -1);
  int spawn_errno = errno;
  free(envp);
  close(f.out[1]);
  close(f.exec_err[1]);
  f.out[1] = f.exec_err[1] = -1;
  child_failure why = {0, 0};
  ssize_t r = 0;
  if (pid > 0) {
    do r = read(f.exec_err[0], &why, sizeof why);
    while (r < 0 && errno == EINTR);
  }
  if (pid > 0 && r != (ssize_t)sizeof why) {
    p->pid = pid;
    p->log_path = lp;
    p->pump = ke_logpump_start(f.out[0], f.log, KE_LOG_HEAD_MAX, KE_LOG_TAIL_MAX);
    if (p->pump) {
      close(f.exec_err[0]);
      *out = p;
      return 0;
    }
    snprintf(err, errlen, "cannot start the log pump: %s", strerror(errno));
    ke_proc_stop(p, 0);
  } else if (pid > 0) {
    waitpid(pid, &p->status, 0);
    registry_remove(pid);
    if (why.chdir_failed) snprintf(err, errlen, "cannot enter '%s' for '%s': %s", cwd, argv[0], strerror(why.errnum));
    else snprintf(err, errlen, "cannot execute '%s': %s", argv[0], strerror(why.errnum));
  } else {
    snprintf(err, errlen, "cannot start '%s': %s", argv[0], strerror(spawn_errno));
  }
  close_fds(&f);
  free(lp);
  free(p);
  return -1;
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

/* The last lines of a process's log: what the pump has written, or the tail it keeps
 * in memory once the log passed its head; NULL when empty. */
static char *log_tail(const ke_proc *p, int lines) {
  if (p->pump) {
    ke_logpump_drain(p->pump, 0.2);
    char *t = ke_logpump_tail(p->pump, lines);
    if (t) return t;
  }
  return ke_tail_lines(p->log_path, lines);
}

void ke_proc_describe_exit_with_log(const ke_proc *p, const char *prefix, const char *suffix, char *err,
                                    size_t errlen) {
  char how[64];
  ke_proc_describe_exit(p, how, sizeof how);
  char *tail = log_tail(p, 5);
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
      char *tail = log_tail(p, 5);
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
  ke_logpump_finish(p->pump); /* after the stop: nothing of the trial writes any more */
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

int ke_run_command(const char *const *argv, const char *const *env, const char *cwd, const char *log_path,
                   double timeout_s, char *err, size_t errlen) {
  ke_proc *p;
  if (ke_spawn_in(argv, env, cwd, log_path, &p, err, errlen)) return -1;
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

/* Inodes of the listening TCP sockets on `port` in one /proc/net table. */
static size_t listening_inodes(const char *table, int port, unsigned long *inodes, size_t n, size_t max) {
  FILE *f = fopen(table, "r");
  if (!f) return n;
  char line[512];
  if (!fgets(line, sizeof line, f)) { fclose(f); return n; } /* the header */
  while (n < max && fgets(line, sizeof line, f)) {
    char local[128];
    unsigned state;
    unsigned long inode;
    /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
    if (sscanf(line, " %*s %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &state, &inode) != 3) continue;
    const char *colon = strrchr(local, ':');
    if (state != 0x0A || !colon || (int)strtol(colon + 1, NULL, 16) != port || inode == 0) continue;
    inodes[n++] = inode;
  }
  fclose(f);
  return n;
}

/* The same from the kernel's socket diagnostics (netlink): only listening sockets are
 * listed, where /proc/net/tcp also lists every connection in TIME_WAIT (thousands
 * after a sweep, milliseconds to read). -1 when the interface is not available. */
static int diag_listening(int family, int port, unsigned long *inodes, size_t *n, size_t max) {
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return -1;
  struct timeval limit = {1, 0}; /* the kernel answers at once; never hang on it */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 r;
  } req;
  memset(&req, 0, sizeof req);
  req.nlh.nlmsg_len = sizeof req;
  req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.r.sdiag_family = (unsigned char)family;
  req.r.sdiag_protocol = IPPROTO_TCP;
  req.r.idiag_states = 1u << 10; /* TCP_LISTEN */
  int rc = send(fd, &req, sizeof req, 0) == (ssize_t)sizeof req ? 1 : -1;
  union {
    struct nlmsghdr align;
    char bytes[16384];
  } buf;
  while (rc == 1) {
    ssize_t got = recv(fd, buf.bytes, sizeof buf.bytes, 0);
    if (got <= 0) rc = -1;
    size_t len = got > 0 ? (size_t)got : 0;
    for (size_t at = 0; rc == 1 && at + sizeof(struct nlmsghdr) <= len;) {
      const struct nlmsghdr *h = (const struct nlmsghdr *)(buf.bytes + at);
      if (h->nlmsg_len < sizeof *h || h->nlmsg_len > len - at) {
        rc = -1;
        break;
      }
      at += NLMSG_ALIGN(h->nlmsg_len);
      if (h->nlmsg_type == NLMSG_DONE) rc = 0;
      else if (h->nlmsg_type == NLMSG_ERROR) rc = -1;
      else if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
        const struct inet_diag_msg *m = NLMSG_DATA(h);
        if (ntohs(m->id.idiag_sport) == port && m->idiag_inode && *n < max) inodes[(*n)++] = m->idiag_inode;
      }
    }
  }
  close(fd);
  return rc;
}

static int by_pid_descending(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x < y) - (x > y);
}

/* The process ids under /proc, newest (highest) first: a trial's server is among the
 * newest processes, so its sockets are usually found after a few. NULL on failure. */
static long *proc_pids(size_t *count) {
  DIR *d = opendir("/proc");
  if (!d) return NULL;
  size_t n = 0, cap = 256;
  long *pids = malloc(cap * sizeof *pids);
  struct dirent *de;
  while (pids && (de = readdir(d))) {
    if (!isdigit((unsigned char)de->d_name[0])) continue;
    if (n == cap) {
      long *np = realloc(pids, (cap *= 2) * sizeof *pids);
      if (!np) free(pids);
      pids = np;
      if (!pids) break;
    }
    pids[n++] = atol(de->d_name);
  }
  closedir(d);
  if (pids) qsort(pids, n, sizeof *pids, by_pid_descending);
  *count = n;
  return pids;
}

/* Whether process pid holds the socket named `want` ("socket:[inode]"). */
static int holds_socket(long pid, const char *want) {
  char fdpath[64];
  snprintf(fdpath, sizeof fdpath, "/proc/%ld/fd", pid);
  DIR *fds = opendir(fdpath);
  if (!fds) return 0;
  int found = 0;
  struct dirent *fe;
  while (!found && (fe = readdir(fds))) {
    char link[300], target[128];
    snprintf(link, sizeof link, "%s/%s", fdpath, fe->d_name);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n > 0 && (target[n] = '\0', strcmp(target, want) == 0)) found = 1;
  }
  closedir(fds);
  return found;
}

/* The pid of a process holding socket inode, or 0 when none is visible. */
static long socket_holder(unsigned long inode) {
  char want[64];
  snprintf(want, sizeof want, "socket:[%lu]", inode);
  size_t n = 0;
  long *pids = proc_pids(&n), found = 0;
  for (size_t i = 0; pids && i < n && !found; i++)
    if (holds_socket(pids[i], want)) found = pids[i];
  free(pids);
  return found;
}

static void command_line(long pid, char *cmd, size_t len) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, cmd, len - 1) : -1;
  if (fd >= 0) close(fd);
  if (n <= 0) { snprintf(cmd, len, "?"); return; }
  for (ssize_t i = 0; i < n; i++)
    if (cmd[i] == '\0') cmd[i] = ' ';
  while (n > 0 && cmd[n - 1] == ' ') n--;
  cmd[n] = '\0';
}

int ke_port_owner(int port, const char *marker, long *other_pid, char *cmd, size_t cmdlen) {
  unsigned long inodes[16];
  size_t n = 0;
  if (diag_listening(AF_INET, port, inodes, &n, 16) != 0) n = listening_inodes("/proc/net/tcp", port, inodes, 0, 16);
  size_t n4 = n;
  if (diag_listening(AF_INET6, port, inodes, &n, 16) != 0) n = listening_inodes("/proc/net/tcp6", port, inodes, n4, 16);
  if (n == 0) return -1;
  for (size_t i = 0; i < n; i++) {
    long pid = socket_holder(inodes[i]);
    char spid[32];
    snprintf(spid, sizeof spid, "%ld", pid);
    if (pid > 0 && has_marker(spid, marker)) continue;
    *other_pid = pid > 0 ? pid : -1;
    if (pid > 0) command_line(pid, cmd, cmdlen);
    else snprintf(cmd, cmdlen, "not visible to us");
    return 0;
  }
  return 1;
}
