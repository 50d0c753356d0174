/* peerpair: one end of a TCP connection between two members of a
 * coordinated computation, with bytes in flight both ways.
 *
 *     peerpair server DIR TOTAL    listen on 127.0.0.1 ($PEERPAIR_ADDR if set), port
 *                                  into DIR/port
 *     peerpair client DIR TOTAL    connect to the port DIR/port names (there)
 *     peerpair userver DIR TOTAL   the same over a unix socket, DIR/sock
 *     peerpair uclient DIR TOTAL
 *     peerpair producer DIR TOTAL  write to standard output (a pipe)
 *     peerpair consumer DIR TOTAL  read standard input (that pipe)
 *     peerpair expect ROLE TOTAL   print what ROLE's DIR/ROLE.out must hold
 *
 * Each side sends TOTAL bytes of its own pattern (mix() of its role) in
 * small writes, steadily, and reads the other side's in bursts every
 * 100 ms, so that most of the time bytes wait in the queues both ways.
 * Every byte read is checked against the other side's pattern at its
 * offset: a byte lost, doubled or out of order fails.  Each 256 KiB
 * received, and at the end, it appends a line to DIR/ROLE.out (opened
 * once, so a restart gives the file back as it was at the checkpoint);
 * it exits 0 only if every byte was right.  A producer and a consumer do
 * the same over a pipe, one way: the consumer checks and logs, the
 * producer logs that it is done. */
#define PROG "peerpair"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "progs.h"

#define STEP (256 * 1024)

static unsigned char byte_at(uint64_t seed, uint64_t i)
{
	return (unsigned char)(mix(seed, i / 8) >> (8 * (i % 8)));
}

static void line_for(char *buf, size_t size, const char *role, uint64_t got, uint64_t total)
{
	if (got == total && !strcmp(role, "producer"))
		snprintf(buf, size, "%s: done, %llu bytes written\n", role, (unsigned long long)total);
	else if (got == total)
		snprintf(buf, size, "%s: done, %llu bytes %s, every one in order\n", role,
			 (unsigned long long)total, strcmp(role, "consumer") ? "each way" : "read");
	else
		snprintf(buf, size, "%s: %llu bytes from the other side intact\n", role,
			 (unsigned long long)got);
}

int main(int argc, char **argv)
{
	const char *role, *dir;
	uint64_t total, sent = 0, got = 0, seed_out, seed_in;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int s, out, buf = 64 * 1024;
	double next_read = 0;
	char line[200];

	if (argc != 4) {
		fprintf(stderr, "usage: peerpair server|client|expect DIR|ROLE TOTAL\n");
		return 2;
	}
	total = strtoull(argv[3], NULL, 10);
	if (!strcmp(argv[1], "expect")) {
		for (uint64_t g = STEP; g < total && strcmp(argv[2], "producer"); g += STEP) {
			line_for(line, sizeof(line), argv[2], g, total);
			fputs(line, stdout);
		}
		line_for(line, sizeof(line), argv[2], total, total);
		fputs(line, stdout);
		return 0;
	}
	role = argv[1];
	dir = argv[2];
	if (getenv("PEERPAIR_ADDR") && inet_pton(AF_INET, getenv("PEERPAIR_ADDR"), &a.sin_addr) != 1)
		die("PEERPAIR_ADDR");
	seed_out = !strcmp(role, "server") || !strcmp(role, "userver") || !strcmp(role, "producer")
			   ? 1
			   : 2;
	seed_in = 3 - seed_out;
	if (!strcmp(role, "producer")) {
		s = 1;
		got = total; /* it reads nothing */
	} else if (!strcmp(role, "consumer")) {
		s = 0;
		sent = total; /* it writes nothing */
		if (fcntl(0, F_SETFL, O_NONBLOCK))
			die("fcntl");
	} else if (role[0] == 'u') {
		struct sockaddr_un u = {.sun_family = AF_UNIX};
		snprintf(u.sun_path, sizeof(u.sun_path), "%s", in_dir("sock"));
		if (!strcmp(role, "userver")) {
			int l = socket(AF_UNIX, SOCK_STREAM, 0);
			if (l < 0 || bind(l, (struct sockaddr *)&u, sizeof(u)) || listen(l, 1))
				die("listen");
			s = accept(l, NULL, NULL);
			close(l);
		} else {
			wait_file(in_dir("sock"));
			s = socket(AF_UNIX, SOCK_STREAM, 0);
			if (s < 0 || connect(s, (struct sockaddr *)&u, sizeof(u)))
				die("connect");
		}
	} else if (!strcmp(role, "server")) {
		int l = socket(AF_INET, SOCK_STREAM, 0);
		FILE *f;
		if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
		    getsockname(l, (struct sockaddr *)&a, &al))
			die("listen");
		f = fopen(in_dir("port.tmp"), "w");
		if (!f || fprintf(f, "%d\n", ntohs(a.sin_port)) < 0 || fclose(f) ||
		    rename(in_dir("port.tmp"), in_dir("port")))
			die("port file");
		s = accept(l, NULL, NULL);
		close(l);
	} else {
		FILE *f;
		int port = 0;
		wait_file(in_dir("port"));
		f = fopen(in_dir("port"), "r");
		if (!f || fscanf(f, "%d", &port) != 1)
			die("port file");
		fclose(f);
		a.sin_port = htons((uint16_t)port);
		s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)))
			die("connect");
	}
	if (s < 0)
		die("accept");
	/* Bounded queues: at most about 256 KiB in flight each way. */
	if (s > 1) {
		setsockopt(s, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
		setsockopt(s, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	}
	snprintf(line, sizeof(line), "%s.out", role);
	out = open(in_dir(line), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		die("output file");
	while (sent < total || got < total) {
		unsigned char b[16384];
		if (sent < total) {
			size_t n = 1024 + (size_t)(mix(seed_out + 10, sent) % 1024);
			ssize_t k;
			if (n > total - sent)
				n = (size_t)(total - sent);
			for (size_t i = 0; i < n; i++)
				b[i] = byte_at(seed_out, sent + i);
			k = s == 1 ? write(s, b, n) : send(s, b, n, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (k < 0 && errno != EAGAIN && errno != EINTR)
				die("send");
			sent += k > 0 ? (uint64_t)k : 0;
		}
		if (got < total && mono() >= next_read) {
			ssize_t k;
			while ((k = s == 0 ? read(s, b, sizeof(b)) : recv(s, b, sizeof(b), MSG_DONTWAIT)) >
			       0) {
				for (ssize_t i = 0; i < k; i++)
					if (b[i] != byte_at(seed_in, got + (uint64_t)i)) {
						fail("byte %llu from the other side is %u, not %u",
						     (unsigned long long)(got + (uint64_t)i), b[i],
						     byte_at(seed_in, got + (uint64_t)i));
						return 1;
					}
				for (uint64_t g = (got / STEP + 1) * STEP; g <= got + (uint64_t)k; g += STEP)
					if (g < total) {
						line_for(line, sizeof(line), role, g, total);
						if (write(out, line, strlen(line)) < 0)
							die("write");
					}
				got += (uint64_t)k;
				if (got > total) {
					fail("%llu bytes came, more than %llu", (unsigned long long)got,
					     (unsigned long long)total);
					return 1;
				}
			}
			if (k == 0 && got < total) {
				fail("the other side closed after %llu bytes", (unsigned long long)got);
				return 1;
			}
			if (k < 0 && errno != EAGAIN && errno != EINTR)
				die("recv");
			next_read = mono() + 0.1;
		}
		usleep(4000);
	}
	line_for(line, sizeof(line), role, total, total);
	if (write(out, line, strlen(line)) < 0 || close(out))
		die("write");
	if (s == 1)
		close(1);
	else
		printf("%s: ok\n", role);
	return failures ? 1 : 0;
}
