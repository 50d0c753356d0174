/* restore.h: rebuild a process from an image, in this process. */
#ifndef CKPT_RESTORE_H
#define CKPT_RESTORE_H

#include "image.h"

struct rst_input {
	struct img_reader r;
	struct image im;
	int from_stdin; /* the image came on fd 0 */
	int compressed; /* a decompressor process feeds r.fd */
};

/* Open path ("-" or NULL for stdin), start a decompressor if the stream
 * is compressed, and read every metadata record. */
int rst_open(const char *path, struct rst_input *in) __attribute__((warn_unused_result));

#define RST_PROGRESS 1

/* Check everything that can be checked, set up files, cwd and signals, and
 * jump into the restorer.  Returns (-1, err_set) only while the point of no
 * return is still ahead; after it, the program runs or the restorer exits
 * with CKPT_FAIL_RC. */
int rst_restore(struct rst_input *in, int flags) __attribute__((warn_unused_result));

#endif
