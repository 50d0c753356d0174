/* splice-internal.h: zero-copy page data for ckpt-dump --splice (splice.c). */
#ifndef CKPT_SPLICE_INTERNAL_H
#define CKPT_SPLICE_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "dump/dump.h"
#include "image/image.h"
#include "target/target.h"

#define SPL_PIPES 2

struct splicer {
	pid_t pid;
	int out;      /* the image's fd */
	int to_pipe;  /* out is a pipe: drained before the process may run */
	int regular;  /* out is a regular file */
	int rfd[SPL_PIPES];	/* our copies of the pipes' read ends, or -1 */
	int64_t tw[SPL_PIPES];	/* their write ends, in the process, or -1 */
	uint64_t cap; /* a pipe's size, bytes */
	struct inj c;
	uint64_t calls; /* vmsplice calls injected */
	uint64_t at;	/* the stream offset the pipes' bytes go to */
	unsigned char *buf; /* where splice(2) to out is refused: read and written */
	struct dump_spliced *log; /* out is a regular file: the records to checksum later */
	const volatile int *cancel;
	/* The drain thread: while the process fills one pipe, it splices
	 * the other on.  posted pipe-fulls (pipe posted % SPL_PIPES, len[]
	 * bytes), drained of them. */
	int threaded, failed, quit;
	uint64_t posted, drained, len[SPL_PIPES];
	char why[512];
	sigset_t mask; /* ours while the thread holds the signals (hold) */
	pthread_t drainer;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

/* Whether the pages of pid's dump to out are to be spliced (o->splice
 * and the kind of out; never with --parent or --cow, which read every
 * page).  A --splice to a socket or a device is refused: -1. */
int splice_wanted(pid_t pid, int out, const struct dump_opts *o) __attribute__((warn_unused_result));
/* Make two pipes in the stopped process pid (injected pipe2, gadget a
 * syscall instruction), take their read ends and start the drain
 * thread.  0, or 1 where the process
 * will not have it (seccomp filters, the call refused): write its pages
 * the ordinary way; -1 on a failure of ptrace. */
int splice_begin(struct splicer *s, pid_t pid, uint64_t gadget, int seccomp, int out,
		 const volatile int *cancel) __attribute__((warn_unused_result));
/* Whether a region's pages may be spliced: the process can read them. */
int splice_region(const struct region *r);
/* Clear PM_PRESENT in pm[0..n) for the pages from start that map the
 * zero page (PAGEMAP_SCAN's PAGE_IS_PFNZERO, Linux 6.7+): holes, as a
 * dump that reads them finds them. */
int splice_zero_pages(int pmfd, uint64_t start, uint64_t n, long ps, uint64_t *pm)
	__attribute__((warn_unused_result));
/* One PAGES record of runs[0..nruns) (npages in all): its head written
 * through w, its data moved by the process into the pipe (vmsplice) and
 * by us on to w->fd (splice), a pipe-full at a time. */
int splice_pages(struct splicer *s, struct img_writer *w, const struct img_run *runs,
		 int nruns, uint64_t npages) __attribute__((warn_unused_result));
/* Close the process's pipe and let its thread go; with an output pipe,
 * wait until its reader has taken every byte (what we moved there are the
 * process's pages themselves).  -1 if anything failed. */
int splice_end(struct splicer *s, const volatile int *cancel);

#endif
