/* uringprog.c: an io_uring instance held across a checkpoint, through raw system calls (no
 * liburing).  It prints "ready PID", waits for DIR/go, checks that its instance is as it was
 * and works, and prints "restored: yes" or "restored: no".
 *
 *   uringprog [-e N] [-c N] [-f FLAG]... [-n N] [-t] [-w] idle DIR
 *       an instance of N submission entries (8; -c: N completion entries,
 *       IORING_SETUP_CQSIZE), its SQ ring, CQ ring and SQEs mapped apart
 *       (the first two are one memory: checked), with -f sqe128, cqe32 or
 *       nosqarray among its setup flags.  Before the checkpoint it goes
 *       around its rings: 1000 NOPs (-n: N) in batches, a write of a known text
 *       into a pipe and its read back, all reaped; then 3 NOPs completed
 *       and not reaped (user data 101-103, results 0), and one write of
 *       "after" into the pipe prepared and published in the ring's tail but
 *       not submitted.  After: the heads and tails as they were, the 3
 *       completions reaped with their user data, the write submitted and
 *       completed (5 bytes, then read from the pipe), then a write and read
 *       of a file of DIR through the ring and 300 NOPs around it; with -t a
 *       second thread submits NOPs too, and its completions are found.
 *   uringprog inflight DIR   a read of an empty pipe submitted, in flight.
 *   uringprog async DIR      the same read run by a worker (IOSQE_ASYNC).
 *   uringprog sqpoll DIR     an instance with a submission thread (SQPOLL).
 *   uringprog files DIR      an instance with registered files.
 *   uringprog single DIR     an instance set up with SINGLE_ISSUER.
 *   uringprog skip DIR       a NOP completed without a completion
 *                            (IOSQE_CQE_SKIP_SUCCESS).
 *   uringprog fork DIR       an idle instance, and a child that has it too
 *                            (it waits for DIR/go and exits 0).
 * The last seven are to be refused: after DIR/go each checks only that its
 * instance still answers.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "uringprog"
#include "progs.h"

/* <linux/io_uring.h>, as much as this needs (Debian 12's lacks NO_SQARRAY). */
struct params {
	uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd;
	uint32_t resv[3];
	uint32_t sq_off[8];
	uint64_t sq_addr;
	uint32_t cq_off[8];
	uint64_t cq_addr;
};

struct sqe {
	uint8_t opcode, flags;
	uint16_t ioprio;
	int32_t fd;
	uint64_t off, addr;
	uint32_t len, op_flags;
	uint64_t user_data;
	uint64_t pad[3];
};

struct cqe {
	uint64_t user_data;
	int32_t res;
	uint32_t flags;
};

enum { OP_NOP = 0, OP_READ = 22, OP_WRITE = 23 };
#define SETUP_SQPOLL (1u << 1)
#define SETUP_CQSIZE (1u << 3)
#define SETUP_SQE128 (1u << 10)
#define SETUP_CQE32 (1u << 11)
#define SETUP_SINGLE_ISSUER (1u << 12)
#define SETUP_NO_SQARRAY (1u << 16)
#define SQE_SKIP (1u << 6)
#define SQE_ASYNC (1u << 4)
#define ENTER_GETEVENTS 1u
#define REGISTER_FILES 2

static const char *dir;

static struct ring {
	int fd;
	struct params p;
	unsigned char *sq, *cq, *sqes;
	size_t sqlen, cqlen, sqeslen;
	uint32_t stride, cqesz;
	uint32_t sq_tail; /* ours: the next entry to fill */
	pthread_mutex_t lock;
} R = {.lock = PTHREAD_MUTEX_INITIALIZER};

static volatile uint32_t *word(unsigned char *base, uint32_t off)
{
	return (volatile uint32_t *)(base + off);
}

#define SQ_HEAD word(R.sq, R.p.sq_off[0])
#define SQ_TAIL word(R.sq, R.p.sq_off[1])
#define CQ_HEAD word(R.cq, R.p.cq_off[0])
#define CQ_TAIL word(R.cq, R.p.cq_off[1])

static void ring_setup(uint32_t entries, uint32_t cq, uint32_t flags)
{
	R.p = (struct params){.flags = flags | (cq ? SETUP_CQSIZE : 0), .cq_entries = cq};
	if ((R.fd = syscall(SYS_io_uring_setup, entries, &R.p)) < 0)
		die("io_uring_setup");
	R.stride = (flags & SETUP_SQE128) ? 128 : 64;
	R.cqesz = (flags & SETUP_CQE32) ? 32 : 16;
	R.sqlen = (flags & SETUP_NO_SQARRAY) ? R.p.sq_off[5] + 8
					     : R.p.sq_off[6] + R.p.sq_entries * 4;
	R.cqlen = R.p.cq_off[5] + R.p.cq_entries * R.cqesz;
	R.sqeslen = R.p.sq_entries * R.stride;
	R.sq = mmap(NULL, R.sqlen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, R.fd, 0);
	R.cq = mmap(NULL, R.cqlen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, R.fd,
		    0x8000000);
	R.sqes = mmap(NULL, R.sqeslen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, R.fd,
		      0x10000000);
	if (R.sq == MAP_FAILED || R.cq == MAP_FAILED || R.sqes == MAP_FAILED)
		die("mmap");
	R.sq_tail = *SQ_TAIL;
}

/* The next SQE, cleared, its index in the array. */
static struct sqe *get_sqe(void)
{
	uint32_t i = R.sq_tail & (R.p.sq_entries - 1);
	struct sqe *e = (struct sqe *)(R.sqes + i * R.stride);

	if (R.sq_tail - *SQ_HEAD >= R.p.sq_entries)
		die_err("submission ring full", ENOSPC);
	memset(e, 0, R.stride);
	if (!(R.p.flags & SETUP_NO_SQARRAY))
		((uint32_t *)(R.sq + R.p.sq_off[6]))[i] = i;
	R.sq_tail++;
	return e;
}

/* Publish what get_sqe gave out, submit n and wait for want completions. */
static int submit(uint32_t n, uint32_t want)
{
	__atomic_store_n(SQ_TAIL, R.sq_tail, __ATOMIC_RELEASE);
	return syscall(SYS_io_uring_enter, R.fd, n, want, want ? ENTER_GETEVENTS : 0, NULL, 0);
}

/* Reap one completion; 0 if none. */
static int reap(struct cqe *out)
{
	uint32_t h = *CQ_HEAD;

	if (h == __atomic_load_n(CQ_TAIL, __ATOMIC_ACQUIRE))
		return 0;
	memcpy(out, R.cq + R.p.cq_off[5] + (h & (R.p.cq_entries - 1)) * R.cqesz, sizeof(*out));
	__atomic_store_n(CQ_HEAD, h + 1, __ATOMIC_RELEASE);
	return 1;
}

static void nops(uint32_t n, uint64_t ud)
{
	struct cqe c;

	for (uint32_t done = 0; done < n;) {
		uint32_t b = n - done > R.p.sq_entries ? R.p.sq_entries : n - done;
		for (uint32_t i = 0; i < b; i++)
			get_sqe()->user_data = ud;
		if (submit(b, b) != (int)b)
			die("io_uring_enter (NOPs)");
		for (uint32_t i = 0; i < b; i++)
			if (!reap(&c) || c.user_data != ud || c.res)
				fail("NOP %u: no completion, or user data %llu result %d", done + i,
				     (unsigned long long)c.user_data, c.res);
		done += b;
	}
}

/* IOSQE_ASYNC on the next rw: run by a worker thread of the kernel's. */
static uint8_t async_flag;

/* One read or write of len bytes of buf on fd at off, run and reaped. */
static int rw(int op, int fd, void *buf, uint32_t len, uint64_t off, uint64_t ud)
{
	struct sqe *e = get_sqe();
	struct cqe c;

	e->flags = async_flag;
	e->opcode = op;
	e->fd = fd;
	e->addr = (uint64_t)buf;
	e->len = len;
	e->off = off;
	e->user_data = ud;
	if (submit(1, 1) != 1)
		die("io_uring_enter (read or write)");
	if (!reap(&c) || c.user_data != ud) {
		fail("%s %llu: no completion", op == OP_READ ? "read" : "write",
		     (unsigned long long)ud);
		return -1;
	}
	return c.res;
}

static void *second_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&R.lock);
	nops(20, 777);
	pthread_mutex_unlock(&R.lock);
	return NULL;
}

static int do_idle(uint32_t entries, uint32_t cq, uint32_t flags, int thread, int worker,
		   uint32_t n)
{
	unsigned long long started = start_time();
	static char text[] = "through the ring", after[] = "after", buf[64];
	uint32_t sqh, sqt, cqh, cqt;
	struct cqe c;
	pthread_t th;
	int p[2], f;

	ring_setup(entries, cq, flags);
	if (pipe2(p, O_CLOEXEC))
		die("pipe");
	/* The SQ and CQ rings are one memory, mapped twice. */
	if (*word(R.sq, R.p.cq_off[2]) != R.p.cq_entries - 1)
		fail("the CQ ring's mask through the SQ mapping: %u",
		     *word(R.sq, R.p.cq_off[2]));
	nops(n, 5);
	if (rw(OP_WRITE, p[1], text, sizeof(text), 0, 6) != (int)sizeof(text))
		fail("the pipe through the ring, before: write");
	async_flag = worker ? SQE_ASYNC : 0;
	if (rw(OP_READ, p[0], buf, sizeof(buf), 0, 7) != (int)sizeof(text) ||
	    memcmp(buf, text, sizeof(text)))
		fail("the pipe through the ring, before: read");
	async_flag = 0;
	for (int i = 0; i < 3; i++)
		get_sqe()->user_data = 101 + i;
	if (submit(3, 3) != 3)
		die("io_uring_enter (3 NOPs)");
	/* Prepared and published, not submitted. */
	{
		struct sqe *e = get_sqe();
		e->opcode = OP_WRITE;
		e->fd = p[1];
		e->addr = (uint64_t)after;
		e->len = 5;
		e->user_data = 200;
		__atomic_store_n(SQ_TAIL, R.sq_tail, __ATOMIC_RELEASE);
	}
	sqh = *SQ_HEAD, sqt = *SQ_TAIL, cqh = *CQ_HEAD, cqt = *CQ_TAIL;
	printf("ready %d\n", getpid());
	fflush(stdout);
	wait_file(in_dir("go"));

	if (*SQ_HEAD != sqh || *SQ_TAIL != sqt || *CQ_HEAD != cqh || *CQ_TAIL != cqt)
		fail("positions: SQ %u-%u CQ %u-%u, were SQ %u-%u CQ %u-%u", *SQ_HEAD, *SQ_TAIL,
		     *CQ_HEAD, *CQ_TAIL, sqh, sqt, cqh, cqt);
	for (int i = 0; i < 3; i++)
		if (!reap(&c) || c.user_data != (uint64_t)101 + i || c.res)
			fail("completion %d: user data %llu result %d", i,
			     (unsigned long long)c.user_data, c.res);
	if (reap(&c))
		fail("a completion more: user data %llu", (unsigned long long)c.user_data);
	if (submit(1, 1) != 1 || !reap(&c) || c.user_data != 200 || c.res != 5)
		fail("the write prepared before: user data %llu result %d",
		     (unsigned long long)c.user_data, c.res);
	memset(buf, 0, sizeof(buf));
	if (read(p[0], buf, sizeof(buf)) != 5 || memcmp(buf, after, 5))
		fail("the pipe holds \"%s\", not \"after\"", buf);
	if ((f = open(in_dir("uringfile"), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		die("open");
	memset(buf, 0, sizeof(buf));
	if (rw(OP_WRITE, f, text, sizeof(text), 0, 301) != (int)sizeof(text) ||
	    rw(OP_READ, f, buf, sizeof(buf), 0, 302) != (int)sizeof(text) ||
	    memcmp(buf, text, sizeof(text)))
		fail("a file through the ring, after: \"%s\"", buf);
	close(f);
	if (thread) {
		if (pthread_create(&th, NULL, second_thread, NULL))
			die("pthread_create");
		pthread_join(th, NULL);
	}
	nops(300, 9);
	printf("restored: %s\n", start_time() != started ? "yes" : "no");
	return 0;
}

/* A state to be refused; after, the instance still answers a NOP. */
static int do_refused(const char *mode)
{
	static char buf[16];
	struct cqe c;
	int p[2];

	if (pipe2(p, O_CLOEXEC))
		die("pipe");
	if (!strcmp(mode, "sqpoll")) {
		ring_setup(8, 0, SETUP_SQPOLL);
	} else if (!strcmp(mode, "single")) {
		ring_setup(8, 0, SETUP_SINGLE_ISSUER);
	} else {
		ring_setup(8, 0, 0);
	}
	if (!strcmp(mode, "inflight")) {
		struct sqe *e = get_sqe();
		e->opcode = OP_READ;
		e->fd = p[0];
		e->addr = (uint64_t)buf;
		e->len = sizeof(buf);
		e->user_data = 1;
		if (submit(1, 0) != 1)
			die("io_uring_enter (read)");
	} else if (!strcmp(mode, "files")) {
		if (syscall(SYS_io_uring_register, R.fd, REGISTER_FILES, p, 2))
			die("io_uring_register");
	} else if (!strcmp(mode, "async")) {
		struct sqe *e = get_sqe();
		e->opcode = OP_READ;
		e->flags = SQE_ASYNC;
		e->fd = p[0];
		e->addr = (uint64_t)buf;
		e->len = sizeof(buf);
		e->user_data = 1;
		if (submit(1, 0) != 1)
			die("io_uring_enter (read)");
	} else if (!strcmp(mode, "fork")) {
		pid_t child = fork();
		if (child < 0)
			die("fork");
		if (child == 0) {
			wait_file(in_dir("go"));
			_exit(0);
		}
	} else if (!strcmp(mode, "skip")) {
		get_sqe()->flags = SQE_SKIP;
		if (submit(1, 0) != 1)
			die("io_uring_enter (NOP)");
	}
	printf("ready %d\n", getpid());
	fflush(stdout);
	wait_file(in_dir("go"));
	if (!strcmp(mode, "inflight") || !strcmp(mode, "async")) {
		if (write(p[1], "x", 1) != 1 || !(submit(0, 1) >= 0 && reap(&c)) || c.res != 1)
			fail("the read in flight did not complete");
	} else if (!strcmp(mode, "sqpoll")) {
		return 0; /* its thread submits: no enter needed, none checked */
	}
	nops(1, 3);
	if (!strcmp(mode, "fork"))
		wait(NULL);
	printf("restored: no\n");
	return 0;
}

int main(int argc, char **argv)
{
	uint32_t entries = 8, cq = 0, flags = 0, n = 1000;
	int thread = 0, worker = 0, o;

	while ((o = getopt(argc, argv, "e:c:f:n:tw")) != -1) {
		if (o == 'e')
			entries = atoi(optarg);
		else if (o == 'c')
			cq = atoi(optarg);
		else if (o == 'n')
			n = strtoul(optarg, NULL, 0);
		else if (o == 't')
			thread = 1;
		else if (o == 'w')
			worker = 1;
		else if (o == 'f' && !strcmp(optarg, "sqe128"))
			flags |= SETUP_SQE128;
		else if (o == 'f' && !strcmp(optarg, "cqe32"))
			flags |= SETUP_CQE32;
		else if (o == 'f' && !strcmp(optarg, "nosqarray"))
			flags |= SETUP_NO_SQARRAY;
		else
			goto usage;
	}
	if (argc - optind != 2)
		goto usage;
	dir = argv[optind + 1];
	if (!strcmp(argv[optind], "idle"))
		do_idle(entries, cq, flags, thread, worker, n);
	else
		do_refused(argv[optind]);
	return failures ? 1 : 0;
usage:
	fprintf(stderr, "usage: uringprog [-e N] [-c N] [-f FLAG]... [-n N] [-t] [-w] MODE DIR\n");
	return 2;
}
