/* netns.c: what a restore into a new net namespace that has lo alone (ckpt-remap --net-ns)
 * cannot make again, refused before anything is made: an IPv4 or IPv6 socket bound to an address
 * other than loopback or the wildcard (bind would fail there), a UDP socket connected to one
 * (unreachable), a TCP connection with either end on one, and a connection kept with its peer
 * outside (--tcp-established: the peer is in another namespace).  A connection restored reset
 * (--tcp-close) is made on loopback, and datagrams queued from an address the namespace lacks
 * come from an unbound sender (sockq.c says so): both are made. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

/* Whether addr (IPv4: 4 bytes; IPv6: 16) of family is loopback (127/8,
 * ::1, ::ffff:127/104) or, where any is allowed, the wildcard. */
static int local(int family, const uint8_t *addr, int any)
{
	static const uint8_t zero[16], lo6[16] = {[15] = 1},
				       mapped[12] = {[10] = 0xff, [11] = 0xff};

	if (family == AF_INET)
		return addr[0] == 127 || (any && !memcmp(addr, zero, 4));
	if (!memcmp(addr, lo6, 16) || (any && !memcmp(addr, zero, 16)))
		return 1;
	return !memcmp(addr, mapped, 12) && (addr[12] == 127 || (any && !memcmp(addr + 12, zero, 4)));
}

/* A sockaddr_in or sockaddr_in6 of len bytes: its address's bytes. */
static const uint8_t *sa_addr(const unsigned char *sa, uint32_t len, int *family)
{
	sa_family_t fam;

	if (len < sizeof(fam))
		return NULL;
	memcpy(&fam, sa, sizeof(fam));
	*family = fam;
	if (fam == AF_INET && len >= sizeof(struct sockaddr_in))
		return sa + offsetof(struct sockaddr_in, sin_addr);
	if (fam == AF_INET6 && len >= sizeof(struct sockaddr_in6))
		return sa + offsetof(struct sockaddr_in6, sin6_addr);
	return NULL;
}

static int check_sock(pid_t pid, const struct fd_entry *f)
{
	struct img_sock k;
	struct img_sock_dgram h;
	const unsigned char *x = f->extra;
	const uint8_t *a;
	char t[160];
	int fam;

	memcpy(&k, x, sizeof(k));
	if (k.family != AF_INET && k.family != AF_INET6)
		return 0;
	if (k.addr_len && (a = sa_addr(x + sizeof(k), k.addr_len, &fam)) && !local(fam, a, 1)) {
		err_set("pid %d: fd %d: %s socket bound to %s, an address a new net namespace "
			"(--net-ns) does not have; not supported",
			pid, f->d.fd, k.protocol == IPPROTO_UDP ? "UDP" : "TCP",
			fd_sock_addr_text(x + sizeof(k), k.addr_len, t, sizeof(t)));
		return -1;
	}
	if (k.type != SOCK_DGRAM || f->d.extra_len < sizeof(k) + k.addr_len + sizeof(h))
		return 0;
	x += sizeof(k) + k.addr_len;
	memcpy(&h, x, sizeof(h));
	if (h.peer_len && (a = sa_addr(x + sizeof(h), h.peer_len, &fam)) && !local(fam, a, 0)) {
		err_set("pid %d: fd %d: UDP socket connected to %s, which a new net namespace "
			"(--net-ns) cannot reach; not supported",
			pid, f->d.fd, fd_sock_addr_text(x + sizeof(h), h.peer_len, t, sizeof(t)));
		return -1;
	}
	return 0;
}

/* ADDR:PORT, [ADDR]:PORT for IPv6. */
static void ep(int family, const uint8_t *addr, uint16_t port, char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(family, addr, a, sizeof(a));
	snprintf(buf, size, family == AF_INET ? "%s:%u" : "[%s]:%u", a, port);
}

static int check_tcp(pid_t pid, const struct fd_entry *f)
{
	struct img_tcp c;
	char l[INET6_ADDRSTRLEN + 8], p[INET6_ADDRSTRLEN + 8];
	int outside;

	memcpy(&c, f->extra, sizeof(c));
	outside = (c.flags & IMG_TCP_REPAIR) && !(c.flags & IMG_TCP_PAIRED);
	if ((c.flags & IMG_TCP_RESET) ||
	    (!outside && local(c.family, c.laddr, 0) && local(c.family, c.paddr, 0)))
		return 0;
	ep(c.family, c.laddr, c.lport, l, sizeof(l));
	ep(c.family, c.paddr, c.pport, p, sizeof(p));
	if (outside)
		err_set("pid %d: fd %d: TCP connection from %s to %s, a peer outside the "
			"tree, which a new net namespace (--net-ns) cannot reach; not supported",
			pid, f->d.fd, l, p);
	else
		err_set("pid %d: fd %d: TCP connection from %s to %s, an address a new net "
			"namespace (--net-ns) does not have; not supported",
			pid, f->d.fd, l, p);
	return -1;
}

int fd_net_ns_check(pid_t pid, const struct fd_entry *f)
{
	if (f->d.kind == IMG_FD_SOCK)
		return check_sock(pid, f);
	if (f->d.kind == IMG_FD_TCP)
		return check_tcp(pid, f);
	return 0;
}
