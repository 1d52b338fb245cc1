/* sse.c - see sse.h. */
#include "sse.h"

#include <stdlib.h>
#include <string.h>

void sse_init(sse_parser *p) { memset(p, 0, sizeof *p); }

void sse_free(sse_parser *p) {
  free(p->line);
  free(p->data);
  memset(p, 0, sizeof *p);
}

int sse_pending(const sse_parser *p) { return p->line_len > 0 || p->has_data; }

static int grow(char **buf, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  if (need > SSE_MAX_LINE + 1) return -1;
  size_t c = *cap ? *cap : 256;
  while (c < need) c *= 2;
  char *nb = realloc(*buf, c);
  if (!nb) return -1;
  *buf = nb;
  *cap = c;
  return 0;
}

/* Handles one complete line (without its terminator). */
static int process_line(sse_parser *p, sse_event_fn fn, void *ud) {
  const char *l = p->line;
  size_t n = p->line_len;
  p->line_len = 0;
  if (n == 0) { /* blank line: dispatch */
    if (!p->has_data) return 0;
    p->has_data = 0;
    size_t len = p->data_len;
    p->data_len = 0;
    if (len == 0) return 0; /* empty data: nothing to dispatch (WHATWG) */
    if (grow(&p->data, &p->data_cap, len + 1)) return -1;
    p->data[len] = '\0';
    return fn(ud, p->data, len);
  }
  if (l[0] == ':') return 0; /* comment */
  const char *colon = memchr(l, ':', n);
  size_t name_len = colon ? (size_t)(colon - l) : n;
  if (name_len != 4 || memcmp(l, "data", 4) != 0) return 0;
  const char *v = colon ? colon + 1 : l + n;
  if (v < l + n && *v == ' ') v++;
  size_t vlen = (size_t)(l + n - v);
  size_t need = p->data_len + (p->has_data ? 1 : 0) + vlen + 1;
  if (need > SSE_MAX_LINE + 1) {
    p->too_long = SSE_EVENT_TOO_LONG;
    return -1;
  }
  if (grow(&p->data, &p->data_cap, need)) return -1;
  if (p->has_data) p->data[p->data_len++] = '\n';
  memcpy(p->data + p->data_len, v, vlen);
  p->data_len += vlen;
  p->has_data = 1;
  return 0;
}

int sse_feed(sse_parser *p, const char *bytes, size_t n, sse_event_fn fn, void *ud) {
  size_t i = 0;
  if (p->last_cr && n > 0 && bytes[0] == '\n') i = 1;
  p->last_cr = 0;
  while (i < n) {
    /* find the next line terminator */
    size_t j = i;
    while (j < n && bytes[j] != '\n' && bytes[j] != '\r') j++;
    size_t seg = j - i;
    if (seg) {
      if (p->line_len + seg > SSE_MAX_LINE) {
        p->too_long = SSE_LINE_TOO_LONG;
        return -1;
      }
      if (grow(&p->line, &p->line_cap, p->line_len + seg + 1)) return -1;
      memcpy(p->line + p->line_len, bytes + i, seg);
      p->line_len += seg;
    }
    if (j == n) break; /* line continues in the next chunk */
    if (bytes[j] == '\r') {
      if (j + 1 < n) {
        if (bytes[j + 1] == '\n') j++;
      } else {
        p->last_cr = 1;
      }
    }
    i = j + 1;
    int rc = process_line(p, fn, ud);
    if (rc) return rc;
  }
  return 0;
}
