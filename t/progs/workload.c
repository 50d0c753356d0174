/* workload: the main test program for dump and restore.
 *
 * usage: workload [--thread] [--pipe-fd N] [--undumpable] DIR
 *
 * Sets up memory, files and kernel state of known content, prints
 * "ready PID", then polls every 10 ms (nanosleep) until DIR/go exists.  Then
 * it checks every piece of that state, prints one line per failed check on
 * stderr and "restored: yes" (the process started after "ready": a
 * restored one is a new process, whatever its pid) or
 * "restored: no" on stdout, and exits 0 only if everything was intact.
 *
 * What it writes after "ready" is idempotent or checked relative to what it
 * finds, so the same image can be restored twice: one line appended to
 * DIR/log (checked at the end of the file, wherever that is).
 *
 * --thread starts a second thread (waiting for DIR/go as well),
 * --pipe-fd N holds the read end of a pipe on fd N and --undumpable makes
 * the process one that its own user may not trace (PR_SET_DUMPABLE 0):
 * states ckpt-dump must refuse, leaving the program to run on. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define PROG "workload"
#define SETUP_FAILED 2
#include "progs.h"

#define HEAP_SIZE (16u << 20)
#define STACK_ARRAY (64u << 10)
#define ANON_SIZE (8u << 20)
#define GUARD_PAGES 16
#define MAPPED_SIZE (1u << 20)
#define WRITTEN_SIZE (100u << 10)
#define WRITTEN_POS 70000
#define LOG_LINES 5
#define BSS_SIZE (256u << 10)

/* Pages of the writable private file mapping that get modified (COW). */
static const unsigned cow_pages[] = {0, 1, 77, 200, 255};

static size_t page;

static uint8_t pattern_byte(uint64_t seed, size_t off)
{
	return (uint8_t)(mix(seed, off / 8) >> (8 * (off % 8)));
}

/* Fill len bytes (a multiple of 8) with the pattern of seed, starting at
 * stream offset base. */
__attribute__((noinline)) static void fill(void *buf, size_t len, uint64_t seed, size_t base)
{
	unsigned char *p = buf;

	for (size_t off = 0; off < len; off += 8) {
		uint64_t w = mix(seed, (base + off) / 8);
		memcpy(p + off, &w, 8);
	}
}

/* Offset of the first byte that differs from the pattern, or -1. */
__attribute__((noinline)) static long find_diff(const void *buf, size_t len, uint64_t seed,
						size_t base)
{
	const unsigned char *p = buf;

	for (size_t off = 0; off < len; off += 8) {
		uint64_t w = mix(seed, (base + off) / 8), v;
		memcpy(&v, p + off, 8);
		if (v != w)
			for (size_t b = 0; b < 8; b++)
				if (p[off + b] != pattern_byte(seed, base + off + b))
					return (long)(off + b);
	}
	return -1;
}

__attribute__((noinline)) static long find_nonzero(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i])
			return (long)i;
	return -1;
}

static void check_pattern(const char *what, const void *buf, size_t len, uint64_t seed, size_t base)
{
	long off = find_diff(buf, len, seed, base);

	if (off >= 0)
		fail("%s pattern differs at offset %ld", what, off);
}

static void write_all(int fd, const void *buf, size_t len, const char *what)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die(what);
		p += n;
		len -= n;
	}
}

/* ---- state that lives in the image ------------------------------------ */

static volatile sig_atomic_t usr1_count;
static void on_usr1(int sig)
{
	(void)sig;
	usr1_count++;
}

static unsigned char bss_buf[BSS_SIZE];
static uint64_t data_words[4] = {0x1111111111111111ull, 0x2222222222222222ull,
				 0x3333333333333333ull, 0x4444444444444444ull};
static __thread uint64_t tls_word = 0x7157715771577157ull;
static unsigned char altstack[64 << 10];

struct state {
	const char *dir;
	char go[PATH_MAX + 8];
	char cwd[PATH_MAX];
	int argc;
	char **argv;
	pid_t ready_pid;
	unsigned long long ready_start; /* starttime of /proc/self/stat */
	void *brk_at_ready;

	unsigned char *heap;
	unsigned char *anon;
	unsigned char *guard;
	unsigned char *guard_data; /* 3 pages: data, PROT_NONE with data, data */
	unsigned char *map_ro, *map_rw;
	int fd_written, fd_log, fd_null, fd_dir;
	off_t log_size_at_ready;
	struct stat dir_st;
};

/* Anonymous mapping, page i: written with the pattern (i % 4 == 0), written
 * with zeros (1), never touched (2), only read (3); the last page written. */
static int anon_page_written(size_t i)
{
	return i % 4 == 0 || i == ANON_SIZE / page - 1;
}

static void setup_memory(struct state *s)
{
	volatile unsigned char sink = 0;

	s->heap = malloc(HEAP_SIZE);
	if (!s->heap)
		die("malloc 16 MiB");
	fill(s->heap, HEAP_SIZE, 1, 0);

	fill(bss_buf, BSS_SIZE, 2, 0);
	tls_word ^= 0xffff;

	s->anon = mmap(NULL, ANON_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->anon == MAP_FAILED)
		die("mmap 8 MiB");
	for (size_t i = 0; i < ANON_SIZE / page; i++) {
		unsigned char *p = s->anon + i * page;
		if (anon_page_written(i))
			fill(p, page, 3, i * page);
		else if (i % 4 == 1)
			memset(p, 0, page);
		else if (i % 4 == 3)
			sink += p[page / 2];
	}
	(void)sink;

	s->guard = mmap(NULL, GUARD_PAGES * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->guard == MAP_FAILED)
		die("mmap PROT_NONE");

	/* A page that holds data and is then made inaccessible, between two
	 * accessible ones, as a thread stack's guard would be. */
	s->guard_data =
	    mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->guard_data == MAP_FAILED)
		die("mmap 3 pages");
	fill(s->guard_data, 3 * page, 4, 0);
	if (mprotect(s->guard_data + page, page, PROT_NONE))
		die("mprotect PROT_NONE");
}

static void setup_files(struct state *s)
{
	unsigned char *buf = malloc(MAPPED_SIZE);
	char line[64];
	int fd;

	if (!buf)
		die("malloc 1 MiB");
	fd = open("mapped", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("open mapped");
	fill(buf, MAPPED_SIZE, 5, 0);
	write_all(fd, buf, MAPPED_SIZE, "write mapped");
	s->map_ro = mmap(NULL, MAPPED_SIZE, PROT_READ, MAP_PRIVATE, fd, 0);
	s->map_rw = mmap(NULL, MAPPED_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (s->map_ro == MAP_FAILED || s->map_rw == MAP_FAILED)
		die("mmap mapped");
	close(fd);
	for (size_t i = 0; i < sizeof(cow_pages) / sizeof(cow_pages[0]); i++)
		fill(s->map_rw + cow_pages[i] * page, page, 6, cow_pages[i] * page);

	s->fd_written = open("written", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (s->fd_written < 0)
		die("open written");
	fill(buf, WRITTEN_SIZE, 7, 0);
	write_all(s->fd_written, buf, WRITTEN_SIZE, "write written");
	if (lseek(s->fd_written, WRITTEN_POS, SEEK_SET) != WRITTEN_POS)
		die("lseek written");
	free(buf);

	s->fd_log = open("log", O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (s->fd_log < 0)
		die("open log");
	for (int i = 1; i <= LOG_LINES; i++) {
		int n = snprintf(line, sizeof(line), "log line %d\n", i);
		write_all(s->fd_log, line, n, "write log");
	}
	s->log_size_at_ready = lseek(s->fd_log, 0, SEEK_END);

	s->fd_null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (s->fd_null < 0)
		die("open /dev/null");
	s->fd_dir = open(s->cwd, O_RDONLY | O_DIRECTORY);
	if (s->fd_dir < 0 || fstat(s->fd_dir, &s->dir_st))
		die("open DIR");
}

static void setup_signals(void)
{
	struct sigaction sa;
	sigset_t set;
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	if (sigaction(SIGUSR1, &sa, NULL))
		die("sigaction SIGUSR1");
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		die("sigprocmask");
	if (sigaltstack(&ss, NULL))
		die("sigaltstack");
}

/* ---- checks ----------------------------------------------------------- */

static void check_memory(const struct state *s)
{
	size_t i;
	long off;

	check_pattern("heap", s->heap, HEAP_SIZE, 1, 0);
	check_pattern("bss", bss_buf, BSS_SIZE, 2, 0);
	if (data_words[0] != 0x1111111111111111ull || data_words[3] != 0x4444444444444444ull)
		fail("initialized data differs: %#llx %#llx", (unsigned long long)data_words[0],
		     (unsigned long long)data_words[3]);
	if (tls_word != (0x7157715771577157ull ^ 0xffff))
		fail("thread-local word differs: %#llx", (unsigned long long)tls_word);

	for (i = 0; i < ANON_SIZE / page; i++) {
		const unsigned char *p = s->anon + i * page;
		if (anon_page_written(i))
			off = find_diff(p, page, 3, i * page);
		else
			off = find_nonzero(p, page);
		if (off >= 0) {
			fail("anonymous mapping: page %zu (%s) differs at offset %zu", i,
			     anon_page_written(i) ? "pattern" : "zero", i * page + off);
			break;
		}
	}
}

/* The PROT_NONE regions must still be PROT_NONE, then readable with their
 * content once made so. */
static void check_guards(const struct state *s)
{
	char line[512], want1[64], want2[64];
	int found1 = 0, found2 = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	snprintf(want1, sizeof(want1), "%lx-%lx ---p ", (unsigned long)s->guard,
		 (unsigned long)(s->guard + GUARD_PAGES * page));
	snprintf(want2, sizeof(want2), "%lx-%lx ---p ", (unsigned long)(s->guard_data + page),
		 (unsigned long)(s->guard_data + 2 * page));
	if (!f) {
		fail("cannot open /proc/self/maps: %s", strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		found1 |= !strncmp(line, want1, strlen(want1));
		found2 |= !strncmp(line, want2, strlen(want2));
	}
	fclose(f);
	if (!found1)
		fail("PROT_NONE region %s is not in /proc/self/maps", want1);
	if (!found2)
		fail("PROT_NONE page %s is not in /proc/self/maps", want2);
	if (mprotect(s->guard, GUARD_PAGES * page, PROT_READ) ||
	    mprotect(s->guard_data + page, page, PROT_READ)) {
		fail("cannot make the PROT_NONE regions readable: %s", strerror(errno));
		return;
	}
	if (find_nonzero(s->guard, GUARD_PAGES * page) >= 0)
		fail("PROT_NONE region is not all zeros");
	check_pattern("guard page neighbourhood", s->guard_data, 3 * page, 4, 0);
	mprotect(s->guard, GUARD_PAGES * page, PROT_NONE);
	mprotect(s->guard_data + page, page, PROT_NONE);
}

static void check_mapped(const struct state *s)
{
	unsigned char *buf = malloc(MAPPED_SIZE);
	int fd;

	check_pattern("read-only file mapping", s->map_ro, MAPPED_SIZE, 5, 0);
	for (size_t i = 0; i < MAPPED_SIZE / page; i++) {
		int cow = 0;
		for (size_t j = 0; j < sizeof(cow_pages) / sizeof(cow_pages[0]); j++)
			cow |= cow_pages[j] == i;
		if (find_diff(s->map_rw + i * page, page, cow ? 6 : 5, i * page) >= 0) {
			fail("writable private file mapping: page %zu differs from the %s", i,
			     cow ? "modification" : "file");
			break;
		}
	}
	/* The private modification must not have reached the file. */
	fd = open("mapped", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || !buf || pread(fd, buf, MAPPED_SIZE, 0) != MAPPED_SIZE)
		fail("cannot read back mapped: %s", strerror(errno));
	else
		check_pattern("file mapped", buf, MAPPED_SIZE, 5, 0);
	if (fd >= 0)
		close(fd);
	free(buf);
}

static void check_files(const struct state *s)
{
	unsigned char *buf = malloc(WRITTEN_SIZE);
	char line[64], back[64];
	struct stat st;
	off_t pos, end;
	int n, fl;

	pos = lseek(s->fd_written, 0, SEEK_CUR);
	if (pos != WRITTEN_POS)
		fail("written: offset is %lld, not %d", (long long)pos, WRITTEN_POS);
	if (fstat(s->fd_written, &st))
		fail("written: fstat: %s", strerror(errno));
	else if (st.st_size != WRITTEN_SIZE)
		fail("written: size is %lld, not %u", (long long)st.st_size, WRITTEN_SIZE);
	if ((fcntl(s->fd_written, F_GETFL) & O_ACCMODE) != O_RDWR)
		fail("written: not open read-write");
	if (fcntl(s->fd_written, F_GETFD) != 0)
		fail("written: close-on-exec flag set");
	if (!buf || pread(s->fd_written, buf, WRITTEN_SIZE, 0) != WRITTEN_SIZE)
		fail("written: cannot read: %s", strerror(errno));
	else
		check_pattern("written", buf, WRITTEN_SIZE, 7, 0);
	free(buf);

	/* The log: still O_APPEND, and a line written now lands at the end. */
	fl = fcntl(s->fd_log, F_GETFL);
	if (fl < 0 || !(fl & O_APPEND))
		fail("log: O_APPEND lost");
	end = lseek(s->fd_log, 0, SEEK_END);
	if (end < s->log_size_at_ready)
		fail("log: size %lld, shorter than the %lld at the checkpoint", (long long)end,
		     (long long)s->log_size_at_ready);
	n = snprintf(line, sizeof(line), "exit of pid %d\n", (int)getpid());
	lseek(s->fd_log, 0, SEEK_SET); /* O_APPEND must write at the end anyway */
	if (write(s->fd_log, line, n) != n)
		fail("log: cannot append: %s", strerror(errno));
	else if (fstat(s->fd_log, &st) || st.st_size != end + n)
		fail("log: appended line did not land at the end (size %lld, expected %lld)",
		     (long long)st.st_size, (long long)(end + n));
	else if (pread(s->fd_log, back, n, end) != n || memcmp(back, line, n))
		fail("log: appended line is not at offset %lld", (long long)end);

	/* /dev/null, still close-on-exec. */
	if (fstat(s->fd_null, &st) || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
		fail("fd %d is no longer /dev/null", s->fd_null);
	else if (write(s->fd_null, line, n) != n || read(s->fd_null, back, 1) != 0)
		fail("/dev/null: read or write misbehaves");
	if (fcntl(s->fd_null, F_GETFD) != FD_CLOEXEC)
		fail("/dev/null: close-on-exec flag lost");

	/* The directory fd: the same directory, usable with openat. */
	if (fstat(s->fd_dir, &st) || st.st_ino != s->dir_st.st_ino ||
	    st.st_dev != s->dir_st.st_dev || !S_ISDIR(st.st_mode))
		fail("fd %d is no longer the directory %s", s->fd_dir, s->cwd);
	else if (faccessat(s->fd_dir, "written", F_OK, 0))
		fail("openat relative to the directory fd fails: %s", strerror(errno));
}

static void check_signals(void)
{
	struct sigaction sa;
	sigset_t set;
	stack_t ss;
	sig_atomic_t before = usr1_count;
	int e;

	if (sigaction(SIGUSR1, NULL, &sa) || sa.sa_handler != on_usr1)
		fail("SIGUSR1 handler lost");
	else if (!(sa.sa_flags & SA_RESTART) || !(sa.sa_flags & SA_ONSTACK) ||
		 !sigismember(&sa.sa_mask, SIGUSR2))
		fail("SIGUSR1 flags or mask lost (flags %#x)", sa.sa_flags);
	if (sigaction(SIGPIPE, NULL, &sa) || sa.sa_handler != SIG_IGN)
		fail("SIGPIPE no longer ignored");
	if (sigprocmask(SIG_BLOCK, NULL, &set) || !sigismember(&set, SIGUSR2) ||
	    sigismember(&set, SIGUSR1))
		fail("signal mask differs (SIGUSR2 should be blocked, SIGUSR1 not)");
	if (sigaltstack(NULL, &ss) || ss.ss_sp != altstack || ss.ss_size != sizeof(altstack))
		fail("alternate signal stack lost");

	if (raise(SIGUSR1))
		fail("raise(SIGUSR1): %s", strerror(errno));
	if (usr1_count != before + 1)
		fail("raise(SIGUSR1) did not run the handler");
	e = pthread_kill(pthread_self(), SIGUSR1);
	if (e)
		fail("pthread_kill(pthread_self(), SIGUSR1): %s", strerror(e));
	else if (usr1_count != before + 2)
		fail("pthread_kill(pthread_self(), SIGUSR1) did not run the handler");
}

static void check_process(const struct state *s)
{
	char buf[4096], cwd[PATH_MAX];
	size_t want_len = 0;
	ssize_t n;
	mode_t m;
	int fd;

	if (getpid() != (pid_t)syscall(SYS_gettid))
		fail("getpid() %d and gettid() %ld differ", (int)getpid(), syscall(SYS_gettid));

	fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < s->argc; i++) {
		size_t l = strlen(s->argv[i]) + 1;
		if (n >= 0 && want_len + l <= (size_t)n && memcmp(buf + want_len, s->argv[i], l))
			n = -2;
		want_len += l;
	}
	if (n < 0 || (size_t)n != want_len)
		fail("/proc/self/cmdline is not the argv this program started with");

	if (!getcwd(cwd, sizeof(cwd)))
		fail("getcwd: %s", strerror(errno));
	else if (strcmp(cwd, s->cwd))
		fail("cwd is %s, not %s", cwd, s->cwd);
	m = umask(027);
	if (m != 027)
		fail("umask is %03o, not 027", (unsigned)m);
}

static void check_rseq(void)
{
	struct rseq *rs = rseq_area();
	long r;

	if (!rs)
		return;
	if ((int32_t)rs->cpu_id < 0)
		fail("rseq cpu_id is %d: the area is not registered", (int32_t)rs->cpu_id);
	if (sched_getcpu() < 0)
		fail("sched_getcpu: %s", strerror(errno));
	r = rseq_register_again(rs);
	if (r == 0)
		fail("rseq area at %p was not registered", (void *)rs);
	else if (errno != EBUSY)
		fail("rseq area at %p: registering it again gives %s, not EBUSY", (void *)rs,
		     strerror(errno));
}

/* brk where it was; the allocator can still grow the heap and map. */
static void check_allocator(const struct state *s)
{
	void *small[256];
	unsigned char *big;

	if (sbrk(0) != s->brk_at_ready)
		fail("sbrk(0) is %p, was %p", sbrk(0), s->brk_at_ready);
	big = malloc(64u << 20);
	if (!big) {
		fail("malloc 64 MiB failed");
	} else {
		for (size_t i = 0; i < (64u << 20); i += page)
			big[i] = (unsigned char)i | 1;
		for (size_t i = 0; i < (64u << 20); i += page)
			if (big[i] != ((unsigned char)i | 1)) {
				fail("64 MiB allocation does not hold what was written");
				break;
			}
		free(big);
	}
	for (int i = 0; i < 256; i++) {
		small[i] = malloc(4000);
		if (!small[i]) {
			fail("small malloc %d failed", i);
			return;
		}
		memset(small[i], i, 4000);
	}
	for (int i = 0; i < 256; i++) {
		if (((unsigned char *)small[i])[3999] != (unsigned char)i)
			fail("small allocation %d overwritten", i);
		free(small[i]);
	}
}

/* ---- refused states --------------------------------------------------- */

static void *thread_main(void *arg)
{
	wait_file(arg);
	return NULL;
}

static void usage(void)
{
	fputs("usage: workload [--thread] [--pipe-fd N] [--undumpable] DIR\n", stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned char stack_array[STACK_ARRAY];
	struct timespec ts = {0, 10 * 1000 * 1000};
	static struct state s;
	volatile unsigned long polls = 0, polls_shadow = 3;
	int with_thread = 0, undumpable = 0, pipe_fd = -1, argi = 1;
	pthread_t thr;
	long off;

	s.argc = argc;
	s.argv = argv;
	page = sysconf(_SC_PAGESIZE);
	for (; argi < argc - 1 && !strncmp(argv[argi], "--", 2); argi++) {
		if (!strcmp(argv[argi], "--thread")) {
			with_thread = 1;
		} else if (!strcmp(argv[argi], "--undumpable")) {
			undumpable = 1;
		} else if (!strcmp(argv[argi], "--pipe-fd") && argi + 2 < argc) {
			pipe_fd = atoi(argv[++argi]);
			if (pipe_fd < 3)
				usage();
		} else {
			usage();
		}
	}
	if (argc != argi + 1)
		usage();
	s.dir = argv[argi];
	if (!realpath(s.dir, s.cwd))
		die(s.dir);
	snprintf(s.go, sizeof(s.go), "%s/go", s.cwd);
	if (chdir(s.cwd))
		die("chdir");
	umask(027);

	if (pipe_fd >= 0) {
		int p[2];
		if (pipe(p) || dup2(p[0], pipe_fd) < 0)
			die("pipe");
		close(p[0]);
		close(p[1]);
	}

	fill(stack_array, sizeof(stack_array), 8, 0);
	setup_memory(&s);
	setup_files(&s);
	setup_signals();
	if (undumpable && prctl(PR_SET_DUMPABLE, 0))
		die("prctl PR_SET_DUMPABLE");
	if (with_thread && (errno = pthread_create(&thr, NULL, thread_main, s.go)))
		die("pthread_create");

	s.ready_pid = getpid();
	s.ready_start = start_time();
	printf("ready %d\n", (int)s.ready_pid);
	if (fflush(stdout))
		die("stdout");
	s.brk_at_ready = sbrk(0);

	while (access(s.go, F_OK)) {
		nanosleep(&ts, NULL);
		polls++;
		polls_shadow = polls * 7 + 3;
	}
	check_allocator(&s);
	if (polls_shadow != polls * 7 + 3)
		fail("poll counters disagree: %lu, %lu", polls, polls_shadow);

	off = find_diff(stack_array, sizeof(stack_array), 8, 0);
	if (off >= 0)
		fail("stack array pattern differs at offset %ld", off);
	check_memory(&s);
	check_guards(&s);
	check_mapped(&s);
	check_files(&s);
	check_signals();
	check_process(&s);
	check_rseq();
	if (with_thread)
		pthread_join(thr, NULL);

	printf("restored: %s\n", start_time() != s.ready_start ? "yes" : "no");
	if (fflush(stdout))
		fail("cannot write stdout: %s", strerror(errno));
	return failures ? 1 : 0;
}
