/* sockq.c: what a datagram socket joined to no peer holds beyond its address (sock.c's
 * IMG_FD_SOCK): the peer a UDP socket is connected to, and the datagrams queued for it to read,
 * each with its sender's address; put back at restore, each sent again from its sender's
 * address. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

/* The pipes list's entries of made datagram sockets: a kind number no
 * image has, so that no other kind's entries are taken for them. */
#define DGRAM_MADE (IMG_FD_SOCK | 0x100u)
#define QUEUE_MAX (256u << 20) /* bytes of datagrams one socket may keep */
#define DGRAM_MAX (1u << 20)   /* bytes of one datagram */

/* ---- capturing ------------------------------------------------------ */

/* The socket being captured: the process's, through our own copy s. */
struct dgram {
	pid_t pid;
	int fd, s, family;
	const void *sa; /* its address */
	socklen_t salen;
	const struct fd_source *src; /* its flight: where the fds a datagram carries go */
};

/* Every datagram queued on s, peeked one after the other at a moving
 * SO_PEEK_OFF (unix sockets, and UDP since Linux 4.11), which is set back
 * afterwards: the program shares the socket and keeps every one. */
static int peek_queue(const struct dgram *p, struct fd_buf *q, uint32_t *nmsg)
{
	unsigned char *buf = malloc(DGRAM_MAX);
	int old = -1, zero = 0, rc = -1, errored = 0;
	socklen_t sl = sizeof(old);
	size_t total = 0;
	char a[160];

	if (!buf) {
		err_set("out of memory");
		return -1;
	}
	if (getsockopt(p->s, SOL_SOCKET, SO_PEEK_OFF, &old, &sl) ||
	    setsockopt(p->s, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero))) {
		err_sys("pid %d: fd %d: cannot set SO_PEEK_OFF to read its queue", p->pid, p->fd);
		free(buf);
		return -1;
	}
	for (;;) {
		struct sockaddr_storage src;
		union {
			struct cmsghdr c;
			char b[CMSG_SPACE(64 * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
		} ctl;
		struct iovec iov = {buf, DGRAM_MAX};
		struct msghdr mh = {.msg_name = &src,
				    .msg_namelen = sizeof(src),
				    .msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = &ctl,
				    .msg_controllen = sizeof(ctl)};
		struct img_sock_msg m;
		int fds[64];
		int32_t marks[64];
		size_t nf;
		ssize_t n = recvmsg(p->s, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* A UDP socket's pending error (an ICMP port unreachable
		 * after a send) is given, and cleared, by the first receive,
		 * peek or not, before any datagram: it is lost (ckpt(7)),
		 * the queue is read on. */
		if (n < 0 && !errored && p->family != AF_UNIX && errno != EINTR &&
		    errno != ENOMEM) {
			errored = 1;
			continue;
		}
		if (n < 0) {
			err_sys("pid %d: fd %d: cannot read the datagrams queued on its socket",
				p->pid, p->fd);
			goto out;
		}
		nf = fd_scm_fds(&mh, fds, 64);
		if (nf && (p->src->opts & FD_OPT_INFLIGHT)) {
			while (nf)
				close(fds[--nf]);
			err_set("a unix socket (%s) that has file descriptors queued on it too",
				p->src->link);
			goto out;
		}
		if ((nf && !p->src->flight) || (mh.msg_flags & MSG_CTRUNC)) {
			while (nf)
				close(fds[--nf]);
			err_set("pid %d: fd %d: a datagram queued on its unix socket carries file "
				"descriptors; not supported",
				p->pid, p->fd);
			goto out;
		}
		for (size_t k = 0; k < nf; k++)
			if (!(marks[k] = fd_flight_add(p->src->flight, fds[k]))) {
				while (nf > k + 1)
					close(fds[--nf]);
				goto out;
			}
		/* An empty datagram: a peek at an offset passes it only if
		 * nobody peeked at it before, so it could not be told from
		 * the next. */
		if (n == 0) {
			err_set(
			    "pid %d: fd %d: an empty datagram is queued on its %s socket on %s; "
			    "not supported",
			    p->pid, p->fd, p->family == AF_UNIX ? "unix" : "UDP",
			    fd_sock_addr_text(p->sa, p->salen, a, sizeof(a)));
			goto out;
		}
		if (mh.msg_flags & MSG_TRUNC) {
			err_set("pid %d: fd %d: a datagram of more than %u bytes is queued on its "
				"socket; not supported",
				p->pid, p->fd, DGRAM_MAX);
			goto out;
		}
		total += n;
		if (total > QUEUE_MAX) {
			err_set("pid %d: fd %d: more than %u MiB of datagrams queued on its socket",
				p->pid, p->fd, QUEUE_MAX >> 20);
			goto out;
		}
		/* An unbound unix sender: no name, or the family alone. */
		if (mh.msg_namelen <= sizeof(sa_family_t) || mh.msg_namelen > sizeof(src))
			mh.msg_namelen = 0;
		/* The marks of the fds it carries follow its sender's address. */
		m = (struct img_sock_msg){.len = n, .src_len = mh.msg_namelen | nf << 16};
		if (fd_buf_put(q, &m, sizeof(m)) || fd_buf_put(q, &src, mh.msg_namelen) ||
		    fd_buf_put(q, marks, 4 * nf) || fd_buf_put(q, buf, n))
			goto out;
		++*nmsg;
	}
	rc = 0;
out:
	setsockopt(p->s, SOL_SOCKET, SO_PEEK_OFF, &old, sizeof(old));
	free(buf);
	return rc;
}

int fd_dgram_capture(const struct fd_source *src, int fd, int s, int family, const void *sa,
		     size_t salen, unsigned char **out, size_t *len)
{
	const struct dgram d = {src->pid, fd, s, family, sa, salen, src}, *p = &d;
	struct sockaddr_storage peer;
	socklen_t pl = sizeof(peer);
	struct img_sock_dgram h = {0};
	struct fd_buf q = {0};

	*out = NULL;
	*len = 0;
	/* A unix one with a peer is a connection (unixpair.c's). */
	if (p->family != AF_UNIX && !getpeername(p->s, (void *)&peer, &pl) && pl <= sizeof(peer))
		h.peer_len = pl;
	if (fd_buf_put(&q, &h, sizeof(h)) || fd_buf_put(&q, &peer, h.peer_len) ||
	    peek_queue(p, &q, &h.nmsg)) {
		free(q.b);
		return -1;
	}
	if (!h.peer_len && !h.nmsg) {
		free(q.b);
		return 0;
	}
	memcpy(q.b, &h, sizeof(h));
	*out = q.b;
	*len = q.len;
	return 0;
}

/* ---- checking ------------------------------------------------------- */

/* An address of family: a sockaddr_in or _in6 whole, a unix name that has
 * at least one byte. */
static int addr_ok(const unsigned char *x, uint32_t len, int family)
{
	sa_family_t f;

	if (len < sizeof(f))
		return 0;
	memcpy(&f, x, sizeof(f));
	if (f != family)
		return 0;
	if (family == AF_UNIX)
		return len > sizeof(f) && len <= sizeof(struct sockaddr_un);
	return len ==
	       (family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
}

int fd_dgram_check(const unsigned char *x, size_t n, int family)
{
	struct img_sock_dgram h;
	size_t off = sizeof(h);

	if (n == 0)
		return 0;
	if (n < sizeof(h))
		return -1;
	memcpy(&h, x, sizeof(h));
	if ((h.peer_len && family == AF_UNIX) ||
	    (h.peer_len && (h.peer_len > n - off || !addr_ok(x + off, h.peer_len, family))))
		return -1;
	off += h.peer_len;
	for (uint32_t k = 0; k < h.nmsg; k++) {
		struct img_sock_msg m;

		if (n - off < sizeof(m))
			return -1;
		uint32_t sl, nf;

		memcpy(&m, x + off, sizeof(m));
		off += sizeof(m);
		sl = m.src_len & 0xffff;
		nf = m.src_len >> 16;
		if (m.len == 0 || m.len > DGRAM_MAX || sl > n - off ||
		    (sl && !addr_ok(x + off, sl, family)) || (!sl && family != AF_UNIX) ||
		    (nf && family != AF_UNIX) || nf > 64)
			return -1;
		off += sl;
		if (4ull * nf > n - off)
			return -1;
		/* Each a mark: a FILE record in flight. */
		for (uint32_t j = 0; j < nf; j++) {
			int32_t mk;
			memcpy(&mk, x + off + 4 * j, 4);
			if (mk >= 0 || mk <= -(1 << 20))
				return -1;
		}
		off += 4 * nf;
		if (m.len > n - off)
			return -1;
		off += m.len;
	}
	return off == n ? 0 : -1;
}

/* ---- making it again ------------------------------------------------ */

int fd_dgram_made(const struct fd_entry *f, const unsigned char *x, size_t n, int s,
		  struct fd_pipes *pipes)
{
	struct img_sock_dgram h = {0};
	struct fd_pipe *fp;
	char a[160];

	if (n)
		memcpy(&h, x, sizeof(h));
	if (h.peer_len && connect(s, (const void *)(x + sizeof(h)), h.peer_len)) {
		err_sys("fd %d: cannot connect its UDP socket to %s again", f->d.fd,
			fd_sock_addr_text(x + sizeof(h), h.peer_len, a, sizeof(a)));
		return -1;
	}
	/* Kept until every fd is made (fd_dgram_refill): its queue goes
	 * back then, and it may be the sender of another's.  The id is
	 * the FILE record, which outlives the pipes. */
	if (!(fp = fd_new_pair(pipes, DGRAM_MADE, (uint64_t)(uintptr_t)f)))
		return -1;
	if ((fp->end[0] = fcntl(s, F_DUPFD_CLOEXEC, 0)) < 0) {
		err_sys("fd %d: cannot duplicate its socket", f->d.fd);
		return -1;
	}
	pipes->n++;
	return 0;
}

static int is_any(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
	if (sa->ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return 0;
}

/* Whether a datagram sent from socket s leaves from src: s is bound to
 * it, or to its port on every address. */
static int sends_from(int s, const void *src, socklen_t len)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	const struct sockaddr_in *a = src, *b = (const void *)&sa;
	const struct sockaddr_in6 *a6 = src, *b6 = (const void *)&sa;

	if (getsockname(s, (void *)&sa, &sl) || sa.ss_family != a->sin_family)
		return 0;
	if (sa.ss_family == AF_UNIX)
		return sl == len && !memcmp(&sa, src, len);
	if (sa.ss_family == AF_INET)
		return a->sin_port == b->sin_port &&
		       (is_any(&sa) || a->sin_addr.s_addr == b->sin_addr.s_addr);
	return sa.ss_family == AF_INET6 && a6->sin6_port == b6->sin6_port &&
	       (is_any(&sa) || IN6_ARE_ADDR_EQUAL(&a6->sin6_addr, &b6->sin6_addr));
}

/* Where a datagram from a sender of family fam reaches socket s: its
 * address, the loopback one when it is bound to every address (an IPv4
 * sender, ::ffff:127.0.0.1, reaches an IPv6 socket by its v4-mapped
 * form). */
static socklen_t dest_of(int s, const struct sockaddr_storage *src, struct sockaddr_storage *to)
{
	socklen_t sl = sizeof(*to);

	if (getsockname(s, (void *)to, &sl))
		return 0;
	if (to->ss_family == AF_INET && is_any(to))
		((struct sockaddr_in *)to)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (to->ss_family == AF_INET6 && is_any(to)) {
		const struct sockaddr_in6 *f = (const void *)src;
		struct sockaddr_in6 *t = (void *)to;

		if (IN6_IS_ADDR_V4MAPPED(&f->sin6_addr))
			inet_pton(AF_INET6, "::ffff:127.0.0.1", &t->sin6_addr);
		else
			t->sin6_addr = in6addr_loopback;
	}
	return sl;
}

/* A sender for a datagram from src: a socket of the tree bound there, else
 * one of ours bound to it (*tmp: to close, and a unix name's file to
 * remove, after), else one of ours bound to no name (said on stderr, once
 * for datagrams that follow from the same sender: *said). */
static int sender(const struct fd_entry *f, struct fd_pipes *pipes,
		  const struct sockaddr_storage *src, socklen_t len, int family, int *tmp,
		  int *made_file, int *said)
{
	char a[160];
	int s, e;

	*tmp = -1;
	*made_file = 0;
	for (size_t i = 0; len && i < pipes->n; i++)
		if (pipes->p[i].kind == DGRAM_MADE && sends_from(pipes->p[i].end[0], src, len))
			return pipes->p[i].end[0];
	if ((s = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		err_sys("fd %d: cannot make a socket to send its queued datagrams", f->d.fd);
		return -1;
	}
	*tmp = s;
	if (!len)
		return s;
	if (!bind(s, (const void *)src, len)) {
		*made_file = family == AF_UNIX && ((const struct sockaddr_un *)src)->sun_path[0];
		return s;
	}
	e = errno;
	if (!*said)
		warnx("fd %d: a datagram queued from %s is put back from another address: cannot "
		      "bind "
		      "a socket to it: %s",
		      f->d.fd, fd_sock_addr_text(src, len, a, sizeof(a)), strerror(e));
	*said = 1;
	return s;
}

/* One socket's queue, sent to it again, datagram after datagram. */
static int refill(const struct fd_entry *f, int s, struct fd_pipes *pipes)
{
	struct img_sock k;
	struct img_sock_dgram h;
	const unsigned char *x = f->extra + sizeof(k), *prev = NULL;
	uint32_t prev_len = 0;
	int said = 0;
	char a[160];

	memcpy(&k, f->extra, sizeof(k));
	x += k.addr_len;
	if (f->d.extra_len == sizeof(k) + k.addr_len)
		return 0;
	memcpy(&h, x, sizeof(h));
	x += sizeof(h) + h.peer_len;
	for (uint32_t i = 0; i < h.nmsg; i++) {
		struct sockaddr_storage src = {0}, to;
		struct img_sock_msg m;
		socklen_t tl;
		int from, tmp, made_file, rc;
		const unsigned char *marks;
		uint32_t nf;

		memcpy(&m, x, sizeof(m));
		nf = m.src_len >> 16;
		m.src_len &= 0xffff;
		memcpy(&src, x + sizeof(m), m.src_len);
		if (!prev || prev_len != m.src_len || memcmp(prev, x + sizeof(m), m.src_len))
			said = 0;
		prev = x + sizeof(m);
		prev_len = m.src_len;
		x += sizeof(m) + m.src_len;
		marks = x;
		x += 4 * nf;
		if (!(tl = dest_of(s, &src, &to))) {
			err_sys("fd %d: cannot ask its socket its address", f->d.fd);
			return -1;
		}
		if ((from = sender(f, pipes, &src, m.src_len, k.family, &tmp, &made_file, &said)) <
		    0)
			return -1;
		if (nf)
			rc = fd_send_rights(from, x, m.len, &to, tl, marks, nf, pipes, f->d.fd) < 0
				 ? -1
				 : 0;
		else if ((rc = sendto(from, x, m.len, MSG_DONTWAIT | MSG_NOSIGNAL, (void *)&to,
				      tl)) < 0)
			err_sys("fd %d: cannot put back a datagram of %u bytes from %s", f->d.fd,
				m.len, fd_sock_addr_text(&src, m.src_len, a, sizeof(a)));
		if (made_file)
			unlink(((struct sockaddr_un *)&src)->sun_path);
		if (tmp >= 0)
			close(tmp);
		if (rc < 0)
			return -1;
		x += m.len;
	}
	return 0;
}

int fd_dgram_refill(struct fd_pipes *pipes)
{
	for (size_t i = 0; i < pipes->n; i++)
		if (pipes->p[i].kind == DGRAM_MADE &&
		    refill((const void *)(uintptr_t)pipes->p[i].id, pipes->p[i].end[0], pipes))
			return -1;
	return 0;
}

/* ---- showing -------------------------------------------------------- */

uint32_t fd_dgram_peer(const unsigned char *x, size_t n)
{
	struct img_sock_dgram h = {0};

	if (n)
		memcpy(&h, x, sizeof(h));
	return h.peer_len;
}

void fd_dgram_show(FILE *out, const unsigned char *x, size_t n, int json)
{
	struct img_sock_dgram h = {0};
	uint64_t bytes = 0, passed = 0;
	size_t off;
	char a[160];

	if (n)
		memcpy(&h, x, sizeof(h));
	off = sizeof(h) + h.peer_len;
	for (uint32_t k = 0; k < h.nmsg; k++) {
		struct img_sock_msg m;
		memcpy(&m, x + off, sizeof(m));
		bytes += m.len;
		passed += m.src_len >> 16;
		off += sizeof(m) + (m.src_len & 0xffff) + 4 * (m.src_len >> 16) + m.len;
	}
	if (h.peer_len) {
		fd_sock_addr_text(x + sizeof(h), h.peer_len, a, sizeof(a));
		if (json) {
			fputs(",\"peer\":", out);
			json_str(out, a, strlen(a));
		} else {
			fprintf(out, " peer %s", a);
		}
	}
	fd_put_num(out, json, "queued", bytes);
	fd_put_num(out, json, "datagrams", h.nmsg);
	if (passed)
		fd_put_num(out, json, "passed", passed);
}
