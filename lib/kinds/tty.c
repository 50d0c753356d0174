/* tty.c: terminals: pty pairs the program made, made again, and terminals it was given, whose
 * settings go onto the restoring process's own. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

int fd_is_tty(const struct stat *sb)
{
	unsigned maj = major(sb->st_rdev);

	return S_ISCHR(sb->st_mode) && (maj == 4 || maj == 5 || (maj >= 136 && maj <= 143));
}

static int is_ptmx(dev_t rdev)
{
	return major(rdev) == 5 && minor(rdev) == 2;
}

/* write_raw FD DATA LEN: DATA into the pty slave FD as it is, its output
 * processing (OPOST: \n to \r\n ...) off meanwhile and then as it was:
 * the master reads exactly DATA.  Nothing may block: the master's queue
 * is empty and had room for DATA. */
static int write_raw(int fd, const char *data, size_t len)
{
	struct termios tio, raw;
	int rc = 0;

	if (tcgetattr(fd, &tio))
		return -1;
	raw = tio;
	raw.c_oflag &= ~OPOST;
	if (tcsetattr(fd, TCSANOW, &raw))
		return -1;
	if (write_all(fd, data, len))
		rc = -1;
	if (tcsetattr(fd, TCSANOW, &tio))
		rc = -1;
	return rc;
}

/* What the slave side of the pty pair whose master is S (our copy of the
 * frozen process's) wrote and the master did not read yet: read, and
 * written back through the slave, so that the process finds it there if
 * it runs on; in *DATA (malloc'd), *LEN bytes.  In packet mode each read
 * starts with a status byte: a data packet's is dropped, a status change
 * alone (flow control, a flush) is not kept. */
static int pty_pending(int s, pid_t pid, const struct fd_entry *f, int pkt, char **data,
		       size_t *len)
{
	char buf[4096], *d = NULL;
	size_t n = 0;
	struct pollfd pfd = {.fd = s, .events = POLLIN};
	int slave;

	*data = NULL;
	*len = 0;
	/* poll and read flush the pair's buffer work first (n_tty): bytes
	 * the slave wrote just before the freeze are there. */
	while (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN)) {
		ssize_t r = read(s, buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break; /* EIO: no slave open any more; EAGAIN: none */
		size_t off = pkt ? 1 : 0;
		if ((size_t)r <= off || (pkt && buf[0] != TIOCPKT_DATA))
			continue;
		if (n + r - off > IMG_TTY_DATA_MAX) {
			err_set("pid %d: fd %d (%s): over %u bytes queued in the pty", pid,
				f->d.fd, f->path, IMG_TTY_DATA_MAX);
			free(d);
			return -1;
		}
		char *nd = realloc(d, n + r - off);
		if (!nd) {
			err_sys("pid %d: fd %d: cannot keep what the pty holds", pid, f->d.fd);
			free(d);
			return -1;
		}
		d = nd;
		memcpy(d + n, buf + off, r - off);
		n += r - off;
	}
	if (!n)
		return 0;
	slave = ioctl(s, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (slave < 0 || write_raw(slave, d, n)) {
		err_sys("pid %d: fd %d (%s): cannot put back the %zu bytes queued in the pty",
			pid, f->d.fd, f->path, n);
		if (slave >= 0)
			close(slave);
		free(d);
		return -1;
	}
	close(slave);
	*data = d;
	*len = n;
	return 0;
}

/* A terminal's settings and, for a pty, its number and lock.  A slave
 * pty is only known to be the program's own (PTS) once every fd is
 * captured (join_ttys); until then it is a TERM with its number. */
static int capture_tty(const struct fd_source *src, struct fd_entry *f)
{
	struct img_tty t = {.role = IMG_TTY_TERM, .index = UINT32_MAX};
	dev_t rdev = src->sb->st_rdev;
	pid_t pid = src->pid;
	struct termios tio;
	struct winsize ws;
	int s, v = 0;

	if ((s = fd_getfd(pid, f->d.fd)) < 0)
		return -1;
	if (is_ptmx(rdev)) {
		t.role = IMG_TTY_PTMX;
		int pkt = 0;

		if (ioctl(s, TIOCGPTN, &t.index) || ioctl(s, TIOCGPTLCK, &v) ||
		    ioctl(s, TIOCGPKT, &pkt)) {
			err_sys("pid %d: fd %d (%s): cannot ask the pty master its number", pid,
				f->d.fd, f->path);
			close(s);
			return -1;
		}
		t.locked = !!v;
		/* GNU screen reads its windows' masters in packet mode: a new
		 * master without it would hand it data as the status byte. */
		t.mode = pkt ? IMG_TTY_PKT : 0;
	} else if (major(rdev) >= 136 && major(rdev) <= 143) {
		t.index =
		    (major(rdev) - 136) << 20 | minor(rdev); /* 20-bit minors: pts/N is 136:N */
	} else if (major(rdev) == 5 && minor(rdev) == 0) {
		/* /dev/tty: which terminal it is open on (TIOCGDEV, Linux
		 * 3.?): a pty slave of the process's own is its controlling
		 * terminal, made again (join_ttys). */
		unsigned dev;
		if (!ioctl(s, TIOCGDEV, &dev) && major(dev) >= 136 && major(dev) <= 143)
			t.index = (major(dev) - 136) << 20 | minor(dev);
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
	if (t.role == IMG_TTY_PTMX && !t.locked) {
		char *data = NULL;
		size_t len = 0;
		int rc;

		if (pty_pending(s, pid, f, !!(t.mode & IMG_TTY_PKT), &data, &len)) {
			close(s);
			return -1;
		}
		if (len)
			t.mode |= IMG_TTY_DATA;
		rc = fd_set_extra(f, &t, sizeof(t), data, len);
		free(data);
		close(s);
		return rc;
	}
	close(s);
	return fd_set_extra(f, &t, sizeof(t), NULL, 0);
}

/* A slave pty whose master the tree holds is part of a pair it made; any
 * other terminal is reattached to the restoring one's. */
static int join_ttys(struct fd_all *a)
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
				t.role = strcmp(f->path, "/dev/tty") ? IMG_TTY_PTS : IMG_TTY_CTTY;
				break;
			}
		}
		/* /dev/tty on a terminal not ours: ckpt-remap's own again. */
		if (t.role == IMG_TTY_TERM && !strcmp(f->path, "/dev/tty"))
			t.index = UINT32_MAX;
		memcpy(f->extra, &t, sizeof(t));
	}
	return 0;
}

static int check_tty(const unsigned char *x, uint32_t n)
{
	struct img_tty t;

	if (n < sizeof(t))
		return -1;
	memcpy(&t, x, sizeof(t));
	if (t.role > IMG_TTY_CTTY || t.locked > 1 || t.have > 1 ||
	    (t.role == IMG_TTY_CTTY && t.index == UINT32_MAX) ||
	    (t.mode & ~(IMG_TTY_PKT | IMG_TTY_DATA)) || (t.mode && t.role != IMG_TTY_PTMX) ||
	    t.pad[0] || t.pad[1])
		return -1;
	/* The queued bytes, only after a master that says so, never none. */
	if (!(t.mode & IMG_TTY_DATA) != (n == sizeof(t)) || n - sizeof(t) > IMG_TTY_DATA_MAX)
		return -1;
	return 0;
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
	/* A terminal from outside keeps its own size: its emulator (or sshd,
	 * or tmux) knows it, and the program learns it by the SIGWINCH the
	 * restore sends it (restore.c).  One that has no size (0x0: a pty
	 * nobody sized), and a pty of the tree's, get the size it had. */
	struct winsize now = {0};
	int keep = t.role == IMG_TTY_TERM && !ioctl(fd, TIOCGWINSZ, &now) && now.ws_row &&
		   now.ws_col;
	if (tcsetattr(fd, TCSANOW, &tio) || (!keep && ioctl(fd, TIOCSWINSZ, &ws))) {
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

/* /dev/tty on the new pair's slave: the slave made this process's
 * controlling terminal first (this process leads a session of its own
 * and has none: fd_take_session). */
static int open_ctty(const struct fd_entry *f, int master, int acc)
{
	int s = ioctl(master, TIOCGPTPEER, O_RDWR | O_CLOEXEC), fd;

	if (s < 0 || ioctl(s, TIOCSCTTY, 0)) {
		err_sys("fd %d was /dev/tty on a pty of its own: cannot make the new pty the "
			"controlling terminal",
			f->d.fd);
		if (s >= 0)
			close(s);
		return -1;
	}
	close(s);
	fd = open("/dev/tty", (acc & ~O_NOCTTY) | O_CLOEXEC);
	if (fd < 0)
		err_sys("fd %d: cannot open /dev/tty on the new pty", f->d.fd);
	return fd;
}

int fd_take_session(const struct image *im, struct fd_pipes *pipes)
{
	for (size_t i = 0; i < im->nfiles; i++) {
		const struct fd_entry *f = &im->files[i];
		struct img_tty t;

		if (f->d.kind != IMG_FD_TTY)
			continue;
		memcpy(&t, f->extra, sizeof(t));
		if (t.role != IMG_TTY_CTTY)
			continue;
		if (im->proc.sid != im->proc.pid) {
			err_set("fd %d was /dev/tty on pty %u of its own, but the process did not "
				"lead its session (session %d): its leader is not in the image",
				f->d.fd, t.index, im->proc.sid);
			return -1;
		}
		if (getsid(0) != getpid() && setsid() < 0) {
			err_sys("fd %d was /dev/tty on a pty of its own: cannot start a session "
				"for it (ckpt-remap leads a process group: start it from a "
				"shell without job control, or with --pid-ns)",
				f->d.fd);
			return -1;
		}
		pipes->session = 1;
		return 0;
	}
	return 0;
}

/* An end of a pty pair the program made: a new pair (its number may
 * differ from the old one), the slave opened through the master
 * (TIOCGPTPEER, Linux 4.13), the settings and the lock as they were. */
static int make_pty(const struct fd_entry *f, struct fd_pipes *pipes)
{
	int acc = (f->d.flags & (O_ACCMODE | O_NONBLOCK)) | O_NOCTTY | O_CLOEXEC;
	struct fd_pipe *fp;
	struct img_tty t;
	int fd, lock = 0, pkt;

	memcpy(&t, f->extra, sizeof(t));
	pkt = !!(t.mode & IMG_TTY_PKT);
	if (!(fp = fd_find_pair(pipes, IMG_FD_TTY, t.index))) {
		if (!(fp = fd_new_pair(pipes, IMG_FD_TTY, t.index)))
			return -1;
		fp->end[0] = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (fp->end[0] < 0 || ioctl(fp->end[0], TIOCSPTLCK, &lock)) {
			err_sys("fd %d: cannot make a pty pair", f->d.fd);
			close(fp->end[0]);
			return -1;
		}
		pipes->n++;
	}
	if (t.role == IMG_TTY_CTTY && pipes->session) {
		fd = open_ctty(f, fp->end[0], acc);
		if (fd < 0)
			return -1;
	} else if (t.role != IMG_TTY_PTMX) {
		/* A /dev/tty made before a tree forks: the slave, until the
		 * session leader has taken it (rst_tree_ctty). */
		fd = ioctl(fp->end[0], TIOCGPTPEER, acc);
		if (fd < 0) {
			err_sys("fd %d: cannot open the slave of a new pty", f->d.fd);
			return -1;
		}
	} else {
		/* Every ptmx fd of the pair is a dup of one open file: two
		 * opens of /dev/ptmx would be two pairs. */
		fd = fd_dup_end(fp->end[0], f, "a pty master");
		if (fd < 0)
			return -1;
		/* The bytes queued to the master, once for the pair: into
		 * the new slave, for the master to read first. */
		if (!(fp->seen & 1) && (t.mode & IMG_TTY_DATA)) {
			int s = ioctl(fp->end[0], TIOCGPTPEER, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);

			if (s < 0 || write_raw(s, (const char *)f->extra + sizeof(t),
					       f->d.extra_len - sizeof(t))) {
				err_sys("fd %d: cannot queue %zu bytes to the new pty master",
					f->d.fd, (size_t)f->d.extra_len - sizeof(t));
				if (s >= 0)
					close(s);
				close(fd);
				return -1;
			}
			close(s);
		}
		fp->seen |= 1;
		fp->shut[0] = t.locked;
		/* Packet mode belongs to the pair: one master, however many fds. */
		if (pkt && ioctl(fd, TIOCPKT, &pkt)) {
			err_sys("fd %d: cannot put the new pty master in packet mode", f->d.fd);
			close(fd);
			return -1;
		}
	}
	if (fd_tty_settings(fd, f)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Lock again the slaves of pty pairs that were locked; each slave the
 * program held is open by now. */
int fd_lock_ptys(struct fd_pipes *pipes)
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

static int make_tty(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_tty t;

	memcpy(&t, f->extra, sizeof(t));
	return t.role == IMG_TTY_TERM ? open_term(f) : make_pty(f, pipes);
}

static void show_tty(FILE *out, const struct fd_entry *f, int json)
{
	static const char *const roles[] = {"terminal", "ptmx", "pts", "ctty"};
	struct img_tty t;

	memcpy(&t, f->extra, sizeof(t));
	fprintf(out, json ? ",\"role\":\"%s\"" : " %s", roles[t.role]);
	if (t.index != UINT32_MAX)
		fd_put_num(out, json, "pty", t.index);
	if (t.role == IMG_TTY_PTMX) {
		fd_put_num(out, json, "locked", t.locked);
		if (t.mode & IMG_TTY_PKT)
			fd_put_num(out, json, "packet", 1);
		if (t.mode & IMG_TTY_DATA)
			fd_put_num(out, json, "queued", f->d.extra_len - sizeof(t));
	}
	if (t.have) {
		fd_put_num(out, json, "rows", t.rows);
		fd_put_num(out, json, "cols", t.cols);
		fprintf(out,
			json ? ",\"iflag\":%u,\"oflag\":%u,\"cflag\":%u,\"lflag\":%u"
			     : " iflag %#o oflag %#o cflag %#o lflag %#o",
			t.iflag, t.oflag, t.cflag, t.lflag);
	}
}

const struct fd_ops fd_tty_ops = {
    .name = "tty",
    .capture = capture_tty,
    .join = join_ttys,
    .check = check_tty,
    .make = make_tty,
    .show = show_tty,
};
