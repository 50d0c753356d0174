/* elsewhere.c: ckpt-remap --path-map and --setenv, a computation
 * restarted in another directory or environment (ckpt-remap(1)). */
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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
		if ((im->shms[i].d.kind == IMG_SHM_SAVED || im->shms[i].d.kind == IMG_SHM_FILE ||
		     im->shms[i].d.kind == IMG_SHM_TMPFS) &&
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

/* ---- --setenv, --unsetenv ------------------------------------------------ */

/* The changes, packed as the restorer takes them (restorer.h, env_edits). */
static char *edits;
static size_t edits_len;

int rst_env_edit(const char *arg, int set)
{
	size_t l = strlen(arg), nl = set ? strcspn(arg, "=") : l;
	char *n;

	if (!nl || (set && !arg[nl]) || (!set && strchr(arg, '='))) {
		err_set("--%s takes %s: %s", set ? "setenv" : "unsetenv",
			set ? "NAME=VALUE" : "NAME, without =", arg);
		return -1;
	}
	if (!(n = realloc(edits, edits_len + l + 2))) {
		err_set("out of memory");
		return -1;
	}
	edits = n;
	edits[edits_len] = set ? 's' : 'u';
	memcpy(edits + edits_len + 1, arg, l + 1);
	edits_len += l + 2;
	return 0;
}

uint64_t rst_env_len(void)
{
	return edits_len;
}

const void *rst_env_edits(void)
{
	return edits;
}

/* size bytes of fd at off, malloc'd; NULL if they cannot be read. */
static void *read_at(int fd, uint64_t off, uint64_t size)
{
	void *p = size && size < (256u << 20) ? malloc(size) : NULL;

	if (p && pread(fd, p, size, (off_t)off) != (ssize_t)size) {
		free(p);
		p = NULL;
	}
	return p;
}

/* The symbol environ or __environ, an object that the table of section sh
 * (its strings in strsh) defines: its value, 0 if none. */
static uint64_t find_environ(int fd, const Elf64_Shdr *sh, const Elf64_Shdr *strsh)
{
	Elf64_Sym *sym = read_at(fd, sh->sh_offset, sh->sh_size);
	char *str = read_at(fd, strsh->sh_offset, strsh->sh_size);
	uint64_t found = 0;

	for (uint64_t k = 0; sym && str && k < sh->sh_size / sizeof(*sym) && !found; k++) {
		const Elf64_Sym *y = &sym[k];

		if (y->st_shndx == SHN_UNDEF || !y->st_value ||
		    ELF64_ST_TYPE(y->st_info) != STT_OBJECT || y->st_name >= strsh->sh_size ||
		    !memchr(str + y->st_name, 0, strsh->sh_size - y->st_name))
			continue;
		if (!strcmp(str + y->st_name, "environ") || !strcmp(str + y->st_name, "__environ"))
			found = y->st_value;
	}
	free(sym);
	free(str);
	return found;
}

/* The address of the environ variable that the ELF file path (its first
 * page mapped at start) defines; 0 if none. */
static uint64_t elf_environ(const char *path, uint64_t start)
{
	Elf64_Ehdr eh;
	Elf64_Phdr *ph = NULL;
	Elf64_Shdr *sh = NULL;
	uint64_t found = 0, base = 0, low = UINT64_MAX;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || (eh.e_type != ET_DYN && eh.e_type != ET_EXEC) ||
	    eh.e_shentsize != sizeof(*sh) || eh.e_phentsize != sizeof(*ph) ||
	    !(ph = read_at(fd, eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(*ph))) ||
	    !(sh = read_at(fd, eh.e_shoff, (uint64_t)eh.e_shnum * sizeof(*sh))))
		goto out;
	for (int i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr < low)
			low = ph[i].p_vaddr & ~(uint64_t)4095;
	if (eh.e_type == ET_DYN && low != UINT64_MAX)
		base = start - low;
	/* The dynamic symbols first (what the dynamic linker binds), then a
	 * static program's own table. */
	for (uint32_t type = SHT_DYNSYM; !found && type; type = type == SHT_DYNSYM ? SHT_SYMTAB : 0)
		for (int i = 0; i < eh.e_shnum && !found; i++)
			if (sh[i].sh_type == type && sh[i].sh_entsize == sizeof(Elf64_Sym) &&
			    sh[i].sh_link < eh.e_shnum)
				found = find_environ(fd, &sh[i], &sh[sh[i].sh_link]);
	if (found)
		found += base;
out:
	free(ph);
	free(sh);
	close(fd);
	return found;
}

/* Whether [addr, addr + 8) is in a writable region of im. */
static int writable(const struct image *im, uint64_t addr)
{
	const struct region *r = img_find_region(im, addr);

	return r && (r->d.prot & PROT_WRITE) && addr + 8 <= r->d.end;
}

/* The file of the region at pgoff 0 that maps path: its start, 0 if none. */
static uint64_t load_start(const struct image *im, const char *path)
{
	for (size_t i = 0; i < im->nregions; i++)
		if (im->regions[i].d.kind == IMG_RGN_FILE && !im->regions[i].d.pgoff &&
		    !strcmp(im->regions[i].path, path))
			return im->regions[i].d.start;
	return 0;
}

int rst_env_find(const struct image *im, uint64_t *addr)
{
	uint64_t a = 0, start;

	*addr = 0;
	if (!edits_len)
		return 0;
	/* The executable first: a program that names environ has the
	 * variable itself (a copy relocation), and libc's code uses it. */
	if ((start = load_start(im, im->exe)))
		a = elf_environ(im->exe, start);
	for (size_t i = 0; !a && i < im->nregions; i++) {
		const struct region *r = &im->regions[i];

		if (r->d.kind == IMG_RGN_FILE && !r->d.pgoff && strcmp(r->path, im->exe))
			a = elf_environ(r->path, r->d.start);
	}
	if (!a || !writable(im, a)) {
		err_set("pid %d: --setenv, --unsetenv: no environ variable in its executable or "
			"libraries (a symbol table that names environ or __environ)",
			im->proc.pid);
		return -1;
	}
	*addr = a;
	return 0;
}
