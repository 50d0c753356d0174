/* pidfd.c: pidfds (pidfd_open, clone CLONE_PIDFD): of the process itself, of another process
 * of the tree, of a process that exited; opened again with their flags (PIDFD_NONBLOCK). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

/* The flags pidfd_open takes that fdinfo shows: PIDFD_NONBLOCK is
 * O_NONBLOCK, PIDFD_THREAD (Linux 6.9) is O_EXCL. */
#define PIDFD_FLAGS (O_NONBLOCK | O_EXCL)

/* PIDFD_GET_INFO (Linux 6.13; the exit status, PIDFD_INFO_EXIT, 6.15):
 * the first fields of struct pidfd_info, which the kernel fills as far as
 * the size in the request number says. */
struct pidfd_info {
	uint64_t mask, cgroupid;
	uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
	int32_t exit_code;
	uint32_t coredump_mask, spare;
};
#define PIDFD_GET_INFO_REQ _IOWR(0xFF, 11, struct pidfd_info)
#define PIDFD_INFO_EXIT_BIT (1ull << 3)

/* The wait status of the reaped process fd of pid is a pidfd of, where
 * the kernel tells it. */
static void exit_status(const struct fd_source *src, int fd, struct img_pidfd *p)
{
	struct pidfd_info i = {.mask = PIDFD_INFO_EXIT_BIT};
	int dup = fd_getfd(src->pid, fd);

	if (dup < 0)
		return; /* no status then: the pidfd itself is what counts */
	if (ioctl(dup, PIDFD_GET_INFO_REQ, &i) == 0 && (i.mask & PIDFD_INFO_EXIT_BIT)) {
		p->status = i.exit_code;
		p->flags |= IMG_PIDFD_STATUS;
	}
	close(dup);
}

/* fdinfo's "Pid:" is the pid in the dumper's pid namespace (that of its
 * /proc), -1 once the process was reaped, 0 when it is in a namespace
 * the dumper does not see.  A live process other than the dumped one
 * stays TREE until the join knows whether the tree has it. */
static int capture_pidfd(const struct fd_source *src, struct fd_entry *f)
{
	struct img_pidfd p = {0};
	const char *v = fd_info_field(src->info, "Pid");

	if (!v) {
		err_set("pid %d: fd %d: no Pid in its pidfd's fdinfo", src->pid, f->d.fd);
		return -1;
	}
	p.pid = atoi(v);
	if (p.pid == 0) {
		err_set("pid %d: fd %d is a pidfd of a process in another pid namespace; "
			"not supported",
			src->pid, f->d.fd);
		return -1;
	}
	p.what = p.pid == src->pid ? IMG_PIDFD_SELF : p.pid < 0 ? IMG_PIDFD_EXITED : IMG_PIDFD_TREE;
	if (p.pid < 0) {
		p.pid = -1;
		exit_status(src, f->d.fd, &p);
	}
	return fd_set_extra(f, &p, sizeof(p), NULL, 0);
}

static int in_tree(const struct fd_all *a, pid_t pid)
{
	for (size_t k = 0; k < a->nprocs; k++)
		if (a->procs[k] == pid)
			return 1;
	return 0;
}

/* A pidfd of a live process must be of one the image brings back. */
static int join_pidfd(struct fd_all *a)
{
	for (size_t i = 0; i < a->n; i++) {
		const struct fd_entry *f = a->f[i];
		struct img_pidfd p;

		if (f->d.kind != IMG_FD_PIDFD)
			continue;
		memcpy(&p, f->extra, sizeof(p));
		if (p.what == IMG_PIDFD_TREE && !in_tree(a, p.pid)) {
			err_set("pid %d: fd %d is a pidfd of pid %d, a live process outside the "
				"dumped tree; not supported",
				a->pid[i], f->d.fd, p.pid);
			return -1;
		}
	}
	return 0;
}

static int check_pidfd(const unsigned char *x, uint32_t n)
{
	struct img_pidfd p;

	if (n != sizeof(p))
		return -1;
	memcpy(&p, x, sizeof(p));
	if ((p.flags & ~IMG_PIDFD_STATUS) || (!(p.flags & IMG_PIDFD_STATUS) && p.status))
		return -1;
	switch (p.what) {
	case IMG_PIDFD_SELF:
	case IMG_PIDFD_TREE:
		return p.pid > 0 && !p.flags ? 0 : -1;
	case IMG_PIDFD_EXITED:
		return p.pid == -1 ? 0 : -1;
	}
	return -1;
}

/* A child that ends with wait status st: its exit code, or the signal
 * it was killed by (without a core: what it would dump is not the
 * original's). */
static _Noreturn void end_as(int st)
{
	if (WIFSIGNALED(st)) {
		struct rlimit none = {0, 0};
		sigset_t set;

		setrlimit(RLIMIT_CORE, &none);
		signal(WTERMSIG(st), SIG_DFL);
		sigemptyset(&set);
		sigaddset(&set, WTERMSIG(st));
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		kill(getpid(), WTERMSIG(st));
	}
	_exit(WEXITSTATUS(st));
}

/* A pidfd of a process that exited and was reaped: one of a child of
 * ours that exits as the original did (its status, where the image has
 * it), reaped before the pidfd is handed on.  It polls readable (and hung
 * up), pidfd_send_signal fails with ESRCH and waitid(P_PIDFD) with
 * ECHILD, as the original's did; PIDFD_GET_INFO tells the status.  The
 * child waits for its pidfd to be open, so that the kernel keeps its
 * status for it. */
static int exited_pidfd(unsigned flags, const struct img_pidfd *p)
{
	int go[2], fd, st;
	pid_t child;
	char c;

	if (pipe2(go, O_CLOEXEC))
		return -1;
	if ((child = fork()) < 0) {
		close(go[0]);
		close(go[1]);
		return -1;
	}
	if (child == 0) {
		close(go[1]);
		if (read(go[0], &c, 1) < 0)
			_exit(127);
		end_as((p->flags & IMG_PIDFD_STATUS) ? p->status : 0);
	}
	close(go[0]);
	fd = syscall(SYS_pidfd_open, child, flags);
	close(go[1]);
	while (waitpid(child, &st, 0) < 0 && errno == EINTR)
		;
	return fd;
}

static int make_pidfd(const struct fd_entry *f, struct fd_pipes *pipes)
{
	unsigned flags = f->d.flags & PIDFD_FLAGS;
	struct img_pidfd p;
	int fd;

	(void)pipes;
	memcpy(&p, f->extra, sizeof(p));
	/* Made by each process itself once the tree exists (fd_in_process):
	 * its own pid is its own now, and a process of the tree has the pid
	 * it had (a tree keeps its pids). */
	if (p.what == IMG_PIDFD_EXITED)
		fd = exited_pidfd(flags, &p);
	else
		fd = syscall(SYS_pidfd_open, p.what == IMG_PIDFD_SELF ? getpid() : p.pid, flags);
	if (fd < 0) {
		err_sys("fd %d: cannot open a pidfd of %s %d again", f->d.fd,
			p.what == IMG_PIDFD_SELF ? "itself, pid" : "pid", (int)p.pid);
		return -1;
	}
	return fd;
}

pid_t fd_own_needs(const struct fd_entry *f)
{
	struct img_pidfd p;

	if (f->d.kind == IMG_FD_REG || f->d.kind == IMG_FD_DIR)
		return fd_proc_pid(f->path);
	if (f->d.kind != IMG_FD_PIDFD)
		return 0;
	memcpy(&p, f->extra, sizeof(p));
	return p.what == IMG_PIDFD_TREE ? p.pid : 0;
}

void fd_map_pids(struct image *im, pid_t (*map)(void *arg, pid_t pid), void *arg)
{
	for (size_t i = 0; i < im->nfiles; i++) {
		struct fd_entry *f = &im->files[i];
		struct img_pidfd p;

		if (f->d.kind != IMG_FD_PIDFD || f->d.extra_len < sizeof(p))
			continue;
		memcpy(&p, f->extra, sizeof(p));
		if (p.pid > 0)
			p.pid = map(arg, p.pid);
		memcpy(f->extra, &p, sizeof(p));
	}
}

static void show_pidfd(FILE *out, const struct fd_entry *f, int json)
{
	static const char *const what[] = {"?", "self", "tree", "exited"};
	struct img_pidfd p;

	memcpy(&p, f->extra, sizeof(p));
	fprintf(out, json ? ",\"of\":\"%s\",\"pid\":%d" : " of %s pid %d", what[p.what], p.pid);
	if (p.flags & IMG_PIDFD_STATUS)
		fprintf(out, json ? ",\"status\":%d" : " status %#x", p.status);
}

const struct fd_ops fd_pidfd_ops = {
    .name = "pidfd",
    .anon = "anon_inode:[pidfd]",
    .capture = capture_pidfd,
    .join = join_pidfd,
    .check = check_pidfd,
    .make = make_pidfd,
    .show = show_pidfd,
};
