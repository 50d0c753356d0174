/* netlink.c: netlink sockets a program holds to listen to the kernel or ask it (route, uevent,
 * generic, sock_diag): made again with their protocol, port id, multicast groups and options.
 * Events queued at the checkpoint are dropped (the listener gets new ones); an answer to a
 * request still queued is refused.  Sockets of the other families are refused here, by name. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

#define NL_WORDS 1024 /* 32768 groups */

static const char *family_name(int family)
{
	switch (family) {
	case AF_PACKET:
		return "packet";
	case AF_ALG:
		return "AF_ALG (crypto)";
	case AF_VSOCK:
		return "vsock";
	case AF_BLUETOOTH:
		return "bluetooth";
	case AF_CAN:
		return "CAN";
	case AF_XDP:
		return "XDP";
	case AF_TIPC:
		return "TIPC";
	case AF_KEY:
		return "PF_KEY";
	case AF_RDS:
		return "RDS";
	default:
		return NULL;
	}
}

void fd_sock_refuse_family(const struct fd_source *src, int fd, int family)
{
	const char *n = family_name(family);

	if (n)
		err_set("pid %d: fd %d is a %s socket (%s); not supported", src->pid, fd, n,
			src->link);
	else
		err_set("pid %d: fd %d is a socket of family %d (%s); not supported", src->pid, fd,
			family, src->link);
}

/* The protocols whose sockets hold no state in the kernel beyond what
 * getsockname and getsockopt tell. */
static const char *proto_name(uint32_t p)
{
	switch (p) {
	case NETLINK_ROUTE:
		return "route";
	case NETLINK_SOCK_DIAG:
		return "sock_diag";
	case NETLINK_KOBJECT_UEVENT:
		return "uevent";
	case NETLINK_GENERIC:
		return "generic";
	default:
		return NULL;
	}
}

static const struct {
	int opt;
	uint32_t bit;
} nlopts[] = {
    {NETLINK_PKTINFO, IMG_NLOPT_PKTINFO},
    {NETLINK_NO_ENOBUFS, IMG_NLOPT_NO_ENOBUFS},
    {NETLINK_BROADCAST_ERROR, IMG_NLOPT_BROADCAST_ERROR},
    {NETLINK_CAP_ACK, IMG_NLOPT_CAP_ACK},
    {NETLINK_EXT_ACK, IMG_NLOPT_EXT_ACK},
    {NETLINK_GET_STRICT_CHK, IMG_NLOPT_STRICT_CHK},
};

/* ---- capturing ------------------------------------------------------ */

/* What is queued: nothing, events (dropped: 1), or an answer to a request
 * (sent to the socket alone, not to a group: refused).  The first message
 * tells: netlink sockets have no peek offset to walk the queue with. */
static int nl_queue(pid_t pid, int fd, int s, uint32_t protocol, struct img_netlink *k)
{
	struct sockaddr_nl from = {0};
	char b[1];
	struct iovec iov = {b, sizeof(b)};
	struct msghdr mh = {
	    .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1};

	if (recvmsg(s, &mh, MSG_PEEK | MSG_DONTWAIT) < 0)
		return 0;
	if (!from.nl_groups) {
		err_set("pid %d: fd %d is a netlink socket (%s) with the answer to a request "
			"queued; not supported",
			pid, fd, proto_name(protocol));
		return -1;
	}
	k->dropped = 1;
	return 0;
}

static int capture_netlink(const struct fd_source *src, struct fd_entry *f)
{
	struct img_netlink k = {0};
	struct sockaddr_nl sa = {0}, peer = {0};
	uint32_t groups[NL_WORDS] = {0};
	socklen_t sl = sizeof(int), gl = sizeof(groups);
	int s, fd = f->d.fd, protocol = -1, type = -1, v, rc = -1;

	if ((s = fd_getfd(src->pid, fd)) < 0)
		return -1;
	if (getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &protocol, &sl) ||
	    getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &sl)) {
		err_sys("pid %d: fd %d (%s): cannot ask the netlink socket its protocol", src->pid,
			fd, src->link);
		goto out;
	}
	if (!proto_name(protocol)) {
		err_set("pid %d: fd %d is a netlink socket of protocol %d (%s), whose kernel state "
			"is not kept; not supported",
			src->pid, fd, protocol, src->link);
		goto out;
	}
	k.protocol = protocol;
	k.type = type;
	sl = sizeof(sa);
	if (getsockname(s, (void *)&sa, &sl) ||
	    getsockopt(s, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, groups, &gl)) {
		err_sys("pid %d: fd %d (%s): cannot ask the netlink socket its port and groups",
			src->pid, fd, src->link);
		goto out;
	}
	k.portid = sa.nl_pid;
	sl = sizeof(peer);
	if (!getpeername(s, (void *)&peer, &sl)) {
		k.dst_portid = peer.nl_pid;
		k.dst_group = peer.nl_groups;
	}
	/* gl is what the kernel has: more than 32768 groups are not kept. */
	k.nwords = gl / 4 < NL_WORDS ? gl / 4 : NL_WORDS;
	while (k.nwords && !groups[k.nwords - 1])
		k.nwords--;
	for (size_t i = 0; i < sizeof(nlopts) / sizeof(nlopts[0]); i++) {
		sl = sizeof(v);
		v = 0;
		if (!getsockopt(s, SOL_NETLINK, nlopts[i].opt, &v, &sl) && v)
			k.opts |= nlopts[i].bit;
	}
	sl = sizeof(v);
	if (!getsockopt(s, SOL_SOCKET, SO_SNDBUF, &v, &sl))
		k.sndbuf = fd_sock_buf_set(AF_NETLINK, type, protocol, SO_SNDBUF, v);
	sl = sizeof(v);
	if (!getsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, &sl))
		k.rcvbuf = fd_sock_buf_set(AF_NETLINK, type, protocol, SO_RCVBUF, v);
	if (nl_queue(src->pid, fd, s, protocol, &k))
		goto out;
	rc = fd_set_extra(f, &k, sizeof(k), groups, 4 * k.nwords);
out:
	close(s);
	return rc;
}

static int check_netlink(const unsigned char *x, uint32_t n)
{
	struct img_netlink k;

	if (n < sizeof(k))
		return -1;
	memcpy(&k, x, sizeof(k));
	if (!proto_name(k.protocol) || (k.type != SOCK_RAW && k.type != SOCK_DGRAM) ||
	    (k.opts & ~IMG_NLOPT_ALL) || k.dropped > 1 || k.nwords > NL_WORDS ||
	    n != sizeof(k) + 4ull * k.nwords)
		return -1;
	return 0;
}

/* ---- making it again ------------------------------------------------ */

/* Its port id where it is free (a pid's, taken by a process since, is
 * not): else the kernel gives one, and a line on stderr says so. */
static int nl_bind(const struct fd_entry *f, int s, uint32_t portid)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_pid = portid};

	if (!portid || !bind(s, (void *)&sa, sizeof(sa)))
		return 0;
	if (errno == EADDRINUSE) {
		sa.nl_pid = 0;
		if (!bind(s, (void *)&sa, sizeof(sa))) {
			socklen_t sl = sizeof(sa);
			getsockname(s, (void *)&sa, &sl);
			warnx("fd %d: netlink port id %u is taken: the socket has port id %u",
			      f->d.fd, portid, sa.nl_pid);
			return 0;
		}
	}
	err_sys("fd %d: cannot bind its netlink socket to port id %u", f->d.fd, portid);
	return -1;
}

static int make_netlink(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_netlink k;
	uint32_t w;
	int s;

	(void)pipes;
	memcpy(&k, f->extra, sizeof(k));
	if ((s = socket(AF_NETLINK, k.type | SOCK_CLOEXEC, k.protocol)) < 0) {
		err_sys("fd %d: cannot make a netlink socket of protocol %s", f->d.fd,
			proto_name(k.protocol));
		return -1;
	}
	for (size_t i = 0; i < sizeof(nlopts) / sizeof(nlopts[0]); i++)
		if (k.opts & nlopts[i].bit)
			setsockopt(s, SOL_NETLINK, nlopts[i].opt, &(int){1}, sizeof(int));
	/* getsockopt gave twice what was set; a listener's large receive
	 * buffer is often forced (CAP_NET_ADMIN), else it is what we may. */
	if (k.sndbuf)
		setsockopt(s, SOL_SOCKET, SO_SNDBUF, &(int){k.sndbuf / 2}, sizeof(int));
	if (k.rcvbuf &&
	    setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &(int){k.rcvbuf / 2}, sizeof(int)))
		setsockopt(s, SOL_SOCKET, SO_RCVBUF, &(int){k.rcvbuf / 2}, sizeof(int));
	if (nl_bind(f, s, k.portid))
		goto fail;
	for (uint32_t i = 0; i < k.nwords; i++) {
		memcpy(&w, f->extra + sizeof(k) + 4 * i, 4);
		for (int b = 0; b < 32; b++) {
			int g = 32 * i + b + 1;
			if ((w & (1u << b)) &&
			    setsockopt(s, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof(g))) {
				err_sys("fd %d: cannot join its netlink socket to group %d",
					f->d.fd, g);
				goto fail;
			}
		}
	}
	if (k.dst_portid || k.dst_group) {
		struct sockaddr_nl d = {
		    .nl_family = AF_NETLINK, .nl_pid = k.dst_portid, .nl_groups = k.dst_group};
		if (connect(s, (void *)&d, sizeof(d))) {
			err_sys("fd %d: cannot connect its netlink socket to port %u group %u",
				f->d.fd, k.dst_portid, k.dst_group);
			goto fail;
		}
	}
	if (f->d.flags & O_NONBLOCK)
		fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
	return s;
fail:
	close(s);
	return -1;
}

/* ---- showing -------------------------------------------------------- */

static void show_netlink(FILE *out, const struct fd_entry *f, int json)
{
	struct img_netlink k;
	const char *sep = "";
	uint32_t w;

	memcpy(&k, f->extra, sizeof(k));
	if (json)
		fprintf(out, ",\"family\":\"netlink\",\"protocol\":\"%s\"", proto_name(k.protocol));
	else
		fprintf(out, " netlink %s", proto_name(k.protocol));
	fd_put_num(out, json, "port", k.portid);
	fputs(json ? ",\"groups\":[" : " groups ", out);
	for (uint32_t i = 0; i < k.nwords; i++) {
		memcpy(&w, f->extra + sizeof(k) + 4 * i, 4);
		for (int b = 0; b < 32; b++)
			if (w & (1u << b)) {
				fprintf(out, "%s%u", sep, 32 * i + b + 1);
				sep = ",";
			}
	}
	fputs(json ? "]" : *sep ? "" : "-", out);
	fd_put_num(out, json, "dropped", k.dropped);
}

_Static_assert(sizeof(struct img_netlink) == 40, "img_netlink layout");

const struct fd_ops fd_netlink_ops = {
    .name = "netlink",
    .capture = capture_netlink,
    .check = check_netlink,
    .make = make_netlink,
    .show = show_netlink,
};
