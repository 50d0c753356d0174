/* ckpt.h: what a program run by ckpt-inject may ask of its checkpoints
 * (ckpt.h(3)).  Header-only: include it, nothing to link.
 *
 * Each call is one connection to the member's helper, on the unix socket
 * $CKPT_API names (a socket in a directory only its user may enter),
 * one request line and one answer line, then closed: the program holds
 * no descriptor of the helper's between calls, so a checkpoint never
 * finds one in it.  Not under ckpt-inject ($CKPT_API unset, or nobody
 * answering), every call returns -1 with errno ENOSYS, and the program
 * goes on. */
#ifndef CKPT_H
#define CKPT_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct ckpt_status {
	int coordinated; /* 1: a member of a computation, 0: not (the rest is 0) */
	int member;      /* the member's id */
	int restarts;    /* times the program was restarted from a checkpoint */
	int generation;  /* the last generation holding its image (0: none yet) */
	int delayed;     /* ckpt_delay() depth */
	int timeout;     /* seconds a checkpoint waits for ckpt_allow() (0: no limit) */
};

/* The last failure's message (the helper's, or errno's). */
static inline char *ckpt_error_buf(void)
{
	static __thread char buf[512];
	return buf;
}

static inline const char *ckpt_strerror(void)
{
	return ckpt_error_buf();
}

static inline int ckpt_fail_(int e, const char *msg)
{
	snprintf(ckpt_error_buf(), 512, "%s", msg);
	errno = e;
	return -1;
}

/* One request, its answer (without "OK " or the newline) in ans; -1
 * with errno: ENOSYS not available, EIO the helper said ERR. */
static inline int ckpt_ask_(const char *req, char *ans, size_t size)
{
	const char *path = getenv("CKPT_API");
	struct sockaddr_un a;
	size_t len = 0;
	ssize_t n;
	int fd;

	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	if (!path || !*path || strlen(path) >= sizeof(a.sun_path))
		return ckpt_fail_(ENOSYS, "not under ckpt-inject (no CKPT_API)");
	memcpy(a.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ckpt_fail_(errno, strerror(errno));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return ckpt_fail_(ENOSYS, "no ckpt-inject helper answers on CKPT_API");
	}
	/* A helper that refuses us closes at once: never die of SIGPIPE. */
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		close(fd);
		return ckpt_fail_(ENOSYS, "the helper went away");
	}
	while (len < size - 1 && (n = read(fd, ans + len, size - 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		len += n;
		if (memchr(ans, '\n', len))
			break;
	}
	close(fd);
	ans[len] = 0;
	if (!len || !strchr(ans, '\n'))
		return ckpt_fail_(ENOSYS, "the helper went away");
	*strchr(ans, '\n') = 0;
	if (!strncmp(ans, "ERR ", 4))
		return ckpt_fail_(EIO, ans + 4);
	if (strncmp(ans, "OK", 2))
		return ckpt_fail_(EPROTO, ans);
	memmove(ans, ans + 2 + (ans[2] == ' '), strlen(ans + 2 + (ans[2] == ' ')) + 1);
	return 0;
}

/* Checkpoint the whole computation now, and wait for it: 0 when it is
 * written and this program goes on, 1 when this program has since been
 * restarted from it; *gen (if not NULL) its generation.  -1 with errno:
 * ENOSYS not under ckpt-inject, EDEADLK inside ckpt_delay(), EIO the
 * checkpoint failed (ckpt_strerror() says why). */
static inline int ckpt_checkpoint(int *gen)
{
	char ans[512], req[128], token[64];
	struct timespec ts;

	if (ckpt_ask_("CHECKPOINT\n", ans, sizeof(ans)))
		return -1;
	snprintf(token, sizeof(token), "%.63s", ans);
	snprintf(req, sizeof(req), "RESULT %s\n", token);
	/* Asked again and again, each time on a new connection: the
	 * checkpoint freezes this program between two of them. */
	for (;;) {
		ts.tv_sec = 0;
		ts.tv_nsec = 20 * 1000 * 1000;
		if (ckpt_ask_(req, ans, sizeof(ans)))
			return -1;
		if (strcmp(ans, "WAIT"))
			break;
		nanosleep(&ts, NULL);
	}
	if (gen)
		*gen = atoi(ans + (ans[0] == 'R' ? 10 : 0));
	return !strncmp(ans, "RESTARTED ", 10);
}

/* Hold checkpoints off until the matching ckpt_allow(): the depth, or -1
 * (ENOSYS).  A checkpoint asked for meanwhile waits, at most the
 * coordinator's --timeout; then it fails, naming the delay, and the
 * program goes on. */
static inline int ckpt_delay(void)
{
	char ans[128];

	return ckpt_ask_("DELAY\n", ans, sizeof(ans)) ? -1 : atoi(ans);
}

/* Undo one ckpt_delay(): the depth left (at 0 a waiting checkpoint
 * proceeds), or -1 (ENOSYS; EIO if none was held). */
static inline int ckpt_allow(void)
{
	char ans[128];

	return ckpt_ask_("ALLOW\n", ans, sizeof(ans)) ? -1 : atoi(ans);
}

/* What the helper knows: 0; or -1 with errno ENOSYS and st->coordinated 0. */
static inline int ckpt_status(struct ckpt_status *st)
{
	char ans[512];

	memset(st, 0, sizeof(*st));
	if (ckpt_ask_("STATUS\n", ans, sizeof(ans)))
		return -1;
	st->coordinated = 1;
	if (sscanf(ans, "member=%d restarts=%d gen=%d delayed=%d timeout=%d", &st->member,
		   &st->restarts, &st->generation, &st->delayed, &st->timeout) != 5)
		return ckpt_fail_(EPROTO, ans);
	return 0;
}

#endif
