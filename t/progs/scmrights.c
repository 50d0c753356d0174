/* scmrights: messages queued on unix sockets that carry file descriptors
 * (SCM_RIGHTS), for t/0650.  scmrights KIND DIR:
 *   one     fds 3 and 4 a stream socketpair, 5 and 6 a seqpacket one; on
 *           fd 4 wait "hello one" with the read end of a pipe holding
 *           "pipe-one" (its write end fd 7), "two" with DIR/file (fd 8,
 *           the same open file description, at offset 5), "three" with an
 *           eventfd counting 42, " plain four" with the read end of a pipe
 *           holding "pipe-two" (write end fd 9), DIR/file again (fd 8's
 *           description) and an eventfd counting 7, then "tail"; on fd 6
 *           "seq" with an eventfd counting 3.  After the go each read
 *           gives its bytes and fds, and each fd what it held: the pipes'
 *           bytes (and a byte written on fd 7 now), the offset (shared with
 *           fd 8: kcmp, and a seek seen on both), the counts; fds 10 and 11
 *           a datagram socketpair, "dg" with an eventfd counting 5 on fd
 *           11; fd 12 a datagram socket on DIR/dgram joined to no peer,
 *           "free" with an eventfd counting 9 from an unbound sender; "seq"
 *           carries an end of a stream socketpair too, "sock-bytes" queued
 *           on it, its other end fd 13
 *   tree    the same, the receiving ends (4, 6, 11, 12) in a child, the
 *           sending ends, the pipes' write ends and fd 8 in the parent; the child
 *           checks, then seeks its DIR/file to 11, which the parent's fd 8
 *           then sees
 *   cycle   fds 3 and 4 a socketpair; a message on fd 4 carries an end of
 *           another socketpair (its other end fd 5) on whose queue a
 *           message carries a pipe: a dump is refused; the program then
 *           gets both
 *   epoll   fds 3 and 4 a socketpair; a message on fd 4 carries an epoll
 *           instance: a dump is refused; the program then gets it
 * Prints "ready PID", waits for DIR/go, checks, prints "scmrights KIND: ok"
 * and exits 0 only if everything is intact. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "scmrights"
#include "progs.h"

static const char *dir;
static pid_t kid;

static void move_to(int fd, int want)
{
	if (fd == want)
		return;
	if (dup2(fd, want) < 0)
		die("dup2");
	close(fd);
}

static void send_fds(int s, const char *text, const int *fds, int n)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(8 * sizeof(int))];
	} ctl;
	struct iovec iov = {(void *)text, strlen(text)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;

	if (n) {
		mh.msg_control = &ctl;
		mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	}
	if (sendmsg(s, &mh, 0) != (ssize_t)strlen(text))
		die("sendmsg");
}

/* A pipe holding text: its read end returned, its write end at fd want. */
static int pipe_with(const char *text, int want)
{
	int p[2];

	if (pipe(p) || write(p[1], text, strlen(text)) != (ssize_t)strlen(text))
		die("pipe");
	move_to(p[1], want);
	return p[0];
}

static int counter(unsigned v)
{
	int e = eventfd(v, EFD_NONBLOCK);

	if (e < 0)
		die("eventfd");
	return e;
}

/* fds 10 and 11 a datagram socketpair, "dg" with an eventfd counting 5
 * on fd 11; fd 12 a datagram socket bound to DIR/dgram, joined to no peer,
 * "free" with an eventfd counting 9 on it from an unbound socket. */
static void dgram_setup(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int dp[2], d, u, e = counter(5), e9 = counter(9);
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = {"free", 4};
	struct msghdr mh = {.msg_name = &a,
			    .msg_namelen = sizeof(a),
			    .msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = &ctl,
			    .msg_controllen = sizeof(ctl)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, dp))
		die("socketpair");
	move_to(dp[0], 10);
	move_to(dp[1], 11);
	send_fds(10, "dg", &e, 1);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/dgram", dir);
	if ((d = socket(AF_UNIX, SOCK_DGRAM, 0)) < 0 || bind(d, (void *)&a, sizeof(a)) ||
	    (u = socket(AF_UNIX, SOCK_DGRAM, 0)) < 0)
		die("dgram socket");
	move_to(d, 12);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &e9, sizeof(int));
	if (sendmsg(u, &mh, 0) != 4)
		die("sendmsg");
	close(u);
	close(e);
	close(e9);
}

static void setup(void)
{
	int sv[2], sq[2], sp[2], f, r1, r2, e1, e2, e3, null = open("/dev/null", O_RDONLY);
	char path[4096];

	/* fds 3-13 taken first, so that what is made next lands above. */
	for (int k = 3; k <= 13; k++)
		if (null < 0 || (k != null && dup2(null, k) < 0))
			die("/dev/null");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq))
		die("socketpair");
	move_to(sv[0], 3);
	move_to(sv[1], 4);
	move_to(sq[0], 5);
	move_to(sq[1], 6);
	snprintf(path, sizeof(path), "%s/file", dir);
	if ((f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) < 0 ||
	    write(f, "0123456789abcdef", 16) != 16 || lseek(f, 5, SEEK_SET) != 5)
		die(path);
	move_to(f, 8);
	r1 = pipe_with("pipe-one", 7);
	r2 = pipe_with("pipe-two", 9);
	e1 = counter(42);
	e2 = counter(7);
	e3 = counter(3);
	send_fds(3, "hello ", NULL, 0);
	send_fds(3, "one", &r1, 1);
	send_fds(3, "two", &(int){8}, 1);
	send_fds(3, "three", &e1, 1);
	send_fds(3, " plain ", NULL, 0);
	send_fds(3, "four", (int[]){r2, 8, e2}, 3);
	send_fds(3, "tail", NULL, 0);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) || write(sp[0], "sock-bytes", 10) != 10)
		die("socketpair");
	move_to(sp[0], 13);
	send_fds(5, "seq", (int[]){e3, sp[1]}, 2);
	close(sp[1]);
	dgram_setup();
	close(r1);
	close(r2);
	close(e1);
	close(e2);
	close(e3);
}

/* One read of s: its bytes, and the fds it gave (how many in *n). */
static ssize_t take(int s, char *buf, size_t size, int *fds, int *n)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(8 * sizeof(int))];
	} ctl;
	struct iovec iov = {buf, size};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)};
	ssize_t r = recvmsg(s, &mh, MSG_DONTWAIT);

	*n = 0;
	if (r < 0)
		return r;
	buf[r] = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			*n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds, CMSG_DATA(c), *n * sizeof(int));
		}
	if (mh.msg_flags & MSG_CTRUNC)
		fail("fd %d: control data truncated", s);
	return r;
}

static void expect(int s, const char *text, int nfds, int *fds)
{
	char buf[256];
	int n;
	ssize_t r = take(s, buf, sizeof(buf) - 1, fds, &n);

	if (r < 0)
		fail("fd %d: no \"%s\": %s", s, text, strerror(errno));
	else if (strcmp(buf, text) || n != nfds)
		fail("fd %d: read \"%s\" with %d fds, not \"%s\" with %d", s, buf, n, text, nfds);
}

static void pipe_holds(int fd, const char *text, const char *what)
{
	char buf[64] = {0};
	ssize_t r;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	r = read(fd, buf, sizeof(buf) - 1);
	if (r != (ssize_t)strlen(text) || memcmp(buf, text, r))
		fail("%s: the pipe passed holds \"%s\" (%zd), not \"%s\"", what, buf, r, text);
}

static void count_is(int fd, uint64_t want, const char *what)
{
	uint64_t v = 0;
	struct stat sb;

	if (fstat(fd, &sb) || read(fd, &v, 8) != 8 || v != want)
		fail("%s: the eventfd passed counts %llu, not %llu", what, (unsigned long long)v,
		     (unsigned long long)want);
}

static int same_file(int a, int b)
{
	return syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, a, b) == 0;
}

static void file_at(int fd, off_t want, const char *what)
{
	off_t at = lseek(fd, 0, SEEK_CUR);

	if (at != want)
		fail("%s: the file passed is at offset %lld, not %lld", what, (long long)at,
		     (long long)want);
}

static void drained(int s)
{
	char c;

	if (recv(s, &c, 1, MSG_DONTWAIT) != -1 || errno != EAGAIN)
		fail("fd %d: more queued than was sent", s);
}

/* The receiving ends' checks; own: whether fd 8 and the pipes' write
 * ends are this process's. */
static void check_rx(int own)
{
	int a[8], b[8], c[8], d[8], e[8];
	char x = 0;

	expect(4, "hello one", 1, a);
	expect(4, "two", 1, b);
	expect(4, "three", 1, c);
	expect(4, " plain four", 3, d);
	expect(4, "tail", 0, e);
	drained(4);
	expect(6, "seq", 2, e);
	drained(6);
	expect(11, "dg", 1, e + 2);
	drained(11);
	expect(12, "free", 1, e + 3);
	drained(12);
	if (failures)
		return;
	pipe_holds(a[0], "pipe-one", "first");
	pipe_holds(d[0], "pipe-two", "fourth");
	if (own && (write(7, "x", 1) != 1 || read(a[0], &x, 1) != 1 || x != 'x'))
		fail("fd 7 is not the write end of the pipe passed first");
	file_at(b[0], 5, "second");
	file_at(d[1], 5, "fourth");
	if (!same_file(b[0], d[1]))
		fail("the file passed twice is two open file descriptions");
	if (own && !same_file(b[0], 8))
		fail("the file passed and fd 8 are two open file descriptions");
	if (lseek(b[0], 11, SEEK_SET) != 11)
		fail("lseek");
	file_at(d[1], 11, "fourth after a seek of the second");
	if (own)
		file_at(8, 11, "fd 8 after a seek of the second");
	count_is(c[0], 42, "third");
	count_is(d[2], 7, "fourth");
	count_is(e[0], 3, "seqpacket");
	count_is(e[2], 5, "datagram pair");
	count_is(e[3], 9, "datagram socket joined to no peer");
	pipe_holds(e[1], "sock-bytes", "the socket passed");
	if (own && (write(e[1], "y", 1) != 1 || read(13, &x, 1) != 1 || x != 'y'))
		fail("fd 13 is not the other end of the socket passed");
}

static void one_setup(void)
{
	setup();
}

static void one_check(void)
{
	check_rx(1);
}

static void tree_setup(void)
{
	setup();
	if ((kid = fork()) < 0)
		die("fork");
	if (kid == 0) {
		char path[4096];
		close(3);
		close(5);
		close(7);
		close(8);
		close(9);
		close(10);
		close(13);
		snprintf(path, sizeof(path), "%s/go", dir);
		wait_file(path);
		check_rx(0);
		_exit(failures ? 1 : 0);
	}
	close(4);
	close(6);
	close(11);
	close(12);
}

static void tree_check(void)
{
	int st;

	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("the child's checks failed (status %#x)", st);
	else
		file_at(8, 11, "the parent's fd 8 after the child's seek");
}

static void cycle_setup(void)
{
	int sv[2], in[2], r, null = open("/dev/null", O_RDONLY);

	for (int k = 3; k <= 7; k++)
		if (null < 0 || (k != null && dup2(null, k) < 0))
			die("/dev/null");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || socketpair(AF_UNIX, SOCK_STREAM, 0, in))
		die("socketpair");
	move_to(sv[0], 3);
	move_to(sv[1], 4);
	r = pipe_with("deep", 7);
	send_fds(in[0], "p", &r, 1);
	close(r);
	send_fds(3, "s", &in[1], 1);
	close(in[1]);
	move_to(in[0], 5);
}

static void epoll_setup(void)
{
	int sv[2], ep;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || (ep = epoll_create1(0)) < 0)
		die("socketpair");
	move_to(sv[0], 3);
	move_to(sv[1], 4);
	send_fds(3, "e", &ep, 1);
	close(ep);
}

static void epoll_check(void)
{
	int a[8];
	struct epoll_event ev;

	expect(4, "e", 1, a);
	if (!failures && epoll_wait(a[0], &ev, 1, 0) != 0)
		fail("the epoll instance passed: epoll_wait: %s", strerror(errno));
}

static void cycle_check(void)
{
	int a[8], b[8];

	expect(4, "s", 1, a);
	if (failures)
		return;
	expect(a[0], "p", 1, b);
	if (!failures)
		pipe_holds(b[0], "deep", "inner");
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*setup)(void), (*check)(void);
	} kinds[] = {
	    {"one", one_setup, one_check},
	    {"tree", tree_setup, tree_check},
	    {"cycle", cycle_setup, cycle_check},
	    {"epoll", epoll_setup, epoll_check},
	};
	char path[4096];
	size_t k;

	if (argc != 3) {
		fprintf(stderr, "usage: scmrights KIND DIR\n");
		return 2;
	}
	dir = argv[2];
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		if (!strcmp(argv[1], kinds[k].name))
			break;
	if (k == sizeof(kinds) / sizeof(kinds[0])) {
		fprintf(stderr, "scmrights: unknown kind %s\n", argv[1]);
		return 2;
	}
	kinds[k].setup();
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	snprintf(path, sizeof(path), "%s/go", dir);
	wait_file(path);
	kinds[k].check();
	if (failures)
		return 1;
	printf("scmrights %s: ok\n", argv[1]);
	return 0;
}
