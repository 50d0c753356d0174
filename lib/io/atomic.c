/* atomic.c: private output files, written aside and renamed into place. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"
#include "base/base.h"

/* A name ".BASE.SUFFIX" beside the final one. */
static void temp_name(struct atomic_file *f, const char *suffix)
{
	char base[PATH_MAX];

	snprintf(base, sizeof(base), "%s", f->path);
	snprintf(f->tmp, sizeof(f->tmp), "%s/.%s.%s", f->dir, basename(base), suffix);
}

int atomic_open(struct atomic_file *f, const char *path)
{
	char dir[PATH_MAX];

	f->path = path;
	f->cancel = NULL;
	snprintf(dir, sizeof(dir), "%s", path);
	snprintf(f->dir, sizeof(f->dir), "%s", dirname(dir));
	f->tmp[0] = 0;
	f->fd = open(f->dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (f->fd < 0) {
		if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
			err_sys("cannot create a file in %s for %s", f->dir, path);
			return -1;
		}
		temp_name(f, "XXXXXX");
		f->fd = mkostemp(f->tmp, O_CLOEXEC);
		if (f->fd < 0) {
			err_sys("cannot create a temporary file for %s", path);
			f->tmp[0] = 0;
			return -1;
		}
	}
	/* The umask can only take bits away, 0600's too (umask 0277 would
	 * leave 0400); and with a default ACL on the directory, the mode is
	 * the ACL's mask, which 0600 closes to everyone but the owner. */
	if (fchmod(f->fd, 0600)) {
		err_sys("cannot make %s private", path);
		atomic_discard(f);
		close(f->fd);
		f->fd = -1;
		return -1;
	}
	return 0;
}

/* Give the unnamed file a name of its own: linkat through /proc, as
 * AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH, and a name not taken, as
 * linkat does not replace one (a stale one of ours, or one another user
 * planted in a shared directory, is left alone). */
static int link_tmp(struct atomic_file *f)
{
	char proc[64], suffix[32];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
	for (int tries = 0; tries < 100; tries++) {
		snprintf(suffix, sizeof(suffix), "%d.%d", (int)getpid(), tries);
		temp_name(f, suffix);
		if (linkat(AT_FDCWD, proc, AT_FDCWD, f->tmp, AT_SYMLINK_FOLLOW) == 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	err_sys("cannot name %s in %s", f->path, f->dir);
	f->tmp[0] = 0;
	return -1;
}

/* Data first, then the name: a crash after the rename finds the whole
 * file.  rename(2) replaces path itself, a symbolic link included: the
 * link's target is never written.  The fd is closed before the rename, as
 * close(2) can still report what write(2) did not (NFS, quota). */
int atomic_commit(struct atomic_file *f)
{
	sigset_t all, old;
	int dfd, rc = -1;

	if (fsync(f->fd)) {
		err_sys("cannot write %s", f->path);
		return -1;
	}
	/* The link and the rename back to back, no handler running between
	 * them: a SIGKILL there (microseconds) is all that can leave the
	 * complete file under its temporary name. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	/* Told to stop during the sync (the longest part), or before: the
	 * file gets no name, and goes with its fd. */
	if (f->cancel && *f->cancel) {
		err_set("interrupted by a signal");
		goto out;
	}
	if (!f->tmp[0] && link_tmp(f))
		goto out;
	rc = close(f->fd);
	f->fd = -1;
	if (rc) {
		err_sys("cannot write %s", f->path);
		goto out;
	}
	rc = rename(f->tmp, f->path);
	if (rc) {
		err_sys("cannot rename %s to %s", f->tmp, f->path);
		goto out;
	}
	f->tmp[0] = 0;
out:
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return -1;
	dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

void atomic_discard(struct atomic_file *f)
{
	if (f->tmp[0])
		unlink(f->tmp);
	f->tmp[0] = 0;
}

int private_output(int fd, mode_t *was)
{
	struct stat st;

	*was = 0;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode))
		return 0;
	*was = st.st_mode & 07777;
	if (!(st.st_mode & 077))
		return 0;
	if (fchmod(fd, st.st_mode & 07700)) {
		err_sys("standard output is a file others may read (mode %04o) and cannot be made "
			"private",
			(unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}
