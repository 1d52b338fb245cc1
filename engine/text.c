/* text.c - see text.h. */
#include "text.h"

#include <string.h>

size_t ke_utf8_sequence(const unsigned char *s, size_t n) {
  if (n == 0) return 0;
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
  if (len == 0 || n < len) return 0;
  /* the second byte's range excludes overlong forms, surrogates and code points past U+10FFFF */
  unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
  unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return len;
}

size_t ke_text_line(const char *in, size_t n, char *out, size_t outlen) {
  static const char replacement[] = "\xEF\xBF\xBD";
  const unsigned char *s = (const unsigned char *)in;
  size_t at = 0;
  if (outlen == 0) return 0;
  for (size_t i = 0; i < n;) {
    size_t len = ke_utf8_sequence(s + i, n - i);
    const char *from = len ? in + i : replacement;
    size_t take = len ? len : 3;
    if (at + take + 1 > outlen) break;
    if (len == 1 && (s[i] < 0x20 || s[i] == 0x7F)) out[at] = ' ';
    else memcpy(out + at, from, take);
    at += take;
    i += len ? len : 1;
  }
  out[at] = '\0';
  return at;
}
