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
	"usage: ckpt-remap [--pid-ns | --new-pids] [--progress | --quiet] [--force] "              \
	"[--allow-other-user] [--allow-changed-files] [--lazy] [--inherit-fd fd=n]... "            \
	"[img | -]\n"

int main(int argc, char **argv)
{
	static const struct option longopts[] = {{"pid-ns", no_argument, NULL, 'N'},
						 {"new-pids", no_argument, NULL, 'n'},
						 {"progress", no_argument, NULL, 'P'},
						 {"quiet", no_argument, NULL, 'q'},
						 {"allow-changed-files", no_argument, NULL, 'c'},
						 {"lazy", no_argument, NULL, 'L'},
						 {"force", no_argument, NULL, 'f'},
						 {"inherit-fd", required_argument, NULL, 'I'},
						 {"allow-other-user", no_argument, NULL, 'U'},
						 {"help", no_argument, NULL, 'h'},
						 {"version", no_argument, NULL, 'V'},
						 {NULL, 0, NULL, 0}};
	int c, progress = -1, flags = 0, other_user = 0, fail = ckpt_fail_rc();
	enum rst_pids pids = RST_PIDS_AUTO;
	struct img_input in;
	int (*inh)[2] = NULL;
	size_t ninh = 0;

	prog = "ckpt-remap";
	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'N':
			pids = RST_PIDS_NS;
			break;
		case 'n':
			pids = RST_PIDS_NEW;
			break;
		case 'P':
			progress = 1;
			break;
		case 'q':
			progress = 0;
			break;
		case 'c':
			flags |= RST_ALLOW_CHANGED;
			break;
		case 'L':
			flags |= RST_LAZY;
			break;
		case 'f':
			flags |= RST_FORCE_CPU;
			break;
		case 'U':
			other_user = 1;
			break;
		case 'I': {
			int a, b, n = -1;
			if (sscanf(optarg, "%d=%d%n", &a, &b, &n) != 2 || optarg[n] || a < 0 ||
			    b < 0)
				die(fail, "--inherit-fd takes FD=N, two fd numbers: %s", optarg);
			if (!(inh = realloc(inh, (ninh + 1) * sizeof(*inh))))
				die(fail, "out of memory");
			inh[ninh][0] = a;
			inh[ninh++][1] = b;
			break;
		}
		case 'h':
			fputs(USAGE, stdout);
			return 0;
		case 'V':
			printf("ckpt-remap %s\n", CKPT_VERSION);
			return 0;
		default:
			fputs(USAGE, stderr);
			return fail;
		}
	}
	if (argc - optind > 1) {
		fputs(USAGE, stderr);
		return fail;
	}
	if (progress < 0)
		progress = isatty(2);
	/* Restoring as root runs the image's code as root: the image must be
	 * root's own, unless told (--allow-other-user; ckpt(7), SECURITY).
	 * Checked before anything the image names is opened. */
	if (img_open_as(argv[optind], &in, geteuid() == 0 && !other_user))
		die(fail, "%s", err_get());
	if ((flags & RST_LAZY) && !in.nrest && rst_check_lazy(&in))
		die(fail, "%s", err_get());
	/* Nothing outside the new process changes before every record of the
	 * image was verified: a damaged image leaves the machine as it was. */
	if (rst_changes_host(&in) && img_verify_rest(&in))
		die(fail, "%s%s%s", in.from_stdin ? "" : argv[optind], in.from_stdin ? "" : ": ",
		    err_get());
	for (size_t i = 0; i < ninh; i++) {
		if (inh[i][1] == 0 && in.from_stdin)
			die(fail, "--inherit-fd %d=0: fd 0 carries the image", inh[i][0]);
		if (rst_inherit_fd(&in, inh[i][0], inh[i][1]))
			die(fail, "%s", err_get());
	}
	free(inh);
	if (progress)
		flags |= RST_PROGRESS;
	if (rst_run(&in, flags, pids))
		die(fail, "%s", err_get());
	return fail; /* not reached: rst_run returns only on failure */
}
