/* unixpair.c: unix socketpairs and connections whose two ends the process or tree holds, with
 * what is queued. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

static const char *family_name(int family)
{
	switch (family) {
	case AF_INET:
		return "an inet";
	case AF_INET6:
		return "an inet6";
	case AF_NETLINK:
		return "a netlink";
	case AF_PACKET:
		return "a packet";
	case AF_VSOCK:
		return "a vsock";
	default:
		return "a";
	}
}

/* The messages queued for reading on socket s, peeked out one after the
 * other at a moving SO_PEEK_OFF (set back afterwards), so that the
 * program's socket keeps every one.  A stream's bytes come as one
 * message; datagrams keep their boundaries. */
static int peek_socket(pid_t pid, int fd, int s, int type, struct img_unix *u, unsigned char **data)
{
	size_t cap = 1 << 20, len = 0;
	unsigned char *buf = malloc(cap), *nb;
	int old = -1, zero = 0, rc = -1;
	socklen_t sl = sizeof(old);

	*data = NULL;
	if (!buf) {
		err_set("out of memory");
		return -1;
	}
	if (getsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &old, &sl) ||
	    setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero))) {
		err_sys("pid %d: fd %d: cannot set SO_PEEK_OFF to read its queue", pid, fd);
		free(buf);
		return -1;
	}
	for (;;) {
		struct iovec iov;
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		size_t room;
		ssize_t n;

		if (cap - len < (64 << 10) + 4) {
			if (cap >= (256u << 20)) {
				err_set("pid %d: fd %d: more than 256 MiB queued on a unix socket",
					pid, fd);
				goto out;
			}
			if (!(nb = realloc(buf, cap * 2))) {
				err_set("out of memory");
				goto out;
			}
			buf = nb;
			cap *= 2;
		}
		room = cap - len - 4;
		iov = (struct iovec){buf + len + 4, room};
		n = recvmsg(s, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			err_sys("pid %d: fd %d: cannot read what its unix socket holds", pid, fd);
			goto out;
		}
		/* 0: end of a stream whose peer shut down, or an empty
		 * datagram, which a moving peek offset cannot get past. */
		if (n == 0)
			break;
		if ((size_t)n > room || (mh.msg_flags & MSG_TRUNC)) {
			err_set("pid %d: fd %d: a datagram of %zd bytes queued on a unix socket is "
				"too large",
				pid, fd, n);
			goto out;
		}
		if (mh.msg_flags & MSG_CTRUNC) {
			err_set("pid %d: fd %d: a message queued on a unix socket carries file "
				"descriptors or credentials; not supported",
				pid, fd);
			goto out;
		}
		if (type == SOCK_STREAM && u->nmsg) {
			/* One message: add to its length, move the bytes down. */
			uint32_t l;
			memcpy(&l, buf, 4);
			memmove(buf + len, buf + len + 4, n);
			l += n;
			memcpy(buf, &l, 4);
			len += n;
		} else {
			uint32_t l = n;
			memcpy(buf + len, &l, 4);
			len += 4 + n;
			u->nmsg++;
		}
	}
	u->data_len = len;
	*data = buf;
	buf = NULL;
	rc = 0;
out:
	setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &old, sizeof(old));
	free(buf);
	return rc;
}

/* A socket: one end of a unix socketpair is captured (with what is
 * queued for it to read); whether its peer is in the process too is
 * checked once every fd is known (join_unix). */
static int capture_unix(const struct fd_source *src, struct fd_entry *f)
{
	struct img_unix u = {0};
	struct fd_diag di;
	unsigned char *data = NULL;
	const char *link = src->link;
	pid_t pid = src->pid;
	int fd = f->d.fd, s, family = -1, type = -1, rc = -1;
	socklen_t sl = sizeof(int);

	if ((s = fd_getfd(pid, fd)) < 0)
		return -1;
	if (getsockopt(s, SOL_SOCKET, SO_DOMAIN, &family, &sl) ||
	    getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &sl)) {
		err_sys("pid %d: fd %d (%s): cannot ask the socket its family", pid, fd, link);
		goto out;
	}
	if (family != AF_UNIX) {
		err_set("pid %d: fd %d is %s socket (%s, family %d); not supported yet", pid, fd,
			family_name(family), link, family);
		goto out;
	}
	if (fd_unix_diag(f->d.ino, &di)) {
		err_sys("pid %d: fd %d (%s): cannot query the unix socket with sock_diag", pid, fd,
			link);
		goto out;
	}
	/* A connection that carries names (made by connect and accept) is
	 * taken like a socketpair; listening and unconnected sockets are
	 * sock.c's, so this is only when sock_diag changed its mind. */
	if (di.state == 10 /* TCP_LISTEN */ || !di.peer) {
		err_set("pid %d: fd %d is a unix socket (%s) that is %s; not supported", pid, fd,
			link, di.state == 10 ? "listening" : "not connected");
		goto out;
	}
	if (type != SOCK_STREAM && type != SOCK_DGRAM && type != SOCK_SEQPACKET) {
		err_set("pid %d: fd %d is a unix socket (%s) of type %d; not supported", pid, fd,
			link, type);
		goto out;
	}
	u.type = type;
	u.id = di.peer < f->d.ino ? di.peer : f->d.ino;
	u.end = f->d.ino > di.peer;
	u.shutdown = di.shutdown;
	sl = sizeof(int);
	getsockopt(s, SOL_SOCKET, SO_SNDBUF, &u.sndbuf, &sl);
	sl = sizeof(int);
	getsockopt(s, SOL_SOCKET, SO_RCVBUF, &u.rcvbuf, &sl);
	if (peek_socket(pid, fd, s, type, &u, &data))
		goto out;
	rc = fd_set_extra(f, &u, sizeof(u), data, u.data_len);
out:
	free(data);
	close(s);
	return rc;
}

/* Whether some fd of the tree is the socket of inode ino. */
static int in_tree(const struct fd_all *a, uint64_t ino)
{
	for (size_t k = 0; k < a->n; k++)
		if (a->f[k]->d.ino == ino)
			return 1;
	return 0;
}

/* The refusal of fd i, a unix socket whose peer is not among the tree's
 * connected unix sockets: named after the peer's address when it has one
 * (a server's path, asked of the stopped process's socket again). */
static void refuse_lone(const struct fd_all *a, size_t i)
{
	const struct fd_entry *f = a->f[i];
	struct sockaddr_un sa;
	socklen_t sl = sizeof(sa);
	struct fd_diag di;
	char name[sizeof(sa.sun_path) + 2];
	size_t n = 0;
	int s = fd_getfd(a->pid[i], f->d.fd);

	if (s >= 0 && !getpeername(s, (void *)&sa, &sl) &&
	    sl > offsetof(struct sockaddr_un, sun_path) && sl <= sizeof(sa)) {
		size_t len = sl - offsetof(struct sockaddr_un, sun_path), k = 0;

		if (!sa.sun_path[0]) {
			name[n++] = '@';
			k = 1;
		}
		for (; k < len && n + 1 < sizeof(name); k++) {
			char c = sa.sun_path[k];
			if (!c && sa.sun_path[0])
				break;
			name[n++] = c >= ' ' && c <= '~' ? c : '?';
		}
	}
	name[n] = 0;
	if (s >= 0)
		close(s);
	if (n && !fd_unix_diag(f->d.ino, &di) && di.peer && in_tree(a, di.peer))
		err_set("pid %d: fd %d is a unix socket (%s) connected to %s, which is not "
			"connected back to it; not supported yet",
			a->pid[i], f->d.fd, f->path, name);
	else if (n)
		err_set("pid %d: fd %d is a unix socket (%s) connected to %s, a socket outside "
			"the dumped processes; not supported yet",
			a->pid[i], f->d.fd, f->path, name);
	else
		err_set("pid %d: fd %d is a unix socket (%s) whose peer is not in the %s; not "
			"supported",
			a->pid[i], f->d.fd, f->path,
			a->pid[0] == a->pid[a->n - 1] ? "process" : "tree");
}

/* Both ends of every unix socketpair (or connection, made by connect and
 * accept: names aside, the same) must be in the tree; the first fd of
 * each end carries what is queued for it. */
static int join_unix(struct fd_all *a)
{
	for (size_t i = 0; i < a->n; i++) {
		struct fd_entry *f = a->f[i];
		struct img_unix u, v;
		int ends = 0, first = 1;

		if (f->d.kind != IMG_FD_UNIX)
			continue;
		memcpy(&u, f->extra, sizeof(u));
		for (size_t k = 0; k < a->n; k++) {
			if (a->f[k]->d.kind != IMG_FD_UNIX)
				continue;
			memcpy(&v, a->f[k]->extra, sizeof(v));
			if (v.id != u.id)
				continue;
			ends |= 1 << v.end;
			if (k < i && v.end == u.end)
				first = 0;
		}
		if (ends != 3) {
			refuse_lone(a, i);
			return -1;
		}
		if (!first && u.data_len) {
			u.data_len = 0;
			u.nmsg = 0;
			memcpy(f->extra, &u, sizeof(u));
			fd_drop_data(f, sizeof(u));
		}
	}
	return 0;
}

static int check_unix(const unsigned char *x, uint32_t n)
{
	struct img_unix u;
	uint64_t off = sizeof(u);

	if (n < sizeof(u))
		return -1;
	memcpy(&u, x, sizeof(u));
	if (u.end > 1 || u.shutdown > 3 || n != sizeof(u) + (uint64_t)u.data_len ||
	    (u.type != SOCK_STREAM && u.type != SOCK_DGRAM && u.type != SOCK_SEQPACKET))
		return -1;
	for (uint32_t k = 0; k < u.nmsg; k++) {
		uint32_t l;
		if (off + 4 > n)
			return -1;
		memcpy(&l, x + off, 4);
		off += 4 + (uint64_t)l;
	}
	return off == n ? 0 : -1;
}

/* One message on a non-blocking socket; a stream's in as many sends as it
 * takes.  There is room: the program's socket held it. */
static int send_msg(int s, const unsigned char *buf, size_t len, int stream)
{
	ssize_t n;

	do {
		n = send(s, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return -1;
		if (!stream && (size_t)n != len) {
			errno = EMSGSIZE;
			return -1;
		}
		buf += n;
		len -= n;
	} while (stream && len);
	return 0;
}

/* One end of a unix socketpair.  The pair is made (non-blocking, so that
 * putting bytes back cannot hang) at the first fd of either end; each
 * end's queue goes in through the other end, and the shutdowns are done
 * once both ends' queues are in, as a shut end could not send. */
static int make_unix(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_unix u;
	struct fd_pipe *fp;
	const unsigned char *x = f->extra + sizeof(u);

	memcpy(&u, f->extra, sizeof(u));
	if (!(fp = fd_find_pair(pipes, IMG_FD_UNIX, u.id))) {
		if (!(fp = fd_new_pair(pipes, IMG_FD_UNIX, u.id)))
			return -1;
		if (socketpair(AF_UNIX, u.type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fp->end)) {
			err_sys("fd %d: cannot make a unix socketpair", f->d.fd);
			return -1;
		}
		pipes->n++;
	}
	if (!(fp->seen & (1u << u.end))) {
		int s = fp->end[u.end], peer = fp->end[!u.end];

		/* getsockopt gave twice what was set; above wmem_max and
		 * rmem_max an unprivileged user gets the maximum. */
		if (u.sndbuf)
			setsockopt(s, SOL_SOCKET, SO_SNDBUF, &(int){u.sndbuf / 2}, sizeof(int));
		if (u.rcvbuf)
			setsockopt(s, SOL_SOCKET, SO_RCVBUF, &(int){u.rcvbuf / 2}, sizeof(int));
		/* The bytes queued here are charged to the peer's send buffer:
		 * until the peer's own FILE record sets the size it had, make
		 * it as large as we may (SO_SNDBUFFORCE needs CAP_NET_ADMIN). */
		if (u.nmsg && !(fp->seen & (1u << !u.end)) &&
		    setsockopt(peer, SOL_SOCKET, SO_SNDBUFFORCE, &(int){u.data_len + (1 << 20)},
			       sizeof(int)))
			setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &(int){INT_MAX / 2}, sizeof(int));
		for (uint32_t k = 0; k < u.nmsg; k++) {
			uint32_t l;

			memcpy(&l, x, 4);
			if (send_msg(peer, x + 4, l, u.type == SOCK_STREAM)) {
				err_sys("fd %d: cannot put %u queued bytes back in its unix socket",
					f->d.fd, l);
				return -1;
			}
			x += 4 + l;
		}
		fp->shut[u.end] = u.shutdown;
		fp->seen |= 1u << u.end;
		if (fp->seen == 3)
			for (int e = 0; e < 2; e++)
				if (fp->shut[e] && shutdown(fp->end[e], fp->shut[e] - 1) &&
				    errno != ENOTCONN) {
					err_sys("fd %d: cannot shut its unix socketpair down",
						f->d.fd);
					return -1;
				}
	}
	return fd_dup_end(fp->end[u.end], f, "a unix socket");
}

static void show_unix(FILE *out, const struct fd_entry *f, int json)
{
	struct img_unix u;

	memcpy(&u, f->extra, sizeof(u));
	fprintf(out, json ? ",\"type\":\"%s\"" : " %s",
		u.type == SOCK_STREAM  ? "stream"
		: u.type == SOCK_DGRAM ? "dgram"
				       : "seqpacket");
	fd_put_num(out, json, "pair", u.id);
	fd_put_num(out, json, "end", u.end);
	fd_put_num(out, json, "queued", u.data_len - 4ull * u.nmsg);
	fd_put_num(out, json, "messages", u.nmsg);
	fd_put_num(out, json, "shutdown", u.shutdown);
}

const struct fd_ops fd_unix_ops = {
    .name = "unix",
    .capture = capture_unix,
    .join = join_unix,
    .check = check_unix,
    .make = make_unix,
    .show = show_unix,
};
