/* attrs.c: the ATTRS record, a process's attributes (format.h), written
 * and read back; the reader refuses values no kernel gives. */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "image/image.h"

_Static_assert(sizeof(struct img_attrs) == 352, "img_attrs layout");
_Static_assert(sizeof(struct img_attrs_thread) == 152, "img_attrs_thread layout");
_Static_assert(sizeof(struct img_seccomp_filter) == 8, "img_seccomp_filter layout");

#define FILTER_INSN 8 /* struct sock_filter */

static const char *const rlimit_names[IMG_NRLIMIT] = {
    "RLIMIT_CPU",      "RLIMIT_FSIZE", "RLIMIT_DATA",	"RLIMIT_STACK",
    "RLIMIT_CORE",     "RLIMIT_RSS",   "RLIMIT_NPROC",	"RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",  "RLIMIT_AS",    "RLIMIT_LOCKS",	"RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE", "RLIMIT_NICE",  "RLIMIT_RTPRIO", "RLIMIT_RTTIME"};

const char *img_rlimit_name(int k)
{
	return k >= 0 && k < IMG_NRLIMIT ? rlimit_names[k] : "?";
}

const char *img_policy_name(int policy)
{
	static const char *const names[] = {"SCHED_OTHER", "SCHED_FIFO", "SCHED_RR",
					    "SCHED_BATCH", "?",		 "SCHED_IDLE"};
	policy &= ~0x40000000; /* SCHED_RESET_ON_FORK */
	return policy >= 0 && policy <= 5 ? names[policy] : "?";
}

void img_attrs_free(struct attrs *a)
{
	if (!a)
		return;
	for (uint32_t i = 0; a->filters && i < a->d.nfilters; i++)
		free(a->filters[i].insns);
	free(a->filters);
	free(a->threads);
	free(a);
}

int img_write_attrs(struct img_writer *w, const struct attrs *a)
{
	size_t len = sizeof(a->d) + (size_t)a->d.nthreads * sizeof(*a->threads), off;
	unsigned char *buf;
	struct iovec v;
	int rc;

	for (uint32_t i = 0; i < a->d.nfilters; i++)
		len += sizeof(a->filters[i].d) + (size_t)a->filters[i].d.len * FILTER_INSN;
	if (!(buf = malloc(len))) {
		err_set("out of memory");
		return -1;
	}
	memcpy(buf, &a->d, sizeof(a->d));
	off = sizeof(a->d);
	memcpy(buf + off, a->threads, (size_t)a->d.nthreads * sizeof(*a->threads));
	off += (size_t)a->d.nthreads * sizeof(*a->threads);
	for (uint32_t i = 0; i < a->d.nfilters; i++) {
		memcpy(buf + off, &a->filters[i].d, sizeof(a->filters[i].d));
		off += sizeof(a->filters[i].d);
		memcpy(buf + off, a->filters[i].insns, (size_t)a->filters[i].d.len * FILTER_INSN);
		off += (size_t)a->filters[i].d.len * FILTER_INSN;
	}
	v = (struct iovec){buf, len};
	rc = img_write_rec(w, IMG_REC_ATTRS, &v, 1);
	free(buf);
	return rc;
}

/* The values a kernel gives: anything else is a damaged or forged record. */
static int check_fixed(const struct img_attrs *d, uint32_t nthreads)
{
	if ((d->flags & ~IMG_ATTR_FLAGS) || (d->membarrier & ~IMG_MEMB_FLAGS) ||
	    d->nthreads != nthreads || d->dumpable > 2 || d->pdeathsig < 0 ||
	    d->pdeathsig > IMG_NSIG || d->oom_score_adj < -1000 || d->oom_score_adj > 1000 ||
	    d->seccomp > IMG_SECCOMP_FILTER || d->nfilters > IMG_MAX_FILTERS ||
	    (d->seccomp == IMG_SECCOMP_FILTER) != (d->nfilters > 0) || d->pad) {
		err_set(
		    "ATTRS record: field out of range (flags %#x, membarrier %#x, threads %u of "
		    "%u, dumpable %u, pdeathsig %d, oom_score_adj %d, seccomp %u, filters %u)",
		    d->flags, d->membarrier, d->nthreads, nthreads, d->dumpable, d->pdeathsig,
		    d->oom_score_adj, d->seccomp, d->nfilters);
		return -1;
	}
	for (int i = 0; i < IMG_NRLIMIT; i++)
		if (d->rlim[i].cur > d->rlim[i].max) {
			err_set("ATTRS record: limit %d: soft %llu above hard %llu", i,
				(unsigned long long)d->rlim[i].cur,
				(unsigned long long)d->rlim[i].max);
			return -1;
		}
	return 0;
}

static int check_thread(const struct img_attrs_thread *t, uint32_t k)
{
	int policy = t->policy & ~0x40000000 /* SCHED_RESET_ON_FORK */;
	int rt = policy == 1 || policy == 2; /* SCHED_FIFO, SCHED_RR */

	if ((policy != 0 && !rt && policy != 3 && policy != 5) || t->priority < 0 ||
	    t->priority > 99 || (!rt && t->priority) || (rt && !t->priority) || t->nice < -20 ||
	    t->nice > 19) {
		err_set("ATTRS record: thread %u: policy %d, priority %d, nice %d out of range", k,
			t->policy, t->priority, t->nice);
		return -1;
	}
	return 0;
}

int img_parse_attrs(struct image *im, const void *buf, uint64_t len)
{
	const unsigned char *p = buf, *end = p + len;
	struct attrs *a;

	if (im->attrs) {
		err_set("second ATTRS record");
		return -1;
	}
	if (len < sizeof(a->d)) {
		err_set("ATTRS record: too short");
		return -1;
	}
	if (!(a = calloc(1, sizeof(*a)))) {
		err_set("out of memory");
		return -1;
	}
	im->attrs = a;
	memcpy(&a->d, p, sizeof(a->d));
	p += sizeof(a->d);
	/* The counts are checked before they size anything. */
	if (check_fixed(&a->d, im->proc.nthreads)) {
		a->d.nfilters = 0;
		return -1;
	}
	if ((uint64_t)(end - p) < (uint64_t)a->d.nthreads * sizeof(*a->threads)) {
		a->d.nfilters = 0;
		err_set("ATTRS record: too short for %u threads", a->d.nthreads);
		return -1;
	}
	a->threads = calloc(a->d.nthreads + 1, sizeof(*a->threads));
	a->filters = calloc(a->d.nfilters + 1, sizeof(*a->filters));
	if (!a->threads || !a->filters) {
		err_set("out of memory");
		return -1;
	}
	memcpy(a->threads, p, (size_t)a->d.nthreads * sizeof(*a->threads));
	p += (size_t)a->d.nthreads * sizeof(*a->threads);
	for (uint32_t k = 0; k < a->d.nthreads; k++)
		if (check_thread(&a->threads[k], k))
			return -1;
	for (uint32_t i = 0; i < a->d.nfilters; i++) {
		struct seccomp_filter *f = &a->filters[i];

		if ((size_t)(end - p) < sizeof(f->d)) {
			err_set("ATTRS record: filter %u cut short", i);
			return -1;
		}
		memcpy(&f->d, p, sizeof(f->d));
		p += sizeof(f->d);
		if (f->d.len < 1 || f->d.len > IMG_MAX_FILTER_LEN || (f->d.flags & ~2u) ||
		    (uint64_t)(end - p) < (uint64_t)f->d.len * FILTER_INSN) {
			err_set(
			    "ATTRS record: filter %u: %u instructions, flags %#x, %zu bytes left",
			    i, f->d.len, f->d.flags, (size_t)(end - p));
			f->d.len = 0;
			return -1;
		}
		if (!(f->insns = malloc((size_t)f->d.len * FILTER_INSN))) {
			err_set("out of memory");
			return -1;
		}
		memcpy(f->insns, p, (size_t)f->d.len * FILTER_INSN);
		p += (size_t)f->d.len * FILTER_INSN;
	}
	if (p != end) {
		err_set("ATTRS record: %zu bytes too many", (size_t)(end - p));
		return -1;
	}
	return 0;
}
