/* holdpid: take pids, so that a restore cannot give them back.
 *
 * usage: holdpid PID...
 *
 * Makes a child with each PID (clone3 with set_tid: root, or
 * CAP_CHECKPOINT_RESTORE), prints "ready" once all are taken, and waits
 * to be killed; each child dies with it (PR_SET_PDEATHSIG).  A pid in use
 * already is taken as well.  Exit 1, naming the pid, if one cannot be. */
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	pid_t parent = getpid();

	if (argc < 2) {
		fputs("usage: holdpid PID...\n", stderr);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		pid_t want = (pid_t)atoi(argv[i]);
		struct clone_args ca = {.exit_signal = SIGCHLD,
					.set_tid = (uint64_t)(uintptr_t)&want,
					.set_tid_size = 1};
		long pid = syscall(SYS_clone3, &ca, sizeof(ca));

		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(0);
			for (;;)
				pause();
		}
		if (pid < 0 && errno != EEXIST) {
			fprintf(stderr, "holdpid: pid %d: %s\n", (int)want, strerror(errno));
			return 1;
		}
	}
	puts("ready");
	fflush(stdout);
	for (;;)
		pause();
}
