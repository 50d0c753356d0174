/* progs.h: what the workload programs share. */
#ifndef CKPT_PROGS_H
#define CKPT_PROGS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* When this process started (field 22 of /proc/self/stat, in clock ticks
 * since boot): a restored process is a new one, whether or not it got its
 * old pid back, so a program tells a restore by this changing. */
/* The fields of /proc/PATH/stat after the command name (field 3 on), in
 * buf; NULL if it cannot be read. */
static inline char *stat_fields(const char *path, char *buf, int size)
{
	FILE *f = fopen(path, "r");
	char *p;

	if (!f)
		return NULL;
	p = fgets(buf, size, f);
	fclose(f);
	if (!p || !(p = strrchr(buf, ')')) || !p[1])
		return NULL;
	return p + 2;
}

static inline unsigned long long start_time(void)
{
	char buf[1024], *p = stat_fields("/proc/self/stat", buf, sizeof(buf));
	unsigned long long v = 0;
	int field = 3;

	if (!p)
		return 0;
	for (; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	sscanf(p, "%llu", &v);
	return v;
}

/* splitmix64: the pattern word at index i of the stream named seed. */
static inline uint64_t mix(uint64_t seed, uint64_t i)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ull + i + 1;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#endif
