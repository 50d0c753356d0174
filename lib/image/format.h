/* format.h: the image format on disk and on the wire (see ckpt-image(5)).
 *
 * A stream: the header, then typed length-prefixed records, each with a
 * CRC-32C.  All of a process's metadata records come first and end with a
 * DATA record; PAGES records follow, their page data at page-aligned stream
 * offsets; an END record with totals closes the stream.  Integers are
 * little-endian (the only architecture is x86-64).
 *
 * Plain structs and constants only: the freestanding restorer includes
 * this and base/crc32c.h and nothing else of lib/. */
#ifndef CKPT_FORMAT_H
#define CKPT_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define IMG_MAGIC "CKPTIMG\n"
#define IMG_VERSION 2
#define IMG_ARCH_X86_64 62 /* ELF e_machine */

struct img_header {
	char magic[8];
	uint32_t version;
	uint32_t size;	     /* sizeof(struct img_header) */
	uint32_t arch;	     /* ELF e_machine */
	uint32_t page_size;  /* bytes */
	uint64_t xfeatures;  /* XCR0 of the dumping CPU */
	uint32_t xsave_size; /* bytes of XSAVE state per thread */
	uint32_t nprocs;     /* processes in this stream */
	int64_t ctime;	     /* creation time, seconds since the epoch */
	char kernel[65];     /* uname -r of the dumping host */
	char host[65];	     /* uname -n of the dumping host */
	char pad[6];
	uint32_t flags; /* IMG_HDR_* */
	uint32_t crc;	/* CRC-32C of this header with crc = 0 */
};

/* Some page data was spliced from the process (ckpt-dump --splice) and
 * never read by the dumper: PAGES records may have data_crc 0, and
 * readers do not check page data against data_crc. */
#define IMG_HDR_NO_DATA_CRC 1u
#define IMG_HDR_FLAGS 1u /* every flag a reader accepts */

enum img_rec_type {
	IMG_REC_PROC = 1,
	IMG_REC_THREAD = 2,
	IMG_REC_REGION = 3,
	IMG_REC_FILE = 4,
	IMG_REC_DATA = 5, /* end of the process's metadata; page data follows */
	IMG_REC_PAGES = 6,
	IMG_REC_END = 7,
	IMG_REC_SIGACTS = 8,  /* signal dispositions of the process */
	IMG_REC_SIGQUEUE = 9, /* pending signals of a thread, or of the process */
	IMG_REC_TIMERS = 10,  /* interval timers and POSIX timers */
	IMG_REC_SHM = 11,     /* a memory object or file whose contents the image holds */
	IMG_REC_SHMDATA = 12, /* contents of one: after DATA, before PAGES */
	IMG_REC_IPC = 13,     /* a System V semaphore set or message queue */
	IMG_REC_PROCPAGES = 14, /* a tree: the page data of one process follows */
	IMG_REC_PARENT = 15,	/* incremental image: the parent it takes pages from (incr.h) */
	IMG_REC_HASHES = 16,	/* incremental image: a hash of every page, after PAGES */
	IMG_REC_REUSE = 17,	/* incremental image: the pages taken from the parent */
	IMG_REC_ATTRS = 18,	/* the process's attributes (limits, scheduling, prctl, seccomp...) */
	IMG_REC_NS = 19,	/* the namespaces and cgroup of a process not in the tree's */
	IMG_REC_CPU = 24,	/* the CPUID feature bits of the dumping CPU (struct img_cpu) */
	IMG_REC_MOUNTS = 25,	/* a mount namespace of its own: how its mounts differ (img_mounts) */
	IMG_REC_TIMENS = 26,	/* a time namespace of its own: offsets and clocks (img_timens) */
	IMG_REC_TRACK = 27,	/* write tracking: how the dump found changed pages (img_track) */
	IMG_REC_PRECOPY = 28,	/* live stream: pages copied while the program ran (img_precopy) */
	IMG_REC_LIVE = 29,	/* live stream's image: the pages the pre-copy gives (img_live) */
	IMG_REC_NTYPES
};

struct img_rec {
	uint32_t type;
	uint32_t crc; /* CRC-32C of this header (crc = 0) and the payload, page data excepted */
	uint64_t len; /* payload bytes that follow this header */
};

/* CPU: the instruction-set feature bits of the CPU that wrote the image,
 * the CPUID words as the CPU gave them (IMG_CPU_*), for ckpt-remap to
 * compare with its own before the point of no return. */
enum {
	IMG_CPU_1_ECX,	      /* leaf 1: ECX */
	IMG_CPU_1_EDX,	      /* leaf 1: EDX */
	IMG_CPU_7_EBX,	      /* leaf 7, subleaf 0: EBX */
	IMG_CPU_7_ECX,	      /* leaf 7, subleaf 0: ECX */
	IMG_CPU_7_EDX,	      /* leaf 7, subleaf 0: EDX */
	IMG_CPU_7_1_EAX,      /* leaf 7, subleaf 1: EAX */
	IMG_CPU_80000001_ECX, /* leaf 0x80000001: ECX */
	IMG_CPU_80000001_EDX, /* leaf 0x80000001: EDX */
	IMG_CPU_NWORDS
};

struct img_cpu {
	uint32_t words[IMG_CPU_NWORDS]; /* a leaf the CPU lacks: 0 */
	uint32_t flags;			/* none defined yet; must be 0 */
	uint32_t pad;			/* must be 0 */
};

struct img_timespec {
	int64_t sec, nsec;
};

/* Indexes into img_proc.mm: the mm fields of /proc/PID/stat and brk. */
enum {
	MM_START_CODE,
	MM_END_CODE,
	MM_START_DATA,
	MM_END_DATA,
	MM_START_BRK,
	MM_BRK,
	MM_START_STACK,
	MM_ARG_START,
	MM_ARG_END,
	MM_ENV_START,
	MM_ENV_END,
	MM_NFIELDS
};

struct img_proc {
	int32_t pid, ppid, pgid, sid;
	uint32_t uid, gid, umask, nthreads;
	uint32_t nregions, nfiles;
	uint64_t pages_hint; /* pages of data expected to follow (for progress) */
	uint64_t mm[MM_NFIELDS];
	char comm[16];
	uint32_t exe_len, cwd_len, cmdline_len, auxv_len;
	int32_t exit_signal; /* sent to the parent at exit (SIGCHLD, or another, or 0) */
	uint32_t flags;	     /* IMG_PROC_* */
	int32_t exit_status; /* a zombie: its wait status */
	int32_t tty_nr;	     /* its controlling terminal (/proc/PID/stat), 0 for none */
	int32_t tpgid;	     /* that terminal's foreground process group */
	uint32_t pad;
	/* then exe, cwd, cmdline (arguments NUL-terminated), auxv (u64 pairs) */
};

#define IMG_PROC_ZOMBIE 1u /* dead, not yet reaped: no threads, memory or files */
#define IMG_PROC_FS_SHARED 2u /* shares cwd, root and umask with its parent (CLONE_FS) */
/* Its page data comes in lazy order (img_lazy_late): the regions filled on
 * a fault by ckpt-remap --lazy from a stream come last. */
#define IMG_PROC_LAZY_ORDER 4u
#define IMG_PROC_FLAGS 7u

/* Processes a stream may hold (a tree). */
#define IMG_MAX_PROCS 4096

/* A tree's stream: each process's page data follows one of these. */
struct img_procpages {
	int32_t pid;
	uint32_t pad;
};

#define IMG_THR_TID_CACHED 1u /* *tid_addr held the tid at dump (glibc's struct pthread) */

struct img_thread {
	int32_t tid;
	uint32_t flags;
	uint64_t regs[27]; /* struct user_regs_struct, in its order */
	uint64_t sigmask;
	uint64_t tid_addr; /* clear_child_tid */
	uint64_t robust_head, robust_len;
	uint64_t rseq_addr;
	uint32_t rseq_len, rseq_sig;
	uint64_t ss_sp, ss_size; /* sigaltstack */
	int32_t ss_flags;
	uint32_t xstate_len;
	char comm[16];
	/* then xstate_len bytes: NT_X86_XSTATE, XSAVE standard format */
};

enum img_rgn_kind {
	IMG_RGN_ANON = 0,
	IMG_RGN_FILE = 1,
	IMG_RGN_HEAP = 2,
	IMG_RGN_STACK = 3,
	IMG_RGN_SPECIAL = 4, /* the kernel's own: [vdso], [vvar], [vvar_vclock]; name in path */
	IMG_RGN_SHM = 5,     /* a mapping of a SHM record's object (dev, ino name it) */
	IMG_RGN_AIO = 6,     /* the ring of an AIO context (io_setup): fsize its nr, dev its
			      * head, ino its tail; page data its bytes */
	IMG_RGN_URING = 7,   /* a mapping of an io_uring instance's rings (MAP_SHARED): dev, ino
			      * its instance's (an IMG_FD_URING record's), pgoff its mmap offset
			      * (IMG_URING_OFF_*) plus the bytes into it; no page data */
	IMG_RGN_NKINDS
};

#define IMG_RGN_SHARED 1u    /* MAP_SHARED */
#define IMG_RGN_GROWSDOWN 2u /* VM_GROWSDOWN */
#define IMG_RGN_MAYWRITE 4u  /* VM_MAYWRITE: the file was opened for writing */
#define IMG_RGN_NORESERVE 8u /* MAP_NORESERVE: no swap space accounted for it */
/* madvise(2) and mlock(2) state, kept as the kernel shows it in smaps. */
#define IMG_RGN_DONTFORK 0x10u	   /* MADV_DONTFORK */
#define IMG_RGN_WIPEONFORK 0x20u   /* MADV_WIPEONFORK */
#define IMG_RGN_DONTDUMP 0x40u	   /* MADV_DONTDUMP (core dumps; ckpt still saves it) */
#define IMG_RGN_HUGEPAGE 0x80u	   /* MADV_HUGEPAGE */
#define IMG_RGN_NOHUGEPAGE 0x100u  /* MADV_NOHUGEPAGE */
#define IMG_RGN_LOCKED 0x200u	   /* mlock */
#define IMG_RGN_LOCKONFAULT 0x400u /* mlock2(MLOCK_ONFAULT) */
#define IMG_RGN_MERGEABLE 0x800u   /* MADV_MERGEABLE */
#define IMG_RGN_SEQREAD 0x1000u	   /* MADV_SEQUENTIAL */
#define IMG_RGN_RANDREAD 0x2000u   /* MADV_RANDOM */
#define IMG_RGN_GUARD 0x4000u	   /* guard pages (MADV_GUARD_INSTALL): no data, installed again */
#define IMG_RGN_HUGETLB 0x8000u	   /* hugetlbfs memory (MAP_HUGETLB, MFD_HUGETLB) */
#define IMG_RGN_FLAGS 0xffffu	   /* every flag a reader accepts */

struct img_region {
	uint64_t start, end;
	uint64_t pgoff; /* file offset, bytes */
	uint64_t dev, ino, fsize;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t prot;
	uint32_t flags;
	uint32_t kind;
	uint32_t path_len;
	uint32_t hshift; /* IMG_RGN_HUGETLB: log2 of its huge page size; else 0 */
	/* then path (file, or the special mapping's name) */
};

enum img_file_kind {
	IMG_FD_REG = 1,	    /* regular file, reopened by path at its offset */
	IMG_FD_DIR = 2,	    /* directory */
	IMG_FD_CHR = 3,	    /* character device reopened by path (/dev/null...) */
	IMG_FD_INHERIT = 4, /* standard stream: taken from ckpt-remap's own */
	IMG_FD_PIPE = 5,    /* one end of a pipe (both ends in the process, or IMG_PIPE_OUTSIDE) */
	IMG_FD_EVENTFD = 6,
	IMG_FD_SIGNALFD = 7,
	IMG_FD_TIMERFD = 8,
	IMG_FD_EPOLL = 9,
	IMG_FD_FIFO = 10,    /* a named pipe, reopened by path */
	IMG_FD_UNIX = 11,    /* one end of a connected unix socket whose both ends the tree holds */
	IMG_FD_INOTIFY = 12, /* an inotify instance and its watches */
	IMG_FD_TTY = 13,     /* a terminal or pty end, with its settings */
	IMG_FD_SHM = 14,     /* a file whose contents the image holds (memfd, deleted file) */
	IMG_FD_SOCK = 15,    /* a socket joined to no peer: unix, TCP or UDP; listening, bound, unbound */
	IMG_FD_OPATH = 16,   /* an O_PATH descriptor (of a file, directory, symlink...), reopened by path */
	IMG_FD_TCP = 17,     /* an established TCP connection, both ends in the tree (or restored reset) */
	IMG_FD_NETLINK = 18, /* a netlink socket: protocol, port id, groups */
	IMG_FD_PIDFD = 20,   /* a pidfd: of the process itself, of one of the tree, of one that exited */
	IMG_FD_NSFILE = 21,  /* a namespace file (/proc/PID/ns/TYPE) of the process's own namespace */
	IMG_FD_MQUEUE = 22,  /* a POSIX message queue (mq_open), path its name, with its messages */
	IMG_FD_DELDIR = 23,  /* a deleted directory (made again empty) or FIFO (with its bytes: an
			      * img_fifo), removed again */
	IMG_FD_URING = 24,   /* an io_uring instance, idle: an img_uring and its rings' bytes */
	IMG_FD_PEER = 25,    /* a connection to another member of a coordinated computation: an
			      * img_peer, then the bytes in flight to this end */
	IMG_FD_NKINDS
};

/* What follows the path of a FILE record, by kind (extra_len bytes). */
struct img_pipe {
	uint64_t id;	   /* the pipe's inode: fds with the same id share it */
	uint32_t size;	   /* F_GETPIPE_SZ */
	uint32_t end;	   /* 0 read end, 1 write end */
	uint32_t data_len; /* bytes in the pipe, which follow (one fd per pipe has them) */
	uint32_t flags;	   /* IMG_PIPE_*; images before it was defined have 0 */
};

/* The other end was not in the process (or tree): a make jobserver, a
 * launcher's leaked pipe.  A restore gives this end a pipe whose other end
 * is closed, or an fd of its own (ckpt-remap --inherit-fd). */
#define IMG_PIPE_OUTSIDE 1u
#define IMG_PIPE_FLAGS 1u /* every flag a reader accepts */

struct img_eventfd {
	uint64_t count;
	uint32_t semaphore; /* EFD_SEMAPHORE */
	uint32_t pad;
};

struct img_signalfd {
	uint64_t mask;
};

struct img_timerfd {
	int32_t clock;
	uint32_t settime_flags; /* TFD_TIMER_ABSTIME... as fdinfo shows */
	uint64_t ticks;		/* expirations not yet read */
	struct img_timespec left, interval;
};

/* An epoll instance: n watched fds follow; with IMG_EPOLL_VIA, then n
 * s32: the fd that holds each watch's file now (-1: none of the process,
 * with IMG_EPOLL_OTHER); with IMG_EPOLL_OTHER, then for each -1 an
 * img_epoll_other: the process of the tree and its fd that hold it. */
struct img_epoll {
	uint32_t n;
	uint32_t flags; /* IMG_EPOLL_* */
};

#define IMG_EPOLL_VIA 1u   /* some watch's file is no longer at the fd it was added as */
#define IMG_EPOLL_OTHER 2u /* ...and some watch's file only another process holds */
#define IMG_EPOLL_FLAGS 3u /* every flag a reader accepts */

struct img_epoll_other {
	int32_t pid; /* a process of the image */
	int32_t fd;  /* its fd on the watch's file */
};

struct img_epoll_item {
	int32_t fd;
	uint32_t events;
	uint64_t data;
};

/* A connection to another member of a coordinated computation
 * (IMG_FD_PEER): drained at the checkpoint, made again through the
 * coordinator at a restart (ckpt-inject --restart hands it to ckpt-remap
 * with --inherit-fd).  nbytes bytes follow: what the other member had
 * sent this end and it had not read yet. */
struct img_peer {
	uint32_t kind;	  /* IMG_PEER_* */
	uint32_t side;	  /* 0: listens (accepts) at a restart, 1: connects */
	uint32_t peer_id; /* the other end's member id */
	uint32_t flags;	  /* IMG_PEER_SHUT_WR, IMG_PEER_OPTS; images before them have 0 */
	char token[32];	  /* the connection's name: 32 lowercase hex digits */
	char peer_name[64]; /* the other end's member name, NUL-terminated */
	uint64_t nbytes;
};

enum {
	IMG_PEER_TCP = 1, /* a TCP connection */
	IMG_PEER_UNIX = 2, /* a unix stream socket */
	IMG_PEER_PIPE = 3, /* one end of a pipe (side 0: the read end) */
};

/* This end had shut down its writing (shutdown(2), its FIN sent): a
 * restart shuts it down again once the bytes in flight to its peer are
 * written back. */
#define IMG_PEER_SHUT_WR 1u
/* A TCP connection's options follow the bytes (struct img_peer_opts): the
 * new socket of a restart gets them; images before it have none. */
#define IMG_PEER_OPTS 2u
struct img_peer_opts {
	uint32_t opts;	    /* IMG_SOCKOPT_KEEPALIVE, IMG_SOCKOPT_NODELAY */
	uint32_t keepidle;  /* TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, in the */
	uint32_t keepintvl; /* units of setsockopt; 0: as a new socket has it */
	uint32_t keepcnt;
};

/* A pidfd (IMG_FD_PIDFD). */
struct img_pidfd {
	int32_t pid;	/* the process it is of, as the tree sees it; -1 exited */
	uint32_t what;	/* IMG_PIDFD_* */
	int32_t status; /* exited, with IMG_PIDFD_STATUS: its wait status */
	uint32_t flags; /* IMG_PIDFD_STATUS */
};

#define IMG_PIDFD_STATUS 1u /* the kernel told its exit status (PIDFD_GET_INFO) */

enum {
	IMG_PIDFD_SELF = 1,   /* the process's own */
	IMG_PIDFD_TREE = 2,   /* of another process of the tree, by its pid */
	IMG_PIDFD_EXITED = 3, /* of a process that exited and was reaped */
};

/* A namespace file (IMG_FD_NSFILE): the process's own namespace of type. */
struct img_nsfile {
	uint32_t type; /* its CLONE_NEW* flag */
	uint32_t pad;
};

/* A POSIX message queue (IMG_FD_MQUEUE): its attributes, then nmsgs
 * messages (one fd per queue has them), each a struct img_mq_msg and its
 * len bytes, data_len bytes in all. */
struct img_mqueue {
	int64_t maxmsg, msgsize; /* mq_getattr */
	uint32_t mode, uid, gid;
	uint32_t nmsgs;
	uint64_t data_len;
};

struct img_mq_msg {
	uint32_t prio;
	uint32_t len;
};

/* An io_uring instance (IMG_FD_URING), idle at the checkpoint: its size,
 * the setup flags a restore gives it again, the kernel's positions (equal
 * to the rings': no request in flight), where the kernel put each field of
 * its rings (checked against the restoring kernel's), then rings_len bytes
 * of its rings (SQ and CQ ring, one memory) and sqes_len bytes of its
 * submission queue entries. */
struct img_uring {
	uint32_t sq_entries, cq_entries;
	uint32_t flags;		   /* IORING_SETUP_*: IMG_URING_FLAGS of them */
	uint32_t sq_head, cq_tail; /* the kernel's: submissions taken, completions posted */
	uint32_t rings_len, sqes_len;
	uint32_t sq_off[7]; /* struct io_sqring_offsets: head tail ring_mask ring_entries flags
			     * dropped array */
	uint32_t cq_off[7]; /* struct io_cqring_offsets: head tail ring_mask ring_entries
			     * overflow cqes flags */
	uint32_t pad;
};

/* The setup flags an image may ask for: CQSIZE, SQE128, CQE32, NO_SQARRAY. */
#define IMG_URING_FLAGS ((1u << 3) | (1u << 10) | (1u << 11) | (1u << 16))
/* A restore replays at most this many submissions and completions each. */
#define IMG_URING_REPLAY (1u << 23)
/* The mmap offsets of an io_uring instance's rings (IORING_OFF_*). */
#define IMG_URING_OFF_SQ_RING 0ull
#define IMG_URING_OFF_CQ_RING 0x8000000ull
#define IMG_URING_OFF_SQES 0x10000000ull

/* A named pipe: the bytes it held follow (one fd per FIFO has them). */
struct img_fifo {
	uint32_t size;	   /* F_GETPIPE_SZ */
	uint32_t data_len; /* bytes in it, which follow */
};

/* One end of a unix socketpair, or of a connection made by connect and
 * accept (its names not kept), whose both ends the tree holds; what
 * the peer sent it and it has not read follows: nmsg messages, each a u32
 * length and its bytes (a stream's bytes are one message).  One fd per
 * end has them. */
struct img_unix {
	uint64_t id;	   /* the pair: the smaller of its two socket inodes */
	uint32_t type;	   /* SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET */
	uint32_t end;	   /* 0 the socket with the smaller inode, 1 the other */
	uint32_t shutdown; /* its sk_shutdown: 1 receive, 2 send */
	uint32_t sndbuf;   /* SO_SNDBUF, SO_RCVBUF as getsockopt gives them */
	uint32_t rcvbuf;
	uint32_t nmsg;
	uint32_t data_len; /* bytes of queue that follow the names */
	uint8_t own_len;   /* its address (getsockname), then its peer's */
	uint8_t peer_len;  /* (getpeername): bytes that follow, before the queue */
	uint16_t flags;	   /* IMG_UNIX_* */
};
enum {
	IMG_UNIX_ACCEPTED = 1 << 0, /* the end accept() gave of a named connection (the
				     * other, the client, bound its name if it has one) */
	IMG_UNIX_PENDING = 1 << 1,  /* a client nobody accepted yet: id its inode, end
				     * its place in the listener's queue */
	IMG_UNIX_EXT_RECONNECT = 1 << 2, /* peer outside: connect to it again */
	IMG_UNIX_EXT_CLOSE = 1 << 3,	 /* peer outside: a closed socket */
	IMG_UNIX_PASSCRED = 1 << 4,	 /* SO_PASSCRED set */
	IMG_UNIX_RIGHTS = 1 << 5,	 /* its queue's messages carry files (SCM_RIGHTS) */
	IMG_UNIX_ALL = (1 << 6) - 1,
};

/* A socket joined to no peer (struct img_sock, then addr_len bytes of its
 * address as getsockname gives it: a sockaddr_un, sockaddr_in or
 * sockaddr_in6; none when unbound). */
enum {
	IMG_SOCK_UNBOUND = 0,
	IMG_SOCK_BOUND = 1,
	IMG_SOCK_LISTEN = 2,
};
enum {
	IMG_SOCKOPT_REUSEADDR = 1 << 0,
	IMG_SOCKOPT_REUSEPORT = 1 << 1,
	IMG_SOCKOPT_PASSCRED = 1 << 2,
	IMG_SOCKOPT_KEEPALIVE = 1 << 3,
	IMG_SOCKOPT_NODELAY = 1 << 4,  /* TCP_NODELAY */
	IMG_SOCKOPT_V6ONLY = 1 << 5,   /* IPV6_V6ONLY */
	IMG_SOCKOPT_BROADCAST = 1 << 6,
	IMG_SOCKOPT_ALL = (1 << 7) - 1,
	/* Not an option: a unix stream or seqpacket socket whose file was
	 * renamed after bind (the JVM binds .java_pidN.tmp and renames it
	 * .java_pidN); the path where it is now follows the address. */
	IMG_SOCK_MOVED = 1 << 16,
};
struct img_sock {
	uint16_t family;   /* AF_UNIX, AF_INET, AF_INET6 */
	uint16_t type;	   /* SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET (unix only) */
	uint16_t protocol; /* IPPROTO_TCP, IPPROTO_UDP; 0 for unix */
	uint16_t state;	   /* IMG_SOCK_* */
	uint32_t opts;	   /* IMG_SOCKOPT_* set */
	uint32_t backlog;  /* listen's backlog, when listening */
	uint32_t sndbuf;   /* SO_SNDBUF, SO_RCVBUF as getsockopt gave them; 0 when */
	uint32_t rcvbuf;   /* they are what a new socket of its kind has */
	uint32_t mode;	   /* a unix socket bound to a path: its file's mode, */
	uint32_t uid;	   /* owner and group (mode 0: the file was gone) */
	uint32_t gid;
	uint32_t addr_len; /* bytes of address that follow */
};

/* An established (or half-closed) TCP connection, IPv4 or IPv6: struct
 * img_tcp, then data_len bytes its peer sent it that it has not read
 * (one fd per socket has them).  Both ends are in the tree, joined by id,
 * or (IMG_TCP_RESET) the peer was outside and it is restored reset. */
enum {
	IMG_TCP_RESET = 1,  /* --tcp-close: a connection reset by its peer */
	IMG_TCP_REPAIR = 2, /* --tcp-established: kept as it was with TCP_REPAIR */
	IMG_TCP_PENDING = 4, /* a client whose connection waits in a listener's queue: id its */
			     /* inode, end its place in that queue, the data_len bytes what it */
			     /* sent, which the connection holds for the accepting end */
	IMG_TCP_PAIRED = 8, /* with 2: both ends in the tree, each with its sequence numbers */
			    /* (where the restore may not use TCP_REPAIR, a pair as without) */
	IMG_TCP_FLAGS = 15, /* every flag a reader accepts */
};
struct img_tcp {
	uint16_t family;	      /* AF_INET, AF_INET6: its own socket's */
	uint16_t pfamily;	      /* its peer's socket's (an IPv4 client of a */
				      /* dual-stack IPv6 server: they differ) */
	uint16_t lport, pport;	      /* its own port and its peer's, host order */
	uint8_t laddr[16], paddr[16]; /* its own address and its peer's as its own */
				      /* socket gives them (IPv4: 4 bytes, then zeros) */
	uint32_t scope;		      /* IPv6 scope id (0 but for link-local) */
	uint16_t state;		      /* TCP_ESTABLISHED 1, FIN_WAIT1 4, FIN_WAIT2 5, */
				      /* CLOSE_WAIT 8, LAST_ACK 9, CLOSING 11 */
	uint16_t shutdown;	      /* 1 it reads no more (EOF or SHUT_RD), 2 it sent its FIN */
	uint32_t opts;		      /* IMG_SOCKOPT_*: REUSEADDR, REUSEPORT, KEEPALIVE, */
				      /* NODELAY, V6ONLY */
	uint32_t flags;		      /* IMG_TCP_* */
	uint64_t id;		      /* the pair: the smaller of its two socket inodes */
	uint32_t end;		      /* 0 the socket with the smaller inode, 1 the other */
	uint32_t sndbuf, rcvbuf;      /* SO_SNDBUF, SO_RCVBUF as getsockopt gave them; 0 */
				      /* when a new socket has them */
	uint32_t keepidle, keepintvl, keepcnt; /* TCP_KEEP*; 0 when a new socket has them */
	uint32_t outq;			       /* bytes its send queue held at the dump */
	uint32_t data_len;		       /* bytes that follow */
};

/* IMG_TCP_REPAIR: the connection's TCP state, after struct img_tcp; then
 * the data_len bytes of its receive queue, then sendq_len bytes of its
 * send queue (sent and not acknowledged, or not sent). */
struct img_tcp_repair {
	uint32_t snd_seq;		 /* TCP_QUEUE_SEQ of the send queue: its end */
	uint32_t rcv_seq;		 /* TCP_QUEUE_SEQ of the receive queue: its end */
	uint32_t mss;			 /* TCP_MAXSEG */
	uint32_t tcpi_options;		 /* TCPI_OPT_TIMESTAMPS 1, SACK 2, WSCALE 4 */
	uint8_t snd_wscale, rcv_wscale; /* window scales, when WSCALE */
	uint16_t pad;
	uint32_t timestamp; /* TCP_TIMESTAMP */
	uint32_t snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup; /* TCP_REPAIR_WINDOW */
	uint32_t sendq_len;
};

/* A datagram socket (SOCK_DGRAM: UDP, or unix joined to no peer) may have
 * after its address an img_sock_dgram, then peer_len bytes of the address
 * a UDP socket is connected to, then nmsg datagrams, each an img_sock_msg,
 * src_len bytes of its sender's address (as recvfrom gives it; 0: an
 * unbound unix sender) and len bytes of data, in the order recv takes
 * them.  Nothing follows the address of one that is not connected and has
 * nothing queued. */
struct img_sock_dgram {
	uint32_t peer_len;
	uint32_t nmsg;
};

struct img_sock_msg {
	uint32_t len;
	uint32_t src_len;
};

/* A netlink socket (IMG_FD_NETLINK): an img_netlink, then nwords 32-bit
 * words of the multicast groups it is a member of (bit g-1 of the array
 * for group g). */
enum {
	IMG_NLOPT_PKTINFO = 1 << 0,	   /* NETLINK_PKTINFO */
	IMG_NLOPT_NO_ENOBUFS = 1 << 1,	   /* NETLINK_NO_ENOBUFS */
	IMG_NLOPT_BROADCAST_ERROR = 1 << 2, /* NETLINK_BROADCAST_ERROR */
	IMG_NLOPT_CAP_ACK = 1 << 3,	   /* NETLINK_CAP_ACK */
	IMG_NLOPT_EXT_ACK = 1 << 4,	   /* NETLINK_EXT_ACK */
	IMG_NLOPT_STRICT_CHK = 1 << 5,	   /* NETLINK_GET_STRICT_CHK */
	IMG_NLOPT_ALL = (1 << 6) - 1,
};
struct img_netlink {
	uint32_t protocol;   /* NETLINK_ROUTE, NETLINK_KOBJECT_UEVENT... */
	uint32_t portid;     /* its port id (getsockname's nl_pid); 0: not bound */
	uint32_t dst_portid; /* connect(2)ed to: a port id, a group; both 0: not */
	uint32_t dst_group;
	uint32_t opts;	     /* IMG_NLOPT_* set */
	uint32_t sndbuf;     /* SO_SNDBUF, SO_RCVBUF as getsockopt gave them; 0: */
	uint32_t rcvbuf;     /* what a new socket has */
	uint32_t dropped;    /* 1: events were queued at the checkpoint (not kept) */
	uint32_t nwords;     /* words of group bits that follow, at most 1024 */
	uint32_t type;	     /* SOCK_RAW or SOCK_DGRAM */
};

/* An inotify instance: n watches follow, in wd order, each an
 * img_inotify_watch and its path_len bytes of path (none: a file no path
 * led to), then with IMG_INOTIFY_HANDLE an img_inotify_handle and its
 * bytes: the file's handle (name_to_handle_at), opened again by it. */
struct img_inotify {
	uint32_t n;
	uint32_t queued; /* bytes of events not yet read at dump: not kept */
};

struct img_inotify_watch {
	int32_t wd;
	uint32_t mask; /* as inotify_add_watch takes it */
	uint64_t ino;  /* the watched inode and its device (st_dev), to check the path */
	uint64_t dev;
	uint32_t path_len;
	uint32_t flags; /* IMG_INOTIFY_*; images before it was defined have 0 */
};

#define IMG_INOTIFY_HANDLE 1u /* no path: its handle follows */

struct img_inotify_handle {
	int32_t type;	/* handle_type */
	uint32_t bytes; /* handle_bytes, at most 128 (MAX_HANDLE_SZ) */
};

/* A terminal: the program's own (reattached to the restoring process's
 * terminal) or one end of a pty pair it opened itself (made anew). */
enum img_tty_role {
	IMG_TTY_TERM = 0, /* a terminal the program did not make */
	IMG_TTY_PTMX = 1, /* the master of a pty pair, from /dev/ptmx */
	IMG_TTY_PTS = 2,  /* the slave of a pty pair whose master the process holds */
	IMG_TTY_CTTY = 3, /* /dev/tty on such a slave: the process's controlling terminal */
};

struct img_tty {
	uint32_t role;
	uint32_t index;	 /* the pty's number (/dev/pts/N): the pair's id */
	uint32_t locked; /* ptmx: the slave is still locked (TIOCGPTLCK) */
	uint32_t have;	 /* 1: termios and window size below were read */
	uint32_t iflag, oflag, cflag, lflag; /* termios, as tcgetattr(3) gives it */
	uint32_t ispeed, ospeed;
	uint8_t line;
	uint8_t cc[32];
	uint8_t mode; /* a master's IMG_TTY_PKT; images before it was kept have 0 */
	uint8_t pad[2];
	uint16_t rows, cols, xpixel, ypixel; /* TIOCGWINSZ */
};

#define IMG_TTY_PKT 1u /* the master is in packet mode (TIOCPKT): reads start with a status byte */
/* A master's extra bytes go on after the struct: what the pair's slave side
 * had written and the master not read yet (a launcher's children's
 * output), as the master reads it.  Images before it was kept have none. */
#define IMG_TTY_DATA 2u
#define IMG_TTY_DATA_MAX (1u << 20)

struct img_file {
	int32_t fd; /* negative: a file in flight, its mark (a message carries it) */
	uint32_t kind;
	uint32_t flags;	  /* open(2) flags, as fdinfo shows them */
	uint32_t fdflags; /* FD_CLOEXEC */
	uint64_t pos;
	uint64_t dev, ino, size;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t mode;
	uint32_t path_len;
	uint32_t extra_len;
	/* The open file description: fds of the stream (of one process or of
	 * several) with the same desc share one, as dup(2) and fork(2) share
	 * them (its offset, its flags).  0: shared with no other fd. */
	uint64_t desc;
	/* then path, then extra_len bytes of what the kind needs (above) */
};

/* The locks of a regular file's fd (kind IMG_FD_REG): its extra bytes
 * are none (no locks; images before locks were kept) or an
 * img_file_locks and n img_lock.  Only the process's own: POSIX locks it
 * took through this open file description, OFD locks, flock(2) locks and
 * a lease of the description. */
enum img_lock_kind {
	IMG_LOCK_POSIX = 1, /* fcntl F_SETLK: the process's */
	IMG_LOCK_OFD = 2,   /* fcntl F_OFD_SETLK: the description's */
	IMG_LOCK_FLOCK = 3, /* flock(2): the description's */
	IMG_LOCK_LEASE = 4, /* fcntl F_SETLEASE, not being broken */
};

#define IMG_MAX_LOCKS 4096

struct img_file_locks {
	uint32_t n;
	uint32_t pad;
};

struct img_lock {
	uint32_t kind; /* IMG_LOCK_* */
	uint32_t type; /* F_RDLCK 0 or F_WRLCK 1 */
	uint64_t start;
	uint64_t len; /* 0: to the end of the file (flock and lease: 0 from 0) */
};

/* A file whose contents the image holds (kind IMG_FD_SHM: a deleted
 * file, a memfd): its extra bytes are none (images before they were kept)
 * or an img_shm_attr, its owner and access time (its mtime is the FILE
 * record's), given back once it is made and filled. */
struct img_shm_attr {
	uint32_t uid, gid;
	int64_t atime_sec;
	uint32_t atime_nsec;
	uint32_t pad;
};

/* One signal's disposition: the kernel's struct sigaction on x86-64. */
struct img_sigact {
	uint64_t handler; /* SIG_DFL 0, SIG_IGN 1, or an address */
	uint64_t flags;	  /* SA_* */
	uint64_t restorer;
	uint64_t mask;
};

#define IMG_NSIG 64 /* signals 1..64; entry k is signal k + 1 */

/* Pending signals: queued on thread tid, or on the process when tid is 0;
 * then count siginfo_t of IMG_SIGINFO_SIZE bytes each, in queue order. */
struct img_sigqueue {
	int32_t tid;
	uint32_t count;
};

#define IMG_SIGINFO_SIZE 128
#define IMG_MAX_SIGQUEUE 65536

/* setitimer(2) timers: ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF, as time
 * left and interval. */
struct img_itimer {
	struct img_timespec value, interval;
};

/* A POSIX timer (timer_create): id, clock and notification, time left
 * (relative, as timer_gettime gives it) and interval. */
struct img_ptimer {
	int32_t id;
	int32_t clock;
	int32_t notify; /* SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID */
	int32_t signo;
	int32_t tid; /* SIGEV_THREAD_ID: the thread it signals */
	uint32_t pad;
	uint64_t value; /* sigev_value */
	struct img_timespec left, interval;
};

struct img_timers {
	struct img_itimer it[3];
	uint32_t nposix;
	uint32_t pad;
	/* then nposix struct img_ptimer */
};

#define IMG_MAX_TIMERS 65536

struct img_run {
	uint64_t addr;
	uint64_t npages;
};

#define IMG_MAX_RUNS 1024

struct img_pages {
	uint32_t nruns;
	uint32_t data_crc; /* CRC-32C of the page data */
	uint64_t npages;
	/* then nruns img_run, zero padding to a page-aligned stream offset,
	 * then npages pages of data, run after run */
};

/* A memory object or file that exists only in the process (shared
 * anonymous memory, a memfd, a System V segment, a deleted file): its
 * contents follow in SHMDATA records.  Regions of kind shm and fds of kind
 * shm refer to it by dev and ino. */
enum img_shm_kind {
	IMG_SHM_ANON = 1,  /* MAP_SHARED | MAP_ANONYMOUS */
	IMG_SHM_MEMFD = 2, /* memfd_create; name without "memfd:" */
	IMG_SHM_SYSV = 3,  /* shmget; key */
	IMG_SHM_FILE = 4,  /* a deleted file; name is the path it had */
	IMG_SHM_SAVED = 5, /* a regular file saved by ckpt-dump --save-files; name is its path */
	IMG_SHM_TMPFS = 6, /* a file on tmpfs, not deleted, mapped shared; name is its path, and an
			    * img_shm_tmpfs follows it */
	IMG_SHM_NKINDS
};

#define IMG_SHM_RMID 1u /* System V: its id had been removed (IPC_RMID) */
#define IMG_SHM_HUGETLB 2u /* hugetlbfs: MFD_HUGETLB memfd, MAP_HUGETLB shared memory */
/* IMG_SHM_HUGETLB: log2 of the huge page size, in bits 8-13 of flags. */
#define IMG_SHM_HSHIFT(flags) (((flags) >> 8) & 63u)
#define IMG_SHM_FLAGS (IMG_SHM_RMID | IMG_SHM_HUGETLB | (63u << 8))
/* The huge page sizes an image may name: 8 KiB to 16 GiB. */
#define IMG_HSHIFT_OK(s) ((s) >= 13 && (s) <= 34)

struct img_shm {
	uint64_t dev, ino; /* as the dumping host saw them */
	uint64_t size;	   /* bytes */
	uint32_t kind;
	uint32_t mode;	/* permission bits */
	uint32_t seals; /* memfd: F_GET_SEALS */
	int32_t key;	/* System V: the key (0: IPC_PRIVATE) */
	uint32_t flags; /* IMG_SHM_* */
	uint32_t name_len;
	/* then the name */
};

/* IMG_SHM_TMPFS: after the name, the file's owner and mtime.  A restore
 * makes the file again as a new one at its path (written aside, renamed
 * over whatever is there), and every mapping and fd of it gets that one. */
struct img_shm_tmpfs {
	uint32_t uid, gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t flags; /* none defined; 0 */
};

/* A System V semaphore set or message queue of the process's user (see
 * kinds.h for which ones), with its contents. */
enum img_ipc_kind { IMG_IPC_SEM = 1, IMG_IPC_MSG = 2, IMG_IPC_NKINDS };

struct img_ipc {
	uint32_t kind;
	int32_t key; /* 0: IPC_PRIVATE */
	int32_t id;
	uint32_t mode; /* permission bits */
	uint32_t n;	/* semaphores in the set, or messages in the queue */
	uint32_t flags; /* IMG_IPC_USED */
	uint64_t qbytes;   /* message queue: its byte limit (msg_qbytes) */
	uint64_t data_len; /* bytes that follow: n u16 semaphore values, or n
			    * messages as {s64 mtype, u64 len, len bytes padded to 8} */
};

#define IMG_IPC_USED 1u /* the process was its last user (a sempid, lspid or lrpid) */
#define IMG_MAX_IPCS 4096

/* NS: at most one per process, absent when the process is in every
 * namespace and the cgroup of the tree root's parent (the environment the
 * tree was started in).  ino says which processes of a tree share one. */
enum img_ns_type {
	IMG_NS_USER = 0,
	IMG_NS_MNT = 1,
	IMG_NS_PID = 2,
	IMG_NS_NET = 3,
	IMG_NS_UTS = 4,
	IMG_NS_IPC = 5,
	IMG_NS_CGROUP = 6,
	IMG_NS_TIME = 7,
	IMG_NS_NTYPES
};

#define IMG_NS_ALL ((1u << IMG_NS_NTYPES) - 1)
#define IMG_NSF_LO_UP 1u	 /* net: its loopback was up */
#define IMG_NSF_SETGROUPS 2u	 /* user: /proc/PID/setgroups said "allow" */
#define IMG_NSF_CGROUP 4u	 /* in a cgroup other than the tree root's parent's */
#define IMG_NSF_FLAGS 7u

struct img_ns {
	uint64_t ino[IMG_NS_NTYPES]; /* each namespace's inode, as /proc/PID/ns/ shows it */
	uint32_t own;		     /* bit 1 << IMG_NS_*: not the tree root's parent's */
	uint32_t flags;		     /* IMG_NSF_* */
	char hostname[65];	     /* uts (own): uname's nodename and domainname */
	char domainname[65];
	uint8_t pad[6];
	uint32_t uid_map_len; /* user (own): uid_map and gid_map as /proc/PID/ shows them */
	uint32_t gid_map_len;
	uint32_t cgroup_len; /* IMG_NSF_CGROUP: its cgroup v2 path (/proc/PID/cgroup "0::") */
	uint32_t npids;	     /* pid (own): its pid in each pid namespace below the tree's */
	/* then uid_map, gid_map, cgroup path, npids s32 pids (outermost first) */
};

#define IMG_NS_MAX_MAP 4096 /* bytes of a uid_map or gid_map */
#define IMG_NS_MAX_PIDS 31  /* pid namespaces below the tree's (the kernel nests 32) */

/* TIMENS: after the NS record of a process whose time namespace is its
 * own (own has 1 << IMG_NS_TIME), and only then.  Index 0 is
 * CLOCK_MONOTONIC, 1 CLOCK_BOOTTIME. */
struct img_timens {
	int64_t off_sec[2];  /* its offsets, as /proc/PID/timens_offsets shows them */
	int64_t off_nsec[2]; /* 0 to 999999999 */
	int64_t clock_ns[2]; /* each clock as the namespace read it at the dump */
	uint8_t boot_id[16]; /* the dumping machine's boot (/proc/sys/kernel/random/boot_id) */
	uint32_t flags;	     /* IMG_TIMENS_CHILDREN */
	uint32_t pad;
};

#define IMG_TIMENS_CHILDREN 1u /* made for its children (time_for_children), not entered */

#define IMG_TIMENS_MAX_SEC 8589934592LL /* 2^33: under the kernel's KTIME_SEC_MAX */

/* MOUNTS: after the NS record (and its TIMENS) of a process whose mount
 * namespace is its own (own has 1 << IMG_NS_MNT), and only then: how its
 * mount table differs from the one of the namespace the tree started in,
 * as steps a restore takes in order after unshare(CLONE_NEWNS).  An
 * img_mounts, then n entries: an img_mount, path, src, data, zero padding
 * to 8 bytes. */
struct img_mounts {
	uint32_t n;	/* entries */
	uint32_t flags; /* none defined; 0 */
};

enum img_mount_op {
	IMG_MNT_KEEP = 1,   /* a mount the tree's namespace has on path: its propagation,
			     * its flags again (IMG_MNTF_REMOUNT) */
	IMG_MNT_UMOUNT = 2, /* a mount of the tree's namespace on path it does not have */
	IMG_MNT_TMPFS = 3,  /* a new tmpfs on path: size, mode; DIR/FILE/LINK entries follow */
	IMG_MNT_BIND = 4,   /* a bind mount of src on path */
	IMG_MNT_PROC = 5,   /* a proc on path, of the pid namespace of inode pidns */
	IMG_MNT_DIR = 6,    /* in the tmpfs before it: a directory path, mode */
	IMG_MNT_FILE = 7,   /* in the tmpfs before it: a file path, mode, size bytes of data */
	IMG_MNT_LINK = 8,   /* in the tmpfs before it: a symlink path to src */
	IMG_MNT_NOPS
};

#define IMG_MNTF_RDONLY 1u
#define IMG_MNTF_NOSUID 2u
#define IMG_MNTF_NODEV 4u
#define IMG_MNTF_NOEXEC 8u
#define IMG_MNTF_NOATIME 16u
#define IMG_MNTF_NODIRATIME 32u
#define IMG_MNTF_RELATIME 64u
#define IMG_MNTF_REMOUNT 128u	  /* KEEP: remount it with these flags */
#define IMG_MNTF_PRIVATE 256u	  /* propagation (mountinfo's optional fields): none */
#define IMG_MNTF_SLAVE 512u	  /* master:N */
#define IMG_MNTF_SHARED 1024u	  /* shared:N (with SLAVE: both) */
#define IMG_MNTF_UNBINDABLE 2048u /* unbindable */
#define IMG_MNTF_FLAGS 4095u

struct img_mount {
	uint32_t op;	   /* IMG_MNT_* */
	uint32_t flags;	   /* IMG_MNTF_* */
	uint64_t size;	   /* TMPFS: its size= in bytes (0: the default); FILE: bytes of data */
	uint64_t pidns;	   /* PROC: the inode of the pid namespace it shows */
	uint32_t mode;	   /* TMPFS: its root's permission bits; DIR, FILE: the file's */
	uint32_t path_len; /* the mount point; DIR, FILE, LINK: the file */
	uint32_t src_len;  /* BIND: the path it shows, in the tree's namespace; LINK: the target */
	uint32_t pad;
};

#define IMG_MNT_MAX 4096	     /* entries */
#define IMG_MNT_MAX_DATA (16u << 20) /* bytes of files in the tmpfs mounts of a namespace */

/* SHMDATA: an img_pages whose runs are byte offsets into object shm (the
 * index of its SHM record), then padding and data as in PAGES. */
struct img_shmdata {
	struct img_pages p;
	uint64_t shm;
};

struct img_end {
	uint64_t records; /* records before this one */
	uint64_t pages;	  /* pages of data in the stream */
	uint64_t bytes;	  /* stream offset of this record */
};

/* The largest metadata record a reader accepts. */
#define IMG_MAX_META (64u << 20)

/* PARENT: in the metadata of an incremental image, then path_len bytes of
 * the parent's path as ckpt-dump --parent was given it. */
struct img_parent {
	uint8_t id[16];	       /* this image's own id, random: its children name it */
	uint8_t parent_id[16]; /* the parent's id, or zeros: the parent is a full image */
	uint64_t key[2];       /* the key of the chain's page hashes */
	int64_t parent_ctime;  /* the parent's header: ctime */
	uint32_t parent_crc;   /* and identity (incr_identity) */
	uint32_t depth;	       /* images above this one (1: the parent is a full image) */
	uint32_t flags;	       /* none defined; 0 */
	uint32_t path_len;
};

/* TRACK: in the metadata of an image of ckpt-dump --track or of a dump
 * against one (ckpt-dump(1)): how this dump found the pages changed since
 * its parent, and where it left the write tracker (a userfaultfd) in the
 * program for the next one. */
enum {
	IMG_TRACK_FULL,	   /* no parent: every page stored (a full image) */
	IMG_TRACK_HASHED,  /* every page read and compared by its hash */
	IMG_TRACK_WRITTEN, /* the pages the tracker reported written read, and new regions' */
	IMG_TRACK_NHOW
};
struct img_track {
	int32_t fd;	 /* the tracker's fd in the program, or -1: none left */
	uint32_t how;	 /* IMG_TRACK_* */
	uint64_t written; /* IMG_TRACK_WRITTEN: pages the tracker reported written */
};

/* ckpt-dump --live writes a stream: IMG_LIVE_MAGIC, PRECOPY records (the
 * pages copied while the program ran, in rounds), then an ordinary image
 * (IMG_MAGIC...) of the frozen program whose LIVE record lists the pages it
 * takes from the pre-copy; its PAGES hold the others (ckpt-image(5)). */
#define IMG_LIVE_MAGIC "CKPTLIV\n"
enum { IMG_PRECOPY_AREAS, IMG_PRECOPY_PAGES, IMG_PRECOPY_NWHAT };
struct img_precopy {
	uint32_t what;	/* IMG_PRECOPY_*: the first record AREAS, then PAGES */
	uint32_t n;	/* AREAS: ranges (img_run: addr, npages); PAGES: runs */
	uint32_t data_crc; /* PAGES: CRC-32C of the page data; AREAS: 0 */
	uint32_t pad;	   /* 0 */
	uint64_t npages; /* PAGES: pages of data after the runs (no padding); AREAS: 0 */
};
#define IMG_PRECOPY_MAX_AREAS 65536
#define IMG_PRECOPY_MAX_RUNS 4096
/* LIVE: once, in the metadata; then nruns img_run, ascending: the pages
 * restored from the pre-copy (each in a pre-copied area). */
struct img_live {
	uint32_t nruns;
	uint32_t rounds;   /* rounds of pre-copy (for ckpt-inspect) */
	uint64_t npages;   /* pages the runs cover */
	uint64_t precopied; /* pages the PRECOPY records held, rewritten ones counted again */
};
#define IMG_LIVE_MAX_RUNS (1u << 24)

/* HASHES and REUSE: pages of process pid, as runs; HASHES then has npages
 * hashes of 16 bytes, in the order of the runs' pages. */
struct img_pagelist {
	int32_t pid;
	uint32_t nruns;
	uint64_t npages;
};

#define INCR_MAX_RUNS 65536  /* runs in one HASHES or REUSE record */
#define INCR_MAX_PAGES 65536 /* hashes in one HASHES record */
#define INCR_MAX_DEPTH 64    /* images in a chain above the last one */
#define INCR_PAGE 4096	     /* the page size the hash is defined for */

/* ATTRS: a process's attributes, once, after its PROC record (an image
 * without one sets none of them).  Then nthreads img_attrs_thread, in the
 * order of the THREAD records, then nfilters seccomp filters, each an
 * img_seccomp_filter and len struct sock_filter (8 bytes each), the
 * first installed first. */
#define IMG_NRLIMIT 16 /* RLIMIT_CPU .. RLIMIT_RTTIME */

#define IMG_ATTR_SUBREAPER 1u	 /* PR_SET_CHILD_SUBREAPER */
#define IMG_ATTR_THP_DISABLE 2u	 /* PR_SET_THP_DISABLE */
#define IMG_ATTR_NO_NEW_PRIVS 4u /* PR_SET_NO_NEW_PRIVS */
#define IMG_ATTR_LOGINUID 8u	 /* loginuid was set (not (uid_t)-1) */
#define IMG_ATTR_FLAGS 15u

/* membarrier(2) registrations, told by the command each allows. */
#define IMG_MEMB_PRIVATE_EXPEDITED 1u
#define IMG_MEMB_SYNC_CORE 2u
#define IMG_MEMB_RSEQ 4u
#define IMG_MEMB_FLAGS 7u

enum img_seccomp_mode { IMG_SECCOMP_NONE = 0, IMG_SECCOMP_STRICT = 1, IMG_SECCOMP_FILTER = 2 };

#define IMG_MAX_FILTERS 512	 /* the kernel's own chain limit is in instructions */
#define IMG_MAX_FILTER_LEN 4096	 /* BPF_MAXINSNS */

struct img_rlimit {
	uint64_t cur, max; /* RLIM_INFINITY: ~0 */
};

struct img_attrs {
	uint32_t flags; /* IMG_ATTR_* */
	uint32_t personality;
	struct img_rlimit rlim[IMG_NRLIMIT];
	int32_t oom_score_adj;
	uint32_t loginuid;
	int32_t pdeathsig;
	uint32_t dumpable;   /* PR_GET_DUMPABLE: 0, 1 (or 2, suid_dumpable) */
	uint32_t membarrier; /* IMG_MEMB_* */
	uint32_t securebits; /* PR_GET_SECUREBITS */
	int32_t spec_store;  /* PR_GET_SPECULATION_CTRL of PR_SPEC_STORE_BYPASS */
	int32_t spec_ib;     /* and of PR_SPEC_INDIRECT_BRANCH (-1: not asked) */
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb; /* /proc/PID/status */
	uint32_t seccomp;  /* IMG_SECCOMP_* */
	uint32_t nthreads; /* img_attrs_thread that follow: the PROC record's nthreads */
	uint32_t nfilters; /* IMG_SECCOMP_FILTER: the filters that follow */
	uint32_t pad;
};

struct img_attrs_thread {
	int32_t tid;
	int32_t policy;	  /* sched_getscheduler: SCHED_* | SCHED_RESET_ON_FORK */
	int32_t priority; /* sched_param.sched_priority */
	int32_t nice;	  /* getpriority(PRIO_PROCESS, tid) */
	uint64_t timerslack_ns;
	uint64_t affinity[16]; /* sched_getaffinity: CPUs 0..1023 */
};

struct img_seccomp_filter {
	uint32_t len;	/* instructions */
	uint32_t flags; /* SECCOMP_FILTER_FLAG_LOG */
};

/* The trampoline page that stays in a restored process: its code, then
 * this marker at RST_TRAMP_MAGIC_OFF, so that ckpt-dump recognises and
 * skips it in a process restored earlier (restorer.c writes it). */
#define RST_TRAMP_MAGIC "ckpt-remap trampoline page v1"
#define RST_TRAMP_MAGIC_OFF 64

#endif
