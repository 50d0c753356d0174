/* fdodd.c: odd kinds of fd held across a checkpoint.  Each mode sets its
 * state, prints "ready PID", waits for DIR/go, checks that the state is
 * exactly as it was, and prints "fdodd MODE: ok".
 *
 *   fdodd nsfile DIR   holds the files of its own namespaces, every type
 *                      (/proc/self/ns/cgroup ipc mnt net pid time user uts,
 *                      fds 3 to 10); after: each is the namespace of that
 *                      type the process is in now, opened read-only.
 *   fdodd nsother DIR  holds (fd 3) the user namespace of a child of its own
 *                      that made a new one (unshare CLONE_NEWUSER); after:
 *                      fd 3 is still that namespace.
 *   fdodd epoll DIR    an epoll instance (fd 3) whose watches outlived the fd
 *                      they were added as: an eventfd added as fd 5, then
 *                      moved to fd 6 (fd 5 closed); a pipe's read end added
 *                      as fd 7, then moved to fd 8, with another eventfd put
 *                      at fd 7 (close-on-exec) and added as fd 7 too; an
 *                      eventfd added as fd 9 and left there.  After: the
 *                      watches in fdinfo are the same (tfd, events, data),
 *                      none is ready, fd 5 is closed, and each file wakes
 *                      its own watch; EPOLL_CTL_DEL of fd 7 takes the watch
 *                      of the file at fd 7, not the pipe's.
 *   fdodd epollgone DIR an epoll instance (fd 3) watching an eventfd whose
 *                      only fd is its child's (its own closed).
 *   fdodd mqueue DIR   a POSIX message queue of its own (named for DIR),
 *                      mode 0640, 8 messages of at most 100 bytes, open
 *                      read-write at fd 3 and write-only, O_NONBLOCK, at
 *                      fd 4 (another mq_open), six messages queued at
 *                      priorities 0, 1, 5 and 9.  After: the same
 *                      attributes, mode and owner, the flags of each fd,
 *                      and the six messages received in the order they
 *                      were due, each with its priority; then removes it.
 *   fdodd mqnotify DIR the same queue, with a notification registered
 *                      (mq_notify, SIGEV_SIGNAL SIGUSR1); fd 3 only.
 *   fdodd aio DIR      an AIO context (io_setup) of 8 events, reads of a file
 *                      (DIR/aiofile, fd 3) submitted and reaped until the
 *                      ring's head is 3 slots before its end, then 6 left
 *                      in it (its tail wrapped to 3).  After: the ring at the same address
 *                      (the context's id) with the same head and tail, the
 *                      6 completions reaped (data, iocb, result, the bytes
 *                      read), none more; then 660 more reads through it,
 *                      around its ring several times, and io_destroy.  A
 *                      second context, idle, made after it: after, it
 *                      answers and reads too.
 *   fdodd aiofork DIR  an AIO context (io_setup), then a child, which says
 *                      ready: it has the ring, not the context.
 *   fdodd uring DIR    an io_uring instance (io_uring_setup) at fd 3, its
 *                      submission ring mapped, idle; after: the fd and the
 *                      ring are still there (the ring's head reads 0).
 *   fdodd uringmap DIR as uring, with fd 3 closed: only the mapping is left.
 *   fdodd uringfd DIR  as uring, the ring not mapped: only fd 3.
 *   fdodd mqclean DIR  removes the queue named for DIR (a test's teardown).
 */
#define PROG "fdodd"
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "progs.h"

static const char *dir;

static void ready(void)
{
	printf("ready %d\n", getpid());
	fflush(stdout);
	wait_file(in_dir("go"));
}

static const char *const nstypes[] = {"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"};
#define NNS (int)(sizeof(nstypes) / sizeof(nstypes[0]))

static int do_nsfile(void)
{
	char path[64];

	for (int i = 0; i < NNS; i++) {
		snprintf(path, sizeof(path), "/proc/self/ns/%s", nstypes[i]);
		fd_at(3 + i, open(path, O_RDONLY), "open");
	}
	ready();
	for (int i = 0; i < NNS; i++) {
		struct stat a, b;
		int fl = fcntl(3 + i, F_GETFL);

		snprintf(path, sizeof(path), "/proc/self/ns/%s", nstypes[i]);
		if (fstat(3 + i, &a) || stat(path, &b))
			fail("fd %d (%s): stat: %s", 3 + i, nstypes[i], strerror(errno));
		else if (a.st_ino != b.st_ino || a.st_dev != b.st_dev)
			fail("fd %d: namespace %lu, not the process's own %s namespace %lu", 3 + i,
			     (unsigned long)a.st_ino, nstypes[i], (unsigned long)b.st_ino);
		if (fl < 0 || (fl & O_ACCMODE) != O_RDONLY)
			fail("fd %d (%s): flags %o", 3 + i, nstypes[i], fl);
	}
	return 0;
}

static int do_nsother(void)
{
	int up[2], down[2];
	struct stat was, now;
	char path[64], c;
	pid_t child;

	if (pipe(up) || pipe(down))
		die("pipe");
	/* Out of the way of fd 3. */
	for (int *e = up; e != down + 2; e = e == up + 1 ? down : e + 1) {
		int fd = fcntl(*e, F_DUPFD, 20);
		close(*e);
		*e = fd;
	}
	if ((child = fork()) < 0)
		die("fork");
	if (child == 0) {
		close(down[1]);
		if (unshare(CLONE_NEWUSER))
			die("unshare CLONE_NEWUSER");
		if (write(up[1], "u", 1) != 1 || read(down[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	if (read(up[0], &c, 1) != 1)
		die("child");
	snprintf(path, sizeof(path), "/proc/%d/ns/user", child);
	fd_at(3, open(path, O_RDONLY), "open");
	if (fstat(3, &was))
		die("fstat");
	close(up[0]);
	close(up[1]);
	close(down[0]);
	ready();
	close(down[1]);
	waitpid(child, NULL, 0);
	if (fstat(3, &now) || now.st_ino != was.st_ino)
		fail("fd 3: not the child's user namespace any more");
	return 0;
}

static int by_text(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The watches of epoll fd as its fdinfo lists them, without the inode
 * (a new pipe's differs), sorted (fdinfo's order is the kernel's tree
 * of file addresses), into buf. */
static void watches(int fd, char *buf, size_t size)
{
	char path[64], line[16][128];
	size_t n = 0, k = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	buf[0] = 0;
	if (!(f = fopen(path, "r")))
		return;
	while (k < 16 && fgets(line[k], sizeof(line[k]), f)) {
		char *ino = strstr(line[k], " ino:");
		if (strncmp(line[k], "tfd:", 4))
			continue;
		if (ino)
			*ino = 0;
		k++;
	}
	fclose(f);
	qsort(line, k, sizeof(line[0]), by_text);
	for (size_t i = 0; i < k && n < size; i++)
		n += snprintf(buf + n, size - n, "%s;", line[i]);
}

static void add(int ep, int fd, uint64_t data)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = data};

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		die("epoll_ctl");
}

/* Make fd readable (an eventfd, or the pipe through its write end), see
 * epoll report data alone, and drain it. */
static void wakes(int ep, int fd, int rfd, uint64_t data)
{
	struct epoll_event ev[8];
	uint64_t one = 1;
	int n;

	if (write(fd, &one, sizeof(one)) != sizeof(one))
		fail("fd %d: write: %s", fd, strerror(errno));
	n = epoll_wait(ep, ev, 8, 5000);
	if (n != 1 || ev[0].data.u64 != data)
		fail("woke fd %d: %d events, data %#llx, want %#llx", fd, n,
		     n > 0 ? (unsigned long long)ev[0].data.u64 : 0ULL, (unsigned long long)data);
	if (read(rfd, &one, sizeof(one)) != sizeof(one))
		fail("fd %d: read: %s", rfd, strerror(errno));
}

static int do_epoll(void)
{
	char was[1024], now[1024];
	struct epoll_event ev;
	int p[2];

	fd_at(3, epoll_create1(0), "open");
	fd_at(5, eventfd(0, 0), "open");
	add(3, 5, 0xa);
	fd_at(6, dup(5), "open");
	close(5);
	if (pipe(p))
		die("pipe");
	fd_at(20, p[0], "open");
	fd_at(10, p[1], "open");
	fd_at(7, dup(20), "open");
	close(20);
	add(3, 7, 0xb);
	fd_at(8, dup(7), "open");
	fd_at(7, eventfd(0, EFD_CLOEXEC), "open");
	if (fcntl(7, F_SETFD, FD_CLOEXEC))
		die("F_SETFD");
	add(3, 7, 0xc);
	fd_at(9, eventfd(0, 0), "open");
	add(3, 9, 0xd);
	watches(3, was, sizeof(was));
	ready();
	watches(3, now, sizeof(now));
	if (strcmp(was, now))
		fail("watches: %s, were %s", now, was);
	if (epoll_wait(3, &ev, 1, 0) != 0)
		fail("a watch is ready after the restore");
	if (fcntl(5, F_GETFD) >= 0 || errno != EBADF)
		fail("fd 5 is open");
	if (fcntl(7, F_GETFD) != FD_CLOEXEC || fcntl(8, F_GETFD) != 0)
		fail("fd flags: fd 7 %d, fd 8 %d", fcntl(7, F_GETFD), fcntl(8, F_GETFD));
	wakes(3, 6, 6, 0xa);
	wakes(3, 10, 8, 0xb);
	wakes(3, 7, 7, 0xc);
	wakes(3, 9, 9, 0xd);
	if (epoll_ctl(3, EPOLL_CTL_DEL, 7, NULL))
		fail("EPOLL_CTL_DEL fd 7: %s", strerror(errno));
	wakes(3, 10, 8, 0xb);
	return 0;
}

static int do_epollgone(void)
{
	pid_t child;
	int up[2];
	char c;

	fd_at(3, epoll_create1(0), "open");
	fd_at(5, eventfd(0, 0), "open");
	add(3, 5, 0xa);
	if (pipe(up))
		die("pipe");
	if ((child = fork()) < 0)
		die("fork");
	if (child == 0) {
		close(up[1]);
		if (read(up[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(up[0]);
	close(5);
	ready();
	close(up[1]);
	waitpid(child, NULL, 0);
	return 0;
}

/* The queue's name: one per DIR, so tests side by side do not meet. */
static const char *mq_name(void)
{
	static char name[64];
	unsigned h = 5381;

	for (const char *p = dir; *p; p++)
		h = h * 33 + (unsigned char)*p;
	snprintf(name, sizeof(name), "/ckpt-fdodd-%08x", h);
	return name;
}

static const struct {
	const char *text;
	unsigned prio;
} mq_msgs[] = {{"one at 1", 1}, {"first at 5", 5},  {"two at 1", 1},
	       {"zero", 0},	{"second at 5", 5}, {"top at 9, a longer message", 9}};
#define NMSG (int)(sizeof(mq_msgs) / sizeof(mq_msgs[0]))

/* The order mq_receive gives them: by priority, oldest first. */
static const int mq_due[NMSG] = {5, 1, 4, 0, 2, 3};

static void make_queue(void)
{
	struct mq_attr a = {.mq_maxmsg = 8, .mq_msgsize = 100};

	mq_unlink(mq_name());
	umask(022);
	fd_at(3, mq_open(mq_name(), O_RDWR | O_CREAT | O_EXCL, 0640, &a), "open");
	for (int i = 0; i < NMSG; i++)
		if (mq_send(3, mq_msgs[i].text, strlen(mq_msgs[i].text), mq_msgs[i].prio))
			die("mq_send");
}

static void same_attr(int fd, long flags)
{
	struct mq_attr a;

	if (mq_getattr(fd, &a))
		fail("fd %d: mq_getattr: %s", fd, strerror(errno));
	else if (a.mq_maxmsg != 8 || a.mq_msgsize != 100 || a.mq_curmsgs != NMSG ||
		 a.mq_flags != flags)
		fail("fd %d: maxmsg %ld msgsize %ld curmsgs %ld flags %#lx", fd, a.mq_maxmsg,
		     a.mq_msgsize, a.mq_curmsgs, a.mq_flags);
}

static int do_mqueue(void)
{
	struct stat sb;
	struct mq_attr a;
	char buf[100];
	unsigned prio;

	make_queue();
	fd_at(4, mq_open(mq_name(), O_WRONLY | O_NONBLOCK), "open");
	ready();
	same_attr(3, 0);
	same_attr(4, O_NONBLOCK);
	if ((fcntl(3, F_GETFL) & O_ACCMODE) != O_RDWR ||
	    (fcntl(4, F_GETFL) & O_ACCMODE) != O_WRONLY)
		fail("access modes: fd 3 %o, fd 4 %o", fcntl(3, F_GETFL), fcntl(4, F_GETFL));
	if (fstat(3, &sb) || (sb.st_mode & 07777) != 0640 || sb.st_uid != getuid())
		fail("mode %o uid %d", sb.st_mode, sb.st_uid);
	for (int i = 0; i < NMSG; i++) {
		const char *want = mq_msgs[mq_due[i]].text;
		ssize_t n = mq_receive(3, buf, sizeof(buf), &prio);

		if (n != (ssize_t)strlen(want) || memcmp(buf, want, n) ||
		    prio != mq_msgs[mq_due[i]].prio)
			fail("message %d: %zd bytes \"%.*s\" at %u, want \"%s\" at %u", i, n,
			     n > 0 ? (int)n : 0, buf, prio, want, mq_msgs[mq_due[i]].prio);
	}
	if (mq_getattr(3, &a) || a.mq_curmsgs)
		fail("messages left: %ld", a.mq_curmsgs);
	mq_unlink(mq_name());
	return 0;
}

static int do_mqnotify(void)
{
	struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
	struct mq_attr a;

	make_queue();
	signal(SIGUSR1, SIG_IGN);
	/* A notification fires only when a message comes to an empty queue. */
	if (mq_notify(3, &ev))
		die("mq_notify");
	ready();
	if (mq_getattr(3, &a) || a.mq_curmsgs != NMSG)
		fail("messages: %ld", a.mq_curmsgs);
	if (mq_notify(3, &ev) == 0 || errno != EBUSY)
		fail("the notification is not registered any more");
	mq_unlink(mq_name());
	return 0;
}

/* struct aio_ring, the header of an AIO context's ring (fs/aio.c). */
struct aio_ring_hdr {
	uint32_t id, nr, head, tail, magic, compat, incompat, header_length;
};

#define AIO_N 24 /* reads submitted before the checkpoint */
#define AIO_REAPED 7
#define AIO_LEFT 6 /* reads whose completions the checkpoint holds */

static struct iocb aio_cb[AIO_N];
static char aio_buf[AIO_N][8];

/* An AIO read of 8 bytes at offset i * 8 of fd, its data 1000 + i. */
static long aio_read(unsigned long ctx, int fd, int i)
{
	struct iocb *p = &aio_cb[i];

	aio_cb[i] = (struct iocb){.aio_data = 1000 + i,
				 .aio_lio_opcode = IOCB_CMD_PREAD,
				 .aio_fildes = fd,
				 .aio_buf = (uintptr_t)aio_buf[i],
				 .aio_nbytes = 8,
				 .aio_offset = i * 8};
	return syscall(SYS_io_submit, ctx, 1, &p);
}

/* Each completion one of the reads i, its 8 bytes those of the file. */
static void aio_check(struct io_event *ev, long n, const char *when)
{
	for (long k = 0; k < n; k++) {
		long i = (long)ev[k].data - 1000;
		char want[24];

		snprintf(want, sizeof(want), "%08ld", i);
		if (i < 0 || i >= AIO_N || ev[k].obj != (uintptr_t)&aio_cb[i] || ev[k].res != 8 ||
		    memcmp(aio_buf[i], want, 8))
			fail("%s: completion %ld: data %llu res %lld", when, k,
			     (unsigned long long)ev[k].data, (long long)ev[k].res);
	}
}

static int do_aio(void)
{
	unsigned long ctx = 0, ctx2 = 0;
	struct timespec zero = {0, 0}, sec = {1, 0};
	struct io_event ev[AIO_N];
	volatile struct aio_ring_hdr *ring;
	uint32_t head, tail;
	int fd;
	long n;

	fd_at(3, open(in_dir("aiofile"), O_RDWR | O_CREAT | O_TRUNC, 0600), "open");
	for (int i = 0; i < AIO_N; i++)
		dprintf(3, "%08d", i);
	/* A second context, idle, made after the first: below it, and with
	 * the other index in the kernel's table. */
	if (syscall(SYS_io_setup, 8, &ctx) || syscall(SYS_io_setup, 200, &ctx2))
		die("io_setup");
	ring = (volatile struct aio_ring_hdr *)ctx;
	/* Reads complete as they are submitted (buffered).  First as many
	 * reaped as bring the ring's head near its end, */
	for (uint32_t done = 0, want = ring->nr - 3 - AIO_REAPED; done < want;) {
		int k = want - done < AIO_N - 13 ? (int)(want - done) : AIO_N - 13;

		for (int i = 13; i < 13 + k; i++)
			if (aio_read(ctx, 3, i) != 1)
				die("io_submit");
		if (syscall(SYS_io_getevents, ctx, k, k, ev, &sec) != k)
			die("io_getevents");
		aio_check(ev, k, "first");
		done += k;
	}
	/* then seven reaped, and six left in the ring, around its end. */
	for (int i = 0; i < AIO_REAPED + AIO_LEFT; i++)
		if (aio_read(ctx, 3, i) != 1)
			die("io_submit");
	if (syscall(SYS_io_getevents, ctx, AIO_REAPED, AIO_REAPED, ev, &sec) != AIO_REAPED)
		die("io_getevents");
	aio_check(ev, AIO_REAPED, "before");
	head = ring->head;
	tail = ring->tail;
	if (head != ring->nr - 3 || tail != 3)
		fail("before: ring of %u, head %u tail %u", ring->nr, head, tail);
	ready();
	fd = 3;
	if ((unsigned long)ring != ctx || ring->head != head || ring->tail != tail ||
	    ring->magic != 0xa10a10a1u)
		fail("ring: head %u tail %u magic %#x, was head %u tail %u", ring->head, ring->tail,
		     ring->magic, head, tail);
	n = syscall(SYS_io_getevents, ctx, AIO_LEFT, AIO_N, ev, &sec);
	if (n != AIO_LEFT)
		fail("io_getevents of the completions left: %ld %s", n,
		     n < 0 ? strerror(errno) : "");
	else
		aio_check(ev, n, "left");
	n = syscall(SYS_io_getevents, ctx, 0, AIO_N, ev, &zero);
	if (n != 0)
		fail("io_getevents of nothing: %ld", n);
	/* The context goes on: reads around the ring many times over, a
	 * few at a time, each completion where the ring says. */
	for (int round = 0; round < 60; round++) {
		for (int i = AIO_REAPED + AIO_LEFT; i < AIO_N; i++)
			if (aio_read(ctx, fd, i) != 1)
				fail("io_submit after: %s", strerror(errno));
		n = syscall(SYS_io_getevents, ctx, AIO_N - AIO_REAPED - AIO_LEFT, AIO_N, ev, &sec);
		if (n != AIO_N - AIO_REAPED - AIO_LEFT) {
			fail("io_getevents after, round %d: %ld", round, n);
			break;
		}
		aio_check(ev, n, "after");
	}
	n = syscall(SYS_io_getevents, ctx2, 0, AIO_N, ev, &zero);
	if (n != 0)
		fail("io_getevents on the second context: %ld %s", n, n < 0 ? strerror(errno) : "");
	else if (aio_read(ctx2, fd, 0) != 1 || syscall(SYS_io_getevents, ctx2, 1, 1, ev, &sec) != 1)
		fail("a read through the second context: %s", strerror(errno));
	else
		aio_check(ev, 1, "second");
	if (syscall(SYS_io_destroy, ctx) || syscall(SYS_io_destroy, ctx2))
		fail("io_destroy: %s", strerror(errno));
	return 0;
}

/* A child, which says ready: its parent's AIO ring, inherited across
 * fork without the context.  After: still no context of its own. */
static int do_aiofork(void)
{
	unsigned long ctx = 0;
	struct timespec zero = {0, 0};
	int st;
	pid_t pid;

	if (syscall(SYS_io_setup, 8, &ctx))
		die("io_setup");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		ready();
		if (syscall(SYS_io_getevents, ctx, 0, 1, NULL, &zero) != -1 || errno != EINVAL)
			fail("the child has a context at its parent's ring");
		_exit(failures ? 1 : 0);
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("child: status %#x", st);
	return 0;
}

/* io_uring_params, as <linux/io_uring.h> has it (120 bytes). */
struct uring_params {
	uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd;
	uint32_t resv[3];
	uint32_t sq_off[10];
	uint32_t cq_off[10];
};

static int do_uring(int keep_fd, int map)
{
	struct uring_params p = {0};
	volatile uint32_t *head = NULL;
	struct stat sb;
	void *ring;

	fd_at(3, syscall(SYS_io_uring_setup, 4, &p), "open");
	if (map) {
		ring = mmap(NULL, p.sq_off[6] + p.sq_entries * 4, PROT_READ | PROT_WRITE,
			    MAP_SHARED, 3, 0);
		if (ring == MAP_FAILED)
			die("mmap");
		head = (volatile uint32_t *)((char *)ring + p.sq_off[0]);
	}
	if (!keep_fd)
		close(3);
	ready();
	if (keep_fd && fstat(3, &sb))
		fail("fd 3: %s", strerror(errno));
	if (head && *head != 0)
		fail("ring head %u", *head);
	return 0;
}

static int do_uring_fd_map(void)
{
	return do_uring(1, 1);
}

static int do_uring_map(void)
{
	return do_uring(0, 1);
}

static int do_uring_fd(void)
{
	return do_uring(1, 0);
}

static int do_mqclean(void)
{
	mq_unlink(mq_name());
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(void);
	} modes[] = {
	    {"nsfile", do_nsfile},
	    {"nsother", do_nsother},
	    {"epoll", do_epoll},
	    {"epollgone", do_epollgone},
	    {"mqueue", do_mqueue},
	    {"mqnotify", do_mqnotify},
	    {"aio", do_aio},
	    {"aiofork", do_aiofork},
	    {"uring", do_uring_fd_map},
	    {"uringmap", do_uring_map},
	    {"uringfd", do_uring_fd},
	    {"mqclean", do_mqclean},
	};

	if (argc != 3) {
		fprintf(stderr, "usage: fdodd MODE DIR\n");
		return 2;
	}
	dir = argv[2];
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcmp(argv[1], modes[i].name))
			continue;
		if (modes[i].run() || failures)
			return 1;
		printf("fdodd %s: ok\n", argv[1]);
		return 0;
	}
	fprintf(stderr, "fdodd: unknown mode %s\n", argv[1]);
	return 2;
}
