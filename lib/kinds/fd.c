/* fd.c: a process's open files: the table of fd kinds, and the steps that go through it (capture
 * from /proc, the tree's joins, the check of an image's FILE records, make, show). */
#include <fcntl.h>
#include <netinet/tcp.h> /* TCP_ESTABLISHED: sock_diag says it of unix sockets too */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"
#include "target/target.h"

/* Indexed by the image's kind number (IMG_FD_*); numbers no kind has yet
 * are NULL. */
static const struct fd_ops *const kinds[IMG_FD_NKINDS] = {
    [IMG_FD_REG] = &fd_file_ops,	  [IMG_FD_DIR] = &fd_dir_ops,
    [IMG_FD_CHR] = &fd_chr_ops,		  [IMG_FD_INHERIT] = &fd_inherit_ops,
    [IMG_FD_PIPE] = &fd_pipe_ops,	  [IMG_FD_EVENTFD] = &fd_eventfd_ops,
    [IMG_FD_SIGNALFD] = &fd_signalfd_ops, [IMG_FD_TIMERFD] = &fd_timerfd_ops,
    [IMG_FD_EPOLL] = &fd_epoll_ops,	  [IMG_FD_FIFO] = &fd_fifo_ops,
    [IMG_FD_UNIX] = &fd_unix_ops,	  [IMG_FD_INOTIFY] = &fd_inotify_ops,
    [IMG_FD_TTY] = &fd_tty_ops,		  [IMG_FD_SHM] = &fd_shm_ops,
    [IMG_FD_SOCK] = &fd_sock_ops,	  [IMG_FD_OPATH] = &fd_opath_ops,
    [IMG_FD_TCP] = &fd_tcp_ops,		  [IMG_FD_NETLINK] = &fd_netlink_ops,
    [IMG_FD_DELDIR] = &fd_deleted_ops,	  [IMG_FD_PIDFD] = &fd_pidfd_ops,
    [IMG_FD_NSFILE] = &fd_nsfile_ops,	  [IMG_FD_MQUEUE] = &fd_mqueue_ops,
    [IMG_FD_URING] = &fd_uring_ops,
    [IMG_FD_PEER] = &fd_peer_ops,
};

const struct fd_ops *fd_ops_of(uint32_t kind)
{
	return kind < IMG_FD_NKINDS ? kinds[kind] : NULL;
}

const char *fd_kind_name(uint32_t kind)
{
	const struct fd_ops *o = fd_ops_of(kind);

	return o ? o->name : "?";
}

/* ---- capturing -------------------------------------------------------- */

int fd_set_extra(struct fd_entry *f, const void *a, size_t alen, const void *b, size_t blen)
{
	f->extra = malloc(alen + blen + 1);
	if (!f->extra) {
		err_set("out of memory");
		return -1;
	}
	memcpy(f->extra, a, alen);
	if (blen)
		memcpy(f->extra + alen, b, blen);
	f->d.extra_len = alen + blen;
	return 0;
}

const char *fd_info_field(const char *info, const char *name)
{
	const char *p = info;
	size_t n = strlen(name);

	while ((p = strstr(p, name))) {
		if ((p == info || p[-1] == '\n') && p[n] == ':')
			return p + n + 1;
		p += n;
	}
	return NULL;
}

/* A duplicate of the target's fd: pidfd_getfd (Linux 5.6) needs the
 * ptrace access the dumper has.  Sockets and ttys cannot be reopened
 * through /proc/PID/fd. */
int fd_getfd(pid_t pid, int fd)
{
	int pidfd = syscall(SYS_pidfd_open, pid, 0), nfd = -1;

	if (pidfd >= 0) {
		nfd = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
		close(pidfd);
	}
	if (nfd < 0)
		err_sys("pid %d: fd %d: cannot get a duplicate with pidfd_getfd", pid, fd);
	return nfd;
}

/* A file reopened by its path, or one whose contents the image keeps:
 * deleted files and memfds (shm.c). */
static uint32_t path_kind(const struct fd_source *src, int fd)
{
	const struct stat *sb = src->sb;
	const char *link = src->link;
	size_t l = strlen(link);
	int gone = sb->st_nlink == 0 || (l > 10 && !strcmp(link + l - 10, " (deleted)"));

	if (gone && (S_ISDIR(sb->st_mode) || S_ISFIFO(sb->st_mode)))
		return IMG_FD_DELDIR;
	if (S_ISREG(sb->st_mode) || S_ISDIR(sb->st_mode)) {
		if (gone)
			return IMG_FD_SHM;
		return S_ISREG(sb->st_mode) ? IMG_FD_REG : IMG_FD_DIR;
	}
	if (S_ISFIFO(sb->st_mode))
		return IMG_FD_FIFO;
	if (S_ISCHR(sb->st_mode) && major(sb->st_rdev) == 1)
		return IMG_FD_CHR; /* /dev/null, zero, full, random, urandom */
	err_set("pid %d: fd %d is %s (mode %o); this kind of file is not supported yet", src->pid,
		fd, link, sb->st_mode & S_IFMT);
	return 0;
}

/* An anonymous inode: its link names the kind, and its fdinfo (left in
 * src->info) is what the kind keeps. */
static uint32_t anon_kind(struct fd_source *src, int fd)
{
	char path[64];

	src->info =
	    read_file(fmt_path(path, sizeof(path), "/proc/%d/fdinfo/%d", src->pid, fd), NULL);
	if (!src->info)
		return 0;
	for (uint32_t k = 1; k < IMG_FD_NKINDS; k++)
		if (kinds[k] && kinds[k]->anon && !strcmp(src->link, kinds[k]->anon))
			return k;
	err_set("pid %d: fd %d is %s; this kind of file is not supported yet", src->pid, fd,
		src->link);
	return 0;
}

/* A socket on fd 0, 1 or 2: IMG_FD_UNIX for a unix connection with a
 * peer (join_unix makes it IMG_FD_INHERIT when that peer is not in the
 * tree), else IMG_FD_INHERIT. */
static uint32_t std_socket_kind(const struct fd_source *src)
{
	struct fd_diag d;

	if (!strncmp(src->link, "socket:", 7) && !fd_unix_diag(src->sb->st_ino, &d) &&
	    d.peer && d.state == TCP_ESTABLISHED)
		return IMG_FD_UNIX;
	return IMG_FD_INHERIT;
}

/* Which kind fd is; 0, naming it, for a file no kind can capture. */
static uint32_t kind_of(struct fd_source *src, int fd, unsigned flags)
{
	if (flags & O_PATH)
		return IMG_FD_OPATH; /* whatever it leads to: nothing is open */
	if (fd_is_tty(src->sb))
		return IMG_FD_TTY;
	/* A socket on a standard stream is the restoring process's then,
	 * unless it is a unix connection, which may join two processes of
	 * the tree (MPICH's launcher talks to its proxies over their
	 * stdin), as a pipe there may: fd_check_tree decides.  A named
	 * FIFO is reopened by its path, as on any fd: whoever writes into
	 * it (sqlite3 < fifo) still does after a restore. */
	if (fd <= 2 && S_ISSOCK(src->sb->st_mode))
		return std_socket_kind(src);
	if (src->link[0] == '/' && S_ISREG(src->sb->st_mode) && fd_is_mqueue(src->pid, fd))
		return IMG_FD_MQUEUE;
	if (src->link[0] == '/')
		return path_kind(src, fd);
	/* An end the coordinator paired with another member's. */
	if ((!strncmp(src->link, "pipe:", 5) || !strncmp(src->link, "socket:", 7)) &&
	    fd_peer_is(src))
		return IMG_FD_PEER;
	if (!strncmp(src->link, "pipe:", 5))
		return IMG_FD_PIPE;
	if (!strncmp(src->link, "socket:", 7))
		return fd_sock_kind(src, fd);
	if (fd_is_nsfile(src->link))
		return IMG_FD_NSFILE;
	return anon_kind(src, fd);
}

/* What /proc says of every fd, whatever its kind. */
static void fill_entry(struct fd_entry *f, int fd, const struct proc_fdinfo *fi,
		       const struct stat *sb)
{
	f->d.fd = fd;
	f->d.flags = fi->flags;
	f->d.fdflags = (fi->flags & O_CLOEXEC) ? FD_CLOEXEC : 0;
	f->d.pos = fi->pos;
	f->d.dev = sb->st_dev;
	f->d.ino = sb->st_ino;
	f->d.size = sb->st_size;
	f->d.mtime_sec = sb->st_mtim.tv_sec;
	f->d.mtime_nsec = sb->st_mtim.tv_nsec;
	f->d.mode = sb->st_mode;
}

/* fd into the next entry of im->files: its kind, and what the kind keeps;
 * the fds the messages queued on it carry into fl. */
static int capture_one(pid_t pid, int fd, struct image *im, uint32_t opts, struct fd_flight *fl)
{
	struct fd_entry *f = &im->files[im->nfiles];
	struct stat sb;
	struct fd_source src = {.pid = pid, .sb = &sb, .opts = opts, .flight = fl};
	const struct fd_ops *o;
	struct proc_fdinfo fi;
	char what[32], path[64];
	int rc = -1;

	snprintf(what, sizeof(what), "fd/%d", fd);
	if (!(f->path = proc_readlink(pid, what)))
		return -1;
	src.link = f->path;
	im->nfiles++;
	if (stat(fmt_path(path, sizeof(path), "/proc/%d/fd/%d", pid, fd), &sb) ||
	    proc_read_fdinfo(pid, fd, &fi)) {
		err_sys("pid %d: fd %d (%s): cannot stat", pid, fd, f->path);
		return -1;
	}
	fill_entry(f, fd, &fi, &sb);
	f->d.kind = kind_of(&src, fd, f->d.flags);
	o = fd_ops_of(f->d.kind);
	if ((opts & FD_OPT_INFLIGHT) && o && !fd_flight_kind(f->d.kind))
		err_set("%s (%s), a kind not taken in flight", o->name, f->path);
	else if (o && (!o->capture || !o->capture(&src, f)))
		rc = 0;
	free((char *)src.info);
	f->d.path_len = strlen(f->path);
	return rc;
}

/* The files in flight of fl, captured from the dumper's copies as FILE
 * records marked -1 - the copy's fd (scm.c), put before the process's
 * own: a restore makes them first, for the queues that pass them. */
static int capture_flight(pid_t pid, struct image *im, uint32_t opts, struct fd_flight *fl)
{
	struct fd_entry *nf;
	size_t own = im->nfiles;

	if (!fl->n)
		return 0;
	if (!(nf = realloc(im->files, (own + fl->n + 1) * sizeof(*nf)))) {
		err_set("out of memory");
		return -1;
	}
	im->files = nf;
	memset(nf + own, 0, (fl->n + 1) * sizeof(*nf));
	for (size_t i = 0; i < fl->n; i++) {
		if (capture_one(getpid(), fl->fd[i], im, opts | FD_OPT_INFLIGHT, NULL)) {
			char why[1024];
			const char *link = "?";
			snprintf(why, sizeof(why), "%s", err_get());
			for (size_t k = 0; k < own; k++)
				if (im->files[k].d.fd == fl->from[i])
					link = im->files[k].path;
			err_set("pid %d: fd %d (%s): a message queued on it (SCM_RIGHTS) carries "
				"%s; not supported",
				pid, fl->from[i], link, why);
			return -1;
		}
		im->files[im->nfiles - 1].d.fd = -1 - fl->fd[i];
	}
	/* In flight first, each part in its order. */
	if (!(nf = malloc((im->nfiles + 1) * sizeof(*nf)))) {
		err_set("out of memory");
		return -1;
	}
	memcpy(nf, im->files + own, fl->n * sizeof(*nf));
	memcpy(nf + fl->n, im->files, own * sizeof(*nf));
	memset(nf + im->nfiles, 0, sizeof(*nf));
	free(im->files);
	im->files = nf;
	return 0;
}

int fd_capture(pid_t pid, struct image *im, uint32_t opts)
{
	struct fd_flight fl = {0};
	int *fds, rc = 0;
	size_t n;

	if (proc_list_fds(pid, &fds, &n))
		return -1;
	im->files = calloc(n + 1, sizeof(*im->files));
	if (!im->files) {
		free(fds);
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		if ((im->track && fds[i] == im->track->fd) || /* ckpt-dump --track's */
		    (im->live && fds[i] == im->live->tracker)) /* --live's */
			continue;
		fl.cur = fds[i];
		rc = capture_one(pid, fds[i], im, opts, &fl);
	}
	free(fds);
	if (!rc)
		rc = capture_flight(pid, im, opts, &fl);
	/* The dumper's copies stay open for fd_check_tree, unless failed. */
	if (rc)
		for (size_t i = 0; i < fl.n; i++)
			close(fl.fd[i]);
	free(fl.fd);
	free(fl.from);
	if (rc)
		return -1;
	im->proc.nfiles = im->nfiles;
	return 0;
}

/* ---- a tree's fds, joined ------------------------------------------- */

static int all_fds(struct image *ims[], size_t nims, struct fd_all *a)
{
	size_t total = 0;

	for (size_t k = 0; k < nims; k++)
		total += ims[k]->nfiles;
	a->n = 0;
	a->f = calloc(total + 1, sizeof(*a->f));
	a->pid = calloc(total + nims + 1, sizeof(*a->pid));
	if (!a->f || !a->pid) {
		free(a->f);
		free(a->pid);
		err_set("out of memory");
		return -1;
	}
	/* The processes' own pids after the fds' (a zombie has no fds). */
	a->procs = a->pid + total;
	a->nprocs = nims;
	for (size_t k = 0; k < nims; k++)
		a->pid[total + k] = ims[k]->proc.pid;
	for (size_t k = 0; k < nims; k++)
		for (size_t i = 0; i < ims[k]->nfiles; i++) {
			a->f[a->n] = &ims[k]->files[i];
			a->pid[a->n++] = ims[k]->proc.pid;
		}
	return 0;
}

int fd_buf_put(struct fd_buf *q, const void *p, size_t n)
{
	if (q->len + n > q->cap) {
		size_t cap = q->cap ? q->cap : 4096;
		unsigned char *nb;

		while (cap < q->len + n)
			cap *= 2;
		if (!(nb = realloc(q->b, cap))) {
			err_set("out of memory");
			return -1;
		}
		q->b = nb;
		q->cap = cap;
	}
	memcpy(q->b + q->len, p, n);
	q->len += n;
	return 0;
}

void fd_drop_data(struct fd_entry *f, size_t fixed)
{
	f->d.extra_len = fixed;
}

#ifndef KCMP_FILE
#define KCMP_FILE 0
#endif

/* Whether fd a of pid p and fd b of pid q are one open file description. */
static int same_desc(pid_t p, int a, pid_t q, int b)
{
	return syscall(SYS_kcmp, p, q, KCMP_FILE, a, b) == 0;
}

/* The order share_descs sorts by: inode and kind first (no kcmp needed),
 * then, within an inode, the open file description itself: kcmp(2)'s
 * KCMP_FILE orders the kernel's file pointers (1 less, 2 greater), the same
 * order for every pair.  A pair it cannot order (-1, or 3) marks the sort
 * unordered, and share_descs compares that inode's fds pair by pair. */
struct desc_sort {
	struct fd_all *a;
	int unordered;
};

static int by_inode(const struct fd_entry *f, const struct fd_entry *g)
{
	if (f->d.dev != g->d.dev)
		return f->d.dev < g->d.dev ? -1 : 1;
	if (f->d.ino != g->d.ino)
		return f->d.ino < g->d.ino ? -1 : 1;
	if (f->d.kind != g->d.kind)
		return f->d.kind < g->d.kind ? -1 : 1;
	return 0;
}

static int by_desc(const void *x, const void *y, void *arg)
{
	struct desc_sort *s = arg;
	size_t i = *(const size_t *)x, k = *(const size_t *)y;
	int c = by_inode(s->a->f[i], s->a->f[k]);
	long r;

	if (c || i == k)
		return c ? c : 0;
	r = syscall(SYS_kcmp, s->a->pid[i], s->a->pid[k], KCMP_FILE, s->a->f[i]->d.fd,
		    s->a->f[k]->d.fd);
	if (r == 0 || r == 1 || r == 2)
		return r == 0 ? 0 : r == 1 ? -1 : 1;
	s->unordered = 1;
	return i < k ? -1 : 1;
}

/* Number the open file descriptions that several fds share (dup, fork):
 * kcmp(2) tells, among fds of one inode.  Sorted, so that n fds take
 * O(n log n) kcmp calls, not one for every pair: every eventfd, signalfd
 * and other anonymous inode of the kernel's is one inode, and a program
 * with 10,000 fds made 2,500 eventfds 3 million calls.  The numbers are
 * handed out as the pairwise search did: in the order of each
 * description's second fd. */
static int share_descs(struct fd_all *a)
{
	struct desc_sort s = {a, 0};
	size_t *o = malloc((a->n + 1) * sizeof(*o)), *rep = malloc((a->n + 1) * sizeof(*rep));
	uint64_t next = 1, *num = calloc(a->n + 1, sizeof(*num));

	if (!o || !rep || !num) {
		free(o), free(rep), free(num);
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < a->n; i++)
		o[i] = rep[i] = i;
	qsort_r(o, a->n, sizeof(*o), by_desc, &s);
	if (s.unordered) { /* pair by pair in each inode, in a's order */
		for (size_t i = 0; i < a->n; i++)
			for (size_t k = 0; k < i && rep[i] == i; k++)
				if (!by_inode(a->f[i], a->f[k]) &&
				    same_desc(a->pid[i], a->f[i]->d.fd, a->pid[k], a->f[k]->d.fd))
					rep[i] = rep[k];
	} else { /* one description's fds are neighbours: rep, the first of them */
		for (size_t j = 0, k; j < a->n; j = k) {
			size_t first = o[j];
			for (k = j + 1; k < a->n && !by_desc(&o[k - 1], &o[k], &s); k++)
				if (o[k] < first)
					first = o[k];
			for (size_t m = j; m < k; m++)
				rep[o[m]] = first;
		}
	}
	for (size_t i = 0; i < a->n; i++)
		if (rep[i] != i && !num[rep[i]])
			num[rep[i]] = next++;
	for (size_t i = 0; i < a->n; i++)
		if (num[rep[i]] && !a->f[i]->d.desc)
			a->f[i]->d.desc = num[rep[i]];
	free(o), free(rep), free(num);
	return 0;
}

int fd_check_tree(struct image *ims[], size_t n, uint32_t opts)
{
	struct fd_all a;
	int rc = 0;

	if (all_fds(ims, n, &a))
		return -1;
	a.opts = opts;
	/* Files in flight are the dumper's fds while they are joined and
	 * compared (kcmp) with the tree's; their marks again after, and the
	 * dumper's copies closed (a peek left the queues as they were). */
	for (size_t i = 0; i < a.n; i++)
		if (a.f[i]->d.fd < 0) {
			a.f[i]->d.fd = -1 - a.f[i]->d.fd;
			a.pid[i] = getpid();
		}
	/* Each kind's own first (a pipe whose other end is outside may
	 * become an inherited stream), then the descriptions they share. */
	for (uint32_t k = 1; k < IMG_FD_NKINDS && !rc; k++)
		if (kinds[k] && kinds[k]->join)
			rc = kinds[k]->join(&a);
	if (rc == 0)
		rc = share_descs(&a);
	for (size_t i = 0; i < a.n; i++)
		if (a.pid[i] == getpid()) {
			close(a.f[i]->d.fd);
			a.f[i]->d.fd = -1 - a.f[i]->d.fd;
		}
	free(a.f);
	free(a.pid);
	return rc;
}

/* ---- reading an image ------------------------------------------------ */

int fd_check_file(const struct fd_entry *f, size_t idx)
{
	const struct fd_ops *o = fd_ops_of(f->d.kind);

	if (f->d.fd < 0 && !fd_flight_kind(f->d.kind)) {
		err_set("FILE record %zu (in flight %d): kind %s cannot be in flight", idx, f->d.fd,
			fd_kind_name(f->d.kind));
		return -1;
	}
	if (o && !o->check(f->extra, f->d.extra_len))
		return 0;
	err_set("FILE record %zu (fd %d, %s): bad kind data (%u bytes)", idx, f->d.fd,
		fd_kind_name(f->d.kind), f->d.extra_len);
	return -1;
}

/* ---- making them again ------------------------------------------------ */

int fd_waiting(struct fd_pipes *pipes, uint32_t kind, int (*cmp)(const void *, const void *),
	       struct fd_pipe ***w, size_t *n)
{
	*w = NULL;
	*n = 0;
	for (size_t i = 0; i < pipes->n; i++)
		*n += pipes->p[i].kind == kind && pipes->p[i].f;
	if (!*n)
		return 0;
	if (!(*w = malloc(*n * sizeof(**w)))) {
		err_set("out of memory");
		return -1;
	}
	*n = 0;
	for (size_t i = 0; i < pipes->n; i++)
		if (pipes->p[i].kind == kind && pipes->p[i].f)
			(*w)[(*n)++] = &pipes->p[i];
	qsort(*w, *n, sizeof(**w), cmp);
	return 0;
}

struct fd_pipe *fd_find_pair(struct fd_pipes *pipes, uint32_t kind, uint64_t id)
{
	for (size_t i = 0; i < pipes->n; i++)
		if (pipes->p[i].kind == kind && pipes->p[i].id == id)
			return &pipes->p[i];
	return NULL;
}

struct fd_pipe *fd_new_pair(struct fd_pipes *pipes, uint32_t kind, uint64_t id)
{
	struct fd_pipe *np = append_zeroed(&pipes->p, pipes->n, sizeof(*np));

	if (!np)
		return NULL;
	*np = (struct fd_pipe){.kind = kind, .id = id, .end = {-1, -1}};
	return np;
}

int fd_dup_end(int end, const struct fd_entry *f, const char *what)
{
	int fd = fcntl(end, F_DUPFD_CLOEXEC, 0);

	if (fd < 0) {
		err_sys("fd %d: cannot duplicate %s", f->d.fd, what);
		return -1;
	}
	/* O_NONBLOCK belongs to the open file description, which every fd
	 * of this end shares, as dup'ed fds did in the program. */
	fcntl(fd, F_SETFL, (fcntl(fd, F_GETFL) & ~O_NONBLOCK) | (f->d.flags & O_NONBLOCK));
	return fd;
}

int fd_made(int fd, const struct fd_entry *f)
{
	if (fd < 0)
		err_sys("fd %d: cannot make its %s again", f->d.fd, fd_kind_name(f->d.kind));
	return fd;
}

/* A pidfd or a namespace file names its process's pid or namespace, which
 * the process that makes it must be in already. */
int fd_in_process(const struct fd_entry *f)
{
	return f->d.kind == IMG_FD_PIDFD || f->d.kind == IMG_FD_NSFILE;
}

int fd_make(const struct fd_entry *f, struct fd_pipes *pipes)
{
	const struct fd_ops *o = fd_ops_of(f->d.kind);

	if (!o || !o->make) {
		err_set("fd %d: unknown kind %u", f->d.fd, f->d.kind);
		return -1;
	}
	return o->make(f, pipes);
}

int fd_pipes_done(struct fd_pipes *pipes)
{
	return fd_dgram_refill(pipes) || fd_unix_done(pipes) || fd_lock_ptys(pipes) ||
		       fd_tcp_done(pipes)
		   ? -1
		   : 0;
}

void fd_pipes_close(struct fd_pipes *pipes)
{
	for (size_t i = 0; i < pipes->n; i++) {
		close(pipes->p[i].end[0]);
		close(pipes->p[i].end[1]);
	}
	free(pipes->p);
	pipes->p = NULL;
	pipes->n = 0;
	for (size_t i = 0; i < pipes->nfl; i++)
		close(pipes->fl[i].fd);
	free(pipes->fl);
	pipes->fl = NULL;
	pipes->nfl = 0;
}

/* ---- showing ---------------------------------------------------------- */

void fd_put_num(FILE *out, int json, const char *key, unsigned long long v)
{
	fprintf(out, json ? ",\"%s\":%llu" : " %s %llu", key, v);
}

void fd_show(FILE *out, const struct fd_entry *f, int json)
{
	const struct fd_ops *o = fd_ops_of(f->d.kind);

	if (o && o->show)
		o->show(out, f, json);
}

void fd_show_list(FILE *out, const struct fd_entry *f, int json)
{
	const struct fd_ops *o = fd_ops_of(f->d.kind);

	if (o && o->show_list)
		o->show_list(out, f, json);
}
