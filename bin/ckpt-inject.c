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
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coord/coord.h"
#include "base/base.h"

#define USAGE                                                                                      \
	"usage: ckpt-inject [--coord-host host] [--coord-port port] [--secret-file file] "         \
	"[--interval n] [--dir dir] [--compress zstd|gzip|none] [--no-gzip] [--name name] "        \
	"[--id n] [--run-anyway] [--hook program]... [--hooks dir] [--notify sig] "                \
	"[--no-ssh-shim] (-- cmd [arg...] | -p pid | --restart img)\n"

static int fail_rc;

/* A signal by number or name (USR1, SIGUSR1); -1 if none. */
static int signal_number(const char *s)
{
	char *end;
	long n = strtol(s, &end, 10);

	if (*s && !*end)
		return n > 0 && n < NSIG ? (int)n : -1;
	if (!strncmp(s, "SIG", 3))
		s += 3;
	for (int i = 1; i < NSIG; i++)
		if (sigabbrev_np(i) && !strcmp(sigabbrev_np(i), s))
			return i;
	return -1;
}

static void usage(void)
{
	fputs(USAGE, stderr);
	exit(fail_rc);
}

/* What the options ask for. */
struct opts {
	enum mb_mode mode;
	const char *img, *name; /* --restart img; --name */
	int id, run_anyway, no_shim;
	pid_t pid;  /* -p pid */
	char *hook[MB_HOOKS_MAX];
	int nhook, notify;
	char **cmd; /* -- cmd [arg...] */
	struct co_client cl;
	/* A coordinator's options, should we start one: each once, NULL-ended. */
	char *coord_opts[11];
	int nco;
};

/* An option for a coordinator we may start: given again, the last one
 * counts (the table holds each once). */
static void coord_arg(struct opts *o, char *opt, char *val)
{
	int i = 0;

	while (i < o->nco && strcmp(o->coord_opts[i], opt))
		i += 2;
	if (i < o->nco) {
		o->coord_opts[i + 1] = val;
		return;
	}
	o->coord_opts[o->nco++] = opt;
	o->coord_opts[o->nco++] = val;
}

/* --hooks dir: every executable file in dir (not a dot file), in the
 * order of their names, as --hook each. */
static void add_hooks(struct opts *o, const char *dir)
{
	struct dirent **e;
	int n = scandir(dir, &e, NULL, alphasort);

	if (n < 0)
		die(fail_rc, "--hooks %s: %s", dir, strerror(errno));
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];
		struct stat sb;
		snprintf(path, sizeof(path), "%s/%s", dir, e[i]->d_name);
		if (e[i]->d_name[0] != '.' && !stat(path, &sb) && S_ISREG(sb.st_mode) &&
		    !access(path, X_OK)) {
			if (o->nhook == MB_HOOKS_MAX)
				die(fail_rc, "--hooks %s: at most %d hooks", dir, MB_HOOKS_MAX);
			o->hook[o->nhook++] = strdup(path);
		}
		free(e[i]);
	}
	free(e);
}

/* One option (getopt_long's c, with its optarg) into o; those that are a
 * coordinator's checked here, as it would refuse them unseen. */
static void take_opt(struct opts *o, int c)
{
	char *end;

	switch (c) {
	case 's':
		/* An auto-started coordinator wants the secret too. */
		co_client_opt(&o->cl, c, optarg);
		coord_arg(o, "--secret-file", optarg);
		break;
	case 'i':
		if (co_num(optarg, 86400 * 365) < 0)
			die(fail_rc, "--interval: not a number of seconds: %s", optarg);
		coord_arg(o, "--interval", optarg);
		break;
	case 'D':
		coord_arg(o, "--dir", optarg);
		break;
	case 'c':
		/* The coordinator would refuse it, unseen: say it here. */
		if (co_compressor(optarg) < 0)
			die(fail_rc, "--compress: not a compressor (zstd, gzip or none): %s",
			    optarg);
		coord_arg(o, "--compress", optarg);
		break;
	case 'z':
		coord_arg(o, "--compress", "none");
		break;
	case 'n':
		if (!*optarg)
			die(fail_rc, "--name: an empty name");
		o->name = optarg;
		break;
	case 'I':
		if ((o->id = (int)co_num(optarg, INT_MAX)) <= 0)
			die(fail_rc, "--id: not a member id (a number from 1): %s", optarg);
		break;
	case 'a':
		o->run_anyway = 1;
		break;
	case 'S':
		o->no_shim = 1;
		break;
	case 'k':
		if (o->nhook == MB_HOOKS_MAX)
			die(fail_rc, "--hook: at most %d", MB_HOOKS_MAX);
		o->hook[o->nhook++] = optarg;
		break;
	case 'K':
		add_hooks(o, optarg);
		break;
	case 'N':
		o->notify = signal_number(optarg);
		if (o->notify <= 0)
			die(fail_rc, "--notify: not a signal: %s", optarg);
		break;
	case 'p':
		o->mode = MB_ATTACH;
		errno = 0;
		o->pid = strtol(optarg, &end, 10);
		if (*end || o->pid <= 0 || errno)
			die(fail_rc, "not a pid: %s", optarg);
		break;
	case 'R':
		o->mode = MB_RESTART;
		o->img = optarg;
		break;
	case 'h':
		fputs(USAGE, stdout);
		exit(0);
	case 'V':
		printf("ckpt-inject %s\n", CKPT_VERSION);
		exit(0);
	default:
		if (!co_client_opt(&o->cl, c, optarg))
			usage();
	}
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {CO_CLIENT_LONGOPTS,
						 {"interval", required_argument, NULL, 'i'},
						 {"dir", required_argument, NULL, 'D'},
						 {"compress", required_argument, NULL, 'c'},
						 {"no-gzip", no_argument, NULL, 'z'},
						 {"name", required_argument, NULL, 'n'},
						 {"id", required_argument, NULL, 'I'},
						 {"run-anyway", no_argument, NULL, 'a'},
						 {"no-ssh-shim", no_argument, NULL, 'S'},
						 {"restart", required_argument, NULL, 'R'},
						 {"hook", required_argument, NULL, 'k'},
						 {"hooks", required_argument, NULL, 'K'},
						 {"notify", required_argument, NULL, 'N'},
						 {"help", no_argument, NULL, 'h'},
						 {"version", no_argument, NULL, 'V'},
						 {NULL, 0, NULL, 0}};
	int c;

	while ((c = getopt_long(argc, argv, "+p:hV", longopts, NULL)) != -1)
		take_opt(o, c);
	if ((o->mode == MB_RUN) != (optind < argc))
		usage();
	o->cmd = argv + optind;
}

/* What the options name is there: the coordinator's address and secret,
 * the image (and the files it holds open), the process. */
static void check_opts(struct opts *o)
{
	if (co_client_setup(&o->cl))
		die(fail_rc, "%s", err_get());
	if (o->mode == MB_RESTART && mb_check_files(o->img))
		die(fail_rc, "%s", err_get());
	if (o->mode == MB_RESTART && access(o->img, R_OK))
		die(fail_rc, "cannot read the image %s: %s", o->img, strerror(errno));
	if (o->mode == MB_ATTACH && kill(o->pid, 0) && errno == ESRCH)
		die(fail_rc, "pid %d: no such process", (int)o->pid);
}

/* The hooks (absolute: the helper runs them from /) and --notify's
 * signal for the helper; a restarted member's, and the API's path, are
 * the ones its image keeps unless given. */
static void helper_api(const struct opts *o, struct mb_api *a)
{
	char path[PATH_MAX];

	a->lfd = -1;
	for (int i = 0; i < o->nhook; i++) {
		if (!realpath(o->hook[i], path) || access(path, X_OK))
			die(fail_rc, "--hook %s: not a program to run: %s", o->hook[i],
			    strerror(errno));
		a->hook[a->nhook++] = strdup(path);
	}
	a->notify = o->notify;
	if (o->mode == MB_RESTART && mb_read_member(a, o->img))
		a->restarts = 1;
}

/* The member's name, and id (0: any), unless given: the command's
 * base name; a restarted member's from its image's name. */
static void member_name(struct opts *o, char *buf, size_t size)
{
	int img_id;

	if (o->mode == MB_RUN && !o->name) {
		o->name = o->cmd[0];
		if (strrchr(o->name, '/'))
			o->name = strrchr(o->name, '/') + 1;
	} else if (o->mode == MB_RESTART) {
		co_image_member(o->img, buf, size, &img_id);
		o->name = o->name ? o->name : buf;
		o->id = o->id ? o->id : img_id;
	}
}

/* ckpt-ssh(1) first in the command's PATH as ssh (the directory shim
 * beside this program, or ../lib/ckpt/shim installed), and the
 * coordinator's address and secret file in its environment, for it: an
 * `ssh HOST CMD` of the program's then runs CMD as a member on HOST.  A
 * restored program has the PATH and environment of its image. */
static void ssh_shim(const struct opts *o)
{
	char self[PATH_MAX], dir[PATH_MAX + 32], ssh[PATH_MAX + 64], port[16], *slash, *path;
	const char *old = getenv("PATH");
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (o->no_shim || o->mode != MB_RUN || n <= 0)
		return;
	self[n] = 0;
	slash = strrchr(self, '/');
	if (!slash)
		return;
	*slash = 0;
	snprintf(dir, sizeof(dir), "%s/shim", self);
	if (access(fmt_path(ssh, sizeof(ssh), "%s/ssh", dir), X_OK)) {
		snprintf(dir, sizeof(dir), "%s/../lib/ckpt/shim", self);
		if (access(fmt_path(ssh, sizeof(ssh), "%s/ssh", dir), X_OK))
			return;
	}
	if (!old || !*old)
		old = "/usr/local/bin:/usr/bin:/bin";
	if (strncmp(old, dir, strlen(dir)) || (old[strlen(dir)] != ':' && old[strlen(dir)]))
		if (asprintf(&path, "%s:%s", dir, old) > 0)
			setenv("PATH", path, 1);
	snprintf(port, sizeof(port), "%d", o->cl.port);
	setenv("CKPT_COORD_HOST", o->cl.host, 1);
	setenv("CKPT_COORD_PORT", port, 1);
	if (o->cl.secret_file && strcmp(o->cl.secret_file, "-") && realpath(o->cl.secret_file, self))
		setenv("CKPT_COORD_SECRET_FILE", self, 1);
}

/* Become the program: ckpt-remap restoring the image, or the command. */
static noreturn void run_program(const struct opts *o)
{
	char tool[PATH_MAX];

	if (o->mode == MB_RESTART) {
		co_tool("ckpt-remap", tool, sizeof(tool));
		execlp(tool, tool, o->img, (char *)NULL);
		die(fail_rc, "cannot run %s: %s", tool, strerror(errno));
	}
	execvp(o->cmd[0], o->cmd);
	die(fail_rc, "cannot run %s: %s", o->cmd[0], strerror(errno));
}

/* Run what we were asked to run, uncoordinated: only with --run-anyway
 * (a user who believes a program is checkpointed must be told it is not). */
static noreturn void uncoordinated(const struct opts *o, const char *why)
{
	if (!o->run_anyway || o->mode == MB_ATTACH)
		die(fail_rc, "%s", why);
	warnx("%s; running without checkpoints (--run-anyway)", why);
	run_program(o);
}

int main(int argc, char **argv)
{
	struct opts o = {.mode = MB_RUN};
	struct mb_helper h = {.img_fd = -1, .dir_fd = -1};
	struct mb_joined j = {0};
	char img_name[64], why[600];

	prog = "ckpt-inject";
	fail_rc = ckpt_fail_rc();
	parse_opts(argc, argv, &o);
	check_opts(&o);
	member_name(&o, img_name, sizeof(img_name));
	helper_api(&o, &h.api);
	h.pid = o.mode == MB_ATTACH ? o.pid : getpid();
	h.sock = co_connect_or_start(o.cl.host, o.cl.port, o.coord_opts);
	if (h.sock < 0 || co_auth(h.sock, &h.r, o.cl.secret)) {
		snprintf(why, sizeof(why), "%s", err_get());
		uncoordinated(&o, why);
	}
	free(o.cl.secret);
	o.cl.secret = NULL;
	/* The helper joins, and tells us its pid and whether it is a member. */
	if (mb_start(&h, o.mode, o.name, o.id, &j))
		die(fail_rc, "%s", err_get());
	if (!j.id) {
		snprintf(why, sizeof(why), "coordinator %s:%d %s", o.cl.host, o.cl.port, j.why);
		uncoordinated(&o, why);
	}
	if (o.mode == MB_ATTACH)
		return 0;
	/* With Yama's ptrace_scope 1 only an ancestor may trace us: name
	 * the helper (it lasts across exec).  No Yama: EINVAL, nothing to do. */
	prctl(PR_SET_PTRACER, j.helper, 0, 0, 0);
	/* ckpt.h(3)'s socket; a restored program has its own $CKPT_API,
	 * where the helper listens again. */
	if (j.api[0])
		setenv("CKPT_API", j.api, 1);
	else
		unsetenv("CKPT_API");
	ssh_shim(&o);
	run_program(&o);
}
