/* Fuzz target: ckpt-inspect's whole path on any bytes, compressed streams
 * included.  ckpt-inspect hands a gzip, xz or zstd image to a decompressor
 * process (zio_spawn_decompressor); here the same zio_decompress runs in
 * this process, so that the fuzzer sees its coverage, onto a memory file
 * that cannot grow past DECOMPRESSED_MAX (a small stream may claim
 * gigabytes).  What it decoded, even from a stream that then failed, goes
 * on as the decompressor's pipe would carry it: the image reader, the
 * page-data scan with every checksum, and all three outputs (--verify's
 * totals, the text and --json).  Built with libFuzzer by `make fuzz`;
 * `make check` replays the corpus through it (t/fuzz/replay.c). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "inspect/inspect.h"
#include "io/io.h"

#define DECOMPRESSED_MAX (16 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A memory file holding data; -1 on failure. */
static int memfile(const uint8_t *data, size_t size)
{
	int fd = memfd_create("image", MFD_CLOEXEC);

	if (fd < 0 || write_all(fd, data, size) || lseek(fd, 0, SEEK_SET) != 0) {
		perror("fuzz: memfd");
		_exit(2);
	}
	return fd;
}

/* What zio_decompress makes of the stream in fd, in a new memory file. */
static int decompressed(int fd)
{
	int out = memfd_create("decompressed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	off_t len;

	/* Room for DECOMPRESSED_MAX bytes and not one more: past it, a write
	 * fails (EPERM) as a full disk would. */
	if (out < 0 || ftruncate(out, DECOMPRESSED_MAX) || fcntl(out, F_ADD_SEALS, F_SEAL_GROW)) {
		perror("fuzz: memfd for the decompressed stream");
		_exit(2);
	}
	(void)!zio_decompress(fd, out, NULL, 0);
	len = lseek(out, 0, SEEK_CUR);
	if (len < 0 || ftruncate(out, len) || lseek(out, 0, SEEK_SET) != 0) {
		perror("fuzz: decompressed stream");
		_exit(2);
	}
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	unsigned char head[ZIO_MAGIC_MAX];
	struct img_totals t = {0};
	struct img_input in;
	char path[64];
	ssize_t n;
	int fd;

	if (!sink)
		sink = fopen("/dev/null", "w");
	fd = memfile(data, size);
	if (zio_detect(data, size) != ZIO_NONE) {
		int plain = decompressed(fd);

		close(fd);
		fd = plain;
		/* A stream compressed twice would need a decompressor
		 * process of its own in img_open: its first layer is
		 * covered above already. */
		n = pread(fd, head, sizeof(head), 0);
		if (n > 0 && zio_detect(head, n) != ZIO_NONE) {
			close(fd);
			return 0;
		}
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (img_open_one(path, &in) == 0) {
		if (img_scan_data(&in, &t) == 0) {
			fprintf(sink,
				"%s: %llu records, %llu pages, %llu bytes, every checksum ok\n",
				path, (unsigned long long)t.records, (unsigned long long)t.pages,
				(unsigned long long)t.bytes);
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
