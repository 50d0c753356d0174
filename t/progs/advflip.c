/* advflip: memory whose fork advice changes all the time.
 *
 * usage: advflip
 *
 * Maps 16 pages of its own (between two PROT_NONE guard pages, so that
 * the mapping is one region that merges with no other), fills them with
 * 0xa5, and prints "ready PID ADDR" (ADDR in hex).  A second thread then
 * gives the whole mapping MADV_WIPEONFORK and MADV_KEEPONFORK in turn
 * without pause: each changes a flag, never the layout.  Whatever moment
 * a dump sees, the pages hold data; an image that lacks them took the
 * advice of one moment and the memory of another.  Runs until killed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PS 4096
#define NPAGES 16

static char *mem;

static void *flip(void *arg)
{
	(void)arg;
	for (;;)
		if (madvise(mem, NPAGES * PS, MADV_WIPEONFORK) ||
		    madvise(mem, NPAGES * PS, MADV_KEEPONFORK)) {
			perror("advflip: madvise");
			exit(1);
		}
	return NULL;
}

int main(void)
{
	char *area = mmap(NULL, (NPAGES + 2) * PS, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pthread_t t;

	if (area == MAP_FAILED || mprotect(area + PS, NPAGES * PS, PROT_READ | PROT_WRITE)) {
		perror("advflip: mmap");
		return 1;
	}
	mem = area + PS;
	memset(mem, 0xa5, NPAGES * PS);
	if (pthread_create(&t, NULL, flip, NULL)) {
		fputs("advflip: pthread_create failed\n", stderr);
		return 1;
	}
	printf("ready %d %lx\n", (int)getpid(), (unsigned long)mem);
	fflush(stdout);
	for (;;)
		pause();
}
