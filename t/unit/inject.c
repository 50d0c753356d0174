/* Unit tests of target/'s system call injection, as CRIU's compel/test/infect
 * tries compel: a victim (a child of this test) is stopped with pt_seize,
 * prepared, given system calls (getpid, gettid, mmap of a page that we then
 * read and write through /proc/PID/mem and process_vm_readv, uname and
 * clock_gettime into its memory, calls that fail), cured and let go; its
 * registers, signal mask and the stack below it are as they were, and it
 * runs on, checks its own memory and exits 0.  Twice: a victim spinning in
 * user space, and one blocked in read(2), whose read must go on as if never
 * interrupted. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "target/target.h"
#include "unit.h"

#define PAGE 4096
#define MEM (256 * 1024)
#define PATTERN_LEN 2048 /* of the injected page: ours; uname's after it */
#define UNAME_AT 2048
#define PATH_AT 3584
#define BELOW 512 /* bytes below the victim's stack pointer we compare */

/* Shared with the victim (MAP_SHARED, made before the fork). */
struct shared {
	volatile int ready;	/* the victim is in its loop (or about to read) */
	volatile int go;	/* the spinning victim: check and exit */
	volatile uint64_t page; /* the page the test had injected, to check */
	volatile int usr1;	/* SIGUSR1s the victim's handler saw */
};

static struct shared *sh;
static unsigned char mem[MEM];

static unsigned char byte_at(size_t i, unsigned seed)
{
	return (unsigned char)(i * 167 + (i >> 9) + seed);
}

static void on_usr1(int sig)
{
	(void)sig;
	sh->usr1++;
}

/* The victim: memory and a signal mask of known content; then spin until
 * told to go (no system call in the loop), or block in read() on fd until
 * a byte comes; then check it all and exit 0 only if intact. */
static _Noreturn void victim(int fd)
{
	/* SA_RESTART: the read it interrupts goes on. */
	struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
	sigset_t mask, now;
	unsigned char *p;
	char c = 0;
	int bad = 0;
	ssize_t n;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (size_t i = 0; i < MEM; i++)
		mem[i] = byte_at(i, 1);
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, SIGWINCH);
	sigprocmask(SIG_SETMASK, &mask, NULL);
	sh->ready = 1;
	if (fd < 0) {
		while (!sh->go)
			__builtin_ia32_pause();
	} else {
		n = read(fd, &c, 1);
		if (n != 1 || c != 'g') {
			fprintf(stderr, "victim: read gave %zd (%s), byte %#x, not the byte 'g'\n",
				n, n < 0 ? strerror(errno) : "-", c);
			bad = 1;
		}
	}
	for (size_t i = 0; i < MEM; i++)
		if (mem[i] != byte_at(i, 1)) {
			fprintf(stderr, "victim: memory differs at %zu\n", i);
			bad = 1;
			break;
		}
	p = (unsigned char *)(uintptr_t)sh->page;
	for (size_t i = 0; p && i < PATTERN_LEN; i++)
		if (p[i] != byte_at(i, 2)) {
			fprintf(stderr, "victim: the injected page differs at %zu\n", i);
			bad = 1;
			break;
		}
	if (!p) {
		fprintf(stderr, "victim: told of no injected page\n");
		bad = 1;
	}
	sigprocmask(SIG_SETMASK, NULL, &now);
	if (!sigismember(&now, SIGUSR2) || !sigismember(&now, SIGWINCH) ||
	    sigismember(&now, SIGUSR1)) {
		fprintf(stderr, "victim: its signal mask changed\n");
		bad = 1;
	}
	/* Sent while every signal was blocked for the injection: delivered
	 * once the mask was put back. */
	if (sh->usr1 != 1) {
		fprintf(stderr, "victim: SIGUSR1 handled %d times, not once\n", sh->usr1);
		bad = 1;
	}
	_exit(bad);
}

static int remote(pid_t pid, uint64_t addr, void *buf, size_t len, int write)
{
	struct iovec local = {buf, len}, rem = {(void *)(uintptr_t)addr, len};
	ssize_t n = write ? process_vm_writev(pid, &local, 1, &rem, 1, 0)
			  : process_vm_readv(pid, &local, 1, &rem, 1, 0);

	return n == (ssize_t)len ? 0 : -1;
}

/* The address of a syscall instruction in pid's [vdso]. */
static int gadget_of(pid_t pid, uint64_t *gadget)
{
	struct proc_map *maps;
	size_t n;
	int rc = -1;

	if (proc_read_maps(pid, &maps, &n))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(maps[i].path, "[vdso]"))
			rc = inj_find_gadget(pid, maps[i].start, maps[i].end, gadget);
	proc_free_maps(maps, n);
	return rc;
}

/* Whether pid has a mapping that starts at addr. */
static int mapped_at(pid_t pid, uint64_t addr)
{
	struct proc_map *maps;
	size_t n;
	int found = 0;

	if (proc_read_maps(pid, &maps, &n))
		return 0;
	for (size_t i = 0; i < n; i++)
		found |= maps[i].start == addr;
	proc_free_maps(maps, n);
	return found;
}

static int64_t call(struct inj *c, long nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
		    uint64_t a4, uint64_t a5)
{
	uint64_t a[6] = {a0, a1, a2, a3, a4, a5};
	int64_t ret = 0;

	if (inj_syscall(c, nr, a, &ret)) {
		CHECK(0, "injected syscall %ld: %s", nr, err_get());
		return -ENOSYS;
	}
	return ret;
}

static void same_regs(const char *how, const struct user_regs_struct *a,
		      const struct user_regs_struct *b)
{
	static const char *const names[] = {
	    "r15",    "r14", "r13", "r12",     "rbp",	  "rbx", "r11",	     "r10", "r9",
	    "r8",     "rax", "rcx", "rdx",     "rsi",	  "rdi", "orig_rax", "rip", "cs",
	    "eflags", "rsp", "ss",  "fs_base", "gs_base", "ds",	 "es",	     "fs",  "gs"};
	const unsigned long long *x = (const void *)a, *y = (const void *)b;

	_Static_assert(sizeof(names) / sizeof(names[0]) == sizeof(*a) / sizeof(*x),
		       "one name per register of struct user_regs_struct");
	for (size_t i = 0; i < sizeof(*a) / sizeof(*x); i++)
		CHECK(x[i] == y[i], "%s: %s is %#llx after the cure, %#llx before", how, names[i],
		      y[i], x[i]);
}

/* Seize the victim, inject, cure, let it go; it must then exit 0. */
static void infect(const char *how, pid_t pid, int wfd)
{
	struct user_regs_struct before, after;
	unsigned char below[BELOW], below_after[BELOW], page[PAGE], pattern[PATTERN_LEN];
	struct timespec t0, t1, ts;
	uint64_t gadget, mask, mask_after, addr;
	struct utsname here, there;
	static const char path[] = "/nonexistent-ckpt-unit/x";
	struct inj c;
	int64_t r;
	int fd, status;

	while (!sh->ready)
		sched_yield();
	if (wfd >= 0) {
		/* In read(), asleep: not before it has called it. */
		char st[64], wchan[64] = "";
		for (int i = 0; i < 2000; i++) {
			FILE *f = fopen(fmt_path(st, sizeof(st), "/proc/%d/wchan", pid), "r");
			if (f) {
				if (!fgets(wchan, sizeof(wchan), f))
					wchan[0] = 0;
				fclose(f);
			}
			if (strstr(wchan, "pipe_read")) /* anon_pipe_read on 6.18 */
				break;
			usleep(10000);
		}
		CHECK(strstr(wchan, "pipe_read"), "%s: the victim never blocked in read (%s)", how,
		      wchan);
	}
	if (pt_seize(pid)) {
		CHECK(0, "%s: pt_seize: %s", how, err_get());
		kill(pid, SIGKILL);
		return;
	}
	CHECK(pt_get_regs(pid, &before) == 0 && pt_get_sigmask(pid, &mask) == 0,
	      "%s: registers: %s", how, err_get());
	CHECK(remote(pid, before.rsp - BELOW, below, BELOW, 0) == 0, "%s: read below the stack",
	      how);
	CHECK(gadget_of(pid, &gadget) == 0, "%s: gadget: %s", how, err_get());
	if (inj_prepare(&c, pid, gadget)) {
		CHECK(0, "%s: inj_prepare: %s", how, err_get());
		kill(pid, SIGKILL);
		return;
	}
	/* Blocked until the cure: it must wait, not stop the calls. */
	kill(pid, SIGUSR1);

	CHECK(call(&c, SYS_getpid, 0, 0, 0, 0, 0, 0) == pid, "%s: getpid", how);
	CHECK(call(&c, SYS_gettid, 0, 0, 0, 0, 0, 0) == pid, "%s: gettid", how);
	r = call(&c, SYS_close, (uint64_t)-1, 0, 0, 0, 0, 0);
	CHECK(r == -EBADF, "%s: close(-1) gave %lld, not -EBADF", how, (long long)r);

	addr = (uint64_t)call(&c, SYS_mmap, 0, PAGE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, (uint64_t)-1, 0);
	CHECK((int64_t)addr > 0 && addr % PAGE == 0, "%s: mmap gave %#llx", how,
	      (unsigned long long)addr);
	if ((int64_t)addr <= 0)
		addr = 0;
	CHECK(addr && mapped_at(pid, addr), "%s: no mapping at %#llx in the victim", how,
	      (unsigned long long)addr);
	/* A fresh page: zeros, through process_vm_readv. */
	memset(page, 0xff, sizeof(page));
	CHECK(addr && remote(pid, addr, page, PAGE, 0) == 0 && !page[0] &&
		  !memcmp(page, page + 1, PAGE - 1),
	      "%s: the new page is not zero", how);
	/* Written through /proc/PID/mem, read back with process_vm_readv. */
	for (size_t i = 0; i < PATTERN_LEN; i++)
		pattern[i] = byte_at(i, 2);
	fd = open(fmt_path((char[64]){0}, 64, "/proc/%d/mem", pid), O_RDWR);
	CHECK(fd >= 0 && pwrite(fd, pattern, PATTERN_LEN, (off_t)addr) == PATTERN_LEN,
	      "%s: write /proc/%d/mem: %s", how, pid, strerror(errno));
	if (fd >= 0)
		close(fd);
	CHECK(addr && remote(pid, addr, page, PATTERN_LEN, 0) == 0 &&
		  !memcmp(page, pattern, PATTERN_LEN),
	      "%s: the page does not hold what was written", how);
	sh->page = addr;
	/* A call that writes the victim's memory. */
	CHECK(addr && call(&c, SYS_uname, addr + UNAME_AT, 0, 0, 0, 0, 0) == 0 &&
		  uname(&here) == 0 &&
		  remote(pid, addr + UNAME_AT, &there, sizeof(there), 0) == 0 &&
		  !strcmp(here.sysname, there.sysname) && !strcmp(here.release, there.release),
	      "%s: uname into the page", how);
	/* A call that reads it, and fails. */
	CHECK(addr && remote(pid, addr + PATH_AT, (void *)path, sizeof(path), 1) == 0,
	      "%s: write the path", how);
	r = call(&c, SYS_openat, (uint64_t)AT_FDCWD, addr + PATH_AT, O_RDONLY, 0, 0, 0);
	CHECK(r == -ENOENT, "%s: openat(%s) gave %lld, not -ENOENT", how, path, (long long)r);
	/* The scratch area below the stack, read with inj_peek. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = call(&c, SYS_clock_gettime, CLOCK_MONOTONIC, c.scratch, 0, 0, 0, 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(r == 0 && inj_peek(&c, &ts, sizeof(ts)) == 0 &&
		  (ts.tv_sec > t0.tv_sec || (ts.tv_sec == t0.tv_sec && ts.tv_nsec >= t0.tv_nsec)) &&
		  (ts.tv_sec < t1.tv_sec || (ts.tv_sec == t1.tv_sec && ts.tv_nsec <= t1.tv_nsec)),
	      "%s: clock_gettime into the scratch area", how);
	CHECK(c.scratch + INJ_SCRATCH <= before.rsp - 128 && c.scratch >= before.rsp - BELOW,
	      "%s: the scratch area %#llx is not below the red zone (rsp %#llx)", how,
	      (unsigned long long)c.scratch, (unsigned long long)before.rsp);

	CHECK(inj_cure(&c) == 0, "%s: inj_cure: %s", how, err_get());
	CHECK(pt_get_regs(pid, &after) == 0 && pt_get_sigmask(pid, &mask_after) == 0,
	      "%s: registers after: %s", how, err_get());
	same_regs(how, &before, &after);
	CHECK(mask_after == mask, "%s: signal mask %#llx after the cure, %#llx before", how,
	      (unsigned long long)mask_after, (unsigned long long)mask);
	CHECK(remote(pid, before.rsp - BELOW, below_after, BELOW, 0) == 0 &&
		  !memcmp(below, below_after, BELOW),
	      "%s: the stack below the victim's differs after the cure", how);
	CHECK(pt_detach(pid, 0) == 0, "%s: pt_detach: %s", how, err_get());

	if (wfd >= 0)
		CHECK(write(wfd, "g", 1) == 1, "%s: write the go byte", how);
	else
		sh->go = 1;
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "%s: the victim ended with status %#x", how, status);
}

static void one(const char *how, int blocked)
{
	int p[2] = {-1, -1};
	pid_t pid;

	memset((void *)sh, 0, sizeof(*sh));
	if (blocked && pipe(p)) {
		CHECK(0, "pipe: %s", strerror(errno));
		return;
	}
	pid = fork();
	if (pid < 0) {
		CHECK(0, "fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		if (blocked)
			close(p[1]);
		victim(p[0]);
	}
	if (blocked)
		close(p[0]);
	infect(how, pid, p[1]);
	if (blocked)
		close(p[1]);
}

int main(void)
{
	prog = "unit-inject";
	/* A test that hangs is a failure: the victims die with it. */
	alarm(60);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("unit-inject: mmap");
		return 1;
	}
	one("spinning", 0);
	one("in read()", 1);
	return unit_done("inject");
}
