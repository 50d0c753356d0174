/* ckpt-coord: the coordinator of one computation (lib/coord/coordd.c): parse
 * the options, listen, report the port, serve. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coord/coord.h"
#include "base/base.h"
#include "io/io.h"

#define USAGE                                                                                      \
	"usage: ckpt-coord [--port port] [--port-file file] [--bind addr] [--secret-file file] "     \
	"[--daemon] [--exit-on-last] [--interval n] [--dir dir] [--keep n] "                      \
	"[--compress zstd|gzip|none] [--no-gzip] [--save-files-max size] [--timeout n] [--log file]\n"

static void usage(void)
{
	fputs(USAGE, stderr);
	exit(2);
}

/* Written aside and renamed: a reader never sees half a number. */
static void write_port_file(const char *path, int port)
{
	char tmp[PATH_MAX + 16], buf[16];
	int fd, n = snprintf(buf, sizeof(buf), "%d\n", port);

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, buf, n) || close(fd) || rename(tmp, path))
		die(1, "cannot write the port file %s: %s", path, strerror(errno));
}

static void daemonize(int keep_stderr)
{
	pid_t pid;
	int fd;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die(1, "cannot fork: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	setsid();
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		if (!keep_stderr)
			dup2(fd, 2);
		close(fd);
	}
}

/* zstd, gzip or none, as the DUMP line names it. */
static int compress_opt(const char *s, const char *what)
{
	int kind = co_compressor(s);

	if (kind < 0)
		die(2, "%s: not a compressor (zstd, gzip or none): %s", what, s);
	return kind;
}

static int number_opt(const char *s, const char *what, int max)
{
	long long v = co_num(s, max);

	if (v < 0)
		die(2, "%s: not a number from 0 to %d: %s", what, max, s);
	return (int)v;
}

/* The checkpoint directory holds the programs' memory and the script
 * that restarts them: it must be this user's alone.  In one that others
 * may write (/tmp, a group's), they could plant links where generations
 * go, or generations of their own. */
static void check_dir(const char *dir)
{
	struct stat sb;

	if (stat(dir, &sb) || !S_ISDIR(sb.st_mode))
		die(1, "checkpoint directory %s: not a directory", dir);
	if (sb.st_uid != geteuid() || (sb.st_mode & 022))
		die(1,
		    "checkpoint directory %s: owned by uid %u, mode %04o: not this user's alone "
		    "(uid %u); refused (--dir names one of your own)",
		    dir, (unsigned)sb.st_uid, (unsigned)(sb.st_mode & 07777), (unsigned)geteuid());
}

/* What the options say, and the environment where they say nothing. */
struct opts {
	struct cd_settings s;
	const char *dir, *comp, *gz, *port; /* --dir, --compress, --port or their variables */
	const char *port_file, *secret_file, *log;
	int daemon;
};

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"port", required_argument, NULL, 'p'},
		{"port-file", required_argument, NULL, 'f'},
		{"bind", required_argument, NULL, 'b'},
		{"secret-file", required_argument, NULL, 's'},
		{"daemon", no_argument, NULL, 'd'},
		{"exit-on-last", no_argument, NULL, 'x'},
		{"interval", required_argument, NULL, 'i'},
		{"dir", required_argument, NULL, 'D'},
		{"keep", required_argument, NULL, 'k'},
		{"compress", required_argument, NULL, 'c'},
		{"no-gzip", no_argument, NULL, 'z'},
		{"save-files-max", required_argument, NULL, 'm'},
		{"log", required_argument, NULL, 'l'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}};
	int c;

	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o->port = optarg;
			break;
		case 'f':
			o->port_file = optarg;
			break;
		case 'b':
			o->s.bind = optarg;
			break;
		case 's':
			o->secret_file = optarg;
			break;
		case 'd':
			o->daemon = 1;
			break;
		case 'x':
			o->s.exit_on_last = 1;
			break;
		case 'i':
			o->s.interval = number_opt(optarg, "--interval", 86400 * 365);
			break;
		case 'D':
			o->dir = optarg;
			break;
		case 'k':
			o->s.keep = number_opt(optarg, "--keep", 1000000);
			break;
		case 'c':
			o->s.compress = compress_opt(optarg, "--compress");
			break;
		case 'z':
			o->s.compress = ZIO_NONE;
			break;
		case 'm':
			o->s.save_max = parse_size(optarg);
			if (o->s.save_max < 0)
				die(2, "--save-files-max: not a size: %s", optarg);
			break;
		case 'l':
			o->log = optarg;
			break;
		case 't':
			o->s.timeout = number_opt(optarg, "--timeout", 86400 * 365);
			break;
		case 'h':
			fputs(USAGE, stdout);
			exit(0);
		case 'V':
			printf("ckpt-coord %s\n", CKPT_VERSION);
			exit(0);
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
}

/* The settings the options leave open: compressor, port, secret and
 * checkpoint directory. */
static void settle(struct opts *o)
{
	struct cd_settings *s = &o->s;
	const char *dir = o->dir && *o->dir ? o->dir : ".";

	/* No option: the environment, else zstd, the fastest to the disk at
	 * gzip's ratio (make bench; README).  CKPT_GZIP=0 is how "none" was
	 * said before there was a choice. */
	if (s->compress < 0 && o->comp && *o->comp)
		s->compress = compress_opt(o->comp, "CKPT_COMPRESS");
	if (s->compress < 0)
		s->compress = o->gz && !strcmp(o->gz, "0") ? ZIO_NONE : ZIO_ZSTD;
	s->port = CO_DEFAULT_PORT;
	if (!o->port)
		o->port = getenv("CKPT_COORD_PORT");
	if (o->port && *o->port)
		s->port = number_opt(o->port, "--port", 65535);
	if (s->bind && !o->secret_file)
		die(2, "--bind %s listens beyond this host: it needs --secret-file", s->bind);
	if (o->secret_file && !(s->secret = co_read_secret(o->secret_file)))
		die(2, "%s", err_get());
	/* The restart script gives the members the file, by a path that
	 * does not depend on where it is run. */
	if (o->secret_file)
		s->secret_file = realpath(o->secret_file, NULL);
	/* A directory named for checkpoints that does not exist yet is
	 * made, private (0700), as ckpt-inject --dir ~/ck/run1 expects. */
	if (o->dir && *o->dir && make_dirs(o->dir, 0700))
		die(1, "cannot make the checkpoint directory %s: %s", o->dir, strerror(errno));
	if (!realpath(dir, s->dir))
		die(1, "checkpoint directory %s: %s", dir, strerror(errno));
	check_dir(s->dir);
}

/* Standard error, where the coordinator logs, appends to log. */
static void open_log(const char *log)
{
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (fd < 0)
		die(1, "cannot open the log %s: %s", log, strerror(errno));
	dup2(fd, 2);
	close(fd);
}

int main(int argc, char **argv)
{
	struct opts o = {
		.s = {.keep = 3, .save_max = 256ll << 20, .timeout = 3600, .compress = -1},
		.dir = getenv("CKPT_DIR"),
		.comp = getenv("CKPT_COMPRESS"),
		.gz = getenv("CKPT_GZIP"),
	};
	struct coord *cd;

	prog = "ckpt-coord";
	parse_opts(argc, argv, &o);
	settle(&o);
	if (o.log)
		open_log(o.log);
	/* A client gone while we write to it is an error of that client. */
	signal(SIGPIPE, SIG_IGN);
	cd = cd_open(&o.s);
	if (!cd)
		die(1, "%s", err_get());
	if (o.port_file)
		write_port_file(o.port_file, cd_port(cd));
	if (o.daemon)
		daemonize(o.log != NULL);
	if (cd_run(cd))
		die(1, "%s", err_get());
	return 0;
}
