/* rewrite: a program that writes over all its memory the moment a dump
 * lets it run on, for dumps whose page data leaves after the program runs
 * again (ckpt-dump --splice to a pipe lends the pages themselves).
 *
 * usage: rewrite KIB DIR
 *
 * Fills KIB KiB of anonymous memory with a pattern (no page of it all
 * zero), maps 64 pages of which the first 32 are only read (they map the
 * zero page) and the last 32 written and then zeroed, and one page of the
 * pattern made PROT_NONE (a page the program itself may not read).  Prints
 * "ready PID ADDR" (ADDR: where the KIB KiB start, in hex) and polls every
 * 10 ms until DIR/go exists.  Then:
 *  - the process the test started (not restored) writes a second pattern
 *    over all of the KIB KiB at once, prints "rewritten", prints
 *    "restored: no" and exits 0;
 *  - a restored process checks that the memory holds the first pattern
 *    (the image's pages are those of the freeze, not written after it),
 *    the 64 pages zero and the PROT_NONE page its pattern, prints one line
 *    per failed check on stderr, "restored: yes" on stdout, and exits 0
 *    only if all was intact. */
#define PROG "rewrite"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "progs.h"

#define PAGE 4096
#define ZPAGES 64

int main(int argc, char **argv)
{
	unsigned long long t0 = start_time();
	uint64_t *data, *none;
	unsigned char *zero;
	size_t words;
	const char *dir;
	long kib;

	if (argc != 3 || (kib = atol(argv[1])) <= 0) {
		fputs("usage: rewrite KIB DIR\n", stderr);
		return 2;
	}
	dir = argv[2];
	words = (size_t)kib * 1024 / 8;
	data = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	zero = mmap(NULL, ZPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	none = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (data == MAP_FAILED || zero == MAP_FAILED || none == MAP_FAILED)
		die("mmap");
	for (size_t i = 0; i < words; i++)
		data[i] = mix(1, i);
	for (int p = 0; p < ZPAGES; p++) {
		volatile unsigned char *z = zero + (size_t)p * PAGE;
		if (p < ZPAGES / 2) {
			(void)z[0]; /* read: the zero page */
		} else {
			memset((void *)z, 0xa5, PAGE);
			memset((void *)z, 0, PAGE);
		}
	}
	for (int i = 0; i < PAGE / 8; i++)
		none[i] = mix(3, i);
	if (mprotect(none, PAGE, PROT_NONE))
		die("mprotect");
	printf("ready %d %lx\n", getpid(), (unsigned long)data);
	fflush(stdout);
	wait_file(in_dir("go"));
	if (start_time() == t0) {
		for (size_t i = 0; i < words; i++)
			data[i] = mix(2, i);
		printf("rewritten\nrestored: no\n");
		return 0;
	}
	for (size_t i = 0; i < words; i++)
		if (data[i] != mix(1, i)) {
			fail("page %zu holds %s, not the memory of the dump", i * 8 / PAGE,
			     data[i] == mix(2, i) ? "what was written after the dump" : "garbage");
			break;
		}
	for (size_t i = 0; i < (size_t)ZPAGES * PAGE; i++)
		if (zero[i]) {
			fail("zero page %zu: byte %zu is %#x", i / PAGE, i % PAGE, zero[i]);
			break;
		}
	if (mprotect(none, PAGE, PROT_READ))
		die("mprotect");
	for (int i = 0; i < PAGE / 8; i++)
		if (none[i] != mix(3, i)) {
			fail("the PROT_NONE page differs at word %d", i);
			break;
		}
	printf("restored: yes\n");
	return failures ? 1 : 0;
}
