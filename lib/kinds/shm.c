/* shm.c: memory objects and files whose contents the image holds. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

#define BATCH 256 /* pages per SHMDATA record */

#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26 /* <linux/memfd.h>: log2 of the huge page size */
#endif

/* ---- dumping ---------------------------------------------------------- */

struct shm_src {
	int fd;			 /* a readable file of the object, or -1 */
	int fdnum;		 /* an fd of the process that holds it, or -1 */
	unsigned char *resident; /* fd < 0: per page of the object, from mincore */
	uint64_t npages;	 /* pages resident covers */
	int err;		 /* why the fd could not be opened, or 0 */
};

struct shm_dump {
	struct shm_src *src;
	size_t n;
};

static int starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* The name an object keeps: a memfd's without "memfd:", a path without
 * " (deleted)". */
static char *object_name(const char *path, uint32_t kind)
{
	size_t l;
	char *s;

	if (kind == IMG_SHM_MEMFD && starts(path, "/memfd:"))
		path += 7;
	if (kind == IMG_SHM_ANON || kind == IMG_SHM_SYSV)
		path = "";
	s = strdup(path);
	if (!s)
		return NULL;
	l = strlen(s);
	if (l > 10 && !strcmp(s + l - 10, " (deleted)"))
		s[l - 10] = 0;
	return s;
}

static struct shm_obj *add_object(struct image *im, struct shm_dump *sd, uint64_t dev,
				  uint64_t ino, uint32_t kind, const char *path)
{
	struct shm_obj *o = img_find_shm(im, dev, ino), *no;
	struct shm_src *ns;

	if (o)
		return o;
	no = realloc(im->shms, (im->nshms + 1) * sizeof(*no));
	if (no)
		im->shms = no;
	ns = realloc(sd->src, (sd->n + 1) * sizeof(*ns));
	if (ns)
		sd->src = ns;
	if (!no || !ns) {
		err_set("out of memory");
		return NULL;
	}
	o = &im->shms[im->nshms];
	memset(o, 0, sizeof(*o));
	o->d.dev = dev;
	o->d.ino = ino;
	o->d.kind = kind;
	o->d.mode = 0600;
	if (!(o->name = object_name(path, kind))) {
		err_set("out of memory");
		return NULL;
	}
	o->d.name_len = strlen(o->name);
	sd->src[sd->n] = (struct shm_src){.fd = -1, .fdnum = -1};
	im->nshms++;
	sd->n++;
	return o;
}

/* What a deleted mapping is, by the name the kernel gives it. */
static uint32_t region_object_kind(const struct region *r)
{
	if (r->tmpfs)
		return IMG_SHM_TMPFS;
	if (starts(r->path, "/SYSV"))
		return IMG_SHM_SYSV;
	if (starts(r->path, "/memfd:"))
		return IMG_SHM_MEMFD;
	if ((!strcmp(r->path, "/dev/zero") || !strcmp(r->path, "/anon_hugepage")) &&
	    (r->d.flags & IMG_RGN_SHARED))
		return IMG_SHM_ANON;
	return IMG_SHM_FILE;
}

/* System V segment shmid as /proc/sysvipc/shm lists it: key, mode (with
 * SHM_DEST when its id was removed), size. */
static int sysv_info(int shmid, int32_t *key, uint32_t *mode, uint64_t *size, int *nattch)
{
	char line[512];
	FILE *f = fopen("/proc/sysvipc/shm", "re");
	int found = -1;

	if (!f) {
		err_sys("cannot open /proc/sysvipc/shm");
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		long long k;
		unsigned long long sz;
		int id, m, na, cpid, lpid;
		if (sscanf(line, "%lld %d %o %llu %d %d %d", &k, &id, &m, &sz, &cpid, &lpid, &na) ==
			    7 &&
		    id == shmid) {
			*key = (int32_t)k;
			*mode = m;
			*size = sz;
			*nattch = na;
			found = 0;
		}
	}
	fclose(f);
	if (found)
		err_set("System V shared memory id %d is not in /proc/sysvipc/shm", shmid);
	return found;
}

/* An fd's file, for reading, where its mode does not let us open it
 * (a deleted file of mode 0200 a program writes): a duplicate of another
 * fd of the process open on it for reading (pread moves no offset), or,
 * the file being ours, opened with the owner's read permission lent for
 * the moment (its ctime changes). */
static int open_unreadable(pid_t pid, const struct image *im, const struct shm_obj *o,
			   const char *path)
{
	struct stat sb;
	int fd = -1;

	for (size_t i = 0; i < im->nfiles && fd < 0; i++) {
		const struct fd_entry *f = &im->files[i];
		if (f->d.dev == o->d.dev && f->d.ino == o->d.ino &&
		    (f->d.flags & O_ACCMODE) != O_WRONLY && !(f->d.flags & O_PATH))
			fd = fd_getfd(pid, f->d.fd);
	}
	if (fd >= 0 || stat(path, &sb) || sb.st_uid != geteuid() || (sb.st_mode & S_IRUSR) ||
	    chmod(path, (sb.st_mode & 07777) | S_IRUSR))
		return fd;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (chmod(path, sb.st_mode & 07777) && fd >= 0) {
		err_sys("pid %d: cannot give %s its mode %o back", pid, o->name,
			sb.st_mode & 07777);
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Open the object's contents, by the best way there is. */
static int open_source(pid_t pid, const struct image *im, const struct shm_obj *o,
		       struct shm_src *s, const char *exe_id)
{
	char path[128];
	struct stat sb;

	if (s->fdnum >= 0) {
		fmt_path(path, sizeof(path), "/proc/%d/fd/%d", pid, s->fdnum);
		/* Reading it leaves its atime, where we may (its owner). */
		s->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME);
		if (s->fd < 0 && errno == EPERM)
			s->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (s->fd < 0 && errno == EACCES)
			s->fd = open_unreadable(pid, im, o, path);
		if (s->fd < 0)
			s->err = errno;
	}
	/* A tmpfs file is there at its path (no link followed: the path was
	 * recorded resolved); the inode is checked below. */
	if (s->fd < 0 && o->d.kind == IMG_SHM_TMPFS) {
		s->fd = open(o->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME);
		if (s->fd < 0 && errno == EPERM)
			s->fd = open(o->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	for (size_t i = 0; s->fd < 0 && i < im->nregions; i++) {
		const struct region *r = &im->regions[i];
		if (r->d.kind != IMG_RGN_SHM || r->d.dev != o->d.dev || r->d.ino != o->d.ino)
			continue;
		s->fd = open(fmt_path(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", pid,
				      (unsigned long long)r->d.start, (unsigned long long)r->d.end),
			     O_RDONLY | O_CLOEXEC);
		break;
	}
	if (s->fd < 0 && exe_id) {
		char id[64];
		snprintf(id, sizeof(id), "%llu:%llu", (unsigned long long)o->d.dev,
			 (unsigned long long)o->d.ino);
		if (!strcmp(id, exe_id))
			s->fd = open(fmt_path(path, sizeof(path), "/proc/%d/exe", pid),
				     O_RDONLY | O_CLOEXEC);
	}
	if (s->fd < 0)
		return 0;
	if (fstat(s->fd, &sb) || (uint64_t)sb.st_dev != o->d.dev ||
	    (uint64_t)sb.st_ino != o->d.ino) {
		close(s->fd);
		s->fd = -1;
		return 0;
	}
	return 1;
}

/* The objects the process maps shared, each as large as its furthest
 * mapping reaches. */
static int region_objects(struct image *im, struct shm_dump *sd)
{
	for (size_t i = 0; i < im->nregions; i++) {
		const struct region *r = &im->regions[i];
		struct shm_obj *o;
		uint64_t end;

		if (r->d.kind != IMG_RGN_SHM)
			continue;
		o = add_object(im, sd, r->d.dev, r->d.ino, region_object_kind(r), r->path);
		if (!o)
			return -1;
		if (r->d.flags & IMG_RGN_HUGETLB)
			o->d.flags |= IMG_SHM_HUGETLB | r->d.hshift << 8;
		end = r->d.pgoff + (r->d.end - r->d.start);
		if (end > o->d.size)
			o->d.size = end;
	}
	return 0;
}

/* The objects its fds are open on: deleted files and memfds, and with
 * save_files every regular file (up to save_max bytes, unless 0).  The
 * first fd of each is where its contents are read from. */
static int fd_objects(struct image *im, struct shm_dump *sd, int save_files, uint64_t save_max)
{
	for (size_t i = 0; i < im->nfiles; i++) {
		const struct fd_entry *f = &im->files[i];
		struct shm_obj *o;

		if (f->d.kind == IMG_FD_SHM)
			o = add_object(im, sd, f->d.dev, f->d.ino,
				       starts(f->path, "/memfd:") ? IMG_SHM_MEMFD : IMG_SHM_FILE,
				       f->path);
		else if (f->d.kind == IMG_FD_REG && save_files && (!save_max || f->d.size <= save_max))
			o = add_object(im, sd, f->d.dev, f->d.ino, IMG_SHM_SAVED, f->path);
		/* A tmpfs file it maps shared: its fd is one more way to read it. */
		else if (f->d.kind == IMG_FD_REG && (o = img_find_shm(im, f->d.dev, f->d.ino)) &&
			 o->d.kind == IMG_SHM_TMPFS)
			;
		else
			continue;
		if (!o)
			return -1;
		if (sd->src[o - im->shms].fdnum < 0)
			sd->src[o - im->shms].fdnum = f->d.fd;
	}
	return 0;
}

/* A tmpfs file's owner and mtime, as the image keeps them. */
static void describe_tmpfs(struct shm_obj *o, const struct stat *sb)
{
	o->tmpfs.uid = sb->st_uid;
	o->tmpfs.gid = sb->st_gid;
	o->tmpfs.mtime_sec = sb->st_mtim.tv_sec;
	o->tmpfs.mtime_nsec = sb->st_mtim.tv_nsec;
}

/* An object with a file to read: its size, mode and seals are the file's. */
static int describe_by_file(pid_t pid, struct shm_obj *o, const struct shm_src *s)
{
	struct statfs fs;
	struct stat sb;
	int seals;

	if (fstat(s->fd, &sb)) {
		err_sys("pid %d: cannot stat %s", pid, o->name);
		return -1;
	}
	o->d.size = sb.st_size;
	o->d.mode = sb.st_mode & 07777;
	o->by_file = 1;
	if (o->d.kind == IMG_SHM_TMPFS)
		describe_tmpfs(o, &sb);
	/* A memfd_create(MFD_HUGETLB) file: made again of the same pages. */
	if (!fstatfs(s->fd, &fs) && fs.f_type == HUGETLBFS_MAGIC && fs.f_bsize > 0 &&
	    !(fs.f_bsize & (fs.f_bsize - 1)) && IMG_HSHIFT_OK(__builtin_ctzl(fs.f_bsize)))
		o->d.flags |= IMG_SHM_HUGETLB | (uint32_t)__builtin_ctzl(fs.f_bsize) << 8;
	/* Other shmem files answer F_SEAL_SEAL: only a memfd's count. */
	seals = o->d.kind == IMG_SHM_MEMFD ? fcntl(s->fd, F_GET_SEALS) : 0;
	o->d.seals = seals > 0 ? (uint32_t)seals : 0;
	return 0;
}

/* A System V segment: its key, size and mode, and whether it is removed
 * already (IPC_RMID, kept while attached). */
static int describe_sysv(struct shm_obj *o)
{
	uint32_t mode;
	int nattch;
	uint64_t size;

	if (sysv_info((int)o->d.ino, &o->d.key, &mode, &size, &nattch))
		return -1;
	o->d.size = size;
	o->d.mode = mode & 0777;
	if (mode & SHM_DEST)
		o->d.flags |= IMG_SHM_RMID;
	return 0;
}

static int mapped_shared(const struct image *im, const struct shm_obj *o)
{
	for (size_t k = 0; k < im->nregions; k++) {
		const struct region *r = &im->regions[k];
		if (r->d.kind == IMG_RGN_SHM && r->d.dev == o->d.dev && r->d.ino == o->d.ino &&
		    (r->d.flags & IMG_RGN_SHARED))
			return 1;
	}
	return 0;
}

/* An object without a file to read: its pages are read through the
 * process's memory, only the resident ones (shm_inject asks).  Only a
 * shared mapping shows the object's own pages. */
static int plan_resident(pid_t pid, const struct image *im, const struct shm_obj *o,
			 struct shm_src *s)
{
	long ps;

	/* Its errno is still open_source's: nothing before may change it. */
	if (o->d.kind == IMG_SHM_SAVED) {
		err_sys("pid %d: cannot read %s to save it", pid, o->name);
		return -1;
	}
	for (size_t k = 0; k < im->nregions; k++) {
		const struct region *r = &im->regions[k];
		if (r->d.kind == IMG_RGN_SHM && r->d.dev == o->d.dev && r->d.ino == o->d.ino &&
		    !(r->d.flags & IMG_RGN_SHARED)) {
			err_set("pid %d: region %#llx-%#llx is a private mapping of "
				"deleted file %s; reading the file needs an open fd to it "
				"or CAP_CHECKPOINT_RESTORE",
				pid, (unsigned long long)r->d.start, (unsigned long long)r->d.end,
				o->name);
			return -1;
		}
	}
	/* An fd's file that no shared mapping shows: nothing else to read. */
	if (s->fdnum >= 0 && !mapped_shared(im, o)) {
		err_set("pid %d: fd %d: cannot read %s to save it (%s); not supported", pid,
			s->fdnum, o->name, strerror(s->err ? s->err : EACCES));
		return -1;
	}
	ps = sysconf(_SC_PAGESIZE);
	s->npages = (o->d.size + ps - 1) / ps;
	s->resident = calloc(s->npages + 1, 1);
	if (!s->resident) {
		err_set("out of memory");
		return -1;
	}
	return 0;
}

/* Object i: a source of its contents, and what the image says of it. */
static int capture_object(pid_t pid, struct image *im, size_t i, struct shm_dump *sd,
			  const char *exe)
{
	struct shm_obj *o = &im->shms[i];
	struct shm_src *s = &sd->src[i];

	if (open_source(pid, im, o, s, exe) && describe_by_file(pid, o, s))
		return -1;
	if (o->d.kind == IMG_SHM_SYSV && describe_sysv(o))
		return -1;
	if (s->fd >= 0)
		return 0;
	/* A tmpfs file the dumper may not read (its mode): read through the
	 * process's mappings, its size and attributes by its path. */
	if (o->d.kind == IMG_SHM_TMPFS) {
		struct stat sb;
		int e = errno;

		if (stat(o->name, &sb) || (uint64_t)sb.st_dev != o->d.dev ||
		    (uint64_t)sb.st_ino != o->d.ino) {
			err_set("pid %d: tmpfs file %s, mapped shared, is no longer at its path",
				pid, o->name);
			return -1;
		}
		o->d.size = sb.st_size;
		o->d.mode = sb.st_mode & 07777;
		describe_tmpfs(o, &sb);
		errno = e;
	}
	return plan_resident(pid, im, o, s);
}

int shm_capture(pid_t pid, struct image *im, int save_files, uint64_t save_max,
		struct shm_dump **sdp)
{
	struct shm_dump *sd = calloc(1, sizeof(*sd));
	char exe_id[64], path[64];
	const char *exe = NULL;
	struct stat sb;

	*sdp = sd;
	if (!sd) {
		err_set("out of memory");
		return -1;
	}
	/* The executable's file: a deleted one is read through /proc/PID/exe. */
	if (!stat(fmt_path(path, sizeof(path), "/proc/%d/exe", pid), &sb)) {
		snprintf(exe_id, sizeof(exe_id), "%llu:%llu", (unsigned long long)sb.st_dev,
			 (unsigned long long)sb.st_ino);
		exe = exe_id;
	}
	if (region_objects(im, sd) || fd_objects(im, sd, save_files, save_max))
		return -1;
	for (size_t i = 0; i < im->nshms; i++)
		if (capture_object(pid, im, i, sd, exe))
			return -1;
	return 0;
}

int shm_inject(struct inj *c, const struct image *im, struct shm_dump *sd)
{
	long ps = sysconf(_SC_PAGESIZE);

	for (size_t i = 0; sd && i < sd->n; i++) {
		struct shm_src *s = &sd->src[i];
		const struct shm_obj *o = &im->shms[i];

		if (!s->resident)
			continue;
		for (size_t k = 0; k < im->nregions; k++) {
			const struct region *r = &im->regions[k];
			uint64_t first = r->d.pgoff / ps;

			/* A guard page shows nothing of the object under it. */
			if (r->d.kind != IMG_RGN_SHM || r->d.dev != o->d.dev || r->d.ino != o->d.ino ||
			    (r->d.flags & IMG_RGN_GUARD))
				continue;
			for (uint64_t a = r->d.start; a < r->d.end;) {
				unsigned char vec[INJ_SCRATCH];
				uint64_t n = (r->d.end - a) / ps, args[6] = {0}, idx;
				int64_t ret;

				if (n > INJ_SCRATCH)
					n = INJ_SCRATCH;
				args[0] = a;
				args[1] = n * ps;
				args[2] = c->scratch;
				if (inj_syscall(c, SYS_mincore, args, &ret))
					return -1;
				if (ret || inj_peek(c, vec, n)) {
					err_set("pid %d: mincore of %#llx failed (%lld)", im->proc.pid,
						(unsigned long long)a, (long long)ret);
					return -1;
				}
				idx = first + (a - r->d.start) / ps;
				for (uint64_t j = 0; j < n && idx + j < s->npages; j++)
					s->resident[idx + j] |= vec[j] & 1;
				a += n * ps;
			}
		}
	}
	return 0;
}

struct shm_writer {
	struct img_writer *w;
	void (*progress)(uint64_t done, uint64_t total, void *arg);
	void *progress_arg;
	uint64_t shm;
	long ps;
	unsigned char *buf;
	struct img_run runs[BATCH];
	uint32_t nruns;
	uint64_t npages;
};

static int sw_flush(struct shm_writer *sw)
{
	if (!sw->npages)
		return 0;
	if (img_write_shmdata(sw->w, sw->shm, sw->runs, sw->nruns, sw->buf, sw->npages))
		return -1;
	sw->nruns = 0;
	sw->npages = 0;
	if (sw->progress)
		sw->progress(sw->w->off, 0, sw->progress_arg);
	return 0;
}

/* The page at off now sits at the end of the buffer: keep it, unless it
 * is all zero (the object has a hole there after the restore too). */
static int sw_keep(struct shm_writer *sw, uint64_t off)
{
	unsigned char *p = sw->buf + sw->npages * sw->ps;

	if (sw->w->cancel && *sw->w->cancel) {
		err_set("interrupted");
		return -1;
	}
	if (page_is_zero(p, sw->ps))
		return 0;
	if (sw->nruns &&
	    sw->runs[sw->nruns - 1].addr + sw->runs[sw->nruns - 1].npages * sw->ps == off)
		sw->runs[sw->nruns - 1].npages++;
	else
		sw->runs[sw->nruns++] = (struct img_run){off, 1};
	sw->npages++;
	if (sw->npages == BATCH || sw->nruns == BATCH)
		return sw_flush(sw);
	return 0;
}

/* From a file: the data the file system reports (SEEK_DATA), page by page. */
static int write_from_file(struct shm_writer *sw, const struct shm_obj *o, int fd)
{
	uint64_t off = 0, size = o->d.size;

	while (off < size) {
		off_t data = lseek(fd, off, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0) { /* no SEEK_DATA here: all of it is data */
			data = off;
			hole = size;
		} else {
			hole = lseek(fd, data, SEEK_HOLE);
			if (hole < 0 || (uint64_t)hole > size)
				hole = size;
		}
		off = data & ~(uint64_t)(sw->ps - 1);
		for (; off < (uint64_t)hole; off += sw->ps) {
			unsigned char *p = sw->buf + sw->npages * sw->ps;
			ssize_t n = pread(fd, p, sw->ps, off);
			if (n < 0) {
				err_sys("cannot read %s at %llu", o->name, (unsigned long long)off);
				return -1;
			}
			memset(p + n, 0, sw->ps - n);
			if (sw_keep(sw, off))
				return -1;
		}
	}
	return 0;
}

/* From the process's memory: the resident pages of its shared mappings. */
static int write_from_memory(struct shm_writer *sw, pid_t pid, const struct image *im,
			     const struct shm_obj *o, struct shm_src *s)
{
	for (size_t k = 0; k < im->nregions; k++) {
		const struct region *r = &im->regions[k];
		uint64_t first = r->d.pgoff / sw->ps;

		if (r->d.kind != IMG_RGN_SHM || r->d.dev != o->d.dev || r->d.ino != o->d.ino ||
		    (r->d.flags & IMG_RGN_GUARD))
			continue;
		for (uint64_t a = r->d.start; a < r->d.end; a += sw->ps) {
			uint64_t idx = first + (a - r->d.start) / sw->ps;
			unsigned char *p = sw->buf + sw->npages * sw->ps;
			struct iovec l = {p, sw->ps}, rv = {(void *)a, sw->ps};

			if (idx >= s->npages || !s->resident[idx])
				continue;
			s->resident[idx] = 0; /* once, however many mappings show it */
			if (process_vm_readv(pid, &l, 1, &rv, 1, 0) != sw->ps) {
				err_sys("pid %d: cannot read shared memory at %#llx", pid,
					(unsigned long long)a);
				return -1;
			}
			if (sw_keep(sw, idx * sw->ps))
				return -1;
		}
	}
	return 0;
}

int shm_write(pid_t pid, struct img_writer *w, const struct image *im, struct shm_dump *sd,
	      const uint64_t *number)
{
	struct shm_writer sw = {.w = w,
				.progress = w->progress,
				.progress_arg = w->progress_arg,
				.ps = sysconf(_SC_PAGESIZE)};
	int rc = 0;

	if (!sd || !sd->n)
		return 0;
	sw.buf = malloc(BATCH * sw.ps);
	if (!sw.buf) {
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < sd->n && rc == 0; i++) {
		if (number && number[i] == UINT64_MAX)
			continue;
		sw.shm = number ? number[i] : i;
		if (sd->src[i].fd >= 0)
			rc = write_from_file(&sw, &im->shms[i], sd->src[i].fd);
		else
			rc = write_from_memory(&sw, pid, im, &im->shms[i], &sd->src[i]);
		if (rc == 0)
			rc = sw_flush(&sw);
	}
	free(sw.buf);
	return rc;
}

void shm_dump_free(struct shm_dump *sd)
{
	if (!sd)
		return;
	for (size_t i = 0; i < sd->n; i++) {
		if (sd->src[i].fd >= 0)
			close(sd->src[i].fd);
		free(sd->src[i].resident);
	}
	free(sd->src);
	free(sd);
}

/* ---- restoring -------------------------------------------------------- */

size_t shm_index(const struct image *im, uint64_t dev, uint64_t ino)
{
	return img_find_shm(im, dev, ino) - im->shms;
}

/* A deleted file comes back unlinked in its old directory (O_TMPFILE);
 * where that directory is gone or cannot hold one, as a memfd. */
static int make_file(const struct shm_obj *o)
{
	char dir[PATH_MAX];
	int fd;

	snprintf(dir, sizeof(dir), "%s", o->name);
	fd = open(dirname(dir), O_TMPFILE | O_RDWR | O_CLOEXEC, o->d.mode & 07777);
	if (fd >= 0)
		return fd;
	snprintf(dir, sizeof(dir), "%s", o->name);
	return memfd_create(basename(dir), MFD_CLOEXEC);
}

/* Ask for the segment's old id (the program may hold it), where we may
 * (CAP_CHECKPOINT_RESTORE): not having it is no error for a segment. */
static void want_shm_id(int id)
{
	char buf[32];
	int fd = open("/proc/sys/kernel/shm_next_id", O_WRONLY | O_CLOEXEC), n;

	if (fd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "%d", id);
	if (write(fd, buf, n) != n) {
		/* nothing: the kernel picks an id */
	}
	close(fd);
}

static int make_sysv(const struct shm_obj *o, struct shm_made *sm, size_t i)
{
	int32_t key = (o->d.flags & IMG_SHM_RMID) ? IPC_PRIVATE : o->d.key;
	int id;

	if (!(o->d.flags & IMG_SHM_RMID) && shmget(key, 0, 0) < 0)
		want_shm_id((int)o->d.ino);
	id = shmget(key, o->d.size, IPC_CREAT | IPC_EXCL | (o->d.mode & 0777));
	/* A failed shmget leaves the id asked for to the next one, anyone's. */
	if (id < 0) {
		int e = errno;
		want_shm_id(-1);
		errno = e;
	}

	if (id < 0 && errno == EEXIST) {
		/* The segment outlived the process (the usual case on the same
		 * host): take it back only if no one else has it attached. */
		int32_t k;
		uint32_t mode;
		uint64_t size;
		int nattch;

		id = shmget(key, 0, 0);
		if (id < 0 || sysv_info(id, &k, &mode, &size, &nattch))
			goto fail;
		if (nattch > 0 || size < o->d.size) {
			err_set("System V shared memory key %#x exists here, %s", (unsigned)key,
				nattch > 0 ? "attached by another process" : "smaller");
			return -1;
		}
		if ((uint64_t)id != o->d.ino) {
			err_set("System V shared memory key %#x exists here with id %d, but the "
				"program knows it as %llu",
				(unsigned)key, id, (unsigned long long)o->d.ino);
			return -1;
		}
		/* The image stores no zero page: clear what it will not fill. */
		{
			void *p = shmat(id, NULL, 0);
			if (p == (void *)-1)
				goto fail;
			memset(p, 0, o->d.size);
			shmdt(p);
		}
		fprintf(stderr, "ckpt-remap: System V shared memory key %#x: its contents are "
				"set back to the checkpoint's\n",
			(unsigned)key);
		sm->shmid[i] = id;
		return 0;
	}
	if (id < 0)
		goto fail;
	sm->shmid[i] = id;
	sm->created[i] = 1;
	return 0;
fail:
	err_sys("cannot make System V shared memory (key %#x, %llu bytes)", (unsigned)key,
		(unsigned long long)o->d.size);
	return -1;
}

static int make_tmpfs(const struct shm_obj *o, struct shm_made *sm, size_t i);

static int make_object(const struct shm_obj *o, struct shm_made *sm, size_t i)
{
	unsigned huge = o->d.flags & IMG_SHM_HUGETLB
				? MFD_HUGETLB | IMG_SHM_HSHIFT(o->d.flags) << MFD_HUGE_SHIFT
				: 0;
	int fd = -1;

	switch (o->d.kind) {
	case IMG_SHM_SYSV:
		return make_sysv(o, sm, i);
	case IMG_SHM_ANON:
		fd = memfd_create("dev/zero", MFD_CLOEXEC | huge);
		break;
	case IMG_SHM_MEMFD:
		fd = memfd_create(o->name, MFD_CLOEXEC | MFD_ALLOW_SEALING | huge);
		break;
	case IMG_SHM_FILE:
		fd = make_file(o);
		break;
	case IMG_SHM_SAVED: /* staged here, put back at its path once filled */
		fd = memfd_create("ckpt-saved", MFD_CLOEXEC);
		break;
	case IMG_SHM_TMPFS: /* beside its path, renamed over it once filled */
		if (make_tmpfs(o, sm, i))
			return -1;
		fd = sm->fd[i];
		sm->fd[i] = -1;
		break;
	}
	/* The mode it had, whatever our umask. */
	if (fd >= 0 && o->d.kind != IMG_SHM_ANON && fchmod(fd, o->d.mode & 07777)) {
		close(fd);
		fd = -1;
	}
	if (fd < 0 || ftruncate(fd, o->d.size)) {
		err_sys("cannot make %s %s (%llu bytes) again", img_shm_kind_name(o->d.kind),
			o->name, (unsigned long long)o->d.size);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	sm->fd[i] = fd;
	return 0;
}

/* A writable view of object i, for filling it. */
static void *view(const struct shm_obj *o, const struct shm_made *sm, size_t i)
{
	void *p;

	if (o->d.kind == IMG_SHM_SYSV) {
		p = shmat(sm->shmid[i], NULL, 0);
		return p == (void *)-1 ? NULL : p;
	}
	p = mmap(NULL, o->d.size, PROT_READ | PROT_WRITE, MAP_SHARED, sm->fd[i], 0);
	return p == MAP_FAILED ? NULL : p;
}

static void unview(const struct shm_obj *o, void *p)
{
	if (!p)
		return;
	if (o->d.kind == IMG_SHM_SYSV)
		shmdt(p);
	else
		munmap(p, o->d.size);
}

/* One SHMDATA record's pages, read straight into the object. */
static int fill(struct img_input *in, struct shm_made *sm, void **views, struct img_rec *rec)
{
	struct image *im = &in->im;
	struct img_reader *r = &in->r;
	struct img_shmdata *d;
	struct img_run *run;
	const struct shm_obj *o;
	uint64_t limit;
	uint32_t crc = 0;
	void *buf;
	int rc = -1;

	if (img_read_rec_body(r, rec, &buf))
		return -1;
	d = buf;
	run = img_runs(IMG_REC_SHMDATA, buf);
	if (d->shm >= im->nshms) {
		err_set("SHMDATA record: object %llu of %zu", (unsigned long long)d->shm,
			im->nshms);
		goto out;
	}
	o = &im->shms[d->shm];
	if (!views[d->shm] && !(views[d->shm] = view(o, sm, d->shm))) {
		err_sys("cannot map %s %s to fill it", img_shm_kind_name(o->d.kind), o->name);
		goto out;
	}
	limit = (o->d.size + r->page_size - 1) / r->page_size * r->page_size;
	for (uint32_t k = 0; k < d->p.nruns; k++) {
		if (run[k].addr >= limit || run[k].npages > (limit - run[k].addr) / r->page_size) {
			err_set("SHMDATA record: run at %llu+%llu pages lies outside %s (%llu "
				"bytes)",
				(unsigned long long)run[k].addr, (unsigned long long)run[k].npages,
				o->name, (unsigned long long)o->d.size);
			goto out;
		}
	}
	for (uint32_t k = 0; k < d->p.nruns; k++) {
		uint64_t len = run[k].npages * r->page_size;
		if (img_read_data(r, &d->p, (char *)views[d->shm] + run[k].addr, len, &crc))
			goto out;
	}
	if (crc != d->p.data_crc) {
		err_set("SHMDATA record: page data checksum mismatch (%s)", o->name);
		goto out;
	}
	r->npages += d->p.npages;
	rc = 0;
out:
	free(buf);
	return rc;
}

/* openat(2) that follows no symlink anywhere in name (openat2(2),
 * RESOLVE_NO_SYMLINKS, Linux 5.6; glibc 2.36 has no wrapper). */
static int open_nolinks(int dir, const char *name, int flags, mode_t mode)
{
	struct open_how how = {.flags = (uint64_t)flags,
			       .mode = (flags & O_CREAT) ? mode : 0,
			       .resolve = RESOLVE_NO_SYMLINKS};

	return (int)syscall(SYS_openat2, dir, name, &how, sizeof(how));
}

/* The directory of the saved file's path, reached from / one component at
 * a time without following a symlink: the path was recorded resolved
 * (/proc/PID/fd), so a link on it now is not the program's but whoever
 * could write that directory's.  With make, missing directories are made
 * 0700 (their modes were not recorded: only the program's user may enter
 * them); without, a missing one ends the walk (*dfd -1, 0).  Its fd in
 * *dfd, or -1 with err_set. */
int fd_walk_dir(const char *path, int make, int *dfd)
{
	char d[PATH_MAX], *c, *save = NULL;
	int fd;

	*dfd = -1;
	snprintf(d, sizeof(d), "%s", path);
	if (d[0] != '/' || !strrchr(d, '/')) {
		err_set("%s: saved with a relative path", path);
		return -1;
	}
	*strrchr(d, '/') = 0;
	fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	for (c = strtok_r(d, "/", &save); fd >= 0 && c; c = strtok_r(NULL, "/", &save)) {
		int next = open_nolinks(fd, c, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);

		if (next < 0 && errno == ENOENT && !make) {
			close(fd);
			return 0;
		}
		if (next < 0 && errno == ENOENT &&
		    (!mkdirat(fd, c, 0700) || errno == EEXIST))
			next = open_nolinks(fd, c, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
		if (next < 0) {
			int e = errno;
			/* c ends where the failed component does. */
			if (e == ELOOP)
				err_set("%s: a symbolic link at %.*s, which the checkpoint did not "
					"record: nothing is put back through it",
					path, (int)(c - d + strlen(c)), path);
			else
				err_set("%s: cannot reach %.*s to put it back: %s", path,
					(int)(c - d + strlen(c)), path, strerror(e));
			close(fd);
			return -1;
		}
		close(fd);
		fd = next;
	}
	if (fd < 0) {
		err_sys("cannot open /");
		return -1;
	}
	*dfd = fd;
	return 0;
}

/* The saved file as it is now, in directory dfd (base its name), without
 * following a link: 0 and *sb if it is a regular file of one link, 1 if
 * missing, -1 (err_set) if it is anything else. */
static int file_now(int dfd, const char *base, const char *path, struct stat *sb)
{
	int fd = open_nolinks(dfd, base, O_PATH | O_CLOEXEC, 0);

	if (fd < 0 && errno == ENOENT)
		return 1;
	if (fd < 0 && errno == ELOOP) {
		err_set("%s: a symbolic link, which the checkpoint did not record: the saved "
			"file is not put back through it",
			path);
		return -1;
	}
	if (fd < 0 || fstat(fd, sb)) {
		err_sys("cannot open %s to put it back", path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	if (!S_ISREG(sb->st_mode)) {
		err_set("%s: saved in the image as a regular file, but here it is not one", path);
		return -1;
	}
	return 0;
}

/* Whether the file as it is now (sb) needs putting back: it differs from
 * the checkpoint's in size or mtime.  One that does, with more than one
 * link, is refused (-1, err_set): writing it would change the others. An
 * unchanged one is left alone whatever its links (a library ld.so had
 * open at the checkpoint, hard-linked since by perf's build-id cache). */
static int needs_put_back(const struct shm_obj *o, const struct fd_entry *f,
			  const struct stat *sb)
{
	if ((uint64_t)sb->st_size == o->d.size && sb->st_mtim.tv_sec == f->d.mtime_sec &&
	    (uint32_t)sb->st_mtim.tv_nsec == f->d.mtime_nsec)
		return 0;
	if (sb->st_nlink > 1) {
		err_set("%s: has %ju hard links here, which putting the saved file back would "
			"change too",
			o->name, (uintmax_t)sb->st_nlink);
		return -1;
	}
	return 1;
}

static const struct fd_entry *saved_fd(const struct image *im, const struct shm_obj *o)
{
	for (size_t i = 0; i < im->nfiles; i++)
		if (im->files[i].d.dev == o->d.dev && im->files[i].d.ino == o->d.ino)
			return &im->files[i];
	err_set("saved file %s: no fd of the image has it", o->name);
	return NULL;
}

/* Whether the saved file can be put back (nothing changed): every saved
 * file is checked so before any is written. */
static int put_back_check(const struct image *im, const struct shm_obj *o)
{
	const struct fd_entry *f = saved_fd(im, o);
	const char *base = strrchr(o->name, '/');
	struct stat sb;
	int dfd, rc = 0;

	if (!f || fd_walk_dir(o->name, 0, &dfd))
		return -1;
	if (dfd >= 0) {
		rc = file_now(dfd, base + 1, o->name, &sb);
		rc = rc < 0 || (rc == 0 && needs_put_back(o, f, &sb) < 0) ? -1 : 0;
		close(dfd);
	}
	return rc;
}

/* A file saved with --save-files: where it is missing or changed, its
 * contents (from the staging memfd) and mtime go back to the checkpoint's.
 * Reached without following a link, made with its recorded mode. */

/* Whether fd is open on the file sb describes. */
static int same_file(int fd, const struct stat *sb)
{
	struct stat st;

	return fstat(fd, &st) == 0 && st.st_dev == sb->st_dev && st.st_ino == sb->st_ino;
}
static int put_back(const struct image *im, const struct shm_obj *o, int fd)
{
	const struct fd_entry *f = saved_fd(im, o);
	const char *base = strrchr(o->name, '/');
	struct timespec ts[2] = {{0, UTIME_OMIT}, {0, 0}};
	off_t off = 0;
	struct stat sb, now;
	int exists, out = -1, dfd = -1;

	if (!f || fd_walk_dir(o->name, 1, &dfd))
		return -1;
	base++;
	exists = file_now(dfd, base, o->name, &sb);
	if (exists < 0)
		goto fail;
	exists = !exists;
	if (exists) {
		int need = needs_put_back(o, f, &sb);
		if (need < 0)
			goto fail;
		if (!need) {
			close(dfd);
			return 0;
		}
	}
	/* No link followed, no FIFO waited on; O_EXCL where it was missing,
	 * so that what is opened is what was looked at (or made now). */
	out = open_nolinks(dfd, base,
			   O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC |
			       (exists ? 0 : O_CREAT | O_EXCL),
			   o->d.mode & 07777);
	if (out < 0 && errno == ELOOP) {
		err_set("%s: a symbolic link, which the checkpoint did not record: the saved "
			"file is not put back through it",
			o->name);
		goto fail;
	}
	if (out < 0 || fstat(out, &now)) {
		err_sys("cannot write %s back", o->name);
		goto fail;
	}
	if (!S_ISREG(now.st_mode) || now.st_nlink != 1 ||
	    (exists && (now.st_dev != sb.st_dev || now.st_ino != sb.st_ino))) {
		err_set("%s: replaced while it was put back: not written", o->name);
		goto fail;
	}
	while ((uint64_t)off < o->d.size) {
		ssize_t k = sendfile(out, fd, &off, o->d.size - off);
		if (k <= 0) {
			err_sys("cannot write %s back", o->name);
			goto fail;
		}
	}
	ts[1].tv_sec = f->d.mtime_sec;
	ts[1].tv_nsec = f->d.mtime_nsec;
	if (ftruncate(out, o->d.size) || (!exists && fchmod(out, o->d.mode & 07777)) ||
	    futimens(out, ts)) {
		err_sys("cannot write %s back", o->name);
		goto fail;
	}
	close(dfd);
	if (close(out)) {
		err_sys("cannot write %s back", o->name);
		return -1;
	}
	/* Not said into the file itself (a batch job's output file, the
	 * restore's stderr too): it would no longer be the checkpoint's. */
	if (!same_file(2, &now))
		fprintf(stderr, "ckpt-remap: %s: %s from the image\n", o->name,
			exists ? "contents set back to the checkpoint's" : "made again");
	return 0;
fail:
	if (out >= 0)
		close(out);
	close(dfd);
	return -1;
}

/* ---- tmpfs files (IMG_SHM_TMPFS) -----------------------------------------
 *
 * A file on tmpfs that the program mapped shared is memory (POSIX shm,
 * Open MPI's vader segments): it is made again as a new file, written
 * aside in its directory under a name made with O_EXCL (a link planted
 * there is not followed) and renamed over its path once filled, so that a
 * program still running on the old one (a dump without --kill) keeps
 * its own, and every mapping and fd of the restored ones gets the new
 * one, through our fd, whatever the path holds by then. */

/* A directory that is gone (an MPI job's session directory, removed when
 * a restored run of it ended) is made again, 0700, as --save-files puts
 * a file back: only the program's user may enter it. */
static int tmpfs_refuse(const struct shm_obj *o, const char *why)
{
	err_set("pid %d: file %s, mapped shared, cannot be made again here: %s; not supported",
		o->pid, o->name, why);
	return -1;
}

/* Whether the tmpfs file can be made again: every one is checked so
 * before any is made. */
static int tmpfs_check(const struct shm_obj *o)
{
	const char *base = strrchr(o->name, '/') + 1;
	int dl = (int)(base - 1 - o->name), dfd, rc = -1;
	char why[PATH_MAX + 256];
	struct stat db, sb;

	if (fd_walk_dir(o->name, 0, &dfd)) {
		snprintf(why, sizeof(why), "%s", err_get());
		return tmpfs_refuse(o, why);
	}
	if (dfd < 0)
		return 0;
	if (fstat(dfd, &db) || faccessat(dfd, ".", W_OK | X_OK, AT_EACCESS))
		snprintf(why, sizeof(why), "its directory %.*s is not writable by uid %d (%s)",
			 dl ? dl : 1, o->name, (int)geteuid(), strerror(errno));
	else if (!fstatat(dfd, base, &sb, AT_SYMLINK_NOFOLLOW) && S_ISDIR(sb.st_mode))
		snprintf(why, sizeof(why), "a directory is at its path");
	/* A sticky directory (/dev/shm, /tmp): renaming over another user's
	 * file there fails. */
	else if (!fstatat(dfd, base, &sb, AT_SYMLINK_NOFOLLOW) && (db.st_mode & S_ISVTX) &&
		 geteuid() != 0 && sb.st_uid != geteuid() && db.st_uid != geteuid())
		snprintf(why, sizeof(why), "its path holds a file of uid %u in sticky directory %.*s",
			 (unsigned)sb.st_uid, dl ? dl : 1, o->name);
	else
		rc = 0;
	close(dfd);
	return rc ? tmpfs_refuse(o, why) : 0;
}

/* The new file, empty, of the object's size, beside its path. */
static int make_tmpfs(const struct shm_obj *o, struct shm_made *sm, size_t i)
{
	const char *base = strrchr(o->name, '/') + 1;
	char tmp[NAME_MAX + 1];
	struct stat sb;
	int dfd, fd = -1;

	if (fd_walk_dir(o->name, 1, &dfd))
		return -1;
	if (dfd < 0) {
		err_set("%s: its directory is gone", o->name);
		return -1;
	}
	for (int tries = 0; fd < 0 && tries < 100; tries++) {
		uint32_t r = 0;

		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (uint32_t)getpid() * 2654435761u + (uint32_t)tries;
		snprintf(tmp, sizeof(tmp), ".%.200s.ckpt-%08x", base, r);
		fd = openat(dfd, tmp,
			    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0 || fstat(fd, &sb)) {
		err_sys("%s: cannot make it again beside its path", o->name);
		goto fail;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_nlink != 1) {
		err_set("%s: the file made beside it is not a new one", o->name);
		goto fail;
	}
	sm->tmp[i] = strdup(tmp);
	if (!sm->tmp[i]) {
		err_set("out of memory");
		goto fail;
	}
	sm->fd[i] = fd;
	sm->dirfd[i] = dfd;
	return 0;
fail:
	if (fd >= 0) {
		unlinkat(dfd, tmp, 0);
		close(fd);
	}
	close(dfd);
	return -1;
}

/* Filled: its owner (where we may), mode and mtime, then its path. */
static int tmpfs_finish(const struct shm_obj *o, struct shm_made *sm, size_t i)
{
	const char *base = strrchr(o->name, '/') + 1;
	struct timespec ts[2] = {{0, UTIME_OMIT}, {o->tmpfs.mtime_sec, o->tmpfs.mtime_nsec}};
	int fd = sm->fd[i];

	/* Another user's file comes back ours without privilege (or with a
	 * uid this user namespace does not map). */
	if ((o->tmpfs.uid != geteuid() || o->tmpfs.gid != getegid()) &&
	    fchown(fd, o->tmpfs.uid, o->tmpfs.gid) && errno != EPERM && errno != EINVAL) {
		err_sys("cannot give tmpfs file %s its owner %u:%u again", o->name, o->tmpfs.uid,
			o->tmpfs.gid);
		return -1;
	}
	/* After fchown, which clears the set-user-ID bit. */
	if (fchmod(fd, o->d.mode & 07777) || futimens(fd, ts)) {
		err_sys("cannot give tmpfs file %s its mode and mtime again", o->name);
		return -1;
	}
	if (renameat(sm->dirfd[i], sm->tmp[i], sm->dirfd[i], base)) {
		err_sys("cannot put tmpfs file %s in place", o->name);
		return -1;
	}
	free(sm->tmp[i]);
	sm->tmp[i] = NULL;
	close(sm->dirfd[i]);
	sm->dirfd[i] = -1;
	return 0;
}

/* A deleted file or memfd gets back its owner, mode and times, as its
 * first fd's FILE record has them (one only mapped has no record: it
 * keeps ours), once filled: the fill wrote it. */
static int give_attrs(const struct image *im, const struct shm_obj *o, int fd)
{
	const struct fd_entry *f = NULL;
	struct img_shm_attr a;
	struct timespec ts[2];
	struct stat sb;

	for (size_t i = 0; i < im->nfiles && !f; i++)
		if (im->files[i].d.kind == IMG_FD_SHM && im->files[i].d.dev == o->d.dev &&
		    im->files[i].d.ino == o->d.ino && im->files[i].d.extra_len == sizeof(a))
			f = &im->files[i];
	if (!f)
		return 0;
	memcpy(&a, f->extra, sizeof(a));
	if (fstat(fd, &sb)) {
		err_sys("cannot stat %s %s", img_shm_kind_name(o->d.kind), o->name);
		return -1;
	}
	if ((sb.st_uid != a.uid || sb.st_gid != a.gid) && fchown(fd, a.uid, a.gid)) {
		err_sys("cannot give %s %s its owner %u:%u again", img_shm_kind_name(o->d.kind),
			o->name, a.uid, a.gid);
		return -1;
	}
	/* The restorer maps the program's regions from fd: mmap(2) stamps
	 * the atime of a file without O_NOATIME (file_accessed). */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NOATIME)) {
		err_sys("cannot keep the access time of %s %s", img_shm_kind_name(o->d.kind),
			o->name);
		return -1;
	}
	/* After fchown, which clears the set-user-ID bit. */
	ts[0] = (struct timespec){a.atime_sec, a.atime_nsec};
	ts[1] = (struct timespec){f->d.mtime_sec, f->d.mtime_nsec};
	if (fchmod(fd, o->d.mode & 07777) || futimens(fd, ts)) {
		err_sys("cannot give %s %s its mode and times again", img_shm_kind_name(o->d.kind),
			o->name);
		return -1;
	}
	return 0;
}

int shm_make(struct img_input *in, struct shm_made *sm, struct img_rec *next)
{
	struct image *im = &in->im;
	size_t n = im->nshms;
	void **views = calloc(n + 1, sizeof(*views));
	int rc = -1;

	memset(sm, 0, sizeof(*sm));
	sm->fd = malloc((n + 1) * sizeof(int));
	sm->shmid = malloc((n + 1) * sizeof(int));
	sm->created = calloc(n + 1, sizeof(int));
	sm->dirfd = malloc((n + 1) * sizeof(int));
	sm->tmp = calloc(n + 1, sizeof(char *));
	if (!views || !sm->fd || !sm->shmid || !sm->created || !sm->dirfd || !sm->tmp) {
		free(views);
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		sm->fd[i] = sm->shmid[i] = sm->dirfd[i] = -1;
	sm->n = n;
	/* Refusals first: no saved file is put back, no tmpfs file made, if
	 * one cannot be. */
	for (size_t i = 0; i < n; i++)
		if ((im->shms[i].d.kind == IMG_SHM_SAVED && put_back_check(im, &im->shms[i])) ||
		    (im->shms[i].d.kind == IMG_SHM_TMPFS && tmpfs_check(&im->shms[i])))
			goto out;
	for (size_t i = 0; i < n; i++)
		if (make_object(&im->shms[i], sm, i))
			goto out;
	for (;;) {
		if (img_read_rec_hdr(&in->r, next))
			goto out;
		if (next->type != IMG_REC_SHMDATA)
			break;
		if (fill(in, sm, views, next))
			goto out;
	}
	/* Seals last: a write seal would have stopped the fill. */
	for (size_t i = 0; i < n; i++) {
		const struct shm_obj *o = &im->shms[i];
		unview(o, views[i]);
		views[i] = NULL;
		if (o->d.kind == IMG_SHM_SAVED) {
			if (put_back(im, o, sm->fd[i]))
				goto out;
			close(sm->fd[i]);
			sm->fd[i] = -1;
		}
		if ((o->d.kind == IMG_SHM_FILE || o->d.kind == IMG_SHM_MEMFD) &&
		    give_attrs(im, o, sm->fd[i]))
			goto out;
		if (o->d.kind == IMG_SHM_TMPFS && tmpfs_finish(o, sm, i))
			goto out;
		if (o->d.kind == IMG_SHM_MEMFD && o->d.seals &&
		    fcntl(sm->fd[i], F_ADD_SEALS, o->d.seals)) {
			err_sys("cannot seal memfd %s (%#x)", o->name, o->d.seals);
			goto out;
		}
	}
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		unview(&im->shms[i], views[i]);
	free(views);
	return rc;
}

/* An fd the program opened before it took its own permission away (a
 * file of mode 0200 it reads): opened with the owner's read and write
 * lent for the moment (we made it: it is ours, or root's). */
static int open_lent(int obj, const char *path, int flags)
{
	struct stat sb;
	int fd, e;

	if (fstat(obj, &sb) || fchmod(obj, (sb.st_mode & 07777) | S_IRUSR | S_IWUSR))
		return -1;
	fd = open(path, flags);
	e = errno;
	if (fchmod(obj, sb.st_mode & 07777) && fd >= 0) {
		e = errno;
		close(fd);
		fd = -1;
	}
	errno = e;
	return fd;
}

int shm_open_fd(const struct image *im, const struct shm_made *sm, const struct fd_entry *f)
{
	size_t i = shm_index(im, f->d.dev, f->d.ino);
	/* Reopened through /proc/self/fd/N, a link: not with the O_NOFOLLOW
	 * that shm_open(3) opens with and the fd's flags keep (ELOOP). */
	int flags = f->d.flags &
		    ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC | O_TMPFILE | O_NOFOLLOW);
	char path[64];
	int fd;

	fmt_path(path, sizeof(path), "/proc/self/fd/%d", sm->fd[i]);
	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0 && errno == EACCES)
		fd = open_lent(sm->fd[i], path, flags | O_CLOEXEC);
	if (fd < 0) {
		err_sys("fd %d: cannot open %s again", f->d.fd, f->path);
		return -1;
	}
	if (lseek(fd, f->d.pos, SEEK_SET) < 0) {
		err_sys("fd %d: cannot seek %s to %llu", f->d.fd, f->path,
			(unsigned long long)f->d.pos);
		close(fd);
		return -1;
	}
	return fd;
}

void shm_made_free(struct shm_made *sm, int failed)
{
	for (size_t i = 0; i < sm->n; i++) {
		if (sm->fd[i] >= 0)
			close(sm->fd[i]);
		if (failed && sm->created[i] && sm->shmid[i] >= 0)
			shmctl(sm->shmid[i], IPC_RMID, NULL);
		/* A tmpfs file not renamed into place yet goes. */
		if (sm->tmp && sm->tmp[i])
			unlinkat(sm->dirfd[i], sm->tmp[i], 0);
		if (sm->tmp)
			free(sm->tmp[i]);
		if (sm->dirfd && sm->dirfd[i] >= 0)
			close(sm->dirfd[i]);
	}
	free(sm->fd);
	free(sm->shmid);
	free(sm->created);
	free(sm->dirfd);
	free(sm->tmp);
	memset(sm, 0, sizeof(*sm));
}
