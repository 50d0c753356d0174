/* live-internal.h: restoring a live stream (live.c), for restore.c. */
#ifndef CKPT_LIVE_INTERNAL_H
#define CKPT_LIVE_INTERNAL_H

#include <stdint.h>
#include <stddef.h>

#include "image/image.h"
#include "restore/restorer/restorer.h"

/* Room rst_live_plan takes in the restorer's data. */
uint64_t rst_live_len(const struct img_input *in);
/* The restorer's moves of the staged pre-copy into place and the staging
 * memory it drops then, at base + *off (advanced); staging memory where
 * the program will have a region moved aside first.  -1 (err_set) if the
 * image's LIVE record asks for pages the stream did not pre-copy, or
 * puts them elsewhere than in private anonymous memory. */
int rst_live_plan(struct img_input *in, const struct rst_map *maps, size_t nmaps,
		  struct rst_args *a, unsigned char *base, uint64_t *off)
    __attribute__((warn_unused_result));
/* Whether [start, end) of ours is staging memory (kept past the point of
 * no return). */
int rst_live_staged(const struct img_input *in, uint64_t start, uint64_t end);

#endif
