/* ptrace.h: seize, interrupt, registers, detach. */
#ifndef CKPT_PTRACE_H
#define CKPT_PTRACE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

struct rseq_conf {
	uint64_t addr;
	uint32_t len, sig, flags, pad;
};

/* Seize pid and bring it to a ptrace stop.  A signal that arrives while we
 * wait is delivered to the program as usual (we pass it on), never lost. */
int pt_seize(pid_t pid) __attribute__((warn_unused_result));
int pt_get_regs(pid_t pid, struct user_regs_struct *r) __attribute__((warn_unused_result));
int pt_set_regs(pid_t pid, const struct user_regs_struct *r) __attribute__((warn_unused_result));
/* XSAVE area (NT_X86_XSTATE); *len in: buffer size, out: bytes filled. */
int pt_get_xstate(pid_t pid, void *buf, size_t *len) __attribute__((warn_unused_result));
int pt_get_sigmask(pid_t pid, uint64_t *mask) __attribute__((warn_unused_result));
int pt_set_sigmask(pid_t pid, uint64_t mask) __attribute__((warn_unused_result));
int pt_get_rseq(pid_t pid, struct rseq_conf *c) __attribute__((warn_unused_result));
/* Let it go: sig 0 continues it, SIGSTOP leaves it stopped. */
int pt_detach(pid_t pid, int sig);
/* Wait for the next stop of a tracee; -1 if it exited or was killed. */
int pt_wait(pid_t pid, int *status) __attribute__((warn_unused_result));

#endif
