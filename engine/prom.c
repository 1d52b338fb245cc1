/* prom.c - see prom.h: a line-at-a-time reader of the Prometheus text format. */
#include "prom.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static const char *const TYPE_NAMES[] = {"untyped", "counter", "gauge", "histogram", "summary"};

const char *ke_prom_type_name(ke_prom_type t) { return TYPE_NAMES[t]; }

/* One line being read: [p, end). */
typedef struct {
  const char *p, *end;
  kbuf name, labels;
  char family[256]; /* the last TYPE line's family, "" before the first */
  ke_prom_type family_type;
  const char *why; /* what is wrong with the line */
} cursor;

static void skip_blanks(cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static int name_start(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':'; }
static int name_char(char ch) { return name_start(ch) || (ch >= '0' && ch <= '9'); }

/* A metric name (colons allowed) or label name (not) into b; 0 or -1. */
static int read_name(cursor *c, kbuf *b, int colons) {
  b->len = 0;
  if (c->p >= c->end || !name_start(*c->p) || (!colons && *c->p == ':')) return -1;
  const char *s = c->p;
  while (c->p < c->end && name_char(*c->p) && (colons || *c->p != ':')) c->p++;
  if (kbuf_append(b, s, (size_t)(c->p - s)) || kbuf_append(b, "", 1)) return -1;
  b->len--; /* kept NUL-terminated */
  return 0;
}

/* A quoted label value, decoded then re-escaped into the labels buffer. */
static int read_label_value(cursor *c) {
  if (c->p >= c->end || *c->p != '"') return (c->why = "a label value must be quoted", -1);
  c->p++;
  if (kbuf_puts(&c->labels, "\"")) return -1;
  while (c->p < c->end && *c->p != '"') {
    char ch = *c->p++;
    if (ch == '\0') return (c->why = "a NUL byte in a label value", -1); /* the labels are a C string */
    if (ch == '\\') {
      if (c->p >= c->end) break;
      char e = *c->p++;
      if (e == 'n') ch = '\n';
      else if (e == '\\' || e == '"') ch = e;
      else return (c->why = "unknown escape in a label value", -1);
    }
    const char *out = ch == '\n' ? "\\n" : ch == '\\' ? "\\\\" : ch == '"' ? "\\\"" : NULL;
    if (out ? kbuf_puts(&c->labels, out) : kbuf_append(&c->labels, &ch, 1)) return -1;
  }
  if (c->p >= c->end) return (c->why = "unterminated label value", -1);
  c->p++;
  return kbuf_puts(&c->labels, "\"");
}

/* `{name="value", ...}` (a trailing comma allowed) into the labels buffer. */
static int read_labels(cursor *c, size_t *n) {
  kbuf lname = {0};
  int rc = 0;
  c->p++; /* '{' */
  for (;;) {
    skip_blanks(c);
    if (c->p < c->end && *c->p == '}') { c->p++; break; }
    if (read_name(c, &lname, 0)) { c->why = "bad label name"; rc = -1; break; }
    skip_blanks(c);
    if (c->p >= c->end || *c->p != '=') { c->why = "a label needs '='"; rc = -1; break; }
    c->p++;
    skip_blanks(c);
    if ((*n > 0 && kbuf_puts(&c->labels, ",")) || kbuf_puts(&c->labels, lname.data) || kbuf_puts(&c->labels, "=") ||
        read_label_value(c)) { rc = -1; break; }
    (*n)++;
    skip_blanks(c);
    if (c->p < c->end && *c->p == ',') { c->p++; continue; }
    if (c->p < c->end && *c->p == '}') { c->p++; break; }
    c->why = "labels must be separated by ',' and closed by '}'";
    rc = -1;
    break;
  }
  kbuf_free(&lname);
  return rc;
}

/* The next blank-separated token as a number ("+Inf", "-Inf", "NaN" included). */
static int read_number(cursor *c, double *v) {
  skip_blanks(c);
  const char *s = c->p;
  while (c->p < c->end && *c->p != ' ' && *c->p != '\t') c->p++;
  size_t n = (size_t)(c->p - s);
  char tmp[64];
  if (n == 0 || n >= sizeof tmp) return -1;
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  char *endp;
  errno = 0;
  *v = strtod(tmp, &endp);
  return *endp == '\0' && (errno == 0 || errno == ERANGE) ? 0 : -1;
}

static ke_prom_type type_of_sample(const cursor *c, const char *name) {
  size_t fl = strlen(c->family);
  if (!fl || strncmp(name, c->family, fl) != 0) return KE_PROM_UNTYPED;
  const char *rest = name + fl;
  if (!*rest) return c->family_type;
  int compound = c->family_type == KE_PROM_HISTOGRAM || c->family_type == KE_PROM_SUMMARY;
  if (compound && (!strcmp(rest, "_bucket") || !strcmp(rest, "_sum") || !strcmp(rest, "_count"))) return c->family_type;
  if (c->family_type == KE_PROM_COUNTER && !strcmp(rest, "_total")) return KE_PROM_COUNTER;
  return KE_PROM_UNTYPED;
}

/* `# TYPE name type`; other comments are ignored. */
static int read_comment(cursor *c) {
  c->p++;
  skip_blanks(c);
  if (c->end - c->p < 4 || memcmp(c->p, "TYPE", 4) != 0 || (c->p + 4 < c->end && c->p[4] != ' ' && c->p[4] != '\t')) return 0;
  c->p += 4;
  skip_blanks(c);
  if (read_name(c, &c->name, 1)) return (c->why = "TYPE needs a metric name", -1);
  skip_blanks(c);
  size_t n = (size_t)(c->end - c->p);
  while (n > 0 && (c->p[n - 1] == ' ' || c->p[n - 1] == '\t')) n--;
  for (int t = 0; t < 5; t++)
    if (strlen(TYPE_NAMES[t]) == n && memcmp(c->p, TYPE_NAMES[t], n) == 0) {
      snprintf(c->family, sizeof c->family, "%s", c->name.data);
      c->family_type = (ke_prom_type)t;
      return 0;
    }
  return (c->why = "unknown metric type", -1);
}

static int read_sample(cursor *c, ke_prom_sample *s) {
  memset(s, 0, sizeof *s);
  c->labels.len = 0;
  if (read_name(c, &c->name, 1)) return (c->why = "bad metric name", -1);
  skip_blanks(c);
  if (c->p < c->end && *c->p == '{' && read_labels(c, &s->n_labels)) return -1;
  if (kbuf_append(&c->labels, "", 1)) return (c->why = "out of memory", -1);
  if (read_number(c, &s->value)) return (c->why = "bad or missing value", -1);
  skip_blanks(c);
  if (c->p < c->end) {
    double ts;
    /* a whole number of ms within a 64-bit integer (checked before the cast: NaN, Inf and
     * 1e300 have no integer value) */
    if (read_number(c, &ts) || !(fabs(ts) < 9.2e18) || ts != floor(ts)) return (c->why = "bad timestamp", -1);
    s->has_timestamp = 1;
    s->timestamp_ms = (long long)ts;
    skip_blanks(c);
    if (c->p < c->end) return (c->why = "text after the timestamp", -1);
  }
  s->name = c->name.data;
  s->labels = c->labels.data;
  s->type = type_of_sample(c, s->name);
  return 0;
}

int ke_prom_parse(const char *text, size_t len, ke_prom_fn fn, void *ud, char *err, size_t errlen) {
  cursor c;
  memset(&c, 0, sizeof c);
  const char *p = text, *end = text + len;
  int rc = 0;
  for (long line = 1; p < end && rc == 0; line++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    c.p = p;
    c.end = nl ? nl : end;
    if (c.end > c.p && c.end[-1] == '\r') c.end--;
    p = nl ? nl + 1 : end;
    c.why = NULL;
    skip_blanks(&c);
    if (c.p == c.end) continue;
    ke_prom_sample s;
    int bad;
    if (*c.p == '#') bad = read_comment(&c);
    else if (!(bad = read_sample(&c, &s)) && (rc = fn(ud, &s)) != 0) break;
    if (bad) {
      snprintf(err, errlen, "line %ld: %s", line, c.why ? c.why : "out of memory");
      rc = -1;
    }
  }
  kbuf_free(&c.name);
  kbuf_free(&c.labels);
  return rc;
}
