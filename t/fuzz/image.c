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

#include "err.h"
#include "inspect.h"
#include "util.h"
#include "zio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* img_open leaves the descriptor it opened for path open when it fails
 * early (empty input, bad magic; lib/imgopen.c): without this, a fuzzer
 * runs out of descriptors after a thousand such inputs and every later
 * input fails to open, testing nothing.  probe is the lowest free
 * descriptor before the call, the one img_open got; it is closed if it is
 * still our file. */
static void close_leaked(int probe, int fd)
{
	struct stat a, b;

	if (probe != fd && fstat(probe, &a) == 0 && fstat(fd, &b) == 0 && a.st_ino == b.st_ino &&
	    a.st_dev == b.st_dev)
		close(probe);
}

/* The descriptor the next open will get. */
static int lowest_free_fd(void)
{
	int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (probe >= 0)
		close(probe);
	return probe;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	struct img_totals t = {0};
	struct img_input in;
	char path[64];
	int fd, probe;

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
	probe = lowest_free_fd();
	if (img_open(path, &in) == 0) {
		if (img_scan_data(&in, &t) == 0) {
			inspect_text(sink, &in, &t);
			inspect_json(sink, &in, &t);
		}
		if (in.r.fd >= 0)
			close(in.r.fd);
	} else {
		close_leaked(probe, fd);
	}
	image_free(&in.im);
	close(fd);
	return 0;
}
