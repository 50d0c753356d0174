/* sigflood: a process that gets signals without pause, for seizing one.
 *
 * usage: sigflood DIR
 *
 * Counts SIGUSR1 in a handler, sent by a POSIX timer every 20 us (a
 * POSIX timer's signal is re-armed as it is dequeued, with the signal
 * lock dropped: a ptrace interrupt that lands there was lost to the
 * signal-delivery-stop that follows).  Prints "ready PID" once the
 * first has arrived, then waits until DIR/go exists, and exits 0 if
 * signals kept arriving all along ("counted N"). */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

static volatile sig_atomic_t count;

static void on_usr1(int sig)
{
	(void)sig;
	count++;
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
	struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
	struct itimerspec its = {{0, 20000}, {0, 20000}};
	char go[PATH_MAX];
	timer_t id;
	long seen;

	if (argc != 2) {
		fputs("usage: sigflood DIR\n", stderr);
		return 2;
	}
	snprintf(go, sizeof(go), "%s/go", argv[1]);
	sigaction(SIGUSR1, &sa, NULL);
	if (timer_create(CLOCK_MONOTONIC, &sev, &id) || timer_settime(id, 0, &its, NULL)) {
		perror("sigflood: timer");
		return 1;
	}
	while (!count)
		;
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	seen = count;
	while (access(go, F_OK))
		usleep(1000);
	printf("counted %ld\n", (long)count);
	return count > seen ? 0 : 1;
}
