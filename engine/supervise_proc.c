/* supervise_proc.c - see supervise.h: starting a process (fork, exec, its log pump),
 * watching it, waiting until it is ready, stopping it, and running a command to its
 * end. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "logpump.h"
#include "supervise.h"
#include "supervise_internal.h"

extern char **environ;

struct ke_proc {
  pid_t pid;
  int exited;
  int status;
  char *log_path;
  ke_logpump *pump; /* its output into the log, capped (logpump.h) */
};

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
    ke_children_add(pid);
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
    ke_children_remove(pid);
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

int ke_proc_exited(ke_proc *p) {
  if (p->exited) return 1;
  int st;
  pid_t r = waitpid(p->pid, &st, WNOHANG);
  if (r == p->pid) {
    p->exited = 1;
    p->status = st;
    /* the leader is gone: make sure nothing else of its group lingers */
    kill(-p->pid, SIGKILL);
    ke_children_remove(p->pid);
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
  ke_children_remove(p->pid);
  return 1;
}

void ke_proc_free(ke_proc *p) {
  if (!p) return;
  if (!p->exited) ke_proc_stop(p, 0);
  ke_logpump_finish(p->pump); /* after the stop: nothing of the trial writes any more */
  free(p->log_path);
  free(p);
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
