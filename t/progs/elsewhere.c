/* elsewhere: a program restored somewhere else (t/0160-elsewhere.bats).
 *
 * usage: elsewhere files NEWDIR | env | envheap | wait
 *
 * Prints "ready PID", waits for the file "go" in its current directory,
 * checks, and prints "restored: yes" or "restored: no" last; exits 0 only
 * if every check held.
 *   files: started in a directory holding data.txt ("0123456789") and
 *     map.bin (a page of 'm'), it keeps data.txt open at offset 3, map.bin
 *     mapped and its cwd there; after the go it must be in NEWDIR (getcwd),
 *     read "345" from the fd whose link is NEWDIR/data.txt, and see map.bin
 *     mapped from NEWDIR with its bytes.
 *   env, envheap: started with ELSE_KEEP=keep ELSE_GONE=gone
 *     ELSE_CHANGE=before (envheap: and setenv ELSE_HEAP=1 first, so that
 *     environ is an array of the heap); after the go, getenv and
 *     /proc/self/environ must both say ELSE_KEEP=keep, ELSE_CHANGE=after,
 *     ELSE_NEW="a new value", no ELSE_GONE (and ELSE_HEAP=1), and setenv
 *     must still work.
 *   wait: nothing but the go. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

static int bad;

static void check(int ok, const char *what)
{
	if (!ok) {
		printf("FAIL: %s\n", what);
		bad = 1;
	}
}

/* NAME=VALUE is an entry of /proc/self/environ (value NULL: no NAME=). */
static int in_proc_environ(const char *name, const char *value)
{
	static char buf[1 << 16];
	size_t nl = strlen(name), n;
	int fd = open("/proc/self/environ", O_RDONLY), found = 0;

	if (fd < 0)
		return -1;
	n = (size_t)read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n] = 0;
	for (char *p = buf; p < buf + n; p += strlen(p) + 1)
		if (!strncmp(p, name, nl) && p[nl] == '=') {
			if (!value || strcmp(p + nl + 1, value))
				return 0;
			found = 1;
		}
	return value ? found : 1;
}

static void env_is(const char *name, const char *value)
{
	const char *v = getenv(name);
	char what[256];

	snprintf(what, sizeof(what), "getenv(%s) is %s%s%s", name, value ? "\"" : "",
		 value ? value : "unset", value ? "\"" : "");
	check(value ? v && !strcmp(v, value) : !v, what);
	snprintf(what, sizeof(what), "/proc/self/environ: %s is %s", name, value ? value : "unset");
	check(in_proc_environ(name, value) == 1, what);
}

int main(int argc, char **argv)
{
	char buf[PATH_MAX], link[PATH_MAX], want[PATH_MAX + 16];
	unsigned long long t0 = start_time();
	struct timespec tick = {0, 10 * 1000 * 1000};
	const char *mode = argc > 1 ? argv[1] : "";
	int fd = -1, heap = !strcmp(mode, "envheap");
	char *map = NULL;
	ssize_t n;

	if (!strcmp(mode, "files") && argc == 3) {
		fd = open("data.txt", O_RDONLY);
		int mfd = open("map.bin", O_RDONLY);
		if (fd < 0 || mfd < 0 || read(fd, buf, 3) != 3)
			return 2;
		map = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, mfd, 0);
		close(mfd);
		if (map == MAP_FAILED)
			return 2;
	} else if (heap) {
		setenv("ELSE_HEAP", "1", 1);
	} else if (strcmp(mode, "env") && strcmp(mode, "wait")) {
		fputs("usage: elsewhere files NEWDIR | env | envheap | wait\n", stderr);
		return 2;
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	while (access("go", F_OK))
		nanosleep(&tick, NULL);
	if (fd >= 0) {
		check(getcwd(buf, sizeof(buf)) && !strcmp(buf, argv[2]), "getcwd is NEWDIR");
		n = read(fd, buf, 3);
		check(n == 3 && !memcmp(buf, "345", 3), "data.txt reads on at offset 3");
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = 0;
		snprintf(want, sizeof(want), "%s/data.txt", argv[2]);
		check(!strcmp(buf, want), "the fd is NEWDIR/data.txt");
		check(map[0] == 'm' && map[4095] == 'm', "map.bin's bytes");
		FILE *f = fopen("/proc/self/maps", "r");
		int seen = 0;
		snprintf(want, sizeof(want), " %s/map.bin\n", argv[2]);
		while (f && fgets(buf, sizeof(buf), f))
			seen |= strstr(buf, want) != NULL;
		if (f)
			fclose(f);
		check(seen, "map.bin is mapped from NEWDIR");
	} else if (strcmp(mode, "wait")) {
		env_is("ELSE_KEEP", "keep");
		env_is("ELSE_CHANGE", "after");
		env_is("ELSE_NEW", "a new value");
		env_is("ELSE_GONE", NULL);
		if (heap)
			env_is("ELSE_HEAP", "1");
		check(!setenv("ELSE_LATER", "x", 1) && !strcmp(getenv("ELSE_LATER"), "x") &&
			  !strcmp(getenv("ELSE_KEEP"), "keep"),
		      "setenv after the restore");
		check(!unsetenv("ELSE_KEEP") && !getenv("ELSE_KEEP"), "unsetenv after the restore");
	}
	printf("restored: %s\n", start_time() != t0 ? "yes" : "no");
	return bad;
}
