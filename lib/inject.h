/* inject.h: run a system call inside a stopped thread, and undo.
 *
 * The lifecycle follows CRIU's compel: prepare (remember the registers and
 * signal mask, block every signal), call (as often as needed), cure (put
 * registers, mask and scratch memory back).  No text is ever written: the
 * call runs by single-stepping a `syscall` instruction the target already
 * has (in its vDSO), so the only state we change is registers, signal mask
 * and a few bytes of stack below the red zone, all restored by cure.
 *
 * If ckpt-dump is killed with SIGKILL between prepare and cure, the kernel
 * detaches the thread with the registers we set: it would resume at the
 * syscall instruction with our arguments and then run on from a wrong
 * address.  The window is a handful of ptrace calls; ckpt-dump blocks
 * SIGINT, SIGTERM and SIGHUP for its length, so only SIGKILL can hit it. */
#ifndef CKPT_INJECT_H
#define CKPT_INJECT_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#define INJ_SCRATCH 256

struct inj {
	pid_t pid;
	struct user_regs_struct saved;
	uint64_t saved_mask;
	uint64_t gadget;  /* address of a syscall instruction in the target */
	uint64_t scratch; /* INJ_SCRATCH bytes below the stack's red zone */
	unsigned char scratch_saved[INJ_SCRATCH];
	int infected;
};

/* Find a syscall instruction in the target's [vdso] (at [vstart, vend)). */
int inj_find_gadget(pid_t pid, uint64_t vstart, uint64_t vend, uint64_t *gadget)
	__attribute__((warn_unused_result));
int inj_prepare(struct inj *c, pid_t pid, uint64_t gadget) __attribute__((warn_unused_result));
/* Run syscall nr with up to six arguments; *ret gets rax. */
int inj_syscall(struct inj *c, long nr, const uint64_t args[6], int64_t *ret)
	__attribute__((warn_unused_result));
/* A copy-on-write snapshot of the process: an injected clone(2) without
 * CLONE_VM and without an exit signal, whose child starts stopped under
 * our ptrace before it runs an instruction.  Its memory is the process's
 * at this moment, but for MADV_DONTFORK regions (absent) and
 * MADV_WIPEONFORK ones (zero).  The child is the process's: once we have
 * killed it, only the process can reap it (inj_reap). */
int inj_snapshot(struct inj *c, pid_t *child) __attribute__((warn_unused_result));
/* Reap the dead snapshot child in the process (wait4 with __WCLONE). */
int inj_reap(struct inj *c, pid_t child) __attribute__((warn_unused_result));
/* Copy bytes out of / into the scratch area. */
int inj_peek(struct inj *c, void *buf, size_t len) __attribute__((warn_unused_result));
int inj_cure(struct inj *c) __attribute__((warn_unused_result));

#endif
