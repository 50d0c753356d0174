/* zio.c: gzip and xz compression, gzip/xz/zstd decompression, fd to fd. */
#include <errno.h>
#include <fcntl.h>
#include <lzma.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "err.h"
#include "util.h"
#include "zio.h"

/* Large enough that the codec, not the syscalls, sets the speed; the same
 * as the largest pipe an unprivileged process may ask for by default
 * (/proc/sys/fs/pipe-max-size). */
#define ZIO_BUF (1 << 20)

static const unsigned char gzip_magic[] = {0x1f, 0x8b};
static const unsigned char xz_magic[] = {0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00};
static const unsigned char zstd_magic[] = {0x28, 0xb5, 0x2f, 0xfd};

static int has_magic(const void *buf, size_t n, const unsigned char *magic, size_t len)
{
	return n >= len && !memcmp(buf, magic, len);
}

int zio_detect(const void *buf, size_t n)
{
	if (has_magic(buf, n, gzip_magic, sizeof(gzip_magic)))
		return ZIO_GZIP;
	if (has_magic(buf, n, xz_magic, sizeof(xz_magic)))
		return ZIO_XZ;
	if (has_magic(buf, n, zstd_magic, sizeof(zstd_magic)))
		return ZIO_ZSTD;
	return ZIO_NONE;
}

const char *zio_name(int kind)
{
	switch (kind) {
	case ZIO_NONE:
		return "none";
	case ZIO_GZIP:
		return "gzip";
	case ZIO_XZ:
		return "xz";
	case ZIO_ZSTD:
		return "zstd";
	}
	return "unknown";
}

/* One read(2), retried on EINTR. It returns what has arrived rather than
 * waiting for a full buffer, so a stream coming slowly down a pipe is
 * decoded and passed on as it comes. */
static ssize_t read_some(int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		err_sys("cannot read input");
	return n;
}

/* buf[0..have) is filled; read until at least min bytes are there or the
 * input ends. Returns the new count (below min only at end of input). */
static ssize_t read_atleast(int fd, unsigned char *buf, size_t have, size_t min, size_t cap)
{
	while (have < min) {
		ssize_t n = read_some(fd, buf + have, cap - have);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		have += n;
	}
	return have;
}

static int put(int fd, const void *buf, size_t len)
{
	if (len && write_all(fd, buf, len) < 0) {
		err_sys("cannot write output");
		return -1;
	}
	return 0;
}

static const char *lzma_msg(lzma_ret r)
{
	switch (r) {
	case LZMA_MEM_ERROR:
		return "out of memory";
	case LZMA_MEMLIMIT_ERROR:
		return "memory usage limit reached";
	case LZMA_FORMAT_ERROR:
		return "file format not recognized";
	case LZMA_OPTIONS_ERROR:
		return "unsupported options";
	case LZMA_DATA_ERROR:
		return "compressed data is corrupt";
	case LZMA_BUF_ERROR:
		return "unexpected end of input";
	case LZMA_UNSUPPORTED_CHECK:
		return "unsupported integrity check";
	default:
		return "internal error";
	}
}

static int gzip_compress(int in, int out, int level, unsigned char *ib, unsigned char *ob)
{
	z_stream z;
	int flush, zr, rc = -1;
	ssize_t n;

	memset(&z, 0, sizeof(z));
	/* windowBits 16 + 15: a gzip header and trailer instead of zlib's. */
	zr = deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	if (zr != Z_OK) {
		err_set("gzip: cannot start compressor: %s",
			zr == Z_MEM_ERROR ? "out of memory" : "bad parameters");
		return -1;
	}
	do {
		n = read_some(in, ib, ZIO_BUF);
		if (n < 0)
			goto out;
		flush = n ? Z_NO_FLUSH : Z_FINISH;
		z.next_in = ib;
		z.avail_in = n;
		/* deflate takes all the input while it has room for output. */
		do {
			z.next_out = ob;
			z.avail_out = ZIO_BUF;
			zr = deflate(&z, flush);
			if (zr == Z_STREAM_ERROR) {
				err_set("gzip: compressor state corrupt");
				goto out;
			}
			if (put(out, ob, ZIO_BUF - z.avail_out) < 0)
				goto out;
		} while (z.avail_out == 0);
	} while (flush != Z_FINISH);
	rc = 0;
out:
	deflateEnd(&z);
	return rc;
}

static int xz_compress(int in, int out, int level, unsigned char *ib, unsigned char *ob)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_action action = LZMA_RUN;
	lzma_ret r;
	ssize_t n;
	int rc = -1;

	r = lzma_easy_encoder(&s, level, LZMA_CHECK_CRC64);
	if (r != LZMA_OK) {
		err_set("xz: cannot start compressor: %s", lzma_msg(r));
		return -1;
	}
	do {
		n = read_some(in, ib, ZIO_BUF);
		if (n < 0)
			goto out;
		if (n == 0)
			action = LZMA_FINISH;
		s.next_in = ib;
		s.avail_in = n;
		do {
			s.next_out = ob;
			s.avail_out = ZIO_BUF;
			r = lzma_code(&s, action);
			if (r != LZMA_OK && r != LZMA_STREAM_END) {
				err_set("xz: %s", lzma_msg(r));
				goto out;
			}
			if (put(out, ob, ZIO_BUF - s.avail_out) < 0)
				goto out;
		} while (s.avail_in || s.avail_out == 0 ||
			 (action == LZMA_FINISH && r != LZMA_STREAM_END));
	} while (action != LZMA_FINISH);
	rc = 0;
out:
	lzma_end(&s);
	return rc;
}

int zio_compress(int in, int out, int kind, int level)
{
	unsigned char *ib, *ob;
	int rc;

	if (kind != ZIO_GZIP && kind != ZIO_XZ) {
		err_set("cannot compress to %s: only gzip and xz are supported", zio_name(kind));
		return -1;
	}
	if (level < 0 || level > 9) {
		err_set("%s: compression level %d out of range 0..9", zio_name(kind), level);
		return -1;
	}
	ib = malloc(ZIO_BUF);
	ob = malloc(ZIO_BUF);
	if (!ib || !ob) {
		err_set("cannot allocate compression buffers: out of memory");
		rc = -1;
	} else if (kind == ZIO_GZIP) {
		rc = gzip_compress(in, out, level, ib, ob);
	} else {
		rc = xz_compress(in, out, level, ib, ob);
	}
	free(ib);
	free(ob);
	return rc;
}

/* The input buffer of a decoder: ib[0..len) holds the first bytes. */
struct zsrc {
	int fd;
	unsigned char *ib;
	size_t len, cap;
};

static int gzip_decompress(struct zsrc *src, int out, unsigned char *ob)
{
	unsigned long long member_off = 0;
	z_stream z;
	int zr, eof = 0, rc = -1;
	ssize_t n;

	memset(&z, 0, sizeof(z));
	z.next_in = src->ib;
	z.avail_in = src->len;
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
		err_set("gzip: cannot start decompressor: out of memory");
		return -1;
	}
	for (;;) {
		if (z.avail_in == 0 && !eof) {
			n = read_some(src->fd, src->ib, src->cap);
			if (n < 0)
				goto out;
			eof = n == 0;
			z.next_in = src->ib;
			z.avail_in = n;
		}
		z.next_out = ob;
		z.avail_out = ZIO_BUF;
		zr = inflate(&z, Z_NO_FLUSH);
		if (put(out, ob, ZIO_BUF - z.avail_out) < 0)
			goto out;
		switch (zr) {
		case Z_OK:
			continue;
		case Z_BUF_ERROR:
			/* No progress: inflate wants input we do not have. */
			if (eof) {
				err_set("gzip stream truncated");
				goto out;
			}
			continue;
		case Z_STREAM_END:
			break;
		case Z_MEM_ERROR:
			err_set("gzip: out of memory");
			goto out;
		default:
			err_set("gzip stream corrupt: %s", z.msg ? z.msg : "bad data");
			goto out;
		}
		/* End of a member: as gzip -d does, another member may follow;
		 * anything else after it is an error. */
		member_off += z.total_in;
		memmove(src->ib, z.next_in, z.avail_in);
		n = z.avail_in;
		if (!eof)
			n = read_atleast(src->fd, src->ib, n, sizeof(gzip_magic), src->cap);
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		if (!has_magic(src->ib, n, gzip_magic, sizeof(gzip_magic))) {
			err_set("trailing garbage after gzip data at byte %llu", member_off);
			goto out;
		}
		z.next_in = src->ib;
		z.avail_in = n;
		inflateReset(&z);
	}
	rc = 0;
out:
	inflateEnd(&z);
	return rc;
}

static int xz_decompress(struct zsrc *src, int out, unsigned char *ob)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_action action = LZMA_RUN;
	lzma_ret r;
	ssize_t n;
	int rc = -1;

	/* LZMA_CONCATENATED: several streams and stream padding, as xz -d. */
	r = lzma_stream_decoder(&s, UINT64_MAX, LZMA_CONCATENATED);
	if (r != LZMA_OK) {
		err_set("xz: cannot start decompressor: %s", lzma_msg(r));
		return -1;
	}
	s.next_in = src->ib;
	s.avail_in = src->len;
	for (;;) {
		if (s.avail_in == 0 && action == LZMA_RUN) {
			n = read_some(src->fd, src->ib, src->cap);
			if (n < 0)
				goto out;
			if (n == 0)
				action = LZMA_FINISH;
			s.next_in = src->ib;
			s.avail_in = n;
		}
		s.next_out = ob;
		s.avail_out = ZIO_BUF;
		r = lzma_code(&s, action);
		if (put(out, ob, ZIO_BUF - s.avail_out) < 0)
			goto out;
		if (r == LZMA_STREAM_END)
			break;
		if (r == LZMA_BUF_ERROR) {
			err_set("xz stream truncated");
			goto out;
		}
		if (r == LZMA_DATA_ERROR || r == LZMA_FORMAT_ERROR || r == LZMA_OPTIONS_ERROR) {
			err_set("xz stream corrupt: %s", lzma_msg(r));
			goto out;
		}
		if (r != LZMA_OK) {
			err_set("xz: %s", lzma_msg(r));
			goto out;
		}
	}
	rc = 0;
out:
	lzma_end(&s);
	return rc;
}

static int zstd_decompress(struct zsrc *src, int out, unsigned char *ob)
{
	ZSTD_inBuffer zin = {src->ib, src->len, 0};
	ZSTD_outBuffer zout;
	ZSTD_DCtx *dctx;
	size_t r, pending = 0;
	int eof = 0, rc = -1;
	ssize_t n;

	dctx = ZSTD_createDCtx();
	if (!dctx) {
		err_set("zstd: cannot start decompressor: out of memory");
		return -1;
	}
	/* Like xz's unlimited memlimit: accept the largest window a frame may
	 * ask for (zstd --long=31), not only the default 128 MiB. */
	ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax,
			       ZSTD_dParam_getBounds(ZSTD_d_windowLogMax).upperBound);
	for (;;) {
		if (zin.pos == zin.size && !eof) {
			n = read_some(src->fd, src->ib, src->cap);
			if (n < 0)
				goto out;
			eof = n == 0;
			zin.src = src->ib;
			zin.size = n;
			zin.pos = 0;
		}
		zout.dst = ob;
		zout.size = ZIO_BUF;
		zout.pos = 0;
		/* 0 when a frame is decoded and flushed; concatenated frames
		 * are decoded one after the other by the same calls. */
		n = zin.pos;
		r = ZSTD_decompressStream(dctx, &zout, &zin);
		if (ZSTD_isError(r)) {
			err_set("zstd stream corrupt: %s", ZSTD_getErrorName(r));
			goto out;
		}
		if (put(out, ob, zout.pos) < 0)
			goto out;
		/* A call that did nothing (draining at end of input after a
		 * finished frame) answers for the next frame: ignore it. */
		if (zin.pos != (size_t)n || zout.pos)
			pending = r;
		/* At end of input, call until the internal buffers are drained. */
		if (eof && zout.pos < zout.size)
			break;
	}
	if (pending) {
		err_set("zstd stream truncated");
		goto out;
	}
	rc = 0;
out:
	ZSTD_freeDCtx(dctx);
	return rc;
}

int zio_decompress(int in, int out, const void *prefix, size_t prefix_len)
{
	struct zsrc src = {.fd = in};
	unsigned char *ob;
	ssize_t n;
	int rc = -1;

	src.cap = prefix_len > ZIO_BUF ? prefix_len : ZIO_BUF;
	src.ib = malloc(src.cap);
	ob = malloc(ZIO_BUF);
	if (!src.ib || !ob) {
		err_set("cannot allocate decompression buffers: out of memory");
		goto out;
	}
	if (prefix_len)
		memcpy(src.ib, prefix, prefix_len);
	n = read_atleast(in, src.ib, prefix_len, ZIO_MAGIC_MAX, src.cap);
	if (n < 0)
		goto out;
	src.len = n;
	switch (zio_detect(src.ib, src.len)) {
	case ZIO_GZIP:
		rc = gzip_decompress(&src, out, ob);
		break;
	case ZIO_XZ:
		rc = xz_decompress(&src, out, ob);
		break;
	case ZIO_ZSTD:
		rc = zstd_decompress(&src, out, ob);
		break;
	default:
		err_set(src.len ? "not a compressed stream"
				: "not a compressed stream: empty input");
		break;
	}
out:
	free(src.ib);
	free(ob);
	return rc;
}

static void close_fds(unsigned int lo, unsigned int hi)
{
	long max;

	if (lo > hi || close_range(lo, hi, 0) == 0)
		return;
	/* close_range(2) is Linux 5.9: before it, one by one up to the limit. */
	max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 1 << 20)
		max = 1 << 20;
	for (; lo <= hi && lo < (unsigned int)max; lo++)
		close(lo);
}

/* Close every fd but a, b and c (duplicates allowed). */
static void close_except(int a, int b, int c)
{
	int keep[3] = {a, b, c}, i, j, t;
	unsigned int lo = 0;

	for (i = 0; i < 3; i++)
		for (j = i + 1; j < 3; j++)
			if (keep[j] < keep[i]) {
				t = keep[i];
				keep[i] = keep[j];
				keep[j] = t;
			}
	for (i = 0; i < 3; i++) {
		if ((unsigned int)keep[i] < lo)
			continue;
		if ((unsigned int)keep[i] > lo)
			close_fds(lo, keep[i] - 1);
		lo = keep[i] + 1;
	}
	close_fds(lo, ~0U);
}

static noreturn void run_decompressor(int in, int wfd, int sfd, const void *prefix,
				      size_t prefix_len)
{
	sigset_t pipe_set;

	close_except(in, wfd, sfd);
	/* The reader may stop early (a failed restore): die quietly of
	 * SIGPIPE then, whatever the caller had done with the signal. */
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigprocmask(SIG_UNBLOCK, &pipe_set, NULL);
	/* Failure is told on the status pipe, for the reader to report as
	 * its one line: by then it may be the restorer, and stderr the
	 * program's. */
	if (zio_decompress(in, wfd, prefix, prefix_len) < 0) {
		const char *m = err_get();
		close(wfd);
		if (write(sfd, m, strlen(m)) < 0)
			_exit(2);
		_exit(1);
	}
	_exit(0);
}

int zio_spawn_decompressor(int in, const void *prefix, size_t prefix_len, int *out_fd,
			   int *status_fd)
{
	int p[2], sp[2], status;
	pid_t pid, r;

	if (in < 0) {
		errno = EBADF;
		err_sys("decompressor input fd %d", in);
		return -1;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		err_sys("cannot create decompressor pipe");
		return -1;
	}
	if (pipe2(sp, O_CLOEXEC) < 0) {
		err_sys("cannot create decompressor pipe");
		close(p[0]);
		close(p[1]);
		return -1;
	}
	/* A bigger pipe lets the decompressor run ahead of the reader. Above
	 * pipe-max-size an unprivileged process gets EPERM: keep the default. */
	fcntl(p[1], F_SETPIPE_SZ, ZIO_BUF);
	pid = fork();
	if (pid < 0) {
		err_sys("cannot fork decompressor");
		close(p[0]);
		close(p[1]);
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	if (pid == 0) {
		/* The intermediate child: fork the decompressor and exit at
		 * once, so the decompressor is reparented to init (or the
		 * nearest subreaper), not left as the caller's child. Only
		 * _exit here: the caller's stdio buffers are not ours to flush. */
		close(p[0]);
		close(sp[0]);
		pid = fork();
		if (pid < 0)
			_exit(errno ? errno : 1);
		if (pid > 0)
			_exit(0);
		run_decompressor(in, p[1], sp[1], prefix, prefix_len);
	}
	close(p[1]);
	close(sp[1]);
	do
		r = waitpid(pid, &status, 0);
	while (r < 0 && errno == EINTR);
	/* ECHILD: the caller ignores SIGCHLD and the kernel reaped it; a
	 * failed fork then shows as an empty stream to the reader. */
	if (r < 0 && errno != ECHILD) {
		err_sys("cannot wait for decompressor's parent %d", (int)pid);
		close(p[0]);
		close(sp[0]);
		return -1;
	}
	if (r > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		if (WIFEXITED(status)) {
			errno = WEXITSTATUS(status);
			err_sys("cannot fork decompressor");
		} else {
			err_set("decompressor's parent %d killed by signal %d", (int)pid,
				WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		}
		close(p[0]);
		close(sp[0]);
		return -1;
	}
	*out_fd = p[0];
	*status_fd = sp[0];
	return 0;
}
