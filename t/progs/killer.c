/* killer: send a signal to a process at a chosen moment.
 *
 * usage: killer [--blocked | --after-blocked] SIG USEC PID
 *
 * Waits USEC microseconds, then sends signal SIG (a number) to PID.
 * With --blocked it then waits further (5 s at most) until PID's worker
 * (ckpt-dump runs the dump in a child; PID itself until it has one) has
 * every standard signal blocked (SigBlk of /proc/PID/status), the mask
 * the worker holds while it runs system calls inside its target, and
 * sends SIG to PID at once; with --after-blocked, until the worker has had
 * that mask and no longer has it.  Prints one word on stdout: "blocked" if
 * the worker had every signal blocked just before the signal went, "sent"
 * otherwise, "gone" if PID had already exited (a zombie counts as
 * exited); exits 0, or 1 if the mask waited for was never seen. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Signals 1-31 but SIGKILL and SIGSTOP, which cannot be blocked; glibc
 * keeps its own 32 and 33 out of any mask, so the real-time ones are not
 * looked at. */
#define ALL_BLOCKED 0x7ffbfeffull

/* 1 if every blockable signal is blocked in pid's worker (its first
 * child, or pid itself while it has none), 0 if not, -1 if pid is gone. */
static int all_blocked(pid_t pid)
{
	char buf[4096], path[64], *p;
	int fd, kid = 0;
	FILE *f;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%d", &kid) != 1)
			kid = 0;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/status", kid > 0 ? kid : (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && kid > 0) {
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return -1;
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	if (strstr(buf, "\nState:\tZ") || strstr(buf, "\nState:\tX"))
		return -1;
	p = strstr(buf, "\nSigBlk:\t");
	if (!p)
		return -1;
	return (strtoull(p + 9, NULL, 16) & ALL_BLOCKED) == ALL_BLOCKED;
}

int main(int argc, char **argv)
{
	int wait_mask = 0, after = 0, argi = 1, sig, b;
	char path[64];
	long usec;
	pid_t pid;

	if (argi < argc && !strcmp(argv[argi], "--blocked")) {
		wait_mask = 1;
		argi++;
	} else if (argi < argc && !strcmp(argv[argi], "--after-blocked")) {
		wait_mask = after = 1;
		argi++;
	}
	if (argc != argi + 3) {
		fputs("usage: killer [--blocked | --after-blocked] SIG USEC PID\n", stderr);
		return 2;
	}
	sig = atoi(argv[argi]);
	usec = atol(argv[argi + 1]);
	pid = atoi(argv[argi + 2]);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (access(path, F_OK)) {
		puts("gone");
		return 0;
	}
	if (usec > 0) {
		struct timespec ts = {usec / 1000000, (usec % 1000000) * 1000};
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	b = all_blocked(pid);
	if (wait_mask) {
		struct timespec t0, t;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		while (b == 0) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			if (t.tv_sec - t0.tv_sec > 5) {
				fprintf(stderr, "killer: pid %d never blocked every signal\n",
					(int)pid);
				return 1;
			}
			b = all_blocked(pid);
		}
		while (after && b == 1)
			b = all_blocked(pid);
	}
	if (b < 0) {
		puts("gone");
		return wait_mask;
	}
	if (kill(pid, sig)) {
		fprintf(stderr, "killer: kill %d: %s\n", (int)pid, strerror(errno));
		return 1;
	}
	puts(b ? "blocked" : "sent");
	return 0;
}
