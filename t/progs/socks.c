/* socks: a process holding sockets joined to no peer, as an idle server
 * does, checked after a restore: each listening socket accepts a new
 * connection and carries a message both ways, each bound datagram socket
 * receives one, and each keeps its fd flags and options.
 *
 * usage: socks KIND DIR
 *   unix     fd 3 a stream socket listening on DIR/s1 (mode 0640,
 *            non-blocking, SO_PASSCRED, SO_RCVBUF 50000, backlog 7);
 *            fd 4 a seqpacket one listening on an abstract name
 *            (close-on-exec); fd 5 a datagram socket bound to DIR/d1
 *            (owned by 65534:65534 when run as root);
 *            fd 6 an unbound stream socket
 *   inet     fd 3 TCP listening on 127.0.0.1 (SO_REUSEADDR, TCP_NODELAY,
 *            SO_KEEPALIVE, SO_SNDBUF 70000, backlog 5, non-blocking);
 *            fd 4 TCP listening on ::1 (IPV6_V6ONLY, SO_REUSEPORT); fd 5
 *            UDP bound to 127.0.0.1; fd 6 UDP on ::1; fd 7 an unbound TCP
 *            socket; the ports are printed after "ready PID"
 *   prefork  fd 3 TCP listening on 127.0.0.1, fd 4 a unix stream socket
 *            listening on DIR/s1, both shared with a child (fork): the
 *            child checks that they are still shared (kcmp) and accepts a
 *            connection on fd 4, the parent on fd 3
 *   busy     fd 3 TCP listening on 127.0.0.1 (its port printed)
 *   timewait  fd 3 TCP listening on 127.0.0.1 (no SO_REUSEADDR), having
 *            accepted a connection of its own and closed it first: its
 *            end lies in TIME-WAIT on fd 3's port for a minute (its port
 *            printed)
 *   finwait  fd 3 TCP listening on 127.0.0.1 (no SO_REUSEADDR); its port
 *            printed, it accepts one connection (the test's), and closes
 *            it first: with the peer still open, its end lies on fd 3's
 *            port in FIN-WAIT-2, owned by no process, for a minute
 *   backlog  fd 3 a unix socket listening on DIR/s1 with a connection
 *            nobody accepted, from a client of its own
 *   tcpbacklog  the same on TCP: fd 3 listening on 127.0.0.1, fd 4 its
 *            client; after the go fd 3 accepts it, joined to fd 4
 * Prints "ready PID [PORT...]", waits for DIR/go, checks, prints
 * "socks KIND: ok" and exits 0 only if everything is intact. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "socks"
#include "progs.h"

static int sock_at(int want, int family, int type)
{
	return fd_at(want, socket(family, type, 0), "socket");
}

static const char *dir;
static char abstract[64];

static socklen_t unix_addr(struct sockaddr_un *a, const char *name, int abs)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (abs) {
		memcpy(a->sun_path + 1, name, strlen(name));
		return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name);
	}
	snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", dir, name);
	return sizeof(*a);
}

static void setopt(int s, int level, int opt, int v)
{
	if (setsockopt(s, level, opt, &v, sizeof(v)))
		die("setsockopt");
}

static int getopt_(int s, int level, int opt)
{
	int v = -1;
	socklen_t sl = sizeof(v);

	if (getsockopt(s, level, opt, &v, &sl))
		fail("fd %d: getsockopt %d: %s", s, opt, strerror(errno));
	return v;
}

static void want_opt(int s, int level, int opt, int v, const char *what)
{
	int g = getopt_(s, level, opt);

	if (g != v)
		fail("fd %d: %s is %d, not %d", s, what, g, v);
}

static void want_flags(int fd, int nonblock, int cloexec)
{
	int fl = fcntl(fd, F_GETFL), fdf = fcntl(fd, F_GETFD);

	if (!!(fl & O_NONBLOCK) != nonblock)
		fail("fd %d: O_NONBLOCK %s", fd, nonblock ? "lost" : "set");
	if (!!(fdf & FD_CLOEXEC) != cloexec)
		fail("fd %d: close-on-exec %s", fd, cloexec ? "lost" : "set");
}

static int port_of(int s)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);

	if (getsockname(s, (void *)&sa, &sl))
		die("getsockname");
	return ntohs(sa.ss_family == AF_INET ? ((struct sockaddr_in *)&sa)->sin_port
					     : ((struct sockaddr_in6 *)&sa)->sin6_port);
}

/* A new connection to listening socket l (whose address it asks),
 * accepted, with a message each way. */
static void try_accept(int l, int type)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	struct pollfd p = {.fd = l, .events = POLLIN};
	char buf[64];
	int c, a;

	if (getsockname(l, (void *)&sa, &sl)) {
		fail("fd %d: getsockname: %s", l, strerror(errno));
		return;
	}
	if ((c = socket(sa.ss_family, type | SOCK_CLOEXEC, 0)) < 0 || connect(c, (void *)&sa, sl)) {
		fail("fd %d: cannot connect to it: %s", l, strerror(errno));
		return;
	}
	if (poll(&p, 1, 10000) != 1 || (a = accept(l, NULL, NULL)) < 0) {
		fail("fd %d: cannot accept: %s", l, strerror(errno));
		close(c);
		return;
	}
	if (send(c, "ping", 4, 0) != 4 || recv(a, buf, sizeof(buf), 0) != 4 ||
	    memcmp(buf, "ping", 4) || send(a, "pong!", 5, 0) != 5 ||
	    recv(c, buf, sizeof(buf), 0) != 5 || memcmp(buf, "pong!", 5))
		fail("fd %d: the accepted connection did not carry its messages", l);
	close(a);
	close(c);
}

/* A datagram sent to bound socket d from a new socket, received. */
static void try_datagram(int d)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	struct pollfd p = {.fd = d, .events = POLLIN};
	char buf[64];
	int c;

	if (getsockname(d, (void *)&sa, &sl)) {
		fail("fd %d: getsockname: %s", d, strerror(errno));
		return;
	}
	if ((c = socket(sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    sendto(c, "datagram", 8, 0, (void *)&sa, sl) != 8) {
		fail("fd %d: cannot send it a datagram: %s", d, strerror(errno));
		return;
	}
	if (poll(&p, 1, 10000) != 1 || recv(d, buf, sizeof(buf), 0) != 8 ||
	    memcmp(buf, "datagram", 8))
		fail("fd %d: did not receive its datagram", d);
	close(c);
}

static void unix_setup(void)
{
	struct sockaddr_un a;
	socklen_t l;
	int s;

	s = sock_at(3, AF_UNIX, SOCK_STREAM);
	setopt(s, SOL_SOCKET, SO_PASSCRED, 1);
	setopt(s, SOL_SOCKET, SO_RCVBUF, 50000);
	l = unix_addr(&a, "s1", 0);
	if (bind(s, (void *)&a, l) || chmod(a.sun_path, 0640) || listen(s, 7))
		die("unix listen");
	fcntl(s, F_SETFL, O_NONBLOCK);
	s = sock_at(4, AF_UNIX, SOCK_SEQPACKET);
	l = unix_addr(&a, abstract, 1);
	if (bind(s, (void *)&a, l) || listen(s, 3))
		die("abstract listen");
	fcntl(s, F_SETFD, FD_CLOEXEC);
	s = sock_at(5, AF_UNIX, SOCK_DGRAM);
	l = unix_addr(&a, "d1", 0);
	if (bind(s, (void *)&a, l))
		die("unix dgram bind");
	if (geteuid() == 0 && chown(a.sun_path, 65534, 65534))
		die("chown");
	sock_at(6, AF_UNIX, SOCK_STREAM);
}

static void unix_check(void)
{
	struct sockaddr_un a;
	socklen_t l = sizeof(a);
	struct stat st;

	want_flags(3, 1, 0);
	want_opt(3, SOL_SOCKET, SO_PASSCRED, 1, "SO_PASSCRED");
	want_opt(3, SOL_SOCKET, SO_RCVBUF, 100000, "SO_RCVBUF");
	want_opt(3, SOL_SOCKET, SO_ACCEPTCONN, 1, "SO_ACCEPTCONN");
	if (stat(unix_addr(&a, "s1", 0) ? a.sun_path : "", &st) || !S_ISSOCK(st.st_mode) ||
	    (st.st_mode & 07777) != 0640)
		fail("%s: not a socket of mode 0640", a.sun_path);
	try_accept(3, SOCK_STREAM);
	want_flags(4, 0, 1);
	want_opt(4, SOL_SOCKET, SO_TYPE, SOCK_SEQPACKET, "SO_TYPE");
	want_opt(4, SOL_SOCKET, SO_PASSCRED, 0, "SO_PASSCRED");
	if (getsockname(4, (void *)&a, &l) ||
	    l != offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abstract) || a.sun_path[0] ||
	    memcmp(a.sun_path + 1, abstract, strlen(abstract)))
		fail("fd 4: not bound to its abstract name");
	try_accept(4, SOCK_SEQPACKET);
	if (stat(unix_addr(&a, "d1", 0) ? a.sun_path : "", &st) || !S_ISSOCK(st.st_mode) ||
	    (geteuid() == 0 && (st.st_uid != 65534 || st.st_gid != 65534)))
		fail("%s: not a socket owned by 65534:65534", a.sun_path);
	want_flags(5, 0, 0);
	want_opt(5, SOL_SOCKET, SO_TYPE, SOCK_DGRAM, "SO_TYPE");
	try_datagram(5);
	want_opt(6, SOL_SOCKET, SO_TYPE, SOCK_STREAM, "SO_TYPE");
	want_opt(6, SOL_SOCKET, SO_ACCEPTCONN, 0, "SO_ACCEPTCONN");
	l = sizeof(a);
	if (getsockname(6, (void *)&a, &l) || l != sizeof(sa_family_t))
		fail("fd 6: bound");
}

static void listen_inet(int s, int family, int backlog)
{
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int r =
	    family == AF_INET ? bind(s, (void *)&a4, sizeof(a4)) : bind(s, (void *)&a6, sizeof(a6));

	if (r || (backlog && listen(s, backlog)))
		die("bind");
}

static void timewait_setup(void)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	char c;
	int k, a;

	listen_inet(sock_at(3, AF_INET, SOCK_STREAM), AF_INET, 4);
	if (getsockname(3, (void *)&sa, &sl) || (k = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    connect(k, (void *)&sa, sl) || (a = accept(3, NULL, NULL)) < 0)
		die("connect");
	/* The end that closes first waits in TIME-WAIT: the accepted one,
	 * on fd 3's port.  The client reads the end, then closes. */
	close(a);
	if (read(k, &c, 1) != 0)
		die("read");
	close(k);
}

static void finwait_setup(void)
{
	int a;

	listen_inet(sock_at(3, AF_INET, SOCK_STREAM), AF_INET, 4);
	printf(" %d\n", port_of(3));
	fflush(stdout);
	if ((a = accept(3, NULL, NULL)) < 0)
		die("accept");
	close(a);
}

static void inet_setup(void)
{
	int s;

	s = sock_at(3, AF_INET, SOCK_STREAM);
	setopt(s, SOL_SOCKET, SO_REUSEADDR, 1);
	setopt(s, IPPROTO_TCP, TCP_NODELAY, 1);
	setopt(s, SOL_SOCKET, SO_KEEPALIVE, 1);
	setopt(s, SOL_SOCKET, SO_SNDBUF, 70000);
	listen_inet(s, AF_INET, 5);
	fcntl(s, F_SETFL, O_NONBLOCK);
	s = sock_at(4, AF_INET6, SOCK_STREAM);
	setopt(s, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	setopt(s, SOL_SOCKET, SO_REUSEPORT, 1);
	listen_inet(s, AF_INET6, 9);
	s = sock_at(5, AF_INET, SOCK_DGRAM);
	listen_inet(s, AF_INET, 0);
	s = sock_at(6, AF_INET6, SOCK_DGRAM);
	listen_inet(s, AF_INET6, 0);
	sock_at(7, AF_INET, SOCK_STREAM);
	printf(" %d %d %d %d", port_of(3), port_of(4), port_of(5), port_of(6));
}

static void inet_check(void)
{
	want_flags(3, 1, 0);
	want_opt(3, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	want_opt(3, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
	want_opt(3, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
	want_opt(3, SOL_SOCKET, SO_SNDBUF, 140000, "SO_SNDBUF");
	want_opt(3, SOL_SOCKET, SO_REUSEPORT, 0, "SO_REUSEPORT");
	try_accept(3, SOCK_STREAM);
	want_flags(4, 0, 0);
	want_opt(4, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
	want_opt(4, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
	want_opt(4, IPPROTO_TCP, TCP_NODELAY, 0, "TCP_NODELAY");
	try_accept(4, SOCK_STREAM);
	try_datagram(5);
	try_datagram(6);
	want_opt(7, SOL_SOCKET, SO_TYPE, SOCK_STREAM, "SO_TYPE");
	want_opt(7, SOL_SOCKET, SO_ACCEPTCONN, 0, "SO_ACCEPTCONN");
	if (port_of(7) != 0)
		fail("fd 7: bound");
}

static void backlog_setup(int family)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	int s = sock_at(3, family, SOCK_STREAM), c;

	if (family == AF_UNIX) {
		sl = unix_addr((void *)&sa, "s1", 0);
		if (bind(s, (void *)&sa, sl) || listen(s, 4))
			die("listen");
	} else {
		listen_inet(s, family, 4);
		if (getsockname(s, (void *)&sa, &sl))
			die("getsockname");
	}
	if ((c = socket(family, SOCK_STREAM, 0)) < 0 || connect(c, (void *)&sa, sl))
		die("connect");
	if (family != AF_UNIX && c != 4) {
		if (dup2(c, 4) != 4)
			die("dup2");
		close(c);
	}
}

/* tcpbacklog: fd 3 gives the connection of fd 4, which waited, and it
 * carries a message each way. */
static void backlog_check(void)
{
	struct sockaddr_storage a, b;
	socklen_t al = sizeof(a), bl = sizeof(b);
	struct pollfd p = {.fd = 3, .events = POLLIN};
	char buf[8];
	int s;

	if (poll(&p, 1, 10000) != 1 || (s = accept(3, (void *)&a, &al)) < 0) {
		fail("fd 3: nothing to accept: %s", strerror(errno));
		return;
	}
	if (getsockname(4, (void *)&b, &bl) || al != bl || memcmp(&a, &b, al))
		fail("fd 3: the connection accepted is not fd 4's");
	if (send(4, "ping", 4, 0) != 4 || recv(s, buf, sizeof(buf), 0) != 4 ||
	    send(s, "pong!", 5, 0) != 5 || recv(4, buf, sizeof(buf), 0) != 5 ||
	    memcmp(buf, "pong!", 5))
		fail("fd 3: the accepted connection did not carry its messages");
	close(s);
}

static pid_t child;

static void prefork_setup(void)
{
	struct sockaddr_un a;
	socklen_t l = unix_addr(&a, "s1", 0);
	int s;

	listen_inet(sock_at(3, AF_INET, SOCK_STREAM), AF_INET, 4);
	s = sock_at(4, AF_UNIX, SOCK_STREAM);
	if (bind(s, (void *)&a, l) || listen(s, 4))
		die("unix listen");
	if ((child = fork()) < 0)
		die("fork");
	if (child == 0) {
		char go[4096];

		snprintf(go, sizeof(go), "%s/go", dir);
		wait_file(go);
		for (int fd = 3; fd <= 4; fd++)
			if (syscall(SYS_kcmp, getppid(), getpid(), 0 /* KCMP_FILE */, fd, fd))
				fail("child: fd %d is no longer its parent's", fd);
		want_opt(4, SOL_SOCKET, SO_ACCEPTCONN, 1, "SO_ACCEPTCONN");
		try_accept(4, SOCK_STREAM);
		_exit(failures ? 1 : 0);
	}
}

static void prefork_check(void)
{
	int st;

	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("child failed (status %#x)", st);
	try_accept(3, SOCK_STREAM);
}

int main(int argc, char **argv)
{
	const char *kind;
	char go[4096];

	if (argc != 3) {
		fprintf(stderr, "usage: socks KIND DIR\n");
		return 2;
	}
	kind = argv[1];
	dir = argv[2];
	snprintf(abstract, sizeof(abstract), "ckpt-socks-%d", (int)getpid());
	for (int fd = 3; fd < 64; fd++)
		close(fd);
	printf("ready %d", (int)getpid());
	if (!strcmp(kind, "unix"))
		unix_setup();
	else if (!strcmp(kind, "inet"))
		inet_setup();
	else if (!strcmp(kind, "prefork"))
		prefork_setup();
	else if (!strcmp(kind, "busy")) {
		listen_inet(sock_at(3, AF_INET, SOCK_STREAM), AF_INET, 4);
		printf(" %d", port_of(3));
	} else if (!strcmp(kind, "timewait")) {
		timewait_setup();
		printf(" %d", port_of(3));
	} else if (!strcmp(kind, "finwait"))
		finwait_setup();
	else if (!strcmp(kind, "backlog"))
		backlog_setup(AF_UNIX);
	else if (!strcmp(kind, "tcpbacklog"))
		backlog_setup(AF_INET);
	else {
		fprintf(stderr, "socks: unknown kind %s\n", kind);
		return 2;
	}
	printf("\n");
	fflush(stdout);
	snprintf(go, sizeof(go), "%s/go", dir);
	wait_file(go);
	if (!strcmp(kind, "unix"))
		unix_check();
	else if (!strcmp(kind, "inet"))
		inet_check();
	else if (!strcmp(kind, "busy") || !strcmp(kind, "timewait") || !strcmp(kind, "finwait"))
		try_accept(3, SOCK_STREAM);
	else if (!strcmp(kind, "prefork"))
		prefork_check();
	else if (!strcmp(kind, "tcpbacklog"))
		backlog_check();
	if (failures)
		return 1;
	printf("socks %s: ok\n", kind);
	return 0;
}
