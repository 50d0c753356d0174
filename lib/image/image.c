/* image.c: the image in memory: records written and read, and checked as read. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "image/image.h"

_Static_assert(sizeof(struct img_header) == 192, "img_header layout");
_Static_assert(sizeof(struct img_rec) == 16, "img_rec layout");
_Static_assert(sizeof(struct img_proc) == 192, "img_proc layout");
_Static_assert(sizeof(struct img_thread) == 312, "img_thread layout");
_Static_assert(sizeof(struct img_region) == 80, "img_region layout");
_Static_assert(sizeof(struct img_file) == 80, "img_file layout");
_Static_assert(sizeof(struct img_pages) == 16, "img_pages layout");
_Static_assert(sizeof(struct img_run) == 16, "img_run layout");
_Static_assert(sizeof(struct img_procpages) == 8, "img_procpages layout");
_Static_assert(sizeof(struct img_sigact) == 32, "img_sigact layout");
_Static_assert(sizeof(struct img_sigqueue) == 8, "img_sigqueue layout");
_Static_assert(sizeof(struct img_ptimer) == 64, "img_ptimer layout");
_Static_assert(sizeof(struct img_timers) == 104, "img_timers layout");
_Static_assert(sizeof(struct img_pipe) == 24, "img_pipe layout");
_Static_assert(sizeof(struct img_eventfd) == 16, "img_eventfd layout");
_Static_assert(sizeof(struct img_timerfd) == 48, "img_timerfd layout");
_Static_assert(sizeof(struct img_epoll_item) == 16, "img_epoll_item layout");

static const char *const kind_names[IMG_RGN_NKINDS] = {"anon",  "file",    "heap", "stack",
						       "special", "shm", "aio", "uring"};
static const char *const shm_kind_names[IMG_SHM_NKINDS] = {"?",	 "anon", "memfd",
							   "sysv", "file", "saved", "tmpfs"};

const char *img_kind_name(uint32_t kind)
{
	return kind < IMG_RGN_NKINDS ? kind_names[kind] : "?";
}

const char *img_ns_name(int type)
{
	static const char *const name[IMG_NS_NTYPES] = {"user", "mnt", "pid",	 "net",
							"uts",	"ipc", "cgroup", "time"};

	return type >= 0 && type < IMG_NS_NTYPES ? name[type] : "?";
}

const char *img_shm_kind_name(uint32_t kind)
{
	return kind < IMG_SHM_NKINDS ? shm_kind_names[kind] : "?";
}

struct shm_obj *img_find_shm(const struct image *im, uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < im->nshms; i++)
		if (im->shms[i].d.dev == dev && im->shms[i].d.ino == ino)
			return &im->shms[i];
	return NULL;
}

struct region *img_find_region(const struct image *im, uint64_t addr)
{
	size_t lo = 0, hi = im->nregions;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (im->regions[mid].d.end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < im->nregions && im->regions[lo].d.start <= addr)
		return &im->regions[lo];
	return NULL;
}

/* Large, so that what a program touches first (stacks, libraries' data,
 * a small heap) comes before it; anonymous and private, as a userfaultfd
 * fills in MISSING mode; no advice that touches pages as it is given
 * (mlock) or that a userfaultfd refuses. */
#define LAZY_LATE_MIN (16ull << 20)

int img_lazy_late(const struct img_region *d)
{
	const uint32_t ok = IMG_RGN_NORESERVE | IMG_RGN_DONTDUMP | IMG_RGN_SEQREAD |
			    IMG_RGN_RANDREAD | IMG_RGN_HUGEPAGE | IMG_RGN_NOHUGEPAGE;

	return (d->kind == IMG_RGN_ANON || d->kind == IMG_RGN_HEAP) && !(d->flags & ~ok) &&
	       (d->prot & (PROT_WRITE | PROT_EXEC)) == PROT_WRITE && d->end - d->start >= LAZY_LATE_MIN;
}

int img_crc_bad(uint32_t got, uint32_t want)
{
	/* A fuzzing build (libFuzzer's convention) accepts any checksum, so
	 * that the fuzzer reaches the parsing behind them instead of stopping
	 * at the first CRC; nothing else changes. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	(void)got;
	(void)want;
	return 0;
#else
	return got != want;
#endif
}

/* ---- PARENT (incr/ reads and writes the rest of an incremental image) */

void run_list_free(struct run_list *l)
{
	free(l->runs);
	free(l->h);
	memset(l, 0, sizeof(*l));
}

static int parse_parent(struct image *im, const void *buf, uint64_t len)
{
	struct parent *p;

	if (im->parent) {
		err_set("second PARENT record");
		return -1;
	}
	/* Incremental images are of one process (HASHES and REUSE name it,
	 * to extend to trees one day). */
	if (im->hdr.nprocs != 1) {
		err_set("PARENT record in an image of %u processes", im->hdr.nprocs);
		return -1;
	}
	if (len < sizeof(p->d)) {
		err_set("PARENT record: too short");
		return -1;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		err_set("out of memory");
		return -1;
	}
	memcpy(&p->d, buf, sizeof(p->d));
	im->parent = p;
	if (p->d.path_len != len - sizeof(p->d) || p->d.path_len == 0 ||
	    p->d.path_len >= PATH_MAX || p->d.flags || p->d.depth == 0 ||
	    p->d.depth > INCR_MAX_DEPTH) {
		err_set("PARENT record: bad path length, depth or flags");
		return -1;
	}
	p->path = malloc(p->d.path_len + 1);
	if (!p->path) {
		err_set("out of memory");
		return -1;
	}
	memcpy(p->path, (const char *)buf + sizeof(p->d), p->d.path_len);
	p->path[p->d.path_len] = 0;
	if (strlen(p->path) != p->d.path_len) {
		err_set("PARENT record: embedded NUL in the path");
		return -1;
	}
	return 0;
}

static int parse_track(struct image *im, const void *buf, uint64_t len)
{
	struct img_track t;

	if (im->track) {
		err_set("second TRACK record");
		return -1;
	}
	if (len != sizeof(t)) {
		err_set("TRACK record: bad length");
		return -1;
	}
	memcpy(&t, buf, sizeof(t));
	if (t.fd < -1 || t.how >= IMG_TRACK_NHOW) {
		err_set("TRACK record: bad fd %d or way %u", t.fd, t.how);
		return -1;
	}
	im->track = malloc(sizeof(t));
	if (!im->track) {
		err_set("out of memory");
		return -1;
	}
	*im->track = t;
	return 0;
}

void img_parent_free(struct parent *p)
{
	if (!p)
		return;
	free(p->path);
	free(p->chain);
	if (p->reuse_runs)
		run_list_free(p->reuse_runs);
	free(p->reuse_runs);
	free(p);
}

void image_free(struct image *im)
{
	free(im->exe);
	free(im->cwd);
	free(im->cmdline);
	free(im->auxv);
	for (size_t i = 0; i < im->nthreads; i++)
		free(im->threads[i].xstate);
	free(im->threads);
	for (size_t i = 0; i < im->nsigq; i++)
		free(im->sigq[i].info);
	free(im->sigq);
	free(im->ptimers);
	for (size_t i = 0; i < im->nregions; i++)
		free(im->regions[i].path);
	free(im->regions);
	for (size_t i = 0; i < im->nfiles; i++) {
		free(im->files[i].path);
		free(im->files[i].extra);
	}
	free(im->files);
	for (size_t i = 0; i < im->nshms; i++)
		free(im->shms[i].name);
	free(im->shms);
	for (size_t i = 0; i < im->nipcs; i++)
		free(im->ipcs[i].data);
	free(im->ipcs);
	if (im->ns) {
		free(im->ns->uid_map);
		free(im->ns->gid_map);
		free(im->ns->cgroup);
		free(im->ns->timens);
		free(im->ns->pids);
		img_mounts_free(im->ns);
		free(im->ns);
	}
	img_parent_free(im->parent);
	img_attrs_free(im->attrs);
	free(im->cpu);
	free(im->track);
	img_live_free(im->live);
	memset(im, 0, sizeof(*im));
}

/* ---- writing ---------------------------------------------------------- */

/* Bytes given to one writev at most.  A write into the page cache is
 * copied into folios as large as the write (ext4 and others, Linux 6.x),
 * and on a virtual machine whose host backs guest memory lazily the
 * large ones come from memory the host has not backed yet (the free
 * blocks the guest reported to it), where small ones are found among
 * the pages it has backed, while there are some.  Here 1 GiB written
 * 4 MiB at a time took 0.4-2.6 s, 1 MiB at a time 0.20-0.73 s, 256 KiB
 * 0.19-0.24 s, 128 KiB 0.23-0.25 s; and once a few GiB had been written,
 * 15 MiB into a new file took 52-68 ms in 1 MiB writes, 3.4-79 ms in
 * 256 KiB ones and 3.4-4.2 ms in 128 KiB ones.
 * So an image's first 64 MiB (all of an incremental one, most often)
 * goes 128 KiB at a time, the rest 256 KiB. */
#define W_SMALL (128u << 10)
#define W_LARGE (256u << 10)
#define W_SMALL_UPTO (64ull << 20)

/* writev at most room bytes of v[0..n). */
static ssize_t writev_chunk(int fd, const struct iovec *v, int n, size_t room)
{
	struct iovec c[8];
	int k = 0;

	while (k < n && room > 0) {
		c[k] = v[k];
		if (c[k].iov_len > room)
			c[k].iov_len = room;
		room -= c[k].iov_len;
		k++;
	}
	return writev(fd, c, k);
}

static int w_out(struct img_writer *w, const struct iovec *iov, int n)
{
	struct iovec v[8];
	size_t total = 0;
	uint64_t at;

	if (n > 8) {
		errno = EINVAL;
		err_sys("image: write");
		return -1;
	}
	memcpy(v, iov, n * sizeof(*v));
	for (int i = 0; i < n; i++)
		total += v[i].iov_len;
	at = w->off;
	w->off += total;
	while (total > 0) {
		ssize_t k;

		if (w->cancel && *w->cancel) {
			err_set("interrupted by a signal while writing the image at offset %llu",
				(unsigned long long)w->off);
			return -1;
		}
		k = writev_chunk(w->fd, v, n, at < W_SMALL_UPTO ? W_SMALL : W_LARGE);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			err_sys("cannot write image at offset %llu", (unsigned long long)w->off);
			return -1;
		}
		total -= k;
		at += k;
		while (n > 0 && (size_t)k >= v[0].iov_len) {
			k -= v[0].iov_len;
			memmove(v, v + 1, --n * sizeof(*v));
		}
		if (n > 0) {
			v[0].iov_base = (char *)v[0].iov_base + k;
			v[0].iov_len -= k;
		}
	}
	return 0;
}

void img_header_init(struct img_header *h)
{
	struct utsname u;

	memset(h, 0, sizeof(*h));
	memcpy(h->magic, IMG_MAGIC, 8);
	h->version = IMG_VERSION;
	h->size = sizeof(*h);
	h->arch = IMG_ARCH_X86_64;
	h->page_size = sysconf(_SC_PAGESIZE);
	h->nprocs = 1;
	h->ctime = time(NULL);
	if (uname(&u) == 0) {
		snprintf(h->kernel, sizeof(h->kernel), "%s", u.release);
		snprintf(h->host, sizeof(h->host), "%s", u.nodename);
	}
}

int img_write_header(struct img_writer *w, struct img_header *h)
{
	struct iovec v = {h, sizeof(*h)};

	h->crc = 0;
	h->crc = img_crc(0, h, sizeof(*h));
	return w_out(w, &v, 1);
}

int img_write_rec(struct img_writer *w, uint32_t type, const struct iovec *iov, int iovcnt)
{
	struct img_rec rec = {.type = type};
	struct iovec v[8];
	uint32_t crc;

	if (iovcnt > 7) {
		err_set("image: record of type %u has too many parts", type);
		return -1;
	}
	for (int i = 0; i < iovcnt; i++)
		rec.len += iov[i].iov_len;
	crc = img_crc(0, &rec, sizeof(rec));
	for (int i = 0; i < iovcnt; i++)
		crc = img_crc(crc, iov[i].iov_base, iov[i].iov_len);
	rec.crc = crc;
	v[0] = (struct iovec){&rec, sizeof(rec)};
	if (iovcnt)
		memcpy(v + 1, iov, iovcnt * sizeof(*iov));
	w->nrec++;
	return w_out(w, v, iovcnt + 1);
}

int img_write_rec_tail(struct img_writer *w, uint32_t type, const void *d, size_t dlen,
		       const void *tail, size_t tail_len)
{
	struct iovec v[2] = {{(void *)d, dlen}, {(void *)tail, tail_len}};

	return img_write_rec(w, type, v, 2);
}

int img_write_meta(struct img_writer *w, const struct image *im)
{
	const struct img_proc *p = &im->proc;
	struct iovec v[5];

	v[0] = (struct iovec){(void *)p, sizeof(*p)};
	v[1] = (struct iovec){im->exe, p->exe_len};
	v[2] = (struct iovec){im->cwd, p->cwd_len};
	v[3] = (struct iovec){im->cmdline, p->cmdline_len};
	v[4] = (struct iovec){im->auxv, p->auxv_len};
	if (img_write_rec(w, IMG_REC_PROC, v, 5))
		return -1;
	if (im->attrs && img_write_attrs(w, im->attrs))
		return -1;
	if (im->cpu && img_write_rec_tail(w, IMG_REC_CPU, im->cpu, sizeof(*im->cpu), NULL, 0))
		return -1;
	v[0] = (struct iovec){(void *)im->sigacts, sizeof(im->sigacts)};
	if (img_write_rec(w, IMG_REC_SIGACTS, v, 1))
		return -1;
	for (const struct thread *t = im->threads; t < im->threads + im->nthreads; t++)
		if (img_write_rec_tail(w, IMG_REC_THREAD, &t->d, sizeof(t->d), t->xstate,
				       t->d.xstate_len))
			return -1;
	for (const struct sigqueue *q = im->sigq; q < im->sigq + im->nsigq; q++)
		if (img_write_rec_tail(w, IMG_REC_SIGQUEUE, &q->d, sizeof(q->d), q->info,
				       (size_t)q->d.count * IMG_SIGINFO_SIZE))
			return -1;
	if (img_write_rec_tail(w, IMG_REC_TIMERS, &im->timers, sizeof(im->timers), im->ptimers,
			       (size_t)im->timers.nposix * sizeof(struct img_ptimer)))
		return -1;
	for (const struct region *r = im->regions; r < im->regions + im->nregions; r++)
		if (img_write_rec_tail(w, IMG_REC_REGION, &r->d, sizeof(r->d), r->path,
				       r->d.path_len))
			return -1;
	for (const struct fd_entry *f = im->files; f < im->files + im->nfiles; f++) {
		v[0] = (struct iovec){(void *)&f->d, sizeof(f->d)};
		v[1] = (struct iovec){f->path, f->d.path_len};
		v[2] = (struct iovec){f->extra, f->d.extra_len};
		if (img_write_rec(w, IMG_REC_FILE, v, 3))
			return -1;
	}
	for (const struct shm_obj *o = im->shms; o < im->shms + im->nshms; o++) {
		v[0] = (struct iovec){(void *)&o->d, sizeof(o->d)};
		v[1] = (struct iovec){o->name, o->d.name_len};
		v[2] = (struct iovec){(void *)&o->tmpfs, sizeof(o->tmpfs)};
		if (img_write_rec(w, IMG_REC_SHM, v, o->d.kind == IMG_SHM_TMPFS ? 3 : 2))
			return -1;
	}
	for (const struct ipc_obj *o = im->ipcs; o < im->ipcs + im->nipcs; o++)
		if (img_write_rec_tail(w, IMG_REC_IPC, &o->d, sizeof(o->d), o->data,
				       o->d.data_len))
			return -1;
	if (im->ns) {
		v[0] = (struct iovec){(void *)&im->ns->d, sizeof(im->ns->d)};
		v[1] = (struct iovec){im->ns->uid_map, im->ns->d.uid_map_len};
		v[2] = (struct iovec){im->ns->gid_map, im->ns->d.gid_map_len};
		v[3] = (struct iovec){im->ns->cgroup, im->ns->d.cgroup_len};
		v[4] = (struct iovec){im->ns->pids, im->ns->d.npids * sizeof(int32_t)};
		if (img_write_rec(w, IMG_REC_NS, v, 5))
			return -1;
		v[0] = (struct iovec){im->ns->timens, sizeof(*im->ns->timens)};
		if (im->ns->timens && img_write_rec(w, IMG_REC_TIMENS, v, 1))
			return -1;
		if (im->ns->have_mounts && img_write_mounts(w, im->ns))
			return -1;
	}
	v[0] = (struct iovec){im->track, sizeof(*im->track)};
	if (im->track && img_write_rec(w, IMG_REC_TRACK, v, 1))
		return -1;
	if (im->live && img_write_live(w, im->live))
		return -1;
	if (im->parent && img_write_rec_tail(w, IMG_REC_PARENT, &im->parent->d,
					     sizeof(im->parent->d), im->parent->path,
					     im->parent->d.path_len))
		return -1;
	return img_write_rec(w, IMG_REC_DATA, NULL, 0);
}

static const char zero_pad[65536];

/* The descriptor that starts a PAGES or SHMDATA record. */
static size_t desc_size(uint32_t type)
{
	return type == IMG_REC_SHMDATA ? sizeof(struct img_shmdata) : sizeof(struct img_pages);
}

struct img_run *img_runs(uint32_t type, void *payload)
{
	return (struct img_run *)((char *)payload + desc_size(type));
}

/* Bytes of padding after a PAGES or SHMDATA record's runs so that its data
 * starts at a page-aligned stream offset; rec_off is where the record
 * header starts. */
static uint64_t pages_pad(uint32_t type, uint64_t rec_off, uint32_t nruns, uint32_t page_size)
{
	uint64_t end = rec_off + sizeof(struct img_rec) + desc_size(type) +
		       (uint64_t)nruns * sizeof(struct img_run);
	return (page_size - end % page_size) % page_size;
}

static int write_data_rec(struct img_writer *w, uint32_t type, uint64_t shm,
			  const struct img_run *runs, uint32_t nruns, const void *data,
			  uint64_t npages, uint32_t data_crc)
{
	uint32_t ps = sysconf(_SC_PAGESIZE);
	uint64_t pad = pages_pad(type, w->off, nruns, ps);
	struct img_shmdata d = {.p = {.nruns = nruns, .npages = npages}, .shm = shm};
	struct img_rec rec = {.type = type};
	size_t dlen = desc_size(type);
	struct iovec v[5];
	uint32_t crc;

	d.p.data_crc = data_crc;
	rec.len = dlen + (uint64_t)nruns * sizeof(*runs) + pad + npages * ps;
	crc = img_crc(0, &rec, sizeof(rec));
	crc = img_crc(crc, &d, dlen);
	crc = img_crc(crc, runs, (size_t)nruns * sizeof(*runs));
	rec.crc = img_crc(crc, zero_pad, pad);
	v[0] = (struct iovec){&rec, sizeof(rec)};
	v[1] = (struct iovec){&d, dlen};
	v[2] = (struct iovec){(void *)runs, (size_t)nruns * sizeof(*runs)};
	v[3] = (struct iovec){(void *)zero_pad, pad};
	v[4] = (struct iovec){(void *)data, npages * ps};
	w->nrec++;
	w->npages += npages;
	/* No data: the caller writes it (img_write_pages_head). */
	return w_out(w, v, data ? 5 : 4);
}

int img_write_pages(struct img_writer *w, const struct img_run *runs, uint32_t nruns,
		    const void *data, uint64_t npages)
{
	return img_write_pages_crc(w, runs, nruns, data, npages,
				   img_crc(0, data, npages * sysconf(_SC_PAGESIZE)));
}

int img_write_pages_crc(struct img_writer *w, const struct img_run *runs, uint32_t nruns,
			const void *data, uint64_t npages, uint32_t data_crc)
{
	return write_data_rec(w, IMG_REC_PAGES, 0, runs, nruns, data, npages, data_crc);
}

int img_write_pages_head(struct img_writer *w, const struct img_run *runs, uint32_t nruns,
			 uint64_t npages)
{
	if (write_data_rec(w, IMG_REC_PAGES, 0, runs, nruns, NULL, npages, 0))
		return -1;
	w->off += npages * sysconf(_SC_PAGESIZE);
	return 0;
}

int img_write_shmdata(struct img_writer *w, uint64_t shm, const struct img_run *runs,
		      uint32_t nruns, const void *data, uint64_t npages)
{
	return write_data_rec(w, IMG_REC_SHMDATA, shm, runs, nruns, data, npages,
			      img_crc(0, data, npages * sysconf(_SC_PAGESIZE)));
}

int img_write_end(struct img_writer *w)
{
	struct img_end e = {.records = w->nrec, .pages = w->npages, .bytes = w->off};
	struct iovec v = {&e, sizeof(e)};

	return img_write_rec(w, IMG_REC_END, &v, 1);
}

/* ---- reading ---------------------------------------------------------- */

static int r_in(struct img_reader *r, void *buf, size_t len, const char *what)
{
	ssize_t n = read_full(r->fd, buf, len);

	if (n > 0 && r->tee && write_all(r->tee - 1, buf, n)) {
		err_sys("cannot keep a copy of the image to verify it");
		return -1;
	}
	if (n < 0) {
		err_sys("cannot read %s at offset %llu", what, (unsigned long long)r->off);
		return -1;
	}
	if ((size_t)n < len) {
		err_set("image truncated: %s at offset %llu cut short (%zd of %zu bytes)", what,
			(unsigned long long)r->off, n, len);
		return -1;
	}
	r->off += len;
	return 0;
}

int img_read_header(struct img_reader *r, struct img_header *h, const void *prefix,
		    size_t prefix_len)
{
	uint32_t crc;

	if (prefix_len > sizeof(*h))
		prefix_len = sizeof(*h);
	memcpy(h, prefix, prefix_len);
	r->off = prefix_len;
	if (r_in(r, (char *)h + prefix_len, sizeof(*h) - prefix_len, "header"))
		return -1;
	if (memcmp(h->magic, IMG_MAGIC, 8)) {
		err_set("not a ckpt image (bad magic)");
		return -1;
	}
	crc = h->crc;
	h->crc = 0;
	if (img_crc_bad(img_crc(0, h, sizeof(*h)), crc)) {
		err_set("image header: checksum mismatch");
		return -1;
	}
	h->crc = crc;
	if (h->version != IMG_VERSION) {
		err_set("image format version %u; this ckpt reads version %u", h->version,
			IMG_VERSION);
		return -1;
	}
	if (h->size != sizeof(*h) || (h->flags & ~IMG_HDR_FLAGS)) {
		err_set("image header: bad size %u or flags %#x", h->size, h->flags);
		return -1;
	}
	if (h->arch != IMG_ARCH_X86_64) {
		err_set("image is for ELF machine %u, this is x86-64", h->arch);
		return -1;
	}
	if (h->page_size != (uint32_t)sysconf(_SC_PAGESIZE)) {
		err_set("image page size %u differs from this machine's %ld", h->page_size,
			sysconf(_SC_PAGESIZE));
		return -1;
	}
	if (h->nprocs < 1 || h->nprocs > IMG_MAX_PROCS) {
		err_set("image header: %u processes (at most %d)", h->nprocs, IMG_MAX_PROCS);
		return -1;
	}
	h->kernel[sizeof(h->kernel) - 1] = 0;
	h->host[sizeof(h->host) - 1] = 0;
	r->page_size = h->page_size;
	r->hdr_flags = h->flags;
	return 0;
}

int img_read_rec_hdr(struct img_reader *r, struct img_rec *rec)
{
	uint64_t start = r->off;

	if (r_in(r, rec, sizeof(*rec), "record header"))
		return -1;
	if (rec->type < IMG_REC_PROC || rec->type >= IMG_REC_NTYPES) {
		err_set("record at offset %llu: unknown type %u", (unsigned long long)start,
			rec->type);
		return -1;
	}
	return 0;
}

/* A PAGES or SHMDATA record after its header: descriptor, runs, padding. */
static int read_data_desc(struct img_reader *r, struct img_rec *rec, uint32_t crc,
			  void **payload)
{
	uint64_t start = r->off - sizeof(*rec);
	const char *name = rec->type == IMG_REC_PAGES ? "PAGES" : "SHMDATA";
	size_t dlen = desc_size(rec->type), n;
	struct img_shmdata d;
	struct img_pages p;
	uint64_t pad, runs_len, sum = 0;
	struct img_run *run;
	char *buf;

	if (rec->len < dlen) {
		err_set("%s record at offset %llu: length %llu too short", name,
			(unsigned long long)start, (unsigned long long)rec->len);
		return -1;
	}
	if (r_in(r, &d, dlen, name))
		return -1;
	p = d.p;
	if (p.nruns == 0 || p.nruns > IMG_MAX_RUNS || p.npages == 0 || p.npages > (1ull << 40)) {
		err_set("%s record at offset %llu: bad counts (%u runs, %llu pages)", name,
			(unsigned long long)start, p.nruns, (unsigned long long)p.npages);
		return -1;
	}
	runs_len = (uint64_t)p.nruns * sizeof(struct img_run);
	pad = pages_pad(rec->type, start, p.nruns, r->page_size);
	if (rec->len != dlen + runs_len + pad + p.npages * r->page_size) {
		err_set("%s record at offset %llu: length %llu does not match its %llu pages",
			name, (unsigned long long)start, (unsigned long long)rec->len,
			(unsigned long long)p.npages);
		return -1;
	}
	n = dlen + runs_len + pad;
	buf = malloc(n);
	if (!buf) {
		err_set("out of memory");
		return -1;
	}
	memcpy(buf, &d, dlen);
	if (r_in(r, buf + dlen, n - dlen, name)) {
		free(buf);
		return -1;
	}
	if (img_crc_bad(img_crc(crc, buf, n), rec->crc)) {
		err_set("%s record at offset %llu: checksum mismatch", name,
			(unsigned long long)start);
		free(buf);
		return -1;
	}
	run = img_runs(rec->type, buf);
	for (uint32_t i = 0; i < p.nruns; i++) {
		if (run[i].npages == 0 || run[i].npages > p.npages || run[i].addr % r->page_size) {
			err_set("%s record at offset %llu: bad run %u", name,
				(unsigned long long)start, i);
			free(buf);
			return -1;
		}
		sum += run[i].npages;
	}
	if (sum != p.npages) {
		err_set("%s record at offset %llu: runs hold %llu pages, not %llu", name,
			(unsigned long long)start, (unsigned long long)sum,
			(unsigned long long)p.npages);
		free(buf);
		return -1;
	}
	r->nrec++;
	*payload = buf;
	return 0;
}

int img_read_rec_body(struct img_reader *r, struct img_rec *rec, void **payload)
{
	uint64_t start = r->off - sizeof(*rec);
	struct img_rec h = *rec;
	uint32_t crc;
	void *buf;
	size_t n;

	*payload = NULL;
	h.crc = 0;
	crc = img_crc(0, &h, sizeof(h));
	if (rec->type == IMG_REC_PAGES || rec->type == IMG_REC_SHMDATA)
		return read_data_desc(r, rec, crc, payload);
	if (rec->len > IMG_MAX_META) {
		err_set("record of type %u at offset %llu: length %llu exceeds the limit",
			rec->type, (unsigned long long)start, (unsigned long long)rec->len);
		return -1;
	}
	n = rec->len;
	buf = malloc(n ? n : 1);
	if (!buf) {
		err_set("out of memory");
		return -1;
	}
	if (r_in(r, buf, n, "record")) {
		free(buf);
		return -1;
	}
	if (img_crc_bad(img_crc(crc, buf, n), rec->crc)) {
		err_set("record of type %u at offset %llu: checksum mismatch", rec->type,
			(unsigned long long)start);
		free(buf);
		return -1;
	}
	r->nrec++;
	*payload = buf;
	return 0;
}

int img_read_rec(struct img_reader *r, struct img_rec *rec, void **payload)
{
	*payload = NULL;
	if (img_read_rec_hdr(r, rec))
		return -1;
	return img_read_rec_body(r, rec, payload);
}

int img_read_each(struct img_reader *r, img_rec_fn *each, void *arg)
{
	for (;;) {
		struct img_rec rec;
		void *buf;
		int rc;

		if (img_read_rec(r, &rec, &buf))
			return -1;
		rc = each(arg, &rec, buf);
		free(buf);
		if (rc)
			return rc < 0 ? -1 : 0;
	}
}

int img_read_data(struct img_reader *r, const struct img_pages *p, void *buf, size_t len,
		  uint32_t *crc)
{
	(void)p;
	if (r_in(r, buf, len, "page data"))
		return -1;
	*crc = img_crc(*crc, buf, len);
	return 0;
}

int img_skip_data(struct img_reader *r, const struct img_pages *p, uint32_t *crc)
{
	static char buf[1 << 20];
	uint64_t left = p->npages * r->page_size;

	*crc = 0;
	while (left > 0) {
		size_t n = left < sizeof(buf) ? left : sizeof(buf);
		if (img_read_data(r, p, buf, n, crc))
			return -1;
		left -= n;
	}
	return img_data_end(r, p, *crc, NULL);
}

int img_pass_data(struct img_reader *r, const struct img_pages *p)
{
	uint64_t len = p->npages * r->page_size;
	struct stat st;
	uint32_t crc;

	/* Past the end of a cut file, the next record's read says so. */
	if (r->tee || len > INT64_MAX || fstat(r->fd, &st) || !S_ISREG(st.st_mode) ||
	    lseek(r->fd, (off_t)len, SEEK_CUR) < 0)
		return img_skip_data(r, p, &crc);
	r->off += len;
	r->npages += p->npages;
	return 0;
}

int img_data_end(struct img_reader *r, const struct img_pages *p, uint32_t crc, const char *who)
{
	r->npages += p->npages;
	if ((r->hdr_flags & IMG_HDR_NO_DATA_CRC) || !img_crc_bad(crc, p->data_crc))
		return 0;
	if (who)
		err_set("%s: page data before offset %llu: checksum mismatch", who,
			(unsigned long long)r->off);
	else
		err_set("page data before offset %llu: checksum mismatch",
			(unsigned long long)r->off);
	return -1;
}

int img_read_chunks(struct img_reader *r, const struct img_pages *p, const struct img_run *run,
		    unsigned char **buf, uint64_t max, img_chunk_fn *each, void *arg,
		    const char *who)
{
	uint64_t ps = r->page_size;
	uint32_t crc = 0;

	for (uint32_t i = 0; i < p->nruns; i++)
		for (uint64_t k = 0; k < run[i].npages; k += max) {
			uint64_t n = run[i].npages - k < max ? run[i].npages - k : max;
			uint32_t c = 0;

			if (img_read_data(r, p, *buf, n * ps, &c))
				return -1;
			crc = img_crc_combine(crc, c, n * ps);
			if (each(arg, run[i].addr + k * ps, n, c))
				return -1;
		}
	return img_data_end(r, p, crc, who);
}

int img_check_end(struct img_reader *r, const struct img_rec *rec, const struct img_end *e)
{
	uint64_t end_off = r->off - sizeof(*rec) - sizeof(*e);

	if (rec->len != sizeof(*e)) {
		err_set("END record: bad length %llu", (unsigned long long)rec->len);
		return -1;
	}
	if (e->records != r->nrec - 1 || e->pages != r->npages || e->bytes != end_off) {
		err_set("END record: totals (%llu records, %llu pages, %llu bytes) differ from "
			"the stream (%llu, %llu, %llu)",
			(unsigned long long)e->records, (unsigned long long)e->pages,
			(unsigned long long)e->bytes, (unsigned long long)(r->nrec - 1),
			(unsigned long long)r->npages, (unsigned long long)end_off);
		return -1;
	}
	return 0;
}

/* Take a length-prefixed string out of a record's tail into a NUL-terminated
 * copy; no embedded NULs unless allow_nul. */
static char *take_str(const char **p, uint32_t len, int allow_nul, const char *what)
{
	char *s = malloc(len + 1);

	if (!s) {
		err_set("out of memory");
		return NULL;
	}
	memcpy(s, *p, len);
	s[len] = 0;
	*p += len;
	if (!allow_nul && strlen(s) != len) {
		err_set("%s: embedded NUL", what);
		free(s);
		return NULL;
	}
	return s;
}

static int parse_proc(struct image *im, const char *buf, uint64_t len)
{
	struct img_proc *p = &im->proc;
	const char *t = buf + sizeof(*p);

	if (len < sizeof(*p)) {
		err_set("PROC record: too short");
		return -1;
	}
	memcpy(p, buf, sizeof(*p));
	if ((uint64_t)p->exe_len + p->cwd_len + p->cmdline_len + p->auxv_len !=
	    len - sizeof(*p)) {
		err_set("PROC record: string lengths do not add up to the record");
		return -1;
	}
	if (p->exe_len >= PATH_MAX || p->cwd_len >= PATH_MAX || p->auxv_len % 16 ||
	    p->auxv_len > 8192 || p->nthreads > IMG_MAX_THREADS || p->nregions > (1u << 20) ||
	    p->nfiles > (1u << 20) || p->pid <= 0 || (p->flags & ~IMG_PROC_FLAGS) ||
	    p->exit_signal < 0 || p->exit_signal > IMG_NSIG) {
		err_set("PROC record: field out of range (pid %d, threads %u, regions %u, files %u, "
			"flags %#x, exit signal %d)",
			p->pid, p->nthreads, p->nregions, p->nfiles, p->flags, p->exit_signal);
		return -1;
	}
	/* A zombie is its pid and exit status alone; a live process has a
	 * main thread at least. */
	if ((p->flags & IMG_PROC_ZOMBIE) ? p->nthreads || p->nregions || p->nfiles
					 : p->nthreads < 1) {
		err_set("PROC record: pid %d: %u threads, %u regions, %u files for a %s process",
			p->pid, p->nthreads, p->nregions, p->nfiles,
			(p->flags & IMG_PROC_ZOMBIE) ? "zombie" : "live");
		return -1;
	}
	p->comm[15] = 0;
	if (!(im->exe = take_str(&t, p->exe_len, 0, "PROC exe")) ||
	    !(im->cwd = take_str(&t, p->cwd_len, 0, "PROC cwd")) ||
	    !(im->cmdline = take_str(&t, p->cmdline_len, 1, "PROC cmdline")))
		return -1;
	im->auxv = malloc(p->auxv_len + 16);
	if (!im->auxv) {
		err_set("out of memory");
		return -1;
	}
	memcpy(im->auxv, t, p->auxv_len);
	im->regions = calloc(p->nregions + 1, sizeof(*im->regions));
	im->files = calloc(p->nfiles + 1, sizeof(*im->files));
	im->threads = calloc(p->nthreads + 1, sizeof(*im->threads));
	if (!im->regions || !im->files || !im->threads) {
		err_set("out of memory");
		return -1;
	}
	return 0;
}

static int parse_thread(struct image *im, const char *buf, uint64_t len)
{
	struct thread *th = &im->threads[im->nthreads];
	struct img_thread *t = &th->d;

	if (len < sizeof(*t)) {
		err_set("THREAD record %zu: too short", im->nthreads);
		return -1;
	}
	memcpy(t, buf, sizeof(*t));
	if (im->nthreads == 0 ? t->tid != im->proc.pid : t->tid == im->proc.pid) {
		err_set("THREAD record %zu: tid %d; the first thread, and only it, is the process "
			"%d",
			im->nthreads, t->tid, im->proc.pid);
		return -1;
	}
	if (t->xstate_len != len - sizeof(*t) || t->xstate_len < 576 || t->xstate_len > 65536) {
		err_set("THREAD record: bad xstate length %u", t->xstate_len);
		return -1;
	}
	if (t->rseq_addr && (t->rseq_len < 32 || t->rseq_len > 4096)) {
		err_set("THREAD record: bad rseq length %u", t->rseq_len);
		return -1;
	}
	t->comm[15] = 0;
	th->xstate = malloc(t->xstate_len);
	if (!th->xstate) {
		err_set("out of memory");
		return -1;
	}
	memcpy(th->xstate, buf + sizeof(*t), t->xstate_len);
	im->nthreads++;
	return 0;
}

/* The next record of a list of at most max (SHM, IPC: name): room for it
 * after the n of *arr (each size bytes, that begin with the record's
 * fixed part d, dlen bytes), zeroed, d copied from buf.  NULL (err_set)
 * if the list is full or the record too short. */
static void *take_listed(void *arr, size_t n, size_t size, size_t max, const char *name,
			 const char *buf, uint64_t len, size_t dlen)
{
	void *o;

	if (n >= max) {
		err_set("more than %zu %s records", max, name);
		return NULL;
	}
	if (!(o = append_zeroed(arr, n, size)))
		return NULL;
	if (len < dlen) {
		err_set("%s record %zu: too short", name, n);
		return NULL;
	}
	memcpy(o, buf, dlen);
	return o;
}

static int parse_sigqueue(struct image *im, const char *buf, uint64_t len)
{
	struct sigqueue *q = append_zeroed(&im->sigq, im->nsigq, sizeof(*q));
	int known = 0;

	if (!q)
		return -1;
	if (len < sizeof(q->d)) {
		err_set("SIGQUEUE record: too short");
		return -1;
	}
	memcpy(&q->d, buf, sizeof(q->d));
	if (q->d.count == 0 || q->d.count > IMG_MAX_SIGQUEUE ||
	    len != sizeof(q->d) + (uint64_t)q->d.count * IMG_SIGINFO_SIZE) {
		err_set("SIGQUEUE record: bad count %u", q->d.count);
		return -1;
	}
	for (size_t i = 0; i < im->nthreads; i++)
		known |= im->threads[i].d.tid == q->d.tid;
	if (q->d.tid != 0 && !known) {
		err_set("SIGQUEUE record: tid %d is not a thread of the image", q->d.tid);
		return -1;
	}
	q->info = malloc((size_t)q->d.count * IMG_SIGINFO_SIZE);
	if (!q->info) {
		err_set("out of memory");
		return -1;
	}
	memcpy(q->info, buf + sizeof(q->d), (size_t)q->d.count * IMG_SIGINFO_SIZE);
	for (uint32_t i = 0; i < q->d.count; i++) {
		int32_t signo;
		memcpy(&signo, q->info + (size_t)i * IMG_SIGINFO_SIZE, 4);
		if (signo < 1 || signo > IMG_NSIG) {
			err_set("SIGQUEUE record: bad signal %d", signo);
			free(q->info);
			return -1;
		}
	}
	im->nsigq++;
	return 0;
}

static int parse_timers(struct image *im, const char *buf, uint64_t len)
{
	struct img_timers *t = &im->timers;

	if (len < sizeof(*t)) {
		err_set("TIMERS record: too short");
		return -1;
	}
	memcpy(t, buf, sizeof(*t));
	if (t->nposix > IMG_MAX_TIMERS ||
	    len != sizeof(*t) + (uint64_t)t->nposix * sizeof(struct img_ptimer)) {
		err_set("TIMERS record: bad count %u", t->nposix);
		return -1;
	}
	for (int i = 0; i < 3; i++)
		if (t->it[i].value.sec < 0 || t->it[i].value.nsec < 0 ||
		    t->it[i].value.nsec >= 1000000000 || t->it[i].interval.sec < 0 ||
		    t->it[i].interval.nsec < 0 || t->it[i].interval.nsec >= 1000000000) {
			err_set("TIMERS record: bad interval timer %d", i);
			return -1;
		}
	im->ptimers = malloc((size_t)t->nposix * sizeof(struct img_ptimer) + 1);
	if (!im->ptimers) {
		err_set("out of memory");
		return -1;
	}
	memcpy(im->ptimers, buf + sizeof(*t), (size_t)t->nposix * sizeof(struct img_ptimer));
	for (uint32_t i = 0; i < t->nposix; i++) {
		const struct img_ptimer *p = &im->ptimers[i];
		int known = p->notify != 4; /* SIGEV_THREAD_ID names a thread */

		for (size_t k = 0; k < im->nthreads && !known; k++)
			known = im->threads[k].d.tid == p->tid;
		if (p->id < 0 || (p->notify != 0 && p->notify != 1 && p->notify != 4) ||
		    p->signo < 0 || p->signo > IMG_NSIG || !known || p->left.sec < 0 ||
		    p->left.nsec < 0 || p->left.nsec >= 1000000000 || p->interval.sec < 0 ||
		    p->interval.nsec < 0 || p->interval.nsec >= 1000000000) {
			err_set("TIMERS record: bad POSIX timer %u (id %d)", i, p->id);
			return -1;
		}
	}
	return 0;
}

static int parse_region(struct image *im, const char *buf, uint64_t len)
{
	struct region *r = &im->regions[im->nregions];
	const char *t = buf + sizeof(r->d);
	uint64_t ps = im->hdr.page_size;

	if (len < sizeof(r->d)) {
		err_set("REGION record %zu: too short", im->nregions);
		return -1;
	}
	memcpy(&r->d, buf, sizeof(r->d));
	if (r->d.path_len != len - sizeof(r->d) || r->d.path_len >= PATH_MAX) {
		err_set("REGION record %zu: bad path length", im->nregions);
		return -1;
	}
	if (r->d.start >= r->d.end || r->d.start % ps || r->d.end % ps ||
	    r->d.end > (1ull << 56) || r->d.kind >= IMG_RGN_NKINDS || r->d.prot & ~7u ||
	    r->d.pgoff % ps || r->d.flags & ~IMG_RGN_FLAGS ||
	    (r->d.flags & IMG_RGN_HUGETLB ? !IMG_HSHIFT_OK(r->d.hshift) ||
						r->d.start % (1ull << r->d.hshift) ||
						r->d.end % (1ull << r->d.hshift)
					  : r->d.hshift != 0)) {
		err_set("REGION record %zu: bad range, kind, protection, flags or huge page size "
			"(%#llx-%#llx kind %u prot %#x flags %#x)",
			im->nregions, (unsigned long long)r->d.start, (unsigned long long)r->d.end,
			r->d.kind, r->d.prot, r->d.flags);
		return -1;
	}
	if (im->nregions && r->d.start < im->regions[im->nregions - 1].d.end) {
		err_set("REGION record %zu: %#llx overlaps or precedes the region before it",
			im->nregions, (unsigned long long)r->d.start);
		return -1;
	}
	if (!(r->path = take_str(&t, r->d.path_len, 0, "REGION path")))
		return -1;
	if ((r->d.kind == IMG_RGN_FILE || r->d.kind == IMG_RGN_SPECIAL) && !r->path[0]) {
		err_set("REGION record %zu: file or special region without a name", im->nregions);
		free(r->path);
		r->path = NULL;
		return -1;
	}
	/* An AIO ring: its nr is what its size holds (a 32-byte header, then
	 * 32-byte io_events), its head and tail are below it. */
	if (r->d.kind == IMG_RGN_AIO &&
	    (r->d.path_len || r->d.pgoff || r->d.mtime_sec || r->d.mtime_nsec ||
	     r->d.flags & (IMG_RGN_SHARED | IMG_RGN_GUARD | IMG_RGN_HUGETLB | IMG_RGN_GROWSDOWN) ||
	     r->d.fsize != (r->d.end - r->d.start) / 32 - 1 || r->d.dev >= r->d.fsize ||
	     r->d.ino >= r->d.fsize)) {
		err_set("REGION record %zu: AIO ring %#llx-%#llx with bad fields (nr %llu head "
			"%llu tail %llu flags %#x)",
			im->nregions, (unsigned long long)r->d.start, (unsigned long long)r->d.end,
			(unsigned long long)r->d.fsize, (unsigned long long)r->d.dev,
			(unsigned long long)r->d.ino, r->d.flags);
		free(r->path);
		r->path = NULL;
		return -1;
	}
	/* An io_uring ring: shared, no name, at one of its mmap offsets. */
	if (r->d.kind == IMG_RGN_URING &&
	    (r->d.path_len || !(r->d.flags & IMG_RGN_SHARED) ||
	     r->d.flags & (IMG_RGN_GUARD | IMG_RGN_HUGETLB | IMG_RGN_GROWSDOWN) ||
	     r->d.pgoff >= IMG_URING_OFF_SQES + (1ull << 26) ||
	     (r->d.pgoff & (IMG_URING_OFF_CQ_RING - 1)) + (r->d.end - r->d.start) > (1ull << 26))) {
		err_set("REGION record %zu: io_uring ring %#llx-%#llx with bad fields (offset %#llx "
			"flags %#x)",
			im->nregions, (unsigned long long)r->d.start, (unsigned long long)r->d.end,
			(unsigned long long)r->d.pgoff, r->d.flags);
		free(r->path);
		r->path = NULL;
		return -1;
	}
	im->nregions++;
	return 0;
}

static int parse_file(struct image *im, const char *buf, uint64_t len)
{
	struct fd_entry *f = &im->files[im->nfiles];
	const char *t = buf + sizeof(f->d);

	if (len < sizeof(f->d)) {
		err_set("FILE record %zu: too short", im->nfiles);
		return -1;
	}
	memcpy(&f->d, buf, sizeof(f->d));
	if ((uint64_t)f->d.path_len + f->d.extra_len != len - sizeof(f->d) ||
	    f->d.path_len >= PATH_MAX || f->d.fd <= -(1 << 20) || f->d.fd >= (1 << 20) ||
	    f->d.kind == 0 || f->d.kind >= IMG_FD_NKINDS) {
		err_set("FILE record %zu: bad fd, kind or length", im->nfiles);
		return -1;
	}
	for (size_t i = 0; i < im->nfiles; i++)
		if (im->files[i].d.fd == f->d.fd) {
			err_set("FILE record %zu: fd %d appears twice", im->nfiles, f->d.fd);
			return -1;
		}
	if (!(f->path = take_str(&t, f->d.path_len, 0, "FILE path")))
		return -1;
	f->extra = malloc(f->d.extra_len + 1);
	if (!f->extra) {
		err_set("out of memory");
		free(f->path);
		f->path = NULL;
		return -1;
	}
	memcpy(f->extra, t, f->d.extra_len);
	im->nfiles++;
	return 0;
}

/* A tmpfs file's path, which a restore makes a file at: absolute, no
 * empty, "." or ".." component, not a directory's. */
int img_tmpfs_path_ok(const char *path)
{
	const char *c = path;

	if (path[0] != '/' || path[strlen(path) - 1] == '/')
		return 0;
	while (*c == '/') {
		size_t l = strcspn(++c, "/");
		if (!l || (l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		c += l;
	}
	return 1;
}

static int parse_shm(struct image *im, const char *buf, uint64_t len)
{
	struct shm_obj *o = take_listed(&im->shms, im->nshms, sizeof(*o), IMG_MAX_SHMS, "SHM",
					buf, len, sizeof(o->d));
	const char *t;
	size_t tail;

	if (!o)
		return -1;
	t = buf + sizeof(o->d);
	tail = o->d.kind == IMG_SHM_TMPFS ? sizeof(o->tmpfs) : 0;
	if (len - sizeof(o->d) < tail || o->d.name_len != len - sizeof(o->d) - tail ||
	    o->d.name_len >= PATH_MAX ||
	    o->d.kind == 0 || o->d.kind >= IMG_SHM_NKINDS || o->d.size > (1ull << 46) ||
	    o->d.flags & ~IMG_SHM_FLAGS || o->d.mode & ~07777u ||
	    (o->d.flags & IMG_SHM_HUGETLB ? !IMG_HSHIFT_OK(IMG_SHM_HSHIFT(o->d.flags)) ||
						o->d.size % (1ull << IMG_SHM_HSHIFT(o->d.flags))
					  : IMG_SHM_HSHIFT(o->d.flags) != 0)) {
		err_set("SHM record %zu: bad kind, size, mode, flags or name length", im->nshms);
		return -1;
	}
	if (img_find_shm(im, o->d.dev, o->d.ino)) {
		err_set("SHM record %zu: object %llu:%llu appears twice", im->nshms,
			(unsigned long long)o->d.dev, (unsigned long long)o->d.ino);
		return -1;
	}
	if (!(o->name = take_str(&t, o->d.name_len, 0, "SHM name")))
		return -1;
	o->pid = im->proc.pid;
	if (tail) {
		memcpy(&o->tmpfs, t, sizeof(o->tmpfs));
		if (o->tmpfs.flags || o->tmpfs.mtime_nsec >= 1000000000u ||
		    !img_tmpfs_path_ok(o->name)) {
			err_set("SHM record %zu: tmpfs file: bad path, flags or mtime",
				im->nshms);
			free(o->name);
			o->name = NULL;
			return -1;
		}
	}
	im->nshms++;
	return 0;
}

/* The messages of a queue must fill its data exactly. */
static int check_msgs(const struct ipc_obj *o)
{
	uint64_t off = 0;

	for (uint32_t i = 0; i < o->d.n; i++) {
		int64_t type;
		uint64_t len;
		if (o->d.data_len - off < 16)
			return -1;
		memcpy(&type, o->data + off, 8);
		memcpy(&len, o->data + off + 8, 8);
		off += 16;
		if (type <= 0 || len > (1u << 24) || (len + 7) / 8 * 8 > o->d.data_len - off)
			return -1;
		off += (len + 7) / 8 * 8;
	}
	return off == o->d.data_len ? 0 : -1;
}

static int parse_ipc(struct image *im, const char *buf, uint64_t len)
{
	struct ipc_obj *o = take_listed(&im->ipcs, im->nipcs, sizeof(*o), IMG_MAX_IPCS, "IPC",
					buf, len, sizeof(o->d));

	if (!o)
		return -1;
	if (o->d.data_len != len - sizeof(o->d) || o->d.kind == 0 || o->d.kind >= IMG_IPC_NKINDS ||
	    o->d.id < 0 || o->d.mode & ~0777u || o->d.flags & ~IMG_IPC_USED ||
	    (o->d.kind == IMG_IPC_SEM &&
	     (o->d.n == 0 || o->d.n > 32000 || o->d.data_len != 2ull * o->d.n))) {
		err_set("IPC record %zu: bad kind, id, mode, count or length", im->nipcs);
		return -1;
	}
	o->data = malloc(o->d.data_len + 1);
	if (!o->data) {
		err_set("out of memory");
		return -1;
	}
	memcpy(o->data, buf + sizeof(o->d), o->d.data_len);
	im->nipcs++;
	if (o->d.kind == IMG_IPC_MSG && check_msgs(o)) {
		err_set("IPC record %zu: messages do not fill the record", im->nipcs - 1);
		return -1;
	}
	for (size_t i = 0; i + 1 < im->nipcs; i++)
		if (im->ipcs[i].d.kind == o->d.kind && im->ipcs[i].d.id == o->d.id) {
			err_set("IPC record %zu: %s id %d appears twice", im->nipcs - 1,
				o->d.kind == IMG_IPC_SEM ? "semaphore set" : "message queue",
				o->d.id);
			return -1;
		}
	return 0;
}

/* A uid_map or gid_map: lines of three numbers, as the kernel shows them. */
static int bad_map(const char *s, uint32_t len)
{
	if (len > IMG_NS_MAX_MAP)
		return 1;
	for (uint32_t i = 0; i < len; i++)
		if (!(s[i] >= '0' && s[i] <= '9') && s[i] != ' ' && s[i] != '\n')
			return 1;
	return 0;
}

int img_bad_path(const char *s, uint32_t len)
{
	if (len == 0 || len >= PATH_MAX || s[0] != '/' || memchr(s, 0, len))
		return 1;
	for (uint32_t i = 0; i < len; i++)
		if (s[i] == '/' && i + 1 < len && s[i + 1] == '.' &&
		    (i + 2 == len || s[i + 2] == '/' ||
		     (s[i + 2] == '.' && (i + 3 == len || s[i + 3] == '/'))))
			return 1;
	return 0;
}

static char *take_part(const char **t, uint32_t len)
{
	char *s = malloc(len + 1);

	if (!s) {
		err_set("out of memory");
		return NULL;
	}
	memcpy(s, *t, len);
	s[len] = 0;
	*t += len;
	return s;
}

static int parse_ns(struct image *im, const char *buf, uint64_t len)
{
	struct ns_rec *n;
	const char *t = buf + sizeof(n->d);
	struct img_ns d;

	if (im->ns) {
		err_set("second NS record");
		return -1;
	}
	if (len < sizeof(d)) {
		err_set("NS record: too short");
		return -1;
	}
	memcpy(&d, buf, sizeof(d));
	if (d.npids > IMG_NS_MAX_PIDS || !(d.own & (1u << IMG_NS_PID)) != !d.npids ||
	    (uint64_t)d.uid_map_len + d.gid_map_len + d.cgroup_len + 4 * d.npids !=
		len - sizeof(d) ||
	    d.own & ~IMG_NS_ALL || d.flags & ~IMG_NSF_FLAGS || !memchr(d.hostname, 0, 65) ||
	    !memchr(d.domainname, 0, 65) || bad_map(t, d.uid_map_len) ||
	    bad_map(t + d.uid_map_len, d.gid_map_len) ||
	    !(d.flags & IMG_NSF_CGROUP) != !d.cgroup_len ||
	    (d.cgroup_len && img_bad_path(t + d.uid_map_len + d.gid_map_len, d.cgroup_len))) {
		err_set("NS record: bad namespaces, flags, names, maps, cgroup path or pids");
		return -1;
	}
	for (int i = 0; i < IMG_NS_NTYPES; i++)
		if ((d.own & (1u << i)) && !d.ino[i]) {
			err_set("NS record: a namespace of its own without an inode");
			return -1;
		}
	n = calloc(1, sizeof(*n));
	if (!n) {
		err_set("out of memory");
		return -1;
	}
	n->d = d;
	im->ns = n;
	if (!(n->uid_map = take_part(&t, d.uid_map_len)) ||
	    !(n->gid_map = take_part(&t, d.gid_map_len)) ||
	    !(n->cgroup = take_part(&t, d.cgroup_len)))
		return -1;
	if (d.npids && !(n->pids = malloc(d.npids * sizeof(int32_t)))) {
		err_set("out of memory");
		return -1;
	}
	for (uint32_t i = 0; i < d.npids; i++) {
		memcpy(&n->pids[i], t + 4 * i, 4);
		if (n->pids[i] < 1) {
			err_set("NS record: pid %d in a pid namespace below the tree's", n->pids[i]);
			return -1;
		}
	}
	return 0;
}

/* TIMENS: after the NS record that says the time namespace is its own. */
static int parse_timens(struct image *im, const char *buf, uint64_t len)
{
	struct img_timens d;

	if (!im->ns || !(im->ns->d.own & (1u << IMG_NS_TIME)) || im->ns->timens) {
		err_set("TIMENS record without an NS record of a time namespace of its own "
			"before it, or a second one");
		return -1;
	}
	if (len != sizeof(d)) {
		err_set("TIMENS record of bad length %llu", (unsigned long long)len);
		return -1;
	}
	memcpy(&d, buf, sizeof(d));
	if (d.flags & ~IMG_TIMENS_CHILDREN || d.pad) {
		err_set("TIMENS record: unknown flags %#x or padding", d.flags);
		return -1;
	}
	for (int i = 0; i < 2; i++)
		if (d.off_sec[i] > IMG_TIMENS_MAX_SEC || d.off_sec[i] < -IMG_TIMENS_MAX_SEC ||
		    d.off_nsec[i] < 0 || d.off_nsec[i] > 999999999 || d.clock_ns[i] < 0) {
			err_set("TIMENS record: bad offset or clock");
			return -1;
		}
	if (!(im->ns->timens = malloc(sizeof(d)))) {
		err_set("out of memory");
		return -1;
	}
	*im->ns->timens = d;
	return 0;
}

/* Every region and fd of kind shm names an object the image holds. */
static int check_shm_refs(const struct image *im)
{
	for (size_t i = 0; i < im->nregions; i++) {
		const struct region *g = &im->regions[i];
		if (g->d.kind == IMG_RGN_SHM && !img_find_shm(im, g->d.dev, g->d.ino)) {
			err_set("REGION record %zu: names object %llu:%llu, which no SHM record "
				"holds",
				i, (unsigned long long)g->d.dev, (unsigned long long)g->d.ino);
			return -1;
		}
	}
	for (size_t i = 0; i < im->nfiles; i++) {
		const struct fd_entry *f = &im->files[i];
		if (f->d.kind == IMG_FD_SHM && !img_find_shm(im, f->d.dev, f->d.ino)) {
			err_set("FILE record %zu: fd %d names object %llu:%llu, which no SHM "
				"record holds",
				i, f->d.fd, (unsigned long long)f->d.dev,
				(unsigned long long)f->d.ino);
			return -1;
		}
	}
	return 0;
}

int img_read_meta(struct img_reader *r, struct image *im, const void *prefix, size_t prefix_len)
{
	memset(im, 0, sizeof(*im));
	if (img_read_header(r, &im->hdr, prefix, prefix_len))
		return -1;
	return img_read_proc(r, im);
}

/* What img_read_proc has seen of one process's metadata. */
struct meta {
	struct image *im;
	const struct img_reader *r;
	int have_proc, have_sigacts, have_timers;
};

/* Records the PROC record counts: no more than it says. */
static int counted(size_t n, uint32_t count, const char *name)
{
	if (n < count)
		return 0;
	err_set("more %s records than the PROC record counts", name);
	return -1;
}

/* Records a process has once: the first. */
static int once(int *seen, const char *name)
{
	if (!(*seen)++)
		return 0;
	err_set("second %s record", name);
	return -1;
}

static int parse_sigacts(struct meta *m, const void *buf, uint64_t len)
{
	if (m->have_sigacts++ || len != sizeof(m->im->sigacts)) {
		err_set("SIGACTS record: repeated or of bad length %llu", (unsigned long long)len);
		return -1;
	}
	memcpy(m->im->sigacts, buf, sizeof(m->im->sigacts));
	return 0;
}

/* At the DATA record: every record the PROC record counts, and the ones
 * a process has once, were there. */
static int check_meta_complete(const struct meta *m)
{
	const struct image *im = m->im;

	if (im->nthreads != im->proc.nthreads || !m->have_sigacts || !m->have_timers ||
	    im->nregions != im->proc.nregions || im->nfiles != im->proc.nfiles) {
		err_set("metadata incomplete at DATA record (%zu of %u regions, %zu of %u files, "
			"%zu of %u threads)",
			im->nregions, im->proc.nregions, im->nfiles, im->proc.nfiles,
			im->nthreads, im->proc.nthreads);
		return -1;
	}
	if (im->ns && (im->ns->d.own & (1u << IMG_NS_TIME)) && !im->ns->timens) {
		err_set("NS record: a time namespace of its own without its TIMENS record");
		return -1;
	}
	if (im->ns && (im->ns->d.own & (1u << IMG_NS_MNT)) && !im->ns->have_mounts) {
		err_set("NS record: a mount namespace of its own without its MOUNTS record");
		return -1;
	}
	return check_shm_refs(im);
}

/* One metadata record (img_read_each): 0 for the next, 1 at DATA. */
static int meta_rec(void *arg, const struct img_rec *rec, void *buf)
{
	struct meta *m = arg;
	struct image *im = m->im;

	if (!m->have_proc && rec->type != IMG_REC_PROC) {
		err_set("record of type %u before the PROC record", rec->type);
		return -1;
	}
	switch (rec->type) {
	case IMG_REC_PROC:
		if (once(&m->have_proc, "PROC"))
			return -1;
		return parse_proc(im, buf, rec->len);
	case IMG_REC_THREAD:
		if (counted(im->nthreads, im->proc.nthreads, "THREAD"))
			return -1;
		return parse_thread(im, buf, rec->len);
	case IMG_REC_SIGACTS:
		return parse_sigacts(m, buf, rec->len);
	case IMG_REC_SIGQUEUE:
		if (im->nsigq > im->nthreads) {
			err_set("more SIGQUEUE records than queues");
			return -1;
		}
		return parse_sigqueue(im, buf, rec->len);
	case IMG_REC_TIMERS:
		if (once(&m->have_timers, "TIMERS"))
			return -1;
		return parse_timers(im, buf, rec->len);
	case IMG_REC_REGION:
		if (counted(im->nregions, im->proc.nregions, "REGION"))
			return -1;
		return parse_region(im, buf, rec->len);
	case IMG_REC_FILE:
		if (counted(im->nfiles, im->proc.nfiles, "FILE") || parse_file(im, buf, rec->len))
			return -1;
		return m->r->check_file ? m->r->check_file(&im->files[im->nfiles - 1], im->nfiles - 1)
					: 0;
	case IMG_REC_SHM:
		return parse_shm(im, buf, rec->len);
	case IMG_REC_IPC:
		return parse_ipc(im, buf, rec->len);
	case IMG_REC_NS:
		return parse_ns(im, buf, rec->len);
	case IMG_REC_TIMENS:
		return parse_timens(im, buf, rec->len);
	case IMG_REC_MOUNTS:
		if (!im->ns || !(im->ns->d.own & (1u << IMG_NS_MNT)) || im->ns->have_mounts) {
			err_set("MOUNTS record without an NS record of a mount namespace of its "
				"own before it, or a second one");
			return -1;
		}
		return img_parse_mounts(im->ns, buf, rec->len);
	case IMG_REC_PARENT:
		return parse_parent(im, buf, rec->len);
	case IMG_REC_TRACK:
		return parse_track(im, buf, rec->len);
	case IMG_REC_LIVE:
		return img_parse_live(im, buf, rec->len);
	case IMG_REC_ATTRS:
		return img_parse_attrs(im, buf, rec->len);
	case IMG_REC_CPU:
		return img_parse_cpu(im, buf, rec->len);
	case IMG_REC_DATA:
		return check_meta_complete(m) ? -1 : 1;
	default:
		err_set("record of type %u inside the metadata", rec->type);
		return -1;
	}
}

int img_read_proc(struct img_reader *r, struct image *im)
{
	struct meta m = {.im = im, .r = r};

	return img_read_each(r, meta_rec, &m);
}

static int in_tree(const struct image *procs[], size_t n, int32_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (procs[i]->proc.pid == pid)
			return (int)i;
	return -1;
}

int img_check_tree(const struct image *procs[], size_t n)
{
	for (size_t k = 0; k < n; k++) {
		const struct img_proc *p = &procs[k]->proc;
		int parent = in_tree(procs, k, p->ppid);

		if (in_tree(procs, k, p->pid) >= 0) {
			err_set("PROC record %zu: pid %d appears twice", k, p->pid);
			return -1;
		}
		for (size_t j = 0; j < k; j++)
			for (size_t t = 1; t < procs[j]->nthreads; t++)
				if (procs[j]->threads[t].d.tid == p->pid) {
					err_set("PROC record %zu: pid %d is a thread of pid %d", k,
						p->pid, procs[j]->proc.pid);
					return -1;
				}
		if (k == 0) {
			if (in_tree(procs, n, p->ppid) >= 0) {
				err_set("PROC record 0: the root's parent %d is in the tree", p->ppid);
				return -1;
			}
			continue;
		}
		if (parent < 0) {
			err_set("PROC record %zu: pid %d's parent %d is not before it in the tree", k,
				p->pid, p->ppid);
			return -1;
		}
		if (procs[parent]->proc.flags & IMG_PROC_ZOMBIE) {
			err_set("PROC record %zu: pid %d's parent %d is a zombie", k, p->pid,
				p->ppid);
			return -1;
		}
	}
	return 0;
}
