/* progress.c: the one-line progress display on a terminal. */
#include <stdio.h>
#include <unistd.h>

#include "base/base.h"

void progress_init(struct progress *p, enum progress_mode mode, const char *verb)
{
	p->enabled = mode == PROGRESS_ON || (mode == PROGRESS_AUTO && isatty(2));
	p->shown = 0;
	p->start = p->last = now_sec();
	p->verb = verb;
	p->done = p->total = 0;
}

static void draw(struct progress *p, uint64_t done, uint64_t total, double t, const char *end)
{
	char d[32], tot[32], rate[32];
	double el = t - p->start;

	fmt_bytes(d, sizeof(d), done);
	fmt_bytes(rate, sizeof(rate), el > 0 ? (uint64_t)(done / el) : 0);
	if (total > done)
		fprintf(stderr, "\r%s: %s %s of ~%s, %s/s\033[K%s", prog, p->verb, d,
			fmt_bytes(tot, sizeof(tot), total), rate, end);
	else
		fprintf(stderr, "\r%s: %s %s, %s/s\033[K%s", prog, p->verb, d, rate, end);
	fflush(stderr);
}

void progress_update(struct progress *p, uint64_t done, uint64_t total)
{
	double t;

	p->done = done;
	p->total = total;
	if (!p->enabled)
		return;
	t = now_sec();
	if (t - p->start < 1.0 || t - p->last < 0.2)
		return;
	p->last = t;
	p->shown = 1;
	draw(p, done, total, t, "");
}

void progress_done(struct progress *p)
{
	if (p->enabled && p->shown)
		draw(p, p->done, 0, now_sec(), "\n");
}

void progress_cb(uint64_t done, uint64_t total, void *arg)
{
	progress_update(arg, done, total);
}
