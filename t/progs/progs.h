/* progs.h: what the workload programs share. */
#ifndef CKPT_PROGS_H
#define CKPT_PROGS_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The fields of /proc/PATH/stat after the command name (field 3 on), in
 * buf; NULL if it cannot be read. */
static inline char *stat_fields(const char *path, char *buf, int size)
{
	FILE *f = fopen(path, "r");
	char *p;

	if (!f)
		return NULL;
	p = fgets(buf, size, f);
	fclose(f);
	if (!p || !(p = strrchr(buf, ')')) || !p[1])
		return NULL;
	return p + 2;
}

/* When this process started (field 22 of /proc/self/stat, in clock ticks
 * since boot): a restored process is a new one, whether or not it got its
 * old pid back, so a program tells a restore by this changing. */
static inline unsigned long long start_time(void)
{
	char buf[1024], *p = stat_fields("/proc/self/stat", buf, sizeof(buf));
	unsigned long long v = 0;
	int field = 3;

	if (!p)
		return 0;
	for (; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	sscanf(p, "%llu", &v);
	return v;
}

/* splitmix64: the pattern word at index i of the stream named seed. */
static inline uint64_t mix(uint64_t seed, uint64_t i)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ull + i + 1;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The monotonic clock, in seconds. */
static inline double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* clock c, in nanoseconds. */
static inline long long clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* put_line(FD, FMT, ...): one line written to FD in one write (a test or
 * the bench reads the file meanwhile); exit 3 if it cannot be. */
static inline void put_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void put_line(int fd, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(line) || write(fd, line, (size_t)n) != n)
		_exit(3);
}

/* A ticking thread's sleep: until *next moved on by ns (CLOCK_MONOTONIC,
 * absolute, so that a tick late does not make the next one late too). */
static inline void tick_sleep(struct timespec *next, long ns)
{
	next->tv_nsec += ns;
	if (next->tv_nsec >= 1000000000) {
		next->tv_nsec -= 1000000000;
		next->tv_sec++;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL) == EINTR)
		;
}

/* The calling thread's id as the kernel has it now, from the system call:
 * not glibc's cached copy, which a restore under new ids must rewrite. */
static inline pid_t kernel_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* The calling thread's rseq area as glibc registered it; NULL if glibc
 * did not (or was told not to). */
static inline struct rseq *rseq_area(void)
{
	if (__rseq_size == 0)
		return NULL;
	return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

/* Register the rseq area rs again: this fails with EBUSY only if rs is the
 * calling thread's registered area; an unregistered thread succeeds. */
static inline long rseq_register_again(struct rseq *rs)
{
	return syscall(SYS_rseq, rs, __rseq_size < 32 ? 32 : __rseq_size, 0, RSEQ_SIG);
}

/* Wait until path exists (the test's DIR/go), looking every 10 ms. */
static inline void wait_file(const char *path)
{
	struct timespec ts = {0, 10 * 1000 * 1000};

	while (access(path, F_OK))
		nanosleep(&ts, NULL);
}

/* DIR/NAME, in one of four buffers that take turns (a call may use four
 * at once).  in_dir(NAME): in the program's own dir. */
static inline char *path_in(const char *dir, const char *name)
{
	static char buf[4][4200];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}
#define in_dir(name) path_in(dir, (name))

/* A program that defines PROG, its name in messages, before it includes
 * this file counts its failed checks with fail() and exits 1 if there
 * were any, and gives up with die() when its setup fails. */
#ifdef PROG
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>

/* The checks failed so far (atomic: threads check side by side). */
static atomic_int failures;

/* fail(FMT, ...): one failed check: "PROG: " and the message, one line on
 * stderr in one write (threads may fail at once), counted in failures. */
static inline void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void fail(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "%s: ", PROG);

	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	buf[n++] = '\n';
	if (write(2, buf, n) < 0)
		n = 0;
	failures++;
}

/* die_err(WHAT, ERR): a step of the setup failed with the error ERR, so
 * there is nothing to check: "PROG: WHAT: ERROR" on stderr and exit 1.  A
 * program that tells a failed setup from a failed check defines
 * SETUP_FAILED, its exit status then, and says "PROG: setup: WHAT: ERROR".
 * die(WHAT): the same with errno. */
static inline _Noreturn void die_err(const char *what, int err)
{
#ifdef SETUP_FAILED
	fprintf(stderr, "%s: setup: %s: %s\n", PROG, what, strerror(err));
	exit(SETUP_FAILED);
#else
	fprintf(stderr, "%s: %s: %s\n", PROG, what, strerror(err));
	exit(1);
#endif
}
#define die(what) die_err((what), errno)

/* fd, which WHAT opened (die if it failed), moved to number want: want. */
static inline int fd_at(int want, int fd, const char *what)
{
	if (fd < 0)
		die(what);
	if (fd != want) {
		if (dup2(fd, want) < 0)
			die("dup2");
		close(fd);
	}
	return want;
}
#endif /* PROG */

#endif
