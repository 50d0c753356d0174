/* kinds.h: the kinds of object a process holds beside its memory: file descriptors (fd_), shared
 * memory objects (shm_), System V IPC (ipc_). */
#ifndef CKPT_KINDS_H
#define CKPT_KINDS_H

#include <stdio.h>
#include <sys/types.h>

#include "image/image.h"
#include "target/target.h"

/* ---- fd: a process's open files, captured and made again.  Each kind of fd
 * (IMG_FD_*) is one file of kinds/ behind one table of operations
 * (kinds-internal.h); the functions below go through it. */

/* The name of fd kind (IMG_FD_*), "?" for a number that is none. */
const char *fd_kind_name(uint32_t kind);

/* What the user asked of the capture (ckpt-dump's options): FD_OPT_*. */
enum {
	FD_OPT_KILL = 1 << 0,		   /* the dump ends with --kill: no need to give back */
	FD_OPT_TCP_CLOSE = 1 << 1,	   /* --tcp-close */
	FD_OPT_TCP_ESTABLISHED = 1 << 2,   /* --tcp-established */
	FD_OPT_EXT_UNIX_RECONNECT = 1 << 3, /* --ext-unix=reconnect */
	FD_OPT_EXT_UNIX_CLOSE = 1 << 4,	   /* --ext-unix=close */
};

/* Every open fd of pid into im->files, or -1 naming the fd that cannot be
 * captured (its kind).  opts: FD_OPT_*. */
int fd_capture(pid_t pid, struct image *im, uint32_t opts) __attribute__((warn_unused_result));
/* Once every process of a tree (or the one process) is captured: the fds
 * that join processes.  Every socketpair must have both ends in the tree;
 * a pipe whose other end is outside becomes an inherited stream on fd
 * 0-2 and is marked IMG_PIPE_OUTSIDE elsewhere; the contents of each are
 * kept once; fds that share an open file description get one desc id
 * (kcmp(2)).  -1 naming an fd that cannot be restored. */
int fd_check_tree(struct image *ims[], size_t n, uint32_t opts) __attribute__((warn_unused_result));
/* The TCP connections whose both ends the processes pids hold close
 * abortively (SO_LINGER 0: a reset, no TIME_WAIT) when they are killed:
 * the restore makes them again on the same addresses at once (tcp.c). */
void fd_tcp_abort_pairs(const pid_t *pids, size_t n);
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
		const struct fd_entry *f; /* unix: a connection to make once every fd is */
	} * p;
	size_t n;
	/* 1: this process leads the session that a /dev/tty of the image's
	 * (IMG_TTY_CTTY) needs, so its pty becomes our controlling terminal
	 * (fd_take_session); 0 (a tree's supervisor): /dev/tty is made as the
	 * pty's slave, for the session leader to take (spawn.c, take_ctty). */
	int session;
	/* Files in flight made so far (fd_flight_made): their marks, and a
	 * duplicate of each, passed again by the sockets' queues. */
	struct fd_made {
		int32_t mark;
		int fd;
	} * fl;
	size_t nfl;
};

/* Make the pipe, FIFO, unix socket, terminal, inotify, eventfd, signalfd,
 * timerfd or epoll instance of f again,
 * open (close-on-exec) at any fd number; -1 with err_set. */
int fd_make(const struct fd_entry *f, struct fd_pipes *pipes) __attribute__((warn_unused_result));
/* An fd each process of a tree makes itself once every process exists
 * (a pidfd, a namespace file), not one the tree inherits. */
int fd_in_process(const struct fd_entry *f);
/* The process that must exist before f, a file each process makes itself
 * (a pidfd of a process of the tree, a file of /proc/PID), can be made;
 * 0 when none does. */
pid_t fd_own_needs(const struct fd_entry *f);
/* Once every fd is made: what needs all of them (a pty slave's lock).
 * -1 with err_set. */
int fd_pipes_done(struct fd_pipes *pipes) __attribute__((warn_unused_result));
void fd_pipes_close(struct fd_pipes *pipes);
/* f is a file in flight (its fd negative, a mark), made as fd: kept (a
 * duplicate) for the queue of messages that carries it.  -1 with err_set. */
int fd_flight_made(struct fd_pipes *pipes, const struct fd_entry *f, int fd)
	__attribute__((warn_unused_result));
/* A terminal standard stream that the restoring process's own stands for. */
int fd_tty_inherits(const struct fd_entry *f);
/* A process whose /dev/tty was a pty of its own led its session: this one
 * must too, before its files are made (setsid, unless it leads one
 * already).  -1 with err_set where it did not, or setsid fails. */
int fd_take_session(const struct image *im, struct fd_pipes *pipes)
	__attribute__((warn_unused_result));
/* Put the termios and window size of terminal f on fd, if it is a
 * terminal (an inherited standard stream may not be).  -1 with err_set. */
int fd_tty_settings(int fd, const struct fd_entry *f) __attribute__((warn_unused_result));
/* After the files are at their numbers: register each epoll instance's
 * watches again.  -1 with err_set. */
int fd_epoll_register(const struct image *im) __attribute__((warn_unused_result));
/* In a tree, before it forks: the epoll watches whose file only another
 * process of the tree holds, added on the instances ckpt-remap made
 * (made[k][i] for file i of ims[k], -1 where none); -1 with err_set. */
int fd_epoll_register_other(const struct image *const ims[], int *const made[], size_t n)
    __attribute__((warn_unused_result));
/* ckpt-remap --net-ns: whether f, an fd of process pid, can be made in a
 * new net namespace that has lo alone (netns.c): -1 with err_set naming
 * what it cannot (an address other than loopback, a peer outside). */
int fd_net_ns_check(pid_t pid, const struct fd_entry *f) __attribute__((warn_unused_result));

/* ---- peer: connections to other members of a coordinated computation
 * (peer.c; coord/ pairs and drains them). */
struct fd_peer_end {
	pid_t pid;
	int fd;
	uint32_t kind; /* IMG_PEER_* */
	uint64_t ino;
	char local[96], remote[96]; /* TCP: addr:port as each side names them; a pipe:
				     * pipe:HOST:INODE:0 for its read end, :1 write; unix:
				     * unix:HOST:INODE, its own and its peer's */
};
/* The ends the processes pids (a member's tree, pids[0] its root) hold
 * whose other end no process of them holds: established or half-closed TCP
 * connections, connected unix stream sockets, pipe ends.
 * *ends malloc'd; -1 with err_set. */
int fd_peer_ends(const pid_t *pids, size_t n, struct fd_peer_end **ends, size_t *nends)
	__attribute__((warn_unused_result));
/* An end the next capture records as IMG_FD_PEER: its socket's or
 * pipe's inode, its record, and the p.nbytes bytes in flight to it. */
struct fd_peer_mark {
	uint64_t ino;
	struct img_peer p;
	const unsigned char *bytes;
};
/* The ends the captures record as peers from now on (n 0: none); the
 * table stays the caller's. */
void fd_peer_marks(const struct fd_peer_mark *m, size_t n);
/* The options f's record keeps (IMG_PEER_OPTS: TCP_NODELAY, keepalive),
 * set on fd, the new socket a restart made for it. */
void fd_peer_options(int fd, const struct fd_entry *f);
/* The bytes in pipe fd of pid, left in it (tee(2)): the pipe's size,
 * and *len bytes in *data (malloc'd); -1 with err_set. */
int fd_pipe_peek(pid_t pid, int fd, uint32_t *size, unsigned char **data, uint32_t *len)
	__attribute__((warn_unused_result));
/* f, an fd of process pid (as the image has it), is a peer that
 * --inherit-fd does not give: -1 with err_set saying that only a restart
 * through the coordinator makes it; else 0. */
int fd_peer_refuse(pid_t pid, const struct fd_entry *f) __attribute__((warn_unused_result));
/* io_uring instances (uring.c).  Dumping: every ring mapped in im is of
 * an instance an fd of im holds, and every instance is mapped; -1 naming
 * the region or fd.  Restoring: a new fd of the memory made for the
 * instance of inode ino (fd_make), len bytes of which the region at mmap
 * offset pgoff maps from *off on; -1 with err_set. */
int fd_uring_check_maps(pid_t pid, const struct image *im) __attribute__((warn_unused_result));
int fd_uring_memory(struct fd_pipes *pipes, uint64_t ino, uint64_t pgoff, uint64_t len,
		    uint64_t *off) __attribute__((warn_unused_result));

/* Reading an image: the extra bytes of FILE record idx, f, are what its
 * kind needs, or -1 naming it.  The image reader (image/) knows no kinds:
 * whoever reads an image (img_open) gives it this as its check_file. */
int fd_check_file(const struct fd_entry *f, size_t idx) __attribute__((warn_unused_result));
/* Inspecting an fd: what its kind keeps beyond its path, " key value..."
 * in text, ",\"key\":value..." in JSON... */
void fd_show(FILE *out, const struct fd_entry *f, int json);
/* ...and what follows it: lines of their own in text (an inotify
 * instance's watches), a list in JSON. */
void fd_show_list(FILE *out, const struct fd_entry *f, int json);

/* A regular file's locks (IMG_FD_REG): how many its FILE record keeps
 * (the reader checked them), and lock i of them. */
/* A directory or FIFO (mode's type and permissions) like the one at
 * link ("PATH (deleted)"), made again and removed again: at PATH where
 * it is free, else beside it, else in $TMPDIR or /tmp.  An fd of it
 * (O_PATH for a directory, read-write non-blocking for a FIFO),
 * close-on-exec; -1 with err_set. */
int fd_make_deleted(const char *link, mode_t mode);
/* Put the pids im's fds keep (a pidfd's process) as map gives them: a
 * tree in a pid namespace not the dumper's records its own view. */
void fd_map_pids(struct image *im, pid_t (*map)(void *arg, pid_t pid), void *arg);
/* The pid of a /proc/PID or /proc/PID/... path, or 0. */
pid_t fd_proc_pid(const char *path);
/* The TID of a path /proc/PID/task/TID[/...], else 0. */
pid_t fd_proc_tid(const char *path);
uint32_t fd_file_nlocks(const struct fd_entry *f);
void fd_file_lock(const struct fd_entry *f, uint32_t i, struct img_lock *l);

/* ---- shm: memory objects and files that exist only inside the process
 * (shared anonymous memory, memfds, System V segments, deleted files):
 * their contents go into the image, and a restore makes them again.
 *
 * The contents are read, in order of preference, from a file the dumper can
 * open: the process's own fd to the object, /proc/PID/map_files (needs
 * CAP_CHECKPOINT_RESTORE), or /proc/PID/exe.  When none opens, a shared
 * mapping is read through the process's memory, only the pages mincore(2)
 * (run inside the process) says are resident: reading a hole would fill it. */

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
	      const uint64_t *number) __attribute__((warn_unused_result));
void shm_dump_free(struct shm_dump *sd);

/* Restoring: each object made again, in im->shms order. */
struct shm_made {
	int *fd;    /* a file of it, O_RDWR (System V: -1) */
	int *shmid; /* System V: the segment, else -1 */
	int *created; /* System V: made by us (removed again if the restore fails) */
	int *dirfd;   /* a tmpfs file: its directory (O_PATH), until it is renamed in... */
	char **tmp;   /* ...from this name beside it, or NULL */
	size_t n;
};
/* Make every object and fill it from the SHMDATA records that follow the
 * metadata; put each saved file back at its path where it is missing or
 * changed (one line on stderr says so); make each tmpfs file again as a
 * new file, written aside in its directory and renamed over its path.  The header of the record after
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

/* ---- ipc: System V semaphore sets and message queues.
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

int ipc_capture(pid_t pid, struct image *im) __attribute__((warn_unused_result));
/* Make every set and queue of im again, or set it back; one line on
 * stderr for each that is set back.  -1 with err_set. */
int ipc_restore(const struct image *im) __attribute__((warn_unused_result));

#endif
