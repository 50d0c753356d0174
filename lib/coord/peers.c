/* peers.c: connections between members, as a member's helper sees them
 * (ckpt-coord(1), CONNECTIONS).
 *
 * At a checkpoint, once its program is frozen, the helper reports the
 * ends the program holds whose other end is outside its tree (END); once
 * every member is frozen the coordinator pairs them and names each
 * connection to both of its ends (LINK, with a random token).  Then each
 * helper drains its ends: it writes a marker (the token and its side)
 * into its end, a duplicate of the program's socket, and reads until the
 * other side's marker, which comes after everything the other program
 * wrote before it was frozen (its send queue too): that is what this
 * program had not read yet.  The two helpers then swap what each drained
 * over the same connection (a length, then the bytes), and each writes
 * back what its peer had not read: the bytes land in the peer's receive
 * queue again, in order, before anything new.  The image records each
 * end with what was in flight to it (IMG_FD_PEER), and a list beside the
 * image (ckpt_NAME_ID.peers) names the ends for a restart.
 *
 * At a restart, before ckpt-remap runs, the helper makes every connection
 * again through the new coordinator: side 0 listens on its host's
 * address (the one it reaches the coordinator from) and says where
 * (LISTEN), side 1 asks (WANT), is told (CONNECT), connects and sends the
 * token; then both swap their kept bytes as above, and ckpt-inject hands
 * each connection to ckpt-remap as the program's fd (--inherit-fd).
 *
 * A half-closed TCP connection (one side shut down its writing: its FIN
 * came) has no marker from that side, and that side cannot send what it
 * drained.  So nothing is read from it: the side that received the FIN
 * has everything the other sent in its receive queue, and peeks it; the
 * side that sent it is sent one urgent byte (MSG_OOB, out of the stream:
 * its program never reads it) after everything else, and once that came
 * it peeks its receive queue, all of the other's bytes up to that mark.
 * At a restart the connection is made whole, the bytes written back, and
 * the side that had shut down its writing shuts it down again. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <stddef.h>
#include <unistd.h>

#include "coord/coord.h"
#include "base/base.h"

#define MAGIC "\377ckpt-peer-mark\377"
#define MAGIC_LEN 16
#define MARK_LEN (MAGIC_LEN + 32 + 1)
#define PEER_WAIT 60 /* seconds a drain or a restart waits for the other end */

enum { L_MARK, L_XCHG, L_BACK, L_DONE };
enum { H_MINE = 1, H_THEIRS = 2, H_URG_SENT = 4, H_URG_GOT = 8 }; /* shut: ours, theirs */

struct pr_link {
	struct fd_peer_mark mk; /* ino, the record, mk.bytes: what was in flight to us */
	struct fd_peer_end end;
	int s;	  /* our duplicate of the program's end; at a restart, the new connection */
	int lfd;  /* a restart's side 0: listening for it */
	int pipe_r, pipe_w; /* a restart's pipe, side 0: its ends, until the write end is
			     * handed over (then s is the read end) */
	int st;	  /* L_* */
	int half; /* H_*: a half-closed TCP connection, as the drain found it */
	unsigned char mark[MARK_LEN];
	size_t mark_off;
	unsigned char *in; /* L_MARK: all read so far */
	size_t nin, cap;
	unsigned char *mine; /* what was in flight to us (owned) */
	size_t nmine;
	size_t out_off; /* L_XCHG: of the 8-byte length and mine, sent */
	unsigned char hdr[8];
	size_t hdr_got;
	unsigned char *theirs; /* what was in flight to the peer: written back */
	size_t ntheirs, theirs_got, back_off;
};

struct mb_peers {
	int gen;
	struct fd_peer_end *ends; /* reported (END) */
	size_t nends;
	struct pr_link *l;
	size_t n;
	struct fd_peer_mark *marks;
	char **saved; /* coordinator lines a restart read that were not for it */
	size_t nsaved;
	struct fd_peer_end *tcp; /* the TCP ends drained, until the tree is let go */
	size_t ntcp;
};

static const char *const kind_word[] = {"?", "tcp", "unix", "pipe"};

static struct mb_peers *peers_of(struct mb_helper *h)
{
	if (!h->peers)
		h->peers = calloc(1, sizeof(*h->peers));
	return h->peers;
}

static void free_links(struct mb_peers *p)
{
	for (size_t i = 0; i < p->n; i++) {
		struct pr_link *l = &p->l[i];
		if (l->s >= 0)
			close(l->s);
		if (l->lfd >= 0)
			close(l->lfd);
		if (l->pipe_w >= 0)
			close(l->pipe_w);
		if (l->pipe_r >= 0)
			close(l->pipe_r);
		free(l->in);
		free(l->mine);
		free(l->theirs);
	}
	free(p->l);
	free(p->marks);
	p->l = NULL;
	p->marks = NULL;
	p->n = 0;
}

void mb_peers_clear(struct mb_helper *h)
{
	struct mb_peers *p = h->peers;

	if (!p)
		return;
	free_links(p);
	free(p->ends);
	p->ends = NULL;
	p->nends = 0;
}

/* A TCP end e whose writing its program shut down: the urgent byte the
 * last checkpoint's drain had sent it must be behind what the program
 * read, or the next one would make it a byte of the stream (the kernel
 * keeps one urgent mark).  Checked before FROZEN, so before the other
 * side sends the next: then a peek of all that is queued stops at no
 * mark.  -1 with err_set. */
static int urgent_read(const struct fd_peer_end *e)
{
	int pidfd = (int)syscall(SYS_pidfd_open, e->pid, 0), s, n = 0, rc = 0, at = 0;
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	unsigned char *buf;
	ssize_t k;

	s = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, e->fd, 0);
	if (pidfd >= 0)
		close(pidfd);
	if (s < 0)
		return 0; /* the dump names what it cannot take */
	if (getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &len) ||
	    (ti.tcpi_state != TCP_FIN_WAIT1 && ti.tcpi_state != TCP_FIN_WAIT2) ||
	    ioctl(s, FIONREAD, &n) || n <= 0 || !(buf = malloc((size_t)n))) {
		close(s);
		return 0;
	}
	k = recv(s, buf, (size_t)n, MSG_PEEK | MSG_DONTWAIT);
	/* At the mark (the next read skips it) the kernel skips it too when
	 * the next comes: only a mark further on is refused. */
	if (k >= 0 && k < n && !(ioctl(s, SIOCATMARK, &at) == 0 && at)) {
		err_set("pid %d: fd %d: a tcp connection from %s to %s, half-closed, whose program has "
			"not read past the last checkpoint's urgent byte yet; not supported",
			e->pid, e->fd, e->local, e->remote);
		rc = -1;
	}
	free(buf);
	close(s);
	return rc;
}

int mb_peers_report(struct mb_helper *h, int gen)
{
	struct mb_peers *p = peers_of(h);
	int rc;

	if (!p) {
		err_set("out of memory");
		return -1;
	}
	mb_peers_clear(h);
	mb_peers_let_go(h, 0);
	p->gen = gen;
	rc = dump_peer_ends(&h->tr, &p->ends, &p->nends);
	for (size_t i = 0; !rc && i < p->nends; i++)
		if (p->ends[i].kind == IMG_PEER_TCP)
			rc = urgent_read(&p->ends[i]);
	for (size_t i = 0; !rc && i < p->nends; i++) {
		char l[200], r[200];
		const struct fd_peer_end *e = &p->ends[i];
		if (co_escape(e->local, l, sizeof(l)) || co_escape(e->remote, r, sizeof(r)))
			continue;
		rc = co_send(h->sock, "END %d %s %s %s", gen, kind_word[e->kind], l, r);
	}
	return rc;
}

void mb_peers_link(struct mb_helper *h, const struct co_msg *m)
{
	struct mb_peers *p = h->peers;
	struct pr_link *nl, *l;

	if (!p || co_num(m->argv[0], CO_NUM_MAX) != p->gen || strlen(m->argv[1]) != 32)
		return;
	for (size_t i = 0; i < p->nends; i++) {
		const struct fd_peer_end *e = &p->ends[i];
		if (strcmp(e->local, m->argv[5]) || strcmp(e->remote, m->argv[6]))
			continue;
		if (!(nl = realloc(p->l, (p->n + 1) * sizeof(*nl))))
			return;
		p->l = nl;
		l = &nl[p->n++];
		*l = (struct pr_link){.end = *e, .s = -1, .lfd = -1, .pipe_r = -1, .pipe_w = -1, .st = L_MARK};
		l->mk.ino = e->ino;
		l->mk.p.kind = e->kind;
		l->mk.p.side = (uint32_t)co_num(m->argv[2], 1);
		l->mk.p.peer_id = (uint32_t)co_num(m->argv[3], UINT32_MAX);
		memcpy(l->mk.p.token, m->argv[1], 32);
		snprintf(l->mk.p.peer_name, sizeof(l->mk.p.peer_name), "%s", m->argv[4]);
		return;
	}
}

/* The marker side writes into its end: the token and its side. */
static void make_mark(unsigned char *out, const char *token, int side)
{
	memcpy(out, MAGIC, MAGIC_LEN);
	memcpy(out + MAGIC_LEN, token, 32);
	out[MAGIC_LEN + 32] = (unsigned char)('0' + side);
}

static int grow(struct pr_link *l, size_t want)
{
	unsigned char *n;
	size_t cap = l->cap ? l->cap : 65536;

	while (cap < want)
		cap *= 2;
	if (cap == l->cap)
		return 0;
	if (!(n = realloc(l->in, cap)))
		return -1;
	l->in = n;
	l->cap = cap;
	return 0;
}

/* A half-closed connection's step: the urgent byte sent if the other
 * side shut down, and what is in flight to us peeked, once all of it is
 * here (its FIN came, or the urgent byte after it). */
static int step_half(struct pr_link *l, const char *what)
{
	int n = 0, urg;
	ssize_t k;
	char c;

	if (!(l->half & (H_MINE | H_URG_SENT))) {
		k = send(l->s, "u", 1, MSG_OOB | MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k < 0 && errno != EAGAIN)
			goto io;
		l->half |= k == 1 ? H_URG_SENT : 0;
	}
	if (!(l->half & (H_THEIRS | H_URG_GOT))) {
		/* EINVAL: none yet (or an earlier checkpoint's, read). */
		k = recv(l->s, &c, 1, MSG_OOB | MSG_DONTWAIT);
		if (k < 0 && errno != EAGAIN && errno != EINVAL)
			goto io;
		l->half |= k == 1 ? H_URG_GOT : 0;
	}
	if (!l->mine && (l->half & (H_THEIRS | H_URG_GOT))) {
		if (ioctl(l->s, FIONREAD, &n) < 0)
			goto io;
		if (!(l->mine = malloc((size_t)n + 1)))
			goto mem;
		k = n ? recv(l->s, l->mine, (size_t)n, MSG_PEEK | MSG_DONTWAIT) : 0;
		if (k < 0 && errno != EAGAIN)
			goto io;
		k = k < 0 ? 0 : k;
		/* The urgent byte is counted in what is queued, never read. */
		urg = (l->half & H_URG_GOT) != 0;
		if (k + urg < n) {
			free(l->mine);
			l->mine = NULL;
			return 0;
		}
		l->nmine = (size_t)k;
	}
	if (l->mine && (l->half & (H_MINE | H_URG_SENT)))
		l->st = L_DONE;
	return 0;
io:
	err_sys("%s", what);
	return -1;
mem:
	err_set("%s: out of memory", what);
	return -1;
}

/* One step of l as far as it goes without blocking: 0, or -1 with
 * err_set.  Reads after the marker are exact: what follows the peer's
 * length and bytes is what it writes back, and stays in the socket. */
static int step(struct pr_link *l, const char *what)
{
	ssize_t k;

	if (l->half)
		return step_half(l, what);

	if (l->st == L_MARK) {
		unsigned char want[MARK_LEN];
		if (l->mark_off < MARK_LEN) {
			k = send(l->s, l->mark + l->mark_off, MARK_LEN - l->mark_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (k < 0 && errno != EAGAIN)
				goto io;
			l->mark_off += k > 0 ? (size_t)k : 0;
			if (l->mark_off < MARK_LEN)
				return 0; /* reads wait for it: the search needs it out */
		}
		if (grow(l, l->nin + 65536))
			goto mem;
		k = recv(l->s, l->in + l->nin, l->cap - l->nin, MSG_DONTWAIT);
		if (k == 0) {
			err_set("%s: closed by the other end before its marker", what);
			return -1;
		}
		if (k < 0 && errno != EAGAIN)
			goto io;
		if (k > 0) {
			size_t from = l->nin > MARK_LEN ? l->nin - MARK_LEN : 0;
			unsigned char *at;
			l->nin += (size_t)k;
			make_mark(want, l->mk.p.token, !l->mk.p.side);
			at = memmem(l->in + from, l->nin - from, want, MARK_LEN);
			if (at) {
				size_t pos = (size_t)(at - l->in), rest = l->nin - pos - MARK_LEN;
				l->mine = malloc(pos + 1);
				if (!l->mine)
					goto mem;
				memcpy(l->mine, l->in, pos);
				l->nmine = pos;
				/* What came after the marker is the start of the
				 * peer's length and bytes. */
				memmove(l->in, at + MARK_LEN, rest);
				l->nin = rest;
				l->st = L_XCHG;
			}
		}
		if (l->st == L_MARK)
			return 0;
	}
	if (l->st == L_XCHG) {
		uint64_t len = l->nmine;
		while (l->out_off < 8 + l->nmine) {
			unsigned char h8[8];
			const unsigned char *src;
			size_t left;
			memcpy(h8, &len, 8);
			src = l->out_off < 8 ? h8 + l->out_off : l->mine + (l->out_off - 8);
			left = l->out_off < 8 ? 8 - l->out_off : l->nmine - (l->out_off - 8);
			k = send(l->s, src, left, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (k < 0 && errno == EAGAIN)
				break;
			if (k < 0)
				goto io;
			l->out_off += (size_t)k;
		}
		for (;;) {
			unsigned char *dst;
			size_t want;
			if (l->hdr_got < 8) {
				dst = l->hdr + l->hdr_got;
				want = 8 - l->hdr_got;
			} else {
				if (!l->theirs) {
					uint64_t n;
					memcpy(&n, l->hdr, 8);
					if (n > (1ull << 32)) {
						err_set("%s: the other end sent %llu bytes to keep", what,
							(unsigned long long)n);
						return -1;
					}
					l->ntheirs = n;
					if (!(l->theirs = malloc(n + 1)))
						goto mem;
				}
				dst = l->theirs + l->theirs_got;
				want = l->ntheirs - l->theirs_got;
			}
			if (!want)
				break;
			if (l->nin) { /* what came with the marker first */
				k = (ssize_t)(want < l->nin ? want : l->nin);
				memcpy(dst, l->in, (size_t)k);
				memmove(l->in, l->in + k, l->nin - (size_t)k);
				l->nin -= (size_t)k;
			} else {
				k = recv(l->s, dst, want, MSG_DONTWAIT);
				if (k == 0) {
					err_set("%s: closed by the other end", what);
					return -1;
				}
				if (k < 0 && errno == EAGAIN)
					break;
				if (k < 0)
					goto io;
			}
			if (l->hdr_got < 8)
				l->hdr_got += (size_t)k;
			else
				l->theirs_got += (size_t)k;
		}
		if (l->out_off < 8 + l->nmine || l->hdr_got < 8 || l->theirs_got < l->ntheirs)
			return 0;
		l->st = L_BACK;
	}
	while (l->st == L_BACK && l->back_off < l->ntheirs) {
		k = send(l->s, l->theirs + l->back_off, l->ntheirs - l->back_off,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k < 0 && errno == EAGAIN)
			return 0;
		if (k < 0)
			goto io;
		l->back_off += (size_t)k;
	}
	l->st = L_DONE;
	return 0;
io:
	err_sys("%s", what);
	return -1;
mem:
	err_set("%s: out of memory", what);
	return -1;
}

static void link_name(const struct pr_link *l, char *out, size_t size)
{
	snprintf(out, size, "pid %d: fd %d: the %s connection to member %u (%s)", l->end.pid,
		 l->end.fd, kind_word[l->mk.p.kind], l->mk.p.peer_id, l->mk.p.peer_name);
}

/* Run every link to L_DONE, all at once (one may wait for a peer that
 * waits for another); -1 with err_set naming the first that fails or
 * does not finish within PEER_WAIT seconds. */
static int run_links(struct pr_link *l, size_t n)
{
	struct pollfd *pfd = calloc(n + 1, sizeof(*pfd));
	double until = now_sec() + PEER_WAIT;
	char what[300];

	if (!pfd) {
		err_set("out of memory");
		return -1;
	}
	for (;;) {
		size_t busy = 0;
		for (size_t i = 0; i < n; i++) {
			link_name(&l[i], what, sizeof(what));
			if (l[i].st != L_DONE && step(&l[i], what)) {
				free(pfd);
				return -1;
			}
			/* Wait for what the step waits for: writable only
			 * while it has bytes to write (else poll spins). */
			pfd[i] = (struct pollfd){.fd = l[i].st == L_DONE ? -1 : l[i].s};
			if (l[i].half)
				pfd[i].events = POLLPRI | (l[i].half & (H_MINE | H_URG_SENT) ? 0 : POLLOUT);
			else if (l[i].st == L_MARK)
				pfd[i].events = l[i].mark_off < MARK_LEN ? POLLOUT : POLLIN;
			else if (l[i].st == L_BACK)
				pfd[i].events = POLLOUT;
			else if (l[i].st == L_XCHG)
				pfd[i].events = (l[i].out_off < 8 + l[i].nmine ? POLLOUT : 0) |
						(l[i].hdr_got < 8 || l[i].theirs_got < l[i].ntheirs
						     ? POLLIN
						     : 0);
			busy += l[i].st != L_DONE;
		}
		if (!busy)
			break;
		if (now_sec() > until) {
			for (size_t i = 0; i < n; i++)
				if (l[i].st != L_DONE) {
					link_name(&l[i], what, sizeof(what));
					err_set("%s: the other end did not drain it within %d s", what,
						PEER_WAIT);
					break;
				}
			free(pfd);
			return -1;
		}
		poll(pfd, n, 100);
	}
	free(pfd);
	return 0;
}

/* Whether l's TCP connection is half-closed, into l->half (a FIN of
 * ours still unanswered is waited for a little); our shutdown is kept
 * in the record.  -1 with err_set. */
static int tcp_half(struct pr_link *l, const char *what)
{
	double until = now_sec() + 5;
	struct tcp_info ti;
	socklen_t len;
	int inl = 0;

	for (;;) {
		len = sizeof(ti);
		if (getsockopt(l->s, IPPROTO_TCP, TCP_INFO, &ti, &len)) {
			err_sys("%s: its state", what);
			return -1;
		}
		if (ti.tcpi_state != TCP_FIN_WAIT1 || now_sec() > until)
			break;
		poll(NULL, 0, 10);
	}
	switch (ti.tcpi_state) {
	case TCP_ESTABLISHED:
		l->half = 0;
		return 0;
	case TCP_FIN_WAIT1:
	case TCP_FIN_WAIT2:
		l->half = H_MINE;
		break;
	case TCP_CLOSE_WAIT:
		l->half = H_THEIRS;
		break;
	case TCP_LAST_ACK:
	case TCP_CLOSING:
		l->half = H_MINE | H_THEIRS;
		break;
	default:
		err_set("%s: closed meanwhile (TCP state %u)", what, ti.tcpi_state);
		return -1;
	}
	len = sizeof(inl);
	if (l->half == H_MINE && !getsockopt(l->s, SOL_SOCKET, SO_OOBINLINE, &inl, &len) && inl) {
		err_set("pid %d: fd %d: a tcp connection to member %u, half-closed, whose program "
			"reads urgent data inline (SO_OOBINLINE); not supported",
			l->end.pid, l->end.fd, l->mk.p.peer_id);
		return -1;
	}
	if (l->half & H_MINE)
		l->mk.p.flags |= IMG_PEER_SHUT_WR;
	return 0;
}

int mb_peers_drain(struct mb_helper *h)
{
	struct mb_peers *p = h->peers;
	char what[300];

	if (!p || !p->n)
		return 0;
	for (size_t i = 0; i < p->n; i++) {
		struct pr_link *l = &p->l[i];
		int pidfd;
		link_name(l, what, sizeof(what));
		/* A pipe's bytes are all the reader's, and stay where they are
		 * (tee): nothing to swap, nothing to write back. */
		if (l->mk.p.kind == IMG_PEER_PIPE) {
			uint32_t len = 0;
			if (l->mk.p.side == 0 && dump_pipe_peek(l->end.pid, l->end.fd, &l->mine, &len))
				return -1;
			l->nmine = len;
			l->st = L_DONE;
			continue;
		}
		pidfd = (int)syscall(SYS_pidfd_open, l->end.pid, 0);
		l->s = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, l->end.fd, 0);
		if (pidfd >= 0)
			close(pidfd);
		if (l->s < 0) {
			err_sys("%s: cannot take a duplicate", what);
			return -1;
		}
		make_mark(l->mark, l->mk.p.token, (int)l->mk.p.side);
		if (l->mk.p.kind == IMG_PEER_TCP && tcp_half(l, what))
			return -1;
	}
	if (run_links(p->l, p->n))
		return -1;
	if (!(p->marks = calloc(p->n, sizeof(*p->marks)))) {
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < p->n; i++) {
		p->l[i].mk.p.nbytes = p->l[i].nmine;
		p->l[i].mk.bytes = p->l[i].mine;
		p->marks[i] = p->l[i].mk;
	}
	free(p->tcp);
	p->ntcp = 0;
	if ((p->tcp = calloc(p->n, sizeof(*p->tcp))))
		for (size_t i = 0; i < p->n; i++)
			if (p->l[i].mk.p.kind == IMG_PEER_TCP)
				p->tcp[p->ntcp++] = p->l[i].end;
	return 0;
}

void mb_peers_let_go(struct mb_helper *h, int killed)
{
	struct mb_peers *p = h->peers;
	struct linger lg = {1, 0};

	if (!p)
		return;
	/* The tree is frozen until now: each end is still at its fd. */
	for (size_t i = 0; killed && i < p->ntcp; i++) {
		int pidfd = (int)syscall(SYS_pidfd_open, p->tcp[i].pid, 0), s = -1;
		if (pidfd >= 0)
			s = (int)syscall(SYS_pidfd_getfd, pidfd, p->tcp[i].fd, 0);
		if (s >= 0) {
			setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(s);
		}
		if (pidfd >= 0)
			close(pidfd);
	}
	free(p->tcp);
	p->tcp = NULL;
	p->ntcp = 0;
}

const struct fd_peer_mark *mb_peers_marks(struct mb_helper *h, size_t *n)
{
	*n = h->peers && h->peers->marks ? h->peers->n : 0;
	return *n ? h->peers->marks : NULL;
}

/* "dir/ckpt_x_1.ckpt.zst" -> "dir/ckpt_x_1.peers". */
static void list_path(const char *img, char *out, size_t size)
{
	const char *base = strrchr(img, '/') ? strrchr(img, '/') + 1 : img;
	const char *p = strstr(base, ".ckpt");

	snprintf(out, size, "%.*s.peers", (int)(p ? p - img : (long)strlen(img)), img);
}

int mb_peers_write(struct mb_helper *h, int dfd, const char *img_name)
{
	struct mb_peers *p = h->peers;
	char name[NAME_MAX + 16];
	FILE *f;
	int fd, rc = 0;

	list_path(img_name, name, sizeof(name));
	if (unlinkat(dfd, name, 0) && errno != ENOENT) {
		err_sys("cannot replace %s", name);
		return -1;
	}
	if (!p || !p->n)
		return 0;
	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		err_sys("cannot create %s", name);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	for (size_t i = 0; i < p->n; i++) {
		const struct img_peer *r = &p->l[i].mk.p;
		char esc[200];
		if (co_escape(r->peer_name, esc, sizeof(esc)))
			snprintf(esc, sizeof(esc), "-");
		fprintf(f, "PEER %.32s %u %d %s %u %s %llu %u\n", r->token, r->side, p->l[i].end.fd,
			kind_word[r->kind], r->peer_id, esc, (unsigned long long)r->nbytes, r->flags);
		fwrite(p->l[i].mine, 1, r->nbytes, f);
		fputc('\n', f);
	}
	if (fflush(f) || fsync(fd)) {
		err_sys("cannot write %s", name);
		rc = -1;
	}
	fclose(f);
	return rc;
}

/* The list beside img into p->l (none if there is no list); -1 with
 * err_set. */
static int read_list(struct mb_peers *p, const char *img)
{
	char path[PATH_MAX + 16], line[512];
	struct stat sb;
	FILE *f;

	list_path(img, path, sizeof(path));
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : (err_sys("cannot read %s", path), -1);
	/* Written by this user's helper, or not taken. */
	if (fstat(fileno(f), &sb) || sb.st_uid != geteuid() || (sb.st_mode & 022)) {
		fclose(f);
		err_set("%s: not this user's alone: refused", path);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char token[64], kind[16], name[200];
		unsigned side, peer, flags;
		unsigned long long n;
		int fd, k = 0, got;
		struct pr_link *nl, *l;

		/* The flags came later: a list without them has none. */
		flags = 0;
		got = sscanf(line, "PEER %63s %u %d %15s %u %199s %llu %u", token, &side, &fd, kind,
			     &peer, name, &n, &flags);
		if ((got != 7 && got != 8) || strlen(token) != 32 || side > 1 || fd < 0 ||
		    co_unescape(name) || n > (1ull << 32) || (flags & ~IMG_PEER_SHUT_WR)) {
			err_set("%s: a line that is not one of ours: %.80s", path, line);
			fclose(f);
			return -1;
		}
		for (k = 1; k <= IMG_PEER_PIPE && strcmp(kind, kind_word[k]); k++)
			;
		if (!(nl = realloc(p->l, (p->n + 1) * sizeof(*nl)))) {
			fclose(f);
			err_set("out of memory");
			return -1;
		}
		p->l = nl;
		l = &nl[p->n++];
		*l = (struct pr_link){.s = -1, .lfd = -1, .pipe_r = -1, .pipe_w = -1, .st = L_XCHG};
		l->end.fd = fd;
		l->end.kind = (uint32_t)(k > IMG_PEER_PIPE ? 0 : k);
		l->mk.p.kind = l->end.kind;
		l->mk.p.side = side;
		l->mk.p.peer_id = peer;
		l->mk.p.flags = flags;
		memcpy(l->mk.p.token, token, 32);
		snprintf(l->mk.p.peer_name, sizeof(l->mk.p.peer_name), "%.63s", name);
		l->nmine = n;
		if (!(l->mine = malloc(n + 1)) || fread(l->mine, 1, n, f) != n || fgetc(f) != '\n' ||
		    !l->end.kind) {
			err_set("%s: connection %s: %s", path, token,
				!l->end.kind ? "not a kind a restart connects" : "cut short");
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

/* The abstract unix socket a restarted pipe's write end is handed over
 * on, on this host: "@ckpt-peer-TOKEN", in sockaddr form. */
static socklen_t pipe_addr(const struct pr_link *l, struct sockaddr_un *a)
{
	*a = (struct sockaddr_un){.sun_family = AF_UNIX};
	snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "ckpt-peer-%.32s", l->mk.p.token);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(a->sun_path + 1));
}

/* Side 0 of a pipe, its read end: the pipe made again with the bytes
 * that were in it, its write end offered to side 1's helper on this host
 * (LISTEN token @NAME 1).  Side 0 of a unix connection: a socket pair,
 * its second socket offered so. */
static int pipe_listen(struct mb_helper *h, struct pr_link *l)
{
	struct sockaddr_un a;
	socklen_t al = pipe_addr(l, &a);
	char what[300];
	int p[2], unix_ = l->mk.p.kind == IMG_PEER_UNIX;

	link_name(l, what, sizeof(what));
	if (unix_ ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) : pipe2(p, O_CLOEXEC)) {
		err_sys("%s: cannot make a %s", what, unix_ ? "socket pair" : "pipe");
		return -1;
	}
	l->s = -1;
	l->pipe_r = p[0];
	l->pipe_w = p[1];
	if (!unix_ && ((l->nmine > 65536 && fcntl(p[1], F_SETPIPE_SZ, (int)l->nmine) < 0) ||
		       write_all(p[1], l->mine, l->nmine))) {
		err_sys("%s: cannot put its %zu bytes back", what, l->nmine);
		return -1;
	}
	if (!unix_)
		l->nmine = 0; /* delivered */
	l->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->lfd < 0 || bind(l->lfd, (struct sockaddr *)&a, al) || listen(l->lfd, 8)) {
		err_sys("%s: cannot offer its other end", what);
		return -1;
	}
	return co_send(h->sock, "LISTEN %.32s @%s 1", l->mk.p.token, a.sun_path + 1);
}

/* Side 0 of a pipe or unix connection: a helper asked for the other end;
 * it must be this user's and know the token. */
static void pipe_accept(struct pr_link *l)
{
	char tok[32], cbuf[CMSG_SPACE(sizeof(int))] = {0};
	struct ucred cr;
	socklen_t cl = sizeof(cr);
	struct pollfd pf;
	size_t got = 0;
	int s = accept4(l->lfd, NULL, NULL, SOCK_CLOEXEC);
	struct iovec iov = {.iov_base = "p", .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	if (s < 0)
		return;
	pf = (struct pollfd){.fd = s, .events = POLLIN};
	while (got < 32 && poll(&pf, 1, 1000) == 1) {
		ssize_t k = read(s, tok + got, 32 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &l->pipe_w, sizeof(int));
	if (got == 32 && !memcmp(tok, l->mk.p.token, 32) &&
	    !getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &cl) && cr.uid == geteuid() &&
	    sendmsg(s, &mh, MSG_NOSIGNAL) == 1) {
		close(l->pipe_w);
		l->pipe_w = -1;
		close(l->lfd);
		l->lfd = -1;
		l->s = l->pipe_r;
		l->pipe_r = -1;
	}
	close(s);
}

/* Side 1 of a pipe, its write end, or of a unix connection: taken from
 * side 0's helper. */
static int pipe_connect(struct pr_link *l)
{
	struct sockaddr_un a;
	socklen_t al = pipe_addr(l, &a);
	char what[300], cbuf[CMSG_SPACE(sizeof(int))], b;
	struct iovec iov = {.iov_base = &b, .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	link_name(l, what, sizeof(what));
	if (s < 0 || connect(s, (struct sockaddr *)&a, al) || write_all(s, l->mk.p.token, 32) ||
	    recvmsg(s, &mh, MSG_CMSG_CLOEXEC) != 1 || !(c = CMSG_FIRSTHDR(&mh)) ||
	    c->cmsg_type != SCM_RIGHTS) {
		err_sys("%s: cannot take its end from member %u's helper", what, l->mk.p.peer_id);
		if (s >= 0)
			close(s);
		return -1;
	}
	memcpy(&l->s, CMSG_DATA(c), sizeof(int));
	close(s);
	return 0;
}

/* Side 0 of l: listen on the address we reach the coordinator from, and
 * say where (LISTEN). */
static int listen_for(struct mb_helper *h, struct pr_link *l)
{
	struct sockaddr_storage a;
	socklen_t len = sizeof(a);
	char ip[INET6_ADDRSTRLEN], what[300];
	const void *in;
	int port;

	link_name(l, what, sizeof(what));
	if (getsockname(h->sock, (struct sockaddr *)&a, &len)) {
		err_sys("%s: cannot tell our address", what);
		return -1;
	}
	if (a.ss_family == AF_INET) {
		((struct sockaddr_in *)&a)->sin_port = 0;
		in = &((struct sockaddr_in *)&a)->sin_addr;
	} else {
		((struct sockaddr_in6 *)&a)->sin6_port = 0;
		in = &((struct sockaddr_in6 *)&a)->sin6_addr;
	}
	l->lfd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->lfd < 0 || bind(l->lfd, (struct sockaddr *)&a, len) || listen(l->lfd, 8) ||
	    getsockname(l->lfd, (struct sockaddr *)&a, &len) ||
	    !inet_ntop(a.ss_family, in, ip, sizeof(ip))) {
		err_sys("%s: cannot listen for it", what);
		return -1;
	}
	port = ntohs(a.ss_family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port
					    : ((struct sockaddr_in6 *)&a)->sin6_port);
	return co_send(h->sock, "LISTEN %.32s %s %d", l->mk.p.token, ip, port);
}

/* CONNECT token addr port: connect there and say which connection this is. */
static int connect_to(struct pr_link *l, const char *addr, int port)
{
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
	int v6 = strchr(addr, ':') != NULL;
	char what[300];

	link_name(l, what, sizeof(what));
	if ((v6 ? inet_pton(AF_INET6, addr, &a6.sin6_addr) : inet_pton(AF_INET, addr, &a4.sin_addr)) !=
	    1) {
		err_set("%s: the coordinator named no address: %s", what, addr);
		return -1;
	}
	l->s = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->s < 0 ||
	    (v6 ? connect(l->s, (struct sockaddr *)&a6, sizeof(a6))
		: connect(l->s, (struct sockaddr *)&a4, sizeof(a4))) ||
	    write_all(l->s, l->mk.p.token, 32)) {
		err_sys("%s: cannot connect to %s port %d", what, addr, port);
		return -1;
	}
	return 0;
}

/* A connection came to side 0's listener: it is ours if it says our
 * token (within a second), else it is dropped. */
static void accept_one(struct pr_link *l)
{
	char tok[32];
	struct pollfd pf;
	size_t got = 0;
	int s = accept4(l->lfd, NULL, NULL, SOCK_CLOEXEC);

	if (s < 0)
		return;
	pf = (struct pollfd){.fd = s, .events = POLLIN};
	while (got < 32 && poll(&pf, 1, 1000) == 1) {
		ssize_t k = read(s, tok + got, 32 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	if (got == 32 && !memcmp(tok, l->mk.p.token, 32)) {
		l->s = s;
		close(l->lfd);
		l->lfd = -1;
	} else {
		close(s);
	}
}

/* The coordinator's lines while the connections are made: CONNECT for
 * ours; anything else is kept for the helper's loop (mb_peers_saved). */
static int coord_line(struct mb_helper *h, struct mb_peers *p, char *line)
{
	struct co_msg m;
	char **ns;

	if (!co_parse(line, strlen(line), &m) && m.verb == CO_CONNECT) {
		for (size_t i = 0; i < p->n; i++)
			if (!strncmp(p->l[i].mk.p.token, m.argv[0], 32) && p->l[i].s < 0)
				return p->l[i].mk.p.kind != IMG_PEER_TCP
					   ? pipe_connect(&p->l[i])
					   : connect_to(&p->l[i], m.argv[1],
							(int)co_num(m.argv[2], 65535));
		return 0;
	}
	if (!strncmp(line, "ERR", 3)) {
		err_set("the coordinator: %s", line);
		return -1;
	}
	if (!(ns = realloc(p->saved, (p->nsaved + 1) * sizeof(*ns))) || !(ns[p->nsaved] = strdup(line)))
		return -1;
	p->saved = ns;
	p->nsaved++;
	(void)h;
	return 0;
}

int mb_peers_restart(struct mb_helper *h, const char *img, int **ours, char (**tokens)[33],
		     size_t *n)
{
	struct mb_peers *p = peers_of(h);
	struct pollfd *pfd;
	double until = now_sec() + PEER_WAIT;
	char what[300];

	*ours = NULL;
	*tokens = NULL;
	*n = 0;
	if (!p) {
		err_set("out of memory");
		return -1;
	}
	if (read_list(p, img))
		return -1;
	if (!p->n)
		return 0;
	for (size_t i = 0; i < p->n; i++) {
		struct pr_link *l = &p->l[i];
		int pipe = l->mk.p.kind != IMG_PEER_TCP; /* made here, an end handed over */
		if (l->mk.p.side == 0 ? (pipe ? pipe_listen(h, l) : listen_for(h, l))
				      : co_send(h->sock, "WANT %.32s", l->mk.p.token))
			return -1;
	}
	if (!(pfd = calloc(p->n + 1, sizeof(*pfd)))) {
		err_set("out of memory");
		return -1;
	}
	for (;;) {
		size_t waiting = 0;
		char *line;
		int k;
		pfd[0] = (struct pollfd){.fd = h->sock, .events = POLLIN};
		for (size_t i = 0; i < p->n; i++) {
			pfd[i + 1] = (struct pollfd){.fd = p->l[i].lfd, .events = POLLIN};
			waiting += p->l[i].s < 0;
		}
		if (!waiting)
			break;
		if (now_sec() > until) {
			for (size_t i = 0; i < p->n; i++)
				if (p->l[i].s < 0) {
					link_name(&p->l[i], what, sizeof(what));
					err_set("%s: its other end did not come within %d s (is member %u "
						"restarted too?)",
						what, PEER_WAIT, p->l[i].mk.p.peer_id);
					break;
				}
			free(pfd);
			return -1;
		}
		poll(pfd, p->n + 1, 100);
		for (size_t i = 0; i < p->n; i++)
			if (pfd[i + 1].revents && p->l[i].lfd >= 0) {
				if (p->l[i].mk.p.kind != IMG_PEER_TCP)
					pipe_accept(&p->l[i]);
				else
					accept_one(&p->l[i]);
			}
		if (!pfd[0].revents)
			continue;
		if (co_fill(&h->r) == 0) {
			free(pfd);
			err_set("the coordinator went away");
			return -1;
		}
		while ((k = co_next_line(&h->r, &line)) != 0)
			if (k > 0 && coord_line(h, p, line)) {
				free(pfd);
				return -1;
			}
	}
	free(pfd);
	for (size_t i = 0; i < p->n; i++) {
		p->l[i].end.pid = h->pid;
		if (p->l[i].mk.p.kind == IMG_PEER_PIPE)
			p->l[i].st = L_DONE; /* its bytes are in it already */
	}
	if (run_links(p->l, p->n))
		return -1;
	/* Its bytes written back, an end that had shut down its writing
	 * does again (the other end reads them, then its end). */
	for (size_t i = 0; i < p->n; i++)
		if ((p->l[i].mk.p.flags & IMG_PEER_SHUT_WR) && p->l[i].mk.p.kind == IMG_PEER_TCP &&
		    shutdown(p->l[i].s, SHUT_WR)) {
			link_name(&p->l[i], what, sizeof(what));
			err_sys("%s: cannot shut down its writing again", what);
			return -1;
		}
	*ours = calloc(p->n, sizeof(int));
	*tokens = calloc(p->n, sizeof(**tokens));
	if (!*ours || !*tokens) {
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < p->n; i++) {
		(*ours)[i] = p->l[i].s;
		memcpy((*tokens)[i], p->l[i].mk.p.token, 32);
	}
	*n = p->n;
	return 0;
}

char *mb_peers_saved(struct mb_helper *h, size_t i)
{
	return h->peers && i < h->peers->nsaved ? h->peers->saved[i] : NULL;
}
