/* proc.h: reading what /proc tells about a process. */
#ifndef CKPT_PROC_H
#define CKPT_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* One line of /proc/PID/smaps: a VMA. */
struct proc_map {
	uint64_t start, end, pgoff, ino;
	unsigned dev_major, dev_minor;
	uint32_t prot;	  /* PROT_* */
	int shared;	  /* 's' in the permissions */
	uint32_t vmflags; /* PROC_VM_*, from VmFlags */
	int deleted;	  /* the path ended in " (deleted)" */
	uint64_t anon_kb; /* "Anonymous:" + "Swap:" of smaps: private data pages */
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
/* Tasks (threads) of the process, from /proc/PID/task. */
int proc_list_tasks(pid_t pid, pid_t **tids, size_t *n);
/* "Umask:", "Uid:" (real), "Gid:" (real) from /proc/PID/status. */
int proc_read_status(pid_t pid, unsigned *umask, unsigned *uid, unsigned *gid);
/* Signal masks of thread tid of pid from /proc/PID/task/TID/status:
 * pending on it, pending on the process, blocked, caught (a handler),
 * ignored. */
struct proc_sigmasks {
	uint64_t pnd, shd, blk, cgt, ign;
};
int proc_read_sigmasks(pid_t pid, pid_t tid, struct proc_sigmasks *m);
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

#endif
