/* live-internal.h: ckpt-dump --live's frozen part (live.c), for dump.c. */
#ifndef CKPT_DUMP_LIVE_INTERNAL_H
#define CKPT_DUMP_LIVE_INTERNAL_H

#include <stdint.h>

#include "dump/dump.h"
#include "image/image.h"

/* Before fd_capture: im->live, naming the tracker's fd (not the
 * program's, not in the image). */
int dump_live_begin(struct live_dump *lv, struct image *im) __attribute__((warn_unused_result));
/* Frozen, captured: which pages of im the pre-copy gives (im->live's
 * runs), and the tracker closed in the program. */
int dump_live_final(struct live_dump *lv, uint64_t gadget, struct image *im)
	__attribute__((warn_unused_result));
/* Whether the page at addr comes from the pre-copy (ascending addresses
 * are fastest). */
int dump_live_kept(struct live_dump *lv, uint64_t addr);
/* Where the span of pages at addr that all come from the pre-copy (*kept
 * 1) or none does (*kept 0) ends. */
uint64_t dump_live_span(struct live_dump *lv, uint64_t addr, int *kept);

#endif
