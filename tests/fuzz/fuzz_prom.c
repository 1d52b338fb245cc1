/* libFuzzer target: the Prometheus text-format parser (prom.h).
 *
 * Invariants checked: every sample's name and labels are NUL-terminated within what
 * the parser said; a refused document names a line that exists; and the canonical
 * labels it gives parse back to themselves (a sample line rebuilt from a sample reads
 * as the same sample). A difference aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "prom.h"

static int rebuild(void *ud, const ke_prom_sample *s) {
  kbuf *b = ud;
  if (strlen(s->name) == 0) abort();
  kbuf_printf(b, "%s{%s} 1\n", s->name, s->labels);
  return 0;
}

static int collect(void *ud, const ke_prom_sample *s) {
  kbuf *b = ud;
  kbuf_printf(b, "%s{%s}\n", s->name, s->labels);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  kbuf lines = {0}, first = {0}, second = {0};
  char err[128];
  if (ke_prom_parse((const char *)data, size, rebuild, &lines, err, sizeof err) == 0) {
    ke_prom_parse((const char *)data, size, collect, &first, err, sizeof err);
    if (ke_prom_parse(lines.data ? lines.data : "", lines.len, collect, &second, err, sizeof err) != 0) abort();
    if (first.len != second.len || (first.len && memcmp(first.data, second.data, first.len) != 0)) abort();
  } else {
    long line = 0;
    if (sscanf(err, "line %ld:", &line) != 1 || line < 1) abort();
    long lines_in = 1;
    for (size_t i = 0; i < size; i++) lines_in += data[i] == '\n';
    if (line > lines_in) abort();
  }
  kbuf_free(&lines);
  kbuf_free(&first);
  kbuf_free(&second);
  return 0;
}
