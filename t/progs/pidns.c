/* pidns: a tree that keeps the pids it knows of its own processes, for
 * restores in a pid namespace and dumps of them from outside.
 *
 *   pidns DIR ROUNDS [noproc]
 *                     a parent with a second thread and two children.
 *                     It writes DIR/ready.R and waits for DIR/go.R, for
 *                     R = 0 .. ROUNDS-1 (a dump and a restore in between);
 *                     then it checks: its getpid(); its thread's tid
 *                     (tgkill reaches the thread, which finds gettid()
 *                     kept); each child's pid (kill(child, 0), and the
 *                     child's answer: its getpid(), getppid(), kill of the
 *                     parent and of its sibling); its pidfd of the first
 *                     child (fdinfo's Pid) and the /proc/PID/status files
 *                     of itself and of that child it holds open (their
 *                     Pid), where /proc shows its own pid namespace (not
 *                     with noproc: a coordinator's member saves its open
 *                     files, and one of /proc is not put back).  At the
 *                     end each child exits and waitpid(child) must return
 *                     it with status 0.
 *
 * "ok pidns" on stdout and exit 0 only if every check of every round
 * passed. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

static const char *dir;
static pid_t thread_tid;
static volatile pid_t seen_tid;

static void bad(int round, const char *what, long got, long want)
{
	fprintf(stderr, "pidns[%d] round %d: %s: %ld, not %ld\n", getpid(), round, what, got,
		want);
	exit(1);
}

static void nap(void)
{
	struct timespec ts = {0, 10 * 1000 * 1000};
	nanosleep(&ts, NULL);
}

static void on_usr1(int sig)
{
	(void)sig;
	seen_tid = (pid_t)syscall(SYS_gettid);
}

static void *thread_main(void *arg)
{
	(void)arg;
	thread_tid = (pid_t)syscall(SYS_gettid);
	for (;;)
		pause();
	return NULL;
}

/* A child: answers each 'c' with its getpid() once its own checks pass
 * (-1 else); exits 0 at 'q'. */
static _Noreturn void child(int in, int out, pid_t parent, pid_t sibling)
{
	pid_t me = getpid(), answer;
	char c;

	for (;;) {
		if (read(in, &c, 1) != 1)
			_exit(2);
		if (c == 'q')
			_exit(0);
		answer = getpid();
		if (answer != me || getppid() != parent || kill(parent, 0) ||
		    (sibling && kill(sibling, 0))) {
			fprintf(stderr, "pidns child %d: getpid %d getppid %d (parent %d) sibling "
					"%d\n",
				me, answer, getppid(), parent, sibling);
			answer = -1;
		}
		if (write(out, &answer, sizeof(answer)) != sizeof(answer))
			_exit(3);
	}
}

/* Whether /proc is of our pid namespace (it shows us under our pid). */
static int proc_ours(void)
{
	char self[32];
	ssize_t n = readlink("/proc/self", self, sizeof(self) - 1);

	if (n <= 0)
		return 0;
	self[n] = 0;
	return atoi(self) == getpid();
}

/* The Pid: line of what fd reads from its start (a status file, an
 * fdinfo); -1 where it has none. */
static long pid_line(int fd)
{
	char buf[4096];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	char *p;

	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, "Pid:");
	while (p && p != buf && p[-1] != '\n')
		p = strstr(p + 1, "Pid:");
	return p ? atol(p + 4) : -1;
}

/* The Pid: of pidfd's fdinfo. */
static long pidfd_pid(int pidfd)
{
	char path[64];
	long v;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	v = pid_line(fd);
	close(fd);
	return v;
}

static int open_status(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	return open(path, O_RDONLY);
}

static void mark(int round)
{
	char path[4096], tmp[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/ready.%d", dir, round);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "1\n", 2) != 2 || close(fd) || rename(tmp, path))
		bad(round, "cannot write ready", errno, 0);
}

static void wait_go(int round)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/go.%d", dir, round);
	while (stat(path, &st))
		nap();
}

int main(int argc, char **argv)
{
	int to[2][2], from[2][2], rounds, pidfd, own_status = -1, kid_status = -1;
	pid_t me = getpid(), kid[2] = {0, 0};
	struct sigaction sa;
	pthread_t th;

	if (argc < 3 || argc > 4 || (rounds = atoi(argv[2])) < 1) {
		fprintf(stderr, "usage: pidns DIR ROUNDS [noproc]\n");
		return 2;
	}
	dir = argv[1];
	setvbuf(stdout, NULL, _IONBF, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	for (int i = 0; i < 2; i++) {
		if (pipe(to[i]) || pipe(from[i]))
			bad(0, "pipe", errno, 0);
		kid[i] = fork();
		if (kid[i] < 0)
			bad(0, "fork", errno, 0);
		if (kid[i] == 0) {
			close(to[i][1]);
			close(from[i][0]);
			child(to[i][0], from[i][1], me, i ? kid[0] : 0);
		}
		close(to[i][0]);
		close(from[i][1]);
	}
	pidfd = (int)syscall(SYS_pidfd_open, kid[0], 0);
	if (pidfd < 0)
		bad(0, "pidfd_open", errno, 0);
	if (argc < 4 && ((own_status = open_status(me)) < 0 ||
			 (kid_status = open_status(kid[0])) < 0))
		bad(0, "cannot open /proc/PID/status", errno, 0);
	if (pthread_create(&th, NULL, thread_main, NULL))
		bad(0, "pthread_create", 0, 0);
	while (!thread_tid)
		nap();

	for (int r = 0; r < rounds; r++) {
		pid_t answer;
		long v;

		mark(r);
		wait_go(r);
		if (getpid() != me)
			bad(r, "getpid", getpid(), me);
		seen_tid = 0;
		if (syscall(SYS_tgkill, me, thread_tid, SIGUSR1))
			bad(r, "tgkill of the thread", errno, 0);
		while (!seen_tid)
			nap();
		if (seen_tid != thread_tid)
			bad(r, "the thread's gettid", seen_tid, thread_tid);
		for (int i = 0; i < 2; i++) {
			if (kill(kid[i], 0))
				bad(r, "kill(child, 0)", errno, kid[i]);
			if (write(to[i][1], "c", 1) != 1 ||
			    read(from[i][0], &answer, sizeof(answer)) != sizeof(answer))
				bad(r, "no answer from child", kid[i], 0);
			if (answer != kid[i])
				bad(r, "the child's answer", answer, kid[i]);
		}
		if (proc_ours() && (v = pidfd_pid(pidfd)) != kid[0])
			bad(r, "the pidfd's Pid", v, kid[0]);
		if (own_status >= 0 && proc_ours() && (v = pid_line(own_status)) != me)
			bad(r, "the Pid of its /proc/PID/status", v, me);
		if (kid_status >= 0 && proc_ours() && (v = pid_line(kid_status)) != kid[0])
			bad(r, "the Pid of the child's /proc/PID/status", v, kid[0]);
		if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0))
			bad(r, "pidfd_send_signal", errno, 0);
	}
	for (int i = 0; i < 2; i++) {
		int st;
		pid_t w;

		if (write(to[i][1], "q", 1) != 1)
			bad(rounds, "cannot tell the child to quit", kid[i], 0);
		while ((w = waitpid(kid[i], &st, 0)) < 0 && errno == EINTR)
			;
		if (w != kid[i])
			bad(rounds, "waitpid(child)", w < 0 ? -errno : w, kid[i]);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			bad(rounds, "the child's status", st, 0);
	}
	printf("ok pidns\n");
	return 0;
}
