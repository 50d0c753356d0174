/* epoll.c: epoll instances: each watch (fd, events, data), registered again once every fd is
 * at its number. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

/* One entry of its fdinfo, "tfd: 5 events: 19 data: 5 pos:0 ino:3c51a",
 * into it; -1 naming the fd. */
static int parse_item(const struct fd_source *src, int fd, const char *p, struct img_epoll_item *it)
{
	unsigned long long data, ino;
	unsigned events;
	char path[64];
	struct stat sb;

	if (sscanf(p, "tfd: %d events: %x data: %llx pos:%*d ino:%llx", &it->fd, &events, &data,
		   &ino) != 4) {
		err_set("pid %d: fd %d: cannot parse its epoll entries", src->pid, fd);
		return -1;
	}
	it->events = events;
	it->data = data;
	/* An entry outlives the fd it was added by: it must still
	 * be the file at that number to be added again. */
	if (stat(fmt_path(path, sizeof(path), "/proc/%d/fd/%d", src->pid, it->fd), &sb) ||
	    sb.st_ino != ino) {
		err_set("pid %d: fd %d: epoll watches a file that is no longer fd %d; "
			"not supported",
			src->pid, fd, it->fd);
		return -1;
	}
	return 0;
}

static int capture_epoll(const struct fd_source *src, struct fd_entry *f)
{
	struct img_epoll e = {0};
	struct img_epoll_item *items = NULL;
	const char *p = src->info;
	int rc = -1;

	while ((p = strstr(p, "tfd:"))) {
		struct img_epoll_item it, *ni;

		if (parse_item(src, f->d.fd, p, &it))
			goto out;
		if (!(ni = append_zeroed(&items, e.n, sizeof(*items))))
			goto out;
		*ni = it;
		e.n++;
		p += 4;
	}
	rc = fd_set_extra(f, &e, sizeof(e), items, e.n * sizeof(*items));
out:
	free(items);
	return rc;
}

static int check_epoll(const unsigned char *x, uint32_t n)
{
	struct img_epoll e;

	if (n < sizeof(e))
		return -1;
	memcpy(&e, x, sizeof(e));
	if (e.n > (1u << 20) || n != sizeof(e) + (uint64_t)e.n * sizeof(struct img_epoll_item))
		return -1;
	return 0;
}

/* An empty instance: its watches name fds that may not be made yet
 * (fd_epoll_register adds them). */
static int make_epoll(const struct fd_entry *f, struct fd_pipes *pipes)
{
	(void)pipes;
	return fd_made(epoll_create1(EPOLL_CLOEXEC), f);
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
			/* EEXIST: a process of the tree that shares this epoll
			 * instance registered the watch already. */
			if (epoll_ctl(f->d.fd, EPOLL_CTL_ADD, it.fd, &ev) && errno != EEXIST) {
				err_sys("fd %d: cannot watch fd %d with epoll again", f->d.fd,
					it.fd);
				return -1;
			}
		}
	}
	return 0;
}

static void show_epoll(FILE *out, const struct fd_entry *f, int json)
{
	struct img_epoll v;

	memcpy(&v, f->extra, sizeof(v));
	fd_put_num(out, json, "watches", v.n);
}

const struct fd_ops fd_epoll_ops = {
    .name = "epoll",
    .anon = "anon_inode:[eventpoll]",
    .capture = capture_epoll,
    .check = check_epoll,
    .make = make_epoll,
    .show = show_epoll,
};
