/* uring.c: io_uring instances idle at the checkpoint: their size, setup flags, the kernel's
 * positions in their rings and the rings' bytes; made again on memory of ours that the restorer
 * maps where the program had its rings (IORING_SETUP_NO_MMAP), brought to the same positions by
 * replaying requests that complete at once.  One with requests in flight is refused by name. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

/* <linux/io_uring.h> as Linux 6.18 has it; Debian 12's lacks the newer
 * flags, and a program of ours must not need a newer one. */
#define SETUP_SQPOLL (1u << 1)
#define SETUP_CQSIZE (1u << 3)
#define SETUP_SQE128 (1u << 10)
#define SETUP_CQE32 (1u << 11)
#define SETUP_NO_MMAP (1u << 14)
#define SETUP_NO_SQARRAY (1u << 16)
#define OP_NOP 0
#define OP_MSG_RING 40
#define SQE_CQE_SKIP_SUCCESS (1u << 6)
#define REGISTER_PROBE 8

struct uring_params {
	uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd;
	uint32_t resv[3];
	uint32_t sq_off[8];
	uint64_t sq_addr;
	uint32_t cq_off[8];
	uint64_t cq_addr;
};

struct uring_sqe {
	uint8_t opcode, flags;
	uint16_t ioprio;
	int32_t fd;
	uint64_t off, addr;
	uint32_t len, op_flags;
	uint64_t user_data;
	uint64_t pad[3];
};

struct uring_cqe {
	uint64_t user_data;
	int32_t res;
	uint32_t flags;
};

/* Offsets into struct io_uring_params' io_sqring_offsets and io_cqring_offsets. */
enum { OFF_HEAD, OFF_TAIL, OFF_MASK, OFF_ENTRIES, OFF_SQ_ARRAY = 6, OFF_CQES = 5 };

static int setup(uint32_t entries, struct uring_params *p)
{
	return syscall(SYS_io_uring_setup, entries, p);
}

static int enter(int fd, uint32_t n)
{
	return syscall(SYS_io_uring_enter, fd, n, 0, 0, NULL, 0);
}

static uint64_t page_up(uint64_t n)
{
	uint64_t ps = sysconf(_SC_PAGESIZE);

	return (n + ps - 1) & ~(ps - 1);
}

/* What the kernel lays out for a ring of these entries and flags: a new
 * instance of ours tells (its params), and is closed again.  rings_len
 * and sqes_len into u. */
static int layout(struct img_uring *u)
{
	struct uring_params p = {.flags = u->flags, .cq_entries = u->cq_entries};
	uint32_t cqe = (u->flags & SETUP_CQE32) ? 32 : 16;
	int fd = setup(u->sq_entries, &p);

	if (fd < 0)
		return -1;
	close(fd);
	if (p.sq_entries != u->sq_entries || p.cq_entries != u->cq_entries) {
		errno = EINVAL;
		return -1;
	}
	memcpy(u->sq_off, p.sq_off, sizeof(u->sq_off));
	memcpy(u->cq_off, p.cq_off, sizeof(u->cq_off));
	u->rings_len = (u->flags & SETUP_NO_SQARRAY)
			   ? ((p.cq_off[OFF_CQES] + u->cq_entries * cqe + 63) & ~63u)
			   : p.sq_off[OFF_SQ_ARRAY] + u->sq_entries * 4;
	u->sqes_len = u->sq_entries * ((u->flags & SETUP_SQE128) ? 128 : 64);
	return 0;
}

/* ---- capturing ------------------------------------------------------ */

struct uring_info {
	uint32_t sq_mask, sq_head, sq_tail, cached_sq_head;
	uint32_t cq_mask, cq_head, cq_tail, cached_cq_tail;
	int sq_thread;
	uint32_t files, bufs;
	int personalities;
	uint32_t polls, overflows; /* lines under PollList:, CqOverflowList: */
};

/* Lines that begin with a space or tab after the line "name:". */
static uint32_t list_len(const char *info, const char *name)
{
	const char *p = fd_info_field(info, name);
	uint32_t n = 0;

	if (!p || !(p = strchr(p, '\n')))
		return 0;
	for (p++; *p == ' ' || *p == '\t'; n++)
		if (!(p = strchr(p, '\n')) || !*++p)
			return n + 1;
	return n;
}

static int parse_info(const char *info, struct uring_info *u)
{
	static const char *const names[] = {"SqMask", "SqHead", "SqTail", "CachedSqHead",
					    "CqMask", "CqHead", "CqTail", "CachedCqTail"};
	uint32_t *v[] = {&u->sq_mask, &u->sq_head, &u->sq_tail, &u->cached_sq_head,
			 &u->cq_mask, &u->cq_head, &u->cq_tail, &u->cached_cq_tail};
	const char *s;

	memset(u, 0, sizeof(*u));
	for (size_t i = 0; i < 8; i++) {
		if (!(s = fd_info_field(info, names[i])))
			return -1;
		*v[i] = strtoul(s, NULL, 0);
	}
	u->sq_thread = (s = fd_info_field(info, "SqThread")) ? atoi(s) : -1;
	u->files = (s = fd_info_field(info, "UserFiles")) ? strtoul(s, NULL, 10) : 0;
	u->bufs = (s = fd_info_field(info, "UserBufs")) ? strtoul(s, NULL, 10) : 0;
	u->personalities = fd_info_field(info, "Personalities") != NULL;
	u->polls = list_len(info, "PollList");
	u->overflows = list_len(info, "CqOverflowList");
	return 0;
}

/* What makes an instance one a restore cannot make again, or one with
 * requests in flight; the refusal, or 0. */
static int refuse(const struct fd_source *src, int fd, const struct uring_info *u)
{
	pid_t pid = src->pid;
	int32_t pending = (int32_t)(u->cached_sq_head - u->cached_cq_tail);

	if (u->sq_thread >= 0)
		err_set("pid %d: fd %d: io_uring instance with a submission thread "
			"(IORING_SETUP_SQPOLL, tid %d); not supported",
			pid, fd, u->sq_thread);
	else if (u->files || u->bufs)
		err_set("pid %d: fd %d: io_uring instance with %u registered files and %u "
			"registered buffers; not supported",
			pid, fd, u->files, u->bufs);
	else if (u->personalities)
		err_set("pid %d: fd %d: io_uring instance with registered personalities "
			"(IORING_REGISTER_PERSONALITY); not supported",
			pid, fd);
	else if (u->polls || u->overflows)
		err_set("pid %d: fd %d: io_uring instance with requests in flight (%u waiting "
			"for their file, %u completions overflowed); not supported",
			pid, fd, u->polls, u->overflows);
	else if (u->cached_sq_head != u->sq_head || u->cached_cq_tail != u->cq_tail ||
		 pending > 0)
		err_set("pid %d: fd %d: io_uring instance with requests in flight (%u submitted, "
			"%u completed; one completed without a completion, "
			"IOSQE_CQE_SKIP_SUCCESS, counts as in flight); not supported",
			pid, fd, u->cached_sq_head, u->cached_cq_tail);
	else if (u->sq_head > IMG_URING_REPLAY || u->cq_tail > IMG_URING_REPLAY)
		err_set("pid %d: fd %d: io_uring instance that took %u submissions and posted %u "
			"completions, more than a restore replays (%u); not supported",
			pid, fd, u->sq_head, u->cq_tail, IMG_URING_REPLAY);
	else if (u->cq_tail - u->cq_head > u->cq_mask + 1 || u->sq_tail - u->sq_head > u->sq_mask + 1)
		err_set("pid %d: fd %d: io_uring instance whose rings' heads are past their "
			"tails (submission %u-%u, completion %u-%u); not supported",
			pid, fd, u->sq_head, u->sq_tail, u->cq_head, u->cq_tail);
	else
		return 0;
	return -1;
}

/* IORING_SETUP_SINGLE_ISSUER: the kernel refuses a registration from any
 * task but the issuer (EEXIST); a probe changes nothing. */
static int single_issuer(int dup)
{
	unsigned char probe[16 + 256 * 8] = {0};

	return syscall(SYS_io_uring_register, dup, REGISTER_PROBE, probe, 256) < 0 &&
	       errno == EEXIST;
}

/* The setup flags fdinfo shows only beside a pending entry (Linux 6.18:
 * e0..e7 after a 128-byte SQE, extra1 and extra2 after a 32-byte CQE, no
 * entry at all without a submission index array).  The process is
 * stopped and the instance idle, so the kernel reads neither the
 * submission tail nor the completion head until the program enters it
 * again: one pending entry of each is shown for a moment, and the words
 * are put back. */
static int show_pending(pid_t pid, int fd, volatile unsigned char *rings, uint64_t maplen,
			const struct img_uring *u, const struct uring_info *ui, char **info)
{
	volatile uint32_t *sq_tail = (volatile uint32_t *)(rings + u->sq_off[OFF_TAIL]);
	volatile uint32_t *cq_head = (volatile uint32_t *)(rings + u->cq_off[OFF_HEAD]);
	volatile uint32_t *slot = NULL;
	uint32_t tail = *sq_tail, head = *cq_head, was = 0;
	char path[64];

	if (!u->sq_off[OFF_SQ_ARRAY] ||
	    u->sq_off[OFF_SQ_ARRAY] + (uint64_t)u->sq_entries * 4 > maplen)
		slot = NULL;
	else
		slot = (volatile uint32_t *)(rings + u->sq_off[OFF_SQ_ARRAY]) +
		       (ui->sq_head & ui->sq_mask);
	if (slot) {
		was = *slot;
		*slot = ui->sq_head & ui->sq_mask;
	}
	*sq_tail = ui->sq_head + 1;
	*cq_head = ui->cq_tail - 1;
	*info = read_file(fmt_path(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd), NULL);
	*cq_head = head;
	*sq_tail = tail;
	if (slot)
		*slot = was;
	return *info ? 0 : -1;
}

/* The first line under name: in info, or "". */
static const char *first_entry(const char *info, const char *name, char *buf, size_t size)
{
	const char *p = fd_info_field(info, name), *e;

	buf[0] = 0;
	if (p && (p = strchr(p, '\n')) && (p[1] == ' ' || p[1] == '\t')) {
		e = strchrnul(p + 1, '\n');
		snprintf(buf, size, "%.*s", (int)(e - p - 1), p + 1);
	}
	return buf;
}

/* How many pages the kernel's memory at mmap offset off of the instance
 * has: a mapping of more maps only that many (Linux 6.18 does not refuse
 * a longer one; the rest faults), which mincore(2) sees present. */
static uint64_t region_pages(int dup, uint64_t off, uint64_t most)
{
	uint64_t ps = sysconf(_SC_PAGESIZE), n = 0;
	unsigned char *m, *vec;

	m = mmap(NULL, most * ps, PROT_READ, MAP_SHARED | MAP_POPULATE, dup, off);
	if (m == MAP_FAILED)
		return 0;
	if ((vec = calloc(most, 1)) && !mincore(m, most * ps, vec))
		while (n < most && (vec[n] & 1))
			n++;
	free(vec);
	munmap(m, most * ps);
	return n;
}

/* u's flags: CQSIZE from the sizes; SQE128 from the pages of the SQEs
 * where they tell, CQE32 and NO_SQARRAY from the rings' pages where
 * they tell, else from fdinfo (show_pending).  The rings are mapped as
 * far as the kernel has them. */
static int find_flags(const struct fd_source *src, int fd, int dup, struct img_uring *u,
		      const struct uring_info *ui)
{
	char *info = NULL, sqe[512], cqe[512];
	struct img_uring probe;
	uint64_t ps = sysconf(_SC_PAGESIZE), maplen, sqpages;
	unsigned char *rings;
	int sqe128 = -1, rc = -1;

	if (u->cq_entries != 2 * u->sq_entries)
		u->flags |= SETUP_CQSIZE;
	probe = *u;
	probe.flags |= SETUP_CQE32 | SETUP_SQE128;
	if (layout(&probe)) {
		err_sys("pid %d: fd %d: cannot make an io_uring instance of %u entries like it",
			src->pid, fd, u->sq_entries);
		return -1;
	}
	maplen = region_pages(dup, IMG_URING_OFF_SQ_RING, page_up(probe.rings_len) / ps) * ps;
	sqpages = region_pages(dup, IMG_URING_OFF_SQES, page_up(probe.sqes_len) / ps);
	if (!maplen || !sqpages) {
		/* Linux 6.18 has no pages to map of such an instance (ENOMEM). */
		if (errno == EINVAL || errno == ENOMEM)
			err_set("pid %d: fd %d: io_uring instance whose rings are memory of the "
				"program's (IORING_SETUP_NO_MMAP: its own, or one ckpt-remap made "
				"again); not supported",
				src->pid, fd);
		else
			err_sys("pid %d: fd %d: cannot map its io_uring instance's rings",
				src->pid, fd);
		return -1;
	}
	if (page_up(u->sq_entries * 64) != page_up(u->sq_entries * 128))
		sqe128 = sqpages * ps >= page_up(u->sq_entries * 128);
	rings = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, dup, IMG_URING_OFF_SQ_RING);
	if (rings == MAP_FAILED) {
		err_sys("pid %d: fd %d: cannot map its io_uring instance's rings", src->pid, fd);
		return -1;
	}
	/* The array's offset depends on the size of a CQE: ask once with
	 * the 16-byte one, and again when the CQEs turn out 32 bytes. */
	probe = *u;
	if (layout(&probe) || show_pending(src->pid, fd, rings, maplen, &probe, ui, &info))
		goto fdinfo;
	first_entry(info, "CQEs", cqe, sizeof(cqe));
	if (strstr(cqe, "extra1:")) {
		u->flags |= SETUP_CQE32;
		probe = *u;
		free(info);
		info = NULL;
		if (layout(&probe) || show_pending(src->pid, fd, rings, maplen, &probe, ui, &info))
			goto fdinfo;
	} else if (!cqe[0]) {
		err_set("pid %d: fd %d: io_uring instance whose completion entries fdinfo does not "
			"show; not supported",
			src->pid, fd);
		goto out;
	}
	first_entry(info, "SQEs", sqe, sizeof(sqe));
	/* No entry shown with a valid index in the array where it would be,
	 * or no room for the array in the rings: there is none. */
	if (!sqe[0] || probe.sq_off[OFF_SQ_ARRAY] + (uint64_t)u->sq_entries * 4 > maplen)
		u->flags |= SETUP_NO_SQARRAY;
	else
		sqe128 = strstr(sqe, " e0:") != NULL;
	if (sqe128 < 0) {
		err_set("pid %d: fd %d: io_uring instance of %u entries without a submission array "
			"(IORING_SETUP_NO_SQARRAY): whether its entries are 128 bytes shows "
			"nowhere; not supported",
			src->pid, fd, u->sq_entries);
		goto out;
	}
	if (sqe128)
		u->flags |= SETUP_SQE128;
	rc = 0;
	goto out;
fdinfo:
	err_sys("pid %d: fd %d: cannot read its io_uring instance's fdinfo", src->pid, fd);
out:
	free(info);
	munmap(rings, maplen);
	return rc;
}

/* The bytes of the rings and of the SQEs, after u, into f. */
static int take_rings(const struct fd_source *src, int fd, int dup, const struct img_uring *u,
		      struct fd_entry *f)
{
	unsigned char *r, *s;
	int rc = -1;

	r = mmap(NULL, page_up(u->rings_len), PROT_READ, MAP_SHARED, dup, IMG_URING_OFF_SQ_RING);
	s = mmap(NULL, page_up(u->sqes_len), PROT_READ, MAP_SHARED, dup, IMG_URING_OFF_SQES);
	if (r == MAP_FAILED || s == MAP_FAILED)
		err_sys("pid %d: fd %d: cannot map its io_uring instance's rings (%u and %u bytes)",
			src->pid, fd, u->rings_len, u->sqes_len);
	else if (!(f->extra = malloc(sizeof(*u) + u->rings_len + u->sqes_len)))
		err_set("out of memory");
	else {
		memcpy(f->extra, u, sizeof(*u));
		memcpy(f->extra + sizeof(*u), r, u->rings_len);
		memcpy(f->extra + sizeof(*u) + u->rings_len, s, u->sqes_len);
		f->d.extra_len = sizeof(*u) + u->rings_len + u->sqes_len;
		rc = 0;
	}
	if (r != MAP_FAILED)
		munmap(r, page_up(u->rings_len));
	if (s != MAP_FAILED)
		munmap(s, page_up(u->sqes_len));
	return rc;
}

static int capture_uring(const struct fd_source *src, struct fd_entry *f)
{
	struct uring_info ui;
	struct img_uring u = {0};
	int fd = f->d.fd, dup, rc = -1;

	if (parse_info(src->info, &ui)) {
		err_set("pid %d: fd %d: io_uring instance whose fdinfo lacks its rings' positions; "
			"not supported",
			src->pid, fd);
		return -1;
	}
	if (refuse(src, fd, &ui) || (dup = fd_getfd(src->pid, fd)) < 0)
		return -1;
	u.sq_entries = ui.sq_mask + 1;
	u.cq_entries = ui.cq_mask + 1;
	u.sq_head = ui.sq_head;
	u.cq_tail = ui.cq_tail;
	if (single_issuer(dup))
		err_set("pid %d: fd %d: io_uring instance set up with IORING_SETUP_SINGLE_ISSUER "
			"(and perhaps DEFER_TASKRUN, which nothing shows); not supported",
			src->pid, fd);
	else if (find_flags(src, fd, dup, &u, &ui) == 0) {
		if (layout(&u) == 0)
			rc = take_rings(src, fd, dup, &u, f);
		else
			err_sys("pid %d: fd %d: cannot make an io_uring instance like it (flags "
				"%#x)",
				src->pid, fd, u.flags);
	}
	close(dup);
	return rc;
}

/* A tree's processes would each need the instance: not done. */
static int join_uring(struct fd_all *a)
{
	if (a->nprocs < 2)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->f[i]->d.kind == IMG_FD_URING) {
			err_set("pid %d: fd %d is an io_uring instance in a process tree "
				"(ckpt-dump -t); not supported",
				a->pid[i], a->f[i]->d.fd);
			return -1;
		}
	return 0;
}

int fd_uring_check_maps(pid_t pid, const struct image *im)
{
	for (size_t i = 0; i < im->nregions; i++) {
		const struct img_region *g = &im->regions[i].d;
		size_t k = 0;

		if (g->kind != IMG_RGN_URING)
			continue;
		while (k < im->nfiles && (im->files[k].d.kind != IMG_FD_URING ||
					  im->files[k].d.ino != g->ino || im->files[k].d.dev != g->dev))
			k++;
		if (k == im->nfiles) {
			err_set("pid %d: region %#llx-%#llx (anon_inode:[io_uring]) is the ring of an "
				"io_uring instance whose fd is closed; not supported",
				pid, (unsigned long long)g->start, (unsigned long long)g->end);
			return -1;
		}
	}
	for (size_t k = 0; k < im->nfiles; k++) {
		const struct fd_entry *f = &im->files[k];
		size_t i = 0;

		if (f->d.kind != IMG_FD_URING)
			continue;
		while (i < im->nregions && (im->regions[i].d.kind != IMG_RGN_URING ||
					    im->regions[i].d.ino != f->d.ino ||
					    im->regions[i].d.dev != f->d.dev))
			i++;
		if (i == im->nregions) {
			err_set("pid %d: fd %d is an io_uring instance whose rings are not mapped; "
				"not supported",
				pid, f->d.fd);
			return -1;
		}
	}
	return 0;
}

/* ---- reading an image ------------------------------------------------ */

static int check_uring(const unsigned char *x, uint32_t n)
{
	struct img_uring u;
	uint32_t cqe;

	if (n < sizeof(u))
		return -1;
	memcpy(&u, x, sizeof(u));
	cqe = (u.flags & SETUP_CQE32) ? 32 : 16;
	if (!u.sq_entries || u.sq_entries > 32768 || (u.sq_entries & (u.sq_entries - 1)) ||
	    !u.cq_entries || u.cq_entries > 65536 || (u.cq_entries & (u.cq_entries - 1)) ||
	    u.cq_entries < u.sq_entries || (u.flags & ~IMG_URING_FLAGS) ||
	    u.sq_head > IMG_URING_REPLAY || u.cq_tail > IMG_URING_REPLAY ||
	    u.sqes_len != u.sq_entries * ((u.flags & SETUP_SQE128) ? 128 : 64) ||
	    u.rings_len > (1u << 26) || (uint64_t)n != sizeof(u) + u.rings_len + u.sqes_len)
		return -1;
	for (int i = 0; i < 7; i++)
		if (u.sq_off[i] > u.rings_len - 4 || u.cq_off[i] > u.rings_len - 4 ||
		    (u.sq_off[i] | u.cq_off[i]) & 3)
			return -1;
	if (u.cq_off[OFF_CQES] + (uint64_t)u.cq_entries * cqe > u.rings_len ||
	    (!(u.flags & SETUP_NO_SQARRAY) &&
	     u.sq_off[OFF_SQ_ARRAY] + (uint64_t)u.sq_entries * 4 > u.rings_len))
		return -1;
	return 0;
}

/* ---- making it again ------------------------------------------------- */

/* n submissions taken by the kernel: NOPs that post no completion. */
static int replay_sq(int fd, const struct img_uring *u, unsigned char *rings, unsigned char *sqes)
{
	volatile uint32_t *tail = (volatile uint32_t *)(rings + u->sq_off[OFF_TAIL]);
	uint32_t *array = (uint32_t *)(rings + u->sq_off[OFF_SQ_ARRAY]);
	uint32_t mask = u->sq_entries - 1, stride = u->sqes_len / u->sq_entries;

	for (uint32_t done = 0; done < u->sq_head;) {
		uint32_t b = u->sq_head - done < u->sq_entries ? u->sq_head - done : u->sq_entries;

		for (uint32_t i = 0; i < b; i++) {
			struct uring_sqe *e = (struct uring_sqe *)(sqes + ((done + i) & mask) * stride);
			memset(e, 0, stride);
			e->opcode = OP_NOP;
			e->flags = SQE_CQE_SKIP_SUCCESS;
			if (!(u->flags & SETUP_NO_SQARRAY))
				array[(done + i) & mask] = (done + i) & mask;
		}
		__atomic_store_n(tail, done + b, __ATOMIC_RELEASE);
		if (enter(fd, b) != (int)b)
			return -1;
		done += b;
	}
	return 0;
}

/* n completions posted: messages from another instance of ours
 * (IORING_OP_MSG_RING), which take none of this one's submissions; each
 * batch reaped at once by moving the head. */
static int replay_cq(int fd, const struct img_uring *u, unsigned char *rings)
{
	volatile uint32_t *head = (volatile uint32_t *)(rings + u->cq_off[OFF_HEAD]);
	volatile uint32_t *tail = (volatile uint32_t *)(rings + u->cq_off[OFF_TAIL]);
	struct uring_params p = {0};
	unsigned char *r = MAP_FAILED, *s = MAP_FAILED;
	size_t rlen = 0, slen = 0;
	int h, rc = -1;

	if (!u->cq_tail)
		return 0;
	if ((h = setup(4096, &p)) < 0)
		return -1;
	rlen = p.sq_off[OFF_SQ_ARRAY] + p.sq_entries * 4;
	if (p.cq_off[OFF_CQES] + p.cq_entries * 16 > rlen)
		rlen = p.cq_off[OFF_CQES] + p.cq_entries * 16;
	slen = p.sq_entries * 64;
	r = mmap(NULL, rlen, PROT_READ | PROT_WRITE, MAP_SHARED, h, IMG_URING_OFF_SQ_RING);
	s = mmap(NULL, slen, PROT_READ | PROT_WRITE, MAP_SHARED, h, IMG_URING_OFF_SQES);
	if (r == MAP_FAILED || s == MAP_FAILED)
		goto out;
	for (uint32_t done = 0; done < u->cq_tail;) {
		uint32_t b = u->cq_tail - done, *array = (uint32_t *)(r + p.sq_off[OFF_SQ_ARRAY]);
		volatile uint32_t *htail = (volatile uint32_t *)(r + p.sq_off[OFF_TAIL]);
		volatile uint32_t *hch = (volatile uint32_t *)(r + p.cq_off[OFF_HEAD]);
		volatile uint32_t *hct = (volatile uint32_t *)(r + p.cq_off[OFF_TAIL]);
		uint32_t t = *htail;

		if (b > u->cq_entries)
			b = u->cq_entries;
		if (b > p.sq_entries)
			b = p.sq_entries;
		for (uint32_t i = 0; i < b; i++) {
			uint32_t k = (t + i) & (p.sq_entries - 1);
			struct uring_sqe *e = (struct uring_sqe *)(s + k * 64);
			memset(e, 0, 64);
			e->opcode = OP_MSG_RING;
			e->flags = SQE_CQE_SKIP_SUCCESS;
			e->fd = fd;
			array[k] = k;
		}
		__atomic_store_n(htail, t + b, __ATOMIC_RELEASE);
		if (enter(h, b) != (int)b)
			goto out;
		/* A message that failed posts its error on ours. */
		if (*hct != *hch) {
			struct uring_cqe *c = (struct uring_cqe *)(r + p.cq_off[OFF_CQES]) +
					      (*hch & (p.cq_entries - 1));
			errno = -c->res;
			goto out;
		}
		done += b;
		if (__atomic_load_n(tail, __ATOMIC_ACQUIRE) != done) {
			errno = EAGAIN;
			goto out;
		}
		*head = done;
	}
	rc = 0;
out:
	if (r != MAP_FAILED)
		munmap(r, rlen);
	if (s != MAP_FAILED)
		munmap(s, slen);
	close(h);
	return rc;
}

/* A memfd of len bytes mapped at *at; -1 with err_set. */
static int memory(const char *name, uint64_t len, unsigned char **at, const struct fd_entry *f)
{
	int m = syscall(SYS_memfd_create, name, 1u /* MFD_CLOEXEC */);

	*at = MAP_FAILED;
	if (m < 0 || ftruncate(m, len) ||
	    (*at = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0)) == MAP_FAILED) {
		err_sys("fd %d: cannot make %llu bytes of memory for its io_uring instance",
			f->d.fd, (unsigned long long)len);
		if (m >= 0)
			close(m);
		return -1;
	}
	return m;
}

static int make_uring(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_uring u;
	struct uring_params p = {0};
	unsigned char *rings = MAP_FAILED, *sqes = MAP_FAILED;
	uint64_t rlen, slen;
	int rm = -1, sm = -1, fd = -1;
	struct fd_pipe *pair;

	memcpy(&u, f->extra, sizeof(u));
	rlen = page_up(u.rings_len);
	slen = page_up(u.sqes_len);
	if ((rm = memory("ckpt-uring-rings", rlen, &rings, f)) < 0 ||
	    (sm = memory("ckpt-uring-sqes", slen, &sqes, f)) < 0)
		goto fail;
	/* The kernel pins these pages: the restorer maps the same memfds
	 * where the program had its rings. */
	p.flags = u.flags | SETUP_NO_MMAP;
	p.cq_entries = u.cq_entries;
	p.sq_addr = (uint64_t)sqes;
	p.cq_addr = (uint64_t)rings;
	if ((fd = setup(u.sq_entries, &p)) < 0) {
		err_sys("fd %d: cannot make an io_uring instance of %u entries (flags %#x) on "
			"memory of ours (IORING_SETUP_NO_MMAP, Linux 6.5+)",
			f->d.fd, u.sq_entries, p.flags);
		goto fail;
	}
	for (int i = 0; i < 7; i++)
		if (p.sq_off[i] != u.sq_off[i] || p.cq_off[i] != u.cq_off[i]) {
			err_set("fd %d: this kernel lays out an io_uring instance of %u entries "
				"otherwise than the checkpoint's did (field %d of its %s ring at "
				"%u, was %u)",
				f->d.fd, u.sq_entries, i, p.sq_off[i] != u.sq_off[i] ? "SQ" : "CQ",
				p.sq_off[i] != u.sq_off[i] ? p.sq_off[i] : p.cq_off[i],
				p.sq_off[i] != u.sq_off[i] ? u.sq_off[i] : u.cq_off[i]);
			goto fail;
		}
	if (replay_sq(fd, &u, rings, sqes) || replay_cq(fd, &u, rings)) {
		err_sys("fd %d: cannot bring its io_uring instance to %u submissions and %u "
			"completions",
			f->d.fd, u.sq_head, u.cq_tail);
		goto fail;
	}
	/* The kernel is where the program was; the rings as it left them
	 * (its SQEs not submitted, its completions not reaped). */
	memcpy(rings, f->extra + sizeof(u), u.rings_len);
	memcpy(sqes, f->extra + sizeof(u) + u.rings_len, u.sqes_len);
	if (!(pair = fd_new_pair(pipes, IMG_FD_URING, f->d.ino))) {
		err_set("out of memory");
		goto fail;
	}
	pair->end[0] = rm;
	pair->end[1] = sm;
	pipes->n++;
	munmap(rings, rlen);
	munmap(sqes, slen);
	return fd;
fail:
	if (rings != MAP_FAILED)
		munmap(rings, rlen);
	if (sqes != MAP_FAILED)
		munmap(sqes, slen);
	if (rm >= 0)
		close(rm);
	if (sm >= 0)
		close(sm);
	if (fd >= 0)
		close(fd);
	return -1;
}

int fd_uring_memory(struct fd_pipes *pipes, uint64_t ino, uint64_t pgoff, uint64_t len,
		    uint64_t *off)
{
	struct fd_pipe *pair = fd_find_pair(pipes, IMG_FD_URING, ino);
	int sqes = pgoff >= IMG_URING_OFF_SQES;
	struct stat sb;
	int m;

	*off = pgoff - (sqes ? IMG_URING_OFF_SQES
			     : pgoff >= IMG_URING_OFF_CQ_RING ? IMG_URING_OFF_CQ_RING : 0);
	if (!pair) {
		err_set("the io_uring instance of inode %llu, no fd of which the image holds",
			(unsigned long long)ino);
		return -1;
	}
	m = pair->end[sqes];
	if (fstat(m, &sb) || *off + len > (uint64_t)sb.st_size) {
		err_set("%llu bytes at %#llx of an io_uring instance's %s, which holds %llu",
			(unsigned long long)len, (unsigned long long)pgoff,
			sqes ? "SQEs" : "rings", (unsigned long long)sb.st_size);
		return -1;
	}
	if ((m = fcntl(m, F_DUPFD_CLOEXEC, 0)) < 0)
		err_sys("cannot duplicate the memory of an io_uring instance");
	return m;
}

/* ---- showing ---------------------------------------------------------- */

static void show_uring(FILE *out, const struct fd_entry *f, int json)
{
	struct img_uring u;

	memcpy(&u, f->extra, sizeof(u));
	fd_put_num(out, json, "sq_entries", u.sq_entries);
	fd_put_num(out, json, "cq_entries", u.cq_entries);
	fd_put_num(out, json, "setup_flags", u.flags);
	fd_put_num(out, json, "submitted", u.sq_head);
	fd_put_num(out, json, "completed", u.cq_tail);
}

const struct fd_ops fd_uring_ops = {
    .name = "io_uring",
    .anon = "anon_inode:[io_uring]",
    .capture = capture_uring,
    .join = join_uring,
    .check = check_uring,
    .make = make_uring,
    .show = show_uring,
};
