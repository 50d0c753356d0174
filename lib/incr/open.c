/* open.c: opening an image to read: file or stdin, decompressor, trust, parents. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "image/image.h"
#include "incr/incr.h"
#include "io/io.h"
#include "kinds/kinds.h"

struct image *img_proc_at(struct img_input *in, size_t k)
{
	return k == 0 ? &in->im : &in->rest[k - 1];
}

/* The SHM objects of every process, each once; each process's record of
 * an object must agree with the first one's. */
static int list_objects(struct img_input *in)
{
	struct image **procs = calloc(in->nrest + 1, sizeof(*procs));
	uint64_t *number = NULL;
	size_t r = 0;
	int rc = -1;

	if (!procs) {
		err_set("out of memory");
		return -1;
	}
	for (size_t k = 0; k <= in->nrest; k++)
		procs[k] = img_proc_at(in, k);
	if (img_list_objects(procs, in->nrest + 1, &in->objs, &in->nobjs, &number))
		goto out;
	for (size_t k = 0; k <= in->nrest; k++)
		for (size_t i = 0; i < procs[k]->nshms; i++, r++) {
			const struct shm_obj *o = &procs[k]->shms[i], *first = in->objs[number[r]];

			if (first->d.kind != o->d.kind || first->d.size != o->d.size) {
				err_set("SHM record of pid %d: object %s differs from the "
					"same object of another process",
					procs[k]->proc.pid, o->name);
				goto out;
			}
		}
	rc = 0;
out:
	free(number);
	free(procs);
	return rc;
}

/* The other processes of a tree, after the first. */
static int read_tree(struct img_input *in)
{
	uint32_t n = in->im.hdr.nprocs;
	const struct image **procs;
	int rc;

	if (n > 1) {
		in->rest = calloc(n - 1, sizeof(*in->rest));
		if (!in->rest) {
			err_set("out of memory");
			return -1;
		}
		for (uint32_t k = 1; k < n; k++) {
			struct image *im = &in->rest[k - 1];
			in->nrest++;
			im->hdr = in->im.hdr;
			if (img_read_proc(&in->r, im))
				return -1;
		}
	}
	procs = calloc(n, sizeof(*procs));
	if (!procs) {
		err_set("out of memory");
		return -1;
	}
	for (uint32_t k = 0; k < n; k++)
		procs[k] = img_proc_at(in, k);
	rc = img_check_tree(procs, n);
	free(procs);
	return rc ? -1 : list_objects(in);
}

void img_input_free(struct img_input *in)
{
	img_stage_free(in);
	image_free(&in->im);
	for (size_t k = 0; k < in->nrest; k++)
		image_free(&in->rest[k]);
	free(in->rest);
	free(in->objs);
	in->rest = NULL;
	in->nrest = 0;
	in->objs = NULL;
	in->nobjs = 0;
}

void img_input_close(struct img_input *in)
{
	if (in->r.fd > 0)
		close(in->r.fd);
	in->r.fd = -1;
	if (in->status_fd >= 0)
		close(in->status_fd);
	in->status_fd = -1;
	img_input_free(in);
}

/* What a file that is not a regular one is, for messages. */
static const char *file_kind(mode_t m)
{
	return S_ISFIFO(m)   ? "a FIFO"
	       : S_ISSOCK(m) ? "a socket"
	       : S_ISCHR(m)  ? "a character device"
	       : S_ISBLK(m)  ? "a block device"
	       : S_ISDIR(m)  ? "a directory"
			     : "not a regular file";
}

/* Root's rule for an image (ckpt(7), SECURITY): the opened file, never the
 * path (a name can be swapped once opened), must be a regular file that
 * only root could have written.  A pipe, socket or terminal: its writer
 * may be anyone.  path is the name for messages ("standard input"). */
static int check_file(int fd, const char *path)
{
	struct stat st;

	if (fstat(fd, &st)) {
		err_sys("cannot stat %s", path);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set("%s: %s, whose writer may be any user, who could have written any code "
			"into it; restoring it as root: refused without --allow-other-user",
			path,
			S_ISFIFO(st.st_mode) && !strcmp(path, "standard input") ? "a pipe"
										 : file_kind(st.st_mode));
		return -1;
	}
	if (st.st_uid != 0) {
		err_set("%s: the file belongs to uid %u, who could have written any code into it; "
			"restoring it as root: refused without --allow-other-user",
			path, (unsigned)st.st_uid);
		return -1;
	}
	/* Group root is root's; any other group's or everyone's write bit
	 * lets another user write the code. */
	if ((st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) && st.st_gid != 0)) {
		err_set("%s: the file (mode %04o, group %u) may be written by users other than "
			"root, who could have written any code into it; restoring it as root: "
			"refused without --allow-other-user",
			path, (unsigned)(st.st_mode & 07777), (unsigned)st.st_gid);
		return -1;
	}
	return 0;
}

/* The processes an image holds run as root once restored by root: each
 * must have been root's (a zombie runs nothing).  The caller names the
 * image. */
static int check_uids(struct img_input *in)
{
	for (size_t k = 0; k <= in->nrest; k++) {
		const struct img_proc *p = &img_proc_at(in, k)->proc;
		char who[32] = "the process";

		if (in->nrest)
			snprintf(who, sizeof(who), "process %d", p->pid);
		if (p->uid != 0 && !(p->flags & IMG_PROC_ZOMBIE)) {
			err_set("%s belonged to uid %u; restoring it as root would run it as root: "
				"refused without --allow-other-user",
				who, p->uid);
			return -1;
		}
	}
	return 0;
}

enum { OPEN_IMAGE, OPEN_PARENT };

static int open_one(const char *path, struct img_input *in, int trust, int how);

int img_open_as(const char *path, struct img_input *in, int trust)
{
	if (open_one(path, in, trust, OPEN_IMAGE))
		return -1;
	/* An incremental image: a merging process gives its page data. */
	if (in->im.parent && incr_attach(in, path ? path : "-")) {
		img_input_close(in);
		return -1;
	}
	return 0;
}

/* An image file with bytes after its END record (appended, or a second
 * image) is no image to restore: say so before anything is restored, as
 * ckpt-remap reads the page data only after the point of no return.  The
 * record headers are enough to find END (a record's length covers its page
 * data), read with pread so that the stream stays where it is.  A walk
 * that does not land on END exactly (a cut or corrupt stream) is left to
 * the reader, which names the damage. */
static int check_tail(struct img_input *in)
{
	uint64_t off = in->r.off, base, size;
	struct stat st;
	off_t pos;

	if (in->compressed || fstat(in->r.fd, &st) || !S_ISREG(st.st_mode))
		return 0;
	/* The stream starts at base in the file (standard input may have
	 * been read from before). */
	pos = lseek(in->r.fd, 0, SEEK_CUR);
	if (pos < 0 || (uint64_t)pos < off || st.st_size < pos)
		return 0;
	base = pos - off;
	size = st.st_size - base;
	for (;;) {
		struct img_rec rec;
		uint64_t next;

		if (size - off < sizeof(rec) ||
		    pread(in->r.fd, &rec, sizeof(rec), base + off) != (ssize_t)sizeof(rec) ||
		    rec.len > size - off - sizeof(rec))
			return 0;
		next = off + sizeof(rec) + rec.len;
		if (rec.type == IMG_REC_END) {
			if (next == size)
				return 0;
			err_set("%llu bytes after the END record, from offset %llu: not part of "
				"the image",
				(unsigned long long)(size - next), (unsigned long long)next);
			return -1;
		}
		off = next;
	}
}

int img_open(const char *path, struct img_input *in)
{
	return img_open_as(path, in, 0);
}

int img_open_one(const char *path, struct img_input *in)
{
	return open_one(path, in, 0, OPEN_IMAGE);
}

int img_open_parent(const char *path, struct img_input *in, int merge, int trust)
{
	if (open_one(path, in, trust, OPEN_PARENT))
		return -1;
	if (merge && in->im.parent && incr_attach(in, path)) {
		img_input_close(in);
		return -1;
	}
	return 0;
}

/* A name the image gives, maybe another user's: no link followed, and
 * nothing but a regular file opened (opening a FIFO waits, opening a
 * device may act), by way of an O_PATH fd, which opens nothing.  Its fd,
 * or -1. */
static int open_parent_file(const char *path)
{
	char self[64];
	struct stat st;
	int pfd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC), fd;

	if (pfd < 0) {
		err_sys("cannot open %s", path);
		return -1;
	}
	if (fstat(pfd, &st) || !S_ISREG(st.st_mode)) {
		err_set("%s: not a regular file (%s)", path,
			S_ISLNK(st.st_mode) ? "a symbolic link" : file_kind(st.st_mode));
		close(pfd);
		return -1;
	}
	fd = open(fmt_path(self, sizeof(self), "/proc/self/fd/%d", pfd),
		  O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		err_sys("cannot open %s", path);
	close(pfd);
	return fd;
}

/* The fd of the image open_one opens: standard input (path NULL or "-",
 * then named so in *path for messages), the file, or a parent.  -1 on
 * failure. */
static int open_file(const char **path, struct img_input *in, int how)
{
	int fd;

	if (how == OPEN_PARENT)
		return open_parent_file(*path);
	if (!*path || !strcmp(*path, "-")) {
		in->from_stdin = 1;
		*path = "standard input";
		grow_pipe(0);
		return 0;
	}
	fd = open(*path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		err_sys("cannot open %s", *path);
	return fd;
}

/* The first bytes of the stream on *fd, enough to tell a compressed stream
 * (then *fd becomes its decompressor's, and *n 0) from an image (its
 * magic, *n bytes of it in prefix). */
static int sniff(struct img_input *in, int *fd, const char *path, unsigned char *prefix,
		 ssize_t *n)
{
	*n = read_full(*fd, prefix, 8);
	if (*n < 0) {
		err_sys("cannot read %s", path);
		return -1;
	}
	if (*n == 0) {
		err_set("%s: empty, not an image", path);
		return -1;
	}
	if (zio_detect(prefix, *n) != ZIO_NONE) {
		int pfd;
		if (zio_spawn_decompressor(*fd, prefix, *n, &pfd, &in->status_fd))
			return -1;
		if (*fd != 0)
			close(*fd);
		*fd = pfd;
		in->compressed = 1;
		*n = 0;
	} else if (*n == 8 && !memcmp(prefix, IMG_LIVE_MAGIC, 8)) {
		/* ckpt-dump --live: its pre-copy first, then the image. */
		if (img_live_receive(*fd, path, in, prefix, n))
			return -1;
	} else if (*n < 8 || memcmp(prefix, IMG_MAGIC, 8)) {
		err_set("%s: not a ckpt image (bad magic)", path);
		return -1;
	}
	return 0;
}

static int open_one(const char *path, struct img_input *in, int trust, int how)
{
	unsigned char prefix[sizeof(struct img_header)];
	ssize_t n;
	int fd;

	memset(in, 0, sizeof(*in));
	in->status_fd = -1;
	in->trust = trust;
	fd = open_file(&path, in, how);
	if (fd < 0)
		return -1;
	/* Before a byte of it is read: the file as opened is what counts. */
	if ((trust && check_file(fd, path)) || sniff(in, &fd, path, prefix, &n)) {
		/* Nothing of ours stays open (standard input is not ours). */
		if (fd > 0)
			close(fd);
		return -1;
	}
	in->r.fd = fd;
	/* The reader (image/) knows no fd kinds: kinds/ checks each FILE
	 * record as it is read. */
	in->r.check_file = fd_check_file;
	if (img_read_meta(&in->r, &in->im, prefix, n) || read_tree(in) ||
	    check_tail(in) || (trust && check_uids(in))) {
		char why[1024];

		img_input_fail(in);
		snprintf(why, sizeof(why), "%s", err_get());
		err_set("%s: %s", path, why);
		img_input_close(in);
		return -1;
	}
	return 0;
}

void img_input_fail(struct img_input *in)
{
	char why[1024];

	if (in->status_fd < 0)
		return;
	/* A decompressor blocked on a full pipe would never exit: close our
	 * end first; it dies of SIGPIPE then, with nothing to say. */
	snprintf(why, sizeof(why), "%s", err_get());
	close(in->r.fd);
	in->r.fd = -1;
	if (img_input_status(in) == 0)
		err_set("%s", why);
}

int img_input_end(struct img_input *in)
{
	char buf[4096];
	uint64_t extra = 0;
	struct stat st;
	off_t pos;
	ssize_t k;

	/* A file: what lies beyond (check_tail saw it, unless it grew). */
	if (!in->compressed && fstat(in->r.fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (pos = lseek(in->r.fd, 0, SEEK_CUR)) >= 0) {
		extra = st.st_size > pos ? st.st_size - pos : 0;
	} else {
		/* A pipe: what its writer (a decompressor, or whoever feeds
		 * standard input) still writes after END is not image. */
		while ((k = read(in->r.fd, buf, sizeof(buf))) > 0 || (k < 0 && errno == EINTR))
			if (k > 0)
				extra += k;
	}
	if (img_input_status(in))
		return -1;
	if (extra) {
		err_set("%llu bytes after the END record, from offset %llu%s: not part of the "
			"image",
			(unsigned long long)extra, (unsigned long long)in->r.off,
			in->compressed ? " of the decompressed stream" : "");
		return -1;
	}
	return 0;
}

int img_input_status(struct img_input *in)
{
	char msg[512];
	size_t len = 0;
	ssize_t k;

	if (in->status_fd < 0)
		return 0;
	/* Blocks until the decompressor exits: it closes the pipe then. */
	while (len < sizeof(msg) - 1 &&
	       ((k = read(in->status_fd, msg + len, sizeof(msg) - 1 - len)) > 0 ||
		(k < 0 && errno == EINTR)))
		if (k > 0)
			len += k;
	close(in->status_fd);
	in->status_fd = -1;
	if (len == 0)
		return 0;
	msg[len] = 0;
	/* The merging process of an incremental image names the image in
	 * its messages; a decompressor does not. */
	err_set("%s%s", in->im.parent ? "" : "decompress: ", msg);
	return -1;
}
