/* live.c: the parts of a live stream (ckpt-dump --live) that are not an
 * ordinary image: the PRECOPY records before it, read into staging memory
 * here as they come (the program still runs on the other side), and the
 * LIVE record of its image, which lists the pages the restore takes from
 * that staging memory (moved into place, not copied: restore/live.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"
#include "base/crc32c.h"
#include "image/image.h"

#define LIVE_ADDR_MAX (1ull << 47) /* x86-64 user space, 4-level paging */
#define STAGE_ALIGN (2ull << 20)   /* a huge page: mremap moves whole PMDs */

void img_live_free(struct live_rec *l)
{
	if (!l)
		return;
	free(l->runs);
	free(l);
}

int img_write_live(struct img_writer *w, const struct live_rec *l)
{
	return img_write_rec_tail(w, IMG_REC_LIVE, &l->d, sizeof(l->d), l->runs,
				  (size_t)l->d.nruns * sizeof(*l->runs));
}

/* Runs ascending, page-aligned, none empty or past user space, none
 * overlapping the next; their pages counted into *pages. */
static int check_runs(const struct img_run *r, uint64_t n, uint64_t *pages, const char *what)
{
	uint64_t ps = sysconf(_SC_PAGESIZE), prev = 0;

	*pages = 0;
	for (uint64_t i = 0; i < n; i++) {
		if (r[i].addr % ps || r[i].npages == 0 || r[i].addr < prev ||
		    r[i].npages > (LIVE_ADDR_MAX - r[i].addr) / ps) {
			err_set("%s: run %llu (%#llx, %llu pages) out of order or out of range",
				what, (unsigned long long)i, (unsigned long long)r[i].addr,
				(unsigned long long)r[i].npages);
			return -1;
		}
		prev = r[i].addr + r[i].npages * ps;
		*pages += r[i].npages;
	}
	return 0;
}

int img_parse_live(struct image *im, const void *buf, uint64_t len)
{
	struct live_rec *l;
	uint64_t pages;

	if (im->live) {
		err_set("second LIVE record");
		return -1;
	}
	if (len < sizeof(l->d)) {
		err_set("LIVE record: bad length");
		return -1;
	}
	if (!(l = calloc(1, sizeof(*l)))) {
		err_set("out of memory");
		return -1;
	}
	memcpy(&l->d, buf, sizeof(l->d));
	l->tracker = -1;
	if (l->d.nruns > IMG_LIVE_MAX_RUNS ||
	    len != sizeof(l->d) + (uint64_t)l->d.nruns * sizeof(struct img_run)) {
		err_set("LIVE record: bad length for %u runs", l->d.nruns);
		free(l);
		return -1;
	}
	if (l->d.nruns && !(l->runs = malloc(l->d.nruns * sizeof(*l->runs)))) {
		err_set("out of memory");
		free(l);
		return -1;
	}
	memcpy(l->runs, (const char *)buf + sizeof(l->d), l->d.nruns * sizeof(*l->runs));
	if (check_runs(l->runs, l->d.nruns, &pages, "LIVE record")) {
		img_live_free(l);
		return -1;
	}
	if (pages != l->d.npages) {
		err_set("LIVE record: %llu pages, but its runs hold %llu",
			(unsigned long long)l->d.npages, (unsigned long long)pages);
		img_live_free(l);
		return -1;
	}
	im->live = l;
	return 0;
}

void img_stage_free(struct img_input *in)
{
	for (size_t i = 0; i < in->nstage; i++)
		if (in->stage[i].mem)
			munmap(in->stage[i].mem, in->stage[i].end - in->stage[i].start);
	free(in->stage);
	in->stage = NULL;
	in->nstage = 0;
}

/* Staging memory for an area of len bytes at start: anonymous, reserved
 * without swap accounting, at an address congruent to start modulo a
 * huge page (so that moving it into place moves page tables whole), far
 * from where the program's own mappings usually are (the restore moves
 * it aside if one is there). */
static unsigned char *stage_map(uint64_t start, uint64_t len, uint64_t *hint)
{
	uint64_t want = (*hint & ~(STAGE_ALIGN - 1)) + start % STAGE_ALIGN, got;
	void *p = mmap((void *)want, len + STAGE_ALIGN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	got = (uint64_t)p + ((start - (uint64_t)p) % STAGE_ALIGN);
	if (got > (uint64_t)p)
		munmap(p, got - (uint64_t)p);
	munmap((void *)(got + len), (uint64_t)p + STAGE_ALIGN - got);
	*hint = got + len + 2 * STAGE_ALIGN;
	/* Huge pages where the kernel gives them: fewer faults as the data
	 * comes, and fewer page tables to move (or to copy, should the
	 * restore fork). */
	(void)madvise((void *)got, len, MADV_HUGEPAGE);
	return (unsigned char *)got;
}

static int rd(int fd, void *buf, size_t len, const char *what)
{
	ssize_t n = read_full(fd, buf, len);

	if (n < 0) {
		err_sys("cannot read %s", what);
		return -1;
	}
	if ((size_t)n < len) {
		err_set("live stream truncated in %s", what);
		return -1;
	}
	return 0;
}

static int stage_areas(struct img_input *in, const struct img_run *r, uint32_t n)
{
	uint64_t ps = sysconf(_SC_PAGESIZE), hint = 0x300000000000ull, pages;

	if (check_runs(r, n, &pages, "PRECOPY record of areas"))
		return -1;
	if (!(in->stage = calloc(n ? n : 1, sizeof(*in->stage)))) {
		err_set("out of memory");
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct img_stage *s = &in->stage[in->nstage];
		s->start = r[i].addr;
		s->end = r[i].addr + r[i].npages * ps;
		if (!(s->mem = stage_map(s->start, s->end - s->start, &hint))) {
			err_sys("cannot map %llu bytes to stage the pre-copy of %#llx",
				(unsigned long long)(s->end - s->start),
				(unsigned long long)s->start);
			return -1;
		}
		in->nstage++;
	}
	return 0;
}

/* The area that holds [addr, addr + len), or NULL. */
static struct img_stage *stage_of(struct img_input *in, uint64_t addr, uint64_t len)
{
	size_t lo = 0, hi = in->nstage;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (in->stage[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < in->nstage && in->stage[lo].start <= addr && len <= in->stage[lo].end - addr)
		return &in->stage[lo];
	return NULL;
}

static int stage_pages(int fd, struct img_input *in, const struct img_precopy *d,
		       const struct img_run *r)
{
	uint64_t ps = sysconf(_SC_PAGESIZE), pages;
	uint32_t crc = 0;

	if (check_runs(r, d->n, &pages, "PRECOPY record"))
		return -1;
	for (uint32_t i = 0; i < d->n; i++)
		if (!stage_of(in, r[i].addr, r[i].npages * ps)) {
			err_set(
			    "PRECOPY record: run %#llx (%llu pages) outside the pre-copied areas",
			    (unsigned long long)r[i].addr, (unsigned long long)r[i].npages);
			return -1;
		}
	/* Straight to where the restore will take them from: one copy. */
	for (uint32_t i = 0; i < d->n; i++) {
		struct img_stage *s = stage_of(in, r[i].addr, r[i].npages * ps);
		unsigned char *p = s->mem + (r[i].addr - s->start);

		if (rd(fd, p, r[i].npages * ps, "PRECOPY page data"))
			return -1;
		crc = img_crc(crc, p, r[i].npages * ps);
	}
	if (img_crc_bad(crc, d->data_crc)) {
		err_set("PRECOPY record: page data checksum mismatch");
		return -1;
	}
	in->staged += pages;
	return 0;
}

int img_live_receive(int fd, const char *path, struct img_input *in, unsigned char *next,
		     ssize_t *n)
{
	int have_areas = 0;

	for (;;) {
		struct img_rec rec;
		struct img_precopy d;
		struct img_run *runs;
		uint32_t crc, want;
		uint64_t rlen;
		int rc;

		if (rd(fd, &rec, 8, "a record")) /* a record's header, or the image's magic */
			goto fail;
		if (!memcmp(&rec, IMG_MAGIC, 8)) {
			if (!have_areas) {
				err_set("no PRECOPY record of areas before the image");
				goto fail;
			}
			memcpy(next, IMG_MAGIC, 8);
			*n = 8;
			return 0;
		}
		if (rd(fd, (char *)&rec + 8, sizeof(rec) - 8, "a record") ||
		    (rec.type == IMG_REC_PRECOPY && rec.len >= sizeof(d) &&
		     rd(fd, &d, sizeof(d), "a PRECOPY record")))
			goto fail;
		if (rec.type != IMG_REC_PRECOPY || rec.len < sizeof(d) ||
		    d.what >= IMG_PRECOPY_NWHAT || d.pad ||
		    (d.what == IMG_PRECOPY_AREAS) == have_areas ||
		    d.n > (d.what == IMG_PRECOPY_AREAS ? IMG_PRECOPY_MAX_AREAS
						       : IMG_PRECOPY_MAX_RUNS)) {
			err_set("record of type %u where a PRECOPY record (or the image) was due",
				rec.type);
			goto fail;
		}
		rlen = (uint64_t)d.n * sizeof(*runs);
		if (rec.len != sizeof(d) + rlen + d.npages * sysconf(_SC_PAGESIZE) ||
		    d.npages > (1ull << 40) ||
		    (d.what == IMG_PRECOPY_AREAS && (d.npages || d.data_crc))) {
			err_set("PRECOPY record: bad length %llu", (unsigned long long)rec.len);
			goto fail;
		}
		if (!(runs = malloc(rlen ? rlen : 1))) {
			err_set("out of memory");
			goto fail;
		}
		if (rd(fd, runs, rlen, "a PRECOPY record")) {
			free(runs);
			goto fail;
		}
		want = rec.crc;
		rec.crc = 0;
		crc = img_crc(0, &rec, sizeof(rec));
		crc = img_crc(crc, &d, sizeof(d));
		crc = img_crc(crc, runs, rlen);
		if (img_crc_bad(crc, want)) {
			err_set("PRECOPY record: checksum mismatch");
			free(runs);
			goto fail;
		}
		rc = d.what == IMG_PRECOPY_AREAS ? stage_areas(in, runs, d.n)
						 : stage_pages(fd, in, &d, runs);
		free(runs);
		if (rc)
			goto fail;
		have_areas = 1;
	}
fail:;
	char why[1024];
	snprintf(why, sizeof(why), "%s", err_get());
	err_set("%s: live stream: %s", path, why);
	img_stage_free(in);
	return -1;
}
