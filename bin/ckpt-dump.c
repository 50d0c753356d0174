/* ckpt-dump: write the image of a running process. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dump.h"
#include "err.h"
#include "progress.h"

#define USAGE                                                                                      \
	"usage: ckpt-dump [--kill | --stop | --cow] [-o file] [--save-files] [--progress | --quiet] " \
	"pid\n"

static volatile int cancel; /* sig_atomic_t is int here */

static void on_signal(int sig)
{
	(void)sig;
	cancel = 1;
}

static void usage(void)
{
	fputs(USAGE, stderr);
	exit(2);
}

/* Open a temporary file beside path, mode 0600; its name goes in tmp. */
static int open_temp(const char *path, char *tmp, size_t size)
{
	char dir[PATH_MAX], base[PATH_MAX];
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	snprintf(base, sizeof(base), "%s", path);
	snprintf(tmp, size, "%s/.%s.XXXXXX", dirname(dir), basename(base));
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		die(1, "cannot create a temporary file for %s: %s", path, strerror(errno));
	return fd;
}

/* Make the image durable under its final name: data, then the name. */
static int commit_temp(int fd, const char *tmp, const char *path)
{
	char dir[PATH_MAX];
	int dfd;

	if (fsync(fd) || close(fd)) {
		err_sys("cannot write %s", path);
		return -1;
	}
	if (rename(tmp, path)) {
		err_sys("cannot rename %s to %s", tmp, path);
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"kill", no_argument, NULL, 'k'},     {"stop", no_argument, NULL, 's'},
		{"output", required_argument, NULL, 'o'}, {"progress", no_argument, NULL, 'P'},
		{"quiet", no_argument, NULL, 'q'},    {"help", no_argument, NULL, 'h'},
		{"save-files", no_argument, NULL, 'S'}, {"cow", no_argument, NULL, 'C'},
		{"version", no_argument, NULL, 'V'},  {NULL, 0, NULL, 0}};
	enum progress_mode pmode = PROGRESS_AUTO;
	enum dump_end how = DUMP_RUN;
	const char *out_path = NULL;
	char tmp[PATH_MAX + 16] = "";
	struct progress prog_line;
	struct dump_opts o = {0};
	struct dump_target target;
	struct sigaction sa;
	int c, out = 1;
	char *end;
	long pid;

	prog = "ckpt-dump";
	while ((c = getopt_long(argc, argv, "o:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			how = DUMP_KILL;
			break;
		case 's':
			how = DUMP_STOP;
			break;
		case 'o':
			out_path = optarg;
			break;
		case 'P':
			pmode = PROGRESS_ON;
			break;
		case 'q':
			pmode = PROGRESS_OFF;
			break;
		case 'S':
			o.save_files = 1;
			break;
		case 'C':
			o.cow = 1;
			break;
		case 'h':
			fputs(USAGE, stdout);
			return 0;
		case 'V':
			printf("ckpt-dump %s\n", CKPT_VERSION);
			return 0;
		default:
			usage();
		}
	}
	if (optind != argc - 1 || (o.cow && how != DUMP_RUN))
		usage();
	errno = 0;
	pid = strtol(argv[optind], &end, 10);
	if (*end || end == argv[optind] || pid <= 0 || pid > INT_MAX || errno)
		die(2, "not a pid: %s", argv[optind]);
	if (!out_path && isatty(1))
		die(1, "refusing to write an image to a terminal; redirect stdout or use -o");

	/* A dump interrupted by a signal must still release the target. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* A closed reader or a file size limit is an error to report (EPIPE,
	 * EFBIG), not a reason to die with the target still stopped. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);

	if (out_path)
		out = open_temp(out_path, tmp, sizeof(tmp));
	progress_init(&prog_line, pmode, "dumped");
	o.progress = progress_cb;
	o.progress_arg = &prog_line;
	o.cancel = &cancel;
	if (dump_seize(pid, &target)) {
		if (tmp[0])
			unlink(tmp);
		die(1, "%s", err_get());
	}
	if (dump_write(&target, out, &o)) {
		if (tmp[0])
			unlink(tmp);
		die(1, "%s", err_get());
	}
	if (tmp[0] && commit_temp(out, tmp, out_path)) {
		unlink(tmp);
		dump_release(&target, DUMP_RUN);
		die(1, "%s", err_get());
	}
	if (!tmp[0] && close(1) && errno != EINVAL) {
		err_sys("cannot write image");
		dump_release(&target, DUMP_RUN);
		die(1, "%s", err_get());
	}
	progress_done(&prog_line);
	if (dump_release(&target, how))
		die_lib(1, "image written, but");
	return 0;
}
