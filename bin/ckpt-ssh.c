/* ckpt-ssh: the ssh of a member of a coordinated computation.
 *
 * ckpt-inject puts it first in a member's PATH as `ssh`.  `ssh [option...]
 * HOST CMD...` then runs, on HOST, `ckpt-inject --coord-host C --coord-port
 * P --secret-file - -- ckpt-ssh --serve -- sh -c CMD`: CMD joins the same
 * computation there.  The real ssh only launches it: it is started
 * detached (a grandchild in a session of its own, nobody's child here), so
 * that it is no part of the member's tree and is never dumped; the
 * secret and a token go to it on its standard input, which ssh encrypts.
 * The remote ckpt-ssh connects back over TCP to this one (to the address
 * sshd names in $SSH_CLIENT), proves the token, and the two relay: this
 * side's stdin to CMD's stdin, CMD's stdout and stderr back in frames
 * ("o" or "e", a 4-byte length, the bytes), then its exit status ("x").
 * That connection is between two members, so it is checkpointed with
 * them.  Anything else (no command, -N, -W, -f, -s, -M, -O, no
 * coordinator reachable from elsewhere) is the real ssh's, unchanged. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coord/coord.h"
#include "base/base.h"

#define USAGE                                                                                      \
	"usage: ckpt-ssh ([ssh-option...] host command [arg...] | --serve -- command [arg...])\n"

/* ssh's status for its own failures. */
#define FAIL 255

/* OpenSSH's options that take an argument, and those the relay does not
 * do (they go to the real ssh as they are). */
static const char arg_opts[] = "BbcDEeFIiJLlmOoPpQRSWw";
static const char plain_opts[] = "NWfsMOG";

static void usage(void)
{
	fputs(USAGE, stderr);
	exit(FAIL);
}

/* prog found in PATH, but never this program (the shim's directory is
 * first there): malloc'd, or NULL. */
static char *in_path(const char *prog)
{
	char self[PATH_MAX], cand[PATH_MAX], real[PATH_MAX], *path, *dir, *save;

	if (strchr(prog, '/'))
		return strdup(prog);
	if (!realpath("/proc/self/exe", self))
		self[0] = 0;
	path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	for (dir = strtok_r(path, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(cand, sizeof(cand), "%s/%s", *dir ? dir : ".", prog);
		if (access(cand, X_OK) || !realpath(cand, real) || !strcmp(real, self))
			continue;
		return strdup(cand);
	}
	return NULL;
}

/* The real ssh: $CKPT_SSH's words, or ssh; found in PATH after this
 * program.  A NULL-ended argv with room for n more words. */
static char **real_ssh(int n)
{
	char **v = calloc(64 + n, sizeof(*v)), *env = getenv("CKPT_SSH"), *save;
	int k = 0;

	if (!v)
		die(FAIL, "out of memory");
	env = strdup(env && *env ? env : "ssh");
	for (char *w = strtok_r(env, " \t", &save); w && k < 63; w = strtok_r(NULL, " \t", &save))
		v[k++] = w;
	if (!k)
		v[k++] = "ssh";
	if (!(v[0] = in_path(v[0])))
		die(FAIL, "no %s in PATH but this program", v[0] ? v[0] : "ssh");
	/* What it runs must not be us again, however it was named. */
	setenv("CKPT_SSH_REAL", "1", 1);
	return v;
}

/* Run the real ssh with our arguments, as if we were not here. */
static noreturn void pass_through(char **argv)
{
	int argc = 0;
	char **v;

	while (argv[argc])
		argc++;
	v = real_ssh(argc);
	int k = 0;
	while (v[k])
		k++;
	for (int i = 1; i < argc; i++)
		v[k++] = argv[i];
	execvp(v[0], v);
	die(FAIL, "cannot run %s: %s", v[0], strerror(errno));
}

/* Append s to b as one single-quoted word for any sh, and a space. */
static void shq(char *b, size_t size, const char *s)
{
	size_t n = strlen(b);

	if (n < size - 1)
		b[n++] = '\'';
	for (; *s && n < size - 5; s++) {
		if (*s == '\'') {
			memcpy(b + n, "'\\''", 4);
			n += 4;
		} else {
			b[n++] = *s;
		}
	}
	if (n < size - 2) {
		b[n++] = '\'';
		b[n++] = ' ';
	}
	b[n] = 0;
}

/* Write one frame: type, length (4 bytes, big-endian), data. */
static int frame(int fd, char type, const void *data, uint32_t len)
{
	unsigned char h[5] = {(unsigned char)type, len >> 24, len >> 16, len >> 8, len};

	return write_all(fd, h, 5) || write_all(fd, data, len) ? -1 : 0;
}

/* ---- the remote side: ckpt-ssh --serve -- CMD... */

/* Read one line of at most size-1 bytes from fd 0, a byte at a time. */
static void read_line0(char *buf, size_t size)
{
	size_t n = 0;

	while (n < size - 1 && read(0, buf + n, 1) == 1 && buf[n] != '\n')
		n++;
	buf[n] = 0;
}

static int serve(char **cmd)
{
	char line[256], token[65], *peer = getenv("SSH_CLIENT"), buf[65536];
	int port, in[2], out[2], err[2], st, open_out = 2, in_open = 1;
	struct sockaddr_in a = {.sin_family = AF_INET};
	size_t pend = 0, off = 0;
	static char ibuf[65536];
	pid_t pid;
	int fd;

	read_line0(line, sizeof(line));
	if (sscanf(line, "%64s %d", token, &port) != 2 || !peer)
		die(FAIL, "--serve: no token and port on standard input, or no $SSH_CLIENT");
	snprintf(line, sizeof(line), "%s", peer);
	line[strcspn(line, " ")] = 0;
	a.sin_port = htons(port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (inet_pton(AF_INET, line, &a.sin_addr) != 1 || fd < 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a)))
		die(FAIL, "--serve: cannot connect back to %s port %d: %s", line, port,
		    strerror(errno));
	snprintf(line, sizeof(line), "%s\n", token);
	if (write_all(fd, line, strlen(line)))
		die(FAIL, "--serve: cannot write to %s: %s", peer, strerror(errno));
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
		die(FAIL, "--serve: cannot make pipes: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	pid = fork();
	if (pid < 0)
		die(FAIL, "--serve: cannot fork: %s", strerror(errno));
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		execvp(cmd[0], cmd);
		fprintf(stderr, "ckpt-ssh: cannot run %s: %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	while (open_out) {
		struct pollfd p[4] = {{.fd = pend || !in_open ? -1 : fd, .events = POLLIN},
				      {.fd = out[0], .events = POLLIN},
				      {.fd = err[0], .events = POLLIN},
				      {.fd = pend ? in[1] : -1, .events = POLLOUT}};
		if (poll(p, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents) {
			ssize_t n = read(fd, ibuf, sizeof(ibuf));
			if (n > 0) {
				pend = n;
				off = 0;
			} else if (n == 0 || errno != EINTR) {
				in_open = 0;
				close(in[1]);
			}
		}
		if (pend && (p[3].revents || p[0].revents)) {
			ssize_t n = write(in[1], ibuf + off, pend);
			if (n > 0) {
				off += n;
				pend -= n;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				/* CMD does not read: drop its input, as a closed pipe does. */
				pend = 0;
				in_open = 0;
				close(in[1]);
			}
		}
		for (int k = 1; k <= 2; k++) {
			ssize_t n;
			if (!p[k].revents)
				continue;
			n = read(p[k].fd, buf, sizeof(buf));
			if (n > 0) {
				if (frame(fd, k == 1 ? 'o' : 'e', buf, n))
					die(FAIL, "--serve: the connection back is gone: %s",
					    strerror(errno));
			} else if (n == 0 || errno != EINTR) {
				close(p[k].fd);
				*(k == 1 ? &out[0] : &err[0]) = -1;
				open_out--;
			}
		}
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	st = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	uint32_t code = htonl((uint32_t)st);
	if (frame(fd, 'x', &code, 4))
		die(FAIL, "--serve: cannot send the exit status: %s", strerror(errno));
	shutdown(fd, SHUT_WR);
	/* Until the other side has it: it closes once it read the status. */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	return 0;
}

/* ---- this side: ssh [option...] host cmd... */

struct call {
	char **opts; /* the options, for the real ssh */
	int nopts;
	const char *host;
	char **cmd;
	int plain; /* not for the relay: the real ssh's */
};

static void parse(int argc, char **argv, struct call *c)
{
	int i = 1;

	c->opts = calloc(argc + 1, sizeof(*c->opts));
	for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		}
		c->opts[c->nopts++] = argv[i];
		for (const char *f = argv[i] + 1; *f; f++) {
			if (strchr(plain_opts, *f))
				c->plain = 1;
			if (strchr(arg_opts, *f)) {
				if (!f[1] && i + 1 < argc)
					c->opts[c->nopts++] = argv[++i];
				break;
			}
		}
	}
	if (i >= argc) {
		c->plain = 1;
		return;
	}
	c->host = argv[i++];
	c->cmd = argv + i;
	if (i >= argc)
		c->plain = 1;
}

/* The command line the remote user's shell runs: ckpt-inject (beside
 * ours there, if it is; else its PATH's) running ckpt-ssh --serve. */
static void remote_line(const struct call *c, const char *chost, const char *cport, char *b,
			size_t size)
{
	char self[PATH_MAX], joined[16384] = "", name[64];
	char *slash;

	if (!realpath("/proc/self/exe", self))
		snprintf(self, sizeof(self), "/");
	slash = strrchr(self, '/');
	*slash = 0;
	/* ssh joins the words of CMD with spaces for the remote shell: so do we. */
	for (char **w = c->cmd; *w; w++)
		snprintf(joined + strlen(joined), sizeof(joined) - strlen(joined), "%s%s",
			 w == c->cmd ? "" : " ", *w);
	snprintf(name, sizeof(name), "%s", strrchr(c->cmd[0], '/') ? strrchr(c->cmd[0], '/') + 1
								  : c->cmd[0]);
	name[strcspn(name, " \t;|&<>()$`\\\"'")] = 0;
	snprintf(b, size, "d=");
	shq(b, size, self);
	snprintf(b + strlen(b), size - strlen(b),
		 "; p=; [ -x \"$d/ckpt-inject\" ] && p=$d/; exec \"${p}ckpt-inject\" --coord-host ");
	shq(b, size, chost);
	snprintf(b + strlen(b), size - strlen(b), "--coord-port ");
	shq(b, size, cport);
	snprintf(b + strlen(b), size - strlen(b), "--secret-file - --name ");
	shq(b, size, *name ? name : "ssh");
	snprintf(b + strlen(b), size - strlen(b), "-- \"${p}ckpt-ssh\" --serve -- sh -c ");
	shq(b, size, joined);
}

/* Start the real ssh, detached: a grandchild in its own session, fed
 * input on its stdin.  Its pid, or -1. */
static pid_t launch(const struct call *c, const char *line, const char *input)
{
	int p[2], r[2], nul;
	pid_t mid, pid = -1;
	char **v;
	int k = 0;

	if (pipe2(p, O_CLOEXEC) || pipe2(r, O_CLOEXEC))
		return -1;
	v = real_ssh(c->nopts + 4);
	while (v[k])
		k++;
	for (int i = 0; i < c->nopts; i++)
		v[k++] = c->opts[i];
	v[k++] = "--";
	v[k++] = (char *)c->host;
	v[k++] = (char *)line;
	mid = fork();
	if (mid < 0)
		return -1;
	if (mid == 0) {
		pid = fork();
		if (pid != 0) {
			write_all(r[1], &pid, sizeof(pid));
			_exit(0);
		}
		setsid();
		nul = open("/dev/null", O_RDWR);
		dup2(p[0], 0);
		dup2(nul, 1);
		close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
		execvp(v[0], v);
		fprintf(stderr, "ckpt-ssh: cannot run %s: %s\n", v[0], strerror(errno));
		_exit(FAIL);
	}
	close(p[0]);
	close(r[1]);
	while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
		;
	if (read_full(r[0], &pid, sizeof(pid)) != sizeof(pid))
		pid = -1;
	close(r[0]);
	write_all(p[1], input, strlen(input));
	close(p[1]);
	return pid;
}

/* Relay: stdin to the connection, its frames to stdout and stderr, until
 * the exit status comes (returned). */
static int relay(int fd, const char *host)
{
	static char buf[65536 + 5];
	size_t have = 0;
	int in_open = 1;

	for (;;) {
		struct pollfd p[2] = {{.fd = in_open ? 0 : -1, .events = POLLIN},
				      {.fd = fd, .events = POLLIN}};
		ssize_t n;
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die(FAIL, "%s: poll: %s", host, strerror(errno));
		}
		if (p[0].revents) {
			char ib[65536];
			n = read(0, ib, sizeof(ib));
			if (n > 0 && write_all(fd, ib, n))
				die(FAIL, "%s: the connection to the remote command is gone: %s", host,
				    strerror(errno));
			if (n == 0 || (n < 0 && errno != EINTR)) {
				in_open = 0;
				shutdown(fd, SHUT_WR);
			}
		}
		if (!p[1].revents)
			continue;
		n = read(fd, buf + have, sizeof(buf) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die(FAIL, "%s: the connection to the remote command closed before its exit "
				  "status",
			    host);
		have += n;
		while (have >= 5) {
			uint32_t len = (uint32_t)(unsigned char)buf[1] << 24 |
				       (uint32_t)(unsigned char)buf[2] << 16 |
				       (uint32_t)(unsigned char)buf[3] << 8 | (unsigned char)buf[4];
			if (len > 65536 || !strchr("oex", buf[0]) || (buf[0] == 'x' && len != 4))
				die(FAIL, "%s: not a frame of ckpt-ssh's from the remote side", host);
			if (have < 5 + len)
				break;
			if (buf[0] == 'x') {
				uint32_t code;
				memcpy(&code, buf + 5, 4);
				return (int)ntohl(code) & 0xff;
			}
			if (write_all(buf[0] == 'o' ? 1 : 2, buf + 5, len) && errno == EPIPE)
				die(FAIL, "%s: standard output closed", host);
			memmove(buf, buf + 5 + len, have - 5 - len);
			have -= 5 + len;
		}
	}
}

int main(int argc, char **argv)
{
	const char *chost = getenv("CKPT_COORD_HOST"), *cport = getenv("CKPT_COORD_PORT");
	const char *sfile = getenv("CKPT_COORD_SECRET_FILE");
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	unsigned char rnd[16];
	char token[33], *secret, line[20000], input[700], got[64];
	struct call c = {0};
	int lfd, fd, pidfd;
	pid_t ssh;

	prog = "ckpt-ssh";
	/* -V is ssh's too: ours only by our own name. */
	int own = !strcmp(strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0], "ckpt-ssh");
	if (argc >= 2 && !strcmp(argv[1], "--help")) {
		fputs(USAGE, stdout);
		return 0;
	}
	if (argc >= 2 && (!strcmp(argv[1], "--version") || (own && !strcmp(argv[1], "-V")))) {
		printf("ckpt-ssh %s\n", CKPT_VERSION);
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[1], "--serve")) {
		if (argc < 4 || strcmp(argv[2], "--"))
			usage();
		return serve(argv + 3);
	}
	/* Run by our own real ssh (a CKPT_SSH that names a wrapper of ours):
	 * never again, or each would start the next. */
	if (getenv("CKPT_SSH_REAL"))
		die(FAIL, "ssh is ckpt-ssh again behind CKPT_SSH or PATH: not run twice");
	parse(argc, argv, &c);
	if (c.plain || !chost)
		pass_through(argv);
	/* The far side joins the coordinator over the network, with the secret. */
	if (!sfile || !strcmp(chost, "127.0.0.1") || !strcmp(chost, "localhost")) {
		warnx("%s: %s runs outside the computation: its coordinator (%s) %s", c.host,
		      c.cmd[0], chost,
		      sfile ? "listens on loopback only" : "has no secret file (--secret-file)");
		pass_through(argv);
	}
	if (!(secret = co_read_secret(sfile)))
		die(FAIL, "%s", err_get());
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen))
		die(FAIL, "%s: cannot listen for the remote command: %s", c.host, strerror(errno));
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		die(FAIL, "cannot draw a token: %s", strerror(errno));
	for (int i = 0; i < 16; i++)
		sprintf(token + 2 * i, "%02x", rnd[i]);
	remote_line(&c, chost, cport ? cport : "7779", line, sizeof(line));
	snprintf(input, sizeof(input), "%s\n%s %d\n", secret, token, ntohs(a.sin_port));
	memset(secret, 0, strlen(secret));
	ssh = launch(&c, line, input);
	memset(input, 0, sizeof(input));
	if (ssh < 0)
		die(FAIL, "%s: cannot start ssh: %s", c.host, strerror(errno));
	pidfd = (int)syscall(SYS_pidfd_open, ssh, 0);
	/* The remote side connects back, or ssh ends first (it failed). */
	for (;;) {
		struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
		if (poll(p, pidfd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
			die(FAIL, "%s: poll: %s", c.host, strerror(errno));
		if (p[0].revents)
			break;
		if (pidfd >= 0 && p[1].revents)
			die(FAIL, "%s: ssh ended before %s started there", c.host, c.cmd[0]);
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		die(FAIL, "%s: accept: %s", c.host, strerror(errno));
	close(lfd);
	if (pidfd >= 0)
		close(pidfd);
	{
		size_t n = 0;
		while (n < sizeof(got) - 1 && read(fd, got + n, 1) == 1 && got[n] != '\n')
			n++;
		got[n] = 0;
	}
	if (strcmp(got, token))
		die(FAIL, "%s: refused a connection back that does not know the token", c.host);
	return relay(fd, c.host);
}
