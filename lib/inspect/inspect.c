/* inspect.c: read a whole image and describe it, in text or JSON. */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <time.h>

#include "base/base.h"
#include "incr/incr.h"
#include "inspect/inspect.h"
#include "kinds/kinds.h"

static int scan_data(struct img_input *in, struct img_totals *t);

/* A SHMDATA record: its runs must lie inside its object. */
static int count_shmdata(struct img_input *in, void *buf)
{
	struct img_shmdata *d = buf;
	struct img_run *run = img_runs(IMG_REC_SHMDATA, buf);
	uint64_t ps = in->r.page_size, limit;
	struct shm_obj *o;

	if (d->shm >= in->nobjs) {
		err_set("SHMDATA record: object %llu of %zu", (unsigned long long)d->shm,
			in->nobjs);
		return -1;
	}
	o = in->objs[d->shm];
	limit = (o->d.size + ps - 1) / ps * ps;
	for (uint32_t i = 0; i < d->p.nruns; i++) {
		if (run[i].addr >= limit || run[i].npages > (limit - run[i].addr) / ps) {
			err_set("SHMDATA record: run at %llu+%llu pages lies outside %s",
				(unsigned long long)run[i].addr,
				(unsigned long long)run[i].npages, o->name);
			return -1;
		}
		o->stored += run[i].npages;
	}
	return 0;
}

int img_scan_data(struct img_input *in, struct img_totals *t)
{
	if (scan_data(in, t)) {
		img_input_fail(in);
		return -1;
	}
	return img_input_end(in);
}

int img_verify_rest(struct img_input *in)
{
	struct img_reader at = in->r;
	struct img_totals t = {0};
	struct stat st;
	off_t pos = -1;
	int copy = -1;

	/* An image file read directly is read again from here.  Any other
	 * stream (a pipe, a decompressor's, a merge's) is read once: what
	 * the restore reads is the copy kept now, no byte of it unverified. */
	if (!in->compressed && !in->im.parent && !fstat(in->r.fd, &st) && S_ISREG(st.st_mode))
		pos = lseek(in->r.fd, 0, SEEK_CUR);
	if (pos < 0) {
		copy = memfd_create("ckpt-image", MFD_CLOEXEC);
		if (copy < 0) {
			err_sys("cannot make a memfd to verify the image in");
			return -1;
		}
		in->r.tee = copy + 1;
	}
	if (img_scan_data(in, &t)) {
		in->r.tee = 0;
		if (copy >= 0)
			close(copy);
		return -1;
	}
	/* Counted again as the restore reads it. */
	for (size_t i = 0; i < in->nobjs; i++)
		in->objs[i]->stored = 0;
	if (copy < 0) {
		in->r = at;
		if (lseek(in->r.fd, pos, SEEK_SET) != pos) {
			err_sys("cannot seek back in the image");
			return -1;
		}
		return 0;
	}
	/* The decompressor or merge is done (img_scan_data waited for it). */
	if (in->r.fd > 0)
		close(in->r.fd);
	in->r = at;
	in->r.fd = copy;
	if (lseek(copy, 0, SEEK_SET)) {
		err_sys("cannot seek back in the image's copy");
		return -1;
	}
	return 0;
}

/* A tree's PROCPAGES record: the next live process in stream order. */
static int next_proc(struct img_input *in, const struct img_rec *rec, const void *buf,
		     size_t *k, struct image **im)
{
	struct img_procpages pp;

	if (!in->nrest || rec->len != sizeof(pp)) {
		err_set("PROCPAGES record %s", in->nrest ? "of bad length" : "in the image of one "
								       "process");
		return -1;
	}
	memcpy(&pp, buf, sizeof(pp));
	while (*k <= in->nrest && (img_proc_at(in, *k)->proc.flags & IMG_PROC_ZOMBIE))
		++*k;
	if (*k > in->nrest || img_proc_at(in, *k)->proc.pid != pp.pid) {
		err_set("PROCPAGES record: pid %d out of the tree's order", pp.pid);
		return -1;
	}
	*im = img_proc_at(in, (*k)++);
	return 0;
}

/* Where scan_data is in the page data. */
struct scan {
	struct img_input *in;
	struct img_totals *t;
	/* One process: its pages follow.  A tree: each process's follow
	 * its PROCPAGES record. */
	struct image *im;
	int seen_pages;
	size_t next;
};

/* The END record: every live process had its page data, the totals agree. */
static int scan_end(struct scan *sc, const struct img_rec *rec, const void *buf)
{
	struct img_input *in = sc->in;
	struct img_reader *r = &in->r;
	struct img_end e;
	int rc;

	if (rec->len != sizeof(e)) {
		err_set("END record: bad length %llu", (unsigned long long)rec->len);
		return -1;
	}
	memcpy(&e, buf, sizeof(e));
	while (sc->next <= in->nrest && in->nrest &&
	       (img_proc_at(in, sc->next)->proc.flags & IMG_PROC_ZOMBIE))
		sc->next++;
	if (in->nrest && sc->next <= in->nrest) {
		err_set("END record before the page data of pid %d",
			img_proc_at(in, sc->next)->proc.pid);
		return -1;
	}
	rc = img_check_end(r, rec, &e);
	sc->t->records = r->nrec;
	sc->t->pages = r->npages;
	sc->t->bytes = r->off;
	return rc ? -1 : 1;
}

/* A PAGES record: its runs must lie inside regions of im, whose stored
 * pages they count. */
static int count_pages(struct image *im, uint32_t page_size, void *buf)
{
	struct img_pages *p = buf;
	struct img_run *run = img_runs(IMG_REC_PAGES, buf);

	for (uint32_t i = 0; i < p->nruns; i++) {
		uint64_t end = run[i].addr + run[i].npages * page_size;
		struct region *g = img_find_region(im, run[i].addr);
		if (!g || end > g->d.end || end < run[i].addr) {
			err_set("PAGES record: run %#llx+%llu pages lies outside every region",
				(unsigned long long)run[i].addr, (unsigned long long)run[i].npages);
			return -1;
		}
		g->stored += run[i].npages;
	}
	return 0;
}

/* One record of the page data (img_read_each). */
static int scan_rec(void *arg, const struct img_rec *rec, void *buf)
{
	struct scan *sc = arg;
	struct img_reader *r = &sc->in->r;
	uint32_t crc;

	if (rec->type == IMG_REC_END)
		return scan_end(sc, rec, buf);
	if (rec->type == IMG_REC_HASHES || rec->type == IMG_REC_REUSE)
		return incr_scan_rec(sc->in, rec, buf);
	if (rec->type == IMG_REC_PROCPAGES) {
		if (next_proc(sc->in, rec, buf, &sc->next, &sc->im))
			return -1;
		sc->seen_pages = 1;
		return 0;
	}
	if (rec->type == IMG_REC_SHMDATA && !sc->seen_pages) {
		if (count_shmdata(sc->in, buf))
			return -1;
	} else if (rec->type != IMG_REC_PAGES || !sc->im) {
		err_set("record of type %u among the page data at offset %llu", rec->type,
			(unsigned long long)(r->off - sizeof(*rec) - rec->len));
		return -1;
	} else {
		sc->seen_pages = 1;
		if (count_pages(sc->im, r->page_size, buf))
			return -1;
	}
	/* Both begin with a struct img_pages. */
	return img_skip_data(r, buf, &crc);
}

static int scan_data(struct img_input *in, struct img_totals *t)
{
	struct scan sc = {.in = in, .t = t, .im = in->nrest ? NULL : &in->im};

	return img_read_each(&in->r, scan_rec, &sc);
}

static const char *prot_str(uint32_t prot, uint32_t flags)
{
	static char s[5];

	s[0] = prot & PROT_READ ? 'r' : '-';
	s[1] = prot & PROT_WRITE ? 'w' : '-';
	s[2] = prot & PROT_EXEC ? 'x' : '-';
	s[3] = flags & IMG_RGN_SHARED ? 's' : 'p';
	s[4] = 0;
	return s;
}

/* The region's flags other than shared, comma-separated ("" if none). */
static const char *rgn_flags_str(uint32_t flags)
{
	static const char *const names[] = {"shared",	  "growsdown",	 "maywrite",  "noreserve",
					    "dontfork",	  "wipeonfork",	 "dontdump",  "hugepage",
					    "nohugepage", "locked",	 "lockonfault", "mergeable",
					    "sequential", "random",	 "guard",     "hugetlb"};
	static char s[160];
	size_t n = 0;

	s[0] = 0;
	for (size_t i = 1; i < sizeof(names) / sizeof(names[0]); i++)
		if (flags & (1u << i))
			n += snprintf(s + n, sizeof(s) - n, "%s%s", n ? "," : "", names[i]);
	return s;
}

/* The command line with NULs as spaces, for text output. */
static void put_cmdline(FILE *f, const struct image *im)
{
	for (uint32_t i = 0; i < im->proc.cmdline_len; i++) {
		char c = im->cmdline[i];
		if (c == 0 && i + 1 < im->proc.cmdline_len)
			fputc(' ', f);
		else if (c)
			fputc((unsigned char)c < 32 ? '?' : c, f);
	}
}

static const char *syscall_state(const struct user_regs_struct *r, char *buf, size_t n)
{
	if ((int64_t)r->orig_rax < 0)
		return "running user code";
	snprintf(buf, n, "in system call %lld (rax %lld)", (long long)r->orig_rax,
		 (long long)r->rax);
	return buf;
}

/* A zombie's wait status, as a shell says it. */
static const char *zombie_str(const struct img_proc *p, char *buf, size_t n)
{
	int st = p->exit_status;

	if ((st & 0x7f) == 0)
		snprintf(buf, n, "zombie, exited %d", (st >> 8) & 0xff);
	else
		snprintf(buf, n, "zombie, killed by signal %d", st & 0x7f);
	return buf;
}

static size_t tree_depth(const struct img_input *in, size_t k)
{
	size_t d = 0;

	for (;;) {
		int32_t ppid = img_proc_at((struct img_input *)in, k)->proc.ppid;
		size_t j = 0;

		while (j < k && img_proc_at((struct img_input *)in, j)->proc.pid != ppid)
			j++;
		if (j == k)
			return d;
		k = j;
		d++;
	}
}

/* The processes of a tree, one line each, children under their parent. */
static void text_tree(FILE *f, const struct img_input *in)
{
	char b[64];

	fprintf(f, "tree:     %zu processes\n", in->nrest + 1);
	fprintf(f, "  %7s %7s %7s %7s  %s\n", "PID", "PPID", "PGID", "SID", "COMMAND");
	for (size_t k = 0; k <= in->nrest; k++) {
		const struct image *im = img_proc_at((struct img_input *)in, k);
		const struct img_proc *p = &im->proc;

		fprintf(f, "  %7d %7d %7d %7d  %*s", p->pid, p->ppid, p->pgid, p->sid,
			(int)(2 * tree_depth(in, k)), "");
		if (p->flags & IMG_PROC_ZOMBIE) {
			fprintf(f, "[%s] (%s)\n", p->comm, zombie_str(p, b, sizeof(b)));
			continue;
		}
		put_cmdline(f, im);
		fputc('\n', f);
	}
}

static void text_proc(FILE *f, const struct image *im);

void inspect_text(FILE *f, const struct img_input *in, const struct img_totals *t)
{
	const struct img_header *h = &in->im.hdr;
	char b1[32], t1[64];

	fprintf(f, "format:   ckpt image version %u, x86-64, page size %u%s%s\n", h->version,
		h->page_size, in->compressed ? ", compressed" : "",
		(h->flags & IMG_HDR_NO_DATA_CRC) ? ", page data spliced, not checksummed" : "");
	fprintf(f, "created:  %s on %s, kernel %s\n", fmt_time(t1, sizeof(t1), h->ctime), h->host,
		h->kernel);
	fprintf(f, "cpu:      xsave features %#llx, %u bytes of state\n",
		(unsigned long long)h->xfeatures, h->xsave_size);
	if (in->im.cpu) {
		char names[1024];

		img_cpu_names(in->im.cpu, NULL, names, sizeof(names));
		fprintf(f, "          features %s\n", names[0] ? names : "none named");
	}
	if (in->nrest)
		text_tree(f, in);
	for (size_t k = 0; k <= in->nrest; k++)
		text_proc(f, img_proc_at((struct img_input *)in, k));
	incr_inspect_text(f, in);
	fprintf(f, "data:     %llu pages (%s) in %llu records, %llu bytes, checksums ok\n",
		(unsigned long long)t->pages, fmt_bytes(b1, sizeof(b1), t->pages * h->page_size),
		(unsigned long long)t->records, (unsigned long long)t->bytes);
}

static void text_threads(FILE *f, const struct image *im)
{
	char b[64];

	fprintf(f, "threads:  %zu\n", im->nthreads);
	for (size_t i = 0; i < im->nthreads; i++) {
		const struct img_thread *th = &im->threads[i].d;
		struct user_regs_struct r;

		memcpy(&r, th->regs, sizeof(r));
		fprintf(f, "  tid %d (%s), rip %#llx, rsp %#llx, %s\n", th->tid, th->comm,
			(unsigned long long)r.rip, (unsigned long long)r.rsp,
			syscall_state(&r, b, sizeof(b)));
		fprintf(f, "    sigmask %#llx, fs base %#llx, rseq %#llx, robust list %#llx\n",
			(unsigned long long)th->sigmask, (unsigned long long)r.fs_base,
			(unsigned long long)th->rseq_addr, (unsigned long long)th->robust_head);
	}
}

static void text_regions(FILE *f, const struct image *im)
{
	char b[32];

	fprintf(f, "regions:  %zu\n", im->nregions);
	for (size_t i = 0; i < im->nregions; i++) {
		const struct region *g = &im->regions[i];
		const char *name = g->path && g->path[0] ? g->path : "";
		const char *fl = rgn_flags_str(g->d.flags);
		char aio[96];

		if (g->d.kind == IMG_RGN_AIO) {
			snprintf(aio, sizeof(aio), "/[aio] nr %llu head %llu tail %llu",
				 (unsigned long long)g->d.fsize, (unsigned long long)g->d.dev,
				 (unsigned long long)g->d.ino);
			name = aio;
		}
		fprintf(f, "  %012llx-%012llx %s %-7s %10s %s%s%s%s\n",
			(unsigned long long)g->d.start, (unsigned long long)g->d.end,
			prot_str(g->d.prot, g->d.flags), img_kind_name(g->d.kind),
			fmt_bytes(b, sizeof(b), g->stored * im->hdr.page_size), name,
			*fl ? " [" : "", fl, *fl ? "]" : "");
	}
}

static void text_files(FILE *f, const struct image *im)
{
	fprintf(f, "files:    %zu\n", im->nfiles);
	for (size_t i = 0; i < im->nfiles; i++) {
		const struct fd_entry *e = &im->files[i];
		fprintf(f, "  fd %-3d %-7s flags %#o offset %llu", e->d.fd,
			fd_kind_name(e->d.kind), e->d.flags, (unsigned long long)e->d.pos);
		if (e->d.desc)
			fprintf(f, " desc %llu", (unsigned long long)e->d.desc);
		fd_show(f, e, 0);
		fprintf(f, " %s\n", e->path);
		fd_show_list(f, e, 0);
	}
}

static void text_objects(FILE *f, const struct image *im)
{
	char b1[32], b2[32];

	if (im->nshms)
		fprintf(f, "objects:  %zu\n", im->nshms);
	for (size_t i = 0; i < im->nshms; i++) {
		const struct shm_obj *o = &im->shms[i];
		fprintf(f, "  %-5s %10s, %s stored, mode %04o", img_shm_kind_name(o->d.kind),
			fmt_bytes(b1, sizeof(b1), o->d.size),
			fmt_bytes(b2, sizeof(b2), o->stored * im->hdr.page_size), o->d.mode);
		if (o->d.kind == IMG_SHM_SYSV)
			fprintf(f, ", key %#x%s", (unsigned)o->d.key,
				o->d.flags & IMG_SHM_RMID ? ", id removed" : "");
		if (o->d.seals)
			fprintf(f, ", seals %#x", o->d.seals);
		if (o->d.kind == IMG_SHM_TMPFS)
			fprintf(f, ", owner %u:%u", o->tmpfs.uid, o->tmpfs.gid);
		if (o->d.flags & IMG_SHM_HUGETLB)
			fprintf(f, ", huge pages of %s",
				fmt_bytes(b1, sizeof(b1), 1ull << IMG_SHM_HSHIFT(o->d.flags)));
		fprintf(f, "%s%s\n", o->name[0] ? " " : "", o->name);
	}
}

static void text_ipcs(FILE *f, const struct image *im)
{
	if (im->nipcs)
		fprintf(f, "sysv ipc: %zu\n", im->nipcs);
	for (size_t i = 0; i < im->nipcs; i++) {
		const struct img_ipc *d = &im->ipcs[i].d;
		fprintf(f, "  %s id %d, key %#x, mode %04o, %u %s\n",
			d->kind == IMG_IPC_SEM ? "semaphores" : "messages  ", d->id,
			(unsigned)d->key, d->mode, d->n,
			d->kind == IMG_IPC_SEM ? "semaphores" : "messages queued");
	}
}

/* A map as one line: its lines joined by ", ", columns by one space. */
static void put_map(FILE *f, const char *m)
{
	int sep = 0, word = 0;

	for (; *m; m++) {
		if (*m == ' ' || *m == '\n') {
			sep = *m == '\n' ? 2 : sep ? sep : 1;
			continue;
		}
		if (word && sep)
			fputs(sep == 2 ? ", " : " ", f);
		fputc(*m, f);
		word = 1;
		sep = 0;
	}
}

static const char *const mnt_op[IMG_MNT_NOPS] = {
    [IMG_MNT_KEEP] = "kept",  [IMG_MNT_UMOUNT] = "unmounted", [IMG_MNT_TMPFS] = "tmpfs",
    [IMG_MNT_BIND] = "bind",  [IMG_MNT_PROC] = "proc",	       [IMG_MNT_DIR] = "dir",
    [IMG_MNT_FILE] = "file",  [IMG_MNT_LINK] = "symlink"};

/* A mount namespace of its own: each step but the kept mounts left as
 * they are, one a line. */
static void text_mounts(FILE *f, const struct ns_rec *n)
{
	size_t kept = 0;

	for (size_t i = 0; i < n->nmounts; i++) {
		const struct mnt_step *m = &n->mounts[i];

		if (m->d.op == IMG_MNT_KEEP && !(m->d.flags & IMG_MNTF_REMOUNT)) {
			kept++;
			continue;
		}
		fprintf(f, "           %s %s", mnt_op[m->d.op], m->path);
		if (m->d.op == IMG_MNT_BIND || m->d.op == IMG_MNT_LINK)
			fprintf(f, " %s %s", m->d.op == IMG_MNT_BIND ? "from" : "to", m->src);
		if (m->d.op == IMG_MNT_TMPFS && m->d.size)
			fprintf(f, ", size %llu", (unsigned long long)m->d.size);
		if (m->d.op == IMG_MNT_FILE)
			fprintf(f, ", %llu bytes", (unsigned long long)m->d.size);
		if (m->d.op == IMG_MNT_TMPFS || m->d.op == IMG_MNT_DIR || m->d.op == IMG_MNT_FILE)
			fprintf(f, ", mode %o", m->d.mode);
		if (m->d.op == IMG_MNT_PROC)
			fprintf(f, ", of pid namespace inode %llu", (unsigned long long)m->d.pidns);
		if (m->d.flags & IMG_MNTF_RDONLY)
			fprintf(f, ", read-only");
		fputc('\n', f);
	}
	fprintf(f, "           %zu mounts of the tree's kept\n", kept);
}

/* The namespaces that are its own and its cgroup, if not the tree's. */
static void text_ns(FILE *f, const struct image *im)
{
	const struct ns_rec *n = im->ns;

	if (!n)
		return;
	if (n->d.own)
		fprintf(f, "namespaces: of its own, not the tree's:\n");
	for (int t = 0; t < IMG_NS_NTYPES; t++) {
		if (!(n->d.own & (1u << t)))
			continue;
		fprintf(f, "  %-6s inode %llu", img_ns_name(t), (unsigned long long)n->d.ino[t]);
		if (t == IMG_NS_UTS)
			fprintf(f, ", hostname %s, domainname %s", n->d.hostname, n->d.domainname);
		if (t == IMG_NS_NET)
			fprintf(f, ", lo %s", (n->d.flags & IMG_NSF_LO_UP) ? "up" : "down");
		if (t == IMG_NS_PID) {
			fprintf(f, ", pid");
			for (uint32_t i = 0; i < n->d.npids; i++)
				fprintf(f, "%s%d", i ? " then " : " ", n->pids[i]);
			fprintf(f, " below the tree's");
		}
		if (t == IMG_NS_TIME && n->timens)
			fprintf(f, ", offsets monotonic %lld.%09lld s, boottime %lld.%09lld s%s",
				(long long)n->timens->off_sec[0], (long long)n->timens->off_nsec[0],
				(long long)n->timens->off_sec[1], (long long)n->timens->off_nsec[1],
				(n->timens->flags & IMG_TIMENS_CHILDREN) ? ", its children's only"
									  : "");
		if (t == IMG_NS_USER) {
			fprintf(f, ", uid_map ");
			put_map(f, n->uid_map);
			fprintf(f, ", gid_map ");
			put_map(f, n->gid_map);
			fprintf(f, ", setgroups %s",
				(n->d.flags & IMG_NSF_SETGROUPS) ? "allow" : "deny");
		}
		fputc('\n', f);
		if (t == IMG_NS_MNT)
			text_mounts(f, n);
	}
	if (n->d.flags & IMG_NSF_CGROUP)
		fprintf(f, "cgroup:   %s\n", n->cgroup);
}

/* One process: who it is, then its sections, a function each. */
static void text_proc(FILE *f, const struct image *im)
{
	const struct img_proc *p = &im->proc;
	char b[64];
	int nh = 0, ni = 0;

	fprintf(f, "process:  pid %d (%s), ppid %d, pgid %d, sid %d, uid %u, gid %u, umask %03o\n",
		p->pid, p->comm, p->ppid, p->pgid, p->sid, p->uid, p->gid, p->umask);
	if (p->flags & IMG_PROC_ZOMBIE) {
		fprintf(f, "state:    %s\n", zombie_str(p, b, sizeof(b)));
		return;
	}
	fprintf(f, "command:  ");
	put_cmdline(f, im);
	fprintf(f, "\nexe:      %s\ncwd:      %s\n", im->exe, im->cwd);
	text_threads(f, im);
	for (int i = 0; i < IMG_NSIG; i++) {
		nh += im->sigacts[i].handler > 1;
		ni += im->sigacts[i].handler == 1;
	}
	fprintf(f, "signals:  %d handled, %d ignored\n", nh, ni);
	inspect_attrs_text(f, im);
	text_regions(f, im);
	text_files(f, im);
	text_objects(f, im);
	text_ipcs(f, im);
	text_ns(f, im);
}

/* A command line (NUL-separated) as a JSON array of strings. */
static void json_argv(FILE *f, const char *cmdline, uint32_t len)
{
	uint32_t a = 0;

	fputc('[', f);
	while (a < len) {
		size_t l = strnlen(cmdline + a, len - a);
		if (a)
			fputc(',', f);
		json_str(f, cmdline + a, l);
		a += l + 1;
	}
	fputc(']', f);
}

static void json_format(FILE *f, const struct img_input *in)
{
	const struct img_header *h = &in->im.hdr;

	fprintf(f,
		"{\"format\":{\"version\":%u,\"arch\":\"x86-64\",\"page_size\":%u,"
		"\"compressed\":%s,\"data_crc\":%s,\"created\":%lld,\"host\":",
		h->version, h->page_size, in->compressed ? "true" : "false",
		(h->flags & IMG_HDR_NO_DATA_CRC) ? "false" : "true", (long long)h->ctime);
	json_str(f, h->host, strlen(h->host));
	fprintf(f, ",\"kernel\":");
	json_str(f, h->kernel, strlen(h->kernel));
	fprintf(f, ",\"xfeatures\":%llu,\"xsave_size\":%u", (unsigned long long)h->xfeatures,
		h->xsave_size);
	if (in->im.cpu) {
		char names[1024];

		img_cpu_names(in->im.cpu, NULL, names, sizeof(names));
		fprintf(f, ",\"cpu_features\":");
		json_str(f, names, strlen(names));
	}
	fprintf(f, "},\n");
}

static void json_process(FILE *f, const struct image *im)
{
	const struct img_proc *p = &im->proc;

	fprintf(f,
		"\"process\":{\"pid\":%d,\"ppid\":%d,\"pgid\":%d,\"sid\":%d,\"uid\":%u,"
		"\"gid\":%u,\"umask\":%u,\"comm\":",
		p->pid, p->ppid, p->pgid, p->sid, p->uid, p->gid, p->umask);
	json_str(f, p->comm, strlen(p->comm));
	fprintf(f, ",\"exe\":");
	json_str(f, im->exe, strlen(im->exe));
	fprintf(f, ",\"cwd\":");
	json_str(f, im->cwd, strlen(im->cwd));
	fprintf(f, ",\"argv\":");
	json_argv(f, im->cmdline, p->cmdline_len);
	fprintf(f, "},\n");
}

static void json_tree(FILE *f, const struct img_input *in)
{
	fprintf(f, "\"tree\":[");
	for (size_t k = 0; k <= in->nrest; k++) {
		const struct image *pi = img_proc_at((struct img_input *)in, k);
		const struct img_proc *q = &pi->proc;

		fprintf(f,
			"%s{\"pid\":%d,\"ppid\":%d,\"pgid\":%d,\"sid\":%d,\"threads\":%zu,"
			"\"zombie\":%s,\"exit_status\":%d,\"exit_signal\":%d,\"comm\":",
			k ? ",\n" : "", q->pid, q->ppid, q->pgid, q->sid, pi->nthreads,
			(q->flags & IMG_PROC_ZOMBIE) ? "true" : "false", q->exit_status,
			q->exit_signal);
		json_str(f, q->comm, strlen(q->comm));
		fprintf(f, ",\"argv\":");
		json_argv(f, pi->cmdline, q->cmdline_len);
		fprintf(f, "}");
	}
	fprintf(f, "],\n");
}

static void json_threads(FILE *f, const struct image *im)
{
	fprintf(f, "\"threads\":[");
	for (size_t i = 0; i < im->nthreads; i++) {
		const struct img_thread *th = &im->threads[i].d;
		struct user_regs_struct r;

		memcpy(&r, th->regs, sizeof(r));
		fprintf(f, "%s{\"tid\":%d,\"comm\":", i ? ",\n" : "", th->tid);
		json_str(f, th->comm, strlen(th->comm));
		fprintf(f,
			",\"rip\":%llu,\"rsp\":%llu,\"orig_rax\":%lld,\"rax\":%lld,"
			"\"sigmask\":%llu,\"fs_base\":%llu,\"rseq\":%llu,\"robust_list\":%llu,"
			"\"tid_address\":%llu}",
			(unsigned long long)r.rip, (unsigned long long)r.rsp, (long long)r.orig_rax,
			(long long)r.rax, (unsigned long long)th->sigmask,
			(unsigned long long)r.fs_base, (unsigned long long)th->rseq_addr,
			(unsigned long long)th->robust_head, (unsigned long long)th->tid_addr);
	}
	fprintf(f, "],\n");
}

static void json_signals(FILE *f, const struct image *im)
{
	fprintf(f, "\"signals\":[");
	for (int i = 0, first = 1; i < IMG_NSIG; i++) {
		const struct img_sigact *s = &im->sigacts[i];
		if (!s->handler)
			continue;
		fprintf(f, "%s{\"signal\":%d,\"handler\":%llu,\"flags\":%llu,\"mask\":%llu}",
			first ? "" : ",", i + 1, (unsigned long long)s->handler,
			(unsigned long long)s->flags, (unsigned long long)s->mask);
		first = 0;
	}
	fprintf(f, "],\n");
}

static void json_regions(FILE *f, const struct image *im)
{
	fprintf(f, "\"regions\":[\n");
	for (size_t i = 0; i < im->nregions; i++) {
		const struct region *g = &im->regions[i];
		fprintf(f, "%s{\"start\":%llu,\"end\":%llu,\"prot\":\"%s\",\"kind\":\"%s\","
			   "\"offset\":%llu,\"stored_bytes\":%llu,\"flags\":\"%s\","
			   "\"huge_page_size\":%llu,\"name\":",
			i ? ",\n" : "", (unsigned long long)g->d.start,
			(unsigned long long)g->d.end, prot_str(g->d.prot, g->d.flags),
			img_kind_name(g->d.kind), (unsigned long long)g->d.pgoff,
			(unsigned long long)(g->stored * im->hdr.page_size),
			rgn_flags_str(g->d.flags),
			g->d.flags & IMG_RGN_HUGETLB ? 1ull << g->d.hshift : 0ull);
		json_str(f, g->path ? g->path : "", g->path ? strlen(g->path) : 0);
		if (g->d.kind == IMG_RGN_AIO)
			fprintf(f, ",\"aio_nr\":%llu,\"aio_head\":%llu,\"aio_tail\":%llu",
				(unsigned long long)g->d.fsize, (unsigned long long)g->d.dev,
				(unsigned long long)g->d.ino);
		fputc('}', f);
	}
	fprintf(f, "],\n");
}

static void json_files(FILE *f, const struct image *im)
{
	fprintf(f, "\"files\":[\n");
	for (size_t i = 0; i < im->nfiles; i++) {
		const struct fd_entry *e = &im->files[i];
		fprintf(f,
			"%s{\"fd\":%d,\"kind\":\"%s\",\"flags\":%u,\"offset\":%llu,\"desc\":%llu,"
			"\"path\":",
			i ? ",\n" : "", e->d.fd, fd_kind_name(e->d.kind), e->d.flags,
			(unsigned long long)e->d.pos, (unsigned long long)e->d.desc);
		json_str(f, e->path, strlen(e->path));
		fd_show(f, e, 1);
		fd_show_list(f, e, 1);
		fputc('}', f);
	}
	fprintf(f, "],\n");
}

static void json_objects(FILE *f, const struct image *im)
{
	fprintf(f, "\"objects\":[\n");
	for (size_t i = 0; i < im->nshms; i++) {
		const struct shm_obj *o = &im->shms[i];
		fprintf(f, "%s{\"kind\":\"%s\",\"size\":%llu,\"stored_bytes\":%llu,\"mode\":%u,"
			   "\"key\":%d,\"id_removed\":%s,\"seals\":%u,\"huge_page_size\":%llu,"
			   "\"name\":",
			i ? ",\n" : "", img_shm_kind_name(o->d.kind), (unsigned long long)o->d.size,
			(unsigned long long)(o->stored * im->hdr.page_size), o->d.mode, o->d.key,
			o->d.flags & IMG_SHM_RMID ? "true" : "false", o->d.seals,
			o->d.flags & IMG_SHM_HUGETLB ? 1ull << IMG_SHM_HSHIFT(o->d.flags) : 0ull);
		json_str(f, o->name, strlen(o->name));
		if (o->d.kind == IMG_SHM_TMPFS)
			fprintf(f, ",\"uid\":%u,\"gid\":%u,\"mtime\":%lld.%09u", o->tmpfs.uid,
				o->tmpfs.gid, (long long)o->tmpfs.mtime_sec, o->tmpfs.mtime_nsec);
		fputc('}', f);
	}
	fprintf(f, "],\n");
}

static void json_ipcs(FILE *f, const struct image *im)
{
	fprintf(f, "\"sysv_ipc\":[\n");
	for (size_t i = 0; i < im->nipcs; i++) {
		const struct img_ipc *d = &im->ipcs[i].d;
		fprintf(f, "%s{\"kind\":\"%s\",\"id\":%d,\"key\":%d,\"mode\":%u,\"count\":%u}",
			i ? ",\n" : "", d->kind == IMG_IPC_SEM ? "sem" : "msg", d->id, d->key,
			d->mode, d->n);
	}
	fprintf(f, "],\n");
}

/* Every process with namespaces or a cgroup of its own. */
static void json_ns(FILE *f, const struct img_input *in)
{
	int first = 1;

	fprintf(f, "\"namespaces\":[");
	for (size_t k = 0; k <= in->nrest; k++) {
		const struct ns_rec *n = img_proc_at((struct img_input *)in, k)->ns;
		int sep = 0;

		if (!n)
			continue;
		fprintf(f, "%s{\"pid\":%d,\"own\":{", first ? "" : ",\n",
			img_proc_at((struct img_input *)in, k)->proc.pid);
		first = 0;
		for (int t = 0; t < IMG_NS_NTYPES; t++)
			if (n->d.own & (1u << t))
				fprintf(f, "%s\"%s\":%llu", sep++ ? "," : "", img_ns_name(t),
					(unsigned long long)n->d.ino[t]);
		fprintf(f, "}");
		if (n->d.own & (1u << IMG_NS_UTS)) {
			fprintf(f, ",\"hostname\":");
			json_str(f, n->d.hostname, strlen(n->d.hostname));
			fprintf(f, ",\"domainname\":");
			json_str(f, n->d.domainname, strlen(n->d.domainname));
		}
		if (n->d.own & (1u << IMG_NS_NET))
			fprintf(f, ",\"lo_up\":%s", (n->d.flags & IMG_NSF_LO_UP) ? "true" : "false");
		for (uint32_t i = 0; i < n->d.npids; i++)
			fprintf(f, "%s%d%s", i ? "," : ",\"pids_below\":[", n->pids[i],
				i + 1 == n->d.npids ? "]" : "");
		if (n->timens)
			fprintf(f,
				",\"time\":{\"monotonic\":[%lld,%lld],\"boottime\":[%lld,%lld],"
				"\"clocks_ns\":[%lld,%lld],\"children_only\":%s}",
				(long long)n->timens->off_sec[0], (long long)n->timens->off_nsec[0],
				(long long)n->timens->off_sec[1], (long long)n->timens->off_nsec[1],
				(long long)n->timens->clock_ns[0], (long long)n->timens->clock_ns[1],
				(n->timens->flags & IMG_TIMENS_CHILDREN) ? "true" : "false");
		if (n->d.own & (1u << IMG_NS_USER)) {
			fprintf(f, ",\"uid_map\":");
			json_str(f, n->uid_map, n->d.uid_map_len);
			fprintf(f, ",\"gid_map\":");
			json_str(f, n->gid_map, n->d.gid_map_len);
			fprintf(f, ",\"setgroups\":%s",
				(n->d.flags & IMG_NSF_SETGROUPS) ? "true" : "false");
		}
		if (n->d.flags & IMG_NSF_CGROUP) {
			fprintf(f, ",\"cgroup\":");
			json_str(f, n->cgroup, n->d.cgroup_len);
		}
		for (size_t i = 0; i < n->nmounts; i++) {
			fprintf(f, "%s{\"op\":\"%s\",\"path\":", i ? "," : ",\"mounts\":[",
				mnt_op[n->mounts[i].d.op]);
			json_str(f, n->mounts[i].path, n->mounts[i].d.path_len);
			fprintf(f, ",\"flags\":%u}%s", n->mounts[i].d.flags,
				i + 1 == n->nmounts ? "]" : "");
		}
		fprintf(f, "}");
	}
	fprintf(f, "],\n");
}

/* The image as one JSON object: the root process's metadata in full, the
 * tree in brief, then the parent and the page data. */
void inspect_json(FILE *f, const struct img_input *in, const struct img_totals *t)
{
	const struct image *im = &in->im;

	json_format(f, in);
	json_process(f, im);
	inspect_attrs_json(f, im);
	json_tree(f, in);
	json_threads(f, im);
	json_signals(f, im);
	json_regions(f, im);
	json_files(f, im);
	json_objects(f, im);
	json_ipcs(f, im);
	json_ns(f, in);
	incr_inspect_json(f, in);
	fprintf(f, "\"data\":{\"pages\":%llu,\"bytes\":%llu,\"records\":%llu,"
		   "\"stream_bytes\":%llu}}\n",
		(unsigned long long)t->pages, (unsigned long long)(t->pages * im->hdr.page_size),
		(unsigned long long)t->records, (unsigned long long)t->bytes);
}
