/* ptrace.c: seize, interrupt, registers (with the extended state), detach. */
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "target/target.h"

#define CAP_SYS_PTRACE_BIT (1ull << 19)

/* What /proc/PID/status says about who may trace PID. */
struct trace_creds {
	char state;
	unsigned uid[4], gid[4]; /* real, effective, saved, fs */
	unsigned long long cap_prm, cap_eff;
	int tracer, kthread;
};

static int read_creds(const char *path, struct trace_creds *c)
{
	char *buf = read_file(path, NULL), *p;

	if (!buf)
		return -1;
	memset(c, 0, sizeof(*c));
	if ((p = strstr(buf, "\nState:\t")))
		c->state = p[8];
	if ((p = strstr(buf, "\nUid:")))
		sscanf(p + 5, "%u %u %u %u", &c->uid[0], &c->uid[1], &c->uid[2], &c->uid[3]);
	if ((p = strstr(buf, "\nGid:")))
		sscanf(p + 5, "%u %u %u %u", &c->gid[0], &c->gid[1], &c->gid[2], &c->gid[3]);
	if ((p = strstr(buf, "\nCapPrm:")))
		c->cap_prm = strtoull(p + 8, NULL, 16);
	if ((p = strstr(buf, "\nCapEff:")))
		c->cap_eff = strtoull(p + 8, NULL, 16);
	if ((p = strstr(buf, "\nTracerPid:")))
		c->tracer = atoi(p + 11);
	if ((p = strstr(buf, "\nKthread:")))
		c->kthread = atoi(p + 9);
	free(buf);
	return 0;
}

/* Yama's restriction (Documentation/admin-guide/LSM/Yama.rst), or "" when
 * Yama is not there or restricts nothing. */
static const char *yama_rule(char *buf, size_t size)
{
	char *v = read_file("/proc/sys/kernel/yama/ptrace_scope", NULL);
	int scope = v ? atoi(v) : 0;

	free(v);
	buf[0] = 0;
	if (scope == 1)
		snprintf(buf, size,
			 "Yama ptrace_scope is 1: only descendants of %s, and processes that "
			 "named it with prctl(PR_SET_PTRACER), without CAP_SYS_PTRACE",
			 prog);
	else if (scope == 2)
		snprintf(buf, size, "Yama ptrace_scope is 2: only with CAP_SYS_PTRACE");
	else if (scope >= 3)
		snprintf(buf, size, "Yama ptrace_scope is %d: no process may be traced", scope);
	return buf;
}

/* PTRACE_SEIZE of pid failed with EPERM: say why, as ptrace(2)'s access
 * check would (same uids and gids, dumpable, no capability we lack, unless
 * we have CAP_SYS_PTRACE; then Yama).  Returns the errno to report:
 * ESRCH for a zombie, which is no longer there to trace. */
static int explain_eperm(pid_t pid)
{
	char path[64], yama[256];
	struct trace_creds t, me;
	struct stat st;
	int privileged;

	if (read_creds(fmt_path(path, sizeof(path), "/proc/%d/status", pid), &t)) {
		err_set("pid %d: no such process", pid);
		return ESRCH;
	}
	if (read_creds("/proc/self/status", &me))
		memset(&me, 0, sizeof(me));
	privileged = (me.cap_eff & CAP_SYS_PTRACE_BIT) != 0;
	yama_rule(yama, sizeof(yama));
	if (t.state == 'Z' || t.state == 'X') {
		err_set("pid %d: it has exited (a zombie its parent has not reaped)", pid);
		return ESRCH;
	}
	if (pid == getpid()) {
		err_set("pid %d: not permitted to trace: it is %s itself", pid, prog);
	} else if (t.kthread) {
		err_set("pid %d: not permitted to trace: it is a kernel thread", pid);
	} else if (t.tracer) {
		char *comm =
		    read_file(fmt_path(path, sizeof(path), "/proc/%d/comm", t.tracer), NULL);

		if (comm)
			comm[strcspn(comm, "\n")] = 0;
		err_set("pid %d: not permitted to trace: it is already traced by pid %d (%s)", pid,
			t.tracer, comm ? comm : "?");
		free(comm);
	} else if (!privileged &&
		   (t.uid[0] != me.uid[0] || t.uid[1] != me.uid[0] || t.uid[2] != me.uid[0])) {
		if (t.uid[0] == t.uid[1] && t.uid[1] == t.uid[2])
			err_set("pid %d: not permitted to trace: it belongs to uid %u and %s runs "
				"as uid %u, without CAP_SYS_PTRACE",
				pid, t.uid[0], prog, me.uid[0]);
		else
			err_set("pid %d: not permitted to trace: it runs with uids %u/%u/%u (real, "
				"effective, saved) and %s as uid %u, without CAP_SYS_PTRACE",
				pid, t.uid[0], t.uid[1], t.uid[2], prog, me.uid[0]);
	} else if (!privileged &&
		   (t.gid[0] != me.gid[0] || t.gid[1] != me.gid[0] || t.gid[2] != me.gid[0])) {
		err_set("pid %d: not permitted to trace: it runs with gids %u/%u/%u (real, "
			"effective, saved) and %s with gid %u, without CAP_SYS_PTRACE",
			pid, t.gid[0], t.gid[1], t.gid[2], prog, me.gid[0]);
	} else if (!privileged &&
		   stat(fmt_path(path, sizeof(path), "/proc/%d/status", pid), &st) == 0 &&
		   st.st_uid != t.uid[1]) {
		/* The files in /proc/PID belong to root while its process is
		 * not dumpable (proc(5), /proc/pid). */
		err_set("pid %d: not permitted to trace: it is not dumpable (prctl PR_SET_DUMPABLE "
			"0, or it changed its credentials, as a set-user-ID program does)",
			pid);
	} else if (!privileged && (t.cap_prm & ~me.cap_prm)) {
		err_set("pid %d: not permitted to trace: it has capabilities %s lacks (%#llx)", pid,
			prog, t.cap_prm & ~me.cap_prm);
	} else if (yama[0]) {
		err_set("pid %d: not permitted to trace: %s", pid, yama);
	} else {
		err_set("pid %d: not permitted to trace (a security module's policy?): %s", pid,
			strerror(EPERM));
	}
	return EPERM;
}

int pt_wait(pid_t pid, int *status)
{
	for (;;) {
		pid_t r = waitpid(pid, status, __WALL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err_sys("pid %d: wait", pid);
			return -1;
		}
		if (WIFEXITED(*status)) {
			err_set("pid %d exited with status %d", pid, WEXITSTATUS(*status));
			errno = ESRCH;
			return -1;
		}
		if (WIFSIGNALED(*status)) {
			err_set("pid %d was killed by signal %d", pid, WTERMSIG(*status));
			errno = ESRCH;
			return -1;
		}
		return 0;
	}
}

int pt_seize(pid_t pid)
{
	int status;

	if (ptrace(PTRACE_SEIZE, pid, 0, 0)) {
		if (errno == EPERM) {
			errno = explain_eperm(pid);
			return -1;
		}
		if (errno == ESRCH)
			err_set("pid %d: no such process", pid);
		else
			err_sys("pid %d: cannot seize", pid);
		errno = errno == ESRCH ? ESRCH : EPERM;
		return -1;
	}
	if (ptrace(PTRACE_INTERRUPT, pid, 0, 0)) {
		err_sys("pid %d: cannot interrupt", pid);
		ptrace(PTRACE_DETACH, pid, 0, 0);
		return -1;
	}
	for (;;) {
		if (pt_wait(pid, &status))
			return -1;
		/* PTRACE_EVENT_STOP: our interrupt, or a group-stop of a
		 * process that was stopped already; both are stops to dump. */
		if (status >> 16 == PTRACE_EVENT_STOP)
			return 0;
		/* A signal-delivery-stop: hand the signal to the program as if
		 * we were not there, and interrupt it again: any ptrace stop
		 * clears a pending interrupt (ptrace_stop() in kernel/signal.c,
		 * "any trap clears pending STOP trap"), so without a new one a
		 * program that gets signals without pause (1 ms timers) was
		 * never stopped, and one that got no more ran on untraced in
		 * all but name while we waited. */
		if (ptrace(PTRACE_CONT, pid, 0, WSTOPSIG(status)) ||
		    ptrace(PTRACE_INTERRUPT, pid, 0, 0)) {
			err_sys("pid %d: cannot continue past signal %d", pid, WSTOPSIG(status));
			ptrace(PTRACE_DETACH, pid, 0, 0);
			return -1;
		}
	}
}

int pt_get_regs(pid_t pid, struct user_regs_struct *r)
{
	if (ptrace(PTRACE_GETREGS, pid, 0, r)) {
		err_sys("pid %d: cannot read registers", pid);
		return -1;
	}
	return 0;
}

int pt_set_regs(pid_t pid, const struct user_regs_struct *r)
{
	if (ptrace(PTRACE_SETREGS, pid, 0, r)) {
		err_sys("pid %d: cannot set registers", pid);
		return -1;
	}
	return 0;
}

int pt_get_xstate(pid_t pid, void *buf, size_t *len)
{
	struct iovec iov = {buf, *len};

	if (ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, &iov)) {
		err_sys("pid %d: cannot read FPU/vector state", pid);
		return -1;
	}
	*len = iov.iov_len;
	return 0;
}

int pt_get_sigmask(pid_t pid, uint64_t *mask)
{
	if (ptrace(PTRACE_GETSIGMASK, pid, sizeof(*mask), mask)) {
		err_sys("pid %d: cannot read signal mask", pid);
		return -1;
	}
	return 0;
}

int pt_set_sigmask(pid_t pid, uint64_t mask)
{
	if (ptrace(PTRACE_SETSIGMASK, pid, sizeof(mask), &mask)) {
		err_sys("pid %d: cannot set signal mask", pid);
		return -1;
	}
	return 0;
}

int pt_get_rseq(pid_t pid, struct rseq_conf *c)
{
	memset(c, 0, sizeof(*c));
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, pid, sizeof(*c), c) < 0) {
		/* Kernels before 5.13 lack the request: no rseq to report. */
		if (errno == EIO || errno == EINVAL)
			return 0;
		err_sys("pid %d: cannot read rseq configuration", pid);
		return -1;
	}
	return 0;
}

int pt_detach(pid_t pid, int sig)
{
	if (ptrace(PTRACE_DETACH, pid, 0, sig)) {
		err_sys("pid %d: cannot detach", pid);
		return -1;
	}
	return 0;
}
