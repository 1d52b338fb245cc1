/* logpump.h - a server's output into its log file, capped.
 *
 * A server writes its stdout and stderr into a pipe; a pump thread copies it into the
 * log file. The first head_max bytes go to the file as they come; after that the
 * pump keeps only the last tail_max bytes in memory, and when the pump finishes it
 * writes a line saying how much was cut, then that tail. A server that logs without
 * end cannot fill the disk, and the log still shows how it started and how it ended.
 * Ownership: ke_logpump_start returns a pump the caller finishes with
 * ke_logpump_finish (which closes both descriptors and frees it). Errors: start
 * returns NULL (errno set); nothing here prints or exits. */
#ifndef KNOB_LOGPUMP_H
#define KNOB_LOGPUMP_H
#include <stddef.h>

#define KE_LOG_HEAD_MAX (8u << 20)
#define KE_LOG_TAIL_MAX (8u << 20)

typedef struct ke_logpump ke_logpump;

/* Takes ownership of in (the pipe's read end) and out (the log, opened for append). */
ke_logpump *ke_logpump_start(int in, int out, size_t head_max, size_t tail_max);
/* Waits (up to timeout_s) until what is in the pipe now has been written out: call it
 * before reading the log of a process that just exited. */
void ke_logpump_drain(ke_logpump *p, double timeout_s);
/* The last max_lines lines of everything pumped so far (what is in the file, or the
 * tail kept in memory once the head is full), malloc'd (a NUL byte becomes a space); NULL
 * when there is nothing. */
char *ke_logpump_tail(ke_logpump *p, int max_lines);
/* Stops the pump once the pipe has been quiet for a moment (or its writers are gone),
 * writes the cut line and the tail, and frees it. */
void ke_logpump_finish(ke_logpump *p);

#endif
