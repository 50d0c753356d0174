/* ckpt-dump: write the image of a running process. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/io.h"
#include "dump/dump.h"
#include "base/base.h"
#include "incr/incr.h"

#define USAGE                                                                                      \
	"usage: ckpt-dump [-t] [--kill | --stop | --cow] [-o file] [--parent img] [--save-files] "   \
	"[--save-files-max size] "                                                                  \
	"[--progress | --quiet] pid\n"

static volatile int cancel; /* sig_atomic_t is int here */

static void on_signal(int sig)
{
	(void)sig;
	cancel = 1;
}

static pid_t worker;

static void pass_on(int sig)
{
	kill(worker, sig);
}

/* The dump runs in a child of ckpt-dump, the worker.  Should ckpt-dump be
 * killed, even with SIGKILL, the kernel tells the worker (SIGTERM, as
 * PR_SET_PDEATHSIG asks), and it abandons the dump as for a SIGTERM of
 * its own: it leaves whatever system call it runs inside the target (its
 * signals are blocked then) and releases the target as it was.  Killed
 * itself, in those microseconds, it would leave the target with the
 * injected call's registers; ckpt-dump is the process users and scripts
 * kill.  ckpt-dump passes INT, TERM and HUP on, and exits as the worker
 * exits. */
static void fork_worker(void)
{
	struct sigaction sa;
	pid_t parent = getpid();
	int st;

	fflush(NULL);
	worker = fork();
	if (worker < 0)
		die(1, "cannot fork: %s", strerror(errno));
	if (worker == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() != parent)
			_exit(1);
		return;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pass_on;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	while (waitpid(worker, &st, 0) < 0)
		if (errno != EINTR)
			die(1, "cannot wait for the worker: %s", strerror(errno));
	if (WIFEXITED(st))
		exit(WEXITSTATUS(st));
	signal(WTERMSIG(st), SIG_DFL);
	raise(WTERMSIG(st));
	exit(128 + WTERMSIG(st));
}

static void usage(void)
{
	fputs(USAGE, stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"kill", no_argument, NULL, 'k'},     {"stop", no_argument, NULL, 's'},
		{"output", required_argument, NULL, 'o'}, {"progress", no_argument, NULL, 'P'},
		{"quiet", no_argument, NULL, 'q'},    {"help", no_argument, NULL, 'h'},
		{"save-files", no_argument, NULL, 'S'}, {"cow", no_argument, NULL, 'C'},
		{"tree", no_argument, NULL, 't'},     {"version", no_argument, NULL, 'V'},
		{"parent", required_argument, NULL, 'p'},
		{"save-files-max", required_argument, NULL, 'M'}, {NULL, 0, NULL, 0}};
	enum progress_mode pmode = PROGRESS_AUTO;
	enum dump_end how = DUMP_RUN;
	const char *out_path = NULL, *parent = NULL;
	struct atomic_file of = {0};
	struct progress prog_line;
	struct dump_opts o = {0};
	struct dump_tree target;
	int tree = 0;
	struct sigaction sa;
	int c, out = 1;
	char *end;
	long pid;

	prog = "ckpt-dump";
	while ((c = getopt_long(argc, argv, "o:thV", longopts, NULL)) != -1) {
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
		case 'p':
			parent = optarg;
			break;
		case 'M':
			if (parse_size(optarg) <= 0)
				die(2, "not a size: %s", optarg);
			o.save_files_max = parse_size(optarg);
			break;
		case 't':
			tree = 1;
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
	if (optind != argc - 1 || (o.cow && how != DUMP_RUN) || (o.save_files_max && !o.save_files))
		usage();
	errno = 0;
	pid = strtol(argv[optind], &end, 10);
	if (*end || end == argv[optind] || pid <= 0 || pid > INT_MAX || errno)
		die(2, "not a pid: %s", argv[optind]);
	if (!out_path && isatty(1))
		die(1, "refusing to write an image to a terminal; redirect stdout or use -o");
	/* An image holds the program's memory, secrets included: standard
	 * output that is a regular file (a shell's "> file", created with its
	 * umask) loses the permissions it gives others, as -o's file never
	 * has them. */
	if (!out_path) {
		mode_t was;

		if (private_output(1, &was))
			die(1, "%s", err_get());
		grow_pipe(1);
	}

	fork_worker();
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

	/* The parent is read before the process is stopped: it does not wait
	 * for us to hash a large image. */
	if (parent && incr_dump_open(parent, out_path, &o.incr))
		die(1, "%s", err_get());
	if (out_path) {
		if (atomic_open(&of, out_path))
			die(1, "%s", err_get());
		out = of.fd;
	}
	progress_init(&prog_line, pmode, "dumped");
	o.progress = progress_cb;
	o.progress_arg = &prog_line;
	o.cancel = &cancel;
	if (dump_seize_tree(pid, tree, &target)) {
		atomic_discard(&of);
		die(1, "%s", err_get());
	}
	if (dump_write_tree(&target, out, &o)) {
		atomic_discard(&of);
		die(1, "%s", err_get());
	}
	/* A signal that came as the last bytes went (or ckpt-dump's death,
	 * told to this worker) still means: no image, the target as it was. */
	if (cancel) {
		atomic_discard(&of);
		dump_release_tree(&target, DUMP_RUN);
		die(1, "interrupted by a signal");
	}
	/* Every byte is written: a process that runs on (or stops) need not
	 * wait for the fsync of -o; one to be killed waits until the image
	 * is safe. */
	if (how != DUMP_KILL && dump_release_tree(&target, how))
		die_lib(1, "image written, but");
	if (out_path && atomic_commit(&of)) {
		atomic_discard(&of);
		dump_release_tree(&target, DUMP_RUN);
		die(1, "%s", err_get());
	}
	if (!out_path && close(1) && errno != EINVAL) {
		err_sys("cannot write image");
		dump_release_tree(&target, DUMP_RUN);
		die(1, "%s", err_get());
	}
	progress_done(&prog_line);
	if (how == DUMP_KILL && dump_release_tree(&target, how))
		die_lib(1, "image written, but");
	incr_dump_free(o.incr);
	return 0;
}
