/* dgram: datagram sockets with datagrams queued, checked after a restore (or after a dump that
 * let the program run on): every queued datagram is there once, in order, intact (numbered and
 * checksummed), from the sender it came from, and the sockets go on talking.
 *
 * usage: dgram KIND DIR
 *   udp      a tree: the parent holds UDP sockets on 127.0.0.1 (fd 3) and
 *            ::1 (fd 4); its child holds a UDP socket connected to each
 *            (fds 3, 4) and one bound to 127.0.0.1 and not connected (fd
 *            5).  Queued at the checkpoint: on each of the parent's, 3
 *            datagrams from the connected one and 2 from fd 5 (v4)
 *            interleaved; on each of the child's connected ones, 2 from
 *            the parent.  After: each side reads and checks its queue, then
 *            they ping-pong 5 rounds on each family.
 *   unix     a tree: the parent holds a unix datagram socket bound to
 *            DIR/srv (fd 3) and an unbound one (fd 4); two children each
 *            hold one bound to DIR/c1, DIR/c2 (fd 3).  Queued: 3 datagrams
 *            from c1, 3 from c2, then 1 from the unbound one, on srv; 2
 *            from srv on each of c1 and c2.  After: each checks its queue,
 *            srv answers each client's datagram, each client checks the
 *            answers.
 *   outside  fd 3 a UDP socket on 127.0.0.1 and fd 5 a unix datagram one
 *            on DIR/srv, with 3 datagrams queued on each from a child (not
 *            dumped: no -t) bound to 127.0.0.1:PORT and DIR/out, which
 *            holds them until DIR/release; "ready PID CHILD PORT".  After:
 *            the datagrams are there, from 127.0.0.1:PORT and DIR/out, or
 *            from other addresses if DIR/held says the child held them
 *   netlink  fd 3 a route netlink socket bound to RTMGRP_LINK.  After: its
 *            port id and groups are the same, and it answers an
 *            RTM_GETLINK dump that lists lo.
 *   nlpending  the same with an RTM_GETLINK dump asked and not read (refused)
 *   packet   fd 3 a packet socket (refused; needs root)
 * Prints "ready PID", waits for DIR/go, checks, prints "dgram KIND: ok"
 * and exits 0 only if everything is intact. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "dgram"
#include "progs.h"

static int sock_at(int want, int family, int type, int proto)
{
	return fd_at(want, socket(family, type, proto), "socket");
}

static const char *dir;
static char go[4096];

/* A datagram: seq, its length, a checksum of its body, then the body. */
struct hdr {
	uint32_t seq, len;
	uint64_t sum;
};

static size_t body_len(uint32_t seq)
{
	return 40 + (seq * 997u) % 3000;
}

static uint64_t body_sum(const unsigned char *b, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

/* Send datagram seq (to, or on a connected socket if to is NULL). */
static void send_seq(int s, uint32_t seq, const void *to, socklen_t tl)
{
	unsigned char buf[sizeof(struct hdr) + 4096];
	struct hdr h = {seq, body_len(seq), 0};

	for (size_t i = 0; i < h.len; i++)
		buf[sizeof(h) + i] = (unsigned char)mix(seq, i / 8);
	h.sum = body_sum(buf + sizeof(h), h.len);
	memcpy(buf, &h, sizeof(h));
	if (sendto(s, buf, sizeof(h) + h.len, 0, to, to ? tl : 0) != (ssize_t)(sizeof(h) + h.len))
		die("sendto");
}

/* Receive one datagram (waiting up to 10 s unless nowait); it must be seq,
 * intact, from an address equal to from (flen bytes; NULL: not checked).
 * Its sender goes to *src. */
static int recv_seq(int s, uint32_t seq, const void *from, socklen_t flen,
		    struct sockaddr_storage *src, socklen_t *sl, const char *what)
{
	unsigned char buf[sizeof(struct hdr) + 8192];
	struct pollfd p = {s, POLLIN, 0};
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);
	struct hdr h;
	ssize_t n;

	if (poll(&p, 1, 10000) != 1) {
		fail("%s: datagram %u: none came", what, seq);
		return -1;
	}
	n = recvfrom(s, buf, sizeof(buf), MSG_DONTWAIT, (void *)&ss, &l);
	if (n < (ssize_t)sizeof(h)) {
		fail("%s: datagram %u: recvfrom gave %zd: %s", what, seq, n, strerror(errno));
		return -1;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.seq != seq || n != (ssize_t)(sizeof(h) + h.len) || h.len != body_len(seq) ||
	    body_sum(buf + sizeof(h), h.len) != h.sum) {
		fail("%s: wanted datagram %u, got %u (%zd bytes), checksum %s", what, seq, h.seq, n,
		     body_sum(buf + sizeof(h), n - sizeof(h)) == h.sum ? "right" : "wrong");
		return -1;
	}
	if (from && (l != flen || memcmp(&ss, from, flen))) {
		fail("%s: datagram %u: not from the sender it came from (address of %u bytes)",
		     what, seq, (unsigned)l);
		return -1;
	}
	if (src) {
		*src = ss;
		*sl = l;
	}
	return 0;
}

/* Nothing more queued on s. */
static void none_left(int s, const char *what)
{
	char b[16];

	if (recv(s, b, sizeof(b), MSG_DONTWAIT) >= 0)
		fail("%s: a datagram more than was sent", what);
}

/* A pipe above the fds the sockets take. */
static void high_pipe(int p[2])
{
	int q[2];

	if (pipe(q))
		die("pipe");
	for (int i = 0; i < 2; i++) {
		if ((p[i] = fcntl(q[i], F_DUPFD, 10)) < 0)
			die("fcntl");
		close(q[i]);
	}
}

static socklen_t name_of(int s, struct sockaddr_storage *sa)
{
	socklen_t l = sizeof(*sa);

	if (getsockname(s, (void *)sa, &l))
		die("getsockname");
	return l;
}

static socklen_t loopback(struct sockaddr_storage *sa, int family)
{
	memset(sa, 0, sizeof(*sa));
	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)sa;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (void *)sa;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		return sizeof(*a);
	}
}

static int wait_child(pid_t c, const char *what)
{
	int st;

	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fail("%s: the child failed (status %#x)", what, st);
		return -1;
	}
	return 0;
}

/* ---- udp ------------------------------------------------------------ */

static void udp(void)
{
	struct sockaddr_storage srv[2], cli[2], loose, a;
	socklen_t sl[2], cl[2], ll = 0, al;
	int sync[2];
	pid_t c;
	char b;

	for (int i = 0; i < 2; i++) {
		int fam = i ? AF_INET6 : AF_INET;
		sl[i] = loopback(&srv[i], fam);
		sock_at(3 + i, fam, SOCK_DGRAM, 0);
		if (bind(3 + i, (void *)&srv[i], sl[i]))
			die("bind");
		sl[i] = name_of(3 + i, &srv[i]);
	}
	high_pipe(sync);
	c = fork();
	if (c < 0)
		die("fork");
	if (c == 0) {
		/* The client: fds 3, 4 connected to the parent's, 5 loose. */
		for (int i = 0; i < 2; i++) {
			sock_at(3 + i, i ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
			if (connect(3 + i, (void *)&srv[i], sl[i]))
				die("connect");
			cl[i] = name_of(3 + i, &cli[i]);
		}
		sock_at(5, AF_INET, SOCK_DGRAM, 0);
		ll = loopback(&loose, AF_INET);
		if (bind(5, (void *)&loose, ll))
			die("bind");
		ll = name_of(5, &loose);
		/* Interleaved: 0 1 from the connected one, 2 loose, 3
		 * connected, 4 loose (v4; v6 all from the connected one). */
		for (uint32_t k = 0; k < 5; k++) {
			send_seq(3, k, NULL, 0);
			send_seq(4, 100 + k, NULL, 0);
			if (k == 2 || k == 4)
				send_seq(5, 10 + k, &srv[0], sl[0]);
		}
		if (write(sync[1], "x", 1) != 1)
			die("sync");
		close(sync[0]);
		close(sync[1]);
		wait_file(go);
		for (int i = 0; i < 2; i++) {
			const char *w = i ? "udp client ::1 queue" : "udp client v4 queue";
			recv_seq(3 + i, 200 + 10 * i, &srv[i], sl[i], NULL, NULL, w);
			recv_seq(3 + i, 201 + 10 * i, &srv[i], sl[i], NULL, NULL, w);
		}
		/* Ping-pong: each answered with seq + 1000. */
		for (uint32_t r = 0; r < 5; r++)
			for (int i = 0; i < 2; i++) {
				send_seq(3 + i, 300 + r, NULL, 0);
				recv_seq(3 + i, 1300 + r, &srv[i], sl[i], NULL, NULL,
					 "udp ping-pong");
			}
		none_left(3, "udp client v4");
		none_left(4, "udp client ::1");
		_exit(failures ? 1 : 0);
	}
	/* The parent: its queues fill; then it queues 2 on each of the
	 * child's connected ones (their addresses: the first datagram's
	 * sender). */
	if (read(sync[0], &b, 1) != 1)
		die("sync");
	for (int i = 0; i < 2; i++) {
		socklen_t l = sizeof(cli[i]);
		char x[16];
		if (recvfrom(3 + i, x, sizeof(x), MSG_PEEK, (void *)&cli[i], &l) < 0)
			die("recvfrom");
		cl[i] = l;
		send_seq(3 + i, 200 + 10 * i, &cli[i], cl[i]);
		send_seq(3 + i, 201 + 10 * i, &cli[i], cl[i]);
	}
	close(sync[0]);
	close(sync[1]);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	wait_file(go);
	for (uint32_t k = 0; k < 5; k++) {
		if (recv_seq(3, k, &cli[0], cl[0], NULL, NULL, "udp server v4 queue"))
			break;
		if (k == 2 || k == 4) {
			if (recv_seq(3, 10 + k, NULL, 0, &a, &al, "udp server v4 queue"))
				break;
			if (k == 2)
				loose = a, ll = al;
			else if (al != ll || memcmp(&a, &loose, al))
				fail("udp server v4 queue: the loose sender's two datagrams came "
				     "from two addresses");
			if (!memcmp(&a, &cli[0], al))
				fail("udp server v4 queue: the loose sender's datagram came from "
				     "the connected one");
		}
	}
	for (uint32_t k = 0; k < 5; k++)
		recv_seq(4, 100 + k, &cli[1], cl[1], NULL, NULL, "udp server ::1 queue");
	/* A datagram more than was queued would come before the first
	 * ping, which recv_seq would see. */
	for (uint32_t r = 0; r < 5 && !failures; r++)
		for (int i = 0; i < 2; i++) {
			if (recv_seq(3 + i, 300 + r, &cli[i], cl[i], &a, &al, "udp ping-pong"))
				break;
			send_seq(3 + i, 1300 + r, &a, al);
		}
	wait_child(c, "udp");
	none_left(3, "udp server v4");
	none_left(4, "udp server ::1");
}

/* ---- unix ----------------------------------------------------------- */

static socklen_t unix_at(struct sockaddr_storage *ss, const char *name)
{
	struct sockaddr_un *a = (void *)ss;

	memset(ss, 0, sizeof(*ss));
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", dir, name);
	return offsetof(struct sockaddr_un, sun_path) + strlen(a->sun_path) + 1;
}

static void unix_client(int i, const struct sockaddr_storage *srv, socklen_t sl, int sync[2])
{
	struct sockaddr_storage me, a;
	socklen_t ml = unix_at(&me, i ? "c2" : "c1"), al;
	char b;

	sock_at(3, AF_UNIX, SOCK_DGRAM, 0);
	if (bind(3, (void *)&me, ml))
		die("bind");
	ml = name_of(3, &me);
	/* c1 first, then c2: the parent says when. */
	if (read(sync[0], &b, 1) != 1)
		die("sync");
	for (uint32_t k = 0; k < 3; k++)
		send_seq(3, 3 * i + k, srv, sl);
	if (write(sync[1], "x", 1) != 1)
		die("sync");
	close(sync[0]);
	close(sync[1]);
	wait_file(go);
	for (uint32_t k = 0; k < 2; k++)
		recv_seq(3, 50 + 10 * i + k, srv, sl, NULL, NULL, "unix client queue");
	/* The server may have answered already: a datagram more than was
	 * queued would come before the answers. */
	for (uint32_t k = 0; k < 3; k++)
		recv_seq(3, 1000 + 3 * i + k, srv, sl, &a, &al, "unix client answers");
	none_left(3, "unix client");
	_exit(failures ? 1 : 0);
}

static void unix_dgram(void)
{
	struct sockaddr_storage srv, cli[2], a;
	socklen_t sl = unix_at(&srv, "srv"), cl[2], al;
	int sync[2][2], back[2];
	pid_t c[2];
	char b;

	sock_at(3, AF_UNIX, SOCK_DGRAM, 0);
	if (bind(3, (void *)&srv, sl))
		die("bind");
	sl = name_of(3, &srv);
	sock_at(4, AF_UNIX, SOCK_DGRAM, 0);
	high_pipe(back);
	for (int i = 0; i < 2; i++) {
		cl[i] = unix_at(&cli[i], i ? "c2" : "c1");
		high_pipe(sync[i]);
		int fds[2] = {sync[i][0], back[1]};
		if ((c[i] = fork()) < 0)
			die("fork");
		if (c[i] == 0) {
			close(sync[i][1]);
			close(back[0]);
			if (i)
				close(sync[0][1]);
			unix_client(i, &srv, sl, fds);
		}
		close(sync[i][0]);
	}
	for (int i = 0; i < 2; i++)
		if (write(sync[i][1], "x", 1) != 1 || read(back[0], &b, 1) != 1)
			die("sync");
	send_seq(4, 6, &srv, sl);
	for (int i = 0; i < 2; i++) {
		/* The client is bound by now: its datagrams came. */
		send_seq(3, 50 + 10 * i, &cli[i], cl[i]);
		send_seq(3, 51 + 10 * i, &cli[i], cl[i]);
		close(sync[i][1]);
	}
	close(back[0]);
	close(back[1]);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	wait_file(go);
	for (uint32_t k = 0; k < 7 && !failures; k++) {
		int i = k / 3;
		if (k < 6) {
			if (recv_seq(3, k, &cli[i], cl[i], &a, &al, "unix server queue"))
				break;
			send_seq(3, 1000 + k, &a, al);
		} else if (!recv_seq(3, k, NULL, 0, &a, &al, "unix server queue") &&
			   al > sizeof(sa_family_t)) {
			fail("unix server queue: the unbound sender's datagram came from a name");
		}
	}
	none_left(3, "unix server queue");
	wait_child(c[0], "unix c1");
	wait_child(c[1], "unix c2");
}

/* ---- outside ------------------------------------------------------ */

/* Datagrams k0.. from the sender at from (flen), or from another address
 * if DIR/held. */
static void outside_check(int s, uint32_t k0, const struct sockaddr_storage *from, socklen_t flen,
			  const char *held, const char *what)
{
	struct sockaddr_storage a;
	socklen_t al;

	for (uint32_t k = k0; k < k0 + 3; k++) {
		if (recv_seq(s, k, NULL, 0, &a, &al, what))
			break;
		if (access(held, F_OK) ? al != flen || memcmp(&a, from, flen)
				       : al == flen && !memcmp(&a, from, flen))
			fail("%s: datagram %u from the %s address", what, k,
			     access(held, F_OK) ? "wrong" : "held");
	}
	none_left(s, what);
}

static void outside(void)
{
	struct sockaddr_storage srv, cli, usrv, ucli;
	socklen_t sl = loopback(&srv, AF_INET), cl, usl = unix_at(&usrv, "srv"),
		  ucl = unix_at(&ucli, "out");
	char rel[4096], held[4096];
	int sync[2];
	pid_t c;
	char b;

	sock_at(3, AF_INET, SOCK_DGRAM, 0);
	if (bind(3, (void *)&srv, sl))
		die("bind");
	sl = name_of(3, &srv);
	sock_at(5, AF_UNIX, SOCK_DGRAM, 0);
	if (bind(5, (void *)&usrv, usl))
		die("bind");
	cl = loopback(&cli, AF_INET);
	sock_at(4, AF_INET, SOCK_DGRAM, 0);
	if (bind(4, (void *)&cli, cl))
		die("bind");
	cl = name_of(4, &cli);
	sock_at(6, AF_UNIX, SOCK_DGRAM, 0);
	if (bind(6, (void *)&ucli, ucl))
		die("bind");
	ucl = name_of(6, &ucli);
	high_pipe(sync);
	snprintf(rel, sizeof(rel), "%s/release", dir);
	snprintf(held, sizeof(held), "%s/held", dir);
	if ((c = fork()) < 0)
		die("fork");
	if (c == 0) {
		/* The servers' are not held at restore. */
		close(3);
		close(5);
		for (uint32_t k = 0; k < 3; k++) {
			send_seq(4, k, &srv, sl);
			send_seq(6, 20 + k, &usrv, usl);
		}
		if (write(sync[1], "x", 1) != 1)
			die("sync");
		wait_file(rel);
		unlink(((struct sockaddr_un *)&ucli)->sun_path);
		_exit(0);
	}
	close(4);
	close(6);
	if (read(sync[0], &b, 1) != 1)
		die("sync");
	close(sync[0]);
	close(sync[1]);
	printf("ready %d %d %d\n", (int)getpid(), (int)c,
	       ntohs(((struct sockaddr_in *)&cli)->sin_port));
	fflush(stdout);
	wait_file(go);
	outside_check(3, 0, &cli, cl, held, "outside UDP queue");
	outside_check(5, 20, &ucli, ucl, held, "outside unix queue");
	/* A name bound for the restore only is gone again. */
	if (access(held, F_OK) && !access(((struct sockaddr_un *)&ucli)->sun_path, F_OK))
		fail("outside: the sender's socket file is left behind");
}

/* ---- netlink -------------------------------------------------------- */

static void getlink(int s, uint32_t seq)
{
	struct {
		struct nlmsghdr nh;
		struct rtgenmsg g;
	} req = {.nh = {.nlmsg_len = sizeof(req),
			.nlmsg_type = RTM_GETLINK,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
			.nlmsg_seq = seq},
		 .g = {.rtgen_family = AF_UNSPEC}};
	struct sockaddr_nl k = {.nl_family = AF_NETLINK};

	if (sendto(s, &req, sizeof(req), 0, (void *)&k, sizeof(k)) != sizeof(req))
		die("send RTM_GETLINK");
}

/* The dump's answer: lo among the links. */
static void getlink_answer(int s, uint32_t seq, uint32_t portid)
{
	static long buf[8192];
	int lo = 0, done = 0;

	while (!done) {
		struct pollfd p = {s, POLLIN, 0};
		ssize_t n;

		if (poll(&p, 1, 10000) != 1) {
			fail("netlink: no answer to RTM_GETLINK");
			return;
		}
		n = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0) {
			fail("netlink: recv: %s", strerror(errno));
			return;
		}
		for (struct nlmsghdr *nh = (void *)buf; NLMSG_OK(nh, (size_t)n);
		     nh = NLMSG_NEXT(nh, n)) {
			/* Events of the group may come between: not ours. */
			if (nh->nlmsg_seq != seq)
				continue;
			if (nh->nlmsg_pid != portid)
				fail("netlink: answer to port id %u, not %u", nh->nlmsg_pid,
				     portid);
			if (nh->nlmsg_type == NLMSG_DONE) {
				done = 1;
				break;
			}
			if (nh->nlmsg_type == NLMSG_ERROR) {
				fail("netlink: RTM_GETLINK answered with an error");
				return;
			}
			if (nh->nlmsg_type != RTM_NEWLINK)
				continue;
			struct ifinfomsg *ifi = NLMSG_DATA(nh);
			struct rtattr *ra = IFLA_RTA(ifi);
			int len = IFLA_PAYLOAD(nh);
			for (; RTA_OK(ra, len); ra = RTA_NEXT(ra, len))
				if (ra->rta_type == IFLA_IFNAME && !strcmp(RTA_DATA(ra), "lo"))
					lo = 1;
		}
	}
	if (!lo)
		fail("netlink: RTM_GETLINK's answer lists no lo");
}

static void netlink(int pending)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};
	socklen_t l = sizeof(sa);
	uint32_t groups[4] = {0}, portid;
	socklen_t gl = sizeof(groups);

	sock_at(3, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	if (bind(3, (void *)&sa, sizeof(sa)) || getsockname(3, (void *)&sa, &l))
		die("bind");
	portid = sa.nl_pid;
	if (pending)
		getlink(3, 1);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	wait_file(go);
	l = sizeof(sa);
	if (getsockname(3, (void *)&sa, &l) ||
	    getsockopt(3, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, groups, &gl))
		die("getsockname");
	if (sa.nl_pid != portid)
		fail("netlink: port id %u, was %u", sa.nl_pid, portid);
	if (groups[0] != RTMGRP_LINK)
		fail("netlink: groups %#x, not RTMGRP_LINK", groups[0]);
	if (pending)
		getlink_answer(3, 1, portid);
	getlink(3, 2);
	getlink_answer(3, 2, portid);
}

int main(int argc, char **argv)
{
	const char *kind;

	if (argc != 3) {
		fprintf(stderr, "usage: dgram KIND DIR\n");
		return 2;
	}
	kind = argv[1];
	dir = argv[2];
	snprintf(go, sizeof(go), "%s/go", dir);
	for (int fd = 3; fd < 64; fd++)
		close(fd);
	if (!strcmp(kind, "udp"))
		udp();
	else if (!strcmp(kind, "unix"))
		unix_dgram();
	else if (!strcmp(kind, "outside"))
		outside();
	else if (!strcmp(kind, "netlink") || !strcmp(kind, "nlpending"))
		netlink(!strcmp(kind, "nlpending"));
	else if (!strcmp(kind, "packet")) {
		sock_at(3, AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
		printf("ready %d\n", (int)getpid());
		fflush(stdout);
		wait_file(go);
	} else {
		fprintf(stderr, "dgram: unknown kind %s\n", kind);
		return 2;
	}
	if (failures)
		return 1;
	printf("dgram %s: ok\n", kind);
	return 0;
}
