/* omp: an OpenMP loop that is dumped while its four threads compute.
 *
 * usage: omp
 *
 * Four threads (#pragma omp parallel for) sum i^3 over i < N, modulo 2^64,
 * in chunks of a few million terms: seconds of work.  Thread 0 prints
 * "ready PID" once, as the parallel region starts.  After the region every
 * chunk's sum and the total are compared with the closed form
 * (N(N-1)/2)^2, in integer arithmetic: one line per difference on stderr.
 * Then "restored: yes" (the process started after "ready": a restored one
 * is a new process, whatever its pid) or "restored: no" on stdout, and exit
 * 0 only if every sum was exact. */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progs.h"

#define NTHREADS 4
#define NCHUNKS 16384
#define CHUNK (2u << 20) /* terms per chunk: N is 2^35 */

static uint64_t part[NCHUNKS];

/* sum of i^3 for i < n, modulo 2^64: (n(n-1)/2)^2, where n(n-1)/2 is exact
 * in 128 bits and its square only needs its low 64. */
static uint64_t cubes_below(uint64_t n)
{
	uint64_t h = (uint64_t)((unsigned __int128)n * (n - (n > 0)) / 2);

	return h * h;
}

/* The compiler must neither vectorize the term nor find the closed form. */
static inline uint64_t opaque(uint64_t x)
{
	__asm__("" : "+r"(x));
	return x;
}

/* Field 22 of /proc/self/stat, in clock ticks since boot. */
int main(int argc, char **argv)
{
	unsigned long long ready_start = 0;
	uint64_t sum = 0, want;
	int announced = 0, nthreads = 0, failures = 0;

	(void)argv;
	if (argc != 1) {
		fputs("usage: omp\n", stderr);
		return 2;
	}
	omp_set_dynamic(0);

	/* Chunk c goes to thread c % 4, so thread 0 starts on chunk 0. */
#pragma omp parallel for num_threads(NTHREADS) schedule(static, 1) reduction(+ : sum)
	for (long c = 0; c < NCHUNKS; c++) {
		uint64_t s = 0;

		if (!announced && omp_get_thread_num() == 0) {
			announced = 1;
			nthreads = omp_get_num_threads();
			ready_start = start_time();
			printf("ready %d\n", (int)getpid());
			fflush(stdout);
		}
		for (uint64_t i = (uint64_t)c * CHUNK; i < (uint64_t)(c + 1) * CHUNK; i++) {
			uint64_t x = opaque(i);
			s += x * x * x;
		}
		part[c] = s;
		sum += s;
	}

	if (nthreads != NTHREADS) {
		fprintf(stderr, "omp: the region ran %d threads, not %d\n", nthreads, NTHREADS);
		failures++;
	}
	for (long c = 0; c < NCHUNKS; c++) {
		want = cubes_below((uint64_t)(c + 1) * CHUNK) - cubes_below((uint64_t)c * CHUNK);
		if (part[c] != want) {
			fprintf(stderr, "omp: chunk %ld summed to %#llx, not %#llx\n", c,
				(unsigned long long)part[c], (unsigned long long)want);
			failures++;
		}
	}
	want = cubes_below((uint64_t)NCHUNKS * CHUNK);
	if (sum != want) {
		fprintf(stderr, "omp: the total is %#llx, not %#llx\n", (unsigned long long)sum,
			(unsigned long long)want);
		failures++;
	}
	printf("restored: %s\n", start_time() != ready_start ? "yes" : "no");
	if (fflush(stdout)) {
		perror("omp: stdout");
		failures++;
	}
	return failures ? 1 : 0;
}
