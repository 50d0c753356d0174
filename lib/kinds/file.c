/* file.c: the kinds that are paths or streams: files, directories, devices, standard streams and
 * objects whose contents the image holds (shm.c).  restore/ opens them again itself; their FILE
 * records carry no extra bytes. */
#include "kinds/kinds-internal.h"

static int check_none(const unsigned char *x, uint32_t n)
{
	(void)x;
	return n ? -1 : 0;
}

const struct fd_ops fd_file_ops = {.name = "file", .check = check_none};
const struct fd_ops fd_dir_ops = {.name = "dir", .check = check_none};
const struct fd_ops fd_chr_ops = {.name = "chr", .check = check_none};
const struct fd_ops fd_inherit_ops = {.name = "inherit", .check = check_none};
const struct fd_ops fd_shm_ops = {.name = "shm", .check = check_none};
