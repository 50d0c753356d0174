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
 */
#define PROG "fdodd"
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(void);
	} modes[] = {
	    {"nsfile", do_nsfile},
	    {"nsother", do_nsother},
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
