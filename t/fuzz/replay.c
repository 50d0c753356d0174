/* Replays fuzz inputs (files or directories of them) through a fuzz
 * target without libFuzzer, so `make check` runs the corpus on every
 * build: any crash or sanitizer report fails it. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	size_t len;
	char *buf = read_file(path, &len);

	if (!buf) {
		fprintf(stderr, "replay: %s\n", err_get());
		return 1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
	free(buf);
	return 0;
}

/* How many descriptors are open: a target that leaks one per input makes
 * it grow (and a fuzzer that runs out of them tests nothing more). */
static int open_fds(void)
{
	int n = 0;

	for (int i = 0; i < 4096; i++)
		if (fcntl(i, F_GETFD) >= 0)
			n++;
	return n;
}

int main(int argc, char **argv)
{
	int n = 0, rc = 0, fds;

	prog = "replay";
	/* An empty input first: what a target opens once and keeps (its
	 * output sink) is not a leak. */
	LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
	fds = open_fds();
	for (int i = 1; i < argc; i++) {
		struct stat sb;
		if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
			DIR *d = opendir(argv[i]);
			struct dirent *e;
			char path[4096];
			while (d && (e = readdir(d))) {
				if (e->d_name[0] == '.')
					continue;
				snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
				rc |= run_file(path);
				n++;
			}
			if (d)
				closedir(d);
		} else {
			rc |= run_file(argv[i]);
			n++;
		}
	}
	printf("replay: %d inputs\n", n);
	if (open_fds() != fds) {
		fprintf(stderr, "replay: the target leaks file descriptors (%d open, %d before)\n",
			open_fds(), fds);
		rc = 1;
	}
	return rc;
}
