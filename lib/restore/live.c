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

uint64_t rst_live_len(const struct img_input *in)
{
	uint64_t n = in->im.live ? in->im.live->d.nruns : 0;

	return n * sizeof(struct rst_move) + in->nstage * sizeof(struct rst_range) + 128;
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
	err_set("no room to move the staged pre-copy of %#llx aside",
		(unsigned long long)s->start);
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

int rst_live_plan(struct img_input *in, const struct rst_map *maps, size_t nmaps,
		  struct rst_args *a, unsigned char *base, uint64_t *off)
{
	const struct live_rec *l = in->im.live;
	uint64_t ps = sysconf(_SC_PAGESIZE);
	struct rst_move *mv;
	struct rst_range *drop;

	if (l && !in->nstage && l->d.nruns) {
		err_set("the image takes %llu pages from a pre-copy that is not there (a live "
			"stream's image without the stream's beginning)",
			(unsigned long long)l->d.npages);
		return -1;
	}
	for (size_t i = 0; i < in->nstage; i++)
		if (move_aside(&in->im, &in->stage[i]))
			return -1;
	mv = (struct rst_move *)(base + *off);
	for (uint32_t i = 0; l && i < l->d.nruns; i++) {
		uint64_t len = l->runs[i].npages * ps;
		const struct img_stage *s = stage_of(in, l->runs[i].addr, len);

		if (!s || !in_anon_map(maps, nmaps, l->runs[i].addr, len)) {
			err_set("LIVE record: run %#llx (%llu pages) is not within one pre-copied "
				"area and one private anonymous region",
				(unsigned long long)l->runs[i].addr,
				(unsigned long long)l->runs[i].npages);
			return -1;
		}
		mv[i] = (struct rst_move){(uint64_t)s->mem + (l->runs[i].addr - s->start),
					  l->runs[i].addr, len};
	}
	a->nlive_moves = l ? l->d.nruns : 0;
	a->live_moves = (uint64_t)mv;
	*off += ALIGN(a->nlive_moves * sizeof(*mv), 64);
	drop = (struct rst_range *)(base + *off);
	for (size_t i = 0; i < in->nstage; i++)
		drop[i] = (struct rst_range){(uint64_t)in->stage[i].mem,
					     (uint64_t)in->stage[i].mem + in->stage[i].end -
						 in->stage[i].start};
	a->nlive_drop = in->nstage;
	a->live_drop = (uint64_t)drop;
	*off += ALIGN(in->nstage * sizeof(*drop), 64);
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
