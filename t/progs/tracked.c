/* tracked: a program whose memory is written in known steps in every way
 * a write tracker (ckpt-dump --track) must see: its heap, its stack, an
 * anonymous mapping (some of its pages dropped, MADV_DONTNEED, some of
 * those read again), a buffer the kernel fills through read(2), pages
 * another thread writes, a region mapped after the tracker was armed,
 * and pages written after a fork (copy-on-write broken).  What each page
 * holds after N steps is a function of N, kept in memory: a restored copy
 * checks every page.
 *
 * usage: tracked DIR [close]
 * Prints "ready PID"; when DIR/change.N appears (N = steps done + 1) it
 * takes step N and prints "changed N"; with "close" it first closes every
 * userfaultfd it has (the tracker a dump left).  When DIR/go appears it
 * checks its memory and prints "tracked: ok, N steps, restored: yes|no"
 * (exit 0), or a line on stderr (exit 1). */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define PAGE 4096
#define MAXSTEPS 8
enum { R_HEAP, R_STACK, R_ANON, R_READ, R_THREAD, R_NEW, NREG };
static const size_t npages[NREG] = {64, 16, 512, 16, 64, 16};
static const char *const names[NREG] = {"heap", "stack", "anon", "read(2)", "thread", "new"};

static char *base[NREG];
static char *fresh[MAXSTEPS + 1]; /* R_NEW: the region mapped at step s */
static int steps;
static const char *dir;
static int do_close;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int thread_step, thread_done;

static void fill(void *p, uint64_t seed, uint64_t n)
{
	uint64_t *w = p;

	for (uint64_t i = 0; i < PAGE / 8; i++)
		w[i] = mix(seed, n * (PAGE / 8) + i);
}

/* Whether step s writes page i of region r: one in eight. */
static int writes(int s, int r, size_t i)
{
	return s > 0 && mix(100 * s + r, i) % 8 == 0;
}

/* Whether step s drops page i of the anonymous region (MADV_DONTNEED:
 * zero from then on) instead. */
static int drops(int s, int r, size_t i)
{
	return r == R_ANON && s > 0 && !writes(s, r, i) && mix(200 * s, i) % 16 == 0;
}

static uint64_t seed(int r, int s)
{
	return 1000 * (r + 1) + s;
}

static void write_region(int r, char *p, int s)
{
	for (size_t i = 0; i < npages[r]; i++)
		if (writes(s, r, i))
			fill(p + i * PAGE, seed(r, s), i);
}

static void *writer(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	for (;;) {
		while (thread_step == thread_done)
			pthread_cond_wait(&cv, &mu);
		write_region(R_THREAD, base[R_THREAD], thread_step);
		thread_done = thread_step;
		pthread_cond_broadcast(&cv);
	}
	return NULL;
}

/* The kernel writes the pages: read(2) from a file that holds them. */
static void read_into(int s)
{
	char path[4096];
	static char page[PAGE];
	int fd;

	snprintf(path, sizeof(path), "%s/read.%d", dir, s);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		perror("tracked: open");
		exit(1);
	}
	for (size_t i = 0; i < npages[R_READ]; i++) {
		fill(page, seed(R_READ, s), i);
		if (pwrite(fd, page, PAGE, i * PAGE) != PAGE)
			exit(1);
	}
	for (size_t i = 0; i < npages[R_READ]; i++)
		if (writes(s, R_READ, i) &&
		    (lseek(fd, i * PAGE, SEEK_SET) < 0 || read(fd, base[R_READ] + i * PAGE, PAGE) != PAGE)) {
			perror("tracked: read");
			exit(1);
		}
	close(fd);
	unlink(path);
}

static void close_uffds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char path[300], link[64];

	while (d && (e = readdir(d))) {
		ssize_t n;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = 0;
			if (!strcmp(link, "anon_inode:[userfaultfd]"))
				close(atoi(e->d_name));
		}
	}
	if (d)
		closedir(d);
}

static void step(int s)
{
	pid_t child;

	if (do_close)
		close_uffds();
	/* A fork, whose child scribbles on its copy: copy-on-write. */
	child = fork();
	if (child == 0) {
		memset(base[R_ANON], 0x5a, npages[R_ANON] * PAGE);
		_exit(0);
	}
	if (child < 0 || waitpid(child, NULL, 0) != child) {
		perror("tracked: fork");
		exit(1);
	}
	write_region(R_HEAP, base[R_HEAP], s);
	write_region(R_STACK, base[R_STACK], s);
	write_region(R_ANON, base[R_ANON], s);
	for (size_t i = 0; i < npages[R_ANON]; i++)
		if (drops(s, R_ANON, i))
			madvise(base[R_ANON] + i * PAGE, PAGE, MADV_DONTNEED);
	/* Read back one dropped page in two: the zero page, mapped. */
	for (size_t i = 0; i < npages[R_ANON]; i += 2)
		if (drops(s, R_ANON, i) && base[R_ANON][i * PAGE + 7])
			exit(1);
	read_into(s);
	pthread_mutex_lock(&mu);
	thread_step = s;
	pthread_cond_broadcast(&cv);
	while (thread_done != s)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	fresh[s] = mmap(NULL, npages[R_NEW] * PAGE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fresh[s] == MAP_FAILED) {
		perror("tracked: mmap");
		exit(1);
	}
	for (size_t i = 0; i < npages[R_NEW]; i++)
		fill(fresh[s] + i * PAGE, seed(R_NEW, s), i);
	/* And the region of the step before, written again. */
	if (s > 1)
		write_region(R_NEW, fresh[s - 1], s);
	steps = s;
}

static int expect(int r, const char *p, size_t i, uint64_t sd)
{
	static uint64_t want[PAGE / 8];

	if (sd == 0)
		memset(want, 0, sizeof(want));
	else
		fill(want, sd, i);
	if (memcmp(p, want, PAGE)) {
		fprintf(stderr, "tracked: %s page %zu (%p) is not what step %d left\n", names[r],
			i, (const void *)p, steps);
		return 0;
	}
	return 1;
}

static int check_region(int r, const char *p, int from)
{
	for (size_t i = 0; i < npages[r]; i++) {
		int last = from, zero = 0;
		for (int s = from + 1; s <= steps; s++) {
			if (writes(s, r, i))
				last = s, zero = 0;
			if (drops(s, r, i))
				zero = 1;
		}
		if (!expect(r, p + i * PAGE, i, zero ? 0 : seed(r, last)))
			return 0;
	}
	return 1;
}

static int check(void)
{
	for (int r = 0; r < R_NEW; r++)
		if (!check_region(r, base[r], 0))
			return 0;
	for (int s = 1; s <= steps; s++) {
		/* Written at s, then at s + 1 (as step s + 1's), no more. */
		for (size_t i = 0; i < npages[R_NEW]; i++) {
			int last = s + 1 <= steps && writes(s + 1, R_NEW, i) ? s + 1 : s;
			if (!expect(R_NEW, fresh[s] + i * PAGE, i, seed(R_NEW, last)))
				return 0;
		}
	}
	return 1;
}

static int exists(const char *name, int n)
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
	static char stack_dummy;
	char stackbuf[16 * PAGE] __attribute__((aligned(PAGE)));
	struct timespec tick = {0, 1000 * 1000};
	unsigned long long born;
	pthread_t th;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: tracked DIR [close]\n");
		return 2;
	}
	(void)stack_dummy;
	dir = argv[1];
	do_close = argc == 3 && !strcmp(argv[2], "close");
	base[R_HEAP] = aligned_alloc(PAGE, npages[R_HEAP] * PAGE);
	base[R_STACK] = stackbuf;
	for (int r = R_ANON; r < R_NEW; r++)
		base[r] = mmap(NULL, npages[r] * PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int r = 0; r < R_NEW; r++) {
		if (!base[r] || base[r] == MAP_FAILED) {
			perror("tracked: alloc");
			return 1;
		}
		for (size_t i = 0; i < npages[r]; i++)
			fill(base[r] + i * PAGE, seed(r, 0), i);
	}
	if (pthread_create(&th, NULL, writer, NULL)) {
		fprintf(stderr, "tracked: cannot start the thread\n");
		return 1;
	}
	born = start_time();
	dprintf(1, "ready %d\n", (int)getpid());
	/* DIR/go first: a restored copy checks, and takes no step again. */
	while (!exists("go", -1)) {
		if (steps < MAXSTEPS && exists("change", steps + 1)) {
			step(steps + 1);
			dprintf(1, "changed %d\n", steps);
		}
		nanosleep(&tick, NULL);
	}
	if (!check())
		return 1;
	printf("tracked: ok, %d steps, restored: %s\n", steps, start_time() != born ? "yes" : "no");
	return 0;
}
