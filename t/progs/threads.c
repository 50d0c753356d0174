/* threads: a pthread workload that checks every thread after a restore.
 *
 * usage: threads [--no-held-locks] [--no-held-errcheck] [--no-pending] [--no-timers]
 *                [--no-remaining] DIR
 *
 * Seven threads: main and six workers, each with its own name, thread-local
 * values and signal mask; one (w-sigwait) has an alternate signal stack.
 * "ready PID" comes a second after the start, each worker by then in a
 * blocking call of its own, which ends 3 s after "ready" if it ends by itself
 * (so the checkpoint must come before):
 *
 *   w-cond       pthread_cond_wait, woken by main's broadcast after go
 *   w-join       pthread_join of w-cond, which exits after go
 *   w-nanosleep  nanosleep of 4 s with a rem pointer
 *   w-absleep    clock_nanosleep TIMER_ABSTIME, CLOCK_MONOTONIC, 4 s ahead
 *   w-poll       poll(NULL, 0, 4000)
 *   w-sigwait    sigwaitinfo for SIGUSR2, which main queues it after go
 *
 * and main polls every 10 ms (nanosleep) until DIR/go exists.  Then every
 * thread checks its own state, main checks the rest, prints one line per
 * failed check on stderr and "restored: yes" (the process started after
 * "ready": a restored one is a new process, whatever its pid) or
 * "restored: no" on stdout, and exits 0 only if everything was intact.
 *
 * The 10 ms polls of main measure the checkpoint: the longest gap between
 * two of them (CLOCK_MONOTONIC, which runs on across a dump and restore on
 * the same boot) is the time the process spent as an image.  A restored
 * sleep must end that much later than it would have, no more, no less.
 *
 * Each group of checks below can be left out, to test what works without
 * the rest; the blocking calls and the other checks stay the same:
 *
 * --no-held-locks  no mutex is held across the checkpoint.  Otherwise main
 *                  holds an error-checking mutex and w-cond two robust ones:
 *                  after go the owners unlock (glibc compares the owner word
 *                  with the thread's tid), and the robust one w-cond exits
 *                  holding is EOWNERDEAD for main (the kernel compares it at
 *                  the thread's exit).
 * --no-held-errcheck  main holds no error-checking mutex across the
 *                  checkpoint (the robust ones still are held): its owner
 *                  word names the old tid, on no list a restore could walk,
 *                  so only a restore that keeps tids can unlock it.
 * --no-pending     no signal is pending at the checkpoint.  Otherwise w-cond
 *                  and w-poll each have two SIGRTMIN+1 queued to them
 *                  (pthread_sigqueue) and the process two SIGRTMIN+2
 *                  (sigqueue), all blocked: after go each must arrive once,
 *                  in order, with its si_value and sender.
 * --no-timers      no timer runs.  Otherwise: ITIMER_REAL (4 s, once),
 *                  ITIMER_VIRTUAL and ITIMER_PROF (long), a POSIX timer on
 *                  CLOCK_MONOTONIC to the process (SIGRTMIN+3 every 100 ms,
 *                  handled by main) and one on CLOCK_REALTIME to w-join
 *                  (SIGEV_THREAD_ID, SIGRTMIN+4 every 100 ms).
 * --no-remaining   the nanosleep may start over after a restore.  Otherwise
 *                  it must only sleep the time it had left.
 *
 * The same image can be restored twice: nothing outside the process is
 * changed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PROG "threads"
#define SETUP_FAILED 2
#include "progs.h"

enum { R_MAIN, R_COND, R_JOIN, R_NANOSLEEP, R_ABSLEEP, R_POLL, R_SIGWAIT, NROLES };

static const char *const role_name[NROLES] = {
    NULL, "w-cond", "w-join", "w-nanosleep", "w-absleep", "w-poll", "w-sigwait",
};

#define READY_AFTER 1.0 /* s from the start to "ready": every worker is blocked by then */
#define SLEEP_S 4	/* nanosleep, clock_nanosleep, poll and ITIMER_REAL */
#define EARLY 0.5	/* how much sooner than computed a restored sleep may end */
#define LATE 0.6	/* and later: less than the second a sleep started over would add */
#define TICK_NS 100000000L

#define SIG_PEND_THREAD (SIGRTMIN + 1)
#define SIG_PEND_PROC (SIGRTMIN + 2)
#define SIG_TIMER_PROC (SIGRTMIN + 3)
#define SIG_TIMER_THREAD (SIGRTMIN + 4)
#define SIG_MARK(role) (SIGRTMIN + 5 + (role)) /* makes each thread's mask its own */

#define VAL_SIGWAIT 0x5005
#define VAL_PROC(i) (0x2000 + (i))
#define VAL_THREAD(role, i) ((role)*0x100 + (i))
#define VAL_TIMER_PROC 0x3003
#define VAL_TIMER_THREAD 0x4004
#define VIRT_S 1000
#define PROF_S 1000
#define PROF_INTERVAL_S 777

struct worker {
	int role;
	const char *name;
	pthread_t th;
	void *self;	    /* its struct pthread */
	pid_t tid;	    /* at setup, then at the checks */
	atomic_int set_up;  /* its name, TLS and mask are in place */
	atomic_int blocked; /* about to enter its blocking call */
	/* The blocking call: when it started and ended, what it returned. */
	double t_start, t_end;
	int ret, err, eintr;
	siginfo_t si;
	sem_t release;
};

static struct worker W[NROLES];
static int held_locks = 1, held_errcheck = 1, pending = 1, timers = 1, remaining = 1;
static char go_path[PATH_MAX + 8], main_comm[32];
static pid_t ready_pid;
static unsigned long long ready_start;
static double t0, gap_start, gap_end;
static int restored;
static size_t tid_offset; /* of glibc's cached tid in struct pthread */
static atomic_int go_flag, checked;

static pthread_mutex_t cond_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int cond_flag;
static pthread_mutex_t errcheck, robust1, robust2;
static int robust1_stuck; /* w-cond could not unlock it */

static unsigned char altstack[64 << 10];
static __thread int my_role = -1;
static __thread uint64_t tls_word;
static __thread uint64_t tls_buf[32];

/* Signal handlers' records. */
static atomic_int usr1_tid[NROLES], usr1_onstack[NROLES], stray_usr2;
struct qrec {
	int signo, value, code, role;
	pid_t pid;
};
static struct qrec qlog[64];
static atomic_int qn;
static atomic_int ticks[2][NROLES], tick_bad;
static atomic_int alarm_count;
static volatile double alarm_at, alarm_set_at;
static timer_t timer_proc, timer_thread;
static struct itimerval virt_at_ready, prof_at_ready;

static struct timespec ts_at(double t)
{
	struct timespec ts = {(time_t)t, (long)((t - (time_t)t) * 1e9)};

	if (ts.tv_nsec >= 1000000000L)
		ts.tv_nsec = 999999999L;
	return ts;
}

static void sleep_until(double t)
{
	struct timespec ts = ts_at(t);

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void nap(void)
{
	struct timespec ts = {0, 10 * 1000 * 1000};

	nanosleep(&ts, NULL); /* EINTR from a timer's signal is just a shorter nap */
}

/* Wait (20 s at most) until *flag is set. */
static int wait_flag(atomic_int *flag)
{
	double limit = mono() + 20;

	while (!*flag && mono() < limit)
		nap();
	return *flag;
}

/* Use up to secs of CPU time before the wall clock reaches until: the CPU
 * timers must have counted down visibly by the checkpoint. */
static void burn_cpu(double secs, double until)
{
	struct timespec ts;
	volatile uint64_t sink = 0;

	do {
		for (int i = 0; i < 100000; i++)
			sink += mix(sink, i);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	} while (ts.tv_sec + ts.tv_nsec / 1e9 < secs && mono() < until);
}

/* ---- signal handlers -------------------------------------------------- */

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	stack_t ss;

	(void)sig, (void)si, (void)uc;
	if (my_role < 0)
		return;
	usr1_onstack[my_role] = !sigaltstack(NULL, &ss) && (ss.ss_flags & SS_ONSTACK);
	usr1_tid[my_role] = kernel_tid();
}

static void on_usr2(int sig)
{
	(void)sig;
	stray_usr2++;
}

static void on_queued(int sig, siginfo_t *si, void *uc)
{
	int i = qn++;

	(void)uc;
	if (i < (int)(sizeof(qlog) / sizeof(qlog[0])))
		qlog[i] =
		    (struct qrec){sig, si->si_value.sival_int, si->si_code, my_role, si->si_pid};
}

static void on_tick(int sig, siginfo_t *si, void *uc)
{
	int which = sig == SIG_TIMER_THREAD;

	(void)uc;
	if (si->si_code != SI_TIMER ||
	    si->si_value.sival_int != (which ? VAL_TIMER_THREAD : VAL_TIMER_PROC))
		tick_bad++;
	if (my_role >= 0)
		ticks[which][my_role]++;
}

static void on_alarm(int sig)
{
	(void)sig;
	if (alarm_count == 0)
		alarm_at = mono();
	alarm_count++;
}

static void set_handler(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fn;
	sa.sa_flags = SA_SIGINFO | SA_RESTART | flags;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL))
		die("sigaction");
}

static void setup_handlers(void)
{
	struct sigaction sa;

	set_handler(SIGUSR1, on_usr1, SA_ONSTACK);
	set_handler(SIG_PEND_THREAD, on_queued, 0);
	set_handler(SIG_PEND_PROC, on_queued, 0);
	set_handler(SIG_TIMER_PROC, on_tick, 0);
	set_handler(SIG_TIMER_THREAD, on_tick, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_alarm;
	if (sigaction(SIGALRM, &sa, NULL))
		die("sigaction SIGALRM");
	/* Blocked everywhere and taken by sigwaitinfo: a handler that runs
	 * means some thread's mask was lost. */
	sa.sa_handler = on_usr2;
	if (sigaction(SIGUSR2, &sa, NULL))
		die("sigaction SIGUSR2");
}

/* ---- each thread's own state ------------------------------------------ */

/* The mask each thread sets for itself: what nobody may take (SIGUSR2 is
 * for sigwaitinfo, SIGRTMIN+2 pending for main), its own marker, and for
 * workers the signals that are main's (ITIMER_REAL, the process timer) or
 * not theirs yet (SIGRTMIN+1 until they look at it; w-join takes its
 * timer's SIGRTMIN+4). */
static void role_mask(int role, sigset_t *s)
{
	sigemptyset(s);
	sigaddset(s, SIGUSR2);
	sigaddset(s, SIG_PEND_PROC);
	sigaddset(s, SIG_MARK(role));
	if (role != R_MAIN) {
		sigaddset(s, SIGALRM);
		sigaddset(s, SIG_TIMER_PROC);
		sigaddset(s, SIG_PEND_THREAD);
		if (role != R_JOIN)
			sigaddset(s, SIG_TIMER_THREAD);
	}
}

static uint64_t tls_value(int role)
{
	return 0x7157000000000000ull | (uint64_t)role << 32 | (uint32_t)mix(role, 99);
}

static const char *name_of(const struct worker *w)
{
	return w->role == R_MAIN ? "main" : w->name;
}

static void setup_thread(struct worker *w)
{
	sigset_t set;
	int e;

	my_role = w->role;
	tls_word = tls_value(w->role);
	for (size_t i = 0; i < sizeof(tls_buf) / sizeof(tls_buf[0]); i++)
		tls_buf[i] = mix(w->role + 100, i);
	role_mask(w->role, &set);
	if ((e = pthread_sigmask(SIG_SETMASK, &set, NULL)))
		die_err("pthread_sigmask", e);
	if (w->role != R_MAIN && (e = pthread_setname_np(pthread_self(), w->name)))
		die_err("pthread_setname_np", e);
	if (w->role == R_SIGWAIT) {
		stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
		if (sigaltstack(&ss, NULL))
			die("sigaltstack");
	}
	w->self = (void *)pthread_self();
	w->tid = kernel_tid();
	w->set_up = 1;
}

static void check_name(const struct worker *w)
{
	const char *want = w->role == R_MAIN ? main_comm : w->name;
	char path[64], comm[32] = "", name[32];
	ssize_t n;
	int fd, e;

	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)w->tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, comm, sizeof(comm) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n < 0) {
		fail("%s: cannot read %s: %s", name_of(w), path, strerror(errno));
	} else {
		comm[n] = 0;
		comm[strcspn(comm, "\n")] = 0;
		if (strcmp(comm, want))
			fail("%s: %s is \"%s\"", name_of(w), path, comm);
	}
	if ((e = pthread_getname_np(pthread_self(), name, sizeof(name))))
		fail("%s: pthread_getname_np: %s", name_of(w), strerror(e));
	else if (strcmp(name, want))
		fail("%s: pthread_getname_np gives \"%s\"", name_of(w), name);
}

static void check_mask(const struct worker *w)
{
	sigset_t want, have;

	role_mask(w->role, &want);
	if (pthread_sigmask(SIG_BLOCK, NULL, &have)) {
		fail("%s: cannot read the signal mask", name_of(w));
		return;
	}
	for (int sig = 1; sig <= SIGRTMAX; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP || (sig > 31 && sig < SIGRTMIN))
			continue; /* not blockable, or glibc's own */
		if (sigismember(&want, sig) != sigismember(&have, sig))
			fail("%s: signal %d is %sblocked, it was %sblocked", name_of(w), sig,
			     sigismember(&have, sig) ? "" : "not ",
			     sigismember(&want, sig) ? "" : "not ");
	}
}

static void check_altstack(const struct worker *w)
{
	stack_t ss;

	if (sigaltstack(NULL, &ss)) {
		fail("%s: sigaltstack: %s", name_of(w), strerror(errno));
	} else if (w->role == R_SIGWAIT) {
		if (ss.ss_sp != altstack || ss.ss_size != sizeof(altstack) || ss.ss_flags)
			fail("%s: alternate signal stack is %p, %zu bytes, flags %#x; was %p, %zu "
			     "bytes",
			     name_of(w), ss.ss_sp, ss.ss_size, ss.ss_flags, (void *)altstack,
			     sizeof(altstack));
	} else if (!(ss.ss_flags & SS_DISABLE)) {
		fail("%s: has an alternate signal stack at %p it never set", name_of(w), ss.ss_sp);
	}
}

static void check_rseq(const struct worker *w)
{
	struct rseq *rs = rseq_area();
	long r;

	if (!rs)
		return;
	if ((int32_t)rs->cpu_id < 0)
		fail("%s: rseq cpu_id is %d: the area is not registered", name_of(w),
		     (int32_t)rs->cpu_id);
	r = rseq_register_again(rs);
	if (r == 0 || errno != EBUSY)
		fail("%s: rseq area at %p is not registered (registering it again: %s)", name_of(w),
		     (void *)rs, r == 0 ? "succeeds" : strerror(errno));
}

/* Everything a thread checks about itself after go. */
static void check_thread(struct worker *w)
{
	pid_t tid = kernel_tid();
	int32_t cached;

	w->tid = tid;
	if (gettid() != tid)
		fail("%s: gettid() %d, SYS_gettid %d", name_of(w), (int)gettid(), (int)tid);
	cached = *(volatile int32_t *)((char *)pthread_self() + tid_offset);
	if (cached != tid)
		fail("%s: glibc's cached thread id is %d, the thread's is %d", name_of(w),
		     (int)cached, (int)tid);
	if (my_role != w->role)
		fail("%s: thread-local role is %d, not %d", name_of(w), my_role, w->role);
	if (tls_word != tls_value(w->role))
		fail("%s: thread-local word is %#llx, not %#llx", name_of(w),
		     (unsigned long long)tls_word, (unsigned long long)tls_value(w->role));
	for (size_t i = 0; i < sizeof(tls_buf) / sizeof(tls_buf[0]); i++)
		if (tls_buf[i] != mix(w->role + 100, i)) {
			fail("%s: thread-local array differs at word %zu", name_of(w), i);
			break;
		}
	check_name(w);
	check_mask(w);
	check_altstack(w);
	check_rseq(w);
}

/* ---- pending signals -------------------------------------------------- */

/* The values of signal sig that the thread of role received, in order;
 * if report, fail for each that did not come from sigqueue before "ready". */
static int received(int sig, int role, int *vals, int max, int report)
{
	int n = 0, total = qn;

	for (int i = 0; i < total && i < (int)(sizeof(qlog) / sizeof(qlog[0])); i++) {
		if (qlog[i].signo != sig || qlog[i].role != role)
			continue;
		if (report && (qlog[i].code != SI_QUEUE || qlog[i].pid != ready_pid))
			fail("%s: signal %d value %#x came with si_code %d from pid %d, not "
			     "SI_QUEUE from %d",
			     role ? role_name[role] : "main", sig, qlog[i].value, qlog[i].code,
			     (int)qlog[i].pid, (int)ready_pid);
		if (n < max)
			vals[n] = qlog[i].value;
		n++;
	}
	return n;
}

/* Unblock sig in this thread: what was queued must arrive now, once each,
 * in the order it was queued. */
static void take_pending(const struct worker *w, int sig, int v1, int v2)
{
	sigset_t set;
	double limit;
	int vals[8], n;

	sigpending(&set);
	if (pending && !sigismember(&set, sig))
		fail("%s: signal %d queued before the checkpoint is not pending", name_of(w), sig);
	sigemptyset(&set);
	sigaddset(&set, sig);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	/* Both handlers run on the way out of that call; a second more
	 * catches one that comes late. */
	limit = mono() + (pending ? 1 : 0.1);
	while (received(sig, w->role, vals, 8, 0) < (pending ? 2 : 1) && mono() < limit)
		nap();
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	n = received(sig, w->role, vals, 8, 1);
	if (!pending) {
		if (n)
			fail("%s: signal %d arrived %d times, none was sent", name_of(w), sig, n);
		return;
	}
	if (n != 2 || vals[0] != v1 || vals[1] != v2)
		fail("%s: signal %d: %d arrived (values %#x %#x), not 2 (values %#x %#x)",
		     name_of(w), sig, n, n > 0 ? vals[0] : 0, n > 1 ? vals[1] : 0, v1, v2);
	sigpending(&set);
	if (sigismember(&set, sig))
		fail("%s: signal %d is still pending after it was delivered", name_of(w), sig);
}

static void queue_pending(void)
{
	union sigval v;
	int e;

	static const int to[] = {R_COND, R_POLL};

	for (size_t k = 0; k < sizeof(to) / sizeof(to[0]); k++)
		for (int i = 1; i <= 2; i++) {
			v.sival_int = VAL_THREAD(to[k], i);
			if ((e = pthread_sigqueue(W[to[k]].th, SIG_PEND_THREAD, v)))
				die_err("pthread_sigqueue", e);
		}
	for (int i = 1; i <= 2; i++) {
		v.sival_int = VAL_PROC(i);
		if (sigqueue(getpid(), SIG_PEND_PROC, v))
			die("sigqueue");
	}
}

/* ---- timers ----------------------------------------------------------- */

static void make_timer(timer_t *t, clockid_t clock, int notify, pid_t tid, int sig, int val)
{
	struct sigevent sev;
	struct itimerspec its = {{0, TICK_NS}, {0, TICK_NS}};

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = notify;
	sev.sigev_signo = sig;
	sev.sigev_value.sival_int = val;
	sev._sigev_un._tid = tid; /* glibc 2.36 has no sigev_notify_thread_id */
	if (timer_create(clock, &sev, t))
		die("timer_create");
	if (timer_settime(*t, 0, &its, NULL))
		die("timer_settime");
}

static void start_timers(void)
{
	struct itimerval real = {{0, 0}, {SLEEP_S, 0}};
	struct itimerval virt = {{0, 0}, {VIRT_S, 0}};
	struct itimerval prof = {{PROF_INTERVAL_S, 0}, {PROF_S, 0}};

	if (setitimer(ITIMER_VIRTUAL, &virt, NULL) || setitimer(ITIMER_PROF, &prof, NULL))
		die("setitimer");
	make_timer(&timer_proc, CLOCK_MONOTONIC, SIGEV_SIGNAL, 0, SIG_TIMER_PROC, VAL_TIMER_PROC);
	make_timer(&timer_thread, CLOCK_REALTIME, SIGEV_THREAD_ID, W[R_JOIN].tid, SIG_TIMER_THREAD,
		   VAL_TIMER_THREAD);
	/* Last, due when the sleeps end. */
	alarm_set_at = mono();
	if (setitimer(ITIMER_REAL, &real, NULL))
		die("setitimer ITIMER_REAL");
}

/* The timer still answers to its id, with the interval it was given. */
static void check_timer_id(const char *what, timer_t t)
{
	struct itimerspec its;

	if (timer_gettime(t, &its)) {
		fail("%s: timer_gettime on its id %ld: %s", what, (long)(intptr_t)t,
		     strerror(errno));
		return;
	}
	if (its.it_interval.tv_sec || its.it_interval.tv_nsec != TICK_NS)
		fail("%s: interval is %ld.%09ld s, not 0.1 s", what, (long)its.it_interval.tv_sec,
		     its.it_interval.tv_nsec);
	if (its.it_value.tv_sec || its.it_value.tv_nsec <= 0 || its.it_value.tv_nsec > TICK_NS)
		fail("%s: next expiry in %ld.%09ld s, not within 0.1 s", what,
		     (long)its.it_value.tv_sec, its.it_value.tv_nsec);
	if (timer_getoverrun(t) < 0)
		fail("%s: timer_getoverrun: %s", what, strerror(errno));
}

/* Ticks of timer which seen by the thread of role in one second. */
static void count_ticks(const char *what, int which, int role)
{
	int before = ticks[which][role], n;

	sleep_until(mono() + 1);
	n = ticks[which][role] - before;
	if (n < 5 || n > 15)
		fail("%s: %d ticks in one second, not about 10", what, n);
}

static double tv_s(const struct timeval *tv)
{
	return tv->tv_sec + tv->tv_usec / 1e6;
}

static void check_itimer(const char *what, int which, const struct itimerval *at_ready,
			 long interval_s)
{
	struct itimerval it;

	if (getitimer(which, &it)) {
		fail("%s: getitimer: %s", what, strerror(errno));
		return;
	}
	if (it.it_interval.tv_sec != interval_s || it.it_interval.tv_usec)
		fail("%s: interval %ld.%06ld s, not %ld s", what, (long)it.it_interval.tv_sec,
		     (long)it.it_interval.tv_usec, interval_s);
	/* CPU time only counts it down; setitimer adds a tick to a CPU timer
	 * (Linux set_cpu_itimer), which a restore may add once more. */
	if (!timerisset(&it.it_value) || tv_s(&it.it_value) > tv_s(&at_ready->it_value) + 0.02)
		fail("%s: %ld.%06ld s left, was %ld.%06ld s at ready", what,
		     (long)it.it_value.tv_sec, (long)it.it_value.tv_usec,
		     (long)at_ready->it_value.tv_sec, (long)at_ready->it_value.tv_usec);
}

/* The time a restored process spent as an image: its sleeps end that much later. */
static double shift(void)
{
	return restored ? gap_end - gap_start : 0;
}

/* A sleep of the original process that was to end at due (monotonic) and
 * ended at end: not before due moved by the checkpoint, not much after.
 * Restored, the checkpoint must have come while it was sleeping. */
static void check_sleep_end(const char *what, double start, double due, double end, double latest)
{
	if (restored && (gap_start < start || gap_start > due))
		fail("%s: the checkpoint came %.2f s into a sleep of %.2f s: the test needs it "
		     "inside (dump sooner after ready)",
		     what, gap_start - start, due - start);
	if (end < due + shift() - (restored ? EARLY : 0.001))
		fail("%s: returned %.3f s early (slept %.3f s, %.3f s of them as an image)", what,
		     due + shift() - end, end - start, shift());
	if (end > latest + LATE)
		fail("%s: returned %.3f s late (slept %.3f s, %.3f s of them as an image)", what,
		     end - latest, end - start, shift());
}

static void check_alarm(void)
{
	double due = alarm_set_at + SLEEP_S + shift(), limit = due + LATE + 1;

	while (!alarm_count && mono() < limit)
		nap();
	if (alarm_count != 1) {
		fail("ITIMER_REAL: SIGALRM arrived %d times, not once", (int)alarm_count);
		return;
	}
	if (restored && alarm_at < gap_start)
		fail("ITIMER_REAL: fired %.2f s before the checkpoint (dump sooner after ready)",
		     gap_start - alarm_at);
	else if (alarm_at < due - (restored ? EARLY : 0.001) || alarm_at > due + LATE)
		fail("ITIMER_REAL: fired %+.3f s from its time (%.3f s after the start, %.3f s "
		     "of them as an image)",
		     alarm_at - due, alarm_at - alarm_set_at, shift());
}

/* ---- the workers ------------------------------------------------------ */

static void worker_blocking_call(struct worker *w)
{
	struct timespec req = {SLEEP_S, 0}, rem, dl = ts_at(t0 + SLEEP_S);
	sigset_t set;

	switch (w->role) {
	case R_COND:
		pthread_mutex_lock(&cond_mutex);
		w->blocked = 1;
		while (!cond_flag)
			w->ret = pthread_cond_wait(&cond, &cond_mutex);
		pthread_mutex_unlock(&cond_mutex);
		break;
	case R_JOIN: {
		void *res = NULL;
		w->blocked = 1;
		w->ret = pthread_join(W[R_COND].th, &res);
		if (w->ret)
			fail("w-join: pthread_join: %s", strerror(w->ret));
		else if (res != &W[R_COND])
			fail("w-join: w-cond exited with %p, not %p", res, (void *)&W[R_COND]);
		break;
	}
	case R_NANOSLEEP:
		w->blocked = 1;
		w->t_start = mono();
		w->ret = nanosleep(&req, &rem);
		w->err = errno;
		w->t_end = mono();
		break;
	case R_ABSLEEP:
		w->blocked = 1;
		w->t_start = mono();
		w->ret = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL);
		w->t_end = mono();
		break;
	case R_POLL:
		w->blocked = 1;
		w->t_start = mono();
		w->ret = poll(NULL, 0, SLEEP_S * 1000);
		w->err = errno;
		w->t_end = mono();
		break;
	case R_SIGWAIT:
		sigemptyset(&set);
		sigaddset(&set, SIGUSR2);
		w->blocked = 1;
		/* The kernel ends a sigwaitinfo with EINTR when a tracer stops
		 * the thread (signal(7)); no handler runs in this thread, so a
		 * dump must make it wait again, and a restore too. */
		while ((w->ret = sigwaitinfo(&set, &w->si)) < 0 && errno == EINTR)
			w->eintr++;
		w->err = errno;
		break;
	}
}

static void check_blocking_call(struct worker *w)
{
	switch (w->role) {
	case R_COND:
		if (w->ret)
			fail("w-cond: pthread_cond_wait: %s", strerror(w->ret));
		break;
	case R_NANOSLEEP:
		if (w->ret)
			fail("w-nanosleep: nanosleep: %s", strerror(w->err));
		check_sleep_end(
		    "w-nanosleep: nanosleep of 4 s", w->t_start, w->t_start + SLEEP_S, w->t_end,
		    restored && !remaining ? gap_end + SLEEP_S : w->t_start + SLEEP_S + shift());
		break;
	case R_ABSLEEP:
		if (w->ret)
			fail("w-absleep: clock_nanosleep TIMER_ABSTIME: %s", strerror(w->ret));
		/* Its deadline stays: restored after it, it returns at once. */
		if (w->t_end < t0 + SLEEP_S)
			fail("w-absleep: clock_nanosleep TIMER_ABSTIME returned %.3f s before its "
			     "deadline",
			     t0 + SLEEP_S - w->t_end);
		else if (w->t_end >
			 (restored && gap_end > t0 + SLEEP_S ? gap_end : t0 + SLEEP_S) + LATE)
			fail("w-absleep: clock_nanosleep TIMER_ABSTIME returned %.3f s after its "
			     "deadline",
			     w->t_end - t0 - SLEEP_S);
		if (restored && gap_start > t0 + SLEEP_S)
			fail("w-absleep: the checkpoint came after the deadline (dump sooner "
			     "after ready)");
		break;
	case R_POLL:
		if (w->ret)
			fail("w-poll: poll(NULL, 0, 4000) returned %d: %s", w->ret,
			     w->ret < 0 ? strerror(w->err) : "?");
		/* The kernel keeps the time left of a poll where nobody can read
		 * it: restored, it may start over. */
		check_sleep_end("w-poll: poll(NULL, 0, 4000)", w->t_start, w->t_start + SLEEP_S,
				w->t_end, restored ? gap_end + SLEEP_S : w->t_start + SLEEP_S);
		break;
	case R_SIGWAIT:
		if (w->eintr)
			fail("w-sigwait: sigwaitinfo ended with EINTR %d times, though no handler "
			     "ran",
			     w->eintr);
		if (w->ret != SIGUSR2)
			fail("w-sigwait: sigwaitinfo returned %d: %s", w->ret,
			     w->ret < 0 ? strerror(w->err) : "not SIGUSR2");
		else if (w->si.si_value.sival_int != VAL_SIGWAIT || w->si.si_code != SI_QUEUE ||
			 w->si.si_pid != getpid())
			fail("w-sigwait: SIGUSR2 came with value %#x, si_code %d, pid %d; not %#x, "
			     "SI_QUEUE, %d",
			     w->si.si_value.sival_int, w->si.si_code, (int)w->si.si_pid,
			     VAL_SIGWAIT, (int)getpid());
		break;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int e;

	setup_thread(w);
	if (w->role == R_COND && held_locks) {
		pthread_mutex_lock(&robust1);
		pthread_mutex_lock(&robust2);
	}
	worker_blocking_call(w);
	wait_flag(&go_flag);
	check_blocking_call(w);
	check_thread(w);
	if (w->role == R_COND || w->role == R_POLL)
		take_pending(w, SIG_PEND_THREAD, VAL_THREAD(w->role, 1), VAL_THREAD(w->role, 2));
	if (w->role == R_JOIN && timers)
		count_ticks("POSIX timer of w-join (SIGEV_THREAD_ID, CLOCK_REALTIME)", 1, R_JOIN);
	if (w->role == R_COND) {
		/* Leave holding robust2: the kernel must mark it for main. */
		if (!held_locks) {
			pthread_mutex_lock(&robust1);
			pthread_mutex_lock(&robust2);
		}
		if ((e = pthread_mutex_unlock(&robust1))) {
			fail("w-cond: unlocking its robust mutex%s: %s (lock word %#x, thread %d)",
			     held_locks ? " held across the checkpoint" : "", strerror(e),
			     robust1.__data.__lock, (int)kernel_tid());
			robust1_stuck = 1;
		}
		checked++;
		return w;
	}
	checked++;
	while (sem_wait(&w->release) && errno == EINTR)
		;
	return w;
}

/* ---- main ------------------------------------------------------------- */

/* glibc keeps each thread's tid in its struct pthread (pthread_kill,
 * pthread_sigqueue, mutex owners use it): find where, as the one offset
 * that holds the tid in all seven. */
static void find_tid_offset(void)
{
	for (size_t off = 0; off < 1024; off += 4) {
		int all = 1;
		for (int r = 0; r < NROLES && all; r++)
			all = *(int32_t *)((char *)W[r].self + off) == W[r].tid;
		if (all) {
			tid_offset = off;
			return;
		}
	}
	die_err("glibc's cached thread id", ENOENT);
}

static void init_mutexes(void)
{
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
	if (pthread_mutex_init(&errcheck, &a))
		die_err("pthread_mutex_init", EINVAL);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_NORMAL);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (pthread_mutex_init(&robust1, &a) || pthread_mutex_init(&robust2, &a))
		die_err("pthread_mutex_init", EINVAL);
	pthread_mutexattr_destroy(&a);
}

static void start_workers(void)
{
	sigset_t all, old;
	int e;

	/* Workers start with every signal blocked and set their own mask. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int r = R_COND; r < NROLES; r++) {
		W[r].role = r;
		W[r].name = role_name[r];
		if (sem_init(&W[r].release, 0, 0))
			die("sem_init");
		if ((e = pthread_create(&W[r].th, NULL, worker_main, &W[r])))
			die_err("pthread_create", e);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	for (int r = R_COND; r < NROLES; r++)
		if (!wait_flag(&W[r].set_up))
			die_err(role_name[r], ETIMEDOUT);
}

/* Two seconds from now, for pthread_mutex_timedlock: a lock that is not
 * given must fail the check, not hang the program. */
static struct timespec soon(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	return ts;
}

static void check_held_locks(void)
{
	struct timespec ts = soon();
	int e;

	if (held_locks && held_errcheck && (e = pthread_mutex_unlock(&errcheck))) {
		fail("main: unlocking its error-checking mutex held across the checkpoint: %s "
		     "(owner %d, thread %d)",
		     strerror(e), errcheck.__data.__owner, (int)kernel_tid());
		return; /* still locked: nothing more to learn from it */
	}
	if ((e = pthread_mutex_timedlock(&errcheck, &ts))) {
		fail("main: locking an error-checking mutex: %s", strerror(e));
		return;
	}
	if ((e = pthread_mutex_timedlock(&errcheck, &ts)) != EDEADLK)
		fail("main: locking its error-checking mutex again gives %s, not EDEADLK",
		     strerror(e));
	if ((e = pthread_mutex_unlock(&errcheck)))
		fail("main: unlocking an error-checking mutex: %s", strerror(e));
}

/* After w-cond is gone: it held robust2 when it exited. */
static void check_robust(void)
{
	struct timespec ts = soon();
	int e;

	e = pthread_mutex_timedlock(&robust2, &ts);
	if (e != EOWNERDEAD) {
		fail("main: robust mutex w-cond%s exited holding: locking it gives %s, not "
		     "EOWNERDEAD (lock word %#x)",
		     held_locks ? " held across the checkpoint and" : "", strerror(e),
		     robust2.__data.__lock);
	} else {
		if ((e = pthread_mutex_consistent(&robust2)))
			fail("main: pthread_mutex_consistent: %s", strerror(e));
		pthread_mutex_unlock(&robust2);
	}
	if (robust1_stuck)
		return;
	if ((e = pthread_mutex_timedlock(&robust1, &ts)))
		fail("main: robust mutex w-cond unlocked: locking it gives %s", strerror(e));
	else
		pthread_mutex_unlock(&robust1);
}

/* pthread_kill(worker, SIGUSR1) runs the handler in that very thread (on
 * its alternate stack for w-sigwait), and raise() in main. */
static void check_usr1(void)
{
	double limit;
	int e;

	usr1_tid[R_MAIN] = 0;
	if (raise(SIGUSR1))
		fail("main: raise(SIGUSR1): %s", strerror(errno));
	else if (usr1_tid[R_MAIN] != kernel_tid())
		fail("main: raise(SIGUSR1) ran the handler in thread %d, not %d",
		     (int)usr1_tid[R_MAIN], (int)kernel_tid());
	for (int r = R_JOIN; r < NROLES; r++) {
		usr1_tid[r] = 0;
		if ((e = pthread_kill(W[r].th, SIGUSR1))) {
			fail("main: pthread_kill(%s, SIGUSR1): %s", W[r].name, strerror(e));
			continue;
		}
		limit = mono() + 5;
		while (!usr1_tid[r] && mono() < limit)
			nap();
		if (usr1_tid[r] != W[r].tid)
			fail("main: pthread_kill(%s, SIGUSR1) ran the handler in thread %d, not %d",
			     W[r].name, (int)usr1_tid[r], (int)W[r].tid);
		else if (usr1_onstack[r] != (r == R_SIGWAIT))
			fail("%s: the SIGUSR1 handler ran %s the alternate signal stack", W[r].name,
			     usr1_onstack[r] ? "on" : "off");
	}
}

/* Every worker has done its checks: w-cond has exited, the others are
 * parked in sem_wait. */
static void wait_checked(void)
{
	double limit = mono() + 30;

	while (checked < NROLES - 1 && mono() < limit)
		nap();
	if (checked < NROLES - 1)
		fail("main: only %d of the workers finished their checks in 30 s", (int)checked);
}

static int count_tasks(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static void usage(void)
{
	fputs("usage: threads [--no-held-locks] [--no-held-errcheck] [--no-pending] [--no-timers] "
	      "[--no-remaining] "
	      "DIR\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	struct worker *m = &W[R_MAIN];
	union sigval v = {.sival_int = VAL_SIGWAIT};
	double prev, now;
	int argi = 1, e, n, fd;

	for (; argi < argc - 1 && !strncmp(argv[argi], "--", 2); argi++) {
		if (!strcmp(argv[argi], "--no-held-locks"))
			held_locks = 0;
		else if (!strcmp(argv[argi], "--no-held-errcheck"))
			held_errcheck = 0;
		else if (!strcmp(argv[argi], "--no-pending"))
			pending = 0;
		else if (!strcmp(argv[argi], "--no-timers"))
			timers = 0;
		else if (!strcmp(argv[argi], "--no-remaining"))
			remaining = 0;
		else
			usage();
	}
	if (argc != argi + 1)
		usage();
	snprintf(go_path, sizeof(go_path), "%s/go", argv[argi]);
	fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, main_comm, sizeof(main_comm) - 1) : -1;
	if (n <= 0)
		die("/proc/self/comm");
	main_comm[strcspn(main_comm, "\n")] = 0;
	close(fd);

	t0 = mono();
	setup_handlers();
	init_mutexes();
	start_workers();
	setup_thread(m);
	find_tid_offset();
	if (held_locks && held_errcheck && (e = pthread_mutex_lock(&errcheck)))
		die_err("pthread_mutex_lock", e);
	if (pending)
		queue_pending();
	if (timers)
		start_timers();
	for (int r = R_COND; r < NROLES; r++)
		if (!wait_flag(&W[r].blocked))
			die_err(role_name[r], ETIMEDOUT);
	/* w-cond released this mutex only inside pthread_cond_wait. */
	pthread_mutex_lock(&cond_mutex);
	pthread_mutex_unlock(&cond_mutex);
	if (timers)
		burn_cpu(0.3, t0 + READY_AFTER - 0.1);
	sleep_until(t0 + READY_AFTER);
	if (timers &&
	    (getitimer(ITIMER_VIRTUAL, &virt_at_ready) || getitimer(ITIMER_PROF, &prof_at_ready)))
		die("getitimer");

	ready_pid = getpid();
	ready_start = start_time();
	printf("ready %d\n", (int)ready_pid);
	if (fflush(stdout))
		die("stdout");

	prev = mono();
	gap_start = gap_end = prev;
	while (access(go_path, F_OK)) {
		nap();
		now = mono();
		if (now - prev > gap_end - gap_start) {
			gap_start = prev;
			gap_end = now;
		}
		prev = now;
	}
	restored = start_time() != ready_start;
	if ((n = count_tasks()) != NROLES)
		fail("main: %d of the %d threads are in /proc/self/task", n, NROLES);
	go_flag = 1;

	pthread_mutex_lock(&cond_mutex);
	cond_flag = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&cond_mutex);
	if ((e = pthread_sigqueue(W[R_SIGWAIT].th, SIGUSR2, v)))
		fail("main: pthread_sigqueue(w-sigwait, SIGUSR2): %s", strerror(e));

	check_thread(m);
	check_held_locks();
	take_pending(m, SIG_PEND_PROC, VAL_PROC(1), VAL_PROC(2));
	if (timers) {
		check_timer_id("POSIX timer of the process (CLOCK_MONOTONIC)", timer_proc);
		check_timer_id("POSIX timer of w-join (SIGEV_THREAD_ID, CLOCK_REALTIME)",
			       timer_thread);
		count_ticks("POSIX timer of the process (CLOCK_MONOTONIC)", 0, R_MAIN);
		check_alarm();
		check_itimer("ITIMER_VIRTUAL", ITIMER_VIRTUAL, &virt_at_ready, 0);
		check_itimer("ITIMER_PROF", ITIMER_PROF, &prof_at_ready, PROF_INTERVAL_S);
	}
	wait_checked();
	check_usr1();
	if (timers) {
		for (int r = 0; r < NROLES; r++) {
			if (r != R_MAIN && ticks[0][r])
				fail("%s: took %d ticks of the process timer, blocked",
				     role_name[r], (int)ticks[0][r]);
			if (r != R_JOIN && ticks[1][r])
				fail("%s: took %d ticks of w-join's timer",
				     r ? role_name[r] : "main", (int)ticks[1][r]);
		}
		if (tick_bad)
			fail("%d timer signals came without SI_TIMER or their value",
			     (int)tick_bad);
		timer_delete(timer_proc);
		timer_delete(timer_thread);
	}
	for (int r = R_JOIN; r < NROLES; r++) {
		sem_post(&W[r].release);
		if ((e = pthread_join(W[r].th, NULL)))
			fail("main: pthread_join(%s): %s", W[r].name, strerror(e));
	}
	check_robust();
	if (qn != (pending ? 6 : 0))
		fail("main: %d queued signals arrived in all, not %d", (int)qn, pending ? 6 : 0);
	if (stray_usr2)
		fail("main: SIGUSR2 ran its handler %d times: some thread had it unblocked",
		     (int)stray_usr2);

	printf("restored: %s\n", restored ? "yes" : "no");
	if (fflush(stdout))
		fail("cannot write stdout: %s", strerror(errno));
	return failures ? 1 : 0;
}
