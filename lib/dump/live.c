/* live.c: ckpt-dump --live.  Copy the program's memory while it runs, then
 * what it wrote meanwhile, in rounds, and freeze it only for the last one.
 *
 * The writes are seen by the tracker of --track (track.c): a userfaultfd
 * in asynchronous write-protect mode made inside the program (an injected
 * userfaultfd(2), the program stopped a moment for it), over its private
 * anonymous writable memory at that moment (the "areas").  Registering
 * and protecting, and each round's PAGEMAP_SCAN that lists the pages
 * written and protects them again in the same walk, act on the program's
 * memory from here while it runs: a page written after the walk is
 * reported by the next one, and each round reads its pages after its
 * walk, so what a round sends is never older than what the next reports.
 *
 * The stream (ckpt-image(5)): IMG_LIVE_MAGIC, a PRECOPY record of the
 * areas, PRECOPY records of pages (round 0: every page present; then the
 * pages each round found written), then the ordinary image of the frozen
 * program (dump.c, with o->live): its LIVE record lists the pages of the
 * areas it takes from the pre-copy, its PAGES hold every other page.
 *
 * Frozen, one walk over the areas without protecting decides: a page
 * written since the last round, not present (dropped since: a hole), the
 * shared zero page (dropped, then read: a zero page the pre-copy may
 * hold older data for), or in a mapping the tracker does not cover (made
 * or moved since: the kernel reports every page of it written) is read
 * now like any page; every other page of an area that is still private
 * anonymous memory comes from the pre-copy. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "base/base.h"
#include "base/crc32c.h"
#include "dump/live-internal.h"
#include "dump/track-internal.h"
#include "target/target.h"

#define LIVE_FEATURES TRK_FEATURE_WP_ASYNC /* not TRK_FEATURES: not --track's */
#define LIVE_IS_PRESENT TRK_IS_PRESENT
#define LIVE_IS_SWAPPED TRK_IS_SWAPPED
#define LIVE_IS_PFNZERO (1ull << 5)
#define LIVE_BATCH 1024 /* pages in one PRECOPY record at most */
#define LIVE_MAX_ROUNDS 30
#define LIVE_SMALL 2048 /* pages: a round this small is the frozen one */

struct live_dump {
	pid_t pid;
	int uf;	 /* our copy of the tracker */
	int tfd; /* the tracker's fd in the program */
	int pm, memfd, out;
	long ps;
	struct img_run *areas; /* addr, npages */
	size_t nareas;
	uint32_t rounds;
	uint64_t precopied, last;
	struct live_dump_stats st;
	/* Frozen: what the walk decided of the areas, ascending. */
	struct live_span {
		uint64_t addr, end;
		int kind; /* LIVE_SPAN_* */
	} * spans;
	size_t nspans, cap, cursor;
	uint64_t seg_at, kept;
	/* A batch of runs read, for one PRECOPY record. */
	struct img_run runs[LIVE_BATCH];
	uint32_t nruns;
	uint64_t npages;
	unsigned char *buf;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A userfaultfd of the program's own: its writes could not be tracked. */
static int own_userfaultfd(pid_t pid)
{
	char path[64], link[64];
	struct dirent *e;
	int fd = -1;
	DIR *d = opendir(fmt_path(path, sizeof(path), "/proc/%d/fd", pid));

	while (d && fd < 0 && (e = readdir(d))) {
		ssize_t n;
		if (e->d_name[0] == '.')
			continue;
		n = readlinkat(dirfd(d), e->d_name, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = 0;
			if (!strcmp(link, "anon_inode:[userfaultfd]"))
				fd = atoi(e->d_name);
		}
	}
	if (d)
		closedir(d);
	return fd;
}

static int has_seccomp(pid_t pid)
{
	char path[64], line[256];
	int mode = 0;
	FILE *f = fopen(fmt_path(path, sizeof(path), "/proc/%d/status", pid), "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Seccomp: %d", &mode) == 1)
			break;
	if (f)
		fclose(f);
	return mode != 0;
}

/* Private anonymous writable memory, but the main stack (which grows). */
static int is_area(const struct proc_map *m)
{
	return !m->shared && (m->prot & PROT_WRITE) && (m->prot & PROT_READ) && m->ino == 0 &&
	       (!m->path[0] || !strcmp(m->path, "[heap]") || !strncmp(m->path, "[anon:", 6));
}

/* Stop the program a moment: make the tracker inside it. */
static int arm(struct live_dump *lv, const struct proc_map *maps, size_t n)
{
	struct dump_target t;
	uint64_t gadget = 0;
	int rc = -1;

	for (size_t i = 0; i < n; i++)
		if (!strcmp(maps[i].path, "[vdso]") &&
		    inj_find_gadget(lv->pid, maps[i].start, maps[i].end, &gadget))
			return -1;
	if (!gadget) {
		err_set("pid %d: no [vdso] to run system calls from", lv->pid);
		return -1;
	}
	if (dump_seize(lv->pid, &t))
		return -1;
	lv->tfd = track_place(lv->pid, gadget, -1);
	if (lv->tfd >= 0)
		lv->uf = track_take_fd(lv->pid, lv->tfd);
	rc = lv->uf >= 0 ? 0 : -1;
	if (rc)
		err_set("pid %d: --live cannot make a userfaultfd(2) in it (%s)", lv->pid,
			lv->tfd < 0 ? "refused" : "pidfd_getfd refused");
	dump_release(&t, DUMP_RUN);
	return rc;
}

/* Write the batch as one PRECOPY record. */
static int flush(struct live_dump *lv)
{
	struct img_precopy d = {.what = IMG_PRECOPY_PAGES, .n = lv->nruns, .npages = lv->npages};
	struct img_rec rec = {.type = IMG_REC_PRECOPY};
	uint64_t rlen = (uint64_t)lv->nruns * sizeof(lv->runs[0]), dlen = lv->npages * lv->ps;
	struct iovec v[4];
	uint32_t crc;

	if (!lv->nruns)
		return 0;
	d.data_crc = img_crc(0, lv->buf, dlen);
	rec.len = sizeof(d) + rlen + dlen;
	crc = img_crc(0, &rec, sizeof(rec));
	crc = img_crc(crc, &d, sizeof(d));
	rec.crc = img_crc(crc, lv->runs, rlen);
	v[0] = (struct iovec){&rec, sizeof(rec)};
	v[1] = (struct iovec){&d, sizeof(d)};
	v[2] = (struct iovec){lv->runs, rlen};
	v[3] = (struct iovec){lv->buf, dlen};
	for (int i = 0; i < 4; i++)
		if (write_all(lv->out, v[i].iov_base, v[i].iov_len)) {
			err_sys("cannot write the live stream");
			return -1;
		}
	lv->precopied += lv->npages;
	lv->nruns = 0;
	lv->npages = 0;
	return 0;
}

/* Read [addr, addr + npages) into the batch, as far as it is still mapped
 * (a page unmapped since is in no region of the frozen image, or in a new
 * mapping the tracker does not cover: read again then). */
static int add_run(struct live_dump *lv, uint64_t addr, uint64_t npages)
{
	while (npages) {
		uint64_t k = npages, done;
		unsigned char *p;
		ssize_t got;

		if (lv->npages == LIVE_BATCH || lv->nruns == LIVE_BATCH)
			if (flush(lv))
				return -1;
		if (k > LIVE_BATCH - lv->npages)
			k = LIVE_BATCH - lv->npages;
		p = lv->buf + lv->npages * lv->ps;
		{
			struct iovec l = {p, k * lv->ps}, r = {(void *)addr, k * lv->ps};
			got = process_vm_readv(lv->pid, &l, 1, &r, 1, 0);
		}
		/* Unreadable protection (PROT_NONE for now): as a debugger reads. */
		if (got < (ssize_t)(k * lv->ps))
			got = pread(lv->memfd, p, k * lv->ps, addr);
		done = got > 0 ? (uint64_t)got / lv->ps : 0;
		if (done) {
			lv->runs[lv->nruns++] = (struct img_run){addr, done};
			lv->npages += done;
		}
		if (done < k)
			return 0; /* the rest is gone */
		addr += k * lv->ps;
		npages -= k;
	}
	return 0;
}

/* PAGEMAP_SCAN of [start, end): the ranges whose categories match, each
 * given to add_run (or, frozen, to cb). */
static int scan(struct live_dump *lv, uint64_t start, uint64_t end, uint64_t flags,
		uint64_t inverted, uint64_t mask, uint64_t anyof, uint64_t *pages,
		int (*cb)(struct live_dump *, uint64_t, uint64_t, uint64_t))
{
	struct trk_region vec[512];
	struct trk_scan a = {.size = sizeof(a),
			     .flags = flags,
			     .start = start,
			     .end = end,
			     .vec = (uint64_t)vec,
			     .vec_len = 512,
			     .category_inverted = inverted,
			     .category_mask = mask,
			     .category_anyof_mask = anyof,
			     .return_mask = mask | anyof | LIVE_IS_SWAPPED};

	while (a.start < end) {
		long n = ioctl(lv->pm, TRK_PAGEMAP_SCAN, &a);
		if (n < 0) {
			err_sys("pid %d: PAGEMAP_SCAN of %#llx-%#llx", lv->pid,
				(unsigned long long)a.start, (unsigned long long)end);
			return -1;
		}
		for (long i = 0; i < n; i++) {
			uint64_t np = (vec[i].end - vec[i].start) / lv->ps;
			*pages += np;
			if (cb ? cb(lv, vec[i].start, np, vec[i].categories)
			       : add_run(lv, vec[i].start, np))
				return -1;
		}
		if (a.walk_end <= a.start)
			break;
		a.start = a.walk_end;
	}
	return 0;
}

static int write_areas(struct live_dump *lv)
{
	struct img_precopy d = {.what = IMG_PRECOPY_AREAS, .n = lv->nareas};
	struct iovec v[2] = {{&d, sizeof(d)}, {lv->areas, lv->nareas * sizeof(*lv->areas)}};
	struct img_rec rec = {.type = IMG_REC_PRECOPY, .len = v[0].iov_len + v[1].iov_len};
	uint32_t crc = img_crc(0, &rec, sizeof(rec));

	crc = img_crc(crc, &d, sizeof(d));
	rec.crc = img_crc(crc, lv->areas, v[1].iov_len);
	if (write_all(lv->out, IMG_LIVE_MAGIC, 8) || write_all(lv->out, &rec, sizeof(rec)) ||
	    write_all(lv->out, &d, sizeof(d)) || write_all(lv->out, lv->areas, v[1].iov_len)) {
		err_sys("cannot write the live stream");
		return -1;
	}
	return 0;
}

static int cancelled(const struct dump_opts *o)
{
	if (o->cancel && *o->cancel) {
		err_set("interrupted by a signal");
		return 1;
	}
	return 0;
}

/* One round: what the tracker saw written since the last (protected
 * again in the same walk), read and sent.  Round 0: every page present. */
static int round_once(struct live_dump *lv, uint64_t *pages)
{
	*pages = 0;
	for (size_t i = 0; i < lv->nareas; i++) {
		uint64_t s = lv->areas[i].addr, e = s + lv->areas[i].npages * lv->ps;
		int rc =
		    lv->rounds == 0
			? scan(lv, s, e, 0, 0, 0, LIVE_IS_PRESENT | LIVE_IS_SWAPPED, pages, NULL)
			: scan(lv, s, e, TRK_WP_MATCHING, 0, TRK_IS_WRITTEN, 0, pages, NULL);
		if (rc)
			return -1;
	}
	lv->rounds++;
	return flush(lv);
}

void dump_live_free(struct live_dump *lv)
{
	if (!lv)
		return;
	if (lv->uf >= 0)
		close(lv->uf);
	if (lv->pm >= 0)
		close(lv->pm);
	if (lv->memfd >= 0)
		close(lv->memfd);
	free(lv->areas);
	free(lv->spans);
	free(lv->buf);
	free(lv);
}

int dump_live_precopy(pid_t pid, int out, const struct dump_opts *o, struct live_dump **lvp)
{
	struct live_dump *lv = calloc(1, sizeof(*lv));
	struct uffdio_api api = {.api = UFFD_API, .features = LIVE_FEATURES};
	struct proc_map *maps = NULL;
	uint64_t pages, prev = UINT64_MAX;
	char path[64];
	size_t n = 0;
	double t0 = now_s();
	int fd;

	*lvp = NULL;
	if (!lv || !(lv->buf = malloc(LIVE_BATCH * sysconf(_SC_PAGESIZE)))) {
		free(lv);
		err_set("out of memory");
		return -1;
	}
	lv->pid = pid;
	lv->uf = lv->tfd = lv->pm = lv->memfd = -1;
	lv->out = out;
	lv->ps = sysconf(_SC_PAGESIZE);
	if ((fd = own_userfaultfd(pid)) >= 0) {
		err_set(
		    "pid %d: fd %d is a userfaultfd of its own: --live (write tracking) of such a "
		    "program is not supported",
		    pid, fd);
		goto fail;
	}
	if (has_seccomp(pid)) {
		err_set(
		    "pid %d: it has seccomp filters, which could kill it for the userfaultfd(2) "
		    "--live injects; not supported",
		    pid);
		goto fail;
	}
	if (proc_read_layout(pid, &maps, &n) || arm(lv, maps, n))
		goto fail;
	if (ioctl(lv->uf, UFFDIO_API, &api)) {
		err_set(
		    "pid %d: --live needs asynchronous write-protect userfaultfd "
		    "(UFFD_FEATURE_WP_ASYNC, Linux 6.7+), which this kernel lacks; not supported",
		    pid);
		goto fail;
	}
	if (!(lv->areas = calloc(n + 1, sizeof(*lv->areas)))) {
		err_set("out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
		if (is_area(&maps[i]) && track_protect(lv->uf, maps[i].start, maps[i].end) == 0)
			lv->areas[lv->nareas++] =
			    (struct img_run){maps[i].start, (maps[i].end - maps[i].start) / lv->ps};
	lv->pm = proc_open_pagemap(pid);
	lv->memfd = open(fmt_path(path, sizeof(path), "/proc/%d/mem", pid), O_RDONLY | O_CLOEXEC);
	if (lv->pm < 0 || lv->memfd < 0) {
		if (lv->memfd < 0)
			err_sys("cannot open %s", path);
		goto fail;
	}
	/* The kernel has PAGEMAP_SCAN (Linux 6.7+) before a byte is sent. */
	{
		struct trk_scan a = {.size = sizeof(a), .start = 0, .end = 0};
		if (ioctl(lv->pm, TRK_PAGEMAP_SCAN, &a) < 0 && errno == ENOTTY) {
			err_set("pid %d: --live needs the PAGEMAP_SCAN ioctl (Linux 6.7+), which "
				"this kernel lacks; not supported",
				pid);
			goto fail;
		}
	}
	if (write_areas(lv))
		goto fail;
	/* Rounds until one is small, or stops shrinking, or too many. */
	for (;;) {
		if (cancelled(o) || round_once(lv, &pages))
			goto fail;
		lv->st.round_pages[lv->rounds - 1 < LIVE_STATS_ROUNDS ? lv->rounds - 1
								      : LIVE_STATS_ROUNDS - 1] =
		    pages;
		if (lv->rounds > 1 && (pages <= LIVE_SMALL || pages >= prev))
			break;
		if (lv->rounds >= LIVE_MAX_ROUNDS)
			break;
		prev = lv->rounds > 1 ? pages : UINT64_MAX;
	}
	lv->st.rounds = lv->rounds;
	lv->st.precopied = lv->precopied;
	lv->st.running_s = now_s() - t0;
	proc_free_maps(maps, n);
	*lvp = lv;
	return 0;
fail:
	proc_free_maps(maps, n);
	dump_live_free(lv);
	return -1;
}

/* ---- frozen: which pages the pre-copy gives ----------------------------- */

static int add_span(struct live_dump *lv, uint64_t addr, uint64_t end, int kind)
{
	if (lv->nspans == lv->cap) {
		size_t cap = lv->cap ? 2 * lv->cap : 1024;
		void *p = realloc(lv->spans, cap * sizeof(*lv->spans));
		if (!p) {
			err_set("out of memory");
			return -1;
		}
		lv->spans = p;
		lv->cap = cap;
	}
	lv->spans[lv->nspans++] = (struct live_span){addr, end, kind};
	if (kind == LIVE_SPAN_KEPT)
		lv->kept++;
	return 0;
}

/* The walk's ranges of the segment being decided come in order: what
 * lies between them (from lv->seg_at) is kept; each is read now if the
 * page holds data (present or swapped, not the zero page), else a hole. */
static int dirty_range(struct live_dump *lv, uint64_t addr, uint64_t npages, uint64_t cat)
{
	int read = (cat & (LIVE_IS_PRESENT | LIVE_IS_SWAPPED)) && !(cat & LIVE_IS_PFNZERO);

	if (addr > lv->seg_at && add_span(lv, lv->seg_at, addr, LIVE_SPAN_KEPT))
		return -1;
	lv->seg_at = addr + npages * lv->ps;
	return add_span(lv, addr, lv->seg_at, read ? LIVE_SPAN_READ : LIVE_SPAN_HOLE);
}

/* A region of the frozen image the pre-copy may give pages of. */
static int stageable(const struct region *r)
{
	return (r->d.kind == IMG_RGN_ANON || r->d.kind == IMG_RGN_HEAP) &&
	       !(r->d.flags &
		 (IMG_RGN_SHARED | IMG_RGN_GUARD | IMG_RGN_GROWSDOWN | IMG_RGN_HUGETLB));
}

int dump_live_begin(struct live_dump *lv, struct image *im)
{
	if (!(im->live = calloc(1, sizeof(*im->live)))) {
		err_set("out of memory");
		return -1;
	}
	im->live->tracker = lv->tfd;
	return 0;
}

int dump_live_final(struct live_dump *lv, uint64_t gadget, struct image *im)
{
	double t0 = now_s();
	uint64_t dirty = 0;
	size_t a = 0;

	for (size_t i = 0; i < im->nregions; i++) {
		const struct region *r = &im->regions[i];

		if (!stageable(r))
			continue;
		while (a < lv->nareas &&
		       lv->areas[a].addr + lv->areas[a].npages * lv->ps <= r->d.start)
			a++;
		for (size_t k = a; k < lv->nareas && lv->areas[k].addr < r->d.end; k++) {
			uint64_t s = lv->areas[k].addr, e = s + lv->areas[k].npages * lv->ps;
			if (s < r->d.start)
				s = r->d.start;
			if (e > r->d.end)
				e = r->d.end;
			if (s >= e)
				continue;
			/* Written, or not present, or the zero page: read now. */
			lv->seg_at = s;
			if (scan(lv, s, e, 0, LIVE_IS_PRESENT, 0,
				 TRK_IS_WRITTEN | LIVE_IS_PRESENT | LIVE_IS_PFNZERO, &dirty,
				 dirty_range) ||
			    (e > lv->seg_at && add_span(lv, lv->seg_at, e, LIVE_SPAN_KEPT)))
				return -1;
		}
	}
	im->live->runs = malloc((lv->kept ? lv->kept : 1) * sizeof(*im->live->runs));
	if (!im->live->runs) {
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < lv->nspans; i++) {
		const struct live_span *sp = &lv->spans[i];
		if (sp->kind != LIVE_SPAN_KEPT)
			continue;
		im->live->runs[im->live->d.nruns++] =
		    (struct img_run){sp->addr, (sp->end - sp->addr) / lv->ps};
		im->live->d.npages += (sp->end - sp->addr) / lv->ps;
	}
	im->live->d.rounds = lv->rounds;
	im->live->d.precopied = lv->precopied;
	lv->st.final_pages = dirty;
	lv->st.kept_pages = im->live->d.npages;
	/* The tracker goes: the program pays no more faults for it. */
	{
		struct inj c;
		uint64_t args[6] = {(uint64_t)lv->tfd};
		int64_t ret;
		if (inj_prepare(&c, lv->pid, gadget) == 0) {
			if (inj_syscall(&c, SYS_close, args, &ret))
				ret = -1;
			if (inj_cure(&c))
				return -1;
		}
	}
	lv->st.scan_s = now_s() - t0;
	return 0;
}

uint64_t dump_live_span(struct live_dump *lv, uint64_t addr, int *kind)
{
	size_t lo = 0, hi = lv->nspans;

	if (lv->cursor < lv->nspans && lv->spans[lv->cursor].addr <= addr)
		lo = lv->cursor;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (lv->spans[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	lv->cursor = lo;
	if (lo < lv->nspans && lv->spans[lo].addr <= addr) {
		*kind = lv->spans[lo].kind;
		return lv->spans[lo].end;
	}
	*kind = LIVE_SPAN_OTHER;
	return lo < lv->nspans ? lv->spans[lo].addr : UINT64_MAX;
}

const struct live_dump_stats *dump_live_stats(const struct live_dump *lv)
{
	return &lv->st;
}
