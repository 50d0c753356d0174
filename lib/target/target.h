/* target.h: a live process as the dumper and restorer see it: /proc (proc_), ptrace (pt_), system
 * calls run inside it (inj_), and what an interrupted call does next (restart_).
 *
 * The lifecycle, as CRIU's compel keeps it: stop (pt_seize: every thread in
 * a ptrace stop) -> prepare (inj_prepare: registers and signal mask kept)
 * -> call (inj_syscall, as often as needed) -> cure (inj_cure: all of it put
 * back) -> resume (pt_detach).  /proc is read before and during the stop. */
#ifndef CKPT_TARGET_H
#define CKPT_TARGET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "image/image.h"

/* ---- proc: reading what /proc tells about a process. */

/* One line of /proc/PID/smaps: a VMA. */
struct proc_map {
	uint64_t start, end, pgoff, ino;
	unsigned dev_major, dev_minor;
	uint32_t prot;	  /* PROT_* */
	int shared;	  /* 's' in the permissions */
	uint32_t vmflags; /* PROC_VM_*, from VmFlags */
	int deleted;	  /* the path ended in " (deleted)" */
	uint64_t anon_kb; /* "Anonymous:" + "Swap:" of smaps: private data pages */
	uint64_t kpage_kb; /* "KernelPageSize:": a huge page's size in hugetlbfs memory */
	char *path;	  /* file path, "[heap]" and the like, or "" */
};

/* The VmFlags of smaps that ckpt keeps (two letters each in smaps); the
 * same bits as the image's IMG_RGN_* flags. */
#define PROC_VM_GROWSDOWN 0x0002	  /* gd */
#define PROC_VM_MAYWRITE 0x0004	  /* mw: a shared file mapping that may become writable */
#define PROC_VM_NORESERVE 0x0008	  /* nr: MAP_NORESERVE, no swap space accounted */
#define PROC_VM_DONTFORK 0x0010	  /* dc: MADV_DONTFORK */
#define PROC_VM_WIPEONFORK 0x0020  /* wf: MADV_WIPEONFORK */
#define PROC_VM_DONTDUMP 0x0040	  /* dd: MADV_DONTDUMP */
#define PROC_VM_HUGEPAGE 0x0080	  /* hg: MADV_HUGEPAGE */
#define PROC_VM_NOHUGEPAGE 0x0100  /* nh: MADV_NOHUGEPAGE */
#define PROC_VM_LOCKED 0x0200	  /* lo: mlock */
#define PROC_VM_LOCKONFAULT 0x0400 /* lf: mlock2(MLOCK_ONFAULT) */
#define PROC_VM_MERGEABLE 0x0800	  /* mg: MADV_MERGEABLE */
#define PROC_VM_SEQREAD 0x1000	  /* sr: MADV_SEQUENTIAL */
#define PROC_VM_RANDREAD 0x2000	  /* rr: MADV_RANDOM */
/* Not kept but refused: */
#define PROC_VM_HUGETLB 0x10000 /* ht: hugetlbfs pages */
#define PROC_VM_IO 0x20000	/* io, pf: device memory (VM_IO, VM_PFNMAP) */

/* pid 0: this process. */
int proc_read_maps(pid_t pid, struct proc_map **maps, size_t *n);
/* The same from /proc/PID/maps: ranges, protections, files and paths, no
 * vmflags or page counts; no walk of the page tables, which smaps makes. */
int proc_read_layout(pid_t pid, struct proc_map **maps, size_t *n);
/* 1 if /proc/PID/maps still lists exactly these mappings (cheap: no page
 * table walk, unlike smaps), 0 if not, -1 on error. */
int proc_same_layout(pid_t pid, const struct proc_map *maps, size_t n);
void proc_free_maps(struct proc_map *maps, size_t n);

/* Fields of /proc/PID/stat. */
struct proc_stat {
	char state;
	pid_t ppid, pgrp, session;
	int tty_nr, tpgid;
	int exit_signal;
	int exit_code; /* a zombie: its wait status */
	long nthreads;
	uint64_t start_code, end_code, start_stack;
	uint64_t start_data, end_data, start_brk;
	uint64_t arg_start, arg_end, env_start, env_end;
};

int proc_read_stat(pid_t pid, struct proc_stat *st);
/* Children of every thread of the process (/proc/PID/task/TID/children). */
int proc_list_children(pid_t pid, pid_t **kids, size_t *n);
/* Tasks (threads) of the process, from /proc/PID/task, the kernel's
 * io_uring threads (PF_IO_WORKER) left out. */
int proc_list_tasks(pid_t pid, pid_t **tids, size_t *n);
/* "Umask:", "Uid:" (real), "Gid:" (real) from /proc/PID/status. */
int proc_read_status(pid_t pid, unsigned *umask, unsigned *uid, unsigned *gid);
/* A process's (tid: a thread's) ids in the pid namespace level levels
 * below that of our /proc (-1: its own), from its status's NSpid, NSpgid
 * and NSsid;
 * each 0 where it has none there.  levels: how many NSpid has (1: the
 * process is in our pid namespace).  -1 with err_set. */
struct proc_nsids {
	pid_t pid, pgid, sid;
	int levels;
};
int proc_read_nsids(pid_t pid, pid_t tid, int level, struct proc_nsids *ids);
/* Signal masks of thread tid of pid from /proc/PID/task/TID/status:
 * pending on it, pending on the process, blocked, caught (a handler),
 * ignored. */
struct proc_sigmasks {
	uint64_t pnd, shd, blk, cgt, ign;
};
int proc_read_sigmasks(pid_t pid, pid_t tid, struct proc_sigmasks *m);
/* Credentials and sandbox of thread tid of pid (/proc/PID/task/TID/status):
 * capability sets, NoNewPrivs, Seccomp (mode), Seccomp_filters. */
struct proc_creds {
	uint64_t inh, prm, eff, bnd, amb;
	unsigned no_new_privs, seccomp, nfilters;
};
int proc_read_creds(pid_t pid, pid_t tid, struct proc_creds *c);
/* readlink of /proc/PID/<what>, malloc'd. */
char *proc_readlink(pid_t pid, const char *what);

/* /proc/PID/fdinfo/FD: position and flags. */
struct proc_fdinfo {
	uint64_t pos;
	unsigned flags;
};
int proc_read_fdinfo(pid_t pid, int fd, struct proc_fdinfo *fi);
/* Open fds of the process, sorted. */
int proc_list_fds(pid_t pid, int **fds, size_t *n);

/* One POSIX timer of /proc/PID/timers. */
struct proc_timer {
	int id, signo, clock;
	int notify; /* SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID */
	int target; /* pid or tid after "notify: .../pid." or "/tid." */
	uint64_t value;
};
int proc_read_timers(pid_t pid, struct proc_timer **timers, size_t *n);

/* Pagemap entries for [start, end): one uint64_t per page into out. */
int proc_open_pagemap(pid_t pid);
int proc_read_pagemap(int fd, uint64_t start, uint64_t npages, uint64_t *out);
#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE (1ull << 61)
#define PM_GUARD (1ull << 58) /* a guard page (MADV_GUARD_INSTALL; Linux 6.15+ shows it) */

/* The guard pages (MADV_GUARD_INSTALL) of the process below end, as
 * address ranges in ascending order, from the PAGEMAP_SCAN ioctl on its
 * pagemap; none where the kernel cannot say (before 6.15: no PAGE_IS_GUARD
 * category, or no PAGEMAP_SCAN before 6.7). */
struct proc_range {
	uint64_t start, end;
};
int proc_read_guards(pid_t pid, uint64_t end, struct proc_range **ranges, size_t *n);
/* The ranges of [start, end) whose pages are in category (PAGEMAP_SCAN's
 * PAGE_IS_* bits, Linux 6.7+) on the pagemap fd, ascending, adjacent ones
 * joined, malloc'd; none where the kernel cannot say.  -1 with errno. */
int proc_scan_ranges(int fd, uint64_t start, uint64_t end, uint64_t category,
		     struct proc_range **ranges, size_t *n);
#define PM_SCAN_PFNZERO (1ull << 5) /* maps the zero page */
#define PM_SCAN_GUARD (1ull << 8)   /* a guard page (6.15+) */

/* ---- ptrace: seize, interrupt, registers, detach. */

struct rseq_conf {
	uint64_t addr;
	uint32_t len, sig, flags, pad;
};

/* Seize pid and bring it to a ptrace stop.  A signal that arrives while we
 * wait is delivered to the program as usual (we pass it on), never lost. */
int pt_seize(pid_t pid) __attribute__((warn_unused_result));
int pt_get_regs(pid_t pid, struct user_regs_struct *r) __attribute__((warn_unused_result));
int pt_set_regs(pid_t pid, const struct user_regs_struct *r) __attribute__((warn_unused_result));
/* XSAVE area (NT_X86_XSTATE); *len in: buffer size, out: bytes filled. */
int pt_get_xstate(pid_t pid, void *buf, size_t *len) __attribute__((warn_unused_result));
int pt_get_sigmask(pid_t pid, uint64_t *mask) __attribute__((warn_unused_result));
int pt_set_sigmask(pid_t pid, uint64_t mask) __attribute__((warn_unused_result));
int pt_get_rseq(pid_t pid, struct rseq_conf *c) __attribute__((warn_unused_result));
/* Let it go: sig 0 continues it, SIGSTOP leaves it stopped. */
int pt_detach(pid_t pid, int sig);
/* Wait for the next stop of a tracee; -1 if it exited or was killed. */
int pt_wait(pid_t pid, int *status) __attribute__((warn_unused_result));

/* ---- inject: run a system call inside a stopped thread, and undo.
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

/* ---- restart: what a thread stopped inside a system call does next.
 *
 * When ckpt-dump stops a thread that sleeps in a system call, the kernel
 * ends the call with an -ERESTART* code, which it turns into a restart on
 * the way back to user space, or -- for epoll_wait, sigtimedwait, semop
 * and a few others (signal(7), "Interruption of system call and library
 * functions by stop signals") -- with -EINTR even when no handler runs.
 * A restored thread must carry on as if never stopped, and so must the
 * dumped process when it goes on running. */

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

/* ---- ns: namespaces and cgroup (ns.c). */

/* im->ns: the namespaces and cgroup of pid that are not those of outer
 * (the tree root's parent; for the pid namespace, root's), and what a
 * restore needs to make them again (NULL when there are none); -1
 * (err_set naming pid) for one a restore cannot make. */
int ns_capture(pid_t pid, pid_t root, pid_t outer, struct image *im)
	__attribute__((warn_unused_result));
/* n->mounts: the steps that make pid's mount namespace of its own again
 * from a copy of outer's (mounts.c); -1 (err_set naming pid) for a mount
 * a restore cannot make. */
int mnt_capture(pid_t pid, pid_t outer, struct ns_rec *n) __attribute__((warn_unused_result));
/* The cgroup v2 path of /proc/PID/cgroup (its "0::" line; pid 0: ours),
 * malloc'd, or NULL. */
char *proc_read_cgroup(pid_t pid);
/* The offsets of /proc/PID/timens_offsets (pid 0: ours): [0] monotonic,
 * [1] boottime; -1 (err_set) if it cannot be read or parsed. */
int proc_read_timens_offsets(pid_t pid, int64_t sec[2], int64_t nsec[2])
	__attribute__((warn_unused_result));
/* This boot's id (/proc/sys/kernel/random/boot_id) as 16 bytes; -1 (err_set). */
int proc_boot_id(uint8_t id[16]) __attribute__((warn_unused_result));
/* Now on clock (CLOCK_MONOTONIC or CLOCK_BOOTTIME) of the machine, without
 * the offsets of our own time namespace, in ns; -1 (err_set). */
int64_t host_clock_ns(int clock);

/* ---- attrs: the process's attributes, into im->attrs (attrs.c).
 *
 * attrs_capture reads what /proc and system calls on the pid tell (limits,
 * scheduling and affinity of each thread, personality, oom_score_adj,
 * loginuid, capabilities, seccomp filters), with every thread of tids in a
 * ptrace stop; it refuses (-1, err_set naming pid and why) what a restore
 * could not give back, before anything is injected.  attrs_inject asks
 * thread k, prepared, what only the process can ask (prctl, membarrier). */
int attrs_capture(pid_t pid, const pid_t *tids, size_t ntids, struct image *im)
	__attribute__((warn_unused_result));
int attrs_inject(struct inj *c, struct image *im, size_t k) __attribute__((warn_unused_result));

#endif
