/* prom.h - the Prometheus text exposition format (version 0.0.4), as servers such as
 * vLLM serve it on /metrics.
 *
 * A document is lines: `# HELP name text`, `# TYPE name counter|gauge|histogram|
 * summary|untyped`, other `#` comments and blank lines (ignored), and samples
 * `name{label="value",...} value [timestamp_ms]`. Label values may hold `\\`, `\"`
 * and `\n` escapes (a NUL byte is refused); a value is a float, `+Inf`, `-Inf` or `NaN`. A sample belongs to
 * the family of the last TYPE line when its name is that family's name or, for a
 * histogram or summary, that name plus `_bucket`, `_sum` or `_count` (counters may
 * also be declared without their `_total`).
 * Ownership: the parser allocates only while it runs; a sample's strings live until
 * the callback returns. Errors: -1 with "line N: what" in err for a malformed line
 * (the whole document is refused, as Prometheus refuses a scrape), or the callback's
 * nonzero return value. */
#ifndef KNOB_PROM_H
#define KNOB_PROM_H
#include <stddef.h>

typedef enum { KE_PROM_UNTYPED, KE_PROM_COUNTER, KE_PROM_GAUGE, KE_PROM_HISTOGRAM, KE_PROM_SUMMARY } ke_prom_type;

typedef struct {
  const char *name;   /* NUL-terminated */
  const char *labels; /* the labels in canonical form, `k="v",k2="v2"` (values
                         re-escaped), "" when none; NUL-terminated */
  size_t n_labels;
  double value;
  int has_timestamp;
  long long timestamp_ms;
  ke_prom_type type;  /* its family's (KE_PROM_UNTYPED when undeclared) */
} ke_prom_sample;

typedef int (*ke_prom_fn)(void *ud, const ke_prom_sample *s);

int ke_prom_parse(const char *text, size_t len, ke_prom_fn fn, void *ud, char *err, size_t errlen);
/* "counter", "gauge", ... */
const char *ke_prom_type_name(ke_prom_type t);

#endif
