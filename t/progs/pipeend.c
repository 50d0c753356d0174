/* pipeend: a program that holds one end of a pipe it did not make.
 *
 * usage: pipeend [--fork] read|write FD DIR
 *
 * Prints "ready" on stdout, waits for DIR/go, then uses fd FD:
 *   read:  reads it to end of file and prints "read: TEXT" (what it read,
 *          newlines as '|'), then "eof";
 *   write: writes "hello from PID\n" into it and prints "write: ok", or
 *          "write: EPIPE" when the pipe has no reader (SIGPIPE is ignored
 *          so that it can tell).
 * --fork: a child made before "ready" does the same first (its lines
 * start with "child "); the parent waits for it before its own turn.
 * Exits 0 if every step worked as it reports, 1 otherwise. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

static int use_fd(int fd, int reading, const char *who)
{
	char buf[4096], msg[64];
	size_t len = 0;
	ssize_t n;

	if (reading) {
		while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
			len += n;
		if (n < 0) {
			printf("%sread: error %s\n", who, strerror(errno));
			return 1;
		}
		buf[len] = 0;
		for (size_t i = 0; i < len; i++)
			if (buf[i] == '\n')
				buf[i] = '|';
		printf("%sread: %s\n%seof\n", who, buf, who);
		return 0;
	}
	snprintf(msg, sizeof(msg), "hello from %d\n", (int)getpid());
	n = write(fd, msg, strlen(msg));
	if (n < 0 && errno == EPIPE)
		printf("%swrite: EPIPE\n", who);
	else if (n == (ssize_t)strlen(msg))
		printf("%swrite: ok\n", who);
	else {
		printf("%swrite: error %s\n", who, n < 0 ? strerror(errno) : "short");
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int forking = 0, reading, fd, rc, st;
	char go[4096];
	pid_t child = 0;

	if (argc > 1 && !strcmp(argv[1], "--fork")) {
		forking = 1;
		argv++;
		argc--;
	}
	if (argc != 4 || (strcmp(argv[1], "read") && strcmp(argv[1], "write"))) {
		fputs("usage: pipeend [--fork] read|write FD DIR\n", stderr);
		return 2;
	}
	reading = !strcmp(argv[1], "read");
	fd = atoi(argv[2]);
	snprintf(go, sizeof(go), "%s/go", argv[3]);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (forking && (child = fork()) < 0) {
		perror("pipeend: fork");
		return 1;
	}
	if (child == 0 && forking) {
		wait_file(go);
		return use_fd(fd, reading, "child ");
	}
	printf("ready\n");
	wait_file(go);
	if (forking) {
		if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st)) {
			printf("child failed\n");
			return 1;
		}
	}
	rc = use_fd(fd, reading, "");
	return rc;
}
