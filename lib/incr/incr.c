/* incr.c: incremental images: the page hash, the PARENT, HASHES and REUSE
 * records, and what ckpt-dump --parent does with them.
 *
 * The comparison is by content, page by page at the same address: this
 * kernel has no soft-dirty bits (CONFIG_MEM_SOFT_DIRTY off), and a
 * restored process, which has the same addresses but is a new process,
 * can be dumped against the image it came from.  A page is left out only
 * when the parent gives the same address the same 128-bit hash; the keyed
 * hash makes a changed page that hashes the same a 2^-120 or so event
 * that the program cannot aim at (it never sees the key). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "incr/incr.h"

_Static_assert(sizeof(struct img_parent) == 72, "img_parent layout");
_Static_assert(sizeof(struct img_pagelist) == 16, "img_pagelist layout");

/* ---- the page hash ----------------------------------------------------- */

static uint64_t fmix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The key words: splitmix64 of both halves of the 128-bit key. */
void incr_key_expand(struct incr_key *k, const uint64_t seed[2])
{
	for (uint64_t i = 0; i < INCR_KEY_WORDS; i++)
		k->k[i] = fmix64(seed[0] + (i + 1) * 0x9e3779b97f4a7c15ull) ^
			  fmix64(seed[1] + (i + 1) * 0xd1b54a32d192ed03ull);
}

/* NH over the page's 512 little-endian words m with key words k: the sum
 * of (m[2j] + k[2j]) * (m[2j+1] + k[2j+1]), additions mod 2^64, products
 * and sum mod 2^128.  Two different pages collide with probability at
 * most 2^-64 over the key (Black et al., UMAC).  A second NH with the key
 * shifted by two words (UMAC's Toeplitz construction) is independent of
 * the first; each 128-bit sum is folded to 64 bits by a bijective mix of
 * its high half, and the two 64-bit halves are the page's hash.  18 GB/s
 * on one core here: hashing costs a dump a twentieth of reading memory. */
void incr_hash_page(const struct incr_key *key, const void *page, uint64_t out[2])
{
	const uint64_t *m = page;
	const uint64_t *k = key->k;
	unsigned __int128 a0 = 0, a1 = 0, b0 = 0, b1 = 0;

	for (int j = 0; j < INCR_PAGE / 8; j += 4) {
		a0 += (unsigned __int128)(m[j] + k[j]) * (m[j + 1] + k[j + 1]);
		b0 += (unsigned __int128)(m[j] + k[j + 2]) * (m[j + 1] + k[j + 3]);
		a1 += (unsigned __int128)(m[j + 2] + k[j + 2]) * (m[j + 3] + k[j + 3]);
		b1 += (unsigned __int128)(m[j + 2] + k[j + 4]) * (m[j + 3] + k[j + 5]);
	}
	a0 += a1;
	b0 += b1;
	out[0] = (uint64_t)a0 ^ fmix64((uint64_t)(a0 >> 64) ^ k[0]);
	out[1] = (uint64_t)b0 ^ fmix64((uint64_t)(b0 >> 64) ^ k[1]);
}

/* ---- PARENT ------------------------------------------------------------ */

/* What names an image for its children: its header alone would not do
 * (two dumps in the same second on one host have the same), so the fixed
 * parts of its PROC, THREAD and REGION records too, which hold its pid,
 * registers and layout. */
uint32_t incr_identity(const struct image *im)
{
	uint32_t crc = img_crc(0, &im->hdr, sizeof(im->hdr));

	crc = img_crc(crc, &im->proc, sizeof(im->proc));
	for (size_t i = 0; i < im->nthreads; i++)
		crc = img_crc(crc, &im->threads[i].d, sizeof(im->threads[i].d));
	for (size_t i = 0; i < im->nregions; i++)
		crc = img_crc(crc, &im->regions[i].d, sizeof(im->regions[i].d));
	return crc;
}

/* ---- HASHES and REUSE -------------------------------------------------- */

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 64;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * size);
	if (!q) {
		err_set("out of memory");
		return -1;
	}
	*p = q;
	*cap = n;
	return 0;
}

int incr_read_list(struct run_list *l, uint32_t type, const void *buf, uint64_t len, int32_t pid,
		   uint64_t *end)
{
	const char *name = type == IMG_REC_HASHES ? "HASHES" : "REUSE";
	const struct img_run *run = (const struct img_run *)((const char *)buf + 16);
	struct img_pagelist d;
	uint64_t sum = 0, want;

	if (len < sizeof(d)) {
		err_set("%s record: too short", name);
		return -1;
	}
	memcpy(&d, buf, sizeof(d));
	if (d.nruns == 0 || d.nruns > INCR_MAX_RUNS || d.npages == 0 ||
	    (type == IMG_REC_HASHES && d.npages > INCR_MAX_PAGES) || d.npages > (1ull << 40)) {
		err_set("%s record: bad counts (%u runs, %llu pages)", name, d.nruns,
			(unsigned long long)d.npages);
		return -1;
	}
	/* One process per image for now; the pid keys the lists of each
	 * process of a tree. */
	if (d.pid != pid) {
		err_set("%s record: pid %d is not the image's process (%d)", name, d.pid, pid);
		return -1;
	}
	want = sizeof(d) + (uint64_t)d.nruns * sizeof(*run) +
	       (type == IMG_REC_HASHES ? d.npages * 16 : 0);
	if (len != want) {
		err_set("%s record: length %llu, not %llu", name, (unsigned long long)len,
			(unsigned long long)want);
		return -1;
	}
	for (uint32_t i = 0; i < d.nruns; i++) {
		struct img_run r;
		memcpy(&r, &run[i], sizeof(r));
		/* Ascending and apart across records, so that a reader can
		 * look an address up with a binary search. */
		if (r.npages == 0 || r.npages > d.npages || r.addr % INCR_PAGE || r.addr < *end ||
		    r.addr + r.npages * INCR_PAGE > (1ull << 56) || r.addr > (1ull << 56)) {
			err_set("%s record: run %u (%#llx, %llu pages) is empty, unaligned, out of "
				"range or not after the run before it",
				name, i, (unsigned long long)r.addr, (unsigned long long)r.npages);
			return -1;
		}
		*end = r.addr + r.npages * INCR_PAGE;
		sum += r.npages;
	}
	if (sum != d.npages) {
		err_set("%s record: runs hold %llu pages, not %llu", name, (unsigned long long)sum,
			(unsigned long long)d.npages);
		return -1;
	}
	if (!l)
		return 0;
	if (grow((void **)&l->runs, &l->cap, l->nruns + d.nruns, sizeof(*l->runs)))
		return -1;
	memcpy(l->runs + l->nruns, run, (size_t)d.nruns * sizeof(*run));
	l->nruns += d.nruns;
	if (type == IMG_REC_HASHES) {
		if (grow((void **)&l->h, &l->hcap, l->npages + d.npages, sizeof(*l->h)))
			return -1;
		memcpy(l->h + l->npages, (const char *)run + (size_t)d.nruns * sizeof(*run),
		       d.npages * 16);
	}
	l->npages += d.npages;
	return 0;
}

/* ---- ckpt-dump --parent ------------------------------------------------- */

struct page_hash {
	uint64_t addr;
	uint64_t h[2];
};

/* Pages lo..hi-1 of the parent's (indices into oh); lo first, the word
 * incr_by_addr sorts by. */
struct old_span {
	uint64_t lo, hi;
};

/* A run of the parent's pages, one after the other from addr; the hash
 * of its first is oh[first], and it ends where the next run's hashes
 * begin (the last at nold). */
struct old_run {
	uint64_t addr;
	size_t first;
};

struct incr_dump {
	struct parent parent; /* the PARENT record this dump writes */
	struct incr_key key;
	/* The parent's pages: runs, ascending and apart, and a hash a page
	 * in their order, as its HASHES records hold them (a copy of each
	 * record's, no table of a page each). */
	struct old_run *runs;
	size_t nruns, runcap;
	uint64_t (*oh)[2];
	size_t nold, oldcap;
	struct page_hash *full; /* a full parent's pages as hashed, before runs */
	size_t nfull, fullcap;
	/* The run where old_hash found the last page, for incr_dump_page
	 * (ckpt-dump's writer thread) and incr_dump_parent_has (its main
	 * thread) each: the runs are only read once the dump has begun. */
	size_t cursor, same_cursor;
	struct page_hash *now; /* this dump's pages */
	size_t nnow, nowcap;
	uint64_t *reuse; /* addresses of pages left out */
	size_t nreuse, reusecap;
	int32_t track_fd; /* the parent's TRACK record's fd, or -1 */
	uint64_t track_written; /* and the pages it found written */
	/* The parent's hashes are read by a thread of their own while the
	 * dump reads the process's smaps (incr_dump_wait). */
	struct img_input *in;
	pthread_t reader;
	int reading, failed;
	char why[1024];
	/* Pages the write tracker said unwritten (incr_dump_same): spans
	 * of old, their hashes taken as they are when written out. */
	struct old_span *same;
	size_t nsame, samecap, same_pages;
};

int incr_by_addr(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int add_hash(struct page_hash **t, size_t *n, size_t *cap, uint64_t addr,
		    const uint64_t h[2])
{
	if (grow((void **)t, cap, *n + 1, sizeof(**t)))
		return -1;
	(*t)[*n] = (struct page_hash){addr, {h[0], h[1]}};
	(*n)++;
	return 0;
}

/* A full parent's pages, hashed as they are read. */
struct hashing {
	struct incr_dump *d;
	unsigned char *chunk;
};

/* A chunk of a PAGES record (img_read_chunks): a hash a page. */
static int hash_chunk(void *arg, uint64_t addr, uint64_t n, uint32_t crc)
{
	struct hashing *hs = arg;
	struct incr_dump *d = hs->d;

	(void)crc;
	for (uint64_t j = 0; j < n; j++) {
		uint64_t h[2];
		incr_hash_page(&d->key, hs->chunk + j * INCR_PAGE, h);
		if (add_hash(&d->full, &d->nfull, &d->fullcap, addr + j * INCR_PAGE, h))
			return -1;
	}
	return 0;
}

/* A full parent: hash the pages of one PAGES record as they are read. */
static int hash_pages(struct incr_dump *d, struct img_reader *r, void *buf)
{
	static unsigned char chunk[256 * INCR_PAGE];
	struct hashing hs = {d, chunk};

	return img_read_chunks(r, buf, img_runs(IMG_REC_PAGES, buf), &hs.chunk, 256, hash_chunk,
			       &hs, NULL);
}

int incr_read_end(struct img_input *in, const struct img_rec *rec, const void *buf)
{
	struct img_end e;

	if (rec->len != sizeof(e)) {
		err_set("END record: bad length");
		return -1;
	}
	memcpy(&e, buf, sizeof(e));
	if (img_check_end(&in->r, rec, &e))
		return -1;
	return img_input_end(in);
}

/* Whether in is an incremental image, as a HASHES or REUSE record (type)
 * in it says it must be. */
static int incremental(const struct img_input *in, uint32_t type)
{
	if (in->im.parent)
		return 1;
	err_set("%s record in an image without a PARENT record",
		type == IMG_REC_HASHES ? "HASHES" : "REUSE");
	return 0;
}

/* What the parent gives each address, as read_parent_hashes reads it. */
struct parent_hashes {
	struct incr_dump *d;
	struct img_input *in;
	uint64_t hend, rend;
};

/* n pages from addr, their hashes h, after the parent's pages so far
 * (above them: incr_read_list saw to it, or the sort of a full one's). */
static int take_run(struct incr_dump *d, uint64_t addr, uint64_t n, const void *h)
{
	const struct old_run *last = d->nruns ? &d->runs[d->nruns - 1] : NULL;

	if (!n)
		return 0;
	if (grow((void **)&d->oh, &d->oldcap, d->nold + n, sizeof(*d->oh)))
		return -1;
	if (!last || last->addr + (d->nold - last->first) * INCR_PAGE != addr) {
		if (grow((void **)&d->runs, &d->runcap, d->nruns + 1, sizeof(*d->runs)))
			return -1;
		d->runs[d->nruns++] = (struct old_run){addr, d->nold};
	}
	memcpy(d->oh[d->nold], h, n * sizeof(*d->oh));
	d->nold += n;
	return 0;
}

/* A HASHES record incr_read_list has checked: its runs and hashes onto
 * the parent's, as they come. */
static int take_hashes(struct incr_dump *d, const void *buf)
{
	const struct img_run *run = (const struct img_run *)((const char *)buf + 16);
	const char *h;
	struct img_pagelist pl;

	memcpy(&pl, buf, sizeof(pl));
	h = (const char *)(run + pl.nruns);
	for (uint32_t i = 0; i < pl.nruns; i++) {
		struct img_run r;
		memcpy(&r, &run[i], sizeof(r));
		if (take_run(d, r.addr, r.npages, h))
			return -1;
		h += r.npages * sizeof(*d->oh);
	}
	return 0;
}

/* One record of the parent's page data (img_read_each). */
static int parent_hashes_rec(void *arg, const struct img_rec *rec, void *buf)
{
	struct parent_hashes *ph = arg;
	struct img_input *in = ph->in;

	switch (rec->type) {
	/* Only hashes are wanted of an incremental parent: its page data
	 * is passed over unread (a seek), its checksums left to what reads
	 * it (ckpt-remap, ckpt-inspect --verify). */
	case IMG_REC_SHMDATA:
		return img_pass_data(&in->r, buf);
	case IMG_REC_PAGES:
		return in->im.parent ? img_pass_data(&in->r, buf) : hash_pages(ph->d, &in->r, buf);
	case IMG_REC_HASHES:
	case IMG_REC_REUSE:
		if (!incremental(in, rec->type))
			return -1;
		/* The REUSE records are checked only: the hashes say it all. */
		if (rec->type == IMG_REC_REUSE)
			return incr_read_list(NULL, rec->type, buf, rec->len, in->im.proc.pid,
					      &ph->rend);
		return incr_read_list(NULL, rec->type, buf, rec->len, in->im.proc.pid, &ph->hend)
			   ? -1
			   : take_hashes(ph->d, buf);
	case IMG_REC_END:
		return incr_read_end(in, rec, buf) ? -1 : 1;
	default:
		err_set("record of type %u among the page data", rec->type);
		return -1;
	}
}

/* Read what the parent gives each address: its HASHES, or (a full image)
 * the hashes of its pages. */
static int read_parent_hashes(struct incr_dump *d, struct img_input *in)
{
	struct parent_hashes ph = {.d = d, .in = in};
	size_t n = 0, i;

	/* An incremental parent's HASHES are those of all its pages. */
	if (img_read_each(&in->r, parent_hashes_rec, &ph))
		return -1;
	if (!d->nfull)
		return 0;
	/* A full image's pages: ascending already, but in lazy order. */
	for (i = 1; i < d->nfull && d->full[i - 1].addr < d->full[i].addr; i++)
		;
	if (i < d->nfull) {
		qsort(d->full, d->nfull, sizeof(*d->full), incr_by_addr);
		/* A page stored twice (no ckpt-dump writes one) is not
		 * trusted: the dump stores it again. */
		for (i = 0; i < d->nfull; i++) {
			if ((i + 1 < d->nfull && d->full[i + 1].addr == d->full[i].addr) ||
			    (i > 0 && d->full[i - 1].addr == d->full[i].addr))
				continue;
			d->full[n++] = d->full[i];
		}
		d->nfull = n;
	}
	for (i = 0; i < d->nfull; i++)
		if (take_run(d, d->full[i].addr, 1, d->full[i].h))
			return -1;
	free(d->full);
	d->full = NULL;
	d->nfull = d->fullcap = 0;
	return 0;
}

/* Whether the image in, opened from path, can be the parent of the one
 * to be written to outpath (NULL: not a file). */
static int check_parent(struct img_input *in, const char *path, const char *outpath)
{
	struct stat a, b;

	if (outpath && stat(outpath, &a) == 0 &&
	    ((stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) ||
	     incr_chain_holds(in, path, &a))) {
		err_set("%s: the image would replace its own parent or an image of its parent's "
			"chain",
			outpath);
		return -1;
	}
	if (in->im.hdr.nprocs != 1) {
		err_set("parent image %s: an image of %u processes; --parent takes the image of "
			"one process",
			path, in->im.hdr.nprocs);
		return -1;
	}
	if (in->im.hdr.page_size != INCR_PAGE || sysconf(_SC_PAGESIZE) != INCR_PAGE) {
		err_set("parent image %s: incremental images need %d-byte pages", path, INCR_PAGE);
		return -1;
	}
	if (in->im.parent && in->im.parent->d.depth >= INCR_MAX_DEPTH) {
		err_set("parent image %s: already %u images deep, the most a chain may be; "
			"dump a full image",
			path, in->im.parent->d.depth);
		return -1;
	}
	return 0;
}

/* The PARENT record of a dump against the image in, opened from path: the
 * chain's key (drawn for a new chain), a new id, the parent's identity. */
static int make_parent(struct parent *pp, const struct img_input *in, const char *path)
{
	if (in->im.parent) {
		memcpy(pp->d.parent_id, in->im.parent->d.id, 16);
		memcpy(pp->d.key, in->im.parent->d.key, 16);
		pp->d.depth = in->im.parent->d.depth + 1;
	} else {
		if (getrandom(pp->d.key, sizeof(pp->d.key), 0) != sizeof(pp->d.key)) {
			err_sys("cannot draw a hash key");
			return -1;
		}
		pp->d.depth = 1;
	}
	if (getrandom(pp->d.id, sizeof(pp->d.id), 0) != sizeof(pp->d.id)) {
		err_sys("cannot draw an image id");
		return -1;
	}
	pp->d.parent_ctime = in->im.hdr.ctime;
	pp->d.parent_crc = incr_identity(&in->im);
	pp->d.path_len = strlen(path);
	pp->path = strdup(path);
	if (!pp->path) {
		err_set("out of memory");
		return -1;
	}
	return 0;
}

static void *reader_main(void *arg)
{
	struct incr_dump *d = arg;

	if (read_parent_hashes(d, d->in)) {
		snprintf(d->why, sizeof(d->why), "parent image %s: %s", d->parent.path, err_get());
		img_input_fail(d->in);
		d->failed = 1;
	}
	img_input_close(d->in);
	free(d->in);
	d->in = NULL;
	return NULL;
}

int incr_dump_open(const char *path, const char *outpath, struct incr_dump **out)
{
	struct incr_dump *d = calloc(1, sizeof(*d));
	struct img_input *in = calloc(1, sizeof(*in));
	sigset_t all, old;
	char why[1024];
	int rc;

	*out = NULL;
	if (!d || !in) {
		free(d);
		free(in);
		err_set("out of memory");
		return -1;
	}
	if (!strcmp(path, "-") || !path[0]) {
		err_set("--parent: the parent must be an image file, not standard input");
		goto fail;
	}
	if (img_open_one(path, in)) {
		snprintf(why, sizeof(why), "%s", err_get());
		err_set("--parent: %s", why);
		goto fail;
	}
	/* Its pre-copied pages are in no page data a merge could read. */
	if (in->im.live) {
		img_input_close(in);
		err_set("--parent: %s is a live stream (ckpt-dump --live), which cannot be a parent; "
			"restore it and dump that",
			path);
		goto fail;
	}
	if (check_parent(in, path, outpath) || make_parent(&d->parent, in, path)) {
		img_input_close(in);
		goto fail;
	}
	incr_key_expand(&d->key, d->parent.d.key);
	d->track_fd = in->im.track ? in->im.track->fd : -1;
	if (in->im.track && in->im.track->how == IMG_TRACK_WRITTEN)
		d->track_written = in->im.track->written;
	/* The hashes on a thread of their own, every signal left to the
	 * dump's threads. */
	d->in = in;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&d->reader, NULL, reader_main, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	d->reading = rc == 0;
	if (rc)
		reader_main(d);
	*out = d;
	return d->reading ? 0 : incr_dump_wait(d);
fail:
	free(in);
	incr_dump_free(d);
	return -1;
}

int incr_dump_wait(struct incr_dump *d)
{
	if (d->reading) {
		pthread_join(d->reader, NULL);
		d->reading = 0;
	}
	if (d->failed) {
		err_set("%s", d->why);
		return -1;
	}
	return 0;
}

int incr_dump_begin(struct incr_dump *d, struct image *im)
{
	struct parent *p;

	if (incr_dump_wait(d))
		return -1;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->path = strdup(d->parent.path))) {
		free(p);
		err_set("out of memory");
		return -1;
	}
	p->d = d->parent.d;
	img_parent_free(im->parent);
	im->parent = p;
	return 0;
}

/* Where the parent's run r ends. */
static uint64_t run_end(const struct incr_dump *d, size_t r)
{
	size_t next = r + 1 < d->nruns ? d->runs[r + 1].first : d->nold;

	return d->runs[r].addr + (next - d->runs[r].first) * INCR_PAGE;
}

/* The first of the parent's runs that ends above addr (nruns: none). */
static size_t run_after(const struct incr_dump *d, uint64_t addr)
{
	size_t lo = 0, hi = d->nruns;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (run_end(d, mid) <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The index of the parent's first page at or above addr. */
static size_t old_at(const struct incr_dump *d, uint64_t addr)
{
	size_t r = run_after(d, addr);

	if (r == d->nruns)
		return d->nold;
	if (addr <= d->runs[r].addr)
		return d->runs[r].first;
	return d->runs[r].first + (addr - d->runs[r].addr) / INCR_PAGE;
}

/* The parent's hash of addr, or NULL.  Pages come mostly in ascending
 * order: try the run the last one was in (*cursor), then the next. */
static const uint64_t *old_hash(const struct incr_dump *d, size_t *cursor, uint64_t addr)
{
	size_t r = *cursor;

	if (r >= d->nruns || addr < d->runs[r].addr || addr >= run_end(d, r)) {
		if (r + 1 < d->nruns && addr >= d->runs[r + 1].addr && addr < run_end(d, r + 1))
			r++;
		else if ((r = run_after(d, addr)) == d->nruns || addr < d->runs[r].addr)
			return NULL;
		*cursor = r;
	}
	return d->oh[d->runs[r].first + (addr - d->runs[r].addr) / INCR_PAGE];
}

int incr_dump_page(struct incr_dump *d, uint64_t addr, const void *page)
{
	const uint64_t *o;
	uint64_t h[2];

	incr_hash_page(&d->key, page, h);
	if (add_hash(&d->now, &d->nnow, &d->nowcap, addr, h))
		return -1;
	o = old_hash(d, &d->cursor, addr);
	if (!o || o[0] != h[0] || o[1] != h[1])
		return 0;
	if (grow((void **)&d->reuse, &d->reusecap, d->nreuse + 1, sizeof(*d->reuse)))
		return -1;
	d->reuse[d->nreuse++] = addr;
	return 1;
}

int incr_dump_parent_has(struct incr_dump *d, uint64_t addr)
{
	return old_hash(d, &d->same_cursor, addr) != NULL;
}

int incr_dump_same(struct incr_dump *d, uint64_t start, uint64_t end)
{
	size_t lo = old_at(d, start), hi = old_at(d, end);

	if (hi == lo)
		return 0;
	if (grow((void **)&d->same, &d->samecap, d->nsame + 1, sizeof(*d->same)))
		return -1;
	d->same[d->nsame++] = (struct old_span){lo, hi};
	d->same_pages += hi - lo;
	return 0;
}

int incr_dump_track_fd(const struct incr_dump *d)
{
	return d->track_fd;
}

uint64_t incr_dump_expect(const struct incr_dump *d)
{
	return d->track_written;
}

/* A HASHES record being gathered: runs of consecutive pages, then
 * their hashes (at most INCR_MAX_PAGES). */
struct hashes_out {
	struct img_writer *w;
	struct img_pagelist d;
	struct img_run *runs;
	size_t runcap;
	uint64_t (*h)[2];
};

static int hashes_flush(struct hashes_out *o)
{
	struct iovec v[3] = {{&o->d, sizeof(o->d)},
			     {o->runs, o->d.nruns * sizeof(*o->runs)},
			     {o->h, o->d.npages * sizeof(*o->h)}};

	if (!o->d.npages)
		return 0;
	if (img_write_rec(o->w, IMG_REC_HASHES, v, 3))
		return -1;
	o->d.nruns = 0;
	o->d.npages = 0;
	return 0;
}

/* n pages from addr, one after the other, their hashes h; above those
 * added. */
static int hashes_add(struct hashes_out *o, uint64_t addr, const uint64_t (*h)[2], size_t n)
{
	while (n > 0) {
		struct img_run *last = o->d.nruns ? &o->runs[o->d.nruns - 1] : NULL;
		size_t k = INCR_MAX_PAGES - o->d.npages;

		if (k > n)
			k = n;
		if (last && last->addr + last->npages * INCR_PAGE == addr) {
			last->npages += k;
		} else {
			if (grow((void **)&o->runs, &o->runcap, o->d.nruns + 1, sizeof(*o->runs)))
				return -1;
			o->runs[o->d.nruns++] = (struct img_run){addr, k};
		}
		memcpy(o->h[o->d.npages], h, k * sizeof(*h));
		o->d.npages += k;
		addr += k * INCR_PAGE;
		h += k;
		n -= k;
		if (o->d.npages == INCR_MAX_PAGES && hashes_flush(o))
			return -1;
	}
	return 0;
}

/* REUSE records being gathered: runs of the pages left out. */
struct reuse_out {
	struct img_writer *w;
	int32_t pid;
	struct img_run *runs;
	size_t nruns, cap;
};

static int reuse_flush(struct reuse_out *o)
{
	struct img_pagelist d = {.pid = o->pid, .nruns = o->nruns};

	if (!o->nruns)
		return 0;
	for (size_t i = 0; i < o->nruns; i++)
		d.npages += o->runs[i].npages;
	o->nruns = 0;
	return img_write_rec_tail(o->w, IMG_REC_REUSE, &d, sizeof(d), o->runs,
				  d.nruns * sizeof(*o->runs));
}

/* n pages from addr, one after the other; above those added. */
static int reuse_add(struct reuse_out *o, uint64_t addr, uint64_t n)
{
	struct img_run *last = o->nruns ? &o->runs[o->nruns - 1] : NULL;

	if (last && last->addr + last->npages * INCR_PAGE == addr) {
		last->npages += n;
		return 0;
	}
	if (o->nruns == INCR_MAX_RUNS && reuse_flush(o))
		return -1;
	if (grow((void **)&o->runs, &o->cap, o->nruns + 1, sizeof(*o->runs)))
		return -1;
	o->runs[o->nruns++] = (struct img_run){addr, n};
	return 0;
}

/* Sort n items of size at p by their first word (incr_by_addr), unless
 * they are ascending already. */
static void ascending(void *p, size_t n, size_t size)
{
	for (size_t i = 1; i < n; i++)
		if (incr_by_addr((char *)p + i * size, (char *)p + (i - 1) * size) < 0) {
			qsort(p, n, size, incr_by_addr);
			return;
		}
}

/* The parent's pages of same, in address order (spans by their first
 * index, which ascending sorts by, and the runs ascend): k the next, in
 * run r, at addr. */
struct same_pages {
	const struct incr_dump *d;
	size_t s, k, r;
	uint64_t addr;
};

/* The next page of same: 1 (it->k, it->addr), or 0 after the last. */
static int same_peek(struct same_pages *it)
{
	const struct incr_dump *d = it->d;

	while (it->s < d->nsame && it->k >= d->same[it->s].hi)
		if (++it->s < d->nsame)
			it->k = d->same[it->s].lo;
	if (it->s >= d->nsame)
		return 0;
	while (it->r + 1 < d->nruns && d->runs[it->r + 1].first <= it->k)
		it->r++;
	it->addr = d->runs[it->r].addr + (it->k - d->runs[it->r].first) * INCR_PAGE;
	return 1;
}

/* How many pages from the one same_peek gave follow it one after the
 * other in its span and run, below addr: taken together. */
static size_t same_below(const struct same_pages *it, uint64_t addr)
{
	const struct incr_dump *d = it->d;
	size_t end = d->same[it->s].hi, n;
	uint64_t room = (addr - it->addr) / INCR_PAGE + ((addr - it->addr) % INCR_PAGE != 0);

	if (it->r + 1 < d->nruns && d->runs[it->r + 1].first < end)
		end = d->runs[it->r + 1].first;
	n = end - it->k;
	return n < room ? n : room;
}

int incr_dump_end(struct incr_dump *d, struct img_writer *w, int32_t pid, void *scratch, size_t len)
{
	size_t total = d->nnow + d->same_pages, i, n, room;
	struct hashes_out ho = {.w = w, .d = {.pid = pid}};
	struct reuse_out ro = {.w = w, .pid = pid};
	struct same_pages it = {.d = d};
	int rc = -1, more;

	/* Each list ascending (--cow writes some regions before the
	 * others), then now and same merged on the way out, a stretch of
	 * either at a time: no table of a quarter of a million hashes a
	 * GiB, the parent's copied as they stand. */
	ascending(d->now, d->nnow, sizeof(*d->now));
	ascending(d->same, d->nsame, sizeof(*d->same));
	ascending(d->reuse, d->nreuse, sizeof(*d->reuse));
	room = total < INCR_MAX_PAGES ? total : INCR_MAX_PAGES;
	ho.h = scratch && len >= (room + 1) * sizeof(*ho.h) ? scratch
							    : malloc((room + 1) * sizeof(*ho.h));
	if (!ho.h) {
		err_set("out of memory");
		goto out;
	}
	it.k = d->nsame ? d->same[0].lo : 0;
	for (i = 0; (more = same_peek(&it)) || i < d->nnow;) {
		if (more && (i == d->nnow || it.addr < d->now[i].addr)) {
			n = same_below(&it, i < d->nnow ? d->now[i].addr : UINT64_MAX);
			if (hashes_add(&ho, it.addr, &d->oh[it.k], n))
				goto out;
			it.k += n;
		} else if (hashes_add(&ho, d->now[i].addr, &d->now[i].h, 1)) {
			goto out;
		} else {
			i++;
		}
	}
	if (hashes_flush(&ho))
		goto out;
	it = (struct same_pages){.d = d, .k = d->nsame ? d->same[0].lo : 0};
	for (i = 0; (more = same_peek(&it)) || i < d->nreuse;) {
		if (more && (i == d->nreuse || it.addr < d->reuse[i])) {
			n = same_below(&it, i < d->nreuse ? d->reuse[i] : UINT64_MAX);
			if (reuse_add(&ro, it.addr, n))
				goto out;
			it.k += n;
		} else if (reuse_add(&ro, d->reuse[i++], 1)) {
			goto out;
		}
	}
	rc = reuse_flush(&ro);
out:
	free(ho.runs);
	if ((void *)ho.h != scratch)
		free(ho.h);
	free(ro.runs);
	return rc;
}

int incr_dump_stored(const struct incr_dump *d, uint64_t min,
		     int (*fn)(void *arg, uint64_t start, uint64_t end), void *arg)
{
	uint64_t start = 0, end = 0;
	size_t j = 0;

	for (size_t i = 0; i <= d->nnow; i++) {
		uint64_t a = i < d->nnow ? d->now[i].addr : UINT64_MAX;

		while (j < d->nreuse && d->reuse[j] < a)
			j++;
		if (i < d->nnow && j < d->nreuse && d->reuse[j] == a)
			continue; /* left out */
		if (i < d->nnow && a == end) {
			end += INCR_PAGE;
			continue;
		}
		if (end - start >= min * INCR_PAGE && end > start && fn(arg, start, end))
			return -1;
		start = a;
		end = a + INCR_PAGE;
	}
	return 0;
}

void incr_dump_counts(const struct incr_dump *d, uint64_t *stored, uint64_t *reused)
{
	*stored = d->nnow - d->nreuse;
	*reused = d->nreuse + d->same_pages;
}

void incr_dump_free(struct incr_dump *d)
{
	if (!d)
		return;
	if (d->reading)
		pthread_join(d->reader, NULL);
	free(d->parent.path);
	free(d->runs);
	free(d->oh);
	free(d->full);
	free(d->now);
	free(d->reuse);
	free(d->same);
	free(d);
}

/* ---- ckpt-inspect -------------------------------------------------------- */

int incr_check_runs(const struct image *im, uint32_t type, const void *buf)
{
	const struct img_run *run = (const struct img_run *)((const char *)buf + 16);
	struct img_pagelist d;

	memcpy(&d, buf, sizeof(d));
	for (uint32_t i = 0; i < d.nruns; i++) {
		struct img_run r;
		const struct region *first;
		uint64_t at, end;

		memcpy(&r, &run[i], sizeof(r));
		first = img_find_region(im, r.addr);
		/* A run may span regions that follow each other without a
		 * gap (a program's data and bss), each private and not the
		 * kernel's. */
		at = r.addr;
		end = r.addr + r.npages * INCR_PAGE;
		for (size_t k = first ? (size_t)(first - im->regions) : im->nregions;
		     k < im->nregions && at < end; k++) {
			const struct img_region *g = &im->regions[k].d;
			if (g->start > at || (g->flags & IMG_RGN_SHARED) ||
			    g->kind == IMG_RGN_SPECIAL)
				break;
			at = g->end;
		}
		if (at < end) {
			err_set("%s record: run %#llx+%llu pages lies outside the private regions",
				type == IMG_REC_HASHES ? "HASHES" : "REUSE",
				(unsigned long long)r.addr, (unsigned long long)r.npages);
			return -1;
		}
	}
	return 0;
}

int incr_scan_rec(struct img_input *in, const struct img_rec *rec, const void *buf)
{
	struct parent *p = in->im.parent;
	struct img_pagelist d;

	if (!incremental(in, rec->type))
		return -1;
	/* The REUSE runs are kept: ckpt-inspect follows them up the chain. */
	if (rec->type == IMG_REC_REUSE && !p->reuse_runs &&
	    !(p->reuse_runs = calloc(1, sizeof(*p->reuse_runs)))) {
		err_set("out of memory");
		return -1;
	}
	if (incr_read_list(rec->type == IMG_REC_REUSE ? p->reuse_runs : NULL, rec->type, buf,
			   rec->len, in->im.proc.pid,
			   rec->type == IMG_REC_HASHES ? &p->hash_end : &p->reuse_end) ||
	    incr_check_runs(&in->im, rec->type, buf))
		return -1;
	memcpy(&d, buf, sizeof(d));
	if (rec->type == IMG_REC_HASHES)
		p->hashed += d.npages;
	else
		p->reused += d.npages;
	return 0;
}

static const char *hex16(const uint8_t *b, char *s)
{
	for (int i = 0; i < 16; i++)
		sprintf(s + 2 * i, "%02x", b[i]);
	return s;
}

static const char *const track_how[IMG_TRACK_NHOW] = {
    [IMG_TRACK_FULL] = "full", [IMG_TRACK_HASHED] = "hashed", [IMG_TRACK_WRITTEN] = "written"};
static const char *const track_says[IMG_TRACK_NHOW] = {
    [IMG_TRACK_FULL] = "a full image, every page stored",
    [IMG_TRACK_HASHED] = "changed pages found by hashing every page",
    [IMG_TRACK_WRITTEN] = "changed pages found by the write tracker"};

void incr_inspect_text(FILE *f, const struct img_input *in)
{
	const struct parent *p = in->im.parent;
	const struct img_track *t = in->im.track;
	char id[40], b1[32], t1[64];

	if (t) {
		fprintf(f, "tracking: %s", track_says[t->how]);
		if (t->how == IMG_TRACK_WRITTEN)
			fprintf(f, " (%llu pages reported written)", (unsigned long long)t->written);
		if (t->fd >= 0)
			fprintf(f, "; tracker left at fd %d\n", t->fd);
		else
			fprintf(f, "; no tracker left in the program\n");
	}
	if (in->im.live)
		fprintf(f,
			"live:     a live stream (ckpt-dump --live): %llu pages copied while it ran, "
			"in %u rounds; %llu pages (%s) taken from that pre-copy, in %u runs\n",
			(unsigned long long)in->im.live->d.precopied, in->im.live->d.rounds,
			(unsigned long long)in->im.live->d.npages,
			fmt_bytes(b1, sizeof(b1), in->im.live->d.npages * in->im.hdr.page_size),
			in->im.live->d.nruns);
	if (!p)
		return;
	fprintf(f, "parent:   %s (%u image%s above this one)\n", p->path, p->d.depth,
		p->d.depth > 1 ? "s" : "");
	fprintf(f, "  id %s; the parent's: created %s, identity crc %#x\n", hex16(p->d.id, id),
		fmt_time(t1, sizeof(t1), p->d.parent_ctime), p->d.parent_crc);
	fprintf(f, "  %llu pages (%s) taken from the parent, %llu pages hashed\n",
		(unsigned long long)p->reused,
		fmt_bytes(b1, sizeof(b1), p->reused * in->im.hdr.page_size),
		(unsigned long long)p->hashed);
	if (p->chain)
		fputs(p->chain, f);
}

void incr_inspect_json(FILE *f, const struct img_input *in)
{
	const struct parent *p = in->im.parent;
	const struct img_track *t = in->im.track;
	char id[40], pid[40];

	if (t)
		fprintf(f, "\"tracking\":{\"how\":\"%s\",\"fd\":%d,\"written_pages\":%llu},\n",
			track_how[t->how], t->fd, (unsigned long long)t->written);
	if (in->im.live)
		fprintf(f,
			"\"live\":{\"rounds\":%u,\"precopied_pages\":%llu,\"staged_pages\":%llu,"
			"\"kept_pages\":%llu,\"runs\":%u},\n",
			in->im.live->d.rounds, (unsigned long long)in->im.live->d.precopied,
			(unsigned long long)in->staged, (unsigned long long)in->im.live->d.npages,
			in->im.live->d.nruns);
	if (!p)
		return;
	fprintf(f, "\"parent\":{\"path\":");
	json_str(f, p->path, strlen(p->path));
	fprintf(f,
		",\"depth\":%u,\"id\":\"%s\",\"parent_id\":\"%s\",\"parent_created\":%lld,"
		"\"parent_crc\":%u,\"reused_pages\":%llu,\"hashed_pages\":%llu%s%s},\n",
		p->d.depth, hex16(p->d.id, id), hex16(p->d.parent_id, pid),
		(long long)p->d.parent_ctime, p->d.parent_crc, (unsigned long long)p->reused,
		(unsigned long long)p->hashed, p->chain ? ",\"chain\":" : "",
		p->chain ? p->chain : "");
}
