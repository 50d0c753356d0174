/* logger: a member that writes a log, for the coordinated checkpoint tests.
 *
 * usage: logger LOG N [MS [HOLD]]
 *
 * Writes "line K" (padded to 64 bytes) to LOG for K = 1..N, one write
 * every MS milliseconds (default 20), through one fd opened at the start
 * (truncating LOG); with HOLD, line N waits until the file HOLD exists,
 * so that the program is still there for whatever the test does first.  K and a 1 MiB buffer live in memory; the buffer's
 * checksum is checked at every line.  At the end it reads LOG back: it
 * must hold exactly lines 1..N, each once, in order, as it does when the
 * program was restored from a checkpoint together with its log (the log
 * set back to what it held then).  Exit 0 only then; "logger: ..." on
 * stderr says what differs. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define LINE 64
#define BUF_WORDS (1u << 17)

int main(int argc, char **argv)
{
	static uint64_t buf[BUF_WORDS];
	static volatile long k;
	struct timespec tick = {0, 20 * 1000 * 1000};
	uint64_t sum = 0, s;
	long n;
	char line[LINE + 1], *got;
	FILE *f;
	int fd;

	if (argc < 3 || argc > 5 || (n = atol(argv[2])) <= 0) {
		fputs("usage: logger LOG N [MS [HOLD]]\n", stderr);
		return 2;
	}
	if (argc >= 4)
		tick.tv_nsec = atol(argv[3]) * 1000 * 1000;
	fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror("logger: open");
		return 2;
	}
	for (uint32_t i = 0; i < BUF_WORDS; i++)
		sum += buf[i] = mix(7, i);
	for (k = 1; k <= n; k++) {
		s = 0;
		for (uint32_t i = 0; i < BUF_WORDS; i++)
			s += buf[i];
		if (s != sum) {
			fprintf(stderr, "logger: memory differs at line %ld\n", k);
			return 1;
		}
		while (k == n && argc == 5 && access(argv[4], F_OK))
			nanosleep(&tick, NULL);
		snprintf(line, sizeof(line), "line %-58ld\n", k);
		if (write(fd, line, LINE) != LINE) {
			perror("logger: write");
			return 1;
		}
		nanosleep(&tick, NULL);
	}
	close(fd);
	f = fopen(argv[1], "r");
	if (!f) {
		perror("logger: reopen");
		return 1;
	}
	got = malloc(LINE + 2);
	for (long i = 1; i <= n + 1; i++) {
		char want[LINE + 1];
		if (!fgets(got, LINE + 2, f)) {
			if (i == n + 1)
				return 0;
			fprintf(stderr, "logger: the log ends before line %ld\n", i);
			return 1;
		}
		snprintf(want, sizeof(want), "line %-58ld\n", i);
		if (i == n + 1 || strcmp(got, want)) {
			fprintf(stderr, "logger: line %ld of the log is '%.20s', not line %ld\n", i,
				got, i);
			return 1;
		}
	}
	return 0;
}
