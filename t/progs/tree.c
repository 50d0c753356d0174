/* tree: process trees for ckpt-dump -t, each checking itself after a
 * restore and exiting 0 only if all is intact.
 *
 *   tree workers DIR  a parent and four children: numbers go down pipes
 *                     (a socketpair for the first), squares come back, each
 *                     child adds into its slot of shared anonymous memory
 *                     and appends a record to a log they share one open
 *                     file description of; the parent checks every answer
 *                     and, at the end, every slot and record
 *   tree zombie DIR   a child that exited (a zombie at the dump), one that
 *                     exits after the restore (DIR/go) while the parent
 *                     is blocked in waitpid; a SIGCHLD handler counts
 *   tree session DIR  a session leader with three children in two process
 *                     groups, each checking its sid, pgid and parent
 *   tree exec DIR     a child that exec'd this program again ("execd")
 *   tree popen DIR    a parent reading "seq 1 100000" through popen(3)
 *   tree clonefs DIR  a child made with clone(CLONE_FS): after the restore
 *                     it changes directory, and its parent must see it
 *   tree clonevm DIR  a child sharing its parent's memory (CLONE_VM), which
 *                     ckpt-dump -t refuses
 *   tree pty DIR      a parent holding a pty master; a session leader whose
 *                     controlling terminal is the slave, with its child's
 *                     group in the foreground
 *
 * Each writes DIR/ready once it is set up (the moment to dump it) and
 * "ok MODE" on stdout at a clean end; every process checks that getpid()
 * and getppid() kept their values. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

static const char *dir;
static volatile sig_atomic_t nchld;

static void bad(const char *what)
{
	fprintf(stderr, "tree[%d]: %s\n", getpid(), what);
	exit(1);
}

static void mark(const char *name)
{
	char path[4096], tmp[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "1\n", 2) != 2 || close(fd) || rename(tmp, path))
		bad("cannot write a mark file");
}

static int exists(const char *name)
{
	char path[4096];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &sb) == 0;
}

static void nap(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* The same pid and parent as at the start: a restore kept them. */
static void same_ids(pid_t me, pid_t parent)
{
	if (getpid() != me)
		bad("getpid() changed");
	if (parent && getppid() != parent)
		bad("getppid() changed");
}

static int full_read(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += n;
	}
	return 0;
}

static int full_write(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len) == (ssize_t)len ? 0 : -1;
}

#define NW 4
#define ROUNDS 3000

/* One line of the shared log: who wrote it and for which number. */
struct logrec {
	uint32_t magic;
	int32_t child;
	uint64_t x;
};

static int workers(void)
{
	volatile uint64_t *slot = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int to[NW][2], from[NW][2], log;
	pid_t kid[NW], me = getpid();
	uint64_t want[NW] = {0};
	char path[4096];
	struct stat sb;

	if (slot == MAP_FAILED)
		bad("mmap");
	/* One open file description every child writes through: its offset
	 * moves for all, so no record overwrites another. */
	snprintf(path, sizeof(path), "%s/log", dir);
	log = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (log < 0)
		bad("open the log");
	for (int i = 0; i < NW; i++) {
		/* Child 0 talks over a unix socketpair, the others over pipes. */
		if (i == 0) {
			int sv[2];
			if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
				bad("socketpair");
			to[i][0] = sv[0];
			to[i][1] = sv[1];
			from[i][0] = dup(sv[1]);
			from[i][1] = dup(sv[0]);
		} else if (pipe(to[i]) || pipe(from[i])) {
			bad("pipe");
		}
		kid[i] = fork();
		if (kid[i] < 0)
			bad("fork");
		if (kid[i] == 0) {
			pid_t self = getpid();
			uint64_t x;

			close(to[i][1]);
			close(from[i][0]);
			for (;;) {
				if (full_read(to[i][0], &x, sizeof(x)))
					bad("child: read");
				same_ids(self, me);
				if (x == 0)
					_exit(0);
				slot[i * 8] += x;
				{
					struct logrec rec = {0x6c6f6721, i, x};
					if (full_write(log, &rec, sizeof(rec)))
						bad("child: write the log");
				}
				x *= x;
				if (full_write(from[i][1], &x, sizeof(x)))
					bad("child: write");
			}
		}
		close(to[i][0]);
		close(from[i][1]);
	}
	for (uint64_t r = 1; r <= ROUNDS; r++) {
		for (int i = 0; i < NW; i++) {
			uint64_t x = r * NW + i;
			want[i] += x;
			if (full_write(to[i][1], &x, sizeof(x)))
				bad("parent: write");
		}
		for (int i = 0; i < NW; i++) {
			uint64_t x = r * NW + i, y;
			if (full_read(from[i][0], &y, sizeof(y)) || y != x * x)
				bad("parent: wrong answer");
		}
		if (r == 50)
			mark("ready");
		nap(500);
	}
	same_ids(me, 0);
	for (int i = 0; i < NW; i++) {
		uint64_t z = 0;
		int st;
		if (full_write(to[i][1], &z, sizeof(z)) || waitpid(kid[i], &st, 0) != kid[i] ||
		    !WIFEXITED(st) || WEXITSTATUS(st))
			bad("a child failed");
		if (slot[i * 8] != want[i])
			bad("shared memory lost an update");
	}
	if (fstat(log, &sb) || sb.st_size != (off_t)(NW * ROUNDS * sizeof(struct logrec)))
		bad("the shared log lost records: its offset was not shared");
	{
		FILE *f = fopen(path, "r");
		struct logrec rec;
		uint64_t sum[NW] = {0};

		while (f && fread(&rec, sizeof(rec), 1, f) == 1)
			if (rec.magic == 0x6c6f6721 && rec.child >= 0 && rec.child < NW)
				sum[rec.child] += rec.x;
		if (f)
			fclose(f);
		for (int i = 0; i < NW; i++)
			if (sum[i] != want[i])
				bad("the shared log has a wrong record");
	}
	return 0;
}

static void on_chld(int sig)
{
	(void)sig;
	nchld++;
}

/* The state of pid: 'Z' for a zombie. */
static char state_of(pid_t pid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	p = stat_fields(path, buf, sizeof(buf));
	return p ? p[0] : 0;
}

static int zombie(void)
{
	struct sigaction sa;
	pid_t a, b, me = getpid();
	int st;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_chld;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	a = fork();
	if (a == 0)
		_exit(7);
	b = fork();
	if (b == 0) {
		pid_t self = getpid();
		while (!exists("go"))
			nap(10000);
		same_ids(self, me);
		_exit(3);
	}
	while (state_of(a) != 'Z')
		nap(1000);
	mark("ready");
	if (waitpid(b, &st, 0) != b || !WIFEXITED(st) || WEXITSTATUS(st) != 3)
		bad("the child exiting after the restore was not reaped with status 3");
	if (waitpid(a, &st, 0) != a || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
		bad("the zombie was not reaped with status 7");
	same_ids(me, 0);
	if (nchld < 2)
		bad("SIGCHLD handler missed a child");
	return 0;
}

/* A member of the leader's session: checks until DIR/go. */
static _Noreturn void member(pid_t leader, pid_t pgid)
{
	pid_t self = getpid();

	for (;;) {
		int go = exists("go");
		same_ids(self, leader);
		if (getsid(0) != leader)
			bad("session changed");
		if (getpgrp() != pgid)
			bad("process group changed");
		if (go)
			_exit(0);
		nap(5000);
	}
}

static int session(void)
{
	pid_t me = getpid(), l = fork();
	int st;

	if (l < 0)
		bad("fork");
	if (l == 0) {
		pid_t g[3];
		int ok = 1;

		l = getpid();
		if (setsid() != l)
			bad("setsid");
		g[0] = fork();
		if (g[0] == 0) {
			setpgid(0, 0);
			member(l, getpid());
		}
		setpgid(g[0], g[0]);
		g[1] = fork();
		if (g[1] == 0) {
			setpgid(0, g[0]);
			member(l, g[0]);
		}
		setpgid(g[1], g[0]);
		g[2] = fork();
		if (g[2] == 0)
			member(l, l);
		while (getpgid(g[0]) != g[0] || getpgid(g[1]) != g[0])
			nap(1000);
		mark("ready");
		for (int i = 0; i < 3; i++)
			if (waitpid(g[i], &st, 0) != g[i] || !WIFEXITED(st) || WEXITSTATUS(st))
				ok = 0;
		same_ids(l, me);
		if (getsid(0) != l || getpgrp() != l)
			bad("the leader's session or group changed");
		_exit(ok ? 0 : 1);
	}
	if (waitpid(l, &st, 0) != l || !WIFEXITED(st) || WEXITSTATUS(st))
		bad("the session failed");
	same_ids(me, 0);
	return 0;
}

static int execd(pid_t parent)
{
	pid_t self = getpid();

	mark("ready");
	while (!exists("go")) {
		same_ids(self, parent);
		nap(5000);
	}
	same_ids(self, parent);
	return 0;
}

static int exec_child(void)
{
	pid_t me = getpid(), c = fork();
	char arg[32];
	int st;

	if (c < 0)
		bad("fork");
	if (c == 0) {
		snprintf(arg, sizeof(arg), "%d", me);
		execl("/proc/self/exe", "tree", "execd", dir, arg, (char *)NULL);
		bad("exec");
	}
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		bad("the exec'd child failed");
	same_ids(me, 0);
	return 0;
}

static int popen_read(void)
{
	FILE *p = popen("seq 1 100000", "r");
	unsigned long long sum = 0, v, n = 0;
	pid_t me = getpid();

	if (!p)
		bad("popen");
	while (fscanf(p, "%llu", &v) == 1) {
		sum += v;
		if (++n == 1000)
			mark("ready");
		if (n % 100 == 0)
			nap(1000);
	}
	if (pclose(p) != 0 || sum != 5000050000ull)
		bad("popen: wrong sum or status");
	same_ids(me, 0);
	return 0;
}

static int clonefs(void)
{
	char sub[4096], cwd[4096];
	pid_t me = getpid(), c;
	int st;

	snprintf(sub, sizeof(sub), "%s/sub", dir);
	if (mkdir(sub, 0755) || chdir(dir))
		bad("mkdir");
	c = syscall(SYS_clone, CLONE_FS | SIGCHLD, 0, NULL, NULL, 0);
	if (c < 0)
		bad("clone");
	if (c == 0) {
		/* Raw system calls only: glibc did not see this child made. */
		while (access("go", F_OK))
			nap(5000);
		if (chdir("sub"))
			_exit(1);
		_exit(0);
	}
	mark("ready");
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		bad("the CLONE_FS child failed");
	if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd + strlen(cwd) - 4, "/sub"))
		bad("the child's chdir did not show in its parent: CLONE_FS lost");
	same_ids(me, 0);
	return 0;
}

static int vm_child(void *arg)
{
	(void)arg;
	while (access("go", F_OK))
		nap(5000);
	return 0;
}

static int clonevm(void)
{
	static char stack[65536] __attribute__((aligned(16)));
	pid_t c;
	int st;

	if (chdir(dir))
		bad("chdir");
	c = clone(vm_child, stack + sizeof(stack), CLONE_VM | SIGCHLD, NULL);
	if (c < 0)
		bad("clone");
	mark("ready");
	if (waitpid(c, &st, 0) != c)
		bad("waitpid");
	return 0;
}

/* The terminal checks of a member of the pty session. */
static void check_tty(int fd, pid_t leader, pid_t fg)
{
	int t;

	if (tcgetsid(fd) != leader)
		bad("the pty is not its session's terminal");
	if (tcgetpgrp(fd) != fg)
		bad("the pty's foreground group changed");
	t = open("/dev/tty", O_RDWR | O_NOCTTY);
	if (t < 0)
		bad("no controlling terminal");
	close(t);
}

static int pty(void)
{
	pid_t me = getpid(), l;
	int m = posix_openpt(O_RDWR | O_NOCTTY), st;

	char name[64];

	if (m < 0 || grantpt(m) || unlockpt(m) || ptsname_r(m, name, sizeof(name)))
		bad("posix_openpt");
	l = fork();
	if (l < 0)
		bad("fork");
	if (l == 0) {
		pid_t c, self = getpid();
		int s;

		if (setsid() != self)
			bad("setsid");
		/* The leader opens the slave: it becomes its terminal. */
		s = open(name, O_RDWR);
		if (s < 0)
			bad("open the slave");
		c = fork();
		if (c == 0) {
			pid_t cs = getpid();
			setpgid(0, 0);
			while (tcgetpgrp(s) != cs)
				nap(1000);
			while (!exists("go")) {
				same_ids(cs, self);
				check_tty(s, self, cs);
				nap(5000);
			}
			check_tty(s, self, cs);
			_exit(0);
		}
		setpgid(c, c);
		signal(SIGTTOU, SIG_IGN);
		if (tcsetpgrp(s, c))
			bad("tcsetpgrp");
		mark("ready");
		while (!exists("go"))
			nap(5000);
		same_ids(self, me);
		check_tty(s, self, c);
		if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
			_exit(1);
		_exit(0);
	}
	if (waitpid(l, &st, 0) != l || !WIFEXITED(st) || WEXITSTATUS(st))
		bad("the pty session failed");
	same_ids(me, 0);
	return 0;
}

int main(int argc, char **argv)
{
	int rc;

	if (argc < 3) {
		fprintf(stderr, "usage: tree workers|zombie|session|exec|popen|clonefs|clonevm|pty DIR\n");
		return 2;
	}
	dir = argv[2];
	if (!strcmp(argv[1], "execd") && argc == 4)
		return execd(atoi(argv[3]));
	if (!strcmp(argv[1], "workers"))
		rc = workers();
	else if (!strcmp(argv[1], "zombie"))
		rc = zombie();
	else if (!strcmp(argv[1], "session"))
		rc = session();
	else if (!strcmp(argv[1], "exec"))
		rc = exec_child();
	else if (!strcmp(argv[1], "popen"))
		rc = popen_read();
	else if (!strcmp(argv[1], "clonefs"))
		rc = clonefs();
	else if (!strcmp(argv[1], "clonevm"))
		rc = clonevm();
	else if (!strcmp(argv[1], "pty"))
		rc = pty();
	else
		return 2;
	if (rc == 0)
		printf("ok %s\n", argv[1]);
	return rc;
}
