/* crc32c.c: CRC-32C of any length, SSE4.2 when the CPU has it, and joining two CRCs. */
#include "base/crc32c.h"

static int hw;
static struct crc32c_lanes lanes;
/* zeros[k]: the effect on a CRC of 2^k more zero bytes (32x32 over GF(2)). */
static uint32_t zeros[64][32];

/* Before main: no thread can race the first call. */
__attribute__((constructor)) static void crc_init(void)
{
	__builtin_cpu_init();
	hw = __builtin_cpu_supports("sse4.2");
	if (hw)
		crc32c_lanes_init(&lanes);
	/* One zero byte through the bitwise loop, then squared. */
	for (int i = 0; i < 32; i++) {
		uint32_t v = 1u << i;
		for (int k = 0; k < 8; k++)
			v = (v >> 1) ^ (0x82F63B78u & -(v & 1));
		zeros[0][i] = v;
	}
	for (int k = 1; k < 64; k++)
		crc32c_gf2_square(zeros[k], zeros[k - 1]);
}

uint32_t img_crc(uint32_t crc, const void *buf, size_t len)
{
	return hw ? crc32c_hw3(&lanes, crc, buf, len) : crc32c_sw(crc, buf, len);
}

/* The CRC is affine in the data: the CRC of A then B is A's CRC carried
 * over len_b zero bytes, plus B's (the starting and final inversions of
 * the two cancel). */
uint32_t img_crc_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	for (int k = 0; len_b; k++, len_b >>= 1)
		if (len_b & 1)
			crc_a = crc32c_gf2_times(zeros[k], crc_a);
	return crc_a ^ crc_b;
}
