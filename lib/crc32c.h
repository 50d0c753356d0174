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
