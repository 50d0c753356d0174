/* memodd.c: memory a checkpoint finds odd: guard pages, huge pages,
 * memfds given to a child or exec'd.  Each mode sets its state up, prints
 * "ready PID", waits for DIR/go, checks that the state is as it was
 * (contents, the kernel's own view of it) and prints "memodd: ok"; exit 0
 * only if it is intact.
 *
 *   memodd guard DIR     16 private anonymous pages and 8 shared anonymous
 *                        pages, each filled with a pattern, with guard pages
 *                        (MADV_GUARD_INSTALL) at private pages 2-3, 9 and 15
 *                        and shared page 4; checks every other page's
 *                        contents, that each guard page reads as one (EIO
 *                        through /proc/self/mem, bit 58 of pagemap) and that
 *                        the others do not.
 *   memodd hugetlb-private DIR, hugetlb-shared DIR, hugetlb-memfd DIR
 *                        two huge pages of the default size (MAP_HUGETLB
 *                        private or shared, or a memfd_create(MFD_HUGETLB)
 *                        file held as fd and mapped shared), a pattern in
 *                        the first 64 KiB and in 4 KiB at 3 MiB, the rest
 *                        zero; checks the contents, that smaps shows huge
 *                        pages of that size ("ht", KernelPageSize) and, for
 *                        the memfd, that it is still on hugetlbfs, of the
 *                        same size, and that the fd and mapping share it.
 *   memodd memfd-child DIR  a memfd (fd 3, 64 KiB with a pattern, mapped
 *                        shared) given to a child by fork; parent and child
 *                        print "ready PID" each, wait for DIR/go, check the
 *                        contents through fd and mapping, and that a word the
 *                        child writes through its mapping reaches the
 *                        parent's; the parent prints "memodd: ok" if both
 *                        are intact.
 *   memodd fexecve DIR   copies its own executable into a memfd and
 *                        fexecve(2)s it as "memodd fexeced DIR": the program
 *                        then runs from "/memfd:memodd (deleted)", fills
 *                        64 KiB of memory, prints "ready PID", waits for
 *                        DIR/go and checks its memory, that /proc/self/exe
 *                        still names the memfd and that its text is intact.
 *   memodd pty DIR       leads a session of its own (setsid) whose
 *                        controlling terminal is the slave of a pty pair it
 *                        made (TIOCSCTTY; ECHO turned off), holding the
 *                        master (fd 3), the slave (fd 4) and /dev/tty (fd 5);
 *                        checks that it still leads its session, that
 *                        /dev/tty is open on the slave (TIOCGDEV), which is
 *                        its controlling terminal (stat's tty_nr) with its
 *                        group in the foreground (tcgetpgrp), that ECHO is
 *                        still off, and that a line written to /dev/tty
 *                        comes out of the master.
 *   memodd pty-tree DIR  the same, and a child forked after the setup
 *                        (holding the same fds) checks, after the restore,
 *                        that it is in its parent's session and group, with
 *                        /dev/tty (fd 5) on the slave in the foreground.
 *   memodd guard-probe   exit 0 if this kernel installs guard pages in
 *                        private and shared anonymous memory and pagemap
 *                        shows them, 1 if not.
 */
#define PROG "memodd"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "progs.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define PS 4096ul
#define PM_GUARD (1ull << 58)

static const char *dir;

static void fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = mix(seed, i);
}

static int same(const void *p, size_t len, uint64_t seed)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != mix(seed, i))
			return 0;
	return 1;
}

static void *map(size_t len, int prot, int flags, int fd)
{
	void *p = mmap(NULL, len, prot, flags, fd, 0);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static void ready(void)
{
	printf("ready %d\n", getpid());
	fflush(stdout);
	wait_file(in_dir("go"));
}

/* ---- guard */

static const int priv_guards[] = {2, 3, 9, 15};
static const int shared_guards[] = {4};

static int listed(const int *v, size_t n, int page)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == page)
			return 1;
	return 0;
}

/* Page i of p is a guard page (or not, as want says), in every way the
 * kernel shows it. */
static void check_guard(const char *what, char *p, int i, int want, uint64_t seed)
{
	char *pg = p + i * PS, buf[PS];
	int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t e = 0;
	ssize_t n;

	if (mem < 0 || pm < 0)
		die("open /proc/self");
	n = pread(mem, buf, PS, (off_t)(uintptr_t)pg);
	if (want && !(n < 0 && errno == EIO))
		fail("%s page %d: readable (%zd), not a guard page", what, i, n);
	if (!want && n != (ssize_t)PS)
		fail("%s page %d: cannot be read (%s)", what, i, strerror(errno));
	if (pread(pm, &e, 8, (off_t)((uintptr_t)pg / PS * 8)) != 8)
		die("pread pagemap");
	if (!!(e & PM_GUARD) != want)
		fail("%s page %d: pagemap %#llx says %sa guard page", what, i, (unsigned long long)e,
		     want ? "not " : "");
	if (!want && !same(pg, PS, seed + i))
		fail("%s page %d: contents differ", what, i);
	close(mem);
	close(pm);
}

static int run_guard(void)
{
	char *p = map(16 * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *s = map(8 * PS, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	size_t np = sizeof(priv_guards) / sizeof(priv_guards[0]);
	size_t ns = sizeof(shared_guards) / sizeof(shared_guards[0]);

	for (int i = 0; i < 16; i++)
		fill(p + i * PS, PS, 100 + i);
	for (int i = 0; i < 8; i++)
		fill(s + i * PS, PS, 200 + i);
	for (size_t i = 0; i < np; i++)
		if (madvise(p + priv_guards[i] * PS, PS, MADV_GUARD_INSTALL))
			die("madvise MADV_GUARD_INSTALL");
	for (size_t i = 0; i < ns; i++)
		if (madvise(s + shared_guards[i] * PS, PS, MADV_GUARD_INSTALL))
			die("madvise MADV_GUARD_INSTALL (shared)");
	ready();
	for (int i = 0; i < 16; i++)
		check_guard("private", p, i, listed(priv_guards, np, i), 100);
	for (int i = 0; i < 8; i++)
		check_guard("shared", s, i, listed(shared_guards, ns, i), 200);
	return 0;
}

static int guard_probe(void)
{
	char *p = map(PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *s = map(PS, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t e = 0;

	if (madvise(p, PS, MADV_GUARD_INSTALL) || madvise(s, PS, MADV_GUARD_INSTALL) || pm < 0 ||
	    pread(pm, &e, 8, (off_t)((uintptr_t)p / PS * 8)) != 8)
		return 1;
	return !(e & PM_GUARD);
}

/* ---- hugetlb */

/* The smaps entry of the mapping at p: its KernelPageSize (KiB), and
 * whether VmFlags has "ht". */
static void smaps_of(void *p, unsigned long *kps, int *ht)
{
	char line[512], want[32];
	FILE *f = fopen("/proc/self/smaps", "re");
	int in = 0;

	*kps = 0;
	*ht = 0;
	if (!f)
		die("open smaps");
	snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)p);
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, '-') < strchr(line, ' ') && line[0] != ' ' &&
		    strncmp(line, "VmFlags", 7))
			in = !strncmp(line, want, strlen(want));
		if (in && !strncmp(line, "KernelPageSize:", 15))
			*kps = strtoul(line + 15, NULL, 10);
		if (in && !strncmp(line, "VmFlags:", 8))
			*ht = strstr(line, " ht") != NULL;
	}
	fclose(f);
}

static unsigned long huge_kb(void)
{
	char line[256];
	FILE *f = fopen("/proc/meminfo", "re");
	unsigned long kb = 0;

	if (!f)
		die("open /proc/meminfo");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Hugepagesize: %lu kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void fill_huge(char *p)
{
	fill(p, 64 << 10, 300);
	fill(p + (3 << 20), PS, 301);
}

static void check_huge(const char *what, char *p, size_t len, unsigned long kb)
{
	unsigned long kps;
	int ht;

	if (!same(p, 64 << 10, 300) || !same(p + (3 << 20), PS, 301))
		fail("%s: contents differ", what);
	for (size_t off = 64 << 10; off < len; off += PS) {
		if (off == 3 << 20)
			continue;
		for (size_t i = 0; i < PS; i++)
			if (p[off + i]) {
				fail("%s: byte at %zu is %d, not 0", what, off + i, p[off + i]);
				return;
			}
	}
	smaps_of(p, &kps, &ht);
	if (kps != kb || !ht)
		fail("%s: smaps says KernelPageSize %lu kB and %s, not %lu kB hugetlb", what, kps,
		     ht ? "ht" : "no ht", kb);
}

static int run_hugetlb(const char *mode)
{
	unsigned long kb = huge_kb();
	size_t len = 2 * kb * 1024;
	int memfd = !strcmp(mode, "memfd"), fd = -1;
	char *p;

	if (len < (4ul << 20))
		len = 4ul << 20;
	if (memfd) {
		fd = memfd_create("memodd-huge", MFD_HUGETLB);
		if (fd < 0 || ftruncate(fd, len))
			die("memfd_create MFD_HUGETLB");
		p = map(len, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
	} else {
		p = map(len, PROT_READ | PROT_WRITE,
			(!strcmp(mode, "shared") ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS |
				MAP_HUGETLB,
			-1);
	}
	fill_huge(p);
	ready();
	check_huge(mode, p, len, kb);
	if (memfd) {
		struct statfs fs;
		struct stat sb;
		uint64_t w = 0x1234567890abcdefull, r = 0;

		if (fstatfs(fd, &fs) || fs.f_type != 0x958458f6 /* HUGETLBFS_MAGIC */ ||
		    (unsigned long)fs.f_bsize != kb * 1024)
			fail("memfd: no longer on hugetlbfs with %lu kB pages", kb);
		if (fstat(fd, &sb) || (size_t)sb.st_size != len)
			fail("memfd: size %lld, not %zu", (long long)sb.st_size, len);
		/* hugetlbfs has no write(2): through a second mapping of the fd. */
		{
			char *q = map(len, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
			memcpy(q + len - 8, &w, 8);
			memcpy(&r, p + len - 8, 8);
			munmap(q, len);
		}
		if (r != w)
			fail("memfd: the fd and the mapping no longer share the file");
	}
	return 0;
}

/* ---- memfds given on */

#define MFD_LEN (64u << 10)

static int run_memfd_child(void)
{
	int fd = memfd_create("memodd-shared", MFD_CLOEXEC), st;
	uint64_t mark = 0x5eed5eed5eed5eedull, got;
	char *p, buf[MFD_LEN];
	pid_t kid;

	if (fd < 0 || ftruncate(fd, MFD_LEN))
		die("memfd_create");
	if (dup2(fd, 3) < 0)
		die("dup2");
	if (fd != 3)
		close(fd);
	p = map(MFD_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, 3);
	fill(p, MFD_LEN, 400);
	fflush(stdout);
	kid = fork();
	if (kid < 0)
		die("fork");
	ready();
	if (pread(3, buf, MFD_LEN, 0) != MFD_LEN || !same(buf, MFD_LEN - 8, 400) ||
	    !same(p, MFD_LEN - 8, 400))
		fail("%s: memfd contents differ", kid ? "parent" : "child");
	if (kid == 0) {
		memcpy(p + MFD_LEN - 8, &mark, 8);
		_exit(failures ? 1 : 0);
	}
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("the child failed (status %#x)", st);
	memcpy(&got, p + MFD_LEN - 8, 8);
	if (got != mark)
		fail("the child's write did not reach the parent: one memfd became two");
	return 0;
}

static int run_fexecve(char **argv)
{
	int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	int fd = memfd_create("memodd", MFD_CLOEXEC);
	char *args[] = {argv[0], "fexeced", argv[2], NULL};
	extern char **environ;
	char buf[65536];
	ssize_t n;

	if (in < 0 || fd < 0)
		die("open the executable");
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(fd, buf, n) != n)
			die("write the memfd");
	fexecve(fd, args, environ);
	die("fexecve");
}

static int run_fexeced(void)
{
	char *p = map(MFD_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char exe[256];
	ssize_t n;

	fill(p, MFD_LEN, 500);
	ready();
	if (!same(p, MFD_LEN, 500))
		fail("fexeced: memory differs");
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = 0;
	if (strcmp(exe, "/memfd:memodd (deleted)"))
		fail("fexeced: /proc/self/exe is %s, not the memfd", exe);
	/* Code of ours runs: this check itself; and the text is the file's. */
	{
		int a = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
		char head[4];
		if (a < 0 || read(a, head, 4) != 4 || memcmp(head, "\177ELF", 4))
			fail("fexeced: /proc/self/exe cannot be read as an ELF file");
		if (a >= 0)
			close(a);
	}
	return 0;
}

/* ---- a pty as controlling terminal */

static int move_fd(int fd, int to)
{
	if (fd == to)
		return 0;
	if (dup2(fd, to) < 0)
		return -1;
	close(fd);
	return 0;
}

static int run_pty(int tree)
{
	pid_t kid = 0;
	int st;

	int m = posix_openpt(O_RDWR | O_NOCTTY), s, t;
	struct termios tio;
	struct stat sb;
	unsigned dev = 0;
	char buf[64], *f;
	ssize_t n;

	if (setsid() < 0)
		die("setsid");
	if (m < 0 || grantpt(m) || unlockpt(m) || move_fd(m, 3))
		die("posix_openpt");
	s = open(ptsname(3), O_RDWR);
	if (s < 0 || move_fd(s, 4) || ioctl(4, TIOCSCTTY, 0))
		die("open the slave as controlling terminal");
	t = open("/dev/tty", O_RDWR);
	if (t < 0 || move_fd(t, 5))
		die("open /dev/tty");
	if (tcgetattr(4, &tio))
		die("tcgetattr");
	tio.c_lflag &= ~ECHO;
	if (tcsetattr(4, TCSANOW, &tio))
		die("tcsetattr");
	fflush(stdout);
	if (tree && (kid = fork()) < 0)
		die("fork");
	if (tree && kid == 0) {
		pid_t leader = getppid();
		wait_file(in_dir("go"));
		if (getsid(0) != leader || getpgrp() != leader)
			fail("pty child: session %d, group %d, not its parent's %d", getsid(0),
			     getpgrp(), leader);
		if (fstat(4, &sb) || ioctl(5, TIOCGDEV, &dev) ||
		    dev != (unsigned)(major(sb.st_rdev) << 8 | minor(sb.st_rdev)))
			fail("pty child: /dev/tty (fd 5) is not on the slave");
		if (tcgetpgrp(5) != getpgrp())
			fail("pty child: its group is not in the foreground");
		_exit(failures ? 1 : 0);
	}
	ready();
	if (kid && (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st)))
		fail("pty: the child failed (status %#x)", st);
	if (getsid(0) != getpid())
		fail("pty: session %d, not its own", getsid(0));
	if (fstat(4, &sb) || ioctl(5, TIOCGDEV, &dev) ||
	    dev != (unsigned)(major(sb.st_rdev) << 8 | minor(sb.st_rdev)))
		fail("pty: /dev/tty (fd 5) is on %u:%u, not on the slave (fd 4)", major(dev),
		     minor(dev));
	if (!(f = stat_fields("/proc/self/stat", buf, sizeof(buf))) ||
	    (strtok(f, " "), strtok(NULL, " "), strtok(NULL, " "), strtok(NULL, " "),
	     (f = strtok(NULL, " ")) == NULL) ||
	    (dev_t)strtoul(f, NULL, 10) !=
		    (dev_t)(major(sb.st_rdev) << 8 | (minor(sb.st_rdev) & 0xff) |
			    (minor(sb.st_rdev) & ~0xffu) << 12))
		fail("pty: its controlling terminal (tty_nr %s) is not the slave", f ? f : "?");
	if (tcgetpgrp(5) != getpgrp())
		fail("pty: foreground group %d, not its own %d", tcgetpgrp(5), getpgrp());
	if (tcgetattr(5, &tio) || (tio.c_lflag & ECHO))
		fail("pty: ECHO is on again");
	if (write(5, "ping\n", 5) != 5)
		fail("pty: cannot write to /dev/tty");
	n = read(3, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	if (strncmp(buf, "ping", 4))
		fail("pty: the master read \"%s\", not the line written to /dev/tty", buf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "guard-probe"))
		return guard_probe();
	if (argc != 3) {
		fprintf(stderr, "usage: memodd MODE DIR\n");
		return 2;
	}
	dir = argv[2];
	if (!strcmp(argv[1], "guard"))
		run_guard();
	else if (!strncmp(argv[1], "hugetlb-", 8))
		run_hugetlb(argv[1] + 8);
	else if (!strcmp(argv[1], "memfd-child"))
		run_memfd_child();
	else if (!strcmp(argv[1], "fexecve"))
		run_fexecve(argv);
	else if (!strcmp(argv[1], "fexeced"))
		run_fexeced();
	else if (!strcmp(argv[1], "pty") || !strcmp(argv[1], "pty-tree"))
		run_pty(argv[1][3] != 0);
	else {
		fprintf(stderr, "memodd: unknown mode %s\n", argv[1]);
		return 2;
	}
	if (failures)
		return 1;
	printf("memodd: ok\n");
	return 0;
}
