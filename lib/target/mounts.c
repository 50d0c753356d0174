/* mounts.c: a mount namespace of its own, as the steps that make it again
 * from a copy of the tree's (the MOUNTS record, format.h).
 *
 * /proc/PID/mountinfo of the process and of the namespace the tree started
 * in are compared: a mount both have on the same point, of the same device
 * and root, is kept (its propagation and flags recorded); one only the
 * tree's has is unmounted; one only the process's has is a tmpfs (options
 * and files, read through /proc/PID/root), a proc (of the pid namespace
 * its pid 1 is in) or a bind mount of a path found by the device and root
 * of a mount before it.  Anything else is refused by name. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "target/target.h"

struct mi {
	unsigned major, minor;
	char root[PATH_MAX], point[PATH_MAX], fstype[64], source[256], super[512];
	uint32_t flags; /* IMG_MNTF_*: per-mount options and propagation */
	int used;
};

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *d = s;

	for (; *s; s++)
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else
			*d++ = *s;
	*d = 0;
}

static uint32_t opt_flags(const char *opts)
{
	static const struct {
		const char *name;
		uint32_t flag;
	} o[] = {{"ro", IMG_MNTF_RDONLY},	  {"nosuid", IMG_MNTF_NOSUID},
		 {"nodev", IMG_MNTF_NODEV},	  {"noexec", IMG_MNTF_NOEXEC},
		 {"noatime", IMG_MNTF_NOATIME}, {"nodiratime", IMG_MNTF_NODIRATIME},
		 {"relatime", IMG_MNTF_RELATIME}};
	char buf[512], *save, *t;
	uint32_t f = 0;

	snprintf(buf, sizeof(buf), "%s", opts);
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		for (size_t i = 0; i < sizeof(o) / sizeof(o[0]); i++)
			if (!strcmp(t, o[i].name))
				f |= o[i].flag;
	return f;
}

static int parse_line(char *line, struct mi *m)
{
	char opts[512], *dash = strstr(line, " - "), *p;
	int n = 0;

	memset(m, 0, sizeof(*m));
	if (!dash || sscanf(line, "%*u %*u %u:%u %4095s %4095s %511s %n", &m->major, &m->minor,
			    m->root, m->point, opts, &n) != 5 ||
	    sscanf(dash, " - %63s %255s %511s", m->fstype, m->source, m->super) < 2)
		return -1;
	unescape(m->root);
	unescape(m->point);
	m->flags = opt_flags(opts);
	*dash = 0;
	for (p = line + n; *p;) {
		size_t l = strcspn(p, " ");

		if (!strncmp(p, "shared:", 7))
			m->flags |= IMG_MNTF_SHARED;
		else if (!strncmp(p, "master:", 7))
			m->flags |= IMG_MNTF_SLAVE;
		else if (!strncmp(p, "unbindable", 10))
			m->flags |= IMG_MNTF_UNBINDABLE;
		p += l;
		p += strspn(p, " ");
	}
	if (!(m->flags & (IMG_MNTF_SHARED | IMG_MNTF_SLAVE | IMG_MNTF_UNBINDABLE)))
		m->flags |= IMG_MNTF_PRIVATE;
	return 0;
}

static struct mi *read_mountinfo(pid_t pid, size_t *np)
{
	char path[64], *s, *line, *next;
	struct mi *v = NULL;
	size_t n = 0;

	if (pid)
		fmt_path(path, sizeof(path), "/proc/%d/mountinfo", pid);
	else
		fmt_path(path, sizeof(path), "/proc/self/mountinfo");
	if (!(s = read_file(path, NULL))) {
		err_sys("cannot read %s", path);
		return NULL;
	}
	for (line = s; line && *line; line = next) {
		struct mi *nv;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		if (!(nv = realloc(v, (n + 1) * sizeof(*v)))) {
			free(v);
			free(s);
			err_set("out of memory");
			return NULL;
		}
		v = nv;
		if (parse_line(line, &v[n]) == 0)
			n++;
	}
	free(s);
	*np = n;
	return v ? v : calloc(1, sizeof(*v));
}

struct steps {
	pid_t pid;
	struct ns_rec *n;
	uint64_t data; /* bytes of tmpfs files so far */
};

static struct mnt_step *add(struct steps *s, uint32_t op, uint32_t flags, const char *path,
			    const char *src)
{
	struct mnt_step *v, *m;

	if (s->n->nmounts >= IMG_MNT_MAX) {
		err_set("pid %d: its mount namespace needs more than %d steps; not supported",
			s->pid, IMG_MNT_MAX);
		return NULL;
	}
	if (!(v = realloc(s->n->mounts, (s->n->nmounts + 1) * sizeof(*v)))) {
		err_set("out of memory");
		return NULL;
	}
	s->n->mounts = v;
	m = &v[s->n->nmounts];
	memset(m, 0, sizeof(*m));
	m->path = strdup(path);
	m->src = strdup(src ? src : "");
	if (!m->path || !m->src) {
		free(m->path);
		free(m->src);
		err_set("out of memory");
		return NULL;
	}
	s->n->nmounts++;
	m->d.op = op;
	m->d.flags = flags;
	m->d.path_len = strlen(path);
	m->d.src_len = strlen(m->src);
	return m;
}

static int same(const struct mi *a, const struct mi *b)
{
	return a->major == b->major && a->minor == b->minor && !strcmp(a->root, b->root) &&
	       !strcmp(a->point, b->point) && !strcmp(a->fstype, b->fstype);
}

/* Its tmpfs options a restore gives again: size and mode (uid and gid are
 * the restoring user's, as they were the dumping one's). */
static int tmpfs_opts(struct steps *s, const struct mi *m, struct mnt_step *st)
{
	char buf[512], *save, *t;

	snprintf(buf, sizeof(buf), "%s", m->super);
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned long long v;
		char unit = 0;

		if (!strcmp(t, "rw") || !strcmp(t, "ro") || !strcmp(t, "inode64") ||
		    !strncmp(t, "uid=", 4) || !strncmp(t, "gid=", 4))
			continue;
		if (sscanf(t, "size=%llu%c", &v, &unit) >= 1) {
			st->d.size = unit == 'k' ? v << 10 : unit == 'm' ? v << 20 : unit == 'g' ? v << 30 : v;
			continue;
		}
		if (sscanf(t, "mode=%llo", &v) == 1 && v <= 07777) {
			st->d.mode = (uint32_t)v;
			continue;
		}
		err_set("pid %d: its tmpfs on %s has option %s, which is not recorded; not "
			"supported",
			s->pid, m->point, t);
		return -1;
	}
	if (!st->d.mode)
		st->d.mode = 01777; /* the kernel shows mode= only when it is not that */
	return 0;
}

/* The files of a tmpfs: base is its mount point through /proc/PID/root,
 * rel the path below it. */
static int tmpfs_files(struct steps *s, const char *point, const char *base, const char *rel,
		       dev_t dev)
{
	char dirpath[PATH_MAX * 2];
	struct dirent *e;
	DIR *d;
	int rc = 0;

	snprintf(dirpath, sizeof(dirpath), "%s%s", base, rel);
	if (!(d = opendir(dirpath))) {
		err_sys("pid %d: cannot read its tmpfs on %s", s->pid, point);
		return -1;
	}
	while (!rc && (e = readdir(d))) {
		char full[PATH_MAX * 2], name[PATH_MAX * 2], rname[PATH_MAX];
		struct mnt_step *m;
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(rname, sizeof(rname), "%s/%s", rel, e->d_name);
		snprintf(full, sizeof(full), "%s%s", base, rname);
		snprintf(name, sizeof(name), "%s%s", strcmp(point, "/") ? point : "", rname);
		if (strlen(name) >= PATH_MAX || lstat(full, &st)) {
			err_sys("pid %d: cannot read %s in its tmpfs on %s", s->pid, rname, point);
			rc = -1;
		} else if (S_ISDIR(st.st_mode)) {
			/* A mount on it hides what is below: made, not entered. */
			rc = !(m = add(s, IMG_MNT_DIR, 0, name, NULL)) ? -1 : 0;
			if (!rc)
				m->d.mode = st.st_mode & 07777;
			if (!rc && st.st_dev == dev)
				rc = tmpfs_files(s, point, base, rname, dev);
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t l = readlink(full, target, sizeof(target) - 1);

			if (l <= 0) {
				err_sys("pid %d: cannot read the link %s in its tmpfs on %s", s->pid,
					rname, point);
				rc = -1;
			} else {
				target[l] = 0;
				rc = add(s, IMG_MNT_LINK, 0, name, target) ? 0 : -1;
			}
		} else if (S_ISREG(st.st_mode)) {
			size_t len = 0;
			unsigned char *data;

			s->data += (uint64_t)st.st_size;
			if (s->data > IMG_MNT_MAX_DATA) {
				err_set("pid %d: its tmpfs on %s holds more than %u bytes of files "
					"(%s among them); not supported",
					s->pid, point, IMG_MNT_MAX_DATA, rname);
				rc = -1;
			} else if (!(data = (unsigned char *)read_file(full, &len))) {
				err_sys("pid %d: cannot read %s in its tmpfs on %s", s->pid, rname,
					point);
				rc = -1;
			} else if (!(m = add(s, IMG_MNT_FILE, 0, name, NULL))) {
				free(data);
				rc = -1;
			} else {
				m->data = data;
				m->d.size = len;
				m->d.mode = st.st_mode & 07777;
			}
		} else {
			err_set("pid %d: its tmpfs on %s holds %s, neither a file, a directory "
				"nor a symlink; not supported",
				s->pid, point, rname);
			rc = -1;
		}
	}
	closedir(d);
	return rc;
}

static int add_tmpfs(struct steps *s, const struct mi *m)
{
	char base[PATH_MAX + 64];
	struct mnt_step *st;
	struct stat sb;

	if (!(st = add(s, IMG_MNT_TMPFS, m->flags & ~IMG_MNTF_RDONLY, m->point, NULL)) ||
	    tmpfs_opts(s, m, st))
		return -1;
	snprintf(base, sizeof(base), "/proc/%d/root%s", s->pid, strcmp(m->point, "/") ? m->point : "");
	if (stat(base, &sb)) {
		err_sys("pid %d: cannot read its tmpfs on %s", s->pid, m->point);
		return -1;
	}
	if (tmpfs_files(s, m->point, base, "", sb.st_dev))
		return -1;
	/* Read-only once its files are in. */
	if ((m->flags & IMG_MNTF_RDONLY) &&
	    !add(s, IMG_MNT_KEEP, m->flags | IMG_MNTF_REMOUNT, m->point, NULL))
		return -1;
	return 0;
}

static int add_proc(struct steps *s, const struct mi *m)
{
	char path[PATH_MAX + 64];
	struct mnt_step *st;
	struct stat sb;

	/* Its pid 1 is the init of the pid namespace it shows. */
	snprintf(path, sizeof(path), "/proc/%d/root%s/1/ns/pid", s->pid, m->point);
	if (stat(path, &sb)) {
		err_sys("pid %d: cannot tell the pid namespace of its proc on %s", s->pid,
			m->point);
		return -1;
	}
	if (!(st = add(s, IMG_MNT_PROC, m->flags, m->point, NULL)))
		return -1;
	st->d.pidns = sb.st_ino;
	return 0;
}

/* A bind mount: the path its root has under a mount before it of the
 * same device. */
static int add_bind(struct steps *s, const struct mi *v, size_t k)
{
	const struct mi *m = &v[k];

	for (size_t j = 0; j < k; j++) {
		size_t l = strlen(v[j].root);
		char src[PATH_MAX * 2];
		const char *rest;

		if (v[j].major != m->major || v[j].minor != m->minor ||
		    strcmp(v[j].fstype, m->fstype) || strncmp(m->root, v[j].root, l))
			continue;
		rest = m->root + (strcmp(v[j].root, "/") ? l : 0);
		if (*rest && *rest != '/')
			continue;
		snprintf(src, sizeof(src), "%s%s", strcmp(v[j].point, "/") || !*rest ? v[j].point : "",
			 rest);
		if (strlen(src) >= PATH_MAX)
			continue;
		return add(s, IMG_MNT_BIND, m->flags, m->point, src) ? 0 : -1;
	}
	err_set("pid %d: its mount namespace has a %s mount on %s (%s), not a tmpfs, a proc or "
		"a bind mount of a path it shows; not supported",
		s->pid, m->fstype, m->point, m->source);
	return -1;
}

int mnt_capture(pid_t pid, pid_t outer, struct ns_rec *n)
{
	struct steps s = {.pid = pid, .n = n};
	struct mi *own, *out = NULL;
	size_t nown = 0, nout = 0;
	int rc = -1;

	n->have_mounts = 1;
	if (!(own = read_mountinfo(pid, &nown)))
		return -1;
	if (!(outer && (out = read_mountinfo(outer, &nout))) && !(out = read_mountinfo(0, &nout)))
		goto done;
	for (size_t i = 0; i < nown; i++)
		for (size_t j = 0; j < nout; j++)
			if (!out[j].used && same(&own[i], &out[j])) {
				own[i].used = out[j].used = 1;
				break;
			}
	/* Unmounted: children (later in the table) before their parents. */
	for (size_t j = nout; j-- > 0;)
		if (!out[j].used && !add(&s, IMG_MNT_UMOUNT, 0, out[j].point, NULL))
			goto done;
	for (size_t i = 0; i < nown; i++) {
		const struct mi *m = &own[i];
		int r = 0;

		if (m->used) {
			const struct mi *o = NULL;
			uint32_t vfs = IMG_MNTF_RDONLY | IMG_MNTF_NOSUID | IMG_MNTF_NODEV |
				       IMG_MNTF_NOEXEC;

			for (size_t j = 0; j < nout && !o; j++)
				if (same(m, &out[j]))
					o = &out[j];
			r = add(&s, IMG_MNT_KEEP,
				m->flags | ((o->flags ^ m->flags) & vfs ? IMG_MNTF_REMOUNT : 0),
				m->point, NULL)
				? 0
				: -1;
		} else if (!strcmp(m->fstype, "tmpfs") && !strcmp(m->root, "/"))
			r = add_tmpfs(&s, m);
		else if (!strcmp(m->fstype, "proc") && !strcmp(m->root, "/"))
			r = add_proc(&s, m);
		else
			r = add_bind(&s, own, i);
		if (r)
			goto done;
	}
	rc = 0;
done:
	free(own);
	free(out);
	return rc;
}
