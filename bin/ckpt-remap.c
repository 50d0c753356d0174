/* ckpt-remap: become the process in an image. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "inspect/inspect.h"
#include "restore/restore.h"

#define USAGE                                                                                      \
	"usage: ckpt-remap [--pid-ns | --new-pids] [--net-ns] [--progress | --quiet] [--ignore-cpu] "  \
	"[--allow-other-user] [--allow-changed-files] [--lazy] [--inherit-fd fd=n]... "            \
	"[--path-map old=new]... [--setenv name=value]... [--unsetenv name]... [--stop] "          \
	"[img | -]\n"

#define OPT_NET_NS 1001 /* --net-ns, which has no short letter */

/* What the command line asks. */
struct opts {
	int progress; /* -1: if stderr is a terminal */
	int flags;    /* RST_* */
	int other_user;
	enum rst_pids pids;
	int (*inh)[2]; /* --inherit-fd FD=N, each */
	size_t ninh;
	struct {
		char token[33];
		int ours;
	} *inhp; /* --inherit-fd peer:TOKEN=N, each */
	size_t ninhp;
	char **maps; /* --path-map OLD=NEW, each */
	size_t nmaps;
};

/* --path-map OLD=NEW: two absolute paths. */
static void add_path_map(struct opts *o, char *arg, int fail)
{
	char *eq = strchr(arg, '=');

	if (!eq || arg[0] != '/' || eq[1] != '/')
		die(fail, "--path-map takes OLD=NEW, two absolute paths: %s", arg);
	if (!(o->maps = realloc(o->maps, (o->nmaps + 1) * sizeof(*o->maps))))
		die(fail, "out of memory");
	o->maps[o->nmaps++] = arg;
}

/* --inherit-fd FD=N, or peer:TOKEN=N */
static void add_inherit(struct opts *o, const char *arg, int fail)
{
	int a, b, n = -1;
	char tok[33];

	if (sscanf(arg, "peer:%32[0-9a-f]=%d%n", tok, &b, &n) == 2 && !arg[n] && strlen(tok) == 32 &&
	    b >= 0) {
		if (!(o->inhp = realloc(o->inhp, (o->ninhp + 1) * sizeof(*o->inhp))))
			die(fail, "out of memory");
		memcpy(o->inhp[o->ninhp].token, tok, sizeof(tok));
		o->inhp[o->ninhp++].ours = b;
		return;
	}
	n = -1;
	if (sscanf(arg, "%d=%d%n", &a, &b, &n) != 2 || arg[n] || a < 0 || b < 0)
		die(fail, "--inherit-fd takes FD=N, two fd numbers: %s", arg);
	if (!(o->inh = realloc(o->inh, (o->ninh + 1) * sizeof(*o->inh))))
		die(fail, "out of memory");
	o->inh[o->ninh][0] = a;
	o->inh[o->ninh++][1] = b;
}

static void parse_options(int argc, char **argv, struct opts *o, int fail)
{
	static const struct option longopts[] = {{"pid-ns", no_argument, NULL, 'N'},
						 {"new-pids", no_argument, NULL, 'n'},
						 {"net-ns", no_argument, NULL, OPT_NET_NS},
						 {"progress", no_argument, NULL, 'P'},
						 {"quiet", no_argument, NULL, 'q'},
						 {"allow-changed-files", no_argument, NULL, 'c'},
						 {"lazy", no_argument, NULL, 'L'},
						 {"force", no_argument, NULL, 'f'},
						 {"ignore-cpu", no_argument, NULL, 'f'},
						 {"path-map", required_argument, NULL, 'M'},
						 {"stop", no_argument, NULL, 'S'},
						 {"setenv", required_argument, NULL, 'E'},
						 {"unsetenv", required_argument, NULL, 'u'},
						 {"inherit-fd", required_argument, NULL, 'I'},
						 {"allow-other-user", no_argument, NULL, 'U'},
						 {"help", no_argument, NULL, 'h'},
						 {"version", no_argument, NULL, 'V'},
						 {NULL, 0, NULL, 0}};
	int c;

	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'N':
			o->pids = RST_PIDS_NS;
			break;
		case 'n':
			o->pids = RST_PIDS_NEW;
			break;
		case OPT_NET_NS:
			o->flags |= RST_NET_NS;
			break;
		case 'P':
			o->progress = 1;
			break;
		case 'q':
			o->progress = 0;
			break;
		case 'c':
			o->flags |= RST_ALLOW_CHANGED;
			break;
		case 'L':
			o->flags |= RST_LAZY;
			break;
		case 'f':
			o->flags |= RST_FORCE_CPU;
			break;
		case 'U':
			o->other_user = 1;
			break;
		case 'I':
			add_inherit(o, optarg, fail);
			break;
		case 'M':
			add_path_map(o, optarg, fail);
			break;
		case 'S':
			o->flags |= RST_STOP;
			break;
		case 'E':
		case 'u':
			if (rst_env_edit(optarg, c == 'E'))
				die(fail, "%s", err_get());
			break;
		case 'h':
			fputs(USAGE, stdout);
			exit(0);
		case 'V':
			printf("ckpt-remap %s\n", CKPT_VERSION);
			exit(0);
		default:
			fputs(USAGE, stderr);
			exit(fail);
		}
	}
	if (argc - optind > 1) {
		fputs(USAGE, stderr);
		exit(fail);
	}
}

/* CKPT_REMAP_ARGS, one argument a line (the restart script's --setenv,
 * --unsetenv and --path-map, through ckpt-inject --restart), go before
 * the command line's options. */
static char **env_args(int *argc, char **argv, int fail)
{
	char *s = getenv("CKPT_REMAP_ARGS"), **v;
	size_t n = 0;

	if (!s || !*s)
		return argv;
	for (const char *p = s; *p; p++)
		n += *p == '\n';
	if (!(s = strdup(s)) || !(v = calloc(n + 2 + (size_t)*argc, sizeof(*v))))
		die(fail, "out of memory");
	n = 0;
	v[n++] = argv[0];
	for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"))
		v[n++] = line;
	for (int i = 1; i < *argc; i++)
		v[n++] = argv[i];
	*argc = (int)n;
	return v;
}

int main(int argc, char **argv)
{
	struct opts o = {.progress = -1, .pids = RST_PIDS_AUTO};
	int fail = ckpt_fail_rc();
	struct img_input in;

	prog = "ckpt-remap";
	argv = env_args(&argc, argv, fail);
	parse_options(argc, argv, &o, fail);
	if (o.progress < 0)
		o.progress = isatty(2);
	/* Restoring as root runs the image's code as root: the image must be
	 * root's own, unless told (--allow-other-user; ckpt(7), SECURITY).
	 * Checked before anything the image names is opened. */
	if (img_open_as(argv[optind], &in, geteuid() == 0 && !o.other_user))
		die(fail, "%s", err_get());
	if ((o.flags & RST_LAZY) && !in.nrest && rst_check_lazy(&in))
		die(fail, "%s", err_get());
	/* Nothing outside the new process changes before every record of the
	 * image was verified: a damaged image leaves the machine as it was. */
	if (rst_changes_host(&in) && img_verify_rest(&in))
		die(fail, "%s%s%s", in.from_stdin ? "" : argv[optind], in.from_stdin ? "" : ": ",
		    err_get());
	for (size_t i = 0; i < o.ninh; i++) {
		if (o.inh[i][1] == 0 && in.from_stdin)
			die(fail, "--inherit-fd %d=0: fd 0 carries the image", o.inh[i][0]);
		if (rst_inherit_fd(&in, o.inh[i][0], o.inh[i][1]))
			die(fail, "%s", err_get());
	}
	for (size_t i = 0; i < o.ninhp; i++) {
		if (o.inhp[i].ours == 0 && in.from_stdin)
			die(fail, "--inherit-fd peer:%s=0: fd 0 carries the image", o.inhp[i].token);
		if (rst_inherit_peer(&in, o.inhp[i].token, o.inhp[i].ours))
			die(fail, "%s", err_get());
	}
	free(o.inh);
	free(o.inhp);
	for (size_t i = 0; i < o.nmaps; i++)
		if (rst_path_map(&in, o.maps[i]))
			die(fail, "%s", err_get());
	free(o.maps);
	if (o.progress)
		o.flags |= RST_PROGRESS;
	if (rst_run(&in, o.flags, o.pids))
		die(fail, "%s", err_get());
	return fail; /* not reached: rst_run returns only on failure */
}
