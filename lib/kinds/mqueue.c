/* mqueue.c: POSIX message queues (mq_open): the queue's name, attributes, mode and owner, and the
 * messages queued in it with their priorities; made again under its name. */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

#ifndef MQUEUE_MAGIC
#define MQUEUE_MAGIC 0x19800202
#endif

/* The kernel's hard limits (HARD_MSGMAX, HARD_MSGSIZEMAX, MQ_PRIO_MAX). */
#define MQ_MAXMSG_MAX 65536
#define MQ_MSGSIZE_MAX (16 << 20)
#define MQ_PRIO_LIMIT 32768

int fd_is_mqueue(pid_t pid, int fd)
{
	char path[64];
	struct statfs sf;

	return statfs(fmt_path(path, sizeof(path), "/proc/%d/fd/%d", pid, fd), &sf) == 0 &&
	       sf.f_type == MQUEUE_MAGIC;
}

/* Reading the queue's file gives "QSIZE:... NOTIFY:... SIGNO:...
 * NOTIFY_PID:N": N is the process registered with mq_notify, 0 if none. */
static int notify_pid(int q)
{
	char buf[256] = {0};
	const char *v;

	if (pread(q, buf, sizeof(buf) - 1, 0) < 0 || !(v = strstr(buf, "NOTIFY_PID:")))
		return 0;
	return atoi(v + 11);
}

/* Every message of the queue, taken through q (our own open file
 * description, O_NONBLOCK) in the order mq_receive gives them: highest
 * priority first, oldest first within one; into *msgs.  Given back in the
 * same order unless the dump ends with --kill. */
static int take_messages(const struct fd_source *src, int fd, int q, const struct img_mqueue *m,
			 unsigned char **msgs, uint64_t *len, uint32_t *n)
{
	unsigned char *buf = malloc(m->msgsize), *np;
	unsigned prio;
	ssize_t got;

	if (!buf) {
		err_set("out of memory");
		return -1;
	}
	while ((got = mq_receive(q, (char *)buf, m->msgsize, &prio)) >= 0) {
		struct img_mq_msg h = {.prio = prio, .len = got};

		if (!(np = realloc(*msgs, *len + sizeof(h) + got))) {
			err_set("out of memory");
			free(buf);
			return -1;
		}
		*msgs = np;
		memcpy(np + *len, &h, sizeof(h));
		memcpy(np + *len + sizeof(h), buf, got);
		*len += sizeof(h) + got;
		(*n)++;
	}
	free(buf);
	if (errno != EAGAIN) {
		err_sys("pid %d: fd %d: cannot read the messages of POSIX message queue %s",
			src->pid, fd, src->link);
		return -1;
	}
	return 0;
}

/* Send the n messages of msgs into q, in their order. */
static int put_messages(int q, const unsigned char *msgs, uint32_t n)
{
	for (uint32_t k = 0; k < n; k++) {
		struct img_mq_msg h;

		memcpy(&h, msgs, sizeof(h));
		if (mq_send(q, (const char *)msgs + sizeof(h), h.len, h.prio))
			return -1;
		msgs += sizeof(h) + h.len;
	}
	return 0;
}

static int capture_mqueue(const struct fd_source *src, struct fd_entry *f)
{
	struct img_mqueue m = {0};
	unsigned char *msgs = NULL;
	struct mq_attr a;
	char path[64];
	int q, rc = -1, np;
	size_t l = strlen(src->link);

	if (l > 10 && !strcmp(src->link + l - 10, " (deleted)")) {
		err_set(
		    "pid %d: fd %d is POSIX message queue %s, removed (mq_unlink); not supported",
		    src->pid, f->d.fd, src->link);
		return -1;
	}
	/* A description of our own, read-write and non-blocking whatever
	 * the program's is: the program's flags are not ours to change. */
	q = open(fmt_path(path, sizeof(path), "/proc/%d/fd/%d", src->pid, f->d.fd),
		 O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (q < 0 || mq_getattr(q, &a)) {
		err_sys("pid %d: fd %d: cannot open POSIX message queue %s", src->pid, f->d.fd,
			src->link);
		goto out;
	}
	if ((np = notify_pid(q))) {
		err_set("pid %d: fd %d: POSIX message queue %s has a notification registered "
			"(mq_notify, by pid %d); not supported",
			src->pid, f->d.fd, src->link, np);
		goto out;
	}
	m.maxmsg = a.mq_maxmsg;
	m.msgsize = a.mq_msgsize;
	m.mode = src->sb->st_mode & 07777;
	m.uid = src->sb->st_uid;
	m.gid = src->sb->st_gid;
	if (take_messages(src, f->d.fd, q, &m, &msgs, &m.data_len, &m.nmsgs))
		goto out;
	/* The process is frozen: only we see the queue empty meanwhile.
	 * Given back even for --kill: a refusal may yet come. */
	if (put_messages(q, msgs, m.nmsgs)) {
		err_sys("pid %d: fd %d: cannot give the messages back to POSIX message queue %s",
			src->pid, f->d.fd, src->link);
		goto out;
	}
	rc = fd_set_extra(f, &m, sizeof(m), msgs, m.data_len);
out:
	if (q >= 0)
		close(q);
	free(msgs);
	return rc;
}

/* A dump that ends with --kill empties the queue, so that the restore
 * finds it as a queue nobody uses: its messages are in the image.  Last
 * of the joins (the kinds' joins go by number), after every refusal of
 * the capture and the joins. */
static void drain(pid_t pid, const struct fd_entry *f)
{
	char path[64];
	int q = open(fmt_path(path, sizeof(path), "/proc/%d/fd/%d", pid, f->d.fd),
		     O_RDWR | O_NONBLOCK | O_CLOEXEC);
	struct mq_attr a;

	if (q < 0 || mq_getattr(q, &a)) {
		warnx("pid %d: fd %d: cannot empty POSIX message queue %s: %s", pid, f->d.fd,
		      f->path, strerror(errno));
	} else {
		char *m = malloc(a.mq_msgsize);
		while (m && mq_receive(q, m, a.mq_msgsize, NULL) >= 0)
			;
		free(m);
	}
	if (q >= 0)
		close(q);
}

/* The messages of a queue are kept once, with its first fd: the others
 * (dup'ed, opened again, another process's) took what the first gave
 * back. */
static int join_mqueue(struct fd_all *a)
{
	for (size_t i = 0; i < a->n; i++) {
		struct fd_entry *f = a->f[i];
		struct img_mqueue m;

		if (f->d.kind != IMG_FD_MQUEUE)
			continue;
		for (size_t k = 0; k < i; k++) {
			const struct fd_entry *g = a->f[k];
			if (g->d.kind != IMG_FD_MQUEUE || g->d.dev != f->d.dev ||
			    g->d.ino != f->d.ino)
				continue;
			memcpy(&m, f->extra, sizeof(m));
			m.nmsgs = 0;
			m.data_len = 0;
			memcpy(f->extra, &m, sizeof(m));
			fd_drop_data(f, sizeof(m));
			break;
		}
	}
	for (size_t i = 0; i < a->n && (a->opts & FD_OPT_KILL); i++) {
		struct img_mqueue m;

		if (a->f[i]->d.kind != IMG_FD_MQUEUE)
			continue;
		memcpy(&m, a->f[i]->extra, sizeof(m));
		if (m.nmsgs)
			drain(a->pid[i], a->f[i]);
	}
	return 0;
}

static int check_mqueue(const unsigned char *x, uint32_t n)
{
	struct img_mqueue m;
	uint64_t off = sizeof(m);

	if (n < sizeof(m))
		return -1;
	memcpy(&m, x, sizeof(m));
	if (m.maxmsg < 1 || m.maxmsg > MQ_MAXMSG_MAX || m.msgsize < 1 ||
	    m.msgsize > MQ_MSGSIZE_MAX || m.mode > 07777 || m.nmsgs > m.maxmsg ||
	    m.data_len != n - sizeof(m))
		return -1;
	for (uint32_t k = 0; k < m.nmsgs; k++) {
		struct img_mq_msg h;

		if (n - off < sizeof(h))
			return -1;
		memcpy(&h, x + off, sizeof(h));
		if (h.prio >= MQ_PRIO_LIMIT || h.len > m.msgsize || n - off - sizeof(h) < h.len)
			return -1;
		off += sizeof(h) + h.len;
	}
	return off == n ? 0 : -1;
}

/* A queue of that name that is there already (the dumped program's, which
 * outlives it until mq_unlink) is used if it is as the image's was made:
 * the same attributes, and empty. */
static int reuse_queue(const struct fd_entry *f, const struct img_mqueue *m)
{
	struct mq_attr a;
	mqd_t q = mq_open(f->path, O_RDONLY | O_CLOEXEC);

	if (q < 0) {
		err_sys("fd %d: cannot open POSIX message queue %s", f->d.fd, f->path);
		return -1;
	}
	if (mq_getattr(q, &a) || a.mq_maxmsg != m->maxmsg || a.mq_msgsize != m->msgsize ||
	    a.mq_curmsgs) {
		err_set("fd %d: POSIX message queue %s exists, with %ld messages of at most %ld "
			"bytes (%ld queued), not empty with %lld of %lld as it was",
			f->d.fd, f->path, a.mq_maxmsg, a.mq_msgsize, a.mq_curmsgs,
			(long long)m->maxmsg, (long long)m->msgsize);
		mq_close(q);
		return -1;
	}
	mq_close(q);
	return 0;
}

/* The queue, made (or checked) once per restore: the first fd of it
 * finds no pair for its inode yet. */
static int make_queue(const struct fd_entry *f, const struct img_mqueue *m)
{
	struct mq_attr a = {.mq_maxmsg = m->maxmsg, .mq_msgsize = m->msgsize};
	mqd_t q = mq_open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, m->mode, &a);

	if (q < 0 && errno == EEXIST) {
		if (reuse_queue(f, m))
			return -1;
		q = mq_open(f->path, O_WRONLY | O_CLOEXEC);
	} else if (q >= 0) {
		/* mq_open's mode went through our umask; the owner is
		 * the image's where we may give it. */
		if (fchmod(q, m->mode) || (fchown(q, m->uid, m->gid) && errno != EPERM)) {
			err_sys("fd %d: cannot give POSIX message queue %s its mode and owner",
				f->d.fd, f->path);
			mq_close(q);
			return -1;
		}
	}
	if (q < 0) {
		err_sys("fd %d: cannot make POSIX message queue %s again", f->d.fd, f->path);
		return -1;
	}
	if (put_messages(q, f->extra + sizeof(*m), m->nmsgs)) {
		err_sys("fd %d: cannot queue the messages of POSIX message queue %s again", f->d.fd,
			f->path);
		mq_close(q);
		return -1;
	}
	mq_close(q);
	return 0;
}

static int make_mqueue(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_mqueue m;
	mqd_t q;

	memcpy(&m, f->extra, sizeof(m));
	if (!fd_find_pair(pipes, IMG_FD_MQUEUE, f->d.ino)) {
		if (!fd_new_pair(pipes, IMG_FD_MQUEUE, f->d.ino)) {
			err_set("out of memory");
			return -1;
		}
		if (make_queue(f, &m))
			return -1;
		pipes->n++;
	}
	q = mq_open(f->path, (f->d.flags & (O_ACCMODE | O_NONBLOCK)) | O_CLOEXEC);
	if (q < 0)
		err_sys("fd %d: cannot open POSIX message queue %s", f->d.fd, f->path);
	return q;
}

static void show_mqueue(FILE *out, const struct fd_entry *f, int json)
{
	struct img_mqueue m;

	memcpy(&m, f->extra, sizeof(m));
	fd_put_num(out, json, "maxmsg", m.maxmsg);
	fd_put_num(out, json, "msgsize", m.msgsize);
	fprintf(out, json ? ",\"qmode\":\"%04o\"" : " mode %04o", m.mode);
	fd_put_num(out, json, "uid", m.uid);
	fd_put_num(out, json, "messages", m.nmsgs);
}

const struct fd_ops fd_mqueue_ops = {
    .name = "mqueue",
    .capture = capture_mqueue,
    .join = join_mqueue,
    .check = check_mqueue,
    .make = make_mqueue,
    .show = show_mqueue,
};
