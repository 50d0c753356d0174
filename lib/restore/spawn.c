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
#include <linux/capability.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds.h"
#include "restore/restore.h"
#include "restore/restorer/restorer.h"
#include "target/target.h"

static pid_t supervised;
static int outer_tty = -1, tty_handed; /* the terminal a session leader gets: below */

static int tree_supervise(struct img_input *in, int flags, int ns);

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

/* ---- the terminal a session leader was started on ---------------------- */

/* A program that led a session on a terminal from outside (a shell on
 * the user's terminal, started by a terminal emulator, sshd or tmux)
 * needs a session on ckpt-remap's terminal: an interactive shell gives
 * the terminal to its jobs and takes it back by the group ids it knows,
 * which must exist in the terminal's session (TIOCSPGRP, else ESRCH).
 * outer_tty is ckpt-remap's terminal (one of fds 0-2), -1 if none;
 * tty_handed says that ckpt-remap led its session and gave the terminal
 * up (TIOCNOTTY), so that the program's session takes it (TIOCSCTTY);
 * otherwise the program keeps ckpt-remap's session, in a process group of
 * its own in the foreground. */

/* pts/N of a stat tty_nr, or -1 for another terminal. */
static long pty_index(int32_t tty_nr)
{
	unsigned maj = ((unsigned)tty_nr >> 8) & 0xfff;
	unsigned min = ((unsigned)tty_nr & 0xff) | (((unsigned)tty_nr >> 12) & 0xfff00);

	/* Unix98 pty slaves: majors 136 to 143. */
	return maj >= 136 && maj <= 143 ? (long)(maj - 136) * 256 + min : -1;
}

/* Whether the pty the root had as its terminal is a pair of the tree's
 * own (a master some process holds), made again with it. */
static int tty_of_tree(struct img_input *in, long index)
{
	for (size_t k = 0; k <= in->nrest; k++) {
		const struct image *im = img_proc_at(in, k);

		for (size_t i = 0; i < im->nfiles; i++) {
			const struct fd_entry *f = &im->files[i];
			struct img_tty t;

			if (f->d.kind != IMG_FD_TTY)
				continue;
			memcpy(&t, f->extra, sizeof(t));
			if (t.role == IMG_TTY_PTMX && t.index == index)
				return 1;
		}
	}
	return 0;
}

/* Before the root is made: whether it led a session (or a foreground
 * group) on a terminal from outside; if so, ckpt-remap's terminal is its new one, and ckpt-remap,
 * if it leads that terminal's session, leaves it to the root (the
 * SIGHUP and SIGCONT this sends its foreground group, ours, ignored). */
static void tty_prepare(struct img_input *in)
{
	const struct img_proc *p = &in->im.proc;
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	long index = pty_index(p->tty_nr);

	/* A session leader, or a job in the foreground (as a program
	 * restored from a shell was, and bash's own jobs are). */
	if ((p->sid != p->pid && (p->pgid != p->pid || p->tpgid != p->pgid)) || !p->tty_nr ||
	    (index >= 0 && tty_of_tree(in, index)))
		return;
	for (int k = 0; k <= 2 && outer_tty < 0; k++)
		if (isatty(k) && tcgetsid(k) == getsid(0))
			outer_tty = k;
	if (outer_tty < 0 || getsid(0) != getpid() || p->sid != p->pid)
		return;
	sigaction(SIGHUP, &ign, &old);
	tty_handed = ioctl(outer_tty, TIOCNOTTY) == 0;
	sigaction(SIGHUP, &old, NULL);
}

/* No process was made: ckpt-remap becomes the program under its own
 * pid, on its terminal as it was. */
static void tty_keep(void)
{
	if (tty_handed && ioctl(outer_tty, TIOCSCTTY, 0))
		warnx("cannot take our terminal back: %s", strerror(errno));
	outer_tty = -1;
	tty_handed = 0;
}

/* In the root, as it is made: a session of its own that the terminal is
 * the controlling terminal of (not handed the terminal: a process group of
 * its own in ckpt-remap's session), its group in the foreground.  The
 * terminal's fd, or -1. */
static int tty_take(pid_t pid)
{
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	int rc;

	if (outer_tty < 0)
		return -1;
	if (tty_handed ? (getsid(0) != getpid() && setsid() < 0) || ioctl(outer_tty, TIOCSCTTY, 0)
		       : getpgrp() != getpid() && setpgid(0, 0)) {
		warnx("pid %d: cannot make ckpt-remap's terminal its own: %s", pid,
		      strerror(errno));
		return -1;
	}
	/* From a background group (ours led the foreground), allowed only
	 * with SIGTTOU ignored. */
	sigaction(SIGTTOU, &ign, &old);
	rc = tcsetpgrp(outer_tty, getpgrp());
	sigaction(SIGTTOU, &old, NULL);
	if (rc)
		warnx("pid %d: cannot put its group in the foreground of ckpt-remap's terminal: "
		      "%s",
		      pid, strerror(errno));
	return outer_tty;
}

/* Continued (fg) after the program stopped (^Z) in a group of its own in
 * our session: the shell gave the foreground to ours; it is the program's
 * again, which the shell's SIGCONT, passed on, woke. */
static void tty_foreground_again(pid_t child)
{
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	pid_t g = getpgid(child);

	if (outer_tty < 0 || tty_handed || g < 0 || g == getpgrp() ||
	    tcgetpgrp(outer_tty) != getpgrp())
		return;
	sigaction(SIGTTOU, &ign, &old);
	if (tcsetpgrp(outer_tty, g) == 0)
		kill(-g, SIGCONT);
	sigaction(SIGTTOU, &old, NULL);
}

/* Whether process pid sleeps (its state in /proc/PID/stat is S), and how
 * many times it has gone to sleep (voluntary context switches), or -1. */
static long sleeps(pid_t pid, int *now)
{
	char path[64], buf[2048], *p;
	int fd = open(fmt_path(path, sizeof(path), "/proc/%d/status", pid), O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	*now = 0;
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, "\nState:\t");
	*now = p && p[8] == 'S';
	p = strstr(buf, "\nvoluntary_ctxt_switches:\t");
	return p ? strtol(p + 27, NULL, 10) : -1;
}

/* Wait (a second at most) until pid sleeps again after having slept
 * more than `before` times. */
static void sleeps_again(pid_t pid, long before)
{
	int now;

	for (int i = 0; i < 100; i++) {
		long n = sleeps(pid, &now);
		if (n < 0 || (n > before && now))
			return;
		usleep(10000);
	}
}

/* A program restored onto ckpt-remap's terminal must learn its size and
 * that its screen is blank, as after a resize.  A SIGWINCH alone does not
 * do it: one that comes before the program is back in its wait for input
 * reaches a handler that sets a flag read after that wait, and a full
 * screen program (vim) redraws only if the size it then reads changed.
 * So the size is changed and changed back, each time once the program
 * sleeps again (a second at most), as a terminal resized and resized back
 * would (the kernel sends the foreground group a SIGWINCH each time). */
static void tty_winch(pid_t child)
{
	struct winsize ws, other, n_ws;
	long n;
	int now;

	if (outer_tty < 0)
		return;
	n = sleeps(child, &now);
	sleeps_again(child, now ? n - 1 : n);
	n = sleeps(child, &now);
	/* The size now: the terminal's user may have changed it meanwhile
	 * (read just before it is changed, so that a resize of theirs is
	 * hardly ever undone). */
	if (ioctl(outer_tty, TIOCGWINSZ, &ws) || !ws.ws_row || !ws.ws_col)
		return;
	other = ws;
	other.ws_row = ws.ws_row > 1 ? ws.ws_row - 1 : ws.ws_row + 1;
	if (ioctl(outer_tty, TIOCSWINSZ, &other))
		return;
	sleeps_again(child, n);
	/* Unless the terminal was resized meanwhile, by its user. */
	if (ioctl(outer_tty, TIOCGWINSZ, &n_ws) || n_ws.ws_row != other.ws_row ||
	    n_ws.ws_col != other.ws_col)
		return;
	if (ioctl(outer_tty, TIOCSWINSZ, &ws))
		warnx("cannot set the terminal's size back to %ux%u: %s", ws.ws_col, ws.ws_row,
		      strerror(errno));
}

/* Wait for child as its parent: pass signals on, stop when it stops, and
 * return its final wait status.  Other children (in a pid namespace, as its
 * init, every orphan) are reaped on the way. */
static int keep_running; /* ckpt-remap --stop */

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
	tty_winch(child);
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
			 * its SIGCONT reaches the program through forward().  Not
			 * with --stop: the program's SIGCONT comes from whoever
			 * read its pid, and we must be there to see it exit. */
			if (!keep_running)
				raise(SIGSTOP);
			tty_foreground_again(child);
			continue;
		}
		return status;
	}
}

/* A child with pids ids[0..n) (innermost first: one per pid namespace
 * from its own up to the tree's). */
static pid_t clone_pids(const pid_t *ids, size_t n, int exit_signal, uint64_t flags)
{
	struct clone_args ca;

	memset(&ca, 0, sizeof(ca));
	ca.flags = flags;
	ca.exit_signal = exit_signal;
	ca.set_tid = (uint64_t)ids;
	ca.set_tid_size = n;
	return syscall(SYS_clone3, &ca, sizeof(ca));
}

static pid_t clone_pid_sig(pid_t pid, int exit_signal, uint64_t flags)
{
	return clone_pids(&pid, 1, exit_signal, flags);
}

static pid_t clone_with_pid(pid_t pid)
{
	return clone_pid_sig(pid, SIGCHLD, 0);
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
 * mapped to themselves. */
static int enter_user(void)
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
	return write_str("/proc/self/gid_map", map);
}

/* A user namespace as enter_user makes it, and a pid namespace for our
 * next child; with net, a net namespace too, lo up (--net-ns). */
static int enter_namespaces(int net)
{
	if (enter_user() || (net && rst_net_ns_enter()))
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
	/* A live stream's staged pages are the child's now. */
	img_stage_free(in);
	rst_close_inherited(in);
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
		if (rst_ns_enter(in, 0) || rst_restore(in, flags | RST_KEEP_TIDS, NULL))
			die(ckpt_fail_rc(), "%s", err_get());
	}
	if (in->nrest) {
		status = tree_supervise(in, flags, 1);
		if (write(status_pipe, &status, sizeof(status)) != sizeof(status))
			_exit(ckpt_fail_rc());
		_exit(0);
	}
	child = clone_with_pid(want);
	if (child < 0)
		die(ckpt_fail_rc(), "cannot create pid %d in the new pid namespace: %s", want,
		    strerror(errno));
	if (child == 0) {
		close(status_pipe);
		tty_take(want);
		if (rst_ns_enter(in, 0) || rst_restore(in, flags | RST_KEEP_TIDS, NULL))
			die(ckpt_fail_rc(), "%s", err_get());
	}
	img_stage_free(in);
	rst_close_inherited(in);
	close(in->r.fd);
	if (in->status_fd >= 0)
		close(in->status_fd);
	status = supervise(child);
	if (write(status_pipe, &status, sizeof(status)) != sizeof(status))
		_exit(ckpt_fail_rc());
	_exit(0);
}


/* ---- trees ------------------------------------------------------------ */

static int tree_index(struct img_input *in, pid_t pid)
{
	for (size_t k = 0; k <= in->nrest; k++)
		if (img_proc_at(in, k)->proc.pid == pid)
			return (int)k;
	return -1;
}

/* Sessions and process groups that can be made again: a process is its
 * session's leader or in its parent's session (the root may be in the
 * restoring one's); a group is led by a process of the tree in the same
 * session, or is the root's own outside the tree. */
static int tree_check(struct img_input *in)
{
	const struct img_proc *root = &in->im.proc;

	for (size_t k = 0; k <= in->nrest; k++) {
		const struct img_proc *p = &img_proc_at(in, k)->proc;
		int parent = tree_index(in, p->ppid), leader = tree_index(in, p->pgid);

		if (p->pid == 1) {
			err_set("pid 1 in a tree: not supported");
			return -1;
		}
		if (p->sid != p->pid &&
		    (k == 0 ? tree_index(in, p->sid) >= 0
			    : img_proc_at(in, parent)->proc.sid != p->sid)) {
			err_set("pid %d: its session %d is neither its own nor its parent's; not "
				"supported",
				p->pid, p->sid);
			return -1;
		}
		if (leader >= 0 && img_proc_at(in, leader)->proc.sid != p->sid) {
			err_set("pid %d: its process group %d is of another session", p->pid,
				p->pgid);
			return -1;
		}
		if (leader < 0 && p->pgid != root->pgid) {
			err_set("pid %d: its process group %d has no process in the tree; not "
				"supported",
				p->pid, p->pgid);
			return -1;
		}
	}
	return 0;
}

/* Whether pid id is held by a process that is dying or dead and not yet
 * reaped, as a tree killed at its checkpoint is for a moment after
 * (ckpt-signal --kill returns once each member's dump has ended; their
 * parents reap them after): it frees the pid within 5 s, or 0. */
static int freed_soon(pid_t id)
{
	struct proc_stat st;
	double end = now_sec() + 5;

	while (proc_read_stat(id, &st) == 0 && (st.state == 'Z' || st.state == 'X')) {
		if (now_sec() > end)
			return 0;
		usleep(10000);
	}
	return kill(id, 0) && errno == ESRCH;
}

/* Every pid and tid of the tree must be free here. */
static int tree_pids_free(struct img_input *in)
{
	for (size_t k = 0; k <= in->nrest; k++) {
		const struct image *im = img_proc_at(in, k);

		for (size_t t = 0; t <= im->nthreads; t++) {
			pid_t id = t == 0 ? im->proc.pid : im->threads[t - 1].d.tid;
			if (t == 1)
				continue; /* the main thread is the pid */
			if ((kill(id, 0) == 0 || errno != ESRCH) && !freed_soon(id)) {
				err_set("pid %d, which the tree had, is in use here: --pid-ns "
					"restores the tree in a new pid namespace",
					id);
				return -1;
			}
		}
	}
	return 0;
}

struct tree {
	struct img_input *in;
	int flags;
	size_t n;
	int **premade;	      /* per process, per FILE record */
	struct shm_made sm;   /* every object of the stream, in in->objs order */
	struct shm_made *psm; /* per process, its objects in its own order */
	int (*cmd)[2], (*rep)[2];
	pid_t outer_pgid; /* the group of the root's outside the tree, here; 0: keep */
	int ns;
	struct img_rec first; /* the record after the SHMDATA ones */
};

static struct image *tim(struct tree *t, size_t k)
{
	return img_proc_at(t->in, k);
}

/* Make every object once and fill it from the stream; then each
 * process's view of them. */
static int tree_objects(struct tree *t)
{
	struct img_input tmp = *t->in;
	size_t nfiles = 0;
	int rc, mnt = 0;

	/* A mapped file that is gone or changed refuses the restore before
	 * a tmpfs or saved file is made or put back (each process checks
	 * again); the paths are ours to check only where no process has a
	 * mount namespace of its own. */
	for (size_t k = 0; k < t->n; k++)
		if (tim(t, k)->ns && (tim(t, k)->ns->d.own & (1u << IMG_NS_MNT)))
			mnt = 1;
	for (size_t k = 0; k < t->n && !mnt; k++)
		if (rst_precheck_maps(tim(t, k), t->in))
			return -1;
	memset(&tmp.im, 0, sizeof(tmp.im));
	tmp.im.hdr = t->in->im.hdr;
	tmp.im.shms = calloc(t->in->nobjs + 1, sizeof(*tmp.im.shms));
	for (size_t k = 0; k < t->n; k++)
		nfiles += tim(t, k)->nfiles;
	tmp.im.files = calloc(nfiles + 1, sizeof(*tmp.im.files));
	t->psm = calloc(t->n, sizeof(*t->psm));
	if (!tmp.im.shms || !tmp.im.files || !t->psm) {
		free(tmp.im.shms);
		free(tmp.im.files);
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < t->in->nobjs; i++)
		tmp.im.shms[tmp.im.nshms++] = *t->in->objs[i];
	for (size_t k = 0; k < t->n; k++)
		for (size_t i = 0; i < tim(t, k)->nfiles; i++)
			tmp.im.files[tmp.im.nfiles++] = tim(t, k)->files[i];
	rc = rst_check_hugetlb(t->in) ? -1 : shm_make(&tmp, &t->sm, &t->first);
	t->in->r = tmp.r;
	free(tmp.im.shms);
	free(tmp.im.files);
	if (rc)
		return -1;
	for (size_t k = 0; k < t->n; k++) {
		const struct image *im = tim(t, k);
		struct shm_made *m = &t->psm[k];

		m->n = im->nshms;
		m->fd = calloc(m->n + 1, sizeof(int));
		m->shmid = calloc(m->n + 1, sizeof(int));
		m->created = calloc(m->n + 1, sizeof(int));
		if (!m->fd || !m->shmid || !m->created) {
			err_set("out of memory");
			return -1;
		}
		for (size_t i = 0; i < m->n; i++) {
			size_t u = 0;
			while (u < t->in->nobjs && (t->in->objs[u]->d.dev != im->shms[i].d.dev ||
						    t->in->objs[u]->d.ino != im->shms[i].d.ino))
				u++;
			m->fd[i] = t->sm.fd[u];
			m->shmid[i] = t->sm.shmid[u];
		}
	}
	return 0;
}

/* System V semaphores and queues: each once. */
static int tree_ipcs(struct tree *t)
{
	struct image u;
	size_t total = 0;
	int rc;

	memset(&u, 0, sizeof(u));
	for (size_t k = 0; k < t->n; k++)
		total += tim(t, k)->nipcs;
	if (!total)
		return 0;
	u.ipcs = calloc(total, sizeof(*u.ipcs));
	if (!u.ipcs) {
		err_set("out of memory");
		return -1;
	}
	for (size_t k = 0; k < t->n; k++)
		for (size_t i = 0; i < tim(t, k)->nipcs; i++) {
			const struct ipc_obj *o = &tim(t, k)->ipcs[i];
			size_t j = 0;
			while (j < u.nipcs &&
			       (u.ipcs[j].d.kind != o->d.kind || u.ipcs[j].d.id != o->d.id))
				j++;
			if (j == u.nipcs)
				u.ipcs[u.nipcs++] = *o;
		}
	rc = ipc_restore(&u);
	free(u.ipcs);
	return rc;
}

/* Every fd of every process made here, before the tree is forked: the
 * processes inherit them, so that pipes, socketpairs and open file
 * descriptions they shared are shared again.  A standard stream of
 * ckpt-remap's own is each process's to keep. */
/* Every fd of the tree is made here: the epoll watches on a file another
 * process of the tree holds are added now, on the instances the
 * processes inherit. */
static int tree_epolls(struct tree *t)
{
	const struct image **ims = calloc(t->n + 1, sizeof(*ims));
	int rc;

	if (!ims) {
		err_set("out of memory");
		return -1;
	}
	for (size_t k = 0; k < t->n; k++)
		ims[k] = tim(t, k);
	rc = fd_epoll_register_other(ims, t->premade, t->n);
	free(ims);
	return rc;
}

static int tree_files(struct tree *t)
{
	struct fd_pipes pipes = {0};
	size_t total = 0;
	struct rlimit rl;

	t->premade = calloc(t->n, sizeof(*t->premade));
	if (!t->premade) {
		err_set("out of memory");
		return -1;
	}
	for (size_t k = 0; k < t->n; k++)
		total += tim(t, k)->nfiles;
	/* All of them are open here at once. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < total + 256 &&
	    rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = total + 256 < rl.rlim_max ? total + 256 : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (size_t k = 0; k < t->n; k++) {
		const struct image *im = tim(t, k);

		t->premade[k] = malloc((im->nfiles + 1) * sizeof(int));
		if (!t->premade[k]) {
			err_set("out of memory");
			goto fail;
		}
		for (size_t i = 0; i < im->nfiles; i++) {
			const struct fd_entry *f = &im->files[i];
			int fd = -1;

			if (fd_in_process(f)) {
				t->premade[k][i] = -1;
				continue;
			}
			for (size_t j = 0; j <= k && fd < 0 && f->d.desc; j++)
				for (size_t m = 0; m < (j < k ? tim(t, j)->nfiles : i) && fd < 0; m++)
					if (tim(t, j)->files[m].d.desc == f->d.desc)
						fd = t->premade[j][m];
			if (fd < 0 && rst_proc_file(f)) {
				t->premade[k][i] = -1;
				continue;
			}
			if (fd < 0)
				fd = rst_make_fd(t->in, im, f, &pipes, &t->psm[k],
						 !!(t->flags & RST_ALLOW_CHANGED));
			if (fd == -1) {
				char why[1024];
				snprintf(why, sizeof(why), "%s", err_get());
				err_set("pid %d: %s", im->proc.pid, why);
				goto fail;
			}
			t->premade[k][i] = fd < 0 ? -1 : fd;
			/* A file in flight: kept for the queue that passes it. */
			if (fd >= 0 && fd_flight_made(&pipes, f, fd))
				goto fail;
		}
	}
	if (fd_pipes_done(&pipes) || tree_epolls(t))
		goto fail;
	fd_pipes_close(&pipes);
	return 0;
fail:
	fd_pipes_close(&pipes);
	return -1;
}

static void send_msg(int fd, uint32_t msg)
{
	struct rst_token m = {.msg = msg};

	if (write(fd, &m, sizeof(m)) != sizeof(m)) {
		/* the process is gone: its EOF says so */
	}
}

/* Die with a zombie's wait status. */
static _Noreturn void die_as(int status)
{
	if (WIFSIGNALED(status)) {
		struct rlimit no_core = {0, 0};
		sigset_t set;

		setrlimit(RLIMIT_CORE, &no_core);
		signal(WTERMSIG(status), SIG_DFL);
		sigemptyset(&set);
		sigaddset(&set, WTERMSIG(status));
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		kill(getpid(), WTERMSIG(status));
		_exit(128 + WTERMSIG(status));
	}
	_exit(WEXITSTATUS(status));
}

/* The /dev/tty fds of process k (IMG_TTY_CTTY), made as the slave of its
 * pty until it was its terminal: /dev/tty now, on the same fd numbers (its
 * children, forked after, inherit them so). */
static void reopen_devtty(struct tree *t, size_t k)
{
	const struct image *im = tim(t, k);

	for (size_t i = 0; i < im->nfiles; i++) {
		const struct fd_entry *f = &im->files[i];
		int fd = t->premade[k][i], nfd;
		struct img_tty tt;

		if (f->d.kind != IMG_FD_TTY || fd < 0)
			continue;
		memcpy(&tt, f->extra, sizeof(tt));
		if (tt.role != IMG_TTY_CTTY)
			continue;
		nfd = open("/dev/tty", (f->d.flags & (O_ACCMODE | O_NONBLOCK)) | O_CLOEXEC);
		if (nfd < 0 || dup3(nfd, fd, O_CLOEXEC) < 0)
			warnx("pid %d: fd %d: cannot open /dev/tty on its pty again: %s",
			      im->proc.pid, f->d.fd, strerror(errno));
		if (nfd >= 0)
			close(nfd);
	}
}

/* A session leader whose controlling terminal was a pty of the tree's
 * (the slave of a pair a process of the tree made) takes the new pty's
 * slave as its terminal again: the fd it did it with, or -1. */
static int take_ctty(struct tree *t, size_t k)
{
	const struct image *im = tim(t, k);
	unsigned maj = ((unsigned)im->proc.tty_nr >> 8) & 0xfff;
	unsigned min = ((unsigned)im->proc.tty_nr & 0xff) | (((unsigned)im->proc.tty_nr >> 12) & 0xfff00);
	uint32_t index;

	/* Unix98 pty slaves: majors 136 to 143. */
	if (maj < 136 || maj > 143)
		return -1;
	index = (maj - 136) * 256 + min;
	for (size_t i = 0; i < im->nfiles; i++) {
		const struct fd_entry *f = &im->files[i];
		int fd = t->premade[k][i];
		struct img_tty tt;

		if (f->d.kind != IMG_FD_TTY || fd < 0)
			continue;
		memcpy(&tt, f->extra, sizeof(tt));
		if ((tt.role != IMG_TTY_PTS && tt.role != IMG_TTY_CTTY) || tt.index != index)
			continue;
		if (ioctl(fd, TIOCSCTTY, 0) == 0) {
			reopen_devtty(t, k);
			return fd;
		}
		warnx("pid %d: cannot make /dev/pts/%u its controlling terminal again: %s",
		      im->proc.pid, index, strerror(errno));
		return -1;
	}
	return -1;
}

/* Whether process pid is k or one of its ancestors: made before k. */
static int made_before(struct tree *t, size_t k, pid_t pid)
{
	for (int j = (int)k; j >= 0; j = tree_index(t->in, tim(t, j)->proc.ppid))
		if (tim(t, j)->proc.pid == pid)
			return 1;
	return 0;
}

/* The pidfds, namespace files and files of /proc that process k shares
 * with processes made after it (fork kept one open file description of
 * each): each process makes its own of those, but one that k shares is
 * made here, once, before k forks its children, which inherit it and
 * take it (premade) instead of their own.  One that needs a process not
 * made yet, or that fails here, is left to each. */
static void tree_shared_own(struct tree *t, size_t k)
{
	const struct image *im = tim(t, k);
	struct fd_pipes pipes = {0};

	for (size_t i = 0; i < im->nfiles; i++) {
		const struct fd_entry *f = &im->files[i];
		pid_t needs = fd_own_needs(f);
		int fd, shared = 0;

		if (!f->d.desc || t->premade[k][i] >= 0 || !(fd_in_process(f) || rst_proc_file(f)) ||
		    (needs && !made_before(t, k, needs)))
			continue;
		for (size_t j = k + 1; j < t->n && !shared; j++)
			for (size_t m = 0; m < tim(t, j)->nfiles && !shared; m++)
				shared = tim(t, j)->files[m].d.desc == f->d.desc;
		if (!shared || (fd = rst_make_fd(t->in, im, f, &pipes, &t->psm[k],
						 !!(t->flags & RST_ALLOW_CHANGED))) < 0)
			continue;
		for (size_t j = k; j < t->n; j++)
			for (size_t m = 0; m < tim(t, j)->nfiles; m++)
				if (tim(t, j)->files[m].d.desc == f->d.desc)
					t->premade[j][m] = fd;
	}
	fd_pipes_close(&pipes);
}

/* Process k of the tree: its session and group, its children, then its
 * restore. */
static _Noreturn void tree_proc(struct tree *t, size_t k)
{
	const struct img_proc *p;
	struct rst_token m;
	int leader, fail = ckpt_fail_rc(), ctty;
	struct rst_tree rt;

	for (size_t j = 0; j < t->n; j++) {
		close(t->cmd[j][1]);
		close(t->rep[j][0]);
	}
again: /* a child, forked below, is process k now */
	p = &tim(t, k)->proc;
	m = (struct rst_token){.pid = p->pid};
	leader = tree_index(t->in, p->pgid);
	/* The root on a terminal from outside: ckpt-remap's (tty_take). */
	if (k == 0 && outer_tty >= 0)
		ctty = tty_take(p->pid);
	else if (p->sid == p->pid ? setsid() < 0 : p->pgid == p->pid && setpgid(0, 0))
		die(fail, "pid %d: cannot make its %s: %s", p->pid,
		    p->sid == p->pid ? "session" : "process group", strerror(errno));
	else
		ctty = p->sid == p->pid && p->tty_nr ? take_ctty(t, k) : -1;
	/* Before its children are made: they inherit them. */
	if (!(p->flags & IMG_PROC_ZOMBIE) && rst_ns_enter(t->in, k))
		die(fail, "%s", err_get());
	if (!(p->flags & IMG_PROC_ZOMBIE))
		tree_shared_own(t, k);
	for (size_t c = k + 1; c < t->n; c++) {
		pid_t child, ids[IMG_NS_MAX_PIDS + 1];
		uint64_t newpid;
		size_t nids;

		if (tim(t, c)->proc.ppid != p->pid)
			continue;
		fflush(NULL);
		nids = rst_ns_pids(t->in, c, ids, &newpid);
		child = clone_pids(ids, nids, tim(t, c)->proc.exit_signal,
				   newpid | ((tim(t, c)->proc.flags & IMG_PROC_FS_SHARED) ? CLONE_FS : 0));
		if (child == 0) {
			k = c;
			goto again;
		}
		if (child < 0)
			die(fail, "pid %d: cannot create its child %d: %s", p->pid,
			    tim(t, c)->proc.pid, strerror(errno));
	}
	for (size_t j = 0; j < t->n; j++)
		if (j != k) {
			close(t->cmd[j][0]);
			close(t->rep[j][1]);
		}
	m.msg = RST_MSG_CREATED;
	if (write(t->rep[k][1], &m, sizeof(m)) != sizeof(m) ||
	    read_full(t->cmd[k][0], &m, sizeof(m)) != sizeof(m) || m.msg != RST_MSG_GROUPS)
		_exit(fail); /* ckpt-remap gave up on the tree */
	/* Every process exists: every group has its leader. */
	/* In a pid namespace below the tree's it has its parent's group
	 * (rst_ns_check), whose number it may not see. */
	if (p->pgid != p->pid && !rst_ns_inherits_group(t->in, k)) {
		pid_t want = leader >= 0 ? p->pgid : t->outer_pgid;
		if (want && getpgrp() != want && setpgid(0, want))
			die(fail, "pid %d: cannot join process group %d: %s", p->pid, want,
			    strerror(errno));
	}
	if (ctty >= 0 && p->tpgid > 0 && tree_index(t->in, p->tpgid) >= 0 &&
	    tcsetpgrp(ctty, p->tpgid))
		warnx("pid %d: cannot give the foreground of its terminal to group %d again: %s",
		      p->pid, p->tpgid, strerror(errno));
	m = (struct rst_token){.msg = RST_MSG_JOINED, .pid = p->pid};
	if (write(t->rep[k][1], &m, sizeof(m)) != sizeof(m))
		_exit(fail);
	if (p->flags & IMG_PROC_ZOMBIE)
		die_as(p->exit_status);
	rt = (struct rst_tree){.premade = t->premade[k],
			       .sm = &t->psm[k],
			       .cmd_fd = t->cmd[k][0],
			       .rep_fd = t->rep[k][1],
			       .late_proc = rst_ns_late_proc(t->in, k)};
	if (k)
		t->in->im = *tim(t, k);
	if (rst_restore(t->in, t->flags | RST_KEEP_TIDS, &rt))
		die(fail, "pid %d: %s", p->pid, err_get());
	_exit(fail);
}

/* Something failed: no process of the tree may run. */
static _Noreturn void tree_abort(struct tree *t, const pid_t *made, size_t nmade, pid_t root)
{
	if (t->ns)
		kill(-1, SIGKILL);
	for (size_t i = 0; i < nmade; i++)
		kill(made[i], SIGKILL);
	if (root > 0) {
		kill(root, SIGKILL);
		while (waitpid(root, NULL, __WALL) < 0 && errno == EINTR)
			;
	}
	shm_made_free(&t->sm, 1);
	_exit(ckpt_fail_rc());
}

/* The next live process of the stream after k (k = -1: the first). */
static long next_live(struct tree *t, long k)
{
	for (size_t j = k + 1; j < t->n; j++)
		if (!(tim(t, j)->proc.flags & IMG_PROC_ZOMBIE))
			return (long)j;
	return -1;
}

/* What tree_drive has seen of the tree's processes. */
struct drive {
	pid_t root;
	pid_t *made; /* the processes that said they exist */
	size_t nmade, njoined, nready;
	size_t nlive; /* processes that are not zombies: they run at the end */
	int ended;    /* the END record is checked */
};

static _Noreturn void drive_abort(struct tree *t, const struct drive *d)
{
	tree_abort(t, d->made, d->nmade, d->root);
}

/* Every process exists: all join their groups. */
static void on_created(struct tree *t, struct drive *d, const struct rst_token *m)
{
	d->made[d->nmade++] = m->pid;
	if (d->nmade == t->n)
		for (size_t j = 0; j < t->n; j++)
			send_msg(t->cmd[j][1], RST_MSG_GROUPS);
}

/* Every group is joined: the first live process takes the stream. */
static void on_joined(struct tree *t, struct drive *d)
{
	struct rst_token turn = {.msg = RST_MSG_TURN,
				 .off = t->in->r.off,
				 .nrec = t->in->r.nrec,
				 .npages = t->in->r.npages,
				 .rec = t->first};

	if (++d->njoined == t->n &&
	    write(t->cmd[next_live(t, -1)][1], &turn, sizeof(turn)) != sizeof(turn))
		drive_abort(t, d);
}

/* Process k met the next one's page data: the stream is that one's. */
static void on_turn(struct tree *t, struct drive *d, size_t k, const struct rst_token *m)
{
	long j = next_live(t, k);

	if (j < 0 || write(t->cmd[j][1], m, sizeof(*m)) != sizeof(*m)) {
		warnx("the image has page data of no process after pid %d", (int)m->pid);
		drive_abort(t, d);
	}
}

/* Process k met the END record: no live process may come after it. */
static void on_end(struct tree *t, struct drive *d, size_t k)
{
	if (next_live(t, k) >= 0) {
		warnx("image truncated: END record before the page data of pid %d",
		      tim(t, next_live(t, k))->proc.pid);
		drive_abort(t, d);
	}
	d->ended = 1;
}

static void on_msg(struct tree *t, struct drive *d, size_t k, const struct rst_token *m)
{
	switch (m->msg) {
	case RST_MSG_CREATED:
		on_created(t, d, m);
		break;
	case RST_MSG_JOINED:
		on_joined(t, d);
		break;
	case RST_MSG_TURN:
		on_turn(t, d, k, m);
		break;
	case RST_MSG_END:
		on_end(t, d, k);
		break;
	case RST_MSG_READY:
		d->nready++;
		break;
	default:
		drive_abort(t, d);
	}
}

/* Drive the tree through its stages: every process made, every group
 * joined, each process's turn at the stream, then all run at once. */
static void tree_drive(struct tree *t, pid_t root)
{
	struct pollfd *pf = calloc(t->n, sizeof(*pf));
	struct drive d = {.root = root, .made = calloc(t->n, sizeof(*d.made))};
	int *state = calloc(t->n, sizeof(*state)); /* last message, or -1: closed */

	if (!pf || !d.made || !state) {
		warnx("out of memory");
		tree_abort(t, d.made, 0, root);
	}
	for (size_t k = 0; k < t->n; k++) {
		pf[k] = (struct pollfd){.fd = t->rep[k][0], .events = POLLIN};
		d.nlive += !(tim(t, k)->proc.flags & IMG_PROC_ZOMBIE);
	}
	for (;;) {
		int n = poll(pf, t->n, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			drive_abort(t, &d);
		for (size_t k = 0; k < t->n; k++) {
			struct rst_token m;
			ssize_t r;

			if (pf[k].fd < 0 || !pf[k].revents)
				continue;
			r = read_full(pf[k].fd, &m, sizeof(m));
			if (r == 0 && (tim(t, k)->proc.flags & IMG_PROC_ZOMBIE) &&
			    state[k] == RST_MSG_JOINED) {
				pf[k].fd = -1; /* a zombie, dead as it should be */
				continue;
			}
			if (r != sizeof(m) || m.pid != tim(t, k)->proc.pid)
				drive_abort(t, &d);
			state[k] = m.msg;
			on_msg(t, &d, k, &m);
			if (d.ended && d.nready == d.nlive) {
				for (size_t j = 0; j < t->n; j++)
					if (!(tim(t, j)->proc.flags & IMG_PROC_ZOMBIE))
						send_msg(t->cmd[j][1], RST_MSG_GO);
				free(pf);
				free(d.made);
				free(state);
				return;
			}
		}
	}
}

/* Make the tree's shared things, fork it (the root with its pid, as our
 * child), see it through its restore, then wait for the root as its
 * parent: its wait status. */
static int tree_supervise(struct img_input *in, int flags, int ns)
{
	struct tree t = {.in = in, .flags = flags, .n = in->nrest + 1, .ns = ns};
	pid_t root;

	/* The root's group outside the tree is ours here (in a new pid
	 * namespace it cannot be named: the processes keep what they get). */
	if (!ns && tree_index(in, in->im.proc.pgid) < 0)
		t.outer_pgid = getpgrp();
	t.cmd = calloc(t.n, sizeof(*t.cmd));
	t.rep = calloc(t.n, sizeof(*t.rep));
	if (!t.cmd || !t.rep)
		die(ckpt_fail_rc(), "out of memory");
	if (tree_objects(&t) || tree_ipcs(&t) || tree_files(&t)) {
		char why[1024];
		snprintf(why, sizeof(why), "%s", err_get());
		shm_made_free(&t.sm, 1);
		die(ckpt_fail_rc(), "%s", why);
	}
	for (size_t k = 0; k < t.n; k++)
		if (pipe2(t.cmd[k], O_CLOEXEC) || pipe2(t.rep[k], O_CLOEXEC))
			die(ckpt_fail_rc(), "cannot make a pipe: %s", strerror(errno));
	fflush(NULL);
	root = clone_with_pid(in->im.proc.pid);
	if (root == 0)
		tree_proc(&t, 0);
	if (root < 0) {
		shm_made_free(&t.sm, 1);
		die(ckpt_fail_rc(), "cannot create pid %d: %s", in->im.proc.pid,
		    strerror(errno));
	}
	/* The processes hold what they need now. */
	for (size_t k = 0; k < t.n; k++) {
		close(t.cmd[k][0]);
		close(t.rep[k][1]);
		/* A shared one appears more than once: its second close fails
		 * with EBADF, and nothing opens meanwhile to take its number. */
		for (size_t i = 0; i < tim(&t, k)->nfiles; i++)
			if (t.premade[k][i] >= 0)
				close(t.premade[k][i]);
	}
	for (size_t i = 0; i < t.sm.n; i++)
		if (t.sm.fd[i] >= 0) {
			close(t.sm.fd[i]);
			t.sm.fd[i] = -1;
		}
	rst_close_inherited(in);
	tree_drive(&t, root);
	for (size_t k = 0; k < t.n; k++)
		close(t.cmd[k][1]), close(t.rep[k][0]);
	close(in->r.fd);
	if (in->status_fd >= 0)
		close(in->status_fd);
	return supervise(root);
}

int rst_changes_host(struct img_input *in)
{
	for (size_t k = 0; k <= in->nrest; k++) {
		const struct image *im = img_proc_at(in, k);

		if (im->nipcs)
			return 1;
		for (size_t i = 0; i < im->nshms; i++)
			if (im->shms[i].d.kind == IMG_SHM_SAVED || im->shms[i].d.kind == IMG_SHM_TMPFS ||
			    (im->shms[i].d.kind == IMG_SHM_SYSV && !(im->shms[i].d.flags & IMG_SHM_RMID)))
				return 1;
		for (size_t i = 0; i < im->nfiles; i++)
			if (im->files[i].d.kind == IMG_FD_FIFO)
				return 1;
	}
	return 0;
}

/* A connection to another member of a coordinated computation comes
 * only from ckpt-inject --restart (--inherit-fd): refused before anything
 * is made or set back. */
static int peers_given(struct img_input *in)
{
	for (size_t k = 0; k <= in->nrest; k++) {
		const struct image *im = img_proc_at(in, k);
		for (size_t i = 0; i < im->nfiles; i++)
			if (fd_peer_refuse(im->proc.pid, &im->files[i]))
				return -1;
	}
	return 0;
}

int rst_run(struct img_input *in, int flags, enum rst_pids pids)
{
	pid_t pid = in->im.proc.pid, child;
	int p[2], status, net = !!(flags & RST_NET_NS);
	/* --net-ns without CAP_SYS_ADMIN: in a user namespace of our own too,
	 * where clone3 may no longer ask for pids outside. */
	int net_user = net && !has_cap(CAP_SYS_ADMIN);

	keep_running = (flags & RST_STOP) != 0;

	if (peers_given(in))
		return -1;
	if (rst_ns_check(in, pids == RST_PIDS_NS || net_user ||
				 (in->nrest && !has_cap(CAP_CHECKPOINT_RESTORE) &&
				  !has_cap(CAP_SYS_ADMIN))) ||
	    (net && rst_net_ns_check(in)))
		return -1;
	if (in->nrest) {
		if (pids == RST_PIDS_NEW) {
			err_set("a tree of %zu processes keeps its pids: --new-pids is for an image "
				"of one process",
				in->nrest + 1);
			return -1;
		}
		if (tree_check(in) || ((flags & RST_LAZY) && rst_check_lazy(in)))
			return -1;
		/* Without the privilege to ask for pids, a new pid namespace. */
		/* With either capability clone3 may ask for pids here. */
		if (pids == RST_PIDS_AUTO &&
		    (net_user || (!has_cap(CAP_CHECKPOINT_RESTORE) && !has_cap(CAP_SYS_ADMIN))))
			pids = RST_PIDS_NS;
		if (pids == RST_PIDS_AUTO) {
			/* The tree's fds are made here, in the new net namespace. */
			if (tree_pids_free(in) || (net && rst_net_ns_enter()))
				return -1;
			tty_prepare(in);
			exit_like(tree_supervise(in, flags, 0));
		}
	}
	if (net && pids != RST_PIDS_NS && ((net_user && enter_user()) || rst_net_ns_enter()))
		return -1;

	if (pids == RST_PIDS_AUTO) {
		fflush(NULL);
		tty_prepare(in);
		child = clone_with_pid(pid);
		if (child == 0) {
			tty_take(pid);
			return rst_ns_enter(in, 0) ? -1 : rst_restore(in, flags | RST_KEEP_TIDS, NULL);
		}
		if (child > 0)
			parent(in, child);
		/* EPERM (no privilege), EEXIST (the pid is taken): become the
		 * process under our own pid. */
		tty_keep();
		pids = RST_PIDS_NEW;
	}
	if (pids == RST_PIDS_NEW)
		return rst_ns_enter(in, 0) ? -1 : rst_restore(in, flags, NULL);

	if (pipe2(p, O_CLOEXEC)) {
		err_sys("cannot create a pipe");
		return -1;
	}
	if (enter_namespaces(net))
		return -1;
	tty_prepare(in);
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
	img_stage_free(in);
	rst_close_inherited(in);
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
