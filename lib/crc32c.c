#include "crc32c.h"
#include "image.h"

uint32_t img_crc(uint32_t crc, const void *buf, size_t len)
{
	static int hw = -1;

	if (hw < 0) {
		__builtin_cpu_init();
		hw = __builtin_cpu_supports("sse4.2");
	}
	return hw ? crc32c_hw(crc, buf, len) : crc32c_sw(crc, buf, len);
}
