/* supervise.h - starting, watching and stopping server processes.
 *
 * A server runs as a direct exec (no shell) in its own process group, with stdout and
 * stderr appended to a log file through a pump that caps it (logpump.h: the first and
 * the last 8 MB are kept) and stdin from /dev/null. It gets SIGKILL when
 * knobengine dies (PR_SET_PDEATHSIG), and every live group is killed on SIGINT/SIGTERM
 * (second signal) and at exit, so no server outlives knobengine.
 *
 * Ownership: ke_spawn returns a ke_proc the caller frees with ke_proc_free (which stops
 * the process first if it still runs). Errors: 0 on success, -1 with a message in err;
 * KE_INTERRUPTED when a SIGINT/SIGTERM arrived while waiting. Nothing here exits, but
 * for the second-signal handler (_exit(128 + signal)).
 *
 * Implemented by concern: supervise_signals.c (signals, the child registry),
 * supervise_proc.c (processes), supervise_marker.c (trial markers), supervise_ports.c
 * (ports); what they share is supervise_internal.h. */
#ifndef KNOB_SUPERVISE_H
#define KNOB_SUPERVISE_H
#include <stddef.h>
#include <sys/types.h>

#define KE_INTERRUPTED (-2)

typedef struct ke_proc ke_proc;

/* ---- signals (supervise_signals.c) ---- */

/* Installs SIGINT/SIGTERM/SIGHUP handlers: the first signal sets the interrupted flag
 * (long waits return KE_INTERRUPTED), the second kills every child group and exits
 * 128+signal at once. Also registers an atexit hook that kills live groups. */
void ke_signals_install(void);
/* The signal number that interrupted us, or 0. */
int ke_interrupted(void);
/* Sleeps up to seconds, returning early (KE_INTERRUPTED) on an interrupting signal. */
int ke_sleep_interruptible(double seconds);
/* Kills (SIGKILL) every live child process group; async-signal-safe. */
void ke_kill_all_children(void);

/* ---- processes (supervise_proc.c) ---- */

/* env: "NAME=value" strings added to (or replacing in) the inherited environment. */
int ke_spawn(const char *const *argv, const char *const *env, const char *log_path,
             ke_proc **out, char *err, size_t errlen);
/* ke_spawn with cwd (or NULL: ours) as the child's working directory. */
int ke_spawn_in(const char *const *argv, const char *const *env, const char *cwd, const char *log_path,
                ke_proc **out, char *err, size_t errlen);
pid_t ke_proc_pid(const ke_proc *p);
/* 1 if the process has exited (reaping it), 0 if it runs. */
int ke_proc_exited(ke_proc *p);
/* Describes how it exited ("exited with status 3", "killed by signal 9"). */
void ke_proc_describe_exit(const ke_proc *p, char *buf, size_t len);
/* "<prefix>server <how it exited><suffix>; last log lines:\n<the log's last 5 lines>". */
void ke_proc_describe_exit_with_log(const ke_proc *p, const char *prefix, const char *suffix, char *err,
                                    size_t errlen);

/* Runs a command to completion (no shell; env as for ke_spawn, or NULL; in directory
 * cwd, or NULL: ours), output appended to log_path; returns its exit status, or -1 (err set) when it could not
 * run, exceeded timeout_s, was killed by a signal, or a SIGINT/SIGTERM arrived (the
 * command is stopped then). */
int ke_run_command(const char *const *argv, const char *const *env, const char *cwd, const char *log_path,
                   double timeout_s, char *err, size_t errlen);

/* Polls url until it answers HTTP 200. Fails at timeout_s, when the process exits
 * (message includes the exit status and the last log lines) or on interruption. */
int ke_wait_ready(ke_proc *p, const char *url, double timeout_s, char *err, size_t errlen);
/* SIGTERM to the group, wait up to timeout_s, then SIGKILL; reaps. Returns 0, or 1
 * when SIGKILL was needed. */
int ke_proc_stop(ke_proc *p, double timeout_s);
void ke_proc_free(ke_proc *p);

/* ---- trial markers (supervise_marker.c) ---- */

/* Processes started for a trial carry a marker in their environment, the variable
 * KE_MARKER_NAME set to "<owner pid>-<n>"; the marker finds them even when they left
 * our process group (a server launched by the nsys agent, a worker that called setsid).
 * This module owns the format. */
#define KE_MARKER_NAME "KNOBENGINE_TRIAL"
/* Writes a marker ("KNOBENGINE_TRIAL=<our pid>-<n>") unique within this process and
 * across live processes into buf (at least 64 bytes). */
void ke_marker_new(char *buf, size_t len);
/* Sends sig to every process whose environment holds the marker ("NAME=value"), except
 * us; returns how many were signalled. */
int ke_signal_marked(const char *marker, int sig);
/* SIGTERM to marked processes, wait up to timeout_s, then SIGKILL. Returns the number
 * that needed SIGKILL. */
int ke_stop_marked(const char *marker, double timeout_s);

/* Kills (SIGKILL) processes marked by a knobengine that no longer exists (it was
 * killed before it could stop them, e.g. a server under `nsys launch`, which
 * PR_SET_PDEATHSIG does not reach). Returns how many were killed. */
int ke_reap_orphans(void);

/* ---- ports (supervise_ports.c) ---- */

/* 1 if something listens on host:port (it cannot be bound), 0 if free, -1 on a bad
 * host. */
int ke_port_in_use(const char *host, int port);
/* Who listens on port (any address, IPv4 or IPv6), read from /proc/net/tcp{,6} and the
 * sockets in /proc/PID/fd: 1 when every listening socket belongs to a process that
 * carries `marker` (the trial's own server, wherever it runs); 0 when another process
 * holds one (its pid, or -1 when it is not visible to us, and its command line go to
 * other_pid and cmd); -1 when nothing listens or /proc cannot tell. */
int ke_port_owner(int port, const char *marker, long *other_pid, char *cmd, size_t cmdlen);
/* Waits until host:port is free, up to timeout_s; 0 when free, -1 on timeout. */
int ke_wait_port_free(const char *host, int port, double timeout_s);

#endif
