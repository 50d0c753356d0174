/* restorer.c: the last stage of ckpt-remap, run after ckpt-remap itself is
 * gone.  It unmaps ckpt-remap, moves the vDSO, maps the image's regions,
 * fills them from the stream, restores the kernel state of the thread and
 * jumps into the program with rt_sigreturn.
 *
 * Constraints it lives under:
 * - freestanding: no libc, raw system calls, its own memcpy/memset;
 * - position independent with no relocations (the Makefile checks): it is
 *   copied to an address chosen at run time and entered at offset 0;
 * - no globals that need writing; all state is in struct rst_args, which
 *   ckpt-remap filled in and placed in the same blob;
 * - no TLS, no stack protector (fs is the program's by the end);
 * - everything that can fail for a reason known in advance was checked
 *   before entry; what fails here (a cut stream, a bad checksum) prints one
 *   line and exits with fail_rc: there is no program left to return to. */
#include <stddef.h>
#include <stdint.h>

#include "base/crc32c.h"
#include "image/format.h"
#include "restore/restorer/attrs.h"
#include "restore/restorer/restorer.h"

#define NR_read 0
#define NR_write 1
#define NR_close 3
#define NR_fcntl 72
#define NR_mmap 9
#define NR_mprotect 10
#define NR_munmap 11
#define NR_rt_sigaction 13
#define NR_mremap 25
#define NR_getpid 39
#define NR_kill 62
#define NR_exit_group 231
#define NR_exit 60
#define NR_sched_yield 24
#define FUTEX_WAIT 0
#define NR_tgkill 234
#define NR_prctl 157
#define NR_arch_prctl 158
#define NR_gettid 186
#define NR_set_tid_address 218
#define NR_clock_gettime 228
#define NR_set_robust_list 273
#define NR_rseq 334
#define NR_clone3 435
#define NR_madvise 28
#define NR_lseek 8
#define SEEK_CUR 1
#define MAP_NORESERVE 0x4000
#define NR_shmat 30
#define NR_shmctl 31
#define NR_mlock 149
#define NR_mlock2 325
#define NR_futex 202
#define NR_mount 165
#define NR_setitimer 38
#define NR_timer_create 222
#define NR_timer_settime 223
#define NR_rt_sigqueueinfo 129
#define NR_rt_tgsigqueueinfo 297
#define PR_TIMER_CREATE_RESTORE_IDS 77
#define FUTEX_WAKE_PRIVATE 129

#define CLONE_THREAD_FLAGS                                                                         \
	(0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000) /* VM FS FILES SIGHAND THREAD SYSVSEM */
#define FUTEX_WAIT_PRIVATE 128
#define EAGAIN 11

#define PROT_READ 1
#define PROT_WRITE 2
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MAP_FIXED_NOREPLACE 0x100000
#define MADV_RANDOM 1
#define MADV_SEQUENTIAL 2
#define MADV_DONTFORK 10
#define MADV_MERGEABLE 12
#define MADV_HUGEPAGE 14
#define MADV_NOHUGEPAGE 15
#define MADV_DONTDUMP 16
#define MADV_WIPEONFORK 18
#define MADV_POPULATE_WRITE 23
#define MADV_DONTNEED 4
#define MADV_GUARD_INSTALL 102
#define CLONE_CHILD_CLEARTID 0x200000
#define ESRCH 3
#define MLOCK_ONFAULT 1
#define SHM_RDONLY 010000
#define SHM_REMAP 040000
#define IPC_RMID 0
#define MREMAP_MAYMOVE 1
#define MREMAP_FIXED 2
#define PR_SET_NAME 15
#define PR_SET_MM 35
#define PR_SET_MM_MAP 14
#define ARCH_SET_GS 0x1001
#define ARCH_SET_FS 0x1002
#define EINTR 4
#define EPERM 1
#define EACCES 13

static inline long sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define sys1(n, a) sys6(n, (long)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define sys5(n, a, b, c, d, e) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

static void r_memcpy(void *d, const void *s, uint64_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;

	while (n--)
		*dp++ = *sp++;
}

/* A small line builder for messages: no printf here. */
struct line {
	char buf[256];
	uint64_t len;
};

static void l_str(struct line *l, const char *s)
{
	while (*s && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = *s++;
}

static void l_num(struct line *l, uint64_t v, int base)
{
	char tmp[24];
	int n = 0;

	if (base == 16)
		l_str(l, "0x");
	do {
		uint64_t d = v % base;
		tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	while (n && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = tmp[--n];
}

static void l_flush(struct rst_args *a, struct line *l)
{
	sys3(NR_write, a->err_fd, l->buf, l->len);
	l->len = 0;
}

/* Unrecoverable: the program cannot run, say why and exit. */
/* A failure's line begins so (after the progress line, if one is shown)... */
static void fail_begin(struct rst_args *a, struct line *l)
{
	if (a->flags & RST_F_PROGRESS)
		l_str(l, "\n");
	l_str(l, "ckpt-remap: ");
}

/* ...and ends so: the restore is over. */
__attribute__((noreturn)) static void fail_end(struct rst_args *a, struct line *l)
{
	l_str(l, "\n");
	l_flush(a, l);
	for (;;)
		sys1(NR_exit_group, a->fail_rc);
}

__attribute__((noreturn)) static void fail(struct rst_args *a, const char *what, uint64_t v,
					   long err)
{
	struct line l = {.len = 0};

	fail_begin(a, &l);
	l_str(&l, what);
	if (v) {
		l_str(&l, " ");
		l_num(&l, v, 16);
	}
	if (err) {
		l_str(&l, ": error ");
		l_num(&l, (uint64_t)-err, 10);
	}
	fail_end(a, &l);
}

/* The same, naming a process by its pid (in decimal). */
__attribute__((noreturn)) static void fail_pid(struct rst_args *a, const char *what, int32_t pid)
{
	struct line l = {.len = 0};

	fail_begin(a, &l);
	l_str(&l, "pid ");
	l_num(&l, (uint64_t)pid, 10);
	l_str(&l, ": ");
	l_str(&l, what);
	fail_end(a, &l);
}

/* The decompressor's (or merge's) reason for a failure, if it has one:
 * then it is the message, as it names the cause better than what we saw
 * of it. */
static void decompressor_status(struct rst_args *a)
{
	struct line l = {.len = 0};
	char msg[200];
	long n, len = 0;

	if (a->status_fd < 0)
		return;
	while (len < (long)sizeof(msg) - 1 &&
	       ((n = sys3(NR_read, a->status_fd, msg + len, sizeof(msg) - 1 - len)) > 0 ||
		n == -EINTR))
		if (n > 0)
			len += n;
	if (len == 0)
		return;
	msg[len] = 0;
	if (a->flags & RST_F_PROGRESS)
		l_str(&l, "\n");
	l_str(&l, a->flags & RST_F_MERGED ? "ckpt-remap: " : "ckpt-remap: decompress: ");
	l_str(&l, msg);
	l_str(&l, "\n");
	l_flush(a, &l);
	for (;;)
		sys1(NR_exit_group, a->fail_rc);
}

struct stream {
	struct rst_args *a;
	uint64_t off;
	uint64_t nrec, npages;
	/* progress */
	uint64_t t0, tlast;
	int shown;
	/* page data */
	struct crc32c_lanes lanes;
	long helper;	/* the prefault helper's tid, or 0 */
	uint64_t nlazy; /* runs mapped from the image file */
};

static uint64_t now_ms(void)
{
	struct {
		long sec, nsec;
	} ts;

	sys2(NR_clock_gettime, 1 /* CLOCK_MONOTONIC */, &ts);
	return ts.sec * 1000 + ts.nsec / 1000000;
}

static void progress(struct stream *s, int final)
{
	struct line l = {.len = 0};
	uint64_t t, el, mib;

	/* Called for every run of pages: no clock read unless it is shown. */
	if (!(s->a->flags & RST_F_PROGRESS))
		return;
	t = now_ms();
	if (!final && (t - s->t0 < 1000 || t - s->tlast < 200))
		return;
	if (final && !s->shown)
		return;
	s->tlast = t;
	s->shown = 1;
	el = t - s->t0 ? t - s->t0 : 1;
	mib = s->off >> 20;
	l_str(&l, "\rckpt-remap: restored ");
	l_num(&l, mib, 10);
	l_str(&l, " MiB");
	if (s->a->pages_hint * s->a->page_size > s->off) {
		l_str(&l, " of ~");
		l_num(&l, (s->a->pages_hint * s->a->page_size) >> 20, 10);
		l_str(&l, " MiB");
	}
	l_str(&l, ", ");
	l_num(&l, (s->off >> 20) * 1000 / el, 10);
	l_str(&l, " MiB/s\033[K");
	if (final)
		l_str(&l, "\n");
	l_flush(s->a, &l);
}

static void s_read(struct stream *s, void *buf, uint64_t len)
{
	char *p = buf;

	while (len) {
		long n = sys3(NR_read, s->a->img_fd, p, len > (1u << 30) ? (1u << 30) : len);
		if (n == -EINTR)
			continue;
		if (n < 0)
			fail(s->a, "cannot read the image at offset", s->off, n);
		if (n == 0) {
			decompressor_status(s->a);
			fail(s->a, "image truncated: page data ends at offset", s->off, 0);
		}
		p += n;
		len -= n;
		s->off += n;
	}
}

static const struct rst_map *find_map(struct rst_args *a, uint64_t addr, uint64_t len)
{
	const struct rst_map *m = (const struct rst_map *)a->maps;
	uint64_t lo = 0, hi = a->nmaps;

	while (lo < hi) {
		uint64_t mid = (lo + hi) / 2;
		if (m[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < a->nmaps && m[lo].start <= addr && addr + len <= m[lo].end && addr + len > addr)
		return &m[lo];
	return 0;
}

/* --lazy: a large run of a region that allows it is mapped from the image
 * file (its data is page-aligned there), not read: its pages come in when
 * the program first touches them.  Each such run costs up to two more
 * mappings: ckpt-remap says how many fit under vm.max_map_count. */
#define LAZY_MIN_PAGES 16

static int lazy_map(struct stream *s, const struct img_run *run, uint64_t *nlazy)
{
	struct rst_args *a = s->a;
	uint64_t len = run->npages * a->page_size;
	const struct rst_map *m;
	long r;

	if (!(a->flags & RST_F_LAZY) || run->npages < LAZY_MIN_PAGES || *nlazy >= a->lazy_max)
		return 0;
	m = find_map(a, run->addr, len);
	if (!m || !m->lazy)
		return 0;
	r = sys6(NR_mmap, run->addr, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_FIXED | (m->flags & MAP_NORESERVE), a->img_fd, s->off);
	if (r != (long)run->addr)
		fail(a, "cannot map page data from the image at", run->addr, r);
	r = sys3(NR_lseek, a->img_fd, len, SEEK_CUR);
	if (r < 0)
		fail(a, "cannot seek in the image at offset", s->off, r);
	s->off += len;
	(*nlazy)++;
	return 1;
}

/* ---- threads of the restorer ----------------------------------------- */

/* clone3 of a thread that runs fn(a, arg) on the stack
 * [stack_top - RST_THREAD_STACK, stack_top - 16), the two words at its top
 * holding fn's arguments; set_tid asks for a tid (0: any); clear_tid, if
 * not null, is the word the kernel clears and wakes when the thread exits
 * (CLONE_CHILD_CLEARTID).  Returns the tid, or -errno. */
static long clone_thread(struct rst_args *a, uint64_t arg, void (*fn)(struct rst_args *, uint64_t),
			 uint64_t stack_top, int32_t set_tid, int32_t *clear_tid)
{
	struct {
		uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
			set_tid, set_tid_size, cgroup;
	} ca = {0};
	uint64_t *sp = (uint64_t *)(stack_top - 16);
	int32_t want = set_tid;
	long ret;

	sp[0] = (uint64_t)a;
	sp[1] = arg;
	ca.flags = CLONE_THREAD_FLAGS;
	if (clear_tid) {
		ca.flags |= CLONE_CHILD_CLEARTID;
		ca.child_tid = (uint64_t)clear_tid;
	}
	ca.stack = stack_top - RST_THREAD_STACK;
	ca.stack_size = RST_THREAD_STACK - 16;
	if (set_tid) {
		ca.set_tid = (uint64_t)&want;
		ca.set_tid_size = 1;
	}
	/* The child starts after the syscall with rsp at the top of its
	 * stack (its arguments), every signal blocked (inherited), and the
	 * registers of ours but rax, rcx and r11 (fn's among them); it never
	 * returns here. */
	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "mov 0(%%rsp), %%rdi\n\t"
			 "mov 8(%%rsp), %%rsi\n\t"
			 "call *%4\n\t"
			 "ud2\n"
			 "1:\n\t"
			 : "=a"(ret)
			 : "a"(NR_clone3), "D"(&ca), "S"(sizeof(ca)), "r"(fn)
			 : "rcx", "r11", "memory");
	return ret;
}

/* ---- the prefault helper --------------------------------------------- */

static void pf_populate(const struct rst_range *r, const int64_t *lo, int64_t me)
{
	long ret = sys3(NR_madvise, r->start, r->end - r->start, MADV_POPULATE_WRITE);

	/* Before Linux 5.14: touch each page with an atomic add of zero,
	 * which never changes what the main thread may be writing there. */
	if (ret == -22)
		for (uint64_t p = r->start; p < r->end && me >= __atomic_load_n(lo, __ATOMIC_ACQUIRE);
		     p += 4096)
			__atomic_fetch_add((uint32_t *)p, 0, __ATOMIC_RELAXED);
}

__attribute__((noinline, noreturn)) static void pf_main(struct rst_args *a,
							uint64_t unused __attribute__((unused)))
{
	struct rst_prefault *pf = &a->pf;
	const struct rst_range *c = (const struct rst_range *)pf->chunks;
	int32_t seen = 0;

	for (;;) {
		int64_t h;

		while (__atomic_load_n(&pf->seq, __ATOMIC_ACQUIRE) == seen)
			sys4(NR_futex, &pf->seq, FUTEX_WAIT_PRIVATE, seen, 0);
		seen = __atomic_load_n(&pf->seq, __ATOMIC_ACQUIRE);
		if (__atomic_load_n(&pf->quit, __ATOMIC_ACQUIRE))
			for (;;)
				sys1(NR_exit, 0);
		/* From the end down, until the chunk the main thread reads. */
		for (;;) {
			h = __atomic_load_n(&pf->hi, __ATOMIC_ACQUIRE) - 1;
			if (h < __atomic_load_n(&pf->lo, __ATOMIC_ACQUIRE))
				break;
			__atomic_store_n(&pf->hi, h, __ATOMIC_RELEASE);
			pf_populate(&c[h], &pf->lo, h);
		}
		__atomic_store_n(&pf->done, seen, __ATOMIC_RELEASE);
		sys3(NR_futex, &pf->done, FUTEX_WAKE_PRIVATE, 1);
	}
}

/* Start the helper; its tid, or 0 if it could not start (the main thread
 * then faults every page itself).  Its tid word is cleared when it exits. */
static long pf_start(struct rst_args *a)
{
	long ret;

	a->pf.tid = 1;
	ret = clone_thread(a, 0, pf_main, a->pf.stack_top, 0, &a->pf.tid);
	if (ret < 0)
		a->pf.tid = 0;
	return ret > 0 ? ret : 0;
}

/* Hand the helper a record's chunks [0, n). */
static void pf_post(struct rst_args *a, uint64_t n)
{
	__atomic_store_n(&a->pf.lo, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&a->pf.hi, (int64_t)n, __ATOMIC_RELEASE);
	__atomic_add_fetch(&a->pf.seq, 1, __ATOMIC_ACQ_REL);
	sys3(NR_futex, &a->pf.seq, FUTEX_WAKE_PRIVATE, 1);
}

/* The record is read: the helper stops, and is idle before the next. */
static void pf_finish(struct rst_args *a, uint64_t n)
{
	int32_t want = __atomic_load_n(&a->pf.seq, __ATOMIC_ACQUIRE), v;

	__atomic_store_n(&a->pf.lo, (int64_t)n, __ATOMIC_RELEASE);
	while ((v = __atomic_load_n(&a->pf.done, __ATOMIC_ACQUIRE)) != want)
		sys4(NR_futex, &a->pf.done, FUTEX_WAIT_PRIVATE, v, 0);
}

/* The helper exits, and its tid is free again before any thread of the
 * program asks for its own. */
static void pf_stop(struct rst_args *a, long tid)
{
	int32_t v;

	if (!tid)
		return;
	__atomic_store_n(&a->pf.quit, 1, __ATOMIC_RELEASE);
	__atomic_add_fetch(&a->pf.seq, 1, __ATOMIC_ACQ_REL);
	sys3(NR_futex, &a->pf.seq, FUTEX_WAKE_PRIVATE, 1);
	while ((v = __atomic_load_n(&a->pf.tid, __ATOMIC_ACQUIRE)) != 0)
		sys4(NR_futex, &a->pf.tid, FUTEX_WAIT, v, 0);
	while (sys3(NR_tgkill, sys1(NR_getpid, 0), tid, 0) != -ESRCH)
		sys1(NR_sched_yield, 0);
}

/* The chunks of a record's runs, RST_CHUNK at most each, into the
 * helper's list: their number, or 0 when there are too many or too few
 * to share. */
static uint64_t pf_chunks(struct rst_args *a, const struct img_run *runs, uint32_t nruns)
{
	struct rst_range *c = (struct rst_range *)a->pf.chunks;
	uint64_t n = 0;

	for (uint32_t i = 0; i < nruns; i++) {
		uint64_t at = runs[i].addr, end = at + runs[i].npages * a->page_size;
		for (; at < end; at += RST_CHUNK) {
			if (n == RST_MAX_CHUNKS)
				return 0;
			c[n].start = at;
			c[n++].end = end - at < RST_CHUNK ? end : at + RST_CHUNK;
		}
	}
	return n > 2 ? n : 0;
}

/* A tree: one message from the supervisor, of the kind expected. */
static void t_read(struct rst_args *a, struct rst_token *t, uint32_t msg)
{
	char *p = (char *)t;
	uint64_t got = 0;

	while (got < sizeof(*t)) {
		long n = sys3(NR_read, a->tree_cmd_fd, p + got, sizeof(*t) - got);
		if (n == -EINTR)
			continue;
		if (n <= 0)
			fail_pid(a, "the tree's restore was abandoned (another process failed)",
				 a->tree_pid);
		got += n;
	}
	if (t->msg != msg)
		fail(a, "unexpected message from ckpt-remap: kind", t->msg, 0);
}

static void t_write(struct rst_args *a, struct rst_token *t)
{
	long n;

	t->pid = a->tree_pid;
	do
		n = sys3(NR_write, a->tree_rep_fd, t, sizeof(*t));
	while (n == -EINTR);
	if (n != (long)sizeof(*t))
		fail_pid(a, "cannot report to ckpt-remap (it is gone)", a->tree_pid);
}

/* A record of the page data as it is read: its header, where it starts,
 * the checksum it carries, and the checksum of what was read of it. */
struct rec_in {
	struct img_rec rec;
	uint64_t start;
	uint32_t want, crc;
};

/* A tree: our turn to read the stream; the process before us read the
 * header of our PROCPAGES record. */
static void take_turn(struct stream *s)
{
	struct rst_token t;

	t_read(s->a, &t, RST_MSG_TURN);
	s->off = t.off;
	s->nrec = t.nrec;
	s->npages = t.npages;
	s->a->first = t.rec;
}

/* The next record's header: read, or the one read before (have_first). */
static void read_rec(struct stream *s, struct rec_in *r, int *have_first)
{
	r->start = s->off;
	if (*have_first) {
		r->rec = s->a->first;
		r->start -= sizeof(r->rec);
		*have_first = 0;
	} else {
		s_read(s, &r->rec, sizeof(r->rec));
	}
	r->want = r->rec.crc;
	r->rec.crc = 0;
	r->crc = crc32c_hw(0, &r->rec, sizeof(r->rec));
}

/* A tree: the next process's page data; its turn. */
static void pass_turn(struct stream *s, const struct rec_in *r)
{
	struct rst_token t = {.msg = RST_MSG_TURN,
			      .off = s->off,
			      .nrec = s->nrec,
			      .npages = s->npages,
			      .rec = r->rec};

	t.rec.crc = r->want;
	t_write(s->a, &t);
}

/* A record of a fixed size: its body, of that length and checksum. */
static void read_body(struct stream *s, const struct rec_in *r, void *body, uint32_t len,
		      const char *bad_len, const char *bad_crc)
{
	if (r->rec.len != len)
		fail(s->a, bad_len, r->start, 0);
	s_read(s, body, len);
	if (crc32c_hw(r->crc, body, len) != r->want)
		fail(s->a, bad_crc, r->start, 0);
}

/* A tree: the PROCPAGES record that opens our page data. */
static void read_procpages(struct stream *s, const struct rec_in *r)
{
	struct rst_args *a = s->a;
	struct img_procpages pp;

	read_body(s, r, &pp, sizeof(pp), "PROCPAGES record: bad length at offset",
		  "PROCPAGES record: checksum mismatch at offset");
	if (pp.pid != a->tree_pid)
		fail(a, "PROCPAGES record: another process's pages at offset", r->start, 0);
	s->nrec++;
}

/* A decompressor has more to say: what it still writes is not image, and
 * a cut trailer shows only in its status. */
static void check_after_end(struct stream *s)
{
	struct rst_args *a = s->a;
	char z[64];
	long n;

	if (a->status_fd < 0)
		return;
	while ((n = sys3(NR_read, a->img_fd, z, sizeof(z))) > 0 || n == -EINTR)
		if (n > 0)
			fail(a, "data after the END record at offset", s->off, 0);
	decompressor_status(a);
}

/* The END record: its totals are the stream's. */
static void read_end(struct stream *s, const struct rec_in *r)
{
	struct rst_args *a = s->a;
	struct img_end e;

	read_body(s, r, &e, sizeof(e), "END record: bad length at offset",
		  "END record: checksum mismatch at offset");
	if (e.records != s->nrec || e.pages != s->npages || e.bytes != r->start)
		fail(a, "END record: totals differ from the stream at offset", r->start, 0);
	check_after_end(s);
	if (a->flags & RST_F_TREE) {
		struct rst_token t = {.msg = RST_MSG_END};
		t_write(a, &t);
	}
}

/* A PAGES record's header and runs (into a->runs), and the padding before
 * its data; their checksum is the record's. */
static void read_runs(struct stream *s, struct rec_in *r, struct img_pages *p)
{
	struct rst_args *a = s->a;
	struct img_run *runs = (struct img_run *)a->runs;
	uint64_t ps = a->page_size, pad;

	if (r->rec.type != IMG_REC_PAGES || r->rec.len < sizeof(*p))
		fail(a, "unexpected record in the page data at offset", r->start, 0);
	s_read(s, p, sizeof(*p));
	if (p->nruns == 0 || p->nruns > IMG_MAX_RUNS || p->npages == 0)
		fail(a, "PAGES record: bad counts at offset", r->start, 0);
	s_read(s, runs, p->nruns * sizeof(*runs));
	pad = (ps - s->off % ps) % ps;
	if (r->rec.len != sizeof(*p) + p->nruns * sizeof(*runs) + pad + p->npages * ps)
		fail(a, "PAGES record: bad length at offset", r->start, 0);
	r->crc = crc32c_hw(r->crc, p, sizeof(*p));
	r->crc = crc32c_hw(r->crc, runs, p->nruns * sizeof(*runs));
	while (pad) {
		/* The padding is under a page: one read (it was 64 reads of
		 * 64 bytes for most records). */
		char z[4096];
		uint64_t k = pad < sizeof(z) ? pad : sizeof(z);
		s_read(s, z, k);
		r->crc = crc32c_hw(r->crc, z, k);
		pad -= k;
	}
	if (r->crc != r->want)
		fail(a, "PAGES record: checksum mismatch at offset", r->start, 0);
}

/* Every run must land inside a region the image maps for data: a hostile
 * stream must not write anywhere else. */
static void check_runs(struct rst_args *a, const struct img_pages *p, uint64_t start)
{
	const struct img_run *runs = (const struct img_run *)a->runs;
	uint64_t ps = a->page_size, sum = 0;

	for (uint32_t i = 0; i < p->nruns; i++) {
		const struct rst_map *m;
		if (runs[i].npages == 0 || runs[i].npages > p->npages || runs[i].addr % ps)
			fail(a, "PAGES record: bad run at offset", start, 0);
		m = find_map(a, runs[i].addr, runs[i].npages * ps);
		if (!m || !m->fill)
			fail(a, "PAGES record: run outside the image's regions at", runs[i].addr, 0);
		sum += runs[i].npages;
	}
	if (sum != p->npages)
		fail(a, "PAGES record: runs do not add up at offset", start, 0);
}

/* One run's data into its place, and its checksum on crc, taken while
 * what was just read is in the cache: a MiB at a time (a chunk, with a
 * helper: piece counts the chunks taken, which the helper leaves). */
static uint32_t read_run(struct stream *s, const struct img_run *run, uint64_t nchunks,
			 uint64_t *piece, uint32_t crc)
{
	char *at = (char *)run->addr;
	uint64_t left = run->npages * s->a->page_size;

	while (left) {
		uint64_t k = nchunks ? RST_CHUNK : (1u << 20);
		if (k > left)
			k = left;
		if (nchunks)
			__atomic_store_n(&s->a->pf.lo, (int64_t)++(*piece), __ATOMIC_RELEASE);
		s_read(s, at, k);
		if (!(s->a->flags & RST_F_NO_DATA_CRC))
			crc = crc32c_hw3(&s->lanes, crc, at, k);
		at += k;
		left -= k;
	}
	return crc;
}

/* --lazy from a stream: a record of the late regions (lazy order: all of
 * them come last, in records of their own) ends the restorer's part of
 * the stream.  They are registered on the userfaultfd, the filler gets
 * where the stream stands and reads on; a fault on their pages waits for
 * it.  Returns 0 for a record of other memory. */
#define NR_ioctl 16
#define UFFDIO_REGISTER_IOC 0xc020aa00ul
#define UFFDIO_REGISTER_MODE_MISSING 1ull

/* All of len bytes on the filler's pipe (more than PIPE_BUF may go in
 * parts). */
static void lazy_write(struct rst_args *a, const void *buf, uint64_t len)
{
	const char *p = buf;

	while (len) {
		long n = sys3(NR_write, a->lazy_fd, p, len);
		if (n == -EINTR)
			continue;
		if (n <= 0)
			fail(a, "cannot hand the rest of the stream to the filler (it is gone)", 0, n);
		p += n;
		len -= n;
	}
}

static int lazy_handoff(struct stream *s, const struct rec_in *r, const struct img_pages *p)
{
	struct rst_args *a = s->a;
	const struct img_run *runs = (const struct img_run *)a->runs;
	const struct rst_map *m = (const struct rst_map *)a->maps;
	struct rst_lazy_msg msg = {RST_LAZY_MAGIC, s->off, s->nrec, s->npages, r->start, *p};
	uint32_t late = 0;

	for (uint32_t i = 0; i < p->nruns; i++)
		late += find_map(a, runs[i].addr, runs[i].npages * a->page_size)->late;
	if (!late)
		return 0;
	if (late != p->nruns)
		fail(a, "PAGES record: memory filled on a fault mixed with other memory at offset",
		     r->start, 0);
	for (uint64_t i = 0; i < a->nmaps; i++) {
		struct {
			uint64_t start, len, mode, ioctls;
		} reg = {m[i].start, m[i].end - m[i].start, UFFDIO_REGISTER_MODE_MISSING, 0};
		long ret;

		if (m[i].late && (ret = sys3(NR_ioctl, a->uffd, UFFDIO_REGISTER_IOC, &reg)))
			fail(a, "cannot register on the userfaultfd the region at", m[i].start, ret);
	}
	lazy_write(a, &msg, sizeof(msg));
	lazy_write(a, runs, p->nruns * sizeof(*runs));
	return 1;
}

/* A PAGES record's data, each run straight into its final place (or
 * mapped from the image file, --lazy). */
static void read_data(struct stream *s, const struct rec_in *r, const struct img_pages *p)
{
	struct rst_args *a = s->a;
	const struct img_run *runs = (const struct img_run *)a->runs;
	uint64_t nchunks, piece = 0;
	uint32_t crc = 0;
	int mapped = 0;

	/* The helper faults the record's pages in from its end; the pieces
	 * read here are its chunks, in the same order. */
	nchunks = s->helper ? pf_chunks(a, runs, p->nruns) : 0;
	if (nchunks)
		pf_post(a, nchunks);
	for (uint32_t i = 0; i < p->nruns; i++) {
		if (lazy_map(s, &runs[i], &s->nlazy)) {
			mapped = 1;
			continue;
		}
		crc = read_run(s, &runs[i], nchunks, &piece, crc);
		progress(s, 0);
	}
	if (nchunks)
		pf_finish(a, nchunks);
	/* Pages mapped from the file are not read: --lazy's bargain. */
	if (!mapped && !(a->flags & RST_F_NO_DATA_CRC) && crc != p->data_crc)
		fail(a, "page data: checksum mismatch in the record at offset", r->start, 0);
}

/* PAGES records until END (a tree's process: until the next process's
 * PROCPAGES record). */
static void fill_pages(struct rst_args *a)
{
	struct stream s = {.a = a, .off = a->stream_off, .nrec = a->nrec, .npages = a->npages};
	int have_first = a->have_first == 1, tree = !!(a->flags & RST_F_TREE), own = 0;

	crc32c_lanes_init(&s.lanes);
	/* --lazy maps most data instead of reading it: no helper then. */
	s.helper = (a->flags & RST_F_LAZY) ? 0 : pf_start(a);
	if (tree) {
		take_turn(&s);
		have_first = 1;
	}
	s.t0 = s.tlast = now_ms();
	for (;;) {
		struct rec_in r;
		struct img_pages p;

		read_rec(&s, &r, &have_first);
		if (tree && r.rec.type == IMG_REC_PROCPAGES && own) {
			pass_turn(&s, &r);
			break;
		}
		if (tree && r.rec.type == IMG_REC_PROCPAGES) {
			read_procpages(&s, &r);
			own = 1;
			continue;
		}
		if (tree && !own)
			fail(a, "no PROCPAGES record before the page data at offset", r.start, 0);
		if (r.rec.type == IMG_REC_END) {
			read_end(&s, &r);
			break;
		}
		read_runs(&s, &r, &p);
		check_runs(a, &p, r.start);
		if ((a->flags & RST_F_UFFD) && lazy_handoff(&s, &r, &p))
			break;
		read_data(&s, &r, &p);
		s.nrec++;
		s.npages += p.npages;
	}
	pf_stop(a, s.helper);
	progress(&s, 1);
}

/* The attributes the main thread sets last (attrs.c), once every thread
 * has set its own. */
static void attrs_last(struct rst_args *a)
{
	const char *what = "";
	uint64_t which = 0;
	int32_t v;
	long r;

	while ((v = __atomic_load_n(&a->set, __ATOMIC_ACQUIRE)) != (int32_t)(a->nthreads - 1))
		sys4(NR_futex, &a->set, FUTEX_WAIT_PRIVATE, v, 0);
	r = rst_attrs_last((const struct rst_attrs *)a->attrs, &what, &which);
	if (r)
		fail(a, what, which, r);
}

/* A tree: once every thread of this process is set, nothing is left that
 * can fail; say so, and wait until every process of the tree is there
 * too: none runs before all can. */
static void tree_ready(struct rst_args *a)
{
	struct rst_token t = {.msg = RST_MSG_READY};
	int32_t v;

	if (!(a->flags & RST_F_TREE))
		return;
	while ((v = __atomic_load_n(&a->set, __ATOMIC_ACQUIRE)) != (int32_t)(a->nthreads - 1))
		sys4(NR_futex, &a->set, FUTEX_WAIT_PRIVATE, v, 0);
	t_write(a, &t);
	t_read(a, &t, RST_MSG_GO);
}

/* Its proc (rst_args.proc_path), once every process of the tree is ready. */
static void mount_proc(struct rst_args *a)
{
	long r;

	if (!a->proc_path)
		return;
	r = sys5(NR_mount, "proc", a->proc_path, "proc", a->proc_flags, 0);
	if (!r && a->proc_prop)
		r = sys5(NR_mount, 0, a->proc_path, 0, a->proc_prop, 0);
	if (r)
		fail(a, "cannot mount the proc of its pid namespace", 0, r);
}

static void move_specials(struct rst_args *a)
{
	/* Two steps, through scratch space at the start of the blob, so that
	 * no move lands on a special mapping that has not moved yet. */
	uint64_t tmp = a->blob_start;

	for (uint32_t i = 0; i < a->nspecial; i++) {
		struct rst_move *m = &a->special[i];
		long r = sys5(NR_mremap, m->from, m->len, m->len, MREMAP_MAYMOVE | MREMAP_FIXED,
			      tmp);
		if (r != (long)tmp)
			fail(a, "cannot move the vDSO/vvar mapping at", m->from, r);
		m->from = tmp;
		tmp += m->len;
	}
	for (uint32_t i = 0; i < a->nspecial; i++) {
		struct rst_move *m = &a->special[i];
		long r = sys5(NR_mremap, m->from, m->len, m->len, MREMAP_MAYMOVE | MREMAP_FIXED,
			      m->to);
		if (r != (long)m->to)
			fail(a, "cannot move the vDSO/vvar mapping to", m->to, r);
	}
}

static void advise(struct rst_args *a, const struct rst_map *m, uint32_t flag, int advice)
{
	long r;

	if (!(m->advice & flag))
		return;
	r = sys3(NR_madvise, m->start, m->end - m->start, advice);
	if (r)
		fail(a, "cannot madvise region", m->start, r);
}

/* ---- AIO contexts ------------------------------------------------------ */

#define NR_io_setup 206
#define NR_io_submit 209
#define NR_io_getevents 208
#define NR_eventfd2 290
#define NR_sched_setaffinity 203
#define NR_sched_getaffinity 204
#define NR_getcpu 309
#define IOCB_CMD_POLL 5
#define AIO_BATCH 32

/* struct iocb and struct io_event, as <linux/aio_abi.h> has them. */
struct k_iocb {
	uint64_t data;
	uint32_t key, rw_flags;
	uint16_t opcode;
	int16_t prio;
	uint32_t fd;
	uint64_t buf, nbytes;
	int64_t offset;
	uint64_t reserved, flags_resfd;
};

struct k_io_event {
	uint64_t data, obj;
	int64_t res, res2;
};

/* n requests that complete at once (a poll of an eventfd that is
 * readable), their completions reaped if reap: each moves the kernel's
 * tail (ctx->tail, which the ring cannot set) one slot on. */
static void aio_complete_n(struct rst_args *a, uint64_t ctx, int efd, uint32_t n, int reap)
{
	struct k_iocb cb[AIO_BATCH];
	uint64_t p[AIO_BATCH];
	struct k_io_event ev[AIO_BATCH];

	while (n) {
		uint32_t k = n < AIO_BATCH ? n : AIO_BATCH;
		long r;

		for (uint32_t i = 0; i < k; i++) {
			cb[i] = (struct k_iocb){.opcode = IOCB_CMD_POLL, .fd = (uint32_t)efd,
						.buf = 1 /* POLLIN */};
			p[i] = (uint64_t)&cb[i];
		}
		r = sys3(NR_io_submit, ctx, k, p);
		if (r <= 0)
			fail(a, "cannot bring the tail of the AIO ring on at", ctx, r);
		k = (uint32_t)r;
		if (reap && (r = sys5(NR_io_getevents, ctx, k, k, ev, 0)) != (long)k)
			fail(a, "cannot reap the completions made for the AIO ring at", ctx, r);
		n -= k;
	}
}

/* Each AIO ring: a new context (io_setup of as many events as make a ring
 * of this size) moved over the placeholder map_regions made for it, which
 * also kept io_setup from choosing its place; then as many completions as
 * bring the kernel's tail to the head (reaped), and to the tail (not: the
 * fill puts the checkpoint's events in their slots). */
static void make_aio_rings(struct rst_args *a)
{
	struct rst_map *m = (struct rst_map *)a->maps;
	uint64_t mask[16], one[16] = {0};
	uint32_t cpu = 0;
	long got = 0;

	/* On one CPU meanwhile: a request slot is taken from a per-CPU
	 * stash, and slots stranded in other CPUs' stashes could leave too
	 * few for the completions to keep. */
	for (uint64_t i = 0; i < a->nmaps && !got; i++)
		if (m[i].aio_nr && (got = sys3(NR_sched_getaffinity, 0, sizeof(mask), mask)) > 0 &&
		    !sys3(NR_getcpu, &cpu, 0, 0) && cpu < 1024) {
			one[cpu / 64] = 1ull << (cpu % 64);
			sys3(NR_sched_setaffinity, 0, sizeof(one), one);
		}
	for (uint64_t i = 0; i < a->nmaps; i++) {
		uint64_t ctx = 0, len = m[i].end - m[i].start;
		uint32_t nr = m[i].aio_nr;
		long r, efd;

		if (!nr)
			continue;
		r = sys2(NR_io_setup, (nr - 3) / 2, &ctx);
		if (r)
			fail(a, "cannot make again the AIO context at", m[i].start, r);
		r = sys5(NR_mremap, ctx, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, m[i].start);
		if (r != (long)m[i].start)
			fail(a, "cannot move the new AIO ring to", m[i].start, r);
		m[i].aio_id = *(volatile uint32_t *)m[i].start;
		efd = sys2(NR_eventfd2, 1, 0);
		if (efd < 0)
			fail(a, "cannot make an eventfd for the AIO ring at", m[i].start, efd);
		aio_complete_n(a, m[i].start, (int)efd, m[i].aio_head, 1);
		aio_complete_n(a, m[i].start, (int)efd, (m[i].aio_tail + nr - m[i].aio_head) % nr,
			       0);
		sys1(NR_close, efd);
	}
	if (got > 0)
		sys3(NR_sched_setaffinity, 0, got, mask);
}

/* After the fill: the id (the kernel finds the context by it: its index
 * in the process's table, not the old one), head and tail as the kernel
 * has them now (the page data may have been read after a late completion
 * moved the tail). */
static void aio_positions(struct rst_args *a)
{
	const struct rst_map *m = (const struct rst_map *)a->maps;

	for (uint64_t i = 0; i < a->nmaps; i++) {
		volatile uint32_t *h = (volatile uint32_t *)m[i].start;

		if (!m[i].aio_nr)
			continue;
		h[0] = m[i].aio_id;
		h[2] = m[i].aio_head;
		h[3] = m[i].aio_tail;
	}
}

static void map_regions(struct rst_args *a)
{
	const struct rst_map *m = (const struct rst_map *)a->maps;

	for (uint64_t i = 0; i < a->nmaps; i++) {
		uint32_t prot = m[i].prot | (m[i].fill ? PROT_READ | PROT_WRITE : 0);
		uint32_t flags = m[i].flags | MAP_FIXED_NOREPLACE;
		long r;

		if (m[i].shmid >= 0) {
			/* SHM_REMAP: [start, end) is free, but shmat wants it. */
			uint32_t wr = m[i].advice & IMG_RGN_MAYWRITE ? PROT_WRITE : 0;

			r = sys3(NR_shmat, m[i].shmid, m[i].start, SHM_REMAP | (wr ? 0 : SHM_RDONLY));
			if (r != (long)m[i].start)
				fail(a, "cannot attach System V shared memory at", m[i].start, r);
			if (m[i].prot != (PROT_READ | wr) &&
			    (r = sys3(NR_mprotect, m[i].start, m[i].end - m[i].start, m[i].prot)))
				fail(a, "cannot set the protection of region", m[i].start, r);
			if (m[i].shm_rmid && (r = sys3(NR_shmctl, m[i].shmid, IPC_RMID, 0)))
				fail(a, "cannot remove System V shared memory id of", m[i].start, r);
			continue;
		}
		if (m[i].fd < 0)
			flags |= MAP_ANONYMOUS;
		r = sys6(NR_mmap, m[i].start, m[i].end - m[i].start, prot, flags, m[i].fd,
			 m[i].pgoff);
		if (r != (long)m[i].start)
			fail(a, "cannot map region", m[i].start, r);
		/* Before the fill, so that the fill gets huge pages. */
		advise(a, &m[i], IMG_RGN_HUGEPAGE, MADV_HUGEPAGE);
		advise(a, &m[i], IMG_RGN_NOHUGEPAGE, MADV_NOHUGEPAGE);
	}
	make_aio_rings(a);
}

/* A live stream's pre-copy: moved, not copied (restore/live.c). */
static void move_staged(struct rst_args *a)
{
	const struct rst_move *m = (const struct rst_move *)a->live_moves;
	const struct rst_range *d = (const struct rst_range *)a->live_drop;

	for (uint64_t i = 0; i < a->nlive_moves; i++) {
		long r = sys5(NR_mremap, m[i].from, m[i].len, m[i].len,
			      MREMAP_MAYMOVE | MREMAP_FIXED, m[i].to);
		if (r != (long)m[i].to)
			fail(a, "cannot move the pre-copied pages to", m[i].to, r);
	}
	for (uint64_t i = 0; i < a->nlive_zero; i++) {
		const struct rst_move *z = (const struct rst_move *)a->live_zero + i;
		/* A few pages: written (a huge page stays whole); more: dropped. */
		if (z->len <= 16 * (uint64_t)a->page_size) {
			for (uint64_t *p = (uint64_t *)z->to; p < (uint64_t *)(z->to + z->len); p++)
				*(volatile uint64_t *)p = 0;
		} else {
			long r = sys3(NR_madvise, z->to, z->len, MADV_DONTNEED);
			if (r)
				fail(a, "cannot drop the pages the pre-copy does not give at", z->to, r);
		}
	}
	for (uint64_t i = 0; i < a->nlive_drop; i++)
		sys2(NR_munmap, d[i].start, d[i].end - d[i].start);
}

/* What the program had said of its memory with madvise and mlock. */
static void advise_regions(struct rst_args *a)
{
	const struct rst_map *m = (const struct rst_map *)a->maps;

	for (uint64_t i = 0; i < a->nmaps; i++) {
		long r = 0;

		/* Before mlock: the kernel installs no guard in locked memory. */
		advise(a, &m[i], IMG_RGN_GUARD, MADV_GUARD_INSTALL);
		advise(a, &m[i], IMG_RGN_DONTFORK, MADV_DONTFORK);
		advise(a, &m[i], IMG_RGN_WIPEONFORK, MADV_WIPEONFORK);
		advise(a, &m[i], IMG_RGN_DONTDUMP, MADV_DONTDUMP);
		advise(a, &m[i], IMG_RGN_MERGEABLE, MADV_MERGEABLE);
		advise(a, &m[i], IMG_RGN_SEQREAD, MADV_SEQUENTIAL);
		advise(a, &m[i], IMG_RGN_RANDREAD, MADV_RANDOM);
		if (m[i].advice & IMG_RGN_LOCKONFAULT)
			r = sys3(NR_mlock2, m[i].start, m[i].end - m[i].start, MLOCK_ONFAULT);
		else if (m[i].advice & IMG_RGN_LOCKED)
			r = sys2(NR_mlock, m[i].start, m[i].end - m[i].start);
		if (r)
			fail(a, "cannot lock region", m[i].start, r);
	}
}

static void protect_regions(struct rst_args *a)
{
	const struct rst_map *m = (const struct rst_map *)a->maps;

	for (uint64_t i = 0; i < a->nmaps; i++) {
		long r;
		if (!m[i].fill || m[i].prot == (m[i].prot | PROT_READ | PROT_WRITE))
			continue;
		r = sys3(NR_mprotect, m[i].start, m[i].end - m[i].start, m[i].prot);
		if (r)
			fail(a, "cannot set the protection of region", m[i].start, r);
	}
}

/* What belongs to the process: the mm layout, signal actions. */
static void restore_process_state(struct rst_args *a)
{
	const struct img_sigact *sa = (const struct img_sigact *)a->sigacts;
	long r;

	a->mm.auxv = (uint64_t)a->auxv;
	r = sys5(NR_prctl, PR_SET_MM, PR_SET_MM_MAP, &a->mm, sizeof(a->mm), 0);
	if ((r == -EPERM || r == -EACCES) && (a->flags & RST_F_EXE_FD)) {
		/* Replacing /proc/PID/exe needs CAP_CHECKPOINT_RESTORE, and
		 * (EACCES) a file no one has open for writing, as a deleted
		 * executable made again may be; the rest of the map does
		 * not. */
		a->mm.exe_fd = (uint32_t)-1;
		r = sys5(NR_prctl, PR_SET_MM, PR_SET_MM_MAP, &a->mm, sizeof(a->mm), 0);
	}
	if (r)
		fail(a, "cannot set the memory layout (PR_SET_MM_MAP)", 0, r);
	for (int sig = 1; sig <= IMG_NSIG; sig++) {
		if (sig == 9 || sig == 19)
			continue;
		r = sys4(NR_rt_sigaction, sig, &sa[sig - 1], 0, 8);
		if (r)
			fail(a, "cannot restore the action of signal", sig, r);
	}
}

/* A thread under a new tid: the robust futexes it held name its old tid
 * as owner, and the kernel, when the thread exits, marks only those that
 * name it.  They are on its robust list (each entry's futex word lies
 * futex_offset past it): rewrite their owner, keeping the flag bits.
 * Error-checking mutexes that are not robust are on no list, and keep the
 * old tid: only a restore that keeps tids (root, --pid-ns) fixes those. */
static void rewrite_owner(struct rst_args *a, uint64_t word, int32_t old, int32_t tid)
{
	volatile uint32_t *f = (volatile uint32_t *)word;

	if (find_map(a, word, 4) && (int32_t)(*f & 0x3fffffff) == old)
		*f = (*f & ~0x3fffffffu) | (uint32_t)tid;
}

static void rewrite_robust_owners(struct rst_args *a, struct rst_thread *t, int32_t tid)
{
	uint64_t head = t->robust_head, entry, off, pending;
	int n = 0;

	/* struct robust_list_head: next, futex_offset, list_op_pending. */
	if (!head || !find_map(a, head, 24))
		return;
	entry = *(volatile uint64_t *)head & ~1ull;
	off = *(volatile uint64_t *)(head + 8);
	pending = *(volatile uint64_t *)(head + 16) & ~1ull;
	while (entry != head && n++ < 4096 && find_map(a, entry, 8)) {
		rewrite_owner(a, entry + off, t->tid, tid);
		entry = *(volatile uint64_t *)entry & ~1ull;
	}
	if (pending)
		rewrite_owner(a, pending + off, t->tid, tid);
}

/* What belongs to the calling thread, then its frame below its stack
 * pointer; returns the address rt_sigreturn is to find the frame at. */
static uint64_t restore_thread_state(struct rst_args *a, struct rst_thread *t)
{
	const char *what;
	uint64_t fp;
	int32_t tid;
	long r;

	if (t->robust_head) {
		r = sys2(NR_set_robust_list, t->robust_head, t->robust_len);
		if (r)
			fail(a, "cannot restore the robust futex list at", t->robust_head, r);
	}
	sys1(NR_set_tid_address, t->tid_addr);
	tid = (int32_t)sys1(NR_gettid, 0);
	if (t->tid_cached)
		*(volatile int32_t *)t->tid_addr = tid;
	if (tid != t->tid)
		rewrite_robust_owners(a, t, tid);
	if (t->rseq_addr) {
		r = sys4(NR_rseq, t->rseq_addr, t->rseq_len, 0, t->rseq_sig);
		if (r)
			fail(a, "cannot register rseq at", t->rseq_addr, r);
	}
	r = sys2(NR_arch_prctl, ARCH_SET_FS, t->fs_base);
	if (r)
		fail(a, "cannot set the fs base", t->fs_base, r);
	r = sys2(NR_arch_prctl, ARCH_SET_GS, t->gs_base);
	if (r)
		fail(a, "cannot set the gs base", t->gs_base, r);
	/* The main thread takes its name last of all (rst_entry). */
	if (t != (struct rst_thread *)a->threads)
		sys2(NR_prctl, PR_SET_NAME, t->comm);

	/* The main thread's attributes wait until every thread is made
	 * (attrs_last): a clone inherits them, and may not be allowed to
	 * undo them. */
	if (t != (struct rst_thread *)a->threads) {
		r = rst_attrs_thread((const struct rst_attrs *)a->attrs,
				     (uint64_t)(t - (struct rst_thread *)a->threads), &what);
		if (r)
			fail(a, what, (uint64_t)tid, r);
	}

	/* The rt_sigreturn frame goes below the thread's stack pointer, as
	 * the kernel would put one for a signal; its xsave area must be
	 * 64-byte aligned there. */
	r_memcpy((void *)t->frame_sp, (void *)t->frame, t->frame_len);
	fp = t->frame_sp + t->frame_fpoff;
	r_memcpy((void *)(t->frame_sp + t->frame_fpptr), &fp, 8);
	return t->frame_sp;
}

static void futex_wait_while(struct rst_args *a, int32_t *word, int32_t while_is)
{
	for (;;) {
		int32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
		if (v != while_is)
			return;
		long r = sys4(NR_futex, word, FUTEX_WAIT_PRIVATE, v, 0);
		if (r && r != -EAGAIN && r != -EINTR)
			fail(a, "futex wait failed in the restorer", 0, r);
	}
}

/* A cloned thread: its state, then (once the main thread has queued the
 * pending signals and armed the timers, which may name it) out through
 * the trampoline, which counts it off and wakes the main thread without
 * touching this blob. */
__attribute__((noinline, noreturn)) static void thread_main(struct rst_args *a, uint64_t i)
{
	struct rst_thread *t = (struct rst_thread *)a->threads + i;
	uint64_t sp = restore_thread_state(a, t);

	__atomic_add_fetch(&a->set, 1, __ATOMIC_ACQ_REL);
	sys3(NR_futex, &a->set, FUTEX_WAKE_PRIVATE, 1);
	futex_wait_while(a, &a->go, 0);

	__asm__ volatile("mov %0, %%rdi\n\t"
			 "mov %1, %%r12\n\t"
			 "jmp *%2\n\t"
			 :
			 : "r"(&a->pending), "r"(sp), "r"(a->tramp + RST_TRAMP_THREAD)
			 : "rdi", "r12", "memory");
	__builtin_unreachable();
}

static void spawn_thread(struct rst_args *a, uint64_t i)
{
	struct rst_thread *t = (struct rst_thread *)a->threads + i;
	long ret = -1;

	/* With its old tid if asked and free; else any (glibc's cached tid
	 * is then rewritten, see restore_thread_state). */
	if (a->flags & RST_F_KEEP_TIDS)
		ret = clone_thread(a, i, thread_main, t->stack_top, t->tid, 0);
	if (ret < 0)
		ret = clone_thread(a, i, thread_main, t->stack_top, 0, 0);
	if (ret < 0)
		fail(a, "cannot create thread", i, ret);
	t->new_tid = (int32_t)ret;
}

/* Signals that were pending go back on their queues; every thread has
 * them all blocked until its rt_sigreturn, so none is delivered early. */
static void queue_signals(struct rst_args *a)
{
	const struct rst_sig *s = (const struct rst_sig *)a->sigs;
	const struct rst_thread *t = (const struct rst_thread *)a->threads;
	long pid = sys1(NR_getpid, 0), r;

	for (uint64_t i = 0; i < a->nsig; i++) {
		if (s[i].thread < 0)
			r = sys3(NR_rt_sigqueueinfo, pid, s[i].signo, s[i].info);
		else
			r = sys4(NR_rt_tgsigqueueinfo, pid,
				 s[i].thread ? t[s[i].thread].new_tid : pid, s[i].signo, s[i].info);
		if (r)
			fail(a, "cannot queue pending signal", s[i].signo, r);
	}
}

/* Arm POSIX timer id (of p) to expire at once, so that the kernel queues
 * its own signal, tied to the timer (see plan_signals_timers in
 * restore.c).  A timer on a wall clock: 1 ns from now; its interval is then
 * counted from the moment it fires, overruns too.  On a CPU clock (clock
 * ids 2, 3 and the negative ones) a relative expiry would wait for the
 * process to run a tick; an absolute one at the clock's present value has
 * passed already, and Linux fires it within timer_settime
 * (posix_cpu_timer_set). */
static long fire_timer(const struct rst_ptimer *p, int32_t id)
{
	int64_t its[4] = {p->its[0], p->its[1], 0, 1};

	if (p->clock < 0 || p->clock == 2 || p->clock == 3) {
		long r = sys2(NR_clock_gettime, p->clock, &its[2]);

		if (r)
			return r;
		if (!its[2] && !its[3])
			its[3] = 1;
		return sys4(NR_timer_settime, id, 1 /* TIMER_ABSTIME */, its, 0);
	}
	return sys4(NR_timer_settime, id, 0, its, 0);
}

/* Timers run on from the time they had left at the checkpoint.  POSIX
 * timers get their old ids back (PR_TIMER_CREATE_RESTORE_IDS, Linux 6.15;
 * ckpt-remap checked it is there). */
static void arm_timers(struct rst_args *a)
{
	const struct rst_ptimer *p = (const struct rst_ptimer *)a->ptimers;
	const struct rst_thread *t = (const struct rst_thread *)a->threads;
	long r;

	for (int which = 0; which < 3; which++) {
		if (!a->itimer[which][2] && !a->itimer[which][3])
			continue;
		r = sys3(NR_setitimer, which, a->itimer[which], 0);
		if (r)
			fail(a, "cannot set interval timer", which, r);
	}
	if (!a->nptimer)
		return;
	r = sys2(NR_prctl, PR_TIMER_CREATE_RESTORE_IDS, 1);
	if (r)
		fail(a, "cannot ask for POSIX timer ids", 0, r);
	for (uint64_t i = 0; i < a->nptimer; i++) {
		struct {
			uint64_t value;
			int32_t signo, notify;
			int32_t tid, pad[11];
		} sev = {p[i].value, p[i].signo, p[i].notify, 0, {0}};
		int32_t id = p[i].id;

		if (p[i].notify == 4 /* SIGEV_THREAD_ID */)
			sev.tid = p[i].thread ? t[p[i].thread].new_tid : (int32_t)sys1(NR_getpid, 0);
		r = sys3(NR_timer_create, p[i].clock, &sev, &id);
		if (r || id != p[i].id)
			fail(a, "cannot create POSIX timer", (uint64_t)p[i].id, r);
		if (p[i].fire)
			r = fire_timer(&p[i], id);
		else
			r = sys4(NR_timer_settime, id, 0, p[i].its, 0);
		if (r)
			fail(a, "cannot arm POSIX timer", (uint64_t)p[i].id, r);
	}
	sys2(NR_prctl, PR_TIMER_CREATE_RESTORE_IDS, 0);
}

/* The files ours mapped are closed first: closing any fd of a file drops
 * the process's POSIX locks on it.  ckpt-remap found no other process
 * holding a conflicting lock; one taken since fails the restore. */
static void take_locks(struct rst_args *a)
{
	const int32_t *cfd = (const int32_t *)a->close_fds;
	struct rst_lock *l = (struct rst_lock *)a->locks;

	for (uint32_t i = 0; i < a->nclose_early; i++)
		sys1(NR_close, cfd[i]);
	for (uint32_t i = 0; i < a->nlocks; i++) {
		long r = sys3(NR_fcntl, l[i].fd, 6 /* F_SETLK */, (long)&l[i].fl);
		if (r)
			fail(a, "cannot take again a POSIX lock on fd", (uint64_t)l[i].fd, r);
	}
}

/* ---- ckpt-remap --setenv, --unsetenv ---------------------------------- */

/* Whether [addr, addr + len) is in readable regions of the program. */
static int readable(const struct rst_args *a, uint64_t addr, uint64_t len)
{
	const struct rst_map *m = (const struct rst_map *)a->maps;

	for (uint64_t i = 0; i < a->nmaps && len; i++) {
		if (addr < m[i].start || addr >= m[i].end)
			continue;
		if (!(m[i].prot & PROT_READ))
			return 0;
		if (addr + len <= m[i].end)
			return 1;
		len -= m[i].end - addr;
		addr = m[i].end;
	}
	return !len;
}

/* The length of the program's string at s, -1 if it leaves its memory. */
static int64_t prog_strlen(const struct rst_args *a, uint64_t s)
{
	uint64_t n = 0, ps = a->page_size;

	for (;; n++) {
		if (((s + n) % ps == 0 || n == 0) && !readable(a, s + n, 1))
			return -1;
		if (!*(const char *)(s + n))
			return (int64_t)n;
	}
}

/* The length of a string of the blob's. */
static uint64_t r_strlen(const char *s)
{
	uint64_t n = 0;

	while (s[n])
		n++;
	return n;
}

/* Whether NAME=... or NAME (s) names the variable of the edit e. */
static int same_name(const char *s, const char *e)
{
	for (; *e && *e != '='; s++, e++)
		if (*s != *e)
			return 0;
	return *s == '=' || !*s;
}

/* Whether the program's variable s is one an edit sets or unsets. */
static int edited(const struct rst_args *a, const char *s)
{
	const char *e = (const char *)a->env_edits, *end = e + a->env_edits_len;

	for (; e < end; e += r_strlen(e + 1) + 2)
		if (same_name(s, e + 1))
			return 1;
	return 0;
}

/* The program's environment, as --setenv and --unsetenv change it, made
 * again in a mapping of its own: the strings, then the array environ is
 * pointed at; the mm's env_start and env_end (/proc/PID/environ) are the
 * strings.  Strings that leave the program's memory are dropped. */
static void edit_env(struct rst_args *a)
{
	const uint64_t *old;
	const char *e = (const char *)a->env_edits, *end = e + a->env_edits_len;
	uint64_t n = 0, total = 0, nold = 0, len;
	char *block, *p;
	uint64_t *arr;
	long r;

	if (!a->env_addr)
		return;
	old = (const uint64_t *)*(const uint64_t *)a->env_addr;
	for (; old && readable(a, (uint64_t)(old + nold), 8) && old[nold] && nold < (1u << 20);
	     nold++) {
		int64_t l = prog_strlen(a, old[nold]);
		if (l >= 0 && !edited(a, (const char *)old[nold])) {
			total += (uint64_t)l + 1;
			n++;
		}
	}
	for (const char *x = e; x < end; x += r_strlen(x + 1) + 2)
		if (*x == 's') {
			total += r_strlen(x + 1) + 1;
			n++;
		}
	len = (total + 7) / 8 * 8 + (n + 1) * 8;
	len = (len + a->page_size - 1) / a->page_size * a->page_size;
	r = sys6(NR_mmap, 0, (long)len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r < 0 && r > -4096)
		fail(a, "cannot map the environment of --setenv, bytes", len, r);
	block = p = (char *)r;
	arr = (uint64_t *)(block + (total + 7) / 8 * 8);
	n = 0;
	for (uint64_t i = 0; i < nold; i++) {
		int64_t l = prog_strlen(a, old[i]);
		if (l < 0 || edited(a, (const char *)old[i]))
			continue;
		r_memcpy(p, (const void *)old[i], (uint64_t)l + 1);
		arr[n++] = (uint64_t)p;
		p += l + 1;
	}
	for (const char *x = e; x < end; x += r_strlen(x + 1) + 2)
		if (*x == 's') {
			len = r_strlen(x + 1) + 1;
			r_memcpy(p, x + 1, len);
			arr[n++] = (uint64_t)p;
			p += len;
		}
	arr[n] = 0;
	a->mm.env_start = (uint64_t)block;
	a->mm.env_end = (uint64_t)p;
	*(uint64_t *)a->env_addr = (uint64_t)arr;
}

__attribute__((section(".text.entry"), noreturn, used)) void rst_entry(struct rst_args *a)
{
	const struct rst_range *u = (const struct rst_range *)a->unmap;
	const int32_t *cfd = (const int32_t *)a->close_fds;
	uint64_t sp;

	/* The point of no return.  (ckpt-remap unregistered its rseq area
	 * before it jumped here: the kernel would write into it otherwise.) */
	for (uint64_t i = 0; i < a->nunmap; i++)
		sys2(NR_munmap, u[i].start, u[i].end - u[i].start);
	move_specials(a);
	map_regions(a);
	move_staged(a);
	fill_pages(a);
	aio_positions(a);
	protect_regions(a);
	advise_regions(a);
	edit_env(a);
	restore_process_state(a);
	/* The main thread's own state first, so that threads that start to
	 * run the program find it (its cached tid, for one) already right. */
	sp = restore_thread_state(a, (struct rst_thread *)a->threads);
	a->pending = (int32_t)(a->nthreads - 1);
	for (uint64_t i = 1; i < a->nthreads; i++)
		spawn_thread(a, i);
	queue_signals(a);
	arm_timers(a);
	take_locks(a);
	attrs_last(a);
	tree_ready(a);
	mount_proc(a);
	/* --stop: the whole process stops here, its threads still waiting
	 * for go, until a SIGCONT (or a debugger that attached) lets it on. */
	if (a->flags & RST_F_STOP) {
		sys2(NR_prctl, PR_SET_NAME, ((struct rst_thread *)a->threads)->comm);
		sys2(NR_kill, sys1(NR_getpid, 0), 19 /* SIGSTOP */);
	}
	__atomic_store_n(&a->go, 1, __ATOMIC_RELEASE);
	sys3(NR_futex, &a->go, FUTEX_WAKE_PRIVATE, 0x7fffffff);
	/* Every thread must be off the blob before it goes (and a thread
	 * that fails reports through err_fd, closed only after this). */
	for (;;) {
		int32_t v = __atomic_load_n(&a->pending, __ATOMIC_ACQUIRE);
		if (v == 0)
			break;
		futex_wait_while(a, &a->pending, v);
	}
	for (uint32_t i = a->nclose_early; i < a->nclose; i++)
		sys1(NR_close, cfd[i]);
	/* The program's name, last: until /proc shows it, the process is
	 * still ckpt-remap's restorer, and ckpt-inject's helper waits for it
	 * before it lets a checkpoint freeze the process (lib/member.c). */
	sys2(NR_prctl, PR_SET_NAME, ((struct rst_thread *)a->threads)->comm);

	/* The trampoline unmaps this blob and calls rt_sigreturn; it lives
	 * outside the blob, so that it survives the munmap. */
	__asm__ volatile("mov %0, %%rdi\n\t"
			 "mov %1, %%rsi\n\t"
			 "mov %2, %%rdx\n\t"
			 "jmp *%3\n\t"
			 :
			 : "r"(a->blob_start), "r"(a->blob_len), "r"(sp),
			   "r"(a->tramp + RST_TRAMP_MAIN)
			 : "rdi", "rsi", "rdx", "memory");
	__builtin_unreachable();
}
