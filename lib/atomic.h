/* atomic.h: output files that only their owner may read, given their name
 * only once complete, and standard output made as private. */
#ifndef CKPT_ATOMIC_H
#define CKPT_ATOMIC_H

#include <limits.h>
#include <sys/types.h>

/* A file written aside and renamed into place: no signal, not even
 * SIGKILL, leaves a partial file under its name or replaces a good one
 * with it, and a link planted at its name is replaced, never followed. */
struct atomic_file {
	const char *path;
	char dir[PATH_MAX];
	char tmp[PATH_MAX + 16]; /* a named temporary file, while there is one */
	int fd;
};

/* Create the file that will become path, mode 0600 whatever the umask:
 * unnamed (O_TMPFILE) in path's directory or, on a file system without
 * O_TMPFILE, ".BASE.XXXXXX" there (O_EXCL), which only a SIGKILL could
 * leave behind.  f->fd is where to write.  -1 with err_set. */
int atomic_open(struct atomic_file *f, const char *path) __attribute__((warn_unused_result));
/* Sync the data, give the file its name (rename(2) over whatever is
 * there), close f->fd and sync the directory.  Signals are blocked while
 * the file has a temporary name.  -1 with err_set; then call
 * atomic_discard. */
int atomic_commit(struct atomic_file *f) __attribute__((warn_unused_result));
/* Abandon the file: remove its temporary name, if it has one (an unnamed
 * file goes with its fd, at exit).  Async-signal-safe. */
void atomic_discard(struct atomic_file *f);

/* Standard output (fd), when it is a regular file that gives the group or
 * others any permission (a shell's "> file", made with its umask), loses
 * those permissions: mode 0644 becomes 0600.  *was gets the mode it had
 * (0 if it is no regular file).  -1 with err_set if it cannot be changed. */
int private_output(int fd, mode_t *was) __attribute__((warn_unused_result));

#endif
