/* unixpair.c: unix socketpairs and connections whose two ends the process or tree holds, with
 * what is queued. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
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

/* One peek at offset off of at most room bytes: the fds it brought into
 * fds (*nfds), its flags into *flags.  Its credentials (SCM_CREDENTIALS,
 * for SO_PASSCRED) are not kept: the restored bytes carry the
 * restorer's. */
static ssize_t peek_at(int s, int off, void *buf, size_t room, int *fds, size_t *nfds, int *flags)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(253 * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
	} ctl;
	struct iovec iov = {buf, room};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl)};
	ssize_t n;

	*nfds = 0;
	if (setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)))
		return -1;
	n = recvmsg(s, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -1;
	*nfds = fd_scm_fds(&mh, fds, 253);
	*flags = mh.msg_flags;
	return n;
}

static void close_fds(const int *fds, size_t n)
{
	for (size_t k = 0; k < n; k++)
		close(fds[k]);
}

/* A message into q, in the layout of IMG_UNIX_RIGHTS (length, count of
 * fds, their marks, bytes); a stream's bytes without fds join the last
 * message if it has none either (*last: its offset, or SIZE_MAX). */
static int add_msg(struct fd_buf *q, size_t *last, int stream, const unsigned char *p, uint32_t n,
		   const int32_t *marks, uint32_t nm, struct img_unix *u)
{
	uint32_t h[2] = {n, nm};

	if (stream && !nm && *last != SIZE_MAX) {
		uint32_t l;
		memcpy(&l, q->b + *last, 4);
		memcpy(&h[1], q->b + *last + 4, 4);
		if (!h[1]) {
			l += n;
			memcpy(q->b + *last, &l, 4);
			return fd_buf_put(q, p, n);
		}
	}
	h[1] = nm;
	*last = nm ? SIZE_MAX : q->len;
	u->nmsg++;
	return fd_buf_put(q, h, 8) || fd_buf_put(q, marks, 4 * nm) || fd_buf_put(q, p, n);
}

/* The layout without fds: each message its length and bytes. */
static void drop_counts(struct fd_buf *q, uint32_t nmsg)
{
	size_t r = 0, w = 0;

	for (uint32_t k = 0; k < nmsg; k++) {
		uint32_t l;
		memcpy(&l, q->b + r, 4);
		memmove(q->b + w, q->b + r, 4);
		memmove(q->b + w + 4, q->b + r + 8, l);
		r += 8 + l;
		w += 4 + l;
	}
	q->len = w;
}

/* The messages queued for reading on socket s, peeked out one after the
 * other at a moving SO_PEEK_OFF (set back afterwards), so that the
 * program's socket keeps every one.  A stream's bytes come as one
 * message, but for those that carry fds: a stream peek reads on through
 * messages without fds and stops after the first with them
 * (unix_stream_read_generic), and a peek that stops short of it still
 * gives its fds, so where that message starts is not seen: it takes every
 * byte since the one before that carried fds.  Datagrams keep their
 * boundaries.  The fds a message carries (the copies the peek gives us)
 * go to fl, each marked in the message; with no fl, or in flight itself
 * (opts), such a message is refused. */
static int peek_socket(pid_t pid, int fd, const char *link, int s, int type, struct img_unix *u,
		       unsigned char **data, struct fd_flight *fl, uint32_t opts)
{
	size_t room = 1 << 20, total = 0, last = SIZE_MAX;
	unsigned char *buf = malloc(room);
	int old = -1, rc = -1, off = 0, any = 0, stream = type == SOCK_STREAM;
	socklen_t sl = sizeof(old);
	struct fd_buf q = {0};

	*data = NULL;
	u->nmsg = 0;
	if (!buf) {
		err_set("out of memory");
		return -1;
	}
	if (getsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &old, &sl) ||
	    setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off))) {
		err_sys("pid %d: fd %d: cannot set SO_PEEK_OFF to read its queue", pid, fd);
		free(buf);
		return -1;
	}
	for (;;) {
		int fds[253], flags = 0;
		int32_t marks[253];
		size_t nf;
		ssize_t n = peek_at(s, off, buf, room, fds, &nf, &flags);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			err_sys("pid %d: fd %d: cannot read what its unix socket holds", pid, fd);
			goto out;
		}
		if (nf && (opts & FD_OPT_INFLIGHT)) {
			close_fds(fds, nf);
			err_set("a unix socket (%s) that has file descriptors queued on it too",
				link);
			goto out;
		}
		if ((nf && !fl) || (flags & MSG_CTRUNC)) {
			close_fds(fds, nf);
			err_set(
			    "pid %d: fd %d is a unix socket (%s): a message queued on it carries "
			    "file descriptors (SCM_RIGHTS); not supported",
			    pid, fd, link);
			goto out;
		}
		/* 0: end of a stream whose peer shut down, or an empty
		 * datagram, which a moving peek offset cannot get past. */
		if (n == 0) {
			close_fds(fds, nf);
			break;
		}
		if ((size_t)n > room || (flags & MSG_TRUNC)) {
			close_fds(fds, nf);
			err_set("pid %d: fd %d: a datagram of %zd bytes queued on a unix socket is "
				"too large",
				pid, fd, n);
			goto out;
		}
		for (size_t k = 0; k < nf; k++)
			if (!(marks[k] = fd_flight_add(fl, fds[k]))) {
				close_fds(fds + k + 1, nf - k - 1);
				goto out;
			}
		any |= nf > 0;
		if (add_msg(&q, &last, stream, buf, n, marks, nf, u))
			goto out;
		total += n;
		off += n;
		if (total > (256u << 20)) {
			err_set("pid %d: fd %d: more than 256 MiB queued on a unix socket", pid,
				fd);
			goto out;
		}
	}
	if (any)
		u->flags |= IMG_UNIX_RIGHTS;
	else
		drop_counts(&q, u->nmsg);
	u->data_len = q.len;
	*data = q.b;
	q.b = NULL;
	rc = 0;
out:
	setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &old, sizeof(old));
	free(buf);
	free(q.b);
	return rc;
}

/* A unix address as getsockname gives it, in buf (at most a sockaddr_un):
 * its length, 0 when unnamed. */
static uint8_t unix_name(int s, int peer, struct sockaddr_un *buf)
{
	socklen_t sl = sizeof(*buf);

	memset(buf, 0, sizeof(*buf));
	if ((peer ? getpeername : getsockname)(s, (void *)buf, &sl) ||
	    sl <= offsetof(struct sockaddr_un, sun_path))
		return 0;
	return sl > sizeof(*buf) ? sizeof(*buf) : sl;
}

/* The parts of a unix record: its fixed part, its names, its queue. */
struct unix_rec {
	struct img_unix u;
	const unsigned char *own, *peer, *data;
};

static void unix_rec(const struct fd_entry *f, struct unix_rec *r)
{
	memcpy(&r->u, f->extra, sizeof(r->u));
	r->own = f->extra + sizeof(r->u);
	r->peer = r->own + r->u.own_len;
	r->data = r->peer + r->u.peer_len;
}

/* Write r back into f (its queue data_len bytes at data). */
static int unix_set(struct fd_entry *f, const struct unix_rec *r)
{
	size_t nl = r->u.own_len + r->u.peer_len, len = sizeof(r->u) + nl + r->u.data_len;
	unsigned char *x = malloc(len + 1);

	if (!x) {
		err_set("out of memory");
		return -1;
	}
	memcpy(x, &r->u, sizeof(r->u));
	memcpy(x + sizeof(r->u), r->own, nl);
	if (r->u.data_len)
		memcpy(x + sizeof(r->u) + nl, r->data, r->u.data_len);
	free(f->extra);
	f->extra = x;
	f->d.extra_len = len;
	return 0;
}

/* A socket: one end of a unix socketpair or connection is captured with
 * its names and what is queued for it to read; whether its peer is in the
 * process too is checked once every fd is known (join_unix).  A client
 * whose connection waits in a listener's queue has a peer with no inode
 * yet: IMG_UNIX_PENDING, placed in that queue by join_unix. */
static int capture_unix(const struct fd_source *src, struct fd_entry *f)
{
	struct img_unix u = {0};
	struct fd_diag di;
	struct sockaddr_un own, peer;
	unsigned char *data = NULL, *x = NULL;
	const char *link = src->link;
	pid_t pid = src->pid;
	int fd = f->d.fd, s, type = -1, on = 0, rc = -1;
	socklen_t sl = sizeof(int);

	if ((s = fd_getfd(pid, fd)) < 0)
		return -1;
	/* A unix socket (fd_sock_kind sends only those here): its type. */
	if (getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &sl)) {
		err_sys("pid %d: fd %d (%s): cannot ask the socket its type", pid, fd, link);
		goto out;
	}
	if (fd_unix_diag(f->d.ino, &di)) {
		err_sys("pid %d: fd %d (%s): cannot query the unix socket with sock_diag", pid, fd,
			link);
		goto out;
	}
	if (type != SOCK_STREAM && type != SOCK_DGRAM && type != SOCK_SEQPACKET) {
		err_set("pid %d: fd %d is a unix socket (%s) of type %d; not supported", pid, fd,
			link, type);
		goto out;
	}
	/* Listening and unconnected sockets are sock.c's, so this is only
	 * when sock_diag changed its mind. */
	if (di.state == 10 /* TCP_LISTEN */ ||
	    (!di.peer && (type == SOCK_DGRAM || di.state != 1 /* TCP_ESTABLISHED */))) {
		err_set("pid %d: fd %d is a unix socket (%s) that is %s; not supported", pid, fd,
			link, di.state == 10 ? "listening" : "not connected");
		goto out;
	}
	u.type = type;
	if (di.peer) {
		u.id = di.peer < f->d.ino ? di.peer : f->d.ino;
		u.end = f->d.ino > di.peer;
	} else if (di.shutdown == 3) {
		/* Its peer closed (the kernel shut it down both ways): it
		 * comes back closed, as --ext-unix=close makes one, with
		 * what it had left to read. */
		u.id = f->d.ino;
		u.flags |= IMG_UNIX_EXT_CLOSE;
	} else {
		u.id = f->d.ino;
		u.flags |= IMG_UNIX_PENDING;
	}
	u.shutdown = di.shutdown;
	sl = sizeof(int);
	if (!getsockopt(s, SOL_SOCKET, SO_PASSCRED, &on, &sl) && on)
		u.flags |= IMG_UNIX_PASSCRED;
	u.own_len = unix_name(s, 0, &own);
	u.peer_len = unix_name(s, 1, &peer);
	sl = sizeof(int);
	getsockopt(s, SOL_SOCKET, SO_SNDBUF, &u.sndbuf, &sl);
	sl = sizeof(int);
	getsockopt(s, SOL_SOCKET, SO_RCVBUF, &u.rcvbuf, &sl);
	if (peek_socket(pid, fd, link, s, type, &u, &data, src->flight, src->opts))
		goto out;
	if (!(x = malloc(u.own_len + u.peer_len + u.data_len + 1))) {
		err_set("out of memory");
		goto out;
	}
	memcpy(x, &own, u.own_len);
	memcpy(x + u.own_len, &peer, u.peer_len);
	if (u.data_len)
		memcpy(x + u.own_len + u.peer_len, data, u.data_len);
	rc = fd_set_extra(f, &u, sizeof(u), x, u.own_len + u.peer_len + u.data_len);
out:
	free(x);
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

/* Whether fd k of the tree is a listening unix socket; its address in *sa
 * and *len. */
static int unix_listener_at(const struct fd_all *a, size_t k, const unsigned char **sa,
			    uint32_t *len)
{
	const struct fd_entry *f = a->f[k];
	struct img_sock ks;

	if (f->d.kind != IMG_FD_SOCK || f->d.extra_len < sizeof(ks))
		return 0;
	memcpy(&ks, f->extra, sizeof(ks));
	if (ks.family != AF_UNIX || ks.state != IMG_SOCK_LISTEN)
		return 0;
	*sa = f->extra + sizeof(ks);
	*len = ks.addr_len;
	return 1;
}

/* The first fd of the tree listening on address name (len bytes), or -1. */
static ssize_t tree_listener(const struct fd_all *a, const unsigned char *name, uint32_t len)
{
	const unsigned char *sa;
	uint32_t l;

	for (size_t k = 0; k < a->n; k++)
		if (unix_listener_at(a, k, &sa, &l) && l == len && !memcmp(sa, name, len))
			return k;
	return -1;
}

/* The peer's name of f, as text in buf ("" if it has none). */
static const char *peer_text(const struct fd_entry *f, char *buf, size_t size)
{
	struct unix_rec r;

	unix_rec(f, &r);
	if (!r.u.peer_len)
		return buf[0] = 0, buf;
	return fd_sock_addr_text(r.peer, r.u.peer_len, buf, size);
}

/* The refusal of fd i, a unix socket whose peer is not among the tree's
 * connected unix sockets: named after the peer's address when it has one
 * (a server's path). */
static void refuse_lone(const struct fd_all *a, size_t i)
{
	const struct fd_entry *f = a->f[i];
	struct fd_diag di;
	struct unix_rec r;
	char name[160];

	peer_text(f, name, sizeof(name));
	unix_rec(f, &r);
	if (!name[0] && r.u.own_len) {
		/* A server's end of a connection from a nameless client. */
		fd_sock_addr_text(r.own, r.u.own_len, name, sizeof(name));
		err_set("pid %d: fd %d is a unix socket (%s) on %s whose peer is outside the "
			"dumped processes (--ext-unix=close restores it closed); not supported",
			a->pid[i], f->d.fd, f->path, name);
	} else if (name[0] && !fd_unix_diag(f->d.ino, &di) && di.peer && in_tree(a, di.peer))
		err_set("pid %d: fd %d is a unix socket (%s) connected to %s, which is not "
			"connected back to it; not supported yet",
			a->pid[i], f->d.fd, f->path, name);
	else if (name[0])
		err_set("pid %d: fd %d is a unix socket (%s) connected to %s, a socket outside "
			"the dumped processes; not supported yet",
			a->pid[i], f->d.fd, f->path, name);
	else
		err_set("pid %d: fd %d is a unix socket (%s) whose peer is not in the %s; not "
			"supported",
			a->pid[i], f->d.fd, f->path,
			a->pid[0] == a->pid[a->n - 1] ? "process" : "tree");
}

/* fd i, whose peer is outside the tree: with --ext-unix, connected again
 * to the same name, or closed, at restore; refused otherwise. */
static int join_outside(struct fd_all *a, size_t i)
{
	struct fd_entry *f = a->f[i];
	struct unix_rec r;
	char name[160];

	if (!(a->opts & (FD_OPT_EXT_UNIX_RECONNECT | FD_OPT_EXT_UNIX_CLOSE)) ||
	    (a->opts & FD_OPT_EXT_UNIX_RECONNECT && !peer_text(f, name, sizeof(name))[0])) {
		refuse_lone(a, i);
		return -1;
	}
	unix_rec(f, &r);
	r.u.id = f->d.ino;
	r.u.end = 0;
	r.u.flags &= ~(IMG_UNIX_PENDING | IMG_UNIX_ACCEPTED);
	if (a->opts & FD_OPT_EXT_UNIX_RECONNECT) {
		/* A new connection: what the old one had queued for the
		 * program was the server's answer to what it no longer has. */
		r.u.flags |= IMG_UNIX_EXT_RECONNECT;
		r.u.nmsg = r.u.data_len = 0;
	} else {
		r.u.flags |= IMG_UNIX_EXT_CLOSE;
	}
	return unix_set(f, &r);
}

/* Listener l's connections, taken out of its queue into the dumper (it
 * is killed after the dump): what each client sent goes to the client's
 * first fd in the tree. */
static int take_pending(struct fd_all *a, size_t l)
{
	int s = fd_getfd(a->pid[l], a->f[l]->d.fd), c;

	if (s < 0)
		return -1;
	/* The listener's file is the program's, blocking: accept only
	 * what poll says is there. */
	while (poll(&(struct pollfd){s, POLLIN, 0}, 1, 0) == 1 &&
	       (c = accept4(s, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct stat st;
		struct fd_diag di;
		struct unix_rec r;
		unsigned char *data = NULL;
		size_t k;

		if (fstat(c, &st) || fd_unix_diag(st.st_ino, &di))
			di.peer = 0;
		for (k = 0;
		     k < a->n && !(a->f[k]->d.kind == IMG_FD_UNIX && a->f[k]->d.ino == di.peer);
		     k++)
			;
		if (k == a->n) {
			close(c);
			continue;
		}
		unix_rec(a->f[k], &r);
		r.u.flags &= ~IMG_UNIX_RIGHTS;
		if (peek_socket(a->pid[k], a->f[k]->d.fd, a->f[k]->path, c, r.u.type, &r.u, &data,
				NULL, 0) ||
		    (r.data = data, unix_set(a->f[k], &r))) {
			free(data);
			close(c);
			close(s);
			return -1;
		}
		free(data);
		close(c);
	}
	close(s);
	return 0;
}

/* fd i, a client whose connection nobody accepted yet: its place in its
 * listener's queue when the listener is in the tree, else a socket
 * outside. */
static int place_pending(struct fd_all *a, size_t i)
{
	struct fd_entry *f = a->f[i];
	struct unix_rec r;
	struct fd_diag li;
	ssize_t l;
	uint32_t pos;

	unix_rec(f, &r);
	l = r.u.peer_len ? tree_listener(a, r.peer, r.u.peer_len) : -1;
	if (l < 0 || fd_unix_diag(a->f[l]->d.ino, &li))
		return join_outside(a, i);
	for (pos = 0; pos < li.nicons && li.icons[pos] != f->d.ino; pos++)
		;
	if (pos == li.nicons)
		return join_outside(a, i);
	r.u.end = pos;
	return unix_set(f, &r);
}

/* fd i, placed in its listener's queue: what it sent, taken with --kill
 * (every connection of that listener at once), refused without. */
static int join_pending(struct fd_all *a, size_t i, int *taken)
{
	struct fd_entry *f = a->f[i];
	struct unix_rec r;
	struct fd_diag di;
	ssize_t l;
	char name[160];

	unix_rec(f, &r);
	l = tree_listener(a, r.peer, r.u.peer_len);
	/* Bytes it sent wait in the connection only accept() opens. */
	if (l >= 0 && !taken[l] && !fd_unix_diag(f->d.ino, &di) && di.wqueue) {
		if (!(a->opts & FD_OPT_KILL)) {
			err_set(
			    "pid %d: fd %d is a unix socket (%s) connected to %s, which has not "
			    "accepted it yet, with data it sent (taken with --kill); not supported",
			    a->pid[i], f->d.fd, f->path, peer_text(f, name, sizeof(name)));
			return -1;
		}
		taken[l] = 1;
		return take_pending(a, l);
	}
	return 0;
}

/* Every connection waiting in a listener of the tree has its client in
 * the tree. */
static int check_listeners(const struct fd_all *a)
{
	const unsigned char *sa;
	uint32_t len;
	char name[160];
	struct fd_diag d;

	for (size_t k = 0; k < a->n; k++) {
		if (!unix_listener_at(a, k, &sa, &len) || fd_unix_diag(a->f[k]->d.ino, &d))
			continue;
		for (uint32_t j = 0; j < d.nicons; j++)
			if (!d.icons[j] || !in_tree(a, d.icons[j])) {
				err_set(
				    "pid %d: fd %d is a unix socket (%s) listening on %s with a "
				    "connection nobody accepted yet whose client is not in the "
				    "dumped processes; not supported",
				    a->pid[k], a->f[k]->d.fd, a->f[k]->path,
				    fd_sock_addr_text(sa, len, name, sizeof(name)));
				return -1;
			}
		if (d.nicons >= sizeof(d.icons) / 4) {
			err_set("pid %d: fd %d is a unix socket (%s) listening on %s with more "
				"than %zu connections nobody accepted yet; not supported",
				a->pid[k], a->f[k]->d.fd, a->f[k]->path,
				fd_sock_addr_text(sa, len, name, sizeof(name)),
				sizeof(d.icons) / 4);
			return -1;
		}
	}
	return 0;
}

/* Whether r's own name is an abstract one some socket holds by bind (a
 * client's, autobound with SO_PASSCRED too): an accepted end only shares
 * its listener's, free once that closed. */
static int abstract_held(const struct unix_rec *r)
{
	int t, held;

	if (r->u.own_len <= offsetof(struct sockaddr_un, sun_path) + 1 ||
	    r->own[offsetof(struct sockaddr_un, sun_path)] ||
	    (t = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return 0;
	held = bind(t, (const void *)r->own, r->u.own_len) && errno == EADDRINUSE;
	close(t);
	return held;
}

/* Which end of a named stream connection accept() gave
 * (IMG_UNIX_ACCEPTED), the other being the client, which bound its name
 * if it has one.  sock_diag does not say (the accepted end even holds
 * the listener's path), so: the end named after a listener of the tree;
 * else the one end that has a name; else, both named and the listener
 * closed, the one whose name is not an abstract one still held; else a
 * guess: end 1 (inode numbers do not tell the order). */
static int accepted_end(const struct fd_all *a, const struct unix_rec e[2])
{
	int l0 = e[0].u.own_len && tree_listener(a, e[0].own, e[0].u.own_len) >= 0,
	    l1 = e[1].u.own_len && tree_listener(a, e[1].own, e[1].u.own_len) >= 0, h0, h1;

	if (l0 != l1)
		return l0 ? 0 : 1;
	if (!e[0].u.own_len != !e[1].u.own_len)
		return e[0].u.own_len ? 0 : 1;
	if (!e[0].u.own_len)
		return -1;
	h0 = abstract_held(&e[0]);
	h1 = abstract_held(&e[1]);
	return h0 != h1 ? h1 ? 0 : 1 : 1;
}

/* A unix fd of a join's, by its pair: fds of one pair are neighbours,
 * each pair's in the order of the fds. */
struct by_pair {
	uint64_t id;
	size_t k;
};

static int pair_order(const void *x, const void *y)
{
	const struct by_pair *p = x, *q = y;

	if (p->id != q->id)
		return p->id < q->id ? -1 : 1;
	return (p->k > q->k) - (p->k < q->k);
}

/* The first of ix's n entries of pair id (n if none). */
static size_t first_of_pair(const struct by_pair *ix, size_t n, uint64_t id)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ix[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Both ends of every unix socketpair (or connection, made by connect and
 * accept) must be in the tree; the first fd of each end carries what is
 * queued for it.  A pending client is placed in its listener's queue; a
 * connection's end accept() gave is marked. */
static int join_unix(struct fd_all *a)
{
	int *taken = calloc(a->n + 1, sizeof(int));
	struct by_pair *ix = malloc((a->n + 1) * sizeof(*ix));
	size_t nix = 0;
	int rc = -1;

	if (!taken || !ix) {
		free(taken);
		free(ix);
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < a->n; i++) {
		struct unix_rec r;

		if (a->f[i]->d.kind != IMG_FD_UNIX)
			continue;
		unix_rec(a->f[i], &r);
		if ((r.u.flags & IMG_UNIX_PENDING) && place_pending(a, i))
			goto out;
	}
	/* Before any is taken out of its queue by take_pending. */
	if (check_listeners(a))
		goto out;
	for (size_t i = 0; i < a->n; i++) {
		struct unix_rec r;

		if (a->f[i]->d.kind != IMG_FD_UNIX)
			continue;
		unix_rec(a->f[i], &r);
		if ((r.u.flags & IMG_UNIX_PENDING) && join_pending(a, i, taken))
			goto out;
	}
	/* Each fd's pair found by its id among the unix fds sorted by it,
	 * not by a look at every fd (10,000 fds: 2,500 unix ones each read
	 * all).  An fd made outside or inherited below keeps its entry
	 * under its old id, and is passed over by what it is now. */
	for (size_t k = 0; k < a->n; k++) {
		struct unix_rec v;

		if (a->f[k]->d.kind != IMG_FD_UNIX)
			continue;
		unix_rec(a->f[k], &v);
		ix[nix++] = (struct by_pair){v.u.id, k};
	}
	qsort(ix, nix, sizeof(*ix), pair_order);
	for (size_t i = 0; i < a->n; i++) {
		struct fd_entry *f = a->f[i];
		struct unix_rec r, v, e[2];
		int ends = 0, first = 1, acc;

		if (f->d.kind != IMG_FD_UNIX)
			continue;
		unix_rec(f, &r);
		if (r.u.flags & (IMG_UNIX_PENDING | IMG_UNIX_EXT_RECONNECT | IMG_UNIX_EXT_CLOSE)) {
			/* Its own fds share it: the first one carries the queue. */
			for (size_t k = 0; k < i; k++)
				if (a->f[k]->d.ino == f->d.ino)
					first = 0;
			if (!first)
				fd_drop_data(f, sizeof(r.u) + r.u.own_len + r.u.peer_len);
			if (!first && r.u.data_len) {
				r.u.data_len = r.u.nmsg = 0;
				memcpy(f->extra, &r.u, sizeof(r.u));
			}
			continue;
		}
		for (size_t j = first_of_pair(ix, nix, r.u.id); j < nix && ix[j].id == r.u.id;
		     j++) {
			size_t k = ix[j].k;

			if (a->f[k]->d.kind != IMG_FD_UNIX)
				continue;
			unix_rec(a->f[k], &v);
			if (v.u.id != r.u.id || (v.u.flags & IMG_UNIX_PENDING))
				continue;
			ends |= 1 << v.u.end;
			e[v.u.end] = v;
			if (k < i && v.u.end == r.u.end)
				first = 0;
		}
		if (ends != 3 && a->pid[i] != getpid() && f->d.fd <= 2) {
			/* A standard stream from outside: the restoring
			 * process's then, as before it was captured. */
			f->d.kind = IMG_FD_INHERIT;
			fd_drop_data(f, 0);
			continue;
		}
		if (ends != 3) {
			if (join_outside(a, i))
				goto out;
			i--; /* again, as an outside one */
			continue;
		}
		acc = r.u.type == SOCK_DGRAM ? -1 : accepted_end(a, e);
		r.u.flags &= ~IMG_UNIX_ACCEPTED;
		if (acc == (int)r.u.end)
			r.u.flags |= IMG_UNIX_ACCEPTED;
		if (!first)
			r.u.data_len = r.u.nmsg = 0;
		memcpy(f->extra, &r.u, sizeof(r.u));
		if (!first)
			fd_drop_data(f, sizeof(r.u) + r.u.own_len + r.u.peer_len);
	}
	rc = 0;
out:
	free(taken);
	free(ix);
	return rc;
}

static int check_name(const unsigned char *x, uint8_t len)
{
	sa_family_t fam;

	if (!len)
		return 0;
	if (len < sizeof(fam) + 1 || len > sizeof(struct sockaddr_un))
		return -1;
	memcpy(&fam, x, sizeof(fam));
	return fam == AF_UNIX ? 0 : -1;
}

static int check_unix(const unsigned char *x, uint32_t n)
{
	struct img_unix u;
	uint64_t off = sizeof(u);
	unsigned ext;

	if (n < sizeof(u))
		return -1;
	memcpy(&u, x, sizeof(u));
	ext = !!(u.flags & IMG_UNIX_PENDING) + !!(u.flags & IMG_UNIX_EXT_RECONNECT) +
	      !!(u.flags & IMG_UNIX_EXT_CLOSE);
	if ((u.end > 1 && !(u.flags & IMG_UNIX_PENDING)) || u.shutdown > 3 ||
	    (u.flags & ~IMG_UNIX_ALL) || ext > 1 ||
	    n != sizeof(u) + (uint64_t)u.own_len + u.peer_len + u.data_len ||
	    (u.type != SOCK_STREAM && u.type != SOCK_DGRAM && u.type != SOCK_SEQPACKET))
		return -1;
	if (check_name(x + off, u.own_len) || check_name(x + off + u.own_len, u.peer_len))
		return -1;
	if ((u.flags & (IMG_UNIX_PENDING | IMG_UNIX_EXT_RECONNECT)) && !u.peer_len)
		return -1;
	if ((u.flags & (IMG_UNIX_PENDING | IMG_UNIX_ACCEPTED)) && u.type == SOCK_DGRAM)
		return -1;
	if ((u.flags & IMG_UNIX_ACCEPTED) && (ext || !u.own_len))
		return -1;
	off += u.own_len + u.peer_len;
	for (uint32_t k = 0; k < u.nmsg; k++) {
		uint32_t l, nf = 0;
		if (off + 4 > n)
			return -1;
		memcpy(&l, x + off, 4);
		off += 4;
		if (u.flags & IMG_UNIX_RIGHTS) {
			if (off + 4 > n)
				return -1;
			memcpy(&nf, x + off, 4);
			off += 4;
			if (nf > 253 || off + 4ull * nf > n)
				return -1;
			/* Each a mark: a FILE record in flight. */
			for (uint32_t j = 0; j < nf; j++) {
				int32_t m;
				memcpy(&m, x + off + 4 * j, 4);
				if (m >= 0 || m <= -(1 << 20))
					return -1;
			}
			off += 4ull * nf;
		}
		off += (uint64_t)l;
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

/* r's queue, sent through s (the socket whose reads get it); the files
 * in flight a message carries are the ones made for its marks. */
static int send_queue(const struct fd_entry *f, const struct unix_rec *r, int s,
		      const struct fd_pipes *pipes)
{
	const unsigned char *x = r->data;

	/* The bytes queued are charged to the sender's buffer: as large
	 * as we may (SO_SNDBUFFORCE needs CAP_NET_ADMIN) until its own
	 * record sets the size it had. */
	if (r->u.nmsg && setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE,
				    &(int){r->u.data_len + (1 << 20)}, sizeof(int)))
		setsockopt(s, SOL_SOCKET, SO_SNDBUF, &(int){INT_MAX / 2}, sizeof(int));
	for (uint32_t k = 0; k < r->u.nmsg; k++) {
		uint32_t l, nf = 0;
		const unsigned char *marks = NULL;
		ssize_t n = 0;

		memcpy(&l, x, 4);
		x += 4;
		if (r->u.flags & IMG_UNIX_RIGHTS) {
			memcpy(&nf, x, 4);
			marks = x + 4;
			x += 4 + 4 * nf;
		}
		/* The fds go with the first bytes, as one message (a
		 * stream's rest after it). */
		if (nf && (n = fd_send_rights(s, x, l, NULL, 0, marks, nf, pipes, f->d.fd)) < 0)
			return -1;
		if ((nf && r->u.type != SOCK_STREAM && (size_t)n != l) ||
		    ((!nf || (size_t)n < l) &&
		     send_msg(s, x + n, l - n, r->u.type == SOCK_STREAM))) {
			err_sys("fd %d: cannot put %u queued bytes back in its unix socket",
				f->d.fd, l);
			return -1;
		}
		x += l;
	}
	return 0;
}

/* A unix socket of f's type bound to name (len bytes: unbound if 0); a
 * stale socket file at a path name is removed first. */
static int unix_socket(const struct fd_entry *f, int type, const unsigned char *name, uint8_t len)
{
	char pb[sizeof(((struct sockaddr_un *)0)->sun_path) + 1], a[160];
	const char *path = len ? fd_unix_path(name, len, pb) : NULL;
	int s;

	if (path && fd_unix_path_free(f->d.fd, type, name, len, path))
		return -1;
	if ((s = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		err_sys("fd %d: cannot make a unix socket", f->d.fd);
		return -1;
	}
	if (len && bind(s, (const void *)name, len)) {
		err_sys("fd %d: cannot bind a unix socket to %s", f->d.fd,
			fd_sock_addr_text(name, len, a, sizeof(a)));
		close(s);
		return -1;
	}
	return s;
}

/* Whether s, accepted from a listener, is a connection another process
 * made (SO_PEERCRED: the pid that connected). */
static int foreign(int s)
{
	struct ucred uc;
	socklen_t n = sizeof(uc);

	return !getsockopt(s, SOL_SOCKET, SO_PEERCRED, &uc, &n) && uc.pid != getpid();
}

/* Connect cli to sname, on which l listens, and accept that connection
 * into *srv.  The listener is on the program's name (the program's own
 * listener once it is made), so another process may connect to it while
 * the restore runs (a client polling a server that is coming back):
 * accept() gives the oldest connection first, and taking one of those
 * for the program's would join the program to a stranger and leave its
 * own peer waiting in the queue.  Those made before ours are refused
 * (accepted and closed: their clients see the connection end, as with a
 * server not up yet), those after it stay queued for the program; a
 * queue full of them is emptied so that ours gets in. */
static int join_own(int l, int cli, const unsigned char *sname, uint8_t slen, int *srv)
{
	struct pollfd p = {.fd = l, .events = POLLIN};
	int tries = 0;

	while (connect(cli, (const void *)sname, slen)) {
		if (errno != EAGAIN || ++tries > 100)
			return -1;
		while (poll(&p, 1, tries > 1 ? 10 : 0) > 0 &&
		       (*srv = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
			close(*srv);
	}
	/* Ours is queued: a wait for it is a bound, not a hang, should a
	 * listener of the program's (blocking) come up empty. */
	for (;;) {
		int n = poll(&p, 1, 5000);

		if (n <= 0) {
			errno = n ? errno : ETIMEDOUT;
			return -1;
		}
		if ((*srv = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0)
			return -1;
		if (!foreign(*srv))
			return 0;
		close(*srv);
	}
}

/* A connection with its names: a client bound to cname (if any) connects
 * to a listener on sname, the one the tree's own listener if it is made
 * already, else a temporary one (the server had closed its listener, or
 * its record comes later); the end accept() gives in *srv. */
static int connect_named(const struct fd_entry *f, struct fd_pipes *pipes, int type,
			 const unsigned char *sname, uint8_t slen, const unsigned char *cname,
			 uint8_t clen, int *srv, int *cli)
{
	int l = fd_unix_listener(pipes, sname, slen), tmp = -1;
	char a[160];

	*srv = *cli = -1;
	if (l < 0) {
		if ((tmp = unix_socket(f, type, sname, slen)) < 0)
			return -1;
		if (listen(tmp, 1)) {
			err_sys("fd %d: cannot listen on %s", f->d.fd,
				fd_sock_addr_text(sname, slen, a, sizeof(a)));
			goto fail;
		}
		l = tmp;
	}
	if ((*cli = unix_socket(f, type, cname, clen)) < 0)
		goto fail;
	if (join_own(l, *cli, sname, slen, srv)) {
		err_sys("fd %d: cannot connect its unix socket to %s again", f->d.fd,
			fd_sock_addr_text(sname, slen, a, sizeof(a)));
		goto fail;
	}
	/* The temporary listener's file stays, as the server's closed
	 * one's did; the tree's listener, made later, replaces it. */
	if (tmp >= 0)
		close(tmp);
	return 0;
fail:
	if (tmp >= 0)
		close(tmp);
	if (*cli >= 0)
		close(*cli);
	*cli = -1;
	return -1;
}

/* The two ends of f's connection, into fp: a socketpair when they had no
 * names; with names, connect and accept (stream, seqpacket) or bind and
 * connect each to the other (datagram, both named). */
static int make_ends(const struct fd_entry *f, const struct unix_rec *r, struct fd_pipes *pipes,
		     struct fd_pipe *fp)
{
	int me = r->u.end;

	if (r->u.type != SOCK_DGRAM && (r->u.flags & IMG_UNIX_ACCEPTED))
		return connect_named(f, pipes, r->u.type, r->own, r->u.own_len, r->peer,
				     r->u.peer_len, &fp->end[me], &fp->end[!me]);
	if (r->u.type != SOCK_DGRAM && r->u.peer_len && !(r->u.flags & IMG_UNIX_ACCEPTED))
		return connect_named(f, pipes, r->u.type, r->peer, r->u.peer_len, r->own,
				     r->u.own_len, &fp->end[!me], &fp->end[me]);
	if (r->u.type == SOCK_DGRAM && r->u.own_len && r->u.peer_len) {
		if ((fp->end[me] = unix_socket(f, r->u.type, r->own, r->u.own_len)) < 0 ||
		    (fp->end[!me] = unix_socket(f, r->u.type, r->peer, r->u.peer_len)) < 0)
			return -1;
		if (connect(fp->end[me], (const void *)r->peer, r->u.peer_len) ||
		    connect(fp->end[!me], (const void *)r->own, r->u.own_len)) {
			err_sys("fd %d: cannot connect its unix datagram socket again", f->d.fd);
			return -1;
		}
		return 0;
	}
	if (socketpair(AF_UNIX, r->u.type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fp->end)) {
		err_sys("fd %d: cannot make a unix socketpair", f->d.fd);
		return -1;
	}
	return 0;
}

/* A socket whose peer was outside the tree: connected to the same name
 * again, or closed (its queue first put in, then its peer closed: reads
 * drain it and give the end of the stream, writes EPIPE). */
static int make_outside(const struct fd_entry *f, const struct unix_rec *r, struct fd_pipe *fp,
			const struct fd_pipes *pipes)
{
	char a[160];
	int e;

	if (r->u.flags & IMG_UNIX_EXT_CLOSE) {
		if (socketpair(AF_UNIX, r->u.type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fp->end)) {
			err_sys("fd %d: cannot make a unix socketpair", f->d.fd);
			return -1;
		}
		if (send_queue(f, r, fp->end[1], pipes))
			return -1;
		close(fp->end[1]);
		fp->end[1] = -1;
		return 0;
	}
	if ((fp->end[0] = unix_socket(f, r->u.type, r->own, r->u.own_len)) < 0)
		return -1;
	if (!connect(fp->end[0], (const void *)r->peer, r->u.peer_len))
		return 0;
	e = errno;
	fd_sock_addr_text(r->peer, r->u.peer_len, a, sizeof(a));
	if (e == ECONNREFUSED || e == ENOENT)
		err_set("fd %d: nothing listens on %s, to which its unix socket was connected "
			"(--ext-unix=reconnect)",
			f->d.fd, a);
	else
		err_sys("fd %d: cannot connect its unix socket to %s again", f->d.fd, a);
	return -1;
}

/* One end of a unix connection.  Both ends are made (non-blocking, so that
 * putting bytes back cannot hang) at the first fd of either end; each
 * end's queue goes in through the other end, and the shutdowns are done
 * once both ends' queues are in, as a shut end could not send.  A pending
 * client is connected once every fd is made (fd_unix_done), after the
 * connections its listener had accepted. */
static int make_unix(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct unix_rec r;
	struct fd_pipe *fp;
	int lone;

	unix_rec(f, &r);
	lone = !!(r.u.flags & (IMG_UNIX_PENDING | IMG_UNIX_EXT_RECONNECT | IMG_UNIX_EXT_CLOSE));
	if (!(fp = fd_find_pair(pipes, IMG_FD_UNIX, r.u.id))) {
		if (!(fp = fd_new_pair(pipes, IMG_FD_UNIX, r.u.id)))
			return -1;
		if (r.u.flags & IMG_UNIX_PENDING) {
			if ((fp->end[0] = unix_socket(f, r.u.type, r.own, r.u.own_len)) < 0)
				return -1;
			fp->f = f;
		} else if (lone ? make_outside(f, &r, fp, pipes) : make_ends(f, &r, pipes, fp)) {
			return -1;
		}
		pipes->n++;
		if (lone && (r.u.flags & IMG_UNIX_PASSCRED))
			setsockopt(fp->end[0], SOL_SOCKET, SO_PASSCRED, &(int){1}, sizeof(int));
	}
	if (lone)
		return fd_dup_end(fp->end[0], f, "a unix socket");
	if (!(fp->seen & (1u << r.u.end))) {
		int s = fp->end[r.u.end], peer = fp->end[!r.u.end];

		/* getsockopt gave twice what was set; above wmem_max and
		 * rmem_max an unprivileged user gets the maximum. */
		if (r.u.rcvbuf)
			setsockopt(s, SOL_SOCKET, SO_RCVBUF, &(int){r.u.rcvbuf / 2}, sizeof(int));
		if (r.u.flags & IMG_UNIX_PASSCRED)
			setsockopt(s, SOL_SOCKET, SO_PASSCRED, &(int){1}, sizeof(int));
		if (send_queue(f, &r, peer, pipes))
			return -1;
		if (r.u.sndbuf)
			setsockopt(s, SOL_SOCKET, SO_SNDBUF, &(int){r.u.sndbuf / 2}, sizeof(int));
		fp->shut[r.u.end] = r.u.shutdown;
		fp->seen |= 1u << r.u.end;
		if (fp->seen == 3)
			for (int e = 0; e < 2; e++)
				if (fp->shut[e] && shutdown(fp->end[e], fp->shut[e] - 1) &&
				    errno != ENOTCONN) {
					err_sys("fd %d: cannot shut its unix socketpair down",
						f->d.fd);
					return -1;
				}
	}
	return fd_dup_end(fp->end[r.u.end], f, "a unix socket");
}

static int by_place(const void *x, const void *y)
{
	const struct fd_pipe *const *p = x, *const *q = y;
	struct img_unix a, b;

	memcpy(&a, (*p)->f->extra, sizeof(a));
	memcpy(&b, (*q)->f->extra, sizeof(b));
	return (a.end > b.end) - (a.end < b.end);
}

int fd_unix_done(struct fd_pipes *pipes)
{
	struct fd_pipe **w;
	size_t n;
	int rc = 0;

	/* Each listener's queue in its order (the place of each client in
	 * the queue of its own listener). */
	if (fd_waiting(pipes, IMG_FD_UNIX, by_place, &w, &n))
		return -1;
	for (size_t i = 0; i < n && !rc; i++) {
		const struct fd_entry *f = w[i]->f;
		struct unix_rec r;
		char a[160];

		unix_rec(f, &r);
		if (connect(w[i]->end[0], (const void *)r.peer, r.u.peer_len)) {
			err_sys(
			    "fd %d: cannot connect its unix socket to %s again, where it waited "
			    "to be accepted",
			    f->d.fd, fd_sock_addr_text(r.peer, r.u.peer_len, a, sizeof(a)));
			rc = -1;
		} else if (send_queue(f, &r, w[i]->end[0], pipes)) {
			rc = -1;
		} else if (r.u.sndbuf) {
			setsockopt(w[i]->end[0], SOL_SOCKET, SO_SNDBUF, &(int){r.u.sndbuf / 2},
				   sizeof(int));
		}
		w[i]->f = NULL;
	}
	free(w);
	return rc;
}

static void show_name(FILE *out, int json, const char *key, const unsigned char *sa, uint8_t len)
{
	char a[160];

	if (!len)
		return;
	fd_sock_addr_text(sa, len, a, sizeof(a));
	if (json) {
		fprintf(out, ",\"%s\":", key);
		json_str(out, a, strlen(a));
	} else {
		fprintf(out, " %s %s", key, a);
	}
}

/* The bytes of r's queue, and the files in flight its messages carry. */
static uint64_t queued(const struct unix_rec *r, uint64_t *passed)
{
	const unsigned char *x = r->data;
	uint64_t bytes = 0;

	*passed = 0;
	for (uint32_t k = 0; k < r->u.nmsg; k++) {
		uint32_t l, nf = 0;
		memcpy(&l, x, 4);
		x += 4;
		if (r->u.flags & IMG_UNIX_RIGHTS) {
			memcpy(&nf, x, 4);
			x += 4 + 4 * nf;
		}
		bytes += l;
		*passed += nf;
		x += l;
	}
	return bytes;
}

static void show_unix(FILE *out, const struct fd_entry *f, int json)
{
	struct unix_rec r;
	const char *role = NULL;
	uint64_t passed;

	unix_rec(f, &r);
	fprintf(out, json ? ",\"type\":\"%s\"" : " %s",
		r.u.type == SOCK_STREAM	 ? "stream"
		: r.u.type == SOCK_DGRAM ? "dgram"
					 : "seqpacket");
	if (r.u.flags & IMG_UNIX_PENDING)
		role = "pending";
	else if (r.u.flags & IMG_UNIX_EXT_RECONNECT)
		role = "reconnect";
	else if (r.u.flags & IMG_UNIX_EXT_CLOSE)
		role = "closed";
	else if (r.u.flags & IMG_UNIX_ACCEPTED)
		role = "accepted";
	if (role && r.u.flags & IMG_UNIX_PENDING)
		fd_put_num(out, json, "pending", r.u.end);
	else if (role)
		fprintf(out, json ? ",\"%s\":true" : " %s", role);
	if (!(r.u.flags & (IMG_UNIX_PENDING | IMG_UNIX_EXT_RECONNECT | IMG_UNIX_EXT_CLOSE))) {
		fd_put_num(out, json, "pair", r.u.id);
		fd_put_num(out, json, "end", r.u.end);
	}
	if (r.u.flags & IMG_UNIX_PASSCRED)
		fputs(json ? ",\"passcred\":true" : " passcred", out);
	show_name(out, json, "name", r.own, r.u.own_len);
	show_name(out, json, "peer", r.peer, r.u.peer_len);
	fd_put_num(out, json, "queued", queued(&r, &passed));
	fd_put_num(out, json, "messages", r.u.nmsg);
	if (passed)
		fd_put_num(out, json, "passed", passed);
	fd_put_num(out, json, "shutdown", r.u.shutdown);
}

const struct fd_ops fd_unix_ops = {
    .name = "unix",
    .capture = capture_unix,
    .join = join_unix,
    .check = check_unix,
    .make = make_unix,
    .show = show_unix,
};
