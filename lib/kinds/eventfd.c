/* eventfd.c: eventfds: the count and whether it counts as a semaphore. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kinds/kinds-internal.h"

static int capture_eventfd(const struct fd_source *src, struct fd_entry *f)
{
	struct img_eventfd e = {0};
	const char *v;

	if ((v = fd_info_field(src->info, "eventfd-count")))
		e.count = strtoull(v, NULL, 16);
	if ((v = fd_info_field(src->info, "eventfd-semaphore")))
		e.semaphore = atoi(v);
	return fd_set_extra(f, &e, sizeof(e), NULL, 0);
}

static int check_eventfd(const unsigned char *x, uint32_t n)
{
	(void)x;
	return n == sizeof(struct img_eventfd) ? 0 : -1;
}

static int make_eventfd(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_eventfd e;
	int fd;

	(void)pipes;
	memcpy(&e, f->extra, sizeof(e));
	fd = eventfd(0, EFD_CLOEXEC | ((f->d.flags & O_NONBLOCK) ? EFD_NONBLOCK : 0) |
			    (e.semaphore ? EFD_SEMAPHORE : 0));
	if (fd >= 0 && e.count && write(fd, &e.count, 8) != 8) {
		close(fd);
		fd = -1;
	}
	return fd_made(fd, f);
}

static void show_eventfd(FILE *out, const struct fd_entry *f, int json)
{
	struct img_eventfd v;

	memcpy(&v, f->extra, sizeof(v));
	fd_put_num(out, json, "count", v.count);
	fd_put_num(out, json, "semaphore", v.semaphore);
}

const struct fd_ops fd_eventfd_ops = {
    .name = "eventfd",
    .anon = "anon_inode:[eventfd]",
    .capture = capture_eventfd,
    .check = check_eventfd,
    .make = make_eventfd,
    .show = show_eventfd,
};
