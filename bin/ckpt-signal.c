/* ckpt-signal: tell a coordinator what to do, or ask it how things are. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../include/ckpt.h"
#include "coord/coord.h"
#include "base/base.h"

#define USAGE                                                                                      \
	"usage: ckpt-signal [--coord-host host] [--coord-port port] [--secret-file file] "          \
	"(--checkpoint [--wait] [--kill] | --status [--json] | --list | --interval n | --kill | "   \
	"--quit | --member (--checkpoint | --status [--json] | --delay | --allow))\n"

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

/* What the options ask for: one command (getopt_long's letter for it:
 * 'c', 'S', 'l', 'i', 'k' or 'q') and its modifiers. */
struct opts {
	int cmd, wait, json, kill, member;
	const char *interval;
	struct co_client cl;
};

static void parse_opts(int argc, char **argv, struct opts *o)
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
						 {"member", no_argument, NULL, 'm'},
						 {"delay", no_argument, NULL, 'd'},
						 {"allow", no_argument, NULL, 'a'},
						 {"help", no_argument, NULL, 'h'},
						 {"version", no_argument, NULL, 'V'},
						 {NULL, 0, NULL, 0}};
	int c, ncmd = 0;

	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			o->wait = 1;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'k':
			o->kill = 1;
			break;
		case 'i':
			o->interval = optarg;
			if (co_num(optarg, 86400 * 365) < 0)
				die(USAGE_RC, "--interval: not a number of seconds: %s", optarg);
			o->cmd = c;
			ncmd++;
			break;
		case 'm':
			o->member = 1;
			break;
		case 'c':
		case 'S':
		case 'l':
		case 'q':
		case 'd':
		case 'a':
			o->cmd = c;
			ncmd++;
			break;
		case 'h':
			fputs(USAGE, stdout);
			exit(OK);
		case 'V':
			printf("ckpt-signal %s\n", CKPT_VERSION);
			exit(OK);
		default:
			if (!co_client_opt(&o->cl, c, optarg))
				usage();
		}
	}
	/* --kill alone kills the members; with --checkpoint, after it. */
	if (!ncmd && o->kill) {
		o->cmd = 'k';
		ncmd = 1;
		o->kill = 0;
	}
	if (optind != argc || ncmd != 1 || (o->wait && o->cmd != 'c') ||
	    (o->kill && o->cmd != 'c') || (o->json && o->cmd != 'S'))
		usage();
	/* --delay and --allow are a member's; --member takes no coordinator
	 * options: the helper is the one $CKPT_API names. */
	if ((o->cmd == 'd' || o->cmd == 'a') != o->member && !(o->member && strchr("cS", o->cmd)))
		usage();
	if (o->member && (o->wait || o->kill || o->cl.host_opt || o->cl.port_opt ||
			  o->cl.secret_file))
		usage();
}

/* The request's line; -1 with err_set. */
static int send_request(int fd, const struct opts *o)
{
	switch (o->cmd) {
	case 'c':
		return co_send(fd, "CHECKPOINT%s%s", o->wait ? " WAIT" : "",
			       o->kill ? " KILL" : "");
	case 'S':
		return co_send(fd, "STATUS");
	case 'l':
		return co_send(fd, "LIST");
	case 'i':
		return co_send(fd, "INTERVAL %s", o->interval);
	case 'k':
		return co_send(fd, "KILL");
	default:
		return co_send(fd, "QUIT");
	}
}

/* The answer's "OK ..." line, in *line; the MEMBER lines before it are
 * printed, one a line (id pid helper host program, tab-separated); an ERR
 * ends here. */
static void read_answer(struct co_reader *r, char **line)
{
	char *l;

	for (;;) {
		if (co_read_line(r, line, -1) < 0)
			die(FAILED, "%s", err_get());
		l = *line;
		if (!strncmp(l, "MEMBER ", 7)) {
			char *save, *w;
			int i = 0;
			/* id pid helper host program */
			for (w = strtok_r(l + 7, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
				co_unescape(w);
				printf("%s%s", i++ ? "\t" : "", w);
			}
			putchar('\n');
			continue;
		}
		if (!strncmp(l, "ERR", 3)) {
			fprintf(stderr, "ckpt-signal: %s\n", l[3] ? l + 4 : "failed");
			exit(FAILED);
		}
		if (strncmp(l, "OK", 2) || (l[2] && l[2] != ' '))
			die(FAILED, "the coordinator said something unexpected: %.80s", l);
		return;
	}
}

/* What the OK line says, for the commands that say something: the status,
 * the new generation's directory (--wait) or number. */
static void print_answer(const struct opts *o, char *line)
{
	if (o->cmd == 'S') {
		print_status(line, o->json);
	} else if (o->cmd == 'c' && o->wait) {
		char *dir = strchr(line + 3, ' ');
		if (dir && !co_unescape(++dir))
			puts(dir);
	} else if (o->cmd == 'c') {
		printf("%s\n", line + 3);
	}
}

/* --member: ask this member's helper, as ckpt.h(3) does; exit 3 when
 * not under ckpt-inject. */
static int as_member(const struct opts *o)
{
	struct ckpt_status st;
	int gen = 0, rc = 0;

	switch (o->cmd) {
	case 'c':
		rc = ckpt_checkpoint(&gen);
		if (rc >= 0)
			printf("%d%s\n", gen, rc ? " restarted" : "");
		break;
	case 'd':
		rc = ckpt_delay();
		break;
	case 'a':
		rc = ckpt_allow();
		break;
	default:
		rc = ckpt_status(&st);
		if (rc == 0 && o->json)
			printf("{\"member\": %d, \"restarts\": %d, \"gen\": %d, \"delayed\": %d, "
			       "\"timeout\": %d}\n",
			       st.member, st.restarts, st.generation, st.delayed, st.timeout);
		else if (rc == 0)
			printf("member: %d\nrestarts: %d\ngen: %d\ndelayed: %d\ntimeout: %d\n",
			       st.member, st.restarts, st.generation, st.delayed, st.timeout);
	}
	if (rc < 0)
		die(errno == ENOSYS ? NO_COORD : FAILED, "%s", ckpt_strerror());
	if (fflush(stdout) || ferror(stdout))
		die(FAILED, "cannot write the answer: %s", strerror(errno));
	return OK;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct co_reader r = {0};
	char *line;
	int fd, rc;

	prog = "ckpt-signal";
	parse_opts(argc, argv, &o);
	if (o.member)
		return as_member(&o);
	if (co_client_setup(&o.cl))
		die(USAGE_RC, "%s", err_get());
	fd = co_connect(o.cl.host, o.cl.port);
	if (fd < 0)
		die(NO_COORD, "%s", err_get());
	rc = co_auth(fd, &r, o.cl.secret);
	free(o.cl.secret);
	o.cl.secret = NULL;
	if (rc)
		die(FAILED, "%s", err_get());
	if (send_request(fd, &o))
		die(NO_COORD, "%s", err_get());
	read_answer(&r, &line);
	print_answer(&o, line);
	if (fflush(stdout) || ferror(stdout))
		die(FAILED, "cannot write the answer: %s", strerror(errno));
	close(fd);
	return OK;
}
