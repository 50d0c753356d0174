/* Fuzz target: the image reader and ckpt-inspect's whole path, on any
 * bytes.  Built with libFuzzer by `make fuzz`; `make check` replays the
 * corpus through the same function (t/fuzz/replay.c).  Compressed input
 * is skipped: it would start a decompressor process per input. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "inspect/inspect.h"
#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	struct img_totals t = {0};
	struct img_input in;
	char path[64];
	int fd;

	if (size >= 6 && zio_detect(data, size) != ZIO_NONE)
		return 0;
	if (!sink)
		sink = fopen("/dev/null", "w");
	fd = memfd_create("image", 0);
	if (fd < 0 || write_all(fd, data, size)) {
		perror("fuzz: memfd");
		_exit(2);
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (img_open_one(path, &in) == 0) {
		if (img_scan_data(&in, &t) == 0) {
			inspect_text(sink, &in, &t);
			inspect_json(sink, &in, &t);
		}
		if (in.r.fd >= 0)
			close(in.r.fd);
	}
	img_input_free(&in);
	close(fd);
	return 0;
}
