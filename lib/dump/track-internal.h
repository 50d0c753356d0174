/* track-internal.h: write tracking for ckpt-dump --track (track.c). */
#ifndef CKPT_TRACK_INTERNAL_H
#define CKPT_TRACK_INTERNAL_H

#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/types.h>

#include "dump/dump.h"
#include "image/image.h"

/* What Debian 12's headers (Linux 6.1) lack. */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#define TRK_FEATURE_WP_ASYNC (1ull << 15)
#define TRK_FEATURE_EXACT_ADDRESS (1ull << 11)
#define TRK_INITIALIZED (1ull << 31) /* the kernel's, in fdinfo */
#define TRK_FEATURE_WP_UNPOPULATED (1ull << 13) /* WP_ASYNC implies it */
/* Ours: WP_ASYNC with EXACT_ADDRESS, which changes only the fault
 * messages no one reads here: a mark that tells ckpt-dump's tracker from
 * a userfaultfd of the program's own (see is_ours). */
#define TRK_FEATURES (TRK_FEATURE_WP_ASYNC | TRK_FEATURE_EXACT_ADDRESS)
struct trk_scan {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
struct trk_region {
	uint64_t start, end, categories;
};
#define TRK_PAGEMAP_SCAN _IOWR('f', 16, struct trk_scan)
#define TRK_WP_MATCHING (1ull << 0)
#define TRK_CHECK_WPASYNC (1ull << 1)
#define TRK_IS_WRITTEN (1ull << 1)
#define TRK_IS_PRESENT (1ull << 3)
#define TRK_IS_SWAPPED (1ull << 4)


struct track {
	int uf;		 /* our copy of the tracker (a userfaultfd), or -1 */
	uint8_t *tracked; /* a region of im: 1 if the tracker reported its writes */
	struct track_run {
		uint64_t start, end;
	} *written; /* the ranges reported written, ascending */
	size_t nwritten, cap, cursor;
	/* Pages neither present nor swapped in the regions fast[i] is 1 of
	 * (tracked ones, walked once more): there the pagemap is not read. */
	uint8_t *fast;
	struct track_run *absent;
	size_t nabsent, acap;
	/* Their present pages unwritten since the parent's dump: the
	 * parent's, by their hashes, taken once the process runs again. */
	struct track_run *later;
	size_t nlater, lcap;
};

/* Before fd_capture: the fd the parent's dump left its tracker at, if the
 * target still has a userfaultfd there (not one of the program's fds to
 * dump), else -1. */
int track_old_fd(pid_t pid, const struct dump_opts *o);
/* The process is stopped and captured: take the tracker over (moved to a
 * new fd) or arm one (o->track), read what it says was written, protect
 * again, and fill im->track.  Failures fall back to hashing: only running
 * out of memory or ptrace failing is an error. */
int track_prepare(const struct dump_target *tg, uint64_t gadget, struct image *im,
		  const struct dump_opts *o, struct track *tr) __attribute__((warn_unused_result));
/* Whether the tracker says the page at addr of im's region i is unwritten
 * (ascending addresses within a region). */
int track_unwritten(struct track *tr, size_t i, uint64_t addr);
/* In the program: move the tracker at fd (or a new one, fd < 0) to a new
 * high fd; its number, or -1. */
int track_place(pid_t pid, uint64_t gadget, int fd);
/* Our copy of fd of pid (pidfd_getfd), or -1. */
int track_take_fd(pid_t pid, int fd);
/* Register [start, end) for write-protect tracking and protect it. */
int track_protect(int uf, uint64_t start, uint64_t end);
/* In a region fast[i] is 1 of: whether the page at addr is absent (a
 * hole), written since the parent's dump (read it), or neither (the
 * parent's if it has it); and where the span of pages alike ends (at most
 * end). */
enum { TRACK_ABSENT, TRACK_WRITTEN, TRACK_UNWRITTEN };
uint64_t track_span(const struct track *tr, uint64_t addr, uint64_t end, int *kind);
/* [start, end), unwritten: its pages the parent's (track_take_later). */
int track_later(struct track *tr, uint64_t start, uint64_t end) __attribute__((warn_unused_result));
/* Once the process is let go: each page track_later noted is the
 * parent's (incr_dump_same), where the parent has it; where it has not,
 * the page held no data at the parent's dump (every page an image gives
 * has its hash) and, unwritten since, holds none now: a hole. */
int track_take_later(struct track *tr, struct incr_dump *incr) __attribute__((warn_unused_result));
/* Once the process runs on after an incremental dump: the runs of at
 * least TRACK_HOT_RUN pages it stored (written since the parent's dump
 * and changed) are left unprotected, reported written at the next dump
 * without a fault each in between (a program that rewrites its memory in
 * a loop paid one per page after every dump, 0.24 s a GiB here); there
 * they are read and compared by their hashes, and protected again if
 * they did not change.  A page not protected is always reported
 * written, so nothing written goes unseen. */
#define TRACK_HOT_RUN 16
void track_keep_hot(struct track *tr, const struct incr_dump *incr);
void track_free(struct track *tr);

#endif
