/* fd.h: a process's open files, captured and made again. */
#ifndef CKPT_FD_H
#define CKPT_FD_H

#include <sys/types.h>

#include "image.h"

/* Every open fd of pid into im->files, or -1 naming the fd that cannot be
 * captured (its kind). */
int fd_capture(pid_t pid, struct image *im) __attribute__((warn_unused_result));
/* Once every process of a tree (or the one process) is captured: the fds
 * that join processes.  Every socketpair must have both ends in the tree;
 * a pipe whose other end is outside becomes an inherited stream on fd
 * 0-2 and is marked IMG_PIPE_OUTSIDE elsewhere; the contents of each are
 * kept once; fds that share an open file description get one desc id
 * (kcmp(2)).  -1 naming an fd that cannot be restored. */
int fd_check_tree(struct image *ims[], size_t n) __attribute__((warn_unused_result));
/* Pipes, socketpairs and pty pairs made so far, so that every fd of one
 * gets the same one. */
struct fd_pipes {
	struct fd_pipe {
		uint32_t kind; /* IMG_FD_PIPE, IMG_FD_UNIX, IMG_FD_TTY */
		uint32_t seen; /* ends met so far: bit 0, bit 1 */
		uint64_t id;
		int end[2];	  /* read, write; a socketpair's two ends; ptmx, pts */
		uint32_t shut[2]; /* socketpair: each end's shutdown, applied once both are
				   * seen; pty: shut[0] 1 to lock the slave again */
	} * p;
	size_t n;
};

/* Make the pipe, FIFO, unix socket, terminal, inotify, eventfd, signalfd,
 * timerfd or epoll instance of f again,
 * open (close-on-exec) at any fd number; -1 with err_set. */
int fd_make(const struct fd_entry *f, struct fd_pipes *pipes) __attribute__((warn_unused_result));
/* Once every fd is made: what needs all of them (a pty slave's lock).
 * -1 with err_set. */
int fd_pipes_done(struct fd_pipes *pipes) __attribute__((warn_unused_result));
void fd_pipes_close(struct fd_pipes *pipes);
/* Put the termios and window size of terminal f on fd, if it is a
 * terminal (an inherited standard stream may not be).  -1 with err_set. */
/* A terminal standard stream that the restoring process's own stands for. */
int fd_tty_inherits(const struct fd_entry *f);
int fd_tty_settings(int fd, const struct fd_entry *f) __attribute__((warn_unused_result));
/* After the files are at their numbers: register each epoll instance's
 * watches again.  -1 with err_set. */
int fd_epoll_register(const struct image *im) __attribute__((warn_unused_result));

#endif
