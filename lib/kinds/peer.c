/* peer.c: connections between members of a coordinated computation
 * (IMG_FD_PEER).  A member's helper finds the ends its program holds
 * whose other end is outside its tree (fd_peer_ends), the coordinator
 * pairs them with the other members' ends, the helpers drain what is in
 * flight (coord/peers.c), and the dump records each paired end as a
 * peer (fd_peer_marks): its connection's name, its side, the other
 * member, the bytes in flight to it.  Such an fd is made again only by
 * ckpt-inject --restart, which connects it through the coordinator and
 * hands it to ckpt-remap (--inherit-fd); a plain ckpt-remap refuses it. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <ctype.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

/* ---- finding the ends ------------------------------------------------- */

struct tcp_row {
	uint64_t ino;
	int state;
	char local[64], remote[64];
};

/* "0100007F:1F90" (tcp) or 32 hex digits and a port (tcp6) as text:
 * 127.0.0.1:8080 or [::1]:8080, a v4-mapped address as its v4 one, so
 * that both sides of a connection name it alike. */
static int addr_text(const char *hex, char *out, size_t size)
{
	unsigned char a[16];
	char ip[INET6_ADDRSTRLEN], word[9];
	const char *colon = strchr(hex, ':');
	size_t n = colon ? (size_t)(colon - hex) : 0;
	unsigned port;

	if ((n != 8 && n != 32) || sscanf(colon + 1, "%x", &port) != 1)
		return -1;
	for (size_t i = 0; i < n / 8; i++) {
		uint32_t w;
		memcpy(word, hex + 8 * i, 8);
		word[8] = 0;
		w = (uint32_t)strtoul(word, NULL, 16);
		memcpy(a + 4 * i, &w, 4); /* the kernel printed the word in host order */
	}
	if (n == 32 && !memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12)) {
		memmove(a, a + 12, 4);
		n = 8;
	}
	if (!inet_ntop(n == 8 ? AF_INET : AF_INET6, a, ip, sizeof(ip)))
		return -1;
	snprintf(out, size, n == 8 ? "%s:%u" : "[%s]:%u", ip, port);
	return 0;
}

/* The TCP sockets of pid's network namespace (/proc/PID/net/tcp, tcp6)
 * appended to *rows. */
static int read_tcp(pid_t pid, const char *file, struct tcp_row **rows, size_t *n)
{
	char path[64], *text = read_file(fmt_path(path, sizeof(path), "/proc/%d/net/%s", pid, file),
					NULL);
	char *line, *save = NULL;

	if (!text)
		return 0; /* no IPv6 */
	strtok_r(text, "\n", &save); /* the header */
	while ((line = strtok_r(NULL, "\n", &save))) {
		char l[80], r[80];
		unsigned st;
		unsigned long long ino;
		struct tcp_row *nr;
		if (sscanf(line, " %*s %79s %79s %x %*s %*s %*s %*s %*s %llu", l, r, &st, &ino) != 4)
			continue;
		if (!(nr = realloc(*rows, (*n + 1) * sizeof(**rows)))) {
			free(text);
			err_set("out of memory");
			return -1;
		}
		*rows = nr;
		nr += *n;
		nr->ino = ino;
		nr->state = (int)st;
		if (addr_text(l, nr->local, sizeof(nr->local)) ||
		    addr_text(r, nr->remote, sizeof(nr->remote)))
			continue;
		(*n)++;
	}
	free(text);
	return 0;
}

/* A TCP state of a connection that may still carry bytes: established,
 * or half-closed (one side sent its FIN: FIN_WAIT1, FIN_WAIT2,
 * CLOSE_WAIT, LAST_ACK, CLOSING; a pipeline's ssh whose input ended). */
static int tcp_connected(int state)
{
	return state == 1 || state == 4 || state == 5 || state == 8 || state == 9 || state == 11;
}

static const struct tcp_row *row_of(const struct tcp_row *rows, size_t n, uint64_t ino)
{
	for (size_t i = 0; i < n; i++)
		if (rows[i].ino == ino)
			return &rows[i];
	return NULL;
}

static int add_end(struct fd_peer_end **ends, size_t *n, const struct fd_peer_end *e)
{
	struct fd_peer_end *ne = realloc(*ends, (*n + 1) * sizeof(**ends));

	if (!ne) {
		err_set("out of memory");
		return -1;
	}
	*ends = ne;
	ne[(*n)++] = *e;
	return 0;
}

/* Whether a socket of the tree (rows of its inodes) has local as its own
 * address: then a connection to local stays inside the tree. */
static int tree_has(const struct tcp_row *rows, size_t nrows, const uint64_t *inos, size_t nino,
		    const char *local)
{
	for (size_t i = 0; i < nino; i++) {
		const struct tcp_row *r = row_of(rows, nrows, inos[i]);
		if (r && r->state != 10 && !strcmp(r->local, local))
			return 1;
	}
	return 0;
}

/* A pipe's end, named so that its other end's name swaps the last
 * digit: pipe:HOST:INODE:0 (read) or :1 (write). */
static void pipe_key(char *out, size_t size, uint64_t ino, int end)
{
	char host[64] = "";

	gethostname(host, sizeof(host) - 1);
	snprintf(out, size, "pipe:%s:%llu:%d", host, (unsigned long long)ino, end);
}

/* The unix stream sockets of pid's network namespace that are connected
 * (/proc/PID/net/unix: type 1, state 3), by inode, into *inos. */
static int read_unix(pid_t pid, uint64_t **inos, size_t *n)
{
	char path[64], *text = read_file(fmt_path(path, sizeof(path), "/proc/%d/net/unix", pid),
					NULL);
	char *line, *save = NULL;

	if (!text)
		return 0;
	strtok_r(text, "\n", &save);
	while ((line = strtok_r(NULL, "\n", &save))) {
		unsigned type, st;
		unsigned long long ino;
		uint64_t *ni;
		if (sscanf(line, "%*s %*s %*s %*s %x %x %llu", &type, &st, &ino) != 3 || type != 1 ||
		    st != 3)
			continue;
		if (!(ni = realloc(*inos, (*n + 1) * sizeof(**inos)))) {
			free(text);
			err_set("out of memory");
			return -1;
		}
		*inos = ni;
		ni[(*n)++] = ino;
	}
	free(text);
	return 0;
}

static int has_ino(const uint64_t *inos, size_t n, uint64_t ino)
{
	for (size_t i = 0; i < n; i++)
		if (inos[i] == ino)
			return 1;
	return 0;
}

/* The unix stream connections of the tree (its socket inodes inos)
 * whose peer is a socket no process of it holds: "unix:HOST:INODE", and
 * the peer's inode. */
static int lone_unix(pid_t pid, const uint64_t *inos, const pid_t *owner, const int *fdof,
		     size_t nino, struct fd_peer_end **ends, size_t *nends)
{
	uint64_t *conn = NULL;
	size_t nconn = 0;
	char host[64] = "";
	int rc = 0;

	gethostname(host, sizeof(host) - 1);
	if (read_unix(pid, &conn, &nconn))
		return -1;
	for (size_t i = 0; i < nino && !rc; i++) {
		struct fd_diag d = {0};
		struct fd_peer_end e = {.pid = owner[i], .fd = fdof[i], .kind = IMG_PEER_UNIX,
					.ino = inos[i]};
		int seen = 0;
		for (size_t j = 0; j < i; j++)
			seen |= inos[j] == inos[i];
		if (seen || !has_ino(conn, nconn, inos[i]) || fd_unix_diag(inos[i], &d) || !d.peer ||
		    has_ino(inos, nino, d.peer))
			continue;
		snprintf(e.local, sizeof(e.local), "unix:%s:%llu", host, (unsigned long long)inos[i]);
		snprintf(e.remote, sizeof(e.remote), "unix:%s:%llu", host, (unsigned long long)d.peer);
		rc = add_end(ends, nends, &e);
	}
	free(conn);
	return rc;
}

/* The pipe ends of the tree (cand, kind IMG_PEER_PIPE) whose other end
 * it does not hold: ends of their own. */
static int lone_pipes(const struct fd_peer_end *cand, size_t ncand, struct fd_peer_end **ends,
		      size_t *nends)
{
	for (size_t i = 0; i < ncand; i++) {
		const struct fd_peer_end *c = &cand[i];
		int seen = 0, other = 0;
		if (c->kind != IMG_PEER_PIPE)
			continue;
		for (size_t j = 0; j < ncand; j++)
			if (cand[j].kind == IMG_PEER_PIPE && cand[j].ino == c->ino) {
				other |= strcmp(cand[j].local, c->local) != 0;
				seen |= j < i && !strcmp(cand[j].local, c->local);
			}
		if (!seen && !other && add_end(ends, nends, c))
			return -1;
	}
	return 0;
}

int fd_peer_ends(const pid_t *pids, size_t npids, struct fd_peer_end **ends, size_t *nends)
{
	struct tcp_row *rows = NULL;
	uint64_t *inos = NULL;
	pid_t *owner = NULL;
	int *fdof = NULL;
	struct fd_peer_end *cand = NULL;
	size_t nrows = 0, nino = 0, ncand = 0;
	int rc = 0;

	*ends = NULL;
	*nends = 0;
	if (!npids)
		return 0;
	if (read_tcp(pids[0], "tcp", &rows, &nrows) || read_tcp(pids[0], "tcp6", &rows, &nrows))
		return -1;
	/* Every socket of the tree, and its TCP connections. */
	for (size_t k = 0; k < npids && !rc; k++) {
		int *fds;
		size_t n;
		if (proc_list_fds(pids[k], &fds, &n))
			continue; /* gone meanwhile: the dump says so */
		for (size_t i = 0; i < n && !rc; i++) {
			char what[32], *link;
			unsigned long long ino;
			const struct tcp_row *r;
			uint64_t *ni;
			pid_t *no;
			int *nf;
			snprintf(what, sizeof(what), "fd/%d", fds[i]);
			link = proc_readlink(pids[k], what);
			if (link && sscanf(link, "pipe:[%llu]", &ino) == 1) {
				struct proc_fdinfo fi;
				struct fd_peer_end e = {.pid = pids[k], .fd = fds[i],
							.kind = IMG_PEER_PIPE, .ino = ino};
				free(link);
				if (proc_read_fdinfo(pids[k], fds[i], &fi))
					continue;
				pipe_key(e.local, sizeof(e.local), ino, (fi.flags & O_ACCMODE) != O_RDONLY);
				pipe_key(e.remote, sizeof(e.remote), ino, (fi.flags & O_ACCMODE) == O_RDONLY);
				rc = add_end(&cand, &ncand, &e);
				continue;
			}
			if (!link || sscanf(link, "socket:[%llu]", &ino) != 1) {
				free(link);
				continue;
			}
			free(link);
			ni = realloc(inos, (nino + 1) * sizeof(*inos));
			inos = ni ? ni : inos;
			no = realloc(owner, (nino + 1) * sizeof(*owner));
			owner = no ? no : owner;
			nf = realloc(fdof, (nino + 1) * sizeof(*fdof));
			fdof = nf ? nf : fdof;
			if (!ni || !no || !nf) {
				err_set("out of memory");
				rc = -1;
				break;
			}
			owner[nino] = pids[k];
			fdof[nino] = fds[i];
			inos[nino++] = ino;
			r = row_of(rows, nrows, ino);
			if (r && tcp_connected(r->state)) {
				struct fd_peer_end e = {.pid = pids[k], .fd = fds[i],
							.kind = IMG_PEER_TCP, .ino = ino};
				snprintf(e.local, sizeof(e.local), "%s", r->local);
				snprintf(e.remote, sizeof(e.remote), "%s", r->remote);
				rc = add_end(&cand, &ncand, &e);
			}
		}
		free(fds);
	}
	/* Ends whose other end is the tree's own are not another member's;
	 * an inode held on several fds is one end. */
	for (size_t i = 0; i < ncand && !rc; i++) {
		int dup = 0;
		if (cand[i].kind != IMG_PEER_TCP)
			continue;
		for (size_t j = 0; j < *nends; j++)
			dup |= (*ends)[j].ino == cand[i].ino;
		if (!dup && !tree_has(rows, nrows, inos, nino, cand[i].remote))
			rc = add_end(ends, nends, &cand[i]);
	}
	if (!rc)
		rc = lone_pipes(cand, ncand, ends, nends);
	if (!rc)
		rc = lone_unix(pids[0], inos, owner, fdof, nino, ends, nends);
	free(rows);
	free(inos);
	free(owner);
	free(fdof);
	free(cand);
	if (rc) {
		free(*ends);
		*ends = NULL;
		*nends = 0;
	}
	return rc;
}

/* ---- the ends the next capture records -------------------------------- */

/* Set by the helper around its dump (fd_peer_marks): one dump at a time
 * in a helper, which is single-threaded. */
static const struct fd_peer_mark *marks;
static size_t nmarks;

void fd_peer_marks(const struct fd_peer_mark *m, size_t n)
{
	marks = m;
	nmarks = n;
}

static const struct fd_peer_mark *mark_of(uint64_t ino)
{
	for (size_t i = 0; i < nmarks; i++)
		if (marks[i].ino == ino)
			return &marks[i];
	return NULL;
}

int fd_peer_is(const struct fd_source *src)
{
	return mark_of(src->sb->st_ino) != NULL;
}

/* Option name of socket s as an int, or -1. */
static int int_opt(int s, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);

	return getsockopt(s, level, name, &v, &l) ? -1 : v;
}

/* The options of TCP socket s that a program sets and a restart's new
 * socket would not have: Nagle's algorithm off, keepalive and its times
 * (0 where they are a new socket's own).  Buffer sizes are not: a size
 * the kernel tuned by itself cannot be told from one the program set,
 * and setting it would stop the tuning. */
static void tcp_options(int s, struct img_peer_opts *o)
{
	int fresh = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	const int names[3] = {TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT};
	uint32_t *vals[3] = {&o->keepidle, &o->keepintvl, &o->keepcnt};

	memset(o, 0, sizeof(*o));
	if (int_opt(s, SOL_SOCKET, SO_KEEPALIVE) > 0)
		o->opts |= IMG_SOCKOPT_KEEPALIVE;
	if (int_opt(s, IPPROTO_TCP, TCP_NODELAY) > 0)
		o->opts |= IMG_SOCKOPT_NODELAY;
	for (int i = 0; i < 3; i++) {
		int v = int_opt(s, IPPROTO_TCP, names[i]);
		if (v > 0 && (fresh < 0 || v != int_opt(fresh, IPPROTO_TCP, names[i])))
			*vals[i] = (uint32_t)v;
	}
	if (fresh >= 0)
		close(fresh);
}

static int capture_peer(const struct fd_source *src, struct fd_entry *f)
{
	const struct fd_peer_mark *m = mark_of(src->sb->st_ino);
	struct img_peer p = m->p;
	struct img_peer_opts o;
	unsigned char *buf;
	int s, rc;

	if (p.kind != IMG_PEER_TCP)
		return fd_set_extra(f, &p, sizeof(p), m->bytes, p.nbytes);
	if ((s = fd_getfd(src->pid, f->d.fd)) < 0)
		return -1;
	tcp_options(s, &o);
	close(s);
	p.flags |= IMG_PEER_OPTS;
	buf = malloc(p.nbytes + sizeof(o));
	if (!buf) {
		err_set("out of memory");
		return -1;
	}
	if (p.nbytes)
		memcpy(buf, m->bytes, p.nbytes);
	memcpy(buf + p.nbytes, &o, sizeof(o));
	rc = fd_set_extra(f, &p, sizeof(p), buf, p.nbytes + sizeof(o));
	free(buf);
	return rc;
}

void fd_peer_options(int fd, const struct fd_entry *f)
{
	struct img_peer p;
	struct img_peer_opts o;
	const int names[3] = {TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT};
	int one = 1;

	if (f->d.kind != IMG_FD_PEER)
		return;
	memcpy(&p, f->extra, sizeof(p));
	if (!(p.flags & IMG_PEER_OPTS))
		return;
	memcpy(&o, f->extra + sizeof(p) + p.nbytes, sizeof(o));
	if (o.opts & IMG_SOCKOPT_KEEPALIVE)
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	if (o.opts & IMG_SOCKOPT_NODELAY)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (int i = 0; i < 3; i++) {
		int v = (int)(i == 0 ? o.keepidle : i == 1 ? o.keepintvl : o.keepcnt);
		if (v > 0)
			setsockopt(fd, IPPROTO_TCP, names[i], &v, sizeof(v));
	}
}

static int check_peer(const unsigned char *x, uint32_t n)
{
	struct img_peer p;

	if (n < sizeof(p))
		return -1;
	memcpy(&p, x, sizeof(p));
	if (p.kind < IMG_PEER_TCP || p.kind > IMG_PEER_PIPE || p.side > 1 ||
	    (p.flags & ~(IMG_PEER_SHUT_WR | IMG_PEER_OPTS)) ||
	    ((p.flags & IMG_PEER_OPTS) && p.kind != IMG_PEER_TCP) ||
	    p.nbytes != n - sizeof(p) - ((p.flags & IMG_PEER_OPTS) ? sizeof(struct img_peer_opts) : 0) ||
	    n - sizeof(p) < ((p.flags & IMG_PEER_OPTS) ? sizeof(struct img_peer_opts) : 0) ||
	    !memchr(p.peer_name, 0, sizeof(p.peer_name)))
		return -1;
	if (p.flags & IMG_PEER_OPTS) {
		struct img_peer_opts o;
		memcpy(&o, x + n - sizeof(o), sizeof(o));
		if (o.opts & ~(IMG_SOCKOPT_KEEPALIVE | IMG_SOCKOPT_NODELAY) ||
		    o.keepidle > 0x7fffffff || o.keepintvl > 0x7fffffff || o.keepcnt > 0x7fffffff)
			return -1;
	}
	for (size_t i = 0; i < sizeof(p.token); i++)
		if (!isxdigit((unsigned char)p.token[i]) || isupper((unsigned char)p.token[i]))
			return -1;
	for (const char *c = p.peer_name; *c; c++)
		if (*c < '!' || *c > '~')
			return -1;
	return 0;
}

static const char *const peer_kinds[] = {"?", "tcp", "unix", "pipe"};

int fd_peer_refuse(pid_t pid, const struct fd_entry *f)
{
	struct img_peer p;

	if (f->d.kind != IMG_FD_PEER || f->inherit)
		return 0;
	memcpy(&p, f->extra, sizeof(p));
	err_set("pid %d: fd %d: a %s connection to member %u (%s) of a coordinated computation, "
		"which only its restart script (ckpt-inject --restart) connects again; not supported",
		pid, f->d.fd, peer_kinds[p.kind], p.peer_id, p.peer_name);
	return -1;
}

static int make_peer(const struct fd_entry *f, struct fd_pipes *pipes)
{
	(void)pipes;
	return fd_peer_refuse(getpid(), f);
}

static void show_peer(FILE *out, const struct fd_entry *f, int json)
{
	struct img_peer p;

	memcpy(&p, f->extra, sizeof(p));
	fprintf(out, json ? ",\"peer_kind\":\"%s\",\"token\":\"%.32s\"" : " %s token %.32s",
		peer_kinds[p.kind], p.token);
	fd_put_num(out, json, "side", p.side);
	fd_put_num(out, json, "peer_member", p.peer_id);
	if (json) {
		fputs(",\"peer_name\":", out);
		json_str(out, p.peer_name, strlen(p.peer_name));
	} else {
		fprintf(out, " peer_name %s", p.peer_name);
	}
	fd_put_num(out, json, "bytes_kept", p.nbytes);
	if (p.flags & IMG_PEER_SHUT_WR)
		fputs(json ? ",\"shut_wr\":true" : " shut_wr", out);
	if (p.flags & IMG_PEER_OPTS) {
		struct img_peer_opts o;
		memcpy(&o, f->extra + sizeof(p) + p.nbytes, sizeof(o));
		if (o.opts & IMG_SOCKOPT_NODELAY)
			fputs(json ? ",\"nodelay\":true" : " nodelay", out);
		if (o.opts & IMG_SOCKOPT_KEEPALIVE)
			fputs(json ? ",\"keepalive\":true" : " keepalive", out);
		if (o.keepidle)
			fd_put_num(out, json, "keepidle", o.keepidle);
		if (o.keepintvl)
			fd_put_num(out, json, "keepintvl", o.keepintvl);
		if (o.keepcnt)
			fd_put_num(out, json, "keepcnt", o.keepcnt);
	}
}

const struct fd_ops fd_peer_ops = {
    .name = "peer",
    .capture = capture_peer,
    .check = check_peer,
    .make = make_peer,
    .show = show_peer,
};
