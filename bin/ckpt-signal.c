/* ckpt-signal: tell a coordinator what to do, or ask it how things are. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coord/coord.h"
#include "base/base.h"

#define USAGE                                                                                      \
	"usage: ckpt-signal [--coord-host host] [--coord-port port] [--secret-file file] "          \
	"(--checkpoint [--wait] [--kill] | --status [--json] | --list | --interval n | --kill | "   \
	"--quit)\n"

/* Exit statuses (ckpt-signal(1)). */
enum { OK = 0, FAILED = 1, USAGE_RC = 2, NO_COORD = 3 };

static void usage(void)
{
	fputs(USAGE, stderr);
	exit(USAGE_RC);
}

/* STATUS's "key=value" words, as text or JSON. */
static void print_status(char *line, int json)
{
	char *save, *w;
	int first = 1;

	if (json)
		putchar('{');
	for (w = strtok_r(line + 2, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(w, '=');
		if (!eq)
			continue;
		*eq++ = 0;
		if (co_unescape(eq))
			continue;
		if (!json) {
			printf("%s: %s\n", w, eq);
			continue;
		}
		printf("%s\"%s\": ", first ? "" : ", ", w);
		first = 0;
		if (co_num(eq, CO_NUM_MAX) >= 0) {
			printf("%s", eq);
		} else {
			putchar('"');
			for (char *p = eq; *p; p++)
				if (*p == '"' || *p == '\\')
					printf("\\%c", *p);
				else if ((unsigned char)*p < ' ')
					printf("\\u%04x", *p);
				else
					putchar(*p);
			putchar('"');
		}
	}
	if (json)
		puts("}");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {CO_CLIENT_LONGOPTS,
						 {"checkpoint", no_argument, NULL, 'c'},
						 {"wait", no_argument, NULL, 'w'},
						 {"status", no_argument, NULL, 'S'},
						 {"json", no_argument, NULL, 'j'},
						 {"list", no_argument, NULL, 'l'},
						 {"interval", required_argument, NULL, 'i'},
						 {"kill", no_argument, NULL, 'k'},
						 {"quit", no_argument, NULL, 'q'},
						 {"help", no_argument, NULL, 'h'},
						 {"version", no_argument, NULL, 'V'},
						 {NULL, 0, NULL, 0}};
	const char *interval = NULL;
	int c, fd, wait = 0, json = 0, kill_opt = 0, ncmd = 0, cmd = 0;
	struct co_client cl = {0};
	struct co_reader r = {0};
	char *line;

	prog = "ckpt-signal";
	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			wait = 1;
			break;
		case 'j':
			json = 1;
			break;
		case 'k':
			kill_opt = 1;
			break;
		case 'i':
			interval = optarg;
			if (co_num(optarg, 86400 * 365) < 0)
				die(USAGE_RC, "--interval: not a number of seconds: %s", optarg);
			cmd = c;
			ncmd++;
			break;
		case 'c':
		case 'S':
		case 'l':
		case 'q':
			cmd = c;
			ncmd++;
			break;
		case 'h':
			fputs(USAGE, stdout);
			return OK;
		case 'V':
			printf("ckpt-signal %s\n", CKPT_VERSION);
			return OK;
		default:
			if (!co_client_opt(&cl, c, optarg))
				usage();
		}
	}
	/* --kill alone kills the members; with --checkpoint, after it. */
	if (!ncmd && kill_opt) {
		cmd = 'k';
		ncmd = 1;
		kill_opt = 0;
	}
	if (optind != argc || ncmd != 1 || (wait && cmd != 'c') || (kill_opt && cmd != 'c') ||
	    (json && cmd != 'S'))
		usage();
	if (co_client_setup(&cl))
		die(USAGE_RC, "%s", err_get());
	fd = co_connect(cl.host, cl.port);
	if (fd < 0)
		die(NO_COORD, "%s", err_get());
	c = co_auth(fd, &r, cl.secret);
	free(cl.secret);
	cl.secret = NULL;
	if (c)
		die(FAILED, "%s", err_get());
	switch (cmd) {
	case 'c':
		c = co_send(fd, "CHECKPOINT%s%s", wait ? " WAIT" : "", kill_opt ? " KILL" : "");
		break;
	case 'S':
		c = co_send(fd, "STATUS");
		break;
	case 'l':
		c = co_send(fd, "LIST");
		break;
	case 'i':
		c = co_send(fd, "INTERVAL %s", interval);
		break;
	case 'k':
		c = co_send(fd, "KILL");
		break;
	default:
		c = co_send(fd, "QUIT");
		break;
	}
	if (c)
		die(NO_COORD, "%s", err_get());
	for (;;) {
		if (co_read_line(&r, &line, -1) < 0)
			die(FAILED, "%s", err_get());
		if (!strncmp(line, "MEMBER ", 7)) {
			char *save, *w;
			int i = 0;
			/* id pid helper host program */
			for (w = strtok_r(line + 7, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
				co_unescape(w);
				printf("%s%s", i++ ? "\t" : "", w);
			}
			putchar('\n');
			continue;
		}
		if (!strncmp(line, "ERR", 3)) {
			fprintf(stderr, "ckpt-signal: %s\n", line[3] ? line + 4 : "failed");
			return FAILED;
		}
		if (strncmp(line, "OK", 2) || (line[2] && line[2] != ' '))
			die(FAILED, "the coordinator said something unexpected: %.80s", line);
		break;
	}
	if (cmd == 'S') {
		print_status(line, json);
	} else if (cmd == 'c' && wait) {
		char *dir = strchr(line + 3, ' ');
		if (dir && !co_unescape(++dir))
			puts(dir);
	} else if (cmd == 'c') {
		printf("%s\n", line + 3);
	}
	if (fflush(stdout) || ferror(stdout))
		die(FAILED, "cannot write the answer: %s", strerror(errno));
	close(fd);
	return OK;
}
