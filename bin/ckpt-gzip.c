/* ckpt-gzip: compress stdin to stdout (gzip, xz or zstd) on several threads, or
 * decompress gzip, xz or zstd with -d. A filter of its own so that pigz, xz
 * or zstd can take its place in a pipeline; -o FILE writes FILE privately
 * and atomically, as ckpt-dump -o does. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/io.h"
#include "base/base.h"

#define USAGE "usage: ckpt-gzip [-d] [-1 ... -9] [-T threads] [--xz | --zstd] [-o file]"

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

/* The file of -o, while it is being written. */
static struct atomic_file out = {.fd = -1};

/* INT, TERM, HUP: the file of -o, if it has a temporary name, goes (an
 * unnamed one goes with the process), then the signal does what it does. */
static void on_signal(int sig)
{
	atomic_discard(&out);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Open the file of -o, in a process that leaves nothing of it behind when
 * interrupted.  A file size limit is an error (EFBIG) that removes it, not a
 * signal that kills us with it. */
static void out_open(const char *path)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGXFSZ, SIG_IGN);
	if (atomic_open(&out, path))
		die(1, "%s", err_get());
}

/* An image holds the program's memory, secrets included: standard output
 * that is a regular file (a shell's "> file", made with its umask) loses
 * the permissions it gives others, as ckpt-dump's does.  If others could
 * read it, any of them may have opened it before that, and still read what
 * we write: say so, and what does not have that window. */
static void private_stdout(void)
{
	mode_t was;

	if (private_output(1, &was))
		die(1, "%s", err_get());
	if (was & 044)
		warnx("standard output was readable by other users (mode %04o, now %04o; one "
		      "who opened it before still can read it): use -o file",
		      (unsigned)was, (unsigned)(was & 07700));
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
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int c, decompress = 0, kind = ZIO_GZIP, level = 0, threads = 0, fd = 1;
	const char *out_path = NULL;

	prog = "ckpt-gzip";
	/* getopt names the program by argv[0] in its messages. */
	argv[0] = (char *)prog;
	while ((c = getopt_long(argc, argv, "d123456789T:o:hV", opts, NULL)) != -1) {
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
		case 'o':
			out_path = optarg;
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
	if (out_path) {
		out_open(out_path);
		fd = out.fd;
	} else {
		/* As gzip does: compressed bytes on a terminal help nobody. */
		if (!decompress && isatty(1))
			die(1, "stdout: compressed data not written to a terminal");
		private_stdout();
		grow_pipe(1);
	}
	if (decompress) {
		if (zio_decompress(0, fd, NULL, 0) < 0) {
			atomic_discard(&out);
			die_lib(1, "decompress");
		}
	} else {
		/* gzip: level 2, smaller than gzip -1 and still more than
		 * twice its speed on two cores (make bench); xz: preset 1;
		 * zstd: level 1, zstd -1 (the fastest of the three, at
		 * gzip's ratio: make bench). */
		if (!level)
			level = kind == ZIO_GZIP ? 2 : 1;
		if (zio_compress_mt(0, fd, kind, level, threads) < 0) {
			atomic_discard(&out);
			die_lib(1, "compress");
		}
	}
	if (out_path) {
		if (atomic_commit(&out)) {
			atomic_discard(&out);
			die(1, "%s", err_get());
		}
		return 0;
	}
	/* close(2) can report what write(2) did not (NFS, quota): check it. */
	if (close(1) < 0)
		die(1, "cannot write stdout: %s", strerror(errno));
	return 0;
}
