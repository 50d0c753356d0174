/* sha256.h: SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104), for the
 * coordinator's challenge-response: a shared secret proves itself without
 * being sent.  Small and slow enough for a few lines; not for images. */
#ifndef CKPT_SHA256_H
#define CKPT_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

struct sha256 {
	uint32_t h[8];
	uint64_t len; /* bytes hashed so far */
	uint8_t buf[64];
	size_t nbuf;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_LEN]);
/* HMAC-SHA-256 of the concatenation of the n parts under key. */
void hmac_sha256(const void *key, size_t keylen, const void *const *part, const size_t *partlen,
		 int n, uint8_t out[SHA256_LEN]);

#endif
