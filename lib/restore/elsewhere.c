/* elsewhere.c: ckpt-remap --path-map, a computation restarted in another
 * directory (ckpt-remap(1)). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "restore/restore.h"

/* path moved from under old (olen bytes, no trailing slash) to under
 * new: a new malloc'd string into *out, 0; 1 if path is not under old;
 * -1 (err_set) if too long or out of memory. */
static int moved(const char *path, const char *old, size_t olen, const char *new, char **out)
{
	size_t plen = strlen(path), nlen = strlen(new);

	if (strncmp(path, old, olen) || (path[olen] && path[olen] != '/' && path[olen] != ' '))
		return 1;
	/* " (deleted)" may follow the path of a removed file or directory. */
	if (path[olen] == ' ' && strcmp(path + olen, " (deleted)"))
		return 1;
	if (plen - olen + nlen >= PATH_MAX) {
		err_set("--path-map: %s under %s is too long", path, new);
		return -1;
	}
	if (!(*out = malloc(plen - olen + nlen + 1))) {
		err_set("out of memory");
		return -1;
	}
	memcpy(*out, new, nlen);
	memcpy(*out + nlen, path + olen, plen - olen + 1);
	return 0;
}

/* *path (a malloc'd string, its length in *len if len) moved: replaced. */
static int move_str(char **path, uint32_t *len, const char *old, size_t olen, const char *new)
{
	char *to;
	int rc = moved(*path, old, olen, new, &to);

	if (rc)
		return rc < 0 ? -1 : 0;
	free(*path);
	*path = to;
	if (len)
		*len = (uint32_t)strlen(to);
	return 0;
}

/* The kinds of fd reopened by their path. */
static int by_path(uint32_t kind)
{
	return kind == IMG_FD_REG || kind == IMG_FD_DIR || kind == IMG_FD_FIFO ||
	       kind == IMG_FD_OPATH || kind == IMG_FD_DELDIR;
}

static int map_image(struct image *im, const char *old, size_t olen, const char *new)
{
	if (move_str(&im->cwd, &im->proc.cwd_len, old, olen, new) ||
	    move_str(&im->exe, &im->proc.exe_len, old, olen, new))
		return -1;
	for (size_t i = 0; i < im->nregions; i++)
		if (im->regions[i].d.kind == IMG_RGN_FILE &&
		    move_str(&im->regions[i].path, &im->regions[i].d.path_len, old, olen, new))
			return -1;
	for (size_t i = 0; i < im->nfiles; i++)
		if (by_path(im->files[i].d.kind) &&
		    move_str(&im->files[i].path, &im->files[i].d.path_len, old, olen, new))
			return -1;
	for (size_t i = 0; i < im->nshms; i++)
		if ((im->shms[i].d.kind == IMG_SHM_SAVED || im->shms[i].d.kind == IMG_SHM_FILE) &&
		    move_str(&im->shms[i].name, &im->shms[i].d.name_len, old, olen, new))
			return -1;
	return 0;
}

int rst_path_map(struct img_input *in, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char old[PATH_MAX], new[PATH_MAX];
	size_t olen;

	if (!eq || (size_t)(eq - arg) >= sizeof(old) || strlen(eq + 1) >= sizeof(new)) {
		err_set("--path-map takes OLD=NEW: %s", arg);
		return -1;
	}
	memcpy(old, arg, (size_t)(eq - arg));
	olen = (size_t)(eq - arg);
	old[olen] = 0;
	strcpy(new, eq + 1);
	/* "/a/b/" is "/a/b"; "/" stays. */
	while (olen > 1 && old[olen - 1] == '/')
		old[--olen] = 0;
	for (size_t l = strlen(new); l > 1 && new[l - 1] == '/';)
		new[--l] = 0;
	for (size_t k = 0; k <= in->nrest; k++)
		if (map_image(img_proc_at(in, k), old, olen == 1 ? 0 : olen, new))
			return -1;
	return 0;
}
