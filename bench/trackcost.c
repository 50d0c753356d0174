/* trackcost: what write tracking (ckpt-dump --track) costs a program that
 * writes all of its memory in a loop.
 *
 * usage: trackcost MIB
 * Fills MIB MiB of anonymous memory, prints "ready PID", then, at each
 * SIGUSR1, runs five passes each writing one word of every page and
 * prints "passes NS1 ... NS5" (nanoseconds each).  The first pass after
 * ckpt-dump --track (or a dump that keeps the tracker) pays a fault per
 * page the kernel resolves itself; the next ones as untracked. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define PAGE 4096

static uint64_t ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + t.tv_nsec;
}

int main(int argc, char **argv)
{
	size_t npages, round = 0;
	sigset_t set;
	char *m;
	int sig;

	if (argc != 2 || atol(argv[1]) <= 0) {
		fprintf(stderr, "usage: trackcost MIB\n");
		return 2;
	}
	npages = (size_t)atol(argv[1]) * (1 << 20) / PAGE;
	m = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		perror("trackcost: mmap");
		return 1;
	}
	memset(m, 1, npages * PAGE);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	dprintf(1, "ready %d\n", (int)getpid());
	for (;;) {
		uint64_t t[5];

		if (sigwait(&set, &sig))
			return 1;
		for (int p = 0; p < 5; p++) {
			uint64_t s = ns();
			round++;
			for (size_t i = 0; i < npages; i++)
				((volatile char *)m)[i * PAGE + round % PAGE]++;
			t[p] = ns() - s;
		}
		dprintf(1, "passes %llu %llu %llu %llu %llu\n", (unsigned long long)t[0],
			(unsigned long long)t[1], (unsigned long long)t[2], (unsigned long long)t[3],
			(unsigned long long)t[4]);
	}
}
