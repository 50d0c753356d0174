/* shmfiles: files on tmpfs mapped shared by a parent and two children, as
 * an MPI job's ranks map each other's /dev/shm segments.
 *
 *   shmfiles [-u] [-c] TMPDIR|- DIR
 *
 * The parent makes /dev/shm/ckpt-shmfiles-PID (shm_open, mode 0640, kept
 * open on fd 5, which the children inherit, and mapped before it forks)
 * and, unless TMPDIR is -, TMPDIR/shmfiles-PID (0600, open on fd 6 and
 * mapped by the parent, and mapped by each child itself after the fork).  Each file is 48 pages and
 * 1000 bytes: process i (0 the parent) writes pages 12i..12i+11 with
 * mix(generation * 10 + i, word) in both; pages 36-46 are never written
 * (holes), 47 is a mailbox, and the last 1000 bytes are the parent's.  It
 * prints "ready PID" once all three are set up, then waits for DIR/go.
 * Meanwhile DIR/gen2 makes each process write its pages again for
 * generation 2, and say so in DIR/gen2.I.
 *
 * After DIR/go every process checks that both files hold what its own
 * generation wrote (all three processes' pages and the tail), that a
 * write of its own into the mailbox is seen by the two others (the
 * mappings are still one memory), and, restored, that the path and fd 5
 * and 6 are the file it maps, of its size and mode.  With -u, the second
 * child unmaps the /dev/shm file once it wrote its pages and holds only
 * fd 5 of it, which it reads and writes instead (a process that only has
 * the file open, as ckpt-dump --save-files saves it).  With -c, every
 * process closes fd 6 once it mapped the TMPDIR file, which it then only
 * maps (as Open MPI's ranks map its PMIx segments), and its path is not
 * checked against it nor removed at the end.  The parent then prints
 * "restored: yes" (or "no") and "shmfiles: ok", removes the files, and
 * exits 0 only if every process found all intact. */
#define PROG "shmfiles"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define NPROC 3
#define PER 12	   /* pages each process writes */
#define MAILBOX 47 /* the page of the mailbox */
#define TAIL 1000  /* bytes after the last whole page */
#define SHMFD 5
#define TMPFD 6

static const char *dir;
static size_t ps;
static size_t size;
static char shm_path[128], tmp_path[4200];
static char *shm, *tmpf;
static unsigned long long born;
static int unmapped; /* -u: the second child reads fd 5, not a mapping */
static int closed;   /* -c: no fd 6, the TMPDIR file only mapped */

/* The /dev/shm file's contents as process i sees them: its mapping, or
 * (-u, the second child) what fd 5 reads now, in a buffer of its own. */
static char *shm_now(int i)
{
	static char *buf;

	if (!unmapped || i != 2)
		return shm;
	if (!buf && !(buf = malloc(size)))
		die("malloc");
	if (pread(SHMFD, buf, size, 0) != (ssize_t)size)
		die("pread fd 5");
	return buf;
}

static void fill(char *p, int gen, int i)
{
	uint64_t *w = (uint64_t *)(p + (size_t)i * PER * ps);

	for (size_t k = 0; k < PER * ps / 8; k++)
		w[k] = mix(gen * 10 + i, k);
	if (i == 0)
		for (size_t k = 0; k < TAIL; k++)
			p[size - TAIL + k] = (char)mix(gen * 10 + 9, k);
}

static void check(const char *what, const char *p, int gen)
{
	for (int i = 0; i < NPROC; i++) {
		const uint64_t *w = (const uint64_t *)(p + (size_t)i * PER * ps);
		for (size_t k = 0; k < PER * ps / 8; k++)
			if (w[k] != mix(gen * 10 + i, k)) {
				fail("pid %d: %s: word %zu of process %d's pages is not generation "
				     "%d's",
				     (int)getpid(), what, k, i, gen);
				return;
			}
	}
	for (size_t k = 0; k < TAIL; k++)
		if (p[size - TAIL + k] != (char)mix(gen * 10 + 9, k)) {
			fail("pid %d: %s: byte %zu of the tail is not generation %d's",
			     (int)getpid(), what, k, gen);
			return;
		}
}

/* Restored, path must be the file p maps (fd, if not -1, too), of the
 * image's size and mode: a word written through p shows in it. */
static void check_path(const char *what, const char *path, int fd, char *p, mode_t mode, int i)
{
	int pfd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t v = 0x5ee0000 + i, got = 0;
	struct stat sb;
	size_t at = (size_t)MAILBOX * ps + 512 + 8 * i;

	if (pfd < 0) {
		fail("pid %d: %s: cannot open %s: %s", (int)getpid(), what, path, strerror(errno));
		return;
	}
	memcpy(p + at, &v, 8);
	if (fstat(pfd, &sb) || (size_t)sb.st_size != size || (sb.st_mode & 07777) != mode)
		fail("pid %d: %s: %s is %lld bytes, mode %o (not %zu, %o)", (int)getpid(), what,
		     path, (long long)sb.st_size, (unsigned)(sb.st_mode & 07777), size,
		     (unsigned)mode);
	if (pread(pfd, &got, 8, at) != 8 || got != v)
		fail("pid %d: %s: %s is not the file mapped", (int)getpid(), what, path);
	got = 0;
	if (fd >= 0 && (pread(fd, &got, 8, at) != 8 || got != v))
		fail("pid %d: %s: fd %d is not the file mapped", (int)getpid(), what, fd);
	close(pfd);
}

/* Restored, -u: fd 5 must be the file at path, of its size and mode. */
static void check_fd(const char *path, mode_t mode)
{
	struct stat a, b;

	if (stat(path, &a) || fstat(SHMFD, &b) || a.st_dev != b.st_dev || a.st_ino != b.st_ino ||
	    (size_t)b.st_size != size || (b.st_mode & 07777) != mode)
		fail("pid %d: fd %d is not %s of %zu bytes, mode %o", (int)getpid(), SHMFD, path,
		     size, (unsigned)mode);
}

/* Each writes its token into the mailbox of p, then waits (20 s at most)
 * for the two others'. */
static void check_shared(const char *what, char *p, int i, int gen)
{
	volatile uint64_t *box = (volatile uint64_t *)(p + (size_t)MAILBOX * ps);
	double until = mono() + 20;
	struct timespec ts = {0, 5 * 1000 * 1000};
	uint64_t token = 0xbeef000 + gen * 16 + i;
	int seen = 0, byfd = unmapped && i == 2 && p != tmpf;

	if (byfd && pwrite(SHMFD, &token, 8, (off_t)MAILBOX * ps + 8 * i) != 8)
		die("pwrite fd 5");
	if (!byfd)
		box[i] = token;
	while (!seen && mono() < until) {
		if (byfd)
			box = (volatile uint64_t *)(shm_now(i) + (size_t)MAILBOX * ps);
		seen = 1;
		for (int k = 0; k < NPROC; k++)
			seen &= box[k] == 0xbeef000u + gen * 16 + k;
		if (!seen)
			nanosleep(&ts, NULL);
	}
	if (!seen)
		fail("pid %d: %s: the others' writes do not show in its mapping (%#llx %#llx "
		     "%#llx)",
		     (int)getpid(), what, (unsigned long long)box[0], (unsigned long long)box[1],
		     (unsigned long long)box[2]);
}

static char *map_tmp(void)
{
	int fd = open(tmp_path, O_RDWR | O_CLOEXEC);
	char *p;

	if (fd < 0)
		die("open tmpfs file");
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap tmpfs file");
	close(fd);
	return p;
}

/* Process i: its pages, the wait, the checks.  Its exit status. */
static int run(int i)
{
	int gen = 1, restored, fd;
	char name[64];

	born = start_time();
	if (*tmp_path && i)
		tmpf = map_tmp();
	if (closed)
		close(TMPFD);
	fill(shm, gen, i);
	if (tmpf)
		fill(tmpf, gen, i);
	((volatile uint64_t *)(shm + (size_t)MAILBOX * ps))[8 + i] = 1;
	if (unmapped && i == 2) {
		munmap(shm, size);
		shm = NULL;
	}
	while (access(in_dir("go"), F_OK)) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		if (gen == 1 && !access(in_dir("gen2"), F_OK)) {
			gen = 2;
			if (!shm) {
				char *p = shm_now(i);
				fill(p, gen, i);
				if (pwrite(SHMFD, p + (size_t)i * PER * ps, PER * ps,
					   (off_t)i * PER * ps) != (ssize_t)(PER * ps))
					die("pwrite fd 5");
			} else {
				fill(shm, gen, i);
			}
			if (tmpf)
				fill(tmpf, gen, i);
			snprintf(name, sizeof(name), "gen2.%d", i);
			fd = open(in_dir(name), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
			if (fd < 0 || write(fd, "2\n", 2) != 2 || close(fd))
				die("gen2 file");
		}
		nanosleep(&ts, NULL);
	}
	restored = start_time() != born;
	check("the /dev/shm file", shm_now(i), gen);
	if (tmpf)
		check("the tmpfs file", tmpf, gen);
	/* The original after a restore of a copy: its path is the copy's. */
	if (restored && shm) {
		check_path("the /dev/shm file", shm_path, SHMFD, shm, 0640, i);
		if (tmpf && !closed)
			check_path("the tmpfs file", tmp_path, TMPFD, tmpf, 0600, i);
	}
	if (restored && !shm)
		check_fd(shm_path, 0640);
	check_shared("the /dev/shm file", shm ? shm : shm_now(i), i, gen);
	if (tmpf)
		check_shared("the tmpfs file", tmpf, i, gen);
	return failures ? 1 : 0;
}

static void unlink_ours(const char *path, int fd)
{
	struct stat a, b;

	if (!stat(path, &a) && !fstat(fd, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		unlink(path);
}

int main(int argc, char **argv)
{
	pid_t kids[NPROC];
	int fd, bad = 0;
	volatile uint64_t *box;

	for (; argc > 1 && (!strcmp(argv[1], "-u") || !strcmp(argv[1], "-c")); argv++, argc--) {
		if (argv[1][1] == 'u')
			unmapped = 1;
		else
			closed = 1;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: shmfiles [-u] [-c] TMPDIR|- DIR\n");
		return 2;
	}
	dir = argv[2];
	ps = (size_t)sysconf(_SC_PAGESIZE);
	size = (size_t)(MAILBOX + 1) * ps + TAIL;
	snprintf(shm_path, sizeof(shm_path), "/dev/shm/ckpt-shmfiles-%d", (int)getpid());
	fd = shm_open(shm_path + 8, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || fchmod(fd, 0640) || ftruncate(fd, size))
		die("shm_open");
	fd = fd_at(SHMFD, fd, "shm_open");
	shm = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (shm == MAP_FAILED)
		die("mmap");
	if (strcmp(argv[1], "-")) {
		snprintf(tmp_path, sizeof(tmp_path), "%s/shmfiles-%d", argv[1], (int)getpid());
		fd = open(tmp_path, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd < 0 || ftruncate(fd, size))
			die("tmpfs file");
		fd_at(TMPFD, fd, "tmpfs file");
		tmpf = map_tmp();
	}
	fflush(NULL);
	for (int i = 1; i < NPROC; i++) {
		kids[i] = fork();
		if (kids[i] < 0)
			die("fork");
		if (kids[i] == 0)
			_exit(run(i));
	}
	box = (volatile uint64_t *)(shm + (size_t)MAILBOX * ps);
	while (!box[9] || !box[10]) {
		struct timespec ts = {0, 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	bad = run(0);
	for (int i = 1; i < NPROC; i++) {
		int st;
		if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "shmfiles: child %d failed (%#x)\n", i, st);
			bad = 1;
		}
	}
	printf("restored: %s\n", start_time() != born ? "yes" : "no");
	if (!bad)
		printf("shmfiles: ok\n");
	/* The original, after a copy's restore, leaves the paths to the copy. */
	unlink_ours(shm_path, SHMFD);
	if (*tmp_path && !closed)
		unlink_ours(tmp_path, TMPFD);
	return bad;
}
