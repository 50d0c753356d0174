/* livework: a program that writes its memory all the time, for ckpt-dump
 * --live (t/0785, make bench).
 *
 * usage: livework MIB RATE [uffd]
 *
 * Fills MIB MiB of anonymous memory with pages it can check (each holds
 * words made from its index and its generation, a counter kept in another
 * array), prints "ready PID", then rewrites random pages at RATE MB/s (0:
 * none) from a writer thread, bumping each one's generation, and now and
 * then (every other millisecond) drops a page of a small region with
 * MADV_DONTNEED, and reads it back (the shared zero page) or not, or writes
 * a dropped one again.
 *
 * A ticking thread wakes every millisecond and notes the gap since the
 * last wake-up.  A restored process is a new one (its start time in
 * /proc/self/stat changed): the ticking thread sees that at its first
 * wake-up, and the gap it measured then is how long the program did not
 * run across the move.  The writer finishes the page it was writing,
 * checks every page and prints "restored gap NS ok" (or "... bad: what"),
 * and exits 0 only if the memory is intact.  Before that, SIGUSR1 prints
 * "gap NS" (the largest gap so far) and starts over.  With uffd it holds a
 * userfaultfd of its own (which ckpt-dump --live refuses). */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define PAGE 4096
#define WORDS (PAGE / 8)
#define NDROP 64

static uint64_t *mem, *drop;
static uint32_t *gen;
static uint8_t *dropped;
static uint64_t npages;
static double rate; /* bytes per second */
static unsigned long long start0;
static volatile long long gap_ns, max_gap;
static volatile int restored, report;

static uint64_t word(uint64_t page, uint32_t g, uint64_t k)
{
	uint64_t x = (page << 32 | g) * 0x9e3779b97f4a7c15ull + k * 0xbf58476d1ce4e5b9ull;
	x ^= x >> 31;
	return x * 0x94d049bb133111ebull + 1;
}

static void fill(uint64_t *p, uint64_t page, uint32_t g)
{
	for (uint64_t k = 0; k < WORDS; k++)
		p[k] = word(page, g, k);
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void *ticker(void *arg)
{
	struct timespec tick = {0, 1000000};
	long long last = now_ns();

	(void)arg;
	for (;;) {
		long long t, g;
		nanosleep(&tick, NULL);
		t = now_ns();
		g = t - last;
		last = t;
		if (g > max_gap)
			max_gap = g;
		if (report) {
			report = 0;
			printf("gap %lld\n", max_gap);
			fflush(stdout);
			max_gap = 0;
		}
		if (start_time() != start0) {
			gap_ns = g;
			__atomic_store_n(&restored, 1, __ATOMIC_RELEASE);
			return NULL;
		}
	}
}

static void on_usr1(int sig)
{
	(void)sig;
	report = 1;
}

static int check(char *why, size_t len)
{
	for (uint64_t i = 0; i < npages; i++)
		for (uint64_t k = 0; k < WORDS; k++)
			if (mem[i * WORDS + k] != word(i, gen[i], k)) {
				snprintf(why, len, "page %llu (generation %u) word %llu",
					 (unsigned long long)i, gen[i], (unsigned long long)k);
				return -1;
			}
	for (uint64_t j = 0; j < NDROP; j++)
		for (uint64_t k = 0; k < WORDS; k++)
			if (drop[j * WORDS + k] != (dropped[j] ? 0 : word(~j, 7, k))) {
				snprintf(why, len, "dropped page %llu (%s) word %llu",
					 (unsigned long long)j, dropped[j] ? "dropped" : "written",
					 (unsigned long long)k);
				return -1;
			}
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t rnd = 88172645463325252ull, i;
	double credit = 0;
	long long last;
	pthread_t t;
	char why[256];
	unsigned long n = 0;

	if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "uffd"))) {
		fprintf(stderr, "usage: livework MIB RATE [uffd]\n");
		return 2;
	}
	/* UFFD_USER_MODE_ONLY (1): allowed without privilege. */
	if (argc == 4 && syscall(SYS_userfaultfd, O_CLOEXEC | 1) < 0) {
		perror("livework: userfaultfd");
		return 1;
	}
	npages = strtoull(argv[1], NULL, 10) * (1 << 20) / PAGE;
	rate = strtod(argv[2], NULL) * 1e6;
	mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	drop = mmap(NULL, NDROP * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gen = calloc(npages, sizeof(*gen));
	dropped = calloc(NDROP, 1);
	if (mem == MAP_FAILED || drop == MAP_FAILED || !gen || !dropped) {
		perror("livework: memory");
		return 1;
	}
	for (i = 0; i < npages; i++)
		fill(mem + i * WORDS, i, 0);
	for (i = 0; i < NDROP; i++)
		fill(drop + i * WORDS, ~i, 7);
	start0 = start_time();
	signal(SIGUSR1, on_usr1);
	if (pthread_create(&t, NULL, ticker, NULL)) {
		perror("livework: thread");
		return 1;
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	last = now_ns();
	while (!__atomic_load_n(&restored, __ATOMIC_ACQUIRE)) {
		struct timespec ms = {0, 1000000};
		long long now;

		nanosleep(&ms, NULL);
		now = now_ns();
		credit += rate * (now - last) / 1e9;
		last = now;
		if (credit > rate / 100 + PAGE) /* no burst after a stop */
			credit = rate / 100 + PAGE;
		for (; credit >= PAGE; credit -= PAGE) {
			rnd ^= rnd << 13;
			rnd ^= rnd >> 7;
			rnd ^= rnd << 17;
			i = rnd % npages;
			/* The generation first: a restore between the two is
			 * finished here before the check. */
			gen[i]++;
			fill(mem + i * WORDS, i, gen[i]);
		}
		if (++n % 2 == 0) {
			uint64_t j = (rnd >> 20) % NDROP;
			if (dropped[j]) {
				fill(drop + j * WORDS, ~j, 7);
				dropped[j] = 0;
			} else {
				madvise(drop + j * WORDS, PAGE, MADV_DONTNEED);
				dropped[j] = 1;
				/* Half of them read back (the shared zero page),
				 * half left absent. */
				if (j % 2 && *(volatile uint64_t *)(drop + j * WORDS) != 0) {
					printf("bad: dropped page %llu reads non-zero\n",
					       (unsigned long long)j);
					return 1;
				}
			}
		}
	}
	pthread_join(t, NULL);
	if (check(why, sizeof(why))) {
		printf("restored gap %lld bad: %s\n", gap_ns, why);
		return 1;
	}
	printf("restored gap %lld ok\n", gap_ns);
	return 0;
}
