#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "err.h"
#include "ptrace.h"

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
		if (errno == EPERM)
			err_sys("pid %d: not permitted to trace", pid);
		else if (errno == ESRCH)
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
		 * we were not there; the interrupt stays pending. */
		if (ptrace(PTRACE_CONT, pid, 0, WSTOPSIG(status))) {
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
