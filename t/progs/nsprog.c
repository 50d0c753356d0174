/* nsprog.c: a process in namespaces of its own across a checkpoint.
 *
 *   nsprog MODE DIR   makes what MODE says, prints "ready PID", waits for
 *                     DIR/go, then checks that each namespace it made is
 *                     still not its parent's (and every other one is), with
 *                     what it set there, and prints "nsprog: ok".  Without
 *                     root, each MODE makes a user namespace first (uid and
 *                     gid 0 mapped to its own), in which it may make the
 *                     others.
 *   MODE uts          a uts namespace, hostname "ckpt-ns-test", domainname
 *                     "ckpt.test".
 *   MODE net          a net namespace with lo up, a UDP socket bound on
 *                     127.0.0.1 (fd 3): after the restore still bound on the
 *                     same port, only lo there, and a datagram sent to itself
 *                     comes back.
 *   MODE user         a user namespace (also as root): uid 0 in it, the same
 *                     uid_map after the restore.
 *   MODE tree         a child made a uts namespace of its own (hostname
 *                     "ckpt-child"); the parent stays in its own parent's,
 *                     with its hostname; both check.
 *   MODE cgroup       nothing made: its cgroup (/proc/self/cgroup) must be the
 *                     same after the restore (the test moved it into one).
 *   MODE ipc          an ipc namespace, empty.
 *   MODE ipcobj       an ipc namespace holding a System V semaphore set
 *                     (which a dump refuses).
 *   MODE mnt          a mount namespace (every mount private, as `unshare -m`
 *                     makes them) with a tmpfs on DIR/m (size 1 MiB, mode
 *                     0750) holding a file, a directory with a file and a
 *                     symlink, and a tmpfs on DIR/r with a file, made
 *                     read-only: after the restore the tmpfs mounts are
 *                     there with their options, their files with their
 *                     modes and bytes, a write to DIR/r fails with EROFS,
 *                     every mount is still private.
 *   MODE mntbind      a mount namespace with DIR/src bound on DIR/b read-only,
 *                     and (where the test mounted a tmpfs on DIR/u before)
 *                     DIR/u unmounted: after the restore DIR/b shows
 *                     DIR/src's file, a write there fails with EROFS, and
 *                     DIR/u is no mount point (its file DIR/u/mounted gone).
 *   MODE mntproc      (as root, or root in a user namespace) as `unshare
 *                     --pid --fork --mount-proc`: a pid and mount namespace,
 *                     its child pid 1 with a proc of its pid namespace on
 *                     /proc; after the restore the child's /proc/self is 1.
 *   MODE mntdev       a mount namespace with a devpts mounted on DIR/pts
 *                     (which a dump refuses).
 *   MODE mntbig       a mount namespace with a tmpfs on DIR/m holding a file
 *                     of 17 MiB (which a dump refuses).
 *   MODE time         a time namespace, entered, with offsets monotonic
 *                     86400 s and boottime 172800 s: after the restore its
 *                     clocks have gone on from where they stood (never
 *                     back, less than 600 s on) and its offsets are those
 *                     (DIR/moved: the test made the restore take the image
 *                     for another boot's: smaller, by the time it was
 *                     down).
 *   MODE timetwice    as MODE time, then another time namespace made for
 *                     its children (which a dump refuses).
 *   MODE pidns        (as root, or root in a user namespace) a pid namespace
 *                     made for its children, as `unshare --pid --fork`
 *                     does: its child is pid 1 there and has a child, pid
 *                     2; both check their pids there and their NSpid line
 *                     after the restore, the init reaps its child.
 *   MODE pidthreads   as MODE pidns, pid 2 with a second thread (which a
 *                     dump refuses).
 *   MODE timekids     the same time namespace made for its children only
 *                     (unshare without setns, as `unshare --time --fork`):
 *                     its child is in it and checks as MODE time; it is
 *                     not, and its time_for_children is still another.
 */
#define PROG "nsprog"
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "progs.h"

static const char *const types[] = {"user", "uts", "net", "ipc", "time", "mnt"};
#define NTYPES 6

static char dir[4096];

static char *slurp(const char *path)
{
	static char buf[8][4096];
	static int k;
	char *b = buf[k++ % 8];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, b, sizeof(buf[0]) - 1);

	if (fd >= 0)
		close(fd);
	b[n < 0 ? 0 : n] = 0;
	return b;
}

static void put(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		die(path);
	close(fd);
}

/* The inode of /proc/WHO/ns/TYPE, 0 if it cannot be read (a parent that
 * is not dumpable, such as ckpt-remap, to a process in a user namespace). */
static unsigned long ino_of(const char *who, const char *type)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%s/ns/%s", who, type);
	return stat(path, &st) ? 0 : (unsigned long)st.st_ino;
}

/* Its namespaces before it made any: what a new one must differ from
 * where the parent's cannot be read. */
static unsigned long before[NTYPES];

static void note_before(void)
{
	for (int k = 0; k < NTYPES; k++)
		before[k] = ino_of("self", types[k]);
}

static void make_user(void)
{
	char map[64];
	unsigned uid = geteuid(), gid = getegid();

	if (unshare(CLONE_NEWUSER))
		die("unshare user");
	put("/proc/self/setgroups", "deny");
	snprintf(map, sizeof(map), "0 %u 1\n", uid);
	put("/proc/self/uid_map", map);
	snprintf(map, sizeof(map), "0 %u 1\n", gid);
	put("/proc/self/gid_map", map);
}

/* own: bit k for types[k] made here.  Each must differ from the parent's,
 * the others be the parent's. */
static void check_own(unsigned own)
{
	char ppid[32];

	snprintf(ppid, sizeof(ppid), "%d", (int)getppid());
	for (int k = 0; k < NTYPES; k++) {
		unsigned long mine = ino_of("self", types[k]), theirs = ino_of(ppid, types[k]);
		int differs = mine != (theirs ? theirs : before[k]);
		if (!mine || (!theirs && !(own & (1u << k))))
			continue;
		if (differs != !!(own & (1u << k)))
			fail("its %s namespace is %s its parent's", types[k],
			     differs ? "not" : "still");
	}
}

static void check_uts(const char *host, const char *dom)
{
	char h[128] = "", d[128] = "";

	gethostname(h, sizeof(h));
	if (getdomainname(d, sizeof(d)))
		d[0] = 0;
	if (strcmp(h, host) || (dom && strcmp(d, dom)))
		fail("hostname %s domainname %s, not %s %s", h, d, host, dom ? dom : "");
}

static struct sockaddr_in bound;

static void make_net(void)
{
	struct ifreq ifr;
	socklen_t len = sizeof(bound);
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr))
		die("lo flags");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr))
		die("lo up");
	memset(&bound, 0, sizeof(bound));
	bound.sin_family = AF_INET;
	bound.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&bound, sizeof(bound)) ||
	    getsockname(s, (struct sockaddr *)&bound, &len))
		die("bind");
	if (s != 3 && (dup2(s, 3) < 0 || close(s)))
		die("dup2");
}

static void check_net(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	struct if_nameindex *ifs = if_nameindex(), *i;
	char buf[16] = "";
	struct timeval tv = {5, 0};

	for (i = ifs; i && i->if_name; i++)
		if (strcmp(i->if_name, "lo"))
			fail("interface %s besides lo", i->if_name);
	if (ifs)
		if_freenameindex(ifs);
	if (getsockname(3, (struct sockaddr *)&a, &len) || a.sin_port != bound.sin_port ||
	    a.sin_addr.s_addr != bound.sin_addr.s_addr) {
		fail("fd 3 is not bound on 127.0.0.1:%d any more", ntohs(bound.sin_port));
		return;
	}
	setsockopt(3, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (sendto(3, "ping", 4, 0, (struct sockaddr *)&bound, sizeof(bound)) != 4 ||
	    recv(3, buf, sizeof(buf), 0) != 4 || memcmp(buf, "ping", 4))
		fail("a datagram to itself on 127.0.0.1:%d did not come back: %s",
		     ntohs(bound.sin_port), strerror(errno));
}

/* The offsets a time namespace of its own is given. */
#define MONO_OFF 86400LL
#define BOOT_OFF 172800LL

static double clock_at(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A new time namespace with the offsets above, for its children; entered
 * (setns on time_for_children) unless kids. */
static void make_time(int kids)
{
	char buf[128];
	int fd;

	if (unshare(CLONE_NEWTIME))
		die("unshare time");
	snprintf(buf, sizeof(buf), "monotonic %lld 0\nboottime %lld 0\n", MONO_OFF, BOOT_OFF);
	put("/proc/self/timens_offsets", buf);
	if (kids)
		return;
	fd = open("/proc/self/ns/time_for_children", O_RDONLY);
	if (fd < 0 || setns(fd, CLONE_NEWTIME))
		die("setns time");
	close(fd);
}

static double mono0, boot0;

/* Its clocks went on from where they stood, never back; its offsets are
 * the ones it set, or (DIR/moved: the restore took the image for one of
 * another boot) smaller by the time it was not running. */
static void check_time(void)
{
	double mono = clock_at(CLOCK_MONOTONIC), boot = clock_at(CLOCK_BOOTTIME);
	long long ms, mn, bs, bn;
	int moved = access(in_dir("moved"), F_OK) == 0;

	if (mono < mono0 || mono > mono0 + 600 || boot < boot0 || boot > boot0 + 600)
		fail("CLOCK_MONOTONIC %.3f (was %.3f), CLOCK_BOOTTIME %.3f (was %.3f)", mono,
		     mono0, boot, boot0);
	if (mono < MONO_OFF || boot < BOOT_OFF)
		fail("CLOCK_MONOTONIC %.3f, CLOCK_BOOTTIME %.3f: below its offsets", mono, boot);
	if (sscanf(slurp("/proc/self/timens_offsets"), "monotonic %lld %lld boottime %lld %lld",
		   &ms, &mn, &bs, &bn) != 4) {
		fail("cannot parse its timens_offsets: %s", slurp("/proc/self/timens_offsets"));
		return;
	}
	if (!moved && (ms != MONO_OFF || mn || bs != BOOT_OFF || bn))
		fail("timens_offsets monotonic %lld %lld boottime %lld %lld, not %lld 0 %lld 0",
		     ms, mn, bs, bn, MONO_OFF, BOOT_OFF);
	if (moved && (ms >= MONO_OFF || ms < MONO_OFF - 600 || bs >= BOOT_OFF ||
		      bs < BOOT_OFF - 600))
		fail("timens_offsets monotonic %lld boottime %lld: not the time it was down "
		     "less than %lld and %lld",
		     ms, bs, MONO_OFF, BOOT_OFF);
}

/* Its NSpid line (its pid in every pid namespace our /proc shows). */
static void nspid(char *buf, size_t size)
{
	const char *s = strstr(slurp("/proc/self/status"), "\nNSpid:");

	snprintf(buf, size, "%.*s", s ? (int)strcspn(s + 1, "\n") : 0, s ? s + 1 : "");
}

/* In the pid namespace: its pid there (want), its parent's (0: outside),
 * its NSpid line, all as before the checkpoint. */
static void check_pids(pid_t want, pid_t ppid, const char *was)
{
	char now[256];

	nspid(now, sizeof(now));
	if (getpid() != want || getppid() != ppid)
		fail("pid %d, parent %d in its pid namespace, not %d and %d", (int)getpid(),
		     (int)getppid(), (int)want, (int)ppid);
	if (strcmp(now, was))
		fail("%s, was %s", now, was);
}

/* A pid namespace made for its children (`unshare --pid --fork`): its
 * child is pid 1 there, with a child of its own, pid 2; each checks its
 * pids at every level, the init reaps its child, the parent its own. */
static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static int pidns(int threads)
{
	char was[256];
	int pfd[2], status;
	pid_t child;
	char c;

	if (pipe(pfd) || unshare(CLONE_NEWPID))
		die("unshare pid");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		pid_t kid;

		close(pfd[0]);
		kid = fork();
		if (kid < 0)
			die("fork in the pid namespace");
		if (kid == 0) {
			pthread_t th;

			if (threads && pthread_create(&th, NULL, idle, NULL))
				die("pthread_create");
			nspid(was, sizeof(was));
			if (write(pfd[1], "x", 1) != 1)
				die("write");
			close(pfd[1]);
			wait_file(in_dir("go"));
			check_pids(2, 1, was);
			_exit(failures ? 1 : 0);
		}
		close(pfd[1]);
		nspid(was, sizeof(was));
		if (getpid() != 1 || kid != 2)
			die("not pid 1 with a child 2 in the new pid namespace");
		wait_file(in_dir("go"));
		check_pids(1, 0, was);
		if (waitpid(2, &status, 0) != 2 || !WIFEXITED(status) || WEXITSTATUS(status))
			fail("its child, pid 2, failed its checks (status %#x)", status);
		_exit(failures ? 1 : 0);
	}
	close(pfd[1]);
	if (read(pfd[0], &c, 1) != 1)
		die("child");
	close(pfd[0]);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	wait_file(in_dir("go"));
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		fail("its child, pid 1 of the new pid namespace, failed its checks (status %#x)",
		     status);
	if (failures)
		return 1;
	printf("nsprog: ok\n");
	return 0;
}

/* A time namespace made for its children only (`unshare --time --fork`):
 * its child is in it, it is not. */
static int timekids(int root)
{
	char cpid[32];
	int pfd[2], status;
	pid_t child;
	char c;

	if (!root)
		make_user();
	make_time(1);
	if (pipe(pfd))
		die("pipe");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		close(pfd[0]);
		mono0 = clock_at(CLOCK_MONOTONIC);
		boot0 = clock_at(CLOCK_BOOTTIME);
		if (write(pfd[1], "x", 1) != 1)
			die("write");
		close(pfd[1]);
		wait_file(in_dir("go"));
		check_own(root ? 16 : 17);
		check_time();
		/* Here, not in the parent: once it exits it has none to show. */
		snprintf(cpid, sizeof(cpid), "%d", (int)getppid());
		if (ino_of("self", "time") != ino_of(cpid, "time_for_children"))
			fail("its time namespace is not its parent's time namespace for children");
		_exit(failures ? 1 : 0);
	}
	close(pfd[1]);
	if (read(pfd[0], &c, 1) != 1)
		die("child");
	close(pfd[0]);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	wait_file(in_dir("go"));
	check_own(root ? 0 : 1);
	if (ino_of("self", "time_for_children") == ino_of("self", "time"))
		fail("its time namespace for children is its own time namespace");
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		fail("its child failed its checks (status %#x)", status);
	if (failures)
		return 1;
	printf("nsprog: ok\n");
	return 0;
}

/* The line of /proc/self/mountinfo for mount point path ("" if none);
 * the last one, the one on top. */
static const char *mount_line(const char *path)
{
	static char line[1024];
	char *s = slurp("/proc/self/mountinfo"), *l, *save;
	char point[4096];

	line[0] = 0;
	for (l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		if (sscanf(l, "%*s %*s %*s %*s %4095s", point) == 1 && !strcmp(point, path))
			snprintf(line, sizeof(line), "%s", l);
	return line;
}

/* Every mount in its namespace private, as `unshare -m` leaves them. */
static void check_private(void)
{
	char *s = slurp("/proc/self/mountinfo");

	if (strstr(s, " shared:") || strstr(s, " master:"))
		fail("a mount is not private: %s", s);
}

static void put_mode(const char *path, const char *s, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);

	if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s) || fchmod(fd, mode))
		die(path);
	close(fd);
}

static void check_file(const char *path, const char *want, mode_t mode)
{
	struct stat st;

	if (stat(path, &st) || (st.st_mode & 07777) != mode || strcmp(slurp(path), want))
		fail("%s: mode %o and \"%s\", not %o and \"%s\"", path,
		     (unsigned)(st.st_mode & 07777), slurp(path), (unsigned)mode, want);
}

static void make_mnt(void)
{
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		die("unshare mnt");
}

static void mnt_tmpfs(void)
{
	if (mkdir(in_dir("m"), 0700))
		die("mkdir m");
	make_mnt();
	if (mount("tmpfs", in_dir("m"), "tmpfs", MS_NOSUID, "size=1m,mode=0750"))
		die("mount tmpfs");
	put_mode(in_dir("m/a"), "hello", 0640);
	if (mkdir(in_dir("m/sub"), 0711) || chmod(in_dir("m/sub"), 0711))
		die("mkdir sub");
	put_mode(in_dir("m/sub/b"), "in sub", 0600);
	if (symlink("a", in_dir("m/l")))
		die("symlink");
	if (mkdir(in_dir("r"), 0700) || mount("tmpfs", in_dir("r"), "tmpfs", 0, "size=64k"))
		die("tmpfs r");
	put_mode(in_dir("r/f"), "read-only", 0644);
	if (mount(NULL, in_dir("r"), NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL))
		die("read-only tmpfs");
}

/* No file can be made in path: EROFS. */
static void check_rofs(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT, 0600);

	if (fd >= 0 || errno != EROFS)
		fail("a write to %s on a read-only mount did not fail with EROFS", path);
	if (fd >= 0)
		close(fd);
}

static void check_tmpfs(void)
{
	const char *l = mount_line(in_dir("m"));
	char link[64] = "";
	struct stat st;

	if (!strstr(l, " - tmpfs ") || !strstr(l, "size=1024k") || !strstr(l, "mode=750") ||
	    !strstr(l, "nosuid"))
		fail("no tmpfs of size 1024k, mode 750, nosuid on %s: %s", in_dir("m"), l);
	check_file(in_dir("m/a"), "hello", 0640);
	check_file(in_dir("m/sub/b"), "in sub", 0600);
	if (stat(in_dir("m/sub"), &st) || (st.st_mode & 07777) != 0711)
		fail("m/sub: not a directory of mode 711");
	if (readlink(in_dir("m/l"), link, sizeof(link) - 1) != 1 || strcmp(link, "a"))
		fail("m/l: not a symlink to a: %s", link);
	check_file(in_dir("r/f"), "read-only", 0644);
	check_rofs(in_dir("r/new"));
	check_private();
}

static int umounted;

static void mnt_bind(void)
{
	if (mkdir(in_dir("src"), 0700) || mkdir(in_dir("b"), 0700))
		die("mkdir src b");
	put_mode(in_dir("src/f"), "bound", 0644);
	make_mnt();
	if (mount(in_dir("src"), in_dir("b"), NULL, MS_BIND, NULL) ||
	    mount(NULL, in_dir("b"), NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL))
		die("bind");
	if (access(in_dir("u/mounted"), F_OK) == 0) {
		if (umount2(in_dir("u"), 0))
			die("umount u");
		umounted = 1;
	}
}

static void check_bind(void)
{
	if (!strstr(mount_line(in_dir("b")), " ro"))
		fail("%s is not a read-only mount: %s", in_dir("b"), mount_line(in_dir("b")));
	check_file(in_dir("b/f"), "bound", 0644);
	check_rofs(in_dir("b/new"));
	if (umounted && (access(in_dir("u/mounted"), F_OK) == 0 || mount_line(in_dir("u"))[0]))
		fail("%s is mounted again", in_dir("u"));
	check_private();
}

/* `unshare --pid --fork --mount-proc`: its child, pid 1 of a new pid
 * namespace, mounted a proc of it on /proc. */
static int mntproc(void)
{
	int pfd[2], status;
	pid_t child;
	char c;

	if (pipe(pfd) || unshare(CLONE_NEWPID | CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		die("unshare pid mnt");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		char self[32] = "";

		close(pfd[0]);
		if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
			die("mount proc");
		if (write(pfd[1], "x", 1) != 1)
			die("write");
		close(pfd[1]);
		wait_file(in_dir("go"));
		if (readlink("/proc/self", self, sizeof(self) - 1) < 0 || strcmp(self, "1"))
			fail("/proc/self is %s, not 1: not the proc of its pid namespace", self);
		if (getpid() != 1)
			fail("pid %d, not 1", (int)getpid());
		if (!strstr(mount_line("/proc"), " - proc "))
			fail("no proc on /proc: %s", mount_line("/proc"));
		check_private();
		_exit(failures ? 1 : 0);
	}
	close(pfd[1]);
	if (read(pfd[0], &c, 1) != 1)
		die("child");
	close(pfd[0]);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	wait_file(in_dir("go"));
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		fail("its child, pid 1 with its proc, failed its checks (status %#x)", status);
	if (failures)
		return 1;
	printf("nsprog: ok\n");
	return 0;
}

static int tree(int root)
{
	char host[128] = "";
	int pfd[2], status;
	pid_t child;
	char c;

	gethostname(host, sizeof(host));
	if (pipe(pfd))
		die("pipe");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		close(pfd[0]);
		if (!root)
			make_user();
		if (unshare(CLONE_NEWUTS) || sethostname("ckpt-child", 10))
			die("child uts");
		if (write(pfd[1], "x", 1) != 1)
			die("write");
		close(pfd[1]);
		wait_file(in_dir("go"));
		check_own(root ? 2 : 3);
		check_uts("ckpt-child", NULL);
		_exit(failures ? 1 : 0);
	}
	close(pfd[1]);
	if (read(pfd[0], &c, 1) != 1)
		die("child");
	close(pfd[0]);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	wait_file(in_dir("go"));
	check_own(0);
	check_uts(host, NULL);
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		fail("its child failed its checks (status %#x)", status);
	if (failures)
		return 1;
	printf("nsprog: ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode;
	int root = geteuid() == 0;
	unsigned own = root ? 0 : 1;
	char cgroup[4096], uid_map[4096];

	if (argc != 3) {
		fprintf(stderr, "usage: nsprog uts|net|user|ipc|ipcobj|tree|cgroup|mnt|mntbind|mntproc|mntdev|mntbig|time|timetwice|timekids|pidns|pidthreads DIR\n");
		return 2;
	}
	mode = argv[1];
	note_before();
	snprintf(dir, sizeof(dir), "%s", argv[2]);
	if (!strcmp(mode, "tree"))
		return tree(root);
	if (!strcmp(mode, "timekids"))
		return timekids(root);
	if (!strcmp(mode, "pidns") || !strcmp(mode, "pidthreads"))
		return pidns(!strcmp(mode, "pidthreads"));
	if (!strcmp(mode, "mntproc"))
		return mntproc();
	if (strcmp(mode, "cgroup") && (!root || !strcmp(mode, "user")))
		make_user();
	if (!strcmp(mode, "user"))
		own = 1;
	if (!strcmp(mode, "uts")) {
		if (unshare(CLONE_NEWUTS) || sethostname("ckpt-ns-test", 12) ||
		    setdomainname("ckpt.test", 9))
			die("uts");
		own |= 2;
	} else if (!strcmp(mode, "net")) {
		if (unshare(CLONE_NEWNET))
			die("unshare net");
		make_net();
		own |= 4;
	} else if (!strcmp(mode, "ipc") || !strcmp(mode, "ipcobj")) {
		if (unshare(CLONE_NEWIPC))
			die("unshare ipc");
		if (!strcmp(mode, "ipcobj") && semget(IPC_PRIVATE, 1, 0600) < 0)
			die("semget");
		own |= 8;
	} else if (!strcmp(mode, "time") || !strcmp(mode, "timetwice")) {
		make_time(0);
		if (!strcmp(mode, "timetwice") && unshare(CLONE_NEWTIME))
			die("unshare time again");
		mono0 = clock_at(CLOCK_MONOTONIC);
		boot0 = clock_at(CLOCK_BOOTTIME);
		own |= 16;
	} else if (!strcmp(mode, "cgroup")) {
		own = 0;
	} else if (!strcmp(mode, "mnt")) {
		mnt_tmpfs();
		own |= 32;
	} else if (!strcmp(mode, "mntbind")) {
		mnt_bind();
		own |= 32;
	} else if (!strcmp(mode, "mntdev")) {
		if (mkdir(in_dir("pts"), 0700))
			die("mkdir pts");
		make_mnt();
		if (mount("devpts", in_dir("pts"), "devpts", 0, "newinstance"))
			die("mount devpts");
	} else if (!strcmp(mode, "mntbig")) {
		static char big[17 << 20];
		int fd;

		if (mkdir(in_dir("m"), 0700))
			die("mkdir m");
		make_mnt();
		if (mount("tmpfs", in_dir("m"), "tmpfs", 0, "size=32m") ||
		    (fd = open(in_dir("m/big"), O_WRONLY | O_CREAT, 0600)) < 0 ||
		    write(fd, big, sizeof(big)) != (ssize_t)sizeof(big) || close(fd))
			die("big tmpfs file");
	} else if (strcmp(mode, "user")) {
		fprintf(stderr, "nsprog: unknown mode %s\n", mode);
		return 2;
	}
	snprintf(cgroup, sizeof(cgroup), "%s", slurp("/proc/self/cgroup"));
	snprintf(uid_map, sizeof(uid_map), "%s", slurp("/proc/self/uid_map"));
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	wait_file(in_dir("go"));
	if (!strcmp(mode, "mntdev") || !strcmp(mode, "mntbig") || !strcmp(mode, "ipcobj"))
		return 0;
	check_own(own);
	if (!strcmp(mode, "mnt"))
		check_tmpfs();
	if (!strcmp(mode, "mntbind"))
		check_bind();
	if (!strcmp(mode, "uts"))
		check_uts("ckpt-ns-test", "ckpt.test");
	if (!strcmp(mode, "net"))
		check_net();
	if (!strcmp(mode, "time") || !strcmp(mode, "timetwice"))
		check_time();
	if (strcmp(slurp("/proc/self/cgroup"), cgroup))
		fail("cgroup %s, was %s", slurp("/proc/self/cgroup"), cgroup);
	if ((own & 1) && strcmp(slurp("/proc/self/uid_map"), uid_map))
		fail("uid_map %s, was %s", slurp("/proc/self/uid_map"), uid_map);
	if ((own & 1) && getuid() != 0)
		fail("uid %d in its user namespace, not 0", (int)getuid());
	if (failures)
		return 1;
	printf("nsprog: ok\n");
	return 0;
}
