/* pvread: how fast this machine reads another process's memory, the way
 * ckpt-dump must: process_vm_readv into a reused 4 MiB buffer, nothing
 * else (no pagemap, no checksum, no zero check, no output).  It is the
 * ceiling of a dump's read side, as cat to /dev/null is of its output.
 *
 * usage: pvread PID THREADS
 *
 * Reads PID's largest private writable mapping (the bench workload's
 * data), each of THREADS threads its own contiguous part.  Reading does
 * not stop PID: run it on a process that does not change its mappings.
 * Prints "SECONDS BYTES" on stdout. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (4UL << 20)
#define MAX_THREADS 64

static pid_t pid;

static void die(const char *what)
{
	fprintf(stderr, "pvread: %s: %s\n", what, strerror(errno));
	exit(1);
}

struct part {
	unsigned long start, len;
};

static void *readpart(void *arg)
{
	struct part *p = arg;
	char *buf = malloc(CHUNK);

	if (!buf)
		die("malloc");
	for (unsigned long off = 0; off < p->len; off += CHUNK) {
		size_t n = p->len - off < CHUNK ? p->len - off : CHUNK;
		struct iovec l = {buf, n}, r = {(void *)(p->start + off), n};
		if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)n)
			die("process_vm_readv");
	}
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned long start = 0, end = 0, s, e;
	struct part parts[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	struct timespec t0, t1;
	char path[64], line[4096], perms[8];
	int nt;
	FILE *f;

	if (argc != 3 || (pid = atoi(argv[1])) <= 0 || (nt = atoi(argv[2])) < 1 ||
	    nt > MAX_THREADS) {
		fputs("usage: pvread PID THREADS\n", stderr);
		return 2;
	}
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if (!(f = fopen(path, "r")))
		die(path);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) == 3 && perms[1] == 'w' &&
		    perms[3] == 'p' && e - s > end - start) {
			start = s;
			end = e;
		}
	fclose(f);
	if (end == start) {
		errno = ENOENT;
		die("no writable mapping");
	}
	for (int i = 0; i < nt; i++) {
		unsigned long a = (start + (end - start) / nt * i) & ~4095UL;
		unsigned long b = i == nt - 1 ? end : (start + (end - start) / nt * (i + 1)) & ~4095UL;
		parts[i] = (struct part){a, b - a};
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < nt; i++)
		if ((errno = pthread_create(&th[i], NULL, readpart, &parts[i])))
			die("pthread_create");
	for (int i = 0; i < nt; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.6f %lu\n", t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9, end - start);
	return 0;
}
