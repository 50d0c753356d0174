/* reaper: run a command as a child subreaper, so that every process the
 * tests start, orphans included, is reaped here and not left to PID 1
 * (which does not reap on this machine).  When the command exits, any
 * descendant still alive is a test that did not clean up: name it, kill it,
 * and fail. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Children of this process, from /proc/self/task/<tid>/children. */
static int children(pid_t *out, int max)
{
	char path[64], buf[8192];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", getpid());
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (n < max && fscanf(f, "%7999s", buf) == 1)
		out[n++] = atoi(buf);
	fclose(f);
	return n;
}

int main(int argc, char **argv)
{
	pid_t main_pid, pids[1024];
	int status, main_status = 0, left = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: reaper cmd [arg...]\n");
		return 2;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1)) {
		perror("reaper: PR_SET_CHILD_SUBREAPER");
		return 1;
	}
	main_pid = fork();
	if (main_pid < 0) {
		perror("reaper: fork");
		return 1;
	}
	if (main_pid == 0) {
		execvp(argv[1], argv + 1);
		fprintf(stderr, "reaper: cannot run %s: %s\n", argv[1], strerror(errno));
		_exit(127);
	}
	for (;;) {
		pid_t p = wait(&status);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			break;
		if (p == main_pid) {
			main_status = status;
			break;
		}
	}
	/* Give processes that are finishing on their own (a decompressor
	 * draining its pipe) two seconds before calling them left behind. */
	for (int i = 0; i < 200 && children(pids, 1024) > 0; i++) {
		while (waitpid(-1, &status, WNOHANG) > 0)
			;
		usleep(10000);
	}
	for (int round = 0; round < 50; round++) {
		int n = children(pids, 1024);
		if (n == 0)
			break;
		for (int i = 0; i < n; i++) {
			char path[64], comm[64] = "?";
			FILE *f;

			snprintf(path, sizeof(path), "/proc/%d/comm", pids[i]);
			if ((f = fopen(path, "r"))) {
				if (fgets(comm, sizeof(comm), f))
					comm[strcspn(comm, "\n")] = 0;
				fclose(f);
			}
			if (round == 0) {
				fprintf(stderr, "reaper: process %d (%s) left behind by the tests\n",
					pids[i], comm);
				left++;
			}
			kill(pids[i], SIGKILL);
		}
		while (waitpid(-1, &status, WNOHANG) > 0)
			;
		usleep(20000);
		while (waitpid(-1, &status, WNOHANG) > 0)
			;
	}
	if (left) {
		fprintf(stderr, "reaper: %d process(es) left behind\n", left);
		return 1;
	}
	if (WIFEXITED(main_status))
		return WEXITSTATUS(main_status);
	return 128 + WTERMSIG(main_status);
}
