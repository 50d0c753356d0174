/* attrs.c: the process attributes the restorer sets, after everything
 * else it restores, once it no longer needs privilege: scheduling, limits,
 * capabilities, and the seccomp filters last of all.
 *
 * Constraints: restorer.c's (freestanding, no libc, no globals, position
 * independent); every call may fail only for a reason ckpt-remap checked
 * before the point of no return (lib/restore/attrs.c), and returns the
 * error for restorer.c to report. */
#include <stddef.h>
#include <stdint.h>

#include "restore/restorer/attrs.h"

#define NR_capset 126
#define NR_setpriority 141
#define NR_sched_setscheduler 144
#define NR_prctl 157
#define NR_sched_setaffinity 203
#define NR_prlimit64 302
#define NR_seccomp 317

#define PR_SET_DUMPABLE 4
#define PR_CAPBSET_DROP 24
#define PR_SET_SECUREBITS 28
#define PR_SET_TIMERSLACK 29
#define PR_SET_NO_NEW_PRIVS 38
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#define SECCOMP_SET_MODE_FILTER 1
#define SECCOMP_FILTER_FLAG_TSYNC 1
#define LINUX_CAPABILITY_VERSION_3 0x20080522

/* A system call of up to four arguments; the fifth is 0 (prctl checks
 * that unused ones are). */
static inline long sc(long nr, long a, long b, long c, long d)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = 0;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}

static long set_caps(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct {
		uint32_t version;
		int32_t pid;
	} hdr = {LINUX_CAPABILITY_VERSION_3, 0};
	struct {
		uint32_t eff, prm, inh;
	} data[2] = {{(uint32_t)eff, (uint32_t)prm, (uint32_t)inh},
		     {(uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32)}};

	return sc(NR_capset, (long)&hdr, (long)data, 0, 0);
}

/* The calling thread's capabilities as the image's.  Ambient ones need
 * to be inheritable first, and bounding drops and securebits need
 * CAP_SETPCAP, which the last capset may drop. */
static long thread_caps(const struct rst_attrs *at, const char **what)
{
	long r = 0;

	if (at->flags & RST_A_CAPS) {
		*what = "cannot set the inheritable capabilities";
		if ((r = set_caps(at->our_eff, at->our_prm, at->cap_inh)))
			return r;
		*what = "cannot set the ambient capabilities";
		if ((r = sc(NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0)))
			return r;
		for (int c = 0; c < 64; c++)
			if ((at->cap_amb >> c & 1) &&
			    (r = sc(NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0)))
				return r;
		*what = "cannot drop from the bounding set capability";
		for (int c = 0; c < 64; c++)
			if ((at->our_bnd >> c & 1) && !(at->cap_bnd >> c & 1) &&
			    (r = sc(NR_prctl, PR_CAPBSET_DROP, c, 0, 0)))
				return r;
	}
	if (at->flags & RST_A_SECUREBITS) {
		*what = "cannot set the securebits";
		if ((r = sc(NR_prctl, PR_SET_SECUREBITS, at->securebits, 0, 0)))
			return r;
	}
	if (at->flags & RST_A_CAPS) {
		*what = "cannot set the capabilities";
		r = set_caps(at->cap_eff, at->cap_prm, at->cap_inh);
	}
	return r;
}

long rst_attrs_thread(const struct rst_attrs *at, uint64_t i, const char **what)
{
	const struct img_attrs_thread *t;
	int64_t prio;
	long r;

	if (!at || i >= at->nthreads)
		return 0;
	t = (const struct img_attrs_thread *)at->threads + i;
	prio = t->priority;
	*what = "cannot set the scheduling policy of thread";
	if ((r = sc(NR_sched_setscheduler, 0, t->policy, (long)&prio, 0)))
		return r;
	*what = "cannot set the nice value of thread";
	if ((r = sc(NR_setpriority, 0 /* PRIO_PROCESS */, 0, t->nice, 0)))
		return r;
	*what = "cannot set the CPU affinity of thread";
	if ((r = sc(NR_sched_setaffinity, 0, sizeof(t->affinity), (long)t->affinity, 0)))
		return r;
	*what = "cannot set the timer slack of thread";
	if ((r = sc(NR_prctl, PR_SET_TIMERSLACK, (long)t->timerslack_ns, 0, 0)))
		return r;
	*what = "cannot set no_new_privs in thread";
	if ((at->flags & RST_A_NO_NEW_PRIVS) && (r = sc(NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0)))
		return r;
	return i ? thread_caps(at, what) : 0;
}

long rst_attrs_last(const struct rst_attrs *at, const char **what, uint64_t *which)
{
	const struct rst_fprog *f;
	long r;

	if (!at)
		return 0;
	if ((r = rst_attrs_thread(at, 0, what)))
		return r;
	*what = "cannot set resource limit";
	for (int k = 0; (at->flags & RST_A_RLIMITS) && k < IMG_NRLIMIT; k++) {
		*which = k;
		if ((at->rlim[k].cur != at->our_rlim[k].cur ||
		     at->rlim[k].max != at->our_rlim[k].max) &&
		    (r = sc(NR_prlimit64, 0, k, (long)&at->rlim[k], 0)))
			return r;
	}
	*which = 0;
	*what = "cannot set dumpable";
	if ((at->flags & RST_A_DUMPABLE) && (r = sc(NR_prctl, PR_SET_DUMPABLE, at->dumpable, 0, 0)))
		return r;
	if ((r = thread_caps(at, what)))
		return r;
	/* Last: from here on the program's filters judge our calls too
	 * (restorer.c makes only futex, close, prctl(PR_SET_NAME), munmap and
	 * rt_sigreturn after this).  TSYNC gives every thread the filter,
	 * and no_new_privs with it. */
	f = (const struct rst_fprog *)at->filters;
	*what = "cannot install seccomp filter";
	for (uint32_t k = 0; k < at->nfilters; k++) {
		*which = k;
		if ((r = sc(NR_seccomp, SECCOMP_SET_MODE_FILTER,
			    SECCOMP_FILTER_FLAG_TSYNC | at->filter_flags[k], (long)&f[k], 0)))
			return r;
	}
	return 0;
}
