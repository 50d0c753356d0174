/* lazy.c: ckpt-remap --lazy from a compressed image or a stream (post-copy).
 *
 * A stream cannot be mapped, nor read out of order.  The image's page data
 * comes in lazy order (IMG_PROC_LAZY_ORDER, img_lazy_late): the memory a
 * program touches first (stacks, libraries' data, small regions) before
 * its large anonymous regions, in records of their own.  The restorer
 * reads the first part as ever; at the first record of the late regions
 * it registers them on a userfaultfd (MISSING mode) and hands the stream
 * over to the filler, and the program runs.  A fault on a late page that
 * is not there yet waits until the filler has it in (the kernel wakes it
 * at the UFFDIO_COPY of its page).
 *
 * The filler is a process of its own, forked from ckpt-remap before the
 * restorer starts (zio_spawn: a grandchild, reparented away, which the
 * program can neither wait for nor see as a thread).  It holds the
 * userfaultfd (made here, in ckpt-remap, so it is the mm the program
 * gets), the image's fd and the decompressor's status, a pidfd of the
 * program and the pipe from the restorer, nothing else.  It reads the
 * rest in order, each record whole and its checksum checked before the
 * program sees any of it, and fills it with UFFDIO_COPY (EEXIST: a page
 * the program faulted in as a hole, UFFDIO_ZEROPAGE, is left as it is); a
 * fault below where the stream stands is on a page the image does not
 * hold (a hole): UFFDIO_ZEROPAGE.  After END it closes the userfaultfd,
 * which takes the registration away and wakes whoever still waits (on a
 * hole: the kernel gives it a zero page), and exits.  It follows what the
 * program does meanwhile (non-cooperative events, Linux 4.11): a child it
 * forks gets a userfaultfd of its own, filled the same; pages it moves
 * with mremap are filled where they went; pages it drops (MADV_DONTNEED,
 * munmap) are not filled again.  A stream that ends or breaks first kills
 * the program (and its children) with one line: it must not run on with
 * pages missing, nor wait for them for ever. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/base.h"
#include "io/io.h"
#include "restore/restore.h"
#include "restore/restorer/restorer.h"

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

/* Pages filled by one UFFDIO_COPY: a fault waits at most one such read. */
#define CHUNK_PAGES 64
/* Faults on holes ahead of the stream remembered, per memory (more just
 * wait for the end, when the userfaultfd is closed). */
#define MAX_PENDING 1024
/* Children forked before every page was in, and what one memory may do
 * to its late regions meanwhile, that the filler follows. */
#define MAX_MEMS 64
#define MAX_LOG 256
/* A record read whole, checked, then filled. */
#define RECORD_MAX (16u << 20)

/* A memory the filler fills: the program's, or a child's it forked
 * before every page was in (UFFD_EVENT_FORK gives it a userfaultfd of its
 * own: without it the child would read zeros where pages were missing).
 * Its log: what it did to the late regions since, in order (mremap moves
 * pages, madvise(MADV_DONTNEED) and munmap drop them), for where a page
 * of the stream goes in it now. */
struct mem {
	int fd;
	int moved; /* the log has a move: a fault's address is not the stream's */
	size_t nlog, npending;
	struct mem_ev {
		uint64_t from, to, len;
		int drop;
	} log[MAX_LOG];
	uint64_t pending[MAX_PENDING];
};

struct filler {
	struct img_input *in;
	struct img_reader r;
	const struct rst_map *maps;
	size_t nmaps;
	int uffd, pipe, pidfd;
	pid_t pid;
	uint64_t ps;
	uint64_t pos; /* every late page below is in, or a hole */
	unsigned char *record; /* a record's data, RECORD_MAX bytes */
	unsigned char *buf;    /* the chunk fill_chunk fills from */
	struct mem *mem[MAX_MEMS];
	size_t nmem;
};

int rst_lazy_stream(const struct img_input *in)
{
	struct stat sb;

	return in->compressed || fstat(in->r.fd, &sb) || !S_ISREG(sb.st_mode);
}

/* A userfaultfd that waits on faults from system calls too (without
 * privilege only through /dev/userfaultfd, Linux 6.1, or
 * vm.unprivileged_userfaultfd=1) and follows the program's fork
 * (UFFD_FEATURE_EVENT_FORK wants CAP_SYS_PTRACE), mremap, madvise and
 * munmap. */
static int uffd_open(void)
{
	struct uffdio_api api = {.api = UFFD_API,
				 .features = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
					     UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK), dev;

	if (fd < 0 && errno == EPERM && (dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC)) >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
	}
	if (fd >= 0 && ioctl(fd, UFFDIO_API, &api) == 0 &&
	    (api.ioctls & (1ull << _UFFDIO_REGISTER)))
		return fd;
	if (fd < 0 || errno == EPERM)
		err_set("--lazy from a compressed image or a stream needs a userfaultfd that "
			"waits on faults in system calls too and follows the program's forks, "
			"which takes CAP_SYS_PTRACE (with UFFD_USER_MODE_ONLY a read() into a "
			"page not yet there would fail with EFAULT; without "
			"UFFD_FEATURE_EVENT_FORK a child would read zeros): restore without "
			"--lazy, or from an uncompressed image file");
	else
		err_sys("--lazy from a stream: the kernel's userfaultfd has no MISSING mode or "
			"no fork, mremap, madvise and munmap events");
	if (fd >= 0)
		close(fd);
	return -1;
}

int rst_lazy_check(const struct img_input *in)
{
	int fd;

	if (!(in->im.proc.flags & IMG_PROC_LAZY_ORDER)) {
		err_set("--lazy from a compressed image or a stream needs an image in lazy order, "
			"which incremental, --cow and tree dumps and older ckpt-dumps do not "
			"write: restore without --lazy, or from an uncompressed image file");
		return -1;
	}
	if ((fd = uffd_open()) < 0)
		return -1;
	close(fd);
	return 0;
}

/* ---- the filler ---------------------------------------------------------- */

/* Every descendant of pid, then pid: a child that shares memory not in
 * yet must not run on without it either. */
static void kill_tree(pid_t pid, int pidfd)
{
	char path[64];
	FILE *f;
	int c;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	if ((f = fopen(path, "re"))) {
		while (fscanf(f, "%d", &c) == 1)
			kill_tree(c, -1);
		fclose(f);
	}
	if (pidfd >= 0)
		syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	else
		kill(pid, SIGKILL);
}

/* The program cannot have its pages: it must not run on without them. */
static noreturn void killed(struct filler *f, const char *fmt, const char *why)
{
	kill_tree(f->pid, f->pidfd);
	fprintf(stderr, "%s: pid %d: ", prog, (int)f->pid);
	fprintf(stderr, fmt, (unsigned long long)f->r.off, why);
	fprintf(stderr, "; killed\n");
	_exit(1);
}

/* The stream is lost. */
static noreturn void lost(struct filler *f, const char *how)
{
	char why[1024], fmt[64];

	snprintf(why, sizeof(why), "%s", err_get());
	/* A decompressor's reason says more than the cut it left. */
	img_input_fail(f->in);
	if (strcmp(err_get(), why))
		snprintf(why, sizeof(why), "%s", err_get());
	snprintf(fmt, sizeof(fmt), "the image stream %s at byte %%llu: %%s", how);
	killed(f, fmt, why);
}

/* Whether the stream ended early (a short read) or broke. */
static const char *how(void)
{
	return strncmp(err_get(), "image truncated", 15) ? "broke" : "ended";
}

/* A page the image does not hold: zero (EEXIST: it is in already). */
static void zero_page(struct filler *f, const struct mem *m, uint64_t addr)
{
	struct uffdio_zeropage z = {.range = {addr, f->ps}};
	struct uffdio_range w = {addr, f->ps};

	if (ioctl(m->fd, UFFDIO_ZEROPAGE, &z) && errno == EEXIST)
		ioctl(m->fd, UFFDIO_WAKE, &w);
}

static void log_event(struct filler *f, struct mem *m, uint64_t from, uint64_t to, uint64_t len,
		      int drop)
{
	if (m->nlog == MAX_LOG)
		killed(f, "at byte %llu of the image stream: %s",
		       "too many mremap, madvise and munmap calls on memory not in yet");
	m->log[m->nlog++] = (struct mem_ev){from, to, len, drop};
	m->moved |= !drop;
}

static void add_mem(struct filler *f, int fd, const struct mem *parent)
{
	struct mem *m = calloc(1, sizeof(*m));

	if (!m || f->nmem == MAX_MEMS)
		killed(f, "at byte %llu of the image stream: %s",
		       "too many children forked before every page was in");
	m->fd = fd;
	if (parent) {
		memcpy(m->log, parent->log, parent->nlog * sizeof(m->log[0]));
		m->nlog = parent->nlog;
		m->moved = parent->moved;
	}
	f->mem[f->nmem++] = m;
}

static void drop_mem(struct filler *f, size_t k)
{
	close(f->mem[k]->fd);
	free(f->mem[k]);
	f->mem[k] = f->mem[--f->nmem];
	if (!f->nmem)
		_exit(0); /* the program and its children exited */
}

/* What memory m's userfaultfd reported.  A fault below the stream's
 * position is on a hole: zeroed now; ahead (or anywhere once the memory
 * moved pages), remembered until the stream passes it (a page the stream
 * holds wakes its faults as it is copied). */
static void serve_mem(struct filler *f, struct mem *m)
{
	struct uffd_msg msg[64];
	size_t k = 0;
	ssize_t n;

	for (size_t i = 0; i < m->npending; i++)
		if (!m->moved && m->pending[i] < f->pos)
			zero_page(f, m, m->pending[i]);
		else
			m->pending[k++] = m->pending[i];
	m->npending = k;
	while ((n = read(m->fd, msg, sizeof(msg))) > 0)
		for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++) {
			const struct uffd_msg *e = &msg[i];
			uint64_t a = e->arg.pagefault.address & ~(f->ps - 1);

			if (e->event == UFFD_EVENT_PAGEFAULT && !m->moved && a < f->pos)
				zero_page(f, m, a);
			else if (e->event == UFFD_EVENT_PAGEFAULT && m->npending < MAX_PENDING)
				m->pending[m->npending++] = a;
			else if (e->event == UFFD_EVENT_FORK)
				add_mem(f, (int)e->arg.fork.ufd, m);
			else if (e->event == UFFD_EVENT_REMAP)
				log_event(f, m, e->arg.remap.from, e->arg.remap.to, e->arg.remap.len,
					  0);
			else if (e->event == UFFD_EVENT_REMOVE || e->event == UFFD_EVENT_UNMAP)
				log_event(f, m, e->arg.remove.start,
					  0, e->arg.remove.end - e->arg.remove.start, 1);
		}
}

static void serve_faults(struct filler *f)
{
	/* A fork adds a memory at the end: it is served in this turn too. */
	for (size_t i = 0; i < f->nmem; i++)
		serve_mem(f, f->mem[i]);
}

/* Where the stream's page at addr is in memory m now; 0 if m dropped it. */
static uint64_t where(const struct mem *m, uint64_t addr)
{
	for (size_t i = 0; i < m->nlog; i++) {
		const struct mem_ev *e = &m->log[i];
		if (addr < e->from || addr - e->from >= e->len)
			continue;
		if (e->drop)
			return 0;
		addr = e->to + (addr - e->from);
	}
	return addr;
}

/* len bytes at src into memory m at dst, *done of them filled (or in
 * already, or unmapped): 0; 1 if m is gone; 2 after an event that may
 * have moved the rest (the caller looks again where it goes); -1. */
static int copy_to(struct filler *f, struct mem *m, uint64_t dst, const unsigned char *src,
		   uint64_t len, uint64_t *done)
{
	*done = 0;
	while (*done < len) {
		struct uffdio_copy c = {.dst = dst + *done, .src = (uint64_t)(src + *done),
					.len = len - *done};
		if (ioctl(m->fd, UFFDIO_COPY, &c) == 0) {
			*done = len;
			break;
		}
		if (c.copy > 0)
			*done += c.copy;
		else if (errno == EEXIST) /* in already */
			*done += f->ps;
		else if (errno == EAGAIN) { /* an event to read first (fork, mremap...) */
			serve_faults(f);
			return 2;
		} else if (errno == ENOENT) {
			/* Moved or unmapped: the kernel queues the event after
			 * the change (mremap, munmap), and a copy in between
			 * finds no mapping.  Wait for it and look again; none
			 * within a second: gone without one. */
			struct pollfd p = {.fd = m->fd, .events = POLLIN};
			if (poll(&p, 1, 1000) == 1) {
				serve_faults(f);
				return 2;
			}
			*done += f->ps;
		} else if (errno == ESRCH)
			return 1; /* it exited */
		else {
			err_sys("cannot fill page %#llx", (unsigned long long)(dst + *done));
			return -1;
		}
	}
	return 0;
}

/* One chunk read (img_read_chunks): into its place in every memory, its
 * waiters woken. */
static int fill_chunk(void *arg, uint64_t addr, uint64_t n, uint32_t crc)
{
	struct filler *f = arg;

	(void)crc;
	for (size_t k = 0; k < f->nmem; k++) {
		struct mem *m = f->mem[k];
		uint64_t i = 0, done;
		int rc = 0;

		while (i < n && rc >= 0 && rc != 1) {
			uint64_t to = where(m, addr + i * f->ps);
			if (!to) {
				i++;
				continue;
			}
			/* Where the memory moved nothing, the rest in one go. */
			rc = copy_to(f, m, to, f->buf + i * f->ps, (m->nlog ? 1 : n - i) * f->ps,
				     &done);
			i += done / f->ps;
		}
		if (rc < 0)
			return -1;
		if (rc == 1)
			drop_mem(f, k--);
	}
	f->pos = addr + n * f->ps;
	serve_faults(f);
	return 0;
}

static const struct rst_map *late_map(const struct filler *f, uint64_t addr, uint64_t len)
{
	for (size_t i = 0; i < f->nmaps; i++)
		if (f->maps[i].late && f->maps[i].start <= addr && addr + len <= f->maps[i].end &&
		    addr + len > addr)
			return &f->maps[i];
	return NULL;
}

/* A record of late pages: every run in a late region, after the last.
 * One of up to RECORD_MAX bytes (ckpt-dump's are 4 MiB at most) is read
 * whole and its checksum checked before the program sees any of it; a
 * larger one is filled as it comes and checked at its end. */
static void fill_record(struct filler *f, const struct img_pages *p, const struct img_run *run,
			uint64_t start)
{
	uint64_t end = f->pos, len = p->npages * f->ps, off = 0;
	uint32_t crc = 0;

	for (uint32_t i = 0; i < p->nruns; i++) {
		if (run[i].addr < end || !late_map(f, run[i].addr, run[i].npages * f->ps)) {
			err_set("PAGES record at offset %llu: run at %#llx is not in lazy order",
				(unsigned long long)start, (unsigned long long)run[i].addr);
			lost(f, "broke");
		}
		end = run[i].addr + run[i].npages * f->ps;
	}
	if (len > RECORD_MAX) {
		f->buf = f->record;
		if (img_read_chunks(&f->r, p, run, &f->buf, CHUNK_PAGES, fill_chunk, f, NULL))
			lost(f, how());
		return;
	}
	if (img_read_data(&f->r, p, f->record, len, &crc) || img_data_end(&f->r, p, crc, NULL))
		lost(f, how());
	for (uint32_t i = 0; i < p->nruns; i++)
		for (uint64_t k = 0; k < run[i].npages; k += CHUNK_PAGES) {
			uint64_t n = run[i].npages - k < CHUNK_PAGES ? run[i].npages - k : CHUNK_PAGES;
			f->buf = f->record + off;
			if (fill_chunk(f, run[i].addr + k * f->ps, n, 0))
				lost(f, how());
			off += n * f->ps;
		}
}

/* Wait until the stream has more, serving faults meanwhile.  The program
 * gone (its pidfd) is not the end while children of it are filled. */
static void wait_stream(struct filler *f)
{
	for (;;) {
		struct pollfd p[2 + MAX_MEMS] = {{.fd = f->r.fd, .events = POLLIN},
						 {.fd = f->pidfd, .events = POLLIN}};
		for (size_t i = 0; i < f->nmem; i++)
			p[2 + i] = (struct pollfd){.fd = f->mem[i]->fd, .events = POLLIN};
		if (poll(p, 2 + f->nmem, -1) < 0 && errno != EINTR)
			return;
		if (p[1].revents && f->nmem == 1)
			_exit(0);
		if (p[1].revents)
			f->pidfd = -1; /* poll ignores it from now on */
		serve_faults(f);
		if (p[0].revents)
			return;
	}
}

static const char *filler_main(struct filler *f)
{
	struct rst_lazy_msg msg;
	struct img_run *run;

	/* Nothing: the restorer read the whole stream itself (no late
	 * pages), or failed and said why. */
	if (read_full(f->pipe, &msg, sizeof(msg)) != (ssize_t)sizeof(msg) ||
	    msg.magic != RST_LAZY_MAGIC || msg.p.nruns == 0 || msg.p.nruns > IMG_MAX_RUNS)
		_exit(0);
	run = malloc(msg.p.nruns * sizeof(*run));
	f->record = malloc(RECORD_MAX);
	if (!run || !f->record ||
	    read_full(f->pipe, run, msg.p.nruns * sizeof(*run)) !=
		(ssize_t)(msg.p.nruns * sizeof(*run)))
		lost(f, "broke");
	close(f->pipe);
	add_mem(f, f->uffd, NULL);
	f->r.off = msg.off;
	f->r.nrec = msg.nrec + 1;
	f->r.npages = msg.npages;
	fill_record(f, &msg.p, run, msg.start);
	free(run);
	for (;;) {
		struct img_rec rec;
		uint64_t start;
		void *pl;

		wait_stream(f);
		start = f->r.off;
		if (img_read_rec(&f->r, &rec, &pl))
			lost(f, how());
		if (rec.type == IMG_REC_END) {
			if (img_check_end(&f->r, &rec, pl))
				lost(f, "broke");
			free(pl);
			break;
		}
		if (rec.type != IMG_REC_PAGES) {
			err_set("record of type %u at offset %llu in the page data", rec.type,
				(unsigned long long)start);
			lost(f, "broke");
		}
		fill_record(f, pl, img_runs(rec.type, pl), start);
		free(pl);
	}
	f->in->r.off = f->r.off;
	if (img_input_end(f->in))
		lost(f, "broke");
	/* Every page is in: the registration goes with the userfaultfd, and
	 * a fault still waiting (on a hole) is retried and gets a zero page. */
	while (f->nmem)
		close(f->mem[--f->nmem]->fd);
	return NULL;
}

/* The filler's start in its process: only its own fds left open. */
static const char *run_filler(void *arg, int wfd, int sfd)
{
	struct filler *f = arg;
	int keep[] = {2, f->r.fd, f->in->status_fd, f->uffd, f->pipe, f->pidfd};
	int lo = 0, n = sizeof(keep) / sizeof(keep[0]);

	close(wfd);
	close(sfd);
	/* Not the terminal's: ^C in it is for the program. */
	setsid();
	prctl(PR_SET_NAME, "ckpt-fill");
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (keep[j] < keep[i]) {
				int t = keep[i];
				keep[i] = keep[j];
				keep[j] = t;
			}
	for (int i = 0; i < n; i++) {
		if (keep[i] < lo)
			continue;
		if (keep[i] > lo)
			close_range(lo, keep[i] - 1, 0);
		lo = keep[i] + 1;
	}
	close_range(lo, ~0U, 0);
	signal(SIGPIPE, SIG_IGN);
	return filler_main(f);
}

int rst_lazy_start(struct img_input *in, const struct rst_map *maps, size_t nmaps, int base,
		   int *uffd, int *lazy_fd)
{
	struct filler f = {.in = in, .r = in->r, .maps = maps, .nmaps = nmaps, .ps = 4096};
	int p[2] = {-1, -1}, out = -1, status = -1, rc = -1;

	f.ps = (uint64_t)sysconf(_SC_PAGESIZE);
	f.pid = getpid();
	f.uffd = uffd_open();
	f.pidfd = (int)syscall(SYS_pidfd_open, f.pid, 0);
	if (f.uffd < 0 || f.pidfd < 0 || pipe2(p, O_CLOEXEC)) {
		if (f.uffd >= 0)
			err_sys("--lazy from a stream: cannot make the filler's pidfd or pipe");
		goto out;
	}
	f.pipe = p[0];
	if (zio_spawn("filler", run_filler, &f, &out, &status))
		goto out;
	close(out);
	close(status);
	/* Ours go above the program's fds, as the restorer's others. */
	if ((*uffd = fcntl(f.uffd, F_DUPFD_CLOEXEC, base)) < 0 ||
	    (*lazy_fd = fcntl(p[1], F_DUPFD_CLOEXEC, base)) < 0) {
		err_sys("--lazy from a stream: cannot move the userfaultfd");
		goto out;
	}
	rc = 0;
out:
	if (f.uffd >= 0)
		close(f.uffd);
	if (f.pidfd >= 0)
		close(f.pidfd);
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	return rc;
}
