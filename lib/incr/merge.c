/* merge.c: reading an incremental image: find and check its parents,
 * and merge the chain into the page data of one ordinary image.
 *
 * The merge runs in a process of its own, as a decompressor does (io.h, zio_spawn):
 * the restorer reads one stream from a pipe and never learns that it came
 * from several files, and decompression of any of them stays out of it.
 * It writes, after the image's own metadata, the image's SHMDATA and PAGES
 * records, then the pages its REUSE records take from the parent, read
 * from the parent opened with img_open (so a parent that is incremental
 * brings its own merging process: a chain of n images is n - 1 of them).
 * Each page taken from a parent must hash to what the image's HASHES say:
 * a parent replaced by another image with the same header cannot slip in
 * a page. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "incr/incr.h"
#include "io/io.h"

#define OUT_PAGES 1024 /* pages per PAGES record written */

/* Whether the image in is the one p names; else err_set says how not. */
static int is_parent(const struct parent *p, const struct img_input *in, const char *child,
		     const char *path)
{
	static const uint8_t zero[16];
	const struct parent *q = in->im.parent;
	char t1[64], t2[64];

	if (incr_identity(&in->im) != p->d.parent_crc || in->im.hdr.ctime != p->d.parent_ctime ||
	    (memcmp(p->d.parent_id, zero, 16) ? !q || memcmp(q->d.id, p->d.parent_id, 16)
					      : q != NULL)) {
		err_set("%s: parent image %s is not the image %s was dumped against (it was "
			"created %s, the parent %s)",
			child, path, child, fmt_time(t1, sizeof(t1), in->im.hdr.ctime),
			fmt_time(t2, sizeof(t2), p->d.parent_ctime));
		return 0;
	}
	if (q && (q->d.depth + 1 != p->d.depth || memcmp(q->d.key, p->d.key, 16))) {
		err_set("%s: parent image %s: its depth or hash key does not follow on", child,
			path);
		return 0;
	}
	if (!q && p->d.depth != 1) {
		err_set("%s: parent image %s: a full image, where the chain says %u above", child,
			path, p->d.depth);
		return 0;
	}
	if (in->im.hdr.nprocs != 1 || in->im.hdr.page_size != INCR_PAGE) {
		err_set("%s: parent image %s: not the image of one process with %d-byte pages",
			child, path, INCR_PAGE);
		return 0;
	}
	return 1;
}

/* Open the parent p names for the image at child: its path as written,
 * then beside the child (the path joined to the child's directory, then
 * its last component there), the first that is the right image.  With
 * merge, its own chain attached (its page data whole).  Each is opened
 * as img_open_parent does (no FIFO waited on, no device, no last link),
 * under the child's rule of trust, which the child passed already. */
static int open_parent(const struct parent *p, const char *child, struct img_input *in,
		       int merge, int trust, char *found, size_t found_len)
{
	char dir[PATH_MAX], base[PATH_MAX], cand[3][PATH_MAX + 2];
	char why[1024] = "";
	int n = 0, seen = 0, missing_errno = ENOENT;

	snprintf(cand[n++], sizeof(cand[0]), "%s", p->path);
	if (strcmp(child, "-")) {
		snprintf(dir, sizeof(dir), "%s", child);
		snprintf(base, sizeof(base), "%s", p->path);
		if (p->path[0] != '/')
			snprintf(cand[n++], sizeof(cand[0]), "%s/%s", dirname(dir), p->path);
		snprintf(dir, sizeof(dir), "%s", child);
		snprintf(cand[n++], sizeof(cand[0]), "%s/%s", dirname(dir), basename(base));
	}
	for (int i = 0; i < n; i++) {
		int dup = 0;
		for (int k = 0; k < i; k++)
			dup |= !strcmp(cand[k], cand[i]);
		if (dup)
			continue;
		if (access(cand[i], F_OK)) {
			if (i == 0)
				missing_errno = errno;
			continue;
		}
		seen = 1;
		if (img_open_parent(cand[i], in, merge, trust)) {
			if (!why[0])
				snprintf(why, sizeof(why), "%s: parent image %s", child, err_get());
			continue;
		}
		if (is_parent(p, in, child, cand[i])) {
			size_t l = strnlen(cand[i], found_len - 1);
			memcpy(found, cand[i], l);
			found[l] = 0;
			return 0;
		}
		if (!why[0] || !strstr(why, "dumped against"))
			snprintf(why, sizeof(why), "%s", err_get());
		if (in->status_fd >= 0)
			img_input_fail(in);
		img_input_close(in);
	}
	if (!seen)
		err_set("%s: parent image %s: missing (%s)", child, p->path,
			strerror(missing_errno));
	else
		err_set("%s", why);
	return -1;
}

/* ---- the merging process -------------------------------------------------- */

struct feeder {
	struct img_input child; /* the image, read past DATA */
	const char *name;	/* its path, for messages */
	char parent[PATH_MAX];	/* the parent's path, found */
	struct img_writer w;
	struct incr_key key;
	/* The batch being written. */
	struct img_run runs[IMG_MAX_RUNS];
	uint32_t nruns;
	uint64_t npages;
	uint64_t run_end; /* the end of the region of the last run */
	unsigned char *buf;
};

static int flush_out(struct feeder *f)
{
	if (!f->npages)
		return 0;
	if (img_write_pages(&f->w, f->runs, f->nruns, f->buf, f->npages))
		return -1;
	f->nruns = 0;
	f->npages = 0;
	return 0;
}

/* The end of the private region of the image that holds addr, or 0. */
static uint64_t region_end(const struct image *im, uint64_t addr)
{
	const struct region *g = img_find_region(im, addr);

	if (g && !(g->d.flags & IMG_RGN_SHARED) && g->d.kind != IMG_RGN_SPECIAL)
		return g->d.end;
	return 0;
}

/* Room for one more page at addr in the batch, and where it goes.  A run
 * never crosses the end of a region: the restorer fills each run into one
 * mapping. */
static unsigned char *out_page(struct feeder *f, uint64_t addr)
{
	int joins = f->nruns &&
		    f->runs[f->nruns - 1].addr + f->runs[f->nruns - 1].npages * INCR_PAGE == addr &&
		    addr < f->run_end;

	if (f->npages == OUT_PAGES || (f->nruns == IMG_MAX_RUNS && !joins)) {
		if (flush_out(f))
			return NULL;
		joins = 0;
	}
	if (joins) {
		f->runs[f->nruns - 1].npages++;
	} else {
		f->run_end = region_end(&f->child.im, addr);
		if (!f->run_end) {
			err_set("%s: page %#llx lies in no private region of the image", f->name,
				(unsigned long long)addr);
			return NULL;
		}
		f->runs[f->nruns++] = (struct img_run){addr, 1};
	}
	return f->buf + (f->npages++) * INCR_PAGE;
}

/* A PAGES record of the image: its pages go straight into the batch, as
 * many a read as fit; its runs noted in stored. */
static int copy_pages(struct feeder *f, struct img_pages *p, struct run_list *stored)
{
	struct img_reader *r = &f->child.r;
	struct img_run *run = img_runs(IMG_REC_PAGES, p);
	uint32_t crc = 0;

	for (uint32_t i = 0; i < p->nruns; i++) {
		if (stored->nruns == stored->cap) {
			size_t n = stored->cap ? stored->cap * 2 : 256;
			struct img_run *q = realloc(stored->runs, n * sizeof(*q));
			if (!q) {
				err_set("out of memory");
				return -1;
			}
			stored->runs = q;
			stored->cap = n;
		}
		stored->runs[stored->nruns++] = run[i];
		for (uint64_t k = 0; k < run[i].npages;) {
			unsigned char *to = out_page(f, run[i].addr + k * INCR_PAGE);
			uint64_t n = 1;
			if (!to)
				return -1;
			while (k + n < run[i].npages && f->npages < OUT_PAGES &&
			       run[i].addr + (k + n) * INCR_PAGE < f->run_end) {
				f->runs[f->nruns - 1].npages++;
				f->npages++;
				n++;
			}
			if (img_read_data(r, p, to, n * INCR_PAGE, &crc))
				return -1;
			k += n;
		}
	}
	return img_data_end(r, p, crc, f->name);
}

/* A SHMDATA record of the image, copied a chunk at a time. */
struct shm_copy {
	struct feeder *f;
	uint64_t shm;
};

/* A chunk of it (img_read_chunks): a record of its own. */
static int copy_shm_chunk(void *arg, uint64_t off, uint64_t n, uint32_t crc)
{
	struct shm_copy *c = arg;
	struct img_run run = {off, n};

	(void)crc;
	return img_write_shmdata(&c->f->w, c->shm, &run, 1, c->f->buf, n);
}

/* The image's own SHMDATA or PAGES record: written again (its padding
 * depends on where it lands), a PAGES record's runs noted in stored. */
static int copy_rec(struct feeder *f, uint32_t type, void *buf, struct run_list *stored)
{
	struct shm_copy c = {f, 0};

	if (type == IMG_REC_PAGES)
		return copy_pages(f, buf, stored);
	c.shm = ((struct img_shmdata *)buf)->shm;
	/* SHMDATA names its object in the record: records of their own, a
	 * chunk of the run each. */
	return img_read_chunks(&f->child.r, buf, img_runs(type, buf), &f->buf, OUT_PAGES,
			       copy_shm_chunk, &c, f->name);
}

/* What read_child gathers. */
struct child {
	struct feeder *f;
	struct run_list *hashes, *reuse, *stored;
	int seen_pages;
};

/* One record of the image's page data (img_read_each). */
static int child_rec(void *arg, const struct img_rec *rec, void *buf)
{
	struct child *c = arg;
	struct feeder *f = c->f;

	switch (rec->type) {
	case IMG_REC_SHMDATA:
		if (c->seen_pages) {
			err_set("%s: SHMDATA record after PAGES", f->name);
			return -1;
		}
		/* fall through */
	case IMG_REC_PAGES:
		c->seen_pages |= rec->type == IMG_REC_PAGES;
		return copy_rec(f, rec->type, buf, c->stored);
	case IMG_REC_HASHES:
	case IMG_REC_REUSE: {
		struct run_list *l = rec->type == IMG_REC_HASHES ? c->hashes : c->reuse;
		if (incr_read_list(l, rec->type, buf, rec->len, f->child.im.proc.pid, &l->end) ||
		    incr_check_runs(&f->child.im, rec->type, buf))
			return -1;
		return 0;
	}
	case IMG_REC_END:
		return incr_read_end(&f->child, rec, buf) ? -1 : 1;
	default:
		err_set("record of type %u among the page data", rec->type);
		return -1;
	}
}

/* The rest of the image itself: its page data out, its lists in. */
static int read_child(struct feeder *f, struct run_list *hashes, struct run_list *reuse,
		      struct run_list *stored)
{
	struct child c = {f, hashes, reuse, stored, 0};

	return img_read_each(&f->child.r, child_rec, &c);
}

/* The first run of l that ends after addr (l sorted, apart). */
static size_t run_at(const struct run_list *l, uint64_t addr)
{
	size_t lo = 0, hi = l->nruns;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (l->runs[mid].addr + l->runs[mid].npages * INCR_PAGE <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Pages before each run of l, for page numbers. */
static uint64_t *prefix(const struct run_list *l)
{
	uint64_t *s = malloc((l->nruns + 1) * sizeof(*s));

	if (!s) {
		err_set("out of memory");
		return NULL;
	}
	s[0] = 0;
	for (size_t i = 0; i < l->nruns; i++)
		s[i + 1] = s[i] + l->runs[i].npages;
	return s;
}

struct taking {
	struct run_list *hashes, *reuse;
	uint64_t *hpre, *rpre;
	unsigned char *taken; /* a bit per REUSE page */
	uint64_t ntaken;
};

/* A page of the parent at addr: 1 if the image takes it (its hash
 * checked, marked taken), 0 if not, -1 if it cannot be taken. */
static int take_page(struct feeder *f, struct taking *t, uint64_t addr, const void *page)
{
	size_t i = run_at(t->reuse, addr), j;
	uint64_t n, hn, h[2];

	if (i == t->reuse->nruns || t->reuse->runs[i].addr > addr)
		return 0;
	n = t->rpre[i] + (addr - t->reuse->runs[i].addr) / INCR_PAGE;
	if (t->taken[n / 8] & (1u << (n % 8))) {
		err_set("%s: parent image %s holds page %#llx twice", f->name, f->parent,
			(unsigned long long)addr);
		return -1;
	}
	j = run_at(t->hashes, addr);
	if (j == t->hashes->nruns || t->hashes->runs[j].addr > addr) {
		err_set("%s: page %#llx is taken from the parent but has no hash", f->name,
			(unsigned long long)addr);
		return -1;
	}
	hn = t->hpre[j] + (addr - t->hashes->runs[j].addr) / INCR_PAGE;
	incr_hash_page(&f->key, page, h);
	if (h[0] != t->hashes->h[hn][0] || h[1] != t->hashes->h[hn][1]) {
		err_set("%s: parent image %s: page %#llx differs from the one %s was dumped "
			"against (the parent is damaged or was replaced)",
			f->name, f->parent, (unsigned long long)addr, f->name);
		return -1;
	}
	t->taken[n / 8] |= 1u << (n % 8);
	t->ntaken++;
	return 1;
}

/* n pages of the parent read into chunk, from addr on, crc their CRC:
 * those the image takes written out.  Where it takes them all and they
 * lie in one region of the image (the common case: most pages did not
 * change), the chunk is a PAGES record as it is, its CRC known already;
 * else the pages taken join the batch. */
static int take_chunk(struct feeder *f, struct taking *t, uint64_t addr, const unsigned char *chunk,
		      uint64_t n, uint32_t crc)
{
	static unsigned char took[OUT_PAGES];
	uint64_t ntook = 0;

	for (uint64_t j = 0; j < n; j++) {
		int k = take_page(f, t, addr + j * INCR_PAGE, chunk + j * INCR_PAGE);
		if (k < 0)
			return -1;
		took[j] = k;
		ntook += k;
	}
	if (ntook == n && region_end(&f->child.im, addr) >= addr + n * INCR_PAGE) {
		struct img_run run = {addr, n};
		return flush_out(f) || img_write_pages_crc(&f->w, &run, 1, chunk, n, crc) ? -1 : 0;
	}
	for (uint64_t j = 0; j < n; j++) {
		unsigned char *to;
		if (!took[j])
			continue;
		if (!(to = out_page(f, addr + j * INCR_PAGE)))
			return -1;
		memcpy(to, chunk + j * INCR_PAGE, INCR_PAGE);
	}
	return 0;
}

/* Where read_pages puts each chunk of the parent's page data. */
struct sink {
	/* A chunk of n pages from addr, of CRC crc, is in buf: 0, or -1 to
	 * stop.  put may point buf elsewhere for the next chunk. */
	int (*put)(struct sink *s, uint64_t addr, uint64_t n, uint32_t crc);
	unsigned char *buf; /* OUT_PAGES pages */
};

/* What read_pages reads, and where it puts it. */
struct pages_in {
	const char *parent;
	struct img_input *p;
	struct sink *s;
	char who[PATH_MAX + 16]; /* "parent image PATH", for messages */
};

/* A chunk of the parent's pages (img_read_chunks) into the sink. */
static int sink_put(void *arg, uint64_t addr, uint64_t n, uint32_t crc)
{
	struct sink *s = arg;

	return s->put(s, addr, n, crc);
}

/* A PAGES record's data into the sink, a chunk at a time.  A MiB or more
 * a read: reads of a page each would cost the merge as much as the
 * copying.  Each chunk's CRC, taken once, is the record's part and, if
 * the chunk is written out whole, its own record's. */
static int put_pages(struct pages_in *in, struct img_pages *d)
{
	return img_read_chunks(&in->p->r, d, img_runs(IMG_REC_PAGES, d), &in->s->buf, OUT_PAGES,
			       sink_put, in->s, in->who);
}

/* One record of the parent's page data (img_read_each). */
static int pages_rec(void *arg, const struct img_rec *rec, void *buf)
{
	struct pages_in *in = arg;
	uint32_t crc = 0;

	switch (rec->type) {
	case IMG_REC_SHMDATA:
		return img_skip_data(&in->p->r, buf, &crc);
	case IMG_REC_PAGES:
		return put_pages(in, buf);
	case IMG_REC_END:
		return incr_read_end(in->p, rec, buf) ? -1 : 1;
	default:
		err_set("parent image %s: record of type %u among the page data", in->parent,
			rec->type);
		return -1;
	}
}

/* Read the parent's whole page data into s, checking each record's CRC. */
static int read_pages(const char *parent, struct img_input *p, struct sink *s)
{
	struct pages_in in = {parent, p, s, ""};

	snprintf(in.who, sizeof(in.who), "parent image %s", parent);
	return img_read_each(&p->r, pages_rec, &in);
}

/* Reading the parent (a copy, and its CRC) and taking its pages (a hash
 * each, and the write) cost about the same: a thread reads each chunk
 * into one of two buffers while this one takes the other's. */
struct relay {
	struct sink s; /* the reading thread's */
	const char *parent;
	struct img_input *p;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned char *bufs[2];
	struct {
		uint64_t addr, n;
		uint32_t crc;
		int full;
	} slot[2];
	int fill;	/* the slot the reader fills next */
	int done, stop; /* the reader: 1 at the END, -1 failed; stop: it must */
	char why[1024]; /* its error */
};

static int relay_put(struct sink *s, uint64_t addr, uint64_t n, uint32_t crc)
{
	struct relay *r = (struct relay *)s;
	int stop;

	pthread_mutex_lock(&r->mu);
	r->slot[r->fill].addr = addr;
	r->slot[r->fill].n = n;
	r->slot[r->fill].crc = crc;
	r->slot[r->fill].full = 1;
	r->fill ^= 1;
	pthread_cond_broadcast(&r->cv);
	while (r->slot[r->fill].full && !r->stop)
		pthread_cond_wait(&r->cv, &r->mu);
	stop = r->stop;
	pthread_mutex_unlock(&r->mu);
	s->buf = r->bufs[r->fill];
	return stop ? -1 : 0;
}

static void *relay_read(void *arg)
{
	struct relay *r = arg;
	int rc = read_pages(r->parent, r->p, &r->s);

	pthread_mutex_lock(&r->mu);
	if (rc)
		snprintf(r->why, sizeof(r->why), "%s", err_get());
	r->done = rc ? -1 : 1;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* One thread, one buffer: the sink takes each chunk as it comes. */
struct direct {
	struct sink s;
	struct feeder *f;
	struct taking *t;
};

static int direct_put(struct sink *s, uint64_t addr, uint64_t n, uint32_t crc)
{
	struct direct *d = (struct direct *)s;

	return take_chunk(d->f, d->t, addr, s->buf, n, crc);
}

/* Read the parent's whole page data, taking what REUSE lists. */
static int take_from_parent(struct feeder *f, struct img_input *p, struct taking *t)
{
	static unsigned char chunk[2][OUT_PAGES * INCR_PAGE];
	struct relay r = {.s = {relay_put, chunk[1]}, .parent = f->parent, .p = p,
			  .bufs = {chunk[0], chunk[1]}, .fill = 1};
	struct direct d = {{direct_put, chunk[0]}, f, t};
	pthread_t reader;
	int take = 1, rc = 0;

	if (pthread_mutex_init(&r.mu, NULL) || pthread_cond_init(&r.cv, NULL) ||
	    pthread_create(&reader, NULL, relay_read, &r))
		return read_pages(f->parent, p, &d.s);
	pthread_mutex_lock(&r.mu);
	for (;;) {
		uint64_t addr, n;
		uint32_t crc;

		while (!r.slot[take].full && !r.done)
			pthread_cond_wait(&r.cv, &r.mu);
		if (!r.slot[take].full)
			break;
		addr = r.slot[take].addr;
		n = r.slot[take].n;
		crc = r.slot[take].crc;
		pthread_mutex_unlock(&r.mu);
		rc = take_chunk(f, t, addr, r.bufs[take], n, crc);
		pthread_mutex_lock(&r.mu);
		r.slot[take].full = 0;
		take ^= 1;
		if (rc)
			r.stop = 1;
		pthread_cond_broadcast(&r.cv);
		if (rc)
			break;
	}
	pthread_mutex_unlock(&r.mu);
	pthread_join(reader, NULL);
	pthread_cond_destroy(&r.cv);
	pthread_mutex_destroy(&r.mu);
	if (rc)
		return -1;
	if (r.done < 0) {
		err_set("%s", r.why);
		return -1;
	}
	return 0;
}

static int feed(struct feeder *f)
{
	struct run_list hashes = {0}, reuse = {0}, stored = {0};
	struct taking t = {.hashes = &hashes, .reuse = &reuse};
	struct img_input p = {.r.fd = -1, .status_fd = -1};
	char found[PATH_MAX];
	int rc = -1;

	f->buf = malloc((size_t)OUT_PAGES * INCR_PAGE);
	if (!f->buf) {
		err_set("out of memory");
		return -1;
	}
	if (read_child(f, &hashes, &reuse, &stored) || flush_out(f))
		goto out;
	/* A page the image stores and takes from the parent too would be
	 * written twice, the parent's last: no such image is sound. */
	qsort(stored.runs, stored.nruns, sizeof(*stored.runs), incr_by_addr);
	for (size_t i = 0, j = 0; i < stored.nruns && j < reuse.nruns;) {
		uint64_t se = stored.runs[i].addr + stored.runs[i].npages * INCR_PAGE;
		uint64_t re = reuse.runs[j].addr + reuse.runs[j].npages * INCR_PAGE;
		if (se <= reuse.runs[j].addr) {
			i++;
		} else if (re <= stored.runs[i].addr) {
			j++;
		} else {
			err_set("%s: page %#llx is both stored and taken from the parent", f->name,
				(unsigned long long)(se > re ? reuse.runs[j].addr
							     : stored.runs[i].addr));
			goto out;
		}
	}
	if (reuse.npages) {
		if (open_parent(f->child.im.parent, f->name, &p, 1, f->child.trust, found,
				sizeof(found)))
			goto out;
		snprintf(f->parent, sizeof(f->parent), "%s", found);
		t.hpre = prefix(&hashes);
		t.rpre = prefix(&reuse);
		t.taken = calloc(reuse.npages / 8 + 1, 1);
		if (!t.hpre || !t.rpre || !t.taken) {
			err_set("out of memory");
			goto out;
		}
		if (take_from_parent(f, &p, &t)) {
			/* A merge or decompressor behind p that failed says why
			 * better than the cut stream it left. */
			img_input_fail(&p);
			goto out;
		}
		if (t.ntaken != reuse.npages) {
			uint64_t n = 0, at = 0;
			while (t.taken[n / 8] & (1u << (n % 8)))
				n++;
			for (size_t i = 0; i < reuse.nruns; i++)
				if (n < t.rpre[i + 1]) {
					at = reuse.runs[i].addr + (n - t.rpre[i]) * INCR_PAGE;
					break;
				}
			err_set("%s: parent image %s lacks %llu of the pages %s takes from it "
				"(the first at %#llx)",
				f->name, f->parent, (unsigned long long)(reuse.npages - t.ntaken),
				f->name, (unsigned long long)at);
			goto out;
		}
	}
	if (flush_out(f) || img_write_end(&f->w))
		goto out;
	rc = 0;
out:
	img_input_close(&p);
	run_list_free(&hashes);
	run_list_free(&reuse);
	run_list_free(&stored);
	free(t.hpre);
	free(t.rpre);
	free(t.taken);
	free(f->buf);
	return rc;
}

/* Close every fd but the ones in keep (n of them), and put /dev/null on
 * 0, 1 and 2, so that the files the merge opens get fds above them. */
static void only_fds(const int *keep, int n)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int null;

	if (d) {
		while ((e = readdir(d))) {
			int fd = atoi(e->d_name), k = 0;
			if (e->d_name[0] == '.' || fd == dirfd(d))
				continue;
			while (k < n && keep[k] != fd)
				k++;
			if (k == n)
				close(fd);
		}
		closedir(d);
	}
	null = open("/dev/null", O_RDWR);
	for (int fd = 0; fd < 3; fd++) {
		int k = 0;
		while (k < n && keep[k] != fd)
			k++;
		if (k == n && fd != null)
			dup2(null, fd);
	}
	if (null > 2)
		close(null);
}

/* The merging process's work (zio_spawn): NULL once the whole page data is
 * written on wfd, else why not. */
static const char *merge(void *arg, int wfd, int sfd)
{
	struct feeder *f = arg;
	int keep[4] = {f->child.r.fd, f->child.status_fd, wfd, sfd};
	const char *m;

	only_fds(keep, 4);
	f->w = (struct img_writer){
	    .fd = wfd, .off = f->child.r.off, .nrec = f->child.r.nrec, .npages = f->child.r.npages};
	incr_key_expand(&f->key, f->child.im.parent->d.key);
	if (feed(f) == 0)
		return NULL;
	m = err_get();
	/* A parent's merge failed: its reader said "decompress: ", and ours
	 * will say it again. */
	if (!strncmp(m, "decompress: ", 12))
		m += 12;
	return m;
}

/* The whole chain, checked before anything starts: a missing or replaced
 * parent is told now, in one line, not by the merge half way through. */
static int check_chain(const struct img_input *in, const char *path, const struct stat *file,
		       int *holds)
{
	const struct parent *p = in->im.parent;
	struct img_input cur = {.r.fd = -1, .status_fd = -1}, next;
	char child[PATH_MAX], found[PATH_MAX];

	snprintf(child, sizeof(child), "%s", path);
	for (int depth = 0; p; depth++) {
		struct stat st;
		if (depth > INCR_MAX_DEPTH) {
			img_input_close(&cur);
			err_set("%s: a chain of more than %d images", path, INCR_MAX_DEPTH);
			return -1;
		}
		if (open_parent(p, child, &next, 0, in->trust, found, sizeof(found))) {
			img_input_close(&cur);
			return -1;
		}
		img_input_close(&cur);
		cur = next;
		if (file && stat(found, &st) == 0 && st.st_dev == file->st_dev &&
		    st.st_ino == file->st_ino) {
			*holds = 1;
			break;
		}
		snprintf(child, sizeof(child), "%s", found);
		p = cur.im.parent;
	}
	img_input_close(&cur);
	return 0;
}

int incr_chain_holds(const struct img_input *in, const char *path, const struct stat *file)
{
	int holds = 0;

	/* A chain that cannot be followed holds nothing that can be lost. */
	if (in->im.parent && check_chain(in, path, file, &holds))
		return 0;
	return holds;
}

int incr_attach(struct img_input *in, const char *path)
{
	struct feeder *f;
	int fd, status_fd, rc;

	if (in->im.hdr.page_size != INCR_PAGE) {
		err_set("%s: incremental images need %d-byte pages", path, INCR_PAGE);
		return -1;
	}
	if (check_chain(in, path, NULL, NULL))
		return -1;
	f = calloc(1, sizeof(*f));
	if (!f) {
		err_set("out of memory");
		return -1;
	}
	f->child = *in;
	f->name = path;
	/* As the decompressor: a grandchild, so that the caller, which
	 * becomes the program, never sees it exit. */
	rc = zio_spawn("the merging process", merge, f, &fd, &status_fd);
	free(f);
	if (rc)
		return -1;
	/* The merge has the image's stream and its decompressor now. */
	if (in->r.fd > 0)
		close(in->r.fd);
	if (in->status_fd >= 0)
		close(in->status_fd);
	in->r.fd = fd;
	in->status_fd = status_fd;
	return 0;
}

/* ---- ckpt-inspect's chain ------------------------------------------------ */

/* Pages of want in [addr, addr + n pages). */
static uint64_t overlap(const struct run_list *want, uint64_t addr, uint64_t n)
{
	uint64_t end = addr + n * INCR_PAGE, sum = 0;

	for (size_t i = run_at(want, addr); i < want->nruns && want->runs[i].addr < end; i++) {
		uint64_t a = want->runs[i].addr > addr ? want->runs[i].addr : addr;
		uint64_t e = want->runs[i].addr + want->runs[i].npages * INCR_PAGE;
		sum += ((e < end ? e : end) - a) / INCR_PAGE;
	}
	return sum;
}

/* want becomes the pages of both want and l (each sorted, runs apart). */
static int intersect(struct run_list *want, const struct run_list *l)
{
	struct img_run *out = malloc((want->nruns + l->nruns + 1) * sizeof(*out));
	size_t n = 0, i = 0, j = 0;

	if (!out) {
		err_set("out of memory");
		return -1;
	}
	want->npages = 0;
	while (i < want->nruns && j < l->nruns) {
		uint64_t wa = want->runs[i].addr, we = wa + want->runs[i].npages * INCR_PAGE;
		uint64_t la = l->runs[j].addr, le = la + l->runs[j].npages * INCR_PAGE;
		uint64_t a = wa > la ? wa : la, e = we < le ? we : le;
		if (a < e) {
			out[n++] = (struct img_run){a, (e - a) / INCR_PAGE};
			want->npages += (e - a) / INCR_PAGE;
		}
		if (we < le)
			i++;
		else
			j++;
	}
	free(want->runs);
	want->runs = out;
	want->nruns = want->cap = n;
	return 0;
}

/* Whether a parent lacks pages the chain below takes from it: every one
 * it was asked for it must give or take from its own parent. */
static int lacks(uint64_t wanted, uint64_t gives, uint64_t passed)
{
	if (gives + passed == wanted)
		return 0;
	err_set("lacks %llu of the pages the images below take from it",
		(unsigned long long)(wanted - gives - passed));
	return 1;
}

/* What scan_level counts of a parent. */
struct level {
	struct img_input *in;
	const struct run_list *want;
	uint64_t *stored, *gives;
	struct run_list *reuse;
	uint64_t hend;
};

/* One record of a parent's page data (img_read_each). */
static int level_rec(void *arg, const struct img_rec *rec, void *buf)
{
	struct level *lv = arg;
	struct img_input *in = lv->in;
	uint32_t crc;

	switch (rec->type) {
	case IMG_REC_SHMDATA:
		return img_skip_data(&in->r, buf, &crc);
	case IMG_REC_PAGES: {
		struct img_pages *d = buf;
		struct img_run *run = img_runs(rec->type, buf);
		for (uint32_t i = 0; i < d->nruns; i++)
			*lv->gives += overlap(lv->want, run[i].addr, run[i].npages);
		*lv->stored += d->npages;
		return img_skip_data(&in->r, buf, &crc);
	}
	case IMG_REC_HASHES:
	case IMG_REC_REUSE:
		if (!in->im.parent) {
			err_set("HASHES or REUSE record in an image without a PARENT record");
			return -1;
		}
		return incr_read_list(rec->type == IMG_REC_REUSE ? lv->reuse : NULL, rec->type, buf,
				      rec->len, in->im.proc.pid,
				      rec->type == IMG_REC_REUSE ? &lv->reuse->end : &lv->hend);
	case IMG_REC_END:
		return incr_read_end(in, rec, buf) ? -1 : 1;
	default:
		err_set("record of type %u among the page data", rec->type);
		return -1;
	}
}

/* Read a parent to its end: its own pages, how many of them the image at
 * the bottom of the chain gets (those of want), and its REUSE runs. */
static int scan_level(struct img_input *in, const struct run_list *want, uint64_t *stored,
		      uint64_t *gives, struct run_list *reuse)
{
	struct level lv = {in, want, stored, gives, reuse, 0};

	return img_read_each(&in->r, level_rec, &lv);
}

/* A parent of the chain that cannot be followed, and why (state). */
static void print_chain_state(FILE *f, int json, int n, const char *path, const char *state)
{
	if (json) {
		fprintf(f, "%s{\"path\":", n ? "," : "");
		json_str(f, path, strlen(path));
		fprintf(f, ",\"state\":\"%s\"}", state);
	} else {
		fprintf(f, "chain %d:  %s: %s\n", n + 1, path, state);
	}
}

/* A parent of the chain found whole: what it stores, takes and gives. */
static void print_chain_found(FILE *f, int json, int n, const char *path,
			      const struct img_input *cur, uint64_t stored, uint64_t takes,
			      uint64_t gives)
{
	char t1[64], b1[32], b2[32];

	if (json) {
		fprintf(f, "%s{\"path\":", n ? "," : "");
		json_str(f, path, strlen(path));
		fprintf(f,
			",\"state\":\"found\",\"created\":%lld,\"incremental\":%s,"
			"\"stored_pages\":%llu,\"reused_pages\":%llu,\"given_pages\":%llu}",
			(long long)cur->im.hdr.ctime, cur->im.parent ? "true" : "false",
			(unsigned long long)stored, (unsigned long long)takes,
			(unsigned long long)gives);
		return;
	}
	fprintf(f, "chain %d:  %s: found, created %s, %s, stores %s", n + 1, path,
		fmt_time(t1, sizeof(t1), cur->im.hdr.ctime),
		cur->im.parent ? "incremental" : "full image",
		fmt_bytes(b1, sizeof(b1), stored * INCR_PAGE));
	if (cur->im.parent)
		fprintf(f, ", takes %s", fmt_bytes(b2, sizeof(b2), takes * INCR_PAGE));
	fprintf(f, "; gives %s\n", fmt_bytes(b2, sizeof(b2), gives * INCR_PAGE));
}

int incr_print_chain(FILE *f, const char *path, const struct img_input *top, int json)
{
	const struct parent *p = top->im.parent;
	struct img_input cur = {.r.fd = -1, .status_fd = -1}, next;
	char child[PATH_MAX], found[PATH_MAX];
	struct run_list want = {0};
	int rc = 0, n = 0;

	/* What the image takes from its parent, followed up the chain: each
	 * parent gives what it stores of it and passes the rest on. */
	if (p->reuse_runs && p->reuse_runs->nruns) {
		want.runs = malloc(p->reuse_runs->nruns * sizeof(*want.runs));
		if (!want.runs) {
			err_set("out of memory");
			return -1;
		}
		memcpy(want.runs, p->reuse_runs->runs, p->reuse_runs->nruns * sizeof(*want.runs));
		want.nruns = want.cap = p->reuse_runs->nruns;
		want.npages = p->reuse_runs->npages;
	}
	snprintf(child, sizeof(child), "%s", path ? path : "-");
	if (json)
		fprintf(f, "[");
	while (p) {
		struct run_list reuse = {0};
		uint64_t stored = 0, gives = 0, wanted = want.npages;
		if (open_parent(p, child, &next, 0, 0, found, sizeof(found))) {
			const char *why = err_get();
			const char *state = strstr(why, "dumped against") ? "replaced"
					    : strstr(why, ": missing (")  ? "missing"
									  : "unreadable";
			print_chain_state(f, json, n, p->path, state);
			rc = -1;
			break;
		}
		img_input_close(&cur);
		cur = next;
		if (scan_level(&cur, &want, &stored, &gives, &reuse) || intersect(&want, &reuse) ||
		    lacks(wanted, gives, want.npages)) {
			char why[1024];
			snprintf(why, sizeof(why), "%s", err_get());
			img_input_fail(&cur);
			err_set("%s: parent image %s: %s", child, found, why);
			print_chain_state(f, json, n, found, "damaged");
			run_list_free(&reuse);
			rc = -1;
			break;
		}
		print_chain_found(f, json, n, found, &cur, stored, reuse.npages, gives);
		run_list_free(&reuse);
		snprintf(child, sizeof(child), "%s", found);
		p = cur.im.parent;
		n++;
	}
	if (json)
		fprintf(f, "]");
	img_input_close(&cur);
	run_list_free(&want);
	return rc;
}
