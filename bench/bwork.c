/* bwork: the workload of make bench.
 *
 * usage: bwork random|halfzero|text|sparse MIB T0FILE [touch]
 *
 * Fills MIB MiB of anonymous memory with a pattern whose every page it can
 * regenerate: random bytes; half the pages random and half written with
 * zeros; text (words of a small vocabulary, compressible as prose is); or,
 * for sparse, a 64 GiB MAP_NORESERVE region in which MIB MiB of pages are
 * touched, spread evenly.  It prints "ready PID DATA" (DATA: bytes of
 * non-zero pages it wrote) in one write, then waits.
 *
 * A second thread wakes every millisecond and keeps the largest gap
 * between two of its wake-ups: while the process is stopped (ptrace) it
 * does not run, so the largest gap over a dump is how long the program was
 * frozen, to about a millisecond.  SIGUSR1 prints "gap N NS" (N counts the
 * reports, NS is the largest gap since the last report) and starts over.
 * SIGUSR2 rewrites 1 % of the data pages (for incremental dumps) and prints
 * "changed PAGES": the same pages each time, with bytes new each time (a
 * rewrite of what the last dump stored is a change a dump must store).
 *
 * After a restore the process is a new one (its /proc/self/stat start time
 * changed).  The ticking thread notices at its first wake-up: it reads
 * CLOCK_REALTIME, subtracts the nanoseconds since the epoch found in
 * T0FILE (written by bench/run just before it started ckpt-remap), checks
 * every page, prints "restored RESUME_NS VERIFY_NS ok" (or "... bad: what")
 * and exits 0 only if the memory is intact.  With touch, before the check
 * it first touches every pattern page in a scattered order (a stride
 * coprime with their number), timing each first touch, and prints
 * "touch MEDIAN_NS P99_NS ALLIN_NS MAX_NS" (ALLIN: from T0 until the last
 * page was touched): what a program waits for its pages after a lazy
 * restore. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define PAGE 4096
#define TICK_NS 1000000ll
#define SPARSE_SIZE (64ull << 30)
/* A gap this long is a stop or a restore: only then is /proc read. */
#define LONG_GAP_NS (20 * TICK_NS)

enum pattern { RANDOM, HALFZERO, TEXT, SPARSE };

static enum pattern pat;
static unsigned char *base;
static uint64_t npages;	    /* pages holding the pattern (sparse: touched pages) */
static uint64_t stride = 1; /* pages between two pattern pages (sparse) */
static int changed;	    /* times SIGUSR2 rewrote 1 % of the pages */
static const char *t0file;
static unsigned long long ready_start;
static long long max_gap;
static unsigned long ticks; /* wake-ups of the ticking thread */
static int touch;	    /* time first touches after a restore */

static const char *const words[] = {
    "the",	   "of",	 "and",	    "to",	  "in",	     "a",	 "is",	   "that",
    "for",	   "it",	 "as",	    "was",	  "with",    "be",	 "by",	   "on",
    "not",	   "he",	 "this",    "are",	  "or",	     "his",	 "from",   "at",
    "which",	   "but",	 "have",    "an",	  "had",     "they",	 "you",	   "were",
    "their",	   "one",	 "all",	    "we",	  "can",     "her",	 "has",	   "there",
    "been",	   "if",	 "more",    "when",	  "will",    "would",	 "who",	   "so",
    "no",	   "checkpoint", "restart", "process",	  "memory",  "image",	 "page",   "kernel",
    "thread",	   "signal",	 "file",    "region",	  "mapping", "register", "stack",  "heap",
    "compression", "stream",	 "pipe",    "descriptor", "restore", "dump",	 "write",  "read",
    "time",	   "second",	 "machine", "limit",	  "program", "state",	 "system", "call",
    "return",	   "value",	 "error",   "status",	  "message", "output",	 "input",  "buffer",
    "size",	   "offset",	 "address", "length",	  "number",  "count",	 "first",  "last",
    "1970",	   "2026",	 "42",	    "4096",	  "0x7fff",  "-1",	 "NULL",   "EINTR",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static void die(const char *what)
{
	fprintf(stderr, "bwork: %s: %s\n", what, strerror(errno));
	exit(2);
}

static int is_changed(uint64_t i)
{
	return changed && i % 100 == 50;
}

/* What pattern page i holds now. */
static void expected(uint64_t i, unsigned char *out)
{
	uint64_t seed = is_changed(i) ? 98 + (uint64_t)changed : 1, w;

	if (pat == HALFZERO && i % 2) {
		memset(out, 0, PAGE);
		return;
	}
	if (pat != TEXT) {
		for (int k = 0; k < PAGE; k += 8) {
			w = mix(seed, i * (PAGE / 8) + k / 8);
			memcpy(out + k, &w, 8);
		}
		return;
	}
	/* Words and spaces, a line break now and then, never a zero byte. */
	for (int k = 0, j = 0; k < PAGE; j++) {
		uint64_t r = mix(mix(seed, i), j);
		const char *wd = words[r % NWORDS];
		size_t l = strlen(wd);
		if (l > (size_t)(PAGE - k))
			l = PAGE - k;
		memcpy(out + k, wd, l);
		k += l;
		if (k < PAGE)
			out[k++] = (r >> 32) % 11 ? ' ' : '\n';
	}
}

static unsigned char *page_at(uint64_t i)
{
	return base + i * stride * PAGE;
}

/* The first page that does not hold what it should, or -1. */
static long long verify(void)
{
	static unsigned char want[PAGE];
	static const unsigned char zero[PAGE];

	for (uint64_t i = 0; i < npages; i++) {
		expected(i, want);
		if (memcmp(page_at(i), want, PAGE))
			return (long long)i;
		/* Between touched sparse pages: zeros (reading maps the zero page). */
		if (stride > 1 && memcmp(page_at(i) + PAGE, zero, PAGE))
			return (long long)i;
	}
	return -1;
}

static int by_ns(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* Each pattern page's first touch, timed, in a scattered order. */
static void touch_all(long long t0)
{
	uint32_t *ns = malloc(npages * sizeof(*ns));
	uint64_t step = 2654435761u % npages, k = 0;
	volatile unsigned char sink;

	if (!ns)
		die("malloc");
	while (gcd(step, npages) != 1)
		step++;
	for (uint64_t i = 0; i < npages; i++) {
		long long s;

		k = (k + step) % npages;
		s = clock_ns(CLOCK_MONOTONIC);
		sink = page_at(k)[0];
		s = clock_ns(CLOCK_MONOTONIC) - s;
		ns[i] = s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
	}
	(void)sink;
	qsort(ns, npages, sizeof(*ns), by_ns);
	put_line(1, "touch %u %u %lld %u\n", ns[npages / 2], ns[npages * 99 / 100],
		 clock_ns(CLOCK_REALTIME) - t0, ns[npages - 1]);
	free(ns);
}

static void on_restore(long long now_real)
{
	long long t0 = 0, v0, bad;
	FILE *f = fopen(t0file, "r");

	if (!f || fscanf(f, "%lld", &t0) != 1) {
		put_line(1, "restored bad: cannot read %s\n", t0file);
		exit(1);
	}
	fclose(f);
	if (touch)
		touch_all(t0);
	v0 = clock_ns(CLOCK_MONOTONIC);
	bad = verify();
	if (bad >= 0) {
		put_line(1, "restored %lld %lld bad: page %lld differs\n", now_real - t0,
		    clock_ns(CLOCK_MONOTONIC) - v0, bad);
		exit(1);
	}
	put_line(1, "restored %lld %lld ok\n", now_real - t0, clock_ns(CLOCK_MONOTONIC) - v0);
	exit(0);
}

static void *ticker(void *arg)
{
	struct timespec next;
	long long last = clock_ns(CLOCK_MONOTONIC), now, gap;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		/* Restarted by the restore with its deadline long past, so the
		 * first thing the restored program does is return from here. */
		tick_sleep(&next, TICK_NS);
		long long real = clock_ns(CLOCK_REALTIME);
		now = clock_ns(CLOCK_MONOTONIC);
		gap = now - last;
		last = now;
		if (gap > __atomic_load_n(&max_gap, __ATOMIC_RELAXED))
			__atomic_store_n(&max_gap, gap, __ATOMIC_RELAXED);
		__atomic_add_fetch(&ticks, 1, __ATOMIC_RELEASE);
		if (gap > LONG_GAP_NS) {
			if (start_time() != ready_start)
				on_restore(real);
			/* Ticks missed while stopped are not made up. */
			clock_gettime(CLOCK_MONOTONIC, &next);
		}
	}
	return NULL;
}

/* The largest gap since the last report.  Both threads run again at once
 * when the process is let go, and the signal asking for the report may
 * reach this one before the ticking thread has measured the gap it just
 * lived through: wait for two more of its wake-ups (the first may be one
 * that was under way when it was stopped). */
static long long take_gap(void)
{
	unsigned long t = __atomic_load_n(&ticks, __ATOMIC_ACQUIRE);
	struct timespec ts = {0, TICK_NS / 4};

	while (__atomic_load_n(&ticks, __ATOMIC_ACQUIRE) - t < 2)
		nanosleep(&ts, NULL);
	return __atomic_exchange_n(&max_gap, 0, __ATOMIC_RELAXED);
}

static void change_pages(void)
{
	uint64_t n = 0;

	changed++;
	for (uint64_t i = 50; i < npages; i += 100) {
		if (pat == HALFZERO && i % 2)
			continue;
		expected(i, page_at(i));
		n++;
	}
	put_line(1, "changed %llu\n", (unsigned long long)n);
}

static void usage(void)
{
	fputs("usage: bwork random|halfzero|text|sparse MIB T0FILE [touch]\n", stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	static const char *const names[] = {"random", "halfzero", "text", "sparse"};
	unsigned long long data = 0, reports = 0;
	size_t len;
	sigset_t set;
	pthread_t thr;
	long mib;
	int sig;

	if (argc == 5 && !strcmp(argv[4], "touch"))
		touch = 1;
	else if (argc != 4)
		usage();
	for (pat = RANDOM; pat <= SPARSE && strcmp(argv[1], names[pat]); pat++)
		;
	mib = atol(argv[2]);
	if (pat > SPARSE || mib <= 0)
		usage();
	t0file = argv[3];
	npages = (uint64_t)mib << 20 >> 12;
	len = npages * PAGE;
	if (pat == SPARSE) {
		len = SPARSE_SIZE;
		stride = len / PAGE / npages;
	}
	base = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | (pat == SPARSE ? MAP_NORESERVE : 0), -1, 0);
	if (base == MAP_FAILED)
		die("mmap");
	for (uint64_t i = 0; i < npages; i++) {
		expected(i, page_at(i));
		if (!(pat == HALFZERO && i % 2))
			data += PAGE;
	}

	/* Both signals are taken by sigwaitinfo in the main thread only. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		die("sigprocmask");
	ready_start = start_time();
	if ((errno = pthread_create(&thr, NULL, ticker, NULL)))
		die("pthread_create");
	put_line(1, "ready %d %llu\n", (int)getpid(), data);
	for (;;) {
		sig = sigwaitinfo(&set, NULL);
		if (sig == SIGUSR1)
			put_line(1, "gap %llu %lld\n", ++reports, take_gap());
		else if (sig == SIGUSR2)
			change_pages();
		else if (errno != EINTR)
			die("sigwaitinfo");
	}
}
