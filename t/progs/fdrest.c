/* fdrest.c: what is left of fds held across a checkpoint.  Each mode
 * sets its state, prints "ready PID", waits for DIR/go, checks that the
 * state is exactly as it was, and prints "fdrest MODE: ok".
 *
 *   fdrest moved DIR   (in DIR, its current directory) an inotify instance
 *                      (fd 3) watching DIR/w for IN_CREATE (wd 1) and
 *                      DIR/w/f for IN_MODIFY (wd 2); then DIR/w is renamed
 *                      DIR/v.  After: the same watches (fdinfo: wd, inode,
 *                      mask), and a file made in DIR/v and a write to
 *                      DIR/v/f each give their event, on their wd, and no
 *                      other.
 *   fdrest hidden DIR  (root) an inotify instance (fd 3) watching DIR/h/f
 *                      for IN_MODIFY (wd 1); then a tmpfs is mounted on
 *                      DIR/h: no path leads to the file.  After: the same
 *                      watch (same inode); the tmpfs is unmounted and a
 *                      write to DIR/h/f gives its event on wd 1.
 *   fdrest deleted DIR an inotify instance (fd 3) watching DIR/g for
 *                      IN_MODIFY (wd 1), DIR/g open at fd 4 and then
 *                      removed (not supported: the dump is refused).
 *   fdrest delowner DIR a directory DIR/dd (mode 0751) open at fd 3 and a
 *                      FIFO DIR/df (mode 0620) open read-write at fd 4
 *                      with 5 bytes in it, both removed; as root owned by
 *                      4321:4322 and 4323:4324; their access and
 *                      modification times set back to 2001.  After: both
 *                      removed, of the same owner, mode and times, the
 *                      FIFO's 5 bytes in it.
 *   fdrest epolltree DIR an epoll instance (fd 3) watching an eventfd
 *                      added as fd 5 (EPOLLIN, data 0xa5), which it then
 *                      closed: only its child holds it (at fd 5), and a
 *                      pipe's read end at fd 6 added and held by both.
 *                      After: the same watches in fdinfo, none ready; the
 *                      child writes its eventfd and the pipe, and each
 *                      wakes its own watch; then (DIR/done) the child
 *                      exits 0.
 *   fdrest forkshare DIR a pidfd of itself (fd 3), its uts namespace file
 *                      (fd 4) and its /proc/PID/stat (fd 5), then a child
 *                      that inherits the three.  After: each fd of the
 *                      parent and the child's of the same number are one
 *                      open file description (kcmp), the pidfd is the
 *                      parent's, the namespace its own, and the child's
 *                      read of fd 5 moves the parent's offset.
 *   fdrest taskfile DIR /proc/PID/task/PID/stat of its main thread open at
 *                      fd 3.  After (restored under a new pid, too): fd 3
 *                      reads the stat of its main thread now (its first
 *                      field is the pid it has now).
 *   fdrest taskthread DIR  as taskfile, fd 3 the stat of a second thread
 *                      of its own, which waits (not supported: the dump
 *                      is refused).
 *   fdrest umount DIR  unmounts DIR/h, if mounted (a test's teardown).
 */
#define PROG "fdrest"
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
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

static void append(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data))
		die(path);
	close(fd);
}

/* The watches of inotify fd, as fdinfo shows them (wd, inode, mask), one
 * line each. */
static void watches(int fd, char *out, size_t size)
{
	char path[64], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	out[0] = 0;
	if (!(f = fopen(path, "re")))
		die(path);
	while (fgets(line, sizeof(line), f)) {
		int wd;
		unsigned long long ino;
		unsigned mask;

		if (sscanf(line, "inotify wd:%d ino:%llx sdev:%*x mask:%x", &wd, &ino, &mask) == 3)
			snprintf(out + strlen(out), size - strlen(out), "wd %d ino %llu mask %#x\n",
				 wd, ino, mask);
	}
	fclose(f);
}

/* The next event of fd (blocking) is wd's, of mask, named name ("" for
 * none). */
static void want_event(int fd, int wd, unsigned mask, const char *name)
{
	static char buf[4096] __attribute__((aligned(8)));
	static ssize_t len, off;
	const struct inotify_event *e;

	if (off >= len) {
		off = 0;
		len = read(fd, buf, sizeof(buf));
		if (len <= 0) {
			fail("no event where wd %d mask %#x %s was due", wd, mask, name);
			return;
		}
	}
	e = (const void *)(buf + off);
	off += sizeof(*e) + e->len;
	if (e->wd != wd || e->mask != mask || strcmp(e->len ? e->name : "", name))
		fail("event wd %d mask %#x %s where wd %d mask %#x %s was due", e->wd, e->mask,
		     e->len ? e->name : "", wd, mask, name);
}

/* Nothing else is queued on fd. */
static void no_more(int fd)
{
	int n = -1;

	if (ioctl(fd, FIONREAD, &n) || n)
		fail("%d bytes of events more than due", n);
}

static int do_moved(void)
{
	char before[4096], after[4096];

	if (chdir(dir) || mkdir("w", 0700))
		die("w");
	append("w/f", "");
	fd_at(3, inotify_init1(0), "open");
	if (inotify_add_watch(3, "w", IN_CREATE) != 1 ||
	    inotify_add_watch(3, "w/f", IN_MODIFY) != 2)
		die("inotify_add_watch");
	if (rename("w", "v"))
		die("rename");
	watches(3, before, sizeof(before));
	ready();
	watches(3, after, sizeof(after));
	if (strcmp(before, after))
		fail("watches before:\n%safter:\n%s", before, after);
	no_more(3);
	append("v/new", "");
	append("v/f", "x");
	want_event(3, 1, IN_CREATE, "new");
	want_event(3, 2, IN_MODIFY, "");
	no_more(3);
	return 0;
}

static int do_hidden(void)
{
	char before[4096], after[4096];

	if (mkdir(in_dir("h"), 0700))
		die("h");
	append(in_dir("h/f"), "");
	fd_at(3, inotify_init1(0), "open");
	if (inotify_add_watch(3, in_dir("h/f"), IN_MODIFY) != 1)
		die("inotify_add_watch");
	if (mount("fdrest", in_dir("h"), "tmpfs", 0, "size=64k"))
		die("mount");
	watches(3, before, sizeof(before));
	ready();
	watches(3, after, sizeof(after));
	if (strcmp(before, after))
		fail("watches before:\n%safter:\n%s", before, after);
	no_more(3);
	if (umount2(in_dir("h"), MNT_DETACH))
		die("umount");
	append(in_dir("h/f"), "x");
	want_event(3, 1, IN_MODIFY, "");
	no_more(3);
	return 0;
}

static int do_deleted(void)
{
	fd_at(4, open(in_dir("g"), O_RDWR | O_CREAT, 0600), "open");
	fd_at(3, inotify_init1(0), "open");
	if (inotify_add_watch(3, in_dir("g"), IN_MODIFY) != 1)
		die("inotify_add_watch");
	if (unlink(in_dir("g")))
		die("unlink");
	ready();
	if (write(4, "x", 1) != 1)
		die("write");
	want_event(3, 1, IN_MODIFY, "");
	return 0;
}

/* fd's owner, mode and times differ from sb's: say which. */
static void same_attrs(const char *what, int fd, const struct stat *was)
{
	struct stat sb;

	if (fstat(fd, &sb))
		die(what);
	if (sb.st_uid != was->st_uid || sb.st_gid != was->st_gid)
		fail("%s: owner %u:%u, not %u:%u", what, (unsigned)sb.st_uid, (unsigned)sb.st_gid,
		     (unsigned)was->st_uid, (unsigned)was->st_gid);
	if (sb.st_mode != was->st_mode || sb.st_nlink != 0)
		fail("%s: mode %o, %lu links, not %o, removed", what, sb.st_mode,
		     (unsigned long)sb.st_nlink, was->st_mode);
	if (sb.st_atim.tv_sec != was->st_atim.tv_sec || sb.st_mtim.tv_sec != was->st_mtim.tv_sec ||
	    sb.st_mtim.tv_nsec != was->st_mtim.tv_nsec)
		fail("%s: times %lld %lld, not %lld %lld", what, (long long)sb.st_atim.tv_sec,
		     (long long)sb.st_mtim.tv_sec, (long long)was->st_atim.tv_sec,
		     (long long)was->st_mtim.tv_sec);
}

static int do_delowner(void)
{
	struct timespec ts[2] = {{1000000000, 5}, {1000000100, 7}};
	struct stat dsb, fsb;
	char buf[16];
	int root = geteuid() == 0;

	if (mkdir(in_dir("dd"), 0700) || chmod(in_dir("dd"), 0751) || mkfifo(in_dir("df"), 0600))
		die("mkdir");
	fd_at(3, open(in_dir("dd"), O_RDONLY | O_DIRECTORY), "open");
	fd_at(4, open(in_dir("df"), O_RDWR | O_NONBLOCK), "open");
	if (write(4, "hello", 5) != 5)
		die("write");
	if (root && (fchown(3, 4321, 4322) || fchown(4, 4323, 4324)))
		die("fchown");
	if (fchmod(4, 0620) || futimens(3, ts) || futimens(4, ts))
		die("times");
	if (rmdir(in_dir("dd")) || unlink(in_dir("df")))
		die("remove");
	if (fstat(3, &dsb) || fstat(4, &fsb))
		die("fstat");
	ready();
	same_attrs("directory", 3, &dsb);
	same_attrs("FIFO", 4, &fsb);
	if (read(4, buf, sizeof(buf)) != 5 || memcmp(buf, "hello", 5))
		fail("FIFO: not its 5 bytes");
	return 0;
}

static int line_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The epoll entries of fd, as fdinfo shows them (tfd, events, data), one
 * line each, sorted: fdinfo lists them in the kernel's order of their
 * files, which a restore does not keep. */
static void epoll_entries(int fd, char *out, size_t size)
{
	char path[64], line[512], lines[16][64], *sorted[16];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	out[0] = 0;
	if (!(f = fopen(path, "re")))
		die(path);
	while (fgets(line, sizeof(line), f) && n < 16) {
		int tfd;
		unsigned events;
		unsigned long long data;

		if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &events, &data) == 3) {
			snprintf(lines[n], sizeof(lines[n]), "tfd %d events %#x data %#llx\n", tfd,
				 events, data);
			sorted[n] = lines[n];
			n++;
		}
	}
	fclose(f);
	qsort(sorted, n, sizeof(*sorted), line_cmp);
	for (size_t i = 0; i < n; i++)
		snprintf(out + strlen(out), size - strlen(out), "%s", sorted[i]);
}

static int do_epolltree(void)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0xa5}, got[4];
	char before[4096], after[4096];
	int p[2], st = 0, n = 0, ready_a5 = 0, ready_b6 = 0;
	double end;
	pid_t child;

	fd_at(3, epoll_create1(0), "open");
	fd_at(5, eventfd(0, 0), "open");
	if (pipe(p))
		die("pipe");
	fd_at(7, p[1], "open");
	fd_at(6, p[0], "open");
	if (epoll_ctl(3, EPOLL_CTL_ADD, 5, &ev))
		die("epoll_ctl");
	ev.data.u64 = 0xb6;
	if (epoll_ctl(3, EPOLL_CTL_ADD, 6, &ev))
		die("epoll_ctl");
	if ((child = fork()) < 0)
		die("fork");
	if (child == 0) {
		uint64_t one = 1;

		close(3);
		wait_file(in_dir("go"));
		if (write(5, &one, sizeof(one)) != sizeof(one) || write(7, "x", 1) != 1)
			_exit(1);
		/* Its eventfd lives (and so its watch) until the parent is done. */
		wait_file(in_dir("done"));
		_exit(0);
	}
	close(5);
	close(7);
	epoll_entries(3, before, sizeof(before));
	ready();
	epoll_entries(3, after, sizeof(after));
	if (strcmp(before, after))
		fail("epoll entries before:\n%safter:\n%s", before, after);
	if (fcntl(5, F_GETFD) != -1)
		fail("fd 5 is open");
	/* Level-triggered: both stay ready once the child wrote. */
	for (end = mono() + 10; mono() < end && !(ready_a5 && ready_b6);) {
		n = epoll_wait(3, got, 4, 100);
		for (int i = 0; i < n; i++) {
			ready_a5 |= got[i].data.u64 == 0xa5;
			ready_b6 |= got[i].data.u64 == 0xb6;
			if (got[i].data.u64 != 0xa5 && got[i].data.u64 != 0xb6)
				fail("a watch of data %#llx ready",
				     (unsigned long long)got[i].data.u64);
		}
	}
	if (!ready_a5 || !ready_b6)
		fail("the eventfd's watch %s ready, the pipe's %s", ready_a5 ? "is" : "is not",
		     ready_b6 ? "is" : "is not");
	if (n != 2)
		fail("%d watches ready at once, not 2", n);
	close(open(in_dir("done"), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("the child did not exit 0 (%#x)", st);
	return 0;
}

static int same_file(pid_t a, pid_t b, int fd)
{
	return syscall(SYS_kcmp, a, b, 0 /* KCMP_FILE */, fd, fd) == 0;
}

static int do_forkshare(void)
{
	char path[64], buf[16];
	struct stat ns, own;
	pid_t child;
	int st = 0;

	fd_at(3, (int)syscall(SYS_pidfd_open, getpid(), 0), "open");
	fd_at(4, open("/proc/self/ns/uts", O_RDONLY), "open");
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)getpid());
	fd_at(5, open(path, O_RDONLY), "open");
	if ((child = fork()) < 0)
		die("fork");
	if (child == 0) {
		wait_file(in_dir("go"));
		if (read(5, buf, 10) != 10)
			_exit(1);
		wait_file(in_dir("done"));
		_exit(0);
	}
	for (int fd = 3; fd <= 5; fd++)
		if (!same_file(getpid(), child, fd))
			die("kcmp before");
	ready();
	for (int fd = 3; fd <= 5; fd++)
		if (!same_file(getpid(), child, fd))
			fail("fd %d: the parent's and the child's are not one description", fd);
	snprintf(path, sizeof(path), "/proc/self/fdinfo/3");
	{
		char line[256];
		FILE *f = fopen(path, "re");
		int pid = 0;

		while (f && fgets(line, sizeof(line), f))
			sscanf(line, "Pid: %d", &pid);
		if (f)
			fclose(f);
		if (pid != getpid())
			fail("fd 3 is a pidfd of %d, not of %d", pid, (int)getpid());
	}
	if (fstat(4, &ns) || stat("/proc/self/ns/uts", &own) || ns.st_ino != own.st_ino ||
	    ns.st_dev != own.st_dev)
		fail("fd 4 is not its own uts namespace");
	for (double end = mono() + 10; lseek(5, 0, SEEK_CUR) != 10 && mono() < end;)
		usleep(10000);
	if (lseek(5, 0, SEEK_CUR) != 10)
		fail("fd 5: offset %ld, not the child's 10", (long)lseek(5, 0, SEEK_CUR));
	close(open(in_dir("done"), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("the child did not exit 0 (%#x)", st);
	return 0;
}

/* The first field of the stat file at fd: the task's id. */
static int stat_id(int fd)
{
	char buf[64];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return -1;
	buf[n] = 0;
	return atoi(buf);
}

static int open_task_stat(pid_t tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)getpid(), (int)tid);
	return open(path, O_RDONLY);
}

static int do_taskfile(void)
{
	fd_at(3, open_task_stat(getpid()), "open");
	ready();
	if (stat_id(3) != getpid())
		fail("fd 3 is the stat of task %d, not of %d", stat_id(3), (int)getpid());
	return 0;
}

static void *waiter(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static int do_taskthread(void)
{
	pthread_t t;
	pid_t tid = 0;

	if (pthread_create(&t, NULL, waiter, NULL))
		die("pthread_create");
	for (double end = mono() + 10; !tid && mono() < end; usleep(1000)) {
		DIR *d = opendir("/proc/self/task");
		struct dirent *e;

		while (d && (e = readdir(d)))
			if (atoi(e->d_name) > 0 && atoi(e->d_name) != getpid())
				tid = atoi(e->d_name);
		if (d)
			closedir(d);
	}
	fd_at(3, open_task_stat(tid), "open");
	ready();
	if (stat_id(3) == getpid() || stat_id(3) <= 0)
		fail("fd 3 is the stat of task %d, not of its second thread", stat_id(3));
	return 0;
}

static int do_umount(void)
{
	umount2(in_dir("h"), MNT_DETACH);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(void);
	} modes[] = {
	    {"moved", do_moved},       {"hidden", do_hidden},	      {"deleted", do_deleted},
	    {"delowner", do_delowner}, {"epolltree", do_epolltree},   {"forkshare", do_forkshare},
	    {"taskfile", do_taskfile}, {"taskthread", do_taskthread}, {"umount", do_umount},
	};

	if (argc != 3) {
		fprintf(stderr, "usage: fdrest MODE DIR\n");
		return 2;
	}
	dir = argv[2];
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcmp(argv[1], modes[i].name))
			continue;
		if (modes[i].run() || failures)
			return 1;
		printf("fdrest %s: ok\n", argv[1]);
		return 0;
	}
	fprintf(stderr, "fdrest: unknown mode %s\n", argv[1]);
	return 2;
}
