/* memory.c: what the memory of an image needs of this kernel and machine,
 * checked before the point of no return. */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"
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

int rst_check_memory(const struct image *im)
{
	return check_guards(im);
}
