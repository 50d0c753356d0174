/* allkinds: one process holding every kind of fd and memory ckpt keeps at
 * once: the main functions of fdmore ("all") and memkinds (its default
 * set) run side by side in two threads of it, each setting up its kinds,
 * waiting for DIR/go and checking them (see those programs).
 *
 * usage: allkinds DIR (an absolute path)
 * Prints "ready PID" twice, then "fdmore all: ok" and "memkinds: ok"; exits
 * 0 only if both found everything intact.  Built from fdmore.c and
 * memkinds.c with their mains renamed (see the Makefile). */
#include <pthread.h>
#include <stdio.h>

int fdmore_main(int argc, char **argv);
int memkinds_main(int argc, char **argv);

static char *dir;

static void *fd_kinds(void *arg)
{
	char *argv[] = {"fdmore", "all", dir, NULL};

	(void)arg;
	return (void *)(long)fdmore_main(3, argv);
}

static void *mem_kinds(void *arg)
{
	char *argv[] = {"memkinds", dir, NULL};

	(void)arg;
	return (void *)(long)memkinds_main(2, argv);
}

int main(int argc, char **argv)
{
	pthread_t a, b;
	void *ra, *rb;

	if (argc != 2 || argv[1][0] != '/') {
		fprintf(stderr, "usage: allkinds DIR (an absolute path)\n");
		return 2;
	}
	dir = argv[1];
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pthread_create(&a, NULL, fd_kinds, NULL) || pthread_create(&b, NULL, mem_kinds, NULL)) {
		perror("allkinds: pthread_create");
		return 1;
	}
	pthread_join(a, &ra);
	pthread_join(b, &rb);
	return ra || rb;
}
