/* ckpt-remap: become the process in an image. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "err.h"
#include "restore.h"

#define USAGE                                                                                      \
	"usage: ckpt-remap [--pid-ns | --new-pids] [--progress | --quiet] "                        \
	"[--allow-changed-files] [--lazy] [img | -]\n"

int main(int argc, char **argv)
{
	static const struct option longopts[] = {{"pid-ns", no_argument, NULL, 'N'},
						 {"new-pids", no_argument, NULL, 'n'},
						 {"progress", no_argument, NULL, 'P'},
						 {"quiet", no_argument, NULL, 'q'},
						 {"allow-changed-files", no_argument, NULL, 'c'},
						 {"lazy", no_argument, NULL, 'L'},
						 {"help", no_argument, NULL, 'h'},
						 {"version", no_argument, NULL, 'V'},
						 {NULL, 0, NULL, 0}};
	int c, progress = -1, flags = 0, fail = ckpt_fail_rc();
	enum rst_pids pids = RST_PIDS_AUTO;
	struct img_input in;

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
	if (img_open(argv[optind], &in))
		die(fail, "%s", err_get());
	if (rst_run(&in, flags | (progress ? RST_PROGRESS : 0), pids))
		die(fail, "%s", err_get());
	return fail; /* not reached: rst_run returns only on failure */
}
