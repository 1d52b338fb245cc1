/* records.c - see records.h. */
#include "records.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ke_records {
  FILE *f;
  char *path;
  ke_records_layout layout;
  size_t max_record;
  char *rec;         /* the current record */
  size_t len, cap;
  long number;       /* lines read / elements seen */
  int started, ended; /* array: '[' seen, ']' seen */
};

/* A UTF-8 byte-order mark at the start (as some editors and exporters write one) is
 * not part of the first record. */
static void skip_bom(FILE *f) {
  unsigned char head[3];
  size_t n = fread(head, 1, sizeof head, f);
  if (!(n == 3 && head[0] == 0xEF && head[1] == 0xBB && head[2] == 0xBF)) rewind(f);
}

ke_records *ke_records_open(const char *path, ke_records_layout layout, size_t max_record, char *err,
                            size_t errlen) {
  ke_records *r = calloc(1, sizeof *r);
  if (!r || !(r->path = strdup(path))) {
    free(r);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  r->f = fopen(path, "rb");
  if (!r->f) {
    snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
    free(r->path);
    free(r);
    return NULL;
  }
  skip_bom(r->f);
  r->layout = layout;
  r->max_record = max_record;
  return r;
}

static int put(ke_records *r, int ch) {
  if (r->len + 2 > r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 4096;
    char *n = realloc(r->rec, cap);
    if (!n) return -1;
    r->rec = n;
    r->cap = cap;
  }
  r->rec[r->len++] = (char)ch;
  return 0;
}

static int too_long(ke_records *r, char *err, size_t errlen) {
  const char *what = r->layout == KE_RECORDS_LINES ? "line" : "element";
  snprintf(err, errlen, "%s %s %ld: %s is longer than %zu bytes", r->path, what, r->number, what, r->max_record);
  return -1;
}

/* The next non-blank line. */
static int next_line(ke_records *r, char *err, size_t errlen) {
  for (;;) {
    r->len = 0;
    int ch, any = 0, blank = 1;
    r->number++;
    while ((ch = getc_unlocked(r->f)) != EOF && ch != '\n') {
      any = 1;
      if (ch != ' ' && ch != '\t' && ch != '\r') blank = 0;
      if (r->len >= r->max_record) return too_long(r, err, errlen);
      if (put(r, ch)) { snprintf(err, errlen, "out of memory"); return -1; }
    }
    if (ferror(r->f)) { snprintf(err, errlen, "cannot read '%s': %s", r->path, strerror(errno)); return -1; }
    if (!any && ch == EOF) return 0;
    if (!blank) { r->rec[r->len] = '\0'; return 1; }
    if (ch == EOF) return 0;
  }
}

static int skip_space(FILE *f) {
  int ch;
  while ((ch = getc_unlocked(f)) == ' ' || ch == '\n' || ch == '\t' || ch == '\r') {
  }
  return ch;
}

static int bad_array(ke_records *r, const char *what, char *err, size_t errlen) {
  snprintf(err, errlen, "%s is not a JSON array of records (%s after element %ld)", r->path, what, r->number);
  return -1;
}

/* The next element of the top-level array: its bytes up to the comma or bracket that
 * ends it, strings and nesting tracked so neither ends it early. */
static int next_element(ke_records *r, char *err, size_t errlen) {
  if (r->ended) return 0;
  int ch = skip_space(r->f);
  if (!r->started) {
    if (ch != '[') return bad_array(r, "no '[' at the start", err, errlen);
    r->started = 1;
    ch = skip_space(r->f);
    if (ch == ']') { r->ended = 1; return 0; }
  }
  r->len = 0;
  r->number++;
  int depth = 0, in_str = 0, esc = 0;
  for (; ch != EOF; ch = getc_unlocked(r->f)) {
    if (!in_str && depth == 0 && (ch == ',' || ch == ']')) {
      if (ch == ']') r->ended = 1;
      while (r->len && (r->rec[r->len - 1] == ' ' || r->rec[r->len - 1] == '\n' || r->rec[r->len - 1] == '\r' ||
                        r->rec[r->len - 1] == '\t'))
        r->len--;
      if (!r->len) return bad_array(r, "an empty element", err, errlen);
      r->rec[r->len] = '\0';
      return 1;
    }
    if (in_str) {
      if (esc) esc = 0;
      else if (ch == '\\') esc = 1;
      else if (ch == '"') in_str = 0;
    } else if (ch == '"') in_str = 1;
    else if (ch == '{' || ch == '[') depth++;
    else if (ch == '}' || ch == ']') depth--;
    if (depth < 0) return bad_array(r, "an unbalanced bracket", err, errlen);
    if (r->len >= r->max_record) return too_long(r, err, errlen);
    if (put(r, ch)) { snprintf(err, errlen, "out of memory"); return -1; }
  }
  if (ferror(r->f)) { snprintf(err, errlen, "cannot read '%s': %s", r->path, strerror(errno)); return -1; }
  return bad_array(r, "the file ends inside the array", err, errlen);
}

int ke_records_next(ke_records *r, const char **text, size_t *len, long *number, char *err, size_t errlen) {
  int rc = r->layout == KE_RECORDS_LINES ? next_line(r, err, errlen) : next_element(r, err, errlen);
  if (rc == 1) {
    *text = r->rec;
    *len = r->len;
    *number = r->number;
  }
  return rc;
}

void ke_records_close(ke_records *r) {
  if (!r) return;
  if (r->f) fclose(r->f);
  free(r->rec);
  free(r->path);
  free(r);
}

int ke_file_hash(const char *path, char *out, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
    return -1;
  }
  uint64_t h = 1469598103934665603ull;
  unsigned char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    for (size_t i = 0; i < n; i++) h = (h ^ buf[i]) * 1099511628211ull;
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    snprintf(err, errlen, "cannot read '%s'", path);
    return -1;
  }
  snprintf(out, 17, "%016llx", (unsigned long long)h);
  return 0;
}
