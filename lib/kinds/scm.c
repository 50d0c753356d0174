/* scm.c: files in flight, the file descriptors a message queued on a unix socket carries
 * (SCM_RIGHTS): kept at dump time as FILE records of their own, passed again at restore. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

int32_t fd_flight_add(struct fd_flight *fl, int fd)
{
	int *p = append_zeroed(&fl->fd, fl->n, sizeof(int)), *q;

	if (!p || !(q = append_zeroed(&fl->from, fl->n, sizeof(int)))) {
		close(fd);
		return 0;
	}
	*p = fd;
	*q = fl->cur;
	fl->n++;
	return -1 - fd;
}

size_t fd_scm_fds(struct msghdr *mh, int *fds, size_t max)
{
	size_t n = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t k = 0; CMSG_LEN((k + 1) * sizeof(int)) <= c->cmsg_len; k++) {
			int x;
			memcpy(&x, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
			if (n < max)
				fds[n++] = x;
			else
				close(x);
		}
	}
	return n;
}

/* What the restore makes from its FILE record alone.  Not: a standard
 * stream, a terminal, an epoll instance (its watches name fd numbers),
 * pidfds and namespace files (made inside the process), memory objects
 * (read through the process's fd), message queues, TCP connections. */
int fd_flight_kind(uint32_t kind)
{
	switch (kind) {
	case IMG_FD_REG:
	case IMG_FD_DIR:
	case IMG_FD_CHR:
	case IMG_FD_PIPE:
	case IMG_FD_FIFO:
	case IMG_FD_EVENTFD:
	case IMG_FD_SIGNALFD:
	case IMG_FD_TIMERFD:
	case IMG_FD_INOTIFY:
	case IMG_FD_UNIX:
	case IMG_FD_SOCK:
	case IMG_FD_OPATH:
		return 1;
	default:
		return 0;
	}
}

int fd_flight_made(struct fd_pipes *pipes, const struct fd_entry *f, int fd)
{
	struct fd_made *m;
	int d;

	if (f->d.fd >= 0)
		return 0;
	if ((d = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		err_sys("file in flight %d: cannot duplicate", f->d.fd);
		return -1;
	}
	if (!(m = append_zeroed(&pipes->fl, pipes->nfl, sizeof(*m)))) {
		close(d);
		return -1;
	}
	*m = (struct fd_made){f->d.fd, d};
	pipes->nfl++;
	return 0;
}

int fd_flight_get(const struct fd_pipes *pipes, int32_t mark, int fd)
{
	for (size_t i = 0; i < pipes->nfl; i++)
		if (pipes->fl[i].mark == mark)
			return pipes->fl[i].fd;
	err_set("fd %d: a message queued on it carries file in flight %d, which the image does "
		"not have",
		fd, mark);
	return -1;
}

ssize_t fd_send_rights(int s, const void *buf, size_t len, const void *to, socklen_t tl,
		       const unsigned char *marks, uint32_t n, const struct fd_pipes *pipes, int fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(253 * sizeof(int))];
	} ctl;
	struct iovec iov = {(void *)buf, len};
	struct msghdr mh = {
	    .msg_name = (void *)to, .msg_namelen = tl, .msg_iov = &iov, .msg_iovlen = 1};
	ssize_t r;

	if (n > 253) {
		errno = EINVAL;
		err_sys("fd %d: a message queued on it carries %u fds", fd, n);
		return -1;
	}
	if (n) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = &ctl;
		mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n * sizeof(int));
		for (uint32_t k = 0; k < n; k++) {
			int32_t mark;
			int x;
			memcpy(&mark, marks + 4 * k, 4);
			if ((x = fd_flight_get(pipes, mark, fd)) < 0)
				return -1;
			memcpy(CMSG_DATA(c) + k * sizeof(int), &x, sizeof(int));
		}
	}
	r = sendmsg(s, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (r < 0)
		err_sys("fd %d: cannot put a message of %zu bytes and %u fds back in its queue", fd,
			len, n);
	return r;
}
