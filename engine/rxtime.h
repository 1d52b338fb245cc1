/* rxtime.h - when data arrived on a socket, from the kernel's receive timestamps.
 *
 * A client that handles many streams in one thread reads each socket some time
 * after its data arrived; the kernel's timestamp (SO_TIMESTAMPNS) says when it did.
 * ke_rxtime_peek looks at unread data without consuming it (MSG_PEEK), so another
 * reader (libcurl) reads it afterwards as if nothing had happened. The kernel dates a
 * read by the last segment it copied, and merges segments that wait in the queue
 * under the newest one's time: data that waited while more came is dated by the
 * newest arrival.
 * Ownership: nothing is allocated; the caller owns the sockets.
 * The kernel turns receive stamping on a moment after the first socket asks for it
 * (and off when the last one closes), so data can come without a time: callers fall
 * back to the time they read it.
 * Errors: ke_rxtime_enable returns -1 (errno set) when the socket cannot carry
 * timestamps; ke_rxtime_peek returns 0 when nothing is queued or no timestamp came. */
#ifndef KNOB_RXTIME_H
#define KNOB_RXTIME_H
#include <stddef.h>

int ke_rxtime_enable(int fd);

/* CLOCK_REALTIME minus CLOCK_MONOTONIC, in seconds, now: converts a kernel timestamp
 * to ke_now()'s clock. Read it again after a wait: the wall clock can be stepped. */
double ke_rxtime_clock_offset(void);

/* recv(2) with flags, that also sets *arrived to when the last byte read arrived, on
 * ke_now()'s clock (0 when the data carried no time). Returns what recv returns. */
long ke_rxtime_recv(int fd, char *buf, size_t cap, int flags, double clock_offset, double *arrived);

/* Peeks up to cap bytes of fd into buf (*got: how many) and returns, on ke_now()'s
 * clock, when the last of them arrived; 0 if nothing is queued or it has no time. */
double ke_rxtime_peek(int fd, char *buf, size_t cap, size_t *got, double clock_offset);

/* The local port a connected socket is bound to, or -1. */
int ke_local_port(int fd);

#endif
