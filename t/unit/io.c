/* Unit tests of io/'s compressed streams: each kind round-trips data that
 * compresses and data that does not, is told by its magic, decodes
 * concatenated members, and refuses a stream cut short or followed by
 * garbage; the decompressor process delivers the data and an empty status
 * on success, the reason on failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "io/io.h"

#include "unit.h"

#define LEN ((3u << 20) + 4321)
static unsigned char data[LEN];

/* A memfd holding len bytes of buf, at offset 0. */
static int mem(const void *buf, size_t len)
{
	int fd = memfd_create("unit-io", MFD_CLOEXEC);

	if (fd < 0 || write_all(fd, buf, len) || lseek(fd, 0, SEEK_SET)) {
		perror("memfd");
		exit(2);
	}
	return fd;
}

/* The whole contents of fd, malloc'd, its length in *len. */
static unsigned char *slurp(int fd, size_t *len)
{
	size_t cap = 1 << 20, n = 0;
	unsigned char *b = malloc(cap);
	ssize_t k;

	lseek(fd, 0, SEEK_SET);
	while (b && (k = read(fd, b + n, cap - n)) > 0)
		if ((n += k) == cap)
			b = realloc(b, cap *= 2);
	*len = n;
	return b;
}

static unsigned char *compress(int kind, const void *in, size_t len, size_t *zlen)
{
	int i = mem(in, len), o = mem("", 0);
	unsigned char *z;

	CHECK(zio_compress(i, o, kind, 1) == 0, "%s: compress: %s", zio_name(kind), err_get());
	z = slurp(o, zlen);
	close(i);
	close(o);
	return z;
}

/* Decompress the n bytes at z: 0 and the data in *out, or -1. */
static int decompress(const void *z, size_t n, unsigned char **out, size_t *len)
{
	int i = mem(z, n), o = mem("", 0), rc = zio_decompress(i, o, NULL, 0);

	*out = slurp(o, len);
	close(i);
	close(o);
	return rc;
}

static void round_trip(int kind)
{
	size_t zlen, len;
	unsigned char *z = compress(kind, data, LEN, &zlen), *back, *two;
	const char *name = zio_name(kind);

	CHECK(zio_detect(z, zlen) == kind, "%s: detected as %s", name, zio_name(zio_detect(z, zlen)));
	CHECK(zlen < LEN, "%s: %zu bytes for %u", name, zlen, LEN);
	CHECK(decompress(z, zlen, &back, &len) == 0 && len == LEN && !memcmp(back, data, LEN),
	      "%s: round trip (%zu bytes back)", name, len);
	free(back);
	/* Two streams one after the other decode as one, as gzip -d does. */
	two = malloc(2 * zlen);
	memcpy(two, z, zlen);
	memcpy(two + zlen, z, zlen);
	CHECK(decompress(two, 2 * zlen, &back, &len) == 0 && len == 2 * LEN &&
		  !memcmp(back + LEN, data, LEN),
	      "%s: concatenated streams", name);
	free(back);
	/* Cut in the middle, and followed by bytes that are not a stream. */
	CHECK(decompress(z, zlen / 2, &back, &len) < 0 && strstr(err_get(), "truncated"),
	      "%s: cut stream: %s", name, err_get());
	free(back);
	memcpy(two + zlen, "garbage!", 8);
	CHECK(decompress(two, zlen + 8, &back, &len) < 0, "%s: trailing garbage accepted", name);
	free(back);
	free(two);
	free(z);
}

/* The decompressor as a process: data on the pipe, an empty status. */
static void spawned(void)
{
	size_t zlen, len;
	unsigned char *z = compress(ZIO_ZSTD, data, LEN, &zlen), *back, st[256];
	int in = mem(z, zlen), out, status;
	ssize_t k;

	CHECK(zio_spawn_decompressor(in, NULL, 0, &out, &status) == 0, "spawn: %s", err_get());
	close(in);
	back = slurp(out, &len);
	CHECK(len == LEN && !memcmp(back, data, LEN), "spawned: %zu bytes back", len);
	CHECK(read(status, st, sizeof(st)) == 0, "spawned: status not empty");
	close(out);
	close(status);
	free(back);
	/* Cut: all that decoded comes, and the status says why it stopped. */
	in = mem(z, zlen - 3);
	CHECK(zio_spawn_decompressor(in, NULL, 0, &out, &status) == 0, "spawn: %s", err_get());
	close(in);
	free(slurp(out, &len));
	k = read(status, st, sizeof(st) - 1);
	st[k > 0 ? k : 0] = 0;
	CHECK(k > 0 && strstr((char *)st, "zstd"), "spawned, cut: status '%s'", st);
	close(out);
	close(status);
	free(z);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(void)
{
	/* Half text that compresses, half bytes that do not (stored chunks). */
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < LEN; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		data[i] = i < LEN / 2 ? "checkpoint "[i % 11] : (unsigned char)x;
	}
	round_trip(ZIO_GZIP);
	round_trip(ZIO_XZ);
	round_trip(ZIO_ZSTD);
	spawned();
	return unit_done("io");
}
