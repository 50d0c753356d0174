/* scatter: a scatter/gather job over TCP, one master and N workers, each
 * its own program (a member of a coordinated computation of its own).
 *
 *     scatter master [-p US] [-w N] [-H K] DIR WORKERS ITEMS MIB [ADDR]
 *     scatter worker DIR
 *
 * The master listens on ADDR (127.0.0.1 if none; port chosen by the
 * kernel), writes "ADDR PORT" into DIR/addr, accepts WORKERS workers and
 * closes its listener.  It tells each worker MIB and US (CONF); a worker
 * fills MIB MiB of memory with mix(SEED, k) and computes work items over
 * it: item i hashes ITEM_WORDS words from mix(START, i) on, wrapping, and
 * sleeps US microseconds (default 4000) after each.  The master keeps N
 * items (default 8) queued to every worker and reads the results in
 * bursts every 20 ms, so that at most moments items wait in the workers'
 * sockets and results in the master's: requests in flight both ways.  It
 * computes every item again itself and checks each result (a wrong one, a
 * result for an item never given to that worker, or given twice, fails),
 * and at the end that its connections are still O_NONBLOCK, as it made
 * them.
 * With -H K, items K on are handed out only once DIR/go exists, so that
 * the job is still running whatever a test does first.  Once DIR/end
 * exists (make bench), no item is handed out any more: the job ends after
 * those given, as if ITEMS had been their number.
 *
 * DIR/master.out (opened once, so that a restart gives it back as the
 * checkpoint left it) gets a line each 100 results checked, whatever
 * their order, and at the end a checksum over all results in item order:
 * the same bytes for every run of the same WORKERS ITEMS MIB, interrupted
 * or not.  Once every item is checked the master tells each worker to
 * stop; the worker checks its whole memory, answers how many words
 * differ, prints "scatter worker: ok" and exits 0 only if none did; the
 * master exits 0 only if every result was right and every worker's
 * memory intact.
 *
 * In each worker a thread wakes every millisecond and keeps the largest
 * gap between two wake-ups (the program frozen, to about 1 ms): SIGUSR1
 * prints "gap N NS" on stdout and starts over (make bench's frozen time).
 * When a gap comes with a new start time (a restore), it prints "restored
 * NS", NS the CLOCK_REALTIME of that first wake-up (make bench's restart
 * time). */
#define PROG "scatter"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "progs.h"

#define SEED 0x5ca77e4ull
#define START 0x57a47ull
#define ITEM_WORDS 4096
#define LOG_EVERY 100
#define MAX_WORKERS 64
#define READ_EVERY 0.02 /* seconds between the master's bursts of reading */
#define TICK_NS 1000000ll
#define LONG_GAP_NS (20 * TICK_NS)

enum { CONF = 1, ITEM, RSLT, STOP, BYE };

/* Every message, both ways: 16 bytes. */
struct msg {
	uint32_t type;
	uint32_t idx; /* CONF: MiB; ITEM, RSLT: the item */
	uint64_t val; /* CONF: microseconds a worker sleeps per item; RSLT: the result;
		       * BYE: words of the worker's memory that differ */
};

/* Item i's result over a worker's memory of nwords words, area; with no
 * area (the master checking it), the words are made again. */
static uint64_t item_result(uint32_t i, uint64_t nwords, const uint64_t *area)
{
	uint64_t acc = i, k = mix(START, i) % nwords;

	for (uint64_t j = 0; j < ITEM_WORDS; j++) {
		acc = mix(acc ^ (area ? area[k] : mix(SEED, k)), j);
		if (++k == nwords)
			k = 0;
	}
	return acc;
}

/* No Nagle on fd: a message of 16 bytes waiting for the ACK of the last
 * would wait for the peer's delayed ACK (40 ms).  A connection made again
 * at a restart must have it still (checked at the end). */
static void no_delay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Write all of buf to fd (blocking), or die. */
static void put(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			die("send");
		p += k;
		n -= (size_t)k;
	}
}

/* ---- the worker ---- */

/* The ticking thread: SIGUSR1 is blocked in every thread and taken here,
 * between two wake-ups.  A report waits two more wake-ups, the first of
 * which may have been under way when the program was stopped. */
static void *ticker(void *arg)
{
	unsigned long long started = start_time(), reports = 0;
	long long last = clock_ns(CLOCK_MONOTONIC), now, gap, max_gap = 0;
	struct timespec next, zero = {0, 0};
	int report_in = 0;
	sigset_t set;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		tick_sleep(&next, TICK_NS);
		now = clock_ns(CLOCK_MONOTONIC);
		gap = now - last;
		last = now;
		if (gap > max_gap)
			max_gap = gap;
		if (gap > LONG_GAP_NS) {
			unsigned long long st = start_time();
			if (st != started) {
				put_line(1, "restored %lld\n", clock_ns(CLOCK_REALTIME));
				started = st;
			}
			/* Ticks missed while stopped are not made up. */
			clock_gettime(CLOCK_MONOTONIC, &next);
		}
		if (report_in && !--report_in) {
			put_line(1, "gap %llu %lld\n", ++reports, max_gap);
			max_gap = 0;
		}
		if (!report_in && sigtimedwait(&set, NULL, &zero) == SIGUSR1)
			report_in = 2;
	}
	return NULL;
}

/* Read one whole message (blocking), or die; 0 at the end of the stream
 * before any byte of one. */
static int get(int fd, struct msg *m)
{
	size_t got = 0;

	while (got < sizeof(*m)) {
		ssize_t k = read(fd, (char *)m + got, sizeof(*m) - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			die("read");
		if (k == 0 && got == 0)
			return 0;
		if (k == 0) {
			fail("the master closed in the middle of a message");
			exit(1);
		}
		got += (size_t)k;
	}
	return 1;
}

static void nap(uint64_t us)
{
	struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int worker(const char *dir)
{
	char host[64];
	int port = 0, s;
	struct sockaddr_in a = {.sin_family = AF_INET};
	struct msg m;
	uint64_t *area, nwords, bad = 0, pace, items = 0;
	pthread_t thr;
	sigset_t set;
	FILE *f;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		die("sigprocmask");
	if ((errno = pthread_create(&thr, NULL, ticker, NULL)))
		die("pthread_create");
	wait_file(in_dir("addr"));
	f = fopen(in_dir("addr"), "r");
	if (!f || fscanf(f, "%63s %d", host, &port) != 2 || inet_pton(AF_INET, host, &a.sin_addr) != 1)
		die("DIR/addr");
	fclose(f);
	a.sin_port = htons((uint16_t)port);
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)))
		die("connect");
	no_delay(s);
	if (!get(s, &m) || m.type != CONF || !m.idx) {
		fail("no CONF from the master");
		return 1;
	}
	nwords = (uint64_t)m.idx << 20 >> 3;
	pace = m.val;
	area = mmap(NULL, nwords * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		die("mmap");
	for (uint64_t k = 0; k < nwords; k++)
		area[k] = mix(SEED, k);
	put_line(1, "ready %d %llu\n", (int)getpid(), (unsigned long long)nwords * 8);
	while (get(s, &m)) {
		if (m.type == ITEM) {
			struct msg r = {RSLT, m.idx, item_result(m.idx, nwords, area)};
			items++;
			nap(pace);
			put(s, &r, sizeof(r));
		} else if (m.type == STOP) {
			for (uint64_t k = 0; k < nwords; k++)
				if (area[k] != mix(SEED, k) && !bad++)
					fail("word %llu of the memory differs",
					     (unsigned long long)k);
			struct msg r = {BYE, 0, bad};
			put(s, &r, sizeof(r));
			break;
		} else {
			fail("message of type %u from the master", m.type);
			return 1;
		}
	}
	if (m.type != STOP) {
		fail("the master closed after %llu items, without a STOP",
		     (unsigned long long)items);
		return 1;
	}
	{
		int nd = 0;
		socklen_t l = sizeof(nd);
		if (getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &nd, &l) || !nd)
			fail("its connection lost TCP_NODELAY");
	}
	close(s);
	if (bad || failures)
		return 1;
	put_line(1, "scatter worker: ok\n");
	return 0;
}

/* ---- the master ---- */

struct wk {
	int fd;
	struct msg out[64]; /* queued to send */
	size_t nout, out_off; /* messages queued; bytes of them sent */
	unsigned char in[sizeof(struct msg)];
	size_t in_got;
	unsigned inflight; /* items given and not answered */
	int bye, eof;
};

static void queue(struct wk *w, uint32_t type, uint32_t idx, uint64_t val)
{
	w->out[w->nout++] = (struct msg){type, idx, val};
}

/* Send what w has queued, as far as its socket takes it now. */
static void flush(struct wk *w)
{
	size_t len = w->nout * sizeof(struct msg);

	while (w->out_off < len) {
		ssize_t k = send(w->fd, (char *)w->out + w->out_off, len - w->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return;
		if (k < 0)
			die("send");
		w->out_off += (size_t)k;
	}
	w->nout = w->out_off = 0;
}

static int master(const char *dir, int nw, uint32_t items, uint32_t mib, const char *addr,
		  uint64_t pace, unsigned window, uint32_t hold)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);
	struct wk w[MAX_WORKERS] = {0};
	struct pollfd pf[MAX_WORKERS];
	uint64_t *result, nwords = (uint64_t)mib << 20 >> 3, sum = 0;
	unsigned char *given; /* the worker an item went to, +1 */
	uint32_t next = 0, done = 0;
	int l, out, eofs = 0, stopped = 0;
	double next_read = 0;
	FILE *f;

	result = calloc(items, sizeof(*result));
	given = calloc(items, 1);
	if (!result || !given)
		die("calloc");
	out = open(in_dir("master.out"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		die("DIR/master.out");
	if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
		fprintf(stderr, "scatter: not an IPv4 address: %s\n", addr);
		return 2;
	}
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, nw) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		die("listen");
	f = fopen(in_dir("addr.tmp"), "w");
	if (!f || fprintf(f, "%s %d\n", addr, ntohs(a.sin_port)) < 0 || fclose(f) ||
	    rename(in_dir("addr.tmp"), in_dir("addr")))
		die("DIR/addr");
	for (int i = 0; i < nw; i++) {
		while ((w[i].fd = accept(l, NULL, NULL)) < 0 && errno == EINTR)
			;
		if (w[i].fd < 0)
			die("accept");
		no_delay(w[i].fd);
		if (fcntl(w[i].fd, F_SETFL, O_NONBLOCK))
			die("fcntl");
		queue(&w[i], CONF, mib, pace);
	}
	close(l);
	put_line(out, "scatter: %d workers, %u items over %u MiB each\n", nw, items, mib);

	while (eofs < nw) {
		int timeout, reading;

		if (next < items && !access(in_dir("end"), F_OK))
			items = next;
		/* Each worker's queue topped up, the held items only once
		 * DIR/go is there. */
		for (int i = 0; i < nw; i++)
			while (next < items && w[i].inflight < window &&
			       w[i].nout < sizeof(w[i].out) / sizeof(w[i].out[0]) &&
			       (next < hold || !access(in_dir("go"), F_OK))) {
				given[next] = (unsigned char)(i + 1);
				queue(&w[i], ITEM, next++, 0);
				w[i].inflight++;
			}
		if (done == items && !stopped) {
			for (int i = 0; i < nw; i++)
				queue(&w[i], STOP, 0, 0);
			stopped = 1;
		}
		for (int i = 0; i < nw; i++)
			if (w[i].nout)
				flush(&w[i]);

		/* Results are read in bursts: between two, they wait in
		 * the sockets. */
		reading = stopped || mono() >= next_read;
		timeout = reading ? 10 : (int)((next_read - mono()) * 1000) + 1;
		for (int i = 0; i < nw; i++) {
			pf[i].fd = w[i].eof ? -1 : w[i].fd;
			pf[i].events = (reading ? POLLIN : 0) | (w[i].nout ? POLLOUT : 0);
		}
		if (next >= hold && next < items)
			timeout = 10; /* looking for DIR/go */
		if (poll(pf, (nfds_t)nw, timeout) < 0 && errno != EINTR)
			die("poll");
		if (!reading)
			continue;
		next_read = mono() + READ_EVERY;
		for (int i = 0; i < nw; i++) {
			struct wk *x = &w[i];
			ssize_t k;
			while (!x->eof && (k = recv(x->fd, x->in + x->in_got, sizeof(x->in) - x->in_got,
						    MSG_DONTWAIT)) != 0) {
				struct msg m;
				if (k < 0 && errno == EINTR)
					continue;
				if (k < 0 && errno == EAGAIN)
					break;
				if (k < 0)
					die("recv");
				if ((x->in_got += (size_t)k) < sizeof(x->in))
					continue;
				x->in_got = 0;
				memcpy(&m, x->in, sizeof(m));
				if (m.type == BYE) {
					if (m.val)
						fail("worker %d: %llu words of its memory differ", i + 1,
						     (unsigned long long)m.val);
					x->bye = 1;
					continue;
				}
				if (m.type != RSLT || m.idx >= items || given[m.idx] != i + 1) {
					fail("worker %d: message %u for item %u, which it was not given",
					     i + 1, m.type, m.idx);
					return 1;
				}
				given[m.idx] = 0;
				x->inflight--;
				result[m.idx] = m.val;
				if (m.val != item_result(m.idx, nwords, NULL))
					fail("worker %d: item %u: result %016llx, not %016llx", i + 1,
					     m.idx, (unsigned long long)m.val,
					     (unsigned long long)item_result(m.idx, nwords, NULL));
				if (++done % LOG_EVERY == 0)
					put_line(out, "%u results checked\n", done);
			}
			if (!x->eof && k == 0) {
				x->eof = 1;
				eofs++;
				if (!x->bye) {
					fail("worker %d closed its connection after %u results", i + 1,
					     done);
					return 1;
				}
			}
		}
	}
	/* A restart gives the program its connections as it had them: flags
	 * and options. */
	for (int i = 0; i < nw; i++) {
		int nd = 0;
		socklen_t l = sizeof(nd);
		if (!(fcntl(w[i].fd, F_GETFL) & O_NONBLOCK))
			fail("worker %d's connection is no longer O_NONBLOCK", i + 1);
		if (getsockopt(w[i].fd, IPPROTO_TCP, TCP_NODELAY, &nd, &l) || !nd)
			fail("worker %d's connection lost TCP_NODELAY", i + 1);
	}
	for (uint32_t i = 0; i < items; i++)
		sum = mix(sum ^ result[i], i);
	put_line(out, "scatter: %u results from %d workers, checksum %016llx\n", items, nw,
	    (unsigned long long)sum);
	if (close(out))
		die("close");
	return failures ? 1 : 0;
}

static void usage(void)
{
	fputs("usage: scatter master [-p US] [-w N] [-H K] DIR WORKERS ITEMS MIB [ADDR]\n"
	      "       scatter worker DIR\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *dir;
	uint64_t pace = 4000;
	unsigned long window = 8, hold = ~0ul;
	long nw;
	unsigned long items, mib;
	int c;

	if (argc == 3 && !strcmp(argv[1], "worker")) {
		dir = argv[2];
		return worker(dir);
	}
	if (argc < 2 || strcmp(argv[1], "master"))
		usage();
	optind = 2;
	while ((c = getopt(argc, argv, "p:w:H:")) != -1) {
		if (c == 'p')
			pace = strtoull(optarg, NULL, 10);
		else if (c == 'w')
			window = strtoul(optarg, NULL, 10);
		else if (c == 'H')
			hold = strtoul(optarg, NULL, 10);
		else
			usage();
	}
	if (argc - optind < 4 || argc - optind > 5)
		usage();
	dir = argv[optind];
	nw = atol(argv[optind + 1]);
	items = strtoul(argv[optind + 2], NULL, 10);
	mib = strtoul(argv[optind + 3], NULL, 10);
	if (nw < 1 || nw > MAX_WORKERS || !items || items > UINT32_MAX || !mib || mib > 65535 ||
	    window < 1 || window > 32)
		usage();
	return master(dir, (int)nw, (uint32_t)items, (uint32_t)mib,
		      argc - optind == 5 ? argv[optind + 4] : "127.0.0.1", pace, (unsigned)window,
		      hold > items ? (uint32_t)items : (uint32_t)hold);
}
