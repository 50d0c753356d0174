/* ipc.h: System V semaphore sets and message queues.
 *
 * They belong to an IPC namespace, not to a process, and the kernel does
 * not say which process created or uses one.  ckpt-dump saves those of the
 * process's namespace that its user created (cuid) and that no other live
 * process used last (the sempid of each semaphore, a queue's last sender
 * and receiver): a program's own semaphores and queues, not those of
 * another program of the same user that it never touched.
 *
 * ckpt-remap gives each back under its old id, which the program holds:
 * where the set or queue still exists (same id, same key, same size) and no
 * other live process used it last, its contents are set back to the
 * checkpoint's; where it is gone, it is made again under its old id
 * (writing sem_next_id or msg_next_id, which needs CAP_CHECKPOINT_RESTORE
 * in the IPC namespace's user namespace).  Anything else (another process
 * uses it, the id cannot be had) refuses the restore before anything
 * changes, naming it. */
#ifndef CKPT_IPC_H
#define CKPT_IPC_H

#include <sys/types.h>

#include "image.h"

int ipc_capture(pid_t pid, struct image *im) __attribute__((warn_unused_result));
/* Make every set and queue of im again, or set it back; one line on
 * stderr for each that is set back.  -1 with err_set. */
int ipc_restore(const struct image *im) __attribute__((warn_unused_result));

#endif
