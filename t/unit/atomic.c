/* Unit tests of io/'s atomic output files: a file appears under its name
 * whole, mode 0600 whatever the umask, or not at all (discarded, failed, or
 * its writer killed); it replaces a file or a symbolic link at its name and
 * never writes through the link; nothing is left beside it.  And
 * private_output on files of several modes and on a pipe. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "io/io.h"
#include "unit.h"

static char dir[] = "/tmp/ckpt-unit-atomic-XXXXXX";

static const char *in_dir(const char *name)
{
	static char buf[4][PATH_MAX];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
	return buf[k];
}

/* The names in the test directory, sorted and joined with spaces. */
static const char *listing(void)
{
	static char out[4096];
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);

	out[0] = 0;
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, ".."))
			snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s",
				 out[0] ? " " : "", names[i]->d_name);
		free(names[i]);
	}
	free(names);
	return out;
}

/* The contents of path (at most 255 bytes), or "(none)". */
static const char *contents(const char *path)
{
	static char buf[256];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	if (n < 0)
		return "(none)";
	buf[n] = 0;
	return buf;
}

static void put(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd < 0 || write_all(fd, text, strlen(text)) || close(fd) || chmod(path, mode))
		CHECK(0, "cannot make %s: %s", path, strerror(errno));
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	return lstat(path, &st) ? 0 : st.st_mode;
}

static void clean(void)
{
	const char *names[] = {"a", "b", "link", "victim", "sub/x", "sub"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (remove(in_dir(names[i])) && errno != ENOENT)
			CHECK(0, "cannot remove %s: %s", in_dir(names[i]), strerror(errno));
	CHECK(!strcmp(listing(), ""), "left in the directory: %s", listing());
}

/* A new file: no name until committed, then whole and 0600. */
static void new_file(void)
{
	struct atomic_file f;
	const char *a = in_dir("a");

	CHECK(atomic_open(&f, a) == 0, "atomic_open: %s", err_get());
	CHECK(write_all(f.fd, "hello", 5) == 0, "write");
	CHECK(access(a, F_OK) && !strcmp(listing(), ""), "a name before the commit: %s", listing());
	CHECK(atomic_commit(&f) == 0, "atomic_commit: %s", err_get());
	CHECK(!strcmp(contents(a), "hello"), "a holds '%s'", contents(a));
	CHECK(S_ISREG(mode_of(a)) && (mode_of(a) & 07777) == 0600, "a has mode %o", mode_of(a));
	CHECK(!strcmp(listing(), "a"), "the directory holds: %s", listing());
	clean();
}

/* Over an old file (0644): the old one stays whole until the commit. */
static void replace_file(void)
{
	struct atomic_file f;
	const char *a = in_dir("a");

	put(a, "old", 0644);
	CHECK(atomic_open(&f, a) == 0, "atomic_open: %s", err_get());
	CHECK(write_all(f.fd, "new!", 4) == 0, "write");
	CHECK(!strcmp(contents(a), "old"), "a holds '%s' before the commit", contents(a));
	CHECK(atomic_commit(&f) == 0, "atomic_commit: %s", err_get());
	CHECK(!strcmp(contents(a), "new!"), "a holds '%s'", contents(a));
	CHECK((mode_of(a) & 07777) == 0600, "a has mode %o", mode_of(a));
	CHECK(!strcmp(listing(), "a"), "the directory holds: %s", listing());
	clean();
}

/* A symbolic link planted at the name is replaced, its target untouched. */
static void replace_link(void)
{
	struct atomic_file f;
	const char *link = in_dir("link"), *victim = in_dir("victim");

	put(victim, "precious", 0644);
	CHECK(symlink(victim, link) == 0, "symlink: %s", strerror(errno));
	CHECK(atomic_open(&f, link) == 0, "atomic_open: %s", err_get());
	CHECK(write_all(f.fd, "image", 5) == 0, "write");
	CHECK(atomic_commit(&f) == 0, "atomic_commit: %s", err_get());
	CHECK(S_ISREG(mode_of(link)) && !strcmp(contents(link), "image"),
	      "link is a file holding '%s'", contents(link));
	CHECK(!strcmp(contents(victim), "precious") && (mode_of(victim) & 07777) == 0644,
	      "the link's target holds '%s', mode %o", contents(victim), mode_of(victim));
	clean();
}

/* Discarded: nothing appears, the old file stays. */
static void discard(void)
{
	struct atomic_file f;
	const char *a = in_dir("a"), *b = in_dir("b");

	CHECK(atomic_open(&f, a) == 0, "atomic_open: %s", err_get());
	CHECK(write_all(f.fd, "partial", 7) == 0, "write");
	atomic_discard(&f);
	close(f.fd);
	CHECK(!strcmp(listing(), ""), "after discarding a: %s", listing());
	put(b, "old", 0600);
	CHECK(atomic_open(&f, b) == 0, "atomic_open: %s", err_get());
	CHECK(write_all(f.fd, "partial", 7) == 0, "write");
	atomic_discard(&f);
	close(f.fd);
	CHECK(!strcmp(contents(b), "old") && !strcmp(listing(), "b"),
	      "after discarding b: it holds '%s', the directory %s", contents(b), listing());
	clean();
}

/* Failures: a directory that is not there; a name taken by a directory,
 * which rename(2) will not replace: -1, and discard leaves nothing. */
static void failures(void)
{
	struct atomic_file f;
	const char *x = in_dir("sub/x"), *sub = in_dir("sub");

	CHECK(atomic_open(&f, x) == -1 && strstr(err_get(), sub),
	      "atomic_open in a missing directory: %s", err_get());
	CHECK(mkdir(sub, 0700) == 0 && mkdir(x, 0700) == 0, "mkdir: %s", strerror(errno));
	CHECK(atomic_open(&f, x) == 0, "atomic_open: %s", err_get());
	CHECK(write_all(f.fd, "data", 4) == 0, "write");
	CHECK(atomic_commit(&f) == -1 && strstr(err_get(), "cannot rename"),
	      "commit over a directory: %s", err_get());
	atomic_discard(&f);
	CHECK(S_ISDIR(mode_of(x)), "the directory at the name is gone");
	{
		DIR *d = opendir(sub);
		struct dirent *e;
		int others = 0;

		while (d && (e = readdir(d)))
			others += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
				  strcmp(e->d_name, "x");
		if (d)
			closedir(d);
		CHECK(d && others == 0, "%d names left beside sub/x", others);
	}
	clean();
}

/* The writer killed (SIGKILL) before its commit: nothing appears. */
static void killed(void)
{
	const char *a = in_dir("a");
	int p[2], status;
	pid_t pid;
	char c;

	if (pipe(p)) {
		CHECK(0, "pipe: %s", strerror(errno));
		return;
	}
	pid = fork();
	if (pid == 0) {
		struct atomic_file f;

		close(p[0]);
		if (atomic_open(&f, a) || write_all(f.fd, "partial", 7))
			_exit(1);
		if (write(p[1], "w", 1) != 1)
			_exit(1);
		pause();
		_exit(1);
	}
	close(p[1]);
	CHECK(pid > 0 && read(p[0], &c, 1) == 1, "the writer did not write");
	close(p[0]);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	/* Unnamed (O_TMPFILE), it went with its writer; a named temporary
	 * file (a file system without O_TMPFILE) is what a SIGKILL leaves. */
	CHECK(access(a, F_OK) && (!strcmp(listing(), "") || !strncmp(listing(), ".a.", 3)),
	      "left by a killed writer: %s", listing());
	if (!strncmp(listing(), ".a.", 3))
		unlink(in_dir(listing()));
	clean();
}

/* private_output: group and others lose what they had, the owner keeps
 * his; a file already private and a pipe are left alone. */
static void private(void)
{
	static const mode_t modes[][2] = {{0644, 0600}, {0666, 0600}, {0600, 0600},
					  {0400, 0400}, {0755, 0700}, {0640, 0600}};
	const char *a = in_dir("a");
	mode_t was;
	int fd, p[2];

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		put(a, "x", modes[i][0]);
		fd = open(a, O_RDONLY);
		CHECK(fd >= 0 && private_output(fd, &was) == 0 && was == modes[i][0] &&
			  (mode_of(a) & 07777) == modes[i][1],
		      "private_output of mode %04o: %04o, was %04o", (unsigned)modes[i][0],
		      (unsigned)(mode_of(a) & 07777), (unsigned)was);
		if (fd >= 0)
			close(fd);
	}
	CHECK(pipe(p) == 0 && private_output(p[1], &was) == 0 && was == 0,
	      "private_output of a pipe: was %04o", (unsigned)was);
	close(p[0]);
	close(p[1]);
	clean();
}

int main(void)
{
	prog = "unit-atomic";
	/* Bits the umask takes away must not matter: 0600 is 0600. */
	umask(0);
	if (!mkdtemp(dir)) {
		perror("unit-atomic: mkdtemp");
		return 1;
	}
	new_file();
	replace_file();
	replace_link();
	discard();
	failures();
	killed();
	umask(0277);
	new_file();
	private();
	if (rmdir(dir))
		CHECK(0, "cannot remove %s: %s", dir, strerror(errno));
	return unit_done("atomic");
}
