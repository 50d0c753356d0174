/* lazyio: a program whose first system calls after a restore read and
 * write memory that ckpt-remap --lazy from a stream has not filled yet.
 *
 * usage: lazyio MIB DIR
 * Fills MIB MiB of anonymous memory (every 7th page left a hole, every 5th
 * written with zeros, the rest a pattern), prints "ready PID" and waits for
 * DIR/go.  Then, at once: whether its last page is resident
 * ("lazyio: last page in: yes|no", mincore: a restore from a stream has
 * not got there yet); a child forked, which checks every page of its copy
 * (a child of a program whose pages are not all in); the memory moved
 * elsewhere with mremap (as realloc moves a large block); a write() of its
 * last 16 pages to DIR/w and a read() of the file back into the 16 pages
 * before them (a fault in a system call: with a user-mode-only userfaultfd
 * it fails with EFAULT); the child's status; then every page checked:
 * "lazyio: ok 1".  It waits for DIR/go2 (a dump and restore may
 * come between), checks every page again, prints "lazyio: ok 2" and exits
 * 0; a difference is one line on stderr and exit 1. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "progs.h"

#define PAGE 4096
#define NIO 16

static unsigned char *mem;
static size_t npages;

/* What page i holds: 0 for holes and zero pages. */
static uint64_t word(size_t i, size_t k)
{
	return i % 7 == 0 || i % 5 == 0 ? 0 : mix(i, k);
}

static void fill(void)
{
	for (size_t i = 0; i < npages; i++) {
		uint64_t *w = (uint64_t *)(mem + i * PAGE);
		if (i % 7 == 0)
			continue;
		for (size_t k = 0; k < PAGE / 8; k++)
			w[k] = word(i, k);
	}
}

/* Every page as fill left it; after the io, the NIO before the last NIO
 * hold the last NIO's (read back from the file). */
static void check(int round, int io_done)
{
	for (size_t i = 0; i < npages; i++) {
		const uint64_t *w = (const uint64_t *)(mem + i * PAGE);
		size_t src = io_done && i >= npages - 2 * NIO && i < npages - NIO ? i + NIO : i;
		for (size_t k = 0; k < PAGE / 8; k++)
			if (w[k] != word(src, k)) {
				fprintf(stderr, "lazyio: %s: page %zu word %zu differs\n",
					round ? "parent" : "child", i, k);
				exit(1);
			}
	}
	if (round)
		put_line(1, "lazyio: ok %d\n", round);
}

/* The memory moved to a new place, as a realloc of a large block does. */
static void move_mem(void)
{
	size_t len = npages * PAGE;
	void *to = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (to == MAP_FAILED ||
	    (to = mremap(mem, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to)) == MAP_FAILED) {
		fprintf(stderr, "lazyio: mremap: %s\n", strerror(errno));
		exit(1);
	}
	mem = to;
}

static void io(const char *dir)
{
	unsigned char *last, *before, vec = 0;
	int fd = open(path_in(dir, "w"), O_RDWR | O_CREAT | O_TRUNC, 0600), st = -1;
	pid_t child;

	if (mincore(mem + (npages - 1) * PAGE, PAGE, &vec))
		vec = 1;
	put_line(1, "lazyio: last page in: %s\n", vec & 1 ? "yes" : "no");
	child = fork();
	if (child == 0) {
		check(0, 0);
		_exit(0);
	}
	move_mem();
	last = mem + (npages - NIO) * PAGE;
	before = last - NIO * PAGE;
	if (child < 0 || waitpid(child, &st, 0) != child || st != 0) {
		fprintf(stderr, "lazyio: the child forked after the restore failed (%#x)\n", st);
		exit(1);
	}
	if (fd < 0 || write(fd, last, NIO * PAGE) != NIO * PAGE ||
	    pread(fd, before, NIO * PAGE, 0) != NIO * PAGE) {
		fprintf(stderr, "lazyio: write/read of memory not filled yet: %s\n",
			strerror(errno));
		exit(1);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	if (argc != 3 || (npages = strtoull(argv[1], NULL, 10) * 256) < 4 * NIO) {
		fprintf(stderr, "usage: lazyio MIB DIR\n");
		return 2;
	}
	mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 2;
	fill();
	put_line(1, "ready %d\n", (int)getpid());
	wait_file(path_in(argv[2], "go"));
	io(argv[2]);
	check(1, 1);
	wait_file(path_in(argv[2], "go2"));
	check(2, 1);
	return 0;
}
