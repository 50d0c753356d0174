/* ckpt-inspect: print what an image holds. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "incr/incr.h"
#include "inspect/inspect.h"

#define USAGE "usage: ckpt-inspect [--json | --verify] [img | - | generation-dir]\n"

static char chain_err[1024];

/* An incremental image's parents: each found and checked (text or JSON
 * for the printers), and with --verify the whole chain read as a restore
 * reads it, every checksum and page hash checked.  -1 (chain_err says
 * why) if a parent is missing, replaced or damaged. */
static int follow_chain(const char *path, struct img_input *in, int json, int verify)
{
	struct img_totals t = {0};
	struct img_input all;
	size_t len = 0;
	FILE *f = open_memstream(&in->im.parent->chain, &len);
	int rc;

	if (!f)
		die(1, "out of memory");
	rc = incr_print_chain(f, path, in, json);
	if (fclose(f))
		die(1, "out of memory");
	if (rc) {
		snprintf(chain_err, sizeof(chain_err), "%s", err_get());
		return -1;
	}
	/* Standard input cannot be read twice. */
	if (!verify || !path || !strcmp(path, "-"))
		return 0;
	if (img_open(path, &all) || img_scan_data(&all, &t)) {
		snprintf(chain_err, sizeof(chain_err), "%s", err_get());
		return -1;
	}
	if (all.r.fd > 0)
		close(all.r.fd);
	img_input_free(&all);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
						 {"verify", no_argument, NULL, 'v'},
						 {"help", no_argument, NULL, 'h'},
						 {"version", no_argument, NULL, 'V'},
						 {NULL, 0, NULL, 0}};
	struct img_totals t = {0};
	struct img_input in;
	int c, json = 0, verify = 0, chain_rc = 0;

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
	/* A generation of a coordinated computation: its members and the
	 * connections between them. */
	struct stat sb;
	if (argv[optind] && !stat(argv[optind], &sb) && S_ISDIR(sb.st_mode)) {
		if (verify) {
			fputs(USAGE, stderr);
			return 2;
		}
		if (inspect_generation(stdout, argv[optind], json))
			die(1, "%s", err_get());
		if (fflush(stdout) || ferror(stdout))
			die(1, "cannot write output: %s", strerror(errno));
		return 0;
	}
	/* The image itself, then (incremental) its chain. */
	if (img_open_one(argv[optind], &in))
		die(1, "%s", err_get());
	/* img_open_one names the image in its messages; the data's are ours
	 * to name it in. */
	if (img_scan_data(&in, &t))
		die(1, "%s: %s",
		    argv[optind] && strcmp(argv[optind], "-") ? argv[optind] : "standard input",
		    err_get());
	if (in.im.parent)
		chain_rc = follow_chain(argv[optind], &in, json, verify);
	if (verify) {
		if (!chain_rc)
			printf("%s: %llu records, %llu pages, %llu bytes, every checksum ok%s\n",
			       argv[optind] ? argv[optind] : "-", (unsigned long long)t.records,
			       (unsigned long long)t.pages, (unsigned long long)t.bytes,
			       in.im.parent ? ", and so is its chain" : "");
	} else if (json) {
		inspect_json(stdout, &in, &t);
	} else {
		inspect_text(stdout, &in, &t);
	}
	if (chain_rc) {
		fflush(stdout);
		die(1, "%s", chain_err);
	}
	if (fflush(stdout) || ferror(stdout))
		die(1, "cannot write output: %s", strerror(errno));
	img_input_free(&in);
	return 0;
}
