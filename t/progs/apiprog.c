/* apiprog FILE MODE: a program that uses ckpt.h(3), writing what it
 * learns to FILE, one line a write (O_APPEND):
 *   checkpoint  its status, a checkpoint it asks for, its status again;
 *               then it waits; restarted from that checkpoint, it writes
 *               the same and exits 0
 *   delay       ckpt_delay() twice (nested), a checkpoint asked for inside
 *               (refused), "critical" and a wait for FILE.go, ckpt_allow()
 *               twice; then it waits
 *   notify      counts SIGUSR1, writing "signals N" at each
 *   none        every call, not under ckpt-inject: each says "not available"
 *               (ENOSYS); exits 0 if all did */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../include/ckpt.h"

static int out;

static void say(const char *fmt, ...)
{
	char line[600];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	if (write(out, line, n) != n)
		exit(3);
}

static void status(void)
{
	struct ckpt_status st;
	int rc = ckpt_status(&st);

	say("status rc=%d coordinated=%d restarts=%d gen=%d delayed=%d", rc, st.coordinated,
	    st.restarts, st.generation, st.delayed);
}

static volatile sig_atomic_t got;

static void on_usr1(int sig)
{
	(void)sig;
	got++;
}

int main(int argc, char **argv)
{
	char go[4096];
	int gen = 0, rc;

	if (argc != 3)
		return 2;
	out = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (out < 0)
		return 2;
	snprintf(go, sizeof(go), "%s.go", argv[1]);
	if (!strcmp(argv[2], "checkpoint")) {
		status();
		rc = ckpt_checkpoint(&gen);
		say("checkpoint rc=%d gen=%d%s%s", rc, gen, rc < 0 ? " " : "",
		    rc < 0 ? ckpt_strerror() : "");
		status();
		if (rc == 1)
			return 0;
		for (;;)
			pause();
	}
	if (!strcmp(argv[2], "delay")) {
		say("delay %d", ckpt_delay());
		say("delay %d", ckpt_delay());
		rc = ckpt_checkpoint(&gen);
		say("inside rc=%d %s", rc, rc < 0 ? ckpt_strerror() : "");
		status();
		say("critical");
		while (access(go, F_OK))
			usleep(10000);
		say("allow %d", ckpt_allow());
		say("allow %d", ckpt_allow());
		for (;;)
			pause();
	}
	if (!strcmp(argv[2], "notify")) {
		sigset_t none, usr1;
		int seen = 0;
		sigemptyset(&none);
		sigemptyset(&usr1);
		sigaddset(&usr1, SIGUSR1);
		sigprocmask(SIG_BLOCK, &usr1, NULL);
		signal(SIGUSR1, on_usr1);
		say("ready");
		for (;;) {
			sigsuspend(&none);
			if (got != seen)
				say("signals %d", seen = got);
		}
	}
	if (!strcmp(argv[2], "none")) {
		struct ckpt_status st;
		int bad = 0;
		if (ckpt_status(&st) != -1 || errno != ENOSYS || st.coordinated)
			bad |= 1;
		if (ckpt_checkpoint(&gen) != -1 || errno != ENOSYS)
			bad |= 2;
		if (ckpt_delay() != -1 || errno != ENOSYS)
			bad |= 4;
		if (ckpt_allow() != -1 || errno != ENOSYS)
			bad |= 8;
		say("none bad=%d %s", bad, ckpt_strerror());
		return bad ? 1 : 0;
	}
	return 2;
}
