/* counter: the demo workload.
 *
 * usage: counter [N]
 *
 * Prints "count: K" every 0.1 s for K = 1..N (default 100), one flushed line
 * each.  K lives in memory, and so does a 4 MiB heap buffer whose checksum
 * is verified before every line: a restored counter goes on from where it
 * was and exits 0 at N, or exits 1 as soon as the buffer differs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUF_SIZE (4u << 20)

static uint64_t checksum(const uint64_t *w, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ w[i]) * 0x100000001b3ull;
	return h;
}

int main(int argc, char **argv)
{
	struct timespec tick = {0, 100 * 1000 * 1000};
	size_t nwords = BUF_SIZE / sizeof(uint64_t);
	uint64_t *buf, sum, x = 0x2545f4914f6cdd1dull;
	static volatile long k;
	long n = 100;
	char *end;

	if (argc > 2 || (argc == 2 && ((n = strtol(argv[1], &end, 10)) <= 0 || *end))) {
		fputs("usage: counter [N]\n", stderr);
		return 2;
	}
	buf = malloc(BUF_SIZE);
	if (!buf) {
		fputs("counter: cannot allocate 4 MiB\n", stderr);
		return 2;
	}
	for (size_t i = 0; i < nwords; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = x;
	}
	sum = checksum(buf, nwords);

	for (k = 1; k <= n; k++) {
		if (checksum(buf, nwords) != sum) {
			fprintf(stderr, "counter: buffer checksum differs at count %ld\n", k);
			return 1;
		}
		printf("count: %ld\n", k);
		if (fflush(stdout))
			return 1;
		if (k < n)
			nanosleep(&tick, NULL);
	}
	return 0;
}
