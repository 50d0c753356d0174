/* track.c: which pages a program wrote since its last dump, without
 * soft-dirty bits: a userfaultfd in asynchronous write-protect mode
 * (UFFD_FEATURE_WP_ASYNC: the kernel resolves each first write itself and
 * the page's PTE loses its protection) read and re-protected by the
 * PAGEMAP_SCAN ioctl (PAGE_IS_WRITTEN, PM_SCAN_WP_MATCHING), Linux 6.7+.
 *
 * The userfaultfd is made inside the program (an injected userfaultfd(2):
 * it is the program's mm that it tracks) and stays there, at a high fd
 * with O_CLOEXEC, for the next dump: nothing else could keep it alive once
 * ckpt-dump has gone.  We work on a copy taken with pidfd_getfd; its
 * ioctls act on the mm of the process that made it, whoever calls them.
 * The image records the fd (TRACK), and each dump moves the tracker to a
 * new one: only a dump against the latest image finds it where its parent
 * says, so a dump against an older image, or after a dump that failed
 * half-way, hashes every page as without tracking. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "base/base.h"
#include "dump/track-internal.h"
#include "incr/incr.h"
#include "target/target.h"

static int is_uffd(pid_t pid, int fd)
{
	char path[64], link[64];
	ssize_t n = readlink(fmt_path(path, sizeof(path), "/proc/%d/fd/%d", pid, fd), link,
			     sizeof(link) - 1);

	if (n < 0)
		return 0;
	link[n] = 0;
	return !strcmp(link, "anon_inode:[userfaultfd]");
}

/* Whether fd of pid is a tracker ckpt-dump made: a userfaultfd with our
 * features exactly (fdinfo's "API:\t<api>:<features>:<ioctls>"). */
static int is_ours(pid_t pid, int fd)
{
	char path[64], buf[256];
	unsigned long long api, features;
	const char *p;
	ssize_t n;
	int f;

	if (!is_uffd(pid, fd))
		return 0;
	f = open(fmt_path(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd), O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return 0;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strstr(buf, "API:\t");
	return p && sscanf(p, "API:\t%llx:%llx:", &api, &features) == 2 &&
	       (features & ~(TRK_INITIALIZED | TRK_FEATURE_WP_UNPOPULATED)) == TRK_FEATURES;
}

int track_old_fd(pid_t pid, const struct dump_opts *o)
{
	int fd = o->incr ? incr_dump_track_fd(o->incr) : -1;
	char path[64];
	struct dirent *e;
	DIR *d;

	if (fd >= 0 && is_ours(pid, fd))
		return fd;
	/* Elsewhere: a dump against an image older than the last. */
	fd = -1;
	d = opendir(fmt_path(path, sizeof(path), "/proc/%d/fd", pid));
	while (d && fd < 0 && (e = readdir(d)))
		if (e->d_name[0] != '.' && is_ours(pid, atoi(e->d_name)))
			fd = atoi(e->d_name);
	if (d)
		closedir(d);
	return fd;
}

/* A private anonymous region the tracker covers. */
static int trackable(const struct region *r)
{
	return (r->d.kind == IMG_RGN_ANON || r->d.kind == IMG_RGN_HEAP ||
		r->d.kind == IMG_RGN_STACK) &&
	       !(r->d.flags & (IMG_RGN_SHARED | IMG_RGN_GUARD)) && (r->d.prot & PROT_WRITE);
}

int track_take_fd(pid_t pid, int fd)
{
	int pfd = syscall(SYS_pidfd_open, pid, 0), uf;

	if (pfd < 0)
		return -1;
	uf = syscall(SYS_pidfd_getfd, pfd, fd, 0);
	close(pfd);
	return uf;
}

int track_place(pid_t pid, uint64_t gadget, int fd)
{
	struct rlimit rl;
	uint64_t a[6] = {0};
	unsigned int rnd = 0;
	int64_t ret, nfd = -1;
	struct inj c;
	long lim;

	if (prlimit(pid, RLIMIT_NOFILE, NULL, &rl))
		return -1;
	lim = rl.rlim_cur > 4096 ? 4096 : (long)rl.rlim_cur;
	if (lim < 64 || getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -1;
	if (inj_prepare(&c, pid, gadget))
		return -1;
	if (fd < 0) {
		a[0] = O_CLOEXEC | UFFD_USER_MODE_ONLY;
		if (inj_syscall(&c, SYS_userfaultfd, a, &ret))
			goto out;
		if (ret < 0)
			goto out;
		fd = ret;
	}
	a[0] = fd;
	a[1] = F_DUPFD_CLOEXEC;
	a[2] = lim / 2 + rnd % (lim / 2);
	if (inj_syscall(&c, SYS_fcntl, a, &ret) == 0 && ret >= 0)
		nfd = ret;
	memset(a, 0, sizeof(a));
	a[0] = fd;
	if (inj_syscall(&c, SYS_close, a, &ret))
		nfd = -1;
out:
	if (inj_cure(&c))
		return -1;
	return nfd;
}

static int add_run(struct track_run **runs, size_t *n, size_t *cap, uint64_t start, uint64_t end)
{
	if (*n && (*runs)[*n - 1].end == start) {
		(*runs)[*n - 1].end = end;
		return 0;
	}
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 256;
		void *p = realloc(*runs, c * sizeof(**runs));
		if (!p) {
			err_set("out of memory");
			return -1;
		}
		*runs = p;
		*cap = c;
	}
	(*runs)[(*n)++] = (struct track_run){start, end};
	return 0;
}

static int add_written(struct track *tr, uint64_t start, uint64_t end)
{
	return add_run(&tr->written, &tr->nwritten, &tr->cap, start, end);
}

/* The pages of [start, end) neither present nor swapped, into tr->absent:
 * one walk of the page tables instead of a pagemap entry read per page.
 * 0, or -1 (then the pagemap is read as before). */
static int scan_absent(struct track *tr, int pm, uint64_t start, uint64_t end)
{
	struct trk_region vec[512];
	struct trk_scan a = {.size = sizeof(a),
			     .start = start,
			     .end = end,
			     .vec = (uint64_t)vec,
			     .vec_len = 512,
			     .category_inverted = TRK_IS_PRESENT | TRK_IS_SWAPPED,
			     .category_mask = TRK_IS_PRESENT | TRK_IS_SWAPPED,
			     .return_mask = TRK_IS_PRESENT | TRK_IS_SWAPPED};

	while (a.start < end) {
		long n = ioctl(pm, TRK_PAGEMAP_SCAN, &a);
		if (n < 0)
			return -1;
		for (long i = 0; i < n; i++)
			if (add_run(&tr->absent, &tr->nabsent, &tr->acap, vec[i].start, vec[i].end))
				return -1;
		if (a.walk_end <= a.start)
			return -1;
		a.start = a.walk_end;
	}
	return 0;
}

/* The first run of runs[0..n) that ends after addr. */
static size_t run_after(const struct track_run *runs, size_t n, uint64_t addr)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (runs[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint64_t track_span(const struct track *tr, uint64_t addr, uint64_t end, int *kind)
{
	size_t a = run_after(tr->absent, tr->nabsent, addr);
	size_t w = run_after(tr->written, tr->nwritten, addr);
	uint64_t na = a < tr->nabsent ? tr->absent[a].start : UINT64_MAX;
	uint64_t nw = w < tr->nwritten ? tr->written[w].start : UINT64_MAX;
	uint64_t e;

	if (na <= addr) {
		*kind = TRACK_ABSENT;
		e = tr->absent[a].end;
	} else if (nw <= addr) {
		*kind = TRACK_WRITTEN;
		e = tr->written[w].end < na ? tr->written[w].end : na;
	} else {
		*kind = TRACK_UNWRITTEN;
		e = nw < na ? nw : na;
	}
	return e < end ? e : end;
}

/* Read and clear what the tracker saw written in [start, end): 1 if it
 * did, 0 if the range is not under a WP_ASYNC tracker, -1 on failure. */
static int scan(struct track *tr, int pm, uint64_t start, uint64_t end, uint64_t *pages)
{
	struct trk_region vec[512];
	struct trk_scan a = {.size = sizeof(a),
			     .flags = TRK_WP_MATCHING | TRK_CHECK_WPASYNC,
			     .start = start,
			     .end = end,
			     .vec = (uint64_t)vec,
			     .vec_len = 512,
			     .category_mask = TRK_IS_WRITTEN,
			     .return_mask = TRK_IS_WRITTEN};

	while (a.start < end) {
		long n = ioctl(pm, TRK_PAGEMAP_SCAN, &a);
		if (n < 0)
			return errno == EPERM || errno == EINVAL || errno == ENOTTY ? 0 : -1;
		for (long i = 0; i < n; i++) {
			if (add_written(tr, vec[i].start, vec[i].end))
				return -1;
			*pages += (vec[i].end - vec[i].start) / INCR_PAGE;
		}
		if (a.walk_end <= a.start)
			return -1;
		a.start = a.walk_end;
	}
	return 1;
}

int track_protect(int uf, uint64_t start, uint64_t end)
{
	struct uffdio_register reg = {.range = {start, end - start},
				      .mode = UFFDIO_REGISTER_MODE_WP};
	struct uffdio_writeprotect wp = {.range = {start, end - start},
					 .mode = UFFDIO_WRITEPROTECT_MODE_WP};

	return ioctl(uf, UFFDIO_REGISTER, &reg) || ioctl(uf, UFFDIO_WRITEPROTECT, &wp) ? -1 : 0;
}

int track_prepare(const struct dump_target *tg, uint64_t gadget, struct image *im,
		  const struct dump_opts *o, struct track *tr)
{
	int old = im->track ? im->track->fd : -1, tfd, pm = -1;
	uint64_t written = 0;
	int tracked_any = 0;
	/* The tracker is where the parent's dump left it: it counts the
	 * writes since that dump. */
	int current = old >= 0 && o->incr && old == incr_dump_track_fd(o->incr);

	memset(tr, 0, sizeof(*tr));
	tr->uf = -1;
	if (old < 0 && !o->track)
		return 0;
	if (!im->track && !(im->track = calloc(1, sizeof(*im->track)))) {
		err_set("out of memory");
		return -1;
	}
	im->track->how = o->incr ? IMG_TRACK_HASHED : IMG_TRACK_FULL;
	/* No system call injected into a program with seccomp filters: one
	 * could kill it.  A tracker no dump has read since is right for the
	 * next one still (it reports a superset of what changes after this
	 * dump): it stays where it is, and the image says so. */
	if (im->attrs && im->attrs->d.seccomp != IMG_SECCOMP_NONE) {
		im->track->fd = old;
		warnx("pid %d: it has seccomp filters: no write tracker armed or read (an injected "
		      "system call could kill it): pages compared by their hashes",
		      tg->pid);
		return 0;
	}
	im->track->fd = -1;
	tr->tracked = calloc(im->nregions + 1, 1);
	tr->fast = calloc(im->nregions + 1, 1);
	if (!tr->tracked || !tr->fast) {
		err_set("out of memory");
		return -1;
	}
	tfd = track_place(tg->pid, gadget, old);
	if (tfd < 0) {
		warnx("pid %d: no write tracker (%s): pages compared by their hashes", tg->pid,
		    old < 0 ? "userfaultfd(2) refused" : "could not move it");
		return 0;
	}
	tr->uf = track_take_fd(tg->pid, tfd);
	if (tr->uf < 0)
		goto drop;
	if (old < 0) {
		struct uffdio_api api = {.api = UFFD_API, .features = TRK_FEATURES};
		if (ioctl(tr->uf, UFFDIO_API, &api)) {
			warnx("pid %d: the kernel has no asynchronous write-protect userfaultfd "
			    "(Linux 6.7+): pages compared by their hashes",
			    tg->pid);
			goto drop;
		}
	}
	im->track->fd = tfd;
	pm = proc_open_pagemap(tg->pid);
	if (pm < 0)
		goto drop;
	for (size_t i = 0; i < im->nregions; i++) {
		const struct region *r = &im->regions[i];
		int rc = 0;

		if (!trackable(r))
			continue;
		if (old >= 0) {
			/* A tracker not where the parent left it counts its
			 * writes since another dump: read, protect again and
			 * forget (the pages are compared by their hashes). */
			rc = scan(tr, pm, r->d.start, r->d.end, &written);
			if (rc < 0) {
				err_sys("pid %d: PAGEMAP_SCAN of %#llx-%#llx", tg->pid,
					(unsigned long long)r->d.start,
					(unsigned long long)r->d.end);
				close(pm);
				return -1;
			}
			tr->tracked[i] = rc && current;
			tracked_any |= tr->tracked[i];
			tr->fast[i] = tr->tracked[i] && scan_absent(tr, pm, r->d.start, r->d.end) == 0;
		}
		/* New since, or the first time: under the tracker from now on
		 * (a region the program registered itself stays untracked). */
		if (!rc)
			(void)track_protect(tr->uf, r->d.start, r->d.end);
	}
	close(pm);
	if (tracked_any) {
		im->track->how = IMG_TRACK_WRITTEN;
		im->track->written = written;
	}
	return 0;
drop:
	if (pm >= 0)
		close(pm);
	if (tr->uf >= 0)
		close(tr->uf);
	tr->uf = -1;
	im->track->fd = -1;
	return 0;
}

int track_later(struct track *tr, uint64_t start, uint64_t end)
{
	return add_run(&tr->later, &tr->nlater, &tr->lcap, start, end);
}

int track_take_later(struct track *tr, struct incr_dump *incr)
{
	for (size_t i = 0; i < tr->nlater; i++)
		if (incr_dump_same(incr, tr->later[i].start, tr->later[i].end))
			return -1;
	return 0;
}

int track_unwritten(struct track *tr, size_t i, uint64_t addr)
{
	if (!tr || !tr->tracked || !tr->tracked[i])
		return 0;
	if (tr->cursor >= tr->nwritten || tr->written[tr->cursor].start > addr) {
		/* Back to the first run that might hold it. */
		size_t lo = 0, hi = tr->nwritten;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (tr->written[mid].end <= addr)
				lo = mid + 1;
			else
				hi = mid;
		}
		tr->cursor = lo;
	}
	while (tr->cursor < tr->nwritten && tr->written[tr->cursor].end <= addr)
		tr->cursor++;
	return !(tr->cursor < tr->nwritten && tr->written[tr->cursor].start <= addr);
}

/* A run of pages the dump stored: unprotected (incr_dump_stored). */
static int unprotect(void *arg, uint64_t start, uint64_t end)
{
	struct uffdio_writeprotect wp = {.range = {start, end - start}};

	/* A range the tracker does not cover refuses: nothing to undo. */
	(void)ioctl(*(int *)arg, UFFDIO_WRITEPROTECT, &wp);
	return 0;
}

void track_keep_hot(struct track *tr, const struct incr_dump *incr)
{
	if (tr->uf >= 0)
		(void)incr_dump_stored(incr, TRACK_HOT_RUN, unprotect, &tr->uf);
}

void track_free(struct track *tr)
{
	if (tr->uf >= 0)
		close(tr->uf);
	free(tr->tracked);
	free(tr->fast);
	free(tr->absent);
	free(tr->later);
	free(tr->written);
	memset(tr, 0, sizeof(*tr));
	tr->uf = -1;
}
