/* restart.c: what a thread stopped inside a system call does next. */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "target/target.h"

#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516

/* Calls that a stop ends with EINTR though no handler ran (signal(7)). */
static int eintr_on_stop(long long nr)
{
	switch (nr) {
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
	case SYS_epoll_pwait2:
	case SYS_rt_sigtimedwait:
	case SYS_semop:
	case SYS_semtimedop:
	case SYS_io_getevents:
		return 1;
	default:
		return 0;
	}
}

static void again(struct user_regs_struct *r)
{
	r->rax = r->orig_rax;
	r->rip -= 2; /* the syscall instruction */
}

int restart_undo_stop_eintr(struct user_regs_struct *r, int handler_pending)
{
	if ((long long)r->orig_rax < 0 || (long long)r->rax != -EINTR || handler_pending ||
	    !eintr_on_stop((long long)r->orig_rax))
		return 0;
	again(r);
	return 1;
}

void restart_regs(struct user_regs_struct *r, int handler_pending)
{
	long long rax = (long long)r->rax;

	if ((long long)r->orig_rax < 0)
		return;
	if (restart_undo_stop_eintr(r, handler_pending))
		return;
	if (rax != -ERESTARTSYS && rax != -ERESTARTNOINTR && rax != -ERESTARTNOHAND &&
	    rax != -ERESTART_RESTARTBLOCK)
		return;
	again(r);
	/* -ERESTART_RESTARTBLOCK: the kernel's restart block (the time a
	 * relative sleep had left) did not survive.  A sleep given a rem
	 * pointer has that time there, written when the dump interrupted it:
	 * sleep on it (req := rem).  The argument register then differs after
	 * the call, which the syscall ABI lets a caller assume unchanged;
	 * glibc's wrappers do not look at it again.  Without rem, the sleep
	 * starts over. */
	if (rax == -ERESTART_RESTARTBLOCK) {
		if (r->orig_rax == SYS_clock_nanosleep && !(r->rsi & TIMER_ABSTIME) && r->r10)
			r->rdx = r->r10;
		else if (r->orig_rax == SYS_nanosleep && r->rsi)
			r->rdi = r->rsi;
	}
}

int restart_handler_pending(const struct image *im, size_t k)
{
	const struct img_thread *t = &im->threads[k].d;

	for (size_t i = 0; i < im->nsigq; i++) {
		const struct sigqueue *q = &im->sigq[i];

		if (q->d.tid != 0 && q->d.tid != t->tid)
			continue;
		for (uint32_t n = 0; n < q->d.count; n++) {
			int32_t sig;

			memcpy(&sig, q->info + (size_t)n * IMG_SIGINFO_SIZE, 4);
			if (sig < 1 || sig > IMG_NSIG || (t->sigmask & (1ull << (sig - 1))))
				continue;
			if (im->sigacts[sig - 1].handler > 1)
				return 1;
		}
	}
	return 0;
}
