/* ns.c: the namespaces and cgroup of the image's processes, made again.
 *
 * A process whose NS record says it had a user, uts, net, ipc or time
 * namespace of its own gets a new one, made by unshare(2) in the process
 * itself once it is forked and before it forks its children, so that they
 * inherit it as they had (the user namespace first: the others are then
 * its, and may be made without privilege).  A new uts namespace gets the
 * hostname and domainname, a new net namespace its loopback up (the dump
 * refused one with anything more), a new time namespace its offsets
 * before the process enters it (TIMENS).  A process in a cgroup of its own is
 * moved into the cgroup of the same path, which must exist.
 *
 * rst_ns_check refuses, before anything is made, what cannot be made so:
 * a namespace shared by processes of which none is the ancestor of the
 * others, a process back in the tree's namespace under a parent in its
 * own, and a user namespace for a process with threads or children (both
 * are made with clone3's set_tid, which needs a capability in the pid
 * namespace's user namespace, left behind once the process is in its own). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>

#include "base/base.h"
#include "kinds/kinds.h"
#include "restore/restore.h"
#include "target/target.h"

/* The types a restore makes again; the others were refused at dump. */
#define MADE                                                                               \
	((1u << IMG_NS_USER) | (1u << IMG_NS_UTS) | (1u << IMG_NS_NET) | (1u << IMG_NS_IPC) |     \
	 (1u << IMG_NS_TIME) | (1u << IMG_NS_PID) | (1u << IMG_NS_MNT))

static const int clone_flag[IMG_NS_NTYPES] = {
    [IMG_NS_USER] = CLONE_NEWUSER, [IMG_NS_UTS] = CLONE_NEWUTS, [IMG_NS_NET] = CLONE_NEWNET,
    [IMG_NS_IPC] = CLONE_NEWIPC, [IMG_NS_MNT] = CLONE_NEWNS};

/* The stream index of process k's parent, or -1 for the root. */
static long parent_of(struct img_input *in, size_t k)
{
	if (k == 0)
		return -1;
	for (size_t j = 0; j < k; j++)
		if (img_proc_at(in, j)->proc.pid == img_proc_at(in, k)->proc.ppid)
			return (long)j;
	return -1;
}

/* Process k's namespace of type t: its inode, 0 for the tree's. */
static uint64_t eff(struct img_input *in, long k, int t)
{
	const struct ns_rec *n = k < 0 ? NULL : img_proc_at(in, k)->ns;

	return n && (n->d.own & (1u << t)) ? n->d.ino[t] : 0;
}

/* Process k's cgroup path, NULL for the tree's. */
static const char *cg(struct img_input *in, long k)
{
	const struct ns_rec *n = k < 0 ? NULL : img_proc_at(in, k)->ns;

	return n && (n->d.flags & IMG_NSF_CGROUP) ? n->cgroup : NULL;
}

/* Where cgroup v2 is mounted (/sys/fs/cgroup where it is not found). */
static void cgroup_mount(char *buf, size_t size)
{
	char *s = read_file("/proc/self/mountinfo", NULL), *line;

	snprintf(buf, size, "/sys/fs/cgroup");
	for (line = s; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		char mnt[512], fstype[64];
		const char *dash = strstr(line, " - ");

		if (dash && sscanf(dash, " - %63s", fstype) == 1 && !strcmp(fstype, "cgroup2") &&
		    sscanf(line, "%*s %*s %*s %*s %511s", mnt) == 1) {
			snprintf(buf, size, "%s", mnt);
			break;
		}
	}
	free(s);
}

static char *procs_file(char *buf, size_t size, const char *path)
{
	char mnt[512];

	cgroup_mount(mnt, sizeof(mnt));
	return fmt_path(buf, size, "%s%s/cgroup.procs", mnt, strcmp(path, "/") ? path : "");
}

static uint32_t npids(struct img_input *in, long k)
{
	const struct ns_rec *n = k < 0 ? NULL : img_proc_at(in, k)->ns;

	return n ? n->d.npids : 0;
}

size_t rst_ns_pids(struct img_input *in, size_t k, pid_t *ids, uint64_t *newpid)
{
	const struct ns_rec *n = img_proc_at(in, k)->ns;
	size_t m = 0;

	for (uint32_t i = npids(in, (long)k); i > 0; i--)
		ids[m++] = n->pids[i - 1];
	ids[m++] = img_proc_at(in, k)->proc.pid;
	*newpid = eff(in, (long)k, IMG_NS_PID) != eff(in, parent_of(in, k), IMG_NS_PID)
		      ? CLONE_NEWPID
		      : 0;
	return m;
}

/* Whether process k's group is the one it has when it is made: it leads
 * it, is the root (which is made in ckpt-remap's), or is in its parent's,
 * which its parent had when it forked it. */
static int group_at_fork(struct img_input *in, long k)
{
	const struct img_proc *p = &img_proc_at(in, k)->proc;
	long par = parent_of(in, k);

	if (k == 0 || p->pgid == p->pid)
		return 1;
	return par >= 0 && img_proc_at(in, par)->proc.pgid == p->pgid && group_at_fork(in, par);
}

int rst_ns_inherits_group(struct img_input *in, size_t k)
{
	const struct img_proc *p = &img_proc_at(in, k)->proc;

	return npids(in, (long)k) && p->pgid != p->pid;
}

/* A pid namespace below the tree's is made by clone3 (CLONE_NEWPID) for
 * its first process, its init, one level below its parent's; the others
 * are in their parent's.  In one, a process cannot name a group whose
 * leader is outside: it must be in the group it inherits. */
static int check_pids(struct img_input *in, size_t k)
{
	const struct image *im = img_proc_at(in, k);
	long par = parent_of(in, k);
	uint32_t mine = npids(in, (long)k), theirs = npids(in, par);
	pid_t pid = im->proc.pid;

	if (im->proc.flags & IMG_PROC_ZOMBIE) {
		if (theirs) {
			err_set("pid %d: a zombie in a pid namespace below the tree's; not supported",
				pid);
			return -1;
		}
		return 0;
	}
	if (k == 0 ? mine != 0
		   : eff(in, (long)k, IMG_NS_PID) != eff(in, par, IMG_NS_PID)
		   ? !mine || mine != theirs + 1 || im->ns->pids[mine - 1] != 1
		   : mine != theirs) {
		err_set("pid %d: its pid namespace is not its parent's or the init's (pid 1) of one "
			"below it; not supported",
			pid);
		return -1;
	}
	if (mine && !group_at_fork(in, (long)k)) {
		err_set("pid %d: in a pid namespace below the tree's and in process group %d, "
			"neither its own nor the one it is made in; not supported",
			pid, im->proc.pgid);
		return -1;
	}
	return 0;
}

static int has_children(struct img_input *in, size_t k)
{
	for (size_t j = k + 1; j <= in->nrest; j++)
		if (img_proc_at(in, j)->proc.ppid == img_proc_at(in, k)->proc.pid)
			return 1;
	return 0;
}

static int check_type(struct img_input *in, size_t k, int t, int userns)
{
	const struct image *im = img_proc_at(in, k);
	long par = parent_of(in, k);
	uint64_t mine = eff(in, k, t), theirs = eff(in, par, t);
	pid_t pid = im->proc.pid;

	if (!mine && theirs) {
		err_set("pid %d: in the %s namespace the tree started in, while its parent %d is "
			"not; not supported",
			pid, img_ns_name(t), im->proc.ppid);
		return -1;
	}
	if (mine == theirs)
		return 0;
	for (size_t j = 0; j < k; j++)
		if (!(img_proc_at(in, j)->proc.flags & IMG_PROC_ZOMBIE) && eff(in, j, t) == mine &&
		    eff(in, parent_of(in, j), t) != mine) {
			err_set("pid %d: shares its %s namespace with pid %d but not with its "
				"parent; not supported",
				pid, img_ns_name(t), img_proc_at(in, j)->proc.pid);
			return -1;
		}
	if (t == IMG_NS_USER && (im->nthreads > 1 || has_children(in, k))) {
		err_set("pid %d: its user namespace is its own and it has %s; not supported", pid,
			im->nthreads > 1 ? "threads" : "children in the tree");
		return -1;
	}
	if (t != IMG_NS_USER && !eff(in, k, IMG_NS_USER) && !userns && !has_cap(CAP_SYS_ADMIN)) {
		err_set("pid %d: making its %s namespace needs CAP_SYS_ADMIN (ckpt-remap --pid-ns "
			"makes it in a user namespace)",
			pid, img_ns_name(t));
		return -1;
	}
	return 0;
}

/* Whether process k must move into its cgroup: it is not the one it
 * inherits (its parent's, or for a process whose parent was in the tree's,
 * ckpt-remap's own). */
static int cg_moves(struct img_input *in, size_t k)
{
	const char *mine = cg(in, k), *theirs = cg(in, parent_of(in, k));
	char *here;
	int moves;

	if (!mine)
		return 0;
	if (theirs)
		return strcmp(mine, theirs) != 0;
	here = proc_read_cgroup(0);
	moves = !here || strcmp(mine, here) != 0;
	free(here);
	return moves;
}

static int check_cgroup(struct img_input *in, size_t k)
{
	const char *mine = cg(in, k);
	pid_t pid = img_proc_at(in, k)->proc.pid;
	char path[PATH_MAX];

	if (!mine && cg(in, parent_of(in, k))) {
		err_set("pid %d: in the cgroup the tree started in, while its parent %d is not; "
			"not supported",
			pid, img_proc_at(in, k)->proc.ppid);
		return -1;
	}
	if (cg_moves(in, k) && access(procs_file(path, sizeof(path), mine), W_OK)) {
		err_set("pid %d: cannot move it into cgroup %s: %s", pid, mine,
			errno == ENOENT ? "no such cgroup here" : strerror(errno));
		return -1;
	}
	return 0;
}

/* A socket is made before the tree is forked, in ckpt-remap's net namespace. */
static int check_sockets(struct img_input *in, size_t k)
{
	const struct image *im = img_proc_at(in, k);

	if (!in->nrest || !eff(in, k, IMG_NS_NET))
		return 0;
	for (size_t i = 0; i < im->nfiles; i++)
		if (im->files[i].d.kind == IMG_FD_SOCK) {
			err_set("pid %d: fd %d: a socket in a net namespace of its own, in a tree; "
				"not supported",
				im->proc.pid, im->files[i].d.fd);
			return -1;
		}
	return 0;
}

/* A proc in process k's new mount namespace shows a pid namespace that a
 * process of it mounts again: k's own, or one whose init it forks. */
static int check_procs(struct img_input *in, size_t k)
{
	const struct ns_rec *n = img_proc_at(in, k)->ns;
	uint64_t mnt = eff(in, (long)k, IMG_NS_MNT);

	if (!mnt || mnt == eff(in, parent_of(in, k), IMG_NS_MNT))
		return 0;
	for (size_t i = 0; i < n->nmounts; i++) {
		int found = n->mounts[i].d.op != IMG_MNT_PROC;

		for (size_t j = k; j <= in->nrest && !found; j++) {
			const struct image *o = img_proc_at(in, j);

			found = o->ns && eff(in, (long)j, IMG_NS_MNT) == mnt &&
				o->ns->d.ino[IMG_NS_PID] == n->mounts[i].d.pidns &&
				!(o->proc.flags & IMG_PROC_ZOMBIE) &&
				(j == k || eff(in, (long)j, IMG_NS_PID) !=
					       eff(in, parent_of(in, j), IMG_NS_PID));
		}
		if (!found) {
			err_set("pid %d: its proc on %s shows a pid namespace no process of the "
				"tree in its mount namespace made; not supported",
				img_proc_at(in, k)->proc.pid, n->mounts[i].path);
			return -1;
		}
	}
	return 0;
}

const struct mnt_step *rst_ns_late_proc(struct img_input *in, size_t k)
{
	const struct ns_rec *n = img_proc_at(in, k)->ns;
	long par = parent_of(in, k);

	if (!n || !eff(in, (long)k, IMG_NS_MNT) ||
	    eff(in, (long)k, IMG_NS_MNT) != eff(in, par, IMG_NS_MNT) ||
	    eff(in, (long)k, IMG_NS_PID) == eff(in, par, IMG_NS_PID))
		return NULL;
	for (size_t i = 0; i < n->nmounts; i++)
		if (n->mounts[i].d.op == IMG_MNT_PROC && n->mounts[i].d.pidns == n->d.ino[IMG_NS_PID])
			return &n->mounts[i];
	return NULL;
}

int rst_ns_check(struct img_input *in, int userns)
{
	for (size_t k = 0; k <= in->nrest; k++) {
		const struct image *im = img_proc_at(in, k);

		if (im->proc.flags & IMG_PROC_ZOMBIE)
			continue;
		if (im->ns && (im->ns->d.own & ~MADE)) {
			for (int t = 0; t < IMG_NS_NTYPES; t++)
				if (im->ns->d.own & ~MADE & (1u << t)) {
					err_set("pid %d: the image gives it a %s namespace of its own; not supported",
						im->proc.pid, img_ns_name(t));
					return -1;
				}
		}
		for (int t = 0; t < IMG_NS_NTYPES; t++)
			if ((MADE & (1u << t)) && check_type(in, k, t, userns))
				return -1;
		if (check_cgroup(in, k) || check_sockets(in, k) || check_procs(in, k))
			return -1;
	}
	for (size_t k = 0; k <= in->nrest; k++) {
		if (check_pids(in, k))
			return -1;
	}
	return 0;
}

static int write_file(pid_t pid, const char *path, const char *s, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, s, len) != (ssize_t)len) {
		err_sys("pid %d: cannot write %s", pid, path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int make_user(pid_t pid, const struct ns_rec *n)
{
	if (unshare(CLONE_NEWUSER)) {
		err_sys("pid %d: cannot make its user namespace", pid);
		return -1;
	}
	/* setgroups before gid_map: an unprivileged map needs "deny". */
	if (!(n->d.flags & IMG_NSF_SETGROUPS) &&
	    write_file(pid, "/proc/self/setgroups", "deny", 4))
		return -1;
	/* Each map in one write, as the kernel takes it. */
	return write_file(pid, "/proc/self/uid_map", n->uid_map, n->d.uid_map_len) ||
			       write_file(pid, "/proc/self/gid_map", n->gid_map, n->d.gid_map_len)
		   ? -1
		   : 0;
}

/* The offsets its new time namespace gets.  On the machine and boot
 * that wrote the image, the recorded ones: its clocks then count the
 * time it was not running, as every other clock here does.  Elsewhere
 * (another boot: CLOCK_MONOTONIC and CLOCK_BOOTTIME started again from
 * 0) offsets that make each clock go on from where it stood at the dump,
 * never back. */
static int time_offsets(pid_t pid, const struct img_timens *t, int64_t sec[2], int64_t nsec[2])
{
	uint8_t here[16];

	if (proc_boot_id(here) == 0 && !memcmp(here, t->boot_id, sizeof(here))) {
		memcpy(sec, t->off_sec, 2 * sizeof(*sec));
		memcpy(nsec, t->off_nsec, 2 * sizeof(*nsec));
		return 0;
	}
	for (int k = 0; k < 2; k++) {
		int64_t h = host_clock_ns(k ? CLOCK_BOOTTIME : CLOCK_MONOTONIC), d;

		if (h < 0) {
			err_sys("pid %d: cannot read the clocks for its time namespace", pid);
			return -1;
		}
		d = t->clock_ns[k] - h;
		sec[k] = d / 1000000000;
		nsec[k] = d % 1000000000;
		if (nsec[k] < 0) {
			nsec[k] += 1000000000;
			sec[k]--;
		}
	}
	return 0;
}

/* A new time namespace with its offsets, entered: the offsets can be
 * written only before a process is in it, and a process enters one only
 * by setns (or by fork after unshare), alone in its memory. */
static int make_time(pid_t pid, const struct img_timens *t)
{
	int64_t sec[2], nsec[2];
	char buf[128];
	int fd;

	if (time_offsets(pid, t, sec, nsec))
		return -1;
	if (unshare(CLONE_NEWTIME)) {
		err_sys("pid %d: cannot make its time namespace", pid);
		return -1;
	}
	snprintf(buf, sizeof(buf), "monotonic %lld %lld\nboottime %lld %lld\n", (long long)sec[0],
		 (long long)nsec[0], (long long)sec[1], (long long)nsec[1]);
	if (write_file(pid, "/proc/self/timens_offsets", buf, strlen(buf)))
		return -1;
	if (t->flags & IMG_TIMENS_CHILDREN)
		return 0; /* its children's, as it was */
	fd = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWTIME)) {
		err_sys("pid %d: cannot enter its new time namespace", pid);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* lo up in this process's net namespace; -1 with errno. */
static int lo_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1, e;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		rc = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	e = errno;
	if (s >= 0)
		close(s);
	errno = e;
	return rc;
}

int rst_net_ns_check(struct img_input *in)
{
	for (size_t k = 0; k <= in->nrest; k++) {
		const struct image *im = img_proc_at(in, k);

		if (im->proc.flags & IMG_PROC_ZOMBIE)
			continue;
		for (size_t i = 0; i < im->nfiles; i++)
			if (fd_net_ns_check(im->proc.pid, &im->files[i]))
				return -1;
	}
	return 0;
}

int rst_net_ns_enter(void)
{
	if (unshare(CLONE_NEWNET)) {
		err_sys("--net-ns: cannot make a net namespace");
		return -1;
	}
	if (lo_up()) {
		err_sys("--net-ns: cannot bring lo up in the new net namespace");
		return -1;
	}
	return 0;
}

int rst_ns_enter(struct img_input *in, size_t k)
{
	const struct image *im = img_proc_at(in, k);
	const struct ns_rec *n = im->ns;
	long par = parent_of(in, k);
	pid_t pid = im->proc.pid;
	char path[PATH_MAX];
	int flags = 0;

	if (!n)
		return 0;
	if (eff(in, k, IMG_NS_USER) != eff(in, par, IMG_NS_USER) && make_user(pid, n))
		return -1;
	for (int t = 0; t < IMG_NS_NTYPES; t++)
		if (clone_flag[t] && t != IMG_NS_USER && eff(in, k, t) != eff(in, par, t))
			flags |= clone_flag[t];
	if (flags && unshare(flags)) {
		err_sys("pid %d: cannot make its namespaces", pid);
		return -1;
	}
	if ((flags & CLONE_NEWUTS) &&
	    (sethostname(n->d.hostname, strlen(n->d.hostname)) ||
	     setdomainname(n->d.domainname, strlen(n->d.domainname)))) {
		err_sys("pid %d: cannot set its hostname %s", pid, n->d.hostname);
		return -1;
	}
	if ((flags & CLONE_NEWNET) && (n->d.flags & IMG_NSF_LO_UP) && lo_up()) {
		err_sys("pid %d: cannot bring lo up in its new net namespace", pid);
		return -1;
	}
	if (eff(in, k, IMG_NS_TIME) != eff(in, par, IMG_NS_TIME) && make_time(pid, n->timens))
		return -1;
	if ((flags & CLONE_NEWNS) && rst_mnt_make(pid, n, n->d.ino[IMG_NS_PID]))
		return -1;
	if (cg_moves(in, k) &&
	    write_file(pid, procs_file(path, sizeof(path), cg(in, k)), "0", 1))
		return -1;
	return 0;
}
