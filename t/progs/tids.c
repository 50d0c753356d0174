/* tids: a process with three threads that, after a restore, says whether
 * it kept its pid and its threads their tids, and checks that glibc's idea
 * of each thread's tid agrees with the kernel's either way.
 *
 * usage: tids DIR [STATUS]
 * Prints "ready PID", waits for DIR/go, then prints "pid: kept|new" and
 * "tids: kept|new" and exits STATUS (default 0) if every thread's
 * pthread_kill reached that very thread, 1 otherwise. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define NTHREADS 3

static const char *go;
static pid_t old_tid[NTHREADS + 1];
static volatile pid_t handled_by[NTHREADS + 1];
static int failures;

static __thread int my_index;

/* Runs in whichever thread the signal was sent to: says which one that was. */
static void on_usr1(int sig)
{
	(void)sig;
	handled_by[my_index] = kernel_tid();
}

/* pthread_kill uses the tid glibc cached for the thread: after a restore
 * under new tids it must have been rewritten. */
static int check_self(int i)
{
	int e;

	handled_by[i] = -1;
	e = pthread_kill(pthread_self(), SIGUSR1);
	if (e || handled_by[i] != kernel_tid()) {
		fprintf(stderr, "tids: thread %d: pthread_kill reached %d, not %d (%s)\n", i,
			(int)handled_by[i], (int)kernel_tid(), strerror(e));
		return 1;
	}
	return 0;
}

static void *worker(void *arg)
{
	int i = (int)(long)arg;

	my_index = i;
	__atomic_store_n(&old_tid[i], kernel_tid(), __ATOMIC_RELEASE);
	wait_file(go);
	return (void *)(long)(check_self(i) | (kernel_tid() != old_tid[i] ? 2 : 0));
}

int main(int argc, char **argv)
{
	pthread_t t[NTHREADS];
	int status = argc > 2 ? atoi(argv[2]) : 0, moved = 0;
	pid_t pid = getpid();

	if (argc < 2) {
		fputs("usage: tids DIR [STATUS]\n", stderr);
		return 2;
	}
	static char path[4096];
	snprintf(path, sizeof(path), "%s/go", argv[1]);
	go = path;
	signal(SIGUSR1, on_usr1);
	old_tid[0] = kernel_tid();
	for (long i = 1; i <= NTHREADS; i++)
		if ((errno = pthread_create(&t[i - 1], NULL, worker, (void *)i))) {
			perror("tids: pthread_create");
			return 1;
		}
	while (!__atomic_load_n(&old_tid[1], __ATOMIC_ACQUIRE) || !__atomic_load_n(&old_tid[2], __ATOMIC_ACQUIRE) ||
	       !__atomic_load_n(&old_tid[3], __ATOMIC_ACQUIRE))
		sched_yield();
	printf("ready %d\n", (int)pid);
	fflush(stdout);
	wait_file(go);
	failures |= check_self(0);
	for (int i = 0; i < NTHREADS; i++) {
		void *r;
		pthread_join(t[i], &r);
		failures |= (int)(long)r & 1;
		moved |= (int)(long)r & 2;
	}
	printf("pid: %s\ntids: %s\n", getpid() == pid ? "kept" : "new", moved ? "new" : "kept");
	fflush(stdout);
	return failures ? 1 : status;
}
