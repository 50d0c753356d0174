/* ghosts: a process holding deleted files of every kind, fds whose flags
 * must come back exactly, and files of /proc, checked after a restore.
 *
 * usage: ghosts MODE DIR
 *   fifo   a FIFO made in DIR and removed, open three times (a
 *          non-blocking read end, a write end, a read-write one) with
 *          5000 bytes in it, then made mode 0200 (no one may read it)
 *   dir    a directory (mode 0751) made in DIR, open, and removed: after
 *          the restore still a directory, with no link, of its mode, that
 *          fchdir enters; and one made mode 0 once open
 *   cwd    the current directory, made in DIR and removed: after the
 *          restore getcwd fails (ENOENT, as for any removed directory),
 *          /proc/self/cwd ends in " (deleted)" and "." has no link
 *   file   deleted files: one sparse (data, a hole, data at 1 MiB), mode
 *          0640, with set access and modification times, owned (as root)
 *          by uid and gid 4242, open read-write at 4000 and write-only
 *          O_APPEND, and mapped shared (a byte written through the map);
 *          one of mode 0200 open write-only only
 *   flags  one fd of every kind the tree supports, with status flags and
 *          close-on-exec set fd by fd (two descriptions of one pipe end,
 *          one non-blocking): each fd's fdinfo flags and F_GETFD after
 *          the restore are those before
 *   proc   /proc/self/status, /proc/self/maps and /proc/self/stat (at
 *          offset 10) held open: after the restore they show the
 *          restored process (its pid, its memory map); says "pid N",
 *          its pid after the restore
 *   proctree  proc, and /proc/CHILD/stat of a child (dump it with -t)
 * Prints "ready PID", waits for DIR/go, checks, prints "ghosts MODE: ok"
 * and exits 0 only if everything is intact. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "ghosts"
#include "progs.h"

#define FIFO_BYTES 5000
#define MIB (1024 * 1024)

static const char *dir;

static unsigned char byte_at(size_t i)
{
	return (unsigned char)(mix(11, i / 8) >> (i % 8));
}

/* Whether fd's link ends in " (deleted)" and it has no link left. */
static void want_deleted(int fd, const char *what)
{
	char path[64], link[4096];
	struct stat sb;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (n < 10 || strcmp(link + n - 10, " (deleted)"))
		fail("%s: fd %d is %s, not a deleted file", what, fd, link);
	if (fstat(fd, &sb) || sb.st_nlink != 0)
		fail("%s: fd %d has %ju links, not 0", what, fd, (uintmax_t)sb.st_nlink);
}

/* ---- fifo ---- */

static int fr, fw, frw;

static void fifo_setup(void)
{
	static unsigned char buf[FIFO_BYTES];

	if (mkfifo(in_dir("gf"), 0640))
		die("mkfifo");
	fr = open(in_dir("gf"), O_RDONLY | O_NONBLOCK);
	fw = open(in_dir("gf"), O_WRONLY);
	frw = open(in_dir("gf"), O_RDWR);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = byte_at(i);
	/* Then no one may read it by its mode: the dumper reads it through
	 * the process's read end, the restore opens it with its owner's
	 * permission lent. */
	if (fr < 0 || fw < 0 || frw < 0 || write(fw, buf, sizeof(buf)) != sizeof(buf) ||
	    chmod(in_dir("gf"), 0200))
		die("fifo");
	if (unlink(in_dir("gf")))
		die("unlink fifo");
}

static void fifo_check(void)
{
	static unsigned char buf[FIFO_BYTES + 16];
	struct stat sb;
	ssize_t n;

	want_deleted(fr, "fifo");
	if (fstat(fr, &sb) || !S_ISFIFO(sb.st_mode) || (sb.st_mode & 07777) != 0200)
		fail("fifo: mode %o, not a FIFO of mode 200", sb.st_mode);
	if ((fcntl(fr, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != (O_RDONLY | O_NONBLOCK) ||
	    (fcntl(fw, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != O_WRONLY ||
	    (fcntl(frw, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != O_RDWR)
		fail("fifo: access modes or O_NONBLOCK differ");
	if (write(frw, "tail", 4) != 4)
		fail("fifo: cannot write");
	n = read(fr, buf, sizeof(buf));
	if (n != FIFO_BYTES + 4)
		fail("fifo: %zd bytes, not %d", n, FIFO_BYTES + 4);
	for (ssize_t i = 0; i < n && i < FIFO_BYTES; i++)
		if (buf[i] != byte_at(i)) {
			fail("fifo: byte %zd differs", i);
			break;
		}
	if (n == FIFO_BYTES + 4 && memcmp(buf + FIFO_BYTES, "tail", 4))
		fail("fifo: its ends no longer meet");
}

/* ---- dir, cwd ---- */

static int gd, gz, top;

static void dir_setup(void)
{
	umask(0);
	if (mkdir(in_dir("gd"), 0751) || (gd = open(in_dir("gd"), O_RDONLY | O_DIRECTORY)) < 0 ||
	    (top = open(dir, O_RDONLY | O_DIRECTORY)) < 0 || rmdir(in_dir("gd")))
		die("dir");
	/* One whose mode lets no one in, once open. */
	if (mkdir(in_dir("gz"), 0700) || (gz = open(in_dir("gz"), O_RDONLY | O_DIRECTORY)) < 0 ||
	    chmod(in_dir("gz"), 0) || rmdir(in_dir("gz")))
		die("dir of mode 0");
}

static void dir_check(void)
{
	struct stat sb;
	DIR *d;
	struct dirent *e;
	int n = 0;

	want_deleted(gd, "dir");
	want_deleted(gz, "dir of mode 0");
	if (fstat(gz, &sb) || !S_ISDIR(sb.st_mode) || (sb.st_mode & 07777) != 0)
		fail("dir of mode 0: mode %o", sb.st_mode);
	if (fstat(gd, &sb) || !S_ISDIR(sb.st_mode) || (sb.st_mode & 07777) != 0751)
		fail("dir: mode %o, not a directory of mode 751", sb.st_mode);
	if (fchdir(gd))
		fail("dir: fchdir: %s", strerror(errno));
	if (stat(".", &sb) || sb.st_nlink != 0)
		fail("dir: fchdir did not enter it");
	if (fchdir(top))
		fail("dir: fchdir back: %s", strerror(errno));
	d = fdopendir(dup(gd));
	while (d && (e = readdir(d)))
		n++;
	if (!d || n != 0)
		fail("dir: %d entries, not none (a removed directory lists nothing)", n);
	if (d)
		closedir(d);
}

static void cwd_setup(void)
{
	if (mkdir(in_dir("gc"), 0700) || chdir(in_dir("gc")) || rmdir(in_dir("gc")))
		die("cwd");
}

static void cwd_check(void)
{
	char buf[4096];
	struct stat sb;
	ssize_t n;

	errno = 0;
	if (getcwd(buf, sizeof(buf)) || errno != ENOENT)
		fail("cwd: getcwd: %s, not ENOENT", errno ? strerror(errno) : buf);
	n = readlink("/proc/self/cwd", buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	if (n < 10 || strcmp(buf + n - 10, " (deleted)"))
		fail("cwd: /proc/self/cwd is %s", buf);
	if (stat(".", &sb) || !S_ISDIR(sb.st_mode) || sb.st_nlink != 0)
		fail("cwd: \".\" is no removed directory");
}

/* ---- file ---- */

static int gfile, gapp, gwo;
static unsigned char *gmap;
static const struct timespec times[2] = {{1000000000, 123456789}, {1100000000, 500000000}};

static void file_setup(void)
{
	static unsigned char buf[8192];
	int fd;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = byte_at(i);
	gfile = open(in_dir("gfile"), O_RDWR | O_CREAT | O_EXCL, 0600);
	if (gfile < 0 || write(gfile, buf, 5000) != 5000 || pwrite(gfile, "end of it", 9, MIB) != 9)
		die("file");
	gapp = open(in_dir("gfile"), O_WRONLY | O_APPEND);
	gmap = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, gfile, 0);
	if (gapp < 0 || gmap == MAP_FAILED)
		die("file: second fd or map");
	gmap[17] = 'M';
	if (msync(gmap, 4096, MS_SYNC) || lseek(gfile, 4000, SEEK_SET) != 4000)
		die("file: msync");
	if (getuid() == 0 && fchown(gfile, 4242, 4242))
		die("fchown");
	if (fchmod(gfile, 0640) || futimens(gfile, times) || unlink(in_dir("gfile")))
		die("file: attributes");
	fd = open(in_dir("gwo"), O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || write(fd, "write-only secret", 17) != 17 || fchmod(fd, 0200) ||
	    unlink(in_dir("gwo")))
		die("write-only file");
	gwo = fd;
}

static void file_check(void)
{
	static unsigned char buf[MIB + 16];
	char path[64];
	struct stat sb;
	uid_t owner = getuid() == 0 ? 4242 : getuid();
	ssize_t n;
	int fd;

	want_deleted(gfile, "file");
	want_deleted(gapp, "file (append)");
	if (fstat(gfile, &sb))
		die("fstat");
	if ((sb.st_mode & 07777) != 0640 || sb.st_uid != owner ||
	    sb.st_gid != (getuid() ? getgid() : 4242))
		fail("file: mode %o owner %u:%u, not 640 %u", sb.st_mode & 07777, sb.st_uid,
		     sb.st_gid, owner);
	if (sb.st_atim.tv_sec != times[0].tv_sec || sb.st_atim.tv_nsec != times[0].tv_nsec ||
	    sb.st_mtim.tv_sec != times[1].tv_sec || sb.st_mtim.tv_nsec != times[1].tv_nsec)
		fail("file: atime %lld.%09ld mtime %lld.%09ld, not as set",
		     (long long)sb.st_atim.tv_sec, sb.st_atim.tv_nsec, (long long)sb.st_mtim.tv_sec,
		     sb.st_mtim.tv_nsec);
	if (sb.st_size != MIB + 9)
		fail("file: %lld bytes, not %d", (long long)sb.st_size, MIB + 9);
	if (lseek(gfile, 0, SEEK_CUR) != 4000)
		fail("file: offset %lld, not 4000", (long long)lseek(gfile, 0, SEEK_CUR));
	if (!(fcntl(gapp, F_GETFL) & O_APPEND))
		fail("file: the O_APPEND fd lost it");
	n = pread(gfile, buf, sizeof(buf), 0);
	if (n != MIB + 9)
		fail("file: read %zd bytes", n);
	for (ssize_t i = 0; i < n; i++) {
		unsigned char want = i < 5000 ? byte_at(i) : 0;
		if (i == 17)
			want = 'M';
		if (i >= MIB)
			want = "end of it"[i - MIB];
		if (buf[i] != want) {
			fail("file: byte %zd is %#x, not %#x", i, buf[i], want);
			break;
		}
	}
	if (gmap[17] != 'M' || gmap[18] != byte_at(18))
		fail("file: the mapping no longer shows the file");
	gmap[19] = 'N';
	if (pread(gfile, buf, 1, 19) != 1 || buf[0] != 'N')
		fail("file: the mapping and the fd are no longer one file");
	/* Appending at its end: the description's own offset is not used. */
	if (write(gapp, "++", 2) != 2 || fstat(gfile, &sb) || sb.st_size != MIB + 11)
		fail("file: O_APPEND write did not go to the end");
	want_deleted(gwo, "write-only file");
	if (fstat(gwo, &sb) || (sb.st_mode & 07777) != 0200 || sb.st_size != 17)
		fail("write-only file: mode %o size %lld", sb.st_mode & 07777,
		     (long long)sb.st_size);
	if ((fcntl(gwo, F_GETFL) & O_ACCMODE) != O_WRONLY)
		fail("write-only file: no longer write-only");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", gwo);
	if (fchmod(gwo, 0600) || (fd = open(path, O_RDONLY)) < 0)
		fail("write-only file: cannot read it back");
	else if (read(fd, buf, 32) != 17 || memcmp(buf, "write-only secret", 17))
		fail("write-only file: its contents differ");
}

/* ---- flags ---- */

#define MAXFD 64

static unsigned flags_before[MAXFD];
static int fdflags_before[MAXFD];

/* fd's flags as /proc/self/fdinfo shows them (octal), or -1. */
static long info_flags(int fd)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (!(f = fopen(path, "re")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "flags: %lo", &v) == 1)
			break;
	fclose(f);
	return v;
}

static void flags_setup(void)
{
	int p[2], q[2], s[2], fd, ep;
	char path[64];
	sigset_t m;
	struct itimerspec its = {{100, 0}, {100, 0}};
	struct epoll_event ev = {.events = EPOLLIN};

	if (pipe2(p, 0) || pipe2(q, O_NONBLOCK | O_CLOEXEC))
		die("pipe");
	/* A second description of p's read end, non-blocking: p[0]'s is not. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", p[0]);
	if ((fd = open(path, O_RDONLY | O_NONBLOCK)) < 0)
		die("reopen pipe");
	if (fcntl(q[0], F_SETFD, 0) || fcntl(p[1], F_SETFL, O_NONBLOCK))
		die("pipe flags");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s) || fcntl(s[1], F_SETFL, 0) ||
	    fcntl(s[1], F_SETFD, FD_CLOEXEC))
		die("socketpair");
	/* With bytes in it: the restore writes them back. */
	if (mkfifo(in_dir("ff"), 0600) || (fd = open(in_dir("ff"), O_RDWR | O_NONBLOCK)) < 0 ||
	    open(in_dir("ff"), O_RDONLY | O_NONBLOCK | O_CLOEXEC) < 0 || write(fd, "ff", 2) != 2)
		die("fifo");
	if (open(in_dir("plain"), O_RDWR | O_CREAT | O_APPEND, 0600) < 0 ||
	    open(in_dir("plain"), O_RDONLY | O_NOATIME | O_CLOEXEC) < 0 ||
	    open(in_dir("plain"), O_WRONLY | O_NONBLOCK) < 0)
		die("file");
	/* O_DIRECT where the file system has it. */
	fd = open(in_dir("plain"), O_RDONLY | O_DIRECT);
	(void)fd;
	if (open("/dev/null", O_WRONLY | O_APPEND) < 0 || open(dir, O_RDONLY | O_DIRECTORY) < 0)
		die("dev/dir");
	sigemptyset(&m);
	sigaddset(&m, SIGUSR2);
	if (eventfd(3, EFD_NONBLOCK) < 0 || eventfd(0, EFD_CLOEXEC) < 0 ||
	    signalfd(-1, &m, SFD_NONBLOCK) < 0 ||
	    (fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK)) < 0 ||
	    timerfd_settime(fd, 0, &its, NULL) || (ep = epoll_create1(0)) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) || inotify_init1(IN_NONBLOCK) < 0)
		die("anon kinds");
	if ((fd = memfd_create("gm", 0)) < 0 || fcntl(fd, F_SETFL, O_APPEND))
		die("memfd");
	/* Sockets joined to no peer, O_PATH descriptors, a deleted FIFO and
	 * directory. */
	if (socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0) < 0 ||
	    socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) < 0 ||
	    open(in_dir("plain"), O_PATH | O_NOFOLLOW) < 0 ||
	    open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC) < 0)
		die("sockets, O_PATH");
	if (mkfifo(in_dir("df"), 0600) || open(in_dir("df"), O_RDWR | O_NONBLOCK) < 0 ||
	    open(in_dir("df"), O_WRONLY | O_APPEND) < 0 || unlink(in_dir("df")) ||
	    mkdir(in_dir("dd"), 0700) ||
	    open(in_dir("dd"), O_RDONLY | O_DIRECTORY | O_CLOEXEC) < 0 || rmdir(in_dir("dd")))
		die("deleted FIFO and directory");
	for (int i = 3; i < MAXFD; i++) {
		long v = info_flags(i);
		flags_before[i] = v < 0 ? ~0u : (unsigned)v;
		fdflags_before[i] = fcntl(i, F_GETFD);
	}
}

static void flags_check(void)
{
	for (int i = 3; i < MAXFD; i++) {
		long v = info_flags(i);
		unsigned now = v < 0 ? ~0u : (unsigned)v;
		int fdf = fcntl(i, F_GETFD);
		char path[64], link[256] = "";
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", i);
		if ((n = readlink(path, link, sizeof(link) - 1)) > 0)
			link[n] = 0;
		if (now != flags_before[i])
			fail("flags: fd %d (%s): flags 0%o, not 0%o", i, link, now,
			     flags_before[i]);
		if (fdf != fdflags_before[i])
			fail("flags: fd %d (%s): F_GETFD %d, not %d", i, link, fdf,
			     fdflags_before[i]);
	}
}

/* ---- proc ---- */

static int pstatus, pmaps, pstat, pchild = -1;
static pid_t child;

static void proc_setup(int tree)
{
	char buf[16], path[64];

	if (tree) {
		child = fork();
		if (child < 0)
			die("fork");
		if (child == 0) {
			wait_file(in_dir("go"));
			_exit(0);
		}
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)child);
		if ((pchild = open(path, O_RDONLY)) < 0)
			die("child's stat");
	}
	pstatus = open("/proc/self/status", O_RDONLY);
	pmaps = open("/proc/self/maps", O_RDONLY);
	pstat = open("/proc/self/stat", O_RDONLY);
	if (pstatus < 0 || pmaps < 0 || pstat < 0 || read(pstat, buf, 10) != 10)
		die("proc");
}

/* All of fd from its start (it is a seq_file: pread reads it afresh). */
static char *read_all(int fd)
{
	static char buf[4][65536];
	static int k;
	ssize_t n;

	k = (k + 1) % 4;
	n = pread(fd, buf[k], sizeof(buf[k]) - 1, 0);
	buf[k][n > 0 ? n : 0] = 0;
	return buf[k];
}

static void proc_check(void)
{
	char want[64], *s;
	int fd, st;

	printf("pid %d\n", (int)getpid());

	s = read_all(pstatus);
	snprintf(want, sizeof(want), "\nPid:\t%d\n", (int)getpid());
	if (!strstr(s, want))
		fail("proc: /proc/self/status held open does not say pid %d", (int)getpid());
	fd = open("/proc/self/maps", O_RDONLY);
	if (strcmp(read_all(pmaps), read_all(fd)))
		fail("proc: /proc/self/maps held open is not this process's map");
	close(fd);
	snprintf(want, sizeof(want), "%d (", (int)getpid());
	if (strncmp(read_all(pstat), want, strlen(want)))
		fail("proc: /proc/self/stat held open is not this process's");
	if (lseek(pstat, 0, SEEK_CUR) != 10)
		fail("proc: /proc/self/stat at offset %lld, not 10",
		     (long long)lseek(pstat, 0, SEEK_CUR));
	if (pchild >= 0) {
		int pid = 0, ppid = 0;
		char state;

		/* Its state is whatever it is doing now: told to go, it runs.
		 * Its name is the restorer's until the restorer's last step
		 * (the processes of a tree are let go together, then each
		 * finishes on its own): wait for it, for up to 10 s. */
		for (int i = 0; i < 1000; i++) {
			if (sscanf(read_all(pchild), "%d (ghosts) %c %d ", &pid, &state, &ppid) == 3)
				break;
			usleep(10000);
		}
		if (sscanf(read_all(pchild), "%d (ghosts) %c %d ", &pid, &state, &ppid) != 3 ||
		    pid != child || ppid != getpid())
			fail("proc: the child's stat is %.40s, not pid %d of parent %d",
			     read_all(pchild), (int)child, (int)getpid());
		if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
			fail("proc: the child did not exit 0");
	}
}

int main(int argc, char **argv)
{
	const char *mode;

	if (argc != 3) {
		fputs("usage: ghosts MODE DIR\n", stderr);
		return 2;
	}
	mode = argv[1];
	dir = realpath(argv[2], NULL);
	if (!dir)
		die(argv[2]);
	if (!strcmp(mode, "fifo"))
		fifo_setup();
	else if (!strcmp(mode, "dir"))
		dir_setup();
	else if (!strcmp(mode, "cwd"))
		cwd_setup();
	else if (!strcmp(mode, "file"))
		file_setup();
	else if (!strcmp(mode, "flags"))
		flags_setup();
	else if (!strcmp(mode, "proc") || !strcmp(mode, "proctree"))
		proc_setup(!strcmp(mode, "proctree"));
	else {
		fprintf(stderr, "ghosts: unknown mode %s\n", mode);
		return 2;
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	wait_file(in_dir("go"));
	if (!strcmp(mode, "fifo"))
		fifo_check();
	else if (!strcmp(mode, "dir"))
		dir_check();
	else if (!strcmp(mode, "cwd"))
		cwd_check();
	else if (!strcmp(mode, "file"))
		file_check();
	else if (!strcmp(mode, "flags"))
		flags_check();
	else
		proc_check();
	if (failures)
		return 1;
	printf("ghosts %s: ok\n", mode);
	return 0;
}
