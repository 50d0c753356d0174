/* churn: a program that never stops writing its memory, for copy-on-write
 * dumps.  Its buffer's words always add up to a total it keeps (both are
 * changed together), so an image whose pages were read at different
 * moments fails the check, and a thread notes the longest time the
 * process did not run (how long a dump froze it).
 *
 * usage: churn MIB DIR
 * Prints "ready PID", changes random words of MIB MiB until DIR/go exists,
 * then checks that the words add up to the total and prints
 * "churn: ok, longest stop N ms" (exit 0), or a line on stderr (exit 1). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

static volatile int done;
static uint64_t longest_ns;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* Wakes every 0.2 ms: a longer gap between two wakes is a stop. */
static void *ticker(void *arg)
{
	struct timespec tick = {0, 200 * 1000};
	uint64_t last = now_ns();

	(void)arg;
	while (!done) {
		uint64_t t;
		nanosleep(&tick, NULL);
		t = now_ns();
		if (t - last > longest_ns)
			longest_ns = t - last;
		last = t;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	uint64_t *w, total = 0, x = 0x9e3779b97f4a7c15ull, sum = 0, steps = 0;
	size_t n;
	char go[4096];
	pthread_t t;

	if (argc != 3) {
		fprintf(stderr, "usage: churn MIB DIR\n");
		return 2;
	}
	n = (size_t)atol(argv[1]) << 17; /* words of 8 bytes */
	w = mmap(NULL, n * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w == MAP_FAILED) {
		perror("churn: mmap");
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		w[i] = mix(7, i);
		total += w[i];
	}
	snprintf(go, sizeof(go), "%s/go", argv[2]);
	if (pthread_create(&t, NULL, ticker, NULL)) {
		perror("churn: pthread_create");
		return 1;
	}
	dprintf(1, "ready %d\n", (int)getpid());
	for (;;) {
		/* A word and the total, changed together. */
		for (int k = 0; k < 4096; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			w[x % n] += x;
			total += x;
		}
		if (++steps % 64 == 0 && !access(go, F_OK))
			break;
	}
	done = 1;
	pthread_join(t, NULL);
	for (size_t i = 0; i < n; i++)
		sum += w[i];
	if (sum != total) {
		fprintf(stderr, "churn: the words add up to %#llx, not %#llx\n",
			(unsigned long long)sum, (unsigned long long)total);
		return 1;
	}
	printf("churn: ok, longest stop %llu ms\n", (unsigned long long)(longest_ns / 1000000));
	return 0;
}
