/* ckpt-gzip: compress stdin to stdout (gzip, xz or zstd) on several threads, or
 * decompress gzip, xz or zstd with -d. A filter of its own so that pigz, xz
 * or zstd can take its place in a pipeline. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "util.h"
#include "zio.h"

#define USAGE "usage: ckpt-gzip [-d] [-1 ... -9] [-T threads] [--xz | --zstd]"

enum { OPT_XZ = 256, OPT_ZSTD };

static void usage(void)
{
	fprintf(stderr, "%s\n", USAGE);
	exit(2);
}

/* --help and --version: stdout is checked like any other output. */
static void say(const char *line)
{
	printf("%s\n", line);
	if (fflush(stdout) || ferror(stdout))
		die(1, "cannot write stdout: %s", strerror(errno));
	exit(0);
}

/* -T N: 0 (one thread per core) up to ZIO_THREADS_MAX. */
static int parse_threads(const char *arg)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(arg, &end, 10);
	if (end == arg || *end || errno || n < 0 || n > ZIO_THREADS_MAX)
		die(2, "bad thread count: '%s' (want 0..%d)", arg, ZIO_THREADS_MAX);
	return n;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"xz", no_argument, NULL, OPT_XZ},
	    {"zstd", no_argument, NULL, OPT_ZSTD},
	    {"threads", required_argument, NULL, 'T'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int c, decompress = 0, kind = ZIO_GZIP, level = 0, threads = 0;

	prog = "ckpt-gzip";
	/* getopt names the program by argv[0] in its messages. */
	argv[0] = (char *)prog;
	while ((c = getopt_long(argc, argv, "d123456789T:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			decompress = 1;
			break;
		case '1' ... '9':
			level = c - '0';
			break;
		case 'T':
			threads = parse_threads(optarg);
			break;
		case OPT_XZ:
			kind = ZIO_XZ;
			break;
		case OPT_ZSTD:
			kind = ZIO_ZSTD;
			break;
		case 'h':
			say(USAGE);
			break;
		case 'V':
			say("ckpt-gzip " CKPT_VERSION);
			break;
		default:
			usage();
		}
	}
	if (optind < argc)
		usage();

	grow_pipe(0);
	grow_pipe(1);
	if (decompress) {
		if (zio_decompress(0, 1, NULL, 0) < 0)
			die_lib(1, "decompress");
	} else {
		/* As gzip does: compressed bytes on a terminal help nobody. */
		if (isatty(1))
			die(1, "stdout: compressed data not written to a terminal");
		/* gzip: level 2, smaller than gzip -1 and still more than
		 * twice its speed on two cores (make bench); xz: preset 1;
		 * zstd: level 1, zstd -1 (the fastest of the three, at
		 * gzip's ratio: make bench). */
		if (!level)
			level = kind == ZIO_GZIP ? 2 : 1;
		if (zio_compress_mt(0, 1, kind, level, threads) < 0)
			die_lib(1, "compress");
	}
	/* close(2) can report what write(2) did not (NFS, quota): check it. */
	if (close(1) < 0)
		die(1, "cannot write stdout: %s", strerror(errno));
	return 0;
}
