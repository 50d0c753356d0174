/* ckpt-inject: run a command (or adopt a process) as a member of a
 * checkpointable computation.
 *
 * The checkpointing is not done inside the program: a small helper
 * process, detached (its own session, reparented away from us so the
 * program never sees it as a child), holds the coordinator connection and
 * seizes the program with ptrace when the coordinator says FREEZE, writes
 * its image on DUMP, and lets it go (or kills it) on RESUME.  A ptrace
 * stop is invisible to the program's parent, where SIGSTOP would show a
 * shell a stopped job and make ckpt-remap's supervisor stop too. */
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

#include "coord/coord.h"
#include "base/base.h"

#define USAGE                                                                                      \
	"usage: ckpt-inject [--coord-host host] [--coord-port port] [--secret-file file] "         \
	"[--interval n] [--dir dir] [--compress zstd|gzip|none] [--no-gzip] [--name name] "        \
	"[--id n] [--run-anyway] (-- cmd [arg...] | -p pid | --restart img)\n"

static int fail_rc;

static void usage(void)
{
	fputs(USAGE, stderr);
	exit(fail_rc);
}

/* --- starting --- */

static int is_local(const char *host)
{
	return !strcmp(host, "127.0.0.1") || !strcmp(host, "localhost") || !strcmp(host, "::1");
}

/* A coordinator for this computation: the one at host:port, or a new one
 * (ckpt-coord --daemon --exit-on-last) when none answers on this host. */
static int coordinator(const char *host, int port, char **coord_args)
{
	char tool[PATH_MAX], portbuf[16];
	int fd = co_connect(host, port), st;
	pid_t pid;

	if (fd >= 0 || errno != ECONNREFUSED || !is_local(host))
		return fd;
	co_tool("ckpt-coord", tool, sizeof(tool));
	snprintf(portbuf, sizeof(portbuf), "%d", port);
	coord_args[0] = tool;
	coord_args[4] = portbuf;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		dup2(nul, 0);
		dup2(nul, 1);
		/* Nothing of our caller's (its pipes, a log on fd 3) for the
		 * coordinator's whole life. */
		close_range(3, ~0U, 0);
		execvp(tool, coord_args);
		fprintf(stderr, "ckpt-inject: cannot run %s: %s\n", tool, strerror(errno));
		_exit(127);
	}
	/* It forks into the background once it listens (or fails because
	 * another ckpt-inject's coordinator was first: that one will do). */
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return co_connect(host, port);
}

/* An option for a coordinator we may start: given again, the last one
 * counts (the table holds each once). */
static void coord_arg(char **args, int *na, char *opt, char *val)
{
	int i = 5;

	while (i < *na && strcmp(args[i], opt))
		i += 2;
	if (i < *na) {
		args[i + 1] = val;
		return;
	}
	args[(*na)++] = opt;
	args[(*na)++] = val;
}

/* A restarted member's name and id, from the name the coordinator gave
 * its image (ckpt_NAME_ID.ckpt[.zst|.gz]); else the file's name up to its
 * first dot, and any id. */
static void image_member(const char *img, char *name, size_t size, int *id)
{
	const char *base = strrchr(img, '/') ? strrchr(img, '/') + 1 : img;
	const char *end = strstr(base, ".ckpt"), *us;

	*id = 0;
	if (!strncmp(base, "ckpt_", 5) && end && (us = memrchr(base, '_', end - base)) > base + 5 &&
	    (*id = (int)co_num(strndupa(us + 1, end - us - 1), INT_MAX)) > 0) {
		snprintf(name, size, "%.*s", (int)(us - base - 5), base + 5);
		return;
	}
	*id = 0;
	snprintf(name, size, "%.*s", (int)strcspn(base, "."), base);
}

/* Run what we were asked to run, uncoordinated: only with --run-anyway
 * (a user who believes a program is checkpointed must be told it is not). */
static void uncoordinated(int run_anyway, enum mb_mode mode, const char *img, char **argv,
			  const char *why)
{
	char tool[PATH_MAX];

	if (!run_anyway || mode == MB_ATTACH)
		die(fail_rc, "%s", why);
	warnx("%s; running without checkpoints (--run-anyway)", why);
	if (mode == MB_RESTART) {
		co_tool("ckpt-remap", tool, sizeof(tool));
		execlp(tool, tool, img, (char *)NULL);
		die(fail_rc, "cannot run %s: %s", tool, strerror(errno));
	}
	execvp(argv[0], argv);
	die(fail_rc, "cannot run %s: %s", argv[0], strerror(errno));
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {CO_CLIENT_LONGOPTS,
						 {"interval", required_argument, NULL, 'i'},
						 {"dir", required_argument, NULL, 'D'},
						 {"compress", required_argument, NULL, 'c'},
						 {"no-gzip", no_argument, NULL, 'z'},
						 {"name", required_argument, NULL, 'n'},
						 {"id", required_argument, NULL, 'I'},
						 {"run-anyway", no_argument, NULL, 'a'},
						 {"restart", required_argument, NULL, 'R'},
						 {"help", no_argument, NULL, 'h'},
						 {"version", no_argument, NULL, 'V'},
						 {NULL, 0, NULL, 0}};
	char *coord_args[16] = {NULL, "--daemon", "--exit-on-last", "--port", NULL};
	char img_name[64], why[600];
	const char *img = NULL, *name = NULL;
	int na = 5, c, ready[2], id = 0, run_anyway = 0;
	enum mb_mode mode = MB_RUN;
	struct co_client cl = {0};
	struct mb_helper h = {.img_fd = -1, .dir_fd = -1};
	struct mb_joined j = {0};
	char *end;
	pid_t mid;

	prog = "ckpt-inject";
	fail_rc = ckpt_fail_rc();
	while ((c = getopt_long(argc, argv, "+p:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			/* An auto-started coordinator wants the secret too. */
			co_client_opt(&cl, c, optarg);
			coord_arg(coord_args, &na, "--secret-file", optarg);
			break;
		case 'i':
			if (co_num(optarg, 86400 * 365) < 0)
				die(fail_rc, "--interval: not a number of seconds: %s", optarg);
			coord_arg(coord_args, &na, "--interval", optarg);
			break;
		case 'D':
			coord_arg(coord_args, &na, "--dir", optarg);
			break;
		case 'c':
			/* The coordinator would refuse it, unseen: say it here. */
			if (co_compressor(optarg) < 0)
				die(fail_rc, "--compress: not a compressor (zstd, gzip or none): %s",
				    optarg);
			coord_arg(coord_args, &na, "--compress", optarg);
			break;
		case 'z':
			coord_arg(coord_args, &na, "--compress", "none");
			break;
		case 'n':
			if (!*optarg)
				die(fail_rc, "--name: an empty name");
			name = optarg;
			break;
		case 'I':
			if ((id = (int)co_num(optarg, INT_MAX)) <= 0)
				die(fail_rc, "--id: not a member id (a number from 1): %s", optarg);
			break;
		case 'a':
			run_anyway = 1;
			break;
		case 'p':
			mode = MB_ATTACH;
			errno = 0;
			h.pid = strtol(optarg, &end, 10);
			if (*end || h.pid <= 0 || errno)
				die(fail_rc, "not a pid: %s", optarg);
			break;
		case 'R':
			mode = MB_RESTART;
			img = optarg;
			break;
		case 'h':
			fputs(USAGE, stdout);
			return 0;
		case 'V':
			printf("ckpt-inject %s\n", CKPT_VERSION);
			return 0;
		default:
			if (!co_client_opt(&cl, c, optarg))
				usage();
		}
	}
	if ((mode == MB_RUN) != (optind < argc))
		usage();
	if (co_client_setup(&cl))
		die(fail_rc, "%s", err_get());
	if (mode == MB_RESTART && mb_check_files(img))
		die(fail_rc, "%s", err_get());
	if (mode == MB_RESTART && access(img, R_OK))
		die(fail_rc, "cannot read the image %s: %s", img, strerror(errno));
	if (mode == MB_ATTACH && kill(h.pid, 0) && errno == ESRCH)
		die(fail_rc, "pid %d: no such process", (int)h.pid);
	if (mode == MB_RUN && !name) {
		name = argv[optind];
		if (strrchr(name, '/'))
			name = strrchr(name, '/') + 1;
	} else if (mode == MB_RESTART) {
		int img_id;
		image_member(img, img_name, sizeof(img_name), &img_id);
		name = name ? name : img_name;
		id = id ? id : img_id;
	}
	if (mode != MB_ATTACH)
		h.pid = getpid();
	h.sock = coordinator(cl.host, cl.port, coord_args);
	if (h.sock < 0 || co_auth(h.sock, &h.r, cl.secret)) {
		snprintf(why, sizeof(why), "%s", err_get());
		uncoordinated(run_anyway, mode, img, argv + optind, why);
	}
	free(cl.secret);
	cl.secret = NULL;

	/* The helper: a grandchild, so that it is nobody's child here.  It
	 * joins, and tells us its pid and whether it is a member. */
	if (pipe2(ready, O_CLOEXEC))
		die(fail_rc, "cannot make a pipe: %s", strerror(errno));
	fflush(NULL);
	mid = fork();
	if (mid < 0)
		die(fail_rc, "cannot fork the helper: %s", strerror(errno));
	if (mid == 0) {
		pid_t helper = fork();
		if (helper != 0)
			_exit(helper < 0);
		close(ready[0]);
		_exit(mb_serve(&h, mode, name, id, ready[1]));
	}
	close(ready[1]);
	close(h.sock);
	while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
		;
	if (read_full(ready[0], &j, sizeof(j)) != sizeof(j) || j.helper <= 0)
		die(fail_rc, "the helper did not start");
	close(ready[0]);
	if (!j.id) {
		j.why[sizeof(j.why) - 1] = 0;
		snprintf(why, sizeof(why), "coordinator %s:%d %s", cl.host, cl.port, j.why);
		uncoordinated(run_anyway, mode, img, argv + optind, why);
	}
	if (mode == MB_ATTACH)
		return 0;
	/* With Yama's ptrace_scope 1 only an ancestor may trace us: name
	 * the helper (it lasts across exec).  No Yama: EINVAL, nothing to do. */
	prctl(PR_SET_PTRACER, j.helper, 0, 0, 0);
	if (mode == MB_RESTART) {
		char tool[PATH_MAX];
		co_tool("ckpt-remap", tool, sizeof(tool));
		execlp(tool, tool, img, (char *)NULL);
		die(fail_rc, "cannot run %s: %s", tool, strerror(errno));
	}
	execvp(argv[optind], argv + optind);
	die(fail_rc, "cannot run %s: %s", argv[optind], strerror(errno));
}
