/* tcpconn: TCP connections mid-conversation, with bytes in flight both ways, checked after a
 * restore (or a dump that let it run on): each direction of each connection carries a stream
 * of pattern bytes (mix(seed, i)), and every byte read is checked against its place in the
 * stream, so a byte lost, duplicated or reordered fails; each side reads until it has the whole
 * stream (and, where the peer shut down, the end of it and nothing more).
 *
 * usage: tcpconn MODE DIR
 *   tree   fd 3 listens on 127.0.0.1 (an ephemeral port); three children
 *          connect (fd 4 each); the parent's accepted ends are fds 4-6; each
 *          side has written 48 KiB the other has not read; after the go,
 *          everything is exchanged (256 KiB each way), then the listener
 *          takes a fresh client
 *   v6     the same on ::1
 *   dual   the same with a dual-stack IPv6 listener on [::] and IPv4
 *          clients (the accepted ends are IPv6, their addresses mapped)
 *   full   the same with one child, which wrote until its window was full
 *          and is blocked writing the rest (1 MiB in all, SO_SNDBUF 64 KiB)
 *          when it says ready; the parent's reply (1 MiB) is stuck too
 *   late   the client is the parent, the server the child, its listener
 *          (fd 3) without SO_REUSEADDR, its accepted end fd 4; 48 KiB
 *          unread each way; the listener takes a fresh client after
 *   twport one process: fd 4 a connection from a port that an earlier
 *          connection of the process left in TIME_WAIT (no SO_REUSEADDR),
 *          to the listener on fd 5; fd 6 its accepted end
 *   idle   one child, nothing in flight either way (64 KiB after the go)
 *   one    one process holds both ends of two connections (fds 4-5 and
 *          6-7, after the listener on 3), 48 KiB queued each way on each;
 *          fd 4 has TCP_NODELAY, SO_KEEPALIVE and TCP_KEEPIDLE/INTVL/CNT
 *          set, fd 5 SO_RCVBUF, and they are so after the restore
 *   ownnet the same, in the user and net namespaces it was started in
 *          (unshare -Urn), lo brought up; with "one", where it may read
 *          them, it prints "seqs" after the ready line and checks each
 *          end's sequence numbers after the go
 *   half   one child writes its 40 KiB and shuts its sending side down
 *          (the parent has it and the end of the stream queued); the
 *          parent's reply follows the go, then its own shutdown
 *   urgent one process: fd 4 a client that sent 1000 bytes and an urgent
 *          byte (MSG_OOB), fd 5 its accepted end, which has read neither
 *          (ckpt-dump refuses it)
 *   backlog  fd 3 listens; four children connect in turn (fd 4 each):
 *          the parent accepted the first two (fds 4-5, 48 KiB unread each
 *          way) and not the last two, which wait in the listener's queue,
 *          each having sent its whole stream (20 KiB), the last one its
 *          end too (shutdown); after the go the parent accepts them (fds
 *          6-7), each must be the next in the order they connected (its
 *          bytes say which), and answers each (the last with its end
 *          too); a fresh client after
 *   backlogidle  fd 3 listens; three children connected in turn and wait
 *          in its queue, having sent nothing; after the go the same
 *   keep   fd 3 connected to a server in a child, which sent 30000 bytes fd
 *          3 has not read and waits for the client's whole stream before
 *          it sends the rest (ckpt-dump --tcp-established keeps it)
 *   outside  fd 3 is connected to a server in a child, outside a dump
 *          without -t; after a restore (--tcp-close) reading it gives
 *          ECONNRESET, then the end of the stream, and writing EPIPE; in
 *          any case the program connects again and exchanges a stream
 * Prints "ready PID port N", waits for DIR/go, checks, prints "tcpconn
 * MODE: ok" and exits 0 only if everything is intact. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "tcpconn"
#include "progs.h"

static const char *dir;
static unsigned long long started;
static int family = AF_INET;
static int reuse = 1; /* the listener's SO_REUSEADDR */
static int dual;      /* the listener is IPv6 on [::], its clients IPv4 */

/* One side of a connection: what it sends and what it must receive. */
struct side {
	int fd;
	uint64_t tx_seed, rx_seed;
	size_t tx_total, rx_total, sent, got;
	struct sockaddr_storage name, peer; /* as getsockname, getpeername gave them */
	int shut_after;			    /* shutdown(SHUT_WR) once everything is sent */
	int want_eof;			    /* the peer shuts down after its stream */
	int eof, done;
};

static unsigned char pat(uint64_t seed, size_t i)
{
	return (unsigned char)(mix(seed, i / 8) >> (8 * (i % 8)));
}

/* As much of the stream as goes without blocking, up to limit bytes sent. */
static void send_some(struct side *s, size_t limit)
{
	unsigned char buf[65536];

	while (s->sent < limit && s->sent < s->tx_total) {
		size_t n = s->tx_total - s->sent;
		ssize_t w;

		if (n > sizeof(buf))
			n = sizeof(buf);
		if (n > limit - s->sent)
			n = limit - s->sent;
		for (size_t k = 0; k < n; k++)
			buf[k] = pat(s->tx_seed, s->sent + k);
		w = send(s->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (w < 0) {
			fail("fd %d: send at byte %zu: %s", s->fd, s->sent, strerror(errno));
			s->sent = s->tx_total;
			return;
		}
		s->sent += w;
	}
	if (s->sent == s->tx_total && s->shut_after) {
		s->shut_after = 0;
		if (shutdown(s->fd, SHUT_WR))
			fail("fd %d: shutdown: %s", s->fd, strerror(errno));
	}
}

static void recv_some(struct side *s)
{
	unsigned char buf[65536];
	ssize_t r = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (r < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			fail("fd %d: recv at byte %zu: %s", s->fd, s->got, strerror(errno));
			s->eof = 1;
		}
		return;
	}
	if (r == 0) {
		if (s->got != s->rx_total || !s->want_eof)
			fail("fd %d: end of stream after %zu of %zu bytes", s->fd, s->got,
			     s->rx_total);
		s->eof = 1;
		return;
	}
	for (ssize_t k = 0; k < r; k++, s->got++)
		if (s->got >= s->rx_total || buf[k] != pat(s->rx_seed, s->got)) {
			fail("fd %d: byte %zu is %u, not %u (of %zu)", s->fd, s->got, buf[k],
			     s->got < s->rx_total ? pat(s->rx_seed, s->got) : 0, s->rx_total);
			s->eof = 1;
			return;
		}
}

static int side_done(const struct side *s)
{
	return s->sent == s->tx_total && !s->shut_after &&
	       (s->eof || (!s->want_eof && s->got == s->rx_total));
}

/* Its addresses (family, address and port of each end) are the ones it
 * had before the go. */
static void check_names(const struct side *s)
{
	struct sockaddr_storage a = {0}, b = {0};
	socklen_t al = sizeof(a), bl = sizeof(b);

	/* A half-closed one may be closed already: its peer had no reason
	 * to wait. */
	if (getpeername(s->fd, (void *)&b, &bl) && s->want_eof && errno == ENOTCONN)
		b = s->peer;
	if (getsockname(s->fd, (void *)&a, &al) || memcmp(&a, &s->name, sizeof(a)) ||
	    memcmp(&b, &s->peer, sizeof(b)))
		fail("fd %d: its addresses are not what they were (family %d port %d, peer family "
		     "%d port %d; were %d %d, %d %d)",
		     s->fd, a.ss_family, ntohs(((struct sockaddr_in *)&a)->sin_port), b.ss_family,
		     ntohs(((struct sockaddr_in *)&b)->sin_port), s->name.ss_family,
		     ntohs(((struct sockaddr_in *)&s->name)->sin_port), s->peer.ss_family,
		     ntohs(((struct sockaddr_in *)&s->peer)->sin_port));
}

/* Exchange every stream to its end, all sides at once; the addresses of
 * each connection checked first (taken the first time). */
static void pump(struct side *s, int n)
{
	double end = mono() + 60;

	for (int i = 0; i < n; i++)
		check_names(&s[i]);

	for (;;) {
		struct pollfd p[16];
		int left = 0;

		for (int i = 0; i < n; i++) {
			p[i] = (struct pollfd){.fd = s[i].fd};
			if (side_done(&s[i])) {
				p[i].fd = -1;
				continue;
			}
			left++;
			if (s[i].sent < s[i].tx_total || s[i].shut_after)
				p[i].events |= POLLOUT;
			if (!s[i].eof)
				p[i].events |= POLLIN;
		}
		if (!left)
			return;
		if (mono() > end) {
			for (int i = 0; i < n; i++)
				if (!side_done(&s[i]))
					fail("fd %d: timed out: sent %zu of %zu, got %zu of %zu",
					     s[i].fd, s[i].sent, s[i].tx_total, s[i].got,
					     s[i].rx_total);
			return;
		}
		poll(p, n, 100);
		for (int i = 0; i < n; i++) {
			if (p[i].fd < 0)
				continue;
			if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
				recv_some(&s[i]);
			if (p[i].revents & (POLLOUT | POLLERR))
				send_some(&s[i], s[i].tx_total);
		}
	}
}

static socklen_t loopback(struct sockaddr_storage *sa, int port)
{
	memset(sa, 0, sizeof(*sa));
	sa->ss_family = family;
	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)sa;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a->sin_port = htons(port);
		return sizeof(*a);
	}
	struct sockaddr_in6 *a = (void *)sa;
	a->sin6_addr = in6addr_loopback;
	a->sin6_port = htons(port);
	return sizeof(*a);
}

/* fd to number want. */
static int at(int fd, int want)
{
	if (fd == want)
		return fd;
	if (dup2(fd, want) < 0)
		die("dup2");
	close(fd);
	return want;
}

/* The listener: on loopback, or (dual) a dual-stack IPv6 one on [::]. */
static int listener(int *port)
{
	struct sockaddr_storage sa;
	socklen_t sl = loopback(&sa, 0);
	int l = socket(dual ? AF_INET6 : family, SOCK_STREAM, 0);

	if (dual) {
		memset(&sa, 0, sizeof(sa));
		sa.ss_family = AF_INET6;
		sl = sizeof(struct sockaddr_in6);
		setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &(int){0}, sizeof(int));
	}
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse)) ||
	    bind(l, (void *)&sa, sl) || listen(l, 8) || getsockname(l, (void *)&sa, &sl))
		die("listen");
	*port = ntohs(sa.ss_family == AF_INET ? ((struct sockaddr_in *)&sa)->sin_port
					      : ((struct sockaddr_in6 *)&sa)->sin6_port);
	return l;
}

static int connect_to(int port)
{
	struct sockaddr_storage sa;
	socklen_t sl = loopback(&sa, port);
	int c = socket(family, SOCK_STREAM, 0);

	if (c < 0 || connect(c, (void *)&sa, sl))
		die("connect");
	return c;
}

/* The client side of connection j, and the server side. */
static struct side new_side(int fd, uint64_t tx, uint64_t rx, size_t total)
{
	struct side s = {
	    .fd = fd, .tx_seed = tx, .rx_seed = rx, .tx_total = total, .rx_total = total};
	socklen_t sl = sizeof(s.name);

	getsockname(fd, (void *)&s.name, &sl);
	sl = sizeof(s.peer);
	getpeername(fd, (void *)&s.peer, &sl);
	return s;
}

static struct side client_side(int fd, int j, size_t total)
{
	return new_side(fd, 2 * j + 1, 2 * j + 2, total);
}

static struct side server_side(int fd, int j, size_t total)
{
	return new_side(fd, 2 * j + 2, 2 * j + 1, total);
}

static int kids_ok(pid_t *kids, int n)
{
	int ok = 1, st;

	for (int i = 0; i < n; i++)
		if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st)) {
			fail("child %d failed (status %#x)", kids[i], st);
			ok = 0;
		}
	return ok;
}

static void wait_go(void)
{
	char go[4096];

	snprintf(go, sizeof(go), "%s/go", dir);
	wait_file(go);
}

/* A fresh client of the listener on port: the listener still takes
 * connections after the restore. */
static void fresh_client(int l, int port)
{
	pid_t kid = fork();
	struct side s;

	if (kid < 0)
		die("fork");
	if (kid == 0) {
		close(l);
		s = client_side(connect_to(port), 100, 10000);
		pump(&s, 1);
		_exit(failures ? 1 : 0);
	}
	s = server_side(accept(l, NULL, NULL), 100, 10000);
	if (s.fd < 0)
		die("accept");
	pump(&s, 1);
	close(s.fd);
	kids_ok(&kid, 1);
}

/* Until the peer's FIN is in (the peer shut down its sending side). */
static void wait_fin(int fd)
{
	struct tcp_info ti;
	socklen_t tl;
	struct timespec ts = {0, 10 * 1000 * 1000};

	do {
		nanosleep(&ts, NULL);
		tl = sizeof(ti);
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl))
			die("TCP_INFO");
	} while (ti.tcpi_state != TCP_CLOSE_WAIT);
}

/* tree, v6, full, half: a server and its children. */
static void tree(int nkids, size_t pre, size_t total, int half, int full)
{
	int port, l = at(listener(&port), 3);
	struct side s[8];
	pid_t kids[8];

	for (int j = 0; j < nkids; j++) {
		kids[j] = fork();
		if (kids[j] < 0)
			die("fork");
		if (kids[j] == 0) {
			struct side c;

			close(l);
			for (int k = 0; k < j; k++)
				close(4 + k);
			c = client_side(at(connect_to(port), 4), j, total);
			if (half) {
				c.rx_total = total / 2;
				c.shut_after = c.want_eof = 1;
			}
			if (full)
				setsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &(int){65536}, sizeof(int));
			send_some(&c, pre);
			if (full) {
				/* Blocked in send(2) with the window full, until
				 * the server reads. */
				char path[4096];
				snprintf(path, sizeof(path), "%s/blocked", dir);
				close(open(path, O_WRONLY | O_CREAT, 0600));
				fcntl(c.fd, F_SETFL, 0);
				while (c.sent < c.tx_total) {
					unsigned char buf[65536];
					size_t n = c.tx_total - c.sent < sizeof(buf)
						       ? c.tx_total - c.sent
						       : sizeof(buf);
					ssize_t w;
					for (size_t k = 0; k < n; k++)
						buf[k] = pat(c.tx_seed, c.sent + k);
					w = send(c.fd, buf, n, MSG_NOSIGNAL);
					if (w < 0 && errno != EINTR)
						die("send");
					c.sent += w > 0 ? w : 0;
				}
			} else {
				wait_go();
			}
			pump(&c, 1);
			_exit(failures ? 1 : 0);
		}
		s[j] = server_side(at(accept(l, NULL, NULL), 4 + j), j, total);
		if (s[j].fd < 0)
			die("accept");
		if (full)
			setsockopt(s[j].fd, SOL_SOCKET, SO_SNDBUF, &(int){65536}, sizeof(int));
		if (half) {
			s[j].tx_total = total / 2;
			s[j].shut_after = s[j].want_eof = 1;
		}
	}
	if (half)
		wait_fin(s[0].fd);
	if (full) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/blocked", dir);
		wait_file(path);
	}
	/* The children's first bytes are in before the server's. */
	for (int j = 0; j < nkids; j++)
		send_some(&s[j], half ? 0 : pre);
	printf("ready %d port %d\n", getpid(), port);
	fflush(stdout);
	wait_go();
	pump(s, nkids);
	for (int j = 0; j < nkids; j++)
		close(s[j].fd);
	kids_ok(kids, nkids);
	fresh_client(l, port);
}

/* backlog, backlogidle: nacc clients accepted, nwait waiting (connected
 * one after the other: each says so before the next starts), which sent
 * pre bytes (their whole stream, the last its end too) before the go. */
static void backlog(int nacc, int nwait, size_t pre)
{
	int port, l = at(listener(&port), 3), n = nacc + nwait;
	size_t total = 256 << 10, wtotal = 20 << 10;
	struct side s[8];
	pid_t kids[8];
	char path[4096];

	for (int j = 0; j < n; j++) {
		snprintf(path, sizeof(path), "%s/c%d", dir, j);
		kids[j] = fork();
		if (kids[j] < 0)
			die("fork");
		if (kids[j] == 0) {
			struct side c;

			close(l);
			for (int k = 0; k < j && k < nacc; k++)
				close(4 + k);
			c = client_side(at(connect_to(port), 4), j, j < nacc ? total : wtotal);
			/* The last one's connection is half-closed, then closed
			 * both ways. */
			if (j == n - 1 && j >= nacc)
				c.shut_after = c.want_eof = 1;
			send_some(&c, j < nacc ? 48 << 10 : pre);
			close(open(path, O_WRONLY | O_CREAT, 0600));
			wait_go();
			pump(&c, 1);
			_exit(failures ? 1 : 0);
		}
		if (j < nacc) {
			s[j] = server_side(at(accept(l, NULL, NULL), 4 + j), j, total);
			if (s[j].fd < 0)
				die("accept");
		}
		wait_file(path);
	}
	for (int j = 0; j < nacc; j++)
		send_some(&s[j], 48 << 10);
	printf("ready %d port %d\n", getpid(), port);
	fflush(stdout);
	wait_go();
	/* The waiting ones, in their order: client j's stream is its own. */
	for (int j = nacc; j < n; j++) {
		s[j] = server_side(at(accept(l, NULL, NULL), 4 + j), j, wtotal);
		if (s[j].fd < 0)
			die("accept");
		s[j].want_eof = s[j].shut_after = j == n - 1;
	}
	pump(s, n);
	for (int j = 0; j < n; j++)
		close(s[j].fd);
	kids_ok(kids, n);
	fresh_client(l, port);
}

/* late: the client is the parent, the server (a listener without
 * SO_REUSEADDR, and the accepted connection) the child: a restore makes
 * the connection before the listener. */
static void late(void)
{
	int port, l;
	pid_t kid;
	struct side s;
	char path[4096];

	reuse = 0;
	l = listener(&port);
	snprintf(path, sizeof(path), "%s/served", dir);
	kid = fork();
	if (kid < 0)
		die("fork");
	if (kid == 0) {
		l = at(l, 3);
		s = server_side(at(accept(l, NULL, NULL), 4), 0, 256 << 10);
		if (s.fd < 0)
			die("accept");
		send_some(&s, 48 << 10);
		close(open(path, O_WRONLY | O_CREAT, 0600));
		wait_go();
		pump(&s, 1);
		close(s.fd);
		fresh_client(l, port);
		_exit(failures ? 1 : 0);
	}
	close(l);
	s = client_side(at(connect_to(port), 3), 0, 256 << 10);
	send_some(&s, 48 << 10);
	wait_file(path);
	printf("ready %d port %d\n", getpid(), port);
	fflush(stdout);
	wait_go();
	pump(&s, 1);
	kids_ok(&kid, 1);
}

static const struct {
	int level, opt, v;
} opts[] = {
    {IPPROTO_TCP, TCP_NODELAY, 1},   {SOL_SOCKET, SO_KEEPALIVE, 1},
    {IPPROTO_TCP, TCP_KEEPIDLE, 77}, {IPPROTO_TCP, TCP_KEEPINTVL, 11},
    {IPPROTO_TCP, TCP_KEEPCNT, 5},
};

/* Options on fd a (the rest left as a new socket has them: b), a
 * receive buffer on b. */
static void set_opts(int a, int b)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (setsockopt(a, opts[i].level, opts[i].opt, &opts[i].v, sizeof(int)))
			die("setsockopt");
	if (setsockopt(b, SOL_SOCKET, SO_RCVBUF, &(int){100000}, sizeof(int)))
		die("SO_RCVBUF");
}

static int opt_of(int fd, int level, int opt)
{
	int v = -1;
	socklen_t sl = sizeof(v);

	getsockopt(fd, level, opt, &v, &sl);
	return v;
}

static void check_opts(int a, int b)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		int v = opt_of(a, opts[i].level, opts[i].opt),
		    w = opt_of(b, opts[i].level, opts[i].opt);
		if (v != opts[i].v)
			fail("fd %d: option %d is %d, not %d", a, opts[i].opt, v, opts[i].v);
		if (w == opts[i].v && opts[i].opt != TCP_KEEPCNT)
			fail("fd %d: option %d is %d, as it was not", b, opts[i].opt, w);
	}
	if (opt_of(b, SOL_SOCKET, SO_RCVBUF) != 200000)
		fail("fd %d: SO_RCVBUF is %d, not 200000", b, opt_of(b, SOL_SOCKET, SO_RCVBUF));
}

#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE 51
#endif

/* twport: one process; an earlier connection from port p to fd 3's
 * listener, closed by the client first, leaves p in TIME_WAIT (its socket
 * had no SO_REUSEADDR); fd 4 is a connection from the same port p to the
 * listener on fd 5 (connect(2) shares a port so; IP_LOCAL_PORT_RANGE
 * makes it pick p), fd 6 its accepted end, 48 KiB unread each way. */
static void twport(void)
{
	int port, port2, l = at(listener(&port), 3), l2, c, a, n;
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	uint32_t range;
	char buf[16];
	struct side s[2];

	c = connect_to(port);
	a = accept(l, NULL, NULL);
	if (a < 0 || getsockname(c, (void *)&sa, &sl))
		die("accept");
	range = ntohs(((struct sockaddr_in *)&sa)->sin_port);
	range |= range << 16;
	close(c);
	while ((n = read(a, buf, sizeof(buf))) > 0)
		;
	close(a);
	l2 = at(listener(&port2), 5);
	sl = loopback(&sa, port2);
	if ((c = socket(family, SOCK_STREAM, 0)) < 0 ||
	    setsockopt(c, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &(int){1}, sizeof(int)) ||
	    setsockopt(c, IPPROTO_IP, IP_LOCAL_PORT_RANGE, &range, sizeof(range)) ||
	    connect(c, (void *)&sa, sl))
		die("connect from the TIME_WAIT port");
	s[0] = client_side(at(c, 4), 0, 256 << 10);
	s[1] = server_side(at(accept(l2, NULL, NULL), 6), 0, 256 << 10);
	if (ntohs(((struct sockaddr_in *)&s[0].name)->sin_port) != (range & 0xffff))
		die("the port");
	for (int i = 0; i < 2; i++)
		send_some(&s[i], 48 << 10);
	printf("ready %d port %d\n", getpid(), port2);
	fflush(stdout);
	wait_go();
	pump(s, 2);
}

/* fd's sequence numbers: where its send queue ends and where its receive
 * queue does (TCP_QUEUE_SEQ, read in repair mode); 0 where the kernel lets
 * us (CAP_NET_ADMIN in the socket's net namespace). */
static int seqs(int fd, uint32_t seq[2])
{
	socklen_t sl = sizeof(uint32_t);
	int rc;

	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &(int){TCP_REPAIR_ON}, sizeof(int)))
		return -1;
	rc = setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &(int){TCP_SEND_QUEUE}, sizeof(int)) ||
	     getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq[0], &sl) ||
	     setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &(int){TCP_RECV_QUEUE}, sizeof(int)) ||
	     getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq[1], &sl);
	setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &(int){TCP_REPAIR_OFF_NO_WP}, sizeof(int));
	return rc ? -1 : 0;
}

/* ownnet: lo up in the net namespace it was started in (unshare -Urn). */
static void lo_up(void)
{
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr))
		die("lo flags");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr))
		die("lo up");
	close(s);
}

/* one: both ends of two connections in this process.  Where it may read
 * their sequence numbers (as root, or in a net namespace of its own:
 * ownnet), each end ends its send queue where it did, and its receive
 * queue where its peer's send queue did (what was in flight arrived). */
static void one(void)
{
	int port, l = at(listener(&port), 3), seq_ok = 1;
	struct side s[4];
	uint32_t seq[4][2], now[2];

	for (int j = 0; j < 2; j++) {
		int c = at(connect_to(port), 4 + 2 * j), a = at(accept(l, NULL, NULL), 5 + 2 * j);

		s[2 * j] = client_side(c, j, 256 << 10);
		s[2 * j + 1] = server_side(a, j, 256 << 10);
	}
	for (int i = 0; i < 4; i++)
		send_some(&s[i], 48 << 10);
	set_opts(4, 5);
	for (int i = 0; i < 4; i++)
		seq_ok &= !seqs(4 + i, seq[i]);
	printf("ready %d port %d%s\n", getpid(), port, seq_ok ? " seqs" : "");
	fflush(stdout);
	wait_go();
	check_opts(4, 5);
	for (int i = 0; i < 4 && seq_ok; i++)
		if (seqs(4 + i, now) || now[0] != seq[i][0] || now[1] != seq[i ^ 1][0])
			fail("fd %d: its sequence numbers are %u and %u, not %u and %u", 4 + i,
			     now[0], now[1], seq[i][0], seq[i ^ 1][0]);
	pump(s, 4);
	for (int i = 0; i < 4; i++)
		close(s[i].fd);
	fresh_client(l, port);
}

/* urgent: one process, a connection whose client sent an urgent byte
 * (MSG_OOB) after 1000 bytes, which the server has not read. */
static void urgent(void)
{
	int port, l = at(listener(&port), 3);
	struct side c = client_side(at(connect_to(port), 4), 0, 2000);
	struct side a = server_side(at(accept(l, NULL, NULL), 5), 0, 2000);
	char u = '!';

	if (a.fd < 0)
		die("accept");
	send_some(&c, 1000);
	if (send(c.fd, &u, 1, MSG_OOB) != 1)
		die("send MSG_OOB");
	/* Until the urgent byte is there to read. */
	while (recv(a.fd, &u, 1, MSG_OOB | MSG_PEEK | MSG_DONTWAIT) != 1)
		usleep(10000);
	printf("ready %d port %d\n", getpid(), port);
	fflush(stdout);
	wait_go();
	if (recv(a.fd, &u, 1, MSG_OOB) != 1 || u != '!')
		fail("fd 5: the urgent byte is gone");
	a.rx_total = c.tx_total = 1000;
	a.tx_total = c.rx_total = 0;
	{
		struct side both[2] = {c, a};
		pump(both, 2);
	}
}

/* keep: fd 3 is connected to a server in a child (outside a dump without
 * -t), which sent 30000 bytes fd 3 has not read; after the go the client
 * sends its 100000 bytes and the server, which sends nothing before it has
 * them all (a peer that would talk to a dumped socket meanwhile would be
 * reset), the rest of its 100000. */
static void keep(void)
{
	int port, l = listener(&port), n = 0;
	pid_t kid = fork();
	struct side s;

	if (kid < 0)
		die("fork");
	if (kid == 0) {
		s = server_side(accept(l, NULL, NULL), 9, 100000);
		close(l);
		send_some(&s, 30000);
		while (s.got < s.rx_total && !s.eof) {
			struct pollfd p = {.fd = s.fd, .events = POLLIN};
			if (poll(&p, 1, 60000) != 1)
				_exit(1);
			recv_some(&s);
		}
		pump(&s, 1);
		_exit(failures ? 1 : 0);
	}
	close(l);
	s = client_side(at(connect_to(port), 3), 9, 100000);
	while (n < 30000) {
		usleep(10000);
		ioctl(3, FIONREAD, &n);
	}
	printf("ready %d port %d server %d\n", getpid(), port, kid);
	fflush(stdout);
	wait_go();
	pump(&s, 1);
	if (start_time() == started)
		kids_ok(&kid, 1);
}

/* outside: a server in a child takes two connections: the first it
 * leaves alone, the second exchanges a stream. */
static void outside(void)
{
	int port, l = listener(&port);
	pid_t kid = fork();
	struct side s;
	char c;

	if (kid < 0)
		die("fork");
	if (kid == 0) {
		int first = accept(l, NULL, NULL);
		struct pollfd p = {.fd = l, .events = POLLIN};

		if (first < 0 || poll(&p, 1, 60000) != 1)
			_exit(1);
		s = server_side(accept(l, NULL, NULL), 7, 100000);
		pump(&s, 1);
		_exit(failures ? 1 : 0);
	}
	close(l);
	s = client_side(at(connect_to(port), 3), 7, 100000);
	send_some(&s, 1000);
	printf("ready %d port %d server %d\n", getpid(), port, kid);
	fflush(stdout);
	wait_go();
	if (start_time() != started) {
		/* Restored reset (--tcp-close). */
		if (recv(3, &c, 1, 0) != -1 || errno != ECONNRESET)
			fail("fd 3: the first read does not say ECONNRESET (%s)", strerror(errno));
		if (recv(3, &c, 1, 0) != 0)
			fail("fd 3: the second read is not the end of the stream");
		if (send(3, &c, 1, MSG_NOSIGNAL) != -1 || errno != EPIPE)
			fail("fd 3: a write does not say EPIPE (%s)", strerror(errno));
	}
	close(3);
	/* It reconnects, as a client that meets an error does.  (Restored,
	 * the server is no child of ours: it ends on its own.) */
	s = client_side(connect_to(port), 7, 100000);
	pump(&s, 1);
	if (start_time() == started)
		kids_ok(&kid, 1);
}

int main(int argc, char **argv)
{
	const char *mode;

	if (argc != 3) {
		fprintf(stderr, "usage: tcpconn MODE DIR\n");
		return 2;
	}
	mode = argv[1];
	dir = argv[2];
	started = start_time();
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(mode, "tree"))
		tree(3, 48 << 10, 256 << 10, 0, 0);
	else if (!strcmp(mode, "v6")) {
		family = AF_INET6;
		tree(3, 48 << 10, 256 << 10, 0, 0);
	} else if (!strcmp(mode, "dual")) {
		dual = 1;
		tree(3, 48 << 10, 256 << 10, 0, 0);
	} else if (!strcmp(mode, "full"))
		tree(1, (size_t)-1 / 2, 1 << 20, 0, 1);
	else if (!strcmp(mode, "late"))
		late();
	else if (!strcmp(mode, "idle"))
		tree(1, 0, 64 << 10, 0, 0);
	else if (!strcmp(mode, "half"))
		tree(1, 40 << 10, 40 << 10, 1, 0);
	else if (!strcmp(mode, "one"))
		one();
	else if (!strcmp(mode, "ownnet")) {
		lo_up();
		one();
	} else if (!strcmp(mode, "urgent"))
		urgent();
	else if (!strcmp(mode, "twport"))
		twport();
	else if (!strcmp(mode, "backlog"))
		backlog(2, 2, 20 << 10);
	else if (!strcmp(mode, "backlogidle"))
		backlog(0, 3, 0);
	else if (!strcmp(mode, "keep"))
		keep();
	else if (!strcmp(mode, "outside"))
		outside();
	else {
		fprintf(stderr, "tcpconn: unknown mode %s\n", mode);
		return 2;
	}
	if (failures)
		return 1;
	printf("tcpconn %s: ok\n", mode);
	return 0;
}
