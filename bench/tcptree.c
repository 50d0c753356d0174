/* tcptree: the workload of make bench's TCP row: a tree of N client/server pairs connected over
 * TCP on loopback, each end with 64 KiB written that its peer has not read; or (nosock) the
 * same processes without connections.
 *
 * usage: tcptree N DIR [nosock]
 * The root makes each connection (connect, accept), forks its server and its client, and keeps
 * neither end; each writes 64 KiB of its pattern and says so on a pipe.  The root prints "ready
 * PID" once all have; after DIR/go each reads its peer's 64 KiB and checks every byte, and the
 * root exits 0 only if every process did. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "tcptree"
#include "progs.h"

#define FLIGHT (64 << 10)

static const char *dir;

static void wait_go(void)
{
	char go[4096];

	snprintf(go, sizeof(go), "%s/go", dir);
	wait_file(go);
}

/* One end: write FLIGHT bytes of stream tx, say so on fd ok, wait for the
 * go, read FLIGHT bytes of stream rx. */
static _Noreturn void end(int s, int ok, uint64_t tx, uint64_t rx)
{
	static unsigned char buf[FLIGHT];
	size_t n = 0;

	for (size_t i = 0; i < FLIGHT; i++)
		buf[i] = (unsigned char)mix(tx, i);
	while (n < FLIGHT) {
		ssize_t w = send(s, buf + n, FLIGHT - n, MSG_NOSIGNAL);
		if (w < 0 && errno != EINTR)
			die("send");
		n += w > 0 ? w : 0;
	}
	if (write(ok, "x", 1) != 1)
		die("write");
	close(ok);
	wait_go();
	for (n = 0; n < FLIGHT;) {
		ssize_t r = recv(s, buf, sizeof(buf), 0);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			fail("fd %d: end of stream after %zu bytes", s, n);
			break;
		}
		for (ssize_t k = 0; k < r; k++, n++)
			if (buf[k] != (unsigned char)mix(rx, n)) {
				fail("byte %zu differs", n);
				_exit(1);
			}
	}
	_exit(failures ? 1 : 0);
}

static _Noreturn void idle(int ok)
{
	if (write(ok, "x", 1) != 1)
		die("write");
	close(ok);
	wait_go();
	_exit(0);
}

int main(int argc, char **argv)
{
	int n, nosock, p[2], l = -1, st, ok = 1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	char c;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: tcptree N DIR [nosock]\n");
		return 2;
	}
	n = atoi(argv[1]);
	dir = argv[2];
	nosock = argc == 4;
	if (pipe(p))
		die("pipe");
	if (!nosock &&
	    ((l = socket(AF_INET, SOCK_STREAM, 0)) < 0 || bind(l, (void *)&sa, sizeof(sa)) ||
	     listen(l, 16) || getsockname(l, (void *)&sa, &sl)))
		die("listen");
	for (int i = 0; i < n; i++) {
		int cs = -1, as = -1;

		if (!nosock &&
		    ((cs = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
		     connect(cs, (void *)&sa, sizeof(sa)) || (as = accept(l, NULL, NULL)) < 0))
			die("connect");
		for (int side = 0; side < 2; side++) {
			pid_t k = fork();
			if (k < 0)
				die("fork");
			if (k == 0) {
				close(p[0]);
				if (l >= 0)
					close(l);
				if (nosock)
					idle(p[1]);
				close(side ? as : cs);
				end(side ? cs : as, p[1], 2 * i + side, 2 * i + !side);
			}
		}
		if (!nosock)
			close(cs), close(as);
	}
	if (l >= 0)
		close(l);
	close(p[1]);
	for (int i = 0; i < 2 * n; i++)
		if (read(p[0], &c, 1) != 1)
			die("read");
	close(p[0]);
	printf("ready %d\n", getpid());
	fflush(stdout);
	for (int i = 0; i < 2 * n; i++)
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			ok = 0;
	if (!ok) {
		fprintf(stderr, "tcptree: a process failed\n");
		return 1;
	}
	printf("tcptree: ok\n");
	return 0;
}
