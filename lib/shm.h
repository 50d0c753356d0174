/* shm.h: memory objects and files that exist only inside the process
 * (shared anonymous memory, memfds, System V segments, deleted files):
 * their contents go into the image, and a restore makes them again.
 *
 * The contents are read, in order of preference, from a file the dumper can
 * open: the process's own fd to the object, /proc/PID/map_files (needs
 * CAP_CHECKPOINT_RESTORE), or /proc/PID/exe.  When none opens, a shared
 * mapping is read through the process's memory, only the pages mincore(2)
 * (run inside the process) says are resident: reading a hole would fill it. */
#ifndef CKPT_SHM_H
#define CKPT_SHM_H

#include <sys/types.h>

#include "dump.h"
#include "image.h"
#include "inject.h"

/* Dumping. */
struct shm_dump;
/* Every object the regions and fds of kind shm of im name, into im->shms,
 * each with a source for its contents; with save_files, every regular file
 * open on an fd too (up to save_max bytes, unless 0). */
int shm_capture(pid_t pid, struct image *im, int save_files, uint64_t save_max,
		struct shm_dump **sd)
	__attribute__((warn_unused_result));
/* Inside the stopped process: residency of objects without a file. */
int shm_inject(struct inj *c, const struct image *im, struct shm_dump *sd)
	__attribute__((warn_unused_result));
/* SHMDATA records for every object, after the DATA record.  number, if
 * set, numbers each object in the stream (a tree's objects are numbered
 * across its processes), UINT64_MAX for one another process wrote. */
int shm_write(pid_t pid, struct img_writer *w, const struct image *im, struct shm_dump *sd,
	      const struct dump_opts *o, const uint64_t *number) __attribute__((warn_unused_result));
void shm_dump_free(struct shm_dump *sd);

/* Restoring: each object made again, in im->shms order. */
struct shm_made {
	int *fd;    /* a file of it, O_RDWR (System V: -1) */
	int *shmid; /* System V: the segment, else -1 */
	int *created; /* System V: made by us (removed again if the restore fails) */
	size_t n;
};
/* Make every object and fill it from the SHMDATA records that follow the
 * metadata; put each saved file back at its path where it is missing or
 * changed (one line on stderr says so).  The header of the record after
 * them is read: it is left in *next.  -1 with err_set. */
int shm_make(struct img_input *in, struct shm_made *sm, struct img_rec *next)
	__attribute__((warn_unused_result));
/* The index of the object region or fd f names (it exists: the reader
 * checked). */
size_t shm_index(const struct image *im, uint64_t dev, uint64_t ino);
/* An fd of kind shm: a new open file description of its object, with the
 * image's flags and offset, close-on-exec. */
int shm_open_fd(const struct image *im, const struct shm_made *sm, const struct fd_entry *f)
	__attribute__((warn_unused_result));
/* Close what shm_make made; if the restore failed, remove the System V
 * segments it created. */
void shm_made_free(struct shm_made *sm, int failed);

#endif
