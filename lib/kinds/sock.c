/* sock.c: sockets joined to no peer, the state an idle server holds: unix, TCP and UDP sockets
 * that listen, are bound, or are not even bound; made again with their address, backlog and
 * options.  Connected ones are unixpair.c's (socketpairs) or refused. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sched.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

#define ST_ESTABLISHED 1
#define ST_CLOSE 7
#define ST_LISTEN 10


/* A NETLINK_SOCK_DIAG socket made in the net namespace of process pid by
 * a child of ours that enters it (and the user namespace that owns it,
 * which we must own, or be root: the dumper itself may not change its
 * own), handed back over a socketpair.  (A socket is not kept for the
 * next question: an answer read in part would be left in it.) */
static int diag_socket_in(pid_t pid)
{
	char path[64], c[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = path, .iov_len = 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c,
			   .msg_controllen = sizeof(c)};
	struct stat own, their;
	int sp[2], s = -1, st;
	pid_t kid;

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp))
		return -1;
	if ((kid = fork()) == 0) {
		int u, n;

		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
		u = open(path, O_RDONLY | O_CLOEXEC);
		snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
		n = open(path, O_RDONLY | O_CLOEXEC);
		if (u < 0 || n < 0 || stat("/proc/self/ns/user", &own) || fstat(u, &their) ||
		    (own.st_ino != their.st_ino && setns(u, CLONE_NEWUSER)) ||
		    setns(n, CLONE_NEWNET) ||
		    (s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)) < 0)
			_exit(1);
		m.msg_controllen = CMSG_SPACE(sizeof(int));
		CMSG_FIRSTHDR(&m)->cmsg_level = SOL_SOCKET;
		CMSG_FIRSTHDR(&m)->cmsg_type = SCM_RIGHTS;
		CMSG_FIRSTHDR(&m)->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(CMSG_FIRSTHDR(&m)), &s, sizeof(int));
		_exit(sendmsg(sp[1], &m, 0) == 1 ? 0 : 1);
	}
	close(sp[1]);
	if (kid > 0 && recvmsg(sp[0], &m, MSG_CMSG_CLOEXEC) == 1 && CMSG_FIRSTHDR(&m) &&
	    CMSG_FIRSTHDR(&m)->cmsg_type == SCM_RIGHTS)
		memcpy(&s, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(int));
	close(sp[0]);
	if (kid > 0)
		waitpid(kid, &st, 0);
	if (s < 0)
		errno = EPERM;
	return s;
}

/* A NETLINK_SOCK_DIAG socket in the net namespace of pid (0: ours). */
static int diag_socket(pid_t pid)
{
	char path[64];
	struct stat own, their;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	if (pid && !stat("/proc/self/ns/net", &own) && !stat(path, &their) &&
	    own.st_ino != their.st_ino)
		return diag_socket_in(pid);
	return socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
}

/* One request on NETLINK_SOCK_DIAG (no privilege needed for one's own
 * network namespace), in the net namespace of pid (0: ours); each answer
 * goes to take() until it says done. */
static int diag_ask(pid_t pid, const void *req, size_t len, uint64_t ino, struct fd_diag *d,
		    int (*take)(const struct nlmsghdr *nh, uint64_t ino, struct fd_diag *d))
{
	long buf[4096];
	int nl, rc = -1;

	memset(d, 0, sizeof(*d));
	nl = diag_socket(pid);
	if (nl < 0)
		return -1;
	if (send(nl, req, len, 0) != (ssize_t)len)
		goto out;
	for (;;) {
		ssize_t n = recv(nl, buf, sizeof(buf), 0);
		struct nlmsghdr *nh = (void *)buf;
		int multi = n >= (ssize_t)sizeof(*nh) && (nh->nlmsg_flags & NLM_F_MULTI);

		if (n < 0)
			goto out;
		if (n == 0)
			break;
		for (; NLMSG_OK(nh, (size_t)n); nh = NLMSG_NEXT(nh, n)) {
			if (nh->nlmsg_type == NLMSG_DONE) {
				rc = 0;
				goto out;
			}
			if (nh->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(nh);
				errno = e->error ? -e->error : EPROTO;
				goto out;
			}
			if (take(nh, ino, d) > 0) {
				rc = 0;
				goto out;
			}
		}
		if (!multi) {
			rc = 0;
			break;
		}
	}
out:
	close(nl);
	return rc;
}

static int take_unix(const struct nlmsghdr *nh, uint64_t ino, struct fd_diag *d)
{
	const struct unix_diag_msg *m = NLMSG_DATA(nh);
	const struct nlattr *a;
	size_t left;

	if (nh->nlmsg_type != SOCK_DIAG_BY_FAMILY || nh->nlmsg_len < NLMSG_LENGTH(sizeof(*m)) ||
	    m->udiag_ino != ino)
		return 0;
	d->found = 1;
	d->state = m->udiag_state;
	left = nh->nlmsg_len - NLMSG_LENGTH(sizeof(*m));
	a = (const void *)(m + 1);
	while (left >= sizeof(*a) && a->nla_len >= sizeof(*a) && a->nla_len <= left) {
		const void *v = (const char *)a + NLA_HDRLEN;
		if (a->nla_type == UNIX_DIAG_PEER && a->nla_len >= NLA_HDRLEN + 4)
			memcpy(&d->peer, v, 4);
		else if (a->nla_type == UNIX_DIAG_NAME)
			d->named = 1;
		else if (a->nla_type == UNIX_DIAG_VFS &&
			 a->nla_len >= NLA_HDRLEN + sizeof(struct unix_diag_vfs)) {
			struct unix_diag_vfs u;
			memcpy(&u, v, sizeof(u));
			d->vfs = 1;
			d->vfs_ino = u.udiag_vfs_ino;
			d->vfs_dev = u.udiag_vfs_dev;
		}
		else if (a->nla_type == UNIX_DIAG_ICONS && m->udiag_state == ST_LISTEN) {
			uint32_t k = (a->nla_len - NLA_HDRLEN) / 4;
			if (k > sizeof(d->icons) / 4)
				k = sizeof(d->icons) / 4;
			memcpy(d->icons, v, 4 * k);
			d->nicons = k;
		} else if (a->nla_type == UNIX_DIAG_SHUTDOWN && a->nla_len >= NLA_HDRLEN + 1)
			d->shutdown = *(const uint8_t *)v;
		else if (a->nla_type == UNIX_DIAG_RQLEN &&
			 a->nla_len >= NLA_HDRLEN + sizeof(struct unix_diag_rqlen)) {
			struct unix_diag_rqlen r;
			memcpy(&r, v, sizeof(r));
			d->rqueue = r.udiag_rqueue;
			d->wqueue = r.udiag_wqueue;
		}
		if ((size_t)NLA_ALIGN(a->nla_len) >= left)
			break;
		left -= NLA_ALIGN(a->nla_len);
		a = (const void *)((const char *)a + NLA_ALIGN(a->nla_len));
	}
	return 1;
}

int fd_unix_diag(uint64_t ino, struct fd_diag *d)
{
	struct {
		struct nlmsghdr nh;
		struct unix_diag_req r;
	} req = {.nh = {.nlmsg_len = sizeof(req),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST},
		 .r = {.sdiag_family = AF_UNIX,
		       .udiag_states = -1,
		       .udiag_ino = ino,
		       .udiag_show = UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN | UDIAG_SHOW_NAME |
				     UDIAG_SHOW_VFS | UDIAG_SHOW_ICONS,
		       .udiag_cookie = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE}}};

	if (diag_ask(0, &req, sizeof(req), ino, d, take_unix))
		return -1;
	if (!d->found) {
		errno = ENOENT;
		return -1;
	}
	return 0;
}

static int take_inet(const struct nlmsghdr *nh, uint64_t ino, struct fd_diag *d)
{
	const struct inet_diag_msg *m = NLMSG_DATA(nh);

	if (nh->nlmsg_type != SOCK_DIAG_BY_FAMILY || nh->nlmsg_len < NLMSG_LENGTH(sizeof(*m)) ||
	    m->idiag_inode != ino)
		return 0;
	d->found = 1;
	d->state = m->idiag_state;
	d->rqueue = m->idiag_rqueue;
	d->wqueue = m->idiag_wqueue;
	return 1;
}

/* A listening TCP socket's queue: the kernel finds inet sockets by
 * address, so every listening one of the family is listed and ours
 * picked by its inode. */
static int diag_tcp_listen(pid_t pid, int family, uint64_t ino, struct fd_diag *d)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} req = {.nh = {.nlmsg_len = sizeof(req),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
		 .r = {.sdiag_family = family,
		       .sdiag_protocol = IPPROTO_TCP,
		       .idiag_states = 1u << ST_LISTEN}};

	if (diag_ask(pid, &req, sizeof(req), ino, d, take_inet))
		return -1;
	if (!d->found) {
		errno = ENOENT;
		return -1;
	}
	return 0;
}

int fd_tcp_listen_diag(pid_t pid, int family, uint64_t ino, struct fd_diag *d)
{
	return diag_tcp_listen(pid, family, ino, d);
}

/* The one answer to an exact lookup: its inode, state, queue and how long
 * ago it last sent data (tcp_info). */
static int take_conn(const struct nlmsghdr *nh, uint64_t ino, struct fd_diag *d)
{
	const struct inet_diag_msg *m = NLMSG_DATA(nh);
	const struct nlattr *a;
	size_t left;

	(void)ino;
	if (nh->nlmsg_type != SOCK_DIAG_BY_FAMILY || nh->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
		return 0;
	d->found = 1;
	d->state = m->idiag_state;
	d->rqueue = m->idiag_rqueue;
	d->wqueue = m->idiag_wqueue;
	d->inode = m->idiag_inode;
	left = nh->nlmsg_len - NLMSG_LENGTH(sizeof(*m));
	a = (const void *)(m + 1);
	while (left >= sizeof(*a) && a->nla_len >= sizeof(*a) && a->nla_len <= left) {
		if (a->nla_type == INET_DIAG_INFO &&
		    a->nla_len >= NLA_HDRLEN + offsetof(struct tcp_info, tcpi_last_data_sent) + 4)
			memcpy(&d->sent_ago, (const char *)a + NLA_HDRLEN +
						 offsetof(struct tcp_info, tcpi_last_data_sent),
			       4);
		if ((size_t)NLA_ALIGN(a->nla_len) >= left)
			break;
		left -= NLA_ALIGN(a->nla_len);
		a = (const void *)((const char *)a + NLA_ALIGN(a->nla_len));
	}
	return 1;
}

int fd_tcp_diag(pid_t pid, int family, const uint8_t src[16], uint16_t sport, const uint8_t dst[16],
		uint16_t dport, struct fd_diag *d)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} req = {.nh = {.nlmsg_len = sizeof(req),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST},
		 .r = {.sdiag_family = family,
		       .sdiag_protocol = IPPROTO_TCP,
		       .idiag_ext = 1u << (INET_DIAG_INFO - 1),
		       .idiag_states = -1,
		       .id = {.idiag_sport = htons(sport),
			      .idiag_dport = htons(dport),
			      .idiag_cookie = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE}}}};

	memcpy(req.r.id.idiag_src, src, 16);
	memcpy(req.r.id.idiag_dst, dst, 16);
	if (diag_ask(pid, &req, sizeof(req), 0, d, take_conn))
		return -1;
	if (!d->found) {
		errno = ENOENT;
		return -1;
	}
	return 0;
}

/* ---- a port held by TIME-WAIT or orphans ---------------------------- */

#ifndef SOCK_DESTROY
#define SOCK_DESTROY 21
#endif

/* The TCP sockets of family on local port port in our network
 * namespace, owned by a file (owned 1: a process's) or by none (0: in
 * TIME-WAIT, or closed and finishing on their own): how many, the ids of
 * up to n of them in ids, in *ms the most milliseconds left on any one's
 * timer, in *state the first one's state; -1 if sock_diag does not
 * answer. */
static int port_sockets(int family, uint16_t port, int owned, struct inet_diag_sockid *ids, int n,
			uint32_t *ms, uint8_t *state)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} req = {.nh = {.nlmsg_len = sizeof(req),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
		 .r = {.sdiag_family = family, .sdiag_protocol = IPPROTO_TCP, .idiag_states = ~0u}};
	long buf[2048];
	int nl = diag_socket(0), found = 0, done = 0;

	if (nl < 0)
		return -1;
	if (send(nl, &req, sizeof(req), 0) != (ssize_t)sizeof(req)) {
		close(nl);
		return -1;
	}
	while (!done) {
		ssize_t r = recv(nl, buf, sizeof(buf), 0);
		struct nlmsghdr *nh = (void *)buf;

		if (r <= 0) {
			close(nl);
			return -1;
		}
		for (; NLMSG_OK(nh, (size_t)r); nh = NLMSG_NEXT(nh, r)) {
			const struct inet_diag_msg *m = NLMSG_DATA(nh);

			if (nh->nlmsg_type == NLMSG_DONE || nh->nlmsg_type == NLMSG_ERROR) {
				done = 1;
				break;
			}
			if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*m)) ||
			    m->id.idiag_sport != htons(port) || !m->idiag_inode != !owned)
				continue;
			if (!found && state)
				*state = m->idiag_state;
			if (found < n)
				ids[found] = m->id;
			if (m->idiag_expires > *ms)
				*ms = m->idiag_expires;
			found++;
		}
	}
	close(nl);
	return found;
}

/* Asks the kernel to destroy the TCP socket id (SOCK_DESTROY: root, or
 * CAP_NET_ADMIN over the network namespace); 0 if it did. */
static int destroy_socket(int family, const struct inet_diag_sockid *id)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} req = {.nh = {.nlmsg_len = sizeof(req),
			.nlmsg_type = SOCK_DESTROY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK},
		 .r = {.sdiag_family = family,
		       .sdiag_protocol = IPPROTO_TCP,
		       .idiag_states = ~0u,
		       .id = *id}};
	long buf[256];
	const struct nlmsghdr *nh = (void *)buf;
	int nl = diag_socket(0), rc = -1;
	ssize_t r;

	if (nl < 0)
		return -1;
	if (send(nl, &req, sizeof(req), 0) == (ssize_t)sizeof(req) &&
	    (r = recv(nl, buf, sizeof(buf), 0)) >= (ssize_t)NLMSG_LENGTH(sizeof(int)) &&
	    nh->nlmsg_type == NLMSG_ERROR)
		rc = ((const struct nlmsgerr *)NLMSG_DATA(nh))->error ? -1 : 0;
	close(nl);
	return rc;
}

static char port_holder[64];
static uint16_t holder_port; /* the port port_holder is about */

const char *fd_tcp_port_holder(uint16_t port)
{
	return port == holder_port ? port_holder : "";
}

static const char *tcp_state_name(int st);

int fd_tcp_port_wait(int family, uint16_t port, int fd)
{
	struct inet_diag_sockid ids[64];
	double end = 0;
	uint32_t ms = 0;
	uint8_t st = 0;
	int n, said = 0, destroy = 1;

	port_holder[0] = 0;
	holder_port = port;
	for (;; usleep(destroy ? 0 : 100000)) {
		/* A socket on it that a process has: it is in use.  Those no
		 * process has (in TIME-WAIT, or closed, FIN-WAIT-2 and the
		 * like, after their process was killed) say how long they
		 * have left (a minute at most, their timers running a little
		 * late): a second more. */
		int late = end && now_sec() > end;

		n = late ? 0 : port_sockets(family, port, 1, ids, 0, &ms, &st);
		if (n > 0)
			snprintf(port_holder, sizeof(port_holder), " (a process's %s socket)",
				 tcp_state_name(st));
		else if (late)
			snprintf(port_holder, sizeof(port_holder), " (a closed %s socket, still)",
				 tcp_state_name(st));
		if (n != 0 || late ||
		    (ms = 0, n = port_sockets(family, port, 0, ids, 64, &ms, &st)) < 0) {
			errno = EADDRINUSE;
			return -1;
		}
		if (!end)
			end = now_sec() + (ms > 60000 ? 60000 : ms) / 1000.0 + 5;
		if (n == 0)
			return 0;
		for (int i = 0; i < n && i < 64 && destroy; i++)
			if (destroy_socket(family, &ids[i]))
				destroy = 0;
		if (destroy)
			continue;
		if (!said++) {
			char name[16];
			size_t k;

			/* Its state in capitals: TIME-WAIT, FIN-WAIT2. */
			for (k = 0; tcp_state_name(st)[k] && k + 1 < sizeof(name); k++)
				name[k] = (char)toupper((unsigned char)tcp_state_name(st)[k]);
			name[k] = 0;
			warnx("fd %d: port %u is held by connections closed in the last minute "
			      "(%s), which only root may end at once: waiting for them",
			      fd, port, name);
		}
	}
}

/* ---- names ------------------------------------------------------------ */

/* An address as text: 127.0.0.1:80, [::1]:80, /path, @abstract
 * (bytes outside ' '..'~' as '?'), or "unbound". */
static const char *addr_text(const void *sa, size_t len, char *buf, size_t size)
{
	const struct sockaddr *s = sa;
	char ip[INET6_ADDRSTRLEN];

	if (len < sizeof(sa_family_t))
		return "unbound";
	if (s->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *a = sa;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, ntohs(a->sin_port));
	} else if (s->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *a = sa;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, ntohs(a->sin6_port));
	} else if (s->sa_family == AF_UNIX && len > sizeof(sa_family_t)) {
		const struct sockaddr_un *a = sa;
		size_t n = len - offsetof(struct sockaddr_un, sun_path), k = 0, i = 0;

		if (a->sun_path[0] == 0) {
			buf[k++] = '@';
			i = 1;
		}
		for (; i < n && k + 1 < size; i++) {
			char c = a->sun_path[i];
			if (!c && a->sun_path[0])
				break;
			buf[k++] = c >= ' ' && c <= '~' ? c : '?';
		}
		buf[k] = 0;
	} else {
		return "unbound";
	}
	return buf;
}

const char *fd_sock_addr_text(const void *sa, size_t len, char *buf, size_t size)
{
	return addr_text(sa, len, buf, size);
}

/* A unix socket's path name, as bind(2) took it. */
const char *fd_unix_path(const void *sa, size_t len, char *buf)
{
	const struct sockaddr_un *u = sa;
	size_t n = len - offsetof(struct sockaddr_un, sun_path);

	if (len <= offsetof(struct sockaddr_un, sun_path) || !u->sun_path[0])
		return NULL;
	if (n > sizeof(u->sun_path))
		n = sizeof(u->sun_path);
	memcpy(buf, u->sun_path, n);
	buf[n] = 0;
	return buf;
}

static const char *type_name(int type)
{
	return type == SOCK_STREAM ? "stream" : type == SOCK_DGRAM ? "dgram" : "seqpacket";
}

static const char *proto_name(int family, int protocol)
{
	if (family == AF_UNIX)
		return "unix";
	return protocol == IPPROTO_TCP ? "TCP" : "UDP";
}

static const char *tcp_state_name(int st)
{
	static const char *const n[] = {"?",	      "established", "syn-sent",  "syn-recv",
					"fin-wait1",  "fin-wait2",   "time-wait", "close",
					"close-wait", "last-ack",    "listen",	  "closing"};
	return st >= 0 && st < (int)(sizeof(n) / sizeof(n[0])) ? n[st] : "?";
}

/* ---- which kind ----------------------------------------------------- */

/* A socket: IMG_FD_TCP for a TCP connection (tcp.c), IMG_FD_SOCK when it
 * is joined to no peer (or is UDP), else IMG_FD_UNIX: a
 * socketpair or a connection (connect and accept), whose join refuses
 * those whose peer is not in the tree.  A datagram socket another one
 * connected to is "established" with no peer of its own: IMG_FD_SOCK.
 * A stream or seqpacket client whose connection waits in a listener's
 * queue is "established" with a peer that has no inode yet (sock_diag
 * says 0): IMG_FD_UNIX too, and so is one whose peer closed (shut
 * down both ways, its peer 0 too: a socketpair end whose other end was
 * closed, as the JVM keeps one to dup2 over fds it closes). */
uint32_t fd_sock_kind(const struct fd_source *src, int fd)
{
	int s, family = -1, type = -1;
	socklen_t sl = sizeof(family);
	struct fd_diag d;
	uint32_t kind = IMG_FD_UNIX;

	if ((s = fd_getfd(src->pid, fd)) < 0)
		return 0;
	if (getsockopt(s, SOL_SOCKET, SO_DOMAIN, &family, &sl))
		family = -1;
	sl = sizeof(type);
	if (getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &sl))
		type = -1;
	if (family == AF_INET || family == AF_INET6)
		kind = fd_tcp_connected(s) ? IMG_FD_TCP : IMG_FD_SOCK;
	else if (family == AF_UNIX && !fd_unix_diag(src->sb->st_ino, &d) &&
		 (d.state == ST_LISTEN || !d.peer) &&
		 !(type != SOCK_DGRAM && d.state == ST_ESTABLISHED))
		kind = IMG_FD_SOCK;
	/* Netlink sockets are netlink.c's; other families are refused. */
	if (family == AF_NETLINK)
		kind = IMG_FD_NETLINK;
	else if (family != AF_UNIX && family != AF_INET && family != AF_INET6) {
		fd_sock_refuse_family(src, fd, family);
		kind = 0;
	}
	close(s);
	return kind;
}

/* ---- capturing ------------------------------------------------------ */

/* Whether a new socket like s has SO_SNDBUF or SO_RCVBUF opt at v: then the
 * program did not set it, and it is not kept (0). */
static uint32_t buf_set(int family, int type, int protocol, int opt, int v)
{
	int n = socket(family, type | SOCK_CLOEXEC, protocol), w = -1;
	socklen_t sl = sizeof(w);

	if (n < 0)
		return v;
	getsockopt(n, SOL_SOCKET, opt, &w, &sl);
	close(n);
	return w == v ? 0 : (uint32_t)v;
}

uint32_t fd_sock_buf_set(int family, int type, int protocol, int opt, int v)
{
	return buf_set(family, type, protocol, opt, v);
}

static int opt_on(int s, int level, int opt)
{
	int v = 0;
	socklen_t sl = sizeof(v);

	return !getsockopt(s, level, opt, &v, &sl) && v;
}

/* A socket being captured: the process's, through our own copy s. */
struct probe {
	pid_t pid;
	int fd, s, family, type, protocol;
	const char *link;
	struct sockaddr_storage sa;
	socklen_t salen;
	struct fd_diag d;
};

/* Its family, type, protocol and address. */
static int probe_sock(struct probe *p)
{
	socklen_t sl = sizeof(int);

	p->salen = sizeof(p->sa);
	if (getsockopt(p->s, SOL_SOCKET, SO_DOMAIN, &p->family, &sl) ||
	    getsockopt(p->s, SOL_SOCKET, SO_TYPE, &p->type, &sl) ||
	    getsockopt(p->s, SOL_SOCKET, SO_PROTOCOL, &p->protocol, &sl) ||
	    getsockname(p->s, (void *)&p->sa, &p->salen)) {
		err_sys("pid %d: fd %d (%s): cannot ask the socket its family and address", p->pid,
			p->fd, p->link);
		return -1;
	}
	if (p->salen > sizeof(p->sa))
		p->salen = sizeof(p->sa);
	return 0;
}

/* A unix socket: one of the three types, and what sock_diag says. */
static int unix_state(struct probe *p, uint64_t ino)
{
	if (p->type != SOCK_STREAM && p->type != SOCK_DGRAM && p->type != SOCK_SEQPACKET) {
		err_set("pid %d: fd %d is a unix socket (%s) of type %d; not supported", p->pid,
			p->fd, p->link, p->type);
		return -1;
	}
	if (fd_unix_diag(ino, &p->d)) {
		err_sys("pid %d: fd %d (%s): cannot query the unix socket with sock_diag", p->pid,
			p->fd, p->link);
		return -1;
	}
	return 0;
}

/* A TCP or UDP socket: not connected; a TCP one listening or closed. */
static int inet_state(struct probe *p, uint64_t ino)
{
	struct sockaddr_storage peer;
	socklen_t pl = sizeof(peer), tl;
	struct tcp_info ti = {0};
	char a[160], b[160];

	if (!((p->type == SOCK_STREAM && p->protocol == IPPROTO_TCP) ||
	      (p->type == SOCK_DGRAM && p->protocol == IPPROTO_UDP))) {
		err_set("pid %d: fd %d is an inet socket (%s) of type %d, protocol %d; not "
			"supported",
			p->pid, p->fd, p->link, p->type, p->protocol);
		return -1;
	}
	/* Connected or not, a UDP socket's peer is sockq.c's. */
	if (p->protocol == IPPROTO_UDP) {
		p->d.state = ST_CLOSE;
		return 0;
	}
	if (!getpeername(p->s, (void *)&peer, &pl)) {
		tl = sizeof(ti);
		if (p->protocol == IPPROTO_TCP)
			getsockopt(p->s, IPPROTO_TCP, TCP_INFO, &ti, &tl);
		err_set("pid %d: fd %d is a %s socket connected from %s to %s (%s); not "
			"supported yet",
			p->pid, p->fd, proto_name(p->family, p->protocol),
			addr_text(&p->sa, p->salen, a, sizeof(a)), addr_text(&peer, pl, b, sizeof(b)),
			p->protocol == IPPROTO_TCP ? tcp_state_name(ti.tcpi_state) : "connected");
		return -1;
	}
	tl = sizeof(ti);
	if (getsockopt(p->s, IPPROTO_TCP, TCP_INFO, &ti, &tl)) {
		err_sys("pid %d: fd %d (%s): cannot ask the TCP socket its state", p->pid, p->fd,
			p->link);
		return -1;
	}
	p->d.state = ti.tcpi_state;
	if (p->d.state != ST_LISTEN && p->d.state != ST_CLOSE) {
		err_set("pid %d: fd %d is a TCP socket on %s in state %s; not supported yet", p->pid,
			p->fd, addr_text(&p->sa, p->salen, a, sizeof(a)), tcp_state_name(p->d.state));
		return -1;
	}
	if (p->d.state == ST_LISTEN && diag_tcp_listen(p->pid, p->family, ino, &p->d)) {
		err_sys("pid %d: fd %d (%s): cannot query the TCP socket with sock_diag", p->pid,
			p->fd, p->link);
		return -1;
	}
	return 0;
}

/* Bound, unbound or listening (with its backlog); a socket with data
 * queued is refused. */
static int sock_state(struct probe *p, struct img_sock *k)
{
	const struct sockaddr_storage *sa = &p->sa;
	char a[160];

	/* Its address: a port or a name it was bound to (a unix socket's
	 * getsockname says sa_family alone when it is not bound). */
	if (p->family == AF_UNIX)
		k->state = p->salen > sizeof(sa_family_t) ? IMG_SOCK_BOUND : IMG_SOCK_UNBOUND;
	else if (p->family == AF_INET)
		k->state = ((const struct sockaddr_in *)sa)->sin_port ? IMG_SOCK_BOUND
								      : IMG_SOCK_UNBOUND;
	else
		k->state = ((const struct sockaddr_in6 *)sa)->sin6_port ? IMG_SOCK_BOUND
									: IMG_SOCK_UNBOUND;
	if (p->d.state == ST_LISTEN) {
		k->state = IMG_SOCK_LISTEN;
		/* What somaxconn left of it; a reader takes no more than
		 * 2^20, and the kernel clamps it again at restore. */
		k->backlog = p->d.wqueue < (1u << 20) ? p->d.wqueue : 1u << 20;
		/* Its waiting connections are its clients' (the joins of
		 * unixpair.c and tcp.c check that they are in the tree). */
	} else if (p->type != SOCK_DGRAM &&
		   recv(p->s, a, 1, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC) >= 0) {
		/* A datagram socket's queue is sockq.c's. */
		err_set("pid %d: fd %d is a %s %s socket on %s with data queued to read; not "
			"supported yet",
			p->pid, p->fd, proto_name(p->family, p->protocol), type_name(p->type),
			addr_text(sa, p->salen, a, sizeof(a)));
		return -1;
	}
	return 0;
}

/* Whether st is the socket file of p (sock_diag's VFS attribute: its
 * inode, and its file system's dev_t as the kernel encodes it). */
static int is_its_file(const struct probe *p, const struct stat *st)
{
	return p->d.vfs && S_ISSOCK(st->st_mode) && st->st_ino == p->d.vfs_ino &&
	       st->st_dev == makedev(p->d.vfs_dev >> 20, p->d.vfs_dev & 0xfffff);
}

/* A unix stream or seqpacket socket's file renamed since bind (the name
 * the socket keeps is its bind's): looked for in the directory of that
 * name, where a program that binds a temporary name and renames it into
 * place (the JVM's attach listener) leaves it.  Its path into moved
 * (moved[0] 0 where it is at its name, gone, or elsewhere), st its stat. */
static void moved_file(const struct probe *p, const char *path, char *moved, size_t size,
		       struct stat *st)
{
	char dir[256], *slash;
	struct dirent *e;
	DIR *d;

	moved[0] = 0;
	if (!p->d.vfs || p->type == SOCK_DGRAM || (!lstat(path, st) && is_its_file(p, st)))
		return;
	snprintf(dir, sizeof(dir), "%s", path);
	if (!(slash = strrchr(dir, '/')))
		return;
	slash[slash == dir] = 0;
	if (!(d = opendir(dir)))
		return;
	while ((e = readdir(d)))
		if (e->d_ino == p->d.vfs_ino && e->d_type == DT_SOCK &&
		    (size_t)snprintf(moved, size, "%s/%s", slash == dir ? "" : dir, e->d_name) <
			size &&
		    !lstat(moved, st) && is_its_file(p, st))
			break;
	if (!e)
		moved[0] = 0;
	closedir(d);
}

/* A bound socket's address; a unix one's file: its mode and owner, and
 * where it is now when it was renamed (into moved, "" if not). */
static int sock_addr(const struct probe *p, struct img_sock *k, char *moved, size_t size)
{
	const struct sockaddr_un *u = (const void *)&p->sa;
	char a[160];
	struct stat st;

	if (k->state == IMG_SOCK_UNBOUND)
		return 0;
	k->addr_len = p->salen;
	if (p->family != AF_UNIX)
		return 0;
	if (u->sun_path[0] && u->sun_path[0] != '/') {
		err_set("pid %d: fd %d is a unix socket bound to relative path %s; not supported",
			p->pid, p->fd, addr_text(&p->sa, p->salen, a, sizeof(a)));
		return -1;
	}
	/* The socket file's mode (0 when it is gone: the default bind(2)
	 * gives). */
	if (u->sun_path[0])
		moved_file(p, fd_unix_path(&p->sa, p->salen, a), moved, size, &st);
	if (moved[0])
		k->opts |= IMG_SOCK_MOVED;
	if (u->sun_path[0] && (moved[0] || !stat(a, &st)) && S_ISSOCK(st.st_mode)) {
		k->mode = st.st_mode & 07777;
		k->uid = st.st_uid;
		k->gid = st.st_gid;
	}
	return 0;
}

/* The options that matter, and buffer sizes the program set. */
static void sock_opts(const struct probe *p, struct img_sock *k)
{
	socklen_t sl;
	int v, s = p->s;

	if (opt_on(s, SOL_SOCKET, SO_REUSEADDR))
		k->opts |= IMG_SOCKOPT_REUSEADDR;
	if (opt_on(s, SOL_SOCKET, SO_REUSEPORT))
		k->opts |= IMG_SOCKOPT_REUSEPORT;
	if (p->family == AF_UNIX && opt_on(s, SOL_SOCKET, SO_PASSCRED))
		k->opts |= IMG_SOCKOPT_PASSCRED;
	if (opt_on(s, SOL_SOCKET, SO_KEEPALIVE))
		k->opts |= IMG_SOCKOPT_KEEPALIVE;
	if (opt_on(s, SOL_SOCKET, SO_BROADCAST))
		k->opts |= IMG_SOCKOPT_BROADCAST;
	if (p->protocol == IPPROTO_TCP && p->family != AF_UNIX && opt_on(s, IPPROTO_TCP, TCP_NODELAY))
		k->opts |= IMG_SOCKOPT_NODELAY;
	if (p->family == AF_INET6 && opt_on(s, IPPROTO_IPV6, IPV6_V6ONLY))
		k->opts |= IMG_SOCKOPT_V6ONLY;
	sl = sizeof(v);
	if (!getsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, &sl))
		k->sndbuf = buf_set(p->family, p->type, k->protocol, SO_SNDBUF, v);
	sl = sizeof(v);
	if (!getsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, &sl))
		k->rcvbuf = buf_set(p->family, p->type, k->protocol, SO_RCVBUF, v);
}

/* A socket joined to no peer: its kind, options, address and backlog;
 * one that is connected, or holds what it has not read, is refused. */
static int capture_sock(const struct fd_source *src, struct fd_entry *f)
{
	struct probe p = {.pid = src->pid, .fd = f->d.fd, .link = src->link};
	struct img_sock k = {0};
	unsigned char *q = NULL, *x = NULL;
	char moved[sizeof(((struct sockaddr_un *)0)->sun_path)] = "";
	size_t qlen = 0;
	int rc = -1;

	if ((p.s = fd_getfd(p.pid, p.fd)) < 0)
		return -1;
	if (probe_sock(&p))
		goto out;
	k.family = p.family;
	k.type = p.type;
	k.protocol = p.family == AF_UNIX ? 0 : p.protocol;
	if ((p.family == AF_UNIX ? unix_state(&p, f->d.ino) : inet_state(&p, f->d.ino)) ||
	    sock_state(&p, &k) || sock_addr(&p, &k, moved, sizeof(moved)))
		goto out;
	/* A renamed socket file's path follows the address (no queue: not
	 * a datagram socket). */
	qlen = strlen(moved);
	if (qlen && !(q = (unsigned char *)strdup(moved))) {
		err_set("out of memory");
		goto out;
	}
	sock_opts(&p, &k);
	if (p.type == SOCK_DGRAM &&
	    fd_dgram_capture(src, p.fd, p.s, p.family, &p.sa, p.salen, &q, &qlen))
		goto out;
	if (!(x = malloc(k.addr_len + qlen + 1))) {
		err_set("out of memory");
		goto out;
	}
	memcpy(x, &p.sa, k.addr_len);
	if (qlen)
		memcpy(x + k.addr_len, q, qlen);
	rc = fd_set_extra(f, &k, sizeof(k), x, k.addr_len + qlen);
out:
	free(q);
	free(x);
	close(p.s);
	return rc;
}

/* A renamed socket file's path (IMG_SOCK_MOVED): n bytes after the
 * address x of k, an absolute path of a stream or seqpacket socket bound
 * to a path, that fits a sockaddr_un, no NUL in it. */
static int check_moved(const unsigned char *x, const struct img_sock *k, uint32_t n)
{
	const struct sockaddr_un *u = (const void *)x;

	if (k->family != AF_UNIX || k->type == SOCK_DGRAM || k->state == IMG_SOCK_UNBOUND ||
	    !x[offsetof(struct sockaddr_un, sun_path)] || n < 2 || n >= sizeof(u->sun_path))
		return -1;
	x += k->addr_len;
	return x[0] == '/' && !memchr(x, 0, n) ? 0 : -1;
}

static int check_sock(const unsigned char *x, uint32_t n)
{
	struct img_sock k;
	sa_family_t fam;

	if (n < sizeof(k))
		return -1;
	memcpy(&k, x, sizeof(k));
	if (n < sizeof(k) + (uint64_t)k.addr_len || k.state > IMG_SOCK_LISTEN ||
	    (k.opts & ~(IMG_SOCKOPT_ALL | IMG_SOCK_MOVED)) || (k.mode > 07777 || (!k.mode && (k.uid || k.gid))) ||
	    k.backlog > 1u << 20)
		return -1;
	switch (k.family) {
	case AF_UNIX:
		if (k.protocol ||
		    (k.type != SOCK_STREAM && k.type != SOCK_DGRAM && k.type != SOCK_SEQPACKET))
			return -1;
		if (k.state != IMG_SOCK_UNBOUND && (k.addr_len < sizeof(sa_family_t) + 1 ||
						    k.addr_len > sizeof(struct sockaddr_un)))
			return -1;
		break;
	case AF_INET:
	case AF_INET6:
		if (!((k.type == SOCK_STREAM && k.protocol == IPPROTO_TCP) ||
		      (k.type == SOCK_DGRAM && k.protocol == IPPROTO_UDP)))
			return -1;
		if (k.state != IMG_SOCK_UNBOUND &&
		    k.addr_len != (k.family == AF_INET ? sizeof(struct sockaddr_in)
						       : sizeof(struct sockaddr_in6)))
			return -1;
		break;
	default:
		return -1;
	}
	if ((k.state == IMG_SOCK_UNBOUND) != (k.addr_len == 0) ||
	    (k.state == IMG_SOCK_LISTEN && k.type == SOCK_DGRAM))
		return -1;
	if (k.addr_len) {
		memcpy(&fam, x + sizeof(k), sizeof(fam));
		if (fam != k.family)
			return -1;
	}
	if (k.opts & IMG_SOCK_MOVED)
		return check_moved(x + sizeof(k), &k, n - sizeof(k) - k.addr_len);
	/* A datagram socket's peer and queue (sockq.c) follow. */
	if (k.type == SOCK_DGRAM)
		return fd_dgram_check(x + sizeof(k) + k.addr_len, n - sizeof(k) - k.addr_len,
				      k.family);
	return n == sizeof(k) + k.addr_len ? 0 : -1;
}

/* ---- making it again -------------------------------------------------- */

/* A unix path name about to be bound: a file there that is no socket is
 * left alone (refused), a socket someone listens on too; a stale one is
 * removed. */
int fd_unix_path_free(int fd, int type, const void *sa, uint32_t len, const char *path)
{
	struct stat st;
	int t, r, e;

	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		err_sys("fd %d: cannot look at %s, where its unix socket is bound", fd, path);
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		err_set("fd %d: %s, where its unix socket is bound, is a file that is not a socket",
			fd, path);
		return -1;
	}
	if ((t = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		err_sys("fd %d: cannot make a unix socket", fd);
		return -1;
	}
	r = connect(t, sa, len);
	e = errno;
	close(t);
	/* A datagram socket bound there takes our connect: in use too. */
	if (r == 0 || (e != ECONNREFUSED && e != ENOENT)) {
		err_set("fd %d: unix socket %s is in use", fd, path);
		return -1;
	}
	if (unlink(path) && errno != ENOENT) {
		err_sys("fd %d: cannot remove the stale unix socket %s", fd, path);
		return -1;
	}
	return 0;
}

/* Listeners are found by their address's FNV-1a hash, and checked. */
static uint64_t addr_hash(const void *sa, uint32_t len)
{
	const unsigned char *b = sa;
	uint64_t h = 0xcbf29ce484222325ull;

	for (uint32_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

int fd_unix_listening(struct fd_pipes *pipes, int s, const void *sa, uint32_t len)
{
	struct fd_pipe *fp = fd_new_pair(pipes, IMG_FD_SOCK, addr_hash(sa, len));

	if (!fp)
		return -1;
	if ((fp->end[0] = fcntl(s, F_DUPFD_CLOEXEC, 0)) < 0) {
		err_sys("cannot duplicate a unix socket");
		return -1;
	}
	pipes->n++;
	return 0;
}

int fd_unix_listener(struct fd_pipes *pipes, const void *sa, uint32_t len)
{
	uint64_t h = addr_hash(sa, len);

	for (size_t i = 0; i < pipes->n; i++) {
		struct sockaddr_storage got;
		socklen_t gl = sizeof(got);

		if (pipes->p[i].kind == IMG_FD_SOCK && pipes->p[i].id == h &&
		    !getsockname(pipes->p[i].end[0], (void *)&got, &gl) && gl == len &&
		    !memcmp(&got, sa, len))
			return pipes->p[i].end[0];
	}
	return -1;
}

static void set_opt(int s, int level, int opt, int on)
{
	setsockopt(s, level, opt, &on, sizeof(on));
}

/* The file of a socket bound at path, renamed where it was at the
 * checkpoint (IMG_SOCK_MOVED: a stale socket file there is replaced, a
 * live one or another file refused); the socket keeps its name. */
static int move_file(const struct fd_entry *f, const struct img_sock *k, const char *path)
{
	struct sockaddr_un to = {.sun_family = AF_UNIX};
	size_t n = f->d.extra_len - sizeof(*k) - k->addr_len;

	memcpy(to.sun_path, f->extra + sizeof(*k) + k->addr_len, n);
	if (fd_unix_path_free(f->d.fd, k->type, &to, offsetof(struct sockaddr_un, sun_path) + n + 1,
			      to.sun_path))
		return -1;
	if (rename(path, to.sun_path)) {
		err_sys("fd %d: cannot rename the file of its unix socket %s to %s, where it was",
			f->d.fd, path, to.sun_path);
		return -1;
	}
	return 0;
}

static int make_sock(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_sock k;
	struct sockaddr_storage sa = {0};
	char a[160];
	int s;

	memcpy(&k, f->extra, sizeof(k));
	memcpy(&sa, f->extra + sizeof(k), k.addr_len);
	s = socket(k.family, k.type | SOCK_CLOEXEC, k.protocol);
	if (s < 0) {
		err_sys("fd %d: cannot make a %s socket", f->d.fd,
			proto_name(k.family, k.protocol));
		return -1;
	}
	/* A TCP one binds with SO_REUSEADDR on: the tree's connections on
	 * its port may be made before it (tcp.c); its own once it listens. */
	set_opt(s, SOL_SOCKET, SO_REUSEADDR,
		k.protocol == IPPROTO_TCP || (k.opts & IMG_SOCKOPT_REUSEADDR));
	if (k.opts & IMG_SOCKOPT_REUSEPORT)
		set_opt(s, SOL_SOCKET, SO_REUSEPORT, 1);
	if (k.opts & IMG_SOCKOPT_PASSCRED)
		set_opt(s, SOL_SOCKET, SO_PASSCRED, 1);
	if (k.opts & IMG_SOCKOPT_KEEPALIVE)
		set_opt(s, SOL_SOCKET, SO_KEEPALIVE, 1);
	if (k.opts & IMG_SOCKOPT_BROADCAST)
		set_opt(s, SOL_SOCKET, SO_BROADCAST, 1);
	if (k.opts & IMG_SOCKOPT_NODELAY)
		set_opt(s, IPPROTO_TCP, TCP_NODELAY, 1);
	if (k.family == AF_INET6)
		set_opt(s, IPPROTO_IPV6, IPV6_V6ONLY, !!(k.opts & IMG_SOCKOPT_V6ONLY));
	/* getsockopt gave twice what was set. */
	if (k.sndbuf)
		set_opt(s, SOL_SOCKET, SO_SNDBUF, k.sndbuf / 2);
	if (k.rcvbuf)
		set_opt(s, SOL_SOCKET, SO_RCVBUF, k.rcvbuf / 2);
	if (k.state != IMG_SOCK_UNBOUND) {
		char pb[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
		const char *path = k.family == AF_UNIX ? fd_unix_path(&sa, k.addr_len, pb) : NULL;
		/* sin_port and sin6_port are at one place. */
		uint16_t port =
		    k.family == AF_UNIX ? 0 : ntohs(((struct sockaddr_in *)&sa)->sin_port);

		addr_text(&sa, k.addr_len, a, sizeof(a));
		if (path && fd_unix_path_free(f->d.fd, k.type, &sa, k.addr_len, path))
			goto fail;
		/* Its port held by connections closed in the last minute,
		 * the program's or another's: once they are gone, again. */
		if (bind(s, (void *)&sa, k.addr_len) &&
		    (errno != EADDRINUSE || k.protocol != IPPROTO_TCP ||
		     fd_tcp_port_wait(k.family, port, f->d.fd) ||
		     (errno = EADDRINUSE, bind(s, (void *)&sa, k.addr_len)))) {
			if (errno == EADDRINUSE && k.family != AF_UNIX)
				err_set("fd %d: %s address %s: port %u is in use%s", f->d.fd,
					proto_name(k.family, k.protocol), a, port,
					k.protocol == IPPROTO_TCP ? fd_tcp_port_holder(port) : "");
			else if (errno == EADDRINUSE)
				err_set("fd %d: unix socket %s is in use", f->d.fd, a);
			else
				err_sys("fd %d: cannot bind its %s socket to %s", f->d.fd,
					proto_name(k.family, k.protocol), a);
			goto fail;
		}
		if (path && k.mode && chmod(path, k.mode)) {
			err_sys("fd %d: cannot give the unix socket %s mode %o", f->d.fd, a,
				k.mode);
			goto fail;
		}
		/* Its owner, where we may give it (as root); otherwise it
		 * is ours, who restore. */
		if (path && k.mode && geteuid() == 0 && lchown(path, k.uid, k.gid) &&
		    errno != EPERM && errno != EINVAL) {
			err_sys("fd %d: cannot give the unix socket %s owner %u:%u", f->d.fd, a,
				k.uid, k.gid);
			goto fail;
		}
		if ((k.opts & IMG_SOCK_MOVED) && path && move_file(f, &k, path))
			goto fail;
	}
	if (k.state == IMG_SOCK_LISTEN && listen(s, k.backlog)) {
		err_sys("fd %d: cannot listen on %s", f->d.fd, a);
		goto fail;
	}
	set_opt(s, SOL_SOCKET, SO_REUSEADDR, !!(k.opts & IMG_SOCKOPT_REUSEADDR));
	if (k.type == SOCK_DGRAM &&
	    fd_dgram_made(f, f->extra + sizeof(k) + k.addr_len,
			  f->d.extra_len - sizeof(k) - k.addr_len, s, pipes))
		goto fail;
	/* The connections it had accepted, and those waiting, are made
	 * through it (unixpair.c). */
	if (k.state == IMG_SOCK_LISTEN && k.family == AF_UNIX &&
	    fd_unix_listening(pipes, s, &sa, k.addr_len))
		goto fail;
	if (f->d.flags & O_NONBLOCK)
		fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
	return s;
fail:
	close(s);
	return -1;
}

static void show_sock(FILE *out, const struct fd_entry *f, int json)
{
	struct img_sock k;
	const char *fam, *st;
	const unsigned char *q;
	size_t qlen;
	char a[160];

	memcpy(&k, f->extra, sizeof(k));
	q = f->extra + sizeof(k) + k.addr_len;
	qlen = f->d.extra_len - sizeof(k) - k.addr_len;
	fam = k.family == AF_UNIX ? "unix" : k.family == AF_INET ? "inet" : "inet6";
	st = k.state == IMG_SOCK_LISTEN	 ? "listening"
	     : k.type == SOCK_DGRAM && fd_dgram_peer(q, qlen) ? "connected"
	     : k.state == IMG_SOCK_BOUND ? "bound"
					 : "unbound";
	addr_text(f->extra + sizeof(k), k.addr_len, a, sizeof(a));
	if (json) {
		fprintf(out,
			",\"family\":\"%s\",\"type\":\"%s\",\"protocol\":\"%s\",\"state\":\"%s\"",
			fam, type_name(k.type), proto_name(k.family, k.protocol), st);
		if (k.addr_len) {
			fputs(",\"address\":", out);
			json_str(out, a, strlen(a));
		}
	} else {
		fprintf(out, " %s %s %s %s", fam, type_name(k.type), st, k.addr_len ? a : "-");
	}
	if (k.state == IMG_SOCK_LISTEN)
		fd_put_num(out, json, "backlog", k.backlog);
	if (k.type == SOCK_DGRAM)
		fd_dgram_show(out, q, qlen, json);
	if (k.opts & IMG_SOCK_MOVED) {
		if (json) {
			fputs(",\"file\":", out);
			json_str(out, (const char *)q, qlen);
		} else {
			fprintf(out, " file %.*s", (int)qlen, (const char *)q);
		}
	}
	if (k.mode) {
		fprintf(out, json ? ",\"mode\":\"%04o\"" : " mode %04o", k.mode);
		fd_put_num(out, json, "uid", k.uid);
		fd_put_num(out, json, "gid", k.gid);
	}
}

_Static_assert(sizeof(struct img_sock) == 40, "img_sock layout");

const struct fd_ops fd_sock_ops = {
    .name = "socket",
    .capture = capture_sock,
    .check = check_sock,
    .make = make_sock,
    .show = show_sock,
};
