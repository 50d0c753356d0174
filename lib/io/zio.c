/* zio.c: gzip, xz and zstd compression and decompression, fd to fd. */
#include <errno.h>
#include <fcntl.h>
#include <lzma.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "base/base.h"
#include "io/io.h"

/* What a decompressor may allocate for one stream. */
#define ZIO_ZSTD_WINDOW_LOG 27		 /* 128 MiB, as zstd -d allows by default */
#define ZIO_XZ_MEMLIMIT (256ull << 20) /* xz -9 needs 65 MiB */

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
		return "the stream needs more than 256 MiB to decompress (xz -9 needs 65)";
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

/* gzip compression: one gzip member, cut into chunks that worker threads
 * deflate side by side, as pigz does. Each chunk becomes raw deflate blocks
 * that end on a byte boundary (a sync flush), so the outputs of the chunks
 * are simply written one after the other, and gzip -d sees one ordinary
 * deflate stream. Each chunk is primed with the 32 KiB before it
 * (deflateSetDictionary), so matches still reach back across a cut: the
 * output is within a few bytes a chunk of what one deflate stream would
 * give. The CRC of the whole member is combined from the chunks' CRCs.
 *
 * A chunk that deflate would not shrink is written as stored blocks: random
 * data costs a CRC and a copy, not a deflate. Whether a chunk is worth
 * deflating is guessed by deflating a small sample of it; when the guess
 * is wrong, deflate runs out of room before it is as long as the stored
 * form and the chunk is stored anyway, so the output never grows by more
 * than 5 bytes per 64 KiB.
 *
 * The calling thread reads and writes; memory is a ring of chunks. */

/* Small enough that the stored-or-deflated choice is local (an image
 * mixes random and compressible pages), large enough that priming the
 * dictionary and the flush marker cost little per chunk. */
#define GZ_CHUNK (256 << 10)
/* deflate's window: the farthest a match reaches back. */
#define GZ_DICT (32 << 10)
/* The longest stored block (RFC 1951: LEN is 16 bits). */
#define GZ_STORED_MAX 65535
/* The sample deflated to guess whether a chunk is worth deflating: pieces
 * spread over the chunk, 1.6 % of it. */
#define GZ_SAMPLES 8
#define GZ_SAMPLE_LEN 512

enum { CH_READY, CH_DONE, CH_FAILED };

struct gz_chunk {
	unsigned char *in; /* GZ_DICT bytes for the dictionary, then the data */
	unsigned char *out;
	size_t dict_len, len, out_len;
	unsigned long crc;
	int last; /* the end of the input: its last block is marked final */
	int state;
	char err[96];
};

/* The ring and the queue of work in it. Chunk number s lives in
 * ring[s % nring]; the caller has read chunks below rseq and written those
 * below its own wseq, and workers have taken those below cseq. */
struct gz_pool {
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	struct gz_chunk *ring;
	unsigned int nring;
	unsigned long long rseq, cseq;
	int level, quit;
};

struct gz_worker {
	struct gz_pool *pool;
	z_stream z;
	pthread_t tid;
};

/* What len bytes take as stored blocks. */
static size_t stored_size(size_t len)
{
	return len + 5 * (len ? (len + GZ_STORED_MAX - 1) / GZ_STORED_MAX : 1);
}

/* Stored blocks of len bytes at p, the last one final if final (an empty
 * one when len is 0 and final); where they end in o. */
static unsigned char *put_stored(unsigned char *o, const unsigned char *p, size_t len, int final)
{
	do {
		size_t n = len < GZ_STORED_MAX ? len : GZ_STORED_MAX;
		if (!n && !final)
			break;
		len -= n;
		*o++ = final && !len;
		*o++ = n & 0xff;
		*o++ = n >> 8;
		*o++ = ~n & 0xff;
		*o++ = (~n >> 8) & 0xff;
		memcpy(o, p, n);
		o += n;
		p += n;
	} while (len);
	return o;
}

static void store_chunk(struct gz_chunk *c)
{
	c->out_len = put_stored(c->out, c->in + GZ_DICT, c->len, c->last) - c->out;
}

/* deflateReset, and at level 1 a longer nice_length than zlib's 8 (the
 * rest is zlib's level 1): with only 4 candidates to look at it costs no
 * measurable time, and it keeps level 1 no larger than gzip -1, whose
 * output zlib's own level 1 exceeds by a little (README, ckpt-gzip). The
 * reset sets zlib's parameters again, so this follows every reset. */
static int gz_reset(z_stream *z, int level)
{
	int zr = deflateReset(z);

	if (zr == Z_OK && level == 1)
		zr = deflateTune(z, 4, 4, 16, 4);
	return zr;
}

/* Deflate a sample of the chunk and see whether it shrinks by at least
 * 1/32: a few KiB deflated instead of a whole chunk for nothing. */
static int worth_deflating(z_stream *z, int level, struct gz_chunk *c)
{
	const size_t sample = GZ_SAMPLES * GZ_SAMPLE_LEN;
	const unsigned char *p = c->in + GZ_DICT;
	size_t cap = stored_size(GZ_CHUNK), step, i;

	/* A small chunk costs little to deflate whole. */
	if (c->len < 4 * sample)
		return 1;
	step = (c->len - GZ_SAMPLE_LEN) / (GZ_SAMPLES - 1);
	if (gz_reset(z, level) != Z_OK)
		return 1;
	z->next_out = c->out;
	z->avail_out = cap;
	for (i = 0; i < GZ_SAMPLES; i++) {
		z->next_in = (unsigned char *)p + i * step;
		z->avail_in = GZ_SAMPLE_LEN;
		if (deflate(z, i == GZ_SAMPLES - 1 ? Z_FINISH : Z_NO_FLUSH) == Z_STREAM_ERROR)
			return 1;
	}
	return cap - z->avail_out < sample - sample / 32;
}

/* Deflate the chunk into at most its stored size; store it if that is too
 * little room. */
static int deflate_chunk(z_stream *z, int level, struct gz_chunk *c)
{
	unsigned char *p = c->in + GZ_DICT;
	size_t room = stored_size(c->len);
	int zr, fit;

	zr = gz_reset(z, level);
	if (zr == Z_OK && c->dict_len)
		zr = deflateSetDictionary(z, p - c->dict_len, c->dict_len);
	if (zr == Z_OK) {
		z->next_in = p;
		z->avail_in = c->len;
		z->next_out = c->out;
		z->avail_out = room;
		/* Not the last chunk: a sync flush ends it on a byte boundary
		 * with an empty stored block, and the next chunk's output
		 * follows as more blocks of the same stream. */
		zr = deflate(z, c->last ? Z_FINISH : Z_SYNC_FLUSH);
	}
	if (zr == Z_STREAM_ERROR) {
		snprintf(c->err, sizeof(c->err), "gzip: compressor state corrupt");
		return -1;
	}
	/* With avail_out left, deflate has flushed everything it had. */
	fit = c->last ? zr == Z_STREAM_END : z->avail_in == 0 && z->avail_out > 0;
	if (fit)
		c->out_len = room - z->avail_out;
	else
		store_chunk(c);
	return 0;
}

/* The first run of at least GZ_ZERO_RUN zero bytes in [p, end), 8-byte
 * aligned within the chunk, as [*zs, *ze); 0 if there is none. */
#define GZ_ZERO_RUN 512

static int zero_run(const unsigned char *p, const unsigned char *end, const unsigned char **zs,
		    const unsigned char **ze)
{
	const unsigned char *q = p, *s = NULL;

	for (; q + 8 <= end; q += 8) {
		uint64_t w;
		memcpy(&w, q, 8);
		if (w == 0) {
			if (!s)
				s = q;
			continue;
		}
		if (s && q - s >= GZ_ZERO_RUN) {
			*zs = s;
			*ze = q;
			return 1;
		}
		s = NULL;
	}
	if (s && end - s >= GZ_ZERO_RUN) {
		*zs = s;
		*ze = end;
		return 1;
	}
	return 0;
}

/* A chunk not worth deflating, stored, but for its runs of zeros (the
 * padding before an image's page data, a zero page among random ones),
 * which are deflated on their own: what gzip -1 saves on such data, at
 * the speed of a copy.  Each piece ends on a byte boundary, as stored
 * blocks need. */
static int store_squeezed(z_stream *z, struct gz_chunk *c)
{
	const unsigned char *p = c->in + GZ_DICT, *end = p + c->len, *zs, *ze;
	unsigned char *o = c->out;
	size_t room = stored_size(c->len);

	while (p < end && zero_run(p, end, &zs, &ze)) {
		int fin = c->last && ze == end, zr;

		o = put_stored(o, p, zs - p, 0);
		if (gz_reset(z, 1) != Z_OK)
			goto plain;
		z->next_in = (unsigned char *)zs;
		z->avail_in = ze - zs;
		z->next_out = o;
		z->avail_out = room - (o - c->out);
		zr = deflate(z, fin ? Z_FINISH : Z_SYNC_FLUSH);
		if ((fin && zr != Z_STREAM_END) || (!fin && (z->avail_in || !z->avail_out)))
			goto plain;
		o = z->next_out;
		p = ze;
	}
	if (p < end)
		o = put_stored(o, p, end - p, c->last);
	if ((size_t)(o - c->out) > room)
		goto plain;
	c->out_len = o - c->out;
	return 0;
plain:
	store_chunk(c);
	return 0;
}

static int compress_chunk(z_stream *z, int level, struct gz_chunk *c)
{
	c->crc = crc32(0, c->in + GZ_DICT, c->len);
	if (level == 0) {
		store_chunk(c);
		return 0;
	}
	if (!worth_deflating(z, level, c))
		return store_squeezed(z, c);
	return deflate_chunk(z, level, c);
}

static void *gz_work(void *arg)
{
	struct gz_worker *w = arg;
	struct gz_pool *p = w->pool;
	struct gz_chunk *c;
	int rc;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->quit && p->cseq == p->rseq)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->quit)
			break;
		c = &p->ring[p->cseq++ % p->nring];
		pthread_mutex_unlock(&p->lock);
		rc = compress_chunk(&w->z, p->level, c);
		pthread_mutex_lock(&p->lock);
		c->state = rc < 0 ? CH_FAILED : CH_DONE;
		pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Read chunk number seq into its slot, after the end of the chunk before
 * it as its dictionary. */
static int read_chunk(int in, struct gz_pool *p, unsigned long long seq)
{
	struct gz_chunk *c = &p->ring[seq % p->nring], *prev;
	ssize_t n;

	c->dict_len = 0;
	if (seq) {
		prev = &p->ring[(seq - 1) % p->nring];
		c->dict_len = prev->len < GZ_DICT ? prev->len : GZ_DICT;
		memcpy(c->in + GZ_DICT - c->dict_len, prev->in + GZ_DICT + prev->len - c->dict_len,
		       c->dict_len);
	}
	n = read_full(in, c->in + GZ_DICT, GZ_CHUNK);
	if (n < 0) {
		err_sys("cannot read input");
		return -1;
	}
	c->len = n;
	/* A full chunk may be followed by nothing: the next, empty chunk is
	 * then the last, and ends the stream with an empty final block. */
	c->last = n < GZ_CHUNK;
	c->state = CH_READY;
	return 0;
}

static int chunk_state(struct gz_pool *p, struct gz_chunk *c, int wait)
{
	int state;

	pthread_mutex_lock(&p->lock);
	while (wait && c->state == CH_READY)
		pthread_cond_wait(&p->done, &p->lock);
	state = c->state;
	pthread_mutex_unlock(&p->lock);
	return state;
}

static void put_le32(unsigned char *b, unsigned long v)
{
	b[0] = v & 0xff;
	b[1] = (v >> 8) & 0xff;
	b[2] = (v >> 16) & 0xff;
	b[3] = (v >> 24) & 0xff;
}

/* The loop of the calling thread: write every chunk that is done, in
 * order; read the next one while the ring has room; else wait. With no
 * workers, it compresses each chunk itself as soon as it is read. */
static int gz_run(int in, int out, struct gz_pool *p, struct gz_worker *w, int nworkers)
{
	/* RFC 1952: no name, no time; XFL 2 or 4 for the best or fastest
	 * level, as zlib writes it; OS 3, Unix. */
	unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}, trailer[8];
	unsigned long long wseq = 0, total = 0;
	unsigned long crc = crc32(0, NULL, 0);
	struct gz_chunk *c;
	int eof = 0;

	hdr[8] = p->level == 9 ? 2 : p->level < 2 ? 4 : 0;
	if (put(out, hdr, sizeof(hdr)) < 0)
		return -1;
	for (;;) {
		while (wseq < p->rseq &&
		       chunk_state(p, c = &p->ring[wseq % p->nring], 0) != CH_READY) {
			if (c->state == CH_FAILED) {
				err_set("%s", c->err);
				return -1;
			}
			if (put(out, c->out, c->out_len) < 0)
				return -1;
			crc = crc32_combine(crc, c->crc, c->len);
			total += c->len;
			wseq++;
			if (c->last) {
				put_le32(trailer, crc);
				put_le32(trailer + 4, total & 0xffffffff);
				return put(out, trailer, sizeof(trailer));
			}
		}
		if (!eof && p->rseq - wseq < p->nring) {
			c = &p->ring[p->rseq % p->nring];
			if (read_chunk(in, p, p->rseq) < 0)
				return -1;
			eof = c->last;
			if (!nworkers) {
				if (compress_chunk(&w->z, p->level, c) < 0) {
					err_set("%s", c->err);
					return -1;
				}
				c->state = CH_DONE;
				p->rseq++;
				continue;
			}
			pthread_mutex_lock(&p->lock);
			p->rseq++;
			pthread_cond_signal(&p->work);
			pthread_mutex_unlock(&p->lock);
			continue;
		}
		chunk_state(p, &p->ring[wseq % p->nring], 1);
	}
}

static int gzip_compress(int in, int out, int level, int threads)
{
	struct gz_pool p = {.level = level};
	struct gz_worker *w;
	int nworkers = threads > 1 ? threads : 0, nz = 0, nstarted = 0, i, rc = -1, e;

	/* Twice as many chunks as workers: one being compressed and one
	 * read ahead for each, and two for the writer to drain. */
	p.nring = 2 * nworkers + 2;
	p.ring = calloc(p.nring, sizeof(*p.ring));
	w = calloc(nworkers ? nworkers : 1, sizeof(*w));
	if (!p.ring || !w)
		goto nomem;
	for (i = 0; i < (int)p.nring; i++) {
		p.ring[i].in = malloc(GZ_DICT + GZ_CHUNK);
		p.ring[i].out = malloc(stored_size(GZ_CHUNK));
		if (!p.ring[i].in || !p.ring[i].out)
			goto nomem;
	}
	/* Raw deflate (negative windowBits): the gzip wrapper is ours.
	 * memLevel 9: the 32 K symbol blocks and 64 K hash of gzip itself. */
	for (; nz < (nworkers ? nworkers : 1); nz++) {
		w[nz].pool = &p;
		e = deflateInit2(&w[nz].z, level, Z_DEFLATED, -MAX_WBITS, 9, Z_DEFAULT_STRATEGY);
		if (e != Z_OK) {
			err_set("gzip: cannot start compressor: %s",
				e == Z_MEM_ERROR ? "out of memory" : "bad parameters");
			goto out;
		}
	}
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.work, NULL);
	pthread_cond_init(&p.done, NULL);
	for (; nstarted < nworkers; nstarted++) {
		e = pthread_create(&w[nstarted].tid, NULL, gz_work, &w[nstarted]);
		if (e) {
			errno = e;
			err_sys("gzip: cannot start compression thread");
			break;
		}
	}
	if (nstarted == nworkers)
		rc = gz_run(in, out, &p, w, nworkers);
	pthread_mutex_lock(&p.lock);
	p.quit = 1;
	pthread_cond_broadcast(&p.work);
	pthread_mutex_unlock(&p.lock);
	for (i = 0; i < nstarted; i++)
		pthread_join(w[i].tid, NULL);
	pthread_mutex_destroy(&p.lock);
	pthread_cond_destroy(&p.work);
	pthread_cond_destroy(&p.done);
	goto out;
nomem:
	err_set("cannot allocate compression buffers: out of memory");
out:
	for (i = 0; i < nz; i++)
		deflateEnd(&w[i].z);
	for (i = 0; p.ring && i < (int)p.nring; i++) {
		free(p.ring[i].in);
		free(p.ring[i].out);
	}
	free(p.ring);
	free(w);
	return rc;
}

/* xz through liblzma's own threads when there are several: it cuts the
 * input into blocks (three times the dictionary) and compresses them side
 * by side. One thread uses the single-threaded encoder, as xz -T1 does. */
static lzma_ret xz_encoder(lzma_stream *s, int level, int threads)
{
	lzma_mt mt = {.threads = threads, .preset = level, .check = LZMA_CHECK_CRC64};
	uint64_t limit = lzma_physmem() / 4;

	/* As xz does: fewer threads rather than more than a quarter of the
	 * RAM (each thread of preset 9 wants 674 MiB). */
	while (mt.threads > 1 && limit && lzma_stream_encoder_mt_memusage(&mt) > limit)
		mt.threads--;
	if (mt.threads <= 1)
		return lzma_easy_encoder(s, level, LZMA_CHECK_CRC64);
	return lzma_stream_encoder_mt(s, &mt);
}

/* A streaming encoder (xz, zstd) as the loop in stream_compress drives
 * it: code() takes what it can of *in (moving *in and *avail on), puts at
 * most *out_len bytes in out and says how many in *out_len; finish says the
 * input has ended.  It returns 1 once finish is set and all is written, 0
 * for more, -1 with err_set. */
struct zenc {
	int (*code)(struct zenc *e, const unsigned char **in, size_t *avail, unsigned char *out,
		    size_t *out_len, int finish);
	lzma_stream xz;
	ZSTD_CCtx *zstd;
};

/* Read in to its end through e onto out. */
static int stream_compress(int in, int out, struct zenc *e)
{
	const unsigned char *p;
	unsigned char *ib, *ob;
	size_t avail, olen;
	int finish = 0, r = 0, rc = -1;
	ssize_t n;

	ib = malloc(ZIO_BUF);
	ob = malloc(ZIO_BUF);
	if (!ib || !ob) {
		err_set("cannot allocate compression buffers: out of memory");
		goto out;
	}
	do {
		n = read_some(in, ib, ZIO_BUF);
		if (n < 0)
			goto out;
		finish = n == 0;
		p = ib;
		avail = n;
		/* Until the input is taken and the output not full (the
		 * encoder may hold more), or at the end until it is done. */
		do {
			olen = ZIO_BUF;
			r = e->code(e, &p, &avail, ob, &olen, finish);
			if (r < 0 || put(out, ob, olen) < 0)
				goto out;
		} while (r != 1 && (finish || avail || olen == ZIO_BUF));
	} while (!finish);
	rc = 0;
out:
	free(ib);
	free(ob);
	return rc;
}

static int xz_code(struct zenc *e, const unsigned char **in, size_t *avail, unsigned char *out,
		   size_t *out_len, int finish)
{
	lzma_stream *s = &e->xz;
	lzma_ret r;

	s->next_in = *in;
	s->avail_in = *avail;
	s->next_out = out;
	s->avail_out = *out_len;
	r = lzma_code(s, finish ? LZMA_FINISH : LZMA_RUN);
	*in = s->next_in;
	*avail = s->avail_in;
	*out_len -= s->avail_out;
	if (r == LZMA_STREAM_END)
		return 1;
	if (r != LZMA_OK) {
		err_set("xz: %s", lzma_msg(r));
		return -1;
	}
	return 0;
}

static int xz_compress(int in, int out, int level, int threads)
{
	struct zenc e = {.code = xz_code, .xz = LZMA_STREAM_INIT};
	lzma_ret r;
	int rc;

	r = xz_encoder(&e.xz, level, threads);
	if (r != LZMA_OK) {
		err_set("xz: cannot start compressor: %s", lzma_msg(r));
		rc = -1;
	} else {
		rc = stream_compress(in, out, &e);
	}
	lzma_end(&e.xz);
	return rc;
}

static int zstd_code(struct zenc *e, const unsigned char **in, size_t *avail, unsigned char *out,
		     size_t *out_len, int finish)
{
	ZSTD_inBuffer zin = {*in, *avail, 0};
	ZSTD_outBuffer zout = {out, *out_len, 0};
	size_t r;

	r = ZSTD_compressStream2(e->zstd, &zout, &zin, finish ? ZSTD_e_end : ZSTD_e_continue);
	if (ZSTD_isError(r)) {
		err_set("zstd: %s", ZSTD_getErrorName(r));
		return -1;
	}
	*in += zin.pos;
	*avail -= zin.pos;
	*out_len = zout.pos;
	/* With ZSTD_e_end, 0 is "the frame is complete and flushed". */
	return finish && r == 0;
}

/* The most worker threads this libzstd runs: 0 when it was built without
 * them (ZSTD_MULTITHREAD unset, as some distributions' static builds are),
 * and ZSTD_c_nbWorkers then only takes 0. */
static int zstd_workers_max(void)
{
	ZSTD_bounds b = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers);

	return ZSTD_isError(b.error) || b.upperBound < 0 ? 0 : b.upperBound;
}

/* A zstd frame with zstd's content checksum (as the zstd tool writes by
 * default, so that zstd -d checks it). threads > 1 runs that many of
 * libzstd's workers, which compress jobs of a few MiB side by side while
 * this thread reads and writes; 1, or a libzstd without workers, compresses
 * in the calling thread alone. The frame is the same format either way. */
static int zstd_compress(int in, int out, int level, int threads)
{
	struct zenc e = {.code = zstd_code};
	int workers = threads > 1 ? threads : 0, rc;
	size_t r;

	if (workers > zstd_workers_max())
		workers = zstd_workers_max();
	e.zstd = ZSTD_createCCtx();
	if (!e.zstd) {
		err_set("zstd: cannot start compressor: out of memory");
		return -1;
	}
	r = ZSTD_CCtx_setParameter(e.zstd, ZSTD_c_compressionLevel,
				   level ? level : ZSTD_CLEVEL_DEFAULT);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(e.zstd, ZSTD_c_checksumFlag, 1);
	if (ZSTD_isError(r)) {
		err_set("zstd: cannot start compressor: %s", ZSTD_getErrorName(r));
		ZSTD_freeCCtx(e.zstd);
		return -1;
	}
	/* Refused (no thread support after all): one thread it is. */
	if (workers && ZSTD_isError(ZSTD_CCtx_setParameter(e.zstd, ZSTD_c_nbWorkers, workers)))
		ZSTD_CCtx_setParameter(e.zstd, ZSTD_c_nbWorkers, 0);
	rc = stream_compress(in, out, &e);
	ZSTD_freeCCtx(e.zstd);
	return rc;
}

/* The cores this process may run on (its affinity mask, as nproc counts). */
static int usable_cores(void)
{
	cpu_set_t set;
	long n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

int zio_compress_mt(int in, int out, int kind, int level, int threads)
{
	if (kind != ZIO_GZIP && kind != ZIO_XZ && kind != ZIO_ZSTD) {
		err_set("cannot compress to %s: only gzip, xz and zstd are supported",
			zio_name(kind));
		return -1;
	}
	if (level < 0 || level > 9) {
		err_set("%s: compression level %d out of range 0..9", zio_name(kind), level);
		return -1;
	}
	if (threads < 0 || threads > ZIO_THREADS_MAX) {
		err_set("%s: thread count %d out of range 0..%d", zio_name(kind), threads,
			ZIO_THREADS_MAX);
		return -1;
	}
	if (threads == 0)
		threads = usable_cores();
	if (threads > ZIO_THREADS_MAX)
		threads = ZIO_THREADS_MAX;
	if (kind == ZIO_GZIP)
		return gzip_compress(in, out, level, threads);
	if (kind == ZIO_ZSTD)
		return zstd_compress(in, out, level, threads);
	return xz_compress(in, out, level, threads);
}

int zio_compress(int in, int out, int kind, int level)
{
	return zio_compress_mt(in, out, kind, level, 0);
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
	/* Every xz preset decodes in under 100 MiB: a header asking for more
	 * is refused, not allocated. */
	r = lzma_stream_decoder(&s, ZIO_XZ_MEMLIMIT, LZMA_CONCATENATED);
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
	/* zstd's own default: a window of at most 128 MiB (zstd --long up to
	 * 27).  More, and a 19-byte frame header could make us allocate
	 * gigabytes (fuzzing found one asking for 2 GiB). */
	ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, ZIO_ZSTD_WINDOW_LOG);
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
		if (ZSTD_isError(r) &&
		    ZSTD_getErrorCode(r) == ZSTD_error_frameParameter_windowTooLarge) {
			err_set("zstd frame asks for a window over 128 MiB (zstd --long=28 or "
				"more): decompress it first with zstd -d --memory=...");
			goto out;
		}
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

/* The spawned process (zio_spawn): fn's work, and its failure told. */
static noreturn void run_spawned(const char *(*fn)(void *arg, int wfd, int sfd), void *arg, int wfd,
				 int sfd)
{
	sigset_t pipe_set;
	const char *m;

	/* The reader may stop early (a failed restore): die quietly of
	 * SIGPIPE then, whatever the caller had done with the signal. */
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigprocmask(SIG_UNBLOCK, &pipe_set, NULL);
	/* Failure is told on the status pipe, for the reader to report as
	 * its one line: by then it may be the restorer, and stderr the
	 * program's. */
	m = fn(arg, wfd, sfd);
	if (m) {
		close(wfd);
		if (write(sfd, m, strlen(m)) < 0)
			_exit(2);
		_exit(1);
	}
	_exit(0);
}

int zio_spawn(const char *what, const char *(*fn)(void *arg, int wfd, int sfd), void *arg,
	      int *out_fd, int *status_fd)
{
	int p[2], sp[2], status;
	pid_t pid, r;

	if (pipe2(p, O_CLOEXEC) < 0) {
		err_sys("cannot create %s pipe", what);
		return -1;
	}
	if (pipe2(sp, O_CLOEXEC) < 0) {
		err_sys("cannot create %s pipe", what);
		close(p[0]);
		close(p[1]);
		return -1;
	}
	/* A bigger pipe lets the process run ahead of the reader. Above
	 * pipe-max-size an unprivileged process gets EPERM: keep the default. */
	fcntl(p[1], F_SETPIPE_SZ, ZIO_BUF);
	pid = fork();
	if (pid < 0) {
		err_sys("cannot fork %s", what);
		close(p[0]);
		close(p[1]);
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	if (pid == 0) {
		/* The intermediate child: fork the process and exit at once,
		 * so the process is reparented to init (or the nearest
		 * subreaper), not left as the caller's child. Only _exit
		 * here: the caller's stdio buffers are not ours to flush. */
		close(p[0]);
		close(sp[0]);
		pid = fork();
		if (pid < 0)
			_exit(errno ? errno : 1);
		if (pid > 0)
			_exit(0);
		run_spawned(fn, arg, p[1], sp[1]);
	}
	close(p[1]);
	close(sp[1]);
	do
		r = waitpid(pid, &status, 0);
	while (r < 0 && errno == EINTR);
	/* ECHILD: the caller ignores SIGCHLD and the kernel reaped it; a
	 * failed fork then shows as an empty stream to the reader. */
	if (r < 0 && errno != ECHILD) {
		err_sys("cannot wait for %s's parent %d", what, (int)pid);
		close(p[0]);
		close(sp[0]);
		return -1;
	}
	if (r > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		if (WIFEXITED(status)) {
			errno = WEXITSTATUS(status);
			err_sys("cannot fork %s", what);
		} else {
			err_set("%s's parent %d killed by signal %d", what, (int)pid,
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

struct decompress_arg {
	int in;
	const void *prefix;
	size_t prefix_len;
};

static const char *run_decompressor(void *arg, int wfd, int sfd)
{
	const struct decompress_arg *a = arg;

	close_except(a->in, wfd, sfd);
	return zio_decompress(a->in, wfd, a->prefix, a->prefix_len) < 0 ? err_get() : NULL;
}

int zio_spawn_decompressor(int in, const void *prefix, size_t prefix_len, int *out_fd,
			   int *status_fd)
{
	struct decompress_arg a = {in, prefix, prefix_len};

	if (in < 0) {
		errno = EBADF;
		err_sys("decompressor input fd %d", in);
		return -1;
	}
	return zio_spawn("decompressor", run_decompressor, &a, out_fd, status_fd);
}
