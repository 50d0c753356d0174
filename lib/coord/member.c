/* member.c: a member's helper, the process ckpt-inject leaves beside a
 * program: it holds the coordinator connection, and at a checkpoint
 * freezes the program's tree with ptrace, writes its image, lets it go and
 * syncs the image (the FREEZE, DUMP, RESUME and SYNC requests of
 * ckpt-coord(1)); and what a restart checks of the large files an image
 * left out. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coord/coord.h"
#include "dump/dump.h"
#include "base/base.h"
#include "io/io.h"

#define TAIL_HASHED (1 << 20)

/* FNV-1a over the last MiB before size: what the restart checks before it
 * cuts a file back to its checkpoint size.  A check against changes, not
 * against someone who wants to forge them. */
static int tail_hash(int fd, uint64_t size, uint64_t *h)
{
	uint64_t start = size > TAIL_HASHED ? size - TAIL_HASHED : 0;
	static char buf[1 << 16];

	*h = 0xcbf29ce484222325ull;
	while (start < size) {
		size_t want = size - start < sizeof(buf) ? size - start : sizeof(buf);
		ssize_t n = pread(fd, buf, want, start);
		if (n <= 0)
			return -1;
		for (ssize_t i = 0; i < n; i++)
			*h = (*h ^ (unsigned char)buf[i]) * 0x100000001b3ull;
		start += n;
	}
	return 0;
}

/* Files already listed (a file open in several processes or on several
 * fds is listed once). */
struct seen {
	dev_t dev[256];
	ino_t ino[256];
	int n;
};

static int seen_before(struct seen *s, const struct stat *sb)
{
	for (int i = 0; i < s->n; i++)
		if (s->dev[i] == sb->st_dev && s->ino[i] == sb->st_ino)
			return 1;
	if (s->n < 256) {
		s->dev[s->n] = sb->st_dev;
		s->ino[s->n++] = sb->st_ino;
	}
	return 0;
}

/* Make name in the directory dfd, new (a stale one is removed first: the
 * directory is ours alone, checked by open_gen_dir), mode 0600, never
 * through a link: its fd, or -1 with err_set.  create_private: the same
 * as a stream. */
static int create_private_fd(int dfd, const char *name)
{
	int fd;

	if (unlinkat(dfd, name, 0) && errno != ENOENT) {
		err_sys("cannot replace %s", name);
		return -1;
	}
	fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		err_sys("cannot create %s", name);
	return fd;
}

static FILE *create_private(int dfd, const char *name, const char *mode)
{
	int fd = create_private_fd(dfd, name);
	FILE *f = fd >= 0 ? fdopen(fd, mode) : NULL;

	if (fd >= 0 && !f) {
		err_sys("cannot write %s", name);
		close(fd);
	}
	return f;
}

/* The files pid has open for writing that are larger than max (they are
 * not saved in the image): path, size, mtime and the hash of their last
 * MiB, one line each, into the file list (*out, opened on the first). */
static int record_proc(pid_t pid, uint64_t max, int dfd, const char *list, FILE **out,
		       struct seen *s)
{
	char path[320], file[PATH_MAX], esc[PATH_MAX * 3];
	DIR *d = opendir(fmt_path(path, sizeof(path), "/proc/%d/fd", pid));
	struct dirent *e;
	int rc = 0;

	if (!d) {
		err_sys("pid %d: cannot list its files", pid);
		return -1;
	}
	while ((e = readdir(d))) {
		char info[320], *text, *fl;
		struct stat sb;
		unsigned long flags;
		uint64_t h;
		ssize_t n;
		int fd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd/%s", pid, e->d_name);
		if (stat(path, &sb) || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size <= max)
			continue;
		snprintf(info, sizeof(info), "/proc/%d/fdinfo/%s", pid, e->d_name);
		text = read_file(info, NULL);
		fl = text ? strstr(text, "flags:") : NULL;
		flags = fl ? strtoul(fl + 6, NULL, 8) : 0;
		free(text);
		if ((flags & O_ACCMODE) == O_RDONLY || seen_before(s, &sb))
			continue;
		n = readlink(path, file, sizeof(file) - 1);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (n <= 0 || fd < 0 || tail_hash(fd, sb.st_size, &h) ||
		    co_escape((file[n] = 0, file), esc, sizeof(esc))) {
			err_sys("pid %d: cannot read %s", pid, path);
			rc = -1;
		} else if (!*out && !(*out = create_private(dfd, list, "w"))) {
			rc = -1;
		} else {
			fprintf(*out, "GREW %llu %lld %ld %016llx %s\n", (unsigned long long)sb.st_size,
				(long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec,
				(unsigned long long)h, esc);
		}
		if (fd >= 0)
			close(fd);
	}
	closedir(d);
	return rc;
}

/* The same for every live process of tr, into one list, synced. */
static int record_big_files(const struct dump_tree *tr, uint64_t max, int dfd, const char *list)
{
	static struct seen s;
	FILE *out = NULL;
	int rc = 0;

	s.n = 0;
	for (size_t k = 0; k < tr->n && !rc; k++)
		if (!tr->p[k].zombie)
			rc = record_proc(tr->p[k].pid, max, dfd, list, &out, &s);
	if (out && (fflush(out) || fsync(fileno(out)))) {
		err_sys("cannot write %s", list);
		rc = -1;
	}
	if (out)
		fclose(out);
	return rc;
}

/* img's list of large files: "dir/ckpt_x_1.ckpt.zst" -> "dir/ckpt_x_1.files". */
static void files_path(const char *img, char *out, size_t size)
{
	char *p, *base;

	snprintf(out, size, "%s", img);
	base = strrchr(out, '/');
	p = strstr(base ? base : out, ".ckpt");
	if (!p)
		p = out + strlen(out);
	snprintf(p, size - (p - out), ".files");
}

/* Before a restart: every large file the image left out must have only
 * grown since; it is cut back to its checkpoint size, mtime included, so
 * that ckpt-remap finds it as it was. */
int mb_check_files(const char *img)
{
	char path[PATH_MAX + 16], line[CO_LINE_MAX * 3];
	FILE *f;
	int rc = 0;

	files_path(img, path, sizeof(path));
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : (err_sys("cannot read %s", path), -1);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long size, want;
		long long sec;
		long nsec;
		char file[CO_LINE_MAX];
		struct stat sb;
		uint64_t h;
		int fd;

		line[strcspn(line, "\n")] = 0;
		/* The path is escaped as in the protocol: reuse its parser. */
		if (sscanf(line, "GREW %llu %lld %ld %llx %4095s", &size, &sec, &nsec, &want, file) !=
			    5 ||
		    co_unescape(file)) {
			err_set("%s: a line that is not one of ours: %.80s", path, line);
			rc = -1;
			break;
		}
		fd = open(file, O_RDWR | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &sb)) {
			err_sys("%s: refused: it was %llu bytes at the checkpoint, and now", file,
				size);
			rc = -1;
			break;
		}
		if ((unsigned long long)sb.st_size < size) {
			err_set("%s: refused: it shrank since the checkpoint (%lld bytes, was %llu)",
				file, (long long)sb.st_size, size);
			rc = -1;
		} else if (tail_hash(fd, size, &h) || h != want) {
			err_set("%s: refused: its content up to the checkpoint's %llu bytes changed "
				"since (the last MiB before it differs)",
				file, size);
			rc = -1;
		} else if ((unsigned long long)sb.st_size == size && sb.st_mtim.tv_sec == sec &&
			   sb.st_mtim.tv_nsec == nsec) {
			fprintf(stderr, "ckpt-inject: %s: unchanged since the checkpoint\n",
				file);
		} else {
			struct timespec ts[2] = {{0, UTIME_OMIT}, {sec, nsec}};
			if (ftruncate(fd, size) || futimens(fd, ts)) {
				err_sys("%s: cannot cut it back to %llu bytes", file, size);
				rc = -1;
			} else {
				fprintf(stderr,
					"ckpt-inject: %s: cut back from %lld to %llu bytes, its "
					"checkpoint size (what it held then is unchanged)\n",
					file, (long long)sb.st_size, size);
			}
		}
		close(fd);
		if (rc)
			break;
	}
	fclose(f);
	return rc;
}

static volatile int no_cancel;

/* A pending image of an earlier checkpoint that failed before its SYNC. */
static void drop_pending(struct mb_helper *h)
{
	if (h->img_fd >= 0)
		close(h->img_fd);
	h->img_fd = -1;
	if (h->raw && h->dir_fd >= 0)
		unlinkat(h->dir_fd, h->raw_name, 0);
	h->raw = 0;
	if (h->dir_fd >= 0)
		close(h->dir_fd);
	h->dir_fd = -1;
}

/* The generation directory dir, made if it is not there (another host's),
 * opened without following a link, and ours alone: owned by this user
 * and writable by nobody else.  Whatever the coordinator says, the
 * helper writes only into a directory of its own user's. */
static int open_gen_dir(const char *dir)
{
	struct stat sb;
	int dfd;

	if (mkdir(dir, 0700) && errno != EEXIST) {
		err_sys("cannot make %s", dir);
		return -1;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		err_sys("cannot open the directory %s", dir);
		return -1;
	}
	if (fstat(dfd, &sb) || sb.st_uid != geteuid() || (sb.st_mode & 022)) {
		err_set("%s: not a directory of this user's alone (uid %u, mode %04o): refused", dir,
			(unsigned)sb.st_uid, (unsigned)(sb.st_mode & 07777));
		close(dfd);
		return -1;
	}
	return dfd;
}

/* img's list of large files: "ckpt_x_1.ckpt.zst" -> "ckpt_x_1.files". */
static void files_name(const char *img, char *out, size_t size)
{
	const char *p = strstr(img, ".ckpt");

	snprintf(out, size, "%.*s.files", (int)(p ? p - img : (long)strlen(img)), img);
}

/* Write the image of the frozen tree into dir (the generation's temporary
 * one: the coordinator renames it once every image is in): as file
 * itself, or, to be compressed by comp (enum zio_kind), raw beside it
 * (.file.raw): compressing while the program
 * is frozen would keep it frozen for as long as the compressor takes
 * (2.7 s instead of 0.6 s for two 256 MiB members here), so that is done
 * at SYNC, with the program running.  Beside it, the list of the large
 * files it has open for writing. */
static int dump_to(struct mb_helper *h, const char *dir, const char *file, int comp, uint64_t max,
		   uint64_t *bytes)
{
	/* Not spliced (ckpt-dump --splice): the checksums of spliced page
	 * data are read back by ckpt-dump's own, not yet here. */
	struct dump_opts o = {.cancel = &no_cancel, .save_files = 1, .save_files_max = max,
			      .splice = DUMP_SPLICE_OFF};
	struct stat sb;
	int fd, rc;

	o.peers = mb_peers_marks(h, &o.npeers);
	drop_pending(h);
	/* A name, not a path: nothing outside dir. */
	if (!*file || strchr(file, '/') || !strcmp(file, ".") || !strcmp(file, "..") ||
	    strlen(file) > NAME_MAX - 16) {
		err_set("not a file name for an image: %s", file);
		return -1;
	}
	h->dir_fd = open_gen_dir(dir);
	if (h->dir_fd < 0)
		return -1;
	snprintf(h->img_path, sizeof(h->img_path), "%s/%s", dir, file);
	snprintf(h->img_name, sizeof(h->img_name), "%s", file);
	snprintf(h->raw_name, sizeof(h->raw_name), ".%s.raw", file);
	h->raw = comp != ZIO_NONE;
	h->comp = comp;
	fd = create_private_fd(h->dir_fd, h->raw ? h->raw_name : h->img_name);
	if (fd < 0) {
		err_sys("cannot create %s/%s", dir, h->raw ? h->raw_name : h->img_name);
		drop_pending(h);
		return -1;
	}
	h->img_fd = fd;
	rc = dump_write_tree(&h->tr, fd, &o);
	if (rc)
		h->seized = 0; /* dump_write_tree let it go */
	if (!rc && fstat(fd, &sb)) {
		err_sys("cannot write %s", h->img_path);
		rc = -1;
	}
	if (!rc)
		rc = mb_peers_write(h, h->dir_fd, file);
	/* The fsync comes with SYNC, once the program runs again. */
	if (!rc && max) {
		char fl[NAME_MAX + 1];
		files_name(file, fl, sizeof(fl));
		rc = record_big_files(&h->tr, max, h->dir_fd, fl);
	}
	if (!rc)
		rc = mb_write_member(&h->api, h->img_gen, h->dir_fd, file);
	if (rc) {
		unlinkat(h->dir_fd, h->img_name, 0);
		drop_pending(h);
		return -1;
	}
	*bytes = sb.st_size;
	return 0;
}

/* A raw image through ckpt-gzip (--zstd for zstd) into its final name. */
static int compress(struct mb_helper *h, int out)
{
	char tool[PATH_MAX];
	pid_t gz;
	int st = 0;

	co_tool("ckpt-gzip", tool, sizeof(tool));
	if (lseek(h->img_fd, 0, SEEK_SET) != 0 || (gz = fork()) < 0) {
		err_sys("cannot start %s", tool);
		return -1;
	}
	if (gz == 0) {
		dup2(h->img_fd, 0);
		dup2(out, 1);
		execlp(tool, tool, h->comp == ZIO_ZSTD ? "--zstd" : (char *)NULL, (char *)NULL);
		_exit(127);
	}
	while (waitpid(gz, &st, 0) < 0 && errno == EINTR)
		;
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		err_set("%s failed (wait status %d) on %s", tool, st, h->raw_name);
		return -1;
	}
	return 0;
}

/* The image of the last DUMP onto the disk, compressed first if it is
 * to be. */
static int sync_image(struct mb_helper *h, uint64_t *bytes, uint32_t *crc)
{
	int rc = 0, out = h->img_fd;

	if (h->img_fd < 0) {
		err_set("no image to sync");
		return -1;
	}
	if (h->raw) {
		out = create_private_fd(h->dir_fd, h->img_name);
		if (out < 0 || compress(h, out))
			rc = -1;
	}
	if (!rc && fsync(out)) {
		err_sys("cannot write %s", h->img_path);
		rc = -1;
	}
	if (!rc && co_image_sum(out, bytes, crc))
		rc = -1;
	if (h->raw && out >= 0)
		close(out);
	if (rc)
		unlinkat(h->dir_fd, h->img_name, 0);
	drop_pending(h);
	return rc;
}

static void reply_failed(struct mb_helper *h, int gen)
{
	char esc[CO_LINE_MAX / 2];

	if (co_escape(err_get(), esc, sizeof(esc)))
		snprintf(esc, sizeof(esc), "(message too long)");
	co_send(h->sock, "FAILED %d %s", gen, esc);
}

static void release(struct mb_helper *h, enum dump_end how)
{
	/* Killed: the member is its program's whole tree, seized to be
	 * killed at once (none forks on meanwhile); the root alone if that
	 * fails. */
	if (!h->seized && how == DUMP_KILL && dump_seize_tree(h->pid, 1, &h->tr) == 0)
		h->seized = 1;
	mb_peers_let_go(h, how == DUMP_KILL);
	if (h->seized)
		dump_release_tree(&h->tr, how);
	else if (how == DUMP_KILL)
		kill(h->pid, SIGKILL);
	h->seized = 0;
}

/* Seize the program's tree where it holds no connection to the API: a
 * program frozen in the middle of a request (connected, or answered and
 * not yet closed) is let go, its connections served, and seized again. */
static int seize_quiet(struct mb_helper *h)
{
	for (int tries = 0;; tries++) {
		mb_api_serve(h);
		if (dump_seize_tree(h->pid, 1, &h->tr))
			return -1;
		h->seized = 1;
		if (!mb_api_busy(h) || tries == 500)
			return 0;
		release(h, DUMP_RUN);
		poll(NULL, 0, 2);
	}
}

/* The FREEZE of checkpoint gen waiting in h->api.freeze_gen: held off
 * while the program is inside ckpt_delay(), up to the coordinator's
 * --timeout less a second (its own limit on the round, so that the
 * helper's reason comes first); then the pre-checkpoint hooks, then the
 * freeze. */
static void try_freeze(struct mb_helper *h)
{
	struct mb_api *a = &h->api;
	int gen = a->freeze_gen;
	double limit = a->timeout > 1 ? a->timeout - 1 : a->timeout * 0.5;

	if (!gen)
		return;
	if (a->delay && !(a->timeout && now_sec() - a->freeze_at >= limit))
		return;
	a->freeze_gen = 0;
	if (a->delay) {
		err_set("checkpoints held off by ckpt_delay() for %.0f s, past the coordinator's "
			"--timeout of %d s less a second",
			now_sec() - a->freeze_at, a->timeout);
		reply_failed(h, gen);
		return;
	}
	if (!h->seized && mb_run_hooks(h, "pre-checkpoint", gen)) {
		reply_failed(h, gen);
		return;
	}
	if (!h->seized && seize_quiet(h)) {
		reply_failed(h, gen);
		return;
	}
	a->frozen_once = 1;
	/* Before FROZEN: the coordinator pairs the ends once all are. */
	if (mb_peers_report(h, gen)) {
		reply_failed(h, gen);
		return;
	}
	co_send(h->sock, "FROZEN %d", gen);
}

/* The program goes on after a checkpoint, or runs again restored:
 * the hooks, then --notify's signal. */
static void went_on(struct mb_helper *h, const char *event, int gen)
{
	mb_run_hooks(h, event, gen);
	if (h->api.notify)
		kill(h->pid, h->api.notify);
}

static void on_request(struct mb_helper *h, const char *line)
{
	struct co_msg m;
	int gen;

	if (co_parse(line, strlen(line), &m)) {
		/* Not a request: the answer to one of ours, or nothing. */
		mb_api_answer(h, line);
		return;
	}
	gen = m.argc ? (int)co_num(m.argv[0], INT_MAX) : 0;
	switch (m.verb) {
	case CO_FREEZE:
		h->api.freeze_gen = gen;
		h->api.freeze_at = now_sec();
		try_freeze(h);
		return;
	case CO_DUMP: {
		uint64_t bytes = 0;
		if (!h->seized) {
			err_set("not frozen");
			reply_failed(h, gen);
			return;
		}
		h->img_gen = gen;
		/* Every member is frozen: what is in flight between them is
		 * drained (and written back) before the images are. */
		if (mb_peers_drain(h) ||
		    dump_to(h, m.argv[1], m.argv[2], co_compressor(m.argv[3]),
			    co_num(m.argv[4], CO_NUM_MAX), &bytes)) {
			mb_peers_clear(h);
			reply_failed(h, gen);
		} else {
			mb_peers_clear(h);
			h->img_gen = gen;
			co_send(h->sock, "DUMPED %d %llu", gen, (unsigned long long)bytes);
		}
		return;
	}
	case CO_SYNC: {
		uint64_t bytes;
		uint32_t crc;
		if (sync_image(h, &bytes, &crc)) {
			reply_failed(h, gen);
			return;
		}
		co_send(h->sock, "SYNCED %d %llu %u", gen, (unsigned long long)bytes, crc);
		if (h->api.gen < gen)
			h->api.gen = gen;
		/* Its image is on disk; a failure here is too late to fail it. */
		mb_run_hooks(h, "post-checkpoint", gen);
		return;
	}
	case CO_LINK:
		mb_peers_link(h, &m);
		return;
	case CO_RESUME: {
		int kill_it = !strcmp(m.argv[1], "KILL"), was = h->api.frozen_once;
		h->api.freeze_gen = 0; /* one held off by ckpt_delay() is off */
		h->api.frozen_once = 0;
		release(h, kill_it ? DUMP_KILL : DUMP_RUN);
		if (was && !kill_it)
			went_on(h, "resume", gen);
		return;
	}
	default:
		return;
	}
}

/* Whether pid's memory still holds ckpt-remap (a restore not yet done).
 * A zombie (ckpt-remap's decompressor's parent, just exited) has no
 * memory at all: it is not the program either. */
static int maps_has(pid_t pid, const char *what)
{
	char path[64], *maps = read_file(fmt_path(path, sizeof(path), "/proc/%d/maps", pid), NULL);
	int has = !maps || !*maps || strstr(maps, what);

	free(maps);
	return has;
}

/* Whether pid's name (comm) is name. */
static int comm_is(pid_t pid, const char *name)
{
	char path[64], *comm = read_file(fmt_path(path, sizeof(path), "/proc/%d/comm", pid), NULL);
	int is = comm && !strncmp(comm, name, strlen(name)) && comm[strlen(name)] == '\n';

	free(comm);
	return is;
}

/* Whether pid is in another pid namespace than ours. */
static int other_pidns(pid_t pid)
{
	char path[64], ours[64] = "", theirs[64] = "";

	if (readlink("/proc/self/ns/pid", ours, sizeof(ours) - 1) < 0 ||
	    readlink(fmt_path(path, sizeof(path), "/proc/%d/ns/pid", pid), theirs,
		     sizeof(theirs) - 1) < 0)
		return 0;
	return strcmp(ours, theirs) != 0;
}

/* The first child of pid, 0 for none (yet). */
static pid_t first_child(pid_t pid)
{
	char path[64], *kids = read_file(
			   fmt_path(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid), NULL);
	long child = kids ? strtol(kids, NULL, 10) : 0;

	free(kids);
	return child > 0 ? (pid_t)child : 0;
}

/* After ckpt-inject --restart has become ckpt-remap: the restored program
 * is that process itself, or (keeping its old pid) its one child, or (a
 * tree without privilege, in a pid namespace of its own) the child of
 * that child, the namespace's init, unless the init became the program
 * itself.  Dumped by its pid here, it keeps the tree's in its image
 * (dump.c).  0 once it runs, -1 if ckpt-remap went away first. */
static int find_restored(struct mb_helper *h, pid_t remap)
{
	char tool[PATH_MAX], real[PATH_MAX];
	pid_t seen = 0;
	int polls = 0, named = 0;

	if (!realpath(co_tool("ckpt-remap", tool, sizeof(tool)), real))
		snprintf(real, sizeof(real), "/ckpt-remap");
	for (;; usleep(10000)) {
		pid_t p = 0, child;

		if (kill(remap, 0))
			return -1;
		if (!maps_has(remap, real)) {
			p = remap;
		} else if ((child = first_child(remap)) > 0) {
			if (maps_has(child, real) && other_pidns(child))
				child = first_child(child);
			if (child > 0 && !maps_has(child, real))
				p = child;
		}
		/* ckpt-remap's code gone is not the restore done: its
		 * restorer still fills the memory and sets the state, and a
		 * checkpoint then would freeze the restorer.  It gives the
		 * main thread the program's name last, as it jumps into the
		 * program: wait for that name on two polls in a row (a
		 * program that calls itself ckpt-remap is taken after 2 s). */
		polls = p && p == seen ? polls + 1 : 0;
		named = polls && !comm_is(p, "ckpt-remap") ? named + 1 : 0;
		seen = p;
		if (named >= 2 || polls > 200) {
			h->pid = p;
			return 0;
		}
	}
}

/* Wait for pid to be running something other than ckpt-inject (it execs
 * the command, or ckpt-remap, as soon as it has our report); -1 if it
 * exits first (it could not run the command). */
static int wait_exec(pid_t pid)
{
	struct stat self, other;
	char path[64];

	if (stat("/proc/self/exe", &self))
		return 0;
	for (;;) {
		/* A zombie has no exe: gone as well. */
		if (stat(fmt_path(path, sizeof(path), "/proc/%d/exe", pid), &other))
			return -1;
		if (other.st_dev != self.st_dev || other.st_ino != self.st_ino)
			return 0;
		usleep(2000);
	}
}

static void program_name(pid_t pid, char *out, size_t size)
{
	char path[64], *comm = read_file(fmt_path(path, sizeof(path), "/proc/%d/comm", pid), NULL);

	snprintf(out, size, "%s", comm ? comm : "program");
	out[strcspn(out, "\n")] = 0;
	free(comm);
}

/* JOIN and read the coordinator's answer into *j. */
static void join(struct mb_helper *h, const char *name, int id, struct mb_joined *j)
{
	char esc[256], host[800], *line;
	int rc;

	j->helper = getpid();
	j->id = 0;
	/* The coordinator's --timeout and directory first, for ckpt_delay()
	 * and the hooks: not yet a member, nothing else can come before its
	 * answer. */
	if (co_send(h->sock, "STATUS") == 0 && co_read_line(&h->r, &line, 10000) == 1) {
		/* Refused (no secret proved): it would be refused as a member. */
		if (!strncmp(line, "ERR", 3)) {
			snprintf(j->why, sizeof(j->why), "refused the member: %.400s", line);
			return;
		}
		mb_api_answer(h, line);
	}
	if (co_escape(name, esc, sizeof(esc)) || co_escape(co_hostname(), host, sizeof(host))) {
		snprintf(j->why, sizeof(j->why), "not joined: the program's or host's name is too long");
		return;
	}
	rc = co_send(h->sock, "JOIN %d %d %s %s %d", (int)h->pid, (int)getpid(), host, esc, id);
	if (rc == 0)
		rc = co_read_line(&h->r, &line, 10000);
	if (rc < 0)
		snprintf(j->why, sizeof(j->why), "did not answer JOIN: %s", err_get());
	else if (strncmp(line, "OK ", 3) || (j->id = (int)co_num(line + 3, INT_MAX)) <= 0)
		snprintf(j->why, sizeof(j->why), "refused the member: %s", line);
}

/* Hold nothing of the program's: not its terminal, not the pipes of
 * whoever waits for its output, nor any other fd it inherited, but the
 * coordinator's socket and the pipe to report on (report). */
static void detach(struct mb_helper *h, int report)
{
	int lo, hi, nul = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		close(nul);
	}
	lo = h->sock < report ? h->sock : report;
	hi = h->sock + report - lo;
	close_range(3, lo - 1, 0);
	close_range(lo + 1, hi - 1, 0);
	close_range(hi + 1, ~0U, 0);
	setsid();
	signal(SIGPIPE, SIG_IGN);
}

/* The requests h's reader holds already. */
static void serve_buffered(struct mb_helper *h)
{
	char *line;
	int k;

	while ((k = co_next_line(&h->r, &line)) != 0)
		if (k > 0)
			on_request(h, line);
}

/* The program is gone.  Still seized, it is a zombie only its tracer's
 * exit hands back to its parent.  An image not yet synced is synced
 * first: the checkpoint holds the program as it was, and must be
 * complete. */
static void program_gone(struct mb_helper *h)
{
	uint64_t bytes;
	uint32_t crc;

	if (h->img_fd >= 0 && sync_image(h, &bytes, &crc) == 0)
		co_send(h->sock, "SYNCED %d %llu %u", h->img_gen, (unsigned long long)bytes, crc);
	co_send(h->sock, "GONE 0");
}

/* Serve the coordinator until the program exits (pidfd readable; without
 * a pidfd, checked each second) or the coordinator goes. */
static void serve(struct mb_helper *h, int pidfd)
{
	for (;;) {
		struct pollfd pfd[3] = {{.fd = h->sock, .events = POLLIN},
					{.fd = h->api.lfd, .events = POLLIN},
					{.fd = pidfd, .events = POLLIN}};
		/* A FREEZE held off by ckpt_delay() looks at its clock. */
		int timeout = h->api.freeze_gen ? 100 : -1;
		ssize_t n;

		if (pidfd < 0)
			timeout = 1000;
		if (poll(pfd, pidfd >= 0 ? 3 : 2, timeout) < 0 && errno != EINTR)
			break;
		if (pidfd >= 0 ? (pfd[2].revents != 0) : kill(h->pid, 0) != 0) {
			program_gone(h);
			break;
		}
		if (pfd[1].revents) {
			mb_api_serve(h);
			mb_api_busy(h); /* close what the program closed */
		}
		try_freeze(h);
		if (!pfd[0].revents)
			continue;
		n = co_fill(&h->r);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break; /* the coordinator is gone: let the program go on */
		serve_buffered(h);
	}
}

/* A restart: the connections to other members made again, and handed to
 * ckpt-inject (SCM_RIGHTS on report, each with its connection's token),
 * after the answer j, which says how many.  On failure j says why
 * instead, and 1 is returned once it is told. */
static int send_peers(struct mb_helper *h, struct mb_joined *j, int report)
{
	char(*tokens)[33];
	int *ours;
	size_t n;

	if (mb_peers_restart(h, h->api.img, &ours, &tokens, &n)) {
		j->id = 0;
		snprintf(j->why, sizeof(j->why), "(restarting %.200s): %.290s", h->api.img, err_get());
		write_all(report, j, sizeof(*j));
		return 1;
	}
	j->npeers = (int)n;
	write_all(report, j, sizeof(*j));
	for (size_t i = 0; i < n; i++) {
		char cbuf[CMSG_SPACE(sizeof(int))] = {0};
		struct iovec iov = {.iov_base = tokens[i], .iov_len = sizeof(tokens[i])};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf)};
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &ours[i], sizeof(int));
		sendmsg(report, &mh, MSG_NOSIGNAL);
	}
	mb_peers_clear(h);
	for (size_t i = 0; i < n; i++)
		close(ours[i]);
	free(ours);
	free(tokens);
	return 0;
}

/* ckpt-inject's side of send_peers: each connection kept open across the
 * exec of ckpt-remap, which is told to give it to the program
 * (--inherit-fd, through CKPT_REMAP_ARGS). */
static int take_peers(int from, int n)
{
	const char *old = getenv("CKPT_REMAP_ARGS");
	size_t size = (old ? strlen(old) : 0) + 80 * (size_t)n + 2;
	char *args = malloc(size), *p = args;

	if (!args) {
		err_set("out of memory");
		return -1;
	}
	p += snprintf(p, size, "%s", old ? old : "");
	for (int i = 0; i < n; i++) {
		char cbuf[CMSG_SPACE(sizeof(int))], token[33] = "";
		int ours = -1;
		struct iovec iov = {.iov_base = token, .iov_len = sizeof(token)};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf)};
		struct cmsghdr *c;
		if (recvmsg(from, &mh, 0) != sizeof(token) || !(c = CMSG_FIRSTHDR(&mh)) ||
		    c->cmsg_type != SCM_RIGHTS || strnlen(token, sizeof(token)) != 32) {
			err_set("the helper did not hand over connection %d of %d", i + 1, n);
			free(args);
			return -1;
		}
		memcpy(&ours, CMSG_DATA(c), sizeof(int));
		p += snprintf(p, size - (size_t)(p - args), "%s--inherit-fd\npeer:%s=%d",
			      p == args ? "" : "\n", token, ours);
	}
	setenv("CKPT_REMAP_ARGS", args, 1);
	free(args);
	return 0;
}

int mb_serve(struct mb_helper *h, enum mb_mode mode, const char *name, int id, int report)
{
	char prog_name[64];
	pid_t remap = h->pid;
	struct mb_joined j = {0};
	int pidfd;

	detach(h, report);
	/* Joined before the program runs: ckpt-inject runs it only as a
	 * member.  The name is the one given (a restarted member keeps the
	 * name its images have), never read from the restored process,
	 * whose comm is ckpt-remap's until its restorer sets it.  Requests
	 * that come before the program runs wait in the socket. */
	if (name)
		snprintf(prog_name, sizeof(prog_name), "%s", name);
	else
		program_name(h->pid, prog_name, sizeof(prog_name));
	join(h, prog_name, id, &j);
	h->api.member = j.id;
	/* The program finds the API where $CKPT_API says: a restarted one
	 * where it found it before. */
	if (j.id && mode != MB_ATTACH) {
		char old[sizeof(h->api.path)];
		snprintf(old, sizeof(old), "%s", h->api.path);
		if (mb_api_open(&h->api, *old ? old : NULL) == 0)
			snprintf(j.api, sizeof(j.api), "%s", h->api.path);
	}
	if (j.id && mode == MB_RESTART && h->api.img[0]) {
		if (send_peers(h, &j, report)) {
			close(report);
			return 1;
		}
	} else {
		write_all(report, &j, sizeof(j));
	}
	close(report);
	if (!j.id)
		return 1;
	/* Until it execs, the process is ckpt-inject, not the program. */
	if ((mode != MB_ATTACH && wait_exec(h->pid)) ||
	    (mode == MB_RESTART && find_restored(h, remap))) {
		co_send(h->sock, "GONE 0");
		mb_api_close(&h->api);
		return 0;
	}
	/* Kept its old pid: the program is ckpt-remap's child. */
	if (h->pid != remap && mode == MB_RESTART)
		co_send(h->sock, "PID %d", (int)h->pid);
	pidfd = syscall(SYS_pidfd_open, h->pid, 0);
	/* Requests that came with the JOIN's answer, or while the program
	 * was not running yet, are in the reader already: poll would not
	 * wake for them. */
	serve_buffered(h);
	for (size_t i = 0; mb_peers_saved(h, i); i++)
		on_request(h, mb_peers_saved(h, i));
	if (mode == MB_RESTART)
		went_on(h, "restart", h->api.gen);
	serve(h, pidfd);
	release(h, DUMP_RUN);
	mb_api_close(&h->api);
	return 0;
}

int mb_start(struct mb_helper *h, enum mb_mode mode, const char *name, int id, struct mb_joined *j)
{
	int ready[2];
	pid_t mid;

	/* A socket, not a pipe: a restart's connections come through it. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ready)) {
		err_sys("cannot make a socket pair");
		return -1;
	}
	fflush(NULL);
	mid = fork();
	if (mid < 0) {
		err_sys("cannot fork the helper");
		return -1;
	}
	if (mid == 0) {
		pid_t helper = fork();
		if (helper != 0)
			_exit(helper < 0);
		close(ready[0]);
		_exit(mb_serve(h, mode, name, id, ready[1]));
	}
	close(ready[1]);
	close(h->sock);
	while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
		;
	if (read_full(ready[0], j, sizeof(*j)) != sizeof(*j) || j->helper <= 0) {
		err_set("the helper did not start");
		return -1;
	}
	if (j->id && j->npeers > 0 && take_peers(ready[0], j->npeers))
		return -1;
	close(ready[0]);
	j->why[sizeof(j->why) - 1] = 0;
	return 0;
}
