/* proc.c: /proc parsing: maps, smaps, pagemap, status, stat, tasks, fdinfo. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"
#include "target/target.h"

/* /proc/PID/maps escapes a newline in a path as \012 (seq_file_path);
 * undo that in place. */
static void unescape_path(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = 0;
}

void proc_free_maps(struct proc_map *maps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(maps[i].path);
	free(maps);
}

/* The PROC_VM_* bit of a two-letter VmFlags mnemonic, or 0. */
static uint32_t vmflag(const char *f)
{
	static const struct {
		char name[3];
		uint32_t bit;
	} names[] = {
	    {"gd", PROC_VM_GROWSDOWN}, {"mw", PROC_VM_MAYWRITE},   {"nr", PROC_VM_NORESERVE},
	    {"dc", PROC_VM_DONTFORK},  {"wf", PROC_VM_WIPEONFORK}, {"dd", PROC_VM_DONTDUMP},
	    {"hg", PROC_VM_HUGEPAGE},  {"nh", PROC_VM_NOHUGEPAGE}, {"lo", PROC_VM_LOCKED},
	    {"lf", PROC_VM_LOCKONFAULT}, {"mg", PROC_VM_MERGEABLE}, {"sr", PROC_VM_SEQREAD},
	    {"rr", PROC_VM_RANDREAD},	{"ht", PROC_VM_HUGETLB},    {"io", PROC_VM_IO},
	    {"pf", PROC_VM_IO},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (f[0] == names[i].name[0] && f[1] == names[i].name[1])
			return names[i].bit;
	return 0;
}

static int read_maps(pid_t pid, const char *file, struct proc_map **mapsp, size_t *np)
{
	char path[64], *buf, *line, *save;
	struct proc_map *maps = NULL;
	size_t n = 0, cap = 0;

	/* pid 0 is this process: /proc/self, right also in a pid namespace
	 * whose /proc is the parent's. */
	if (pid)
		fmt_path(path, sizeof(path), "/proc/%d/%s", pid, file);
	else
		fmt_path(path, sizeof(path), "/proc/self/%s", file);
	buf = read_file_step(path, NULL, 2048);
	if (!buf)
		return -1;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long start, end, off, ino;
		unsigned maj, min;
		char perms[8];
		int pos = 0;

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off,
			   &maj, &min, &ino, &pos) >= 7 &&
		    pos > 0) {
			struct proc_map *m;
			size_t plen;

			if (n == cap) {
				struct proc_map *nm;
				cap = cap ? cap * 2 : 64;
				nm = realloc(maps, cap * sizeof(*maps));
				if (!nm)
					goto oom;
				maps = nm;
			}
			m = &maps[n];
			memset(m, 0, sizeof(*m));
			m->start = start;
			m->end = end;
			m->pgoff = off;
			m->ino = ino;
			m->dev_major = maj;
			m->dev_minor = min;
			m->prot = (perms[0] == 'r' ? PROT_READ : 0) |
				  (perms[1] == 'w' ? PROT_WRITE : 0) |
				  (perms[2] == 'x' ? PROT_EXEC : 0);
			m->shared = perms[3] == 's';
			m->path = strdup(line + pos);
			if (!m->path)
				goto oom;
			n++;
			plen = strlen(m->path);
			if (plen > 10 && !strcmp(m->path + plen - 10, " (deleted)")) {
				m->deleted = 1;
				m->path[plen - 10] = 0;
			}
			unescape_path(m->path);
		} else if (n > 0 && (!strncmp(line, "Anonymous:", 10) ||
				     !strncmp(line, "Swap:", 5))) {
			maps[n - 1].anon_kb += strtoull(strchr(line, ':') + 1, NULL, 10);
		} else if (n > 0 && !strncmp(line, "KernelPageSize:", 15)) {
			maps[n - 1].kpage_kb = strtoull(line + 15, NULL, 10);
		} else if (n > 0 && !strncmp(line, "VmFlags:", 8)) {
			struct proc_map *m = &maps[n - 1];
			for (char *f = line + 8; *f; f++) {
				if (f[0] == ' ' && f[1] && f[2] && (f[3] == ' ' || f[3] == '\n' || !f[3]))
					m->vmflags |= vmflag(f + 1);
			}
		}
	}
	free(buf);
	*mapsp = maps;
	*np = n;
	return 0;
oom:
	free(buf);
	proc_free_maps(maps, n);
	err_set("pid %d: reading maps: out of memory", pid);
	return -1;
}

int proc_read_maps(pid_t pid, struct proc_map **maps, size_t *n)
{
	return read_maps(pid, "smaps", maps, n);
}

int proc_read_layout(pid_t pid, struct proc_map **maps, size_t *n)
{
	return read_maps(pid, "maps", maps, n);
}

int proc_same_layout(pid_t pid, const struct proc_map *maps, size_t n)
{
	struct proc_map *now;
	size_t k;
	int same;

	if (read_maps(pid, "maps", &now, &k))
		return -1;
	same = k == n;
	for (size_t i = 0; same && i < n; i++)
		same = now[i].start == maps[i].start && now[i].end == maps[i].end &&
		       now[i].prot == maps[i].prot && now[i].shared == maps[i].shared &&
		       now[i].pgoff == maps[i].pgoff && now[i].ino == maps[i].ino &&
		       now[i].deleted == maps[i].deleted && !strcmp(now[i].path, maps[i].path);
	proc_free_maps(now, k);
	return same;
}

int proc_read_stat(pid_t pid, struct proc_stat *st)
{
	char path[64], *buf, *p, *f[64];
	int nf = 0;

	buf = read_file(fmt_path(path, sizeof(path), "/proc/%d/stat", pid), NULL);
	if (!buf)
		return -1;
	/* The command name may hold spaces and parentheses: fields start
	 * after the last ')'. */
	p = strrchr(buf, ')');
	if (!p) {
		free(buf);
		err_set("%s: unexpected format", path);
		return -1;
	}
	for (p = strtok(p + 1, " \n"); p && nf < 64; p = strtok(NULL, " \n"))
		f[nf++] = p;
	/* f[0] is field 3 (state); field k is f[k - 3]. */
	if (nf < 49) {
		free(buf);
		err_set("%s: only %d fields", path, nf + 2);
		return -1;
	}
	memset(st, 0, sizeof(*st));
	st->state = f[0][0];
	st->ppid = atoi(f[1]);
	st->pgrp = atoi(f[2]);
	st->session = atoi(f[3]);
	st->tty_nr = atoi(f[4]);
	st->tpgid = atoi(f[5]);
	st->nthreads = atol(f[17]);
	st->exit_signal = atoi(f[35]);
	st->exit_code = nf > 49 ? atoi(f[49]) : 0;
	st->start_code = strtoull(f[23], NULL, 10);
	st->end_code = strtoull(f[24], NULL, 10);
	st->start_stack = strtoull(f[25], NULL, 10);
	st->start_data = strtoull(f[42], NULL, 10);
	st->end_data = strtoull(f[43], NULL, 10);
	st->start_brk = strtoull(f[44], NULL, 10);
	st->arg_start = strtoull(f[45], NULL, 10);
	st->arg_end = strtoull(f[46], NULL, 10);
	st->env_start = strtoull(f[47], NULL, 10);
	st->env_end = strtoull(f[48], NULL, 10);
	free(buf);
	return 0;
}

/* The number after key in buf (a /proc file of "Key:\tvalue" lines), in
 * base, or dflt when the kernel does not show the key. */
static unsigned long long field(const char *buf, const char *key, int base,
				unsigned long long dflt)
{
	const char *p = strstr(buf, key);

	return p ? strtoull(p + strlen(key), NULL, base) : dflt;
}

int proc_read_status(pid_t pid, unsigned *umask, unsigned *uid, unsigned *gid)
{
	char path[64], *buf;

	buf = read_file(fmt_path(path, sizeof(path), "/proc/%d/status", pid), NULL);
	if (!buf)
		return -1;
	*umask = field(buf, "\nUmask:", 8, 022);
	*uid = field(buf, "\nUid:", 10, *uid);
	*gid = field(buf, "\nGid:", 10, *gid);
	free(buf);
	return 0;
}

/* The value of line key (NSpid:, one value per pid namespace level, the
 * outermost first) at level (-1: the innermost), 0 where the line has
 * none there; how many values it has. */
static int ns_value(const char *buf, const char *key, int level, pid_t *v)
{
	const char *s = strstr(buf, key);
	int n = 0;

	*v = 0;
	if (!s)
		return 0;
	for (s += strlen(key); *s && *s != '\n'; n++) {
		char *end;
		long x = strtol(s, &end, 10);

		if (end == s)
			break;
		if (n == level || level < 0)
			*v = (pid_t)x;
		s = end;
	}
	return n;
}

int proc_read_nsids(pid_t pid, pid_t tid, int level, struct proc_nsids *ids)
{
	char path[64], *buf;

	buf = read_file(tid ? fmt_path(path, sizeof(path), "/proc/%d/task/%d/status", pid, tid)
			    : fmt_path(path, sizeof(path), "/proc/%d/status", pid),
			NULL);
	if (!buf)
		return -1;
	ids->levels = ns_value(buf, "\nNSpid:", level, &ids->pid);
	ns_value(buf, "\nNSpgid:", level, &ids->pgid);
	ns_value(buf, "\nNSsid:", level, &ids->sid);
	free(buf);
	return 0;
}

int proc_read_sigmasks(pid_t pid, pid_t tid, struct proc_sigmasks *m)
{
	char path[64], *buf;

	buf = read_file(fmt_path(path, sizeof(path), "/proc/%d/task/%d/status", pid, tid), NULL);
	if (!buf)
		return -1;
	m->pnd = field(buf, "\nSigPnd:", 16, 0);
	m->shd = field(buf, "\nShdPnd:", 16, 0);
	m->blk = field(buf, "\nSigBlk:", 16, 0);
	m->cgt = field(buf, "\nSigCgt:", 16, 0);
	m->ign = field(buf, "\nSigIgn:", 16, 0);
	free(buf);
	return 0;
}

int proc_read_creds(pid_t pid, pid_t tid, struct proc_creds *c)
{
	char path[64], *buf;

	buf = read_file(fmt_path(path, sizeof(path), "/proc/%d/task/%d/status", pid, tid), NULL);
	if (!buf)
		return -1;
	c->inh = field(buf, "\nCapInh:", 16, 0);
	c->prm = field(buf, "\nCapPrm:", 16, 0);
	c->eff = field(buf, "\nCapEff:", 16, 0);
	c->bnd = field(buf, "\nCapBnd:", 16, 0);
	c->amb = field(buf, "\nCapAmb:", 16, 0);
	c->no_new_privs = field(buf, "\nNoNewPrivs:", 10, 0);
	c->seccomp = field(buf, "\nSeccomp:", 10, 0);
	c->nfilters = field(buf, "\nSeccomp_filters:", 10, 0);
	free(buf);
	return 0;
}

char *proc_readlink(pid_t pid, const char *what)
{
	char path[64], buf[PATH_MAX];
	ssize_t n;
	char *s;

	n = readlink(fmt_path(path, sizeof(path), "/proc/%d/%s", pid, what), buf,
		     sizeof(buf) - 1);
	if (n < 0) {
		err_sys("cannot read link %s", path);
		return NULL;
	}
	buf[n] = 0;
	s = strdup(buf);
	if (!s)
		err_set("out of memory");
	return s;
}

int proc_read_fdinfo(pid_t pid, int fd, struct proc_fdinfo *fi)
{
	char path[64], *buf;

	buf = read_file(fmt_path(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd), NULL);
	if (!buf)
		return -1;
	memset(fi, 0, sizeof(*fi));
	fi->pos = field(buf, "pos:", 10, 0);
	fi->flags = field(buf, "flags:", 8, 0);
	free(buf);
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* The numeric entries of /proc/PID/<what> (task, fd), sorted. */
static int list_numbers(pid_t pid, const char *what, int **out, size_t *np)
{
	char path[64];
	struct dirent *d;
	size_t n = 0, cap = 16;
	int *v = malloc(cap * sizeof(int));
	DIR *dir;

	if (!v) {
		err_set("out of memory");
		return -1;
	}
	dir = opendir(fmt_path(path, sizeof(path), "/proc/%d/%s", pid, what));
	if (!dir) {
		err_sys("cannot open %s", path);
		free(v);
		return -1;
	}
	while ((d = readdir(dir))) {
		if (!isdigit((unsigned char)d->d_name[0]))
			continue;
		if (n == cap) {
			int *nv = realloc(v, (cap *= 2) * sizeof(int));
			if (!nv) {
				closedir(dir);
				free(v);
				err_set("out of memory");
				return -1;
			}
			v = nv;
		}
		v[n++] = atoi(d->d_name);
	}
	closedir(dir);
	qsort(v, n, sizeof(int), cmp_int);
	*out = v;
	*np = n;
	return 0;
}

/* A thread the kernel runs for io_uring (an iou-wrk-N worker, the
 * iou-sqp-N submission thread): PF_IO_WORKER in the flags of its stat
 * (field 9).  It shows among the process's tasks, runs no code of the
 * program's and cannot be restored: its instance makes its own again. */
static int io_worker(pid_t pid, pid_t tid)
{
	char path[64], *buf = read_file(fmt_path(path, sizeof(path), "/proc/%d/task/%d/stat", pid,
						 tid),
					NULL);
	char *p = buf ? strrchr(buf, ')') : NULL;
	unsigned long flags = 0;

	if (p)
		sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags);
	free(buf);
	return (flags & 0x10) != 0; /* PF_IO_WORKER */
}

int proc_list_tasks(pid_t pid, pid_t **tids, size_t *n)
{
	size_t k = 0;

	_Static_assert(sizeof(pid_t) == sizeof(int), "pid_t is an int");
	if (list_numbers(pid, "task", (int **)tids, n))
		return -1;
	for (size_t i = 0; i < *n; i++)
		if ((*tids)[i] == pid || !io_worker(pid, (*tids)[i]))
			(*tids)[k++] = (*tids)[i];
	*n = k;
	return 0;
}

int proc_list_children(pid_t pid, pid_t **kids, size_t *n)
{
	pid_t *tids, *out = NULL;
	size_t ntids, nout = 0;

	if (proc_list_tasks(pid, &tids, &ntids))
		return -1;
	for (size_t i = 0; i < ntids; i++) {
		char path[64], *buf, *p, *end;

		/* A thread that exited meanwhile has no children left. */
		buf = read_file(fmt_path(path, sizeof(path), "/proc/%d/task/%d/children", pid,
					 tids[i]),
				NULL);
		if (!buf)
			continue;
		for (p = buf;; p = end) {
			long v = strtol(p, &end, 10);
			pid_t *no;

			if (end == p)
				break;
			if (!(no = realloc(out, (nout + 1) * sizeof(*out)))) {
				free(buf);
				free(tids);
				free(out);
				err_set("out of memory");
				return -1;
			}
			out = no;
			out[nout++] = v;
		}
		free(buf);
	}
	free(tids);
	*kids = out;
	*n = nout;
	return 0;
}

int proc_list_fds(pid_t pid, int **fds, size_t *n)
{
	return list_numbers(pid, "fd", fds, n);
}

int proc_open_pagemap(pid_t pid)
{
	char path[64];
	int fd = open(fmt_path(path, sizeof(path), "/proc/%d/pagemap", pid), O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		err_sys("cannot open %s", path);
	return fd;
}

int proc_read_pagemap(int fd, uint64_t start, uint64_t npages, uint64_t *out)
{
	uint64_t off = start / sysconf(_SC_PAGESIZE) * 8;
	size_t len = npages * 8, done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)out + done, len - done, off + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err_sys("cannot read pagemap at %#llx", (unsigned long long)start);
			if (n == 0)
				err_set("pagemap at %#llx: short read", (unsigned long long)start);
			return -1;
		}
		done += n;
	}
	return 0;
}

/* <linux/fs.h> of Linux 6.7+ (PAGEMAP_SCAN) and 6.15+ (PAGE_IS_GUARD);
 * older headers have neither. */
struct pm_scan {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
struct pm_region {
	uint64_t start, end, categories;
};
#define PM_SCAN_IOCTL _IOWR('f', 16, struct pm_scan)

int proc_scan_ranges(int fd, uint64_t start, uint64_t end, uint64_t category,
		     struct proc_range **ranges, size_t *np)
{
	struct pm_region vec[64];
	struct proc_range *out = NULL;
	size_t n = 0, cap = 0;
	uint64_t at = start;

	*ranges = NULL;
	*np = 0;
	while (at < end) {
		struct pm_scan a = {.size = sizeof(a), .start = at, .end = end,
				    .vec = (uint64_t)(uintptr_t)vec, .vec_len = 64,
				    .category_mask = category, .return_mask = category};
		long k = ioctl(fd, PM_SCAN_IOCTL, &a);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == ENOTTY || errno == EINVAL))
			break; /* the kernel has no way to tell */
		if (k < 0) {
			free(out);
			return -1;
		}
		for (long i = 0; i < k; i++) {
			/* A range cut by the end of one call's vector goes on in the next. */
			if (n && out[n - 1].end == vec[i].start) {
				out[n - 1].end = vec[i].end;
				continue;
			}
			if (n == cap) {
				struct proc_range *t;
				cap = cap ? 2 * cap : 16;
				t = realloc(out, cap * sizeof(*out));
				if (!t) {
					free(out);
					errno = ENOMEM;
					return -1;
				}
				out = t;
			}
			out[n++] = (struct proc_range){vec[i].start, vec[i].end};
		}
		if (a.walk_end <= at)
			break;
		at = a.walk_end;
	}
	*ranges = out;
	*np = n;
	return 0;
}

int proc_read_guards(pid_t pid, uint64_t end, struct proc_range **ranges, size_t *np)
{
	int fd = proc_open_pagemap(pid), rc;

	*ranges = NULL;
	*np = 0;
	if (fd < 0)
		return -1;
	rc = proc_scan_ranges(fd, 0, end, PM_SCAN_GUARD, ranges, np);
	if (rc)
		err_sys("pid %d: cannot scan pagemap for guard pages", pid);
	close(fd);
	return rc;
}

int proc_read_timers(pid_t pid, struct proc_timer **tp, size_t *np)
{
	char path[64], *buf, *line, *save;
	struct proc_timer *t = NULL, *cur = NULL;
	size_t n = 0;

	buf = read_file(fmt_path(path, sizeof(path), "/proc/%d/timers", pid), NULL);
	if (!buf)
		return -1;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char how[16], who[8];

		if (!strncmp(line, "ID: ", 4)) {
			if (!(cur = append_zeroed(&t, n, sizeof(*t)))) {
				free(t);
				free(buf);
				return -1;
			}
			n++;
			cur->id = atoi(line + 4);
		} else if (!cur) {
			continue;
		} else if (!strncmp(line, "signal: ", 8)) {
			unsigned long long v = 0;
			sscanf(line + 8, "%d/%llx", &cur->signo, &v);
			cur->value = v;
		} else if (sscanf(line, "notify: %15[a-z]/%7[a-z].%d", how, who, &cur->target) == 3) {
			/* "signal/pid.N", "none/pid.N"; a thread-directed timer
			 * (SIGEV_THREAD_ID) says "signal/tid.N". */
			cur->notify = !strcmp(who, "tid")    ? SIGEV_THREAD_ID
				      : !strcmp(how, "none") ? SIGEV_NONE
							     : SIGEV_SIGNAL;
		} else if (!strncmp(line, "ClockID: ", 9)) {
			cur->clock = atoi(line + 9);
		}
	}
	free(buf);
	*tp = t;
	*np = n;
	return 0;
}
