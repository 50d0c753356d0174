/* live.c: the restore of a live stream (ckpt-dump --live).  Its pre-copied
 * pages are staged in this process's memory already (image/live.c read
 * them there as they came); the image's LIVE record says which of them
 * the program gets.  Copying them again after the freeze would cost a
 * second pass over all of memory while the program waits: the restorer
 * moves them into place with mremap instead (page tables move, no page
 * is copied; whole page-middle tables where a run covers them), then
 * drops what is left of the staging memory, then reads the page data of
 * the image over them as for any image. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"
#include "restore/live-internal.h"

#define STAGE_ALIGN (2ull << 20)
#define ROUND64(x) (((x) + 63) & ~(uint64_t)63)

uint64_t rst_live_len(const struct img_input *in)
{
	uint64_t n = in->im.live ? in->im.live->d.nruns : 0, m = in->nstage + in->im.nregions;

	/* Moves: at most one per area and region; drops: one more than the
	 * runs kept in each move. */
	return (2 * m + n + 8) * sizeof(struct rst_move) + in->nstage * sizeof(struct rst_range) +
	       256;
}

static int clashes(const struct image *im, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < im->nregions; i++)
		if (im->regions[i].d.start < end && start < im->regions[i].d.end)
			return 1;
	return 0;
}

/* Staging memory where the program will have a region goes elsewhere,
 * before the point of no return (a move, no copy). */
static int move_aside(const struct image *im, struct img_stage *s)
{
	uint64_t len = s->end - s->start, mem = (uint64_t)s->mem;

	if (!clashes(im, mem, mem + len))
		return 0;
	for (uint64_t h = 0x100000000000ull; h + len < 0x7e0000000000ull; h += 1ull << 40) {
		uint64_t want = h + s->start % STAGE_ALIGN;
		void *p;

		if (clashes(im, want, want + len))
			continue;
		/* Reserved first: MREMAP_FIXED would replace whatever is
		 * there. */
		p = mmap((void *)want, len, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED)
			continue;
		if (p != (void *)want) {
			munmap(p, len);
			continue;
		}
		if (mremap(s->mem, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, p) != p) {
			err_sys("cannot move the staged pre-copy of %#llx aside",
				(unsigned long long)s->start);
			munmap(p, len);
			return -1;
		}
		s->mem = p;
		return 0;
	}
	err_set("no room to move the staged pre-copy of %#llx aside", (unsigned long long)s->start);
	return -1;
}

static const struct img_stage *stage_of(const struct img_input *in, uint64_t addr, uint64_t len)
{
	for (size_t i = 0; i < in->nstage; i++)
		if (in->stage[i].start <= addr && len <= in->stage[i].end - addr &&
		    addr < in->stage[i].end)
			return &in->stage[i];
	return NULL;
}

/* The anonymous private map of the restorer's that holds the run whole. */
static int in_anon_map(const struct rst_map *maps, size_t nmaps, uint64_t addr, uint64_t len)
{
	for (size_t i = 0; i < nmaps; i++)
		if (maps[i].start <= addr && addr + len <= maps[i].end)
			return maps[i].fd < 0 && maps[i].shmid < 0 && maps[i].fill &&
			       !(maps[i].flags & MAP_SHARED);
	return 0;
}

/* The next kept run at or after addr (index into l->runs), from *k on. */
static uint32_t next_kept(const struct live_rec *l, uint32_t k, uint64_t addr, uint64_t ps)
{
	while (k < l->d.nruns && l->runs[k].addr + l->runs[k].npages * ps <= addr)
		k++;
	return k;
}

int rst_live_plan(struct img_input *in, const struct rst_map *maps, size_t nmaps,
		  struct rst_args *a, unsigned char *base, uint64_t *off)
{
	const struct live_rec *l = in->im.live;
	uint64_t ps = sysconf(_SC_PAGESIZE), kept = 0, room = rst_live_len(in);
	struct rst_move *mv = (struct rst_move *)(base + *off), *dr;
	struct rst_range *drop, *zr;
	uint64_t nmv = 0, ndr = 0;
	uint32_t k = 0;

	if (l && !in->nstage && l->d.nruns) {
		err_set("the image takes %llu pages from a pre-copy that is not there (a live "
			"stream's image without the stream's beginning)",
			(unsigned long long)l->d.npages);
		return -1;
	}
	for (size_t i = 0; i < in->nstage; i++)
		if (move_aside(&in->im, &in->stage[i]))
			return -1;
	/* Every kept run within one area and one private anonymous region. */
	for (uint32_t i = 0; l && i < l->d.nruns; i++) {
		uint64_t len = l->runs[i].npages * ps;
		if (!stage_of(in, l->runs[i].addr, len) ||
		    !in_anon_map(maps, nmaps, l->runs[i].addr, len)) {
			err_set("LIVE record: run %#llx (%llu pages) is not within one pre-copied "
				"area and one private anonymous region",
				(unsigned long long)l->runs[i].addr,
				(unsigned long long)l->runs[i].npages);
			return -1;
		}
	}
	zr = malloc((l ? l->d.nruns : 0) * sizeof(*zr) +
		    (2 * (in->nstage + nmaps) + 1) * sizeof(*zr));
	if (!zr) {
		err_set("out of memory");
		return -1;
	}
	/* Whole pieces move (an area where a region has it): page tables
	 * move whole, huge pages stay whole.  What in them is not kept is
	 * dropped after the move (the image's page data then writes those
	 * it has). */
	for (size_t i = 0; l && l->d.nruns && i < in->nstage; i++) {
		const struct img_stage *s = &in->stage[i];
		for (size_t j = 0; j < nmaps; j++) {
			uint64_t from, to, at;
			if (maps[j].end <= s->start || maps[j].start >= s->end ||
			    !in_anon_map(maps, nmaps, maps[j].start, maps[j].end - maps[j].start))
				continue;
			from = maps[j].start > s->start ? maps[j].start : s->start;
			to = maps[j].end < s->end ? maps[j].end : s->end;
			k = next_kept(l, k, from, ps);
			/* Nothing kept in it: nothing to move. */
			if (k == l->d.nruns || l->runs[k].addr >= to)
				continue;
			mv[nmv++] = (struct rst_move){(uint64_t)s->mem + (from - s->start), from,
						      to - from};
			for (at = from; at < to;) {
				k = next_kept(l, k, at, ps);
				uint64_t e =
				    k < l->d.nruns && l->runs[k].addr < to ? l->runs[k].addr : to;
				if (e > at)
					zr[ndr++] = (struct rst_range){at, e};
				if (e == to)
					break;
				at = l->runs[k].addr + l->runs[k].npages * ps;
				kept += l->runs[k].npages;
			}
		}
	}
	if (l && kept != l->d.npages) {
		free(zr);
		err_set("LIVE record: %llu of its %llu pages are in no region the pre-copy can "
			"give",
			(unsigned long long)(l->d.npages - kept), (unsigned long long)l->d.npages);
		return -1;
	}
	if ((nmv + ndr) * sizeof(*mv) > room) {
		free(zr);
		err_set("LIVE record: too many moves");
		return -1;
	}
	dr = mv + nmv;
	for (uint64_t i = 0; i < ndr; i++)
		dr[i] = (struct rst_move){0, zr[i].start, zr[i].end - zr[i].start};
	free(zr);
	a->nlive_moves = nmv;
	a->live_moves = (uint64_t)mv;
	a->nlive_zero = ndr;
	a->live_zero = (uint64_t)dr;
	*off += ROUND64((nmv + ndr) * sizeof(*mv));
	drop = (struct rst_range *)(base + *off);
	for (size_t i = 0; i < in->nstage; i++)
		drop[i] = (struct rst_range){(uint64_t)in->stage[i].mem,
					     (uint64_t)in->stage[i].mem + in->stage[i].end -
						 in->stage[i].start};
	a->nlive_drop = in->nstage;
	a->live_drop = (uint64_t)drop;
	*off += ROUND64(in->nstage * sizeof(*drop));
	return 0;
}

int rst_live_staged(const struct img_input *in, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < in->nstage; i++) {
		uint64_t m = (uint64_t)in->stage[i].mem;
		if (m <= start && end <= m + in->stage[i].end - in->stage[i].start)
			return 1;
	}
	return 0;
}
