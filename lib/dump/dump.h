/* dump.h: capture a process into an image. */
#ifndef CKPT_DUMP_H
#define CKPT_DUMP_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "kinds/kinds.h"
#include "target/target.h"

struct dump_opts {
	/* Called as bytes are written; total is an estimate. */
	void (*progress)(uint64_t done, uint64_t total, void *arg);
	void *progress_arg;
	/* Set (by a signal handler) to abandon the dump cleanly. */
	volatile int *cancel;
	/* Store the contents of every open regular file too, those larger
	 * than save_files_max bytes excepted (0: no limit). */
	int save_files;
	uint64_t save_files_max;
	/* Copy-on-write: let the process run while most of its memory is
	 * written from a snapshot forked inside it.  frozen, if set, is
	 * called (with progress_arg) as the process is let go. */
	int cow;
	void (*frozen)(void *arg);
	/* --parent: leave out the pages the parent image has (incr.h). */
	struct incr_dump *incr;
	/* --track: leave a write tracker in the program (track.c). */
	int track;
	/* The process runs on after the dump (neither --kill nor --stop):
	 * one process is let go as soon as its memory is read, before an
	 * incremental image's hashes and the END record are written. */
	int run_on;
	/* --live: the pre-copy written already (dump_live_precopy); the
	 * image takes from it the pages not written since. */
	struct live_dump *live;
	/* --splice, --no-splice (DUMP_SPLICE_*): the process moves its
	 * pages into a pipe, spliced on to the image (splice.c). */
	int splice;
	/* Where a dump to a regular file notes the PAGES records it spliced,
	 * for dump_checksum_spliced; NULL: not noted. */
	struct dump_spliced *spliced;
	/* What the user asked of fds (FD_OPT_* of kinds/kinds.h). */
	uint32_t fd_opts;
	/* Ends of connections to other members of a coordinated
	 * computation, recorded as peers (IMG_FD_PEER) with the bytes that
	 * were in flight to them (a member's helper drained them). */
	const struct fd_peer_mark *peers;
	size_t npeers;
};

enum dump_end { DUMP_RUN, DUMP_STOP, DUMP_KILL };
enum { DUMP_SPLICE_AUTO, DUMP_SPLICE_ON, DUMP_SPLICE_OFF };

/* A seized process: every thread stopped under ptrace. */
struct dump_target {
	pid_t pid;
	pid_t *tids; /* tids[0] == pid */
	size_t ntids;
	/* smaps, read before the process was stopped: walking its page
	 * tables is the slowest part of the capture.  Used when maps still
	 * shows the same layout once it is stopped. */
	struct proc_map *maps;
	size_t nmaps;
};

/* Seize every thread of pid and stop it. */
int dump_seize(pid_t pid, struct dump_target *t) __attribute__((warn_unused_result));
/* fn(arg), once, in the next dump_seize: after it has read what it reads
 * of the process while it runs (smaps), before it stops it; a failure
 * (-1 with err_set) fails that dump_seize with nothing stopped.  For work
 * that may overlap the reading but must be done before the freeze
 * (ckpt-dump --parent: incr_dump_wait). */
void dump_before_freeze(int (*fn)(void *), void *arg);
/* The pages the next dumps expect to read (0: no idea): as many buffers
 * are made before the freeze, so that the process is let go once read,
 * not once written (ckpt-dump --parent: incr_dump_expect). */
void dump_expect_pages(uint64_t n);
/* Capture the stopped process and write its image to out.  On failure the
 * target is released, running as before; with o->cow it is released as
 * soon as its snapshot is taken, with o->run_on once its memory is read. */
int dump_write(struct dump_target *t, int out, const struct dump_opts *o)
	__attribute__((warn_unused_result));
/* ckpt-dump --live (live.c): arm a write tracker in pid (stopped a
 * moment), then write to out IMG_LIVE_MAGIC and PRECOPY records of its
 * memory while it runs, in rounds, until a round is small or stops
 * shrinking.  Then seize it and dump_write with o->live = *lv: the image
 * follows on out.  -1 (err_set) if its writes cannot be tracked. */
struct live_dump;
#define LIVE_STATS_ROUNDS 32
struct live_dump_stats {
	uint32_t rounds;
	uint64_t round_pages[LIVE_STATS_ROUNDS]; /* pages sent in each round */
	uint64_t precopied, final_pages, kept_pages;
	double running_s, scan_s; /* the pre-copy; the frozen walk */
};
int dump_live_precopy(pid_t pid, int out, const struct dump_opts *o, struct live_dump **lv)
	__attribute__((warn_unused_result));
const struct live_dump_stats *dump_live_stats(const struct live_dump *lv);
void dump_live_free(struct live_dump *lv);

/* The PAGES records a dump spliced into a regular file: their page data
 * went out unread, without a checksum. */
struct dump_spliced {
	int64_t base;	/* the file offset of the stream's start */
	uint64_t *recs; /* the stream offsets of the records */
	size_t n, cap;
	struct splice_crc *crc; /* the thread that checksums them (splice.c) */
};
/* A thread reads each record back from the page cache as soon as it is
 * written and writes its data checksum in, on a CPU the frozen dump
 * leaves idle.  Then, once the process runs on: wait for it, and take
 * the image's "no data checksums" flag off.  -1 with err_set if it could
 * not (the image is whole, its page data unchecked); frees what sp
 * holds. */
int dump_checksum_spliced(struct dump_spliced *sp) __attribute__((warn_unused_result));
/* Release the target as asked: running, stopped, or killed. */
int dump_release(struct dump_target *t, enum dump_end how);

/* A process and all its descendants (ckpt-dump -t): the live ones seized,
 * zombies noted.  p[0] is the root; each parent comes before its
 * children. */
struct dump_tree {
	struct tree_proc {
		pid_t pid;
		int zombie;
		struct dump_target t; /* a live process's */
	} * p;
	size_t n;
};

/* Seize root, and with descend every descendant too. */
int dump_seize_tree(pid_t root, int descend, struct dump_tree *tr)
	__attribute__((warn_unused_result));
/* One stream for the whole tree (a tree of one process: the image
 * dump_write writes); on failure every process is released, running as
 * before. */
int dump_write_tree(struct dump_tree *tr, int out, const struct dump_opts *o)
	__attribute__((warn_unused_result));
int dump_release_tree(struct dump_tree *tr, enum dump_end how);

/* The ends the seized tree's processes hold whose other end none of them
 * holds (fd_peer_ends): a member's connections to others. */
int dump_peer_ends(const struct dump_tree *tr, struct fd_peer_end **ends, size_t *n)
	__attribute__((warn_unused_result));
/* The bytes in pipe fd of pid, left in it (fd_pipe_peek): *len of them
 * in *data, malloc'd; -1 with err_set. */
int dump_pipe_peek(pid_t pid, int fd, unsigned char **data, uint32_t *len)
	__attribute__((warn_unused_result));

#endif
