/* sha256.h: SHA-256 (FIPS 180-4), for journal content hashes and derived
 * idempotency keys. Small and dependency-free: libcurl does not export one
 * and OpenSSL is not worth linking for this.
 *
 * Ownership: struct lc_sha256 is caller-owned (stack); nothing allocates. */
#ifndef LC_SHA256_H
#define LC_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct lc_sha256 {
  uint32_t h[8];
  uint64_t len; /* bytes hashed so far */
  unsigned char block[64];
  size_t used; /* bytes waiting in block */
};

void lc_sha256_init(struct lc_sha256 *s);
void lc_sha256_update(struct lc_sha256 *s, const void *data, size_t n);
/* Writes the 32-byte digest; s must be re-initialised before reuse. */
void lc_sha256_final(struct lc_sha256 *s, unsigned char out[32]);
/* One shot: lower-case hex digest, NUL-terminated (65 bytes). */
void lc_sha256_hex(const void *data, size_t n, char out[65]);
/* Hex of a finished digest. */
void lc_sha256_to_hex(const unsigned char d[32], char out[65]);
/* The x86 SHA extensions are used when the CPU has them. on=0 turns them
 * off, on=1 back on where present (tests compare both); returns whether
 * they were in use. Not thread-safe: call before hashing starts. */
int lc_sha256_set_hw(int on);

#endif
