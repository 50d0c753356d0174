/* bulk: a process with much memory, for dumps that take a measurable time.
 *
 * usage: bulk [--thread] MIB DIR
 *
 * Fills MIB MiB of anonymous memory with a known pattern (no page of it
 * all zero, so every page goes into an image), prints "ready PID", then
 * polls every 2 ms until DIR/go exists, keeping a counter and its shadow
 * in step.  Then it checks the whole buffer and the counters, prints one
 * line per failed check on stderr and "restored: yes" (this process
 * started after "ready": a restored one is a new process) or
 * "restored: no" on stdout, and exits 0 only if all was intact.
 *
 * --thread starts a second thread that polls DIR/go as well and checks
 * its own counters: a dump then has two threads to seize. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

static int failures;

static void usage(void)
{
	fputs("usage: bulk [--thread] MIB DIR\n", stderr);
	exit(2);
}

/* Poll for the go file; the counters must stay in step however often
 * the process is stopped and let go in between.  Returns 0 if they did. */
static int poll_go(const char *go)
{
	struct timespec ts = {0, 2 * 1000 * 1000};
	volatile unsigned long polls = 0, shadow = 5;

	while (access(go, F_OK)) {
		nanosleep(&ts, NULL);
		polls++;
		shadow = polls * 3 + 5;
	}
	return shadow == polls * 3 + 5 ? 0 : -1;
}

static void *thread_main(void *go)
{
	return (void *)(long)poll_go(go);
}

int main(int argc, char **argv)
{
	char go[PATH_MAX + 8];
	unsigned long long started;
	int with_thread = 0, argi = 1;
	uint64_t *buf;
	size_t words;
	pthread_t thr;
	void *tret;
	long mib;
	char *end;

	if (argi < argc && !strcmp(argv[argi], "--thread")) {
		with_thread = 1;
		argi++;
	}
	if (argc != argi + 2)
		usage();
	mib = strtol(argv[argi], &end, 10);
	if (*end || mib <= 0 || mib > 4096)
		usage();
	snprintf(go, sizeof(go), "%s/go", argv[argi + 1]);
	words = (size_t)mib << 17;
	buf = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		fprintf(stderr, "bulk: cannot map %ld MiB: %s\n", mib, strerror(errno));
		return 2;
	}
	for (size_t i = 0; i < words; i++)
		buf[i] = mix(11, i);
	if (with_thread && (errno = pthread_create(&thr, NULL, thread_main, go))) {
		fprintf(stderr, "bulk: pthread_create: %s\n", strerror(errno));
		return 2;
	}
	started = start_time();
	printf("ready %d\n", (int)getpid());
	if (fflush(stdout))
		return 2;

	if (poll_go(go)) {
		fputs("bulk: main thread: poll counters disagree\n", stderr);
		failures++;
	}
	if (with_thread && (pthread_join(thr, &tret) || tret)) {
		fputs("bulk: second thread: poll counters disagree\n", stderr);
		failures++;
	}
	for (size_t i = 0; i < words; i++)
		if (buf[i] != mix(11, i)) {
			fprintf(stderr, "bulk: memory differs at offset %zu\n", i * 8);
			failures++;
			break;
		}
	printf("restored: %s\n", start_time() != started ? "yes" : "no");
	if (fflush(stdout))
		failures++;
	return failures ? 1 : 0;
}
