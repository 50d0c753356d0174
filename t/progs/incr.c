/* incr: a program whose memory changes in known steps, for incremental
 * images.  It fills MIB MiB with pseudo-random pages and, each time it is
 * told, changes PERMILLE per mille of them, zeroes some (written with
 * zeros, or dropped with MADV_DONTNEED), unmaps a region, and moves
 * another (mremap) while mapping a fresh one where it was.  What its memory
 * should hold after N steps is a function of N, which it keeps in that
 * memory: a restored copy checks every page against it.
 *
 * usage: incr MIB PERMILLE DIR
 * Prints "main ADDR gone ADDR" (where the main region and the region
 * unmapped at step 1 are), then "ready PID"; when DIR/change.N appears (N = steps done + 1) it
 * takes step N and prints "changed N"; when DIR/go appears it checks its
 * memory and prints "incr: ok, N steps, restored: yes|no" (exit 0), or a
 * line on stderr (exit 1). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define PAGE 4096
#define SIDE (64 * PAGE) /* the unmapped and the moved regions */

static uint64_t *buf;	  /* the main region */
static size_t npages;	  /* its pages */
static unsigned permille; /* changed per step */
static int steps;	  /* steps taken: the state memory must be in */
static char *gone;	  /* unmapped at step 1 */
static char *moved_from;  /* moved at step 1 ... */
static char *moved_to;	  /* ... to here, and a fresh region mapped at moved_from */
static unsigned long long born;

static void fill(void *p, uint64_t seed, uint64_t n)
{
	uint64_t *w = p;

	for (uint64_t i = 0; i < PAGE / 8; i++)
		w[i] = mix(seed, n * (PAGE / 8) + i);
}

/* What step s does to page i: 0 nothing, 1 rewrite, 2 zero it, 3 drop it. */
static int op(int s, size_t i)
{
	uint64_t r = mix(1000 + s, i) % 1000;

	if (r < permille)
		return 1;
	if (r < permille + permille / 4 + 1)
		return (r & 1) ? 2 : 3;
	return 0;
}

static void step(int s)
{
	for (size_t i = 0; i < npages; i++) {
		char *p = (char *)buf + i * PAGE;
		switch (op(s, i)) {
		case 1:
			fill(p, s, i);
			break;
		case 2:
			memset(p, 0, PAGE);
			break;
		case 3:
			madvise(p, PAGE, MADV_DONTNEED);
			break;
		}
	}
	if (s == 1) {
		munmap(gone, SIDE);
		/* Somewhere else: mremap to the same size would stay put. */
		moved_to = mmap(NULL, SIDE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (moved_to != MAP_FAILED)
			moved_to =
			    mremap(moved_from, SIDE, SIDE, MREMAP_MAYMOVE | MREMAP_FIXED, moved_to);
		if (moved_to == MAP_FAILED) {
			perror("incr: mremap");
			exit(1);
		}
		/* The same addresses, other contents: half written, half
		 * never touched (zero). */
		if (mmap(moved_from, SIDE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != moved_from) {
			perror("incr: mmap");
			exit(1);
		}
		for (size_t i = 0; i < SIDE / PAGE; i += 2)
			fill(moved_from + i * PAGE, 77, i);
	}
	steps = s;
}

static int expect_page(const void *p, uint64_t seed, uint64_t n, int zero, const char *what)
{
	static uint64_t want[PAGE / 8];

	if (zero)
		memset(want, 0, sizeof(want));
	else
		fill(want, seed, n);
	if (memcmp(p, want, PAGE)) {
		fprintf(stderr, "incr: %s page %llu (%p) is not what step %d left\n", what,
			(unsigned long long)n, p, steps);
		return 0;
	}
	return 1;
}

static int check(void)
{
	for (size_t i = 0; i < npages; i++) {
		int last = 0;
		for (int s = 1; s <= steps; s++)
			if (op(s, i))
				last = s;
		if (!expect_page((char *)buf + i * PAGE, last ? (uint64_t)last : 0, i,
				 last && op(last, i) != 1, "main"))
			return 0;
	}
	if (steps == 0) {
		for (size_t i = 0; i < SIDE / PAGE; i++)
			if (!expect_page(gone + i * PAGE, 55, i, 0, "unmapped") ||
			    !expect_page(moved_from + i * PAGE, 66, i, 0, "moved"))
				return 0;
		return 1;
	}
	/* Something else may be mapped there now: only the old contents
	 * must not be back. */
	{
		static uint64_t page[PAGE / 8], old[PAGE / 8];
		int mem = open("/proc/self/mem", O_RDONLY);
		for (size_t i = 0; mem >= 0 && i < SIDE / PAGE; i++) {
			fill(old, 55, i);
			if (pread(mem, page, PAGE, (off_t)(uintptr_t)(gone + i * PAGE)) == PAGE &&
			    !memcmp(page, old, PAGE)) {
				fprintf(stderr, "incr: the unmapped region %p is back\n",
					(void *)gone);
				return 0;
			}
		}
		if (mem >= 0)
			close(mem);
	}
	for (size_t i = 0; i < SIDE / PAGE; i++)
		if (!expect_page(moved_to + i * PAGE, 66, i, 0, "moved") ||
		    !expect_page(moved_from + i * PAGE, 77, i, i % 2, "remapped"))
			return 0;
	return 1;
}

static int exists(const char *dir, const char *name, int n)
{
	char path[4096];

	if (n >= 0)
		snprintf(path, sizeof(path), "%s/%s.%d", dir, name, n);
	else
		snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

int main(int argc, char **argv)
{
	struct timespec tick = {0, 1000 * 1000};

	if (argc != 4) {
		fprintf(stderr, "usage: incr MIB PERMILLE DIR\n");
		return 2;
	}
	npages = (size_t)atol(argv[1]) * (1 << 20) / PAGE;
	permille = atoi(argv[2]);
	buf = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gone = mmap(NULL, SIDE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	moved_from = mmap(NULL, SIDE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED || gone == MAP_FAILED || moved_from == MAP_FAILED) {
		perror("incr: mmap");
		return 1;
	}
	for (size_t i = 0; i < npages; i++)
		fill((char *)buf + i * PAGE, 0, i);
	for (size_t i = 0; i < SIDE / PAGE; i++) {
		fill(gone + i * PAGE, 55, i);
		fill(moved_from + i * PAGE, 66, i);
	}
	born = start_time();
	dprintf(1, "main %p gone %p\n", (void *)buf, (void *)gone);
	dprintf(1, "ready %d\n", (int)getpid());
	for (;;) {
		if (exists(argv[3], "change", steps + 1)) {
			step(steps + 1);
			dprintf(1, "changed %d\n", steps);
		}
		if (exists(argv[3], "go", -1))
			break;
		nanosleep(&tick, NULL);
	}
	if (!check())
		return 1;
	printf("incr: ok, %d steps, restored: %s\n", steps, start_time() != born ? "yes" : "no");
	return 0;
}
