/* attrs.c: a process's attributes across a checkpoint.
 *
 *   attrs MODE DIR   sets one group of attributes, by MODE:
 *     limits     soft and hard resource limits lowered (RLIMIT_NOFILE,
 *                CORE, CPU, FSIZE, MSGQUEUE, SIGPENDING, NPROC, LOCKS)
 *     sched      nice 5 and SCHED_BATCH, CPU affinity, timer slack and
 *                personality ADDR_NO_RANDOMIZE in the main thread; a
 *                second thread with SCHED_IDLE, nice 7, another affinity
 *                and timer slack of its own
 *     rt         SCHED_RR priority 3 (root)
 *     prctl      child subreaper, THP disable, no_new_privs, parent death
 *                signal SIGUSR2, oom_score_adj 500, and as root dumpable 0
 *     membarrier registered for private expedited membarrier (and its
 *                sync-core and rseq variants where the kernel has them)
 *     seccomp    no_new_privs and a filter that makes getppid fail with
 *                EPERM, allowing every other call, in both threads (TSYNC)
 *     strict     seccomp strict mode: waits for a byte on DIR/fifo (made by
 *                the caller), then says "attrs: ok" and exits
 *     caps       (root) CAP_NET_RAW dropped from every set and the
 *                bounding set, CAP_SYS_NICE from the effective set,
 *                CAP_NET_BIND_SERVICE inheritable and ambient,
 *                SECBIT_NO_SETUID_FIXUP, loginuid 4242
 *   then reads every attribute, prints "ready PID", waits for DIR/go,
 *   reads them all again (each thread its own) and says what differs, a
 *   line each; for seccomp, getppid must still fail with EPERM.  Last line
 *   "attrs: ok", exit 0, if nothing differs.
 */
#define PROG "attrs"
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/membarrier.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "progs.h"

/* What a process holds: the process's, and the calling thread's. */
struct snap {
	struct rlimit rl[RLIM_NLIMITS];
	int personality, oom, subreaper, thp, nnp, dumpable, pdeathsig, securebits, seccomp;
	unsigned loginuid;
	int memb[3]; /* membarrier commands: 0 ran, else the errno */
	uint64_t eff, prm, inh, bnd, amb;
	int getppid_err;
};

struct tsnap {
	int policy, prio, nice;
	cpu_set_t aff;
	long slack;
};

static long self_number(const char *path)
{
	FILE *f = fopen(path, "re");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static void take_thread(struct tsnap *t)
{
	struct sched_param sp;

	memset(t, 0, sizeof(*t));
	t->policy = sched_getscheduler(0);
	sched_getparam(0, &sp);
	t->prio = sp.sched_priority;
	t->nice = getpriority(PRIO_PROCESS, 0);
	sched_getaffinity(0, sizeof(t->aff), &t->aff);
	t->slack = prctl(PR_GET_TIMERSLACK);
}

static int memb(int cmd)
{
	return syscall(SYS_membarrier, cmd, 0, 0) ? errno : 0;
}

static void take(struct snap *s)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];

	memset(s, 0, sizeof(*s));
	for (int i = 0; i < RLIM_NLIMITS; i++)
		getrlimit(i, &s->rl[i]);
	s->personality = personality(0xffffffff);
	s->oom = self_number("/proc/self/oom_score_adj");
	s->loginuid = self_number("/proc/self/loginuid");
	prctl(PR_GET_CHILD_SUBREAPER, &s->subreaper);
	s->thp = prctl(PR_GET_THP_DISABLE);
	s->nnp = prctl(PR_GET_NO_NEW_PRIVS);
	s->dumpable = prctl(PR_GET_DUMPABLE);
	prctl(PR_GET_PDEATHSIG, &s->pdeathsig);
	s->securebits = prctl(PR_GET_SECUREBITS);
	s->seccomp = prctl(PR_GET_SECCOMP);
	s->memb[0] = memb(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
	s->memb[1] = memb(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE);
	s->memb[2] = memb(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ);
	if (syscall(SYS_capget, &h, d) == 0) {
		s->eff = d[0].effective | (uint64_t)d[1].effective << 32;
		s->prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
		s->inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	}
	for (int c = 0; c < 64; c++) {
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1)
			s->bnd |= 1ull << c;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1)
			s->amb |= 1ull << c;
	}
	s->getppid_err = syscall(SYS_getppid) < 0 ? errno : 0;
}

#define SAME(field, what)                                                                          \
	do {                                                                                       \
		if (a->field != b->field)                                                          \
			fail("%s%s: %lld before, %lld after", who, what, (long long)a->field,      \
			     (long long)b->field);                                                 \
	} while (0)

static void compare_thread(const char *who, const struct tsnap *a, const struct tsnap *b)
{
	SAME(policy, "scheduling policy");
	SAME(prio, "scheduling priority");
	SAME(nice, "nice");
	SAME(slack, "timer slack");
	if (!CPU_EQUAL(&a->aff, &b->aff))
		fail("%sCPU affinity differs (%d CPUs before, %d after)", who, CPU_COUNT(&a->aff),
		     CPU_COUNT(&b->aff));
}

static void compare(const struct snap *a, const struct snap *b)
{
	const char *who = "";

	for (int i = 0; i < RLIM_NLIMITS; i++) {
		if (a->rl[i].rlim_cur != b->rl[i].rlim_cur ||
		    a->rl[i].rlim_max != b->rl[i].rlim_max)
			fail("resource limit %d: %llu/%llu before, %llu/%llu after", i,
			     (unsigned long long)a->rl[i].rlim_cur,
			     (unsigned long long)a->rl[i].rlim_max,
			     (unsigned long long)b->rl[i].rlim_cur,
			     (unsigned long long)b->rl[i].rlim_max);
	}
	SAME(personality, "personality");
	SAME(oom, "oom_score_adj");
	SAME(loginuid, "loginuid");
	SAME(subreaper, "child subreaper");
	SAME(thp, "THP disable");
	SAME(nnp, "no_new_privs");
	SAME(dumpable, "dumpable");
	SAME(pdeathsig, "parent death signal");
	SAME(securebits, "securebits");
	SAME(seccomp, "seccomp mode");
	SAME(memb[0], "membarrier private expedited (errno)");
	SAME(memb[1], "membarrier private expedited sync-core (errno)");
	SAME(memb[2], "membarrier private expedited rseq (errno)");
	SAME(eff, "effective capabilities");
	SAME(prm, "permitted capabilities");
	SAME(inh, "inheritable capabilities");
	SAME(bnd, "bounding set");
	SAME(amb, "ambient capabilities");
	SAME(getppid_err, "getppid's errno");
}

static void set_limits(void)
{
	static const struct {
		int res;
		rlim_t cur, max;
	} l[] = {
	    {RLIMIT_NOFILE, 200, 500},	   {RLIMIT_CORE, 0, 1234567},
	    {RLIMIT_CPU, 1000, 2000},	   {RLIMIT_FSIZE, 1 << 30, 3u << 30},
	    {RLIMIT_MSGQUEUE, 4096, 8192}, {RLIMIT_SIGPENDING, 100, 200},
	    {RLIMIT_NPROC, 10000, 20000},  {RLIMIT_LOCKS, 300, 400},
	};

	for (size_t i = 0; i < sizeof(l) / sizeof(l[0]); i++) {
		struct rlimit rl = {l[i].cur, l[i].max}, old;

		getrlimit(l[i].res, &old);
		if (rl.rlim_max > old.rlim_max)
			rl.rlim_max = old.rlim_max;
		if (rl.rlim_cur > rl.rlim_max)
			rl.rlim_cur = rl.rlim_max;
		if (setrlimit(l[i].res, &rl))
			die("setrlimit");
	}
}

static int ncpus(void)
{
	cpu_set_t s;

	sched_getaffinity(0, sizeof(s), &s);
	return CPU_COUNT(&s);
}

/* The second thread of mode sched: attributes of its own, checked by
 * itself once main says go. */
static atomic_int thread_ready, thread_go;

static void *second(void *arg)
{
	struct sched_param sp = {0};
	struct tsnap before, after;
	struct timespec ts = {0, 10 * 1000 * 1000};
	cpu_set_t s;

	(void)arg;
	CPU_ZERO(&s);
	CPU_SET(0, &s);
	if (sched_setscheduler(0, SCHED_IDLE, &sp) || setpriority(PRIO_PROCESS, 0, 7) ||
	    sched_setaffinity(0, sizeof(s), &s) || prctl(PR_SET_TIMERSLACK, 654321))
		die("second thread's attributes");
	take_thread(&before);
	thread_ready = 1;
	while (!thread_go)
		nanosleep(&ts, NULL);
	take_thread(&after);
	compare_thread("second thread: ", &before, &after);
	return NULL;
}

static void set_sched(pthread_t *th)
{
	struct sched_param sp = {0};
	struct timespec ts = {0, 10 * 1000 * 1000};
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(ncpus() > 1 ? 1 : 0, &s);
	if (setpriority(PRIO_PROCESS, 0, 5) || sched_setscheduler(0, SCHED_BATCH, &sp) ||
	    sched_setaffinity(0, sizeof(s), &s) || prctl(PR_SET_TIMERSLACK, 123456) ||
	    personality(ADDR_NO_RANDOMIZE) < 0)
		die("scheduling attributes");
	if (pthread_create(th, NULL, second, NULL))
		die("pthread_create");
	while (!thread_ready)
		nanosleep(&ts, NULL);
}

static void set_prctl(void)
{
	FILE *f = fopen("/proc/self/oom_score_adj", "we");

	if (prctl(PR_SET_CHILD_SUBREAPER, 1) || prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_PDEATHSIG, SIGUSR2))
		die("prctl");
	if (!f || fprintf(f, "500") < 0 || fclose(f))
		die("oom_score_adj");
	if (getuid() == 0 && prctl(PR_SET_DUMPABLE, 0))
		die("PR_SET_DUMPABLE");
}

static void set_membarrier(void)
{
	int have = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	if (have < 0 || !(have & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED))
		die("membarrier query");
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0))
		die("membarrier register");
	if ((have & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) &&
	    syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0))
		die("membarrier register sync-core");
	if ((have & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ) &&
	    syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0))
		die("membarrier register rseq");
}

/* The second thread of mode seccomp: the filter, given it by the main
 * thread (TSYNC), must still deny it getppid after the restore. */
static void *sandboxed(void *arg)
{
	struct timespec ts = {0, 10 * 1000 * 1000};

	(void)arg;
	thread_ready = 1;
	while (!thread_go)
		nanosleep(&ts, NULL);
	if (syscall(SYS_getppid) != -1 || errno != EPERM)
		fail("second thread: getppid is no longer denied");
	if (prctl(PR_GET_SECCOMP) != 2)
		fail("second thread: seccomp mode %d", prctl(PR_GET_SECCOMP));
	return NULL;
}

static void set_seccomp(pthread_t *th)
{
	struct timespec ts = {0, 10 * 1000 * 1000};
	struct sock_filter f[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog p = {sizeof(f) / sizeof(f[0]), f};

	if (pthread_create(th, NULL, sandboxed, NULL))
		die("pthread_create");
	while (!thread_ready)
		nanosleep(&ts, NULL);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &p))
		die("seccomp");
	if (syscall(SYS_getppid) != -1 || errno != EPERM)
		die("the filter does not deny getppid");
}

static void set_caps(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	FILE *f;

	if (syscall(SYS_capget, &h, d))
		die("capget");
	d[0].inheritable |= 1u << CAP_NET_BIND_SERVICE;
	if (syscall(SYS_capset, &h, d) ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) ||
	    prctl(PR_CAPBSET_DROP, CAP_NET_RAW, 0, 0, 0) ||
	    prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP))
		die("capabilities");
	d[0].effective &= ~(1u << CAP_NET_RAW | 1u << CAP_SYS_NICE);
	d[0].permitted &= ~(1u << CAP_NET_RAW);
	if (syscall(SYS_capset, &h, d))
		die("capset");
	f = fopen("/proc/self/loginuid", "we");
	if (!f || fprintf(f, "4242") < 0 || fclose(f))
		die("loginuid");
}

/* Strict mode allows read, write, _exit and sigreturn: wait for a byte on
 * DIR/fifo (opened before), say so and leave with _exit. */
static _Noreturn void strict(const char *dir)
{
	static const char ok[] = "attrs: ok\n";
	char path[4096], c;
	int fd;

	snprintf(path, sizeof(path), "%s/fifo", dir);
	fd = open(path, O_RDWR);
	if (fd < 0)
		die("fifo");
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT))
		die("SECCOMP_MODE_STRICT");
	if (syscall(SYS_read, fd, &c, 1) == 1)
		syscall(SYS_write, 1, ok, sizeof(ok) - 1);
	syscall(SYS_exit, 0);
	__builtin_unreachable();
}

int main(int argc, char **argv)
{
	char go[4096];
	struct snap before, after;
	struct tsnap tbefore, tafter;
	pthread_t th;
	const char *mode;
	int sched = 0; /* a second thread to tell go and join */

	if (argc != 3) {
		fprintf(stderr,
			"usage: attrs limits|sched|rt|prctl|membarrier|seccomp|strict|caps DIR\n");
		return 2;
	}
	mode = argv[1];
	snprintf(go, sizeof(go), "%s/go", argv[2]);
	if (!strcmp(mode, "limits")) {
		set_limits();
	} else if (!strcmp(mode, "sched")) {
		set_sched(&th);
		sched = 1;
	} else if (!strcmp(mode, "rt")) {
		struct sched_param sp = {.sched_priority = 3};

		if (sched_setscheduler(0, SCHED_RR, &sp))
			die("SCHED_RR");
	} else if (!strcmp(mode, "prctl")) {
		set_prctl();
	} else if (!strcmp(mode, "membarrier")) {
		set_membarrier();
	} else if (!strcmp(mode, "seccomp")) {
		set_seccomp(&th);
		sched = 1;
	} else if (!strcmp(mode, "strict")) {
		strict(argv[2]);
	} else if (!strcmp(mode, "caps")) {
		set_caps();
	} else {
		fprintf(stderr, "attrs: unknown mode %s\n", mode);
		return 2;
	}
	take(&before);
	take_thread(&tbefore);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	wait_file(go);
	take(&after);
	take_thread(&tafter);
	compare(&before, &after);
	compare_thread("main thread: ", &tbefore, &tafter);
	if (sched) {
		thread_go = 1;
		pthread_join(th, NULL);
	}
	if (failures)
		return 1;
	printf("attrs: ok\n");
	return 0;
}
