/* inotify.c: inotify instances: each watch's path (found again from its inode) or, where no
 * path leads to it, its file handle; its mask and wd. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"
#include "target/target.h"

/* A watch as fdinfo shows it (Linux 3.8+): "inotify wd:1 ino:3c51a
 * sdev:fe00000 mask:fff ignored_mask:0 fhandle-bytes:8 fhandle-type:1
 * f_handle:1ac5030000000000".  sdev is the kernel's dev_t (major << 20 |
 * minor). */
struct watch {
	int wd;
	unsigned mask, htype, hbytes;
	unsigned long long ino;
	dev_t dev;
	unsigned char handle[128];
};

static int parse_watch(const char *p, struct watch *w)
{
	unsigned long long sdev;
	char hex[260];

	if (sscanf(p,
		   "inotify wd:%d ino:%llx sdev:%llx mask:%x ignored_mask:%*x fhandle-bytes:%x "
		   "fhandle-type:%x f_handle:%259s",
		   &w->wd, &w->ino, &sdev, &w->mask, &w->hbytes, &w->htype, hex) != 7 ||
	    w->hbytes > sizeof(w->handle) || strlen(hex) != 2 * w->hbytes)
		return -1;
	for (unsigned i = 0; i < w->hbytes; i++)
		if (sscanf(hex + 2 * i, "%2hhx", &w->handle[i]) != 1)
			return -1;
	w->dev = makedev(sdev >> 20, sdev & 0xfffff);
	return 0;
}

static int is_watched(const char *path, const struct watch *w)
{
	struct stat sb;

	return !stat(path, &sb) && sb.st_ino == w->ino && sb.st_dev == w->dev;
}

/* The file of handle (type, bytes) on device dev, opened O_PATH:
 * open_by_handle_at needs CAP_DAC_READ_SEARCH, and a file of the same
 * filesystem, found in mountinfo by its device.  -1 with errno. */
static int open_handle(dev_t dev, int type, unsigned bytes, const unsigned char *handle)
{
	char line[4096], want[32], mnt[4096];
	struct {
		struct file_handle fh;
		unsigned char b[128];
	} h;
	int mfd = -1, fd, err;
	FILE *mi;

	snprintf(want, sizeof(want), "%u:%u", major(dev), minor(dev));
	if (bytes > sizeof(h.b) || !(mi = fopen("/proc/self/mountinfo", "re")))
		return -1;
	while (mfd < 0 && fgets(line, sizeof(line), mi)) {
		char d[32];
		if (sscanf(line, "%*d %*d %31s %*s %4095s", d, mnt) == 2 && !strcmp(d, want))
			mfd = open(mnt, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* not O_PATH: EBADF */
	}
	fclose(mi);
	if (mfd < 0) {
		errno = ENODEV;
		return -1;
	}
	h.fh.handle_bytes = bytes;
	h.fh.handle_type = type;
	memcpy(h.fh.f_handle, handle, bytes);
	fd = open_by_handle_at(mfd, &h.fh, O_PATH | O_CLOEXEC);
	err = errno;
	close(mfd);
	errno = err;
	return fd;
}

/* The path of a watched inode from its file handle (open_handle): NULL
 * without errno when not allowed.  *byhandle is set when the handle opens
 * a file no path leads to (a directory mounted over, a path the program
 * cannot see): it is kept by its handle.  A file deleted since is -1. */
static char *path_by_handle(const struct watch *w, int *byhandle)
{
	char path[64], *res = NULL;
	struct stat sb;
	int fd = open_handle(w->dev, w->htype, w->hbytes, w->handle);

	if (fd < 0)
		return NULL;
	res = proc_readlink(getpid(), fmt_path(path, sizeof(path), "fd/%d", fd));
	if (res && !is_watched(res, w)) {
		free(res);
		res = NULL;
	}
	if (!res && !fstat(fd, &sb))
		*byhandle = sb.st_nlink ? 1 : -1;
	close(fd);
	return res;
}

/* Without that capability: look for the inode where a program's watches
 * usually are, its open files and their directories, then its current
 * directory's tree, breadth first, up to 100000 entries. */
static char *path_by_search(pid_t pid, const struct watch *w)
{
	char **q = NULL, *cwd, *found = NULL;
	size_t nq = 0, head = 0, seen = 0;
	int *fds;
	size_t nfds;

	if (!proc_list_fds(pid, &fds, &nfds)) {
		for (size_t i = 0; i < nfds && !found; i++) {
			char what[32], *l, *slash;
			snprintf(what, sizeof(what), "fd/%d", fds[i]);
			if (!(l = proc_readlink(pid, what)))
				continue;
			while (l[0] == '/' && !found) {
				if (is_watched(l, w))
					found = strdup(l);
				if (!(slash = strrchr(l, '/')) || slash == l)
					break;
				*slash = 0;
			}
			free(l);
		}
		free(fds);
	}
	if (found || !(cwd = proc_readlink(pid, "cwd")))
		return found;
	if (is_watched(cwd, w))
		return cwd;
	q = malloc(sizeof(*q));
	if (!q) {
		free(cwd);
		return NULL;
	}
	q[nq++] = cwd;
	while (head < nq && !found && seen < 100000) {
		char *dir = q[head++];
		DIR *d = opendir(dir);
		struct dirent *e;

		while (d && (e = readdir(d)) && !found && seen++ < 100000) {
			char *p;
			struct stat sb;

			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			if (asprintf(&p, "%s/%s", strcmp(dir, "/") ? dir : "", e->d_name) < 0)
				break;
			if (lstat(p, &sb)) {
				free(p);
				continue;
			}
			if (sb.st_ino == w->ino && sb.st_dev == w->dev) {
				found = p;
			} else if (S_ISDIR(sb.st_mode)) {
				char **nq2 = realloc(q, (nq + 1) * sizeof(*q));
				if (!nq2) {
					free(p);
					break;
				}
				q = nq2;
				q[nq++] = p;
			} else {
				free(p);
			}
		}
		if (d)
			closedir(d);
	}
	for (size_t i = 0; i < nq; i++)
		free(q[i]);
	free(q);
	return found;
}

static int watch_cmp(const void *a, const void *b)
{
	return ((const struct watch *)a)->wd - ((const struct watch *)b)->wd;
}

/* An inotify instance: each watch's path, mask and wd.  Events queued but
 * not read are counted, not kept (reading them would take them from the
 * program). */
static int capture_inotify(const struct fd_source *src, struct fd_entry *f)
{
	const char *info = src->info;
	pid_t pid = src->pid;
	struct img_inotify in = {0};
	struct watch *ws = NULL;
	unsigned char *buf = NULL;
	size_t len = 0, n = 0;
	const char *p = info;
	int rc = -1, fd = f->d.fd, dup;

	while ((p = strstr(p, "inotify wd:"))) {
		struct watch *nw = append_zeroed(&ws, n, sizeof(*ws));
		if (!nw)
			goto out;
		if (parse_watch(p, nw)) {
			err_set("pid %d: fd %d: cannot parse its inotify watches", pid, fd);
			goto out;
		}
		n++;
		p += 11;
	}
	if (n)
		qsort(ws, n, sizeof(*ws), watch_cmp);
	for (size_t i = 0; i < n; i++) {
		struct img_inotify_watch iw = {
		    .wd = ws[i].wd, .mask = ws[i].mask, .ino = ws[i].ino, .dev = ws[i].dev};
		struct img_inotify_handle ih = {.type = ws[i].htype, .bytes = ws[i].hbytes};
		int byhandle = 0;
		char *path = path_by_handle(&ws[i], &byhandle);
		unsigned char *nb;

		if (!path && byhandle < 0) {
			err_set(
			    "pid %d: fd %d: inotify watch %d is on a deleted file (inode %llu on "
			    "device %u:%u); not supported",
			    pid, fd, ws[i].wd, ws[i].ino, major(ws[i].dev), minor(ws[i].dev));
			goto out;
		}
		if (!path)
			path = path_by_search(pid, &ws[i]);
		if (!path && byhandle) {
			path = strdup("");
			iw.flags = IMG_INOTIFY_HANDLE;
		}
		if (!path) {
			err_set(
			    "pid %d: fd %d: cannot find the path of inotify watch %d (inode %llu "
			    "on device %u:%u): it is neither an open file's nor under the "
			    "current directory, and opening it by handle needs "
			    "CAP_DAC_READ_SEARCH",
			    pid, fd, ws[i].wd, ws[i].ino, major(ws[i].dev), minor(ws[i].dev));
			goto out;
		}
		iw.path_len = strlen(path);
		nb = realloc(buf, len + sizeof(iw) + iw.path_len + sizeof(ih) + ih.bytes);
		if (!nb) {
			free(path);
			err_set("out of memory");
			goto out;
		}
		buf = nb;
		memcpy(buf + len, &iw, sizeof(iw));
		memcpy(buf + len + sizeof(iw), path, iw.path_len);
		len += sizeof(iw) + iw.path_len;
		if (iw.flags & IMG_INOTIFY_HANDLE) {
			memcpy(buf + len, &ih, sizeof(ih));
			memcpy(buf + len + sizeof(ih), ws[i].handle, ih.bytes);
			len += sizeof(ih) + ih.bytes;
		}
		free(path);
	}
	in.n = n;
	if ((dup = fd_getfd(pid, fd)) >= 0) {
		int q = 0;
		if (!ioctl(dup, FIONREAD, &q))
			in.queued = q;
		close(dup);
	}
	rc = fd_set_extra(f, &in, sizeof(in), buf, len);
out:
	free(ws);
	free(buf);
	return rc;
}

/* One watch of the kind data at x + *off (of n bytes): into w, its path
 * (path_len bytes) and its handle (h.bytes bytes, h zero without);
 * *off past it.  -1 if malformed. */
static int next_watch(const unsigned char *x, uint32_t n, uint64_t *off,
		      struct img_inotify_watch *w, const char **path, struct img_inotify_handle *h,
		      const unsigned char **handle)
{
	uint64_t o = *off;

	memset(h, 0, sizeof(*h));
	*handle = NULL;
	if (o + sizeof(*w) > n)
		return -1;
	memcpy(w, x + o, sizeof(*w));
	o += sizeof(*w);
	*path = (const char *)x + o;
	o += w->path_len;
	if ((w->flags & ~IMG_INOTIFY_HANDLE) || w->path_len >= PATH_MAX || o > n ||
	    memchr(*path, 0, w->path_len) || !w->path_len != !!(w->flags & IMG_INOTIFY_HANDLE))
		return -1;
	if (w->flags & IMG_INOTIFY_HANDLE) {
		if (o + sizeof(*h) > n)
			return -1;
		memcpy(h, x + o, sizeof(*h));
		o += sizeof(*h);
		*handle = x + o;
		o += h->bytes;
		if (!h->bytes || h->bytes > 128 || o > n)
			return -1;
	}
	*off = o;
	return 0;
}

static int check_inotify(const unsigned char *x, uint32_t n)
{
	struct img_inotify in;
	struct img_inotify_watch w;
	struct img_inotify_handle h;
	const unsigned char *handle;
	const char *path;
	uint64_t off = sizeof(in);
	int32_t last = 0;

	if (n < sizeof(in))
		return -1;
	memcpy(&in, x, sizeof(in));
	for (uint32_t k = 0; k < in.n; k++) {
		if (next_watch(x, n, &off, &w, &path, &h, &handle) || w.wd <= last)
			return -1;
		last = w.wd;
	}
	return off == n ? 0 : -1;
}

/* Watch w on the file of handle h again: through /proc/self/fd of its
 * file opened by the handle.  The wd, or -1 naming it. */
static int watch_by_handle(int ifd, const struct fd_entry *f, const struct img_inotify_watch *w,
			   const struct img_inotify_handle *h, const unsigned char *handle)
{
	char path[64];
	int fd = open_handle(w->dev, h->type, h->bytes, handle), wd;

	if (fd < 0) {
		err_sys("fd %d: cannot open the file of inotify watch %d (inode %llu on device "
			"%u:%u) by its handle",
			f->d.fd, w->wd, (unsigned long long)w->ino, major(w->dev), minor(w->dev));
		return -1;
	}
	wd = inotify_add_watch(ifd, fmt_path(path, sizeof(path), "/proc/self/fd/%d", fd), w->mask);
	if (wd < 0)
		err_sys("fd %d: cannot watch inode %llu on device %u:%u with inotify again",
			f->d.fd, (unsigned long long)w->ino, major(w->dev), minor(w->dev));
	close(fd);
	return wd;
}

/* An inotify instance with its watches at their wds.  The kernel gives
 * out a new instance's wds counting up from 1 and does not reuse one
 * until it wraps (idr_alloc_cyclic): where the program's numbers have a
 * gap (a watch it removed), the watch is added and removed again until
 * its number comes up.  Each removal queues an IN_IGNORED event, read
 * out at the end with whatever else happened meanwhile. */
static int make_inotify(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_inotify in;
	uint64_t off = sizeof(in);
	int fd, skipped = 0;

	(void)pipes;
	memcpy(&in, f->extra, sizeof(in));
	fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (fd < 0) {
		err_sys("fd %d: cannot make an inotify instance", f->d.fd);
		return -1;
	}
	for (uint32_t k = 0; k < in.n; k++) {
		struct img_inotify_watch w;
		struct img_inotify_handle h;
		const unsigned char *handle;
		const char *p;
		char path[PATH_MAX];
		int wd;

		if (next_watch(f->extra, f->d.extra_len, &off, &w, &p, &h, &handle)) {
			err_set("fd %d: malformed inotify watches", f->d.fd);
			goto fail;
		}
		memcpy(path, p, w.path_len);
		path[w.path_len] = 0;
		if (handle)
			snprintf(path, sizeof(path), "inode %llu", (unsigned long long)w.ino);
		while ((wd = handle ? watch_by_handle(fd, f, &w, &h, handle)
				    : inotify_add_watch(fd, path, w.mask)) >= 0 &&
		       wd < w.wd) {
			inotify_rm_watch(fd, wd);
			skipped = 1;
		}
		if (wd < 0) {
			if (!handle)
				err_sys("fd %d: cannot watch %s with inotify again", f->d.fd, path);
			goto fail;
		}
		if (wd != w.wd) {
			err_set("fd %d: inotify watch %d on %s came back as %d", f->d.fd, w.wd,
				path, wd);
			goto fail;
		}
	}
	if (skipped) {
		char buf[4096];
		while (read(fd, buf, sizeof(buf)) > 0)
			;
	}
	if (!(f->d.flags & O_NONBLOCK))
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
fail:
	close(fd);
	return -1;
}

static void show_inotify(FILE *out, const struct fd_entry *f, int json)
{
	struct img_inotify in;

	memcpy(&in, f->extra, sizeof(in));
	fd_put_num(out, json, "watches", in.n);
	fd_put_num(out, json, "unread", in.queued);
}

/* Its watches: a line each in text, "watch_list" in JSON. */
static void show_watches(FILE *out, const struct fd_entry *f, int json)
{
	struct img_inotify in;
	uint64_t off = sizeof(in);

	memcpy(&in, f->extra, sizeof(in));
	if (json)
		fprintf(out, ",\"watch_list\":[");
	for (uint32_t k = 0; k < in.n; k++) {
		struct img_inotify_watch w;
		struct img_inotify_handle h;
		const unsigned char *handle;
		const char *path;

		if (next_watch(f->extra, f->d.extra_len, &off, &w, &path, &h, &handle))
			break;
		if (json) {
			fprintf(out, "%s{\"wd\":%d,\"mask\":%u,", k ? "," : "", w.wd, w.mask);
			if (handle)
				fprintf(out, "\"inode\":%llu,\"by_handle\":true}",
					(unsigned long long)w.ino);
			else {
				fprintf(out, "\"path\":");
				json_str(out, path, w.path_len);
				fputc('}', out);
			}
		} else if (handle) {
			fprintf(out, "      wd %d mask %#x no path: inode %llu, by its handle\n",
				w.wd, w.mask, (unsigned long long)w.ino);
		} else {
			fprintf(out, "      wd %d mask %#x %.*s\n", w.wd, w.mask, (int)w.path_len,
				path);
		}
	}
	if (json)
		fputc(']', out);
}

const struct fd_ops fd_inotify_ops = {
    .name = "inotify",
    .anon = "anon_inode:inotify",
    .capture = capture_inotify,
    .check = check_inotify,
    .make = make_inotify,
    .show = show_inotify,
    .show_list = show_watches,
};
