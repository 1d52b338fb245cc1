/* clock.h - the engine's clocks: monotonic seconds, sleeping, CPU time used.
 *
 * Every duration the engine measures is on ke_now()'s clock (CLOCK_MONOTONIC), so a
 * wall-clock step never shows up in a latency. Nothing here allocates or fails. */
#ifndef KNOB_CLOCK_H
#define KNOB_CLOCK_H

/* Monotonic seconds (CLOCK_MONOTONIC). */
double ke_now(void);
/* Sleeps the whole duration, resuming after signals (see ke_sleep_interruptible in
 * supervise.h for a sleep that a Ctrl-C cuts short). */
void ke_sleep(double seconds);
/* CPU seconds (user + system) this process has used. */
double ke_cpu_seconds(void);

#endif
