/* sse.h - incremental Server-Sent Events parser (the text/event-stream format).
 *
 * Bytes may arrive split anywhere (inside a field name, between \r and \n). Each
 * complete event (terminated by a blank line) with at least one `data:` field is
 * passed to the callback with its data lines joined by '\n'. `event:`, `id:`,
 * `retry:` and comment lines are accepted and ignored.
 * Ownership: the parser owns its buffers; sse_free releases them. The data pointer
 * given to the callback is valid only during the call.
 * Errors: sse_feed returns 0, the callback's non-zero value (parsing stops), or -1
 * when memory runs out or a line exceeds SSE_MAX_LINE. */
#ifndef KNOB_SSE_H
#define KNOB_SSE_H
#include <stddef.h>

#define SSE_MAX_LINE (16u << 20)

typedef int (*sse_event_fn)(void *ud, const char *data, size_t len);

typedef struct {
  char *line;  /* the current, incomplete line */
  size_t line_len, line_cap;
  char *data;  /* data of the current event */
  size_t data_len, data_cap;
  int has_data;
  int last_cr; /* previous chunk ended in '\r': a following '\n' belongs to it */
} sse_parser;

void sse_init(sse_parser *p);
int sse_feed(sse_parser *p, const char *bytes, size_t n, sse_event_fn fn, void *ud);
/* 1 when bytes of an unfinished event or line are buffered (stream cut short). */
int sse_pending(const sse_parser *p);
void sse_free(sse_parser *p);

#endif
