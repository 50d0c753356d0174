/* fdmore: a process holding one more kind of fd, set up with state that a
 * restore must keep, checked after it.
 *
 * usage: fdmore KIND DIR
 *   fifo   two FIFOs in DIR: one read-write with 70 KiB in a 128 KiB
 *          buffer, one with a non-blocking read end and a write end
 *          (and a dup of it) with 5 bytes in it
 * Prints "ready PID", waits for DIR/go, checks, prints "fdmore KIND: ok"
 * and exits 0 only if everything is intact. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define FIFO_DATA (70 * 1024)

static int failures;
static const char *dir;

#define fail(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, "fdmore: " __VA_ARGS__);                                           \
		fputc('\n', stderr);                                                               \
		failures++;                                                                        \
	} while (0)

static void die(const char *what)
{
	fprintf(stderr, "fdmore: %s: %s\n", what, strerror(errno));
	exit(1);
}

static char *in_dir(const char *name)
{
	static char buf[4][4096];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}

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

int main(int argc, char **argv)
{
	struct timespec ts = {0, 10 * 1000 * 1000};
	const char *kind;

	if (argc != 3) {
		fputs("usage: fdmore KIND DIR\n", stderr);
		return 2;
	}
	kind = argv[1];
	dir = argv[2];
	if (!strcmp(kind, "fifo")) {
		fifo_setup();
	} else {
		fprintf(stderr, "fdmore: unknown kind %s\n", kind);
		return 2;
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	while (access(in_dir("go"), F_OK))
		nanosleep(&ts, NULL);
	if (!strcmp(kind, "fifo"))
		fifo_check();
	if (failures)
		return 1;
	printf("fdmore %s: ok\n", kind);
	return 0;
}
