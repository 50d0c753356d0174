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
 *   opath --pidfd DIR holds a pidfd of itself (fd 3), one, PIDFD_NONBLOCK, of a
 *                    child of its own (fd 4) that waits for DIR/go too, and one
 *                    of a child that exited and was reaped (fd 5); prints
 *                    "child PID", then "ready PID", waits for DIR/go, then
 *                    checks that fdinfo's Pid of each is the pid it was of
 *                    (-1 for fd 5), that pidfd_send_signal(0) works on fds 3
 *                    and 4, that the flags are kept, that fd 4 is not
 *                    readable while the child runs and becomes readable
 *                    (poll) when it exits, and that fd 5 answers poll,
 *                    pidfd_send_signal, waitid(P_PIDFD) and PIDFD_GET_INFO
 *                    as it did before the checkpoint (readable and hung up,
 *                    ESRCH, ECHILD, exit status 3 where the kernel tells);
 *                    prints "pidfd: ok".
 */
#define PROG "opath"
#include <fcntl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "progs.h"

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif

static const char *dir;

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
	fd_at(3, open(in_dir("f"), O_PATH), "open");
	if (!gone) {
		fd_at(4, open(in_dir("d"), O_PATH | O_DIRECTORY), "open");
		fd_at(5, open(in_dir("l"), O_PATH | O_NOFOLLOW), "open");
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

/* fdinfo's Pid of fd: the pid its pidfd is of, -1 once reaped. */
static int pidfd_pid(int fd)
{
	char path[64], line[256];
	int pid = -2;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (!(f = fopen(path, "r")))
		return -2;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Pid: %d", &pid) == 1)
			break;
	fclose(f);
	return pid;
}

/* What a pidfd of a reaped process answers: poll's revents, and the
 * errno of pidfd_send_signal and of waitid(P_PIDFD). */
struct gone {
	short revents;
	int sig_err, wait_err;
	int info_err, exit_code; /* PIDFD_GET_INFO's (Linux 6.15) */
};

/* The head of struct pidfd_info, as the kernel fills it. */
struct pidfd_info {
	uint64_t mask, cgroupid;
	uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
	int32_t exit_code;
	uint32_t coredump_mask, spare;
};
#define PIDFD_GET_INFO_REQ _IOWR(0xFF, 11, struct pidfd_info)

static void ask_gone(int fd, struct gone *g)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	struct pidfd_info info = {.mask = 8}; /* PIDFD_INFO_EXIT */
	siginfo_t si;

	g->revents = poll(&p, 1, 0) == 1 ? p.revents : 0;
	errno = 0;
	g->sig_err = syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0) ? errno : 0;
	errno = 0;
	g->wait_err = waitid(P_PIDFD, fd, &si, WEXITED | WNOHANG) ? errno : 0;
	errno = 0;
	g->info_err = ioctl(fd, PIDFD_GET_INFO_REQ, &info) ? errno : 0;
	g->exit_code = (info.mask & 8) ? info.exit_code : -1;
}

/* Whether child has exited, left unreaped. */
static int exited(pid_t child)
{
	siginfo_t si = {0};

	return waitid(P_PID, child, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == child;
}

static int do_pidfd(void)
{
	struct pollfd p = {.fd = 4, .events = POLLIN};
	pid_t child = fork(), gone;
	struct gone was, now;
	int st;

	if (child < 0)
		die("fork");
	if (child == 0) {
		wait_file(in_dir("go"));
		_exit(7);
	}
	if ((gone = fork()) < 0)
		die("fork");
	if (gone == 0)
		_exit(3);
	fd_at(5, syscall(SYS_pidfd_open, gone, 0), "open");
	if (waitpid(gone, &st, 0) != gone)
		die("waitpid");
	fd_at(3, syscall(SYS_pidfd_open, getpid(), 0), "open");
	fd_at(4, syscall(SYS_pidfd_open, child, PIDFD_NONBLOCK), "open");
	ask_gone(5, &was);
	printf("child %d\nready %d\n", child, getpid());
	fflush(stdout);
	wait_file(in_dir("go"));
	if (pidfd_pid(3) != getpid() || pidfd_pid(4) != child || pidfd_pid(5) != -1)
		fail("fdinfo Pid: %d %d %d, want %d %d -1", pidfd_pid(3), pidfd_pid(4),
		     pidfd_pid(5), getpid(), child);
	if (syscall(SYS_pidfd_send_signal, 3, 0, NULL, 0))
		fail("pidfd of self: send_signal: %s", strerror(errno));
	if (fcntl(3, F_GETFL) & O_NONBLOCK)
		fail("pidfd of self: O_NONBLOCK");
	if (!(fcntl(4, F_GETFL) & O_NONBLOCK))
		fail("pidfd of child: O_NONBLOCK lost");
	if (fcntl(5, F_GETFL) & O_NONBLOCK)
		fail("pidfd of the exited child: O_NONBLOCK");
	ask_gone(5, &now);
	if (now.revents != was.revents || now.sig_err != was.sig_err ||
	    now.wait_err != was.wait_err || now.info_err != was.info_err ||
	    now.exit_code != was.exit_code || !(now.revents & POLLIN))
		fail("pidfd of the exited child: poll %#x send_signal %d waitid %d info %d status "
		     "%#x, was %#x %d %d %d %#x",
		     now.revents, now.sig_err, now.wait_err, now.info_err, now.exit_code,
		     was.revents, was.sig_err, was.wait_err, was.info_err, was.exit_code);
	if (syscall(SYS_pidfd_send_signal, 4, 0, NULL, 0))
		fail("pidfd of child: send_signal: %s", strerror(errno));
	if (poll(&p, 1, 0) == 1 && !exited(child))
		fail("pidfd of child: readable while the child runs");
	if (poll(&p, 1, 20000) != 1)
		fail("pidfd of child: not readable after it exited");
	if (waitpid(child, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
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
