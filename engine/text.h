/* text.h - text from outside (a server's answer, a log) made safe for one line of a
 * message, a CSV field or a terminal.
 *
 * Ownership: the caller owns both buffers. Errors: none; the output is always
 * NUL-terminated (when outlen > 0) and never splits a UTF-8 character. */
#ifndef KNOB_TEXT_H
#define KNOB_TEXT_H
#include <stddef.h>

/* The length of the well-formed UTF-8 sequence at s (at most n bytes available), or 0
 * when the bytes there are not one (a stray continuation byte, an overlong or surrogate
 * encoding, a sequence cut short). */
size_t ke_utf8_sequence(const unsigned char *s, size_t n);

/* Copies n bytes of in to out as one line of valid UTF-8: control characters (C0 and
 * DEL) become spaces, bytes that are not well-formed UTF-8 become U+FFFD; stops before a
 * character that would not fit in outlen - 1 bytes. Returns the bytes written. */
size_t ke_text_line(const char *in, size_t n, char *out, size_t outlen);

#endif
