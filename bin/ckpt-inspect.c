/* ckpt-inspect: print what an image holds. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "inspect.h"

#define USAGE "usage: ckpt-inspect [--json | --verify] [img | -]\n"

int main(int argc, char **argv)
{
	static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
						 {"verify", no_argument, NULL, 'v'},
						 {"help", no_argument, NULL, 'h'},
						 {"version", no_argument, NULL, 'V'},
						 {NULL, 0, NULL, 0}};
	struct img_totals t = {0};
	struct img_input in;
	int c, json = 0, verify = 0;

	prog = "ckpt-inspect";
	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'v':
			verify = 1;
			break;
		case 'h':
			fputs(USAGE, stdout);
			return 0;
		case 'V':
			printf("ckpt-inspect %s\n", CKPT_VERSION);
			return 0;
		default:
			fputs(USAGE, stderr);
			return 2;
		}
	}
	if (argc - optind > 1 || (json && verify)) {
		fputs(USAGE, stderr);
		return 2;
	}
	/* A reader that stops early (| head) is not our failure. */
	signal(SIGPIPE, SIG_DFL);
	if (img_open(argv[optind], &in) || img_scan_data(&in, &t))
		die(1, "%s", err_get());
	if (verify)
		printf("%s: %llu records, %llu pages, %llu bytes, every checksum ok\n",
		       argv[optind] ? argv[optind] : "-", (unsigned long long)t.records,
		       (unsigned long long)t.pages, (unsigned long long)t.bytes);
	else if (json)
		inspect_json(stdout, &in, &t);
	else
		inspect_text(stdout, &in, &t);
	if (fflush(stdout) || ferror(stdout))
		die(1, "cannot write output: %s", strerror(errno));
	img_input_free(&in);
	return 0;
}
