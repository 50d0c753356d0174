#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "image.h"
#include "util.h"
#include "zio.h"

int img_open(const char *path, struct img_input *in)
{
	unsigned char prefix[sizeof(struct img_header)];
	ssize_t n;
	int fd;

	memset(in, 0, sizeof(*in));
	if (!path || !strcmp(path, "-")) {
		fd = 0;
		in->from_stdin = 1;
		path = "standard input";
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			err_sys("cannot open %s", path);
			return -1;
		}
	}
	/* Enough to tell a compressed stream from an image. */
	n = read_full(fd, prefix, 8);
	if (n < 0) {
		err_sys("cannot read %s", path);
		return -1;
	}
	if (n == 0) {
		err_set("%s: empty, not an image", path);
		return -1;
	}
	if (zio_detect(prefix, n) != ZIO_NONE) {
		int pfd;
		if (zio_spawn_decompressor(fd, prefix, n, &pfd))
			return -1;
		if (fd != 0)
			close(fd);
		fd = pfd;
		in->compressed = 1;
		n = 0;
	} else if (n < 8 || memcmp(prefix, IMG_MAGIC, 8)) {
		err_set("%s: not a ckpt image (bad magic)", path);
		return -1;
	}
	in->r.fd = fd;
	if (img_read_meta(&in->r, &in->im, prefix, n)) {
		char why[1024];
		snprintf(why, sizeof(why), "%s", err_get());
		err_set("%s: %s", path, why);
		return -1;
	}
	return 0;
}
