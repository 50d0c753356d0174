/* epoll.c: epoll instances: each watch (fd, events, data), registered again once every fd is
 * at its number. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"
#include "target/target.h"

#ifndef KCMP_EPOLL_TFD
#define KCMP_EPOLL_TFD 7
#endif

/* One watch of epoll instance efd, as kcmp(2) names it: the toff-th
 * watch added as fd tfd (a number closed and reused may have been added
 * twice, on two files). */
struct kcmp_slot {
	uint32_t efd, tfd, toff;
};

/* Whether fd of pid holds the open file description watch s of pid's
 * epoll instance is on (kcmp KCMP_EPOLL_TFD, Linux 4.13). */
static int holds_watched(pid_t pid, int fd, const struct kcmp_slot *s)
{
	return syscall(SYS_kcmp, pid, pid, KCMP_EPOLL_TFD, fd, s) == 0;
}

/* The fd of the process that holds the description watch s is on: the
 * number it was added as, if that still holds it, else another (a dup, or
 * the file moved to another number and its first closed); -2 when none
 * does (another process of the tree may: join_epolls), -1 naming the
 * error.  fds lists the process's fds, read once when needed. */
static int watched_via(pid_t pid, const struct kcmp_slot *s, int **fds, size_t *nfds)
{
	if (holds_watched(pid, s->tfd, s))
		return s->tfd;
	if (!*fds && proc_list_fds(pid, fds, nfds))
		return -1;
	for (size_t i = 0; i < *nfds; i++)
		if (holds_watched(pid, (*fds)[i], s))
			return (*fds)[i];
	return -2;
}

/* One entry of its fdinfo, "tfd: 5 events: 19 data: 5 pos:0 ino:3c51a",
 * into it; -1 naming the fd. */
static int parse_item(const struct fd_source *src, int fd, const char *p, struct img_epoll_item *it,
		      unsigned long long *ino)
{
	unsigned long long data;
	unsigned events;

	if (sscanf(p, "tfd: %d events: %x data: %llx pos:%*d ino:%llx", &it->fd, &events, &data,
		   ino) != 4 ||
	    it->fd < 0) {
		err_set("pid %d: fd %d: cannot parse its epoll entries", src->pid, fd);
		return -1;
	}
	it->events = events;
	it->data = data;
	return 0;
}

/* A watch belongs to the open file description, not to the fd it was
 * added by: each is kept with the number it was added as (the key the
 * program's epoll_ctl calls name it by) and, where that number no longer
 * holds it, the fd that does (IMG_EPOLL_VIA). */
static int capture_epoll(const struct fd_source *src, struct fd_entry *f)
{
	struct img_epoll e = {0};
	struct img_epoll_item *items = NULL;
	int32_t *via = NULL;
	const char *p = src->info;
	int *fds = NULL, rc = -1;
	size_t nfds = 0;

	while ((p = strstr(p, "tfd:"))) {
		struct img_epoll_item it, *ni;
		struct kcmp_slot s = {.efd = f->d.fd};
		unsigned long long ino;
		int32_t v, *nv;

		if (parse_item(src, f->d.fd, p, &it, &ino))
			goto out;
		s.tfd = it.fd;
		for (uint32_t k = 0; k < e.n; k++)
			s.toff += items[k].fd == it.fd;
		if ((v = watched_via(src->pid, &s, &fds, &nfds)) == -1)
			goto out;
		v = v < 0 ? -1 : v;
		if (!(ni = append_zeroed(&items, e.n, sizeof(*items))) ||
		    !(nv = append_zeroed(&via, e.n, sizeof(*via))))
			goto out;
		*ni = it;
		*nv = v;
		if (v != it.fd)
			e.flags |= IMG_EPOLL_VIA;
		e.n++;
		p += 4;
	}
	rc = fd_set_extra(f, &e, sizeof(e), items, e.n * sizeof(*items));
	if (!rc && (e.flags & IMG_EPOLL_VIA)) {
		unsigned char *x = realloc(f->extra, f->d.extra_len + e.n * sizeof(*via) + 1);
		if (!x) {
			err_set("out of memory");
			rc = -1;
			goto out;
		}
		memcpy(x + f->d.extra_len, via, e.n * sizeof(*via));
		f->extra = x;
		f->d.extra_len += e.n * sizeof(*via);
	}
out:
	free(fds);
	free(items);
	free(via);
	return rc;
}

/* Watch k of the kind data x (e its head): into it, and the fd that holds
 * its file now (-1: another process's, below). */
static int32_t item(const unsigned char *x, const struct img_epoll *e, uint32_t k,
		    struct img_epoll_item *it)
{
	int32_t via;

	memcpy(it, x + sizeof(*e) + k * sizeof(*it), sizeof(*it));
	via = it->fd;
	if (e->flags & IMG_EPOLL_VIA)
		memcpy(&via, x + sizeof(*e) + e->n * sizeof(*it) + k * sizeof(via), sizeof(via));
	return via;
}

/* Where the holders of the watches no fd of the process holds start. */
static uint64_t others_at(const struct img_epoll *e)
{
	return sizeof(*e) + (uint64_t)e->n * sizeof(struct img_epoll_item) +
	       ((e->flags & IMG_EPOLL_VIA) ? (uint64_t)e->n * sizeof(int32_t) : 0);
}

static int check_epoll(const unsigned char *x, uint32_t n)
{
	struct img_epoll e;
	uint32_t elsewhere = 0;

	if (n < sizeof(e))
		return -1;
	memcpy(&e, x, sizeof(e));
	if (e.n > (1u << 20) || (e.flags & ~IMG_EPOLL_FLAGS) ||
	    ((e.flags & IMG_EPOLL_OTHER) && !(e.flags & IMG_EPOLL_VIA)) || n < others_at(&e))
		return -1;
	for (uint32_t k = 0; k < e.n; k++) {
		struct img_epoll_item it;
		int32_t via = item(x, &e, k, &it);

		if (it.fd < 0 || via < -1)
			return -1;
		elsewhere += via < 0;
	}
	if (elsewhere && !(e.flags & IMG_EPOLL_OTHER))
		return -1;
	if (n != others_at(&e) + (uint64_t)elsewhere * sizeof(struct img_epoll_other))
		return -1;
	for (uint32_t k = 0; k < elsewhere; k++) {
		struct img_epoll_other o;

		memcpy(&o, x + others_at(&e) + k * sizeof(o), sizeof(o));
		if (o.pid <= 0 || o.fd < 0)
			return -1;
	}
	return 0;
}

/* A watch whose file no fd of its process holds: another process of the
 * tree may hold it (a child that inherited the fd the parent closed).
 * That process and fd are kept (IMG_EPOLL_OTHER): ckpt-remap makes every
 * fd of the tree before it forks, and adds the watch there.  A file made
 * by each process itself (a pidfd, a namespace file, a file of /proc)
 * does not count. */
static int holder(const struct fd_all *a, size_t i, const struct kcmp_slot *s,
		  struct img_epoll_other *o)
{
	for (size_t j = 0; j < a->n; j++) {
		const struct fd_entry *g = a->f[j];

		if (a->pid[j] == a->pid[i] || fd_in_process(g) ||
		    ((g->d.kind == IMG_FD_REG || g->d.kind == IMG_FD_DIR) && fd_proc_pid(g->path)))
			continue;
		if (syscall(SYS_kcmp, a->pid[j], a->pid[i], KCMP_EPOLL_TFD, g->d.fd, s) == 0) {
			o->pid = a->pid[j];
			o->fd = g->d.fd;
			return 0;
		}
	}
	err_set("pid %d: fd %d: epoll watches a file (added as fd %u) that no fd of the dumped "
		"processes holds; not supported",
		a->pid[i], s->efd, s->tfd);
	return -1;
}

static int join_epolls(struct fd_all *a)
{
	for (size_t i = 0; i < a->n; i++) {
		struct fd_entry *f = a->f[i];
		struct img_epoll e;
		struct img_epoll_other *os = NULL, *no;
		uint32_t n = 0;
		unsigned char *x;

		if (f->d.kind != IMG_FD_EPOLL)
			continue;
		memcpy(&e, f->extra, sizeof(e));
		for (uint32_t k = 0; k < e.n; k++) {
			struct img_epoll_item it;
			struct kcmp_slot s = {.efd = f->d.fd};

			if (item(f->extra, &e, k, &it) >= 0)
				continue;
			s.tfd = it.fd;
			for (uint32_t m = 0; m < k; m++) {
				struct img_epoll_item prev;
				item(f->extra, &e, m, &prev);
				s.toff += prev.fd == it.fd;
			}
			if (!(no = append_zeroed(&os, n, sizeof(*os))) || holder(a, i, &s, no)) {
				free(os);
				return -1;
			}
			n++;
		}
		if (!n)
			continue;
		if (!(x = realloc(f->extra, f->d.extra_len + n * sizeof(*os)))) {
			free(os);
			err_set("out of memory");
			return -1;
		}
		memcpy(x + f->d.extra_len, os, n * sizeof(*os));
		e.flags |= IMG_EPOLL_OTHER;
		memcpy(x, &e, sizeof(e));
		f->extra = x;
		f->d.extra_len += n * sizeof(*os);
		free(os);
	}
	return 0;
}

/* An empty instance: its watches name fds that may not be made yet
 * (fd_epoll_register adds them). */
static int make_epoll(const struct fd_entry *f, struct fd_pipes *pipes)
{
	(void)pipes;
	return fd_made(epoll_create1(EPOLL_CLOEXEC), f);
}

/* Add the watch the program added as fd tfd, on the description fd via
 * holds now: tfd is that description for a moment (what was at tfd, if
 * anything, is put back with its close-on-exec flag), so that the watch
 * is the one the program's epoll_ctl calls name as tfd.  No lock can be
 * lost by the moment's close: the restorer takes the POSIX locks later. */
static int watch(int epfd, int tfd, int via, struct epoll_event *ev)
{
	int saved = -1, fdflags, rc, err;

	if (via == tfd)
		return epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, ev);
	fdflags = fcntl(tfd, F_GETFD);
	if (fdflags >= 0 && (saved = fcntl(tfd, F_DUPFD_CLOEXEC, 0)) < 0)
		return -1;
	if (dup2(via, tfd) < 0) {
		err = errno;
		close(saved);
		errno = err;
		return -1;
	}
	rc = epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, ev);
	err = errno;
	if (saved >= 0) {
		dup3(saved, tfd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0);
		close(saved);
	} else {
		close(tfd);
	}
	errno = err;
	return rc;
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
			int32_t via;

			/* One only another process held: added before the
			 * tree forked (fd_epoll_register_other). */
			if ((via = item(f->extra, &e, k, &it)) < 0)
				continue;
			ev.events = it.events;
			ev.data.u64 = it.data;
			/* EEXIST: a process of the tree that shares this epoll
			 * instance registered the watch already. */
			if (watch(f->d.fd, it.fd, via, &ev) && errno != EEXIST) {
				err_sys("fd %d: cannot watch fd %d with epoll again", f->d.fd,
					it.fd);
				return -1;
			}
		}
	}
	return 0;
}

/* made[k][i]: the fd ckpt-remap made for file i of ims[k], or -1. */
static int made_fd(const struct image *const ims[], int *const made[], size_t n, pid_t pid, int fd)
{
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; ims[k]->proc.pid == pid && i < ims[k]->nfiles; i++)
			if (ims[k]->files[i].d.fd == fd)
				return made[k][i];
	return -1;
}

int fd_epoll_register_other(const struct image *const ims[], int *const made[], size_t n)
{
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < ims[k]->nfiles; i++) {
			const struct fd_entry *f = &ims[k]->files[i];
			struct img_epoll e;
			uint32_t other = 0;

			if (f->d.kind != IMG_FD_EPOLL)
				continue;
			memcpy(&e, f->extra, sizeof(e));
			for (uint32_t w = 0; (e.flags & IMG_EPOLL_OTHER) && w < e.n; w++) {
				struct img_epoll_item it;
				struct img_epoll_other o;
				struct epoll_event ev;
				int h;

				if (item(f->extra, &e, w, &it) >= 0)
					continue;
				memcpy(&o, f->extra + others_at(&e) + other++ * sizeof(o),
				       sizeof(o));
				ev.events = it.events;
				ev.data.u64 = it.data;
				if ((h = made_fd(ims, made, n, o.pid, o.fd)) < 0 ||
				    made[k][i] < 0) {
					err_set(
					    "pid %d: fd %d: cannot watch fd %d with epoll again: "
					    "its file, fd %d of pid %d, is not in the image",
					    ims[k]->proc.pid, f->d.fd, it.fd, o.fd, o.pid);
					return -1;
				}
				/* EEXIST: another process shares this instance. */
				if (watch(made[k][i], it.fd, h, &ev) && errno != EEXIST) {
					err_sys(
					    "pid %d: fd %d: cannot watch fd %d with epoll again",
					    ims[k]->proc.pid, f->d.fd, it.fd);
					return -1;
				}
			}
		}
	return 0;
}

static void show_epoll(FILE *out, const struct fd_entry *f, int json)
{
	struct img_epoll v;
	uint32_t moved = 0, other = 0;

	memcpy(&v, f->extra, sizeof(v));
	fd_put_num(out, json, "watches", v.n);
	for (uint32_t k = 0; k < v.n; k++) {
		struct img_epoll_item it;
		int32_t via = item(f->extra, &v, k, &it);

		moved += via != it.fd && via >= 0;
		other += via < 0;
	}
	if (moved) /* watches whose file is at another fd now */
		fd_put_num(out, json, "moved", moved);
	if (other) /* ...and whose file only another process holds */
		fd_put_num(out, json, "in_other_process", other);
}

const struct fd_ops fd_epoll_ops = {
    .name = "epoll",
    .anon = "anon_inode:[eventpoll]",
    .capture = capture_epoll,
    .join = join_epolls,
    .check = check_epoll,
    .make = make_epoll,
    .show = show_epoll,
};
