/* coordd.h: the coordinator of one computation, as ckpt-coord runs it
 * (the protocol and the checkpoint rounds: ckpt-coord(1)). */
#ifndef CKPT_COORDD_H
#define CKPT_COORDD_H

#include <limits.h>

struct cd_settings {
	int port; /* 0: a free one */
	int exit_on_last, interval, keep;
	int compress; /* enum zio_kind: ZIO_ZSTD, ZIO_GZIP or ZIO_NONE */
	int timeout; /* seconds a round of a checkpoint may take; 0: no limit */
	long long save_max; /* bytes of each open file the images hold; 0: all */
	const char *bind;   /* NULL: 127.0.0.1 */
	const char *secret; /* NULL: none asked */
	char dir[PATH_MAX]; /* absolute */
};

struct coord;

/* Listen as s says, and clear what a coordinator killed mid-checkpoint
 * left in s->dir; NULL with err_set. */
struct coord *cd_open(const struct cd_settings *s);
/* The port it listens on. */
int cd_port(const struct coord *cd);
/* Serve until told to QUIT (or, with exit_on_last, the last member has
 * gone); 0, or -1 with err_set. */
int cd_run(struct coord *cd);

#endif
