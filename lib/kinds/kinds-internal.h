/* kinds-internal.h: the table of fd kinds, one struct fd_ops per kind (CRIU's file_desc_ops is
 * the model), and what the files of kinds/ share. */
#ifndef CKPT_KINDS_INTERNAL_H
#define CKPT_KINDS_INTERNAL_H

#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "kinds/kinds.h"

/* What the capture of one fd starts from. */
struct fd_source {
	pid_t pid;
	const char *link;      /* where /proc/PID/fd/FD points */
	const struct stat *sb; /* the file it is open on */
	const char *info;      /* /proc/PID/fdinfo/FD for an anonymous inode, else NULL */
	uint32_t opts;	       /* FD_OPT_* */
	/* Where a peek puts the fds a message carries (scm.c). */
	struct fd_flight *flight;
};

/* Files in flight (scm.c): the copies of the fds that messages queued on a
 * unix socket carry (SCM_RIGHTS), which a peek with room for control
 * messages put in the dumper.  The capture of the socket's fd leaves them
 * here; fd_capture captures each as a FILE record whose fd is its mark,
 * -1 - the dumper's fd (negative: no fd number of the process), and the
 * dumper's copy stays open until fd_check_tree has joined and compared
 * them (kcmp) with the tree's fds. */
struct fd_flight {
	int *fd;
	int *from; /* the fd of the process whose queue carries it... */
	size_t n;
	int cur; /* ...the one being captured */
};
/* A capture of a file in flight (fd_source.opts): a message queued on it
 * that carries fds again is refused. */
#define FD_OPT_INFLIGHT (1u << 31)
/* Keep dumper's fd in fl: its mark, or 0 (out of memory, fd closed). */
int32_t fd_flight_add(struct fd_flight *fl, int fd);
/* The fds SCM_RIGHTS control messages of mh hold, up to max into fds (the
 * others closed); how many. */
size_t fd_scm_fds(struct msghdr *mh, int *fds, size_t max);
/* Whether a file of kind can be taken in flight: one a restore makes
 * without a process fd number behind it. */
int fd_flight_kind(uint32_t kind);
/* The fd made for mark, or -1 with err_set naming fd (the socket's). */
int fd_flight_get(const struct fd_pipes *pipes, int32_t mark, int fd);
/* sendmsg of len bytes at buf to s (to tl bytes at to, if tl), with the
 * made fds of n marks (4 bytes each at marks, any alignment) as
 * SCM_RIGHTS; fd names the socket in errors.  Bytes sent, or -1 with
 * err_set (errno kept). */
ssize_t fd_send_rights(int s, const void *buf, size_t len, const void *to, socklen_t tl,
		       const unsigned char *marks, uint32_t n, const struct fd_pipes *pipes,
		       int fd);

/* The fds of every process of a tree, as one list: pipes, socketpairs,
 * FIFOs and pty pairs may join fds of several processes. */
struct fd_all {
	struct fd_entry **f;
	pid_t *pid;
	size_t n;
	uint32_t opts; /* FD_OPT_* */
	const pid_t *procs; /* the pid of every process, zombies too */
	size_t nprocs;
};

/* One kind of fd (IMG_FD_*): what each step does with it.  A step a kind
 * does not need is NULL; restore/ reopens files, directories and devices
 * itself (they are paths), and standard streams are its own. */
struct fd_ops {
	const char *name;
	/* An anonymous-inode kind: its fd's link ("anon_inode:[eventfd]"). */
	const char *anon;
	/* Dumping: its extra bytes from the process, into f; -1 naming the fd. */
	int (*capture)(const struct fd_source *src, struct fd_entry *f);
	/* Once every process is captured: what joins fds of several
	 * processes (both ends there, each queue kept once); -1 naming an fd. */
	int (*join)(struct fd_all *a);
	/* Reading an image: the extra bytes of its FILE record are what
	 * the kind needs (make and show rely on it); 0, or -1. */
	int (*check)(const unsigned char *x, uint32_t n);
	/* Restoring: open it again, close-on-exec, at any number; -1 with
	 * err_set. */
	int (*make)(const struct fd_entry *f, struct fd_pipes *pipes);
	/* Inspecting: what it keeps beyond its path, " key value..." in
	 * text, ",\"key\":value..." in JSON... */
	void (*show)(FILE *out, const struct fd_entry *f, int json);
	/* ...and what follows: lines of their own in text, a list in JSON. */
	void (*show_list)(FILE *out, const struct fd_entry *f, int json);
};

extern const struct fd_ops fd_file_ops, fd_dir_ops, fd_chr_ops, fd_inherit_ops, fd_shm_ops;
extern const struct fd_ops fd_pipe_ops, fd_fifo_ops, fd_unix_ops, fd_tty_ops;
extern const struct fd_ops fd_eventfd_ops, fd_signalfd_ops, fd_timerfd_ops, fd_epoll_ops;
extern const struct fd_ops fd_inotify_ops, fd_sock_ops, fd_opath_ops;
extern const struct fd_ops fd_tcp_ops;
extern const struct fd_ops fd_inotify_ops, fd_sock_ops, fd_opath_ops, fd_deleted_ops;
extern const struct fd_ops fd_netlink_ops;
extern const struct fd_ops fd_pidfd_ops, fd_nsfile_ops, fd_mqueue_ops;
extern const struct fd_ops fd_peer_ops;
/* An end that fd_peer_marks names (peer.c). */
int fd_peer_is(const struct fd_source *src);
extern const struct fd_ops fd_uring_ops;

/* What sock_diag tells of one socket (sock.c). */
struct fd_diag {
	uint32_t peer;	  /* unix: the peer's inode, 0 if none */
	uint8_t state;	  /* TCP_* */
	uint8_t shutdown; /* unix: what was shut down (SHUTDOWN attribute) */
	int named;	  /* unix: bound to an address */
	uint32_t rqueue;  /* listening: connections not accepted yet */
	uint32_t wqueue;  /* listening: the backlog; unix: bytes sent, not yet read */
	int found;
	int vfs;	  /* unix: holds a path name it bound itself (VFS attribute) */
	uint32_t vfs_ino; /* unix, vfs: the inode of its socket file, and the */
	uint32_t vfs_dev; /* kernel's dev_t of its file system */
	uint32_t nicons;  /* unix listening: connections not accepted yet (ICONS)... */
	uint32_t icons[256]; /* ...their clients' inodes, oldest first */
	uint32_t inode;	     /* TCP (fd_tcp_diag): its socket's inode, 0 if no file has it */
	uint32_t sent_ago;   /* TCP: ms since it last sent data (or was made) */
};
/* The unix socket of inode ino, asked of NETLINK_SOCK_DIAG (no privilege
 * needed in one's own network namespace); -1 with errno if none. */
int fd_unix_diag(uint64_t ino, struct fd_diag *d);
/* The TCP socket of family from src:sport to dst:dport (ports in host
 * order, addresses as struct img_tcp has them), or the listening one of
 * inode ino, asked of NETLINK_SOCK_DIAG in the net namespace of process
 * pid (0: ours); -1 with errno if none (sock.c). */
int fd_tcp_diag(pid_t pid, int family, const uint8_t src[16], uint16_t sport,
		const uint8_t dst[16], uint16_t dport, struct fd_diag *d);
int fd_tcp_listen_diag(pid_t pid, int family, uint64_t ino, struct fd_diag *d);
/* Local TCP port port of family, which a bind found in use, once only
 * sockets no process has hold it (connections in TIME-WAIT, or closed
 * and finishing, FIN-WAIT-2 and the like, after a kill): those destroyed
 * (SOCK_DESTROY, where we may), or waited for (as long as their timers
 * say, 65 s at most, said on stderr once, naming fd); 0 when it is free,
 * -1 if a process's socket holds it or the wait ran out, and then
 * fd_tcp_port_holder(port) says which, as " (a process's listen socket)"
 * ("" for a port the last wait was not about) (sock.c). */
int fd_tcp_port_wait(int family, uint16_t port, int fd);
const char *fd_tcp_port_holder(uint16_t port);
/* The directory of absolute path, reached from / one component at a time
 * without following a symlink; with make, missing directories made 0700;
 * its fd in *dfd (-1 if one is missing and not made), or -1 with err_set
 * (shm.c). */
int fd_walk_dir(const char *path, int make, int *dfd);
/* A socket address as text: 127.0.0.1:80, [::1]:80, /path, @abstract,
 * or "unbound" (sock.c). */
const char *fd_sock_addr_text(const void *sa, size_t len, char *buf, size_t size);
/* v, a socket's SO_SNDBUF or SO_RCVBUF (opt), or 0 when a new socket of
 * its family, type and protocol has the same: the program did not set it. */
uint32_t fd_sock_buf_set(int family, int type, int protocol, int opt, int v);

/* A datagram socket joined to no peer (sockq.c): the bytes after its
 * address in its IMG_FD_SOCK record (img_sock_dgram).  Capturing: a UDP
 * socket's peer and the datagrams queued on s (src's fd), peeked, into
 * *out (malloc'd; none, *len 0, when there is neither), the fds they
 * carry into src->flight; -1 naming the fd. */
int fd_dgram_capture(const struct fd_source *src, int fd, int s, int family, const void *sa,
		     size_t salen, unsigned char **out, size_t *len);
/* Reading: the n bytes at x are well formed for a socket of family. */
int fd_dgram_check(const unsigned char *x, size_t n, int family);
/* Making: s, made and bound, connected to its peer again and kept in pipes
 * until fd_dgram_refill; -1 with err_set. */
int fd_dgram_made(const struct fd_entry *f, const unsigned char *x, size_t n, int s,
		  struct fd_pipes *pipes);
/* Once every fd is made: each queue put back, each datagram sent from
 * its sender's address (a socket of the tree's bound there, else one of
 * ours).  -1 with err_set. */
int fd_dgram_refill(struct fd_pipes *pipes);
/* Showing: the peer's address length (0: not connected); peer, queued
 * bytes and datagrams. */
uint32_t fd_dgram_peer(const unsigned char *x, size_t n);
void fd_dgram_show(FILE *out, const unsigned char *x, size_t n, int json);
/* A unix path name about to be bound by a socket of type: a stale socket
 * file there is removed; a file that is no socket, or a socket someone
 * listens on, is refused naming fd; 0 when it is free. */
int fd_unix_path_free(int fd, int type, const void *sa, uint32_t len, const char *path);
/* The path of unix address sa (NUL-terminated in buf, which holds
 * sizeof(sun_path) + 1 bytes); NULL for an abstract name or none. */
const char *fd_unix_path(const void *sa, size_t len, char *buf);
/* The listening unix socket made so far that is bound to address sa, or
 * -1 (sock.c registers each with fd_unix_listening). */
int fd_unix_listener(struct fd_pipes *pipes, const void *sa, uint32_t len);
int fd_unix_listening(struct fd_pipes *pipes, int s, const void *sa, uint32_t len);
/* Once every fd is made: the connections that wait to be accepted, in
 * their listeners' queues (unixpair.c).  -1 with err_set. */
int fd_unix_done(struct fd_pipes *pipes);

/* The kind's operations; NULL for a number that is no kind. */
const struct fd_ops *fd_ops_of(uint32_t kind);

/* Capturing. */
/* A socket's kind: IMG_FD_SOCK (joined to no peer, or TCP/UDP), else
 * IMG_FD_UNIX; 0 naming the fd. */
uint32_t fd_sock_kind(const struct fd_source *src, int fd);
/* Whether socket s is a TCP connection (it has a peer): IMG_FD_TCP. */
int fd_tcp_connected(int s);
/* A socket of a family no kind keeps (netlink.c): the refusal, naming it. */
void fd_sock_refuse_family(const struct fd_source *src, int fd, int family);
/* f's extra bytes: a, then b. */
int fd_set_extra(struct fd_entry *f, const void *a, size_t alen, const void *b, size_t blen);
/* A field of an fdinfo text: the text after "name:". */
const char *fd_info_field(const char *info, const char *name);
/* A duplicate of the target's fd (pidfd_getfd); -1 naming it. */
int fd_getfd(pid_t pid, int fd);
/* A namespace file: its link is TYPE:[INODE] (nsfile.c). */
int fd_is_nsfile(const char *link);
/* A POSIX message queue: fd of pid is on the mqueue file system (mqueue.c). */
int fd_is_mqueue(pid_t pid, int fd);
/* A terminal: a tty, console or pty device. */
int fd_is_tty(const struct stat *sb);
/* A growing buffer of bytes: a queue as it is captured. */
struct fd_buf {
	unsigned char *b;
	size_t len, cap;
};
/* n bytes of p at the end of q; -1 (out of memory) with err_set. */
int fd_buf_put(struct fd_buf *q, const void *p, size_t n);
/* Drop what follows an fd's fixed extra part: another fd carries it. */
void fd_drop_data(struct fd_entry *f, size_t fixed);

/* Making. */
/* The pair of this kind and id made so far, or NULL. */
struct fd_pipe *fd_find_pair(struct fd_pipes *pipes, uint32_t kind, uint64_t id);
/* A new slot for a pair, its ends -1 (not counted until made). */
struct fd_pipe *fd_new_pair(struct fd_pipes *pipes, uint32_t kind, uint64_t id);
/* A new fd of end (a pipe's, a socket's, a pty master), close-on-exec,
 * with f's O_NONBLOCK; what names end in the message. */
int fd_dup_end(int end, const struct fd_entry *f, const char *what);
/* Lock again the slaves of pty pairs that were locked. */
int fd_lock_ptys(struct fd_pipes *pipes);
/* Once every fd is made: each TCP connection's SO_REUSEADDR as the
 * program had it (on while the tree's sockets take their ports). */
int fd_tcp_done(struct fd_pipes *pipes);
/* The pairs of kind whose f is set (clients waiting in a listener's
 * queue, made but not yet connected), sorted by cmp (as qsort's, on
 * struct fd_pipe **): *w malloc'd (NULL when none), *n of them; -1 with
 * err_set. */
int fd_waiting(struct fd_pipes *pipes, uint32_t kind, int (*cmp)(const void *, const void *),
	       struct fd_pipe ***w, size_t *n);
/* fd, or err_sys naming f's kind when fd is -1. */
int fd_made(int fd, const struct fd_entry *f);

/* Showing: " key value" or ",\"key\":value". */
void fd_put_num(FILE *out, int json, const char *key, unsigned long long v);

#endif
