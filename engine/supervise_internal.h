/* supervise_internal.h - what the parts of supervise.h share; not for other callers.
 *
 * The parts: supervise_signals.c (handlers, the interrupted flag, the child registry,
 * kill-all), supervise_proc.c (spawn, wait, stop, run a command), supervise_marker.c
 * (trial markers), supervise_ports.c (port checks and owners).
 * Ownership: the registry is a fixed table of pids owned by supervise_signals.c; nothing
 * here allocates. Errors: none (a full registry drops the pid: at most 64 live groups
 * are killed on a second signal or at exit). */
#ifndef KNOB_SUPERVISE_INTERNAL_H
#define KNOB_SUPERVISE_INTERNAL_H
#include <sys/types.h>

/* A live child process group (its leader's pid) is added when spawned and removed once
 * reaped; ke_kill_all_children kills the ones listed. */
void ke_children_add(pid_t pid);
void ke_children_remove(pid_t pid);

/* 1 when /proc/<pid>/environ holds exactly `marker` ("NAME=value"), else 0. */
int ke_pid_has_marker(const char *pid, const char *marker);

#endif
