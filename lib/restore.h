/* restore.h: rebuild a process from an image, in this process. */
#ifndef CKPT_RESTORE_H
#define CKPT_RESTORE_H

#include "image.h"

#define RST_PROGRESS 1

/* Check everything that can be checked, set up files, cwd and signals, and
 * jump into the restorer.  Returns (-1, err_set) only while the point of no
 * return is still ahead; after it, the program runs or the restorer exits
 * with CKPT_FAIL_RC. */
int rst_restore(struct img_input *in, int flags) __attribute__((warn_unused_result));

#endif
