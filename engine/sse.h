/* sse.h - incremental Server-Sent Events parser (the text/event-stream format).
 *
 * Bytes may arrive split anywhere (inside a field name, between \r and \n). Each
 * complete event (terminated by a blank line) with at least one `data:` field is
 * passed to the callback with its data lines joined by '\n', unless that data is
 * empty (`data:` or `data: ` alone): as in the WHATWG event-stream rules, an event
 * with an empty data buffer is not dispatched. `event:`, `id:`, `retry:` and comment
 * lines are accepted and ignored.
 * Ownership: the parser owns its buffers; sse_free releases them. The data pointer
 * given to the callback is valid only during the call.
 * Errors: sse_feed returns 0, the callback's non-zero value (parsing stops), or -1
 * when memory runs out or a line or an event's data exceeds SSE_MAX_LINE bytes
 * (too_long then says which; it stays 0 when memory ran out). */
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
  int too_long; /* why sse_feed returned -1: SSE_LINE_TOO_LONG, SSE_EVENT_TOO_LONG, 0 */
} sse_parser;

enum { SSE_LINE_TOO_LONG = 1, SSE_EVENT_TOO_LONG = 2 };

void sse_init(sse_parser *p);
int sse_feed(sse_parser *p, const char *bytes, size_t n, sse_event_fn fn, void *ud);
/* 1 when bytes of an unfinished event or line are buffered (stream cut short). */
int sse_pending(const sse_parser *p);
void sse_free(sse_parser *p);

#endif
