/* json.h - a small JSON reader (DOM in an arena) and a growable string buffer.
 *
 * Used where Lua is not at hand: the replay client reads streamed chunks and the
 * simulated server reads request bodies. Ownership: every value returned by kj_parse
 * lives in the kj_doc arena and is freed by kj_doc_free (or kj_doc_reset, which keeps
 * one block for the next parse); strings are NUL-terminated
 * copies (unescaped to UTF-8), so they may hold embedded NULs only via their `len`.
 * Errors: kj_parse returns NULL and writes a message with the byte offset to err.
 * kbuf functions return 0, or -1 when memory runs out (the buffer is left valid). */
#ifndef KNOB_JSON_H
#define KNOB_JSON_H
#include <stddef.h>

typedef enum { KJ_NULL, KJ_BOOL, KJ_NUM, KJ_STR, KJ_ARR, KJ_OBJ } kj_type;

typedef struct kj_value {
  kj_type type;
  int boolean;
  double num;
  const char *str; /* KJ_STR */
  size_t len;      /* KJ_STR: bytes; KJ_ARR/KJ_OBJ: member count */
  const char *key; /* set when the value is an object member */
  struct kj_value *child, *next;
} kj_value;

typedef struct kj_block kj_block;
typedef struct { kj_block *blocks; } kj_doc;

kj_value *kj_parse(kj_doc *doc, const char *text, size_t len, char *err, size_t errlen);
void kj_doc_free(kj_doc *doc);
void kj_doc_reset(kj_doc *doc);
const kj_value *kj_get(const kj_value *obj, const char *key);

typedef struct { char *data; size_t len, cap; } kbuf;
int kbuf_append(kbuf *b, const void *data, size_t n);
int kbuf_puts(kbuf *b, const char *s);
int kbuf_printf(kbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int kbuf_json_string(kbuf *b, const char *s, size_t n); /* appends a quoted, escaped string */
void kbuf_free(kbuf *b);

#endif
