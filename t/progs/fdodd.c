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
 */
#define PROG "fdodd"
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "progs.h"

static const char *dir;

static const char *in_dir(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static void at(int want, int fd)
{
	if (fd < 0)
		die("open");
	if (fd != want) {
		if (dup2(fd, want) < 0)
			die("dup2");
		close(fd);
	}
}

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
		at(3 + i, open(path, O_RDONLY));
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
	at(3, open(path, O_RDONLY));
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

	at(3, epoll_create1(0));
	at(5, eventfd(0, 0));
	add(3, 5, 0xa);
	at(6, dup(5));
	close(5);
	if (pipe(p))
		die("pipe");
	at(20, p[0]);
	at(10, p[1]);
	at(7, dup(20));
	close(20);
	add(3, 7, 0xb);
	at(8, dup(7));
	at(7, eventfd(0, EFD_CLOEXEC));
	if (fcntl(7, F_SETFD, FD_CLOEXEC))
		die("F_SETFD");
	add(3, 7, 0xc);
	at(9, eventfd(0, 0));
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

	at(3, epoll_create1(0));
	at(5, eventfd(0, 0));
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
