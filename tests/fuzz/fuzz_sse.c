/* libFuzzer target: the SSE parser and the JSON reader behind it.
 *
 * The input is a stream; the first byte picks where it is split. Invariant checked:
 * the events are the same whether the stream arrives whole, split in two, or byte by
 * byte (a difference aborts). Each event's data also goes through the JSON reader. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "sse.h"

typedef struct { kbuf all; int count; } events;

static int collect(void *ud, const char *data, size_t len) {
  events *e = ud;
  kbuf_append(&e->all, data, len);
  kbuf_append(&e->all, "\x1e", 1); /* separator */
  e->count++;
  kj_doc doc = {0};
  char err[96];
  kj_parse(&doc, data, len, err, sizeof err);
  kj_doc_free(&doc);
  return 0;
}

static void run(const uint8_t *d, size_t n, const size_t *cuts, size_t ncuts, events *out) {
  sse_parser p;
  sse_init(&p);
  size_t at = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t end = i < ncuts ? cuts[i] : n;
    if (end < at) end = at;
    if (end > n) end = n;
    if (sse_feed(&p, (const char *)d + at, end - at, collect, out) == -1) break;
    at = end;
  }
  sse_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t split = data[0] % (size);
  data++;
  size--;
  events whole = {{0}, 0}, two = {{0}, 0}, bytes = {{0}, 0};
  run(data, size, NULL, 0, &whole);
  size_t cut = split < size ? split : size;
  run(data, size, &cut, 1, &two);
  size_t *each = malloc((size + 1) * sizeof *each);
  for (size_t i = 0; i < size; i++) each[i] = i + 1;
  run(data, size, each, size, &bytes);
  free(each);
  if (whole.count != two.count || whole.count != bytes.count || whole.all.len != two.all.len ||
      whole.all.len != bytes.all.len ||
      (whole.all.len && (memcmp(whole.all.data, two.all.data, whole.all.len) ||
                         memcmp(whole.all.data, bytes.all.data, whole.all.len))))
    abort(); /* the parser depends on where the stream was split */
  kbuf_free(&whole.all);
  kbuf_free(&two.all);
  kbuf_free(&bytes.all);
  return 0;
}
