/* opath.c: O_PATH descriptors and pidfds held across a checkpoint.
 *
 *   opath DIR        makes DIR/f (a file), DIR/d (a directory) and DIR/l (a
 *                    symlink to f), holds O_PATH fds of f (fd 3), d (fd 4, also
 *                    O_DIRECTORY) and of l itself (fd 5, O_NOFOLLOW), prints
 *                    "ready PID", waits for DIR/go, then checks that each fd is
 *                    still O_PATH (fcntl F_GETFL), on the same inode (fstat,
 *                    fstatat AT_EMPTY_PATH), l's still a symlink (readlinkat
 *                    "" reads "f"), and prints "opath: ok".
 *   opath --gone DIR as above with fd 3 only, then removes DIR/f.
 *   opath --pidfd DIR holds a pidfd of itself (fd 3) and, PIDFD_NONBLOCK, of a
 *                    child of its own (fd 4) that waits for DIR/go too; prints
 *                    "ready PID", waits for DIR/go, then checks that
 *                    pidfd_send_signal(0) works on both, that the flags are
 *                    kept, that fd 4 is not readable while the child runs and
 *                    becomes readable (poll) when it exits, and prints
 *                    "pidfd: ok".
 */
#define PROG "opath"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "progs.h"

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif

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

static void same(int fd, const char *name, const struct stat *was, mode_t type)
{
	struct stat a, b;
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || !(fl & O_PATH))
		fail("fd %d (%s): flags %o, no O_PATH", fd, name, fl);
	if (fstat(fd, &a) || fstatat(fd, "", &b, AT_EMPTY_PATH)) {
		fail("fd %d (%s): fstat: %s", fd, name, strerror(errno));
		return;
	}
	if (a.st_ino != was->st_ino || a.st_dev != was->st_dev || b.st_ino != was->st_ino ||
	    (a.st_mode & S_IFMT) != type)
		fail("fd %d (%s): inode %lu mode %o, was %lu", fd, name, (unsigned long)a.st_ino,
		     a.st_mode, (unsigned long)was->st_ino);
}

static int do_opath(int gone)
{
	struct stat sf, sd, sl;
	char buf[64];
	ssize_t n;
	int fd;

	if ((fd = open(in_dir("f"), O_WRONLY | O_CREAT, 0600)) < 0 || write(fd, "x", 1) != 1)
		die("f");
	close(fd);
	if (mkdir(in_dir("d"), 0700) || symlink("f", in_dir("l")))
		die("mkdir/symlink");
	if (stat(in_dir("f"), &sf) || stat(in_dir("d"), &sd) || lstat(in_dir("l"), &sl))
		die("stat");
	at(3, open(in_dir("f"), O_PATH));
	if (!gone) {
		at(4, open(in_dir("d"), O_PATH | O_DIRECTORY));
		at(5, open(in_dir("l"), O_PATH | O_NOFOLLOW));
	} else if (unlink(in_dir("f"))) {
		die("unlink");
	}
	printf("ready %d\n", getpid());
	fflush(stdout);
	wait_file(in_dir("go"));
	same(3, "f", &sf, S_IFREG);
	if (!gone) {
		same(4, "d", &sd, S_IFDIR);
		same(5, "l", &sl, S_IFLNK);
		if (!(fcntl(4, F_GETFL) & O_DIRECTORY))
			fail("fd 4 lost O_DIRECTORY");
		n = readlinkat(5, "", buf, sizeof(buf));
		if (n != 1 || buf[0] != 'f')
			fail("fd 5: readlinkat: %zd %s", n, n < 0 ? strerror(errno) : "");
	}
	if (failures)
		return 1;
	printf("opath: ok\n");
	return 0;
}

static int do_pidfd(void)
{
	struct pollfd p = {.fd = 4, .events = POLLIN};
	pid_t child = fork();
	int st;

	if (child < 0)
		die("fork");
	if (child == 0) {
		wait_file(in_dir("go"));
		_exit(7);
	}
	at(3, syscall(SYS_pidfd_open, getpid(), 0));
	at(4, syscall(SYS_pidfd_open, child, PIDFD_NONBLOCK));
	printf("ready %d\n", getpid());
	fflush(stdout);
	wait_file(in_dir("go"));
	if (syscall(SYS_pidfd_send_signal, 3, 0, NULL, 0))
		fail("pidfd of self: send_signal: %s", strerror(errno));
	if (fcntl(3, F_GETFL) & O_NONBLOCK)
		fail("pidfd of self: O_NONBLOCK");
	if (!(fcntl(4, F_GETFL) & O_NONBLOCK))
		fail("pidfd of child: O_NONBLOCK lost");
	if (poll(&p, 1, 0) == 1 && waitpid(-1, &st, WNOHANG) == 0)
		fail("pidfd of child: readable while the child runs");
	if (poll(&p, 1, 20000) != 1)
		fail("pidfd of child: not readable after it exited");
	if (waitpid(-1, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
		fail("child: status %x", st);
	if (failures)
		return 1;
	printf("pidfd: ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--gone")) {
		dir = argv[2];
		return do_opath(1);
	}
	if (argc == 3 && !strcmp(argv[1], "--pidfd")) {
		dir = argv[2];
		return do_pidfd();
	}
	if (argc != 2) {
		fprintf(stderr, "usage: opath [--gone|--pidfd] DIR\n");
		return 2;
	}
	dir = argv[1];
	return do_opath(0);
}
