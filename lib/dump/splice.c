/* splice.c: page data that ckpt-dump never copies (--splice).
 *
 * The process itself moves its pages into a pipe: an injected vmsplice(2)
 * (ckpt injects system calls, never code) of up to a pipe-full, which
 * takes references to the pages rather than copying them, and we
 * splice(2) the pipe on to the image's fd: to /dev/null nothing is
 * copied, to a file once (into the page cache), where a dump that reads
 * with process_vm_readv and writes copies twice.
 *
 * The pipe is the process's own (an injected pipe2): it needs its write
 * end, and a process may not be able to reach ours (root's ckpt-dump of a
 * user's program); we take the read end with pidfd_getfd, as ptrace
 * allows us.  A pipe holds at most /proc/sys/fs/pipe-max-size (1 MiB)
 * without CAP_SYS_RESOURCE: one injected call per MiB.
 *
 * What is lost: vmsplice without SPLICE_F_GIFT lends the pages, so their
 * bytes are never in our hands while the program is frozen: no search for
 * all-zero pages (a page that maps the zero page is still a hole, from
 * PAGEMAP_SCAN) and no CRC-32C of the page data then.  Into a regular
 * file, a thread reads each record back from the page cache once it is
 * whole and writes its CRC in (the header's flag comes off at the end,
 * dump_checksum_spliced); into a pipe or /dev/null the image's header
 * says IMG_HDR_NO_DATA_CRC.
 * Lent pages must be consumed before the program runs or writes them
 * again: a file or /dev/null takes its copy during splice(2); an output
 * pipe holds the references until its reader reads them, so splice_end
 * waits for it to be empty; a socket could hold them until the peer
 * acknowledges, and is never spliced to. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "dump/splice-internal.h"

/* Bytes spliced into a regular file a call, at most: the page cache
 * takes folios as large as the write, and the large ones cost a virtual
 * machine whose host backs its memory lazily (image.c, W_LARGE). */
#define SPL_FILE_CHUNK (256u << 10)

/* iovecs the scratch area below the process's stack holds. */
#define SPL_IOVS (INJ_SCRATCH / sizeof(struct iovec))

int splice_wanted(pid_t pid, int out, const struct dump_opts *o)
{
	struct stat st;
	int ok;

	if (o->splice == DUMP_SPLICE_OFF || o->incr || o->cow)
		return 0;
	if (fstat(out, &st)) {
		err_sys("pid %d: cannot stat the image's output", pid);
		return -1;
	}
	/* What takes its copy during splice(2) or holds it until read:
	 * a file, a pipe, /dev/null (character device 1:3). */
	ok = S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode) ||
	     (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3));
	if (o->splice == DUMP_SPLICE_ON && !ok) {
		err_set("pid %d: --splice: the image's output is %s, which could keep the pages "
			"lent to it after the program runs on (a file, a pipe or /dev/null takes "
			"them before); not supported",
			pid, S_ISSOCK(st.st_mode) ? "a socket" : "a device");
		return -1;
	}
	/* O_APPEND: splice(2) refuses it (drain would copy). */
	if (S_ISREG(st.st_mode) && (fcntl(out, F_GETFL) & O_APPEND) && o->splice != DUMP_SPLICE_ON)
		return 0;
	/* Only when asked: a page the program wrote zeros into is stored
	 * (make bench's halfzero image is twice the size), a file's dump was
	 * not faster than cat (BENCH_ONLY=zerocopy), a pipe's reader holds
	 * the program frozen until it has read the last MiB, and one that
	 * splices on (pv(1)) would pass the lent pages on.  Into /dev/null
	 * it would pay, but a dump there is only ever a measurement: the
	 * default stays what a user's dump does. */
	return ok && o->splice == DUMP_SPLICE_ON;
}

int splice_region(const struct region *r)
{
	/* vmsplice takes the pages as the process may read them (no
	 * FOLL_FORCE); the kernel's own and hugetlbfs pages, rings and
	 * everything a dump stores whole are copied as before. */
	return (r->d.prot & PROT_READ) && !r->all_pages &&
	       (r->d.kind == IMG_RGN_ANON || r->d.kind == IMG_RGN_HEAP ||
		r->d.kind == IMG_RGN_STACK || r->d.kind == IMG_RGN_FILE) &&
	       !(r->d.flags & (IMG_RGN_HUGETLB | IMG_RGN_SHARED | IMG_RGN_GUARD));
}

int splice_zero_pages(int pmfd, uint64_t start, uint64_t n, long ps, uint64_t *pm)
{
	struct proc_range *z;
	size_t nz;

	if (proc_scan_ranges(pmfd, start, start + n * ps, PM_SCAN_PFNZERO, &z, &nz)) {
		err_sys("cannot scan pagemap at %#llx", (unsigned long long)start);
		return -1;
	}
	for (size_t i = 0; i < nz; i++)
		for (uint64_t p = z[i].start; p < z[i].end; p += ps)
			pm[(p - start) / ps] &= ~PM_PRESENT;
	free(z);
	return 0;
}

/* One injected call with every catchable signal held off: between the
 * call's registers going in and coming out, ckpt-dump must not stop. */
static int call(struct splicer *s, long nr, const uint64_t a[6], int64_t *ret)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	rc = inj_syscall(&s->c, nr, a, ret);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* Move len bytes from pipe k to the image. */
static int drain(struct splicer *s, int k, uint64_t len)
{
	while (len > 0) {
		uint64_t most = s->regular && len > SPL_FILE_CHUNK ? SPL_FILE_CHUNK : len;
		ssize_t n = s->buf ? read(s->rfd[k], s->buf, most < s->cap ? most : s->cap)
				   : splice(s->rfd[k], NULL, s->out, NULL, most, SPLICE_F_MOVE);
		/* An output splice(2) does not take (O_APPEND, a file system
		 * without splice_write): through a buffer of ours. */
		if (n < 0 && errno == EINVAL && !s->buf) {
			if (!(s->buf = malloc(s->cap))) {
				err_set("out of memory");
				return -1;
			}
			continue;
		}
		if (n > 0 && s->buf && write_all(s->out, s->buf, n))
			n = -1;
		if (n < 0 && errno == EINTR && !(s->cancel && *s->cancel))
			continue;
		if (n < 0 && errno == EINTR) {
			err_set("interrupted by a signal while writing the image");
			return -1;
		}
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			err_sys("cannot write image at offset %llu", (unsigned long long)s->at);
			return -1;
		}
		len -= n;
		s->at += n;
	}
	return 0;
}

static void *drain_main(void *arg)
{
	struct splicer *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		int k, rc;

		while (!s->failed && s->drained == s->posted && !s->quit)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->failed || s->drained == s->posted)
			break;
		k = s->drained % SPL_PIPES;
		pthread_mutex_unlock(&s->mu);
		rc = drain(s, k, s->len[k]);
		pthread_mutex_lock(&s->mu);
		if (rc) {
			s->failed = 1;
			snprintf(s->why, sizeof(s->why), "%s", err_get());
		}
		s->drained++;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Wait until at most busy pipe-fulls are left to drain: -1 (the drain's
 * error, or a cancel) if it failed. */
static int drained(struct splicer *s, uint64_t busy)
{
	int failed;

	if (!s->threaded)
		return 0;
	pthread_mutex_lock(&s->mu);
	while (!s->failed && s->posted - s->drained > busy) {
		if (s->cancel && *s->cancel)
			break;
		pthread_cond_wait(&s->cv, &s->mu);
	}
	failed = s->failed;
	pthread_mutex_unlock(&s->mu);
	if (failed) {
		err_set("%s", s->why);
		return -1;
	}
	if (s->cancel && *s->cancel) {
		err_set("interrupted by a signal while writing the image");
		return -1;
	}
	return 0;
}

/* Pipe k holds len bytes: to be drained (by the thread, or now). */
static int post(struct splicer *s, int k, uint64_t len)
{
	if (!s->threaded)
		return drain(s, k, len);
	pthread_mutex_lock(&s->mu);
	s->len[k] = len;
	s->posted++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* The drain thread. */
static void drainer_start(struct splicer *s)
{

	if (pthread_mutex_init(&s->mu, NULL))
		return;
	if (pthread_cond_init(&s->cv, NULL)) {
		pthread_mutex_destroy(&s->mu);
		return;
	}
	if (pthread_create(&s->drainer, NULL, drain_main, s)) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		return;
	}
	s->threaded = 1;
}

/* While we wait on the drain thread (or run calls in the process),
 * SIGINT, SIGTERM and SIGHUP are its alone: its splice into a stuck
 * reader is what they must end.  Otherwise ours (the kernel gives a
 * process's signal to its first thread that takes it): a write of ours
 * into a stuck reader is then what they end. */
static void hold(struct splicer *s, int on)
{
	sigset_t set;

	if (!s->threaded)
		return;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (on)
		pthread_sigmask(SIG_BLOCK, &set, &s->mask);
	else
		pthread_sigmask(SIG_SETMASK, &s->mask, NULL);
}

static int drainer_stop(struct splicer *s)
{
	int rc;

	if (!s->threaded)
		return 0;
	hold(s, 1);
	pthread_mutex_lock(&s->mu);
	s->quit = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	/* Cancelled while it splices into a stuck reader: the handler that
	 * set the flag ends that splice too. */
	if (s->cancel && *s->cancel)
		pthread_kill(s->drainer, SIGTERM);
	pthread_join(s->drainer, NULL);
	hold(s, 0);
	rc = s->failed || s->drained != s->posted ? -1 : 0;
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	s->threaded = 0;
	return rc;
}

/* One pipe in the process: its write end there, its read end here (-1
 * each where it could not be had); -1 on a failure of ptrace. */
static int one_pipe(struct splicer *s, int k)
{
	uint64_t a[6] = {s->c.scratch, O_CLOEXEC};
	int64_t ret;
	int fds[2], pfd;

	if (call(s, SYS_pipe2, a, &ret) || inj_peek(&s->c, fds, sizeof(fds)))
		return -1;
	if (ret < 0)
		return 0;
	s->tw[k] = fds[1];
	pfd = syscall(SYS_pidfd_open, s->pid, 0);
	if (pfd >= 0) {
		s->rfd[k] = syscall(SYS_pidfd_getfd, pfd, fds[0], 0);
		close(pfd);
	}
	memset(a, 0, sizeof(a));
	a[0] = fds[0];
	return call(s, SYS_close, a, &ret);
}

int splice_begin(struct splicer *s, pid_t pid, uint64_t gadget, int seccomp, int out,
		 const volatile int *cancel)
{
	sigset_t all, old;
	struct stat st;
	int rc;

	memset(s, 0, sizeof(*s));
	s->pid = pid;
	s->out = out;
	s->cancel = cancel;
	for (int k = 0; k < SPL_PIPES; k++) {
		s->rfd[k] = -1;
		s->tw[k] = -1;
	}
	/* No system call injected into a program with seccomp filters: one
	 * could kill it. */
	if (seccomp)
		return 1;
	s->to_pipe = fstat(out, &st) == 0 && S_ISFIFO(st.st_mode);
	s->regular = S_ISREG(st.st_mode);
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	rc = inj_prepare(&s->c, pid, gadget);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return -1;
	s->cap = 1 << 20;
	for (int k = 0; k < SPL_PIPES; k++) {
		long size;

		if (one_pipe(s, k)) {
			splice_end(s, NULL);
			return -1;
		}
		if (s->rfd[k] < 0)
			return splice_end(s, NULL) ? -1 : 1;
		/* A pipe-full per injected call: as large as we may make it. */
		if (fcntl(s->rfd[k], F_SETPIPE_SZ, 1 << 20) < 0)
			fcntl(s->rfd[k], F_SETPIPE_SZ, 256 << 10);
		size = fcntl(s->rfd[k], F_GETPIPE_SZ);
		if (size <= 0)
			return splice_end(s, NULL) ? -1 : 1;
		if ((uint64_t)size < s->cap)
			s->cap = size;
	}
	drainer_start(s);
	return 0;
}

/* The process moves iov[0..n) (at most a pipe's size) into the next
 * pipe, once the drain thread has emptied it; the thread moves them on. */
static int fill(struct splicer *s, struct iovec *iov, int n)
{
	while (n > 0) {
		struct iovec r = {(void *)s->c.scratch, n * sizeof(*iov)};
		struct iovec l = {iov, n * sizeof(*iov)};
		int k = s->calls % SPL_PIPES;
		uint64_t a[6] = {s->tw[k], s->c.scratch, n, SPLICE_F_NONBLOCK};
		int64_t ret;

		if (drained(s, SPL_PIPES - 1))
			return -1;
		if (process_vm_writev(s->pid, &l, 1, &r, 1, 0) != (ssize_t)l.iov_len) {
			err_sys("pid %d: cannot write to its stack", s->pid);
			return -1;
		}
		if (call(s, SYS_vmsplice, a, &ret))
			return -1;
		s->calls++;
		if (ret <= 0) {
			errno = ret < 0 ? (int)-ret : EIO;
			err_sys("pid %d: vmsplice of its memory at %#llx", s->pid,
				(unsigned long long)(uintptr_t)iov[0].iov_base);
			return -1;
		}
		if (post(s, k, ret))
			return -1;
		/* What the pipe did not take: the rest of the vector. */
		while (n > 0 && (uint64_t)ret >= iov[0].iov_len) {
			ret -= iov[0].iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov[0].iov_base = (char *)iov[0].iov_base + ret;
			iov[0].iov_len -= ret;
		}
	}
	return 0;
}

/* The thread that checksums spliced records (dump_spliced.crc). */
struct splice_crc {
	int fd; /* the image, opened anew to be read too (-o's file and
		 * "> FILE" are write-only) */
	size_t ready, done; /* records whole in the file; checksummed */
	int quit, failed;
	char why[512];
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static int checksum_one(int out, int64_t base, uint64_t r, unsigned char *buf, size_t bufsz);

static void *crc_main(void *arg)
{
	struct dump_spliced *l = arg;
	struct splice_crc *t = l->crc;
	size_t bufsz = 1 << 20;
	unsigned char *buf = malloc(bufsz);

	pthread_mutex_lock(&t->mu);
	if (!buf) {
		t->failed = 1;
		snprintf(t->why, sizeof(t->why), "out of memory");
	}
	for (;;) {
		uint64_t r;
		int rc;

		while (!t->failed && t->done == t->ready && !t->quit)
			pthread_cond_wait(&t->cv, &t->mu);
		if (t->failed || t->done == t->ready)
			break;
		r = l->recs[t->done];
		pthread_mutex_unlock(&t->mu);
		rc = checksum_one(t->fd, l->base, r, buf, bufsz);
		pthread_mutex_lock(&t->mu);
		if (rc) {
			t->failed = 1;
			snprintf(t->why, sizeof(t->why), "%s", err_get());
		}
		t->done++;
	}
	pthread_mutex_unlock(&t->mu);
	free(buf);
	return NULL;
}

/* The thread, with every signal blocked: they are the dump's to take. */
static int crc_start(struct dump_spliced *l, int out)
{
	struct splice_crc *t = calloc(1, sizeof(*t));
	sigset_t all, old;
	char path[64];
	int rc;

	if (!t) {
		err_set("out of memory");
		return -1;
	}
	t->fd = open(fmt_path(path, sizeof(path), "/proc/self/fd/%d", out), O_RDWR | O_CLOEXEC);
	if (t->fd < 0) {
		free(t);
		return 0; /* the records stay unchecked, as into a pipe */
	}
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	l->crc = t;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&t->thread, NULL, crc_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		t->failed = 1;
		snprintf(t->why, sizeof(t->why), "cannot start a thread: %s", strerror(rc));
		t->quit = 2; /* no thread to join */
	}
	return 0;
}

/* A record about to start at stream offset off, to checksum once it is
 * whole (publish). */
static int note(struct splicer *s, uint64_t off)
{
	struct dump_spliced *l = s->log;

	if (!l->n) {
		off_t pos = lseek(s->out, 0, SEEK_CUR);
		if (pos < 0 || (uint64_t)pos < off || crc_start(l, s->out)) {
			s->log = NULL; /* not where we can find it again */
			return 0;
		}
		l->base = pos - off;
	}
	if (!l->crc) {
		s->log = NULL;
		return 0;
	}
	pthread_mutex_lock(&l->crc->mu);
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		uint64_t *p = realloc(l->recs, cap * sizeof(*p));
		if (!p) {
			pthread_mutex_unlock(&l->crc->mu);
			err_set("out of memory");
			return -1;
		}
		l->recs = p;
		l->cap = cap;
	}
	l->recs[l->n++] = off;
	pthread_mutex_unlock(&l->crc->mu);
	return 0;
}

/* The record noted last is whole in the file. */
static void publish(struct splicer *s)
{
	struct splice_crc *t = s->log->crc;

	pthread_mutex_lock(&t->mu);
	t->ready = s->log->n;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

int splice_pages(struct splicer *s, struct img_writer *w, const struct img_run *runs,
		 int nruns, uint64_t npages)
{
	long ps = sysconf(_SC_PAGESIZE);
	struct iovec iov[SPL_IOVS];
	uint64_t len = 0;
	int n = 0;

	if (s->log && note(s, w->off))
		return -1;
	/* The head follows the last record's data (splice_pages waits for
	 * it at its end), and the drain thread follows the head. */
	if (img_write_pages_head(w, runs, nruns, npages))
		return -1;
	s->at = w->off - npages * ps;
	hold(s, 1);
	for (int i = 0; i < nruns; i++) {
		uint64_t addr = runs[i].addr, left = runs[i].npages * ps;

		while (left > 0) {
			uint64_t k = left < s->cap - len ? left : s->cap - len;

			iov[n++] = (struct iovec){(void *)(uintptr_t)addr, k};
			len += k;
			addr += k;
			left -= k;
			if (len == s->cap || n == (int)SPL_IOVS) {
				if (fill(s, iov, n)) {
					hold(s, 0);
					return -1;
				}
				n = 0;
				len = 0;
			}
		}
	}
	if ((n && fill(s, iov, n)) || drained(s, 0)) {
		hold(s, 0);
		return -1;
	}
	hold(s, 0);
	if (s->log)
		publish(s);
	return 0;
}

int splice_end(struct splicer *s, const volatile int *cancel)
{
	int rc = 0;

	/* The drain first: what it has not taken out of the pipes may go
	 * with them. */
	if (drainer_stop(s))
		rc = -1;
	for (int k = 0; k < SPL_PIPES; k++)
		if (s->tw[k] >= 0) {
			uint64_t a[6] = {s->tw[k]};
			int64_t ret;
			if (call(s, SYS_close, a, &ret))
				rc = -1;
			s->tw[k] = -1;
		}
	if (s->c.infected) {
		sigset_t all, old;
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, &old);
		if (inj_cure(&s->c))
			rc = -1;
		sigprocmask(SIG_SETMASK, &old, NULL);
	}
	for (int k = 0; k < SPL_PIPES; k++) {
		if (s->rfd[k] >= 0)
			close(s->rfd[k]);
		s->rfd[k] = -1;
	}
	free(s->buf);
	s->buf = NULL;
	/* The output pipe holds references to the process's pages until
	 * its reader takes them: until then the process must not run. */
	while (rc == 0 && s->to_pipe && s->calls) {
		struct timespec ms = {0, 1000000};
		int left = 0;

		if (ioctl(s->out, FIONREAD, &left) || left == 0)
			break;
		if (cancel && *cancel) {
			err_set("interrupted by a signal while the image's reader took the last "
				"page data");
			return -1;
		}
		nanosleep(&ms, NULL);
	}
	return rc;
}

/* pread or pwrite all of len bytes at off. */
static int at(int fd, void *buf, size_t len, off_t off, int write)
{
	while (len > 0) {
		ssize_t n = write ? pwrite(fd, buf, len, off) : pread(fd, buf, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			err_sys("cannot %s the image at offset %lld", write ? "write" : "read back",
				(long long)off);
			return -1;
		}
		buf = (char *)buf + n;
		len -= n;
		off += n;
	}
	return 0;
}

/* The record at stream offset r: its data's checksum written in. */
static int checksum_one(int out, int64_t base, uint64_t r, unsigned char *buf, size_t bufsz)
{
	uint64_t ps = sysconf(_SC_PAGESIZE), head, left, off;
	struct img_rec *rec = (struct img_rec *)buf;
	struct img_pages *p = (struct img_pages *)(buf + sizeof(*rec));
	uint32_t crc = 0;

	if (at(out, buf, sizeof(*rec) + sizeof(*p), base + r, 0))
		return -1;
	if (rec->type != IMG_REC_PAGES || p->nruns == 0 || p->nruns > IMG_MAX_RUNS) {
		err_set("the image changed under ckpt-dump at offset %llu", (unsigned long long)r);
		return -1;
	}
	head = sizeof(*rec) + sizeof(*p) + (uint64_t)p->nruns * sizeof(struct img_run);
	head += (ps - (r + head) % ps) % ps;
	if (head > bufsz || at(out, buf, head, base + r, 0))
		return -1;
	for (off = r + head, left = p->npages * ps; left > 0;) {
		size_t n = left < bufsz - head ? left : bufsz - head;
		if (at(out, buf + head, n, base + off, 0))
			return -1;
		crc = img_crc(crc, buf + head, n);
		off += n;
		left -= n;
	}
	p->data_crc = crc;
	rec->crc = 0;
	rec->crc = img_crc(0, buf, head);
	return at(out, buf, sizeof(*rec) + sizeof(*p), base + r, 1);
}

int dump_checksum_spliced(struct dump_spliced *sp)
{
	struct splice_crc *t = sp->crc;
	struct img_header h;
	int rc = -1;

	if (!t)
		goto out;
	pthread_mutex_lock(&t->mu);
	if (t->quit != 2) {
		t->quit = 1;
		pthread_cond_broadcast(&t->cv);
		pthread_mutex_unlock(&t->mu);
		pthread_join(t->thread, NULL);
	} else {
		pthread_mutex_unlock(&t->mu);
	}
	if (t->failed || t->done != sp->n) {
		err_set("%s", t->failed ? t->why : "records left unchecked");
		goto out;
	}
	/* Every record checksummed: the header says so last, so that an
	 * image cut short here is still whole (only unchecked). */
	if (at(t->fd, &h, sizeof(h), sp->base, 0))
		goto out;
	h.flags &= ~IMG_HDR_NO_DATA_CRC;
	h.crc = 0;
	h.crc = img_crc(0, &h, sizeof(h));
	rc = at(t->fd, &h, sizeof(h), sp->base, 1);
out:
	if (!t && !sp->n)
		rc = 0;
	if (t) {
		close(t->fd);
		pthread_cond_destroy(&t->cv);
		pthread_mutex_destroy(&t->mu);
		free(t);
	}
	free(sp->recs);
	memset(sp, 0, sizeof(*sp));
	return rc;
}
