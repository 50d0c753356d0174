/* file.c: the kinds that are paths or streams: files, directories, devices, standard streams and
 * objects whose contents the image holds (shm.c).  restore/ opens them again itself; their FILE
 * records carry no extra bytes, except a regular file's locks (an img_file_locks and its
 * img_lock). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

static int check_none(const unsigned char *x, uint32_t n)
{
	(void)x;
	return n ? -1 : 0;
}

/* ---- capturing a regular file's locks --------------------------------- */

/* One "lock:" line of fdinfo: "N: KIND MODE TYPE PID MAJ:MIN:INO START END".
 * fdinfo shows only the locks this fd's open file description holds for
 * this process: POSIX locks the process took through it (owner its file
 * table), OFD, flock and lease locks of the description.  0, 1 for a
 * line that is no lock of ours, or -1 naming it. */
static int parse_lock(const struct fd_source *src, int fd, const char *line, struct img_lock *l)
{
	char kind[16], mode[16], type[16], end[32];
	unsigned long long start;
	long pid;

	if (sscanf(line, "%*d: %15s %15s %15s %ld %*s %llu %31s", kind, mode, type, &pid, &start,
		   end) != 6) {
		err_set("pid %d: fd %d (%s): cannot read its lock line", src->pid, fd, src->link);
		return -1;
	}
	memset(l, 0, sizeof(*l));
	if (!strcmp(kind, "POSIX")) {
		if (pid != src->pid)
			return 1; /* a thread group of another table: not ours */
		l->kind = IMG_LOCK_POSIX;
	} else if (!strcmp(kind, "OFDLCK")) {
		l->kind = IMG_LOCK_OFD;
	} else if (!strcmp(kind, "FLOCK")) {
		l->kind = IMG_LOCK_FLOCK;
	} else if (!strcmp(kind, "LEASE")) {
		if (strcmp(mode, "ACTIVE")) {
			err_set("pid %d: fd %d (%s) holds a lease being broken (%s); not supported",
				src->pid, fd, src->link, mode);
			return -1;
		}
		l->kind = IMG_LOCK_LEASE;
	} else {
		err_set("pid %d: fd %d (%s) holds a lock of kind %s; not supported", src->pid, fd,
			src->link, kind);
		return -1;
	}
	if (!strcmp(type, "READ")) {
		l->type = F_RDLCK;
	} else if (!strcmp(type, "WRITE")) {
		l->type = F_WRLCK;
	} else {
		err_set("pid %d: fd %d (%s) holds a %s lock of type %s; not supported", src->pid,
			fd, src->link, kind, type);
		return -1;
	}
	l->start = start;
	if (strcmp(end, "EOF"))
		l->len = strtoull(end, NULL, 10) - start + 1;
	if (l->kind == IMG_LOCK_FLOCK || l->kind == IMG_LOCK_LEASE)
		l->start = l->len = 0;
	return 0;
}

static int capture_file(const struct fd_source *src, struct fd_entry *f)
{
	struct img_file_locks h = {0};
	struct img_lock *l = NULL;
	char path[64], *info;
	const char *p;
	int rc = 0;

	info =
	    read_file(fmt_path(path, sizeof(path), "/proc/%d/fdinfo/%d", src->pid, f->d.fd), NULL);
	if (!info)
		return -1;
	for (p = info; (p = fd_info_field(p, "lock")) && !rc; p += strcspn(p, "\n")) {
		struct img_lock *nl;

		if (h.n == IMG_MAX_LOCKS) {
			err_set("pid %d: fd %d (%s): more than %d locks", src->pid, f->d.fd,
				src->link, IMG_MAX_LOCKS);
			rc = -1;
			break;
		}
		if (!(nl = realloc(l, (h.n + 1) * sizeof(*l)))) {
			err_set("out of memory");
			rc = -1;
			break;
		}
		l = nl;
		rc = parse_lock(src, f->d.fd, p + strspn(p, " \t"), &l[h.n]);
		if (rc == 0)
			h.n++;
		rc = rc < 0 ? -1 : 0;
	}
	free(info);
	if (rc == 0 && h.n)
		rc = fd_set_extra(f, &h, sizeof(h), l, h.n * sizeof(*l));
	free(l);
	return rc;
}

/* A directory, a device or a file whose contents the image keeps: its
 * locks would not come back. */
static int refuse_locks(const struct fd_source *src, struct fd_entry *f)
{
	char path[64], *info;
	int rc = 0;

	info =
	    read_file(fmt_path(path, sizeof(path), "/proc/%d/fdinfo/%d", src->pid, f->d.fd), NULL);
	if (!info)
		return -1;
	if (fd_info_field(info, "lock")) {
		err_set("pid %d: fd %d (%s) holds a lock on a file that is not a regular file "
			"reopened by path; not supported",
			src->pid, f->d.fd, src->link);
		rc = -1;
	}
	free(info);
	return rc;
}

/* ---- reading them ----------------------------------------------------- */

static int check_file(const unsigned char *x, uint32_t n)
{
	struct img_file_locks h;

	if (n == 0)
		return 0;
	if (n < sizeof(h))
		return -1;
	memcpy(&h, x, sizeof(h));
	if (h.pad || h.n == 0 || h.n > IMG_MAX_LOCKS ||
	    n != sizeof(h) + (uint64_t)h.n * sizeof(struct img_lock))
		return -1;
	for (uint32_t i = 0; i < h.n; i++) {
		struct img_lock l;

		memcpy(&l, x + sizeof(h) + i * sizeof(l), sizeof(l));
		if (l.kind < IMG_LOCK_POSIX || l.kind > IMG_LOCK_LEASE ||
		    (l.type != F_RDLCK && l.type != F_WRLCK) || l.start > INT64_MAX ||
		    l.len > INT64_MAX - l.start)
			return -1;
		if ((l.kind == IMG_LOCK_FLOCK || l.kind == IMG_LOCK_LEASE) && (l.start || l.len))
			return -1;
	}
	return 0;
}

uint32_t fd_file_nlocks(const struct fd_entry *f)
{
	struct img_file_locks h = {0};

	if (f->d.kind == IMG_FD_REG && f->d.extra_len >= sizeof(h))
		memcpy(&h, f->extra, sizeof(h));
	return h.n;
}

void fd_file_lock(const struct fd_entry *f, uint32_t i, struct img_lock *l)
{
	memcpy(l, f->extra + sizeof(struct img_file_locks) + i * sizeof(*l), sizeof(*l));
}

/* ---- showing them ----------------------------------------------------- */

static const char *const lock_names[] = {"?", "posix", "ofd", "flock", "lease"};

static void show_file(FILE *out, const struct fd_entry *f, int json)
{
	uint32_t n = fd_file_nlocks(f);

	if (n)
		fd_put_num(out, json, "locks", n);
}

static void show_locks(FILE *out, const struct fd_entry *f, int json)
{
	uint32_t n = fd_file_nlocks(f);

	if (json && !n)
		return;
	if (json)
		fprintf(out, ",\"lock_list\":[");
	for (uint32_t i = 0; i < n; i++) {
		struct img_lock l;
		const char *type;

		fd_file_lock(f, i, &l);
		type = l.type == F_WRLCK ? "write" : "read";
		if (json)
			fprintf(out,
				"%s{\"kind\":\"%s\",\"type\":\"%s\",\"start\":%llu,\"len\":%llu}",
				i ? "," : "", lock_names[l.kind], type, (unsigned long long)l.start,
				(unsigned long long)l.len);
		else
			fprintf(out, "      lock %s %s start %llu len %llu%s\n", lock_names[l.kind],
				type, (unsigned long long)l.start, (unsigned long long)l.len,
				l.len ? "" : " (to the end)");
	}
	if (json)
		fprintf(out, "]");
}

/* ---- files of /proc/PID ------------------------------------------------ */

pid_t fd_proc_pid(const char *path)
{
	char *end;
	long pid;

	if (strncmp(path, "/proc/", 6) || path[6] < '1' || path[6] > '9')
		return 0;
	pid = strtol(path + 6, &end, 10);
	return (*end == '/' || !*end) && pid <= INT32_MAX ? (pid_t)pid : 0;
}

pid_t fd_proc_tid(const char *path)
{
	const char *rest = path + 6 + strspn(path + 6, "0123456789");
	char *end;
	long tid;

	if (!fd_proc_pid(path) || strncmp(rest, "/task/", 6) || rest[6] < '1' || rest[6] > '9')
		return 0;
	tid = strtol(rest + 6, &end, 10);
	return (*end == '/' || !*end) && tid <= INT32_MAX ? (pid_t)tid : 0;
}

/* The pid a process of a tree has where its /proc shows it: ours, or in
 * a pid namespace that is not ours (a tree ckpt-remap restored there,
 * with a /proc of its own), its pid there, which the image records. */
static pid_t proc_view(pid_t pid, pid_t ours)
{
	struct proc_nsids ids;

	return ours || proc_read_nsids(pid, 0, -1, &ids) ? pid : ids.pid;
}

/* A file (or directory) of /proc/PID is reopened at restore as the same
 * process's (restore/ maps the pid): only one of the image's processes;
 * of /proc/PID/task/TID only the main thread's (the restore opens files
 * before it makes the other threads). */
static int join_proc_files(struct fd_all *a)
{
	struct stat ours, theirs;
	char ns[64];
	int same = a->n == 0 || stat("/proc/self/ns/pid", &ours) ||
		   stat(fmt_path(ns, sizeof(ns), "/proc/%d/ns/pid", a->pid[0]), &theirs) ||
		   ours.st_ino == theirs.st_ino;

	for (size_t i = 0; i < a->n; i++) {
		const struct fd_entry *f = a->f[i];
		pid_t pid = 0;
		size_t k;

		if (f->d.kind == IMG_FD_REG || f->d.kind == IMG_FD_DIR)
			pid = fd_proc_pid(f->path);
		for (k = 0; pid && k < a->n && proc_view(a->pid[k], same) != pid; k++)
			;
		if (pid && k == a->n) {
			err_set("pid %d: fd %d is %s, a file of process %d, which the image does "
				"not hold; not supported",
				a->pid[i], f->d.fd, f->path, pid);
			return -1;
		}
		if (pid && fd_proc_tid(f->path) > 0 && fd_proc_tid(f->path) != pid) {
			err_set("pid %d: fd %d is %s, a file of thread %d, which the restore makes "
				"after the files; not supported",
				a->pid[i], f->d.fd, f->path, (int)fd_proc_tid(f->path));
			return -1;
		}
	}
	return 0;
}

const struct fd_ops fd_file_ops = {.name = "file",
				   .capture = capture_file,
				   .join = join_proc_files,
				   .check = check_file,
				   .show = show_file,
				   .show_list = show_locks};
const struct fd_ops fd_dir_ops = {.name = "dir", .capture = refuse_locks, .check = check_none};
const struct fd_ops fd_chr_ops = {.name = "chr", .capture = refuse_locks, .check = check_none};
const struct fd_ops fd_inherit_ops = {.name = "inherit", .check = check_none};
/* ---- files whose contents the image holds ------------------------------ */

/* Its owner and access time, which the restore gives back (shm.c). */
static int capture_shm(const struct fd_source *src, struct fd_entry *f)
{
	struct img_shm_attr a = {.uid = src->sb->st_uid,
				 .gid = src->sb->st_gid,
				 .atime_sec = src->sb->st_atim.tv_sec,
				 .atime_nsec = src->sb->st_atim.tv_nsec};

	if (refuse_locks(src, f))
		return -1;
	return fd_set_extra(f, &a, sizeof(a), NULL, 0);
}

static int check_shm(const unsigned char *x, uint32_t n)
{
	struct img_shm_attr a;

	if (n == 0)
		return 0;
	if (n != sizeof(a))
		return -1;
	memcpy(&a, x, sizeof(a));
	return a.pad || a.atime_nsec >= 1000000000u ? -1 : 0;
}

static void show_shm(FILE *out, const struct fd_entry *f, int json)
{
	struct img_shm_attr a;

	if (f->d.extra_len != sizeof(a))
		return;
	memcpy(&a, f->extra, sizeof(a));
	fd_put_num(out, json, "uid", a.uid);
	fd_put_num(out, json, "gid", a.gid);
}

const struct fd_ops fd_shm_ops = {
    .name = "shm", .capture = capture_shm, .check = check_shm, .show = show_shm};

/* ---- O_PATH descriptors ----------------------------------------------- */

/* An O_PATH descriptor opens nothing: it is reopened by its path (a
 * symlink's own, O_NOFOLLOW), whatever the path leads to, unless the
 * path is gone. */
static int capture_opath(const struct fd_source *src, struct fd_entry *f)
{
	size_t l = strlen(src->link);

	if (src->link[0] != '/' || src->sb->st_nlink == 0 ||
	    (l > 10 && !strcmp(src->link + l - 10, " (deleted)"))) {
		err_set("pid %d: fd %d is an O_PATH descriptor of deleted or unreachable %s; not "
			"supported",
			src->pid, f->d.fd, src->link);
		return -1;
	}
	return 0;
}

const struct fd_ops fd_opath_ops = {.name = "opath", .capture = capture_opath, .check = check_none};

/* ---- deleted directories and FIFOs ------------------------------------ */

/* A deleted directory keeps its owner and access time (an
 * img_shm_attr; its mode and mtime are the record's); a deleted FIFO its
 * bytes, as a FIFO by path does, then the same. */
static int capture_deleted(const struct fd_source *src, struct fd_entry *f)
{
	struct img_shm_attr a = {.uid = src->sb->st_uid,
				 .gid = src->sb->st_gid,
				 .atime_sec = src->sb->st_atim.tv_sec,
				 .atime_nsec = src->sb->st_atim.tv_nsec};
	unsigned char *x;

	if (!S_ISFIFO(src->sb->st_mode))
		return refuse_locks(src, f) ? -1 : fd_set_extra(f, &a, sizeof(a), NULL, 0);
	if (fd_fifo_ops.capture(src, f))
		return -1;
	if (!(x = realloc(f->extra, f->d.extra_len + sizeof(a)))) {
		err_set("out of memory");
		return -1;
	}
	memcpy(x + f->d.extra_len, &a, sizeof(a));
	f->extra = x;
	f->d.extra_len += sizeof(a);
	return 0;
}

/* The bytes of f's FIFO part (none for a directory), and where its owner
 * is (the rest): -1 if it has none (images before it was kept). */
static int64_t deleted_attr_at(const unsigned char *x, uint32_t n, mode_t mode)
{
	struct img_fifo p;
	uint64_t fifo = 0;

	if (S_ISFIFO(mode) && n >= sizeof(p)) {
		memcpy(&p, x, sizeof(p));
		fifo = sizeof(p) + (uint64_t)p.data_len;
	}
	return n == fifo + sizeof(struct img_shm_attr) ? (int64_t)fifo : -1;
}

static int fd_deleted_attr(const struct fd_entry *f, struct img_shm_attr *a)
{
	int64_t at = deleted_attr_at(f->extra, f->d.extra_len, f->d.mode);

	if (at >= 0)
		memcpy(a, f->extra + at, sizeof(*a));
	return at >= 0 ? 0 : -1;
}

/* Without the mode it is checked as any of them: nothing, a directory's
 * owner, a FIFO part with or without its owner (make_deleted checks
 * again by the mode). */
static int check_deleted(const unsigned char *x, uint32_t n)
{
	int64_t at = deleted_attr_at(x, n, S_IFIFO);

	if (!n || (n == sizeof(struct img_shm_attr) && !check_shm(x, n)))
		return 0;
	if (at > 0 && !fd_fifo_ops.check(x, at) && !check_shm(x + at, n - at))
		return 0;
	return fd_fifo_ops.check(x, n);
}

static void show_deleted(FILE *out, const struct fd_entry *f, int json)
{
	struct img_shm_attr a;

	if (S_ISFIFO(f->d.mode) && f->d.extra_len >= sizeof(struct img_fifo))
		fd_fifo_ops.show(out, f, json);
	if (!fd_deleted_attr(f, &a)) {
		fd_put_num(out, json, "uid", a.uid);
		fd_put_num(out, json, "gid", a.gid);
	}
}

/* Its owner (where it was another's), mode and times, once made: chown
 * needs CAP_CHOWN for another user's, or a group ckpt-remap is not in;
 * one line says so when it may not. */
static void give_deleted_attrs(const struct fd_entry *f, int fd)
{
	struct img_shm_attr a;
	struct timespec ts[2] = {{0, UTIME_OMIT}, {f->d.mtime_sec, f->d.mtime_nsec}};
	struct stat sb;
	char path[64];

	fmt_path(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (!fd_deleted_attr(f, &a)) {
		ts[0] = (struct timespec){a.atime_sec, a.atime_nsec};
		if (!fstat(fd, &sb) && (sb.st_uid != a.uid || sb.st_gid != a.gid) &&
		    fchownat(fd, "", a.uid, a.gid, AT_EMPTY_PATH))
			warnx("fd %d: deleted %s %s comes back owned by %u:%u, not %u:%u: %s",
			      f->d.fd, S_ISDIR(f->d.mode) ? "directory" : "FIFO", f->path,
			      (unsigned)sb.st_uid, (unsigned)sb.st_gid, a.uid, a.gid,
			      strerror(errno));
		/* After chown, which may clear the set-group-ID bit. */
		chmod(path, f->d.mode & 07777);
	}
	/* Its times as the checkpoint saw them: making it, and a write, set
	 * them. */
	utimensat(AT_FDCWD, path, ts, 0);
}

static int make_one(const char *name, mode_t mode)
{
	int fd, rc = S_ISDIR(mode) ? mkdir(name, 0700) : mkfifo(name, 0600);

	if (rc)
		return -1;
	/* Its own mode, whatever our umask, before anyone else may open it. */
	fd = open(name, (S_ISDIR(mode) ? O_PATH | O_DIRECTORY : O_RDWR | O_NONBLOCK) | O_NOFOLLOW |
			    O_CLOEXEC);
	if (fd >= 0 && chmod(name, mode & 07777) == 0 &&
	    (S_ISDIR(mode) ? rmdir(name) : unlink(name)) == 0)
		return fd;
	rc = errno;
	if (fd >= 0)
		close(fd);
	if (S_ISDIR(mode) ? rmdir(name) : unlink(name)) {
		/* nothing: it was made here, and the error is rc's */
	}
	errno = rc;
	return -2;
}

int fd_make_deleted(const char *link, mode_t mode)
{
	char path[PATH_MAX], name[PATH_MAX + 64];
	const char *tmp = getenv("TMPDIR");
	size_t l = strlen(link);
	int fd = -1;

	if (l > 10 && !strcmp(link + l - 10, " (deleted)"))
		l -= 10;
	snprintf(path, sizeof(path), "%.*s", (int)l, link);
	if (!tmp || tmp[0] != '/')
		tmp = "/tmp";
	/* Where a name is taken, the next; where the directory is gone or
	 * not ours to write, the temporary directory. */
	for (int i = 0; i < 100 && fd == -1; i++) {
		if (i == 0)
			snprintf(name, sizeof(name), "%s", path);
		else if (i < 50)
			snprintf(name, sizeof(name), "%s.ckpt%d-%d", path, (int)getpid(), i);
		else
			snprintf(name, sizeof(name), "%s/ckpt-deleted%d-%d", tmp, (int)getpid(), i);
		fd = make_one(name, mode);
		if (fd == -1 && errno != EEXIST && i < 50)
			i = 49;
		else if (fd == -1 && errno != EEXIST)
			break;
	}
	if (fd < 0)
		err_sys("cannot make deleted %s %s again", S_ISDIR(mode) ? "directory" : "FIFO",
			path);
	return fd;
}

/* Every fd of one deleted directory or FIFO is an open of the one made
 * for the first (kept in pipes until all are made): the same inode. */
static int make_deleted(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct fd_pipe *fp = fd_find_pair(pipes, IMG_FD_DELDIR, f->d.ino);
	struct img_fifo p = {0};
	char path[64];
	int fd, flags = f->d.flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);

	if (!S_ISDIR(f->d.mode) && !S_ISFIFO(f->d.mode)) {
		err_set("fd %d: deleted %s of mode %o: neither directory nor FIFO", f->d.fd,
			f->path, f->d.mode);
		return -1;
	}
	if (S_ISFIFO(f->d.mode) && f->d.extra_len >= sizeof(p))
		memcpy(&p, f->extra, sizeof(p));
	if (sizeof(p) + (uint64_t)p.data_len > f->d.extra_len && p.data_len) {
		err_set("fd %d: deleted FIFO %s: malformed record", f->d.fd, f->path);
		return -1;
	}
	if (!fp) {
		if (!(fp = fd_new_pair(pipes, IMG_FD_DELDIR, f->d.ino)))
			return -1;
		if ((fp->end[0] = fd_make_deleted(f->path, f->d.mode)) < 0)
			return -1;
		pipes->n++;
		/* Above pipe-max-size an unprivileged user keeps the default. */
		if (p.size && fcntl(fp->end[0], F_SETPIPE_SZ, p.size) < 0 && p.data_len > 65536) {
			err_sys("fd %d: cannot make FIFO %s hold %u bytes", f->d.fd, f->path,
				p.size);
			return -1;
		}
	}
	if (p.data_len && write_all(fp->end[0], f->extra + sizeof(p), p.data_len)) {
		err_sys("fd %d: cannot put %u bytes back in FIFO %s", f->d.fd, p.data_len, f->path);
		return -1;
	}
	give_deleted_attrs(f, fp->end[0]);
	fmt_path(path, sizeof(path), "/proc/self/fd/%d", fp->end[0]);
	flags =
	    S_ISFIFO(f->d.mode) ? (flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC : flags | O_CLOEXEC;
	fd = open(path, flags);
	/* One the program opened before it took its own permission away:
	 * the owner's (ours: made here) lent for the moment. */
	if (fd < 0 && errno == EACCES && chmod(path, (f->d.mode & 07777) | S_IRWXU) == 0) {
		fd = open(path, flags);
		if (chmod(path, f->d.mode & 07777) && fd >= 0) {
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0) {
		err_sys("fd %d: cannot open deleted %s again", f->d.fd, f->path);
		return -1;
	}
	fcntl(fd, F_SETFL, (fcntl(fd, F_GETFL) & ~O_NONBLOCK) | (f->d.flags & O_NONBLOCK));
	return fd;
}

const struct fd_ops fd_deleted_ops = {.name = "deleted",
				      .capture = capture_deleted,
				      .check = check_deleted,
				      .make = make_deleted,
				      .show = show_deleted};
