/* restorer.h: what ckpt-remap hands the freestanding restorer.
 *
 * Shared by lib/restore/restore.c (ordinary C, which fills it in) and restorer.c
 * (freestanding, which acts on it).  Plain integers only: the restorer
 * runs after everything of ckpt-remap but its own blob is unmapped. */
#ifndef CKPT_RESTORER_H
#define CKPT_RESTORER_H

#include <stdint.h>

#include "image/format.h"

/* RST_TRAMP_MAGIC: format.h, since ckpt-dump looks for it too. */

struct rst_range {
	uint64_t start, end;
};

struct rst_move {
	uint64_t from, to, len;
};

struct rst_map {
	uint64_t start, end;
	uint64_t pgoff;
	int32_t fd;	 /* file to map, or -1 for anonymous memory */
	uint32_t prot;	 /* final protection */
	uint32_t flags;	 /* mmap flags (MAP_PRIVATE/SHARED, MAP_GROWSDOWN) */
	uint32_t fill;	 /* page data may follow for this region */
	uint32_t advice; /* the region's IMG_RGN_* flags: madvise, mlock to set again */
	int32_t shmid;	 /* a System V segment to attach instead of mmap, or -1 */
	uint32_t shm_rmid; /* then remove the segment's id (it had been removed) */
	uint32_t lazy;	   /* with RST_F_LAZY, runs may be mapped from the image file */
	uint32_t late;	   /* with RST_F_UFFD, filled on a fault by the filler (lazy.c) */
	/* An AIO ring (IMG_RGN_AIO): io_setup makes it, it moves here; the
	 * kernel's tail is brought to aio_tail and the ring's head to aio_head;
	 * aio_id is the new context's index, which the kernel reads from it. */
	uint32_t aio_nr, aio_head, aio_tail, aio_id;
};

/* struct prctl_mm_map, as <linux/prctl.h> has it. */
struct rst_mm_map {
	uint64_t start_code, end_code, start_data, end_data, start_brk, brk, start_stack;
	uint64_t arg_start, arg_end, env_start, env_end;
	uint64_t auxv; /* pointer */
	uint32_t auxv_size;
	uint32_t exe_fd;
};

#define RST_MAX_SPECIAL 8

/* The pieces a PAGES record's data is read in when a helper faults in
 * pages ahead, and how many a record may have (more: no helper for it). */
#define RST_CHUNK (256u << 10)
#define RST_MAX_CHUNKS 2048

/* Trampoline entry points (offsets into its page). */
#define RST_TRAMP_MAIN 0    /* munmap(rdi, rsi); rsp = rdx; rt_sigreturn */
#define RST_TRAMP_THREAD 32 /* decrement *rdi, wake it; rsp = r12; rt_sigreturn */
#define RST_THREAD_STACK (16 << 10)

struct rst_thread {
	/* The rt_sigreturn frame (ucontext + 64-byte aligned xsave area),
	 * copied below the thread's stack pointer at the end. */
	uint64_t frame;	      /* address of the prepared frame in the blob */
	uint64_t frame_len;   /* bytes */
	uint64_t frame_fpoff; /* offset of the xsave area in the frame */
	uint64_t frame_fpptr; /* offset of sigcontext.fpstate, patched at the end */
	uint64_t frame_sp;    /* where the frame goes: below rsp and its red zone */
	uint64_t fs_base, gs_base;
	uint64_t tid_addr;
	uint32_t tid_cached; /* write our tid to *tid_addr (glibc's cached tid) */
	uint32_t pad;
	uint64_t robust_head, robust_len;
	uint64_t rseq_addr, rseq_len, rseq_sig;
	uint64_t stack_top; /* the restorer's stack for this thread (clones) */
	char comm[16];
	int32_t new_tid; /* set by the main thread when it clones this one */
	int32_t tid;	 /* the tid at dump time, asked for with RST_F_KEEP_TIDS */
};

/* A pending signal to queue again: on thread `thread` (an index into
 * the threads), or on the process when thread is -1. */
struct rst_sig {
	int32_t thread;
	int32_t signo;
	unsigned char info[IMG_SIGINFO_SIZE];
};

/* A POSIX timer to create with its old id; its = the kernel's struct
 * itimerspec (interval, then value). */
struct rst_ptimer {
	int32_t id, clock, notify, signo;
	int32_t thread; /* SIGEV_THREAD_ID: index of the thread it signals */
	int32_t fire;	/* its expiry's signal was pending: fire now, not at its[2..3] */
	uint64_t value;
	int64_t its[4];
};

struct rst_args {
	/* The restorer's own memory: unmapped last, through the trampoline. */
	uint64_t blob_start, blob_len;
	uint64_t tramp; /* address of the trampoline page */
	int32_t img_fd;
	int32_t err_fd; /* ckpt-remap's stderr, for progress and errors */
	int32_t fail_rc;
	int32_t status_fd; /* the decompressor's status pipe, or -1 */
	uint32_t page_size;
	uint32_t flags; /* RST_F_* */

	/* Mappings of ckpt-remap to remove (everything but the blob, the
	 * trampoline and the special mappings). */
	uint64_t nunmap;
	uint64_t unmap; /* struct rst_range[nunmap] */

	/* [vvar], [vvar_vclock], [vdso]: moved, never copied. */
	uint32_t nspecial;
	uint32_t pad0;
	struct rst_move special[RST_MAX_SPECIAL];

	uint64_t nmaps;
	uint64_t maps; /* struct rst_map[nmaps], sorted by address */

	/* Page data: PAGES records until END, expected totals. */
	uint64_t stream_off; /* image stream offset where page data starts */
	uint64_t nrec;	     /* records read before it */
	uint64_t npages;     /* pages of data read before it (SHMDATA) */
	struct img_rec first; /* the first record's header, already read... */
	uint64_t have_first;  /* ...if this is 1 (stream_off is then past it) */
	uint64_t lazy_max;    /* RST_F_LAZY: runs that may be mapped (two mappings each) */
	uint64_t pages_hint; /* for the progress line */
	/* RST_F_UFFD: the userfaultfd the late regions are registered on, and
	 * the pipe on which the filler gets the rest of the stream (lazy.c). */
	int32_t uffd, lazy_fd;

	struct rst_mm_map mm;
	uint64_t auxv[64];

	/* Signal actions of the process. */
	uint64_t sigacts; /* struct img_sigact[IMG_NSIG] */

	/* The threads: [0] is the main thread, which is this one; the others
	 * are cloned and count `pending` down as they leave for the program. */
	uint64_t nthreads;
	uint64_t threads; /* struct rst_thread[nthreads] */
	int32_t pending;
	int32_t go; /* set when the process-wide state is complete */
	int32_t set; /* cloned threads whose own state is set (a tree waits for all) */
	int32_t pad4;

	/* Pending signals and timers, set up once every thread exists. */
	uint64_t nsig;
	uint64_t sigs; /* struct rst_sig[nsig] */
	int64_t itimer[3][4]; /* struct itimerval: interval, value (sec, usec) */
	uint64_t nptimer;
	uint64_t ptimers; /* struct rst_ptimer[nptimer] */

	/* fds of ckpt-remap's own to close at the end (image, map files). */
	uint32_t nclose;
	uint32_t pad2;
	uint64_t close_fds; /* int32_t[nclose] */

	/* Scratch for PAGES runs. */
	uint64_t runs;	   /* struct img_run[IMG_MAX_RUNS] */

	/* A helper thread that faults in the pages of a PAGES record from
	 * its end while the main thread reads data into it from its start
	 * (first touch of fresh memory, not the copy, bounds a restore). */
	struct rst_prefault {
		int32_t seq;  /* bumped by the main thread: new chunks, or quit */
		int32_t done; /* the helper's last seq, finished */
		int32_t quit;
		int32_t tid;	     /* CLONE_CHILD_CLEARTID: 0 once the helper is gone */
		int64_t lo, hi;	     /* chunks [lo, hi) are left to the helper */
		uint64_t chunks;     /* struct rst_range[RST_MAX_CHUNKS] */
		uint64_t stack_top;  /* RST_THREAD_STACK bytes below it */
	} pf;

	/* RST_F_TREE: the supervisor's turn to read the stream comes as a
	 * token on cmd_fd, and goes back on rep_fd; "go" follows on cmd_fd
	 * once every process has its pages. */
	int32_t tree_cmd_fd, tree_rep_fd;
	int32_t tree_pid;
	int32_t pad3;

	/* The process's POSIX locks, taken once the fds of ours that share
	 * its files are closed (a close of any fd of a file drops them):
	 * the first nclose_early of close_fds are closed before. */
	uint32_t nlocks;
	uint32_t nclose_early;
	uint64_t locks; /* struct rst_lock[nlocks] */

	uint64_t attrs; /* struct rst_attrs (attrs.h), set last; 0: none */

	/* ckpt-remap --setenv, --unsetenv: the address of the program's
	 * environ variable (0: no change), and the changes, each a byte
	 * ('s' set, 'u' unset) and a NUL-terminated NAME=VALUE or NAME. */
	uint64_t env_addr;
	uint64_t env_edits; /* env_edits_len bytes */
	uint64_t env_edits_len;

	/* The init of a pid namespace below the tree's, in a mount namespace
	 * of the tree's own that had a proc of it: mounted on proc_path once
	 * every process of the tree is ready (before, the others still read
	 * their /proc, which it covers), then given proc_prop (MS_PRIVATE...). */
	uint64_t proc_path; /* NUL-terminated; 0: none */
	uint64_t proc_flags;
	uint64_t proc_prop;

	/* A live stream (ckpt-dump --live): the pieces of the staged
	 * pre-copy in ckpt-remap's memory that regions have, moved into
	 * place once the regions are mapped (before the page data, which
	 * may write over them); the pages of them the pre-copy does not
	 * give, made zero; then what is left of the staging memory,
	 * dropped. */
	uint64_t nlive_moves;
	uint64_t live_moves; /* struct rst_move[nlive_moves] */
	uint64_t nlive_zero;
	uint64_t live_zero; /* struct rst_move[nlive_zero]: to, len made zero after the moves */
	uint64_t nlive_drop;
	uint64_t live_drop; /* struct rst_range[nlive_drop] */
};

/* One POSIX lock: fcntl(fd, F_SETLK, &fl), fl as the kernel's struct
 * flock on x86-64. */
struct rst_lock {
	int32_t fd;
	int32_t pad;
	struct rst_flock {
		int16_t type, whence;
		int32_t pad;
		int64_t start, len;
		int32_t pid, pad2;
	} fl;
};

/* A tree's messages between the supervisor and its processes (pipes,
 * one message per write: under PIPE_BUF, so never split). */
enum rst_msg {
	RST_MSG_CREATED = 1, /* process -> supervisor: made, with its children */
	RST_MSG_GROUPS,	     /* supervisor -> all: join your process groups */
	RST_MSG_JOINED,	     /* process -> supervisor: done */
	RST_MSG_TURN,	     /* the stream is yours (off, nrec, npages, rec: its next record) */
	RST_MSG_END,	     /* process -> supervisor: the END record checked */
	RST_MSG_READY,	     /* process -> supervisor: all set, every thread made; nothing
				left that can fail */
	RST_MSG_GO,	     /* supervisor -> all: every process is ready; run */
};

struct rst_token {
	uint32_t msg; /* enum rst_msg */
	int32_t pid;
	uint64_t off, nrec, npages;
	struct img_rec rec;
};

#define RST_F_PROGRESS 1u
#define RST_F_EXE_FD 2u /* mm.exe_fd is set: try it, fall back to -1 on EPERM */
#define RST_F_KEEP_TIDS 4u /* clone threads with their old tids (clone3 set_tid) */
#define RST_F_LAZY 8u	   /* map large runs from the image file instead of reading them */
#define RST_F_TREE 16u	   /* one process of a tree: see tree_cmd_fd */
#define RST_F_MERGED 32u   /* status_fd is an incremental image's merge, which names the image */
#define RST_F_STOP 64u	   /* ckpt-remap --stop: SIGSTOP before the program's first instruction */
#define RST_F_UFFD 128u	   /* --lazy from a stream: the late regions' pages are the filler's */

/* --lazy from a stream: what the restorer hands the filler (lazy.c) on
 * lazy_fd when it meets the first record of the late regions, whose
 * header, runs and padding it read (stream offset off, past them; nrec
 * and npages counted before it); then p.nruns struct img_run. */
#define RST_LAZY_MAGIC 0x6c617a7966696c6cull
struct rst_lazy_msg {
	uint64_t magic;
	uint64_t off, nrec, npages;
	uint64_t start; /* the record's offset */
	struct img_pages p;
};
#define RST_F_NO_DATA_CRC 256u /* the image's page data has no checksums (IMG_HDR_NO_DATA_CRC) */

#endif
