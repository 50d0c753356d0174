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

struct incr_dump {
	struct parent parent; /* the PARENT record this dump writes */
	struct incr_key key;
	struct page_hash *old; /* the parent's pages, by address */
	size_t nold, oldcap, cursor;
	struct page_hash *now; /* this dump's pages */
	size_t nnow, nowcap;
	uint64_t *reuse; /* addresses of pages left out */
	size_t nreuse, reusecap;
	int32_t track_fd; /* the parent's TRACK record's fd, or -1 */
	/* Pages the write tracker said unwritten (incr_dump_same): ascending,
	 * like now's own, and merged with them at the end. */
	struct page_hash *same;
	size_t nsame, samecap;
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
		if (add_hash(&d->old, &d->nold, &d->oldcap, addr + j * INCR_PAGE, h))
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
	struct run_list l; /* an incremental parent's HASHES */
	uint64_t hend, rend;
};

/* One record of the parent's page data (img_read_each). */
static int parent_hashes_rec(void *arg, const struct img_rec *rec, void *buf)
{
	struct parent_hashes *ph = arg;
	struct img_input *in = ph->in;
	uint32_t crc;

	switch (rec->type) {
	case IMG_REC_SHMDATA:
		return img_skip_data(&in->r, buf, &crc);
	case IMG_REC_PAGES:
		return in->im.parent ? img_skip_data(&in->r, buf, &crc)
				     : hash_pages(ph->d, &in->r, buf);
	case IMG_REC_HASHES:
	case IMG_REC_REUSE:
		if (!incremental(in, rec->type))
			return -1;
		/* The REUSE records are checked only: the hashes say it all. */
		if (rec->type == IMG_REC_REUSE)
			return incr_read_list(NULL, rec->type, buf, rec->len, in->im.proc.pid,
					      &ph->rend);
		return incr_read_list(&ph->l, rec->type, buf, rec->len, in->im.proc.pid, &ph->hend);
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
	struct run_list *l = &ph.l;
	int rc = -1;

	if (img_read_each(&in->r, parent_hashes_rec, &ph))
		goto out;
	/* An incremental parent's hashes are those of all its pages. */
	for (size_t i = 0, k = 0; i < l->nruns; i++)
		for (uint64_t j = 0; j < l->runs[i].npages; j++, k++)
			if (add_hash(&d->old, &d->nold, &d->oldcap, l->runs[i].addr + j * INCR_PAGE,
				     l->h[k]))
				goto out;
	qsort(d->old, d->nold, sizeof(*d->old), incr_by_addr);
	/* A page stored twice (no ckpt-dump writes one) is not trusted: the
	 * dump stores it again. */
	{
		size_t n = 0;
		for (size_t i = 0; i < d->nold; i++) {
			if ((i + 1 < d->nold && d->old[i + 1].addr == d->old[i].addr) ||
			    (i > 0 && d->old[i - 1].addr == d->old[i].addr))
				continue;
			d->old[n++] = d->old[i];
		}
		d->nold = n;
	}
	rc = 0;
out:
	run_list_free(l);
	return rc;
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

int incr_dump_open(const char *path, const char *outpath, struct incr_dump **out)
{
	struct incr_dump *d = calloc(1, sizeof(*d));
	struct img_input in;
	char why[1024];

	*out = NULL;
	if (!d) {
		err_set("out of memory");
		return -1;
	}
	if (!strcmp(path, "-") || !path[0]) {
		err_set("--parent: the parent must be an image file, not standard input");
		goto fail;
	}
	if (img_open_one(path, &in)) {
		snprintf(why, sizeof(why), "%s", err_get());
		err_set("--parent: %s", why);
		goto fail;
	}
	/* Its pre-copied pages are in no page data a merge could read. */
	if (in.im.live) {
		img_input_close(&in);
		err_set("--parent: %s is a live stream (ckpt-dump --live), which cannot be a parent; "
			"restore it and dump that",
			path);
		goto fail;
	}
	if (check_parent(&in, path, outpath) || make_parent(&d->parent, &in, path)) {
		img_input_close(&in);
		goto fail;
	}
	incr_key_expand(&d->key, d->parent.d.key);
	d->track_fd = in.im.track ? in.im.track->fd : -1;
	if (read_parent_hashes(d, &in)) {
		snprintf(why, sizeof(why), "%s", err_get());
		img_input_fail(&in);
		img_input_close(&in);
		err_set("parent image %s: %s", path, why);
		goto fail;
	}
	img_input_close(&in);
	*out = d;
	return 0;
fail:
	incr_dump_free(d);
	return -1;
}

int incr_dump_begin(struct incr_dump *d, struct image *im)
{
	struct parent *p = calloc(1, sizeof(*p));

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

/* The parent's hash of addr, or NULL.  Pages come mostly in ascending
 * order: try where the last one was found first. */
static const struct page_hash *old_hash(struct incr_dump *d, uint64_t addr)
{
	size_t lo = 0, hi = d->nold;

	if (d->cursor < d->nold && d->old[d->cursor].addr == addr)
		return &d->old[d->cursor++];
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (d->old[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < d->nold && d->old[lo].addr == addr) {
		d->cursor = lo + 1;
		return &d->old[lo];
	}
	return NULL;
}

int incr_dump_page(struct incr_dump *d, uint64_t addr, const void *page)
{
	const struct page_hash *o;
	uint64_t h[2];

	incr_hash_page(&d->key, page, h);
	if (add_hash(&d->now, &d->nnow, &d->nowcap, addr, h))
		return -1;
	o = old_hash(d, addr);
	if (!o || o->h[0] != h[0] || o->h[1] != h[1])
		return 0;
	if (grow((void **)&d->reuse, &d->reusecap, d->nreuse + 1, sizeof(*d->reuse)))
		return -1;
	d->reuse[d->nreuse++] = addr;
	return 1;
}

int incr_dump_same(struct incr_dump *d, uint64_t addr)
{
	const struct page_hash *o = old_hash(d, addr);

	if (!o)
		return 0;
	if (add_hash(&d->same, &d->nsame, &d->samecap, addr, o->h))
		return -1;
	return 1;
}

/* now and reuse, each ascending, merged with same (ascending): no sort of
 * a quarter of a million pages while the process is stopped. */
static int merge_same(struct incr_dump *d)
{
	struct page_hash *now = malloc((d->nnow + d->nsame + 1) * sizeof(*now));
	uint64_t *reuse = malloc((d->nreuse + d->nsame + 1) * sizeof(*reuse));
	size_t i = 0, j = 0, k = 0;

	if (!now || !reuse) {
		free(now);
		free(reuse);
		err_set("out of memory");
		return -1;
	}
	while (i < d->nnow || j < d->nsame)
		now[k++] = j == d->nsame || (i < d->nnow && d->now[i].addr < d->same[j].addr)
			       ? d->now[i++]
			       : d->same[j++];
	free(d->now);
	d->now = now;
	d->nnow = d->nowcap = k;
	for (i = j = k = 0; i < d->nreuse || j < d->nsame;)
		reuse[k++] = j == d->nsame || (i < d->nreuse && d->reuse[i] < d->same[j].addr)
				 ? d->reuse[i++]
				 : d->same[j++].addr;
	free(d->reuse);
	d->reuse = reuse;
	d->nreuse = d->reusecap = k;
	free(d->same);
	d->same = NULL;
	d->nsame = d->samecap = 0;
	return 0;
}

int incr_dump_track_fd(const struct incr_dump *d)
{
	return d->track_fd;
}

/* A HASHES record of now[0..n): runs of consecutive pages, then hashes. */
static int write_hashes(struct img_writer *w, int32_t pid, const struct page_hash *now, size_t n)
{
	struct img_pagelist d = {.pid = pid, .npages = n};
	struct img_run *runs = malloc(n * sizeof(*runs));
	uint64_t(*h)[2] = malloc(n * sizeof(*h));
	struct iovec v[3];
	int rc;

	if (!runs || !h) {
		free(runs);
		free(h);
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (d.nruns &&
		    runs[d.nruns - 1].addr + runs[d.nruns - 1].npages * INCR_PAGE == now[i].addr)
			runs[d.nruns - 1].npages++;
		else
			runs[d.nruns++] = (struct img_run){now[i].addr, 1};
		h[i][0] = now[i].h[0];
		h[i][1] = now[i].h[1];
	}
	v[0] = (struct iovec){&d, sizeof(d)};
	v[1] = (struct iovec){runs, d.nruns * sizeof(*runs)};
	v[2] = (struct iovec){h, n * sizeof(*h)};
	rc = img_write_rec(w, IMG_REC_HASHES, v, 3);
	free(runs);
	free(h);
	return rc;
}

static int write_reuse(struct img_writer *w, int32_t pid, const struct img_run *runs, size_t nruns)
{
	struct img_pagelist d = {.pid = pid, .nruns = nruns};

	for (size_t i = 0; i < nruns; i++)
		d.npages += runs[i].npages;
	return img_write_rec_tail(w, IMG_REC_REUSE, &d, sizeof(d), runs, nruns * sizeof(*runs));
}

int incr_dump_end(struct incr_dump *d, struct img_writer *w, int32_t pid)
{
	struct img_run *runs = NULL;
	size_t nruns = 0;
	int rc = -1;

	if (d->nsame && merge_same(d))
		return -1;
	/* --cow writes some regions before the others: sort then. */
	for (size_t i = 1; i < d->nnow; i++)
		if (d->now[i].addr < d->now[i - 1].addr) {
			qsort(d->now, d->nnow, sizeof(*d->now), incr_by_addr);
			qsort(d->reuse, d->nreuse, sizeof(*d->reuse), incr_by_addr);
			break;
		}
	for (size_t i = 0; i < d->nnow; i += INCR_MAX_PAGES) {
		size_t n = d->nnow - i < INCR_MAX_PAGES ? d->nnow - i : INCR_MAX_PAGES;
		if (write_hashes(w, pid, d->now + i, n))
			return -1;
	}
	runs = malloc((d->nreuse + 1) * sizeof(*runs));
	if (!runs) {
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < d->nreuse; i++) {
		if (nruns &&
		    runs[nruns - 1].addr + runs[nruns - 1].npages * INCR_PAGE == d->reuse[i])
			runs[nruns - 1].npages++;
		else
			runs[nruns++] = (struct img_run){d->reuse[i], 1};
	}
	for (size_t i = 0; i < nruns; i += INCR_MAX_RUNS)
		if (write_reuse(w, pid, runs + i,
				nruns - i < INCR_MAX_RUNS ? nruns - i : INCR_MAX_RUNS))
			goto out;
	rc = 0;
out:
	free(runs);
	return rc;
}

void incr_dump_counts(const struct incr_dump *d, uint64_t *stored, uint64_t *reused)
{
	*stored = d->nnow - d->nreuse;
	*reused = d->nreuse + d->nsame;
}

void incr_dump_free(struct incr_dump *d)
{
	if (!d)
		return;
	free(d->parent.path);
	free(d->old);
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
