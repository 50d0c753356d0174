/* crc32c.h: CRC-32C (Castagnoli), the checksum of every image byte.
 *
 * Header-only so that the freestanding restorer, which cannot link libckpt,
 * computes exactly the same function.  The SSE4.2 crc32 instruction does
 * 8 bytes per instruction; ckpt-remap refuses to run the restorer on a CPU
 * without it, and lib callers fall back to the bitwise loop. */
#ifndef CKPT_CRC32C_H
#define CKPT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* libckpt's CRC-32C (crc32c.c): the hardware's when it has SSE4.2. */
uint32_t img_crc(uint32_t crc, const void *buf, size_t len);
/* img_crc(0, A B) from img_crc(0, A) and img_crc(0, B), B len_b bytes long. */
uint32_t img_crc_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

__attribute__((target("sse4.2"))) static inline uint32_t crc32c_hw(uint32_t crc, const void *buf,
								    size_t len)
{
	const unsigned char *p = buf;
	uint64_t c = ~crc;

	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		c = __builtin_ia32_crc32di(c, *(const uint64_t *)p);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

/* Three lanes at once.  One crc32 instruction waits for the one before
 * (3 cycles of latency, one per cycle of throughput): three independent
 * chains over three blocks of CRC32C_LANE bytes keep the unit busy, and
 * the CRC's linearity joins them: over A B C, from state s,
 *   crc(s, ABC) = shift(crc(s, A), 2L) ^ shift(crc(0, B), L) ^ crc(0, C)
 * where shift(v, n) is v followed by n zero bytes, a 32x32 matrix over
 * GF(2) (as zlib's crc32_combine does), made once by crc32c_lanes_init. */
#define CRC32C_LANE 8192

struct crc32c_lanes {
	uint32_t by1[32], by2[32]; /* shift by CRC32C_LANE and by twice that */
};

static inline uint32_t crc32c_gf2_times(const uint32_t *mat, uint32_t v)
{
	uint32_t sum = 0;

	for (int i = 0; v; i++, v >>= 1)
		if (v & 1)
			sum ^= mat[i];
	return sum;
}

static inline void crc32c_gf2_square(uint32_t *out, const uint32_t *in)
{
	for (int i = 0; i < 32; i++)
		out[i] = crc32c_gf2_times(in, in[i]);
}

__attribute__((target("sse4.2"))) static inline void crc32c_lanes_init(struct crc32c_lanes *l)
{
	uint32_t m[32], t[32];

	/* One zero byte, then squared up to CRC32C_LANE bytes. */
	for (int i = 0; i < 32; i++)
		m[i] = __builtin_ia32_crc32qi(1u << i, 0);
	for (unsigned n = 1; n < CRC32C_LANE; n *= 2) {
		crc32c_gf2_square(t, m);
		for (int i = 0; i < 32; i++)
			m[i] = t[i];
	}
	for (int i = 0; i < 32; i++)
		l->by1[i] = m[i];
	crc32c_gf2_square(l->by2, m);
}

__attribute__((target("sse4.2"))) static inline uint32_t
crc32c_hw3(const struct crc32c_lanes *l, uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t a = ~crc;

	while (len && ((uintptr_t)p & 7)) {
		a = __builtin_ia32_crc32qi((uint32_t)a, *p++);
		len--;
	}
	while (len >= 3 * CRC32C_LANE) {
		const uint64_t *x = (const uint64_t *)p, *y = x + CRC32C_LANE / 8,
			       *z = y + CRC32C_LANE / 8;
		uint64_t b = 0, c = 0;

		for (size_t i = 0; i < CRC32C_LANE / 8; i++) {
			a = __builtin_ia32_crc32di(a, x[i]);
			b = __builtin_ia32_crc32di(b, y[i]);
			c = __builtin_ia32_crc32di(c, z[i]);
		}
		a = crc32c_gf2_times(l->by2, (uint32_t)a) ^ crc32c_gf2_times(l->by1, (uint32_t)b) ^
		    (uint32_t)c;
		p += 3 * CRC32C_LANE;
		len -= 3 * CRC32C_LANE;
	}
	return crc32c_hw(~(uint32_t)a, p, len);
}

static inline uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t c = ~crc;

	while (len--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & -(c & 1));
	}
	return ~c;
}

#endif
