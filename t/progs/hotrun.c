/* hotrun: one region written whole, half or not at all, step by step: the
 * runs an incremental dump stored are left without write protection
 * (ckpt-dump --track), and what is written there next must still be seen.
 *
 * usage: hotrun DIR
 * Maps 256 pages of private anonymous memory, each page filled from its
 * index and its generation (kept in a second mapping), prints "ready PID".
 * When DIR/all.N, DIR/half.N or DIR/none.N appears (N = steps done + 1) it
 * rewrites every page, the even ones, or none (each rewritten page's
 * generation bumped) and prints "step N".  When DIR/go appears it checks
 * every page and prints "hotrun: ok, N steps, restored: yes|no" (exit 0),
 * or a line on stderr (exit 1). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define PAGE 4096
#define NPAGES 256

static char *mem;
static uint64_t *gen;

static void fill(size_t i)
{
	uint64_t *w = (uint64_t *)(mem + i * PAGE);

	for (size_t k = 0; k < PAGE / 8; k++)
		w[k] = mix(gen[i], i * (PAGE / 8) + k);
}

static int exists(const char *dir, const char *name, int n)
{
	char path[4096];

	snprintf(path, sizeof(path), n >= 0 ? "%s/%s.%d" : "%s/%s", dir, name, n);
	return access(path, F_OK) == 0;
}

int main(int argc, char **argv)
{
	struct timespec tick = {0, 1000 * 1000};
	unsigned long long born;
	int steps = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: hotrun DIR\n");
		return 2;
	}
	mem = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gen = mmap(NULL, NPAGES * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || gen == MAP_FAILED) {
		perror("hotrun: mmap");
		return 1;
	}
	for (size_t i = 0; i < NPAGES; i++)
		fill(i);
	born = start_time();
	dprintf(1, "ready %d\n", (int)getpid());
	while (!exists(argv[1], "go", -1)) {
		int all = exists(argv[1], "all", steps + 1);
		int half = exists(argv[1], "half", steps + 1);

		if (all || half || exists(argv[1], "none", steps + 1)) {
			for (size_t i = 0; i < NPAGES; i++)
				if (all || (half && i % 2 == 0)) {
					gen[i]++;
					fill(i);
				}
			dprintf(1, "step %d\n", ++steps);
		}
		nanosleep(&tick, NULL);
	}
	for (size_t i = 0; i < NPAGES; i++) {
		const uint64_t *w = (const uint64_t *)(mem + i * PAGE);
		for (size_t k = 0; k < PAGE / 8; k++)
			if (w[k] != mix(gen[i], i * (PAGE / 8) + k)) {
				fprintf(stderr, "hotrun: page %zu (generation %llu) is not what it was\n",
					i, (unsigned long long)gen[i]);
				return 1;
			}
	}
	printf("hotrun: ok, %d steps, restored: %s\n", steps, start_time() != born ? "yes" : "no");
	return 0;
}
