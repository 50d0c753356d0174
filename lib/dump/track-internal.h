/* track-internal.h: write tracking for ckpt-dump --track (track.c). */
#ifndef CKPT_TRACK_INTERNAL_H
#define CKPT_TRACK_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "dump/dump.h"
#include "image/image.h"

struct track {
	int uf;		 /* our copy of the tracker (a userfaultfd), or -1 */
	uint8_t *tracked; /* a region of im: 1 if the tracker reported its writes */
	struct track_run {
		uint64_t start, end;
	} *written; /* the ranges reported written, ascending */
	size_t nwritten, cap, cursor;
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
void track_free(struct track *tr);

#endif
