/* progs.h: what the workload programs share. */
#ifndef CKPT_PROGS_H
#define CKPT_PROGS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* When this process started (field 22 of /proc/self/stat, in clock ticks
 * since boot): a restored process is a new one, whether or not it got its
 * old pid back, so a program tells a restore by this changing. */
static inline unsigned long long start_time(void)
{
	char buf[1024], *p;
	unsigned long long v = 0;
	FILE *f = fopen("/proc/self/stat", "r");
	int field = 3;

	if (!f)
		return 0;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (!p || !(p = strrchr(buf, ')')))
		return 0;
	for (p += 2; *p && field < 22; p++)
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
