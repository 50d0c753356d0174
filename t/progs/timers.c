/* timers: interval timers of every kind keep firing across restores.
 *
 * usage: timers [--hold] [--no-posix] DIR
 *        timers --probe-ids
 *
 * Arms six timers, each with an interval of about 1 ms and a signal of its
 * own: ITIMER_REAL (SIGALRM), ITIMER_VIRTUAL (SIGVTALRM), ITIMER_PROF
 * (SIGPROF), and POSIX timers on CLOCK_MONOTONIC (to the process),
 * CLOCK_REALTIME (SIGEV_THREAD_ID, to main) and CLOCK_PROCESS_CPUTIME_ID
 * (to the process).  The POSIX intervals differ by a few nanoseconds, so a
 * timer that came back under another one's id shows.  Then it prints
 * "ready PID" and burns CPU (the CPU-time timers count only then), checking
 * every handler's siginfo: SI_KERNEL for the three itimers; SI_TIMER, the
 * timer's own id, its sigev_value and an overrun >= 0 for the POSIX ones.
 *
 * Whenever it finds itself restored (after a pause, its start time has
 * changed), it checks
 * that every timer fires at least FIRES more times within WAIT_S seconds,
 * that getitimer and timer_gettime give the intervals it set, and that
 * /proc/self/timers lists exactly its three ids; then it prints "ok N",
 * N the restores so far.
 *
 * --hold    before each checkpoint, the six signals are blocked until each
 *           is pending: "held N" (N the restores so far) says so, and the
 *           checkpoint must come then.  Each expiry then waits for its
 *           signal's delivery, which the kernel re-arms an ITIMER_REAL and a
 *           POSIX timer on; a restored process unblocks them and each must
 *           arrive once, a POSIX one with an overrun >= 0, before the timer
 *           fires on.
 * --no-posix  the three itimers only (a kernel that cannot create a POSIX
 *           timer with a given id, before Linux 6.15, restores none).
 *
 * --probe-ids  exit 0 if this kernel can create a POSIX timer with a given
 *           id (PR_TIMER_CREATE_RESTORE_IDS), 1 if not.
 *
 * When DIR/go exists it checks once more and exits: 0 and "restored: yes"
 * if it was restored and every check held; a failed check is one line on
 * stdout, "timers: ...", and exit 1. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "progs.h"

#define FIRES 5	      /* fires each timer must add after a restore */
#define WAIT_S 5.0    /* within this many seconds */
#define IT_US 1000    /* the itimers' interval */
#define PT_NS 1000000 /* the POSIX timers', plus their index */
#define GAP_S 0.005   /* a pause in the loop that may be a restore */

enum { T_REAL, T_VIRT, T_PROF, T_MONO, T_RT, T_CPU, NT };

static const char *const name[NT] = {
    "ITIMER_REAL",
    "ITIMER_VIRTUAL",
    "ITIMER_PROF",
    "CLOCK_MONOTONIC timer",
    "CLOCK_REALTIME thread timer",
    "CLOCK_PROCESS_CPUTIME_ID timer",
};
static int signo[NT];
static timer_t tid[NT]; /* the POSIX ones */
static atomic_long fired[NT];
static atomic_int bad_code[NT], bad_id[NT], bad_value[NT], bad_overrun[NT];
static int posix = 1, nt = NT;

static void fail(const char *fmt, ...)
{
	va_list ap;

	printf("timers: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	for (int k = 0; k < nt; k++) {
		if (signo[k] != sig)
			continue;
		fired[k]++;
		if (k < T_MONO) {
			if (si->si_code != SI_KERNEL)
				bad_code[k]++;
			return;
		}
		if (si->si_code != SI_TIMER)
			bad_code[k]++;
		else if (si->si_timerid != (int)(intptr_t)tid[k])
			bad_id[k]++;
		else if (si->si_value.sival_int != 0x7000 + k)
			bad_value[k]++;
		else if (si->si_overrun < 0)
			bad_overrun[k]++;
		return;
	}
}

static void arm(void)
{
	struct itimerval it = {{0, IT_US}, {0, IT_US}};
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	signo[T_REAL] = SIGALRM;
	signo[T_VIRT] = SIGVTALRM;
	signo[T_PROF] = SIGPROF;
	signo[T_MONO] = SIGRTMIN + 1;
	signo[T_RT] = SIGRTMIN + 2;
	signo[T_CPU] = SIGRTMIN + 3;
	for (int k = 0; k < nt; k++)
		if (sigaction(signo[k], &sa, NULL))
			fail("sigaction %d: %s", signo[k], strerror(errno));
	for (int k = T_REAL; k <= T_PROF; k++)
		if (setitimer(k == T_REAL   ? ITIMER_REAL
			      : k == T_VIRT ? ITIMER_VIRTUAL
					    : ITIMER_PROF,
			      &it, NULL))
			fail("setitimer %s: %s", name[k], strerror(errno));
	for (int k = T_MONO; k < nt; k++) {
		static const clockid_t clock[NT] = {[T_MONO] = CLOCK_MONOTONIC,
						    [T_RT] = CLOCK_REALTIME,
						    [T_CPU] = CLOCK_PROCESS_CPUTIME_ID};
		struct itimerspec its = {{0, PT_NS + k}, {0, PT_NS + k}};
		struct sigevent sev;

		memset(&sev, 0, sizeof(sev));
		sev.sigev_notify = k == T_RT ? SIGEV_THREAD_ID : SIGEV_SIGNAL;
		sev._sigev_un._tid = getpid(); /* glibc 2.36 has no sigev_notify_thread_id */
		sev.sigev_signo = signo[k];
		sev.sigev_value.sival_int = 0x7000 + k;
		if (timer_create(clock[k], &sev, &tid[k]) || timer_settime(tid[k], 0, &its, NULL))
			fail("%s: %s", name[k], strerror(errno));
	}
}

/* The intervals are the ones armed, each POSIX timer under its own id,
 * and the process has no other POSIX timer. */
static void check_setup(int n)
{
	char line[256];
	int ids = 0;
	FILE *f;

	for (int k = T_REAL; k <= T_PROF; k++) {
		struct itimerval it;

		if (getitimer(k, &it))
			fail("restore %d: getitimer %s: %s", n, name[k], strerror(errno));
		if (it.it_interval.tv_sec || it.it_interval.tv_usec != IT_US)
			fail("restore %d: %s: interval %ld.%06ld s, not 0.001 s", n, name[k],
			     (long)it.it_interval.tv_sec, (long)it.it_interval.tv_usec);
	}
	for (int k = T_MONO; k < nt; k++) {
		struct itimerspec its;

		if (timer_gettime(tid[k], &its))
			fail("restore %d: %s: timer_gettime on its id %d: %s", n, name[k],
			     (int)(intptr_t)tid[k], strerror(errno));
		if (its.it_interval.tv_sec || its.it_interval.tv_nsec != PT_NS + k)
			fail("restore %d: %s (id %d): interval %ld.%09ld s, not 0.%09d s", n,
			     name[k], (int)(intptr_t)tid[k], (long)its.it_interval.tv_sec,
			     its.it_interval.tv_nsec, PT_NS + k);
		if (timer_getoverrun(tid[k]) < 0)
			fail("restore %d: %s: timer_getoverrun: %s", n, name[k], strerror(errno));
	}
	if (!(f = fopen("/proc/self/timers", "r")))
		fail("restore %d: /proc/self/timers: %s", n, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		int id, k;

		if (sscanf(line, "ID: %d", &id) != 1)
			continue;
		for (k = T_MONO; k < nt && (int)(intptr_t)tid[k] != id; k++)
			;
		if (k == nt)
			fail("restore %d: /proc/self/timers lists id %d, not one of ours", n, id);
		ids++;
	}
	fclose(f);
	if (ids != nt - T_MONO)
		fail("restore %d: /proc/self/timers lists %d timers, not %d", n, ids, nt - T_MONO);
}

static void check_siginfo(int n)
{
	for (int k = 0; k < nt; k++) {
		if (bad_code[k])
			fail("restore %d: %s: %d signals with the wrong si_code", n, name[k],
			     (int)bad_code[k]);
		if (bad_id[k])
			fail("restore %d: %s: %d signals with another si_timerid", n, name[k],
			     (int)bad_id[k]);
		if (bad_value[k])
			fail("restore %d: %s: %d signals with the wrong si_value", n, name[k],
			     (int)bad_value[k]);
		if (bad_overrun[k])
			fail("restore %d: %s: %d signals with si_overrun < 0", n, name[k],
			     (int)bad_overrun[k]);
	}
}

/* CPU time, the only thing the CPU-time timers count. */
static void burn(void)
{
	static volatile unsigned long x;

	for (int i = 0; i < 20000; i++)
		x = x * 6364136223846793005ul + 1442695040888963407ul;
}

/* Every timer fires FIRES more times within WAIT_S s. */
static void check_fires(int n)
{
	long from[NT];
	double end = mono() + WAIT_S;
	int k;

	for (k = 0; k < nt; k++)
		from[k] = fired[k];
	for (;;) {
		for (k = 0; k < nt && fired[k] - from[k] >= FIRES; k++)
			;
		if (k == nt)
			return;
		if (mono() > end)
			break;
		burn();
	}
	for (k = 0; k < nt; k++)
		if (fired[k] - from[k] < FIRES) {
			struct itimerval it = {{0, 0}, {0, 0}};
			struct itimerspec its = {{0, 0}, {0, 0}};

			if (k <= T_PROF)
				getitimer(k, &it);
			else
				timer_gettime(tid[k], &its);
			fail("restore %d: %s fired %ld times in %.0f s, not %d (now %ld.%06ld s "
			     "left, interval %ld.%06ld s)",
			     n, name[k], fired[k] - from[k], WAIT_S, FIRES,
			     k <= T_PROF ? (long)it.it_value.tv_sec : (long)its.it_value.tv_sec,
			     k <= T_PROF ? (long)it.it_value.tv_usec : its.it_value.tv_nsec / 1000,
			     k <= T_PROF ? (long)it.it_interval.tv_sec
					 : (long)its.it_interval.tv_sec,
			     k <= T_PROF ? (long)it.it_interval.tv_usec
					 : its.it_interval.tv_nsec / 1000);
		}
}

/* Burn CPU until every timer's signal is pending: -1, or the timer whose
 * signal still is not after WAIT_S. */
static int await_pending(void)
{
	double end = mono() + WAIT_S;
	sigset_t pend;
	int k;

	for (;;) {
		sigpending(&pend);
		for (k = 0; k < nt && sigismember(&pend, signo[k]); k++)
			;
		if (k == nt)
			return -1;
		if (mono() > end)
			return k;
		burn();
	}
}

/* --hold: the six signals blocked until each is pending. */
static void hold(int n)
{
	sigset_t set;
	int k;

	sigemptyset(&set);
	for (k = 0; k < nt; k++)
		sigaddset(&set, signo[k]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if ((k = await_pending()) >= 0)
		fail("before restore %d: %s never became pending", n + 1, name[k]);
	printf("held %d\n", n);
	fflush(stdout);
}

/* Set itimer k to v, its setting before into old. */
static void swap_timer(int k, const struct itimerspec *v, struct itimerspec *old)
{
	struct itimerval nv, ov;

	nv.it_interval.tv_sec = v->it_interval.tv_sec;
	nv.it_interval.tv_usec = v->it_interval.tv_nsec / 1000;
	nv.it_value.tv_sec = v->it_value.tv_sec;
	nv.it_value.tv_usec = v->it_value.tv_nsec / 1000;
	if (setitimer(k, &nv, &ov))
		fail("setitimer %s: %s", name[k], strerror(errno));
	old->it_interval.tv_sec = ov.it_interval.tv_sec;
	old->it_interval.tv_nsec = ov.it_interval.tv_usec * 1000;
	old->it_value.tv_sec = ov.it_value.tv_sec;
	old->it_value.tv_nsec = ov.it_value.tv_usec * 1000;
	/* A timer disarmed with time left is set back with at least 1 us. */
	if (!old->it_value.tv_sec && !old->it_value.tv_nsec)
		old->it_value.tv_nsec = 1000;
}

/* --hold, restored: each held signal is pending once, no more however
 * long it waits (a POSIX timer is not re-armed before its signal is
 * delivered; a second signal would be an expiry counted twice), with its
 * siginfo; taken, every timer fires on.  The window is a few intervals of
 * CPU time, which the CPU-time timers count. */
static void release(int n)
{
	struct timespec zero = {0, 0};
	sigset_t set, pend;
	double quiet;
	siginfo_t si;
	int k;

	sigemptyset(&set);
	for (k = 0; k < nt; k++)
		sigaddset(&set, signo[k]);
	if ((k = await_pending()) >= 0)
		fail("restore %d: %s: its held signal is not pending", n, name[k]);
	for (quiet = mono() + 0.005; mono() < quiet;)
		burn();
	for (k = 0; k < nt; k++) {
		struct itimerspec off = {{0, 0}, {0, 0}}, was, unused;
		long from = fired[k];

		sigemptyset(&pend);
		sigaddset(&pend, signo[k]);
		/* Taking the signal re-arms the timer (the kernel does so as
		 * it is dequeued), whose next expiry may come at once.  An
		 * itimer is stopped while its signal is counted (its pending
		 * signal stays), so a second one can only be a copy that was
		 * pending with the first.  Stopping a POSIX timer would drop
		 * its signal; its one preallocated queue entry cannot hold two
		 * anyway: it is taken once, and what comes after is the timer
		 * firing on. */
		if (k < T_MONO)
			swap_timer(k, &off, &was);
		while (sigtimedwait(&pend, &si, &zero) == signo[k] && fired[k] - from < 10) {
			on_signal(signo[k], &si, NULL);
			if (k >= T_MONO)
				break;
		}
		if (k < T_MONO)
			swap_timer(k, &was, &unused);
		if (fired[k] - from != 1)
			fail("restore %d: %s: its held signal was pending %ld times, not once", n,
			     name[k], fired[k] - from);
	}
	sigprocmask(SIG_UNBLOCK, &set, NULL);
}

int main(int argc, char **argv)
{
	unsigned long long start = start_time(), now = 0;
	char go[PATH_MAX];
	int held = 0, n = 0, i;

	if (argc == 2 && !strcmp(argv[1], "--probe-ids"))
		return prctl(77 /* PR_TIMER_CREATE_RESTORE_IDS */, 2 /* _GET */, 0, 0, 0) < 0;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--hold"))
			held = 1;
		else if (!strcmp(argv[i], "--no-posix"))
			posix = 0;
		else
			break;
	}
	if (i != argc - 1) {
		fputs("usage: timers [--hold] [--no-posix] DIR\n       timers --probe-ids\n",
		      stderr);
		return 2;
	}
	snprintf(go, sizeof(go), "%s/go", argv[i]);
	nt = posix ? NT : T_MONO;
	arm();
	check_fires(0);
	check_siginfo(0);
	if (held)
		hold(0);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	for (double t, last = mono();; last = t) {
		/* /proc/self/stat is read only after a gap, which a restore
		 * makes: never while the next checkpoint may come, which would
		 * find it open (a file of the old pid, that a restore refuses). */
		t = mono();
		if (t - last > GAP_S && (now = start_time()) != start) {
			start = now;
			n++;
			if (held)
				release(n);
			check_setup(n);
			check_fires(n);
			check_siginfo(n);
			if (held)
				hold(n);
			else
				printf("ok %d\n", n);
			fflush(stdout);
		}
		if (!access(go, F_OK))
			break;
		burn();
	}
	if (held)
		release(n);
	check_fires(n);
	check_siginfo(n);
	printf("restored: %s\n", n ? "yes" : "no");
	return 0;
}
