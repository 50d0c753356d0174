/* dump.c: capture a stopped process (or tree) and write its image. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dump/dump.h"
#include "dump/live-internal.h"
#include "dump/splice-internal.h"
#include "dump/track-internal.h"
#include "base/base.h"
#include "kinds/kinds.h"
#include "image/image.h"
#include "incr/incr.h"
#include "target/target.h"

#define BATCH_PAGES 1024 /* pages read and written per PAGES record, at most */
#define NBUFS 16	 /* write_pages' buffers of a batch each, at most */

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static int has_tid(const struct dump_target *t, pid_t tid)
{
	for (size_t i = 0; i < t->ntids; i++)
		if (t->tids[i] == tid)
			return 1;
	return 0;
}

static void release_all(struct dump_target *t, int sig)
{
	for (size_t i = 0; i < t->ntids; i++) {
		struct user_regs_struct r;
		struct proc_sigmasks m;

		/* A program that had no handler run must not see EINTR from a
		 * blocking call only because we stopped it (target.h, restart_), on
		 * every way out, a failed dump's too.  A signal it catches
		 * pending and unblocked makes that EINTR its own. */
		if (pt_get_regs(t->tids[i], &r) == 0 &&
		    proc_read_sigmasks(t->pid, t->tids[i], &m) == 0 &&
		    restart_undo_stop_eintr(&r, ((m.pnd | m.shd) & ~m.blk & m.cgt) != 0) &&
		    pt_set_regs(t->tids[i], &r))
			warnx("pid %d: thread %d may see EINTR: %s", t->pid, t->tids[i], err_get());
		pt_detach(t->tids[i], t->tids[i] == t->pid ? sig : 0);
	}
	free(t->tids);
	t->tids = NULL;
	t->ntids = 0;
	proc_free_maps(t->maps, t->nmaps);
	t->maps = NULL;
	t->nmaps = 0;
}

/* One pass: seize every thread of t->pid not seized yet.  How many, or -1
 * with every thread let go. */
static int seize_new_threads(struct dump_target *t)
{
	pid_t pid = t->pid, *tids;
	size_t n;
	int added = 0;

	if (proc_list_tasks(pid, &tids, &n)) {
		if (errno == ENOENT)
			err_set("pid %d: no such process", pid);
		release_all(t, 0);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		pid_t *nt;

		if (has_tid(t, tids[i]))
			continue;
		if (pt_seize(tids[i])) {
			/* A thread that exited meanwhile is no loss; anything
			 * else, or the main thread going, ends the dump. */
			if (errno == ESRCH && tids[i] != pid)
				continue;
			free(tids);
			release_all(t, 0);
			return -1;
		}
		nt = realloc(t->tids, (t->ntids + 1) * sizeof(*nt));
		if (!nt) {
			pt_detach(tids[i], 0);
			free(tids);
			release_all(t, 0);
			err_set("out of memory");
			return -1;
		}
		t->tids = nt;
		t->tids[t->ntids++] = tids[i];
		added++;
	}
	free(tids);
	return added;
}

/* write_pages' buffers, made once and touched before the process is
 * frozen, by a thread while smaps is read (page_bufs_start): fresh memory
 * faults in page by page as the first reads fill it, 2,048 faults for two
 * (3 ms here, most of what an incremental dump of a few MiB kept the
 * program frozen for).  Two, or as many as the pages a dump expects to
 * read fill (dump_expect_pages): the process is then read whole into
 * them and let go, however slowly the writer writes (10-15 ms a 4 MiB
 * batch into the page cache at times here). */
static unsigned char *page_bufs[NBUFS];
static int page_nbufs;		 /* made */
static size_t page_bufs_touched; /* bytes of each touched */
static pthread_t page_bufs_thread;
static uint64_t expect_pages; /* dump_expect_pages */

void dump_expect_pages(uint64_t n)
{
	expect_pages = n;
}

/* How many buffers: two, or what expect_pages fill with an eighth to
 * spare (the last one read is let go before it is queued). */
static int page_bufs_wanted(void)
{
	uint64_t n = expect_pages + expect_pages / 8;
	uint64_t k = (n + BATCH_PAGES - 1) / BATCH_PAGES;

	return k < 2 ? 2 : k > NBUFS ? NBUFS : (int)k;
}

static void *page_bufs_main(void *arg)
{
	size_t want = (size_t)(uintptr_t)arg;
	int n = page_bufs_wanted();

	for (int k = 0; k < n; k++) {
		if (!page_bufs[k]) {
			void *p = mmap(NULL, BATCH_PAGES * (size_t)sysconf(_SC_PAGESIZE),
				       PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				return NULL;
			page_bufs[k] = p;
			page_nbufs = k + 1;
		}
		if (madvise(page_bufs[k], want, MADV_POPULATE_WRITE))
			memset(page_bufs[k], 0, want);
	}
	page_bufs_touched = want;
	return NULL;
}

/* Start making the buffers, touched as far as the private pages resident
 * in pid (statm) may fill them: 1 if a thread does it (join
 * page_bufs_thread), 0 if nothing is left to do.  Best effort: write_pages
 * allocates its own where this failed. */
static int page_bufs_start(pid_t pid)
{
	size_t want = BATCH_PAGES * (size_t)sysconf(_SC_PAGESIZE);
	unsigned long long size, resident, shared;
	sigset_t all, old;
	char path[64], *s;
	int rc;

	s = read_file(fmt_path(path, sizeof(path), "/proc/%d/statm", pid), NULL);
	if (s && sscanf(s, "%llu %llu %llu", &size, &resident, &shared) == 3 &&
	    resident >= shared && (resident - shared) * sysconf(_SC_PAGESIZE) < want)
		want = (resident - shared) * sysconf(_SC_PAGESIZE);
	free(s);
	if (page_nbufs >= page_bufs_wanted() && want <= page_bufs_touched)
		return 0;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&page_bufs_thread, NULL, page_bufs_main, (void *)(uintptr_t)want);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		page_bufs_main((void *)(uintptr_t)want);
	return rc == 0;
}

/* The buffers go once a dump is written: a coordinated job's helper
 * dumps its member at each checkpoint and lives on between them. */
static void page_bufs_free(void)
{
	for (int k = 0; k < page_nbufs; k++) {
		munmap(page_bufs[k], BATCH_PAGES * (size_t)sysconf(_SC_PAGESIZE));
		page_bufs[k] = NULL;
	}
	page_nbufs = 0;
	page_bufs_touched = 0;
}

/* Run once by the next dump_seize, after what it reads of the process
 * while it runs, before it stops it (dump_before_freeze). */
static int (*before_freeze)(void *);
static void *before_freeze_arg;

void dump_before_freeze(int (*fn)(void *), void *arg)
{
	before_freeze = fn;
	before_freeze_arg = arg;
}

int dump_seize(pid_t pid, struct dump_target *t)
{
	struct proc_stat st;
	int bufs;

	memset(t, 0, sizeof(*t));
	t->pid = pid;
	/* A process in a group-stop (SIGSTOP, ^Z) cannot run the system
	 * calls we inject: a seized tracee that is resumed while its group
	 * is stopped traps again at once (PTRACE_EVENT_STOP) instead of
	 * running.  Continuing it would run its SIGCONT handler and tell its
	 * parent; say so instead, before touching it. */
	if (proc_read_stat(pid, &st) == 0 && st.state == 'T') {
		err_set("pid %d is stopped (SIGSTOP or job control); it can be dumped once it is "
			"continued (kill -CONT %d)",
			pid, pid);
		return -1;
	}
	bufs = page_bufs_start(pid);
	/* Failing here is no error: capture reads smaps again. */
	if (proc_read_maps(pid, &t->maps, &t->nmaps)) {
		t->maps = NULL;
		t->nmaps = 0;
	}
	if (bufs)
		pthread_join(page_bufs_thread, NULL);
	if (before_freeze) {
		int (*fn)(void *) = before_freeze;
		before_freeze = NULL;
		if (fn(before_freeze_arg)) {
			proc_free_maps(t->maps, t->nmaps);
			t->maps = NULL;
			t->nmaps = 0;
			return -1;
		}
	}
	/* Threads may be created until all are stopped: list them again
	 * until a pass finds none we have not seized. */
	for (;;) {
		int added = seize_new_threads(t);

		if (added < 0)
			return -1;
		if (!added)
			break;
		if (t->ntids > IMG_MAX_THREADS) {
			release_all(t, 0);
			err_set("pid %d has more than %d threads", pid, IMG_MAX_THREADS);
			return -1;
		}
	}
	/* The main thread first: it becomes ckpt-remap's own. */
	for (size_t i = 1; i < t->ntids; i++)
		if (t->tids[i] == pid) {
			t->tids[i] = t->tids[0];
			t->tids[0] = pid;
		}
	if (t->ntids == 0 || t->tids[0] != pid) {
		release_all(t, 0);
		err_set("pid %d: its main thread is gone", pid);
		return -1;
	}
	return 0;
}

/* The three interval timers: ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF. */
static int inject_itimers(struct inj *c, struct image *im)
{
	uint64_t a[6] = {0};
	int64_t ret;

	for (int which = 0; which < 3; which++) {
		struct itimerval v;

		a[0] = which;
		a[1] = c->scratch;
		if (inj_syscall(c, SYS_getitimer, a, &ret))
			return -1;
		if (ret || inj_peek(c, &v, sizeof(v))) {
			err_set("pid %d: cannot read interval timer %d", im->proc.pid, which);
			return -1;
		}
		im->timers.it[which].value = (struct img_timespec){v.it_value.tv_sec,
								   v.it_value.tv_usec * 1000};
		im->timers.it[which].interval = (struct img_timespec){
			v.it_interval.tv_sec, v.it_interval.tv_usec * 1000};
	}
	return 0;
}

/* POSIX timer pt of process pid: what /proc/PID/timers says of it, and the
 * time it has left. */
static int inject_ptimer(struct inj *c, pid_t pid, const struct proc_timer *pt,
			 struct img_ptimer *p)
{
	uint64_t a[6] = {0};
	struct itimerspec its;
	int64_t ret;

	/* Per-process and per-thread CPU clocks of another process would
	 * need that process. */
	if (pt->clock < 0 && (~pt->clock) >> 3 != 0) {
		err_set("pid %d: POSIX timer %d counts the CPU time of another process; "
			"not supported",
			pid, pt->id);
		return -1;
	}
	a[0] = pt->id;
	a[1] = c->scratch;
	if (inj_syscall(c, SYS_timer_gettime, a, &ret))
		return -1;
	if (ret || inj_peek(c, &its, sizeof(its))) {
		err_set("pid %d: cannot read POSIX timer %d", pid, pt->id);
		return -1;
	}
	p->id = pt->id;
	p->clock = pt->clock;
	p->notify = pt->notify;
	p->signo = pt->signo;
	p->tid = pt->notify == SIGEV_THREAD_ID ? pt->target : 0;
	p->value = pt->value;
	p->left = (struct img_timespec){its.it_value.tv_sec, its.it_value.tv_nsec};
	p->interval = (struct img_timespec){its.it_interval.tv_sec, its.it_interval.tv_nsec};
	return 0;
}

/* Interval timers and the time left on each POSIX timer (listed, with
 * their notification, by /proc/PID/timers). */
static int inject_timers(struct inj *c, struct image *im)
{
	struct proc_timer *pt = NULL;
	size_t n = 0;
	int rc = 0;

	if (inject_itimers(c, im) || proc_read_timers(im->proc.pid, &pt, &n))
		return -1;
	im->ptimers = calloc(n + 1, sizeof(*im->ptimers));
	if (!im->ptimers) {
		free(pt);
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = inject_ptimer(c, im->proc.pid, &pt[i], &im->ptimers[i]);
	if (rc == 0)
		im->timers.nposix = n;
	free(pt);
	return rc;
}

/* Each AIO ring is a context of the process's own: io_getevents of none
 * finds it (and takes nothing).  A child inherits its parent's rings
 * across fork, but not the contexts. */
static int inject_aio(struct inj *c, const struct image *im)
{
	for (size_t i = 0; i < im->nregions; i++) {
		const struct img_region *d = &im->regions[i].d;
		uint64_t a[6] = {d->start, 0, 0, 0, 0, 0};
		int64_t ret;

		if (d->kind != IMG_RGN_AIO)
			continue;
		if (inj_syscall(c, SYS_io_getevents, a, &ret))
			return -1;
		if (ret) {
			err_set("pid %d: region %#llx-%#llx (/[aio]) is the ring of an AIO context "
				"not the process's own (io_getevents: %s; a parent's, inherited "
				"across fork); not supported",
				im->proc.pid, (unsigned long long)d->start,
				(unsigned long long)d->end, strerror((int)-ret));
			return -1;
		}
	}
	return 0;
}

/* Per-thread kernel state only the thread itself can tell: clear_child_tid
 * and the alternate signal stack; for the main thread also what belongs to
 * the process (signal actions, brk). */
static int inject_thread(struct inj *c, struct image *im, struct thread *th, int main_thread,
			 struct shm_dump *sd)
{
	struct img_thread *t = &th->d;
	struct proc_sigmasks sm;
	uint64_t a[6] = {0};
	int64_t ret;
	stack_t ss;

	a[0] = PR_GET_TID_ADDRESS;
	a[1] = c->scratch;
	if (inj_syscall(c, SYS_prctl, a, &ret))
		return -1;
	if (ret == 0 && inj_peek(c, &t->tid_addr, 8))
		return -1;
	memset(a, 0, sizeof(a));
	a[1] = c->scratch;
	if (inj_syscall(c, SYS_sigaltstack, a, &ret))
		return -1;
	if (ret == 0) {
		if (inj_peek(c, &ss, sizeof(ss)))
			return -1;
		t->ss_sp = (uint64_t)ss.ss_sp;
		t->ss_size = ss.ss_size;
		t->ss_flags = ss.ss_flags;
	}
	if (!main_thread)
		return 0;
	/* Only a caught or ignored signal (or SIGCHLD, whose SIG_DFL has
	 * flags that count) needs asking: the rest are SIG_DFL, nothing set.
	 * Fewer injected calls, a shorter window in which only a SIGKILL of
	 * ckpt-dump could hurt the program. */
	if (proc_read_sigmasks(im->proc.pid, th->d.tid, &sm))
		return -1;
	for (int sig = 1; sig <= IMG_NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (sig != SIGCHLD && !((sm.cgt | sm.ign) >> (sig - 1) & 1))
			continue;
		a[0] = sig;
		a[1] = 0;
		a[2] = c->scratch;
		a[3] = 8; /* the kernel's sigset_t */
		if (inj_syscall(c, SYS_rt_sigaction, a, &ret))
			return -1;
		if (ret == 0 && inj_peek(c, &im->sigacts[sig - 1], sizeof(im->sigacts[0])))
			return -1;
	}
	memset(a, 0, sizeof(a));
	if (inj_syscall(c, SYS_brk, a, &ret))
		return -1;
	im->proc.mm[MM_BRK] = ret;
	if (inject_timers(c, im) || inject_aio(c, im))
		return -1;
	return shm_inject(c, im, sd);
}

/* The address of a syscall instruction in the process's [vdso]. */
static int vdso_gadget(const struct dump_target *tg, const struct image *im, uint64_t *gadget)
{
	for (size_t i = 0; i < im->nregions; i++) {
		const struct region *r = &im->regions[i];
		if (r->d.kind == IMG_RGN_SPECIAL && !strcmp(r->path, "[vdso]"))
			return inj_find_gadget(tg->pid, r->d.start, r->d.end, gadget);
	}
	err_set("pid %d: no [vdso] to run system calls from", tg->pid);
	return -1;
}

static int capture_injected(const struct dump_target *tg, struct image *im,
			    struct shm_dump *sd)
{
	uint64_t gadget;
	sigset_t all, old;
	int rc = 0;

	if (vdso_gadget(tg, im, &gadget))
		return -1;
	/* Between prepare and cure a thread holds our registers: let no
	 * catchable signal end ckpt-dump there. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	for (size_t i = 0; i < tg->ntids && rc == 0; i++) {
		struct inj c;

		if (inj_prepare(&c, tg->tids[i], gadget)) {
			rc = -1;
			break;
		}
		rc = inject_thread(&c, im, &im->threads[i], i == 0, sd);
		if (rc == 0)
			rc = attrs_inject(&c, im, i);
		/* Keep the first message: it says why we got here. */
		if (inj_cure(&c) && rc == 0)
			rc = -1;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* Signals queued on thread tid (or, shared, on the process) and not yet
 * delivered: read with PTRACE_PEEKSIGINFO, which leaves them queued. */
static int capture_sigqueue(struct image *im, pid_t tid, int shared)
{
	unsigned char *info = NULL;
	uint32_t count = 0;

	for (;;) {
		struct __ptrace_peeksiginfo_args args = {
			.off = count, .flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0, .nr = 32};
		unsigned char *ni;
		long n;

		ni = realloc(info, ((size_t)count + 32) * IMG_SIGINFO_SIZE);
		if (!ni) {
			free(info);
			err_set("out of memory");
			return -1;
		}
		info = ni;
		n = ptrace(PTRACE_PEEKSIGINFO, tid, &args, info + (size_t)count * IMG_SIGINFO_SIZE);
		if (n < 0) {
			err_sys("pid %d: thread %d: cannot read pending signals", im->proc.pid, tid);
			free(info);
			return -1;
		}
		if (n == 0)
			break;
		count += n;
		if (count > IMG_MAX_SIGQUEUE) {
			err_set("pid %d: thread %d: more than %d pending signals", im->proc.pid, tid,
				IMG_MAX_SIGQUEUE);
			free(info);
			return -1;
		}
	}
	if (count == 0) {
		free(info);
		return 0;
	}
	im->sigq[im->nsigq].d.tid = shared ? 0 : tid;
	im->sigq[im->nsigq].d.count = count;
	im->sigq[im->nsigq].info = info;
	im->nsigq++;
	return 0;
}

/* ITIMER_REAL ran out after getitimer read it and before its queue was
 * read: the image has the time it had left and the SIGALRM of its expiry,
 * and a restore would fire it twice (the signal, then the timer).  Linux
 * re-arms the timer only when it delivers that signal, and getitimer reads
 * 0 until then: record that.  The timer's SIGALRM is process-wide and
 * SI_KERNEL; one that was pending before the timers were read (shd_before,
 * the process's pending set then) is older than this expiry. */
static void alarm_fired(struct image *im, uint64_t shd_before)
{
	struct img_itimer *it = &im->timers.it[ITIMER_REAL];

	if ((shd_before >> (SIGALRM - 1) & 1) || (!it->value.sec && !it->value.nsec))
		return;
	for (size_t i = 0; i < im->nsigq; i++) {
		const struct sigqueue *q = &im->sigq[i];

		for (uint32_t k = 0; q->d.tid == 0 && k < q->d.count; k++) {
			const unsigned char *si = q->info + (size_t)k * IMG_SIGINFO_SIZE;
			int32_t signo, code;

			memcpy(&signo, si, 4);
			memcpy(&code, si + 8, 4);
			if (signo == SIGALRM && code == SI_KERNEL) {
				it->value = (struct img_timespec){0, 0};
				return;
			}
		}
	}
}

static int capture_thread(pid_t pid, pid_t tid, struct thread *th)
{
	struct img_thread *t = &th->d;
	struct user_regs_struct regs;
	struct rseq_conf rs;
	size_t xlen = 65536;
	uint64_t head = 0;
	size_t hlen = 0;
	char path[64], *comm;

	_Static_assert(sizeof(regs) == sizeof(t->regs), "user_regs_struct size");
	t->tid = tid;
	if (pt_get_regs(tid, &regs) || pt_get_sigmask(tid, &t->sigmask) || pt_get_rseq(tid, &rs))
		return -1;
	memcpy(t->regs, &regs, sizeof(regs));
	t->rseq_addr = rs.addr;
	t->rseq_len = rs.len;
	t->rseq_sig = rs.sig;
	if (syscall(SYS_get_robust_list, tid, &head, &hlen)) {
		err_sys("pid %d: thread %d: cannot read robust list", pid, tid);
		return -1;
	}
	t->robust_head = head;
	t->robust_len = hlen;
	th->xstate = malloc(xlen);
	if (!th->xstate) {
		err_set("out of memory");
		return -1;
	}
	if (pt_get_xstate(tid, th->xstate, &xlen))
		return -1;
	t->xstate_len = xlen;
	comm = read_file(fmt_path(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid), NULL);
	if (comm) {
		comm[strcspn(comm, "\n")] = 0;
		snprintf(t->comm, sizeof(t->comm), "%s", comm);
		free(comm);
	}
	return 0;
}

/* A process's place in its tree, sessions and groups, from its stat. */
static void set_place(struct img_proc *p, pid_t pid, const struct proc_stat *st)
{
	p->pid = pid;
	p->ppid = st->ppid;
	p->pgid = st->pgrp;
	p->sid = st->session;
	p->exit_signal = st->exit_signal;
	p->tty_nr = st->tty_nr;
	p->tpgid = st->tpgid;
}

static int capture_proc(pid_t pid, struct image *im)
{
	struct img_proc *p = &im->proc;
	struct proc_stat st;
	char path[64];
	size_t len;

	if (proc_read_stat(pid, &st) || proc_read_status(pid, &p->umask, &p->uid, &p->gid))
		return -1;
	set_place(p, pid, &st);
	p->nthreads = im->nthreads;
	p->mm[MM_START_CODE] = st.start_code;
	p->mm[MM_END_CODE] = st.end_code;
	p->mm[MM_START_DATA] = st.start_data;
	p->mm[MM_END_DATA] = st.end_data;
	p->mm[MM_START_BRK] = st.start_brk;
	p->mm[MM_START_STACK] = st.start_stack;
	p->mm[MM_ARG_START] = st.arg_start;
	p->mm[MM_ARG_END] = st.arg_end;
	p->mm[MM_ENV_START] = st.env_start;
	p->mm[MM_ENV_END] = st.env_end;
	if (!(im->exe = proc_readlink(pid, "exe")) || !(im->cwd = proc_readlink(pid, "cwd")))
		return -1;
	p->exe_len = strlen(im->exe);
	p->cwd_len = strlen(im->cwd);
	if (!(im->cmdline = read_file(fmt_path(path, sizeof(path), "/proc/%d/cmdline", pid), &len)))
		return -1;
	p->cmdline_len = len;
	if (!(im->auxv = (uint64_t *)read_file(fmt_path(path, sizeof(path), "/proc/%d/auxv", pid),
					       &len)))
		return -1;
	if (len % 16 || len > 8192) {
		err_set("%s: unexpected size %zu", path, len);
		return -1;
	}
	p->auxv_len = len;
	memcpy(p->comm, im->threads[0].d.comm, sizeof(p->comm));
	return 0;
}

/* The page a restore leaves behind (RST_TRAMP_MAGIC, format.h): not the program's. */
static int is_trampoline(pid_t pid, const struct proc_map *m)
{
	char buf[sizeof(RST_TRAMP_MAGIC)];
	struct iovec l = {buf, sizeof(buf)};
	struct iovec r = {(void *)(m->start + RST_TRAMP_MAGIC_OFF), sizeof(buf)};

	if (m->path[0] || m->shared || m->end - m->start != (uint64_t)sysconf(_SC_PAGESIZE) ||
	    m->prot != (PROT_READ | PROT_EXEC))
		return 0;
	if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)sizeof(buf))
		return 0;
	return !memcmp(buf, RST_TRAMP_MAGIC, sizeof(buf));
}

_Static_assert(PROC_VM_GROWSDOWN == IMG_RGN_GROWSDOWN && PROC_VM_RANDREAD == IMG_RGN_RANDREAD &&
		       PROC_VM_LOCKED == IMG_RGN_LOCKED,
	       "smaps flags and image region flags are the same bits");

/* A ckpt image (a mapping of one is memory ckpt-remap --lazy restored). */
static int is_image_file(const char *path)
{
	char magic[8];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), ok;

	if (fd < 0)
		return 0;
	ok = read(fd, magic, sizeof(magic)) == sizeof(magic) && !memcmp(magic, IMG_MAGIC, 8);
	close(fd);
	return ok;
}

/* Memory a restore cannot make again: device memory (but [vvar] and
 * [vdso], the kernel's own pages: moved, not copied), and hugetlbfs
 * memory of a page size the image cannot say. */
static int check_supported(pid_t pid, const struct proc_map *m)
{
	uint64_t hp = m->kpage_kb * 1024;

	if ((m->vmflags & PROC_VM_IO) && strncmp(m->path, "[v", 2)) {
		err_set("pid %d: region %#llx-%#llx (%s) is device memory (VM_IO/VM_PFNMAP); not "
			"supported",
			pid, (unsigned long long)m->start, (unsigned long long)m->end,
			m->path[0] ? m->path : "anonymous");
		return -1;
	}
	if ((m->vmflags & PROC_VM_HUGETLB) &&
	    (!hp || (hp & (hp - 1)) || !IMG_HSHIFT_OK(__builtin_ctzll(hp)))) {
		err_set("pid %d: region %#llx-%#llx (%s) is hugetlbfs memory of %llu KiB pages; "
			"not supported",
			pid, (unsigned long long)m->start, (unsigned long long)m->end, m->path,
			(unsigned long long)m->kpage_kb);
		return -1;
	}
	return 0;
}

/* The kind of a mapping of a file (its path starts with '/'). */
/* With --save-files, a file on disk that the program mapped shared and
 * writable is held as a tmpfs one is (below), up to this size (0: no
 * limit; UINT64_MAX: without --save-files, none). */
static uint64_t save_shared_max = UINT64_MAX;

/* Whether pid has the file of sb open on an fd. */
static int open_on_fd(pid_t pid, const struct stat *sb)
{
	char path[64];
	struct dirent *e;
	struct stat st;
	DIR *d = opendir(fmt_path(path, sizeof(path), "/proc/%d/fd", pid));
	int found = 0;

	while (d && !found && (e = readdir(d)))
		found = e->d_name[0] != '.' && !fstatat(dirfd(d), e->d_name, &st, 0) &&
			st.st_dev == sb->st_dev && st.st_ino == sb->st_ino;
	if (d)
		closedir(d);
	return found;
}

/* Whether a shared mapping of a file of sb on disk is held by the image:
 * writable, or read-only of a file opened for writing (a segment
 * processes share, as Open MPI's PMIx data store in its session
 * directory), with --save-files, within its size limit, and mapped only:
 * one the process also has open (sqlite's WAL index, db-shm, which
 * processes outside share too) is saved as an open file and put back in
 * place. */
static int saved_shared(pid_t pid, const struct proc_map *m, const struct stat *sb)
{
	return m->shared && ((m->prot & PROT_WRITE) || (m->vmflags & PROC_VM_MAYWRITE)) &&
	       S_ISREG(sb->st_mode) && save_shared_max != UINT64_MAX &&
	       (!save_shared_max || (uint64_t)sb->st_size <= save_shared_max) &&
	       !open_on_fd(pid, sb);
}

static int file_region_kind(pid_t pid, const struct proc_map *m, struct region *r)
{
	struct img_region *d = &r->d;
	struct statfs fs;
	struct stat sb;

	if (m->deleted) {
		/* Shared anonymous memory, a memfd, a System V segment or a
		 * deleted file: the image holds it. */
		d->kind = IMG_RGN_SHM;
		d->pgoff = m->pgoff;
		d->dev = makedev(m->dev_major, m->dev_minor);
		d->ino = m->ino;
		return 0;
	}
	if (stat(m->path, &sb) || sb.st_ino != m->ino || major(sb.st_dev) != m->dev_major ||
	    minor(sb.st_dev) != m->dev_minor) {
		err_set("pid %d: region %#llx-%#llx: %s is not the file it maps "
			"(replaced or not visible here)",
			pid, (unsigned long long)m->start, (unsigned long long)m->end, m->path);
		return -1;
	}
	/* Memory ckpt-remap --lazy mapped from an image file is the
	 * program's own: anonymous, every page stored (the untouched ones
	 * are in the image, not in memory). */
	if (!m->shared && is_image_file(m->path)) {
		d->kind = IMG_RGN_ANON;
		r->all_pages = 1;
		return 0;
	}
	/* A file on tmpfs mapped shared is memory, not data on a disk (POSIX
	 * shm, Open MPI's /dev/shm/vader_segment.*): the image holds it, as
	 * a deleted one, and a restore makes it again at its path.  So does
	 * one on disk mapped shared and writable, with --save-files. */
	if ((m->shared && !statfs(m->path, &fs) && fs.f_type == TMPFS_MAGIC) ||
	    saved_shared(pid, m, &sb)) {
		d->kind = IMG_RGN_SHM;
		d->pgoff = m->pgoff;
		d->dev = sb.st_dev;
		d->ino = sb.st_ino;
		r->tmpfs = 1;
		return 0;
	}
	d->kind = IMG_RGN_FILE;
	d->pgoff = m->pgoff;
	d->dev = sb.st_dev;
	d->ino = sb.st_ino;
	d->fsize = sb.st_size;
	d->mtime_sec = sb.st_mtim.tv_sec;
	d->mtime_nsec = sb.st_mtim.tv_nsec;
	return 0;
}

/* The ring of an AIO context (io_setup): the context's id is its address.
 * Its header (struct aio_ring: id, nr, head, tail, magic, compat and
 * incompat features, header length) gives head and tail; the events not
 * yet reaped are in its pages, which the image holds.  Requests in flight
 * show nowhere (ckpt(7), AIO contexts). */
static int aio_region(pid_t pid, const struct proc_map *m, struct region *r)
{
	uint32_t h[8];
	struct iovec l = {h, sizeof(h)};
	struct iovec rv = {(void *)m->start, sizeof(h)};
	uint64_t nr = (m->end - m->start) / 32 - 1;

	if (process_vm_readv(pid, &l, 1, &rv, 1, 0) != (ssize_t)sizeof(h)) {
		err_sys("pid %d: region %#llx-%#llx (/[aio]): cannot read the AIO ring's header",
			pid, (unsigned long long)m->start, (unsigned long long)m->end);
		return -1;
	}
	if (h[4] != 0xa10a10a1u || h[6] || h[7] != 32 || h[1] != nr || h[3] >= nr) {
		err_set("pid %d: region %#llx-%#llx (/[aio]) is the ring of an AIO context whose "
			"header is not the kernel's (magic %#x nr %u tail %u); not supported",
			pid, (unsigned long long)m->start, (unsigned long long)m->end, h[4], h[1],
			h[3]);
		return -1;
	}
	r->d.kind = IMG_RGN_AIO;
	r->d.flags &= ~(IMG_RGN_SHARED | IMG_RGN_MAYWRITE);
	r->d.fsize = nr;
	r->d.dev = h[2] % nr; /* the program may write head; the kernel takes it so */
	r->d.ino = h[3];
	r->all_pages = 1;
	return 0;
}

/* A region's kind, from the name smaps gives its mapping. */
static int region_kind(pid_t pid, const struct proc_map *m, struct region *r)
{
	struct img_region *d = &r->d;

	/* Private MAP_HUGETLB memory: its pages are the process's own. */
	if (m->deleted && !m->shared && !strcmp(m->path, "/anon_hugepage")) {
		d->kind = IMG_RGN_ANON;
		return 0;
	}
	if (m->shared && !strcmp(m->path, "/[aio]"))
		return aio_region(pid, m, r);
	/* The rings of an io_uring instance: its fd keeps their bytes
	 * (uring.c), the region says where they are mapped. */
	if (m->shared && !strcmp(m->path, "anon_inode:[io_uring]")) {
		d->kind = IMG_RGN_URING;
		d->pgoff = m->pgoff;
		d->dev = makedev(m->dev_major, m->dev_minor);
		d->ino = m->ino;
		return 0;
	}
	if (m->path[0] == '/')
		return file_region_kind(pid, m, r);
	if (!strcmp(m->path, "[heap]")) {
		d->kind = IMG_RGN_HEAP;
	} else if (!strcmp(m->path, "[stack]")) {
		d->kind = IMG_RGN_STACK;
	} else if (!strcmp(m->path, "[vdso]") || !strncmp(m->path, "[vvar", 5)) {
		d->kind = IMG_RGN_SPECIAL;
	} else if (m->path[0] == 0 || !strncmp(m->path, "[anon:", 6)) {
		/* Shared anonymous memory has a file, "/dev/zero (deleted)"
		 * (above): a shared mapping of none is something else. */
		if (m->shared) {
			err_set("pid %d: region %#llx-%#llx is a shared mapping of no file; "
				"not supported yet",
				pid, (unsigned long long)m->start, (unsigned long long)m->end);
			return -1;
		}
		d->kind = IMG_RGN_ANON;
	} else {
		err_set("pid %d: region %#llx-%#llx (%s) is of a kind not supported yet", pid,
			(unsigned long long)m->start, (unsigned long long)m->end, m->path);
		return -1;
	}
	return 0;
}

/* One region from its smaps entry. */
static int capture_region(pid_t pid, const struct proc_map *m, struct region *r)
{
	struct img_region *d = &r->d;

	if (check_supported(pid, m))
		return -1;
	d->start = m->start;
	d->end = m->end;
	d->prot = m->prot;
	d->flags = (m->shared ? IMG_RGN_SHARED : 0) | (m->vmflags & IMG_RGN_FLAGS);
	/* Every private mapping may write; only a shared one says something. */
	if (!m->shared)
		d->flags &= ~IMG_RGN_MAYWRITE;
	if (m->vmflags & PROC_VM_HUGETLB) {
		d->flags |= IMG_RGN_HUGETLB;
		d->hshift = __builtin_ctzll(m->kpage_kb * 1024);
	}
	if (region_kind(pid, m, r))
		return -1;
	if (d->kind == IMG_RGN_FILE || d->kind == IMG_RGN_SPECIAL || d->kind == IMG_RGN_SHM) {
		r->path = strdup(m->path);
		if (!r->path) {
			err_set("out of memory");
			return -1;
		}
		d->path_len = strlen(r->path);
	}
	return 0;
}

/* The pieces of region r that guard pages (MADV_GUARD_INSTALL) cut it
 * into, appended to im's regions: one region of the same mapping for each
 * run of guard pages (flag IMG_RGN_GUARD, no data) and for each run of
 * other pages.  The kernel keeps them one VMA; the restore maps the pieces
 * side by side and installs the guards again. */
static int split_guards(struct image *im, struct region *r, const struct proc_range *g, size_t ng)
{
	uint64_t at = r->d.start;

	for (size_t i = 0; i <= ng && at < r->d.end; i++) {
		uint64_t gs = i < ng ? g[i].start : r->d.end, ge = i < ng ? g[i].end : r->d.end;

		if (ge <= at)
			continue;
		if (gs < at)
			gs = at;
		if (gs > r->d.end)
			gs = ge = r->d.end;
		if (ge > r->d.end)
			ge = r->d.end;
		for (int guard = 0; guard < 2; guard++) {
			uint64_t s = guard ? gs : at, e = guard ? ge : gs;
			struct region *p = &im->regions[im->nregions];

			if (s >= e)
				continue;
			*p = *r;
			p->d.start = s;
			p->d.end = e;
			if (r->d.kind == IMG_RGN_FILE || r->d.kind == IMG_RGN_SHM)
				p->d.pgoff += s - r->d.start;
			if (guard)
				p->d.flags |= IMG_RGN_GUARD;
			p->path = r->path ? strdup(r->path) : NULL;
			if (r->path && !p->path) {
				err_set("out of memory");
				return -1;
			}
			im->nregions++;
		}
		at = ge;
	}
	free(r->path);
	r->path = NULL;
	return 0;
}

static int capture_regions(pid_t pid, struct image *im, const struct proc_map *maps, size_t n)
{
	struct proc_range *guards;
	size_t nguards, g = 0;
	uint64_t top = 0;
	int rc = -1;

	/* Not to [vsyscall]'s end: PAGEMAP_SCAN takes user addresses only. */
	for (size_t i = 0; i < n; i++)
		if (strcmp(maps[i].path, "[vsyscall]") && maps[i].end > top)
			top = maps[i].end;
	if (proc_read_guards(pid, top, &guards, &nguards))
		return -1;
	/* Each run of guard pages may cut a region into three. */
	im->regions = calloc(n + 2 * nguards, sizeof(*im->regions));
	if (!im->regions) {
		err_set("out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct proc_map *m = &maps[i];
		struct region *r = &im->regions[im->nregions];
		size_t k;

		if (!strcmp(m->path, "[vsyscall]") || is_trampoline(pid, m))
			continue;
		if (capture_region(pid, m, r))
			goto out;
		if (!m->shared && r->d.kind != IMG_RGN_SPECIAL)
			im->proc.pages_hint += m->anon_kb * 1024 / sysconf(_SC_PAGESIZE);
		while (g < nguards && guards[g].end <= m->start)
			g++;
		for (k = g; k < nguards && guards[k].start < m->end;)
			k++;
		if (k == g) {
			im->nregions++;
			continue;
		}
		{
			struct region whole = *r;
			if (split_guards(im, &whole, guards + g, k - g))
				goto out;
		}
	}
	im->proc.nregions = im->nregions;
	rc = 0;
out:
	free(guards);
	return rc;
}

/* A batch read from the target, for the writer thread to write. */
struct batch {
	struct img_run runs[BATCH_PAGES];
	int nruns;
	unsigned char *buf;
	/* Made ready (prepare_batch): runs are then the pages to store,
	 * packed at the start of buf, with their CRC. */
	int ready;
	uint64_t npages;
	uint32_t crc;
};

struct pagewriter {
	pid_t pid;
	int memfd; /* /proc/PID/mem, for regions we may not read otherwise */
	int pmfd;  /* /proc/PID/pagemap */
	struct img_writer *w;
	const struct dump_opts *o;
	struct track *tr; /* the write tracker's report, or NULL */
	uint64_t total;
	uint64_t *pm;
	long ps;
	/* The batch being gathered, across regions: many small regions share
	 * one PAGES record (and its padding) instead of one each.  A run
	 * never crosses a region boundary. */
	struct img_run runs[BATCH_PAGES];
	int nruns, batch, split;
	/* A ring of buffers: while this thread reads the target into
	 * bufs[cur], the writer thread checks, checksums and writes the
	 * batches queued in the others, in order. */
	unsigned char *bufs[NBUFS];
	int nbufs, cur;
	int threaded;
	pthread_t writer;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct splicer *sp; /* --splice: the pipe the process moves its pages into */
	int spliced;	    /* the batch is of regions whose pages it moves */
	struct batch prep;  /* the batch just read (made ready here, or not) */
	struct batch *q;    /* the writer's: q[(head + i) % nbufs], i < count */
	int head, count, quit, failed;
	/* Let go once the last batch is read (the program runs on while it
	 * is written); NULL: not now. */
	struct dump_target *let_go;
	char why[1024]; /* the writer's error */
};

static int cancelled(const struct pagewriter *pw)
{
	if (pw->o->cancel && *pw->o->cancel) {
		err_set("interrupted by a signal");
		return 1;
	}
	return 0;
}

/* Read runs[0..nruns) of the target into the buffer being filled, packed. */
static int read_runs(struct pagewriter *pw, const struct img_run *runs, int nruns)
{
	struct iovec local[BATCH_PAGES], remote[BATCH_PAGES];
	size_t total = 0;
	unsigned char *p = pw->bufs[pw->cur];

	if (nruns <= 0)
		return 0;
	for (int i = 0; i < nruns; i++) {
		size_t len = runs[i].npages * pw->ps;
		local[i] = (struct iovec){p, len};
		remote[i] = (struct iovec){(void *)runs[i].addr, len};
		p += len;
		total += len;
	}
	if (process_vm_readv(pw->pid, local, nruns, remote, nruns, 0) == (ssize_t)total)
		return 0;
	/* A run of unreadable protection (PROT_NONE, write-only) stops it:
	 * /proc/PID/mem reads with FOLL_FORCE, as a debugger does. */
	for (int i = 0; i < nruns; i++) {
		size_t done = 0;
		while (done < local[i].iov_len) {
			ssize_t n = pread(pw->memfd, (char *)local[i].iov_base + done,
					  local[i].iov_len - done, runs[i].addr + done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EIO) {
				/* Guard pages read so, and Linux 6.13 and 6.14
				 * have them but do not show them in pagemap. */
				err_set("pid %d: cannot read memory at %#llx: Input/output error "
					"(a guard page, MADV_GUARD_INSTALL, that this kernel's "
					"pagemap does not show?)",
					pw->pid, (unsigned long long)(runs[i].addr + done));
				return -1;
			}
			if (n <= 0) {
				err_sys("pid %d: cannot read memory at %#llx", pw->pid,
					(unsigned long long)(runs[i].addr + done));
				return -1;
			}
			done += n;
		}
	}
	return 0;
}

/* Make a batch ready: drop all-zero pages (holes) and, against a parent,
 * the pages it has; pack the rest, merge them into runs, checksum them. */
static int prepare_batch(struct pagewriter *pw, struct batch *b)
{
	struct img_run out[BATCH_PAGES];
	unsigned char *src = b->buf, *dst = b->buf;
	uint64_t npages = 0;
	int nout = 0;

	for (int i = 0; i < b->nruns; i++) {
		int joined = 0; /* may extend the last out run: same input run */

		for (uint64_t k = 0; k < b->runs[i].npages; k++, src += pw->ps) {
			uint64_t addr = b->runs[i].addr + k * pw->ps;
			if (page_is_zero(src, pw->ps)) {
				joined = 0;
				continue;
			}
			if (pw->o->incr) {
				int same = incr_dump_page(pw->o->incr, addr, src);
				if (same < 0)
					return -1;
				if (same) {
					joined = 0;
					continue;
				}
			}
			if (dst != src)
				memcpy(dst, src, pw->ps);
			dst += pw->ps;
			npages++;
			if (joined)
				out[nout - 1].npages++;
			else
				out[nout++] = (struct img_run){addr, 1};
			joined = 1;
		}
	}
	memcpy(b->runs, out, nout * sizeof(out[0]));
	b->nruns = nout;
	b->npages = npages;
	b->crc = img_crc(0, b->buf, npages * pw->ps);
	b->ready = 1;
	return 0;
}

/* Write a batch, made ready first if it is not. */
static int write_batch(struct pagewriter *pw, struct batch *b)
{
	if (!b->ready && prepare_batch(pw, b))
		return -1;
	if (b->npages == 0)
		return 0;
	if (img_write_pages_crc(pw->w, b->runs, b->nruns, b->buf, b->npages, b->crc))
		return -1;
	if (pw->o->progress)
		pw->o->progress(pw->w->off, pw->total, pw->o->progress_arg);
	return 0;
}

/* Which pages of a region hold data worth storing. */
static int page_wanted(const struct region *r, uint64_t pm)
{
	/* A guard page reads as a swap entry, and not at all. */
	if (pm & PM_GUARD)
		return 0;
	if (pm & PM_SWAPPED)
		return 1;
	if (!(pm & PM_PRESENT))
		return 0;
	/* A private file page still shared with the page cache is what the
	 * file holds; only pages the program wrote (now anonymous) differ. */
	if (r->d.kind == IMG_RGN_FILE || r->d.kind == IMG_RGN_SHM)
		return !(pm & PM_FILE);
	return 1;
}

static void *writer_main(void *arg)
{
	struct pagewriter *pw = arg;

	pthread_mutex_lock(&pw->mu);
	for (;;) {
		int rc;

		while (!pw->count && !pw->quit)
			pthread_cond_wait(&pw->cv, &pw->mu);
		if (!pw->count)
			break;
		pthread_mutex_unlock(&pw->mu);
		rc = pw->failed ? 0 : write_batch(pw, &pw->q[pw->head]);
		pthread_mutex_lock(&pw->mu);
		if (rc && !pw->failed) {
			snprintf(pw->why, sizeof(pw->why), "%s", err_get());
			pw->failed = 1;
		}
		pw->head = (pw->head + 1) % pw->nbufs;
		pw->count--;
		pthread_cond_broadcast(&pw->cv);
	}
	pthread_mutex_unlock(&pw->mu);
	return NULL;
}

/* Wait until the writer has at most most batches queued; -1 (its error)
 * if it failed. */
static int writer_wait(struct pagewriter *pw, int most)
{
	int failed;

	pthread_mutex_lock(&pw->mu);
	while (pw->count > most)
		pthread_cond_wait(&pw->cv, &pw->mu);
	failed = pw->failed;
	pthread_mutex_unlock(&pw->mu);
	if (failed)
		err_set("%s", pw->why);
	return failed ? -1 : 0;
}

static int flush_batch(struct pagewriter *pw)
{
	if (!pw->batch)
		return 0;
	if (pw->spliced) {
		if (splice_pages(pw->sp, pw->w, pw->runs, pw->nruns, pw->batch))
			return -1;
		if (pw->o->progress)
			pw->o->progress(pw->w->off, pw->total, pw->o->progress_arg);
		pw->nruns = pw->batch = 0;
		return 0;
	}
	if (read_runs(pw, pw->runs, pw->nruns))
		return -1;
	if (pw->let_go) {
		release_all(pw->let_go, 0);
		pw->let_go = NULL;
	}
	memcpy(pw->prep.runs, pw->runs, pw->nruns * sizeof(pw->runs[0]));
	pw->prep.nruns = pw->nruns;
	pw->prep.buf = pw->bufs[pw->cur];
	pw->prep.ready = 0;
	if (!pw->threaded) {
		if (write_batch(pw, &pw->prep))
			return -1;
	} else {
		int full;

		/* Every other buffer queued: this thread makes the new batch
		 * ready instead of waiting (into a file the write is the
		 * slower half, so each thread does half the work).  Not
		 * against a parent: the hashes go in address order, from one
		 * thread. */
		pthread_mutex_lock(&pw->mu);
		full = pw->count == pw->nbufs - 1;
		pthread_mutex_unlock(&pw->mu);
		if (full && !pw->o->incr)
			(void)prepare_batch(pw, &pw->prep);
		/* The next buffer free once this batch is queued. */
		if (writer_wait(pw, pw->nbufs - 2))
			return -1;
		pthread_mutex_lock(&pw->mu);
		pw->q[(pw->head + pw->count) % pw->nbufs] = pw->prep;
		pw->count++;
		pthread_cond_broadcast(&pw->cv);
		pthread_mutex_unlock(&pw->mu);
		pw->cur = (pw->cur + 1) % pw->nbufs;
	}
	pw->nruns = pw->batch = 0;
	return 0;
}

/* The writer thread, with SIGINT, SIGTERM and SIGHUP (a cancel) left to
 * it alone: its blocked write is what they must interrupt. */
static void writer_start(struct pagewriter *pw)
{
	sigset_t set, old;

	if (pthread_mutex_init(&pw->mu, NULL))
		return;
	if (pthread_cond_init(&pw->cv, NULL)) {
		pthread_mutex_destroy(&pw->mu);
		return;
	}
	if (pthread_create(&pw->writer, NULL, writer_main, pw)) {
		pthread_cond_destroy(&pw->cv);
		pthread_mutex_destroy(&pw->mu);
		return;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	pw->threaded = 1;
}

/* Let the writer finish (or drop its batch after an error of ours) and
 * go; our signals come back.  -1 if it failed. */
static int writer_stop(struct pagewriter *pw)
{
	sigset_t set;
	int rc;

	if (!pw->threaded)
		return 0;
	rc = writer_wait(pw, 0);
	pthread_mutex_lock(&pw->mu);
	pw->quit = 1;
	pthread_cond_broadcast(&pw->cv);
	pthread_mutex_unlock(&pw->mu);
	pthread_join(pw->writer, NULL);
	pthread_cond_destroy(&pw->cv);
	pthread_mutex_destroy(&pw->mu);
	pw->threaded = 0;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return rc;
}

/* The page at a into the batch being gathered. */
static int batch_page(struct pagewriter *pw, uint64_t a)
{
	if (pw->batch == BATCH_PAGES && flush_batch(pw))
		return -1;
	if (pw->nruns && !pw->split)
		pw->runs[pw->nruns - 1].npages++;
	else
		pw->runs[pw->nruns++] = (struct img_run){a, 1};
	pw->split = 0;
	pw->batch++;
	return 0;
}

/* A tracked region whose absent pages one walk found (track.c): no
 * pagemap entry read per page; the written pages read, the others noted,
 * to be taken from the parent once the process runs again. */
static int write_tracked(struct pagewriter *pw, const struct region *r)
{
	uint64_t addr = r->d.start;

	while (addr < r->d.end) {
		int kind;
		uint64_t e = track_span(pw->tr, addr, r->d.end, &kind);

		if (cancelled(pw))
			return -1;
		pw->split = 1;
		if (kind == TRACK_UNWRITTEN && track_later(pw->tr, addr, e))
			return -1;
		for (; kind == TRACK_WRITTEN && addr < e; addr += pw->ps)
			if (batch_page(pw, addr))
				return -1;
		addr = e;
	}
	return 0;
}

static int write_region(struct pagewriter *pw, const struct region *r, size_t ri)
{
	uint64_t addr = r->d.start;

	if (pw->tr && pw->tr->fast && pw->tr->fast[ri] && !r->all_pages)
		return write_tracked(pw, r);
	pw->split = 1;
	while (addr < r->d.end) {
		uint64_t n = (r->d.end - addr) / pw->ps;
		if (n > BATCH_PAGES)
			n = BATCH_PAGES;
		/* --live: what its frozen walk decided, without the pagemap. */
		if (pw->o->live) {
			int kind;
			uint64_t e = dump_live_span(pw->o->live, addr, &kind);
			if (e > r->d.end)
				e = r->d.end;
			if (kind != LIVE_SPAN_OTHER) {
				pw->split = 1;
				for (; kind == LIVE_SPAN_READ && addr < e; addr += pw->ps)
					if (batch_page(pw, addr))
						return -1;
				addr = e;
				pw->split = 1;
				continue;
			}
			if (e < addr + n * pw->ps)
				n = (e - addr) / pw->ps;
		}
		if (cancelled(pw) || proc_read_pagemap(pw->pmfd, addr, n, pw->pm) ||
		    (pw->spliced && splice_zero_pages(pw->pmfd, addr, n, pw->ps, pw->pm)))
			return -1;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t a = addr + i * pw->ps;

			if (!r->all_pages && !page_wanted(r, pw->pm[i])) {
				pw->split = 1;
				continue;
			}
			/* Unwritten since the parent's dump: not even read,
			 * its hash the parent's once the process runs on (in
			 * address order with the fast regions' spans). */
			if (pw->tr && track_unwritten(pw->tr, ri, a) &&
			    incr_dump_parent_has(pw->o->incr, a)) {
				if (track_later(pw->tr, a, a + pw->ps))
					return -1;
				pw->split = 1;
				continue;
			}
			if (batch_page(pw, a))
				return -1;
		}
		addr += n * pw->ps;
	}
	return 0;
}

/* Which regions write_pages writes. */
enum { PAGES_ALL, PAGES_UNFORKED, PAGES_FORKED };

/* Regions a fork does not copy as they are: MADV_DONTFORK ones are not in
 * the child, MADV_WIPEONFORK ones are zero there; an AIO ring is shared,
 * and the program, once let go, reaps from it and the kernel writes it. */
static int unforked(const struct region *r)
{
	return (r->d.flags & (IMG_RGN_DONTFORK | IMG_RGN_WIPEONFORK)) || r->d.kind == IMG_RGN_AIO;
}

/* Whether im has an AIO ring (aio_settled reads its tail after the pages). */
static int has_aio(const struct image *im)
{
	for (size_t i = 0; i < im->nregions; i++)
		if (im->regions[i].d.kind == IMG_RGN_AIO)
			return 1;
	return 0;
}

/* let_go, if not NULL, is the process, released as soon as its last page
 * is read (the writer may still be writing): what a dump that lets it run
 * on keeps it frozen for. */
static int write_pages(pid_t pid, struct img_writer *w, const struct image *im,
		       const struct dump_opts *o, int which, struct track *tr,
		       struct dump_target *let_go)
{
	struct pagewriter pw = {.pid = pid, .w = w, .o = o, .tr = tr, .ps = sysconf(_SC_PAGESIZE)};
	int own = !page_bufs[1]; /* buffers of its own (page_bufs_start failed) */
	struct dump_target *go;
	struct splicer sp;
	char path[64];
	int rc = -1;

	/* --splice: the process moves its pages itself, where it can. */
	if (o->splice == DUMP_SPLICE_ON && which == PAGES_ALL && !tr) {
		struct dump_target t = {.pid = pid};
		uint64_t gadget;
		int k = vdso_gadget(&t, im, &gadget);

		if (k == 0)
			k = splice_begin(&sp, pid, gadget,
					 im->attrs && im->attrs->d.seccomp != IMG_SECCOMP_NONE, w->fd,
					 o->cancel);
		if (k < 0)
			return -1;
		pw.sp = k == 0 ? &sp : NULL;
		if (pw.sp && sp.regular)
			sp.log = o->spliced;
	}

	pw.total = im->proc.pages_hint * pw.ps;
	pw.nbufs = own ? 2 : page_nbufs;
	for (int k = 0; k < pw.nbufs; k++)
		pw.bufs[k] = own ? malloc(BATCH_PAGES * pw.ps) : page_bufs[k];
	pw.q = calloc(pw.nbufs, sizeof(*pw.q));
	pw.pm = malloc(BATCH_PAGES * sizeof(uint64_t));
	pw.memfd = open(fmt_path(path, sizeof(path), "/proc/%d/mem", pid), O_RDONLY | O_CLOEXEC);
	pw.pmfd = proc_open_pagemap(pid);
	if (!pw.bufs[0] || !pw.bufs[1] || !pw.q || !pw.pm) {
		err_set("out of memory");
		goto out;
	}
	if (pw.memfd < 0) {
		err_sys("cannot open %s", path);
		goto out;
	}
	if (pw.pmfd < 0)
		goto out;
	/* Not while every signal is blocked (a --cow snapshot's reap does
	 * that): a cancel must still reach the writer.  Nor when splicing:
	 * records go out from this thread, in order.  With a tracker's
	 * report, this thread asks the parent's hashes about the pages it
	 * leaves out while the writer hashes the pages read
	 * (incr_dump_parent_has beside incr_dump_page). */
	if (!pw.sp) {
		sigset_t cur;
		pthread_sigmask(SIG_BLOCK, NULL, &cur);
		if (!sigismember(&cur, SIGTERM))
			writer_start(&pw);
	}
	/* Let go after the last read.  Not with lent pages (--splice), nor
	 * with an AIO ring, whose tail must not move before it is checked. */
	go = let_go && !pw.sp && !has_aio(im) ? let_go : NULL;
	/* Lazy order: the large anonymous regions last, in records of their
	 * own (ckpt-remap --lazy from a stream, lib/restore/lazy.c). */
	for (int late = 0; late < 2; late++) {
		for (size_t i = 0; i < im->nregions; i++) {
			const struct region *r = &im->regions[i];
			if (r->d.kind == IMG_RGN_SPECIAL ||
			    (r->d.flags & (IMG_RGN_SHARED | IMG_RGN_GUARD)))
				continue;
			if ((which == PAGES_UNFORKED && !unforked(r)) ||
			    (which == PAGES_FORKED && unforked(r)))
				continue;
			if ((im->proc.flags & IMG_PROC_LAZY_ORDER) && img_lazy_late(&r->d) != late)
				continue;
			if (!(im->proc.flags & IMG_PROC_LAZY_ORDER) && late)
				continue;
			if (pw.sp && pw.spliced != splice_region(r)) {
				if (flush_batch(&pw))
					goto out;
				pw.spliced = !pw.spliced;
			}
			if (write_region(&pw, r, i))
				goto out;
		}
		/* Every page read into our buffers once this last batch is:
		 * the program may run on before the writer has it. */
		if (go && (late || !(im->proc.flags & IMG_PROC_LAZY_ORDER))) {
			pw.let_go = go;
			go = NULL;
		}
		if (flush_batch(&pw))
			goto out;
	}
	/* No last batch to read. */
	if (pw.let_go)
		release_all(pw.let_go, 0);
	rc = 0;
out:
	if (pw.sp && splice_end(pw.sp, o->cancel))
		rc = -1;
	/* The writer's error, if it had one, is the reason. */
	if (writer_stop(&pw))
		rc = -1;
	if (own) {
		free(pw.bufs[0]);
		free(pw.bufs[1]);
	}
	free(pw.q);
	free(pw.pm);
	if (pw.memfd >= 0)
		close(pw.memfd);
	if (pw.pmfd >= 0)
		close(pw.pmfd);
	return rc;
}

static int capture(struct dump_target *tg, struct image *im, struct shm_dump **sd,
		   const struct dump_opts *o)
{
	struct proc_map *maps = NULL;
	struct proc_sigmasks sm;
	pid_t pid = tg->pid;
	size_t n = 0;
	int rc = -1;

	/* The flags read before the freeze are used if the layout is the
	 * same (smaps walks every page table: 20 ms a GiB, frozen).  With
	 * --cow, check_fork_flags checks afterwards that DONTFORK and
	 * WIPEONFORK, which decide what the snapshot holds, had not changed. */
	if (tg->maps && proc_same_layout(pid, tg->maps, tg->nmaps) == 1) {
		maps = tg->maps;
		n = tg->nmaps;
		tg->maps = NULL;
		tg->nmaps = 0;
	} else if (proc_read_maps(pid, &maps, &n)) {
		return -1;
	}
	im->threads = calloc(tg->ntids, sizeof(*im->threads));
	if (!im->threads) {
		err_set("out of memory");
		goto out;
	}
	im->sigq = calloc(tg->ntids + 1, sizeof(*im->sigq));
	if (!im->sigq) {
		err_set("out of memory");
		goto out;
	}
	im->proc.pid = pid;
	for (; im->nthreads < tg->ntids; im->nthreads++)
		if (capture_thread(pid, tg->tids[im->nthreads], &im->threads[im->nthreads]))
			goto out;
	if (attrs_capture(pid, tg->tids, tg->ntids, im))
		goto out;
	/* The write tracker a dump before left is not one of the program's
	 * fds: fd_capture passes it by. */
	if (track_old_fd(pid, o) >= 0) {
		if (!(im->track = calloc(1, sizeof(*im->track)))) {
			err_set("out of memory");
			goto out;
		}
		im->track->fd = track_old_fd(pid, o);
		im->track->how = IMG_TRACK_HASHED;
	} else if (o->incr && incr_dump_track_fd(o->incr) >= 0) {
		warnx("pid %d: the write tracker its last dump left at fd %d is gone: pages "
		      "compared by their hashes",
		      pid, incr_dump_track_fd(o->incr));
		if (!(im->track = calloc(1, sizeof(*im->track)))) {
			err_set("out of memory");
			goto out;
		}
		im->track->fd = -1;
		im->track->how = IMG_TRACK_HASHED;
	}
	/* --live's tracker is not one of the program's fds either. */
	if (o->live && dump_live_begin(o->live, im))
		goto out;
	save_shared_max = o->save_files ? o->save_files_max : UINT64_MAX;
	if (capture_proc(pid, im) || capture_regions(pid, im, maps, n) || fd_capture(pid, im, o->fd_opts) ||
	    fd_uring_check_maps(pid, im) || ipc_capture(pid, im) || shm_capture(pid, im, o->save_files, o->save_files_max, sd) ||
	    proc_read_sigmasks(pid, pid, &sm) || capture_injected(tg, im, *sd))
		goto out;
	/* The queues after the timers: an expiry while the process is held
	 * (wall-clock timers run on) is then either in the time a timer had
	 * left or in its signal queued, never in neither (a lost one-shot
	 * timer; see alarm_fired for the case of both). */
	for (size_t i = 0; i < im->nthreads; i++)
		if (capture_sigqueue(im, tg->tids[i], 0))
			goto out;
	if (capture_sigqueue(im, pid, 1))
		goto out;
	alarm_fired(im, sm.shd);
	/* glibc caches each thread's tid in its struct pthread, the word
	 * clear_child_tid points at; a restore under other tids must update
	 * it, so note whether that word really is the tid. */
	for (size_t i = 0; i < im->nthreads; i++) {
		struct img_thread *t = &im->threads[i].d;
		int32_t v = 0;
		struct iovec l = {&v, 4}, r = {(void *)t->tid_addr, 4};

		if (t->tid_addr && process_vm_readv(pid, &l, 1, &r, 1, 0) == 4 && v == t->tid)
			t->flags |= IMG_THR_TID_CACHED;
	}
	img_header_init(&im->hdr);
	im->hdr.xfeatures = xgetbv0();
	if (!(im->cpu = malloc(sizeof(*im->cpu)))) {
		err_set("out of memory");
		goto out;
	}
	img_cpu_here(im->cpu);
	im->hdr.xsave_size = im->threads[0].d.xstate_len;
	rc = 0;
out:
	proc_free_maps(maps, n);
	return rc;
}

/* The snapshot child is the process's: stop the main thread again for
 * the moment it takes to reap it there. */
static void reap_snapshot(pid_t pid, uint64_t gadget, pid_t child)
{
	struct dump_target one = {.pid = pid, .ntids = 1};
	struct inj c;
	sigset_t all, old;
	int rc;

	kill(child, SIGKILL);
	while (waitpid(child, NULL, __WALL) < 0 && errno == EINTR)
		;
	if (!(one.tids = malloc(sizeof(pid_t))))
		goto fail;
	one.tids[0] = pid;
	if (pt_seize(pid)) {
		free(one.tids);
		goto fail;
	}
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	rc = inj_prepare(&c, pid, gadget);
	if (rc == 0) {
		rc = inj_reap(&c, child);
		if (inj_cure(&c))
			rc = -1;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	release_all(&one, 0);
	if (rc == 0)
		return;
fail:
	warnx("pid %d: its snapshot %d is left for it to reap: %s", pid, child, err_get());
}

/* Whether the snapshot child is what the image's flags say a fork made:
 * no DONTFORK region, every other region with its WIPEONFORK flag as
 * recorded.  The flags came from smaps read before the freeze: advice
 * given to a whole mapping just before it changes no layout, and would
 * have left the image holding the snapshot's (wiped, or missing) pages
 * where the program had data.  That dump fails instead, to be tried
 * again.  The check reads the snapshot's smaps once the program runs. */
static int check_fork_flags(pid_t pid, pid_t child, const struct image *im)
{
	struct proc_map *maps;
	size_t n, k = 0;
	int rc = 0;

	if (proc_read_maps(child, &maps, &n))
		return -1;
	for (size_t i = 0; i < im->nregions && rc == 0; i++) {
		const struct region *r = &im->regions[i];
		int gone;

		if (r->d.kind == IMG_RGN_SPECIAL)
			continue;
		while (k < n && maps[k].end <= r->d.start)
			k++;
		/* Within one mapping of the child: a region may be a piece
		 * of one (split_guards), and a stack may have grown down
		 * since (our injected calls use the few hundred bytes below
		 * the stack pointer). */
		gone = k == n || maps[k].end < r->d.end || maps[k].start > r->d.start;
		if ((r->d.flags & IMG_RGN_DONTFORK)
			    ? !gone
			    : gone || (maps[k].vmflags & IMG_RGN_WIPEONFORK) !=
					  (r->d.flags & IMG_RGN_WIPEONFORK)) {
			err_set("pid %d: the memory at %#llx was given MADV_DONTFORK or "
				"MADV_WIPEONFORK advice (or lost it) as the dump began; dump again",
				pid, (unsigned long long)r->d.start);
			rc = -1;
		}
	}
	proc_free_maps(maps, n);
	return rc;
}

/* --cow: fork a snapshot inside the process, write what the fork does not
 * copy (shared memory is written already) while it is still stopped, let
 * it run, and write the rest from the snapshot. */
static int write_cow(struct dump_target *tg, struct img_writer *w, const struct image *im,
		     const struct dump_opts *o)
{
	uint64_t gadget;
	sigset_t all, old;
	struct inj c;
	pid_t child = 0;
	int rc;

	if (vdso_gadget(tg, im, &gadget))
		return -1;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	rc = inj_prepare(&c, tg->pid, gadget);
	if (rc == 0) {
		rc = inj_snapshot(&c, &child);
		if (inj_cure(&c))
			rc = -1;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return -1;
	/* Should ckpt-dump die, the snapshot dies with it. */
	ptrace(PTRACE_SETOPTIONS, child, 0, PTRACE_O_EXITKILL);
	if (write_pages(tg->pid, w, im, o, PAGES_UNFORKED, NULL, NULL)) {
		reap_snapshot(tg->pid, gadget, child);
		return -1;
	}
	if (o->frozen)
		o->frozen(o->progress_arg);
	release_all(tg, 0);
	rc = check_fork_flags(tg->pid, child, im);
	if (rc == 0)
		rc = write_pages(child, w, im, o, PAGES_FORKED, NULL, NULL);
	reap_snapshot(tg->pid, gadget, child);
	return rc;
}

int dump_release(struct dump_target *tg, enum dump_end how)
{
	switch (how) {
	case DUMP_STOP:
		release_all(tg, SIGSTOP);
		return 0;
	case DUMP_KILL:
		if (kill(tg->pid, SIGKILL)) {
			err_sys("pid %d: cannot kill", tg->pid);
			release_all(tg, 0);
			return -1;
		}
		/* As their tracer we see every thread die: when we exit, the
		 * process is gone.  The leader last: the kernel reports its
		 * death only after every other thread's is reaped. */
		for (size_t i = tg->ntids; i-- > 0;) {
			int status;
			while (waitpid(tg->tids[i], &status, __WALL) < 0 && errno == EINTR)
				;
		}
		free(tg->tids);
		tg->tids = NULL;
		tg->ntids = 0;
		return 0;
	default:
		release_all(tg, 0);
		return 0;
	}
}

/* ---- trees ------------------------------------------------------------ */

static int tree_has(const struct dump_tree *tr, pid_t pid)
{
	for (size_t i = 0; i < tr->n; i++)
		if (tr->p[i].pid == pid)
			return 1;
	return 0;
}

static int tree_add(struct dump_tree *tr, pid_t pid, int zombie)
{
	struct tree_proc *np;

	if (tr->n >= IMG_MAX_PROCS) {
		err_set("pid %d: more than %d processes in the tree", tr->p[0].pid, IMG_MAX_PROCS);
		return -1;
	}
	if (!(np = append_zeroed(&tr->p, tr->n, sizeof(*np))))
		return -1;
	np->pid = pid;
	np->zombie = zombie;
	if (!zombie && dump_seize(pid, &np->t))
		return -1;
	tr->n++;
	return 0;
}

static int is_zombie(pid_t pid)
{
	struct proc_stat st;

	return proc_read_stat(pid, &st) == 0 && st.state == 'Z';
}

/* Kernel-bypass transports (MPI's fast networks and single-copy
 * mechanisms): hardware or a kernel module holds state ckpt cannot read.
 * By the path of a device a process has open or mapped. */
static const struct {
	const char *prefix, *what;
} bypass[] = {
    {"/dev/infiniband/", "an RDMA device (InfiniBand, RoCE or iWARP verbs)"},
    {"/dev/xpmem", "XPMEM (cross-process memory mapping)"},
    {"/dev/knem", "KNEM (kernel-assisted copy between processes)"},
    {"/dev/hfi1", "an Omni-Path device"},
    {"/dev/cxi", "a Slingshot (CXI) device"},
    {"/dev/kfi", "a kernel fabric (kfabric) device"},
};

static const char *bypass_of(const char *path)
{
	for (size_t i = 0; i < sizeof(bypass) / sizeof(bypass[0]); i++)
		if (!strncmp(path, bypass[i].prefix, strlen(bypass[i].prefix)))
			return bypass[i].what;
	return NULL;
}

static void refuse_bypass(pid_t pid, const char *where, const char *path, const char *what)
{
	err_set("pid %d: %s %s is %s, a kernel-bypass transport whose state is in the device "
		"(select TCP and shared memory: Open MPI --mca pml ob1 --mca btl self,vader,tcp "
		"--mca btl_vader_single_copy_mechanism none, MPICH FI_PROVIDER=tcp or "
		"UCX_TLS=tcp,sm); not supported",
		pid, where, path, what);
}

/* A process of the tree using one: refused by name before anything is
 * frozen (the fds' and maps' paths, read from /proc while it runs; the
 * capture would refuse the device later in any case). */
static int bypass_check(pid_t pid, int descend, int depth)
{
	char path[64], *maps, *line, *save = NULL, where[300];
	struct dirent *e;
	pid_t *kids;
	size_t nk;
	DIR *d;
	int rc = 0;

	if ((d = opendir(fmt_path(path, sizeof(path), "/proc/%d/fd", pid)))) {
		while (!rc && (e = readdir(d))) {
			char *link;
			const char *what;

			if (e->d_name[0] == '.')
				continue;
			snprintf(where, sizeof(where), "fd/%s", e->d_name);
			if (!(link = proc_readlink(pid, where)))
				continue;
			if ((what = bypass_of(link))) {
				snprintf(where, sizeof(where), "fd %s", e->d_name);
				refuse_bypass(pid, where, link, what);
				rc = -1;
			}
			free(link);
		}
		closedir(d);
	}
	maps = rc ? NULL : read_file(fmt_path(path, sizeof(path), "/proc/%d/maps", pid), NULL);
	for (line = maps ? strtok_r(maps, "\n", &save) : NULL; line && !rc;
	     line = strtok_r(NULL, "\n", &save)) {
		char *p = strchr(line, '/');
		const char *what = p ? bypass_of(p) : NULL;

		if (what) {
			refuse_bypass(pid, "maps", p, what);
			rc = -1;
		}
	}
	free(maps);
	if (rc || !descend || depth > 64 || proc_list_children(pid, &kids, &nk))
		return rc;
	for (size_t k = 0; k < nk && !rc; k++)
		rc = bypass_check(kids[k], descend, depth + 1);
	free(kids);
	return rc;
}

int dump_seize_tree(pid_t root, int descend, struct dump_tree *tr)
{
	memset(tr, 0, sizeof(*tr));
	if (is_zombie(root)) {
		err_set("pid %d is a zombie", root);
		return -1;
	}
	if (bypass_check(root, descend, 0))
		return -1;
	if (tree_add(tr, root, 0))
		return -1;
	/* Breadth first: a process is stopped before its children are
	 * listed, so that it cannot fork more behind our back, and every
	 * parent comes before its children. */
	for (size_t i = 0; i < tr->n && descend; i++) {
		pid_t *kids;
		size_t nk;

		if (tr->p[i].zombie)
			continue;
		if (proc_list_children(tr->p[i].pid, &kids, &nk))
			goto fail;
		for (size_t k = 0; k < nk; k++) {
			char why[1024];

			if (tree_has(tr, kids[k]))
				continue;
			if (!is_zombie(kids[k]) && tree_add(tr, kids[k], 0) == 0)
				continue;
			/* It died meanwhile: a zombie now, or reaped already
			 * (its parent ignores SIGCHLD) and no part of the tree. */
			snprintf(why, sizeof(why), "%s", err_get());
			if (is_zombie(kids[k])) {
				if (tree_add(tr, kids[k], 1) == 0)
					continue;
			} else if (kill(kids[k], 0) && errno == ESRCH) {
				continue;
			} else {
				err_set("%s", why);
			}
			free(kids);
			goto fail;
		}
		free(kids);
	}
	return 0;
fail:
	dump_release_tree(tr, DUMP_RUN);
	return -1;
}

/* A zombie: its place in the tree and its exit status. */
static int capture_zombie(pid_t pid, struct image *im)
{
	struct img_proc *p = &im->proc;
	struct proc_stat st;
	char path[64], *comm;

	if (proc_read_stat(pid, &st))
		return -1;
	set_place(p, pid, &st);
	p->exit_status = st.exit_code;
	p->flags = IMG_PROC_ZOMBIE;
	comm = read_file(fmt_path(path, sizeof(path), "/proc/%d/comm", pid), NULL);
	if (comm) {
		comm[strcspn(comm, "\n")] = 0;
		snprintf(p->comm, sizeof(p->comm), "%s", comm);
		free(comm);
	}
	if (!(im->exe = strdup("")) || !(im->cwd = strdup("")) || !(im->cmdline = strdup(""))) {
		err_set("out of memory");
		return -1;
	}
	img_header_init(&im->hdr);
	return 0;
}

/* Which SHM records write their object's contents: each object once, at
 * its first record, numbered in order of first appearance (as img_open
 * numbers them); UINT64_MAX at a record whose object an earlier one
 * writes.  The records of imp[0] first, then imp[1]'s, and so on. */
static uint64_t *object_numbers(struct image *const imp[], size_t n)
{
	struct shm_obj **objs;
	uint64_t *number;
	size_t nobjs, r = 0;

	/* A tmpfs file one process maps shared and another only holds open
	 * (saved, --save-files) is one object, made again as a tmpfs file. */
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < imp[k]->nshms; i++) {
			const struct shm_obj *t = &imp[k]->shms[i];
			for (size_t j = 0; t->d.kind == IMG_SHM_TMPFS && j < n; j++) {
				struct shm_obj *o = img_find_shm(imp[j], t->d.dev, t->d.ino);
				if (o && o->d.kind == IMG_SHM_SAVED) {
					o->d.kind = IMG_SHM_TMPFS;
					o->tmpfs = t->tmpfs;
				}
			}
		}
	/* A process that only maps an object it cannot open (a deleted
	 * file, without privilege to open /proc/PID/map_files) knows only
	 * how far its mapping reaches, a page multiple, where one that has
	 * it open knows its size: UCX's shared segments of 8447 bytes,
	 * mapped as three pages.  The file's size and mode hold for all. */
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < imp[k]->nshms; i++) {
			const struct shm_obj *f = &imp[k]->shms[i];
			for (size_t j = 0; f->by_file && j < n; j++)
				for (size_t m = 0; m < imp[j]->nshms; m++) {
					struct shm_obj *o = &imp[j]->shms[m];
					if (!o->by_file && o->d.dev == f->d.dev &&
					    o->d.ino == f->d.ino && o->d.kind == f->d.kind) {
						o->d.size = f->d.size;
						o->d.mode = f->d.mode;
					}
				}
		}
	if (img_list_objects(imp, n, &objs, &nobjs, &number))
		return NULL;
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < imp[k]->nshms; i++, r++)
			if (objs[number[r]] != &imp[k]->shms[i])
				number[r] = UINT64_MAX;
	free(objs);
	return number;
}

#ifndef KCMP_VM
#define KCMP_VM 1
#define KCMP_FILES 2
#define KCMP_FS 3
#endif

/* What a process shares with its parent through clone(2) flags, kcmp(2)
 * tells: cwd, root and umask (CLONE_FS) are kept; memory (CLONE_VM, as a
 * vfork child before its exec has it) and the fd table (CLONE_FILES) are
 * refused. */
static int check_sharing(const struct tree_proc *p, size_t n, struct image *ims)
{
	for (size_t k = 1; k < n; k++) {
		pid_t pid = p[k].pid, ppid = ims[k].proc.ppid;

		if (p[k].zombie)
			continue;
		if (syscall(SYS_kcmp, pid, ppid, KCMP_VM, 0, 0) == 0) {
			err_set("pid %d shares its memory with its parent %d (vfork or CLONE_VM); "
				"not supported",
				pid, ppid);
			return -1;
		}
		if (syscall(SYS_kcmp, pid, ppid, KCMP_FILES, 0, 0) == 0) {
			err_set("pid %d shares its fd table with its parent %d (CLONE_FILES); not "
				"supported",
				pid, ppid);
			return -1;
		}
		if (syscall(SYS_kcmp, pid, ppid, KCMP_FS, 0, 0) == 0)
			ims[k].proc.flags |= IMG_PROC_FS_SHARED;
	}
	return 0;
}

/* ---- writing: one process, or a tree ---------------------------------- */

/* What an image is written from: its processes (p[0] the root; one alone
 * makes an image of one process), what was captured of each, and which
 * SHM record writes each object. */
struct capture {
	struct tree_proc *p;
	size_t n;
	struct image *ims;
	struct image **imp; /* &ims[k], as fd_check_tree takes them */
	struct shm_dump **sd;
	uint64_t *number; /* object_numbers' */
	struct track tr;  /* ckpt-dump --track's, of one process */
};

/* A tree in a pid namespace that is not ours (one ckpt-remap restored
 * without privilege is in its own, under the pids it had) keeps in its
 * image the pids it sees: the values at the level of the root's pid
 * namespace in /proc's NSpid, NSpgid and NSsid.  The dumper reaches the
 * processes by its own (host) pids; the image is put in the tree's once
 * everything is captured and checked. */
struct pidmap {
	int level;	  /* the root's pid namespace: levels below ours */
	pid_t (*two)[2];  /* a tid of the tree: ours, the tree's */
	size_t n;
};

static pid_t map_pid(void *arg, pid_t host)
{
	struct pidmap *m = arg;
	struct proc_nsids ids;

	for (size_t i = 0; i < m->n; i++)
		if (m->two[i][0] == host)
			return m->two[i][1];
	/* Outside the tree (the root's parent, a terminal's group): as the
	 * tree sees it, 0 where it is gone or not in its namespace. */
	return proc_read_nsids(host, 0, m->level, &ids) ? 0 : ids.pid;
}

static int in_our_pidns(pid_t pid)
{
	struct stat ours, theirs;
	char path[64];

	return stat("/proc/self/ns/pid", &ours) ||
	       stat(fmt_path(path, sizeof(path), "/proc/%d/ns/pid", pid), &theirs) ||
	       (ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev);
}

/* How many pid namespaces below the tree's process im is in (ns.c). */
static int nspids(const struct image *im)
{
	return im->ns ? (int)im->ns->d.npids : 0;
}

/* Every tid of the tree, ours and the tree's; each process's group and
 * session as the tree sees them. */
static int read_tree_pids(const struct capture *c, struct pidmap *m)
{
	size_t total = 0;

	for (size_t k = 0; k < c->n; k++)
		total += c->p[k].zombie ? 1 : c->p[k].t.ntids;
	if (!(m->two = calloc(total, sizeof(*m->two)))) {
		err_set("out of memory");
		return -1;
	}
	for (size_t k = 0; k < c->n; k++) {
		size_t nt = c->p[k].zombie ? 1 : c->p[k].t.ntids;

		for (size_t t = 0; t < nt; t++) {
			pid_t pid = c->p[k].pid, tid = t ? c->p[k].t.tids[t] : pid;
			struct proc_nsids ids;

			if (proc_read_nsids(pid, t ? tid : 0, m->level, &ids))
				return -1;
			if (ids.levels != m->level + 1 + nspids(&c->ims[k])) {
				err_set("pid %d: its pid namespace is not the one of the tree's root "
					"(pid %d); not supported",
					pid, c->p[0].pid);
				return -1;
			}
			if (t == 0) {
				c->ims[k].proc.pgid = ids.pgid;
				c->ims[k].proc.sid = ids.sid;
			}
			m->two[m->n][0] = tid;
			m->two[m->n++][1] = ids.pid;
		}
	}
	return 0;
}

/* Each pid and tid the images hold, as the tree sees it. */
static void map_image(struct pidmap *m, struct image *im)
{
	struct img_proc *p = &im->proc;

	p->pid = map_pid(m, p->pid);
	p->ppid = map_pid(m, p->ppid);
	if (p->tpgid > 0)
		p->tpgid = map_pid(m, p->tpgid);
	for (size_t i = 0; i < im->nthreads; i++)
		im->threads[i].d.tid = map_pid(m, im->threads[i].d.tid);
	for (size_t i = 0; im->attrs && i < im->attrs->d.nthreads; i++)
		im->attrs->threads[i].tid = map_pid(m, im->attrs->threads[i].tid);
	for (size_t i = 0; i < im->nsigq; i++)
		if (im->sigq[i].d.tid)
			im->sigq[i].d.tid = map_pid(m, im->sigq[i].d.tid);
	for (size_t i = 0; im->ptimers && i < im->timers.nposix; i++)
		if (im->ptimers[i].tid)
			im->ptimers[i].tid = map_pid(m, im->ptimers[i].tid);
	fd_map_pids(im, map_pid, m);
}

static int to_tree_pids(struct capture *c)
{
	struct pidmap m = {0};
	struct proc_nsids ids;
	int rc = -1;

	if (in_our_pidns(c->p[0].pid))
		return 0;
	if (proc_read_nsids(c->p[0].pid, 0, 0, &ids))
		return -1;
	m.level = ids.levels - 1;
	if (read_tree_pids(c, &m) == 0) {
		for (size_t k = 0; k < c->n; k++)
			map_image(&m, &c->ims[k]);
		rc = 0;
	}
	free(m.two);
	return rc;
}

/* Capture every process (of a zombie, its place and status), then check
 * what they share: memory and fd tables, open files, SHM objects.  --cow
 * and --parent are for one process. */
static int capture_all(struct capture *c, const struct dump_opts *o)
{
	size_t n = c->n;

	if (n > 1 && o->cow) {
		err_set("--cow is for one process, not a tree (-t)");
		return -1;
	}
	if (n > 1 && o->track) {
		err_set("--track is for one process, not a tree (-t)");
		return -1;
	}
	if (n > 1 && o->live) {
		err_set("--live is for one process, not a tree (-t)");
		return -1;
	}
	if (n > 1 && o->incr) {
		err_set("--parent is for one process, not a tree (-t)");
		return -1;
	}
	c->ims = calloc(n, sizeof(*c->ims));
	c->imp = calloc(n, sizeof(*c->imp));
	c->sd = calloc(n, sizeof(*c->sd));
	if (!c->ims || !c->imp || !c->sd) {
		err_set("out of memory");
		return -1;
	}
	for (size_t k = 0; k < n; k++) {
		c->imp[k] = &c->ims[k];
		if (c->p[k].zombie ? capture_zombie(c->p[k].pid, &c->ims[k])
				   : capture(&c->p[k].t, &c->ims[k], &c->sd[k], o))
			return -1;
		if (!c->p[k].zombie && ns_capture(c->p[k].pid, c->p[0].pid, c->ims[0].proc.ppid, &c->ims[k]))
			return -1;
	}
	if (check_sharing(c->p, n, c->ims) || fd_check_tree(c->imp, n, o->fd_opts) ||
	    to_tree_pids(c) || !(c->number = object_numbers(c->imp, n)) ||
	    (o->incr && incr_dump_begin(o->incr, &c->ims[0])))
		return -1;
	c->ims[0].hdr.nprocs = n;
	/* The tracker, while the process is still stopped: what it says was
	 * written is what the pages read next will show.  With --cow the
	 * tracker (if any) stays where it was, unread: what it will report
	 * is still a superset of what changes after this dump. */
	if (n == 1 && !o->cow && !c->p[0].zombie) {
		uint64_t gadget;
		if ((o->track || c->ims[0].track) &&
		    (vdso_gadget(&c->p[0].t, &c->ims[0], &gadget) ||
		     track_prepare(&c->p[0].t, gadget, &c->ims[0], o, &c->tr)))
			return -1;
	}
	if (o->live) {
		uint64_t gadget;
		if (vdso_gadget(&c->p[0].t, &c->ims[0], &gadget) ||
		    dump_live_final(o->live, gadget, &c->ims[0]))
			return -1;
	}
	return 0;
}

static void capture_free(struct capture *c)
{
	for (size_t k = 0; k < c->n; k++) {
		if (c->sd)
			shm_dump_free(c->sd[k]);
		if (c->ims)
			image_free(&c->ims[k]);
	}
	track_free(&c->tr);
	free(c->number);
	free(c->sd);
	free(c->imp);
	free(c->ims);
}

/* The header, every process's metadata, then the contents of every SHM
 * object, each once. */
static int write_meta(const struct capture *c, struct img_writer *w)
{
	if (img_write_header(w, &c->ims[0].hdr))
		return -1;
	for (size_t k = 0; k < c->n; k++)
		if (img_write_meta(w, &c->ims[k]))
			return -1;
	for (size_t k = 0, r = 0; k < c->n; r += c->ims[k++].nshms)
		if (!c->p[k].zombie &&
		    shm_write(c->p[k].pid, w, &c->ims[k], c->sd[k], c->number + r))
			return -1;
	return 0;
}

/* The pages of every process: one process's straight after its objects
 * (with --cow, most of them from a snapshot), a tree's each after a
 * PROCPAGES record that names its process. */
static int write_all_pages(struct capture *c, struct img_writer *w, const struct dump_opts *o)
{
	if (c->n == 1)
		return o->cow ? write_cow(&c->p[0].t, w, &c->ims[0], o)
			      : write_pages(c->p[0].pid, w, &c->ims[0], o, PAGES_ALL,
					    c->tr.uf >= 0 && o->incr ? &c->tr : NULL,
					    o->run_on && !c->p[0].zombie ? &c->p[0].t : NULL);
	for (size_t k = 0; k < c->n; k++) {
		struct img_procpages pp = {.pid = c->ims[k].proc.pid};
		struct iovec v = {&pp, sizeof(pp)};

		if (c->p[k].zombie)
			continue;
		if (img_write_rec(w, IMG_REC_PROCPAGES, &v, 1) ||
		    write_pages(c->p[k].pid, w, &c->ims[k], o, PAGES_ALL, NULL, NULL))
			return -1;
	}
	return 0;
}

/* Each AIO ring's tail as it was when its header was read, before the
 * memory: a request that completed since was in flight at the checkpoint,
 * which the kernel shows nowhere else (ckpt(7), AIO contexts). */
static int aio_settled(const struct capture *c, const struct dump_opts *o)
{
	for (size_t k = 0; k < c->n && !o->cow; k++)
		for (size_t i = 0; i < c->ims[k].nregions; i++) {
			const struct img_region *d = &c->ims[k].regions[i].d;
			uint32_t tail = 0;
			struct iovec l = {&tail, 4}, r = {(void *)(d->start + 12), 4};

			if (d->kind != IMG_RGN_AIO || c->p[k].zombie)
				continue;
			if (process_vm_readv(c->p[k].pid, &l, 1, &r, 1, 0) == 4 && tail == d->ino)
				continue;
			err_set("pid %d: region %#llx-%#llx (/[aio]) is the ring of an AIO context "
				"a request of which completed during the checkpoint (tail %u, was "
				"%llu): requests in flight are not supported",
				c->p[k].pid, (unsigned long long)d->start,
				(unsigned long long)d->end, tail, (unsigned long long)d->ino);
			return -1;
		}
	return 0;
}

/* A single process's pages in lazy order (IMG_PROC_LAZY_ORDER), but for
 * an incremental image (its hashes want them ascending), --cow's (two
 * passes of its own) and --live's (its pages staged by address). */
static int lazy_order(struct capture *c, const struct dump_opts *o)
{
	if (c->n == 1 && !o->cow && !o->incr && !o->live)
		c->ims[0].proc.flags |= IMG_PROC_LAZY_ORDER;
	return 0;
}

/* The one sequence of a dump, for a process or a tree.  Releases no
 * process (but --cow's, as its snapshot is taken, and with o->run_on one
 * process once its memory is read): on failure the caller does. */
static int write_image(struct tree_proc *p, size_t n, int out, const struct dump_opts *o)
{
	struct img_writer w = {
	    .fd = out, .cancel = o->cancel, .progress = o->progress, .progress_arg = o->progress_arg};
	struct capture c = {.p = p, .n = n, .tr = {.uf = -1}};
	struct dump_opts so = *o;
	int rc = -1, sp = splice_wanted(p[0].pid, out, o);

	/* From here on, DUMP_SPLICE_ON or _OFF: the header says which. */
	so.splice = sp > 0 ? DUMP_SPLICE_ON : DUMP_SPLICE_OFF;
	o = &so;
	if (sp >= 0 && capture_all(&c, o) == 0 && lazy_order(&c, o) == 0) {
		/* Page data spliced is never read here: no CRC of it. */
		if (sp > 0)
			c.ims[0].hdr.flags |= IMG_HDR_NO_DATA_CRC;
		if (write_meta(&c, &w) == 0 && write_all_pages(&c, &w, o) == 0 &&
		    aio_settled(&c, o) == 0) {
			/* Nothing more is read from it: the hashes of an
			 * incremental image (sorted and merged with its
			 * parent's) are ours. */
			if (o->run_on && n == 1 && !p[0].zombie && !o->cow)
				release_all(&p[0].t, 0);
			if (!o->incr || (track_take_later(&c.tr, o->incr) == 0 &&
					 incr_dump_end(o->incr, &w, c.ims[0].proc.pid, page_bufs[0],
						       page_bufs[0] ? page_bufs_touched : 0) == 0))
				rc = img_write_end(&w);
			if (rc == 0 && o->incr && o->run_on)
				track_keep_hot(&c.tr, o->incr);
		}
	}
	capture_free(&c);
	page_bufs_free();
	return rc;
}

int dump_write(struct dump_target *tg, int out, const struct dump_opts *o)
{
	struct tree_proc one = {.pid = tg->pid, .t = *tg};
	int rc = write_image(&one, 1, out, o);

	/* The capture took its maps; --cow let it go. */
	*tg = one.t;
	if (rc) {
		/* The first message is the one that says why; keep it. */
		char why[1024];
		snprintf(why, sizeof(why), "%s", err_get());
		release_all(tg, 0);
		err_set("%s", why);
	}
	return rc;
}

int dump_write_tree(struct dump_tree *tr, int out, const struct dump_opts *o)
{
	int rc;

	fd_peer_marks(o->peers, o->npeers);
	rc = write_image(tr->p, tr->n, out, o);
	fd_peer_marks(NULL, 0);

	if (rc) {
		char why[1024];
		snprintf(why, sizeof(why), "%s", err_get());
		dump_release_tree(tr, DUMP_RUN);
		err_set("%s", why);
	}
	return rc;
}

int dump_peer_ends(const struct dump_tree *tr, struct fd_peer_end **ends, size_t *n)
{
	pid_t *pids = calloc(tr->n + 1, sizeof(*pids));
	size_t np = 0;
	int rc;

	if (!pids) {
		err_set("out of memory");
		return -1;
	}
	for (size_t k = 0; k < tr->n; k++)
		if (!tr->p[k].zombie)
			pids[np++] = tr->p[k].pid;
	rc = fd_peer_ends(pids, np, ends, n);
	free(pids);
	return rc;
}

int dump_pipe_peek(pid_t pid, int fd, unsigned char **data, uint32_t *len)
{
	uint32_t size;

	return fd_pipe_peek(pid, fd, &size, data, len);
}

int dump_release_tree(struct dump_tree *tr, enum dump_end how)
{
	int rc = 0;

	/* Killed: every process first, so that none sees another die and
	 * acts on it; then each is waited for.  Their connections to each
	 * other close with a reset: an orderly close would hold their
	 * addresses in TIME_WAIT for a minute, which a restore without
	 * privilege could not make them on again (a coordinated kill, whose
	 * dump did not know it would end so). */
	if (how == DUMP_KILL) {
		pid_t *pids = calloc(tr->n + 1, sizeof(*pids));
		size_t np = 0;

		for (size_t k = 0; pids && k < tr->n; k++)
			if (!tr->p[k].zombie && tr->p[k].t.ntids)
				pids[np++] = tr->p[k].pid;
		if (pids)
			fd_tcp_abort_pairs(pids, np);
		free(pids);
	}
	if (how == DUMP_KILL)
		for (size_t k = 0; k < tr->n; k++)
			if (!tr->p[k].zombie && tr->p[k].t.ntids)
				kill(tr->p[k].pid, SIGKILL);
	/* Children before their parents: the init of a pid namespace dies
	 * only once every process in it is reaped, and we, their tracer,
	 * reap them. */
	for (size_t k = tr->n; k-- > 0;)
		if (!tr->p[k].zombie && tr->p[k].t.ntids && dump_release(&tr->p[k].t, how))
			rc = -1;
	free(tr->p);
	tr->p = NULL;
	tr->n = 0;
	return rc;
}
