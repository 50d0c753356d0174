/* progress.h: one updating line on stderr for long dumps and restores. */
#ifndef CKPT_PROGRESS_H
#define CKPT_PROGRESS_H

#include <stdint.h>

enum progress_mode { PROGRESS_AUTO, PROGRESS_ON, PROGRESS_OFF };

struct progress {
	int enabled;  /* decided from the mode and whether stderr is a terminal */
	int shown;    /* a line is on the screen and needs finishing */
	double start; /* when the work began */
	double last;  /* when the line was last drawn */
	const char *verb;
	uint64_t done; /* bytes, as last reported */
	uint64_t total;
};

void progress_init(struct progress *p, enum progress_mode mode, const char *verb);
/* Draw if more than a second has passed since start and 0.2 s since the
 * last draw; total 0 means unknown. */
void progress_update(struct progress *p, uint64_t done, uint64_t total);
void progress_done(struct progress *p);
/* The dump_opts callback shape. */
void progress_cb(uint64_t done, uint64_t total, void *arg);

#endif
