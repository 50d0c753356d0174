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
#include "kinds/kinds.h"

#define USAGE                                                                                      \
	"usage: ckpt-dump [-t] [--kill | --stop | --cow] [-o file] [--parent img] [--track] [--live] "   \
	"[--save-files] "                                                                          \
	"[--save-files-max size] [--tcp-close | --tcp-established] "                                 \
	"[--ext-unix reconnect|close] [--splice | --no-splice] "                                 \
	"[--progress | --quiet] pid\n"

static volatile int cancel; /* sig_atomic_t is int here */

static void on_signal(int sig)
{
	(void)sig;
	cancel = 1;
}

/* fn for SIGINT, SIGTERM and SIGHUP: the signals that end a dump. */
static void on_ending_signals(void (*fn)(int), int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
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
	on_ending_signals(pass_on, SA_RESTART);
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

/* What the command line asks for. */
struct args {
	enum progress_mode pmode;
	enum dump_end how;
	const char *out_path, *parent;
	struct dump_opts o;
	int tree;
	int live; /* --live: copy the memory while it runs first */
	pid_t pid;
};

static void parse_args(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = {
		{"kill", no_argument, NULL, 'k'},     {"stop", no_argument, NULL, 's'},
		{"output", required_argument, NULL, 'o'}, {"progress", no_argument, NULL, 'P'},
		{"quiet", no_argument, NULL, 'q'},    {"help", no_argument, NULL, 'h'},
		{"save-files", no_argument, NULL, 'S'}, {"cow", no_argument, NULL, 'C'},
		{"tcp-close", no_argument, NULL, 'T'},	  {"tcp-established", no_argument, NULL, 'E'},
		{"tree", no_argument, NULL, 't'},     {"version", no_argument, NULL, 'V'},
		{"parent", required_argument, NULL, 'p'}, {"track", no_argument, NULL, 'R'},
		{"live", no_argument, NULL, 'l'},
		{"save-files-max", required_argument, NULL, 'M'},
		{"ext-unix", required_argument, NULL, 'X'}, {"splice", no_argument, NULL, 'Z'},
		{"no-splice", no_argument, NULL, 'z'}, {NULL, 0, NULL, 0}};
	int c;
	char *end;
	long pid;

	while ((c = getopt_long(argc, argv, "o:thV", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			a->how = DUMP_KILL;
			break;
		case 's':
			a->how = DUMP_STOP;
			break;
		case 'o':
			a->out_path = optarg;
			break;
		case 'P':
			a->pmode = PROGRESS_ON;
			break;
		case 'q':
			a->pmode = PROGRESS_OFF;
			break;
		case 'S':
			a->o.save_files = 1;
			break;
		case 'C':
			a->o.cow = 1;
			break;
		case 'p':
			a->parent = optarg;
			break;
		case 'R':
			a->o.track = 1;
			break;
		case 'l':
			a->live = 1;
			break;
		case 'M':
			if (parse_size(optarg) <= 0)
				die(2, "not a size: %s", optarg);
			a->o.save_files_max = parse_size(optarg);
			break;
		case 't':
			a->tree = 1;
			break;
		case 'T':
			a->o.fd_opts |= FD_OPT_TCP_CLOSE;
			break;
		case 'E':
			a->o.fd_opts |= FD_OPT_TCP_ESTABLISHED;
			break;
		case 'X':
			a->o.fd_opts &= ~(FD_OPT_EXT_UNIX_RECONNECT | FD_OPT_EXT_UNIX_CLOSE);
			if (!strcmp(optarg, "reconnect"))
				a->o.fd_opts |= FD_OPT_EXT_UNIX_RECONNECT;
			else if (!strcmp(optarg, "close"))
				a->o.fd_opts |= FD_OPT_EXT_UNIX_CLOSE;
			else
				die(2, "--ext-unix: not reconnect or close: %s", optarg);
			break;
		case 'Z':
			a->o.splice = DUMP_SPLICE_ON;
			break;
		case 'z':
			a->o.splice = DUMP_SPLICE_OFF;
			break;
		case 'h':
			fputs(USAGE, stdout);
			exit(0);
		case 'V':
			printf("ckpt-dump %s\n", CKPT_VERSION);
			exit(0);
		default:
			usage();
		}
	}
	if (optind != argc - 1 || (a->o.cow && a->how != DUMP_RUN) ||
	    (a->o.track && (a->how == DUMP_KILL || a->o.cow)) ||
	    (a->o.save_files_max && !a->o.save_files) ||
	    (a->live && (a->tree || a->o.cow || a->o.track || a->parent ||
			 a->o.splice == DUMP_SPLICE_ON)) ||
	    (a->o.splice == DUMP_SPLICE_ON && (a->o.cow || a->parent)) ||
	    ((a->o.fd_opts & FD_OPT_TCP_CLOSE) && (a->o.fd_opts & FD_OPT_TCP_ESTABLISHED)))
		usage();
	if (a->how == DUMP_KILL)
		a->o.fd_opts |= FD_OPT_KILL;
	a->o.run_on = a->how == DUMP_RUN;
	errno = 0;
	pid = strtol(argv[optind], &end, 10);
	if (*end || end == argv[optind] || pid <= 0 || pid > INT_MAX || errno)
		die(2, "not a pid: %s", argv[optind]);
	a->pid = pid;
}

/* Standard output as the image: never a terminal.  An image holds the
 * program's memory, secrets included: standard output that is a regular
 * file (a shell's "> file", created with its umask) loses the permissions
 * it gives others, as -o's file never has them. */
static void prepare_stdout(void)
{
	mode_t was;

	if (isatty(1))
		die(1, "refusing to write an image to a terminal; redirect stdout or use -o");
	if (private_output(1, &was))
		die(1, "%s", err_get());
	grow_pipe(1);
}

static void catch_signals(void)
{
	/* A dump interrupted by a signal must still release the target. */
	on_ending_signals(on_signal, 0);
	/* A closed reader or a file size limit is an error to report (EPIPE,
	 * EFBIG), not a reason to die with the target still stopped. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
}

/* The parent image, then the output: -o's file (made under a temporary
 * name until it is complete), or standard output. */
static int open_output(struct args *a, struct atomic_file *of)
{
	/* The parent is read before the process is stopped: it does not wait
	 * for us to hash a large image. */
	if (a->parent && incr_dump_open(a->parent, a->out_path, &a->o.incr))
		die(1, "%s", err_get());
	/* A parent that left a tracker: keep tracking (unless --kill). */
	if (a->o.incr && incr_dump_track_fd(a->o.incr) >= 0 && a->how != DUMP_KILL && !a->o.cow)
		a->o.track = 1;
	/* Buffers for as many pages as its tracker found written last time. */
	if (a->o.incr)
		dump_expect_pages(incr_dump_expect(a->o.incr));
	if (!a->out_path)
		return 1;
	if (atomic_open(of, a->out_path))
		die(1, "%s", err_get());
	of->cancel = &cancel;
	return of->fd;
}

/* dump_before_freeze: the parent's hashes, read while smaps was. */
static int parent_read(void *incr)
{
	return incr_dump_wait(incr);
}

/* Seize the process (with -t, its tree) and write the image to out.  On
 * failure: no image, the target as it was. */
static void dump(struct args *a, struct dump_tree *target, int out, struct atomic_file *of)
{
	/* --live: the pre-copy while it runs, then the frozen image. */
	if (a->live && dump_live_precopy(a->pid, out, &a->o, &a->o.live)) {
		atomic_discard(of);
		die(1, "%s", err_get());
	}
	if (a->o.incr)
		dump_before_freeze(parent_read, a->o.incr);
	if (dump_seize_tree(a->pid, a->tree, target)) {
		atomic_discard(of);
		die(1, "%s", err_get());
	}
	if (dump_write_tree(target, out, &a->o)) {
		atomic_discard(of);
		die(1, "%s", err_get());
	}
	/* A signal that came as the last bytes went (or ckpt-dump's death,
	 * told to this worker) still means: no image, the target as it was. */
	if (cancel) {
		atomic_discard(of);
		dump_release_tree(target, DUMP_RUN);
		die(1, "interrupted by a signal");
	}
}

/* Every byte is written: release the target as asked, and make the image
 * safe.  A process that runs on (or stops) need not wait for the fsync
 * of -o; one to be killed waits until the image is safe. */
static void finish(const struct args *a, struct dump_tree *target, struct atomic_file *of)
{
	if (a->how != DUMP_KILL && dump_release_tree(target, a->how))
		die_lib(1, "image written, but");
	/* Page data spliced into a file: its checksums, read back. */
	if (dump_checksum_spliced(a->o.spliced))
		warnx("image written, its page data without checksums: %s", err_get());
	if (a->out_path && atomic_commit(of)) {
		atomic_discard(of);
		dump_release_tree(target, DUMP_RUN);
		die(1, "%s", err_get());
	}
	if (!a->out_path && close(1) && errno != EINVAL) {
		err_sys("cannot write image");
		dump_release_tree(target, DUMP_RUN);
		die(1, "%s", err_get());
	}
}

int main(int argc, char **argv)
{
	struct args a = {.pmode = PROGRESS_AUTO, .how = DUMP_RUN};
	struct atomic_file of = {0};
	struct dump_spliced spliced = {0};
	struct progress prog_line;
	struct dump_tree target;
	int out;

	prog = "ckpt-dump";
	parse_args(argc, argv, &a);
	if (!a.out_path)
		prepare_stdout();
	fork_worker();
	catch_signals();
	out = open_output(&a, &of);
	progress_init(&prog_line, a.pmode, "dumped");
	a.o.progress = progress_cb;
	a.o.progress_arg = &prog_line;
	a.o.cancel = &cancel;
	a.o.spliced = &spliced;
	dump(&a, &target, out, &of);
	finish(&a, &target, &of);
	progress_done(&prog_line);
	if (a.how == DUMP_KILL && dump_release_tree(&target, a.how))
		die_lib(1, "image written, but");
	if (a.o.live && a.pmode == PROGRESS_ON) {
		const struct live_dump_stats *st = dump_live_stats(a.o.live);
		fprintf(stderr,
			"ckpt-dump: pid %d: live: %u rounds, %llu pages copied while it ran (%.3f "
			"s), then %llu written or absent looked at frozen (%.3f s), %llu taken from "
			"the pre-copy\n",
			(int)a.pid, st->rounds, (unsigned long long)st->precopied, st->running_s,
			(unsigned long long)st->final_pages, st->scan_s, (unsigned long long)st->kept_pages);
	}
	dump_live_free(a.o.live);
	incr_dump_free(a.o.incr);
	return 0;
}
