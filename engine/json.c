/* json.c - see json.h. A recursive-descent parser with a depth limit. */
#include "json.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KJ_MAX_DEPTH 64

struct kj_block {
  kj_block *next;
  size_t used, cap;
  _Alignas(max_align_t) unsigned char mem[];
};

static void *arena_alloc(kj_doc *doc, size_t n) {
  n = (n + 15u) & ~(size_t)15u;
  kj_block *b = doc->blocks;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > 4096 ? n : 4096;
    b = malloc(sizeof *b + cap);
    if (!b) return NULL;
    b->next = doc->blocks;
    b->used = 0;
    b->cap = cap;
    doc->blocks = b;
  }
  void *p = b->mem + b->used;
  b->used += n;
  return p;
}

void kj_doc_free(kj_doc *doc) {
  kj_block *b = doc->blocks;
  while (b) {
    kj_block *next = b->next;
    free(b);
    b = next;
  }
  doc->blocks = NULL;
}

/* A reset keeps one block, so a caller parsing many small documents (the replay
 * client: a response or a streamed chunk each) allocates nothing per parse; a block
 * grown for an unusually large document is not kept. */
#define KJ_KEEP_BLOCK_MAX 65536

void kj_doc_reset(kj_doc *doc) {
  kj_block *keep = doc->blocks;
  if (keep && keep->cap > KJ_KEEP_BLOCK_MAX) keep = NULL;
  kj_block *b = doc->blocks;
  while (b) {
    kj_block *next = b->next;
    if (b != keep) free(b);
    b = next;
  }
  if (keep) {
    keep->next = NULL;
    keep->used = 0;
  }
  doc->blocks = keep;
}

typedef struct {
  kj_doc *doc;
  const char *p, *start, *end;
  char *err;
  size_t errlen;
  int failed;
} parser;

static void fail(parser *ps, const char *what) {
  if (!ps->failed && ps->err && ps->errlen)
    snprintf(ps->err, ps->errlen, "%s at byte %zu", what, (size_t)(ps->p - ps->start));
  ps->failed = 1;
}

static void skip_ws(parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ps->p++;
}

static kj_value *new_value(parser *ps, kj_type t) {
  kj_value *v = arena_alloc(ps->doc, sizeof *v);
  if (!v) {
    fail(ps, "out of memory");
    return NULL;
  }
  memset(v, 0, sizeof *v);
  v->type = t;
  return v;
}

static int hex4(const char *s, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Bytes that end a plain run inside a string: the quote, the backslash and the control
 * characters JSON forbids unescaped. A table, because strings are most of what the replay
 * client parses per response. */
static const unsigned char string_special[256] = {
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  ['"'] = 1, ['\\'] = 1,
};

/* Parses a string at ps->p (on the opening quote); returns an arena copy. */
static const char *parse_string(parser *ps, size_t *out_len) {
  const char *s = ++ps->p; /* past the quote */
  /* the closing quote: the first one not escaped by an odd run of backslashes */
  const char *q = s;
  for (;;) {
    q = memchr(q, '"', (size_t)(ps->end - q));
    if (!q) {
      fail(ps, "unterminated string");
      return NULL;
    }
    size_t backslashes = 0;
    while (q - backslashes > s && q[-1 - (ptrdiff_t)backslashes] == '\\') backslashes++;
    if (backslashes % 2 == 0) break;
    q++;
  }
  /* unescaped output is never longer than the input */
  char *out = arena_alloc(ps->doc, (size_t)(q - s) + 1);
  if (!out) { fail(ps, "out of memory"); return NULL; }
  size_t n = 0;
  const char *p = s;
  while (p < q) {
    const char *run = p;
    while (p < q && !string_special[(unsigned char)*p]) p++;
    memcpy(out + n, run, (size_t)(p - run));
    n += (size_t)(p - run);
    if (p == q) break;
    unsigned char c = (unsigned char)*p;
    if (c < 0x20) { ps->p = p; fail(ps, "control character in string"); return NULL; }
    if (c != '\\') { out[n++] = (char)c; p++; continue; }
    p++;
    switch (*p) {
      case '"': out[n++] = '"'; p++; break;
      case '\\': out[n++] = '\\'; p++; break;
      case '/': out[n++] = '/'; p++; break;
      case 'b': out[n++] = '\b'; p++; break;
      case 'f': out[n++] = '\f'; p++; break;
      case 'n': out[n++] = '\n'; p++; break;
      case 'r': out[n++] = '\r'; p++; break;
      case 't': out[n++] = '\t'; p++; break;
      case 'u': {
        unsigned cp;
        if (q - p < 5 || hex4(p + 1, &cp)) { ps->p = p; fail(ps, "bad \\u escape"); return NULL; }
        p += 5;
        if (cp >= 0xD800 && cp <= 0xDBFF && q - p >= 6 && p[0] == '\\' && p[1] == 'u') {
          unsigned lo;
          if (!hex4(p + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
          }
        }
        n += put_utf8(out + n, cp);
        break;
      }
      default: ps->p = p; fail(ps, "bad escape"); return NULL;
    }
  }
  out[n] = '\0';
  ps->p = q + 1;
  *out_len = n;
  return out;
}

static kj_value *parse_value(parser *ps, int depth);

static kj_value *parse_container(parser *ps, int depth, int is_obj) {
  kj_value *v = new_value(ps, is_obj ? KJ_OBJ : KJ_ARR);
  if (!v) return NULL;
  char close = is_obj ? '}' : ']';
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == close) { ps->p++; return v; }
  kj_value **tail = &v->child;
  for (;;) {
    const char *key = NULL;
    if (is_obj) {
      skip_ws(ps);
      if (ps->p >= ps->end || *ps->p != '"') { fail(ps, "expected object key"); return NULL; }
      size_t klen;
      key = parse_string(ps, &klen);
      if (!key) return NULL;
      skip_ws(ps);
      if (ps->p >= ps->end || *ps->p != ':') { fail(ps, "expected ':'"); return NULL; }
      ps->p++;
    }
    kj_value *item = parse_value(ps, depth + 1);
    if (!item) return NULL;
    item->key = key;
    *tail = item;
    tail = &item->next;
    v->len++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
    if (ps->p < ps->end && *ps->p == close) { ps->p++; return v; }
    fail(ps, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    return NULL;
  }
}

static kj_value *parse_number(parser *ps) {
  const char *s = ps->p;
  const char *p = s;
  if (p < ps->end && *p == '-') p++;
  if (p >= ps->end || !(*p >= '0' && *p <= '9')) { fail(ps, "bad number"); return NULL; }
  while (p < ps->end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' ||
                         *p == '+' || *p == '-'))
    p++;
  size_t n = (size_t)(p - s);
  /* integers of up to 15 digits (token counts, timestamps) are exact in a double: no strtod */
  size_t sign = *s == '-';
  if (n - sign <= 15) {
    double d = 0;
    const char *c = s + sign;
    while (c < p && *c >= '0' && *c <= '9') d = d * 10 + (*c++ - '0');
    if (c == p) {
      kj_value *v = new_value(ps, KJ_NUM);
      if (!v) return NULL;
      v->num = sign ? -d : d;
      ps->p = p;
      return v;
    }
  }
  char tmp[64];
  if (n >= sizeof tmp) { fail(ps, "number too long"); return NULL; }
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  char *endp;
  errno = 0;
  double d = strtod(tmp, &endp);
  if (endp != tmp + n) { fail(ps, "bad number"); return NULL; }
  kj_value *v = new_value(ps, KJ_NUM);
  if (!v) return NULL;
  v->num = d;
  ps->p = p;
  return v;
}

static int match_word(parser *ps, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, w, n) == 0) {
    ps->p += n;
    return 1;
  }
  return 0;
}

static kj_value *parse_value(parser *ps, int depth) {
  if (depth > KJ_MAX_DEPTH) { fail(ps, "nesting too deep"); return NULL; }
  skip_ws(ps);
  if (ps->p >= ps->end) { fail(ps, "unexpected end of input"); return NULL; }
  char c = *ps->p;
  if (c == '{') return parse_container(ps, depth, 1);
  if (c == '[') return parse_container(ps, depth, 0);
  if (c == '"') {
    kj_value *v = new_value(ps, KJ_STR);
    if (!v) return NULL;
    v->str = parse_string(ps, &v->len);
    return v->str ? v : NULL;
  }
  if (c == '-' || (c >= '0' && c <= '9')) return parse_number(ps);
  if (match_word(ps, "true")) { kj_value *v = new_value(ps, KJ_BOOL); if (v) v->boolean = 1; return v; }
  if (match_word(ps, "false")) return new_value(ps, KJ_BOOL);
  if (match_word(ps, "null")) return new_value(ps, KJ_NULL);
  fail(ps, "unexpected character");
  return NULL;
}

kj_value *kj_parse(kj_doc *doc, const char *text, size_t len, char *err, size_t errlen) {
  parser ps = {doc, text, text, text + len, err, errlen, 0};
  kj_value *v = parse_value(&ps, 0);
  if (!v) return NULL;
  skip_ws(&ps);
  if (ps.p != ps.end) {
    fail(&ps, "trailing characters");
    return NULL;
  }
  return v;
}

const kj_value *kj_get(const kj_value *obj, const char *key) {
  if (!obj || obj->type != KJ_OBJ) return NULL;
  for (const kj_value *c = obj->child; c; c = c->next)
    if (strcmp(c->key, key) == 0) return c;
  return NULL;
}

int kbuf_append(kbuf *b, const void *data, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
  }
  if (n) memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int kbuf_puts(kbuf *b, const char *s) { return kbuf_append(b, s, strlen(s)); }

int kbuf_printf(kbuf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return -1;
  if ((size_t)n < sizeof tmp) return kbuf_append(b, tmp, (size_t)n);
  char *big = malloc((size_t)n + 1);
  if (!big) return -1;
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  int rc = kbuf_append(b, big, (size_t)n);
  free(big);
  return rc;
}

int kbuf_json_string(kbuf *b, const char *s, size_t n) {
  if (kbuf_append(b, "\"", 1)) return -1;
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if (kbuf_append(b, s + run, i - run)) return -1;
    char esc[8];
    switch (c) {
      case '"': strcpy(esc, "\\\""); break;
      case '\\': strcpy(esc, "\\\\"); break;
      case '\n': strcpy(esc, "\\n"); break;
      case '\r': strcpy(esc, "\\r"); break;
      case '\t': strcpy(esc, "\\t"); break;
      default: snprintf(esc, sizeof esc, "\\u%04x", c); break;
    }
    if (kbuf_puts(b, esc)) return -1;
    run = i + 1;
  }
  if (kbuf_append(b, s + run, n - run)) return -1;
  return kbuf_append(b, "\"", 1);
}

void kbuf_free(kbuf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
