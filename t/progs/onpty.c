/* onpty: run a command on a new pty: its controlling terminal and its
 * standard input (standard output and error stay as they were, so that
 * a test reads them from files).  What it writes on the terminal is read
 * and dropped.  Exits as the command exits (128+N if killed by signal N).
 *
 * usage: onpty CMD [ARG...] */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char buf[4096], *name;
	int m, st;
	pid_t pid;

	if (argc < 2) {
		fputs("usage: onpty CMD [ARG...]\n", stderr);
		return 2;
	}
	m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || grantpt(m) || unlockpt(m) || !(name = ptsname(m))) {
		perror("onpty: pty");
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		perror("onpty: fork");
		return 1;
	}
	if (pid == 0) {
		int s;
		if (setsid() < 0 || (s = open(name, O_RDWR)) < 0 || ioctl(s, TIOCSCTTY, 0) ||
		    dup2(s, 0) < 0) {
			perror("onpty: terminal");
			_exit(1);
		}
		if (s > 2)
			close(s);
		execvp(argv[1], argv + 1);
		fprintf(stderr, "onpty: %s: %s\n", argv[1], strerror(errno));
		_exit(127);
	}
	for (;;) {
		struct pollfd p = {m, POLLIN, 0};
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			break;
		if (poll(&p, 1, 100) > 0 && read(m, buf, sizeof(buf)) < 0 && errno != EIO &&
		    errno != EAGAIN && errno != EINTR)
			break;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
