/* attrs.c: a process's attributes as ckpt-dump captures them: limits,
 * scheduling, affinity, personality, oom_score_adj, loginuid,
 * capabilities and seccomp filters from /proc and system calls on the
 * pid; prctl state and membarrier registrations by system calls run
 * inside the process (only it may ask). */
#include <errno.h>
#include <linux/filter.h>
#include <linux/membarrier.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/base.h"
#include "target/target.h"

#ifndef SCHED_DEADLINE
#define SCHED_DEADLINE 6
#endif
#ifndef SCHED_RESET_ON_FORK
#define SCHED_RESET_ON_FORK 0x40000000
#endif

/* One number from a /proc/PID file; dflt if it is missing (an older kernel). */
static long long proc_number(pid_t pid, const char *file, int base, long long dflt)
{
	char path[64], *buf;
	long long v;

	buf = read_file(fmt_path(path, sizeof(path), "/proc/%d/%s", pid, file), NULL);
	if (!buf)
		return dflt;
	v = strtoll(buf, NULL, base);
	free(buf);
	return v;
}

static int capture_thread_sched(pid_t pid, pid_t tid, struct img_attrs_thread *t)
{
	struct sched_param sp = {0};
	cpu_set_t set;
	int policy;

	t->tid = tid;
	policy = sched_getscheduler(tid);
	if (policy < 0 || sched_getparam(tid, &sp)) {
		err_sys("pid %d: thread %d: cannot read its scheduling policy", pid, tid);
		return -1;
	}
	if ((policy & ~SCHED_RESET_ON_FORK) == SCHED_DEADLINE) {
		err_set("pid %d: thread %d: scheduling policy SCHED_DEADLINE; not supported", pid,
			tid);
		return -1;
	}
	t->policy = policy;
	t->priority = sp.sched_priority;
	errno = 0;
	t->nice = getpriority(PRIO_PROCESS, tid);
	if (errno) {
		err_sys("pid %d: thread %d: cannot read its nice value", pid, tid);
		return -1;
	}
	CPU_ZERO(&set);
	if (sched_getaffinity(tid, sizeof(set), &set)) {
		err_sys("pid %d: thread %d: cannot read its CPU affinity", pid, tid);
		return -1;
	}
	_Static_assert(sizeof(set) == sizeof(t->affinity), "cpu_set_t is 1024 CPUs");
	memcpy(t->affinity, &set, sizeof(t->affinity));
	return 0;
}

/* Filters of thread tid, the first installed first; index 0 of
 * PTRACE_SECCOMP_GET_FILTER is the last installed. */
static int read_filters(pid_t pid, pid_t tid, unsigned n, struct seccomp_filter *f)
{
	for (unsigned i = 0; i < n; i++) {
		struct seccomp_filter *o = &f[n - 1 - i];
		struct __ptrace_seccomp_metadata md = {.filter_off = i};
		long len = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)(long)i, NULL);

		/* Only CAP_SYS_ADMIN may read one (EACCES, EPERM); a restore
		 * without it would give the program more than it had. */
		if (len < 0 && (errno == EACCES || errno == EPERM)) {
			err_set("pid %d: thread %d: a seccomp filter cannot be read without "
				"CAP_SYS_ADMIN; not supported",
				pid, tid);
			return -1;
		}
		if (len < 0) {
			err_sys("pid %d: thread %d: cannot read seccomp filter %u", pid, tid, i);
			return -1;
		}
		if (len < 1 || len > IMG_MAX_FILTER_LEN || !(o->insns = malloc(len * 8))) {
			err_set("pid %d: thread %d: seccomp filter %u of %ld instructions", pid,
				tid, i, len);
			return -1;
		}
		o->d.len = len;
		if (ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)(long)i, o->insns) != len) {
			err_sys("pid %d: thread %d: cannot read seccomp filter %u", pid, tid, i);
			return -1;
		}
		if (ptrace(PTRACE_SECCOMP_GET_METADATA, tid, (void *)sizeof(md), &md) == sizeof(md))
			o->d.flags = md.flags & SECCOMP_FILTER_FLAG_LOG;
	}
	return 0;
}

static void free_filters(struct seccomp_filter *f, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		free(f[i].insns);
	free(f);
}

static int same_filters(const struct seccomp_filter *a, const struct seccomp_filter *b, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (a[i].d.len != b[i].d.len || a[i].d.flags != b[i].d.flags ||
		    memcmp(a[i].insns, b[i].insns, (size_t)a[i].d.len * 8))
			return 0;
	return 1;
}

/* Capabilities, no_new_privs and seccomp: every thread must have the
 * main thread's (a restore gives all threads one set), and a sandbox
 * must be read whole or the dump refused. */
static int capture_creds(pid_t pid, const pid_t *tids, size_t ntids, struct attrs *a)
{
	struct proc_creds c0, c;

	if (proc_read_creds(pid, tids[0], &c0)) {
		err_sys("pid %d: cannot read its credentials", pid);
		return -1;
	}
	a->d.cap_inh = c0.inh;
	a->d.cap_prm = c0.prm;
	a->d.cap_eff = c0.eff;
	a->d.cap_bnd = c0.bnd;
	a->d.cap_amb = c0.amb;
	if (c0.no_new_privs)
		a->d.flags |= IMG_ATTR_NO_NEW_PRIVS;
	if (c0.seccomp == 1) {
		/* Our injected calls would kill it: read, write, exit and
		 * sigreturn are all it may call. */
		err_set("pid %d: seccomp strict mode (SECCOMP_MODE_STRICT); not supported", pid);
		return -1;
	}
	if (c0.seccomp == 2) {
		if (c0.nfilters < 1 || c0.nfilters > IMG_MAX_FILTERS) {
			err_set("pid %d: %u seccomp filters", pid, c0.nfilters);
			return -1;
		}
		a->d.seccomp = IMG_SECCOMP_FILTER;
		if (!(a->filters = calloc(c0.nfilters, sizeof(*a->filters)))) {
			err_set("out of memory");
			return -1;
		}
		a->d.nfilters = c0.nfilters;
		if (read_filters(pid, tids[0], c0.nfilters, a->filters))
			return -1;
	}
	for (size_t k = 1; k < ntids; k++) {
		struct seccomp_filter *f;
		int same;

		if (proc_read_creds(pid, tids[k], &c)) {
			err_sys("pid %d: thread %d: cannot read its credentials", pid, tids[k]);
			return -1;
		}
		if (c.inh != c0.inh || c.prm != c0.prm || c.eff != c0.eff || c.bnd != c0.bnd ||
		    c.amb != c0.amb || c.no_new_privs != c0.no_new_privs) {
			err_set("pid %d: thread %d: its capabilities or no_new_privs differ from "
				"the main thread's; not supported",
				pid, tids[k]);
			return -1;
		}
		if (c.seccomp != c0.seccomp || c.nfilters != c0.nfilters) {
			err_set("pid %d: thread %d: its seccomp filters differ from the main "
				"thread's; not supported",
				pid, tids[k]);
			return -1;
		}
		if (c.seccomp != 2)
			continue;
		if (!(f = calloc(c.nfilters, sizeof(*f)))) {
			err_set("out of memory");
			return -1;
		}
		same = read_filters(pid, tids[k], c.nfilters, f) == 0 &&
		       same_filters(f, a->filters, c.nfilters);
		free_filters(f, c.nfilters);
		if (!same) {
			err_set("pid %d: thread %d: its seccomp filters differ from the main "
				"thread's; not supported",
				pid, tids[k]);
			return -1;
		}
	}
	return 0;
}

/* A limit's value in /proc/PID/limits: a number or "unlimited". */
static int limit_value(const char *s, uint64_t *v)
{
	char *end;

	while (*s == ' ')
		s++;
	if (!strncmp(s, "unlimited", 9)) {
		*v = RLIM_INFINITY;
		return 0;
	}
	errno = 0;
	*v = strtoull(s, &end, 10);
	return end == s || errno ? -1 : 0;
}

/* Every limit, soft and hard.  prlimit(2) on another user's process needs
 * CAP_SYS_RESOURCE, which root may lack (it does on some machines): then
 * /proc/PID/limits, which prints them in RLIMIT_* order, soft in the
 * columns from 26, hard from 47. */
static int capture_limits(pid_t pid, struct attrs *a)
{
	char path[64], line[256];
	FILE *f;
	int i = 0;

	for (; i < IMG_NRLIMIT; i++) {
		struct rlimit rl;

		if (prlimit(pid, i, NULL, &rl))
			break;
		a->d.rlim[i].cur = rl.rlim_cur;
		a->d.rlim[i].max = rl.rlim_max;
	}
	if (i == IMG_NRLIMIT)
		return 0;
	if (errno != EPERM || !(f = fopen(fmt_path(path, sizeof(path), "/proc/%d/limits", pid), "re"))) {
		err_sys("pid %d: cannot read resource limit %d", pid, i);
		return -1;
	}
	/* The header line, then one line per limit. */
	for (i = -1; i < IMG_NRLIMIT && fgets(line, sizeof(line), f); i++)
		if (i >= 0 && (strlen(line) < 48 || limit_value(line + 26, &a->d.rlim[i].cur) ||
			       limit_value(line + 47, &a->d.rlim[i].max)))
			break;
	fclose(f);
	if (i < IMG_NRLIMIT) {
		err_set("pid %d: cannot read resource limit %d in /proc/%d/limits", pid, i, pid);
		return -1;
	}
	return 0;
}

int attrs_capture(pid_t pid, const pid_t *tids, size_t ntids, struct image *im)
{
	struct attrs *a = calloc(1, sizeof(*a));

	if (!a || !(a->threads = calloc(ntids, sizeof(*a->threads)))) {
		free(a);
		err_set("out of memory");
		return -1;
	}
	im->attrs = a;
	a->d.nthreads = ntids;
	if (capture_limits(pid, a))
		return -1;
	for (size_t k = 0; k < ntids; k++)
		if (capture_thread_sched(pid, tids[k], &a->threads[k]))
			return -1;
	a->d.personality = proc_number(pid, "personality", 16, 0);
	a->d.oom_score_adj = proc_number(pid, "oom_score_adj", 10, 0);
	a->d.loginuid = proc_number(pid, "loginuid", 10, -1);
	if (a->d.loginuid != (uint32_t)-1)
		a->d.flags |= IMG_ATTR_LOGINUID;
	a->d.spec_store = a->d.spec_ib = -1;
	return capture_creds(pid, tids, ntids, a);
}

/* One injected call; its result, or -1 (err_set) if it could not be made. */
static int ask(struct inj *c, long nr, uint64_t a0, uint64_t a1, int64_t *ret)
{
	uint64_t a[6] = {a0, a1};

	return inj_syscall(c, nr, a, ret);
}

/* An int the call wrote into the scratch area. */
static int ask_int(struct inj *c, int op, int32_t *v, const char *what)
{
	int64_t ret;

	if (ask(c, SYS_prctl, op, c->scratch, &ret))
		return -1;
	if (ret) {
		errno = -ret;
		err_sys("pid %d: prctl(%s) in the process failed", c->pid, what);
		return -1;
	}
	return inj_peek(c, v, sizeof(*v));
}

static int ask_ret(struct inj *c, int op, uint64_t arg, int64_t *ret, const char *what)
{
	if (ask(c, SYS_prctl, op, arg, ret))
		return -1;
	if (*ret < 0 && *ret > -4096) {
		errno = -*ret;
		err_sys("pid %d: prctl(%s) in the process failed", c->pid, what);
		return -1;
	}
	return 0;
}

/* Registered for a membarrier command: the command runs (0), else EPERM. */
static int registered(struct inj *c, int cmd, uint32_t bit, uint32_t *set)
{
	int64_t ret;

	if (ask(c, SYS_membarrier, cmd, 0, &ret))
		return -1;
	if (ret == 0)
		*set |= bit;
	return 0;
}

int attrs_inject(struct inj *c, struct image *im, size_t k)
{
	struct img_attrs *d = &im->attrs->d;
	int32_t v;
	int64_t ret;

	if (ask_ret(c, PR_GET_TIMERSLACK, 0, &ret, "PR_GET_TIMERSLACK"))
		return -1;
	im->attrs->threads[k].timerslack_ns = ret;
	if (k)
		return 0;
	if (ask_int(c, PR_GET_CHILD_SUBREAPER, &v, "PR_GET_CHILD_SUBREAPER"))
		return -1;
	if (v)
		d->flags |= IMG_ATTR_SUBREAPER;
	if (ask_int(c, PR_GET_PDEATHSIG, &d->pdeathsig, "PR_GET_PDEATHSIG") ||
	    ask_ret(c, PR_GET_THP_DISABLE, 0, &ret, "PR_GET_THP_DISABLE"))
		return -1;
	if (ret)
		d->flags |= IMG_ATTR_THP_DISABLE;
	if (ask_ret(c, PR_GET_DUMPABLE, 0, &ret, "PR_GET_DUMPABLE"))
		return -1;
	d->dumpable = ret;
	if (ask_ret(c, PR_GET_SECUREBITS, 0, &ret, "PR_GET_SECUREBITS"))
		return -1;
	d->securebits = ret;
	/* EINVAL: a kernel or CPU without the control; nothing to keep. */
	if (ask(c, SYS_prctl, PR_GET_SPECULATION_CTRL, PR_SPEC_STORE_BYPASS, &ret))
		return -1;
	d->spec_store = ret < 0 ? -1 : ret;
	if (ask(c, SYS_prctl, PR_GET_SPECULATION_CTRL, PR_SPEC_INDIRECT_BRANCH, &ret))
		return -1;
	d->spec_ib = ret < 0 ? -1 : ret;
	return registered(c, MEMBARRIER_CMD_PRIVATE_EXPEDITED, IMG_MEMB_PRIVATE_EXPEDITED,
			  &d->membarrier) ||
	       registered(c, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, IMG_MEMB_SYNC_CORE,
			  &d->membarrier) ||
	       registered(c, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, IMG_MEMB_RSEQ, &d->membarrier);
}
