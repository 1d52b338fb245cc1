/* stats.h - summary statistics for latency samples.
 *
 * Percentiles use linear interpolation between closest ranks (the method numpy calls
 * 'linear'): for sorted x[0..n-1], rank r = p/100 * (n-1), value = x[floor(r)] +
 * (r - floor(r)) * (x[floor(r)+1] - x[floor(r)]). No allocation: callers own arrays.
 * With n == 0 the results are NaN (reported as null/na). */
#ifndef KNOB_STATS_H
#define KNOB_STATS_H
#include <stddef.h>

void ke_sort_doubles(double *x, size_t n);
double ke_percentile_sorted(const double *x, size_t n, double p);
double ke_mean(const double *x, size_t n);

#endif
