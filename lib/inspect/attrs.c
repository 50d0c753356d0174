/* attrs.c: ckpt-inspect's view of a process's attributes (the ATTRS
 * record): only what differs from a process left as it started -- limits
 * other than ckpt-inspect's own, a thread's scheduling other than
 * SCHED_OTHER at nice 0 with the 50 us timer slack on CPUs 0..n-1, prctl
 * state set, capabilities other than a plain process's (none; root's:
 * its bounding set, which is ckpt-inspect's), a sandbox. */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "base/base.h"
#include "inspect/inspect.h"

#define DEFAULT_SLACK 50000

static int limit_differs(const struct img_attrs *d, int k)
{
	struct rlimit rl;

	return getrlimit(k, &rl) || d->rlim[k].cur != rl.rlim_cur || d->rlim[k].max != rl.rlim_max;
}

/* CPUs 0..n-1 for some n: what a process not pinned has. */
static int all_cpus(const uint64_t *mask)
{
	int k = 0;

	while (k < 1024 && (mask[k / 64] >> (k % 64) & 1))
		k++;
	for (int j = k; j < 1024; j++)
		if (mask[j / 64] >> (j % 64) & 1)
			return 0;
	return k > 0;
}

static int thread_differs(const struct img_attrs_thread *t)
{
	return t->policy || t->priority || t->nice || t->timerslack_ns != DEFAULT_SLACK ||
	       !all_cpus(t->affinity);
}

/* "0-3,5" */
static void put_cpus(FILE *f, const uint64_t *mask)
{
	const char *sep = "";

	for (int k = 0; k < 1024; k++) {
		int j = k;

		if (!(mask[k / 64] >> (k % 64) & 1))
			continue;
		while (j + 1 < 1024 && (mask[(j + 1) / 64] >> ((j + 1) % 64) & 1))
			j++;
		fprintf(f, j > k ? "%s%d-%d" : "%s%d", sep, k, j);
		sep = ",";
		k = j;
	}
}

/* Root's capabilities are its bounding set, anyone else's none; the
 * bounding set as ckpt-inspect's own. */
static int caps_differ(const struct image *im)
{
	const struct img_attrs *d = &im->attrs->d;
	uint64_t full = im->proc.uid == 0 ? d->cap_bnd : 0, bnd = 0;

	for (int c = 0; c < 64; c++)
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1)
			bnd |= 1ull << c;
	return d->cap_eff != full || d->cap_prm != full || d->cap_inh || d->cap_amb ||
	       d->cap_bnd != bnd;
}

static const char *const memb_names[] = {"private-expedited", "sync-core", "rseq"};

void inspect_attrs_text(FILE *f, const struct image *im)
{
	const struct attrs *a = im->attrs;
	const struct img_attrs *d;

	if (!a)
		return;
	d = &a->d;
	for (int k = 0; k < IMG_NRLIMIT; k++)
		if (limit_differs(d, k))
			fprintf(f, "attr:     limit %s soft %lld hard %lld\n", img_rlimit_name(k),
				(long long)d->rlim[k].cur, (long long)d->rlim[k].max);
	for (uint32_t i = 0; i < d->nthreads; i++) {
		const struct img_attrs_thread *t = &a->threads[i];

		if (!thread_differs(t))
			continue;
		fprintf(f, "attr:     thread %d %s%s priority %d nice %d timerslack %llu cpus ",
			t->tid, img_policy_name(t->policy),
			(t->policy & 0x40000000) ? "|SCHED_RESET_ON_FORK" : "", t->priority,
			t->nice, (unsigned long long)t->timerslack_ns);
		put_cpus(f, t->affinity);
		fputc('\n', f);
	}
	if (d->personality)
		fprintf(f, "attr:     personality %#x\n", d->personality);
	if (d->oom_score_adj)
		fprintf(f, "attr:     oom_score_adj %d\n", d->oom_score_adj);
	if (d->flags & IMG_ATTR_LOGINUID)
		fprintf(f, "attr:     loginuid %u\n", d->loginuid);
	if (d->flags & IMG_ATTR_SUBREAPER)
		fprintf(f, "attr:     child subreaper\n");
	if (d->flags & IMG_ATTR_THP_DISABLE)
		fprintf(f, "attr:     THP disabled\n");
	if (d->flags & IMG_ATTR_NO_NEW_PRIVS)
		fprintf(f, "attr:     no_new_privs\n");
	if (d->dumpable != 1)
		fprintf(f, "attr:     dumpable %u\n", d->dumpable);
	if (d->pdeathsig)
		fprintf(f, "attr:     parent death signal %d\n", d->pdeathsig);
	for (int k = 0; k < 3; k++)
		if (d->membarrier >> k & 1)
			fprintf(f, "attr:     membarrier %s\n", memb_names[k]);
	if (d->spec_store >= 0 && (d->spec_store & ~2) > 1)
		fprintf(f, "attr:     speculation store bypass %#x\n", d->spec_store);
	if (d->spec_ib >= 0 && (d->spec_ib & ~2) > 1)
		fprintf(f, "attr:     speculation indirect branch %#x\n", d->spec_ib);
	if (caps_differ(im))
		fprintf(f,
			"attr:     capabilities effective %#llx permitted %#llx inheritable %#llx "
			"bounding %#llx ambient %#llx\n",
			(unsigned long long)d->cap_eff, (unsigned long long)d->cap_prm,
			(unsigned long long)d->cap_inh, (unsigned long long)d->cap_bnd,
			(unsigned long long)d->cap_amb);
	if (d->securebits)
		fprintf(f, "attr:     securebits %#x\n", d->securebits);
	for (uint32_t k = 0; k < d->nfilters; k++)
		fprintf(f, "attr:     seccomp filter %u: %u instructions%s\n", k,
			a->filters[k].d.len, a->filters[k].d.flags ? " (log)" : "");
}

void inspect_attrs_json(FILE *f, const struct image *im)
{
	const struct attrs *a = im->attrs;
	const struct img_attrs *d;
	const char *sep = "";

	if (!a)
		return;
	d = &a->d;
	fprintf(f, "\"attrs\":{\"limits\":[");
	for (int k = 0; k < IMG_NRLIMIT; k++)
		if (limit_differs(d, k)) {
			fprintf(f, "%s{\"name\":\"%s\",\"soft\":%lld,\"hard\":%lld}", sep,
				img_rlimit_name(k), (long long)d->rlim[k].cur,
				(long long)d->rlim[k].max);
			sep = ",";
		}
	fprintf(f, "],\"threads\":[");
	sep = "";
	for (uint32_t i = 0; i < d->nthreads; i++) {
		const struct img_attrs_thread *t = &a->threads[i];

		if (!thread_differs(t))
			continue;
		fprintf(f,
			"%s{\"tid\":%d,\"policy\":\"%s\",\"reset_on_fork\":%s,\"priority\":%d,"
			"\"nice\":%d,\"timerslack_ns\":%llu,\"cpus\":\"",
			sep, t->tid, img_policy_name(t->policy),
			(t->policy & 0x40000000) ? "true" : "false", t->priority, t->nice,
			(unsigned long long)t->timerslack_ns);
		put_cpus(f, t->affinity);
		fprintf(f, "\"}");
		sep = ",";
	}
	fprintf(f, "]");
	if (d->personality)
		fprintf(f, ",\"personality\":%u", d->personality);
	if (d->oom_score_adj)
		fprintf(f, ",\"oom_score_adj\":%d", d->oom_score_adj);
	if (d->flags & IMG_ATTR_LOGINUID)
		fprintf(f, ",\"loginuid\":%u", d->loginuid);
	if (d->flags & IMG_ATTR_SUBREAPER)
		fprintf(f, ",\"child_subreaper\":true");
	if (d->flags & IMG_ATTR_THP_DISABLE)
		fprintf(f, ",\"thp_disable\":true");
	if (d->flags & IMG_ATTR_NO_NEW_PRIVS)
		fprintf(f, ",\"no_new_privs\":true");
	if (d->dumpable != 1)
		fprintf(f, ",\"dumpable\":%u", d->dumpable);
	if (d->pdeathsig)
		fprintf(f, ",\"pdeathsig\":%d", d->pdeathsig);
	if (d->membarrier) {
		fprintf(f, ",\"membarrier\":[");
		sep = "";
		for (int k = 0; k < 3; k++)
			if (d->membarrier >> k & 1) {
				fprintf(f, "%s\"%s\"", sep, memb_names[k]);
				sep = ",";
			}
		fprintf(f, "]");
	}
	if (d->spec_store >= 0 && (d->spec_store & ~2) > 1)
		fprintf(f, ",\"spec_store_bypass\":%d", d->spec_store);
	if (d->spec_ib >= 0 && (d->spec_ib & ~2) > 1)
		fprintf(f, ",\"spec_indirect_branch\":%d", d->spec_ib);
	if (caps_differ(im))
		fprintf(f,
			",\"capabilities\":{\"effective\":%llu,\"permitted\":%llu,"
			"\"inheritable\":%llu,\"bounding\":%llu,\"ambient\":%llu}",
			(unsigned long long)d->cap_eff, (unsigned long long)d->cap_prm,
			(unsigned long long)d->cap_inh, (unsigned long long)d->cap_bnd,
			(unsigned long long)d->cap_amb);
	if (d->securebits)
		fprintf(f, ",\"securebits\":%u", d->securebits);
	if (d->nfilters) {
		fprintf(f, ",\"seccomp_filters\":[");
		for (uint32_t k = 0; k < d->nfilters; k++)
			fprintf(f, "%s{\"instructions\":%u,\"log\":%s}", k ? "," : "",
				a->filters[k].d.len, a->filters[k].d.flags ? "true" : "false");
		fprintf(f, "]");
	}
	fprintf(f, "},\n");
}
