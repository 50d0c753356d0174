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
 *   MODE mnt          a mount namespace with a tmpfs on DIR/m (which a dump
 *                     refuses).
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

static const char *const types[] = {"user", "uts", "net", "ipc", "time"};
#define NTYPES 5

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
		fprintf(stderr, "usage: nsprog uts|net|user|ipc|ipcobj|tree|cgroup|mnt|time|timetwice|timekids|pidns|pidthreads DIR\n");
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
		if (mkdir(in_dir("m"), 0700) || unshare(CLONE_NEWNS) ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    mount("tmpfs", in_dir("m"), "tmpfs", 0, NULL))
			die("mnt");
	} else if (strcmp(mode, "user")) {
		fprintf(stderr, "nsprog: unknown mode %s\n", mode);
		return 2;
	}
	snprintf(cgroup, sizeof(cgroup), "%s", slurp("/proc/self/cgroup"));
	snprintf(uid_map, sizeof(uid_map), "%s", slurp("/proc/self/uid_map"));
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	wait_file(in_dir("go"));
	if (!strcmp(mode, "mnt") || !strcmp(mode, "ipcobj"))
		return 0;
	check_own(own);
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
