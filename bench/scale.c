/* scale: the workload of make bench's Scale rows: one program made large in one way.
 *
 * usage: scale mem MIB T0FILE DIR | threads N T0FILE DIR | regions N T0FILE DIR |
 *              tree N T0FILE DIR | fds N T0FILE DIR
 *
 *   mem MIB     MIB MiB of private anonymous memory, every 8-byte word a pattern word;
 *   threads N   N threads besides the main one, each with a pattern on its stack and in its TLS,
 *               waiting at a barrier;
 *   regions N   N one-page private anonymous regions, alternately read-write and read-only (so
 *               that the kernel cannot merge them), between two PROT_NONE pages, each holding
 *               its own pattern words;
 *   tree N      N processes: this one and its descendants, four children each (a 4-ary tree),
 *               each with a page of its own pattern, a child waiting on a pipe from its parent;
 *   fds N       N open fds, raising RLIMIT_NOFILE's soft limit to the hard one first: in eights,
 *               two regular files (DIR/f0..f7) at offsets of their own, a pipe with 8 bytes in
 *               it, a unix socketpair with 8 bytes queued, two eventfds with counters (the
 *               remainder eventfds).
 *
 * It prints "ready PID" in one write once all is set up, then waits.  After a restore the
 * process is a new one (its /proc/self/stat start time changed): the main thread notices within
 * a millisecond, reads CLOCK_REALTIME, subtracts the nanoseconds since the epoch in T0FILE
 * (written by bench/run just before ckpt-remap starts), checks everything it made (tree: its
 * children check themselves, and it waits for every process), prints "restored RESUME_NS
 * CHECK_NS ok" (or "restored RESUME_NS CHECK_NS bad: N checks failed", the checks on stderr)
 * and exits 0 only if all is intact. */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define PROG "scale"
#include "progs.h"

#define PAGE 4096
#define FANOUT 4
#define NFILES 8
#define FILE_SIZE (64 << 10)

static long n;
static const char *dir;

/* ---- mem ---- */

static uint64_t *mem;
static size_t mem_words;

static void mem_setup(void)
{
	size_t len = (size_t)n << 20;

	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap");
	mem_words = len / 8;
	for (size_t i = 0; i < mem_words; i++)
		mem[i] = mix(1, i);
}

static void mem_check(void)
{
	for (size_t i = 0; i < mem_words; i++)
		if (mem[i] != mix(1, i)) {
			fail("mem: word %zu (page %zu) differs", i, i * 8 / PAGE);
			return;
		}
}

/* ---- threads ---- */

#define STACK_WORDS 64
static pthread_barrier_t ready_bar, go_bar;
static atomic_int alive;
static __thread long tls_index = -1;

static void *thread_main(void *arg)
{
	long k = (long)(intptr_t)arg;
	volatile uint64_t stack[STACK_WORDS];

	tls_index = k;
	for (int i = 0; i < STACK_WORDS; i++)
		stack[i] = mix((uint64_t)k + 100, i);
	pthread_barrier_wait(&ready_bar);
	pthread_barrier_wait(&go_bar);
	/* Running again after the restore: its stack, its TLS. */
	for (int i = 0; i < STACK_WORDS; i++)
		if (stack[i] != mix((uint64_t)k + 100, i)) {
			fail("thread %ld: stack word %d differs", k, i);
			return NULL;
		}
	if (tls_index != k) {
		fail("thread %ld: its TLS says %ld", k, tls_index);
		return NULL;
	}
	alive++;
	return NULL;
}

static pthread_t *threads;

static void threads_setup(void)
{
	pthread_attr_t at;

	threads = calloc(n, sizeof(*threads));
	if (!threads || pthread_attr_init(&at) || pthread_attr_setstacksize(&at, 64 << 10))
		die("pthread_attr");
	if (pthread_barrier_init(&ready_bar, NULL, n + 1) || pthread_barrier_init(&go_bar, NULL, n + 1))
		die("pthread_barrier_init");
	for (long k = 0; k < n; k++)
		if ((errno = pthread_create(&threads[k], &at, thread_main, (void *)(intptr_t)k)))
			die("pthread_create");
	pthread_barrier_wait(&ready_bar);
}

static long count_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	long c = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		c += e->d_name[0] != '.';
	closedir(d);
	return c;
}

static void threads_check(void)
{
	long c = count_tasks();

	if (c != n + 1)
		fail("threads: %ld tasks in /proc/self/task, not %ld", c, n + 1);
	pthread_barrier_wait(&go_bar);
	for (long k = 0; k < n; k++)
		pthread_join(threads[k], NULL);
	if (alive != n)
		fail("threads: %d of %ld threads ran their check", (int)alive, n);
}

/* ---- regions ---- */

static unsigned char *reg;

static int reg_prot(long i)
{
	return i % 2 ? PROT_READ : PROT_READ | PROT_WRITE;
}

static void regions_setup(void)
{
	/* Between two PROT_NONE pages: the last region, read-write when n is
	 * odd, would otherwise merge at restore with a read-write neighbour
	 * the kernel puts next to it. */
	reg = mmap(NULL, (size_t)(n + 2) * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (reg == MAP_FAILED || mprotect(reg, PAGE, PROT_NONE) ||
	    mprotect(reg + (size_t)(n + 1) * PAGE, PAGE, PROT_NONE))
		die("mmap");
	reg += PAGE;
	for (long i = 0; i < n; i++) {
		uint64_t *w = (uint64_t *)(reg + (size_t)i * PAGE);
		w[0] = mix(2, i);
		w[PAGE / 8 - 1] = ~mix(2, i);
	}
	for (long i = 1; i < n; i += 2)
		if (mprotect(reg + (size_t)i * PAGE, PAGE, reg_prot(i)))
			die("mprotect");
}

static void regions_check(void)
{
	uintptr_t lo = (uintptr_t)reg, hi = lo + (size_t)n * PAGE, a, b;
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512], perms[8];
	long seen = 0;

	for (long i = 0; i < n; i++) {
		uint64_t *w = (uint64_t *)(reg + (size_t)i * PAGE);
		if (w[0] != mix(2, i) || w[PAGE / 8 - 1] != ~mix(2, i)) {
			fail("regions: page %ld differs", i);
			break;
		}
	}
	if (!f) {
		fail("regions: /proc/self/maps: %s", strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) != 3 || b <= lo || a >= hi)
			continue;
		long i = (long)((a - lo) / PAGE);
		int want = reg_prot(i);
		if (a < lo || b > hi || b - a != PAGE || perms[0] != 'r' ||
		    (perms[1] == 'w') != !!(want & PROT_WRITE) || perms[3] != 'p') {
			fail("regions: %lx-%lx %s is not region %ld as made", a, b, perms, i);
			break;
		}
		seen++;
	}
	fclose(f);
	if (seen != n)
		fail("regions: %ld of the %ld regions in /proc/self/maps", seen, n);
}

/* ---- tree ---- */

static int kids[FANOUT], nkids;
static pid_t kid_pid[FANOUT], parent_pid;
static long node;
static uint64_t node_page[PAGE / 8];

/* After the go: pass it on, check this process, wait for the children;
 * 0 if all is intact here and below. */
static int tree_run(void)
{
	int ok = 1, st;

	for (int c = 0; c < nkids; c++)
		if (write(kids[c], "g", 1) != 1) {
			fail("tree: process %ld: cannot wake child %d: %s", node, c, strerror(errno));
			ok = 0;
		}
	for (int i = 0; i < PAGE / 8; i++)
		if (node_page[i] != mix(3 + (uint64_t)node, i)) {
			fail("tree: process %ld: word %d differs", node, i);
			ok = 0;
			break;
		}
	if (node && getppid() != parent_pid) {
		fail("tree: process %ld: parent %d, not %d", node, getppid(), parent_pid);
		ok = 0;
	}
	for (int c = 0; c < nkids; c++)
		if (waitpid(kid_pid[c], &st, 0) != kid_pid[c] || !WIFEXITED(st) || WEXITSTATUS(st)) {
			fail("tree: process %ld: child %d (pid %d) failed", node, c, kid_pid[c]);
			ok = 0;
		}
	return ok;
}

static void tree_setup(void)
{
	int ready[2], go = -1;
	char c;

	if (pipe(ready))
		die("pipe");
	node = 0;
	/* Each process forks its children 4k+1..4k+4 and keeps the write end
	 * of a pipe to each; a child closes what it inherited of its parent's. */
	for (;;) {
		int forked = 0;
		for (long k = node * FANOUT + 1; k <= node * FANOUT + FANOUT && k < n; k++) {
			int p[2];
			pid_t me = getpid();
			if (pipe(p))
				die("pipe");
			pid_t pid = fork();
			if (pid < 0)
				die("fork");
			if (pid == 0) {
				for (int i = 0; i < nkids; i++)
					close(kids[i]);
				if (go >= 0)
					close(go);
				close(p[1]);
				go = p[0];
				nkids = 0;
				node = k;
				parent_pid = me;
				forked = 1;
				break;
			}
			close(p[0]);
			kid_pid[nkids] = pid;
			kids[nkids++] = p[1];
		}
		if (!forked)
			break;
	}
	for (int i = 0; i < PAGE / 8; i++)
		node_page[i] = mix(3 + (uint64_t)node, i);
	if (node) {
		close(ready[0]);
		if (write(ready[1], "r", 1) != 1)
			die("write");
		close(ready[1]);
		while (read(go, &c, 1) < 0 && errno == EINTR)
			;
		_exit(tree_run() ? 0 : 1);
	}
	close(ready[1]);
	for (long i = 1; i < n; i++)
		if (read(ready[0], &c, 1) != 1)
			die("read");
	close(ready[0]);
}

static void tree_check(void)
{
	tree_run();
}

/* ---- fds ---- */

enum { K_FILE, K_PIPE, K_SOCK, K_EVENT };
struct fdrec {
	int fd, kind, peer;
	uint64_t val;
};
static struct fdrec *fds;

static off_t file_off(long i)
{
	return (off_t)((i * 8 * 7) % (FILE_SIZE - 8));
}

static void file_word(int f, off_t off, uint64_t *w)
{
	*w = mix(4 + (uint64_t)f, (uint64_t)off / 8);
}

static int fd_make(long i)
{
	static char path[4200];
	long r = i % 8;

	if (i + 1 < n && (r == 2 || r == 4)) {
		int p[2], isp = r == 2;
		if ((isp ? pipe(p) : socketpair(AF_UNIX, SOCK_STREAM, 0, p)))
			die(isp ? "pipe" : "socketpair");
		fds[i] = (struct fdrec){p[0], isp ? K_PIPE : K_SOCK, p[1], mix(5, i)};
		fds[i + 1] = (struct fdrec){p[1], isp ? K_PIPE : K_SOCK, -1, 0};
		if (write(p[1], &fds[i].val, 8) != 8)
			die("write");
		return 2;
	}
	if (r < 2) {
		int f = (int)(i % NFILES);
		snprintf(path, sizeof(path), "%s/f%d", dir, f);
		int fd = open(path, O_RDWR);
		if (fd < 0 || lseek(fd, file_off(i), SEEK_SET) < 0)
			die(path);
		fds[i] = (struct fdrec){fd, K_FILE, f, 0};
		return 1;
	}
	fds[i] = (struct fdrec){eventfd((unsigned)(i + 1), 0), K_EVENT, -1, (uint64_t)i + 1};
	if (fds[i].fd < 0)
		die("eventfd");
	return 1;
}

static void fds_setup(void)
{
	struct rlimit rl;
	uint64_t w[FILE_SIZE / 8];

	if (getrlimit(RLIMIT_NOFILE, &rl))
		die("getrlimit");
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		die("setrlimit");
	if (rl.rlim_cur < (rlim_t)n + 16) {
		fprintf(stderr, "scale: %ld fds do not fit under RLIMIT_NOFILE %llu\n", n,
			(unsigned long long)rl.rlim_cur);
		exit(1);
	}
	for (int f = 0; f < NFILES; f++) {
		char path[4200];
		snprintf(path, sizeof(path), "%s/f%d", dir, f);
		int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0)
			die("open");
		for (int i = 0; i < FILE_SIZE / 8; i++)
			file_word(f, (off_t)i * 8, &w[i]);
		if (write(fd, w, sizeof(w)) != (ssize_t)sizeof(w))
			die("write");
		close(fd);
	}
	fds = calloc(n, sizeof(*fds));
	if (!fds)
		die("calloc");
	for (long i = 0; i < n;)
		i += fd_make(i);
}

static const char *kind_names[] = {"/", "pipe:[", "socket:[", "anon_inode:[eventfd]"};

static void fd_check(long i)
{
	struct fdrec *r = &fds[i];
	char proc[64], link[4200];
	uint64_t v = 0, want;
	ssize_t len;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", r->fd);
	len = readlink(proc, link, sizeof(link) - 1);
	if (len < 0) {
		fail("fds: fd %d (%ld): %s", r->fd, i, strerror(errno));
		return;
	}
	link[len] = 0;
	if (strncmp(link, kind_names[r->kind], strlen(kind_names[r->kind]))) {
		fail("fds: fd %d (%ld) is %s", r->fd, i, link);
		return;
	}
	switch (r->kind) {
	case K_FILE:
		file_word(r->peer, file_off(i), &want);
		if (lseek(r->fd, 0, SEEK_CUR) != file_off(i) || read(r->fd, &v, 8) != 8 || v != want)
			fail("fds: fd %d (%ld, file f%d): offset or contents differ", r->fd, i, r->peer);
		break;
	case K_PIPE:
	case K_SOCK:
		if (r->peer < 0)
			break;
		if (read(r->fd, &v, 8) != 8 || v != r->val)
			fail("fds: fd %d (%ld): the bytes queued differ", r->fd, i);
		/* And it still carries bytes from its other end. */
		if (write(r->peer, &i, sizeof(i)) != sizeof(i) || read(r->fd, &v, 8) != 8 ||
		    v != (uint64_t)i)
			fail("fds: fd %d to %d (%ld): no longer joined", r->peer, r->fd, i);
		break;
	case K_EVENT:
		if (read(r->fd, &v, 8) != 8 || v != r->val)
			fail("fds: fd %d (%ld): eventfd counter %llu, not %llu", r->fd, i,
			     (unsigned long long)v, (unsigned long long)r->val);
		break;
	}
}

static void fds_check(void)
{
	for (long i = 0; i < n; i++)
		fd_check(i);
}

/* ---- main ---- */

static const struct mode {
	const char *name;
	void (*setup)(void), (*check)(void);
} modes[] = {
	{"mem", mem_setup, mem_check},		   {"threads", threads_setup, threads_check},
	{"regions", regions_setup, regions_check}, {"tree", tree_setup, tree_check},
	{"fds", fds_setup, fds_check},
};

static void usage(void)
{
	fputs("usage: scale mem|threads|regions|tree|fds N T0FILE DIR\n", stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	const struct mode *m = NULL;
	unsigned long long started;
	struct timespec next;
	long long last, now, real, t0 = 0, c0;
	FILE *f;

	if (argc != 5)
		usage();
	for (size_t i = 0; i < sizeof(modes) / sizeof(*modes); i++)
		if (!strcmp(argv[1], modes[i].name))
			m = &modes[i];
	n = atol(argv[2]);
	dir = argv[4];
	if (!m || n <= 0)
		usage();
	m->setup();
	started = start_time();
	put_line(1, "ready %d\n", (int)getpid());
	/* A 1 ms tick; a tick late by over 20 ms was stopped (a dump) or
	 * restored, and a restored process has a new start time. */
	clock_gettime(CLOCK_MONOTONIC, &next);
	last = clock_ns(CLOCK_MONOTONIC);
	for (;;) {
		tick_sleep(&next, 1000000);
		real = clock_ns(CLOCK_REALTIME);
		now = clock_ns(CLOCK_MONOTONIC);
		if (now - last > 20000000) {
			if (start_time() != started)
				break;
			clock_gettime(CLOCK_MONOTONIC, &next);
		}
		last = now;
	}
	f = fopen(argv[3], "r");
	if (!f || fscanf(f, "%lld", &t0) != 1) {
		put_line(1, "restored bad: cannot read %s\n", argv[3]);
		return 1;
	}
	fclose(f);
	c0 = clock_ns(CLOCK_MONOTONIC);
	m->check();
	now = clock_ns(CLOCK_MONOTONIC);
	if (failures) {
		put_line(1, "restored %lld %lld bad: %d checks failed\n", real - t0, now - c0,
			 (int)failures);
		return 1;
	}
	put_line(1, "restored %lld %lld ok\n", real - t0, now - c0);
	return 0;
}
