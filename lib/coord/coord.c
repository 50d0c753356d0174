/* coord.c: the coordinator protocol's lines, and connecting to one. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coord/coord.h"
#include "base/crc32c.h"
#include "base/base.h"
#include "io/io.h"

/* Each verb, its argument count, which arguments are numbers and which
 * name a compressor (bit i: argument i), so that a handler never sees a
 * malformed one. */
static const struct {
	const char *name;
	int min, max;
	unsigned nums, comps;
} verbs[CO_NVERBS] = {
	[CO_HELLO] = {"HELLO", 1, 1, 0},
	[CO_AUTH] = {"AUTH", 1, 1, 0},
	[CO_JOIN] = {"JOIN", 4, 5, 3 | 16},
	[CO_PID] = {"PID", 1, 1, 1},
	[CO_FROZEN] = {"FROZEN", 1, 1, 1},
	[CO_DUMPED] = {"DUMPED", 2, 2, 3},
	[CO_SYNCED] = {"SYNCED", 3, 3, 7},
	[CO_FAILED] = {"FAILED", 2, 2, 1},
	[CO_GONE] = {"GONE", 1, 1, 1},
	[CO_CHECKPOINT] = {"CHECKPOINT", 0, 2, 0},
	[CO_STATUS] = {"STATUS", 0, 0, 0},
	[CO_LIST] = {"LIST", 0, 0, 0},
	[CO_INTERVAL] = {"INTERVAL", 1, 1, 1},
	[CO_KILL] = {"KILL", 0, 0, 0},
	[CO_QUIT] = {"QUIT", 0, 0, 0},
	[CO_FREEZE] = {"FREEZE", 1, 1, 1},
	[CO_DUMP] = {"DUMP", 5, 5, 1 | 16, 8},
	[CO_RESUME] = {"RESUME", 2, 2, 1},
	[CO_SYNC] = {"SYNC", 1, 1, 1},
	[CO_END] = {"END", 4, 4, 1},
	[CO_LINK] = {"LINK", 7, 7, 1 | 4 | 8},
	[CO_LISTEN] = {"LISTEN", 3, 3, 4},
	[CO_WANT] = {"WANT", 1, 1, 0},
	[CO_CONNECT] = {"CONNECT", 3, 3, 4},
};

const char *co_verb_name(enum co_verb v)
{
	return v > CO_BAD && v < CO_NVERBS ? verbs[v].name : "?";
}

long long co_num(const char *s, long long max)
{
	long long v = 0;

	if (!*s || strlen(s) > 18)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v <= max ? v : -1;
}

int co_compressor(const char *s)
{
	if (!strcmp(s, "zstd"))
		return ZIO_ZSTD;
	if (!strcmp(s, "gzip"))
		return ZIO_GZIP;
	if (!strcmp(s, "none"))
		return ZIO_NONE;
	return -1;
}

const char *co_image_suffix(int kind)
{
	return kind == ZIO_ZSTD ? ".zst" : kind == ZIO_GZIP ? ".gz" : "";
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int co_unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		int hi, lo;
		if (*s != '%') {
			*w++ = *s;
			continue;
		}
		/* No control characters: a newline would forge a line of
		 * the protocol or of a log, and none belongs in a path, a
		 * host or a message. */
		if ((hi = hexval(s[1])) < 0 || (lo = hexval(s[2])) < 0 || (hi << 4 | lo) < 0x20 ||
		    (hi << 4 | lo) == 0x7f)
			return -1;
		*w++ = (char)(hi << 4 | lo);
		s += 2;
	}
	*w = 0;
	return 0;
}

int co_parse(const char *line, size_t len, struct co_msg *m)
{
	char *p, *tok;
	int v, n = 0;

	memset(m, 0, sizeof(*m));
	if (len && line[len - 1] == '\r')
		len--;
	if (len > CO_LINE_MAX) {
		err_set("line of %zu bytes, over %d", len, CO_LINE_MAX);
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < ' ' || (unsigned char)line[i] > '~') {
			err_set("byte 0x%02x at column %zu is not printable text", (unsigned char)line[i],
				i + 1);
			return -1;
		}
	memcpy(m->buf, line, len);
	m->buf[len] = 0;
	p = m->buf;
	tok = strtok_r(p, " ", &p);
	if (!tok) {
		err_set("empty line");
		return -1;
	}
	for (v = CO_BAD + 1; v < CO_NVERBS; v++)
		if (!strcmp(tok, verbs[v].name))
			break;
	if (v == CO_NVERBS) {
		char shown[40];
		if (co_escape(tok, shown, sizeof(shown)))
			snprintf(shown, sizeof(shown), "%.16s...", tok);
		err_set("unknown command %s", shown);
		return -1;
	}
	while ((tok = strtok_r(NULL, " ", &p))) {
		if (n == verbs[v].max) {
			err_set("%s takes at most %d argument%s", verbs[v].name, verbs[v].max,
				verbs[v].max == 1 ? "" : "s");
			return -1;
		}
		if (co_unescape(tok)) {
			err_set("%s: argument %d has a bad %%XX escape", verbs[v].name, n + 1);
			return -1;
		}
		if ((verbs[v].nums >> n & 1) && co_num(tok, CO_NUM_MAX) < 0) {
			err_set("%s: argument %d is not a number", verbs[v].name, n + 1);
			return -1;
		}
		if ((verbs[v].comps >> n & 1) && co_compressor(tok) < 0) {
			err_set("%s: argument %d is not a compressor (zstd, gzip or none)",
				verbs[v].name, n + 1);
			return -1;
		}
		m->argv[n++] = tok;
	}
	if (n < verbs[v].min) {
		err_set("%s takes %d argument%s", verbs[v].name, verbs[v].min,
			verbs[v].min == 1 ? "" : "s");
		return -1;
	}
	m->verb = v;
	m->argc = n;
	return 0;
}

int co_escape(const char *s, char *out, size_t size)
{
	size_t n = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c > ' ' && c <= '~' && c != '%') {
			if (n + 1 >= size)
				return -1;
			out[n++] = c;
		} else {
			if (n + 3 >= size)
				return -1;
			n += snprintf(out + n, size - n, "%%%02X", c);
		}
	}
	if (n >= size)
		return -1;
	out[n] = 0;
	/* An empty argument would vanish between spaces. */
	if (!n) {
		if (size < 2)
			return -1;
		out[0] = '-';
		out[1] = 0;
	}
	return 0;
}

/* Drop the line handed out last: it is used only until the next call. */
static void consume(struct co_reader *r)
{
	memmove(r->buf, r->buf + r->used, r->len - r->used);
	r->len -= r->used;
	r->used = 0;
}

int co_next_line(struct co_reader *r, char **line)
{
	char *nl;

	consume(r);
	nl = memchr(r->buf, '\n', r->len);
	if (r->skip) {
		/* The rest of a line already answered as too long. */
		if (!nl) {
			r->len = 0;
			return 0;
		}
		r->skip = 0;
		r->used = nl - r->buf + 1;
		consume(r);
		nl = memchr(r->buf, '\n', r->len);
	}
	if (!nl) {
		/* Too long: one answer for it, and the rest up to its newline
		 * is dropped as it comes. */
		if (r->len > CO_LINE_MAX) {
			r->len = 0;
			r->skip = 1;
			return -2;
		}
		return 0;
	}
	*nl = 0;
	*line = r->buf;
	r->line_len = nl - r->buf;
	r->used = nl - r->buf + 1;
	return 1;
}

ssize_t co_fill(struct co_reader *r)
{
	ssize_t n;

	consume(r);
	if (r->len >= sizeof(r->buf)) {
		r->len = 0;
		errno = EMSGSIZE;
		return -1;
	}
	do
		n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		r->len += n;
	return n;
}

int co_read_line(struct co_reader *r, char **line, int timeout_ms)
{
	for (;;) {
		struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
		int k;
		ssize_t n;

		k = co_next_line(r, line);
		if (k == 1)
			return 1;
		if (k == -2) {
			err_set("the coordinator sent a line over %d bytes", CO_LINE_MAX);
			return -1;
		}
		k = poll(&pfd, 1, timeout_ms);
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0) {
			err_set("no answer from the coordinator in %d ms", timeout_ms);
			return -1;
		}
		n = co_fill(r);
		if (n == 0) {
			err_set("the coordinator closed the connection");
			return -1;
		}
		if (n < 0) {
			err_sys("cannot read from the coordinator");
			return -1;
		}
	}
}

int co_send(int fd, const char *fmt, ...)
{
	char line[CO_LINE_MAX + 2];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n > CO_LINE_MAX) {
		err_set("a message of %d bytes, over %d", n, CO_LINE_MAX);
		errno = EMSGSIZE;
		return -1;
	}
	if (memchr(line, '\n', n)) {
		err_set("a message with a line break inside");
		errno = EINVAL;
		return -1;
	}
	line[n++] = '\n';
	for (int done = 0; done < n;) {
		ssize_t k = send(fd, line + done, n - done, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			err_sys("cannot send to the coordinator");
			return -1;
		}
		done += k;
	}
	return 0;
}

int co_addr(const char *host_opt, const char *port_opt, const char **host, int *port)
{
	const char *p = port_opt ? port_opt : getenv("CKPT_COORD_PORT");
	long long v;

	*host = host_opt ? host_opt : getenv("CKPT_COORD_HOST");
	if (!*host || !**host)
		*host = CO_DEFAULT_HOST;
	*port = CO_DEFAULT_PORT;
	if (p && *p) {
		v = co_num(p, 65535);
		if (v <= 0) {
			err_set("not a port: %s", p);
			return -1;
		}
		*port = (int)v;
	}
	return 0;
}

int co_connect(const char *host, int port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *a;
	char service[16];
	int fd = -1, rc, saved = ECONNREFUSED;

	snprintf(service, sizeof(service), "%d", port);
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc) {
		err_set("no coordinator at %s:%d: %s", host, port, gai_strerror(rc));
		errno = EHOSTUNREACH;
		return -1;
	}
	for (a = res; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		errno = saved;
		err_sys("no coordinator at %s:%d", host, port);
	}
	return fd;
}

char *co_read_secret(const char *path)
{
	char buf[512];
	struct stat sb;
	ssize_t n;
	/* O_NONBLOCK: a FIFO given as the file must not hang us at open;
	 * it is refused below, as anything but a regular file is. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0) {
		err_sys("cannot open the secret file %s", path);
		return NULL;
	}
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
		err_set("secret file %s is not a regular file", path);
		close(fd);
		return NULL;
	}
	if (sb.st_mode & 077) {
		err_set("secret file %s has mode %04o: others may read it (chmod 600 it)", path,
			(unsigned)(sb.st_mode & 07777));
		close(fd);
		return NULL;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		err_sys("cannot read the secret file %s", path);
		return NULL;
	}
	buf[n] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	if (strlen(buf) < 8) {
		err_set("secret file %s: the secret (its first line) is shorter than 8 bytes", path);
		return NULL;
	}
	for (char *c = buf; *c; c++)
		if (*c <= ' ' || *c > '~') {
			err_set("secret file %s: the secret holds a space or a byte that is not "
				"printable",
				path);
			return NULL;
		}
	return strdup(buf);
}

/* "--secret-file -": the secret is the first line of fd, read a byte at
 * a time so that what follows it is left for the program (ckpt-ssh(1)
 * sends it so, over ssh's encrypted stdin, never on a command line). */
static char *co_read_secret_line(int fd, int *bad)
{
	char buf[512];
	size_t n = 0;

	while (n < sizeof(buf) - 1 && read(fd, buf + n, 1) == 1 && buf[n] != '\n')
		n++;
	buf[n] = 0;
	buf[strcspn(buf, "\r")] = 0;
	if (strlen(buf) < 8) {
		err_set("the secret on standard input is missing or too short");
		*bad = 1;
		return NULL;
	}
	return strdup(buf);
}

char *co_client_secret(const char *opt, int *bad)
{
	const char *path = opt ? opt : getenv("CKPT_COORD_SECRET_FILE");
	char *s;

	*bad = 0;
	if (!path || !*path)
		return NULL;
	if (!strcmp(path, "-"))
		return co_read_secret_line(0, bad);
	s = co_read_secret(path);
	if (!s)
		*bad = 1;
	return s;
}

int co_secret_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;

	for (size_t i = 0; i < la; i++)
		d |= (unsigned char)a[i] ^ (unsigned char)b[i % (lb ? lb : 1)];
	return d == 0;
}

/* An address as /proc/net/tcp{,6} prints it: each 32-bit word of the
 * address as the kernel holds it (network order in memory, printed as a
 * host-order number), a colon, the port in hex. */
static void proc_net_addr(const struct sockaddr_storage *a, char *out, size_t size)
{
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)a;
		snprintf(out, size, "%08X:%04X", in->sin_addr.s_addr, ntohs(in->sin_port));
	} else {
		const struct sockaddr_in6 *in6 = (const void *)a;
		uint32_t w[4];
		memcpy(w, &in6->sin6_addr, sizeof(w));
		snprintf(out, size, "%08X%08X%08X%08X:%04X", w[0], w[1], w[2], w[3],
			 ntohs(in6->sin6_port));
	}
}

/* The uid of the socket at local address want_local connected to
 * want_remote, from the kernel's table of this network namespace: 1 with
 * *uid, 0 if there is none. */
static int tcp_table_uid(int family, const char *want_local, const char *want_remote, uid_t *uid)
{
	FILE *f = fopen(family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6", "re");
	char line[512], local[64], remote[64];
	unsigned long u;
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, " %*d: %63s %63s %*x %*s %*s %*s %lu", local, remote, &u) == 3 &&
		    !strcmp(local, want_local) && !strcmp(remote, want_remote)) {
			*uid = (uid_t)u;
			found = 1;
		}
	fclose(f);
	return found;
}

int co_peer_uid(int fd, uid_t *uid)
{
	struct sockaddr_storage me, peer;
	socklen_t ml = sizeof(me), pl = sizeof(peer);
	char local[64], remote[64];

	if (getsockname(fd, (struct sockaddr *)&me, &ml) ||
	    getpeername(fd, (struct sockaddr *)&peer, &pl)) {
		err_sys("cannot name the connection's ends");
		return -1;
	}
	if (peer.ss_family != AF_INET && peer.ss_family != AF_INET6)
		return 0;
	/* The other end's socket is the one whose local address is our
	 * peer and whose remote address is us.  On loopback it is there
	 * as soon as connect() returns; a moment is allowed for the
	 * kernel to have moved it out of the accept queue's handshake. */
	proc_net_addr(&peer, local, sizeof(local));
	proc_net_addr(&me, remote, sizeof(remote));
	for (int i = 0; i < 20; i++) {
		if (tcp_table_uid(peer.ss_family, local, remote, uid))
			return 1;
		if (!co_loopback((struct sockaddr *)&peer))
			return 0;
		usleep(5000);
	}
	return 0;
}

int co_loopback(const struct sockaddr *a)
{
	if (a->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
	return a->sa_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

int co_nonce(char out[2 * CO_NONCE + 1])
{
	unsigned char b[CO_NONCE];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		err_sys("cannot get random bytes");
		return -1;
	}
	for (int i = 0; i < CO_NONCE; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	return 0;
}

void co_proof(const char *secret, const char *who, const char *first, const char *second,
	      char out[2 * SHA256_LEN + 1])
{
	const void *part[3] = {who, first, second};
	size_t len[3] = {strlen(who) + 1, strlen(first), strlen(second)};
	uint8_t mac[SHA256_LEN];

	hmac_sha256(secret, strlen(secret), part, len, 3, mac);
	for (int i = 0; i < SHA256_LEN; i++)
		sprintf(out + 2 * i, "%02x", mac[i]);
}

/* The coordinator at fd must be this user's: its socket's owner, where
 * the kernel knows it (a coordinator on this host), is our uid; one on
 * another host is trusted only through the secret. */
static int check_coordinator(int fd, const char *secret)
{
	uid_t uid;
	int local = co_peer_uid(fd, &uid);

	if (local < 0)
		return -1;
	if (local && uid != geteuid()) {
		err_set("the coordinator there runs as uid %u, not as this user (uid %u): not ours, "
			"refused",
			(unsigned)uid, (unsigned)geteuid());
		return -1;
	}
	if (!local && !secret) {
		err_set("the coordinator there is not on this host: it is trusted only with "
			"--secret-file");
		return -1;
	}
	return 0;
}

int co_auth(int fd, struct co_reader *r, const char *secret)
{
	char nonce[2 * CO_NONCE + 1], theirs[2 * CO_NONCE + 1], proof[2 * SHA256_LEN + 1];
	char want[2 * SHA256_LEN + 1], *line;

	r->fd = fd;
	if (check_coordinator(fd, secret))
		return -1;
	if (!secret)
		return 0;
	/* Challenge-response both ways (ckpt-coord(1), PROTOCOL): the
	 * coordinator proves it knows the secret before we prove we do,
	 * and the secret itself never crosses the connection. */
	if (co_nonce(nonce) || co_send(fd, "HELLO %s", nonce) || co_read_line(r, &line, 10000) < 0)
		return -1;
	if (sscanf(line, "CHALLENGE %64[0-9a-f] %64[0-9a-f]", theirs, proof) != 2 ||
	    strlen(theirs) != 2 * CO_NONCE || strlen(proof) != 2 * SHA256_LEN) {
		err_set("the coordinator did not prove it knows the secret: %s", line);
		return -1;
	}
	co_proof(secret, "ckpt-coord", nonce, theirs, want);
	if (!co_secret_eq(proof, want)) {
		err_set("the coordinator's proof does not match our secret (a wrong secret on one "
			"side, or not the coordinator): refused");
		return -1;
	}
	co_proof(secret, "ckpt-client", theirs, nonce, proof);
	if (co_send(fd, "AUTH %s", proof) || co_read_line(r, &line, 10000) < 0)
		return -1;
	if (strncmp(line, "OK", 2)) {
		err_set("the coordinator refused us: %s", line);
		return -1;
	}
	return 0;
}

int co_client_opt(struct co_client *cl, int c, const char *arg)
{
	switch (c) {
	case 'H':
		cl->host_opt = arg;
		return 1;
	case 'P':
		cl->port_opt = arg;
		return 1;
	case 's':
		cl->secret_file = arg;
		return 1;
	}
	return 0;
}

int co_client_setup(struct co_client *cl)
{
	int bad;

	if (co_addr(cl->host_opt, cl->port_opt, &cl->host, &cl->port))
		return -1;
	cl->secret = co_client_secret(cl->secret_file, &bad);
	return bad ? -1 : 0;
}

const char *co_tool(const char *name, char *buf, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n > 0) {
		self[n] = 0;
		slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			snprintf(buf, size, "%s/%s", self, name);
			if (access(buf, X_OK) == 0)
				return buf;
		}
	}
	snprintf(buf, size, "%s", name);
	return buf;
}

static int is_local(const char *host)
{
	return !strcmp(host, "127.0.0.1") || !strcmp(host, "localhost") || !strcmp(host, "::1");
}

int co_connect_or_start(const char *host, int port, char *const *opts)
{
	char tool[PATH_MAX], portbuf[16];
	char *argv[16] = {tool, "--daemon", "--exit-on-last", "--port", portbuf};
	int fd = co_connect(host, port), st, n = 5;
	pid_t pid;

	if (fd >= 0 || errno != ECONNREFUSED || !is_local(host))
		return fd;
	co_tool("ckpt-coord", tool, sizeof(tool));
	snprintf(portbuf, sizeof(portbuf), "%d", port);
	for (; *opts && n < 15; opts++)
		argv[n++] = *opts;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		dup2(nul, 0);
		dup2(nul, 1);
		/* Nothing of our caller's (its pipes, a log on fd 3) for the
		 * coordinator's whole life. */
		close_range(3, ~0U, 0);
		execvp(tool, argv);
		fprintf(stderr, "%s: cannot run %s: %s\n", prog, tool, strerror(errno));
		_exit(127);
	}
	/* It forks into the background once it listens (or fails because
	 * another ckpt-inject's coordinator was first: that one will do). */
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return co_connect(host, port);
}

void co_image_member(const char *img, char *name, size_t size, int *id)
{
	const char *base = strrchr(img, '/') ? strrchr(img, '/') + 1 : img;
	const char *end = strstr(base, ".ckpt"), *us;

	*id = 0;
	if (!strncmp(base, "ckpt_", 5) && end && (us = memrchr(base, '_', end - base)) > base + 5 &&
	    (*id = (int)co_num(strndupa(us + 1, end - us - 1), INT_MAX)) > 0) {
		snprintf(name, size, "%.*s", (int)(us - base - 5), base + 5);
		return;
	}
	*id = 0;
	snprintf(name, size, "%.*s", (int)strcspn(base, "."), base);
}

const char *co_hostname(void)
{
	static char host[256];

	if (!host[0] && gethostname(host, sizeof(host) - 1))
		snprintf(host, sizeof(host), "localhost");
	return host;
}

int co_image_sum(int fd, uint64_t *bytes, uint32_t *crc)
{
	static struct crc32c_lanes lanes;
	static char buf[1 << 20];
	ssize_t n;

	if (!lanes.by1[0])
		crc32c_lanes_init(&lanes);
	*bytes = 0;
	*crc = 0;
	while ((n = pread(fd, buf, sizeof(buf), (off_t)*bytes)) > 0) {
		*crc = crc32c_hw3(&lanes, *crc, buf, (size_t)n);
		*bytes += (uint64_t)n;
	}
	if (n < 0)
		err_sys("cannot read the image");
	return n < 0 ? -1 : 0;
}
