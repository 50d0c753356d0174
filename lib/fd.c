/* fd.c: a process's open files, captured from /proc and made again. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "err.h"
#include "fd.h"
#include "proc.h"
#include "util.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

static int set_extra(struct fd_entry *f, const void *a, size_t alen, const void *b, size_t blen)
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

/* A field of an fdinfo text: the text after "name:". */
static const char *field(const char *info, const char *name)
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

/* The bytes in a pipe, without taking them out: tee(2) copies them to a
 * pipe of ours, and the program's pipe keeps every byte. */
static int peek_pipe(pid_t pid, int fd, uint32_t *size, unsigned char **data, uint32_t *len)
{
	char path[64];
	int pfd, p[2] = {-1, -1}, rc = -1;
	ssize_t n;

	*data = NULL;
	*len = 0;
	pfd = open(fmt_path(path, sizeof(path), "/proc/%d/fd/%d", pid, fd),
		   O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (pfd < 0) {
		err_sys("pid %d: fd %d: cannot open the pipe to read its contents", pid, fd);
		return -1;
	}
	n = fcntl(pfd, F_GETPIPE_SZ);
	if (n <= 0 || pipe2(p, O_CLOEXEC | O_NONBLOCK) ||
	    fcntl(p[1], F_SETPIPE_SZ, n) < n) {
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

/* Pipes and anonymous-inode files (eventfd, signalfd, timerfd, epoll). */
static int capture_special(pid_t pid, struct fd_entry *f, const char *link)
{
	char path[64], *info;
	const char *v;
	int rc = -1, fd = f->d.fd;

	if (!strncmp(link, "pipe:", 5)) {
		struct img_pipe p = {.id = f->d.ino, .end = (f->d.flags & O_ACCMODE) != O_RDONLY};
		unsigned char *data = NULL;

		if ((f->d.flags & O_ACCMODE) == O_RDWR) {
			err_set("pid %d: fd %d is %s opened for both reading and writing; not "
				"supported yet",
				pid, fd, link);
			return -1;
		}
		f->d.kind = IMG_FD_PIPE;
		if (peek_pipe(pid, fd, &p.size, &data, &p.data_len))
			return -1;
		rc = set_extra(f, &p, sizeof(p), data, p.data_len);
		free(data);
		return rc;
	}
	info = read_file(fmt_path(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd), NULL);
	if (!info)
		return -1;
	if (!strcmp(link, "anon_inode:[eventfd]")) {
		struct img_eventfd e = {0};
		f->d.kind = IMG_FD_EVENTFD;
		if ((v = field(info, "eventfd-count")))
			e.count = strtoull(v, NULL, 16);
		if ((v = field(info, "eventfd-semaphore")))
			e.semaphore = atoi(v);
		rc = set_extra(f, &e, sizeof(e), NULL, 0);
	} else if (!strcmp(link, "anon_inode:[signalfd]")) {
		struct img_signalfd s = {0};
		f->d.kind = IMG_FD_SIGNALFD;
		if ((v = field(info, "sigmask")))
			s.mask = strtoull(v, NULL, 16);
		rc = set_extra(f, &s, sizeof(s), NULL, 0);
	} else if (!strcmp(link, "anon_inode:[timerfd]")) {
		struct img_timerfd t = {0};
		unsigned long long a = 0, b = 0;
		f->d.kind = IMG_FD_TIMERFD;
		if ((v = field(info, "clockid")))
			t.clock = atoi(v);
		if ((v = field(info, "ticks")))
			t.ticks = strtoull(v, NULL, 10);
		if ((v = field(info, "settime flags")))
			t.settime_flags = strtoul(v, NULL, 8);
		if ((v = field(info, "it_value")) && sscanf(v, " (%llu, %llu)", &a, &b) == 2)
			t.left = (struct img_timespec){(int64_t)a, (int64_t)b};
		if ((v = field(info, "it_interval")) && sscanf(v, " (%llu, %llu)", &a, &b) == 2)
			t.interval = (struct img_timespec){(int64_t)a, (int64_t)b};
		rc = set_extra(f, &t, sizeof(t), NULL, 0);
	} else if (!strcmp(link, "anon_inode:[eventpoll]")) {
		struct img_epoll e = {0};
		struct img_epoll_item *items = NULL;
		const char *p = info;

		f->d.kind = IMG_FD_EPOLL;
		while ((p = strstr(p, "tfd:"))) {
			struct img_epoll_item it;
			unsigned long long data, ino;
			unsigned events;
			struct img_epoll_item *ni;
			struct stat sb;

			if (sscanf(p, "tfd: %d events: %x data: %llx pos:%*d ino:%llx", &it.fd, &events,
				   &data, &ino) != 4) {
				err_set("pid %d: fd %d: cannot parse its epoll entries", pid, fd);
				free(items);
				goto out;
			}
			it.events = events;
			it.data = data;
			/* An entry outlives the fd it was added by: it must still
			 * be the file at that number to be added again. */
			if (stat(fmt_path(path, sizeof(path), "/proc/%d/fd/%d", pid, it.fd), &sb) ||
			    sb.st_ino != ino) {
				err_set("pid %d: fd %d: epoll watches a file that is no longer fd %d; "
					"not supported",
					pid, fd, it.fd);
				free(items);
				goto out;
			}
			ni = realloc(items, (e.n + 1) * sizeof(*items));
			if (!ni) {
				free(items);
				err_set("out of memory");
				goto out;
			}
			items = ni;
			items[e.n++] = it;
			p += 4;
		}
		rc = set_extra(f, &e, sizeof(e), items, e.n * sizeof(*items));
		free(items);
	} else {
		err_set("pid %d: fd %d is %s; this kind of file is not supported yet", pid, fd,
			link);
	}
out:
	free(info);
	return rc;
}

/* A named pipe: its bytes, peeked as for a pipe, and its size. */
static int capture_fifo(pid_t pid, struct fd_entry *f)
{
	struct img_fifo p = {0};
	unsigned char *data = NULL;
	int rc;

	f->d.kind = IMG_FD_FIFO;
	if (peek_pipe(pid, f->d.fd, &p.size, &data, &p.data_len))
		return -1;
	rc = set_extra(f, &p, sizeof(p), data, p.data_len);
	free(data);
	return rc;
}

/* Several fds of one FIFO share its buffer: the first carries the bytes. */
static void dedup_fifos(struct image *im)
{
	for (size_t i = 0; i < im->nfiles; i++) {
		struct fd_entry *f = &im->files[i];
		struct img_fifo p;

		if (f->d.kind != IMG_FD_FIFO)
			continue;
		for (size_t k = 0; k < i; k++) {
			const struct fd_entry *g = &im->files[k];
			if (g->d.kind != IMG_FD_FIFO || g->d.dev != f->d.dev || g->d.ino != f->d.ino)
				continue;
			memcpy(&p, f->extra, sizeof(p));
			p.data_len = 0;
			memcpy(f->extra, &p, sizeof(p));
			f->d.extra_len = sizeof(p);
			break;
		}
	}
}

/* Both ends of every pipe must be in the process: an end held elsewhere
 * would be cut off by a restore.  The first fd of each pipe carries its
 * contents; the others drop their copy. */
static int check_pipes(pid_t pid, struct image *im)
{
	for (size_t i = 0; i < im->nfiles; i++) {
		struct fd_entry *f = &im->files[i];
		struct img_pipe p, q;
		int ends = 0, first = 1;

		if (f->d.kind != IMG_FD_PIPE)
			continue;
		memcpy(&p, f->extra, sizeof(p));
		for (size_t k = 0; k < im->nfiles; k++) {
			if (im->files[k].d.kind != IMG_FD_PIPE)
				continue;
			memcpy(&q, im->files[k].extra, sizeof(q));
			if (q.id != p.id)
				continue;
			ends |= 1 << q.end;
			if (k < i)
				first = 0;
		}
		if (ends != 3) {
			err_set("pid %d: fd %d is the %s end of a pipe whose other end is not in the "
				"process; not supported yet",
				pid, f->d.fd, p.end ? "write" : "read");
			return -1;
		}
		if (!first && p.data_len) {
			p.data_len = 0;
			memcpy(f->extra, &p, sizeof(p));
			f->d.extra_len = sizeof(p);
		}
	}
	return 0;
}

static int is_tty_major(unsigned maj)
{
	return maj == 4 || maj == 5 || (maj >= 136 && maj <= 143);
}

int fd_capture(pid_t pid, struct image *im)
{
	int *fds;
	size_t n;

	if (proc_list_fds(pid, &fds, &n))
		return -1;
	im->files = calloc(n + 1, sizeof(*im->files));
	if (!im->files) {
		free(fds);
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct fd_entry *f = &im->files[im->nfiles];
		struct proc_fdinfo fi;
		char what[32], path[64];
		struct stat sb;
		int fd = fds[i];
		char *link;

		snprintf(what, sizeof(what), "fd/%d", fd);
		if (!(link = proc_readlink(pid, what)))
			goto fail;
		f->path = link;
		im->nfiles++;
		if (stat(fmt_path(path, sizeof(path), "/proc/%d/fd/%d", pid, fd), &sb) ||
		    proc_read_fdinfo(pid, fd, &fi)) {
			err_sys("pid %d: fd %d (%s): cannot stat", pid, fd, link);
			goto fail;
		}
		f->d.fd = fd;
		f->d.flags = fi.flags;
		f->d.fdflags = (fi.flags & O_CLOEXEC) ? FD_CLOEXEC : 0;
		f->d.pos = fi.pos;
		f->d.dev = sb.st_dev;
		f->d.ino = sb.st_ino;
		f->d.size = sb.st_size;
		f->d.mtime_sec = sb.st_mtim.tv_sec;
		f->d.mtime_nsec = sb.st_mtim.tv_nsec;
		f->d.mode = sb.st_mode;
		if (fd <= 2 && (S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode) ||
				(S_ISCHR(sb.st_mode) && is_tty_major(major(sb.st_rdev))))) {
			f->d.kind = IMG_FD_INHERIT;
		} else if (link[0] != '/') {
			/* Pipes and anonymous-inode files: the kind says what to keep. */
			if (capture_special(pid, f, link))
				goto fail;
		} else if (S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode)) {
			size_t l = strlen(link);
			if (sb.st_nlink == 0 || (l > 10 && !strcmp(link + l - 10, " (deleted)"))) {
				err_set("pid %d: fd %d is deleted file %s; not supported yet", pid,
					fd, link);
				goto fail;
			}
			f->d.kind = S_ISREG(sb.st_mode) ? IMG_FD_REG : IMG_FD_DIR;
		} else if (S_ISFIFO(sb.st_mode)) {
			size_t l = strlen(link);
			if (sb.st_nlink == 0 || (l > 10 && !strcmp(link + l - 10, " (deleted)"))) {
				err_set("pid %d: fd %d is deleted FIFO %s; not supported", pid, fd,
					link);
				goto fail;
			}
			if (capture_fifo(pid, f))
				goto fail;
		} else if (S_ISCHR(sb.st_mode) && major(sb.st_rdev) == 1) {
			f->d.kind = IMG_FD_CHR; /* /dev/null, zero, full, random, urandom */
		} else {
			err_set("pid %d: fd %d is %s (mode %o); this kind of file is not supported "
				"yet",
				pid, fd, link, sb.st_mode & S_IFMT);
			goto fail;
		}
		f->d.path_len = strlen(link);
	}
	free(fds);
	im->proc.nfiles = im->nfiles;
	dedup_fifos(im);
	return check_pipes(pid, im);
fail:
	free(fds);
	return -1;
}


/* ---- making them again ------------------------------------------------ */

static int make_pipe(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_pipe p;
	struct fd_pipe *fp = NULL, *np;
	int fd, fl;

	memcpy(&p, f->extra, sizeof(p));
	for (size_t i = 0; i < pipes->n; i++)
		if (pipes->p[i].id == p.id)
			fp = &pipes->p[i];
	if (!fp) {
		np = realloc(pipes->p, (pipes->n + 1) * sizeof(*np));
		if (!np) {
			err_set("out of memory");
			return -1;
		}
		pipes->p = np;
		fp = &pipes->p[pipes->n];
		fp->id = p.id;
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
	fd = fcntl(fp->end[p.end], F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		err_sys("fd %d: cannot duplicate a pipe end", f->d.fd);
		return -1;
	}
	/* O_NONBLOCK belongs to the open file description, which every fd
	 * of this end shares, as dup'ed fds did in the program. */
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, (fl & ~O_NONBLOCK) | (f->d.flags & O_NONBLOCK));
	return fd;
}

/* A FIFO reopened by path with its access mode.  A read-only open blocks
 * until there is a writer and a write-only one fails (ENXIO) without a
 * reader: a read-write open of our own, held until the program's is made,
 * is both, and both of the program's are made non-blocking, then given
 * its O_NONBLOCK.  The saved bytes go back only into an empty FIFO: one
 * that still holds bytes is the same pipe, kept by another process (the
 * dumped one, if it runs on), and has them already. */
static int make_fifo(const struct fd_entry *f)
{
	struct img_fifo p;
	struct stat sb;
	int hold, fd, fl, queued = 0;

	memcpy(&p, f->extra, sizeof(p));
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
	if (p.data_len && !ioctl(hold, FIONREAD, &queued) && queued == 0 &&
	    write_all(hold, f->extra + sizeof(p), p.data_len)) {
		err_sys("fd %d: cannot put %u bytes back in FIFO %s", f->d.fd, p.data_len,
			f->path);
		goto fail;
	}
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, (fl & ~(O_NONBLOCK | O_APPEND)) | (f->d.flags & (O_NONBLOCK | O_APPEND)));
	close(hold);
	return fd;
fail:
	close(fd);
	close(hold);
	return -1;
}

static int make_timerfd(const struct fd_entry *f)
{
	struct img_timerfd t;
	struct itimerspec its;
	int fd;

	memcpy(&t, f->extra, sizeof(t));
	fd = timerfd_create(t.clock, TFD_CLOEXEC | ((f->d.flags & O_NONBLOCK) ? TFD_NONBLOCK : 0));
	if (fd < 0) {
		err_sys("fd %d: cannot make a timerfd on clock %d", f->d.fd, t.clock);
		return -1;
	}
	/* The time it had left, from now (relative), as for other timers. */
	its.it_value.tv_sec = t.left.sec;
	its.it_value.tv_nsec = t.left.nsec;
	its.it_interval.tv_sec = t.interval.sec;
	its.it_interval.tv_nsec = t.interval.nsec;
	if ((t.left.sec || t.left.nsec) && timerfd_settime(fd, 0, &its, NULL)) {
		err_sys("fd %d: cannot arm its timerfd", f->d.fd);
		close(fd);
		return -1;
	}
	if (t.ticks && ioctl(fd, TFD_IOC_SET_TICKS, &t.ticks)) {
		err_sys("fd %d: cannot restore %llu expirations of its timerfd", f->d.fd,
			(unsigned long long)t.ticks);
		close(fd);
		return -1;
	}
	return fd;
}

int fd_make(const struct fd_entry *f, struct fd_pipes *pipes)
{
	int nb = f->d.flags & O_NONBLOCK, fd = -1;

	switch (f->d.kind) {
	case IMG_FD_PIPE:
		return make_pipe(f, pipes);
	case IMG_FD_EVENTFD: {
		struct img_eventfd e;
		memcpy(&e, f->extra, sizeof(e));
		fd = eventfd(0, EFD_CLOEXEC | (nb ? EFD_NONBLOCK : 0) |
				    (e.semaphore ? EFD_SEMAPHORE : 0));
		if (fd >= 0 && e.count && write(fd, &e.count, 8) != 8) {
			close(fd);
			fd = -1;
		}
		break;
	}
	case IMG_FD_SIGNALFD: {
		struct img_signalfd s;
		sigset_t set;
		memcpy(&s, f->extra, sizeof(s));
		sigemptyset(&set);
		for (int sig = 1; sig <= 64; sig++)
			if (s.mask & (1ull << (sig - 1)))
				sigaddset(&set, sig);
		fd = signalfd(-1, &set, SFD_CLOEXEC | (nb ? SFD_NONBLOCK : 0));
		break;
	}
	case IMG_FD_TIMERFD:
		return make_timerfd(f);
	case IMG_FD_FIFO:
		return make_fifo(f);
	case IMG_FD_EPOLL:
		fd = epoll_create1(EPOLL_CLOEXEC);
		break;
	default:
		err_set("fd %d: unknown kind %u", f->d.fd, f->d.kind);
		return -1;
	}
	if (fd < 0)
		err_sys("fd %d: cannot make its %s again", f->d.fd, img_fd_kind_name(f->d.kind));
	return fd;
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
}

int fd_epoll_register(const struct image *im)
{
	for (size_t i = 0; i < im->nfiles; i++) {
		const struct fd_entry *f = &im->files[i];
		struct img_epoll e;

		if (f->d.kind != IMG_FD_EPOLL)
			continue;
		memcpy(&e, f->extra, sizeof(e));
		for (uint32_t k = 0; k < e.n; k++) {
			struct img_epoll_item it;
			struct epoll_event ev;

			memcpy(&it, f->extra + sizeof(e) + k * sizeof(it), sizeof(it));
			ev.events = it.events;
			ev.data.u64 = it.data;
			if (epoll_ctl(f->d.fd, EPOLL_CTL_ADD, it.fd, &ev)) {
				err_sys("fd %d: cannot watch fd %d with epoll again", f->d.fd,
					it.fd);
				return -1;
			}
		}
	}
	return 0;
}
