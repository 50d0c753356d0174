/* ns.c: the namespaces and cgroup of a process, as far as a restore can
 * make them again (the NS record, format.h).
 *
 * "Its own" means not the one of the tree root's parent, the environment
 * the tree was started in (the dumper's own when that parent's cannot be
 * read); for a pid namespace, not the tree root's.  What an equivalent needs is read from inside: a child of the
 * dumper enters the namespace (setns; first the process's user namespace
 * when it is not ours, as an unprivileged dumper holds CAP_SYS_ADMIN only
 * there) and reads uname(2), the interfaces and /proc/sysvipc as the
 * process would see them. */
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "target/target.h"

static const char *const ns_file[IMG_NS_NTYPES] = {"user", "mnt", "pid", "net",
						   "uts",  "ipc", "cgroup", "time"};

/* The inode of /proc/PID/ns/NAME (pid 0: ours), 0 where the kernel has no
 * such namespace or it cannot be read. */
static uint64_t ns_ino_of(pid_t pid, const char *name)
{
	char path[64];
	struct stat st;

	if (pid)
		fmt_path(path, sizeof(path), "/proc/%d/ns/%s", pid, name);
	else
		fmt_path(path, sizeof(path), "/proc/self/ns/%s", name);
	return stat(path, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static uint64_t ns_ino(pid_t pid, int type)
{
	return ns_ino_of(pid, ns_file[type]);
}

char *proc_read_cgroup(pid_t pid)
{
	char path[64], *s, *line, *p = NULL;

	s = read_file(pid ? fmt_path(path, sizeof(path), "/proc/%d/cgroup", pid)
			  : "/proc/self/cgroup",
		      NULL);
	if (!s)
		return NULL;
	for (line = s; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (strncmp(line, "0::", 3) == 0) {
			size_t n = strcspn(line + 3, "\n");
			p = strndup(line + 3, n);
			break;
		}
	free(s);
	return p;
}

int proc_read_timens_offsets(pid_t pid, int64_t sec[2], int64_t nsec[2])
{
	char path[64], *s, *line;
	int seen = 0;

	if (pid)
		fmt_path(path, sizeof(path), "/proc/%d/timens_offsets", pid);
	else
		fmt_path(path, sizeof(path), "/proc/self/timens_offsets");
	s = read_file(path, NULL);
	if (!s) {
		err_sys("cannot read %s", path);
		return -1;
	}
	for (line = s; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		char name[16];
		long long a, b;
		int k;

		if (sscanf(line, "%15s %lld %lld", name, &a, &b) != 3)
			continue;
		k = !strcmp(name, "monotonic") ? 0 : !strcmp(name, "boottime") ? 1 : -1;
		if (k < 0)
			continue;
		sec[k] = a;
		nsec[k] = b;
		seen |= 1 << k;
	}
	free(s);
	if (seen != 3) {
		err_set("cannot parse %s", path);
		return -1;
	}
	return 0;
}

int proc_boot_id(uint8_t id[16])
{
	char *s = read_file("/proc/sys/kernel/random/boot_id", NULL);
	int n = 0;

	for (const char *c = s; c && *c && n < 32; c++) {
		int v = *c >= '0' && *c <= '9' ? *c - '0' : *c >= 'a' && *c <= 'f' ? *c - 'a' + 10 : -1;

		if (v < 0)
			continue;
		if (n % 2 == 0)
			id[n / 2] = (uint8_t)(v << 4);
		else
			id[n / 2] |= (uint8_t)v;
		n++;
	}
	free(s);
	if (n != 32) {
		err_set("cannot read /proc/sys/kernel/random/boot_id");
		return -1;
	}
	return 0;
}

int64_t host_clock_ns(int clock)
{
	int64_t sec[2], nsec[2];
	struct timespec ts;
	int k = clock == CLOCK_BOOTTIME;

	if (clock_gettime(clock, &ts)) {
		err_sys("cannot read the clock");
		return -1;
	}
	/* Where the kernel has no time namespaces there is no file and no offset. */
	if (access("/proc/self/timens_offsets", F_OK) != 0)
		sec[k] = nsec[k] = 0;
	else if (proc_read_timens_offsets(0, sec, nsec))
		return -1;
	return ((int64_t)ts.tv_sec - sec[k]) * 1000000000 + ts.tv_nsec - nsec[k];
}

/* Its time namespace of its own: the offsets, and where its clocks stood.
 * A namespace it made for its children (unshare without a fork) and has
 * not entered is refused: the kernel shows only that one's offsets. */
static int capture_time(pid_t pid, struct ns_rec *n)
{
	struct img_timens *t;

	if (n->timens)
		return 0;
	t = calloc(1, sizeof(*t));
	if (!t) {
		err_set("out of memory");
		return -1;
	}
	n->timens = t;
	if (proc_read_timens_offsets(pid, t->off_sec, t->off_nsec) || proc_boot_id(t->boot_id)) {
		char why[512];

		snprintf(why, sizeof(why), "%s", err_get());
		err_set("pid %d: its time namespace: %s", pid, why);
		return -1;
	}
	for (int k = 0; k < 2; k++) {
		int64_t h = host_clock_ns(k ? CLOCK_BOOTTIME : CLOCK_MONOTONIC);

		if (h < 0)
			return -1;
		t->clock_ns[k] = h + t->off_sec[k] * 1000000000 + t->off_nsec[k];
	}
	return 0;
}

/* A time namespace made for its children (unshare(CLONE_NEWTIME), as
 * `unshare --time --fork` does) that it is not in itself: recorded as its
 * own, flagged, since its children are in it and it would put the
 * children it forks later there.  One made for its children while in one
 * of its own is refused. */
static int time_for_children(pid_t pid, struct ns_rec *n)
{
	uint64_t kids = ns_ino_of(pid, "time_for_children");

	if (!kids || kids == n->d.ino[IMG_NS_TIME])
		return 0;
	if (n->d.own & (1u << IMG_NS_TIME)) {
		err_set("pid %d: its time namespace is its own and it made another for its "
			"children; not supported",
			pid);
		return -1;
	}
	n->d.own |= 1u << IMG_NS_TIME;
	n->d.ino[IMG_NS_TIME] = kids;
	if (capture_time(pid, n))
		return -1;
	n->timens->flags |= IMG_TIMENS_CHILDREN;
	return 0;
}

/* A pid namespace below the tree root's: its pid at each level between
 * (NSpid's values after the root's), which a restore asks clone3 for.  Its
 * threads would need theirs too: refused. */
static int capture_pids(pid_t pid, pid_t root, struct ns_rec *n)
{
	struct proc_nsids r, ids;
	pid_t *tids = NULL;
	size_t ntids = 0;
	int depth;

	if (proc_read_nsids(root, 0, 0, &r) || proc_read_nsids(pid, 0, 0, &ids)) {
		err_sys("pid %d: cannot read its pids", pid);
		return -1;
	}
	depth = ids.levels - r.levels;
	if (depth < 1 || depth > IMG_NS_MAX_PIDS) {
		err_set("pid %d: its pid namespace is %d levels below the tree's; not supported", pid,
			depth);
		return -1;
	}
	if (proc_list_tasks(pid, &tids, &ntids) == 0 && ntids > 1) {
		free(tids);
		err_set("pid %d: in a pid namespace below the tree's, with threads; not supported",
			pid);
		return -1;
	}
	free(tids);
	if (!(n->pids = calloc(depth, sizeof(*n->pids)))) {
		err_set("out of memory");
		return -1;
	}
	for (int i = 0; i < depth; i++) {
		if (proc_read_nsids(pid, 0, r.levels + i, &ids)) {
			err_sys("pid %d: cannot read its pids", pid);
			return -1;
		}
		n->pids[i] = ids.pid;
	}
	n->d.npids = depth;
	return 0;
}

/* A pid namespace made for its children (unshare(CLONE_NEWPID), as
 * `unshare --pid --fork` does): one of its children of the tree must be
 * in it, made again with it; the restored process's own is then its
 * children's again (it forks no other into it, as unshare does not). */
static int pid_for_children(pid_t pid, const struct ns_rec *n)
{
	uint64_t kids = ns_ino_of(pid, "pid_for_children");
	pid_t *c = NULL;
	size_t nc = 0;
	int found = 0;

	if (!kids || kids == n->d.ino[IMG_NS_PID])
		return 0;
	if (proc_list_children(pid, &c, &nc) == 0)
		for (size_t i = 0; i < nc && !found; i++)
			found = ns_ino(c[i], IMG_NS_PID) == kids;
	free(c);
	if (found)
		return 0;
	err_set("pid %d: it made a pid namespace for its children, none of which is in it; not "
		"supported",
		pid);
	return -1;
}

/* What the child that entered the namespaces saw. */
struct ns_seen {
	char err[256]; /* why it failed, or "" */
	char host[65], dom[65];
	int lo_up;
	char other[128]; /* net: the first interface or address beyond lo's, or "" */
	int nsysv;	 /* ipc: System V objects in it */
	char sysv[32];	 /* the first one's kind */
};

static int enter(pid_t pid, int type, struct ns_seen *s)
{
	char path[64];
	int fd = open(fmt_path(path, sizeof(path), "/proc/%d/ns/%s", pid, ns_file[type]),
		      O_RDONLY | O_CLOEXEC);

	if (fd < 0 || setns(fd, 0)) {
		snprintf(s->err, sizeof(s->err), "cannot enter its %s namespace: %s",
			 ns_file[type], strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* A loopback address the kernel gives lo when it is brought up. */
static int lo_default(const struct sockaddr *a)
{
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
	if (a->sa_family == AF_INET6)
		return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &in6addr_loopback,
			       sizeof(in6addr_loopback));
	return 1; /* AF_PACKET: the interface itself */
}

static void see_net(struct ns_seen *s)
{
	struct ifaddrs *ifa, *i;

	if (getifaddrs(&ifa)) {
		snprintf(s->err, sizeof(s->err), "cannot list its interfaces: %s",
			 strerror(errno));
		return;
	}
	for (i = ifa; i; i = i->ifa_next) {
		if (strcmp(i->ifa_name, "lo") != 0) {
			if (!s->other[0])
				snprintf(s->other, sizeof(s->other), "interface %s", i->ifa_name);
			continue;
		}
		if (i->ifa_flags & IFF_UP)
			s->lo_up = 1;
		if (i->ifa_addr && !lo_default(i->ifa_addr) && !s->other[0])
			snprintf(s->other, sizeof(s->other), "an address of lo other than "
							     "127.0.0.1 and ::1");
	}
	freeifaddrs(ifa);
}

static void see_ipc(struct ns_seen *s)
{
	static const char *const kind[] = {"shm", "sem", "msg"};

	for (int k = 0; k < 3; k++) {
		char path[64], *t;
		int lines = 0;

		t = read_file(fmt_path(path, sizeof(path), "/proc/sysvipc/%s", kind[k]), NULL);
		if (!t)
			continue;
		for (char *c = t; *c; c++)
			lines += *c == '\n';
		free(t);
		if (lines > 1 && !s->nsysv)
			snprintf(s->sysv, sizeof(s->sysv), "%s", kind[k]);
		if (lines > 1)
			s->nsysv += lines - 1; /* the first is the header */
	}
}

/* In a child: enter what is needed, look, and write what was seen. */
static _Noreturn void look(pid_t pid, uint32_t own, int need_user, int out)
{
	struct ns_seen s;
	struct utsname u;

	memset(&s, 0, sizeof(s));
	if (need_user && enter(pid, IMG_NS_USER, &s))
		goto done;
	if ((own & (1u << IMG_NS_UTS)) && enter(pid, IMG_NS_UTS, &s) == 0 && uname(&u) == 0) {
		snprintf(s.host, sizeof(s.host), "%s", u.nodename);
		snprintf(s.dom, sizeof(s.dom), "%s", u.domainname);
	}
	if (!s.err[0] && (own & (1u << IMG_NS_NET)) && enter(pid, IMG_NS_NET, &s) == 0)
		see_net(&s);
	if (!s.err[0] && (own & (1u << IMG_NS_IPC)) && enter(pid, IMG_NS_IPC, &s) == 0)
		see_ipc(&s);
done:
	_exit(write_all(out, &s, sizeof(s)) ? 1 : 0);
}

static int look_inside(pid_t pid, uint32_t own, struct ns_seen *s)
{
	int p[2], status;
	pid_t child;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC)) {
		err_sys("cannot make a pipe");
		return -1;
	}
	fflush(NULL);
	child = fork();
	if (child == 0) {
		close(p[0]);
		look(pid, own, ns_ino(pid, IMG_NS_USER) != ns_ino(0, IMG_NS_USER), p[1]);
	}
	close(p[1]);
	if (child < 0) {
		close(p[0]);
		err_sys("cannot fork");
		return -1;
	}
	n = read_full(p[0], s, sizeof(*s));
	close(p[0]);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (n != sizeof(*s)) {
		err_set("pid %d: cannot look into its namespaces", pid);
		return -1;
	}
	if (s->err[0]) {
		err_set("pid %d: %s", pid, s->err);
		return -1;
	}
	return 0;
}

/* Namespaces of its own a restore does not make again. */
static int refuse_own(pid_t pid, uint32_t own)
{
	static const char *const why[IMG_NS_NTYPES] = {
	    [IMG_NS_CGROUP] = "its cgroup root is not recorded",
	};

	for (int t = 0; t < IMG_NS_NTYPES; t++)
		if ((own & (1u << t)) && why[t]) {
			err_set("pid %d: its %s namespace is its own: %s; not supported", pid,
				ns_file[t], why[t]);
			return -1;
		}
	return 0;
}

/* The user namespace a restore makes is a child of the one it runs in:
 * the process's must be a child of the tree's. */
static int check_user_parent(pid_t pid, uint64_t outer)
{
	char path[64];
	struct stat st;
	int fd = open(fmt_path(path, sizeof(path), "/proc/%d/ns/user", pid), O_RDONLY | O_CLOEXEC);
	int parent = fd < 0 ? -1 : ioctl(fd, NS_GET_PARENT);

	if (fd >= 0)
		close(fd);
	if (parent >= 0 && fstat(parent, &st) == 0 && (uint64_t)st.st_ino == outer) {
		close(parent);
		return 0;
	}
	if (parent >= 0)
		close(parent);
	err_set("pid %d: its user namespace is not a child of the one the tree started in; not "
		"supported",
		pid);
	return -1;
}

static char *read_map(pid_t pid, const char *what, uint32_t *len)
{
	char path[64], *s = read_file(fmt_path(path, sizeof(path), "/proc/%d/%s", pid, what), NULL);

	if (!s) {
		err_sys("pid %d: cannot read %s", pid, path);
		return NULL;
	}
	*len = strlen(s);
	if (*len > IMG_NS_MAX_MAP) {
		err_set("pid %d: its %s is longer than %d bytes; not supported", pid, what,
			IMG_NS_MAX_MAP);
		free(s);
		return NULL;
	}
	/* The kernel pads the columns with spaces: keep them, they are valid. */
	return s;
}

static int capture_user(pid_t pid, struct ns_rec *n)
{
	char path[64], *sg;

	if (!(n->uid_map = read_map(pid, "uid_map", &n->d.uid_map_len)) ||
	    !(n->gid_map = read_map(pid, "gid_map", &n->d.gid_map_len)))
		return -1;
	sg = read_file(fmt_path(path, sizeof(path), "/proc/%d/setgroups", pid), NULL);
	if (sg && strncmp(sg, "allow", 5) == 0)
		n->d.flags |= IMG_NSF_SETGROUPS;
	free(sg);
	return 0;
}

/* What ns_capture found: the record, or NULL when there is none to write. */
static int fill(pid_t pid, pid_t root, pid_t outer, struct ns_rec *n)
{
	uint64_t out[IMG_NS_NTYPES];
	char *cg, *ocg;
	struct ns_seen s;

	for (int t = 0; t < IMG_NS_NTYPES; t++) {
		n->d.ino[t] = ns_ino(pid, t);
		out[t] = ns_ino(outer, t);
		if (!out[t])
			out[t] = ns_ino(0, t);
		/* The root's pid namespace is the tree's, whose pids the
		 * image records (dump.c): only a deeper one is its own. */
		if (t == IMG_NS_PID && ns_ino(root, t))
			out[t] = ns_ino(root, t);
		if (n->d.ino[t] && n->d.ino[t] != out[t])
			n->d.own |= 1u << t;
	}
	if (refuse_own(pid, n->d.own))
		return -1;
	if (time_for_children(pid, n) || ((n->d.own & (1u << IMG_NS_TIME)) && capture_time(pid, n)))
		return -1;
	if (pid_for_children(pid, n) ||
	    ((n->d.own & (1u << IMG_NS_PID)) && capture_pids(pid, root, n)))
		return -1;
	if ((n->d.own & (1u << IMG_NS_MNT)) && mnt_capture(pid, outer, n))
		return -1;
	cg = proc_read_cgroup(pid);
	ocg = proc_read_cgroup(outer);
	if (!ocg)
		ocg = proc_read_cgroup(0);
	if (cg && ocg && strcmp(cg, ocg) != 0) {
		n->d.flags |= IMG_NSF_CGROUP;
		n->cgroup = cg;
		n->d.cgroup_len = strlen(cg);
		cg = NULL;
	}
	free(cg);
	free(ocg);
	if ((n->d.own & (1u << IMG_NS_USER)) &&
	    (check_user_parent(pid, out[IMG_NS_USER]) || capture_user(pid, n)))
		return -1;
	if (!(n->d.own & ((1u << IMG_NS_UTS) | (1u << IMG_NS_NET) | (1u << IMG_NS_IPC))))
		return 0;
	if (look_inside(pid, n->d.own, &s))
		return -1;
	memcpy(n->d.hostname, s.host, sizeof(s.host));
	memcpy(n->d.domainname, s.dom, sizeof(s.dom));
	if (s.other[0]) {
		err_set("pid %d: its net namespace is its own and has %s: only a namespace with "
			"lo alone is made again; not supported",
			pid, s.other);
		return -1;
	}
	if (s.lo_up)
		n->d.flags |= IMG_NSF_LO_UP;
	if (s.nsysv) {
		err_set("pid %d: its ipc namespace is its own and holds %d System V objects (%s "
			"among them): not recorded; not supported",
			pid, s.nsysv, s.sysv);
		return -1;
	}
	return 0;
}

int ns_capture(pid_t pid, pid_t root, pid_t outer, struct image *im)
{
	struct ns_rec *n = calloc(1, sizeof(*n));

	if (!n) {
		err_set("out of memory");
		return -1;
	}
	im->ns = n;
	if (fill(pid, root, outer, n))
		return -1;
	if (!n->d.own && !(n->d.flags & IMG_NSF_CGROUP)) {
		im->ns = NULL;
		free(n);
	}
	return 0;
}
