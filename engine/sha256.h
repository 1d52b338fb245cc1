/* sha256.h - SHA-256 (FIPS 180-4) of a buffer or a file, for provenance manifests.
 *
 * Ownership: callers own every buffer; nothing is allocated.
 * Errors: ke_sha256_file returns -1 with a message naming the file when it cannot be
 * opened or read, else 0. */
#ifndef KNOB_SHA256_H
#define KNOB_SHA256_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint32_t h[8];
  uint64_t bytes;
  unsigned char block[64];
  size_t used;
} ke_sha256;

void ke_sha256_init(ke_sha256 *s);
void ke_sha256_update(ke_sha256 *s, const void *data, size_t len);
/* The digest as 64 lowercase hex digits and a NUL. */
void ke_sha256_hex(ke_sha256 *s, char hex[65]);

int ke_sha256_file(const char *path, char hex[65], char *err, size_t errlen);

#endif
