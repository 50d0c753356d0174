/* inspect.h: read a whole image and describe it. */
#ifndef CKPT_INSPECT_H
#define CKPT_INSPECT_H

#include <stdio.h>

#include "image/image.h"

/* What a pass over the page data found. */
struct img_totals {
	uint64_t records, pages, bytes;
};

/* Read the page data of an opened image to its END record, counting the
 * pages stored per region and checking every checksum. */
int img_scan_data(struct img_input *in, struct img_totals *t) __attribute__((warn_unused_result));
/* Read and verify the rest of the stream, every record and the END
 * totals, then go back to where it was: a file by seeking, any other
 * stream by keeping a copy of what was read (a memfd) that the restore
 * then reads instead.  -1 (err_set) if any record is damaged. */
int img_verify_rest(struct img_input *in) __attribute__((warn_unused_result));
void inspect_text(FILE *f, const struct img_input *in, const struct img_totals *t);
void inspect_json(FILE *f, const struct img_input *in, const struct img_totals *t);
/* A process's attributes that differ from a fresh process's (attrs.c):
 * "attr:" lines, or the "attrs" member of the JSON object; nothing for an
 * image without them. */
void inspect_attrs_text(FILE *f, const struct image *im);
void inspect_attrs_json(FILE *f, const struct image *im);
/* A generation directory of a coordinated computation (gen.c): each
 * member's image (ckpt_NAME_ID.ckpt...) with its processes, and the
 * connections between members its images' peer records name, paired by
 * their tokens; text or one JSON object.  -1 (err_set) if the directory
 * holds no member's image or one cannot be read. */
int inspect_generation(FILE *f, const char *dir, int json) __attribute__((warn_unused_result));

#endif
