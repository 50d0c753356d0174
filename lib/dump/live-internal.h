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
/* What the frozen walk decided of the page at addr: from the pre-copy
 * (not in the image's page data), read now without a look at the pagemap
 * (it holds data), a hole, or nothing (not in an area: as any page); and
 * where the span of pages decided alike ends (ascending addresses are
 * fastest). */
enum { LIVE_SPAN_OTHER, LIVE_SPAN_KEPT, LIVE_SPAN_READ, LIVE_SPAN_HOLE };
uint64_t dump_live_span(struct live_dump *lv, uint64_t addr, int *kind);

#endif
