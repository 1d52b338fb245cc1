/* stats.c - see stats.h. */
#include "stats.h"

#include <math.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void ke_sort_doubles(double *x, size_t n) {
  if (n > 1) qsort(x, n, sizeof *x, cmp_double);
}

double ke_percentile_sorted(const double *x, size_t n, double p) {
  if (n == 0) return NAN;
  if (n == 1) return x[0];
  double r = p / 100.0 * (double)(n - 1);
  size_t lo = (size_t)floor(r);
  if (lo >= n - 1) return x[n - 1];
  double frac = r - (double)lo;
  return x[lo] + frac * (x[lo + 1] - x[lo]);
}

double ke_mean(const double *x, size_t n) {
  if (n == 0) return NAN;
  double s = 0;
  for (size_t i = 0; i < n; i++) s += x[i];
  return s / (double)n;
}
