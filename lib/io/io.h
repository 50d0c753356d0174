/* io.h: byte streams: compressed streams and the processes that feed them (zio_), output files
 * that appear whole or not at all (atomic_). */
#ifndef CKPT_IO_H
#define CKPT_IO_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/base.h"

/* ---- zio: compressed streams (zlib, liblzma, libzstd) between two fds.
 * Every function returns -1 on failure and leaves a message with err_set. */

enum zio_kind { ZIO_NONE, ZIO_GZIP, ZIO_XZ, ZIO_ZSTD };

/* The longest magic zio_detect looks at (xz's). */
#define ZIO_MAGIC_MAX 6

/* The kind of stream that starts with buf, by its magic; ZIO_NONE if none
 * matches (or n is too short to tell). */
int zio_detect(const void *buf, size_t n);
/* "none", "gzip", "xz", "zstd". */
const char *zio_name(int kind);

/* The most threads zio_compress_mt runs. */
#define ZIO_THREADS_MAX 256

/* Compress everything read from in until end of file onto out. kind is
 * ZIO_GZIP (one gzip member, level 0..9), ZIO_XZ (an xz stream with a
 * CRC64 check, preset 0..9) or ZIO_ZSTD (one zstd frame with its content
 * checksum, level 1..9 as zstd -1..-9 has it; 0 is zstd's default, 3).
 * threads compress side by side: 0 means one per core this process may run
 * on, 1 the calling thread alone (as does any number with a libzstd built
 * without threads). gzip input is
 * compressed in chunks; a chunk that would not shrink is stored, so the
 * output is at most 5 bytes per 64 KiB larger than the input (plus the
 * 18 bytes of gzip header and trailer). */
int zio_compress_mt(int in, int out, int kind, int level, int threads)
    __attribute__((warn_unused_result));
/* zio_compress_mt with a thread per core. */
int zio_compress(int in, int out, int kind, int level) __attribute__((warn_unused_result));

/* Decompress a gzip, xz or zstd stream from in onto out. prefix holds the
 * first prefix_len bytes of the stream, already read from in to sniff it
 * (prefix_len may be 0). Concatenated gzip members, xz streams and zstd
 * frames are all decoded, as gzip -d, xz -d and zstd -d do; a stream that
 * ends early, is corrupt, or has trailing garbage is an error, reported
 * after the data decoded so far has been written. */
int zio_decompress(int in, int out, const void *prefix, size_t prefix_len)
    __attribute__((warn_unused_result));

/* Run zio_decompress(in, ...) in a process of its own and return in *out_fd
 * the read end of a pipe (O_CLOEXEC) carrying the decompressed data. The
 * decompressor is a grandchild, not a child: the caller may exec or become
 * another program and never sees it exit. It keeps only in, the pipe and
 * the status pipe open; *status_fd (O_CLOEXEC) reads nothing but end of
 * file when the whole stream decoded, or else the one-line reason it did
 * not (a stream cut in its trailer still delivers all the data: only the
 * status tells).  The caller still owns in and should close its copy. */
int zio_spawn_decompressor(int in, const void *prefix, size_t prefix_len, int *out_fd,
			   int *status_fd) __attribute__((warn_unused_result));
/* The same for any work: fn(arg, wfd, sfd) runs in the grandchild, with
 * SIGPIPE at its default, writes its data on wfd (the pipe *out_fd reads)
 * and returns NULL when all is written, else the reason it failed, which
 * is what *status_fd then reads.  fn closes the fds it does not need (but
 * wfd and sfd).  what names the process in messages ("decompressor"). */
int zio_spawn(const char *what, const char *(*fn)(void *arg, int wfd, int sfd), void *arg,
	      int *out_fd, int *status_fd) __attribute__((warn_unused_result));

/* ---- atomic: output files that only their owner may read, given their name
 * only once complete, and standard output made as private. */

/* A file written aside and renamed into place: no signal, not even
 * SIGKILL, leaves a partial file under its name or replaces a good one
 * with it, and a link planted at its name is replaced, never followed. */
struct atomic_file {
	const char *path;
	char dir[PATH_MAX];
	char tmp[PATH_MAX + 16]; /* a named temporary file, while there is one */
	int fd;
	/* Set by the caller after atomic_open (which clears it), if it may
	 * be told to stop (a signal handler sets *cancel): atomic_commit
	 * gives no name once it is set. */
	const volatile int *cancel;
};

/* Create the file that will become path, mode 0600 whatever the umask:
 * unnamed (O_TMPFILE) in path's directory or, on a file system without
 * O_TMPFILE, ".BASE.XXXXXX" there (O_EXCL), which only a SIGKILL could
 * leave behind.  f->fd is where to write.  -1 with err_set. */
int atomic_open(struct atomic_file *f, const char *path) __attribute__((warn_unused_result));
/* Sync the data, give the file its name (rename(2) over whatever is
 * there), close f->fd and sync the directory.  Signals are blocked while
 * the file has a temporary name.  -1 with err_set, also when *f->cancel
 * was set by then ("interrupted by a signal"); then call
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
