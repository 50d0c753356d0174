/* objects.c: a stream's SHM objects, each once, numbered as SHMDATA records number them. */
#include <stdint.h>
#include <stdlib.h>

#include "base/base.h"
#include "image/image.h"

int img_list_objects(struct image *const procs[], size_t n, struct shm_obj ***objs, size_t *nobjs,
		     uint64_t **number)
{
	size_t total = 0, r = 0;

	for (size_t k = 0; k < n; k++)
		total += procs[k]->nshms;
	*nobjs = 0;
	*objs = calloc(total + 1, sizeof(**objs));
	*number = calloc(total + 1, sizeof(**number));
	if (!*objs || !*number) {
		free(*objs);
		free(*number);
		*objs = NULL;
		*number = NULL;
		err_set("out of memory");
		return -1;
	}
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < procs[k]->nshms; i++, r++) {
			struct shm_obj *o = &procs[k]->shms[i];
			size_t j = 0;

			while (j < *nobjs &&
			       ((*objs)[j]->d.dev != o->d.dev || (*objs)[j]->d.ino != o->d.ino))
				j++;
			if (j == *nobjs)
				(*objs)[(*nobjs)++] = o;
			(*number)[r] = j;
		}
	return 0;
}
