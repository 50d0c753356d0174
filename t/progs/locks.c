/* locks.c: file locks held across a checkpoint.
 *
 *   locks DIR        takes, on files of DIR: POSIX locks through one fd
 *                    of DIR/a (read 0-99, write from 200 to the end), an
 *                    OFD write lock through another open of it (100-149),
 *                    a flock(2) on DIR/b shared by two fds (dup) and a
 *                    read lease on DIR/c; prints "ready PID", waits for
 *                    DIR/go (DIR/a also mapped shared), then checks from a child of its own
 * (another process, other opens of the files) that exactly those locks are held, releases them,
 * checks that they are gone, and prints "locks: ok". locks --tree DIR as above, and a child of its
 * own holds a POSIX write lock on DIR/d (0-9) and shares the fds of the parent: the parent checks
 * that the child's lock, and not its own, is there, and that it goes with the child. locks --hold
 * FILE START LEN a POSIX write lock on FILE's range, "holding PID", held until killed.
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *dir;
static int bad;

static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "locks: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	bad = 1;
}

static const char *in_dir(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static int must_open(const char *name, int flags)
{
	int fd = open(in_dir(name), flags | O_CREAT, 0600);

	if (fd < 0) {
		perror(name);
		exit(1);
	}
	return fd;
}

static int posix(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock l = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};

	return fcntl(fd, cmd, &l);
}

/* What another open of the file sees at [start, start+len) for type:
 * F_UNLCK, or the conflicting lock's type, range and pid. */
static void expect(int fd, int cmd, short type, off_t start, off_t len, short held, off_t hstart,
		   off_t hlen, pid_t hpid)
{
	struct flock l = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};

	if (fcntl(fd, cmd, &l)) {
		fail("GETLK %lld+%lld: %s", (long long)start, (long long)len, strerror(errno));
		return;
	}
	if (l.l_type != held ||
	    (held != F_UNLCK && (l.l_start != hstart || l.l_len != hlen || l.l_pid != hpid)))
		fail("%s %s %lld+%lld: found type %d %lld+%lld pid %d, want type %d %lld+%lld "
		     "pid %d",
		     cmd == F_GETLK ? "F_GETLK" : "F_OFD_GETLK", type == F_WRLCK ? "write" : "read",
		     (long long)start, (long long)len, l.l_type, (long long)l.l_start,
		     (long long)l.l_len, (int)l.l_pid, held, (long long)hstart, (long long)hlen,
		     (int)hpid);
}

/* In a child: the locks of its parent, seen from fresh opens. */
static int check_from_child(int held)
{
	pid_t owner = getppid();
	int a = must_open("a", O_RDWR), b = must_open("b", O_RDWR);
	short rd = held ? F_RDLCK : F_UNLCK, wr = held ? F_WRLCK : F_UNLCK;

	expect(a, F_GETLK, F_WRLCK, 0, 100, rd, 0, 100, owner);
	expect(a, F_GETLK, F_RDLCK, 0, 100, F_UNLCK, 0, 0, 0);
	expect(a, F_GETLK, F_RDLCK, 250, 10, wr, 200, 0, owner);
	expect(a, F_GETLK, F_WRLCK, 150, 50, F_UNLCK, 0, 0, 0);
	expect(a, F_OFD_GETLK, F_RDLCK, 100, 50, wr, 100, 50, -1);
	expect(a, F_OFD_GETLK, F_RDLCK, 120, 1, wr, 100, 50, -1);
	if (flock(b, LOCK_SH | LOCK_NB) == 0) {
		if (held)
			fail("flock: b is not locked");
		flock(b, LOCK_UN);
	} else if (!held || errno != EWOULDBLOCK) {
		fail("flock: b: %s", strerror(errno));
	}
	return bad;
}

static void check_children(int held)
{
	pid_t c = fork();
	int st;

	if (c < 0) {
		fail("fork: %s", strerror(errno));
		return;
	}
	if (c == 0)
		_exit(check_from_child(held));
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("the locks are not as they should be (%s)", held ? "held" : "released");
}

static void wait_go(void)
{
	while (access(in_dir("go"), F_OK))
		usleep(10000);
}

static int hold(const char *path, off_t start, off_t len)
{
	int fd = open(path, O_RDWR);

	if (fd < 0 || posix(fd, F_SETLK, F_WRLCK, start, len)) {
		perror(path);
		return 1;
	}
	printf("holding %d\n", (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}

/* A child that holds a POSIX write lock on DIR/d, 0-9, until killed. */
static pid_t lock_child(void)
{
	int p[2], d = must_open("d", O_RDWR);
	char c;
	pid_t pid;

	if (pipe(p) || (pid = fork()) < 0) {
		perror("fork");
		exit(1);
	}
	if (pid == 0) {
		close(p[0]);
		if (posix(d, F_SETLK, F_WRLCK, 0, 10))
			_exit(1);
		if (write(p[1], "", 1) != 1)
			_exit(1);
		close(p[1]);
		for (;;)
			pause();
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1) {
		fprintf(stderr, "locks: the child took no lock\n");
		exit(1);
	}
	close(p[0]);
	close(d);
	return pid;
}

/* DIR/d's range 0-9 is held by pid, or by no one (pid 0). */
static void check_d(pid_t pid)
{
	int d = must_open("d", O_RDWR);

	if (pid)
		expect(d, F_GETLK, F_RDLCK, 0, 1, F_WRLCK, 0, 10, pid);
	else
		expect(d, F_GETLK, F_WRLCK, 0, 0, F_UNLCK, 0, 0, 0);
	close(d);
}

int main(int argc, char **argv)
{
	pid_t child = 0;
	int tree = 0;

	int a1, a2, b1, b2, c;
	char *map;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc == 5 && !strcmp(argv[1], "--hold"))
		return hold(argv[2], atoll(argv[3]), atoll(argv[4]));
	if (argc == 3 && !strcmp(argv[1], "--tree")) {
		tree = 1;
		argv++;
		argc--;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: locks [--tree] DIR | locks --hold FILE START LEN\n");
		return 2;
	}
	dir = argv[1];
	a1 = must_open("a", O_RDWR);
	a2 = must_open("a", O_RDWR);
	b1 = must_open("b", O_RDWR);
	b2 = dup(b1);
	c = must_open("c", O_RDONLY);
	if (ftruncate(a1, 4096) || posix(a1, F_SETLK, F_RDLCK, 0, 100) ||
	    posix(a1, F_SETLK, F_WRLCK, 200, 0) || posix(a2, F_OFD_SETLK, F_WRLCK, 100, 50) ||
	    flock(b1, LOCK_EX | LOCK_NB) || fcntl(c, F_SETLEASE, F_RDLCK)) {
		perror("taking the locks");
		return 1;
	}
	/* a mapped too: the restore maps it through an fd of its own, whose
	 * close would drop the process's POSIX locks on it. */
	map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, a1, 0);
	if (map == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	map[0] = 'x';
	if (tree)
		child = lock_child();
	printf("ready %d\n", (int)getpid());
	wait_go();
	if (tree) {
		check_d(child);
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		check_d(0);
	}
	if (map[0] != 'x')
		fail("the mapping of a lost its byte");

	check_children(1);
	if (fcntl(c, F_GETLEASE) != F_RDLCK)
		fail("lease on c: %d, want a read lease", fcntl(c, F_GETLEASE));
	/* Released: every lock of the process on a, the description's OFD
	 * lock, and the flock through one fd of the two that share it. */
	if (posix(a1, F_SETLK, F_UNLCK, 0, 0) || posix(a2, F_OFD_SETLK, F_UNLCK, 0, 0) ||
	    flock(b2, LOCK_UN) || fcntl(c, F_SETLEASE, F_UNLCK))
		fail("unlocking: %s", strerror(errno));
	check_children(0);
	if (flock(b1, LOCK_EX | LOCK_NB) == 0)
		flock(b1, LOCK_UN); /* no second description of b holds one */
	else
		fail("flock on b: %s", strerror(errno));
	if (bad)
		return 1;
	printf("locks: ok\n");
	return 0;
}
