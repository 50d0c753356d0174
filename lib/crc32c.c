#include "crc32c.h"
#include "image.h"

static int hw;
static struct crc32c_lanes lanes;

/* Before main: no thread can race the first call. */
__attribute__((constructor)) static void crc_init(void)
{
	__builtin_cpu_init();
	hw = __builtin_cpu_supports("sse4.2");
	if (hw)
		crc32c_lanes_init(&lanes);
}

uint32_t img_crc(uint32_t crc, const void *buf, size_t len)
{
	return hw ? crc32c_hw3(&lanes, crc, buf, len) : crc32c_sw(crc, buf, len);
}
