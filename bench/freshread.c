/* freshread: how fast this machine fills fresh memory from a file.
 *
 * usage: freshread [--populate | --huge] [-c CHUNK_MIB] [-j THREADS] FILE
 *        freshread --touch MIB
 *
 * Maps a fresh anonymous buffer the size of FILE and reads FILE into it
 * (pread, CHUNK_MIB at a time, default 64), as an eager restore must: the
 * pages are first touched by the copy.  With -j, THREADS threads each
 * fill their own contiguous part.  --populate maps it with MAP_POPULATE
 * (the faults are taken before the read and counted in the time),
 * --huge asks for transparent huge pages (MADV_HUGEPAGE).  --touch MIB
 * maps MIB MiB and only writes one byte per page: the cost of first touch
 * (and, run once before measuring, a warm-up: on a VM whose host backs
 * guest memory on first touch, memory the guest has touched once and freed
 * is fast to hand out again).
 * Prints "SECONDS BYTES" on stdout. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "freshread: %s: %s\n", what, strerror(errno));
	exit(1);
}

struct part {
	int fd;
	unsigned char *buf;
	size_t off, len, chunk;
};

static void *fill(void *arg)
{
	struct part *p = arg;
	size_t done = 0;

	while (done < p->len) {
		size_t n = p->len - done < p->chunk ? p->len - done : p->chunk;
		ssize_t r = pread(p->fd, p->buf + p->off + done, n, p->off + done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("read");
		done += r;
	}
	return NULL;
}

static void usage(void)
{
	fputs("usage: freshread [--populate | --huge] [-c CHUNK_MIB] [-j THREADS] FILE\n"
	      "       freshread --touch MIB\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	int populate = 0, huge = 0, touch = 0, fd, argi = 1, nthreads = 1;
	size_t chunk = 64u << 20, len;
	struct part parts[16];
	pthread_t thr[16];
	struct timespec a, b;
	unsigned char *buf;
	struct stat st;

	for (; argi < argc - 1; argi++) {
		if (!strcmp(argv[argi], "--populate"))
			populate = 1;
		else if (!strcmp(argv[argi], "--huge"))
			huge = 1;
		else if (!strcmp(argv[argi], "--touch"))
			touch = 1;
		else if (!strcmp(argv[argi], "-c") && argi + 2 < argc)
			chunk = (size_t)atol(argv[++argi]) << 20;
		else if (!strcmp(argv[argi], "-j") && argi + 2 < argc)
			nthreads = atoi(argv[++argi]);
		else
			usage();
	}
	if (argi != argc - 1 || chunk == 0 || populate + huge + touch > 1 || nthreads < 1 ||
	    nthreads > 16)
		usage();
	if (touch) {
		fd = -1;
		len = (size_t)atol(argv[argi]) << 20;
	} else {
		fd = open(argv[argi], O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st))
			die(argv[argi]);
		len = st.st_size;
	}
	if (len == 0)
		usage();

	clock_gettime(CLOCK_MONOTONIC, &a);
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
	if (buf == MAP_FAILED)
		die("mmap");
	if (huge && madvise(buf, len, MADV_HUGEPAGE))
		die("madvise MADV_HUGEPAGE");
	if (touch) {
		for (size_t off = 0; off < len; off += 4096)
			buf[off] = 1;
	} else {
		/* Parts of whole pages; the last takes the rest. */
		size_t each = len / nthreads / 4096 * 4096;
		for (int i = 0; i < nthreads; i++) {
			parts[i] = (struct part){fd, buf, i * each, each, chunk};
			if (i == nthreads - 1)
				parts[i].len = len - i * each;
			if (i && (errno = pthread_create(&thr[i], NULL, fill, &parts[i])))
				die("pthread_create");
		}
		fill(&parts[0]);
		for (int i = 1; i < nthreads; i++)
			pthread_join(thr[i], NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.6f %zu\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9, len);
	return 0;
}
