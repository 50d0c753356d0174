/* attrs.c: a process's attributes at restore (the ATTRS record).  What
 * ckpt-remap may not give is refused by name before anything is touched
 * (rst_attrs_check); what outlives the restorer is set in ckpt-remap
 * itself, the process to be (rst_attrs_set); the rest -- each thread's
 * scheduling, the limits, capabilities and seccomp filters, which would
 * hinder the restorer's own work -- is planned for the restorer to set
 * last (rst_attrs_plan, restorer/attrs.c). */
#include <errno.h>
#include <linux/capability.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/base.h"
#include "restore/restore.h"
#include "restore/restorer/attrs.h"
#include "restore/restorer/restorer.h"

#define ALIGN64(x) (((x) + 63) & ~(uint64_t)63)

static const char *lim_str(uint64_t v, char *buf, size_t size)
{
	if (v == (uint64_t)RLIM_INFINITY)
		return "unlimited";
	snprintf(buf, size, "%llu", (unsigned long long)v);
	return buf;
}

/* This process's own value of a /proc/self number, dflt if unreadable. */
static long long self_number(const char *file, long long dflt)
{
	char path[64], *buf;
	long long v;

	buf = read_file(fmt_path(path, sizeof(path), "/proc/self/%s", file), NULL);
	if (!buf)
		return dflt;
	v = strtoll(buf, NULL, 10);
	free(buf);
	return v;
}

static int check_rlimits(const struct image *im)
{
	const struct img_attrs *d = &im->attrs->d;
	long long nr_open = -1;
	char b1[32], b2[32];

	for (int k = 0; k < IMG_NRLIMIT; k++) {
		struct rlimit rl;

		if (getrlimit(k, &rl))
			continue;
		if (d->rlim[k].max > rl.rlim_max && !has_cap(CAP_SYS_RESOURCE)) {
			err_set("pid %d: resource limit %s: hard limit %s above this process's %s "
				"(raising it needs CAP_SYS_RESOURCE)",
				im->proc.pid, img_rlimit_name(k),
				lim_str(d->rlim[k].max, b1, sizeof(b1)),
				lim_str(rl.rlim_max, b2, sizeof(b2)));
			return -1;
		}
	}
	if (d->rlim[RLIMIT_NOFILE].max != (uint64_t)RLIM_INFINITY) {
		char *s = read_file("/proc/sys/fs/nr_open", NULL);

		if (s)
			nr_open = strtoll(s, NULL, 10);
		free(s);
	}
	if (nr_open > 0 && d->rlim[RLIMIT_NOFILE].max > (uint64_t)nr_open) {
		err_set(
		    "pid %d: resource limit RLIMIT_NOFILE: hard limit %llu above fs.nr_open %lld",
		    im->proc.pid, (unsigned long long)d->rlim[RLIMIT_NOFILE].max, nr_open);
		return -1;
	}
	return 0;
}

/* The kernel's can_nice() and the real-time rule of __sched_setscheduler,
 * with this process's limits (the image's are set after). */
static int check_sched(const struct image *im)
{
	const struct attrs *a = im->attrs;
	struct rlimit nice_rl = {0}, rt_rl = {0};
	int cap = has_cap(CAP_SYS_NICE), ours;
	cpu_set_t allowed;

	getrlimit(RLIMIT_NICE, &nice_rl);
	getrlimit(RLIMIT_RTPRIO, &rt_rl);
	errno = 0;
	ours = getpriority(PRIO_PROCESS, 0);
	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		CPU_ZERO(&allowed);
	for (uint32_t k = 0; k < a->d.nthreads; k++) {
		const struct img_attrs_thread *t = &a->threads[k];
		int policy = t->policy & ~SCHED_RESET_ON_FORK;
		/* Each thread starts as ckpt-remap (the main one sets its own last). */
		int base = ours;
		cpu_set_t set;

		if ((policy == SCHED_FIFO || policy == SCHED_RR) && !cap &&
		    (rt_rl.rlim_cur == 0 || (uint64_t)t->priority > rt_rl.rlim_cur)) {
			err_set("pid %d: thread %d: scheduling policy %s priority %d: needs "
				"CAP_SYS_NICE or RLIMIT_RTPRIO %d (this process has %llu)",
				im->proc.pid, t->tid, img_policy_name(policy), t->priority,
				t->priority, (unsigned long long)rt_rl.rlim_cur);
			return -1;
		}
		if (t->nice < base && !cap && (uint64_t)(20 - t->nice) > nice_rl.rlim_cur) {
			err_set("pid %d: thread %d: nice %d below %d: needs CAP_SYS_NICE or "
				"RLIMIT_NICE %d (this process has %llu)",
				im->proc.pid, t->tid, t->nice, base, 20 - t->nice,
				(unsigned long long)nice_rl.rlim_cur);
			return -1;
		}
		memcpy(&set, t->affinity, sizeof(set));
		CPU_AND(&set, &set, &allowed);
		if (CPU_COUNT(&set) == 0) {
			err_set(
			    "pid %d: thread %d: none of the CPUs of its affinity is allowed here",
			    im->proc.pid, t->tid);
			return -1;
		}
	}
	return 0;
}

static int read_caps(uint64_t c[3])
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d)) {
		err_sys("cannot read this process's capabilities");
		return -1;
	}
	c[0] = d[0].effective | (uint64_t)d[1].effective << 32;
	c[1] = d[0].permitted | (uint64_t)d[1].permitted << 32;
	c[2] = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	return 0;
}

static uint64_t our_bounding(void)
{
	uint64_t b = 0;

	for (int c = 0; c < 64; c++)
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1)
			b |= 1ull << c;
	return b;
}

static uint64_t our_ambient(void)
{
	uint64_t b = 0;

	for (int c = 0; c < 64; c++)
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1)
			b |= 1ull << c;
	return b;
}

/* Whether the image's capabilities differ from ours: 1 yes, 0 no, -1. */
static int caps_differ(const struct img_attrs *d)
{
	uint64_t c[3];

	if (read_caps(c))
		return -1;
	return d->cap_eff != c[0] || d->cap_prm != c[1] || d->cap_inh != c[2] ||
	       d->cap_bnd != our_bounding() || d->cap_amb != our_ambient();
}

static int check_caps(const struct image *im)
{
	const struct img_attrs *d = &im->attrs->d;
	int pid = im->proc.pid, differ = caps_differ(d);
	uint64_t c[3], more;

	if (differ < 0 || read_caps(c))
		return -1;
	if (differ) {
		more = (d->cap_prm & ~c[1]) | (d->cap_bnd & ~our_bounding()) |
		       (d->cap_inh & ~(c[2] | ((c[0] >> CAP_SETPCAP & 1) ? c[1] : 0)));
		if (more) {
			err_set("pid %d: capabilities %#llx that this process may not give", pid,
				(unsigned long long)more);
			return -1;
		}
		if (d->cap_bnd != our_bounding() && !has_cap(CAP_SETPCAP)) {
			err_set("pid %d: a bounding set of capabilities %#llx: dropping from it "
				"needs CAP_SETPCAP",
				pid, (unsigned long long)d->cap_bnd);
			return -1;
		}
	}
	if (d->securebits != (uint32_t)prctl(PR_GET_SECUREBITS) && !has_cap(CAP_SETPCAP)) {
		err_set("pid %d: securebits %#x: setting them needs CAP_SETPCAP", pid,
			d->securebits);
		return -1;
	}
	if (d->nfilters && !(d->flags & IMG_ATTR_NO_NEW_PRIVS) &&
	    (!has_cap(CAP_SYS_ADMIN) || !(d->cap_eff >> CAP_SYS_ADMIN & 1))) {
		err_set("pid %d: seccomp filters without no_new_privs: installing them needs "
			"CAP_SYS_ADMIN, here and in the process's own capabilities",
			pid);
		return -1;
	}
	return 0;
}

static int check_misc(const struct image *im)
{
	const struct img_attrs *d = &im->attrs->d;
	long long oom = self_number("oom_score_adj", 0);
	int pid = im->proc.pid;

	if (d->oom_score_adj < oom && !has_cap(CAP_SYS_RESOURCE)) {
		err_set("pid %d: oom_score_adj %d below this process's %lld: lowering it needs "
			"CAP_SYS_RESOURCE",
			pid, d->oom_score_adj, oom);
		return -1;
	}
	if (d->membarrier) {
		long have = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
		long need = ((d->membarrier & IMG_MEMB_PRIVATE_EXPEDITED)
				 ? MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED
				 : 0) |
			    ((d->membarrier & IMG_MEMB_SYNC_CORE)
				 ? MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE
				 : 0) |
			    ((d->membarrier & IMG_MEMB_RSEQ)
				 ? MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ
				 : 0);
		if (have < 0 || (have & need) != need) {
			err_set("pid %d: membarrier registrations %#lx this kernel does not offer",
				pid, need & ~(have < 0 ? 0 : have));
			return -1;
		}
	}
	return 0;
}

int rst_attrs_check(const struct image *im)
{
	if (!im->attrs)
		return 0;
	return check_rlimits(im) || check_sched(im) || check_caps(im) || check_misc(im) ? -1 : 0;
}

/* A speculation control as it was (prctl's PR_SPEC_* state), where the
 * kernel lets a process choose it. */
static int set_spec(int pid, int which, int32_t want, const char *name)
{
	long have = prctl(PR_GET_SPECULATION_CTRL, which, 0, 0, 0);
	unsigned long v;

	if (want < 0 || !(want & PR_SPEC_PRCTL) || have == want)
		return 0;
	v = want & PR_SPEC_FORCE_DISABLE    ? PR_SPEC_FORCE_DISABLE
	    : want & PR_SPEC_DISABLE_NOEXEC ? PR_SPEC_DISABLE_NOEXEC
	    : want & PR_SPEC_DISABLE	    ? PR_SPEC_DISABLE
					    : PR_SPEC_ENABLE;
	if (prctl(PR_SET_SPECULATION_CTRL, which, v, 0, 0)) {
		err_sys("pid %d: cannot set speculation control %s to %#x", pid, name, want);
		return -1;
	}
	return 0;
}

static int write_self(const char *file, long long v, int pid)
{
	char path[64];
	FILE *f = fopen(fmt_path(path, sizeof(path), "/proc/self/%s", file), "we");

	if (!f || fprintf(f, "%lld", v) < 0 || fclose(f)) {
		err_sys("pid %d: cannot set %s to %lld", pid, file, v);
		return -1;
	}
	return 0;
}

int rst_attrs_set(const struct image *im)
{
	const struct img_attrs *d;
	int pid = im->proc.pid;
	long long luid;

	if (!im->attrs)
		return 0;
	d = &im->attrs->d;
	if (personality(d->personality) < 0) {
		err_sys("pid %d: cannot set personality %#x", pid, d->personality);
		return -1;
	}
	if (d->oom_score_adj != self_number("oom_score_adj", 0) &&
	    write_self("oom_score_adj", d->oom_score_adj, pid))
		return -1;
	/* The audit trail's login user: only CAP_AUDIT_CONTROL sets it, and
	 * a user restoring in another session keeps his own, as he would
	 * starting the program again there. */
	luid = self_number("loginuid", -1);
	if (d->loginuid != (uint32_t)luid && !has_cap(CAP_AUDIT_CONTROL))
		warnx("pid %d: loginuid %u is not restored (setting it needs CAP_AUDIT_CONTROL): "
		      "it stays %u",
		      pid, d->loginuid, (uint32_t)luid);
	else if (d->loginuid != (uint32_t)luid && write_self("loginuid", d->loginuid, pid))
		return -1;
	if (prctl(PR_SET_CHILD_SUBREAPER, !!(d->flags & IMG_ATTR_SUBREAPER), 0, 0, 0) ||
	    prctl(PR_SET_THP_DISABLE, !!(d->flags & IMG_ATTR_THP_DISABLE), 0, 0, 0) ||
	    prctl(PR_SET_PDEATHSIG, d->pdeathsig, 0, 0, 0)) {
		err_sys("pid %d: cannot set child subreaper, THP disable or parent death signal",
			pid);
		return -1;
	}
	if (((d->membarrier & IMG_MEMB_PRIVATE_EXPEDITED) &&
	     syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0)) ||
	    ((d->membarrier & IMG_MEMB_SYNC_CORE) &&
	     syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0)) ||
	    ((d->membarrier & IMG_MEMB_RSEQ) &&
	     syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0))) {
		err_sys("pid %d: cannot register for membarrier %#x", pid, d->membarrier);
		return -1;
	}
	return set_spec(pid, PR_SPEC_STORE_BYPASS, d->spec_store, "PR_SPEC_STORE_BYPASS") ||
	       set_spec(pid, PR_SPEC_INDIRECT_BRANCH, d->spec_ib, "PR_SPEC_INDIRECT_BRANCH");
}

uint64_t rst_attrs_len(const struct image *im)
{
	const struct attrs *a = im->attrs;
	uint64_t len;

	if (!a)
		return 0;
	len = ALIGN64(sizeof(struct rst_attrs)) +
	      ALIGN64((uint64_t)a->d.nthreads * sizeof(*a->threads)) +
	      ALIGN64((uint64_t)a->d.nfilters * sizeof(struct rst_fprog));
	for (uint32_t k = 0; k < a->d.nfilters; k++)
		len += ALIGN64((uint64_t)a->filters[k].d.len * 8);
	return len;
}

/* Space at base + *off, rst_attrs_len bytes, taken. */
static void *take(unsigned char *base, uint64_t *off, uint64_t len)
{
	void *p = base + *off;

	*off += ALIGN64(len);
	return p;
}

int rst_attrs_plan(const struct image *im, struct rst_args *args, unsigned char *base,
		   uint64_t *off)
{
	const struct attrs *a = im->attrs;
	struct rst_attrs *at;
	struct rst_fprog *f;
	uint64_t c[3];
	int differ;

	if (!a)
		return 0;
	at = take(base, off, sizeof(*at));
	memset(at, 0, sizeof(*at));
	args->attrs = (uint64_t)at;
	at->nthreads = a->d.nthreads;
	at->threads = (uint64_t)take(base, off, (uint64_t)a->d.nthreads * sizeof(*a->threads));
	memcpy((void *)at->threads, a->threads, (size_t)a->d.nthreads * sizeof(*a->threads));
	at->flags = RST_A_RLIMITS;
	memcpy(at->rlim, a->d.rlim, sizeof(at->rlim));
	for (int k = 0; k < IMG_NRLIMIT; k++) {
		struct rlimit rl;

		if (getrlimit(k, &rl)) {
			err_sys("cannot read resource limit %s", img_rlimit_name(k));
			return -1;
		}
		at->our_rlim[k] = (struct img_rlimit){rl.rlim_cur, rl.rlim_max};
	}
	if ((differ = caps_differ(&a->d)) < 0 || read_caps(c))
		return -1;
	if (differ)
		at->flags |= RST_A_CAPS;
	at->cap_eff = a->d.cap_eff;
	at->cap_prm = a->d.cap_prm;
	at->cap_inh = a->d.cap_inh;
	at->cap_bnd = a->d.cap_bnd;
	at->cap_amb = a->d.cap_amb;
	at->our_eff = c[0];
	at->our_prm = c[1];
	at->our_bnd = our_bounding();
	if (a->d.securebits != (uint32_t)prctl(PR_GET_SECUREBITS)) {
		at->flags |= RST_A_SECUREBITS;
		at->securebits = a->d.securebits;
	}
	if (a->d.flags & IMG_ATTR_NO_NEW_PRIVS)
		at->flags |= RST_A_NO_NEW_PRIVS;
	if (a->d.dumpable < 2 && (long)a->d.dumpable != prctl(PR_GET_DUMPABLE)) {
		at->flags |= RST_A_DUMPABLE;
		at->dumpable = a->d.dumpable;
	}
	at->nfilters = a->d.nfilters;
	f = take(base, off, (uint64_t)a->d.nfilters * sizeof(*f));
	at->filters = (uint64_t)f;
	for (uint32_t k = 0; k < a->d.nfilters; k++) {
		void *insns = take(base, off, (uint64_t)a->filters[k].d.len * 8);

		memcpy(insns, a->filters[k].insns, (size_t)a->filters[k].d.len * 8);
		f[k] = (struct rst_fprog){.len = a->filters[k].d.len, .filter = (uint64_t)insns};
		at->filter_flags[k] = a->filters[k].d.flags;
	}
	return 0;
}
