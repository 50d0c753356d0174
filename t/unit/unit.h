/* unit.h: what a unit test of lib/ counts its checks with. */
#ifndef CKPT_UNIT_H
#define CKPT_UNIT_H

#include <stdio.h>

static int failed, passed;

/* CHECK(cond, fmt, ...): one check; a failed one says where and what. */
#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (cond) {                                                                        \
			passed++;                                                                  \
		} else {                                                                           \
			failed++;                                                                  \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                       \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
		}                                                                                  \
	} while (0)

/* The totals line; main's exit status: 0 only if every check passed. */
static inline int unit_done(const char *name)
{
	printf("unit %s: %d passed, %d failed\n", name, passed, failed);
	return failed != 0;
}

#endif
