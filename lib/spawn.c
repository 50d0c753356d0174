/* spawn.c: restore under the image's own pid.
 *
 * A process cannot change its pid, so keeping it means creating the
 * process anew: clone3 with set_tid, which needs CAP_CHECKPOINT_RESTORE
 * (or CAP_SYS_ADMIN) in the user namespace that owns the pid namespace.
 * As root that is the one we are in; otherwise a new user namespace gives
 * it, with a new pid namespace whose first process (pid 1, its init) is a
 * copy of ckpt-remap that creates the program with its pid.  Either way
 * ckpt-remap stays as the program's parent: it passes on the signals a
 * shell sends and exits as the program exits. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "restore.h"
#include "util.h"

static pid_t supervised;

/* Signals a shell sends that the program should get.  Those the terminal
 * generates (si_code SI_KERNEL) reach the program directly, as it is in
 * our process group; only those sent to us by a process are passed on. */
static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGCONT,
				SIGWINCH, SIGUSR1, SIGUSR2};

static void forward(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (supervised > 0 && si->si_code <= 0)
		kill(supervised, sig);
}

/* Die as the program died, so our parent sees the same status. */
static _Noreturn void exit_like(int status)
{
	struct rlimit no_core = {0, 0};
	sigset_t set;
	int sig;

	/* _exit: nothing of ours to flush or free, and no exit handlers (a
	 * leak checker's among them) in a process whose only job was to
	 * wait. */
	fflush(NULL);
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	sig = WTERMSIG(status);
	setrlimit(RLIMIT_CORE, &no_core);
	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	kill(getpid(), sig);
	_exit(128 + sig);
}

/* Wait for child as its parent: pass signals on, stop when it stops, and
 * return its final wait status.  Other children (in a pid namespace, as its
 * init, every orphan) are reaped on the way. */
static int supervise(pid_t child)
{
	struct sigaction sa;
	int status;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = forward;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	supervised = child;
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaction(forwarded[i], &sa, NULL);
	for (;;) {
		pid_t p = waitpid(-1, &status, __WALL | WUNTRACED);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			return (128 + SIGKILL) << 8; /* lost it: report a kill */
		if (p != child)
			continue;
		if (WIFSTOPPED(status)) {
			/* Stopped (^Z): stop too, so the shell sees the job stop;
			 * its SIGCONT reaches the program through forward(). */
			raise(SIGSTOP);
			continue;
		}
		return status;
	}
}

static pid_t clone_with_pid(pid_t pid)
{
	struct clone_args ca;

	memset(&ca, 0, sizeof(ca));
	ca.exit_signal = SIGCHLD;
	ca.set_tid = (uint64_t)&pid;
	ca.set_tid_size = 1;
	return syscall(SYS_clone3, &ca, sizeof(ca));
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int rc;

	if (fd < 0) {
		err_sys("cannot open %s", path);
		return -1;
	}
	rc = write_all(fd, s, strlen(s));
	if (rc)
		err_sys("cannot write %s", path);
	close(fd);
	return rc;
}

/* A user namespace in which we hold every capability, our uid and gid
 * mapped to themselves, and a pid namespace for our next child. */
static int enter_namespaces(void)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	char map[64];

	if (unshare(CLONE_NEWUSER)) {
		err_sys("cannot create a user namespace");
		return -1;
	}
	snprintf(map, sizeof(map), "%u %u 1\n", uid, uid);
	if (write_str("/proc/self/uid_map", map))
		return -1;
	if (write_str("/proc/self/setgroups", "deny"))
		return -1;
	snprintf(map, sizeof(map), "%u %u 1\n", gid, gid);
	if (write_str("/proc/self/gid_map", map))
		return -1;
	/* A mount namespace too, for a /proc of the new pid namespace. */
	if (unshare(CLONE_NEWPID | CLONE_NEWNS)) {
		err_sys("cannot create a pid namespace");
		return -1;
	}
	return 0;
}

/* In the new pid namespace, a /proc that shows it: the program finds
 * itself under its own pid there (/proc/self/task/TID for its tids).
 * Where the outer /proc has parts hidden by other mounts the kernel
 * refuses (it would reveal them); the program then sees the outer one. */
static void mount_proc(void)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
		mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

/* The parent side: the child has the image now. */
static _Noreturn void parent(struct img_input *in, pid_t child)
{
	close(in->r.fd);
	if (in->status_fd >= 0)
		close(in->status_fd);
	exit_like(supervise(child));
}

/* As the pid namespace's init: create the program with its pid, reap
 * every orphan, and hand the program's wait status up through a pipe (an
 * init cannot die of a signal it sends itself). */
static _Noreturn void ns_init(struct img_input *in, int flags, int status_pipe)
{
	pid_t want = in->im.proc.pid, child;
	int status;

	mount_proc();
	if (want == 1) {
		/* The program was an init itself: become it. */
		close(status_pipe);
		if (rst_restore(in, flags | RST_KEEP_TIDS))
			die(ckpt_fail_rc(), "%s", err_get());
	}
	child = clone_with_pid(want);
	if (child < 0)
		die(ckpt_fail_rc(), "cannot create pid %d in the new pid namespace: %s", want,
		    strerror(errno));
	if (child == 0) {
		close(status_pipe);
		if (rst_restore(in, flags | RST_KEEP_TIDS))
			die(ckpt_fail_rc(), "%s", err_get());
	}
	close(in->r.fd);
	if (in->status_fd >= 0)
		close(in->status_fd);
	status = supervise(child);
	if (write(status_pipe, &status, sizeof(status)) != sizeof(status))
		_exit(ckpt_fail_rc());
	_exit(0);
}

int rst_run(struct img_input *in, int flags, enum rst_pids pids)
{
	pid_t pid = in->im.proc.pid, child;
	int p[2], status;

	if (pids == RST_PIDS_AUTO) {
		fflush(NULL);
		child = clone_with_pid(pid);
		if (child == 0)
			return rst_restore(in, flags | RST_KEEP_TIDS);
		if (child > 0)
			parent(in, child);
		/* EPERM (no privilege), EEXIST (the pid is taken): become the
		 * process under our own pid. */
		pids = RST_PIDS_NEW;
	}
	if (pids == RST_PIDS_NEW)
		return rst_restore(in, flags);

	if (pipe2(p, O_CLOEXEC)) {
		err_sys("cannot create a pipe");
		return -1;
	}
	if (enter_namespaces())
		return -1;
	fflush(NULL);
	child = fork();
	if (child < 0) {
		err_sys("cannot fork into the new pid namespace");
		return -1;
	}
	if (child == 0) {
		close(p[0]);
		ns_init(in, flags, p[1]);
	}
	close(p[1]);
	close(in->r.fd);
	if (in->status_fd >= 0)
		close(in->status_fd);
	status = supervise(child);
	/* The init's own exit is not the program's: it sent us that. */
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    read_full(p[0], &status, sizeof(status)) == sizeof(status))
		exit_like(status);
	exit_like(status);
}
