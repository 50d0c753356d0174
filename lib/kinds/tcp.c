/* tcp.c: established TCP connections, IPv4 and IPv6, whose two ends the tree holds: their exact
 * addresses and ports, options, shutdowns, and every byte in flight either way, which needs no
 * privilege: the two ends are joined again at restore and the bytes resent (what one end had
 * not read yet goes in through the other).  A connection to a peer outside the tree is refused,
 * restored reset (--tcp-close), or, as root, kept as it was with TCP_REPAIR
 * (--tcp-established). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

enum {
	ST_ESTABLISHED = 1,
	ST_FIN_WAIT1 = 4,
	ST_FIN_WAIT2 = 5,
	ST_CLOSE_WAIT = 8,
	ST_LAST_ACK = 9,
	ST_CLOSING = 11,
};
/* TCP option kinds (RFC 793, 7323, 2018) as TCP_REPAIR_OPTIONS takes
 * them; <netinet/tcp.h> has them, but not beside <linux/tcp.h>. */
#define OPT_MSS 2
#define OPT_WINDOW 3
#define OPT_SACK_PERM 4
#define OPT_TIMESTAMP 8
#define TCP_SHUT_RD 1
#define TCP_SHUT_WR 2
/* fd_pipe.shut[end] of a TCP pair: its shutdown, and its SO_REUSEADDR to
 * set once every fd is made. */
#define PAIR_REUSE 4
/* ...and that it is made with TCP_REPAIR, in repair mode until then. */
#define PAIR_REPAIRING 8
/* How long the dumper waits for bytes to move on loopback, and the
 * restore for a connection to be made. */
#define SETTLE_MS 5000

/* The states an fd of an established or half-closed connection may be in. */
static int state_ok(int st)
{
	return st == ST_ESTABLISHED || st == ST_FIN_WAIT1 || st == ST_FIN_WAIT2 ||
	       st == ST_CLOSE_WAIT || st == ST_LAST_ACK || st == ST_CLOSING;
}

/* Whether this end has sent (or queued) its FIN. */
static int sent_fin(int st)
{
	return st == ST_FIN_WAIT1 || st == ST_FIN_WAIT2 || st == ST_LAST_ACK || st == ST_CLOSING;
}

static const char *state_name(int st)
{
	switch (st) {
	case ST_ESTABLISHED:
		return "established";
	case ST_FIN_WAIT1:
		return "fin-wait1";
	case ST_FIN_WAIT2:
		return "fin-wait2";
	case ST_CLOSE_WAIT:
		return "close-wait";
	case ST_LAST_ACK:
		return "last-ack";
	case ST_CLOSING:
		return "closing";
	}
	return "?";
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---- addresses -------------------------------------------------------- */

/* A sockaddr's address and port into the image's form. */
static void sa_split(const struct sockaddr_storage *sa, uint8_t addr[16], uint16_t *port,
		     uint32_t *scope)
{
	memset(addr, 0, 16);
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)sa;
		memcpy(addr, &a->sin_addr, 4);
		*port = ntohs(a->sin_port);
	} else {
		const struct sockaddr_in6 *a = (const void *)sa;
		memcpy(addr, &a->sin6_addr, 16);
		*port = ntohs(a->sin6_port);
		if (scope)
			*scope = a->sin6_scope_id;
	}
}

/* The image's form as a sockaddr; its length. */
static socklen_t sa_make(int family, const uint8_t addr[16], uint16_t port, uint32_t scope,
			 struct sockaddr_storage *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->ss_family = family;
	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)sa;
		memcpy(&a->sin_addr, addr, 4);
		a->sin_port = htons(port);
		return sizeof(*a);
	}
	struct sockaddr_in6 *a = (void *)sa;
	memcpy(&a->sin6_addr, addr, 16);
	a->sin6_port = htons(port);
	a->sin6_scope_id = scope;
	return sizeof(*a);
}

/* 127.0.0.1:80 or [::1]:80 */
static const char *ep_text(int family, const uint8_t addr[16], uint16_t port, char *buf,
			   size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	inet_ntop(family, addr, ip, sizeof(ip));
	snprintf(buf, size, family == AF_INET ? "%s:%u" : "[%s]:%u", ip, port);
	return buf;
}

/* An address of family in IPv6 form (IPv4 mapped: ::ffff:a.b.c.d), so
 * that the two ends of a connection between an IPv4 socket and a
 * dual-stack IPv6 one compare. */
static void as_v6(int family, const uint8_t in[16], uint8_t out[16])
{
	if (family == AF_INET6) {
		memcpy(out, in, 16);
		return;
	}
	memset(out, 0, 10);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, in, 4);
}

/* An address of family from as a socket of family to has it. */
static void addr_as(int from, const uint8_t in[16], int to, uint8_t out[16])
{
	uint8_t v6[16];

	as_v6(from, in, v6);
	memset(out, 0, 16);
	if (to == AF_INET6)
		memcpy(out, v6, 16);
	else
		memcpy(out, v6 + 12, 4);
}

static int same_addr(int fa, const uint8_t a[16], int fb, const uint8_t b[16])
{
	uint8_t x[16], y[16];

	as_v6(fa, a, x);
	as_v6(fb, b, y);
	return !memcmp(x, y, 16);
}

/* "A to B", both ends of t as its own end sees them. */
static const char *conn_text(const struct img_tcp *t, char *buf, size_t size)
{
	char a[64], b[64];

	snprintf(buf, size, "%s to %s", ep_text(t->family, t->laddr, t->lport, a, sizeof(a)),
		 ep_text(t->family, t->paddr, t->pport, b, sizeof(b)));
	return buf;
}

/* ---- which kind ------------------------------------------------------ */

int fd_tcp_connected(int s)
{
	struct sockaddr_storage peer;
	socklen_t pl = sizeof(peer);
	int protocol = -1;
	socklen_t sl = sizeof(protocol);

	return !getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &protocol, &sl) && protocol == IPPROTO_TCP &&
	       !getpeername(s, (void *)&peer, &pl);
}

/* ---- capturing ------------------------------------------------------ */

static int sock_int(int s, int level, int opt)
{
	int v = 0;
	socklen_t sl = sizeof(v);

	return getsockopt(s, level, opt, &v, &sl) ? 0 : v;
}

static void set_int(int s, int level, int opt, int v)
{
	setsockopt(s, level, opt, &v, sizeof(v));
}

static int ioctl_int(int s, unsigned long req)
{
	int v = 0;

	return ioctl(s, req, &v) ? 0 : v;
}

/* s's option opt, or 0 when a new TCP socket of family has the same. */
static uint32_t opt_set(int s, int family, int level, int opt)
{
	int v = sock_int(s, level, opt), n = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), w;

	if (n < 0)
		return v;
	w = sock_int(n, level, opt);
	close(n);
	return w == v ? 0 : (uint32_t)v;
}

/* What the end of socket s has not read, peeked at a moving SO_PEEK_OFF
 * (set back afterwards) so that the program's socket keeps it all; and
 * whether an end of stream follows it (the peer's FIN, or SHUT_RD).  A
 * kernel before 6.10 has no SO_PEEK_OFF for TCP: one peek takes the whole
 * queue, and only the peer's FIN (state st) tells the end. */
static int peek_tcp(pid_t pid, int fd, int s, int st, unsigned char **data, uint32_t *len, int *eof)
{
	size_t cap = (size_t)ioctl_int(s, SIOCINQ) + 4096, n = 0;
	unsigned char *buf = malloc(cap), *nb;
	int old = -1, zero = 0, rc = -1, moving;
	socklen_t sl = sizeof(old);

	*eof = 0;
	if (!buf) {
		err_set("out of memory");
		return -1;
	}
	moving = !getsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &old, &sl) &&
		 !setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero));
	if (!moving) {
		ssize_t r = recv(s, buf, cap, MSG_PEEK | MSG_DONTWAIT);

		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			err_sys("pid %d: fd %d: cannot read what its TCP socket holds", pid, fd);
			free(buf);
			return -1;
		}
		*eof = st == ST_CLOSE_WAIT || st == ST_LAST_ACK || st == ST_CLOSING;
		*data = buf;
		*len = r > 0 ? r : 0;
		return 0;
	}
	for (;;) {
		ssize_t r;

		if (cap - n < 4096) {
			if (cap >= (256u << 20)) {
				err_set("pid %d: fd %d: more than 256 MiB queued on a TCP socket",
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
		r = recv(s, buf + n, cap - n, MSG_PEEK | MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r < 0) {
			err_sys("pid %d: fd %d: cannot read what its TCP socket holds", pid, fd);
			goto out;
		}
		if (r == 0) {
			*eof = 1;
			break;
		}
		n += r;
	}
	*data = buf;
	*len = n;
	buf = NULL;
	rc = 0;
out:
	setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &old, sizeof(old));
	free(buf);
	return rc;
}

/* The options that matter: those img_sock keeps, keepalive's timing. */
static void tcp_opts(int s, struct img_tcp *t)
{
	if (sock_int(s, SOL_SOCKET, SO_REUSEADDR))
		t->opts |= IMG_SOCKOPT_REUSEADDR;
	if (sock_int(s, SOL_SOCKET, SO_REUSEPORT))
		t->opts |= IMG_SOCKOPT_REUSEPORT;
	if (sock_int(s, SOL_SOCKET, SO_KEEPALIVE))
		t->opts |= IMG_SOCKOPT_KEEPALIVE;
	if (sock_int(s, IPPROTO_TCP, TCP_NODELAY))
		t->opts |= IMG_SOCKOPT_NODELAY;
	if (t->family == AF_INET6 && sock_int(s, IPPROTO_IPV6, IPV6_V6ONLY))
		t->opts |= IMG_SOCKOPT_V6ONLY;
	t->keepidle = opt_set(s, t->family, IPPROTO_TCP, TCP_KEEPIDLE);
	t->keepintvl = opt_set(s, t->family, IPPROTO_TCP, TCP_KEEPINTVL);
	t->keepcnt = opt_set(s, t->family, IPPROTO_TCP, TCP_KEEPCNT);
	t->sndbuf = opt_set(s, t->family, SOL_SOCKET, SO_SNDBUF);
	t->rcvbuf = opt_set(s, t->family, SOL_SOCKET, SO_RCVBUF);
}

/* One end of a connection: addresses, state, options, and what it has not
 * read (peeked: the join may drain more). */
static int capture_tcp(const struct fd_source *src, struct fd_entry *f)
{
	struct img_tcp t = {0};
	struct sockaddr_storage la, pa;
	socklen_t ll = sizeof(la), pl = sizeof(pa);
	struct tcp_info ti = {0};
	socklen_t tl = sizeof(ti);
	unsigned char *data = NULL, c;
	char conn[160];
	int s, eof, rc = -1, fd = f->d.fd;

	if ((s = fd_getfd(src->pid, fd)) < 0)
		return -1;
	if (getsockname(s, (void *)&la, &ll) || getpeername(s, (void *)&pa, &pl) ||
	    getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &tl)) {
		err_sys("pid %d: fd %d (%s): cannot ask the TCP socket its addresses and state",
			src->pid, fd, src->link);
		goto out;
	}
	t.family = t.pfamily = la.ss_family;
	t.state = ti.tcpi_state;
	sa_split(&la, t.laddr, &t.lport, &t.scope);
	sa_split(&pa, t.paddr, &t.pport, NULL);
	conn_text(&t, conn, sizeof(conn));
	if (!state_ok(t.state)) {
		err_set("pid %d: fd %d is a TCP socket from %s in state %s; not supported",
			src->pid, fd, conn, state_name(t.state));
		goto out;
	}
	/* Urgent data a reader has not taken: the pair made again could
	 * send it, but not put the mark back where it was. */
	if (recv(s, &c, 1, MSG_OOB | MSG_PEEK | MSG_DONTWAIT) >= 0) {
		err_set("pid %d: fd %d is a TCP connection from %s with urgent (out-of-band) data "
			"not read; not supported",
			src->pid, fd, conn);
		goto out;
	}
	tcp_opts(s, &t);
	t.outq = ioctl_int(s, SIOCOUTQ);
	if (peek_tcp(src->pid, fd, s, t.state, &data, &t.data_len, &eof))
		goto out;
	t.shutdown = (eof ? TCP_SHUT_RD : 0) | (sent_fin(t.state) ? TCP_SHUT_WR : 0);
	rc = fd_set_extra(f, &t, sizeof(t), data, t.data_len);
out:
	free(data);
	close(s);
	return rc;
}

/* ---- joining the two ends -------------------------------------------- */

static void get_tcp(const struct fd_entry *f, struct img_tcp *t)
{
	memcpy(t, f->extra, sizeof(*t));
}

static void put_tcp(struct fd_entry *f, const struct img_tcp *t)
{
	memcpy(f->extra, t, sizeof(*t));
}

/* The first fd of a's list that is the socket of fd i (dup'ed and
 * inherited fds share one). */
static size_t first_of(const struct fd_all *a, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (a->f[k]->d.kind == a->f[i]->d.kind && a->f[k]->d.ino == a->f[i]->d.ino)
			return k;
	return i;
}

/* The first fd of the socket at the other end of t's connection, or
 * a->n. */
static size_t find_peer(const struct fd_all *a, size_t i, const struct img_tcp *t)
{
	struct img_tcp u;

	for (size_t k = 0; k < a->n; k++) {
		if (a->f[k]->d.kind != IMG_FD_TCP || a->f[k]->d.ino == a->f[i]->d.ino ||
		    first_of(a, k) != k)
			continue;
		get_tcp(a->f[k], &u);
		if (u.lport == t->pport && u.pport == t->lport &&
		    same_addr(u.family, u.laddr, t->family, t->paddr) &&
		    same_addr(u.family, u.paddr, t->family, t->laddr))
			return k;
	}
	return a->n;
}

struct flow {
	int rcv, snd; /* our copies of the receiving end and the sending end */
	pid_t pid;    /* the receiver's, to name it */
	int fd;
};

/* Whether everything the sender wrote has reached the receiver's queue:
 * nothing left unsent, and what the receiver took in order is what the
 * sender sent (sent and unacknowledged bytes are on their way, or lost
 * and to be sent again). */
static int flow_settled(const struct flow *w)
{
	struct tcp_info rs = {0}, ss = {0};
	socklen_t rl = sizeof(rs), sl = sizeof(ss);
	int outq = ioctl_int(w->snd, SIOCOUTQ), nsd = ioctl_int(w->snd, SIOCOUTQNSD);

	if (nsd || getsockopt(w->rcv, IPPROTO_TCP, TCP_INFO, &rs, &rl) ||
	    getsockopt(w->snd, IPPROTO_TCP, TCP_INFO, &ss, &sl))
		return nsd == 0 && outq == 0;
	/* A FIN not yet acknowledged counts one in SIOCOUTQ. */
	if (sent_fin(ss.tcpi_state))
		return outq == 0;
	return rs.tcpi_bytes_received == ss.tcpi_bytes_acked + (uint64_t)outq;
}

/* Take every byte the sender has on its way out of the receiver (the
 * receiver's queue first: what the capture peeked), until the sender's
 * queue is empty.  On loopback bytes stay in the sender's queue only
 * when the receiver's window is full. */
static int drain(const struct flow *w, unsigned char **data, uint32_t *len, int *eof)
{
	size_t cap = 1 << 20, n = 0;
	unsigned char *buf = malloc(cap), *nb;
	long long end = now_ms() + SETTLE_MS;

	*eof = 0;
	if (!buf) {
		err_set("out of memory");
		return -1;
	}
	for (;;) {
		ssize_t r;

		if (cap - n < (64 << 10)) {
			if (cap >= (256u << 20) || !(nb = realloc(buf, cap * 2))) {
				err_set("pid %d: fd %d: more than 256 MiB queued on a TCP "
					"connection",
					w->pid, w->fd);
				break;
			}
			buf = nb;
			cap *= 2;
		}
		r = recv(w->rcv, buf + n, cap - n, MSG_DONTWAIT);
		if (r > 0) {
			n += r;
			continue;
		}
		if (r == 0)
			*eof = 1;
		else if (errno != EAGAIN && errno != EWOULDBLOCK) {
			err_sys("pid %d: fd %d: cannot read its TCP connection", w->pid, w->fd);
			break;
		}
		if (*eof || (ioctl_int(w->snd, SIOCOUTQ) == 0 && ioctl_int(w->rcv, SIOCINQ) == 0))
			goto done;
		if (now_ms() > end) {
			err_set("pid %d: fd %d: the bytes its TCP peer sends do not arrive", w->pid,
				w->fd);
			break;
		}
		poll(&(struct pollfd){.fd = w->rcv, .events = POLLIN}, 1, 10);
	}
	/* What was taken goes back, so that the program loses nothing. */
	*data = buf;
	*len = n;
	return -2;
done:
	*data = buf;
	*len = n;
	return 0;
}

/* Write len bytes into non-blocking or blocking s, waiting while the
 * peer's window is full, at most SETTLE_MS. */
static int send_all(int s, const unsigned char *p, size_t len)
{
	long long end = now_ms() + SETTLE_MS;

	while (len) {
		ssize_t r = send(s, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (r > 0) {
			p += r;
			len -= r;
			continue;
		}
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (now_ms() > end) {
			errno = ENOBUFS;
			return -1;
		}
		poll(&(struct pollfd){.fd = s, .events = POLLOUT}, 1, 10);
	}
	return 0;
}

/* Room for len bytes more on their way from snd to rcv: both buffers as
 * large as we may make them (SO_*BUFFORCE needs CAP_NET_ADMIN). */
static void make_room(int snd, int rcv, uint32_t len)
{
	int want = len + (1 << 20);

	if (setsockopt(snd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)))
		set_int(snd, SOL_SOCKET, SO_SNDBUF, want);
	if (setsockopt(rcv, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)))
		set_int(rcv, SOL_SOCKET, SO_RCVBUF, want);
}

/* Bytes drained from a running program's connection, written back
 * through the sender.  They were in the two queues, but the kernel need
 * not see the same room in them again (a window that grows slowly,
 * buffers charged otherwise): if they do not go in at once, the sender's
 * send buffer and the receiver's receive buffer are made large enough
 * while they do (SO_*BUFFORCE as root, else up to wmem_max and rmem_max),
 * then given their own sizes again. */
static int give_back(const struct flow *w, const unsigned char *p, size_t len)
{
	int snd = sock_int(w->snd, SOL_SOCKET, SO_SNDBUF);
	int rcv = sock_int(w->rcv, SOL_SOCKET, SO_RCVBUF), rc;
	size_t sent = 0;

	while (sent < len) {
		ssize_t r = send(w->snd, p + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r <= 0)
			break;
		sent += r;
	}
	if (sent == len)
		return 0;
	make_room(w->snd, w->rcv, len);
	rc = send_all(w->snd, p + sent, len - sent);
	/* getsockopt gave twice what was set. */
	set_int(w->snd, SOL_SOCKET, SO_SNDBUF, snd / 2);
	set_int(w->rcv, SOL_SOCKET, SO_RCVBUF, rcv / 2);
	return rc;
}

/* Fd i's socket, receiving from fd k's: the bytes still in the sender's
 * queue are drained into i's record, and, unless the dump ends with
 * --kill, written back through the sender so that the program finds them
 * where they were. */
static int take_flow(const struct fd_all *a, size_t i, size_t k, struct img_tcp *t)
{
	struct flow w = {.pid = a->pid[i], .fd = a->f[i]->d.fd, .rcv = -1, .snd = -1};
	struct img_tcp u;
	unsigned char *data = NULL;
	uint32_t len = 0;
	int eof = 0, rc = -1, r;
	char conn[160];

	get_tcp(a->f[k], &u);
	if ((w.rcv = fd_getfd(a->pid[i], w.fd)) < 0 ||
	    (w.snd = fd_getfd(a->pid[k], a->f[k]->d.fd)) < 0)
		goto out;
	/* The kill that ends the dump closes both ends: an orderly close
	 * would leave the 4-tuple in TIME_WAIT for a minute, which the
	 * restore could not connect again; an abortive one (RST) leaves
	 * nothing.  (Should the dump fail after this, the program's close
	 * of it would be abortive too.) */
	if ((a->opts & FD_OPT_KILL) && setsockopt(w.rcv, SOL_SOCKET, SO_LINGER,
						  &(struct linger){1, 0}, sizeof(struct linger))) {
		err_sys("pid %d: fd %d: cannot set SO_LINGER on its TCP socket", w.pid, w.fd);
		goto out;
	}
	if (flow_settled(&w)) {
		rc = 0;
		goto out;
	}
	if ((u.shutdown & TCP_SHUT_WR) && !(a->opts & FD_OPT_KILL)) {
		err_set("pid %d: fd %d is a TCP connection from %s whose peer shut it down "
			"with bytes still in its send queue (--kill takes them); not supported",
			w.pid, w.fd, conn_text(t, conn, sizeof(conn)));
		goto out;
	}
	r = drain(&w, &data, &len, &eof);
	if (!(a->opts & FD_OPT_KILL) && len && give_back(&w, data, len)) {
		err_sys("pid %d: fd %d: cannot give back %u bytes drained from its TCP "
			"connection",
			w.pid, w.fd, len);
		goto out;
	}
	if (r)
		goto out;
	free(a->f[i]->extra);
	t->data_len = len;
	t->shutdown |= eof ? TCP_SHUT_RD : 0;
	if (fd_set_extra(a->f[i], t, sizeof(*t), data, len))
		goto out;
	rc = 0;
out:
	free(data);
	if (w.rcv >= 0)
		close(w.rcv);
	if (w.snd >= 0)
		close(w.snd);
	return rc;
}

/* ---- a peer outside, kept with TCP_REPAIR (--tcp-established) -------- */

static int repair_queue(int s, int q)
{
	return setsockopt(s, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q));
}

static int queue_seq(int s, int q, uint32_t *seq)
{
	socklen_t sl = sizeof(*seq);

	return repair_queue(s, q) || getsockopt(s, IPPROTO_TCP, TCP_QUEUE_SEQ, seq, &sl);
}

/* Both queues of s, in repair mode: each peeked whole; -1 if a queue is
 * not what SIOCINQ and SIOCOUTQ said. */
static int repair_peek(int s, unsigned char **rq, uint32_t *rl, unsigned char **sq, uint32_t *sl)
{
	int in = ioctl_int(s, SIOCINQ), out = ioctl_int(s, SIOCOUTQ);
	ssize_t r = 0, w = 0;

	*rq = malloc(in + 1);
	*sq = malloc(out + 1);
	if (!*rq || !*sq)
		return -1;
	if ((in && (repair_queue(s, TCP_RECV_QUEUE) ||
		    (r = recv(s, *rq, in, MSG_PEEK | MSG_DONTWAIT)) != in)) ||
	    (out && (repair_queue(s, TCP_SEND_QUEUE) ||
		     (w = recv(s, *sq, out, MSG_PEEK | MSG_DONTWAIT)) != out)))
		return -1;
	*rl = in;
	*sl = out;
	return 0;
}

/* The TCP state of s, in repair mode: sequence numbers, options, window
 * (not the queues). */
static int read_repair(int s, struct img_tcp_repair *r)
{
	struct tcp_repair_window win;
	struct tcp_info ti = {0};
	socklen_t sl = sizeof(ti);

	if (queue_seq(s, TCP_SEND_QUEUE, &r->snd_seq) ||
	    queue_seq(s, TCP_RECV_QUEUE, &r->rcv_seq) ||
	    getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &sl) ||
	    (sl = sizeof(r->mss), getsockopt(s, IPPROTO_TCP, TCP_MAXSEG, &r->mss, &sl)) ||
	    (sl = sizeof(r->timestamp),
	     getsockopt(s, IPPROTO_TCP, TCP_TIMESTAMP, &r->timestamp, &sl)) ||
	    (sl = sizeof(win), getsockopt(s, IPPROTO_TCP, TCP_REPAIR_WINDOW, &win, &sl)))
		return -1;
	r->tcpi_options = ti.tcpi_options & (TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE);
	r->snd_wscale = ti.tcpi_snd_wscale;
	r->rcv_wscale = ti.tcpi_rcv_wscale;
	r->snd_wl1 = win.snd_wl1;
	r->snd_wnd = win.snd_wnd;
	r->max_window = win.max_window;
	r->rcv_wnd = win.rcv_wnd;
	r->rcv_wup = win.rcv_wup;
	return 0;
}

/* Fd i, connected to a peer outside: its sequence numbers, options,
 * window and both queues, read in repair mode (CAP_NET_ADMIN).  With
 * --kill the socket stays in repair mode, so that the kill closes it
 * without a word to the peer (no FIN, no RST); else it is as it was. */
static int repair_capture(const struct fd_all *a, size_t i, struct img_tcp *t)
{
	struct fd_entry *f = a->f[i];
	struct img_tcp_repair r = {0};
	unsigned char *rq = NULL, *sq = NULL, *x;
	uint32_t rl = 0, ql = 0;
	int s, on = 0, rc = -1;
	char conn[160];

	conn_text(t, conn, sizeof(conn));
	if (t->state != ST_ESTABLISHED) {
		err_set("pid %d: fd %d is a TCP connection from %s, a peer outside the dumped "
			"processes, in state %s (--tcp-established keeps established ones); not "
			"supported",
			a->pid[i], f->d.fd, conn, state_name(t->state));
		return -1;
	}
	if ((s = fd_getfd(a->pid[i], f->d.fd)) < 0)
		return -1;
	if (setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &(int){TCP_REPAIR_ON}, sizeof(int))) {
		err_sys("pid %d: fd %d: cannot put its TCP connection from %s in repair mode "
			"(--tcp-established needs CAP_NET_ADMIN)",
			a->pid[i], f->d.fd, conn);
		goto out;
	}
	on = 1;
	if (read_repair(s, &r) || repair_peek(s, &rq, &rl, &sq, &ql) ||
	    repair_queue(s, TCP_NO_QUEUE)) {
		err_sys("pid %d: fd %d: cannot read the state of its TCP connection from %s in "
			"repair mode",
			a->pid[i], f->d.fd, conn);
		goto out;
	}
	r.sendq_len = ql;
	t->flags |= IMG_TCP_REPAIR;
	t->data_len = rl;
	if (!(x = malloc(sizeof(*t) + sizeof(r) + (size_t)rl + ql))) {
		err_set("out of memory");
		goto out;
	}
	memcpy(x, t, sizeof(*t));
	memcpy(x + sizeof(*t), &r, sizeof(r));
	memcpy(x + sizeof(*t) + sizeof(r), rq, rl);
	memcpy(x + sizeof(*t) + sizeof(r) + rl, sq, ql);
	free(f->extra);
	f->extra = x;
	f->d.extra_len = sizeof(*t) + sizeof(r) + rl + ql;
	rc = 0;
out:
	if (on && (rc || !(a->opts & FD_OPT_KILL)))
		setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &(int){TCP_REPAIR_OFF_NO_WP}, sizeof(int));
	free(rq);
	free(sq);
	close(s);
	return rc;
}

/* ---- both ends in the tree, with their sequence numbers --------------- */

/* Fd i's state read in repair mode into *r, where the kernel lets us
 * (CAP_NET_ADMIN in its net namespace: root, or the owner of a user
 * namespace it belongs to), and the socket left as it was; 0 if not. */
static int try_repair(const struct fd_all *a, size_t i, struct img_tcp_repair *r)
{
	int s = fd_getfd(a->pid[i], a->f[i]->d.fd), ok;

	if (s < 0)
		return 0;
	ok = !setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &(int){TCP_REPAIR_ON}, sizeof(int));
	if (ok) {
		ok = !read_repair(s, r) && !repair_queue(s, TCP_NO_QUEUE);
		setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &(int){TCP_REPAIR_OFF_NO_WP}, sizeof(int));
	}
	close(s);
	return ok;
}

/* Before any byte is drained: each established connection whose two ends
 * can be read in repair mode gets their sequence numbers (rep[i], ok[i]
 * for the first fd of each end), so that the restore can make it as it
 * was where it may use TCP_REPAIR too. */
static void pair_states(const struct fd_all *a, struct img_tcp_repair *rep, char *ok)
{
	for (size_t i = 0; i < a->n; i++) {
		struct img_tcp t, u;
		size_t k;

		if (a->f[i]->d.kind != IMG_FD_TCP || first_of(a, i) != i)
			continue;
		get_tcp(a->f[i], &t);
		if ((t.flags & IMG_TCP_PENDING) || (k = find_peer(a, i, &t)) == a->n || k < i)
			continue;
		get_tcp(a->f[k], &u);
		if (t.state != ST_ESTABLISHED || u.state != ST_ESTABLISHED || t.shutdown ||
		    u.shutdown || !try_repair(a, i, &rep[i]) || !try_repair(a, k, &rep[k]))
			continue;
		ok[i] = ok[k] = 1;
	}
}

/* Once the bytes are taken: fd i's record carries its repair state too.
 * What it receives (data_len) is everything its peer sent that it has
 * not read: its receive queue then ends where the peer's send queue did
 * (rcv_seq), and its own send queue is empty (its bytes are its peer's). */
static int pair_repaired(struct fd_all *a, size_t i, const struct img_tcp_repair *peer,
			 struct img_tcp_repair r)
{
	struct fd_entry *f = a->f[i];
	struct img_tcp t;
	unsigned char *x;

	get_tcp(f, &t);
	r.rcv_seq = peer->snd_seq;
	r.sendq_len = 0;
	t.flags |= IMG_TCP_REPAIR | IMG_TCP_PAIRED;
	if (!(x = malloc(sizeof(t) + sizeof(r) + (size_t)t.data_len))) {
		err_set("out of memory");
		return -1;
	}
	memcpy(x, &t, sizeof(t));
	memcpy(x + sizeof(t), &r, sizeof(r));
	memcpy(x + sizeof(t) + sizeof(r), f->extra + sizeof(t), t.data_len);
	free(f->extra);
	f->extra = x;
	f->d.extra_len = sizeof(t) + sizeof(r) + t.data_len;
	return 0;
}

/* ---- connections waiting in a listener's queue ---------------------- */

/* Listening TCP socket f (IMG_FD_SOCK): its record and address. */
static int tcp_listener(const struct fd_entry *f, struct img_sock *k, struct sockaddr_storage *sa)
{
	if (f->d.kind != IMG_FD_SOCK || f->d.extra_len < sizeof(*k))
		return 0;
	memcpy(k, f->extra, sizeof(*k));
	if (k->protocol != IPPROTO_TCP || k->state != IMG_SOCK_LISTEN ||
	    k->addr_len > sizeof(*sa) || f->d.extra_len < sizeof(*k) + k->addr_len)
		return 0;
	memset(sa, 0, sizeof(*sa));
	memcpy(sa, f->extra + sizeof(*k), k->addr_len);
	return 1;
}

/* The first fd of the listener of the tree that takes connections to t's
 * peer address (its own, or the wildcard, on that port), or a->n. */
static size_t tree_listener(const struct fd_all *a, const struct img_tcp *t)
{
	static const uint8_t any[16];

	for (size_t k = 0; k < a->n; k++) {
		struct img_sock l;
		struct sockaddr_storage sa;
		uint8_t addr[16];
		uint16_t port;

		if (!tcp_listener(a->f[k], &l, &sa))
			continue;
		sa_split(&sa, addr, &port, NULL);
		if (port != t->pport)
			continue;
		if (same_addr(l.family, addr, t->family, t->paddr) ||
		    (!memcmp(addr, any, 16) &&
		     (l.family == t->family ||
		      (l.family == AF_INET6 && !(l.opts & IMG_SOCKOPT_V6ONLY)))))
			return k;
	}
	return a->n;
}

/* Whether fd i, whose peer no fd of the tree holds, is a client whose
 * connection waits in the queue of a listener of the tree: its peer has
 * no file yet (sock_diag says inode 0) and is established (or has the
 * client's FIN).  *held: the bytes the client sent that it holds, *age
 * how long ago it was made (ms; it sends nothing before an accept). */
static int waiting(const struct fd_all *a, size_t i, const struct img_tcp *t, uint32_t *held,
		   uint32_t *age)
{
	struct fd_diag d;

	if (tree_listener(a, t) == a->n ||
	    fd_tcp_diag(a->pid[i], t->family, t->paddr, t->pport, t->laddr, t->lport, &d) ||
	    d.inode || (d.state != ST_ESTABLISHED && d.state != ST_CLOSE_WAIT))
		return 0;
	/* The client's FIN counts one in the queue. */
	*held = d.rqueue - (d.state == ST_CLOSE_WAIT && d.rqueue);
	*age = d.sent_ago;
	return 1;
}

/* The waiting client of fd i, placed, with len bytes it sent. */
static int set_waiting(struct fd_all *a, size_t i, uint32_t place, const unsigned char *data,
		       uint32_t len)
{
	struct img_tcp t;

	get_tcp(a->f[i], &t);
	t.end = place;
	t.data_len = len;
	free(a->f[i]->extra);
	a->f[i]->extra = NULL;
	return fd_set_extra(a->f[i], &t, sizeof(t), data, len);
}

/* Listener l's waiting connections, accepted by the dumper (the dump ends
 * with --kill, which closes them): each client (marked in wait[]) gets
 * its place in the queue and every byte it sent, drained.  Each accepted
 * end is closed abortively, so that no TIME_WAIT keeps its 4-tuple from
 * the restore. */
static int take_waiting(struct fd_all *a, size_t l, uint32_t *wait)
{
	struct sockaddr_storage pa;
	socklen_t pl = sizeof(pa);
	uint32_t place = 0;
	int s = fd_getfd(a->pid[l], a->f[l]->d.fd), c, rc = 0;

	if (s < 0)
		return -1;
	/* The listener's file is the program's, blocking: accept only what
	 * poll says is there. */
	while (!rc && poll(&(struct pollfd){s, POLLIN, 0}, 1, 0) == 1 &&
	       (c = accept4(s, (void *)&pa, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct flow w = {.rcv = c, .snd = -1};
		struct img_tcp t;
		unsigned char *data = NULL;
		uint32_t len = 0;
		uint8_t addr[16];
		uint16_t port;
		size_t k;
		int eof;

		setsockopt(c, SOL_SOCKET, SO_LINGER, &(struct linger){1, 0}, sizeof(struct linger));
		sa_split(&pa, addr, &port, NULL);
		pl = sizeof(pa);
		for (k = 0; k < a->n; k++) {
			if (!wait[k])
				continue;
			get_tcp(a->f[k], &t);
			if (t.lport == port && same_addr(t.family, t.laddr, pa.ss_family, addr))
				break;
		}
		/* Not one of the tree's: closed, as the kill would. */
		if (k < a->n) {
			w.pid = a->pid[k];
			w.fd = a->f[k]->d.fd;
			rc = (w.snd = fd_getfd(w.pid, w.fd)) < 0 || drain(&w, &data, &len, &eof) ||
			     set_waiting(a, k, place++, data, len);
			wait[k] = 0;
			free(data);
			if (w.snd >= 0)
				close(w.snd);
		}
		close(c);
	}
	close(s);
	for (size_t k = 0; k < a->n && !rc; k++)
		if (wait[k] == l + 1) {
			char conn[160];
			struct img_tcp t;

			get_tcp(a->f[k], &t);
			err_set(
			    "pid %d: fd %d: its TCP connection from %s, waiting to be accepted, "
			    "is not in its listener's queue",
			    a->pid[k], a->f[k]->d.fd, conn_text(&t, conn, sizeof(conn)));
			rc = 1;
		}
	return rc ? -1 : 0;
}

/* Listener l (its first fd) and the clients of the tree waiting in its
 * queue (wait[k] set, held[k] bytes each, age[k]): every waiting connection
 * must be one of them; with --kill the dumper accepts them in their order,
 * without it each keeps the place its age gives it (to the kernel's clock
 * tick; within a tick, the tree's order of fds) and one that holds bytes is
 * refused. */
static int place_waiting(struct fd_all *a, size_t l, uint32_t *wait, const uint32_t *held,
			 const uint32_t *age)
{
	struct img_sock k;
	struct sockaddr_storage sa;
	struct fd_diag d;
	uint32_t n = 0;
	char name[64], conn[160];

	tcp_listener(a->f[l], &k, &sa);
	for (size_t i = 0; i < a->n; i++)
		n += wait[i] == l + 1;
	if (fd_tcp_listen_diag(a->pid[l], k.family, a->f[l]->d.ino, &d)) {
		err_sys("pid %d: fd %d: cannot query its listening TCP socket with sock_diag",
			a->pid[l], a->f[l]->d.fd);
		return -1;
	}
	if (d.rqueue > n) {
		err_set("pid %d: fd %d is a listening TCP socket on %s with a connection nobody "
			"accepted yet whose client is not in the dumped processes; not supported",
			a->pid[l], a->f[l]->d.fd,
			fd_sock_addr_text(&sa, k.addr_len, name, sizeof(name)));
		return -1;
	}
	if (!n)
		return 0;
	for (size_t i = 0; i < a->n; i++) {
		uint32_t place = 0;
		struct img_tcp t;

		if (wait[i] != l + 1)
			continue;
		get_tcp(a->f[i], &t);
		if ((held[i] || t.outq > (uint32_t)sent_fin(t.state)) && !(a->opts & FD_OPT_KILL)) {
			err_set(
			    "pid %d: fd %d is a TCP connection from %s, which has not been "
			    "accepted yet, with data it sent (taken with --kill); not supported",
			    a->pid[i], a->f[i]->d.fd, conn_text(&t, conn, sizeof(conn)));
			return -1;
		}
		for (size_t j = 0; j < a->n; j++)
			if (wait[j] == l + 1 && (age[j] > age[i] || (age[j] == age[i] && j < i)))
				place++;
		t.end = place;
		put_tcp(a->f[i], &t);
	}
	return 0;
}

/* Every client of the tree whose connection waits in the queue of a
 * listener of the tree: IMG_TCP_PENDING, placed, and (--kill) what it
 * sent taken. */
static int join_waiting(struct fd_all *a)
{
	uint32_t *wait = calloc(3 * a->n + 1, sizeof(uint32_t)), *held = wait + a->n,
		 *age = held + a->n;
	int rc = -1;

	if (!wait) {
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < a->n; i++) {
		struct img_tcp t;

		if (a->f[i]->d.kind != IMG_FD_TCP || first_of(a, i) != i)
			continue;
		get_tcp(a->f[i], &t);
		if (find_peer(a, i, &t) < a->n || !waiting(a, i, &t, &held[i], &age[i]))
			continue;
		wait[i] = tree_listener(a, &t) + 1;
		t.flags |= IMG_TCP_PENDING;
		t.id = a->f[i]->d.ino;
		t.pfamily = t.family;
		put_tcp(a->f[i], &t);
		/* What it has to read: nothing, nobody has its peer. */
		set_waiting(a, i, 0, NULL, 0);
	}
	/* Every listener is checked before any is taken from. */
	for (size_t l = 0; l < a->n; l++) {
		struct img_sock k;
		struct sockaddr_storage sa;

		if (tcp_listener(a->f[l], &k, &sa) && first_of(a, l) == l &&
		    place_waiting(a, l, wait, held, age))
			goto out;
	}
	for (size_t l = 0; l < a->n && (a->opts & FD_OPT_KILL); l++) {
		int any = 0;

		for (size_t i = 0; i < a->n; i++)
			any |= wait[i] == l + 1;
		if (any && take_waiting(a, l, wait))
			goto out;
	}
	rc = 0;
out:
	free(wait);
	return rc;
}

/* Every connection: its peer found by the 4-tuple, or refused (or reset,
 * --tcp-close); what either end's peer had not sent yet taken; the first
 * fd of each socket carries what is queued for it.  A client whose
 * connection waits in a listener's queue is join_waiting's. */
static int join_tcp(struct fd_all *a)
{
	struct img_tcp_repair *rep;
	char *ok;
	int rc = -1;

	if (join_waiting(a))
		return -1;
	rep = calloc(a->n + 1, sizeof(*rep));
	ok = calloc(a->n + 1, 1);
	if (!rep || !ok) {
		err_set("out of memory");
		goto out;
	}
	pair_states(a, rep, ok);
	for (size_t i = 0; i < a->n; i++) {
		struct fd_entry *f = a->f[i];
		struct img_tcp t, u;
		size_t k;
		char conn[160];

		if (f->d.kind != IMG_FD_TCP || first_of(a, i) != i)
			continue;
		get_tcp(f, &t);
		if (t.flags & IMG_TCP_PENDING)
			continue;
		if ((k = find_peer(a, i, &t)) == a->n) {
			if (a->opts & FD_OPT_TCP_ESTABLISHED) {
				t.id = f->d.ino;
				if (repair_capture(a, i, &t))
					goto out;
				continue;
			}
			if (!(a->opts & FD_OPT_TCP_CLOSE)) {
				err_set("pid %d: fd %d is a TCP connection from %s, a peer outside "
					"the dumped processes (--tcp-close restores it reset, "
					"--tcp-established as it was); not supported",
					a->pid[i], f->d.fd, conn_text(&t, conn, sizeof(conn)));
				goto out;
			}
			t.flags |= IMG_TCP_RESET;
			t.id = f->d.ino;
			t.data_len = 0;
			put_tcp(f, &t);
			fd_drop_data(f, sizeof(t));
			continue;
		}
		get_tcp(a->f[k], &u);
		t.pfamily = u.family;
		t.id = f->d.ino < a->f[k]->d.ino ? f->d.ino : a->f[k]->d.ino;
		t.end = f->d.ino > a->f[k]->d.ino;
		put_tcp(f, &t);
		if (take_flow(a, i, k, &t))
			goto out;
	}
	for (size_t i = 0; i < a->n; i++) {
		struct img_tcp t;

		if (ok[i]) {
			get_tcp(a->f[i], &t);
			if (pair_repaired(a, i, &rep[find_peer(a, i, &t)], rep[i]))
				goto out;
		}
	}
	/* The other fds of a socket are made as duplicates of its first
	 * (same desc), which carries the queue and the repair state. */
	for (size_t i = 0; i < a->n; i++) {
		struct fd_entry *f = a->f[i];
		struct img_tcp t, u;
		size_t first;

		if (f->d.kind != IMG_FD_TCP || (first = first_of(a, i)) == i)
			continue;
		get_tcp(f, &t);
		get_tcp(a->f[first], &u);
		t.id = u.id;
		t.end = u.end;
		t.pfamily = u.pfamily;
		t.flags = u.flags & ~(IMG_TCP_REPAIR | IMG_TCP_PAIRED);
		t.shutdown = u.shutdown;
		t.data_len = 0;
		put_tcp(f, &t);
		fd_drop_data(f, sizeof(t));
	}
	rc = 0;
out:
	free(rep);
	free(ok);
	return rc;
}

static int check_tcp(const unsigned char *x, uint32_t n)
{
	struct img_tcp t;
	static const uint8_t zero[12], mapped[12] = {[10] = 0xff, [11] = 0xff};

	if (n < sizeof(t))
		return -1;
	memcpy(&t, x, sizeof(t));
	if (t.flags & IMG_TCP_REPAIR) {
		struct img_tcp_repair r;

		if (n < sizeof(t) + sizeof(r) || (t.flags & IMG_TCP_RESET))
			return -1;
		memcpy(&r, x + sizeof(t), sizeof(r));
		/* Both ends in the tree: its peer holds what it sent. */
		if ((t.flags & IMG_TCP_PAIRED) && (r.sendq_len || t.shutdown))
			return -1;
		if (r.snd_wscale > 14 || r.rcv_wscale > 14 || r.pad ||
		    (r.tcpi_options & ~(TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE)) ||
		    t.state != ST_ESTABLISHED)
			return -1;
		n -= sizeof(r);
		if (r.sendq_len > n - sizeof(t))
			return -1;
		n -= r.sendq_len;
	}
	if (n != sizeof(t) + (uint64_t)t.data_len ||
	    (t.family != AF_INET && t.family != AF_INET6) ||
	    (t.pfamily != AF_INET && t.pfamily != AF_INET6) || !state_ok(t.state) ||
	    t.shutdown > 3 || (t.opts & ~IMG_SOCKOPT_ALL) || (t.flags & ~IMG_TCP_FLAGS) ||
	    (t.end > 1 && !(t.flags & IMG_TCP_PENDING)) || !t.lport || !t.pport ||
	    t.keepidle > 32767 || t.keepintvl > 32767 || t.keepcnt > 127 ||
	    ((t.flags & IMG_TCP_RESET) && t.data_len))
		return -1;
	if ((t.flags & IMG_TCP_PAIRED) && !(t.flags & IMG_TCP_REPAIR))
		return -1;
	/* A waiting client: nobody had its peer to send or close it. */
	if ((t.flags & IMG_TCP_PENDING) &&
	    ((t.flags & ~IMG_TCP_PENDING) || t.end >= 1u << 20 || t.family != t.pfamily ||
	     (t.state != ST_ESTABLISHED && t.state != ST_FIN_WAIT1 && t.state != ST_FIN_WAIT2)))
		return -1;
	if (t.family == AF_INET &&
	    (memcmp(t.laddr + 4, zero, 12) || memcmp(t.paddr + 4, zero, 12) || t.scope))
		return -1;
	/* An IPv6 end of an IPv4 peer sees IPv4-mapped addresses. */
	if (t.family != t.pfamily && t.family == AF_INET6 &&
	    (memcmp(t.laddr, mapped, 12) || memcmp(t.paddr, mapped, 12)))
		return -1;
	return 0;
}

/* ---- making it again -------------------------------------------------- */

/* A TCP socket of family for address sa, SO_REUSEADDR on. */
static int new_sock(int family, const struct sockaddr_storage *sa)
{
	int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);

	if (s < 0)
		return -1;
	set_int(s, SOL_SOCKET, SO_REUSEADDR, 1);
	/* An IPv4-mapped address needs a dual-stack socket. */
	if (family == AF_INET6)
		set_int(s, IPPROTO_IPV6, IPV6_V6ONLY,
			!IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr));
	return s;
}

/* The same, bound to sa. */
static int bound_sock(int family, const struct sockaddr_storage *sa, socklen_t sl)
{
	int s = new_sock(family, sa);

	if (s >= 0 && bind(s, (const void *)sa, sl)) {
		int e = errno;
		close(s);
		errno = e;
		return -1;
	}
	return s;
}

#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE 51
#endif

/* Whether connect(2) picks port from its range (ip_local_port_range). */
static int ephemeral(uint16_t port)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
	unsigned lo = 1, hi = 0;

	if (f) {
		if (fscanf(f, "%u %u", &lo, &hi) != 2)
			hi = 0;
		fclose(f);
	}
	return port >= lo && port <= hi;
}

/* Socket s (non-blocking, not bound) from address sa connecting to "to"
 * (under way).  Its port is had the way connect(2) picks one, narrowed to
 * it (IP_LOCAL_PORT_RANGE, Linux 6.3): connect shares a port with
 * connections elsewhere, TIME_WAIT ones too, as the program's own
 * connect did, where bind(2) refuses a port that a socket without
 * SO_REUSEADDR holds (another program's, or one of the program's own
 * that went before).  A port connect would not pick (outside the
 * ephemeral range, or bound by bind) is bound; so is one connect found
 * taken (a socket not bound to a port may bind again). */
static int connect_on(int s, const struct sockaddr_storage *sa, socklen_t sl,
		      const struct sockaddr_storage *to, socklen_t tl)
{
	struct sockaddr_storage any = *sa, got;
	socklen_t gl = sizeof(got);
	uint8_t a[16];
	uint16_t port, had = 0;
	uint32_t range;

	sa_split(sa, a, &port, NULL);
	range = port | (uint32_t)port << 16;
	((struct sockaddr_in *)&any)->sin_port = 0; /* sin6_port is there too */
	if (ephemeral(port) &&
	    !setsockopt(s, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &(int){1}, sizeof(int)) &&
	    !setsockopt(s, IPPROTO_IP, IP_LOCAL_PORT_RANGE, &range, sizeof(range)) &&
	    !bind(s, (void *)&any, sl)) {
		if (!connect(s, (const void *)to, tl) || errno == EINPROGRESS) {
			if (!getsockname(s, (void *)&got, &gl))
				sa_split(&got, a, &had, NULL);
			errno = EADDRINUSE;
			return had == port ? 0 : -1;
		}
		if (errno != EADDRNOTAVAIL && errno != EADDRINUSE)
			return -1;
	}
	if (bind(s, (const void *)sa, sl) ||
	    (connect(s, (const void *)to, tl) && errno != EINPROGRESS))
		return -1;
	return 0;
}

/* A socket of family from address sa connecting to "to" (non-blocking,
 * under way), as connect_on makes it. */
static int connect_from(int family, const struct sockaddr_storage *sa, socklen_t sl,
			const struct sockaddr_storage *to, socklen_t tl)
{
	int s = new_sock(family, sa), e;

	if (s < 0)
		return -1;
	fcntl(s, F_SETFL, O_NONBLOCK);
	if (!connect_on(s, sa, sl, to, tl))
		return s;
	e = errno;
	close(s);
	errno = e;
	return -1;
}

/* connect_from, where connections in TIME-WAIT hold the connecting end's
 * port (the program's own, closed at its end or by a kill, or those of
 * an earlier restore of the same image): on loopback the kernel lets
 * connect(2) take a TIME-WAIT 4-tuple over a second after its last
 * segment (tcp_tw_reuse 2), so a second and a half of retries; then, as
 * fd_tcp_port_wait does for a listener, root ends them and anyone else
 * waits for their timers.  fd names the program's fd in its message. */
static int connect_held(int family, const struct sockaddr_storage *sa, socklen_t sl,
			const struct sockaddr_storage *to, socklen_t tl, int fd)
{
	double end = now_sec() + 1.5;
	uint16_t port;
	uint8_t a[16];
	int c;

	sa_split(sa, a, &port, NULL);
	while ((c = connect_from(family, sa, sl, to, tl)) < 0 &&
	       (errno == EADDRINUSE || errno == EADDRNOTAVAIL) && now_sec() < end)
		usleep(50000);
	if (c < 0 && (errno == EADDRINUSE || errno == EADDRNOTAVAIL) &&
	    !fd_tcp_port_wait(family, port, fd))
		c = connect_from(family, sa, sl, to, tl);
	return c;
}

/* Whether listening socket l takes connections to sa (its address, or
 * the wildcard, on the same port). */
static int listens_on(int l, const struct sockaddr_storage *sa)
{
	struct sockaddr_storage la;
	socklen_t ll = sizeof(la);
	uint8_t a[16], b[16];
	uint16_t pa, pb;
	static const uint8_t any[16];

	if (!sock_int(l, SOL_SOCKET, SO_ACCEPTCONN) || getsockname(l, (void *)&la, &ll) ||
	    la.ss_family != sa->ss_family)
		return 0;
	sa_split(&la, a, &pa, NULL);
	sa_split(sa, b, &pb, NULL);
	return pa == pb && (!memcmp(a, b, 16) || !memcmp(a, any, 16));
}

/* A listening socket this process holds (made for the program already)
 * that connections to sa reach, or -1: the pair is made through it, as
 * a temporary listener could not have its port. */
static int made_listener(const struct sockaddr_storage *sa)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int l = -1;

	/* listens_on asks SO_ACCEPTCONN first: anything but a socket fails
	 * it at once. */
	while (d && l < 0 && (de = readdir(d))) {
		int fd = atoi(de->d_name);
		if (fd > 2 && fd != dirfd(d) && listens_on(fd, sa))
			l = fd;
	}
	if (d)
		closedir(d);
	return l;
}

/* Accept, from l, the connection that comes from from: others that
 * would arrive meanwhile are not ours and are closed. */
static int accept_from(int l, const struct sockaddr_storage *from)
{
	long long end = now_ms() + SETTLE_MS;
	struct sockaddr_storage pa;
	uint8_t a[16], b[16];
	uint16_t pa_port, pb_port;

	sa_split(from, b, &pb_port, NULL);
	while (now_ms() < end) {
		socklen_t pl = sizeof(pa);
		int c = accept4(l, (void *)&pa, &pl, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (c < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				return -1;
			poll(&(struct pollfd){.fd = l, .events = POLLIN}, 1, 10);
			continue;
		}
		sa_split(&pa, a, &pa_port, NULL);
		if (pa_port == pb_port && same_addr(pa.ss_family, a, from->ss_family, b))
			return c;
		close(c);
	}
	errno = ETIMEDOUT;
	return -1;
}

/* The two ends of t's connection again, with their addresses: end a
 * (t's own) accepts through a listener on its address (one made for the
 * program, else a temporary one), end b is bound to its own and
 * connects; or the other way round when a made listener serves b's
 * address.  Both non-blocking, SO_REUSEADDR on until every fd is made. */
/* The accepting end's address in ab, the connecting end's in bb (64
 * bytes each), errno kept. */
static void ends_text(const struct img_tcp *t, const uint8_t peer[16], const int fam[2], int me,
		      int acc, char *ab, char *bb)
{
	int e = errno;

	ep_text(fam[acc], acc == me ? t->laddr : peer, acc == me ? t->lport : t->pport, ab, 64);
	ep_text(fam[!acc], acc != me ? t->laddr : peer, acc != me ? t->lport : t->pport, bb, 64);
	errno = e;
}

static int make_pair(const struct fd_entry *f, const struct img_tcp *t, int end[2])
{
	struct sockaddr_storage sa[2];
	socklen_t sl[2];
	struct sockaddr_storage to;
	socklen_t tl;
	int fam[2], me = t->end, acc = me, con, l = -1, tmp = -1, c = -1, s = -1;
	uint8_t peer[16], x[16];
	char ab[64], bb[64];
	const char *what;

	/* The peer's address as its own socket has it. */
	fam[me] = t->family;
	fam[!me] = t->pfamily;
	addr_as(t->family, t->paddr, t->pfamily, peer);
	sl[me] = sa_make(t->family, t->laddr, t->lport, t->scope, &sa[me]);
	sl[!me] =
	    sa_make(t->pfamily, peer, t->pport, t->pfamily == t->family ? t->scope : 0, &sa[!me]);
	/* One end accepts through a temporary listener on its address, the
	 * other connects.  Where a listener made for the program holds an
	 * address, it takes the connection; where another socket does
	 * (bind(2) refuses a port that a connection without SO_REUSEADDR
	 * holds, even in TIME_WAIT: a client's port, shared by its other
	 * connections), the other end listens.  Only a conflict costs a look
	 * at every fd. */
	for (int k = 0, e = 0; k < 2 && l < 0; k++) {
		acc = k ? !me : me;
		if ((tmp = bound_sock(fam[acc], &sa[acc], sl[acc])) >= 0 && listen(tmp, 1)) {
			close(tmp);
			tmp = -1;
		}
		e = k ? e : errno;
		if ((l = tmp) < 0 && errno == EADDRINUSE)
			l = made_listener(&sa[acc]);
		if (l < 0 && k) {
			/* Named after the first end tried. */
			acc = me;
			errno = e;
			what = "listen on";
			goto fail_acc;
		}
	}
	con = !acc;
	what = "connect from";
	/* An IPv4 socket connects to the IPv4 address a dual-stack
	 * listener sees mapped. */
	to = sa[acc];
	tl = sl[acc];
	if (fam[con] != fam[acc]) {
		addr_as(fam[acc], acc == me ? t->laddr : peer, fam[con], x);
		tl = sa_make(fam[con], x, acc == me ? t->lport : t->pport, 0, &to);
	}
	if ((c = connect_held(fam[con], &sa[con], sl[con], &to, tl, f->d.fd)) < 0) {
		int e = errno, other;
		/* A listener made for the program holds the connecting end's
		 * port: it takes the connection the other way round. */
		if (e == EADDRINUSE && tmp >= 0 && (other = made_listener(&sa[con])) >= 0) {
			close(tmp);
			tmp = -1;
			l = other;
			acc = con;
			con = !acc;
			to = sa[acc];
			tl = sl[acc];
			if (fam[con] != fam[acc]) {
				addr_as(fam[acc], acc == me ? t->laddr : peer, fam[con], x);
				tl = sa_make(fam[con], x, acc == me ? t->lport : t->pport, 0, &to);
			}
			c = connect_from(fam[con], &sa[con], sl[con], &to, tl);
			e = errno;
		}
		errno = e;
		if (c < 0)
			goto fail_con;
	}
	if ((s = accept_from(l, &sa[con])) < 0)
		goto fail_con;
	if (tmp >= 0)
		close(tmp);
	set_int(s, SOL_SOCKET, SO_REUSEADDR, 1);
	end[acc] = s;
	end[con] = c;
	return 0;
fail_acc:
	ends_text(t, peer, fam, me, acc, ab, bb);
	if (errno == EADDRINUSE)
		err_set("fd %d: TCP connection from %s to %s: port %u is in use", f->d.fd, ab, bb,
			ntohs(((struct sockaddr_in *)&sa[acc])->sin_port));
	else
		err_sys("fd %d: TCP connection from %s to %s: cannot %s %s", f->d.fd, ab, bb, what,
			ab);
	goto out;
fail_con:
	ends_text(t, peer, fam, me, acc, ab, bb);
	if (errno == EADDRINUSE || errno == EADDRNOTAVAIL) {
		uint16_t cport;

		sa_split(&sa[con], x, &cport, NULL);
		err_set("fd %d: TCP connection from %s to %s: address %s is in use%s", f->d.fd, bb,
			ab, bb, fd_tcp_port_holder(cport));
	} else {
		err_sys("fd %d: TCP connection from %s to %s: cannot %s %s", f->d.fd, bb, ab, what,
			bb);
	}
out:
	if (tmp >= 0)
		close(tmp);
	if (c >= 0)
		close(c);
	return -1;
}

/* A connection reset by its peer: reads give ECONNRESET, then the end
 * of the stream; writes EPIPE.  Made on loopback (the peer is gone; its
 * address is no longer one to connect to) and reset by an abortive close
 * of the accepting end (SO_LINGER 0 sends RST). */
static int make_reset(const struct fd_entry *f, const struct img_tcp *t)
{
	static const uint8_t lo6[16] = {[15] = 1}, lo4[16] = {127, 0, 0, 1};
	struct sockaddr_storage sa;
	socklen_t sl = sa_make(t->family, t->family == AF_INET ? lo4 : lo6, 0, 0, &sa);
	struct linger lg = {1, 0};
	int l = -1, c = -1, s = -1;

	if ((l = socket(t->family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(l, (void *)&sa, sl) || listen(l, 1) || getsockname(l, (void *)&sa, &sl) ||
	    (c = socket(t->family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(c, (void *)&sa, sl) || (s = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg))) {
		err_sys("fd %d: cannot make a reset TCP connection", f->d.fd);
		if (c >= 0)
			close(c);
		c = -1;
	}
	if (s >= 0)
		close(s);
	if (l >= 0)
		close(l);
	/* The reset arrives on loopback before close returns. */
	if (c >= 0 && (f->d.flags & O_NONBLOCK))
		fcntl(c, F_SETFL, O_NONBLOCK);
	return c;
}

/* t's options on s, but SO_REUSEADDR (fd_tcp_done). */
static void put_opts(int s, const struct img_tcp *t)
{
	set_int(s, SOL_SOCKET, SO_REUSEPORT, !!(t->opts & IMG_SOCKOPT_REUSEPORT));
	set_int(s, SOL_SOCKET, SO_KEEPALIVE, !!(t->opts & IMG_SOCKOPT_KEEPALIVE));
	set_int(s, IPPROTO_TCP, TCP_NODELAY, !!(t->opts & IMG_SOCKOPT_NODELAY));
	if (t->keepidle)
		set_int(s, IPPROTO_TCP, TCP_KEEPIDLE, t->keepidle);
	if (t->keepintvl)
		set_int(s, IPPROTO_TCP, TCP_KEEPINTVL, t->keepintvl);
	if (t->keepcnt)
		set_int(s, IPPROTO_TCP, TCP_KEEPCNT, t->keepcnt);
	/* getsockopt gave twice what was set. */
	if (t->sndbuf)
		set_int(s, SOL_SOCKET, SO_SNDBUF, t->sndbuf / 2);
	if (t->rcvbuf)
		set_int(s, SOL_SOCKET, SO_RCVBUF, t->rcvbuf / 2);
}

/* The connection of a peer outside, put back as it was (TCP_REPAIR,
 * which needs CAP_NET_ADMIN): its sequence numbers, bound and "connected"
 * without a packet, its options and both queues, then its window; out of
 * repair mode it probes the peer's window, which answers. */
static int make_repaired(const struct fd_entry *f, const struct img_tcp *t, struct fd_pipes *pipes)
{
	int paired = !!(t->flags & IMG_TCP_PAIRED);
	struct fd_pipe *fp;
	struct img_tcp_repair r;
	struct tcp_repair_opt o[4];
	struct tcp_repair_window win;
	struct sockaddr_storage la, pa;
	socklen_t ll = sa_make(t->family, t->laddr, t->lport, t->scope, &la);
	socklen_t pl = sa_make(t->family, t->paddr, t->pport, t->scope, &pa);
	const unsigned char *rq = f->extra + sizeof(*t) + sizeof(r), *sq;
	int s, n = 0;
	char conn[160];

	memcpy(&r, f->extra + sizeof(*t), sizeof(r));
	sq = rq + t->data_len;
	conn_text(t, conn, sizeof(conn));
	if ((s = socket(t->family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP)) < 0) {
		err_sys("fd %d: cannot make a TCP socket", f->d.fd);
		return -1;
	}
	if (setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &(int){TCP_REPAIR_ON}, sizeof(int))) {
		err_sys("fd %d: TCP connection from %s: cannot put it back as it was (TCP_REPAIR "
			"needs CAP_NET_ADMIN)",
			f->d.fd, conn);
		goto fail;
	}
	/* In repair mode it binds whatever holds the port (SK_FORCE_REUSE):
	 * the listener it was accepted from, made before it. */
	if (t->family == AF_INET6)
		set_int(s, IPPROTO_IPV6, IPV6_V6ONLY, !!(t->opts & IMG_SOCKOPT_V6ONLY));
	if (repair_queue(s, TCP_SEND_QUEUE) ||
	    setsockopt(s, IPPROTO_TCP, TCP_QUEUE_SEQ, &(uint32_t){r.snd_seq - r.sendq_len}, 4) ||
	    repair_queue(s, TCP_RECV_QUEUE) ||
	    setsockopt(s, IPPROTO_TCP, TCP_QUEUE_SEQ, &(uint32_t){r.rcv_seq - t->data_len}, 4)) {
		err_sys("fd %d: TCP connection from %s: cannot set its sequence numbers", f->d.fd,
			conn);
		goto fail;
	}
	if (bind(s, (void *)&la, ll)) {
		err_sys("fd %d: TCP connection from %s: cannot bind to its address", f->d.fd, conn);
		goto fail;
	}
	if (connect(s, (void *)&pa, pl)) {
		err_sys("fd %d: TCP connection from %s: cannot connect it again in repair mode",
			f->d.fd, conn);
		goto fail;
	}
	o[n++] = (struct tcp_repair_opt){OPT_MSS, r.mss};
	if (r.tcpi_options & TCPI_OPT_WSCALE)
		o[n++] = (struct tcp_repair_opt){OPT_WINDOW,
						 r.snd_wscale | ((uint32_t)r.rcv_wscale << 16)};
	if (r.tcpi_options & TCPI_OPT_SACK)
		o[n++] = (struct tcp_repair_opt){OPT_SACK_PERM, 0};
	if (r.tcpi_options & TCPI_OPT_TIMESTAMPS)
		o[n++] = (struct tcp_repair_opt){OPT_TIMESTAMP, 0};
	win = (struct tcp_repair_window){r.snd_wl1, r.snd_wnd, r.max_window, r.rcv_wnd, r.rcv_wup};
	make_room(s, s, t->data_len + r.sendq_len);
	if (setsockopt(s, IPPROTO_TCP, TCP_REPAIR_OPTIONS, o, n * sizeof(o[0])) ||
	    ((r.tcpi_options & TCPI_OPT_TIMESTAMPS) &&
	     setsockopt(s, IPPROTO_TCP, TCP_TIMESTAMP, &r.timestamp, sizeof(r.timestamp))) ||
	    (t->data_len && (repair_queue(s, TCP_RECV_QUEUE) || send_all(s, rq, t->data_len))) ||
	    (r.sendq_len && (repair_queue(s, TCP_SEND_QUEUE) || send_all(s, sq, r.sendq_len))) ||
	    setsockopt(s, IPPROTO_TCP, TCP_REPAIR_WINDOW, &win, sizeof(win)) ||
	    repair_queue(s, TCP_NO_QUEUE) ||
	    (!paired &&
	     setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &(int){TCP_REPAIR_OFF}, sizeof(int)))) {
		err_sys("fd %d: TCP connection from %s: cannot put its state back", f->d.fd, conn);
		goto fail;
	}
	put_opts(s, t);
	/* Both ends in the tree: in repair mode, SO_REUSEADDR on, until every
	 * fd is made (fd_tcp_done), as a packet to an end not made yet would
	 * be answered by a reset. */
	set_int(s, SOL_SOCKET, SO_REUSEADDR, paired || (t->opts & IMG_SOCKOPT_REUSEADDR));
	if (paired) {
		if (!(fp = fd_find_pair(pipes, IMG_FD_TCP, t->id))) {
			if (!(fp = fd_new_pair(pipes, IMG_FD_TCP, t->id)))
				goto fail;
			pipes->n++;
		}
		if ((fp->end[t->end] = fcntl(s, F_DUPFD_CLOEXEC, 0)) < 0) {
			err_sys("fd %d: cannot duplicate a TCP socket", f->d.fd);
			goto fail;
		}
		fp->shut[t->end] =
		    PAIR_REPAIRING | ((t->opts & IMG_SOCKOPT_REUSEADDR) ? PAIR_REUSE : 0);
	}
	if (f->d.flags & O_NONBLOCK)
		fcntl(s, F_SETFL, O_NONBLOCK);
	return s;
fail:
	close(s);
	return -1;
}

/* A client whose connection waited in a listener's queue: a socket now,
 * connected once every fd is made (fd_tcp_done), after the connections
 * its listener had accepted, which are made through it. */
static int make_waiting(const struct fd_entry *f, const struct img_tcp *t, struct fd_pipes *pipes)
{
	struct fd_pipe *fp = fd_find_pair(pipes, IMG_FD_TCP, t->id);
	struct sockaddr_storage sa;

	if (!fp) {
		sa_make(t->family, t->laddr, t->lport, t->scope, &sa);
		if (!(fp = fd_new_pair(pipes, IMG_FD_TCP, t->id)) ||
		    (fp->end[0] = new_sock(t->family, &sa)) < 0) {
			err_sys("fd %d: cannot make a TCP socket", f->d.fd);
			return -1;
		}
		pipes->n++;
	}
	/* The socket's first fd carries what it sent. */
	if (!fp->f || t->data_len)
		fp->f = f;
	return fd_dup_end(fp->end[0], f, "a TCP socket");
}

/* Until the connection of s, a client under way, is established and its
 * peer (t's) waits in the listener's queue. */
static int wait_queued(int s, const struct img_tcp *t)
{
	long long end = now_ms() + SETTLE_MS;
	struct fd_diag d;
	int e = 0;
	socklen_t el = sizeof(e);

	if (poll(&(struct pollfd){.fd = s, .events = POLLOUT}, 1, SETTLE_MS) != 1 ||
	    getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el) || e) {
		errno = e ? e : ETIMEDOUT;
		return -1;
	}
	while (fd_tcp_diag(0, t->family, t->paddr, t->pport, t->laddr, t->lport, &d) ||
	       d.state != ST_ESTABLISHED) {
		if (now_ms() > end) {
			errno = ETIMEDOUT;
			return -1;
		}
		poll(NULL, 0, 1);
	}
	return 0;
}

/* Waiting client fp->f connected again, in its place: what it sent goes
 * into the connection, then its shutdown. */
static int connect_waiting(struct fd_pipe *fp)
{
	const struct fd_entry *f = fp->f;
	struct img_tcp t;
	struct sockaddr_storage sa, to;
	socklen_t sl, tl;
	int s = fp->end[0], fl = fcntl(s, F_GETFL);
	char conn[160];

	get_tcp(f, &t);
	sl = sa_make(t.family, t.laddr, t.lport, t.scope, &sa);
	tl = sa_make(t.family, t.paddr, t.pport, t.scope, &to);
	fcntl(s, F_SETFL, fl | O_NONBLOCK);
	if (connect_on(s, &sa, sl, &to, tl) || wait_queued(s, &t)) {
		err_sys("fd %d: cannot connect its TCP socket from %s again, where it waited to "
			"be accepted",
			f->d.fd, conn_text(&t, conn, sizeof(conn)));
		return -1;
	}
	if (t.data_len > (64u << 10))
		make_room(s, s, t.data_len);
	if (send_all(s, f->extra + sizeof(t), t.data_len)) {
		err_sys("fd %d: cannot put %u bytes it sent back in its TCP connection", f->d.fd,
			t.data_len);
		return -1;
	}
	if ((t.shutdown & 3) && shutdown(s, (t.shutdown & 3) - 1)) {
		err_sys("fd %d: cannot shut its TCP connection down", f->d.fd);
		return -1;
	}
	put_opts(s, &t);
	/* fd_tcp_done sets it as the program had it. */
	fp->shut[0] = (t.opts & IMG_SOCKOPT_REUSEADDR) ? PAIR_REUSE : 0;
	fcntl(s, F_SETFL, fl);
	fp->f = NULL;
	return 0;
}

static int by_place(const void *x, const void *y)
{
	const struct fd_pipe *const *p = x, *const *q = y;
	struct img_tcp a, b;

	get_tcp((*p)->f, &a);
	get_tcp((*q)->f, &b);
	return (a.end > b.end) - (a.end < b.end);
}

/* The waiting clients, each listener's in the order of its queue. */
static int connect_all_waiting(struct fd_pipes *pipes)
{
	struct fd_pipe **w;
	size_t n;
	int rc = 0;

	if (fd_waiting(pipes, IMG_FD_TCP, by_place, &w, &n))
		return -1;
	for (size_t i = 0; i < n && !rc; i++)
		rc = connect_waiting(w[i]);
	free(w);
	return rc;
}

/* Whether this process may use TCP_REPAIR (CAP_NET_ADMIN in its net
 * namespace). */
static int may_repair(int family)
{
	int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP), ok;

	ok = s >= 0 && !setsockopt(s, IPPROTO_TCP, TCP_REPAIR, &(int){TCP_REPAIR_ON}, sizeof(int));
	if (s >= 0)
		close(s);
	return ok;
}

/* One end of a connection.  The pair is made at the first fd of either
 * end; each end's bytes go in through the other end, and the shutdowns
 * are done once both ends' bytes are in, as a shut end could not send. */
static int make_tcp(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_tcp t;
	struct fd_pipe *fp;
	const unsigned char *data = f->extra + sizeof(t);

	get_tcp(f, &t);
	if (t.flags & IMG_TCP_PENDING)
		return make_waiting(f, &t, pipes);
	if (t.flags & IMG_TCP_RESET)
		return make_reset(f, &t);
	/* Both ends with their sequence numbers, where we may use TCP_REPAIR
	 * too; else a pair made again, which the bytes after them fill. */
	if (t.flags & IMG_TCP_REPAIR) {
		if (!(t.flags & IMG_TCP_PAIRED) || may_repair(t.family))
			return make_repaired(f, &t, pipes);
		data += sizeof(struct img_tcp_repair);
	}
	if (!(fp = fd_find_pair(pipes, IMG_FD_TCP, t.id))) {
		if (!(fp = fd_new_pair(pipes, IMG_FD_TCP, t.id)) || make_pair(f, &t, fp->end))
			return -1;
		pipes->n++;
	}
	if (!(fp->seen & (1u << t.end))) {
		int s = fp->end[t.end], peer = fp->end[!t.end];

		if (t.data_len > (64u << 10))
			make_room(peer, s, t.data_len);
		if (send_all(peer, data, t.data_len)) {
			err_sys("fd %d: cannot put %u queued bytes back in its TCP connection",
				f->d.fd, t.data_len);
			return -1;
		}
		put_opts(s, &t);
		fp->shut[t.end] = t.shutdown | ((t.opts & IMG_SOCKOPT_REUSEADDR) ? PAIR_REUSE : 0);
		fp->seen |= 1u << t.end;
		if (fp->seen == 3)
			for (int e = 0; e < 2; e++) {
				int how = fp->shut[e] & 3;
				/* SHUT_RD where the peer's FIN explains the end of
				 * the stream is the peer's SHUT_WR alone. */
				if ((how & TCP_SHUT_RD) && (fp->shut[!e] & TCP_SHUT_WR))
					how &= ~TCP_SHUT_RD;
				if (how && shutdown(fp->end[e], how - 1) && errno != ENOTCONN) {
					err_sys("fd %d: cannot shut its TCP connection down",
						f->d.fd);
					return -1;
				}
			}
	}
	return fd_dup_end(fp->end[t.end], f, "a TCP socket");
}

int fd_tcp_done(struct fd_pipes *pipes)
{
	if (connect_all_waiting(pipes))
		return -1;
	/* Both ends made: out of repair mode, without a window probe (what
	 * each sent is in the other's receive queue). */
	for (size_t i = 0; i < pipes->n; i++)
		for (int e = 0; e < 2 && pipes->p[i].kind == IMG_FD_TCP; e++)
			if ((pipes->p[i].shut[e] & PAIR_REPAIRING) &&
			    setsockopt(pipes->p[i].end[e], IPPROTO_TCP, TCP_REPAIR,
				       &(int){TCP_REPAIR_OFF_NO_WP}, sizeof(int))) {
				err_sys("cannot take a TCP connection out of repair mode");
				return -1;
			}
	for (size_t i = 0; i < pipes->n; i++)
		for (int e = 0; e < 2 && pipes->p[i].kind == IMG_FD_TCP; e++)
			set_int(pipes->p[i].end[e], SOL_SOCKET, SO_REUSEADDR,
				!!(pipes->p[i].shut[e] & PAIR_REUSE));
	return 0;
}

static void show_tcp(FILE *out, const struct fd_entry *f, int json)
{
	struct img_tcp t;
	char a[64], b[64];

	get_tcp(f, &t);
	ep_text(t.family, t.laddr, t.lport, a, sizeof(a));
	ep_text(t.family, t.paddr, t.pport, b, sizeof(b));
	if (json) {
		fprintf(out,
			",\"family\":\"%s\",\"state\":\"%s\",\"address\":\"%s\",\"peer\":\"%s\"",
			t.family == AF_INET ? "inet" : "inet6",
			t.flags & IMG_TCP_RESET ? "reset" : state_name(t.state), a, b);
	} else {
		fprintf(out, " %s %s %s -> %s", t.family == AF_INET ? "inet" : "inet6",
			t.flags & IMG_TCP_RESET ? "reset" : state_name(t.state), a, b);
	}
	/* A waiting client's bytes are the ones it sent. */
	fd_put_num(out, json, t.flags & IMG_TCP_PENDING ? "sent" : "queued", t.data_len);
	fd_put_num(out, json, "sendq", t.outq);
	fd_put_num(out, json, "shutdown", t.shutdown);
	if (t.flags & IMG_TCP_PENDING)
		fd_put_num(out, json, "pending", t.end);
	if (!(t.flags & (IMG_TCP_RESET | IMG_TCP_PENDING)) &&
	    (!(t.flags & IMG_TCP_REPAIR) || (t.flags & IMG_TCP_PAIRED))) {
		fd_put_num(out, json, "pair", t.id);
		fd_put_num(out, json, "end", t.end);
	}
	if (t.flags & IMG_TCP_REPAIR) {
		struct img_tcp_repair r;

		memcpy(&r, f->extra + sizeof(t), sizeof(r));
		fprintf(out, json ? ",\"repair\":true" : " repair");
		fd_put_num(out, json, "unacked", r.sendq_len);
	}
}

_Static_assert(sizeof(struct img_tcp) == 96, "img_tcp layout");

const struct fd_ops fd_tcp_ops = {
    .name = "tcp",
    .capture = capture_tcp,
    .join = join_tcp,
    .check = check_tcp,
    .make = make_tcp,
    .show = show_tcp,
};

/* ---- the connections of a tree killed at its checkpoint ---------------- */

struct tcp_end {
	int fd;
	socklen_t ll, pl;
	struct sockaddr_storage l, p;
};

/* pid's connected TCP sockets, duplicated into ours, onto *e. */
static void tcp_ends_of(pid_t pid, struct tcp_end **e, size_t *n, size_t *cap)
{
	char path[64], link[64];
	struct dirent *de;
	int pidfd = syscall(SYS_pidfd_open, pid, 0);
	DIR *d = opendir(fmt_path(path, sizeof(path), "/proc/%d/fd", pid));

	while (pidfd >= 0 && d && (de = readdir(d))) {
		ssize_t l = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		int proto = 0, s;
		socklen_t sl = sizeof(proto);
		struct tcp_end t;

		if (l <= 0 || (link[l] = 0, strncmp(link, "socket:", 7)))
			continue;
		s = syscall(SYS_pidfd_getfd, pidfd, atoi(de->d_name), 0);
		if (s < 0)
			continue;
		t.fd = s;
		t.ll = t.pl = sizeof(t.l);
		if (getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &proto, &sl) || proto != IPPROTO_TCP ||
		    getsockname(s, (void *)&t.l, &t.ll) || getpeername(s, (void *)&t.p, &t.pl) ||
		    (*n == *cap && !(*e = realloc(*e, (*cap = *cap * 2 + 16) * sizeof(**e))))) {
			close(s);
			continue;
		}
		(*e)[(*n)++] = t;
	}
	if (d)
		closedir(d);
	if (pidfd >= 0)
		close(pidfd);
}

void fd_tcp_abort_pairs(const pid_t *pids, size_t np)
{
	struct tcp_end *e = NULL;
	size_t n = 0, cap = 0;
	struct linger lg = {1, 0};

	for (size_t k = 0; k < np; k++)
		tcp_ends_of(pids[k], &e, &n, &cap);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (e[i].ll == e[j].pl && e[i].pl == e[j].ll && !memcmp(&e[i].l, &e[j].p, e[i].ll) &&
			    !memcmp(&e[i].p, &e[j].l, e[i].pl)) {
				setsockopt(e[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
				setsockopt(e[j].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			}
	for (size_t i = 0; i < n; i++)
		close(e[i].fd);
	free(e);
}
