/* fd.c: a process's open files, captured from /proc and made again. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <dirent.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds.h"
#include "target/target.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

static int set_extra(struct fd_entry *f, const void *a, size_t alen, const void *b, size_t blen)
{
	f->extra = malloc(alen + blen + 1);
	if (!f->extra) {
		err_set("out of memory");
		return -1;
	}
	memcpy(f->extra, a, alen);
	if (blen)
		memcpy(f->extra + alen, b, blen);
	f->d.extra_len = alen + blen;
	return 0;
}

/* A field of an fdinfo text: the text after "name:". */
static const char *field(const char *info, const char *name)
{
	const char *p = info;
	size_t n = strlen(name);

	while ((p = strstr(p, name))) {
		if ((p == info || p[-1] == '\n') && p[n] == ':')
			return p + n + 1;
		p += n;
	}
	return NULL;
}

/* The bytes in a pipe, without taking them out: tee(2) copies them to a
 * pipe of ours, and the program's pipe keeps every byte. */
static int peek_pipe(pid_t pid, int fd, uint32_t *size, unsigned char **data, uint32_t *len)
{
	char path[64];
	int pfd, p[2] = {-1, -1}, rc = -1;
	ssize_t n;

	*data = NULL;
	*len = 0;
	pfd = open(fmt_path(path, sizeof(path), "/proc/%d/fd/%d", pid, fd),
		   O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (pfd < 0) {
		err_sys("pid %d: fd %d: cannot open the pipe to read its contents", pid, fd);
		return -1;
	}
	n = fcntl(pfd, F_GETPIPE_SZ);
	if (n <= 0 || pipe2(p, O_CLOEXEC | O_NONBLOCK) || fcntl(p[1], F_SETPIPE_SZ, n) < n) {
		err_sys("pid %d: fd %d: cannot make a pipe of %zd bytes to copy its contents", pid,
			fd, n);
		goto out;
	}
	*size = n;
	*data = malloc(n);
	if (!*data) {
		err_set("out of memory");
		goto out;
	}
	n = tee(pfd, p[1], n, SPLICE_F_NONBLOCK);
	if (n < 0 && errno != EAGAIN) {
		err_sys("pid %d: fd %d: cannot copy the pipe's contents", pid, fd);
		goto out;
	}
	if (n > 0 && read_full(p[0], *data, n) != n) {
		err_sys("pid %d: fd %d: cannot read the pipe's contents", pid, fd);
		goto out;
	}
	*len = n > 0 ? n : 0;
	rc = 0;
out:
	close(pfd);
	if (p[0] >= 0) {
		close(p[0]);
		close(p[1]);
	}
	if (rc) {
		free(*data);
		*data = NULL;
	}
	return rc;
}

/* A duplicate of the target's fd: pidfd_getfd (Linux 5.6) needs the
 * ptrace access the dumper has.  Sockets and ttys cannot be reopened
 * through /proc/PID/fd. */
static int getfd(pid_t pid, int fd)
{
	int pidfd = syscall(SYS_pidfd_open, pid, 0), nfd = -1;

	if (pidfd >= 0) {
		nfd = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
		close(pidfd);
	}
	if (nfd < 0)
		err_sys("pid %d: fd %d: cannot get a duplicate with pidfd_getfd", pid, fd);
	return nfd;
}

/* ---- terminals ---- */

static int is_tty_major(unsigned maj)
{
	return maj == 4 || maj == 5 || (maj >= 136 && maj <= 143);
}

static int is_ptmx(dev_t rdev)
{
	return major(rdev) == 5 && minor(rdev) == 2;
}

/* A terminal's settings and, for a pty, its number and lock.  A slave
 * pty is only known to be the program's own (PTS) once every fd is
 * captured (check_ttys); until then it is a TERM with its number. */
static int capture_tty(pid_t pid, struct fd_entry *f, dev_t rdev)
{
	struct img_tty t = {.role = IMG_TTY_TERM, .index = UINT32_MAX};
	struct termios tio;
	struct winsize ws;
	int s, v = 0;

	f->d.kind = IMG_FD_TTY;
	if ((s = getfd(pid, f->d.fd)) < 0)
		return -1;
	if (is_ptmx(rdev)) {
		t.role = IMG_TTY_PTMX;
		if (ioctl(s, TIOCGPTN, &t.index) || ioctl(s, TIOCGPTLCK, &v)) {
			err_sys("pid %d: fd %d (%s): cannot ask the pty master its number", pid,
				f->d.fd, f->path);
			close(s);
			return -1;
		}
		t.locked = !!v;
	} else if (major(rdev) >= 136 && major(rdev) <= 143) {
		t.index =
		    (major(rdev) - 136) << 20 | minor(rdev); /* 20-bit minors: pts/N is 136:N */
	}
	/* /dev/tty of a process without a controlling terminal, or a
	 * hung-up one, has no settings to keep. */
	if (!tcgetattr(s, &tio) && !ioctl(s, TIOCGWINSZ, &ws)) {
		t.have = 1;
		t.iflag = tio.c_iflag;
		t.oflag = tio.c_oflag;
		t.cflag = tio.c_cflag;
		t.lflag = tio.c_lflag;
		t.line = tio.c_line;
		memcpy(t.cc, tio.c_cc, sizeof(t.cc) < NCCS ? sizeof(t.cc) : NCCS);
		t.ispeed = cfgetispeed(&tio);
		t.ospeed = cfgetospeed(&tio);
		t.rows = ws.ws_row;
		t.cols = ws.ws_col;
		t.xpixel = ws.ws_xpixel;
		t.ypixel = ws.ws_ypixel;
	}
	close(s);
	return set_extra(f, &t, sizeof(t), NULL, 0);
}

static const char *family_name(int family)
{
	switch (family) {
	case AF_INET:
		return "an inet";
	case AF_INET6:
		return "an inet6";
	case AF_NETLINK:
		return "a netlink";
	case AF_PACKET:
		return "a packet";
	case AF_VSOCK:
		return "a vsock";
	default:
		return "a";
	}
}

/* What sock_diag tells of a unix socket (NETLINK_SOCK_DIAG needs no
 * privilege for one's own network namespace). */
struct unix_diag_info {
	uint32_t peer; /* inode of the peer, 0 if none */
	uint8_t state, shutdown;
	int named; /* bound to an address */
};

static int unix_diag(uint64_t ino, struct unix_diag_info *u)
{
	struct {
		struct nlmsghdr nh;
		struct unix_diag_req r;
	} req = {.nh = {.nlmsg_len = sizeof(req),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST},
		 .r = {.sdiag_family = AF_UNIX,
		       .udiag_states = -1,
		       .udiag_ino = ino,
		       .udiag_show = UDIAG_SHOW_PEER | UDIAG_SHOW_NAME,
		       .udiag_cookie = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE}}};
	long buf[2048];
	struct nlmsghdr *nh = (void *)buf;
	struct unix_diag_msg *m;
	struct nlattr *a;
	ssize_t n;
	size_t left;
	int nl;

	memset(u, 0, sizeof(*u));
	nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return -1;
	if (send(nl, &req, sizeof(req), 0) != sizeof(req) ||
	    (n = recv(nl, buf, sizeof(buf), 0)) < 0) {
		close(nl);
		return -1;
	}
	close(nl);
	if (!NLMSG_OK(nh, (size_t)n)) {
		errno = EPROTO;
		return -1;
	}
	if (nh->nlmsg_type == NLMSG_ERROR) {
		struct nlmsgerr *e = NLMSG_DATA(nh);
		errno = e->error ? -e->error : EPROTO;
		return -1;
	}
	if (nh->nlmsg_type != SOCK_DIAG_BY_FAMILY || nh->nlmsg_len < NLMSG_LENGTH(sizeof(*m))) {
		errno = EPROTO;
		return -1;
	}
	m = NLMSG_DATA(nh);
	u->state = m->udiag_state;
	left = nh->nlmsg_len - NLMSG_LENGTH(sizeof(*m));
	a = (void *)(m + 1);
	while (left >= sizeof(*a) && a->nla_len >= sizeof(*a) && a->nla_len <= left) {
		void *v = (char *)a + NLA_HDRLEN;
		if (a->nla_type == UNIX_DIAG_PEER && a->nla_len >= NLA_HDRLEN + 4)
			memcpy(&u->peer, v, 4);
		else if (a->nla_type == UNIX_DIAG_NAME)
			u->named = 1;
		else if (a->nla_type == UNIX_DIAG_SHUTDOWN && a->nla_len >= NLA_HDRLEN + 1)
			u->shutdown = *(uint8_t *)v;
		if ((size_t)NLA_ALIGN(a->nla_len) >= left)
			break;
		left -= NLA_ALIGN(a->nla_len);
		a = (void *)((char *)a + NLA_ALIGN(a->nla_len));
	}
	return 0;
}

/* The messages queued for reading on socket s, peeked out one after the
 * other at a moving SO_PEEK_OFF (set back afterwards), so that the
 * program's socket keeps every one.  A stream's bytes come as one
 * message; datagrams keep their boundaries. */
static int peek_socket(pid_t pid, int fd, int s, int type, struct img_unix *u, unsigned char **data)
{
	size_t cap = 1 << 20, len = 0;
	unsigned char *buf = malloc(cap), *nb;
	int old = -1, zero = 0, rc = -1;
	socklen_t sl = sizeof(old);

	*data = NULL;
	if (!buf) {
		err_set("out of memory");
		return -1;
	}
	if (getsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &old, &sl) ||
	    setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero))) {
		err_sys("pid %d: fd %d: cannot set SO_PEEK_OFF to read its queue", pid, fd);
		free(buf);
		return -1;
	}
	for (;;) {
		struct iovec iov;
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		size_t room;
		ssize_t n;

		if (cap - len < (64 << 10) + 4) {
			if (cap >= (256u << 20)) {
				err_set("pid %d: fd %d: more than 256 MiB queued on a unix socket",
					pid, fd);
				goto out;
			}
			if (!(nb = realloc(buf, cap * 2))) {
				err_set("out of memory");
				goto out;
			}
			buf = nb;
			cap *= 2;
		}
		room = cap - len - 4;
		iov = (struct iovec){buf + len + 4, room};
		n = recvmsg(s, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			err_sys("pid %d: fd %d: cannot read what its unix socket holds", pid, fd);
			goto out;
		}
		/* 0: end of a stream whose peer shut down, or an empty
		 * datagram, which a moving peek offset cannot get past. */
		if (n == 0)
			break;
		if ((size_t)n > room || (mh.msg_flags & MSG_TRUNC)) {
			err_set("pid %d: fd %d: a datagram of %zd bytes queued on a unix socket is "
				"too large",
				pid, fd, n);
			goto out;
		}
		if (mh.msg_flags & MSG_CTRUNC) {
			err_set("pid %d: fd %d: a message queued on a unix socket carries file "
				"descriptors or credentials; not supported",
				pid, fd);
			goto out;
		}
		if (type == SOCK_STREAM && u->nmsg) {
			/* One message: add to its length, move the bytes down. */
			uint32_t l;
			memcpy(&l, buf, 4);
			memmove(buf + len, buf + len + 4, n);
			l += n;
			memcpy(buf, &l, 4);
			len += n;
		} else {
			uint32_t l = n;
			memcpy(buf + len, &l, 4);
			len += 4 + n;
			u->nmsg++;
		}
	}
	u->data_len = len;
	*data = buf;
	buf = NULL;
	rc = 0;
out:
	setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &old, sizeof(old));
	free(buf);
	return rc;
}

/* A socket: one end of a unix socketpair is captured (with what is
 * queued for it to read); whether its peer is in the process too is
 * checked once every fd is known (check_pairs). */
static int capture_socket(pid_t pid, struct fd_entry *f, const char *link)
{
	struct img_unix u = {0};
	struct unix_diag_info di;
	unsigned char *data = NULL;
	int fd = f->d.fd, s, family = -1, type = -1, rc = -1;
	socklen_t sl = sizeof(int);

	if ((s = getfd(pid, fd)) < 0)
		return -1;
	if (getsockopt(s, SOL_SOCKET, SO_DOMAIN, &family, &sl) ||
	    getsockopt(s, SOL_SOCKET, SO_TYPE, &type, &sl)) {
		err_sys("pid %d: fd %d (%s): cannot ask the socket its family", pid, fd, link);
		goto out;
	}
	if (family != AF_UNIX) {
		err_set("pid %d: fd %d is %s socket (%s, family %d); not supported yet", pid, fd,
			family_name(family), link, family);
		goto out;
	}
	if (unix_diag(f->d.ino, &di)) {
		err_sys("pid %d: fd %d (%s): cannot query the unix socket with sock_diag", pid, fd,
			link);
		goto out;
	}
	if (di.state == 10 /* TCP_LISTEN */ || di.named || !di.peer) {
		err_set("pid %d: fd %d is a unix socket (%s) that is %s; only socketpairs are "
			"supported",
			pid, fd, link,
			di.state == 10 ? "listening"
			: di.named     ? "bound to an address"
				       : "not connected");
		goto out;
	}
	if (type != SOCK_STREAM && type != SOCK_DGRAM && type != SOCK_SEQPACKET) {
		err_set("pid %d: fd %d is a unix socket (%s) of type %d; not supported", pid, fd,
			link, type);
		goto out;
	}
	f->d.kind = IMG_FD_UNIX;
	u.type = type;
	u.id = di.peer < f->d.ino ? di.peer : f->d.ino;
	u.end = f->d.ino > di.peer;
	u.shutdown = di.shutdown;
	sl = sizeof(int);
	getsockopt(s, SOL_SOCKET, SO_SNDBUF, &u.sndbuf, &sl);
	sl = sizeof(int);
	getsockopt(s, SOL_SOCKET, SO_RCVBUF, &u.rcvbuf, &sl);
	if (peek_socket(pid, fd, s, type, &u, &data))
		goto out;
	rc = set_extra(f, &u, sizeof(u), data, u.data_len);
out:
	free(data);
	close(s);
	return rc;
}

/* ---- inotify ---- */

/* A watch as fdinfo shows it (Linux 3.8+): "inotify wd:1 ino:3c51a
 * sdev:fe00000 mask:fff ignored_mask:0 fhandle-bytes:8 fhandle-type:1
 * f_handle:1ac5030000000000".  sdev is the kernel's dev_t (major << 20 |
 * minor). */
struct watch {
	int wd;
	unsigned mask, htype, hbytes;
	unsigned long long ino;
	dev_t dev;
	unsigned char handle[128];
};

static int parse_watch(const char *p, struct watch *w)
{
	unsigned long long sdev;
	char hex[260];

	if (sscanf(p,
		   "inotify wd:%d ino:%llx sdev:%llx mask:%x ignored_mask:%*x fhandle-bytes:%x "
		   "fhandle-type:%x f_handle:%259s",
		   &w->wd, &w->ino, &sdev, &w->mask, &w->hbytes, &w->htype, hex) != 7 ||
	    w->hbytes > sizeof(w->handle) || strlen(hex) != 2 * w->hbytes)
		return -1;
	for (unsigned i = 0; i < w->hbytes; i++)
		if (sscanf(hex + 2 * i, "%2hhx", &w->handle[i]) != 1)
			return -1;
	w->dev = makedev(sdev >> 20, sdev & 0xfffff);
	return 0;
}

static int is_watched(const char *path, const struct watch *w)
{
	struct stat sb;

	return !stat(path, &sb) && sb.st_ino == w->ino && sb.st_dev == w->dev;
}

/* The path of a watched inode from its file handle: open_by_handle_at
 * needs CAP_DAC_READ_SEARCH, and a file of the same filesystem, found in
 * mountinfo by its device.  NULL without errno when not allowed. */
static char *path_by_handle(const struct watch *w)
{
	char line[4096], want[32], mnt[4096], path[64], *res = NULL;
	struct {
		struct file_handle fh;
		unsigned char b[128];
	} h;
	int mfd = -1, fd;
	FILE *mi;

	snprintf(want, sizeof(want), "%u:%u", major(w->dev), minor(w->dev));
	if (!(mi = fopen("/proc/self/mountinfo", "re")))
		return NULL;
	while (mfd < 0 && fgets(line, sizeof(line), mi)) {
		char dev[32];
		if (sscanf(line, "%*d %*d %31s %*s %4095s", dev, mnt) == 2 && !strcmp(dev, want))
			mfd = open(mnt, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* not O_PATH: EBADF */
	}
	fclose(mi);
	if (mfd < 0)
		return NULL;
	h.fh.handle_bytes = w->hbytes;
	h.fh.handle_type = w->htype;
	memcpy(h.fh.f_handle, w->handle, w->hbytes);
	fd = open_by_handle_at(mfd, &h.fh, O_PATH | O_CLOEXEC);
	close(mfd);
	if (fd < 0)
		return NULL;
	res = proc_readlink(getpid(), fmt_path(path, sizeof(path), "fd/%d", fd));
	close(fd);
	if (res && !is_watched(res, w)) {
		free(res);
		res = NULL;
	}
	return res;
}

/* Without that capability: look for the inode where a program's watches
 * usually are, its open files and their directories, then its current
 * directory's tree, breadth first, up to 100000 entries. */
static char *path_by_search(pid_t pid, const struct watch *w)
{
	char **q = NULL, *cwd, *found = NULL;
	size_t nq = 0, head = 0, seen = 0;
	int *fds;
	size_t nfds;

	if (!proc_list_fds(pid, &fds, &nfds)) {
		for (size_t i = 0; i < nfds && !found; i++) {
			char what[32], *l, *slash;
			snprintf(what, sizeof(what), "fd/%d", fds[i]);
			if (!(l = proc_readlink(pid, what)))
				continue;
			while (l[0] == '/' && !found) {
				if (is_watched(l, w))
					found = strdup(l);
				if (!(slash = strrchr(l, '/')) || slash == l)
					break;
				*slash = 0;
			}
			free(l);
		}
		free(fds);
	}
	if (found || !(cwd = proc_readlink(pid, "cwd")))
		return found;
	if (is_watched(cwd, w))
		return cwd;
	q = malloc(sizeof(*q));
	if (!q) {
		free(cwd);
		return NULL;
	}
	q[nq++] = cwd;
	while (head < nq && !found && seen < 100000) {
		char *dir = q[head++];
		DIR *d = opendir(dir);
		struct dirent *e;

		while (d && (e = readdir(d)) && !found && seen++ < 100000) {
			char *p;
			struct stat sb;

			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			if (asprintf(&p, "%s/%s", strcmp(dir, "/") ? dir : "", e->d_name) < 0)
				break;
			if (lstat(p, &sb)) {
				free(p);
				continue;
			}
			if (sb.st_ino == w->ino && sb.st_dev == w->dev) {
				found = p;
			} else if (S_ISDIR(sb.st_mode)) {
				char **nq2 = realloc(q, (nq + 1) * sizeof(*q));
				if (!nq2) {
					free(p);
					break;
				}
				q = nq2;
				q[nq++] = p;
			} else {
				free(p);
			}
		}
		if (d)
			closedir(d);
	}
	for (size_t i = 0; i < nq; i++)
		free(q[i]);
	free(q);
	return found;
}

static int watch_cmp(const void *a, const void *b)
{
	return ((const struct watch *)a)->wd - ((const struct watch *)b)->wd;
}

/* An inotify instance: each watch's path, mask and wd.  Events queued but
 * not read are counted, not kept (reading them would take them from the
 * program). */
static int capture_inotify(pid_t pid, struct fd_entry *f, const char *info)
{
	struct img_inotify in = {0};
	struct watch *ws = NULL;
	unsigned char *buf = NULL;
	size_t len = 0, n = 0;
	const char *p = info;
	int rc = -1, fd = f->d.fd, dup;

	f->d.kind = IMG_FD_INOTIFY;
	while ((p = strstr(p, "inotify wd:"))) {
		struct watch *nw = realloc(ws, (n + 1) * sizeof(*ws));
		if (!nw) {
			err_set("out of memory");
			goto out;
		}
		ws = nw;
		if (parse_watch(p, &ws[n])) {
			err_set("pid %d: fd %d: cannot parse its inotify watches", pid, fd);
			goto out;
		}
		n++;
		p += 11;
	}
	if (n)
		qsort(ws, n, sizeof(*ws), watch_cmp);
	for (size_t i = 0; i < n; i++) {
		struct img_inotify_watch iw = {
		    .wd = ws[i].wd, .mask = ws[i].mask, .ino = ws[i].ino, .dev = ws[i].dev};
		char *path = path_by_handle(&ws[i]);
		unsigned char *nb;

		if (!path)
			path = path_by_search(pid, &ws[i]);
		if (!path) {
			err_set(
			    "pid %d: fd %d: cannot find the path of inotify watch %d (inode %llu "
			    "on device %u:%u): it is neither an open file's nor under the "
			    "current directory, and opening it by handle needs "
			    "CAP_DAC_READ_SEARCH",
			    pid, fd, ws[i].wd, ws[i].ino, major(ws[i].dev), minor(ws[i].dev));
			goto out;
		}
		iw.path_len = strlen(path);
		nb = realloc(buf, len + sizeof(iw) + iw.path_len);
		if (!nb) {
			free(path);
			err_set("out of memory");
			goto out;
		}
		buf = nb;
		memcpy(buf + len, &iw, sizeof(iw));
		memcpy(buf + len + sizeof(iw), path, iw.path_len);
		len += sizeof(iw) + iw.path_len;
		free(path);
	}
	in.n = n;
	if ((dup = getfd(pid, fd)) >= 0) {
		int q = 0;
		if (!ioctl(dup, FIONREAD, &q))
			in.queued = q;
		close(dup);
	}
	rc = set_extra(f, &in, sizeof(in), buf, len);
out:
	free(ws);
	free(buf);
	return rc;
}

/* Pipes and anonymous-inode files (eventfd, signalfd, timerfd, epoll). */
static int capture_special(pid_t pid, struct fd_entry *f, const char *link)
{
	char path[64], *info;
	const char *v;
	int rc = -1, fd = f->d.fd;

	if (!strncmp(link, "pipe:", 5)) {
		struct img_pipe p = {.id = f->d.ino, .end = (f->d.flags & O_ACCMODE) != O_RDONLY};
		unsigned char *data = NULL;

		if ((f->d.flags & O_ACCMODE) == O_RDWR) {
			err_set("pid %d: fd %d is %s opened for both reading and writing; not "
				"supported yet",
				pid, fd, link);
			return -1;
		}
		f->d.kind = IMG_FD_PIPE;
		if (peek_pipe(pid, fd, &p.size, &data, &p.data_len))
			return -1;
		rc = set_extra(f, &p, sizeof(p), data, p.data_len);
		free(data);
		return rc;
	}
	if (!strncmp(link, "socket:", 7))
		return capture_socket(pid, f, link);
	info = read_file(fmt_path(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd), NULL);
	if (!info)
		return -1;
	if (!strcmp(link, "anon_inode:inotify")) {
		rc = capture_inotify(pid, f, info);
	} else if (!strcmp(link, "anon_inode:[eventfd]")) {
		struct img_eventfd e = {0};
		f->d.kind = IMG_FD_EVENTFD;
		if ((v = field(info, "eventfd-count")))
			e.count = strtoull(v, NULL, 16);
		if ((v = field(info, "eventfd-semaphore")))
			e.semaphore = atoi(v);
		rc = set_extra(f, &e, sizeof(e), NULL, 0);
	} else if (!strcmp(link, "anon_inode:[signalfd]")) {
		struct img_signalfd s = {0};
		f->d.kind = IMG_FD_SIGNALFD;
		if ((v = field(info, "sigmask")))
			s.mask = strtoull(v, NULL, 16);
		rc = set_extra(f, &s, sizeof(s), NULL, 0);
	} else if (!strcmp(link, "anon_inode:[timerfd]")) {
		struct img_timerfd t = {0};
		unsigned long long a = 0, b = 0;
		f->d.kind = IMG_FD_TIMERFD;
		if ((v = field(info, "clockid")))
			t.clock = atoi(v);
		if ((v = field(info, "ticks")))
			t.ticks = strtoull(v, NULL, 10);
		if ((v = field(info, "settime flags")))
			t.settime_flags = strtoul(v, NULL, 8);
		if ((v = field(info, "it_value")) && sscanf(v, " (%llu, %llu)", &a, &b) == 2)
			t.left = (struct img_timespec){(int64_t)a, (int64_t)b};
		if ((v = field(info, "it_interval")) && sscanf(v, " (%llu, %llu)", &a, &b) == 2)
			t.interval = (struct img_timespec){(int64_t)a, (int64_t)b};
		rc = set_extra(f, &t, sizeof(t), NULL, 0);
	} else if (!strcmp(link, "anon_inode:[eventpoll]")) {
		struct img_epoll e = {0};
		struct img_epoll_item *items = NULL;
		const char *p = info;

		f->d.kind = IMG_FD_EPOLL;
		while ((p = strstr(p, "tfd:"))) {
			struct img_epoll_item it;
			unsigned long long data, ino;
			unsigned events;
			struct img_epoll_item *ni;
			struct stat sb;

			if (sscanf(p, "tfd: %d events: %x data: %llx pos:%*d ino:%llx", &it.fd,
				   &events, &data, &ino) != 4) {
				err_set("pid %d: fd %d: cannot parse its epoll entries", pid, fd);
				free(items);
				goto out;
			}
			it.events = events;
			it.data = data;
			/* An entry outlives the fd it was added by: it must still
			 * be the file at that number to be added again. */
			if (stat(fmt_path(path, sizeof(path), "/proc/%d/fd/%d", pid, it.fd), &sb) ||
			    sb.st_ino != ino) {
				err_set(
				    "pid %d: fd %d: epoll watches a file that is no longer fd %d; "
				    "not supported",
				    pid, fd, it.fd);
				free(items);
				goto out;
			}
			ni = realloc(items, (e.n + 1) * sizeof(*items));
			if (!ni) {
				free(items);
				err_set("out of memory");
				goto out;
			}
			items = ni;
			items[e.n++] = it;
			p += 4;
		}
		rc = set_extra(f, &e, sizeof(e), items, e.n * sizeof(*items));
		free(items);
	} else {
		err_set("pid %d: fd %d is %s; this kind of file is not supported yet", pid, fd,
			link);
	}
out:
	free(info);
	return rc;
}

/* A named pipe: its bytes, peeked as for a pipe, and its size. */
static int capture_fifo(pid_t pid, struct fd_entry *f)
{
	struct img_fifo p = {0};
	unsigned char *data = NULL;
	int rc;

	f->d.kind = IMG_FD_FIFO;
	if (peek_pipe(pid, f->d.fd, &p.size, &data, &p.data_len))
		return -1;
	rc = set_extra(f, &p, sizeof(p), data, p.data_len);
	free(data);
	return rc;
}

/* The fds of every process of a tree, as one list: pipes, socketpairs,
 * FIFOs and pty pairs may join fds of several processes. */
struct allfds {
	struct fd_entry **f;
	pid_t *pid;
	size_t n;
};

static int all_fds(struct image *ims[], size_t nims, struct allfds *a)
{
	size_t total = 0;

	for (size_t k = 0; k < nims; k++)
		total += ims[k]->nfiles;
	a->n = 0;
	a->f = calloc(total + 1, sizeof(*a->f));
	a->pid = calloc(total + 1, sizeof(*a->pid));
	if (!a->f || !a->pid) {
		free(a->f);
		free(a->pid);
		err_set("out of memory");
		return -1;
	}
	for (size_t k = 0; k < nims; k++)
		for (size_t i = 0; i < ims[k]->nfiles; i++) {
			a->f[a->n] = &ims[k]->files[i];
			a->pid[a->n++] = ims[k]->proc.pid;
		}
	return 0;
}

/* Drop what follows an fd's fixed extra part: another fd carries it. */
static void drop_data(struct fd_entry *f, size_t fixed)
{
	f->d.extra_len = fixed;
}

/* Several fds of one FIFO share its buffer: the first carries the bytes. */
static void dedup_fifos(struct allfds *a)
{
	for (size_t i = 0; i < a->n; i++) {
		struct fd_entry *f = a->f[i];
		struct img_fifo p;

		if (f->d.kind != IMG_FD_FIFO)
			continue;
		for (size_t k = 0; k < i; k++) {
			const struct fd_entry *g = a->f[k];
			if (g->d.kind != IMG_FD_FIFO || g->d.dev != f->d.dev ||
			    g->d.ino != f->d.ino)
				continue;
			memcpy(&p, f->extra, sizeof(p));
			p.data_len = 0;
			memcpy(f->extra, &p, sizeof(p));
			drop_data(f, sizeof(p));
			break;
		}
	}
}

/* A slave pty whose master the tree holds is part of a pair it made; any
 * other terminal is reattached to the restoring one's. */
static void check_ttys(struct allfds *a)
{
	for (size_t i = 0; i < a->n; i++) {
		struct fd_entry *f = a->f[i];
		struct img_tty t, m;

		if (f->d.kind != IMG_FD_TTY)
			continue;
		memcpy(&t, f->extra, sizeof(t));
		if (t.role != IMG_TTY_TERM || t.index == UINT32_MAX)
			continue;
		for (size_t k = 0; k < a->n; k++) {
			if (a->f[k]->d.kind != IMG_FD_TTY)
				continue;
			memcpy(&m, a->f[k]->extra, sizeof(m));
			if (m.role == IMG_TTY_PTMX && m.index == t.index) {
				t.role = IMG_TTY_PTS;
				memcpy(f->extra, &t, sizeof(t));
				break;
			}
		}
	}
}

/* A pipe whose other end is outside the tree: on a standard stream, the
 * restoring process's own stands for it.  On another fd (a make
 * jobserver, a pipe a launcher leaked) it is marked IMG_PIPE_OUTSIDE: the
 * restore cuts it off from the outside (or hands it an fd of ckpt-remap's
 * own, --inherit-fd).  A read end keeps the bytes queued in it, peeked
 * with tee(2), so that the outside writer's bytes are neither taken from
 * the pipe nor lost to the restored reader (one that runs on as well as a
 * restored copy would both read them).  A write end's queued bytes are
 * the outside reader's, still in its pipe: not kept. */
static void mark_outside(struct fd_entry *f, struct img_pipe *p)
{
	p->flags |= IMG_PIPE_OUTSIDE;
	if (p->end == 1) {
		p->data_len = 0;
		drop_data(f, sizeof(*p));
	}
	memcpy(f->extra, p, sizeof(*p));
}

/* Both ends of every pipe in the tree, or one marked outside (above).
 * The first fd of each pipe carries its contents; the others drop their
 * copy. */
static void check_pipes(struct allfds *a)
{
	for (size_t i = 0; i < a->n; i++) {
		struct fd_entry *f = a->f[i];
		struct img_pipe p, q;
		int ends = 0;

		if (f->d.kind != IMG_FD_PIPE)
			continue;
		memcpy(&p, f->extra, sizeof(p));
		for (size_t k = 0; k < a->n; k++) {
			if (a->f[k]->d.kind != IMG_FD_PIPE)
				continue;
			memcpy(&q, a->f[k]->extra, sizeof(q));
			if (q.id == p.id)
				ends |= 1 << q.end;
		}
		if (ends != 3 && f->d.fd <= 2) {
			f->d.kind = IMG_FD_INHERIT;
			drop_data(f, 0);
			continue;
		}
		if (ends != 3)
			mark_outside(f, &p);
	}
	for (size_t i = 0; i < a->n; i++) {
		struct fd_entry *f = a->f[i];
		struct img_pipe p, q;

		if (f->d.kind != IMG_FD_PIPE)
			continue;
		memcpy(&p, f->extra, sizeof(p));
		for (size_t k = 0; k < i && p.data_len; k++) {
			if (a->f[k]->d.kind != IMG_FD_PIPE)
				continue;
			memcpy(&q, a->f[k]->extra, sizeof(q));
			if (q.id == p.id) {
				p.data_len = 0;
				memcpy(f->extra, &p, sizeof(p));
				drop_data(f, sizeof(p));
			}
		}
	}
}

/* Both ends of every unix socketpair must be in the tree; the first fd of
 * each end carries what is queued for it. */
static int check_unix(struct allfds *a)
{
	for (size_t i = 0; i < a->n; i++) {
		struct fd_entry *f = a->f[i];
		struct img_unix u, v;
		int ends = 0, first = 1;

		if (f->d.kind != IMG_FD_UNIX)
			continue;
		memcpy(&u, f->extra, sizeof(u));
		for (size_t k = 0; k < a->n; k++) {
			if (a->f[k]->d.kind != IMG_FD_UNIX)
				continue;
			memcpy(&v, a->f[k]->extra, sizeof(v));
			if (v.id != u.id)
				continue;
			ends |= 1 << v.end;
			if (k < i && v.end == u.end)
				first = 0;
		}
		if (ends != 3) {
			err_set("pid %d: fd %d is a unix socket (%s) whose peer is not in the "
				"%s; not supported",
				a->pid[i], f->d.fd, f->path,
				a->pid[0] == a->pid[a->n - 1] ? "process" : "tree");
			return -1;
		}
		if (!first && u.data_len) {
			u.data_len = 0;
			u.nmsg = 0;
			memcpy(f->extra, &u, sizeof(u));
			drop_data(f, sizeof(u));
		}
	}
	return 0;
}

#ifndef KCMP_FILE
#define KCMP_FILE 0
#endif

/* Whether fd a of pid p and fd b of pid q are one open file description. */
static int same_desc(pid_t p, int a, pid_t q, int b)
{
	return syscall(SYS_kcmp, p, q, KCMP_FILE, a, b) == 0;
}

/* Number the open file descriptions that several fds share (dup, fork):
 * kcmp(2) tells, among fds of one inode. */
static void share_descs(struct allfds *a)
{
	uint64_t next = 1;

	for (size_t i = 0; i < a->n; i++) {
		struct fd_entry *f = a->f[i];

		for (size_t k = 0; k < i && !f->d.desc; k++) {
			struct fd_entry *g = a->f[k];
			if (g->d.dev != f->d.dev || g->d.ino != f->d.ino || g->d.kind != f->d.kind ||
			    !same_desc(a->pid[i], f->d.fd, a->pid[k], g->d.fd))
				continue;
			if (!g->d.desc)
				g->d.desc = next++;
			f->d.desc = g->d.desc;
		}
	}
}

int fd_check_tree(struct image *ims[], size_t n)
{
	struct allfds a;
	int rc;

	if (all_fds(ims, n, &a))
		return -1;
	dedup_fifos(&a);
	check_ttys(&a);
	rc = check_unix(&a);
	if (rc == 0) {
		check_pipes(&a);
		share_descs(&a);
	}
	free(a.f);
	free(a.pid);
	return rc;
}

int fd_capture(pid_t pid, struct image *im)
{
	int *fds;
	size_t n;

	if (proc_list_fds(pid, &fds, &n))
		return -1;
	im->files = calloc(n + 1, sizeof(*im->files));
	if (!im->files) {
		free(fds);
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct fd_entry *f = &im->files[im->nfiles];
		struct proc_fdinfo fi;
		char what[32], path[64];
		struct stat sb;
		int fd = fds[i];
		char *link;

		snprintf(what, sizeof(what), "fd/%d", fd);
		if (!(link = proc_readlink(pid, what)))
			goto fail;
		f->path = link;
		im->nfiles++;
		if (stat(fmt_path(path, sizeof(path), "/proc/%d/fd/%d", pid, fd), &sb) ||
		    proc_read_fdinfo(pid, fd, &fi)) {
			err_sys("pid %d: fd %d (%s): cannot stat", pid, fd, link);
			goto fail;
		}
		f->d.fd = fd;
		f->d.flags = fi.flags;
		f->d.fdflags = (fi.flags & O_CLOEXEC) ? FD_CLOEXEC : 0;
		f->d.pos = fi.pos;
		f->d.dev = sb.st_dev;
		f->d.ino = sb.st_ino;
		f->d.size = sb.st_size;
		f->d.mtime_sec = sb.st_mtim.tv_sec;
		f->d.mtime_nsec = sb.st_mtim.tv_nsec;
		f->d.mode = sb.st_mode;
		if (S_ISCHR(sb.st_mode) && is_tty_major(major(sb.st_rdev))) {
			if (capture_tty(pid, f, sb.st_rdev))
				goto fail;
		} else if (fd <= 2 && S_ISSOCK(sb.st_mode)) {
			/* A socket on a standard stream is the restoring process's
			 * then.  A pipe there may join two processes of a tree
			 * (fd_check_tree decides); a named FIFO is reopened by its
			 * path below, as on any fd: whoever writes into it (sqlite3
			 * < fifo) still does after a restore. */
			f->d.kind = IMG_FD_INHERIT;
		} else if (link[0] != '/') {
			/* Pipes and anonymous-inode files: the kind says what to keep. */
			if (capture_special(pid, f, link))
				goto fail;
		} else if (S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode)) {
			size_t l = strlen(link);
			int gone = sb.st_nlink == 0 || (l > 10 && !strcmp(link + l - 10, " (deleted)"));
			if (gone && S_ISDIR(sb.st_mode)) {
				err_set("pid %d: fd %d is deleted directory %s; not supported", pid,
					fd, link);
				goto fail;
			}
			/* A deleted file or a memfd: the image holds its contents (shm.c). */
			if (gone)
				f->d.kind = IMG_FD_SHM;
			else
				f->d.kind = S_ISREG(sb.st_mode) ? IMG_FD_REG : IMG_FD_DIR;
		} else if (S_ISFIFO(sb.st_mode)) {
			size_t l = strlen(link);
			if (sb.st_nlink == 0 || (l > 10 && !strcmp(link + l - 10, " (deleted)"))) {
				err_set("pid %d: fd %d is deleted FIFO %s; not supported", pid, fd,
					link);
				goto fail;
			}
			if (capture_fifo(pid, f))
				goto fail;
		} else if (S_ISCHR(sb.st_mode) && major(sb.st_rdev) == 1) {
			f->d.kind = IMG_FD_CHR; /* /dev/null, zero, full, random, urandom */
		} else {
			err_set("pid %d: fd %d is %s (mode %o); this kind of file is not supported "
				"yet",
				pid, fd, link, sb.st_mode & S_IFMT);
			goto fail;
		}
		f->d.path_len = strlen(link);
	}
	free(fds);
	im->proc.nfiles = im->nfiles;
	return 0;
fail:
	free(fds);
	return -1;
}

/* ---- making them again ------------------------------------------------ */

/* The pair of this kind and id made so far, or NULL. */
static struct fd_pipe *find_pair(struct fd_pipes *pipes, uint32_t kind, uint64_t id)
{
	for (size_t i = 0; i < pipes->n; i++)
		if (pipes->p[i].kind == kind && pipes->p[i].id == id)
			return &pipes->p[i];
	return NULL;
}

/* A new slot for a pair, its ends -1 (not counted until made). */
static struct fd_pipe *new_pair(struct fd_pipes *pipes, uint32_t kind, uint64_t id)
{
	struct fd_pipe *np = realloc(pipes->p, (pipes->n + 1) * sizeof(*np));

	if (!np) {
		err_set("out of memory");
		return NULL;
	}
	pipes->p = np;
	np += pipes->n;
	*np = (struct fd_pipe){.kind = kind, .id = id, .end = {-1, -1}};
	return np;
}

static int make_pipe(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_pipe p;
	struct fd_pipe *fp;
	int fd, fl;

	memcpy(&p, f->extra, sizeof(p));
	if (!(fp = find_pair(pipes, IMG_FD_PIPE, p.id))) {
		if (!(fp = new_pair(pipes, IMG_FD_PIPE, p.id)))
			return -1;
		if (pipe2(fp->end, O_CLOEXEC)) {
			err_sys("fd %d: cannot make a pipe", f->d.fd);
			return -1;
		}
		pipes->n++;
		/* Its size first, so that what it held fits without blocking;
		 * above pipe-max-size an unprivileged user keeps the default. */
		if (fcntl(fp->end[1], F_SETPIPE_SZ, p.size) < 0 && p.data_len > 65536) {
			err_sys("fd %d: cannot make a pipe of %u bytes", f->d.fd, p.size);
			return -1;
		}
	}
	if (p.data_len && write_all(fp->end[1], f->extra + sizeof(p), p.data_len)) {
		err_sys("fd %d: cannot put %u bytes back in its pipe", f->d.fd, p.data_len);
		return -1;
	}
	fd = fcntl(fp->end[p.end], F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		err_sys("fd %d: cannot duplicate a pipe end", f->d.fd);
		return -1;
	}
	/* O_NONBLOCK belongs to the open file description, which every fd
	 * of this end shares, as dup'ed fds did in the program. */
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, (fl & ~O_NONBLOCK) | (f->d.flags & O_NONBLOCK));
	return fd;
}

/* A FIFO reopened by path with its access mode.  A read-only open blocks
 * until there is a writer and a write-only one fails (ENXIO) without a
 * reader: a read-write open of our own, held until the program's is made,
 * is both, and both of the program's are made non-blocking, then given
 * its O_NONBLOCK.  The saved bytes go back only into an empty FIFO: one
 * that still holds bytes is the same pipe, kept by another process (the
 * dumped one, if it runs on), and has them already. */
static int make_fifo(const struct fd_entry *f)
{
	struct img_fifo p;
	struct stat sb;
	int hold, fd, fl, queued = 0;

	memcpy(&p, f->extra, sizeof(p));
	hold = open(f->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (hold < 0) {
		err_sys("fd %d: cannot reopen FIFO %s", f->d.fd, f->path);
		return -1;
	}
	if (fstat(hold, &sb) || !S_ISFIFO(sb.st_mode)) {
		err_set("fd %d: %s is no longer a FIFO", f->d.fd, f->path);
		close(hold);
		return -1;
	}
	fd = open(f->path, (f->d.flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		err_sys("fd %d: cannot reopen FIFO %s", f->d.fd, f->path);
		close(hold);
		return -1;
	}
	/* Above pipe-max-size an unprivileged user keeps the default. */
	if (fcntl(hold, F_GETPIPE_SZ) < (int)p.size && fcntl(hold, F_SETPIPE_SZ, p.size) < 0 &&
	    p.data_len > 65536) {
		err_sys("fd %d: cannot make FIFO %s hold %u bytes", f->d.fd, f->path, p.size);
		goto fail;
	}
	if (p.data_len && !ioctl(hold, FIONREAD, &queued) && queued == 0 &&
	    write_all(hold, f->extra + sizeof(p), p.data_len)) {
		err_sys("fd %d: cannot put %u bytes back in FIFO %s", f->d.fd, p.data_len, f->path);
		goto fail;
	}
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL,
	      (fl & ~(O_NONBLOCK | O_APPEND)) | (f->d.flags & (O_NONBLOCK | O_APPEND)));
	close(hold);
	return fd;
fail:
	close(fd);
	close(hold);
	return -1;
}

/* One message on a non-blocking socket; a stream's in as many sends as it
 * takes.  There is room: the program's socket held it. */
static int send_msg(int s, const unsigned char *buf, size_t len, int stream)
{
	ssize_t n;

	do {
		n = send(s, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return -1;
		if (!stream && (size_t)n != len) {
			errno = EMSGSIZE;
			return -1;
		}
		buf += n;
		len -= n;
	} while (stream && len);
	return 0;
}

/* One end of a unix socketpair.  The pair is made (non-blocking, so that
 * putting bytes back cannot hang) at the first fd of either end; each
 * end's queue goes in through the other end, and the shutdowns are done
 * once both ends' queues are in, as a shut end could not send. */
static int make_unix(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_unix u;
	struct fd_pipe *fp;
	const unsigned char *x = f->extra + sizeof(u);
	int fd, fl;

	memcpy(&u, f->extra, sizeof(u));
	if (!(fp = find_pair(pipes, IMG_FD_UNIX, u.id))) {
		if (!(fp = new_pair(pipes, IMG_FD_UNIX, u.id)))
			return -1;
		if (socketpair(AF_UNIX, u.type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fp->end)) {
			err_sys("fd %d: cannot make a unix socketpair", f->d.fd);
			return -1;
		}
		pipes->n++;
	}
	if (!(fp->seen & (1u << u.end))) {
		int s = fp->end[u.end], peer = fp->end[!u.end];

		/* getsockopt gave twice what was set; above wmem_max and
		 * rmem_max an unprivileged user gets the maximum. */
		if (u.sndbuf)
			setsockopt(s, SOL_SOCKET, SO_SNDBUF, &(int){u.sndbuf / 2}, sizeof(int));
		if (u.rcvbuf)
			setsockopt(s, SOL_SOCKET, SO_RCVBUF, &(int){u.rcvbuf / 2}, sizeof(int));
		/* The bytes queued here are charged to the peer's send buffer:
		 * until the peer's own FILE record sets the size it had, make
		 * it as large as we may (SO_SNDBUFFORCE needs CAP_NET_ADMIN). */
		if (u.nmsg && !(fp->seen & (1u << !u.end)) &&
		    setsockopt(peer, SOL_SOCKET, SO_SNDBUFFORCE, &(int){u.data_len + (1 << 20)},
			       sizeof(int)))
			setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &(int){INT_MAX / 2}, sizeof(int));
		for (uint32_t k = 0; k < u.nmsg; k++) {
			uint32_t l;

			memcpy(&l, x, 4);
			if (send_msg(peer, x + 4, l, u.type == SOCK_STREAM)) {
				err_sys("fd %d: cannot put %u queued bytes back in its unix socket",
					f->d.fd, l);
				return -1;
			}
			x += 4 + l;
		}
		fp->shut[u.end] = u.shutdown;
		fp->seen |= 1u << u.end;
		if (fp->seen == 3)
			for (int e = 0; e < 2; e++)
				if (fp->shut[e] && shutdown(fp->end[e], fp->shut[e] - 1) &&
				    errno != ENOTCONN) {
					err_sys("fd %d: cannot shut its unix socketpair down",
						f->d.fd);
					return -1;
				}
	}
	fd = fcntl(fp->end[u.end], F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		err_sys("fd %d: cannot duplicate a unix socket", f->d.fd);
		return -1;
	}
	fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, (fl & ~O_NONBLOCK) | (f->d.flags & O_NONBLOCK));
	return fd;
}

/* An inotify instance with its watches at their wds.  The kernel gives
 * out a new instance's wds counting up from 1 and does not reuse one
 * until it wraps (idr_alloc_cyclic): where the program's numbers have a
 * gap (a watch it removed), the watch is added and removed again until
 * its number comes up.  Each removal queues an IN_IGNORED event, read
 * out at the end with whatever else happened meanwhile. */
static int make_inotify(const struct fd_entry *f)
{
	struct img_inotify in;
	const unsigned char *x = f->extra + sizeof(in);
	int fd, skipped = 0;

	memcpy(&in, f->extra, sizeof(in));
	fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (fd < 0) {
		err_sys("fd %d: cannot make an inotify instance", f->d.fd);
		return -1;
	}
	for (uint32_t k = 0; k < in.n; k++) {
		struct img_inotify_watch w;
		char path[PATH_MAX];
		int wd;

		memcpy(&w, x, sizeof(w));
		memcpy(path, x + sizeof(w), w.path_len);
		path[w.path_len] = 0;
		x += sizeof(w) + w.path_len;
		while ((wd = inotify_add_watch(fd, path, w.mask)) >= 0 && wd < w.wd) {
			inotify_rm_watch(fd, wd);
			skipped = 1;
		}
		if (wd < 0) {
			err_sys("fd %d: cannot watch %s with inotify again", f->d.fd, path);
			goto fail;
		}
		if (wd != w.wd) {
			err_set("fd %d: inotify watch %d on %s came back as %d", f->d.fd, w.wd,
				path, wd);
			goto fail;
		}
	}
	if (skipped) {
		char buf[4096];
		while (read(fd, buf, sizeof(buf)) > 0)
			;
	}
	if (!(f->d.flags & O_NONBLOCK))
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
fail:
	close(fd);
	return -1;
}

int fd_tty_inherits(const struct fd_entry *f)
{
	struct img_tty t;

	if (f->d.kind != IMG_FD_TTY || f->d.fd > 2)
		return 0;
	memcpy(&t, f->extra, sizeof(t));
	return t.role == IMG_TTY_TERM;
}

int fd_tty_settings(int fd, const struct fd_entry *f)
{
	struct img_tty t;
	struct termios tio;
	struct winsize ws;
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	int rc = 0;

	memcpy(&t, f->extra, sizeof(t));
	if (!t.have || !isatty(fd))
		return 0;
	if (tcgetattr(fd, &tio)) {
		err_sys("fd %d: cannot read the terminal's settings", f->d.fd);
		return -1;
	}
	tio.c_iflag = t.iflag;
	tio.c_oflag = t.oflag;
	tio.c_cflag = t.cflag;
	tio.c_lflag = t.lflag;
	tio.c_line = t.line;
	memcpy(tio.c_cc, t.cc, sizeof(t.cc) < NCCS ? sizeof(t.cc) : NCCS);
	cfsetispeed(&tio, t.ispeed);
	cfsetospeed(&tio, t.ospeed);
	ws = (struct winsize){t.rows, t.cols, t.xpixel, t.ypixel};
	/* From a background process group, changing the controlling
	 * terminal would stop us with SIGTTOU; ignored, it is allowed. */
	sigaction(SIGTTOU, &ign, &old);
	if (tcsetattr(fd, TCSANOW, &tio) || ioctl(fd, TIOCSWINSZ, &ws)) {
		err_sys("fd %d: cannot set the terminal's settings", f->d.fd);
		rc = -1;
	}
	sigaction(SIGTTOU, &old, NULL);
	return rc;
}

/* A terminal the program did not make: the restoring process's own,
 * which is one of its standard streams or else /dev/tty. */
static int open_term(const struct fd_entry *f)
{
	int flags = (f->d.flags & (O_ACCMODE | O_NONBLOCK | O_APPEND)) | O_NOCTTY | O_CLOEXEC;
	char path[64];
	int fd = -1;

	for (int k = 0; k <= 2 && fd < 0; k++)
		if (isatty(k))
			fd = open(fmt_path(path, sizeof(path), "/proc/self/fd/%d", k), flags);
	if (fd < 0)
		fd = open("/dev/tty", flags);
	if (fd < 0) {
		err_sys("fd %d was terminal %s: cannot open a terminal of ours (none of fds 0-2 "
			"is one, and /dev/tty)",
			f->d.fd, f->path);
		return -1;
	}
	if (fd_tty_settings(fd, f)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* An end of a pty pair the program made: a new pair (its number may
 * differ from the old one), the slave opened through the master
 * (TIOCGPTPEER, Linux 4.13), the settings and the lock as they were. */
static int make_pty(const struct fd_entry *f, struct fd_pipes *pipes)
{
	int acc = (f->d.flags & (O_ACCMODE | O_NONBLOCK)) | O_NOCTTY | O_CLOEXEC;
	struct fd_pipe *fp;
	struct img_tty t;
	int fd, lock = 0;

	memcpy(&t, f->extra, sizeof(t));
	if (!(fp = find_pair(pipes, IMG_FD_TTY, t.index))) {
		if (!(fp = new_pair(pipes, IMG_FD_TTY, t.index)))
			return -1;
		fp->end[0] = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (fp->end[0] < 0 || ioctl(fp->end[0], TIOCSPTLCK, &lock)) {
			err_sys("fd %d: cannot make a pty pair", f->d.fd);
			close(fp->end[0]);
			return -1;
		}
		pipes->n++;
	}
	if (t.role == IMG_TTY_PTS) {
		fd = ioctl(fp->end[0], TIOCGPTPEER, acc);
		if (fd < 0) {
			err_sys("fd %d: cannot open the slave of a new pty", f->d.fd);
			return -1;
		}
	} else {
		/* Every ptmx fd of the pair is a dup of one open file: two
		 * opens of /dev/ptmx would be two pairs. */
		fd = fcntl(fp->end[0], F_DUPFD_CLOEXEC, 0);
		if (fd < 0) {
			err_sys("fd %d: cannot duplicate a pty master", f->d.fd);
			return -1;
		}
		fcntl(fd, F_SETFL, (fcntl(fd, F_GETFL) & ~O_NONBLOCK) | (f->d.flags & O_NONBLOCK));
		fp->seen |= 1;
		fp->shut[0] = t.locked;
	}
	if (fd_tty_settings(fd, f)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Lock again the slaves of pty pairs that were locked; each slave the
 * program held is open by now. */
static int lock_ptys(struct fd_pipes *pipes)
{
	for (size_t i = 0; i < pipes->n; i++) {
		struct fd_pipe *fp = &pipes->p[i];
		int lock = 1;

		if (fp->kind == IMG_FD_TTY && fp->shut[0] && ioctl(fp->end[0], TIOCSPTLCK, &lock)) {
			err_sys("cannot lock a pty again");
			return -1;
		}
	}
	return 0;
}

static int make_timerfd(const struct fd_entry *f)
{
	struct img_timerfd t;
	struct itimerspec its;
	int fd;

	memcpy(&t, f->extra, sizeof(t));
	fd = timerfd_create(t.clock, TFD_CLOEXEC | ((f->d.flags & O_NONBLOCK) ? TFD_NONBLOCK : 0));
	if (fd < 0) {
		err_sys("fd %d: cannot make a timerfd on clock %d", f->d.fd, t.clock);
		return -1;
	}
	/* The time it had left, from now (relative), as for other timers. */
	its.it_value.tv_sec = t.left.sec;
	its.it_value.tv_nsec = t.left.nsec;
	its.it_interval.tv_sec = t.interval.sec;
	its.it_interval.tv_nsec = t.interval.nsec;
	if ((t.left.sec || t.left.nsec) && timerfd_settime(fd, 0, &its, NULL)) {
		err_sys("fd %d: cannot arm its timerfd", f->d.fd);
		close(fd);
		return -1;
	}
	if (t.ticks && ioctl(fd, TFD_IOC_SET_TICKS, &t.ticks)) {
		err_sys("fd %d: cannot restore %llu expirations of its timerfd", f->d.fd,
			(unsigned long long)t.ticks);
		close(fd);
		return -1;
	}
	return fd;
}

int fd_make(const struct fd_entry *f, struct fd_pipes *pipes)
{
	int nb = f->d.flags & O_NONBLOCK, fd = -1;

	switch (f->d.kind) {
	case IMG_FD_PIPE:
		return make_pipe(f, pipes);
	case IMG_FD_EVENTFD: {
		struct img_eventfd e;
		memcpy(&e, f->extra, sizeof(e));
		fd = eventfd(0, EFD_CLOEXEC | (nb ? EFD_NONBLOCK : 0) |
				    (e.semaphore ? EFD_SEMAPHORE : 0));
		if (fd >= 0 && e.count && write(fd, &e.count, 8) != 8) {
			close(fd);
			fd = -1;
		}
		break;
	}
	case IMG_FD_SIGNALFD: {
		struct img_signalfd s;
		sigset_t set;
		memcpy(&s, f->extra, sizeof(s));
		sigemptyset(&set);
		for (int sig = 1; sig <= 64; sig++)
			if (s.mask & (1ull << (sig - 1)))
				sigaddset(&set, sig);
		fd = signalfd(-1, &set, SFD_CLOEXEC | (nb ? SFD_NONBLOCK : 0));
		break;
	}
	case IMG_FD_TIMERFD:
		return make_timerfd(f);
	case IMG_FD_FIFO:
		return make_fifo(f);
	case IMG_FD_UNIX:
		return make_unix(f, pipes);
	case IMG_FD_INOTIFY:
		return make_inotify(f);
	case IMG_FD_TTY: {
		struct img_tty t;
		memcpy(&t, f->extra, sizeof(t));
		return t.role == IMG_TTY_TERM ? open_term(f) : make_pty(f, pipes);
	}
	case IMG_FD_EPOLL:
		fd = epoll_create1(EPOLL_CLOEXEC);
		break;
	default:
		err_set("fd %d: unknown kind %u", f->d.fd, f->d.kind);
		return -1;
	}
	if (fd < 0)
		err_sys("fd %d: cannot make its %s again", f->d.fd, img_fd_kind_name(f->d.kind));
	return fd;
}

int fd_pipes_done(struct fd_pipes *pipes)
{
	return lock_ptys(pipes);
}

void fd_pipes_close(struct fd_pipes *pipes)
{
	for (size_t i = 0; i < pipes->n; i++) {
		close(pipes->p[i].end[0]);
		close(pipes->p[i].end[1]);
	}
	free(pipes->p);
	pipes->p = NULL;
	pipes->n = 0;
}

int fd_epoll_register(const struct image *im)
{
	for (size_t i = 0; i < im->nfiles; i++) {
		const struct fd_entry *f = &im->files[i];
		struct img_epoll e;

		if (f->d.kind != IMG_FD_EPOLL)
			continue;
		memcpy(&e, f->extra, sizeof(e));
		for (uint32_t k = 0; k < e.n; k++) {
			struct img_epoll_item it;
			struct epoll_event ev;

			memcpy(&it, f->extra + sizeof(e) + k * sizeof(it), sizeof(it));
			ev.events = it.events;
			ev.data.u64 = it.data;
			/* EEXIST: a process of the tree that shares this epoll
			 * instance registered the watch already. */
			if (epoll_ctl(f->d.fd, EPOLL_CTL_ADD, it.fd, &ev) && errno != EEXIST) {
				err_sys("fd %d: cannot watch fd %d with epoll again", f->d.fd,
					it.fd);
				return -1;
			}
		}
	}
	return 0;
}
