/* restart.h: what a thread stopped inside a system call does next.
 *
 * When ckpt-dump stops a thread that sleeps in a system call, the kernel
 * ends the call with an -ERESTART* code, which it turns into a restart on
 * the way back to user space, or -- for epoll_wait, sigtimedwait, semop
 * and a few others (signal(7), "Interruption of system call and library
 * functions by stop signals") -- with -EINTR even when no handler runs.
 * A restored thread must carry on as if never stopped, and so must the
 * dumped process when it goes on running. */
#ifndef CKPT_RESTART_H
#define CKPT_RESTART_H

#include <stddef.h>
#include <sys/user.h>

#include "image.h"

/* Set r, the registers of a restored thread, to run its interrupted
 * system call again where the kernel would restart it, or where our stop
 * alone made it fail with EINTR (handler_pending: a signal with a handler
 * waits for the thread, so that EINTR is the program's to see). */
void restart_regs(struct user_regs_struct *r, int handler_pending);
/* For a thread that goes on running: undo an EINTR our stop caused.
 * Returns 1 if r changed. */
int restart_undo_stop_eintr(struct user_regs_struct *r, int handler_pending);
/* Whether thread k of im has a signal pending, on its queue or the
 * process's, that it does not block and that has a handler. */
int restart_handler_pending(const struct image *im, size_t k);

#endif
