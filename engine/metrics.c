/* metrics.c - see metrics.h: the metric table, its accessors, and how repeats combine. */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "stats.h"

const ke_metric_desc ke_metric_table[] = {
#define KE_METRIC_ROW_(member, type, combine, push, group, key, objective)                                 \
  {#member, offsetof(ke_metrics, member), KE_TYPE_##type, KE_COMBINE_##combine, KE_PUSH_##push, KE_GROUP_##group, \
   key, objective},
    KE_METRICS(KE_METRIC_ROW_)
#undef KE_METRIC_ROW_
};

const size_t ke_metric_count = sizeof ke_metric_table / sizeof ke_metric_table[0];

const ke_metric_group_desc ke_metric_groups[KE_GROUP_COUNT] = {
#define KE_METRIC_GROUP_ROW_(group, key, shown) {key, KE_SHOWN_##shown},
    KE_METRIC_GROUPS(KE_METRIC_GROUP_ROW_)
#undef KE_METRIC_GROUP_ROW_
};

static size_t type_size(ke_metric_type t) {
  switch (t) {
  case KE_TYPE_INT: return sizeof(int);
  case KE_TYPE_I64: return sizeof(long long);
  case KE_TYPE_LONG: return sizeof(long);
  case KE_TYPE_NUM: return sizeof(double);
  case KE_TYPE_TEXT: return sizeof(ke_metric_text);
  }
  return 0;
}

static const void *member_of(const ke_metrics *m, const ke_metric_desc *d) {
  return (const char *)m + d->offset;
}

long long ke_metric_int(const ke_metrics *m, const ke_metric_desc *d) {
  const void *p = member_of(m, d);
  switch (d->type) {
  case KE_TYPE_INT: return *(const int *)p;
  case KE_TYPE_I64: return *(const long long *)p;
  case KE_TYPE_LONG: return *(const long *)p;
  case KE_TYPE_NUM: { /* NaN and the out-of-range read as 0: a cast of them is undefined */
    double x = *(const double *)p;
    return isfinite(x) && fabs(x) < 9e18 ? (long long)x : 0;
  }
  case KE_TYPE_TEXT: break;
  }
  return 0;
}

double ke_metric_num(const ke_metrics *m, const ke_metric_desc *d) {
  if (d->type == KE_TYPE_NUM) return *(const double *)member_of(m, d);
  return d->type == KE_TYPE_TEXT ? NAN : (double)ke_metric_int(m, d);
}

const char *ke_metric_str(const ke_metrics *m, const ke_metric_desc *d) {
  return d->type == KE_TYPE_TEXT ? (const char *)member_of(m, d) : NULL;
}

void ke_metric_set(ke_metrics *m, const ke_metric_desc *d, double v) {
  void *p = (char *)m + d->offset;
  switch (d->type) {
  case KE_TYPE_INT: *(int *)p = (int)v; break;
  case KE_TYPE_I64: *(long long *)p = (long long)v; break;
  case KE_TYPE_LONG: *(long *)p = (long)v; break;
  case KE_TYPE_NUM: *(double *)p = v; break;
  case KE_TYPE_TEXT: break;
  }
}

static double median_of(double *v, int n) {
  ke_sort_doubles(v, (size_t)n);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void combine_sum(const ke_metrics *reps, int n, const ke_metric_desc *d, ke_metrics *out) {
  void *p = (char *)out + d->offset;
  for (int i = 0; i < n; i++) {
    long long v = ke_metric_int(&reps[i], d); /* NaN safe: NUM adds its double below */
    switch (d->type) {
    case KE_TYPE_INT: *(int *)p += (int)v; break;
    case KE_TYPE_I64: *(long long *)p += v; break;
    case KE_TYPE_LONG: *(long *)p += (long)v; break;
    case KE_TYPE_NUM: *(double *)p += ke_metric_num(&reps[i], d); break;
    case KE_TYPE_TEXT: break;
    }
  }
}

static void combine_median(const ke_metrics *reps, int n, const ke_metric_desc *d, ke_metrics *out) {
  double v[64];
  for (int i = 0; i < n; i++) v[i] = ke_metric_num(&reps[i], d);
  ke_metric_set(out, d, median_of(v, n));
}

static void combine_all_met(const ke_metrics *reps, int n, const ke_metric_desc *d, ke_metrics *out) {
  double met = ke_metric_num(&reps[0], d);
  for (int i = 0; i < n; i++)
    if (ke_metric_num(&reps[i], d) == 0) met = 0;
  ke_metric_set(out, d, met);
}

/* The example of a token mismatch: from the first repeat that had one. */
static void combine_first_mismatch(const ke_metrics *reps, int n, const ke_metric_desc *d, ke_metrics *out) {
  long long before = 0;
  for (int i = 0; i < n; i++) {
    if (reps[i].token_mismatch && !before) {
      memcpy((char *)out + d->offset, (const char *)&reps[i] + d->offset, type_size(d->type));
      return;
    }
    before += reps[i].token_mismatch;
  }
}

static void combine_first_text(const ke_metrics *reps, int n, const ke_metric_desc *d, ke_metrics *out) {
  char *dst = (char *)out + d->offset;
  for (int i = 0; i < n && !dst[0]; i++) {
    const char *s = ke_metric_str(&reps[i], d);
    if (s[0]) snprintf(dst, sizeof(ke_metric_text), "%s", s);
  }
}

static void combine_one(const ke_metrics *reps, int n, const ke_metric_desc *d, ke_metrics *out) {
  switch (d->combine) {
  case KE_COMBINE_SUM: combine_sum(reps, n, d, out); break;
  case KE_COMBINE_MEDIAN: combine_median(reps, n, d, out); break;
  case KE_COMBINE_ALL_MET: combine_all_met(reps, n, d, out); break;
  case KE_COMBINE_FIRST_MISMATCH: combine_first_mismatch(reps, n, d, out); break;
  case KE_COMBINE_FIRST_TEXT: combine_first_text(reps, n, d, out); break;
  case KE_COMBINE_FAILED_SHARE: break; /* from the sums, after them */
  }
}

void ke_metrics_combine(const ke_metrics *reps, int n, ke_metrics *out) {
  memset(out, 0, sizeof *out);
  if (n <= 0) return;
  if (n > 64) n = 64;
  for (size_t i = 0; i < ke_metric_count; i++) combine_one(reps, n, &ke_metric_table[i], out);
  for (size_t i = 0; i < ke_metric_count; i++)
    if (ke_metric_table[i].combine == KE_COMBINE_FAILED_SHARE)
      ke_metric_set(out, &ke_metric_table[i], out->request_count ? (double)out->failed / out->request_count : NAN);
}
