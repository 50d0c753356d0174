/* dump.h: capture a process into an image. */
#ifndef CKPT_DUMP_H
#define CKPT_DUMP_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

struct dump_opts {
	/* Called as bytes are written; total is an estimate. */
	void (*progress)(uint64_t done, uint64_t total, void *arg);
	void *progress_arg;
	/* Set (by a signal handler) to abandon the dump cleanly. */
	volatile int *cancel;
	/* Store the contents of every open regular file too. */
	int save_files;
};

enum dump_end { DUMP_RUN, DUMP_STOP, DUMP_KILL };

/* A seized process: every thread stopped under ptrace. */
struct dump_target {
	pid_t pid;
	pid_t *tids; /* tids[0] == pid */
	size_t ntids;
};

/* Seize every thread of pid and stop it. */
int dump_seize(pid_t pid, struct dump_target *t) __attribute__((warn_unused_result));
/* Capture the stopped process and write its image to out.  On failure the
 * target is released, running as before. */
int dump_write(struct dump_target *t, int out, const struct dump_opts *o)
	__attribute__((warn_unused_result));
/* Release the target as asked: running, stopped, or killed. */
int dump_release(struct dump_target *t, enum dump_end how);

#endif
