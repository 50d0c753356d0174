/* pipe.c: pipes and FIFOs (named pipes): the bytes queued in them, peeked without taking them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

/* A FIFO whose mode lets no one read it now: one of the process's own
 * open file descriptions of it that reads (tee(2) takes no byte from it,
 * and is told not to block), or -1 with errno EACCES. */
static int reading_end(pid_t pid, int fd)
{
	char path[64];
	struct stat sb, t;
	struct dirent *d;
	DIR *dir;
	int rfd = -1;

	if (stat(fmt_path(path, sizeof(path), "/proc/%d/fd/%d", pid, fd), &sb) ||
	    !(dir = opendir(fmt_path(path, sizeof(path), "/proc/%d/fd", pid)))) {
		errno = EACCES;
		return -1;
	}
	while (rfd < 0 && (d = readdir(dir))) {
		if (d->d_name[0] == '.' || fstatat(dirfd(dir), d->d_name, &t, 0) ||
		    t.st_dev != sb.st_dev || t.st_ino != sb.st_ino ||
		    (rfd = fd_getfd(pid, atoi(d->d_name))) < 0)
			continue;
		if ((fcntl(rfd, F_GETFL) & O_ACCMODE) == O_WRONLY) {
			close(rfd);
			rfd = -1;
		}
	}
	closedir(dir);
	errno = EACCES;
	return rfd;
}

/* The bytes in a pipe, without taking them out: tee(2) copies them to a
 * pipe of ours, and the program's pipe keeps every byte. */
int fd_pipe_peek(pid_t pid, int fd, uint32_t *size, unsigned char **data, uint32_t *len)
{
	char path[64];
	int pfd, p[2] = {-1, -1}, rc = -1;
	ssize_t n;

	*data = NULL;
	*len = 0;
	pfd = open(fmt_path(path, sizeof(path), "/proc/%d/fd/%d", pid, fd),
		   O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (pfd < 0 && errno == EACCES)
		pfd = reading_end(pid, fd);
	if (pfd < 0) {
		err_sys("pid %d: fd %d: cannot open the pipe to read its contents", pid, fd);
		return -1;
	}
	n = fcntl(pfd, F_GETPIPE_SZ);
	if (n <= 0 || pipe2(p, O_CLOEXEC | O_NONBLOCK) || fcntl(p[1], F_SETPIPE_SZ, n) < n) {
		err_sys("pid %d: fd %d: cannot make a pipe of %zd bytes to copy its contents", pid,
			fd, n);
		goto out;
	}
	*size = n;
	*data = malloc(n);
	if (!*data) {
		err_set("out of memory");
		goto out;
	}
	n = tee(pfd, p[1], n, SPLICE_F_NONBLOCK);
	if (n < 0 && errno != EAGAIN) {
		err_sys("pid %d: fd %d: cannot copy the pipe's contents", pid, fd);
		goto out;
	}
	if (n > 0 && read_full(p[0], *data, n) != n) {
		err_sys("pid %d: fd %d: cannot read the pipe's contents", pid, fd);
		goto out;
	}
	*len = n > 0 ? n : 0;
	rc = 0;
out:
	close(pfd);
	if (p[0] >= 0) {
		close(p[0]);
		close(p[1]);
	}
	if (rc) {
		free(*data);
		*data = NULL;
	}
	return rc;
}

/* One end of a pipe: which end, and what is queued in it. */
static int capture_pipe(const struct fd_source *src, struct fd_entry *f)
{
	struct img_pipe p = {.id = f->d.ino, .end = (f->d.flags & O_ACCMODE) != O_RDONLY};
	unsigned char *data = NULL;
	int rc;

	if ((f->d.flags & O_ACCMODE) == O_RDWR) {
		err_set("pid %d: fd %d is %s opened for both reading and writing; not "
			"supported yet",
			src->pid, f->d.fd, src->link);
		return -1;
	}
	if (fd_pipe_peek(src->pid, f->d.fd, &p.size, &data, &p.data_len))
		return -1;
	rc = fd_set_extra(f, &p, sizeof(p), data, p.data_len);
	free(data);
	return rc;
}

/* A named pipe: its bytes, peeked as for a pipe, and its size. */
static int capture_fifo(const struct fd_source *src, struct fd_entry *f)
{
	struct img_fifo p = {0};
	unsigned char *data = NULL;
	int rc;

	if (fd_pipe_peek(src->pid, f->d.fd, &p.size, &data, &p.data_len))
		return -1;
	rc = fd_set_extra(f, &p, sizeof(p), data, p.data_len);
	free(data);
	return rc;
}

/* A pipe whose other end is outside the tree: on a standard stream, the
 * restoring process's own stands for it.  On another fd (a make
 * jobserver, a pipe a launcher leaked) it is marked IMG_PIPE_OUTSIDE: the
 * restore cuts it off from the outside (or hands it an fd of ckpt-remap's
 * own, --inherit-fd).  A read end keeps the bytes queued in it, peeked
 * with tee(2), so that the outside writer's bytes are neither taken from
 * the pipe nor lost to the restored reader (one that runs on as well as a
 * restored copy would both read them).  A write end's queued bytes are
 * the outside reader's, still in its pipe: not kept. */
static void mark_outside(struct fd_entry *f, struct img_pipe *p)
{
	p->flags |= IMG_PIPE_OUTSIDE;
	if (p->end == 1) {
		p->data_len = 0;
		fd_drop_data(f, sizeof(*p));
	}
	memcpy(f->extra, p, sizeof(*p));
}

/* A pipe fd of the tree: its pipe, and where it is in fd_all. */
struct pipe_fd {
	uint64_t id;
	size_t i;
};

static int by_pipe(const void *x, const void *y)
{
	const struct pipe_fd *a = x, *b = y;

	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

/* Both ends of every pipe in the tree, or one marked outside (above).
 * The first fd of each pipe carries its contents; the others drop their
 * copy.  The fds sorted by pipe, each pipe's together: every fd compared
 * with every other took 8 % of a dump of 9,000 fds (make bench, Scale). */
static int join_pipes(struct fd_all *a)
{
	struct pipe_fd *v = malloc((a->n + 1) * sizeof(*v));
	size_t n = 0;

	if (!v) {
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < a->n; i++) {
		struct img_pipe p;

		if (a->f[i]->d.kind != IMG_FD_PIPE)
			continue;
		memcpy(&p, a->f[i]->extra, sizeof(p));
		v[n++] = (struct pipe_fd){p.id, i};
	}
	qsort(v, n, sizeof(*v), by_pipe);
	for (size_t g = 0, e; g < n; g = e) {
		int ends = 0, first = 1;

		for (e = g; e < n && v[e].id == v[g].id; e++) {
			struct img_pipe p;
			memcpy(&p, a->f[v[e].i]->extra, sizeof(p));
			ends |= 1 << p.end;
		}
		/* In the order of fd_all: a standard stream whose other end
		 * is not in the tree is the restoring process's own; the
		 * others are marked outside; the first left carries the
		 * bytes. */
		for (size_t k = g; k < e; k++) {
			struct fd_entry *f = a->f[v[k].i];
			struct img_pipe p;

			memcpy(&p, f->extra, sizeof(p));
			if (ends != 3 && f->d.fd <= 2) {
				f->d.kind = IMG_FD_INHERIT;
				fd_drop_data(f, 0);
				continue;
			}
			if (ends != 3)
				mark_outside(f, &p);
			memcpy(&p, f->extra, sizeof(p));
			if (!first && p.data_len) {
				p.data_len = 0;
				memcpy(f->extra, &p, sizeof(p));
				fd_drop_data(f, sizeof(p));
			}
			first = 0;
		}
	}
	free(v);
	return 0;
}

/* A FIFO, by its path or deleted (IMG_FD_DELDIR). */
static int is_fifo(const struct fd_entry *f)
{
	return f->d.kind == IMG_FD_FIFO || (f->d.kind == IMG_FD_DELDIR && S_ISFIFO(f->d.mode));
}

/* Several fds of one FIFO share its buffer: the first carries the bytes. */
static int join_fifos(struct fd_all *a)
{
	for (size_t i = 0; i < a->n; i++) {
		struct fd_entry *f = a->f[i];
		struct img_fifo p;

		if (!is_fifo(f))
			continue;
		for (size_t k = 0; k < i; k++) {
			const struct fd_entry *g = a->f[k];
			if (!is_fifo(g) || g->d.dev != f->d.dev || g->d.ino != f->d.ino)
				continue;
			uint32_t rest;

			memcpy(&p, f->extra, sizeof(p));
			/* What follows the bytes (a deleted FIFO's owner, file.c) stays. */
			rest = f->d.extra_len - sizeof(p) - p.data_len;
			memmove(f->extra + sizeof(p), f->extra + sizeof(p) + p.data_len, rest);
			p.data_len = 0;
			memcpy(f->extra, &p, sizeof(p));
			fd_drop_data(f, sizeof(p) + rest);
			break;
		}
	}
	return 0;
}

static int check_pipe(const unsigned char *x, uint32_t n)
{
	struct img_pipe p;

	if (n < sizeof(p))
		return -1;
	memcpy(&p, x, sizeof(p));
	if (p.end > 1 || p.data_len > p.size || p.size > (1u << 30) ||
	    (p.flags & ~IMG_PIPE_FLAGS) || n != sizeof(p) + p.data_len)
		return -1;
	return 0;
}

static int check_fifo(const unsigned char *x, uint32_t n)
{
	struct img_fifo p;

	if (n < sizeof(p))
		return -1;
	memcpy(&p, x, sizeof(p));
	if (p.data_len > p.size || p.size > (1u << 30) || n != sizeof(p) + p.data_len)
		return -1;
	return 0;
}

/* An open file description of end for f.  pipe2(2)'s own has no
 * O_LARGEFILE; every other one of the program's was an open(2) of
 * /proc/PID/fd/N (which adds it), a description of its own: reopened so,
 * its status flags are its own, not those of another description of the
 * same end (fds that share f's are duplicates of the fd made here). */
/* The kernel's O_LARGEFILE, which glibc's is not on x86-64 (0 there): the
 * flag fdinfo shows on every file open(2) made. */
#define FDINFO_O_LARGEFILE 0100000

static int pipe_end(int end, const struct fd_entry *f)
{
	char path[64];
	int fd;

	if (!(f->d.flags & FDINFO_O_LARGEFILE))
		return fd_dup_end(end, f, "a pipe end");
	fd = open(fmt_path(path, sizeof(path), "/proc/self/fd/%d", end),
		  (f->d.flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		err_sys("fd %d: cannot open its pipe end again", f->d.fd);
		return -1;
	}
	fcntl(fd, F_SETFL, f->d.flags & O_NONBLOCK);
	return fd;
}

static int make_pipe(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_pipe p;
	struct fd_pipe *fp;

	memcpy(&p, f->extra, sizeof(p));
	if (!(fp = fd_find_pair(pipes, IMG_FD_PIPE, p.id))) {
		if (!(fp = fd_new_pair(pipes, IMG_FD_PIPE, p.id)))
			return -1;
		if (pipe2(fp->end, O_CLOEXEC)) {
			err_sys("fd %d: cannot make a pipe", f->d.fd);
			return -1;
		}
		pipes->n++;
		/* Its size first, so that what it held fits without blocking;
		 * above pipe-max-size an unprivileged user keeps the default. */
		if (fcntl(fp->end[1], F_SETPIPE_SZ, p.size) < 0 && p.data_len > 65536) {
			err_sys("fd %d: cannot make a pipe of %u bytes", f->d.fd, p.size);
			return -1;
		}
	}
	if (p.data_len && write_all(fp->end[1], f->extra + sizeof(p), p.data_len)) {
		err_sys("fd %d: cannot put %u bytes back in its pipe", f->d.fd, p.data_len);
		return -1;
	}
	return pipe_end(fp->end[p.end], f);
}

/* A write into a FIFO stamps its mtime (pipe_write, file_update_time):
 * the bytes the restore put back leave it as the checkpoint saw it.  Only
 * its owner may set it (or CAP_FOWNER); another user's FIFO keeps the
 * time of the restore. */
static void fifo_mtime_back(int fd, const struct fd_entry *f)
{
	struct timespec ts[2] = {{0, UTIME_OMIT}, {f->d.mtime_sec, f->d.mtime_nsec}};

	if (futimens(fd, ts)) {
		/* nothing: see above */
	}
}

/* A FIFO whose path is gone (Open MPI's session directory in /tmp, cleaned
 * since): made again there with its mode, its missing directories 0700
 * (as --save-files puts a file back), said in one line.  It held no bytes
 * on disk: what it had queued goes back below. */
static int fifo_again(const struct fd_entry *f)
{
	const char *base = strrchr(f->path, '/');
	int dfd, rc;

	if (!base || fd_walk_dir(f->path, 1, &dfd) || dfd < 0) {
		errno = ENOENT;
		return -1;
	}
	rc = mkfifoat(dfd, base + 1, f->d.mode & 07777);
	if (rc && errno == EEXIST)
		rc = 0;
	else if (rc == 0)
		fprintf(stderr, "ckpt-remap: %s: FIFO made again (it was gone)\n", f->path);
	close(dfd);
	errno = rc ? errno : 0;
	return rc;
}

/* A FIFO reopened by path with its access mode.  A read-only open blocks
 * until there is a writer and a write-only one fails (ENXIO) without a
 * reader: a read-write open of our own, held until the program's is made,
 * is both, and both of the program's are made non-blocking, then given
 * its O_NONBLOCK.  The saved bytes go back only into an empty FIFO: one
 * that still holds bytes is the same pipe, kept by another process (the
 * dumped one, if it runs on), and has them already. */
static int make_fifo(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_fifo p;
	struct stat sb;
	int hold, fd, fl, queued = 0;

	(void)pipes;
	memcpy(&p, f->extra, sizeof(p));
	hold = open(f->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (hold < 0 && errno == ENOENT && fifo_again(f) == 0)
		hold = open(f->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (hold < 0) {
		err_sys("fd %d: cannot reopen FIFO %s", f->d.fd, f->path);
		return -1;
	}
	if (fstat(hold, &sb) || !S_ISFIFO(sb.st_mode)) {
		err_set("fd %d: %s is no longer a FIFO", f->d.fd, f->path);
		close(hold);
		return -1;
	}
	fd = open(f->path, (f->d.flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		err_sys("fd %d: cannot reopen FIFO %s", f->d.fd, f->path);
		close(hold);
		return -1;
	}
	/* Above pipe-max-size an unprivileged user keeps the default. */
	if (fcntl(hold, F_GETPIPE_SZ) < (int)p.size && fcntl(hold, F_SETPIPE_SZ, p.size) < 0 &&
	    p.data_len > 65536) {
		err_sys("fd %d: cannot make FIFO %s hold %u bytes", f->d.fd, f->path, p.size);
		goto fail;
	}
	if (p.data_len && !ioctl(hold, FIONREAD, &queued) && queued == 0) {
		if (write_all(hold, f->extra + sizeof(p), p.data_len)) {
			err_sys("fd %d: cannot put %u bytes back in FIFO %s", f->d.fd, p.data_len,
				f->path);
			goto fail;
		}
		fifo_mtime_back(hold, f);
	}
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL,
	      (fl & ~(O_NONBLOCK | O_APPEND)) | (f->d.flags & (O_NONBLOCK | O_APPEND)));
	close(hold);
	return fd;
fail:
	close(fd);
	close(hold);
	return -1;
}

static void show_pipe(FILE *out, const struct fd_entry *f, int json)
{
	struct img_pipe p;

	memcpy(&p, f->extra, sizeof(p));
	fprintf(out, json ? ",\"end\":\"%s\"" : " %s end", p.end ? "write" : "read");
	fd_put_num(out, json, "queued", p.data_len);
	fd_put_num(out, json, "size", p.size);
	/* Its other end was held by no process of the image. */
	if (json)
		fprintf(out, ",\"outside\":%s", p.flags & IMG_PIPE_OUTSIDE ? "true" : "false");
	else if (p.flags & IMG_PIPE_OUTSIDE)
		fputs(" other end outside", out);
}

static void show_fifo(FILE *out, const struct fd_entry *f, int json)
{
	struct img_fifo p;

	memcpy(&p, f->extra, sizeof(p));
	fd_put_num(out, json, "queued", p.data_len);
	fd_put_num(out, json, "size", p.size);
}

const struct fd_ops fd_pipe_ops = {
    .name = "pipe",
    .capture = capture_pipe,
    .join = join_pipes,
    .check = check_pipe,
    .make = make_pipe,
    .show = show_pipe,
};

const struct fd_ops fd_fifo_ops = {
    .name = "fifo",
    .capture = capture_fifo,
    .join = join_fifos,
    .check = check_fifo,
    .make = make_fifo,
    .show = show_fifo,
};
