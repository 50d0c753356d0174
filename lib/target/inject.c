/* inject.c: system calls run inside a stopped thread, and undone (compel's verbs). */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "base/base.h"
#include "target/target.h"

static int mem_rw(pid_t pid, uint64_t addr, void *buf, size_t len, int write)
{
	struct iovec local = {buf, len}, remote = {(void *)addr, len};
	ssize_t n = write ? process_vm_writev(pid, &local, 1, &remote, 1, 0)
			  : process_vm_readv(pid, &local, 1, &remote, 1, 0);

	if (n != (ssize_t)len) {
		err_sys("pid %d: cannot %s %zu bytes at %#llx", pid, write ? "write" : "read", len,
			(unsigned long long)addr);
		return -1;
	}
	return 0;
}

int inj_find_gadget(pid_t pid, uint64_t vstart, uint64_t vend, uint64_t *gadget)
{
	unsigned char buf[65536];
	size_t len = vend - vstart;

	if (vstart == 0 || len > sizeof(buf)) {
		err_set("pid %d: no usable [vdso] to run system calls from", pid);
		return -1;
	}
	if (mem_rw(pid, vstart, buf, len, 0))
		return -1;
	for (size_t i = 0; i + 1 < len; i++)
		if (buf[i] == 0x0f && buf[i + 1] == 0x05) {
			*gadget = vstart + i;
			return 0;
		}
	err_set("pid %d: no syscall instruction in its [vdso]", pid);
	return -1;
}

int inj_prepare(struct inj *c, pid_t pid, uint64_t gadget)
{
	memset(c, 0, sizeof(*c));
	c->pid = pid;
	c->gadget = gadget;
	if (pt_get_regs(pid, &c->saved) || pt_get_sigmask(pid, &c->saved_mask))
		return -1;
	/* Below the 128-byte red zone, where a signal frame would go too. */
	c->scratch = ((c->saved.rsp - 128 - INJ_SCRATCH) & ~15ull);
	if (mem_rw(pid, c->scratch, c->scratch_saved, INJ_SCRATCH, 0))
		return -1;
	/* Pending signals stay pending while we single-step. */
	if (pt_set_sigmask(pid, ~0ull))
		return -1;
	c->infected = 1;
	return 0;
}

/* Run the thread from the gadget through one system call: to its
 * syscall-enter stop, then to its syscall-exit stop (or another ptrace
 * event stop on the way, which *status then reports).  PTRACE_SYSCALL, not
 * PTRACE_SINGLESTEP: a single step leaves the trap flag set, and should
 * ckpt-dump die (SIGKILL) before its next PTRACE_CONT or DETACH, the
 * kernel lets the thread go with it set and the program dies of SIGTRAP. */
static int run_one(struct inj *c, int *status)
{
	/* An interrupt trap first: pt_seize interrupts again after each
	 * signal-delivery-stop, and one of those can land when the thread
	 * is already in the trap of the one before, which leaves a second
	 * trap pending.  It stops the thread before it runs anything: run
	 * it again. */
	do {
		if (ptrace(PTRACE_SYSCALL, c->pid, 0, 0)) {
			err_sys("pid %d: cannot run an injected syscall", c->pid);
			return -1;
		}
		if (pt_wait(c->pid, status))
			return -1;
	} while (WIFSTOPPED(*status) && *status >> 8 == (SIGTRAP | (PTRACE_EVENT_STOP << 8)));
	return 0;
}

int inj_syscall(struct inj *c, long nr, const uint64_t args[6], int64_t *ret)
{
	struct user_regs_struct r = c->saved;
	int status;

	r.rax = nr;
	r.rdi = args[0];
	r.rsi = args[1];
	r.rdx = args[2];
	r.r10 = args[3];
	r.r8 = args[4];
	r.r9 = args[5];
	r.rip = c->gadget;
	/* orig_rax -1: the kernel must not apply syscall-restart logic to
	 * these registers when the thread leaves its stop. */
	r.orig_rax = -1;
	r.rsp = c->scratch - 64;
	if (pt_set_regs(c->pid, &r))
		return -1;
	/* Enter, then exit. */
	for (int stop = 0; stop < 2; stop++) {
		if (run_one(c, &status))
			return -1;
		if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGTRAP)
			break;
	}
	if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGTRAP) {
		err_set("pid %d: injected syscall %ld stopped with signal %d", c->pid, nr,
			WIFSTOPPED(status) ? WSTOPSIG(status) : -1);
		return -1;
	}
	if (pt_get_regs(c->pid, &r))
		return -1;
	if (r.rip != c->gadget + 2) {
		err_set("pid %d: injected syscall %ld ended at %#llx, not after the gadget",
			c->pid, nr, (unsigned long long)r.rip);
		return -1;
	}
	*ret = (int64_t)r.rax;
	return 0;
}

int inj_snapshot(struct inj *c, pid_t *child)
{
	struct user_regs_struct r = c->saved;
	unsigned long msg = 0;
	int status;

	/* Auto-attach what a clone without SIGCHLD makes. */
	if (ptrace(PTRACE_SETOPTIONS, c->pid, 0, PTRACE_O_TRACECLONE)) {
		err_sys("pid %d: cannot trace its clones", c->pid);
		return -1;
	}
	r.rax = SYS_clone;
	/* Exit signal 0: no SIGCHLD for the process.  CLONE_FILES: the
	 * snapshot never runs, and a copy of the fd table would keep the
	 * program's pipes and sockets open after it closes them. */
	r.rdi = CLONE_FILES;
	r.rsi = r.rdx = r.r10 = r.r8 = r.r9 = 0;
	r.rip = c->gadget;
	r.orig_rax = -1;
	r.rsp = c->scratch - 64;
	*child = 0;
	if (pt_set_regs(c->pid, &r))
		goto fail;
	/* Enter, the clone event, exit. */
	for (int stop = 0; stop < 3; stop++) {
		if (run_one(c, &status))
			goto fail;
		if (WIFSTOPPED(status) && status >> 8 == (SIGTRAP | (PTRACE_EVENT_CLONE << 8))) {
			if (ptrace(PTRACE_GETEVENTMSG, c->pid, 0, &msg)) {
				err_sys("pid %d: cannot learn its clone's pid", c->pid);
				goto fail;
			}
			*child = (pid_t)msg;
		} else if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGTRAP) {
			break;
		}
	}
	if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGTRAP || pt_get_regs(c->pid, &r) ||
	    r.rip != c->gadget + 2) {
		err_set("pid %d: injected clone did not end after the gadget", c->pid);
		goto fail;
	}
	if ((int64_t)r.rax < 0 || !*child) {
		errno = (int)-(int64_t)r.rax;
		err_sys("pid %d: cannot fork a snapshot of it", c->pid);
		goto fail;
	}
	/* The child's first stop: it has not run an instruction. */
	for (;;) {
		if (waitpid(*child, &status, __WALL) < 0) {
			if (errno == EINTR)
				continue;
			err_sys("pid %d: cannot wait for its snapshot %d", c->pid, *child);
			goto fail;
		}
		if (WIFSTOPPED(status))
			break;
		err_set("pid %d: its snapshot %d died before it stopped", c->pid, *child);
		goto fail;
	}
	ptrace(PTRACE_SETOPTIONS, c->pid, 0, 0);
	return 0;
fail:
	ptrace(PTRACE_SETOPTIONS, c->pid, 0, 0);
	if (*child > 0) {
		kill(*child, SIGKILL);
		while (waitpid(*child, &status, __WALL) < 0 && errno == EINTR)
			;
		if (inj_reap(c, *child))
			warnx("pid %d: its dead snapshot %d is left for it to reap", c->pid, *child);
	}
	*child = 0;
	return -1;
}

int inj_reap(struct inj *c, pid_t child)
{
	uint64_t a[6] = {(uint64_t)child, 0, __WCLONE | WNOHANG, 0, 0, 0};
	int64_t ret;

	if (inj_syscall(c, SYS_wait4, a, &ret))
		return -1;
	if (ret != child) {
		err_set("pid %d: reaping its snapshot %d: wait4 gave %lld", c->pid, child,
			(long long)ret);
		return -1;
	}
	return 0;
}

int inj_peek(struct inj *c, void *buf, size_t len)
{
	return mem_rw(c->pid, c->scratch, buf, len > INJ_SCRATCH ? INJ_SCRATCH : len, 0);
}

int inj_cure(struct inj *c)
{
	int rc = 0;

	if (!c->infected)
		return 0;
	if (mem_rw(c->pid, c->scratch, c->scratch_saved, INJ_SCRATCH, 1))
		rc = -1;
	if (pt_set_regs(c->pid, &c->saved))
		rc = -1;
	if (pt_set_sigmask(c->pid, c->saved_mask))
		rc = -1;
	if (rc == 0)
		c->infected = 0;
	return rc;
}
