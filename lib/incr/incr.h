/* incr.h: incremental images (see ckpt-image(5), PARENT, HASHES, REUSE).
 *
 * An incremental image is an ordinary image whose metadata holds a PARENT
 * record naming the image it was dumped against, and whose page data
 * leaves out the pages that have not changed since: REUSE records list
 * them, and the parent's data is taken for them.  HASHES records hold a
 * 128-bit keyed hash of every page the image gives the process (stored or
 * taken from the parent), so that the next dump compares against them
 * without reading any page data.
 *
 * Restoring: img_open sees the PARENT record and starts a merging process
 * (incr_attach) that reads the rest of the image and its parents (each
 * opened with img_open in turn, so a chain is a chain of such processes)
 * and writes the ordinary page data of one image into a pipe, as a
 * decompressor does: the restorer never knows. */
#ifndef CKPT_INCR_H
#define CKPT_INCR_H

#include <stdint.h>
#include <stdio.h>

#include "image/image.h"


/* The page hash: keyed NH (UMAC's hash) twice, see incr.c. */
#define INCR_KEY_WORDS (INCR_PAGE / 8 + 4)
struct incr_key {
	uint64_t k[INCR_KEY_WORDS];
};
void incr_key_expand(struct incr_key *k, const uint64_t seed[2]);
void incr_hash_page(const struct incr_key *k, const void *page, uint64_t out[2]);

/* CRC-32C of the image's header and the fixed parts of its PROC, THREAD
 * and REGION records: what a child checks its parent by. */
uint32_t incr_identity(const struct image *im);


/* Check a HASHES or REUSE payload of process pid and add it to l (NULL:
 * check only); *end is where the last run of its kind ended. */
int incr_read_list(struct run_list *l, uint32_t type, const void *buf, uint64_t len, int32_t pid,
		   uint64_t *end) __attribute__((warn_unused_result));
/* qsort's order of things that start with their address (a uint64_t):
 * runs, page hashes, addresses. */
int incr_by_addr(const void *a, const void *b);
/* After incr_read_list: every run of the record lies in a private region
 * of im (a page stored or taken from the parent is one the restorer may
 * fill). */
int incr_check_runs(const struct image *im, uint32_t type, const void *buf)
    __attribute__((warn_unused_result));

/* The END record (rec, its payload buf) after in's page data: check the
 * stream's counts against it, then img_input_end. */
int incr_read_end(struct img_input *in, const struct img_rec *rec, const void *buf)
    __attribute__((warn_unused_result));

/* ---- ckpt-dump --parent --------------------------------------------- */
struct incr_dump;
/* Open the parent image and start reading its hashes (or hashing its
 * pages, for a full image) on a thread (incr_dump_wait).  out, if not
 * NULL, is the file the image will replace: it must not be the parent or
 * an image of its chain. */
int incr_dump_open(const char *parent, const char *out, struct incr_dump **d)
    __attribute__((warn_unused_result));
/* incr_dump_open reads the parent's hashes on a thread of its own: wait
 * for it (0, or -1 with its error).  Before the process is frozen, so
 * that a large parent is not hashed while it waits; incr_dump_begin and
 * incr_dump_free wait too. */
int incr_dump_wait(struct incr_dump *d) __attribute__((warn_unused_result));
/* Name the parent in im (its PARENT record). */
int incr_dump_begin(struct incr_dump *d, struct image *im) __attribute__((warn_unused_result));
/* A non-zero page the dump is about to store: 1 if the parent has the same
 * page at addr (leave it out), 0 to store it, -1 on failure. */
int incr_dump_page(struct incr_dump *d, uint64_t addr, const void *page)
    __attribute__((warn_unused_result));
/* Whether the parent has a page at addr (its hash). */
int incr_dump_parent_has(struct incr_dump *d, uint64_t addr);
/* The pages of [start, end) the write tracker says are unwritten since
 * the parent's dump: those the parent has are left out, their hashes
 * taken from it (the others held no data then, nor now).  Ascending from
 * one call to the next; one thread at a time, which may run beside the
 * one of incr_dump_page (each keeps lists of its own and only reads the
 * parent's).  0, or -1 on failure. */
int incr_dump_same(struct incr_dump *d, uint64_t start, uint64_t end)
    __attribute__((warn_unused_result));
/* The fd the parent's dump left its write tracker at (TRACK), or -1. */
int incr_dump_track_fd(const struct incr_dump *d);
/* The pages the parent's write tracker found written (its TRACK record),
 * what a dump against it will likely read again; 0 if it had none. */
uint64_t incr_dump_expect(const struct incr_dump *d);
/* After the page data: the HASHES and REUSE records, gathered in
 * scratch (len bytes the dump has done with, touched already) where it
 * is large enough, else in memory of their own. */
int incr_dump_end(struct incr_dump *d, struct img_writer *w, int32_t pid, void *scratch, size_t len)
    __attribute__((warn_unused_result));
/* After incr_dump_end: fn(arg, start, end) for each run of at least min
 * pages this dump stored (not left out), ascending; its -1 stops it. */
int incr_dump_stored(const struct incr_dump *d, uint64_t min,
		     int (*fn)(void *arg, uint64_t start, uint64_t end), void *arg);
/* Pages stored and left out so far. */
void incr_dump_counts(const struct incr_dump *d, uint64_t *stored, uint64_t *reused);
void incr_dump_free(struct incr_dump *d);

/* ---- reading ---------------------------------------------------------- */
/* img_open's: the image in has a PARENT record; replace its stream after
 * DATA by a merging process's, which gives the whole page data.  The
 * chain is checked first: a missing or replaced parent fails here. */
int incr_attach(struct img_input *in, const char *path) __attribute__((warn_unused_result));
/* Whether file is one of the images of the chain above in (read from
 * path): an image written over it would break the chain. */
struct stat;
int incr_chain_holds(const struct img_input *in, const char *path, const struct stat *file);
/* ckpt-inspect's scan: a HASHES or REUSE record among the page data. */
int incr_scan_rec(struct img_input *in, const struct img_rec *rec, const void *buf)
    __attribute__((warn_unused_result));
/* The image's own PARENT record and counts, in text and JSON (JSON: a
 * ",\"parent\":{...}" member, or nothing). */
void incr_inspect_text(FILE *f, const struct img_input *in);
void incr_inspect_json(FILE *f, const struct img_input *in);
/* ckpt-inspect: follow the chain of the image at path, printing a line per
 * parent (text), or a JSON array; -1 if a parent is missing or replaced. */
int incr_print_chain(FILE *f, const char *path, const struct img_input *in, int json);

#endif
