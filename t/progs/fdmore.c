/* fdmore: a process holding one more kind of fd, set up with state that a
 * restore must keep, checked after it.
 *
 * usage: fdmore KIND DIR
 *   fifo   two FIFOs in DIR: one read-write with 70 KiB in a 128 KiB
 *          buffer, one with a non-blocking read end and a write end
 *          (and a dup of it) with 5 bytes in it
 *   unix   unix socketpairs: a stream one with 60 KiB one way and 4 bytes
 *          the other, one end non-blocking, the other close-on-exec; a
 *          datagram one with 3 datagrams one way, 1 the other; a
 *          seqpacket one with 2 messages and its sender shut for writing;
 *          a stream one whose one end was shut for reading
 *   inotify  (in DIR, its current directory) an inotify instance watching
 *          DIR/w/a (wd 1), DIR/w/c (wd 3: wd 2, on DIR/w/b, was removed)
 *          and DIR/w (wd 4, IN_CREATE), and a blocking one watching
 *          DIR/w/b for IN_CLOSE_WRITE; after go, changes are made and each
 *          event must arrive with its wd, and no other
 *   inotifyfar  an inotify instance watching /etc/hostname, outside
 *          the process's files and directory
 *   tty    on a terminal (standard input): echo and canonical mode off,
 *          VTIME 5, 33x111 window; /dev/tty open as fd 3; a pty pair of
 *          its own made raw with a 10x20 window, its slave having written
 *          "queued\n" (\r\n to the master) that the master reads only
 *          after go; a second pty master whose slave is still locked
 *   file   DIR/data (5 bytes) open read-write at offset 2
 *   all    fifo, unix, inotify and file at once, and tty when standard
 *          input is a terminal
 *   unixpeer  a socketpair whose other end a child holds (not supported)
 *   listen    a unix socket listening on DIR/sock (fd 3), a client
 *          connected to it (fd 4) and the connection it accepted (fd 5,
 *          bound to the listener's name; t/0610 checks such connections)
 *   netlink   an audit netlink socket (not supported)
 * Prints "ready PID", waits for DIR/go, checks, prints "fdmore KIND: ok"
 * and exits 0 only if everything is intact. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <linux/netlink.h>
#include <time.h>
#include <unistd.h>

#define PROG "fdmore"
#include "progs.h"

#define FIFO_DATA (70 * 1024)

static const char *dir;

static unsigned char byte_at(size_t i)
{
	return (unsigned char)mix(7, i / 8) >> (i % 8);
}

static void want_flags(int fd, int flags, const char *what)
{
	int fl = fcntl(fd, F_GETFL);

	if ((fl & (O_ACCMODE | O_NONBLOCK)) != flags)
		fail("%s: flags %#o, not %#o", what, fl & (O_ACCMODE | O_NONBLOCK), flags);
}

/* ---- fifo ---- */

static int ff, fr, fw, fw2;

static void fifo_setup(void)
{
	static unsigned char buf[FIFO_DATA];

	if (mkfifo(in_dir("f1"), 0600) || mkfifo(in_dir("f2"), 0600))
		die("mkfifo");
	ff = open(in_dir("f1"), O_RDWR);
	if (ff < 0 || fcntl(ff, F_SETPIPE_SZ, 128 * 1024) < 0)
		die("f1");
	for (size_t i = 0; i < FIFO_DATA; i++)
		buf[i] = byte_at(i);
	if (write(ff, buf, FIFO_DATA) != FIFO_DATA)
		die("write f1");
	fr = open(in_dir("f2"), O_RDONLY | O_NONBLOCK);
	fw = open(in_dir("f2"), O_WRONLY);
	fw2 = dup(fw);
	if (fr < 0 || fw < 0 || fw2 < 0 || write(fw, "hello", 5) != 5)
		die("f2");
}

static void fifo_check(void)
{
	static unsigned char buf[FIFO_DATA + 1];
	ssize_t n;

	want_flags(ff, O_RDWR, "f1");
	want_flags(fr, O_RDONLY | O_NONBLOCK, "f2 read end");
	want_flags(fw, O_WRONLY, "f2 write end");
	if (fcntl(ff, F_GETPIPE_SZ) < 128 * 1024)
		fail("f1: pipe size %d, not 128 KiB", fcntl(ff, F_GETPIPE_SZ));
	fcntl(ff, F_SETFL, O_NONBLOCK);
	n = read(ff, buf, sizeof(buf));
	if (n != FIFO_DATA)
		fail("f1: %zd bytes, not %d", n, FIFO_DATA);
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] != byte_at(i)) {
			fail("f1: byte %zd differs", i);
			break;
		}
	n = read(fr, buf, sizeof(buf));
	if (n != 5 || memcmp(buf, "hello", 5))
		fail("f2: read %zd bytes, not hello", n);
	if (read(fr, buf, 1) != -1 || errno != EAGAIN)
		fail("f2: empty non-blocking read end: not EAGAIN");
	/* The ends still meet: what the dup writes, the read end gets. */
	if (write(fw2, "again", 5) != 5 || read(fr, buf, 10) != 5 || memcmp(buf, "again", 5))
		fail("f2: write end and read end no longer meet");
}

/* ---- unix ---- */

#define UNIX_DATA (60 * 1024)

static int us[2], ud[2], uq[2], ue[2];

static void unix_setup(void)
{
	static unsigned char buf[UNIX_DATA];
	char big[1000];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, us) ||
	    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, ud) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, uq) || socketpair(AF_UNIX, SOCK_STREAM, 0, ue))
		die("socketpair");
	for (size_t i = 0; i < UNIX_DATA; i++)
		buf[i] = byte_at(i);
	/* In two writes: the peer's queue holds two messages, read as one stream. */
	if (write(us[0], buf, 1000) != 1000 ||
	    write(us[0], buf + 1000, UNIX_DATA - 1000) != UNIX_DATA - 1000 ||
	    write(us[1], "pong", 4) != 4)
		die("stream writes");
	fcntl(us[1], F_SETFL, O_NONBLOCK);
	fcntl(us[0], F_SETFD, FD_CLOEXEC);
	memset(big, 'b', sizeof(big));
	if (send(ud[0], "one", 3, 0) != 3 || send(ud[0], "two!", 4, 0) != 4 ||
	    send(ud[0], big, sizeof(big), 0) != sizeof(big) || send(ud[1], "back", 4, 0) != 4)
		die("datagram sends");
	if (send(uq[0], "first", 5, 0) != 5 || send(uq[0], "second", 6, 0) != 6 ||
	    shutdown(uq[0], SHUT_WR))
		die("seqpacket");
	if (shutdown(ue[1], SHUT_RD))
		die("shutdown");
}

static void want_msg(int s, const char *want, size_t len, const char *what)
{
	char buf[2048];
	ssize_t n = recv(s, buf, sizeof(buf), MSG_DONTWAIT);

	if (n != (ssize_t)len || memcmp(buf, want, len))
		fail("%s: got %zd bytes, not the %zu expected", what, n, len);
}

static void unix_check(void)
{
	static unsigned char buf[UNIX_DATA + 10];
	char big[1000];
	size_t got = 0;
	ssize_t n;

	want_flags(us[1], O_RDWR | O_NONBLOCK, "stream end 1");
	want_flags(us[0], O_RDWR, "stream end 0");
	if (fcntl(us[0], F_GETFD) != FD_CLOEXEC || fcntl(us[1], F_GETFD) != 0)
		fail("stream: close-on-exec flags %d %d", fcntl(us[0], F_GETFD),
		     fcntl(us[1], F_GETFD));
	if (fcntl(ud[0], F_GETFD) != FD_CLOEXEC)
		fail("dgram: not close-on-exec");
	while (got < sizeof(buf) &&
	       (n = recv(us[1], buf + got, sizeof(buf) - got, MSG_DONTWAIT)) > 0)
		got += n;
	if (got != UNIX_DATA)
		fail("stream: %zu bytes, not %d", got, UNIX_DATA);
	for (size_t i = 0; i < got; i++)
		if (buf[i] != byte_at(i)) {
			fail("stream: byte %zu differs", i);
			break;
		}
	want_msg(us[0], "pong", 4, "stream, other way");
	memset(big, 'b', sizeof(big));
	want_msg(ud[1], "one", 3, "datagram 1");
	want_msg(ud[1], "two!", 4, "datagram 2");
	want_msg(ud[1], big, sizeof(big), "datagram 3");
	want_msg(ud[0], "back", 4, "datagram, other way");
	want_msg(uq[1], "first", 5, "seqpacket 1");
	want_msg(uq[1], "second", 6, "seqpacket 2");
	if (recv(uq[1], buf, 10, MSG_DONTWAIT) != 0)
		fail("seqpacket: no end of file after the messages");
	if (send(uq[0], "x", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE)
		fail("seqpacket: its shut end can send");
	if (send(ue[0], "x", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE)
		fail("stream: sending to an end shut for reading is not EPIPE");
	/* Still pairs: what one end sends, the other gets. */
	if (send(us[0], "new", 3, 0) != 3)
		fail("stream: send after restore");
	want_msg(us[1], "new", 3, "stream after restore");
	if (send(ud[1], "new", 3, 0) != 3)
		fail("dgram: send after restore");
	want_msg(ud[0], "new", 3, "dgram after restore");
}

/* ---- inotify ---- */

static int in1, in2;

static void touch_file(const char *name, const char *data)
{
	int fd = open(name, O_WRONLY | O_CREAT | O_APPEND, 0600); /* in DIR */

	if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data))
		die(name);
	close(fd);
}

static void inotify_setup(void)
{
	char buf[4096];

	if (chdir(dir) || mkdir("w", 0700))
		die("w");
	touch_file("w/a", "");
	touch_file("w/b", "");
	touch_file("w/c", "");
	in1 = inotify_init1(IN_NONBLOCK);
	in2 = inotify_init1(IN_CLOEXEC);
	if (in1 < 0 || in2 < 0)
		die("inotify_init1");
	if (inotify_add_watch(in1, "w/a", IN_MODIFY) != 1 ||
	    inotify_add_watch(in1, "w/b", IN_MODIFY) != 2 ||
	    inotify_add_watch(in1, "w/c", IN_MODIFY | IN_ATTRIB) != 3 || inotify_rm_watch(in1, 2) ||
	    inotify_add_watch(in1, "w", IN_CREATE) != 4 ||
	    inotify_add_watch(in2, "w/b", IN_CLOSE_WRITE) != 1)
		die("inotify_add_watch");
	while (read(in1, buf, sizeof(buf)) > 0) /* the IN_IGNORED of wd 2 */
		;
}

/* The next event of fd: its wd and mask, and its name in name. */
static int next_event(int fd, int *wd, unsigned *mask, char *name)
{
	static char buf[4096] __attribute__((aligned(8)));
	static ssize_t len, off;
	const struct inotify_event *e;

	if (off >= len) {
		off = 0;
		len = read(fd, buf, sizeof(buf));
		if (len <= 0)
			return -1;
	}
	e = (const void *)(buf + off);
	*wd = e->wd;
	*mask = e->mask;
	strcpy(name, e->len ? e->name : "");
	off += sizeof(*e) + e->len;
	return 0;
}

static void inotify_check(void)
{
	static const struct {
		int wd;
		unsigned mask;
		const char *name;
	} want[] = {{1, IN_MODIFY, ""}, {3, IN_MODIFY, ""}, {4, IN_CREATE, "new"}};
	char name[256];
	unsigned mask;
	int wd;

	want_flags(in1, O_RDONLY | O_NONBLOCK, "inotify 1");
	want_flags(in2, O_RDONLY, "inotify 2");
	touch_file("w/a", "x");
	touch_file("w/b", "x"); /* no watch of in1 */
	touch_file("w/c", "x");
	touch_file("w/new", "");
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (next_event(in1, &wd, &mask, name)) {
			fail("inotify: no event %zu (wd %d)", i, want[i].wd);
			break;
		}
		if (wd != want[i].wd || mask != want[i].mask || strcmp(name, want[i].name))
			fail("inotify: event %zu: wd %d mask %#x name '%s', not wd %d mask %#x "
			     "name '%s'",
			     i, wd, mask, name, want[i].wd, want[i].mask, want[i].name);
	}
	if (!next_event(in1, &wd, &mask, name))
		fail("inotify: an extra event: wd %d mask %#x name '%s'", wd, mask, name);
	/* The blocking instance got its close of w/b. */
	if (next_event(in2, &wd, &mask, name) || wd != 1 || mask != IN_CLOSE_WRITE)
		fail("inotify 2: wd %d mask %#x, not wd 1 IN_CLOSE_WRITE", wd, mask);
	/* The watches are on the same files: adding one again gives its wd. */
	if (inotify_add_watch(in1, "w/c", IN_MODIFY) != 3 ||
	    inotify_add_watch(in1, "w/b", IN_MODIFY) != 5)
		fail("inotify: watches not on the same files, or wds not going on from 4");
}

/* ---- tty ---- */

static int tty3, ptm, pts, ptm2;

static void tty_setup(void)
{
	struct termios t;
	struct winsize ws = {.ws_row = 33, .ws_col = 111};
	struct winsize ws2 = {.ws_row = 10, .ws_col = 20};
	int unlock = 0;

	if (tcgetattr(0, &t))
		die("standard input is not a terminal");
	t.c_lflag &= ~(ECHO | ICANON);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 5;
	if (tcsetattr(0, TCSANOW, &t) || ioctl(0, TIOCSWINSZ, &ws))
		die("terminal settings");
	tty3 = open("/dev/tty", O_RDWR);
	ptm = posix_openpt(O_RDWR | O_NOCTTY);
	if (tty3 < 0 || ptm < 0 || ioctl(ptm, TIOCSPTLCK, &unlock))
		die("pty");
	pts = ioctl(ptm, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	if (pts < 0 || tcgetattr(pts, &t))
		die("pty slave");
	/* Output the master does not read until after the checkpoint, through
	 * the slave's output processing (\n to \r\n) before it goes raw. */
	if (write(pts, "queued\n", 7) != 7)
		die("pty slave write");
	cfmakeraw(&t);
	if (tcsetattr(pts, TCSANOW, &t) || ioctl(ptm, TIOCSWINSZ, &ws2))
		die("pty settings");
	ptm2 = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
	if (ptm2 < 0)
		die("second pty");
}

static void want_winsize(int fd, int rows, int cols, const char *what)
{
	struct winsize ws;

	if (ioctl(fd, TIOCGWINSZ, &ws) || ws.ws_row != rows || ws.ws_col != cols)
		fail("%s: window %dx%d, not %dx%d", what, ws.ws_row, ws.ws_col, rows, cols);
}

static void tty_check(void)
{
	struct termios t, t3;
	struct stat a, b;
	char buf[16];
	int lock = 0, n;

	if (tcgetattr(0, &t) || (t.c_lflag & (ECHO | ICANON)) || t.c_cc[VTIME] != 5)
		fail("terminal: echo or canonical mode back on, or VTIME not 5");
	want_winsize(0, 33, 111, "terminal");
	/* fd 3 is the same terminal: it has the same settings. */
	if (tcgetattr(tty3, &t3) || t3.c_lflag != t.c_lflag)
		fail("fd 3 is not the terminal of fd 0");
	want_winsize(tty3, 33, 111, "fd 3");
	want_flags(tty3, O_RDWR, "fd 3");
	/* The pty pair: the slave is the master's, raw, 10x20, and they meet. */
	if (fstat(pts, &a) || stat(ptsname(ptm), &b) || a.st_rdev != b.st_rdev)
		fail("pty: the slave is not the master's");
	if (tcgetattr(pts, &t) || (t.c_lflag & (ECHO | ICANON)) || (t.c_oflag & OPOST))
		fail("pty: not raw");
	want_winsize(pts, 10, 20, "pty");
	struct pollfd pfd = {.fd = ptm, .events = POLLIN};
	if (poll(&pfd, 1, 5000) != 1 || (n = read(ptm, buf, sizeof(buf))) != 8 ||
	    memcmp(buf, "queued\r\n", 8))
		fail("pty: the bytes queued to the master are not there as they were");
	if (write(ptm, "ping", 4) != 4 || (n = read(pts, buf, sizeof(buf))) != 4 ||
	    memcmp(buf, "ping", 4))
		fail("pty: master to slave");
	if (write(pts, "pong", 4) != 4 || (n = read(ptm, buf, sizeof(buf))) != 4 ||
	    memcmp(buf, "pong", 4))
		fail("pty: slave to master");
	if (ioctl(ptm2, TIOCGPTLCK, &lock) || lock != 1)
		fail("second pty: slave not locked");
	want_flags(ptm2, O_RDWR | O_NONBLOCK, "second pty");
	printf("pty %s\n", ptsname(ptm));
}

static int datafd;

static void file_setup(void)
{
	datafd = open(in_dir("data"), O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (datafd < 0 || write(datafd, "12345", 5) != 5 || lseek(datafd, 2, SEEK_SET) != 2)
		die("data file");
}

static void file_check(void)
{
	char c;

	if (lseek(datafd, 0, SEEK_CUR) != 2 || read(datafd, &c, 1) != 1 || c != '3')
		fail("data file: not at offset 2");
}

static void unixpeer_setup(void)
{
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, us))
		die("socketpair");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		char c;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(us[0]);
		/* Until the parent is gone. */
		while (read(us[1], &c, 1) > 0)
			;
		_exit(0);
	}
	close(us[1]);
}

static void listen_setup(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", in_dir("sock"));
	us[0] = socket(AF_UNIX, SOCK_STREAM, 0);
	if (us[0] < 0 || bind(us[0], (struct sockaddr *)&a, sizeof(a)) || listen(us[0], 4))
		die("listen");
	us[1] = socket(AF_UNIX, SOCK_STREAM, 0);
	if (us[1] < 0 || connect(us[1], (struct sockaddr *)&a, sizeof(a)) ||
	    accept(us[0], NULL, NULL) < 0)
		die("connect");
}

int main(int argc, char **argv)
{
	const char *kind;

	if (argc != 3) {
		fputs("usage: fdmore KIND DIR\n", stderr);
		return 2;
	}
	kind = argv[1];
	dir = realpath(argv[2], NULL); /* it may chdir there */
	if (!dir)
		die(argv[2]);
	if (!strcmp(kind, "fifo")) {
		fifo_setup();
	} else if (!strcmp(kind, "unix")) {
		unix_setup();
	} else if (!strcmp(kind, "inotify")) {
		inotify_setup();
	} else if (!strcmp(kind, "inotifyfar")) {
		if ((in1 = inotify_init1(0)) < 0 ||
		    inotify_add_watch(in1, "/etc/hostname", IN_MODIFY) != 1)
			die("inotify");
	} else if (!strcmp(kind, "tty")) {
		tty_setup();
	} else if (!strcmp(kind, "file")) {
		file_setup();
	} else if (!strcmp(kind, "all")) {
		fifo_setup();
		unix_setup();
		inotify_setup();
		file_setup();
		if (isatty(0))
			tty_setup();
	} else if (!strcmp(kind, "unixpeer")) {
		unixpeer_setup();
	} else if (!strcmp(kind, "listen")) {
		listen_setup();
	} else if (!strcmp(kind, "netlink")) {
		if (socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT) < 0)
			die("netlink socket");
	} else {
		fprintf(stderr, "fdmore: unknown kind %s\n", kind);
		return 2;
	}
	printf("ready %d\n", (int)getpid());
	if (ptm > 0)
		printf("pty %s\n", ptsname(ptm));
	fflush(stdout);
	wait_file(in_dir("go"));
	if (!strcmp(kind, "all")) {
		fifo_check();
		unix_check();
		inotify_check();
		file_check();
		if (isatty(0))
			tty_check();
	}
	if (!strcmp(kind, "fifo"))
		fifo_check();
	else if (!strcmp(kind, "unix"))
		unix_check();
	else if (!strcmp(kind, "inotify"))
		inotify_check();
	else if (!strcmp(kind, "tty"))
		tty_check();
	else if (!strcmp(kind, "file"))
		file_check();
	if (failures)
		return 1;
	printf("fdmore %s: ok\n", kind);
	return 0;
}
