/* memory.c: what the memory of an image needs of this kernel and machine,
 * checked before the point of no return. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds.h"
#include "restore/restore.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif

/* Whether this kernel installs guard pages in a mapping of this sort
 * (private anonymous since 6.13; shared and file mappings later): tried on
 * a page of our own. */
static int guard_works(int shared)
{
	long ps = sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, ps, PROT_READ | PROT_WRITE,
		       (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
	int ok;

	if (p == MAP_FAILED)
		return 0;
	ok = madvise(p, ps, MADV_GUARD_INSTALL) == 0;
	munmap(p, ps);
	return ok;
}

/* Guard pages (MADV_GUARD_INSTALL) are installed again after the point of
 * no return: the kernel must know the call for every sort of region that
 * has them. */
static int check_guards(const struct image *im)
{
	int tried[2] = {0, 0}, works[2] = {0, 0};

	for (size_t i = 0; i < im->nregions; i++) {
		const struct region *r = &im->regions[i];
		int sh = r->d.kind == IMG_RGN_FILE || r->d.kind == IMG_RGN_SHM;

		if (!(r->d.flags & IMG_RGN_GUARD))
			continue;
		if (!tried[sh]) {
			works[sh] = guard_works(sh);
			tried[sh] = 1;
		}
		if (!works[sh]) {
			err_set("region %#llx-%#llx: guard pages (MADV_GUARD_INSTALL) in a%s "
				"mapping, which this kernel cannot install",
				(unsigned long long)r->d.start, (unsigned long long)r->d.end,
				sh ? " shared or file" : "n anonymous");
			return -1;
		}
	}
	return 0;
}

int rst_exe_object(const struct image *im, const struct shm_made *sm)
{
	size_t l = strlen(im->exe);
	char path[64];

	if (l < 10 || strcmp(im->exe + l - 10, " (deleted)"))
		return -1;
	for (size_t i = 0; i < im->nregions; i++) {
		const struct region *r = &im->regions[i];
		size_t k;

		if (r->d.kind != IMG_RGN_SHM || !(r->d.prot & PROT_EXEC) || !r->path ||
		    strlen(r->path) != l - 10 || strncmp(r->path, im->exe, l - 10))
			continue;
		k = shm_index(im, r->d.dev, r->d.ino);
		if (k >= sm->n || sm->fd[k] < 0)
			return -1;
		return open(fmt_path(path, sizeof(path), "/proc/self/fd/%d", sm->fd[k]),
			    O_RDONLY | O_CLOEXEC);
	}
	return -1;
}

/* An AIO ring comes back through io_setup of (nr - 3) / 2 events, which
 * makes a ring of nr events where the kernel doubles the request and
 * rounds it up to pages as the dumping one did (and has no more CPUs than
 * keep it so): tried here, the context destroyed again. */
static int check_aio(const struct image *im)
{
	for (size_t i = 0; i < im->nregions; i++) {
		const struct region *r = &im->regions[i];
		unsigned long ctx = 0;
		uint32_t nr;

		if (r->d.kind != IMG_RGN_AIO)
			continue;
		if (syscall(SYS_io_setup, (unsigned)(r->d.fsize - 3) / 2, &ctx)) {
			err_sys("region %#llx-%#llx: cannot make an AIO context of %llu events "
				"(io_setup; fs.aio-max-nr?)",
				(unsigned long long)r->d.start, (unsigned long long)r->d.end,
				(unsigned long long)(r->d.fsize - 3) / 2);
			return -1;
		}
		nr = ((volatile uint32_t *)ctx)[1];
		syscall(SYS_io_destroy, ctx);
		if (nr != r->d.fsize) {
			err_set("region %#llx-%#llx: the AIO ring had %llu events; io_setup here "
				"makes one of %u",
				(unsigned long long)r->d.start, (unsigned long long)r->d.end,
				(unsigned long long)r->d.fsize, nr);
			return -1;
		}
	}
	return 0;
}

int rst_check_memory(const struct image *im)
{
	return check_guards(im) || check_aio(im);
}

/* Huge pages of 2^shift bytes this machine has free and unreserved. */
static uint64_t huge_free(unsigned shift, char *dir, size_t size)
{
	uint64_t v[2] = {0, 0};
	const char *names[2] = {"free_hugepages", "resv_hugepages"};

	snprintf(dir, size, "/sys/kernel/mm/hugepages/hugepages-%llukB",
		 (unsigned long long)(1ull << shift >> 10));
	for (int i = 0; i < 2; i++) {
		char path[160], buf[32];
		int fd = open(fmt_path(path, sizeof(path), "%s/%s", dir, names[i]),
			      O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

		if (fd >= 0)
			close(fd);
		if (n <= 0)
			return 0;
		buf[n] = 0;
		v[i] = strtoull(buf, NULL, 10);
	}
	return v[0] > v[1] ? v[0] - v[1] : 0;
}

/* What needs huge pages of 2^shift bytes: its pages in *need, the first
 * of it named in what. */
struct huge_need {
	uint64_t pages;
	char what[160];
};

static void need_region(struct huge_need *h, const struct region *r)
{
	if (!(r->d.flags & IMG_RGN_HUGETLB) || (r->d.flags & IMG_RGN_SHARED))
		return;
	if (!h[r->d.hshift].pages)
		snprintf(h[r->d.hshift].what, sizeof(h->what), "region %#llx-%#llx",
			 (unsigned long long)r->d.start, (unsigned long long)r->d.end);
	h[r->d.hshift].pages += (r->d.end - r->d.start) >> r->d.hshift;
}

static void need_object(struct huge_need *h, const struct shm_obj *o)
{
	unsigned s = IMG_SHM_HSHIFT(o->d.flags);

	if (!(o->d.flags & IMG_SHM_HUGETLB))
		return;
	if (!h[s].pages)
		snprintf(h[s].what, sizeof(h->what), "%s %s", img_shm_kind_name(o->d.kind),
			 o->name[0] ? o->name : "(shared anonymous memory)");
	h[s].pages += (o->d.size + (1ull << s) - 1) >> s;
}

int rst_check_hugetlb(struct img_input *in)
{
	struct huge_need h[64];

	memset(h, 0, sizeof(h));
	for (size_t k = 0; k <= in->nrest; k++) {
		const struct image *im = img_proc_at(in, k);
		for (size_t i = 0; i < im->nregions; i++)
			need_region(h, &im->regions[i]);
		if (!in->nobjs)
			for (size_t i = 0; i < im->nshms; i++)
				need_object(h, &im->shms[i]);
	}
	for (size_t i = 0; i < in->nobjs; i++)
		need_object(h, in->objs[i]);
	for (unsigned s = 0; s < 64; s++) {
		char dir[96], b[32];
		uint64_t have;

		if (!h[s].pages || (have = huge_free(s, dir, sizeof(dir))) >= h[s].pages)
			continue;
		err_set("%s: hugetlbfs memory: %llu huge pages of %s needed, %llu free here (%s)",
			h[s].what, (unsigned long long)h[s].pages,
			fmt_bytes(b, sizeof(b), 1ull << s), (unsigned long long)have, dir);
		return -1;
	}
	return 0;
}
