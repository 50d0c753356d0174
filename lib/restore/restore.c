/* restore.c: rebuild a process from its image and hand it to the restorer. */
#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mount.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds.h"
#include "target/target.h"
#include "restore/restore.h"
#include "restore/live-internal.h"
#include "restore/restorer/restorer.h"

extern const unsigned char rst_blob[], rst_blob_end[];

#define PR_TIMER_CREATE_RESTORE_IDS_ 77 /* <linux/prctl.h> of Linux 6.15 */
#define ALIGN(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))
#define RST_STACK (64 << 10)

/* The trampoline (see restorer.h): munmap(rdi, rsi); rsp = rdx;
 * rt_sigreturn.  It runs from its own page so that the munmap of the blob
 * does not pull the code from under it. */
static const unsigned char tramp_main[] = {
	0xb8, 0x0b, 0x00, 0x00, 0x00, /* mov $SYS_munmap, %eax */
	0x0f, 0x05,		      /* syscall */
	0x48, 0x89, 0xd4,	      /* mov %rdx, %rsp */
	0xb8, 0x0f, 0x00, 0x00, 0x00, /* mov $SYS_rt_sigreturn, %eax */
	0x0f, 0x05,		      /* syscall */
	0x0f, 0x0b,		      /* ud2 */
};

/* A cloned thread leaves the blob here: count itself off (*rdi), wake the
 * main thread waiting to unmap the blob, then rt_sigreturn on its frame
 * (r12).  From the decrement on it touches no blob memory but through the
 * futex call, which only fails with EFAULT if the blob is gone already. */
static const unsigned char tramp_thread[] = {
	0xf0, 0xff, 0x0f,	      /* lock decl (%rdi) */
	0xb8, 0xca, 0x00, 0x00, 0x00, /* mov $SYS_futex, %eax */
	0xbe, 0x81, 0x00, 0x00, 0x00, /* mov $FUTEX_WAKE_PRIVATE, %esi */
	0xba, 0xff, 0xff, 0xff, 0x7f, /* mov $INT_MAX, %edx */
	0x0f, 0x05,		      /* syscall */
	0x4c, 0x89, 0xe4,	      /* mov %r12, %rsp */
	0xb8, 0x0f, 0x00, 0x00, 0x00, /* mov $SYS_rt_sigreturn, %eax */
	0x0f, 0x05,		      /* syscall */
	0x0f, 0x0b,		      /* ud2 */
};

_Static_assert(sizeof(tramp_main) <= RST_TRAMP_THREAD, "trampoline entries overlap");
_Static_assert(RST_TRAMP_THREAD + sizeof(tramp_thread) <= RST_TRAMP_MAGIC_OFF,
	       "trampoline code overlaps its marker");

/* The kernel's x86-64 signal frame, as rt_sigreturn reads it. */
struct k_sigcontext {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2, fpstate;
	uint64_t reserved1[8];
};

struct k_ucontext {
	uint64_t uc_flags;
	uint64_t uc_link;
	uint64_t ss_sp;
	int32_t ss_flags;
	int32_t ss_pad;
	uint64_t ss_size;
	struct k_sigcontext mc;
	uint64_t sigmask;
};

#define UC_FP_XSTATE 1
#define UC_SIGCONTEXT_SS 2
#define UC_STRICT_RESTORE_SS 4
#ifndef FP_XSTATE_MAGIC1
#define FP_XSTATE_MAGIC1 0x46505853u
#define FP_XSTATE_MAGIC2 0x46505845u
#endif
#define FX_SW_OFF 464 /* struct _fpx_sw_bytes in fxsave's sw_reserved */

struct fpx_sw {
	uint32_t magic1, extended_size;
	uint64_t xfeatures;
	uint32_t xstate_size, pad[7];
};

/* ---- checks before the point of no return ---------------------------- */

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

/* Bytes of the standard-format XSAVE area that hold the features in mask. */
static uint32_t xsave_size_for(uint64_t mask)
{
	uint32_t size = 576; /* legacy area and XSAVE header */

	for (int i = 2; i < 63; i++) {
		unsigned a, b, c, d;
		if (!(mask & (1ull << i)))
			continue;
		__cpuid_count(0xd, i, a, b, c, d);
		if (a + b > size)
			size = a + b;
	}
	return size;
}

/* "bit 9 (pkru), ..." for the XSAVE features in mask (the XCR0 bits of
 * the Intel SDM, vol. 1, 13.1). */
static void xfeature_names(uint64_t mask, char *buf, size_t size)
{
	static const char *const names[] = {"x87",
					    "sse",
					    "avx",
					    "mpx bndregs",
					    "mpx bndcsr",
					    "avx-512 opmask",
					    "avx-512 zmm_hi256",
					    "avx-512 hi16_zmm",
					    "pt",
					    "pkru",
					    "pasid",
					    "cet user",
					    "cet supervisor",
					    "hdc",
					    "uintr",
					    "lbr",
					    "hwp",
					    "amx tilecfg",
					    "amx tiledata",
					    "apx"};
	size_t len = 0;

	buf[0] = 0;
	for (int i = 0; i < 64 && len < size; i++)
		if (mask & (1ull << i))
			len +=
			    snprintf(buf + len, size - len, "%sbit %d (%s)", len ? ", " : "", i,
				     i < (int)(sizeof(names) / sizeof(names[0])) ? names[i] : "?");
}

static int check_cpu(const struct image *im, int flags, uint64_t *xfeatures, uint32_t *xsize)
{
	uint64_t cur = xgetbv0(), img = im->hdr.xfeatures;
	char missing[512];

	__builtin_cpu_init();
	if (!__builtin_cpu_supports("sse4.2")) {
		err_set("this CPU lacks SSE4.2 (crc32), which the restorer needs");
		return -1;
	}
	if (img & ~cur) {
		xfeature_names(img & ~cur, missing, sizeof(missing));
		if (!(flags & RST_FORCE_CPU)) {
			err_set("the image needs XSAVE features this CPU lacks: %s (image %#llx, "
				"this CPU %#llx); --ignore-cpu restores without them",
				missing, (unsigned long long)img, (unsigned long long)cur);
			return -1;
		}
		warnx("warning: --ignore-cpu: restoring without XSAVE features this CPU lacks: %s; "
		      "the program's state in them is lost, and it dies of SIGILL if it uses them",
		      missing);
	}
	if (im->cpu) {
		struct img_cpu here;

		img_cpu_here(&here);
		if (img_cpu_names(im->cpu, &here, missing, sizeof(missing))) {
			if (!(flags & RST_FORCE_CPU)) {
				err_set("this image was written on a CPU with %s; this one lacks "
					"them; --ignore-cpu restores anyway",
					missing);
				return -1;
			}
			warnx("warning: --ignore-cpu: this image was written on a CPU with %s, "
			      "which this one lacks; the program dies of SIGILL if it uses them",
			      missing);
		}
	}
	/* Dynamically enabled features (AMX tile data, bit 18) need a
	 * permission the restored program will not have asked for again. */
	*xfeatures = img & cur & ~(1ull << 18);
	*xsize = xsave_size_for(*xfeatures);
	for (size_t i = 0; i < im->nthreads; i++)
		if (*xsize > im->threads[i].d.xstate_len) {
			err_set("thread %d: the image holds %u bytes of XSAVE state; %u are needed "
				"here",
				im->threads[i].d.tid, im->threads[i].d.xstate_len, *xsize);
			return -1;
		}
	return 0;
}

static int is_special(const char *name)
{
	return !strcmp(name, "[vdso]") || !strncmp(name, "[vvar", 5);
}

/* The kernel's own mappings are moved to where the image had them.  Both
 * sides must have the same ones, in the same order and sizes: since Linux
 * 6.13 that is [vvar], [vvar_vclock], [vdso], and no adjacency is assumed. */
static int plan_specials(const struct image *im, const struct proc_map *self, size_t nself,
			 struct rst_args *a)
{
	size_t k = 0;

	a->nspecial = 0;
	for (size_t i = 0; i < nself; i++) {
		if (!is_special(self[i].path))
			continue;
		while (k < im->nregions && im->regions[k].d.kind != IMG_RGN_SPECIAL)
			k++;
		if (k == im->nregions || strcmp(im->regions[k].path, self[i].path) ||
		    im->regions[k].d.end - im->regions[k].d.start != self[i].end - self[i].start ||
		    a->nspecial == RST_MAX_SPECIAL) {
			err_set("the kernel's special mappings ([vvar], [vdso]) differ from the "
				"image's (dumped on kernel %s): restore on the same kernel",
				im->hdr.kernel);
			return -1;
		}
		a->special[a->nspecial++] = (struct rst_move){
			self[i].start, im->regions[k].d.start, self[i].end - self[i].start};
		k++;
	}
	while (k < im->nregions && im->regions[k].d.kind != IMG_RGN_SPECIAL)
		k++;
	if (k != im->nregions) {
		err_set("the image has special mapping %s that this kernel does not",
			im->regions[k].path);
		return -1;
	}
	return 0;
}

/* Highest address range of len bytes free both here and in the image, with
 * a margin on either side; below the usual mmap base so that it stays clear
 * of the stack. */
static uint64_t find_free(const struct image *im, const struct proc_map *self, size_t nself,
			  uint64_t len)
{
	const uint64_t margin = 1 << 20, lo = 1ull << 32;
	uint64_t top = 0x7f0000000000ull;

	for (;;) {
		uint64_t start = top - len - margin, clash = 0;
		if (top < lo + len + 2 * margin)
			return 0;
		for (size_t i = 0; i < nself; i++)
			if (self[i].start < top && self[i].end + margin > start &&
			    self[i].start > clash)
				clash = self[i].start;
		for (size_t i = 0; i < im->nregions; i++)
			if (im->regions[i].d.start < top && im->regions[i].d.end + margin > start &&
			    im->regions[i].d.start > clash)
				clash = im->regions[i].d.start;
		if (!clash)
			return start;
		top = clash & ~(margin - 1);
	}
}

/* How many runs --lazy may map: each adds up to two mappings, and
 * vm.max_map_count is the kernel's limit (mmap fails past it, after the
 * point of no return). */
static uint64_t lazy_room(uint64_t mappings)
{
	long long max = 65530;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");

	if (f) {
		if (fscanf(f, "%lld", &max) != 1)
			max = 65530;
		fclose(f);
	}
	max -= (long long)mappings + 1000;
	if (max < 0)
		return 0;
	return max / 2 < 20000 ? max / 2 : 20000;
}

/* --lazy maps page data from the image: it must be a file, as written. */
static int check_lazy(const struct img_input *in, int tree)
{
	struct stat sb;

	if (in->im.parent) {
		err_set("--lazy maps page data from one image file, and an incremental image "
			"takes pages from its parents too: restore it without --lazy");
		return -1;
	}
	/* A single process's pages come from the stream as it goes. */
	if (!tree && !in->nrest && rst_lazy_stream(in))
		return rst_lazy_check(in);
	if (in->compressed) {
		err_set("--lazy maps page data from the image file, and a compressed image "
			"cannot be mapped: decompress it to a file first");
		return -1;
	}
	if (fstat(in->r.fd, &sb) || !S_ISREG(sb.st_mode)) {
		err_set("--lazy maps page data from the image file: the image must be a regular "
			"file, not %s",
			in->from_stdin ? "standard input of this kind" : "this kind of file");
		return -1;
	}
	/* Page data is mapped at its stream offset: the file must start there.
	 * (A tree's processes share the file's offset: the first one checked
	 * it before any of them read on.) */
	if (!tree && lseek(in->r.fd, 0, SEEK_CUR) != (off_t)in->r.off) {
		err_set("--lazy maps page data from the image file: the image must start at the "
			"beginning of the file");
		return -1;
	}
	return 0;
}

/* mlock after the point of no return must not fail for the limit: check it
 * now (a process with CAP_IPC_LOCK has none, and mlock says so itself). */
static int check_locked(const struct image *im)
{
	uint64_t locked = 0;
	struct rlimit rl;

	for (size_t i = 0; i < im->nregions; i++)
		if (im->regions[i].d.flags & (IMG_RGN_LOCKED | IMG_RGN_LOCKONFAULT))
			locked += im->regions[i].d.end - im->regions[i].d.start;
	if (!locked || getrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur == RLIM_INFINITY ||
	    locked <= rl.rlim_cur || has_cap(CAP_IPC_LOCK /* no limit */))
		return 0;
	err_set("the image has %llu KiB of locked memory, over this process's RLIMIT_MEMLOCK "
		"of %llu KiB",
		(unsigned long long)locked >> 10, (unsigned long long)rl.rlim_cur >> 10);
	return -1;
}

struct fileset {
	const char **paths;
	int *fds;
	size_t n;
};

/* What differs between a file now (sb) and as the image recorded it: its
 * size, its mtime, each as "now, was then", into what; 0 if neither does.
 * Times are shown to the second, and to the nanosecond when their seconds
 * agree (a file rewritten within the second), so the two never read alike. */
static int file_change(char *what, size_t size, const struct stat *sb, uint64_t fsize,
		       int64_t mtime_sec, uint32_t mtime_nsec)
{
	char t1[64], t2[64];
	int n = 0, ns = sb->st_mtim.tv_sec == mtime_sec;

	*what = 0;
	if ((uint64_t)sb->st_size != fsize)
		n = snprintf(what, size, "size %lld, was %llu", (long long)sb->st_size,
			     (unsigned long long)fsize);
	if (!ns || (uint32_t)sb->st_mtim.tv_nsec != mtime_nsec)
		snprintf(what + n, size - n, "%smtime %s, was %s", n ? "; " : "",
			 ns ? fmt_time_ns(t1, sizeof(t1), sb->st_mtim.tv_sec, sb->st_mtim.tv_nsec)
			    : fmt_time(t1, sizeof(t1), sb->st_mtim.tv_sec),
			 ns ? fmt_time_ns(t2, sizeof(t2), mtime_sec, mtime_nsec)
			    : fmt_time(t2, sizeof(t2), mtime_sec));
	return *what != 0;
}

/* A mapped file must be the one the image saw: its pages not in the
 * image are read from it again.  (Size and mtime tell; its device and
 * inode need not be the same, so that a restore on another machine, with
 * the same files, works.)  A file mapped shared is the memory itself (the
 * image has none of its pages): only its size must be the same, since the
 * program's own writes through the mapping move its mtime (the JVM's
 * /tmp/hsperfdata_USER/PID, written on while a dump without --kill
 * lets it run, and by writeback). */
static int map_file_unchanged(const struct region *r, const struct stat *sb)
{
	int shared = !!(r->d.flags & IMG_RGN_SHARED);
	char what[192];

	if (!file_change(what, sizeof(what), sb, r->d.fsize,
			 shared ? sb->st_mtim.tv_sec : r->d.mtime_sec,
			 shared ? (uint32_t)sb->st_mtim.tv_nsec : r->d.mtime_nsec))
		return 0;
	err_set("%s, mapped at %#llx, changed since the checkpoint (%s)", r->path,
		(unsigned long long)r->d.start, what);
	return -1;
}

/* A mapped file the image saved (--save-files: sqlite's WAL index,
 * DB-shm, is open and mapped shared) is put back from the image before
 * anything is mapped, with the contents and mtime of the checkpoint:
 * neither its absence nor a change since is a reason to refuse.  So is a
 * tmpfs file mapped shared, made again (a private mapping of it too). */
static int map_file_saved(const struct image *im, const struct region *r)
{
	const struct shm_obj *o = img_find_shm(im, r->d.dev, r->d.ino);

	return o && (o->d.kind == IMG_SHM_SAVED || o->d.kind == IMG_SHM_TMPFS);
}

/* A regular file's fd on a tmpfs file the image holds: the new file's. */
static int tmpfs_fd(const struct image *im, const struct fd_entry *f)
{
	const struct shm_obj *o = img_find_shm(im, f->d.dev, f->d.ino);

	return f->d.kind == IMG_FD_REG && o && o->d.kind == IMG_SHM_TMPFS;
}

/* One fd per mapped file, checked against what the image recorded. */
static int map_file_fd(struct fileset *fs, const struct image *im, const struct region *r)
{
	struct stat sb;
	int fd, wr = (r->d.flags & IMG_RGN_SHARED) && (r->d.flags & IMG_RGN_MAYWRITE);

	for (size_t i = 0; i < fs->n; i++)
		if (!strcmp(fs->paths[i], r->path))
			return fs->fds[i];
	fd = open(r->path, (wr ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		err_sys("cannot open %s, mapped at %#llx", r->path, (unsigned long long)r->d.start);
		return -1;
	}
	if (fstat(fd, &sb)) {
		err_sys("cannot stat %s", r->path);
		close(fd);
		return -1;
	}
	if (!map_file_saved(im, r) && map_file_unchanged(r, &sb)) {
		close(fd);
		return -1;
	}
	fs->paths[fs->n] = r->path;
	fs->fds[fs->n++] = fd;
	return fd;
}

/* ---- files ------------------------------------------------------------ */

struct fdplan {
	int target; /* fd number in the program */
	int tmp;    /* where it is open now, or -1 to keep what is at target */
	int cloexec;
};

/* Whether another process of the tree holds the file region r maps: it
 * is made or put back before r is mapped. */
static int tree_holds(const struct img_input *tree, const struct region *r)
{
	for (size_t i = 0; tree && i < tree->nobjs; i++)
		if (tree->objs[i]->d.dev == r->d.dev && tree->objs[i]->d.ino == r->d.ino &&
		    (tree->objs[i]->d.kind == IMG_SHM_SAVED || tree->objs[i]->d.kind == IMG_SHM_TMPFS))
			return 1;
	return 0;
}

/* Every mapped file is there and unchanged (map_file_fd checks again as
 * it opens them; this is so that the refusal comes before any change). */
int rst_precheck_maps(const struct image *im, const struct img_input *tree)
{
	for (size_t i = 0; i < im->nregions; i++) {
		const struct region *r = &im->regions[i];
		struct stat sb;

		if (r->d.kind != IMG_RGN_FILE || map_file_saved(im, r) || tree_holds(tree, r))
			continue;
		if (stat(r->path, &sb)) {
			err_sys("cannot open %s, mapped at %#llx", r->path,
				(unsigned long long)r->d.start);
			return -1;
		}
		if (map_file_unchanged(r, &sb))
			return -1;
	}
	return 0;
}

static int check_changed(const struct fd_entry *f, int fd, int allow);

/* Every regular file the program had open is there and unchanged, unless
 * the image holds it (--save-files): it is put back then. */
static int precheck_files(const struct image *im)
{
	for (size_t i = 0; i < im->nfiles; i++) {
		const struct fd_entry *f = &im->files[i];
		const struct shm_obj *o;
		int fd, rc;

		if (f->d.kind != IMG_FD_REG || f->inherit || rst_proc_file(f))
			continue;
		o = img_find_shm(im, f->d.dev, f->d.ino);
		if (o && (o->d.kind == IMG_SHM_SAVED || o->d.kind == IMG_SHM_TMPFS))
			continue;
		fd = open(f->path, O_PATH | O_CLOEXEC);
		if (fd < 0) {
			err_sys("fd %d: cannot reopen %s", f->d.fd, f->path);
			return -1;
		}
		rc = check_changed(f, fd, 0);
		close(fd);
		if (rc)
			return -1;
	}
	return 0;
}

/* A regular file whose size or mtime differs from the image's was
 * changed since the dump: what the program knew of it (its offset, what
 * it read) may no longer hold.  -1 unless allowed, then a warning. */
static int check_changed(const struct fd_entry *f, int fd, int allow)
{
	struct stat sb;
	char what[192];

	if (fstat(fd, &sb)) {
		err_sys("fd %d: cannot stat %s", f->d.fd, f->path);
		return -1;
	}
	if (!file_change(what, sizeof(what), &sb, f->d.size, f->d.mtime_sec, f->d.mtime_nsec))
		return 0;
	if (allow) {
		warnx("fd %d: %s changed since the checkpoint (%s); going on", f->d.fd, f->path,
		      what);
		return 0;
	}
	err_set("fd %d: %s changed since the checkpoint (%s); --allow-changed-files restores "
		"anyway",
		f->d.fd, f->path, what);
	return -1;
}

int rst_check_lazy(const struct img_input *in)
{
	return check_lazy(in, 0);
}

/* Whether f is the fd --inherit-fd names: fd number fd, or with token
 * set, the end of that connection between members (IMG_FD_PEER). */
static int inherit_is(const struct fd_entry *f, int fd, const char *token)
{
	struct img_peer p;

	if (!token)
		return f->d.fd == fd;
	if (f->d.kind != IMG_FD_PEER || f->d.extra_len < sizeof(p))
		return 0;
	memcpy(&p, f->extra, sizeof(p));
	return !memcmp(p.token, token, sizeof(p.token));
}

/* --inherit-fd fd=ours, or peer:token=ours (fd -1). */
static int inherit(struct img_input *in, int fd, const char *token, int ours)
{
	size_t found = 0;
	char what[64];

	if (token)
		snprintf(what, sizeof(what), "peer:%.32s", token);
	else
		snprintf(what, sizeof(what), "%d", fd);
	if (fcntl(ours, F_GETFD) < 0) {
		err_sys("--inherit-fd %s=%d: fd %d of ckpt-remap is not open", what, ours, ours);
		return -1;
	}
	for (size_t k = 0; k <= in->nrest; k++) {
		struct image *im = img_proc_at(in, k);
		for (size_t i = 0; i < im->nfiles; i++)
			if (inherit_is(&im->files[i], fd, token)) {
				im->files[i].inherit = ours + 1;
				found++;
			}
	}
	if (!found) {
		err_set("--inherit-fd %s=%d: the image has no %s %s", what, ours,
			token ? "connection" : "fd", what);
		return -1;
	}
	/* Descs are numbered across the tree: every fd of one open file
	 * description gets the same file, as every fd of it had. */
	for (size_t k = 0; k <= in->nrest; k++) {
		struct image *im = img_proc_at(in, k);
		for (size_t i = 0; i < im->nfiles; i++) {
			struct fd_entry *f = &im->files[i];
			if (!inherit_is(f, fd, token) || !f->d.desc)
				continue;
			for (size_t j = 0; j <= in->nrest; j++) {
				struct image *o = img_proc_at(in, j);
				for (size_t m = 0; m < o->nfiles; m++)
					if (o->files[m].d.desc == f->d.desc)
						o->files[m].inherit = ours + 1;
			}
		}
	}
	return 0;
}

int rst_inherit_fd(struct img_input *in, int fd, int ours)
{
	return inherit(in, fd, NULL, ours);
}

int rst_inherit_peer(struct img_input *in, const char *token, int ours)
{
	return inherit(in, -1, token, ours);
}

void rst_close_inherited(struct img_input *in)
{
	/* An fd given twice is closed twice: the second close fails with
	 * EBADF, and nothing opens meanwhile to take its number. */
	for (size_t k = 0; k <= in->nrest; k++) {
		const struct image *im = img_proc_at(in, k);
		for (size_t i = 0; i < im->nfiles; i++)
			if (im->files[i].inherit)
				close(im->files[i].inherit - 1);
	}
}

/* One line for each pipe end whose other end was outside and that gets a
 * pipe whose other end is closed: the program will see end of file or
 * EPIPE where it did not before. */
static void warn_outside_pipes(const struct image *im, int tree)
{
	for (size_t i = 0; i < im->nfiles; i++) {
		const struct fd_entry *f = &im->files[i];
		struct img_pipe p;
		char who[32] = "";

		if (f->d.kind != IMG_FD_PIPE || f->inherit)
			continue;
		memcpy(&p, f->extra, sizeof(p));
		if (!(p.flags & IMG_PIPE_OUTSIDE))
			continue;
		if (tree)
			snprintf(who, sizeof(who), "pid %d: ", im->proc.pid);
		warnx("%sfd %d was the %s end of a pipe whose %s was outside the %s and is not "
		      "restored: %s; --inherit-fd %d=N hands it ckpt-remap's fd N instead",
		      who, f->d.fd, p.end ? "write" : "read", p.end ? "reader" : "writer",
		      tree ? "tree" : "process",
		      p.end ? "writing to it fails with EPIPE"
			    : "it reads what was queued in it at the checkpoint, then end of file",
		      f->d.fd);
	}
}

/* One line for a lock of f that another holds now: its range, and the
 * holder's pid where the kernel tells it (an OFD or flock holder has
 * none). */
static void lock_held(const struct fd_entry *f, const struct img_lock *l, const struct flock *fl)
{
	static const char *const kinds[] = {"?", "POSIX", "OFD", "flock", "lease"};
	char who[48] = "another open file description", range[64] = "the whole file";

	if (fl && fl->l_pid > 0)
		snprintf(who, sizeof(who), "pid %d", (int)fl->l_pid);
	if (l->kind == IMG_LOCK_POSIX || l->kind == IMG_LOCK_OFD)
		snprintf(range, sizeof(range), "start %llu, len %llu%s",
			 (unsigned long long)l->start, (unsigned long long)l->len,
			 l->len ? "" : ", to the end");
	err_set("fd %d: %s: cannot take again its %s %s lock (%s): %s holds a conflicting one",
		f->d.fd, f->path, kinds[l->kind], l->type == F_WRLCK ? "write" : "read", range,
		who);
}

/* The locks of regular file f, reopened on fd: those of its open file
 * description (OFD, flock, lease) taken now, once per description (the
 * other fds of it are duplicates); the process's POSIX locks only
 * checked here (no one else holds a conflicting one), and taken by the
 * restorer once ours of the same files are closed. */
static int take_desc_locks(const struct fd_entry *f, int fd)
{
	uint32_t n = fd_file_nlocks(f);

	for (uint32_t i = 0; i < n; i++) {
		struct img_lock l;
		struct flock fl;
		int rc = 0;

		fd_file_lock(f, i, &l);
		fl = (struct flock){.l_type = l.type, .l_whence = SEEK_SET, .l_start = l.start,
				    .l_len = l.len};
		switch (l.kind) {
		case IMG_LOCK_POSIX:
			if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type == F_UNLCK)
				continue;
			break;
		case IMG_LOCK_OFD:
			if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
				continue;
			fl = (struct flock){.l_type = l.type, .l_whence = SEEK_SET,
					    .l_start = l.start, .l_len = l.len};
			if (fcntl(fd, F_OFD_GETLK, &fl) || fl.l_type == F_UNLCK)
				rc = -1;
			break;
		case IMG_LOCK_FLOCK:
			if (flock(fd, (l.type == F_WRLCK ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0)
				continue;
			if (errno != EWOULDBLOCK)
				rc = -1;
			break;
		case IMG_LOCK_LEASE:
			if (fcntl(fd, F_SETLEASE, l.type) == 0)
				continue;
			err_sys("fd %d: %s: cannot take again its %s lease", f->d.fd, f->path,
				l.type == F_WRLCK ? "write" : "read");
			return -1;
		}
		if (rc)
			err_sys("fd %d: %s: cannot take again its lock", f->d.fd, f->path);
		else
			lock_held(f, &l, l.kind == IMG_LOCK_FLOCK ? NULL : &fl);
		return -1;
	}
	return 0;
}

/* An O_PATH descriptor, of its path itself (a symlink's own): on a file of
 * the type it was on. */
static int open_opath(const struct fd_entry *f)
{
	int flags = f->d.flags & (O_DIRECTORY | O_NOFOLLOW), fd;
	struct stat sb;

	if (S_ISLNK(f->d.mode))
		flags |= O_NOFOLLOW;
	fd = open(f->path, O_PATH | O_CLOEXEC | flags);
	if (fd < 0) {
		err_sys("fd %d: cannot reopen %s (O_PATH)", f->d.fd, f->path);
		return -1;
	}
	if (fstat(fd, &sb) || (sb.st_mode & S_IFMT) != (f->d.mode & S_IFMT)) {
		err_set("fd %d: %s is no longer the kind of file it was (mode %o, now %o)",
			f->d.fd, f->path, f->d.mode & S_IFMT, sb.st_mode & S_IFMT);
		close(fd);
		return -1;
	}
	return fd;
}

/* The status flags F_SETFL changes (the kernel's SETFL_MASK, less O_ASYNC,
 * which needs an owner the image does not keep) as the program had them:
 * a kind that made the fd with other ones, or an open(2) that could not
 * take them (O_NOATIME), leaves them to this. */
#define SETFL_FLAGS (O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME)

static int set_status_flags(int fd, const struct fd_entry *f)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || !((fl ^ f->d.flags) & SETFL_FLAGS))
		return fd;
	if (fcntl(fd, F_SETFL, (fl & ~SETFL_FLAGS) | (f->d.flags & SETFL_FLAGS)) == 0)
		return fd;
	err_sys("fd %d: %s: cannot set its status flags back to %#o", f->d.fd, f->path,
		f->d.flags & SETFL_FLAGS);
	close(fd);
	return -1;
}

int rst_proc_file(const struct fd_entry *f)
{
	return (f->d.kind == IMG_FD_REG || f->d.kind == IMG_FD_DIR) && fd_proc_pid(f->path);
}

/* A file of /proc/PID held open, reopened as the restored process's own:
 * the image's pid is ours now (the process that opens it becomes the
 * program); another process of the tree keeps its pid.  The dump refused
 * any other process's. */
static int open_proc_file(const struct image *im, const struct fd_entry *f)
{
	pid_t pid = fd_proc_pid(f->path), tid = fd_proc_tid(f->path);
	const char *rest = f->path + 6 + strspn(f->path + 6, "0123456789");
	char path[PATH_MAX];
	int fd, flags = f->d.flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);

	if (pid == im->proc.pid && tid == pid) {
		/* The main thread's own files, under its tid now: its pid (the
		 * dump refused another thread's). */
		rest += 6 + strspn(rest + 6, "0123456789");
		snprintf(path, sizeof(path), "/proc/%d/task/%d%s", (int)getpid(), (int)getpid(),
			 rest);
	} else {
		if (pid == im->proc.pid)
			pid = getpid();
		snprintf(path, sizeof(path), "/proc/%d%s", pid, rest);
	}
	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0) {
		err_sys("fd %d: cannot reopen %s as %s", f->d.fd, f->path, path);
		return -1;
	}
	/* A seq_file seeks by reading again from the start: what it shows
	 * now, not what it showed. */
	if (f->d.pos && lseek(fd, f->d.pos, SEEK_SET) < 0) {
		err_sys("fd %d: cannot seek %s to %llu", f->d.fd, path,
			(unsigned long long)f->d.pos);
		close(fd);
		return -1;
	}
	return fd;
}

static int make_fd(const struct img_input *in, const struct image *im, const struct fd_entry *f,
		   struct fd_pipes *pipes, const struct shm_made *sm, int allow_changed);

int rst_make_fd(const struct img_input *in, const struct image *im, const struct fd_entry *f,
		struct fd_pipes *pipes, const struct shm_made *sm, int allow_changed)
{
	int fd = make_fd(in, im, f, pipes, sm, allow_changed);

	if (fd < 0 || f->inherit || f->d.kind == IMG_FD_INHERIT || fd_tty_inherits(f))
		return fd;
	return set_status_flags(fd, f);
}

static int make_fd(const struct img_input *in, const struct image *im, const struct fd_entry *f,
		   struct fd_pipes *pipes, const struct shm_made *sm, int allow_changed)
{
	int fd = -1, flags, inherit = f->d.kind == IMG_FD_INHERIT || fd_tty_inherits(f);

	if (f->inherit) {
		/* The caller's file, as it is: its status flags are shared
		 * with whoever else holds it, not ours to change. */
		fd = fcntl(f->inherit - 1, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			err_sys("fd %d: cannot duplicate fd %d of ours (--inherit-fd)", f->d.fd,
				f->inherit - 1);
		/* But a connection between members, which ckpt-inject made
		 * again for this program alone, gets the program's
		 * O_NONBLOCK back (an event loop would block on it). */
		else if (f->d.kind == IMG_FD_PEER) {
			fcntl(fd, F_SETFL,
			      (fcntl(fd, F_GETFL) & ~O_NONBLOCK) | (f->d.flags & O_NONBLOCK));
			fd_peer_options(fd, f);
		}
		return fd;
	}
	switch (inherit ? IMG_FD_INHERIT : f->d.kind) {
	case IMG_FD_INHERIT:
		/* Ours, unless we lack it or it carried the image. */
		if ((f->d.fd == 0 && in->from_stdin) || fcntl(f->d.fd, F_GETFD) < 0)
			fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		break;
	case IMG_FD_REG:
	case IMG_FD_DIR:
		if (rst_proc_file(f))
			return open_proc_file(im, f);
		if (tmpfs_fd(im, f)) {
			fd = shm_open_fd(im, sm, f);
			if (fd >= 0 && take_desc_locks(f, fd)) {
				close(fd);
				return -1;
			}
			return fd;
		}
		/* fall through */
	case IMG_FD_CHR:
		flags = f->d.flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);
		fd = open(f->path, flags | O_CLOEXEC);
		if (fd < 0) {
			err_sys("fd %d: cannot reopen %s", f->d.fd, f->path);
			return -1;
		}
		if (f->d.kind == IMG_FD_REG && check_changed(f, fd, allow_changed)) {
			close(fd);
			return -1;
		}
		if (f->d.kind != IMG_FD_CHR && lseek(fd, f->d.pos, SEEK_SET) < 0 &&
		    f->d.kind == IMG_FD_REG) {
			err_sys("fd %d: cannot seek %s to %llu", f->d.fd, f->path,
				(unsigned long long)f->d.pos);
			close(fd);
			return -1;
		}
		if (f->d.kind == IMG_FD_REG && take_desc_locks(f, fd)) {
			close(fd);
			return -1;
		}
		return fd;
	case IMG_FD_OPATH:
		return open_opath(f);
	case IMG_FD_SHM:
		return shm_open_fd(im, sm, f);
	default:
		return fd_make(f, pipes);
	}
	/* A terminal gets the program's settings, on ours. */
	if (fd < 0 && !(f->d.fd == 0 && in->from_stdin) && fcntl(f->d.fd, F_GETFD) >= 0) {
		if (f->d.kind == IMG_FD_TTY && fd_tty_settings(f->d.fd, f))
			return -1;
		return RST_FD_KEEP;
	}
	if (fd < 0)
		err_sys("fd %d: cannot open /dev/null", f->d.fd);
	return fd;
}

/* Open every file of the image at a temporary number; nothing of ours is
 * touched until all of them opened.  fds that shared an open file
 * description share one again; premade (a tree's) has the fds the tree's
 * first process made before it forked the others. */
static int open_files(const struct img_input *in, struct fdplan *plan, struct fd_pipes *pipes,
		      const struct shm_made *sm, int allow_changed, const int *premade)
{
	const struct image *im = &in->im;

	for (size_t i = 0; i < im->nfiles; i++) {
		const struct fd_entry *f = &im->files[i];
		int fd = -1;

		plan[i].target = f->d.fd;
		plan[i].cloexec = !!(f->d.fdflags & FD_CLOEXEC);
		plan[i].tmp = -1;
		if (premade && premade[i] >= 0)
			fd = premade[i];
		for (size_t j = 0; j < i && fd < 0 && f->d.desc; j++)
			if (im->files[j].d.desc == f->d.desc && plan[j].tmp >= 0)
				fd = plan[j].tmp;
		if (fd >= 0) {
			plan[i].tmp = fcntl(fd, F_DUPFD_CLOEXEC, 0);
			if (plan[i].tmp < 0) {
				err_sys("fd %d: cannot duplicate", f->d.fd);
				return -1;
			}
			if (!premade && fd_flight_made(pipes, f, fd))
				return -1;
			continue;
		}
		fd = rst_make_fd(in, im, f, pipes, sm, allow_changed);
		if (fd == -1)
			return -1;
		if (fd >= 0)
			plan[i].tmp = fd;
		/* A file in flight: kept for the queue that passes it. */
		if (fd >= 0 && fd_flight_made(pipes, f, fd))
			return -1;
	}
	return 0;
}

/* Move fd to a number at or above base, close-on-exec. */
static int lift_fd(int fd, int base)
{
	int nfd;

	if (fd >= base)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, base);
	if (nfd < 0) {
		err_sys("cannot move fd %d above %d", fd, base);
		return -1;
	}
	close(fd);
	return nfd;
}

static int by_fd(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return x < y ? -1 : x > y;
}

/* Close every fd but the n in want (sorted): close_range(2) over the gaps
 * (Linux 5.9); 0, or -1 if the kernel has no close_range. */
static int close_all_but(const int *want, size_t n)
{
	unsigned lo = 0;

	for (size_t i = 0; i <= n; i++) {
		unsigned hi = i < n ? (unsigned)want[i] : ~0U;
		if (i < n && want[i] < 0)
			continue;
		if (hi > lo && close_range(lo, i < n ? hi - 1 : hi, 0))
			return -1;
		if (i < n)
			lo = hi + 1;
	}
	return 0;
}

/* Put every file at its number and close everything else of ours except
 * the fds in keep[].  Runs after every check passed: dup3 onto a number
 * we own does not fail for any reason we could have handled. */
static void install_files(const struct image *im, struct fdplan *plan, const int *keep,
			  size_t nkeep)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int *want;
	size_t n = 0;

	for (size_t i = 0; i < im->nfiles; i++) {
		if (plan[i].target < 0) { /* in flight: passed already */
			if (plan[i].tmp >= 0)
				close(plan[i].tmp);
		} else if (plan[i].tmp >= 0) {
			dup3(plan[i].tmp, plan[i].target, plan[i].cloexec ? O_CLOEXEC : 0);
			close(plan[i].tmp);
		} else {
			fcntl(plan[i].target, F_SETFD, plan[i].cloexec ? FD_CLOEXEC : 0);
		}
	}
	/* The rest closed in ranges: a process of a tree holds every fd
	 * ckpt-remap made for all of them, and reading /proc/self/fd and
	 * looking each up in the plan was quadratic in a tree of 500. */
	want = malloc((im->nfiles + nkeep + 1) * sizeof(*want));
	if (want) {
		for (size_t i = 0; i < im->nfiles; i++)
			want[n++] = plan[i].target;
		for (size_t i = 0; i < nkeep; i++)
			want[n++] = keep[i];
		qsort(want, n, sizeof(*want), by_fd);
		int rc = close_all_but(want, n);
		free(want);
		if (rc == 0)
			return;
	}
	dir = opendir(fmt_path(path, sizeof(path), "/proc/self/fd"));
	if (!dir)
		return;
	while ((d = readdir(dir))) {
		int fd = atoi(d->d_name), wanted = 0;

		if (d->d_name[0] < '0' || d->d_name[0] > '9' || fd == dirfd(dir))
			continue;
		for (size_t i = 0; i < im->nfiles && !wanted; i++)
			wanted = plan[i].target == fd;
		for (size_t i = 0; i < nkeep && !wanted; i++)
			wanted = keep[i] == fd;
		if (!wanted)
			close(fd);
	}
	closedir(dir);
}

/* ---- the frame -------------------------------------------------------- */

/* The rt_sigreturn frame that loads the program's registers.  A thread
 * stopped inside a system call that the kernel would restart is set to
 * run it again. */
static void build_frame(const struct thread *th, int handler_pending, uint64_t xfeatures,
			uint32_t xsize, unsigned char *frame, struct rst_thread *a)
{
	const struct img_thread *t = &th->d;
	struct user_regs_struct r;
	struct k_ucontext *uc = (void *)frame;
	uint64_t fpoff = ALIGN(sizeof(*uc), 64);
	struct fpx_sw sw = {0};
	uint32_t magic2 = FP_XSTATE_MAGIC2;
	uint64_t bv;

	memcpy(&r, t->regs, sizeof(r));
	restart_regs(&r, handler_pending);
	memset(uc, 0, sizeof(*uc));
	uc->uc_flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
	uc->ss_sp = t->ss_sp;
	uc->ss_flags = t->ss_flags;
	uc->ss_size = t->ss_size;
	uc->mc = (struct k_sigcontext){
		.r8 = r.r8, .r9 = r.r9, .r10 = r.r10, .r11 = r.r11, .r12 = r.r12, .r13 = r.r13,
		.r14 = r.r14, .r15 = r.r15, .rdi = r.rdi, .rsi = r.rsi, .rbp = r.rbp,
		.rbx = r.rbx, .rdx = r.rdx, .rax = r.rax, .rcx = r.rcx, .rsp = r.rsp,
		.rip = r.rip, .eflags = r.eflags, .cs = 0x33, .ss = 0x2b};
	uc->sigmask = t->sigmask;
	memcpy(frame + fpoff, th->xstate, xsize);
	/* The XSAVE header's xstate_bv may name features left out here (AMX
	 * tile data; with --force, those this CPU lacks): the kernel's
	 * rt_sigreturn refuses a frame with any it does not enable. */
	memcpy(&bv, frame + fpoff + 512, sizeof(bv));
	bv &= xfeatures;
	memcpy(frame + fpoff + 512, &bv, sizeof(bv));
	sw.magic1 = FP_XSTATE_MAGIC1;
	sw.extended_size = xsize + sizeof(magic2);
	sw.xfeatures = xfeatures;
	sw.xstate_size = xsize;
	memcpy(frame + fpoff + FX_SW_OFF, &sw, sizeof(sw));
	memcpy(frame + fpoff + xsize, &magic2, sizeof(magic2));
	a->frame_len = fpoff + xsize + sizeof(magic2);
	a->frame_fpoff = fpoff;
	a->frame_fpptr = offsetof(struct k_ucontext, mc.fpstate);
	/* Below the red zone, 64-byte aligned for XRSTOR. */
	a->frame_sp = (r.rsp - 128 - a->frame_len) & ~63ull;
	a->frame = (uint64_t)frame;
	a->fs_base = r.fs_base;
	a->gs_base = r.gs_base;
	a->tid_addr = t->tid_addr;
	a->tid_cached = !!(t->flags & IMG_THR_TID_CACHED);
	a->tid = t->tid;
	a->robust_head = t->robust_head;
	a->robust_len = t->robust_len;
	a->rseq_addr = t->rseq_addr;
	a->rseq_len = t->rseq_len;
	a->rseq_sig = t->rseq_sig;
	memcpy(a->comm, t->comm, sizeof(a->comm));
}

/* The frame is written where the program's stack is: inside a region that
 * takes page data, or just below a stack that grows down. */
static int frame_fits(const struct rst_map *maps, size_t n, uint64_t sp, uint64_t len)
{
	for (size_t i = 0; i < n; i++)
		if (maps[i].fill && maps[i].start < sp + len && sp + len <= maps[i].end &&
		    (maps[i].start <= sp || (maps[i].flags & MAP_GROWSDOWN)))
			return 1;
	return 0;
}

static int thread_index(const struct image *im, int32_t tid)
{
	for (size_t i = 0; i < im->nthreads; i++)
		if (im->threads[i].d.tid == tid)
			return (int)i;
	return -1;
}

/* The signal of POSIX timer p's expiry, pending in the image: the kernel's
 * own siginfo for it says SI_TIMER, the timer's signal and its id, on the
 * queue the timer signals.  Its position among all the image's queued
 * signals (taken ones skipped), or -1. */
static long timer_signal(const struct image *im, const struct img_ptimer *p,
			 const unsigned char *taken)
{
	size_t pos = 0;

	for (size_t i = 0; i < im->nsigq; i++) {
		const struct sigqueue *q = &im->sigq[i];
		int mine = q->d.tid == (p->notify == SIGEV_THREAD_ID ? p->tid : 0);

		for (uint32_t k = 0; k < q->d.count; k++, pos++) {
			const unsigned char *si = q->info + (size_t)k * IMG_SIGINFO_SIZE;
			int32_t signo, code, id;

			memcpy(&signo, si, 4);
			memcpy(&code, si + 8, 4);
			memcpy(&id, si + 16, 4); /* si_timerid */
			if (mine && !taken[pos] && signo == p->signo && code == SI_TIMER &&
			    id == p->id)
				return (long)pos;
		}
	}
	return -1;
}

/* Whether signal sig is queued anywhere in the image. */
static int sig_queued(const struct image *im, int sig)
{
	for (size_t i = 0; i < im->nsigq; i++)
		for (uint32_t k = 0; k < im->sigq[i].d.count; k++) {
			int32_t signo;

			memcpy(&signo, im->sigq[i].info + (size_t)k * IMG_SIGINFO_SIZE, 4);
			if (signo == sig)
				return 1;
		}
	return 0;
}

/* A POSIX timer whose expiry waits for its signal to be delivered (Linux
 * re-arms it then, posixtimer_deliver_signal, and counts the intervals
 * missed meanwhile as overruns) fires again at once instead of having that
 * signal queued by rt_sigqueueinfo: a queued copy is not the timer's, so
 * the new timer, armed, would queue a second one behind it while the
 * program has the signal blocked, and the copy's delivery would neither
 * re-arm the timer nor set what timer_getoverrun says.  Fired, the timer
 * has its one signal pending and waits for its delivery, as it did.  Marks
 * such signals taken, and their timers to fire. */
static void take_timer_signals(const struct image *im, unsigned char *taken, unsigned char *fire)
{
	for (uint32_t i = 0; i < im->timers.nposix; i++) {
		long at = im->ptimers[i].notify == SIGEV_NONE
				  ? -1
				  : timer_signal(im, &im->ptimers[i], taken);

		if (at >= 0) {
			taken[at] = 1;
			fire[i] = 1;
		}
	}
}

/* The queued signals not taken, each on its thread (or the process). */
static void plan_sigqueue(const struct image *im, struct rst_args *a, struct rst_sig *sig,
			  const unsigned char *taken)
{
	size_t pos = 0;

	a->sigs = (uint64_t)sig;
	for (size_t i = 0; i < im->nsigq; i++) {
		const struct sigqueue *q = &im->sigq[i];
		int thread = q->d.tid ? thread_index(im, q->d.tid) : -1;

		for (uint32_t k = 0; k < q->d.count; k++) {
			struct rst_sig *s;

			if (taken[pos++])
				continue;
			s = &sig[a->nsig++];
			s->thread = thread;
			memcpy(s->info, q->info + (size_t)k * IMG_SIGINFO_SIZE, IMG_SIGINFO_SIZE);
			memcpy(&s->signo, s->info, 4);
		}
	}
}

/* ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF as setitimer takes them. */
static void plan_itimers(const struct image *im, struct rst_args *a)
{
	static const int itimer_sig[3] = {SIGALRM, SIGVTALRM, SIGPROF};

	for (int w = 0; w < 3; w++) {
		const struct img_itimer *it = &im->timers.it[w];
		a->itimer[w][0] = it->interval.sec;
		a->itimer[w][1] = it->interval.nsec / 1000;
		a->itimer[w][2] = it->value.sec;
		a->itimer[w][3] = it->value.nsec / 1000;
		/* A timer with under a microsecond left is still armed. */
		if (!a->itimer[w][2] && !a->itimer[w][3] && it->value.nsec)
			a->itimer[w][3] = 1;
		/* Read as 0 with an interval, a timer is armed all the same:
		 * ITIMER_REAL ran out and Linux re-arms it only when it
		 * delivers the SIGALRM (dequeue_signal), getitimer reading 0
		 * until then.  setitimer with 0 would disarm it for good.  If
		 * the signal is queued in the image it stands for that expiry
		 * (it is queued again below): arm for the next one, an
		 * interval on; delivered, the signal finds the timer armed and
		 * leaves it.  If not, the signal was discarded (ignored, which
		 * stops the timer until it is set again): fire now, and it is
		 * discarded again.  The CPU-time timers re-arm as they expire
		 * and read at least a tick, but the same holds for them. */
		if (!a->itimer[w][2] && !a->itimer[w][3] && (a->itimer[w][0] || a->itimer[w][1])) {
			if (sig_queued(im, itimer_sig[w])) {
				a->itimer[w][2] = a->itimer[w][0];
				a->itimer[w][3] = a->itimer[w][1];
			} else {
				a->itimer[w][3] = 1;
			}
		}
	}
}

/* The POSIX timers, with their ids; fire[i]: timer i fires at once. */
static void plan_ptimers(const struct image *im, struct rst_args *a, struct rst_ptimer *pt,
			 const unsigned char *fire)
{
	a->ptimers = (uint64_t)pt;
	a->nptimer = im->timers.nposix;
	for (uint32_t i = 0; i < im->timers.nposix; i++) {
		const struct img_ptimer *p = &im->ptimers[i];
		pt[i] = (struct rst_ptimer){.id = p->id,
					    .clock = p->clock,
					    .notify = p->notify,
					    .signo = p->signo,
					    .thread = p->notify == SIGEV_THREAD_ID
							      ? thread_index(im, p->tid)
							      : 0,
					    .fire = fire[i],
					    .value = p->value,
					    .its = {p->interval.sec, p->interval.nsec, p->left.sec,
						    p->left.nsec}};
		/* A timer that was armed and about to fire stays armed. */
		if (!pt[i].its[2] && !pt[i].its[3] && (p->interval.sec || p->interval.nsec))
			pt[i].its[3] = 1;
	}
}

/* Pending signals and timers, for the restorer to queue and arm once every
 * thread exists. */
static int plan_signals_timers(const struct image *im, struct rst_args *a, unsigned char *base,
			       uint64_t *off)
{
	struct rst_sig *sig = (struct rst_sig *)(base + *off);
	unsigned char *taken, *fire;
	size_t nqueued = 0;

	for (size_t i = 0; i < im->nsigq; i++)
		nqueued += im->sigq[i].d.count;
	taken = calloc(nqueued + 1, 1);
	fire = calloc(im->timers.nposix + 1, 1);
	if (!taken || !fire) {
		free(taken);
		free(fire);
		err_set("out of memory");
		return -1;
	}
	take_timer_signals(im, taken, fire);
	plan_sigqueue(im, a, sig, taken);
	*off += ALIGN(a->nsig * sizeof(*sig), 64);
	plan_itimers(im, a);
	plan_ptimers(im, a, (struct rst_ptimer *)(base + *off), fire);
	free(taken);
	free(fire);
	*off += ALIGN(im->timers.nposix * sizeof(struct rst_ptimer), 64);
	if (im->timers.nposix && prctl(PR_TIMER_CREATE_RESTORE_IDS_, 2, 0, 0, 0) < 0) {
		err_sys("this kernel cannot create POSIX timers with given ids "
			"(PR_TIMER_CREATE_RESTORE_IDS, Linux 6.15), and the image has %u",
			im->timers.nposix);
		return -1;
	}
	return 0;
}

/* ---- the jump --------------------------------------------------------- */

static _Noreturn void jump(uint64_t entry, uint64_t stack_top,
					   struct rst_args *a)
{
	__asm__ volatile("mov %0, %%rsp\n\t"
			 "mov %1, %%rdi\n\t"
			 "jmp *%2\n\t"
			 :
			 : "r"(stack_top - 8), "r"(a), "r"(entry)
			 /* rdi is written before entry is read: keep entry out of it. */
			 : "rdi", "memory");
	__builtin_unreachable();
}

static int unregister_rseq(void)
{
	void *area;

	if (__rseq_size == 0)
		return 0;
	area = (char *)__builtin_thread_pointer() + __rseq_offset;
	/* glibc 2.35+ registers 32 bytes; later ones report the feature
	 * size in __rseq_size but still registered at least 32. */
	if (syscall(SYS_rseq, area, __rseq_size, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) == 0 ||
	    syscall(SYS_rseq, area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) == 0)
		return 0;
	err_sys("cannot unregister ckpt-remap's own rseq area");
	return -1;
}

/* ---- the restore sequence --------------------------------------------- */

/* What rst_restore builds, step by step, before it jumps: the blob is the
 * restorer's memory, from blob to blob + blob_len (scratch for moving the
 * special mappings, code, data, stack), the trampoline's page above it;
 * off is how much of it is taken. */
struct restore {
	struct img_input *in;
	struct image *im;
	int flags;
	const struct rst_tree *tree;
	struct proc_map *self; /* ckpt-remap's own mappings */
	size_t nself;
	struct shm_made sm;
	struct img_rec first; /* the record after the SHM data, read already */
	uint64_t xfeatures;
	uint32_t xsize;
	uint64_t ps, scratch_len, code_len, data_len, blob, blob_len, tramp, off;
	unsigned char *base;
	struct rst_args *a;
	struct rst_map *maps;
	size_t nmaps;
	struct fileset fs;   /* the mapped files, open */
	struct fdplan *plan; /* the program's files, open at other numbers */
	struct fd_pipes pipes;
	uint64_t maxfd; /* the program's highest fd number */
	int exe_fd, err_fd;
	int *keep; /* our fds the restorer keeps, and closes at the end */
	size_t nkeep;
	int stream;	     /* --lazy from a compressed image or a stream (lazy.c)... */
	int uffd, lazy_fd; /* ...its userfaultfd and the filler's pipe, or -1 */
	int *ufd;      /* the memory of each io_uring ring mapped (IMG_RGN_URING)... */
	size_t *umap;  /* ...and the map it is for */
	size_t nu;
};

/* Refusals first: nothing of the host changes (a System V segment set
 * back, a saved file put back) for a restore that then fails. */
static int precheck(const struct restore *r)
{
	return (!(r->flags & RST_ALLOW_CHANGED) && precheck_files(r->im)) || rst_precheck_maps(r->im, NULL) ||
	       check_locked(r->im) || rst_check_memory(r->im) ||
	       rst_attrs_check(r->im);
}

/* Memory objects and deleted files first: their contents come before the
 * page data. */
static int make_shared_objects(struct restore *r)
{
	if (r->tree) {
		/* The tree's first process made them, and reads the stream. */
		r->sm = *r->tree->sm;
		memset(&r->first, 0, sizeof(r->first));
		return 0;
	}
	return shm_make(r->in, &r->sm, &r->first) || ipc_restore(r->im) ? -1 : 0;
}

/* Bytes of the blob's data: args, tables, frames. */
static uint64_t blob_data_len(const struct restore *r)
{
	const struct image *im = r->im;
	uint64_t len;

	len = ALIGN(sizeof(struct rst_args) + (r->nself + 8) * sizeof(struct rst_range) +
			    (im->nregions + 1) * sizeof(struct rst_map) +
			    (im->nfiles + im->nregions + im->nshms + 10) * sizeof(int32_t) +
			    IMG_NSIG * sizeof(struct img_sigact) +
			    IMG_MAX_RUNS * sizeof(struct img_run) +
			    RST_MAX_CHUNKS * sizeof(struct rst_range) + RST_THREAD_STACK + 128,
		    r->ps);
	len += ALIGN(rst_env_len() + 64, r->ps); /* --setenv, --unsetenv */
	len += ALIGN(PATH_MAX + 64, r->ps);	  /* the proc an init mounts last */
	/* POSIX locks. */
	for (size_t i = 0; i < im->nfiles; i++)
		len += fd_file_nlocks(&im->files[i]) * sizeof(struct rst_lock);
	/* Pending signals and POSIX timers. */
	for (size_t i = 0; i < im->nsigq; i++)
		len += im->sigq[i].d.count * sizeof(struct rst_sig);
	len += im->timers.nposix * sizeof(struct rst_ptimer) + 128;
	len += rst_attrs_len(im);
	len += rst_live_len(r->in); /* a live stream's moves */
	/* Per thread: its struct, its frame, and (clones) its stack. */
	for (size_t i = 0; i < im->nthreads; i++)
		len += sizeof(struct rst_thread) + ALIGN(sizeof(struct k_ucontext), 64) +
		       ALIGN(im->threads[i].d.xstate_len + 4, 64) + 64 + (i ? RST_THREAD_STACK : 0);
	return ALIGN(len, r->ps);
}

/* Blob layout: scratch for moving the special mappings, code, data (args,
 * tables, frame), stack. */
static int map_blob(struct restore *r)
{
	for (size_t i = 0; i < r->nself; i++)
		if (is_special(r->self[i].path))
			r->scratch_len += r->self[i].end - r->self[i].start;
	r->code_len = ALIGN(rst_blob_end - rst_blob, r->ps);
	r->data_len = blob_data_len(r);
	r->blob_len = ALIGN(r->scratch_len, r->ps) + r->code_len + r->data_len + RST_STACK;
	r->blob = find_free(r->im, r->self, r->nself, r->blob_len + r->ps);
	if (!r->blob) {
		err_set("no address range is free both here and in the image for the restorer");
		return -1;
	}
	r->tramp = r->blob + r->blob_len;
	r->base = mmap((void *)r->blob, r->blob_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (r->base == MAP_FAILED || (uint64_t)r->base != r->blob) {
		err_sys("cannot map the restorer at %#llx", (unsigned long long)r->blob);
		return -1;
	}
	return 0;
}

/* The trampoline's page, just above the blob: it outlives the blob. */
static int map_trampoline(uint64_t tramp, uint64_t ps)
{
	if (mmap((void *)tramp, ps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != (void *)tramp) {
		err_sys("cannot map the trampoline at %#llx", (unsigned long long)tramp);
		return -1;
	}
	memcpy((char *)tramp + RST_TRAMP_MAIN, tramp_main, sizeof(tramp_main));
	memcpy((char *)tramp + RST_TRAMP_THREAD, tramp_thread, sizeof(tramp_thread));
	memcpy((char *)tramp + RST_TRAMP_MAGIC_OFF, RST_TRAMP_MAGIC, sizeof(RST_TRAMP_MAGIC));
	if (mprotect((void *)tramp, ps, PROT_READ | PROT_EXEC)) {
		err_sys("cannot protect the trampoline");
		return -1;
	}
	return 0;
}

/* The restorer's code, after the scratch space. */
static int copy_code(struct restore *r)
{
	r->off = ALIGN(r->scratch_len, r->ps);
	memcpy(r->base + r->off, rst_blob, rst_blob_end - rst_blob);
	if (mprotect(r->base + r->off, r->code_len, PROT_READ | PROT_EXEC)) {
		err_sys("cannot protect the restorer's code");
		return -1;
	}
	r->off += r->code_len;
	return 0;
}

/* The restorer's arguments, first of its data. */
static void init_args(struct restore *r)
{
	const struct img_input *in = r->in;
	struct rst_args *a = (struct rst_args *)(r->base + r->off);

	r->a = a;
	memset(a, 0, sizeof(*a));
	r->off += ALIGN(sizeof(*a), 64);
	a->blob_start = r->blob;
	a->blob_len = r->blob_len;
	a->tramp = r->tramp;
	a->fail_rc = ckpt_fail_rc();
	a->page_size = r->ps;
	a->flags = ((r->flags & RST_PROGRESS) ? RST_F_PROGRESS : 0) |
		   ((r->flags & RST_KEEP_TIDS) ? RST_F_KEEP_TIDS : 0) |
		   ((r->flags & RST_LAZY) && !r->stream ? RST_F_LAZY : 0) |
		   ((r->flags & RST_STOP) ? RST_F_STOP : 0) |
		   ((in->r.hdr_flags & IMG_HDR_NO_DATA_CRC) ? RST_F_NO_DATA_CRC : 0);
	a->stream_off = in->r.off;
	a->nrec = in->r.nrec;
	a->npages = in->r.npages;
	a->first = r->first;
	a->have_first = !r->tree;
	a->tree_cmd_fd = a->tree_rep_fd = -1;
	if (r->tree) {
		a->flags |= RST_F_TREE;
		a->tree_pid = r->im->proc.pid;
	}
	a->lazy_max = lazy_room(r->im->nregions + r->nself);
	a->pages_hint = r->im->proc.pages_hint;
}

/* How region r is mapped again, but for its file; whether it takes page
 * data, and from the image file with --lazy. */
static void plan_map(const struct region *r, struct rst_map *m)
{
	m->start = r->d.start;
	m->end = r->d.end;
	m->prot = r->d.prot;
	m->flags = (r->d.flags & IMG_RGN_SHARED) ? MAP_SHARED : MAP_PRIVATE;
	if (r->d.flags & IMG_RGN_GROWSDOWN)
		m->flags |= MAP_GROWSDOWN;
	/* A sparse region (ASan's shadow, a 64 GiB arena) was mapped without
	 * swap accounting; with it, it may not fit. */
	if (r->d.flags & IMG_RGN_NORESERVE)
		m->flags |= MAP_NORESERVE;
	/* Private MAP_HUGETLB memory (a shared one maps its object's file). */
	if ((r->d.flags & IMG_RGN_HUGETLB) && r->d.kind == IMG_RGN_ANON)
		m->flags |= MAP_HUGETLB | r->d.hshift << MAP_HUGE_SHIFT;
	m->fd = -1;
	m->shmid = -1;
	m->advice = r->d.flags;
	if (r->d.kind == IMG_RGN_AIO) {
		m->aio_nr = r->d.fsize;
		m->aio_head = r->d.dev;
		m->aio_tail = r->d.ino;
	}
	m->fill = !(r->d.flags & IMG_RGN_SHARED);
	/* A private anonymous region whose advice holds for a file mapping
	 * too may take its pages from the image file. */
	m->lazy = (r->d.kind == IMG_RGN_ANON || r->d.kind == IMG_RGN_HEAP) && m->fill &&
		  !(r->d.prot & PROT_EXEC) &&
		  !(r->d.flags & ~(IMG_RGN_NORESERVE | IMG_RGN_DONTDUMP | IMG_RGN_DONTFORK |
				   IMG_RGN_LOCKED | IMG_RGN_LOCKONFAULT | IMG_RGN_SEQREAD |
				   IMG_RGN_RANDREAD));
}

/* The image's regions, each with its file open. */
static int plan_maps(struct restore *r)
{
	const struct image *im = r->im;

	r->maps = (struct rst_map *)(r->base + r->off);
	r->off += ALIGN((im->nregions + 1) * sizeof(*r->maps), 64);
	r->fs.paths = calloc(im->nregions + 1, sizeof(*r->fs.paths));
	r->fs.fds = calloc(im->nregions + 1, sizeof(*r->fs.fds));
	if (!r->fs.paths || !r->fs.fds) {
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < im->nregions; i++) {
		const struct region *g = &im->regions[i];
		struct rst_map *m = &r->maps[r->nmaps];

		if (g->d.kind == IMG_RGN_SPECIAL)
			continue;
		plan_map(g, m);
		m->late = img_lazy_late(&g->d);
		if (g->d.kind == IMG_RGN_FILE) {
			m->fd = map_file_fd(&r->fs, r->im, g);
			if (m->fd < 0)
				return -1;
			m->pgoff = g->d.pgoff;
		}
		/* An io_uring ring: the memory its instance is made on, once
		 * it is (plan_files, uring_maps). */
		if (g->d.kind == IMG_RGN_URING)
			r->nu++;
		if (g->d.kind == IMG_RGN_SHM) {
			size_t k = shm_index(im, g->d.dev, g->d.ino);
			m->fd = r->sm.fd[k];
			m->shmid = r->sm.shmid[k];
			m->shm_rmid = !!(im->shms[k].d.flags & IMG_SHM_RMID);
			m->pgoff = g->d.pgoff;
		}
		r->nmaps++;
	}
	r->a->nmaps = r->nmaps;
	r->a->maps = (uint64_t)r->maps;
	return 0;
}

/* Each io_uring ring maps the memory its instance was made on (fd_make). */
static int uring_maps(struct restore *r)
{
	const struct image *im = r->im;
	size_t k = 0, n = r->nu;

	r->nu = 0;
	if (!n)
		return 0;
	r->ufd = calloc(n, sizeof(*r->ufd));
	r->umap = calloc(n, sizeof(*r->umap));
	if (!r->ufd || !r->umap) {
		err_set("out of memory");
		return -1;
	}
	for (size_t i = 0; i < im->nregions; i++) {
		const struct region *g = &im->regions[i];
		int fd;

		if (g->d.kind == IMG_RGN_SPECIAL)
			continue;
		if (g->d.kind == IMG_RGN_URING && r->nu < n) {
			fd = fd_uring_memory(&r->pipes, g->d.ino, g->d.pgoff, g->d.end - g->d.start,
					     &r->maps[k].pgoff);
			if (fd < 0) {
				char why[512];
				snprintf(why, sizeof(why), "%s", err_get());
				err_set("region %#llx-%#llx: %s", (unsigned long long)g->d.start,
					(unsigned long long)g->d.end, why);
				return -1;
			}
			r->maps[k].fd = fd;
			r->ufd[r->nu] = fd;
			r->umap[r->nu++] = k;
		}
		k++;
	}
	return 0;
}

/* Every file of the program is open here twice over at one point: at a
 * number of ours, then lifted above its highest fd (lift_own_fds).  Raise
 * our soft RLIMIT_NOFILE to cover that, and as root (CAP_SYS_RESOURCE) the
 * hard one where it is too low (up to fs.nr_open); the program's own
 * limits are set from the image later.  A failure is left to the open or
 * the lift that runs out, which names the fd. */
static void raise_nofile(const struct image *im)
{
	uint64_t need = 1024, maxfd = 2;
	struct rlimit rl;

	for (size_t i = 0; i < im->nfiles; i++)
		if (im->files[i].d.fd >= 0 && (uint64_t)im->files[i].d.fd > maxfd)
			maxfd = im->files[i].d.fd;
	need += maxfd + 1 + im->nfiles;
	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= need)
		return;
	if (rl.rlim_max < need) {
		struct rlimit up = {need, need};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			return;
	}
	rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* Files: all opened before any of ours is moved. */
static int plan_files(struct restore *r)
{
	raise_nofile(r->im);
	r->plan = calloc(r->im->nfiles + 1, sizeof(*r->plan));
	if (!r->plan) {
		err_set("out of memory");
		return -1;
	}
	if (open_files(r->in, r->plan, &r->pipes, &r->sm, !!(r->flags & RST_ALLOW_CHANGED),
		       r->tree ? r->tree->premade : NULL) ||
	    fd_pipes_done(&r->pipes) || uring_maps(r))
		return -1;
	/* Every fd of a pipe holds its end now; ours go. */
	fd_pipes_close(&r->pipes);
	if (r->im->exe[0])
		r->exe_fd = open(r->im->exe, O_RDONLY | O_CLOEXEC);
	if (r->exe_fd < 0)
		r->exe_fd = rst_exe_object(r->im, &r->sm);
	for (size_t i = 0; i < r->im->nfiles; i++)
		if (r->im->files[i].d.fd >= 0 && (uint64_t)r->im->files[i].d.fd > r->maxfd)
			r->maxfd = r->im->files[i].d.fd;
	return 0;
}

/* lift_fd renumbered the map files: point the maps at the new ones. */
static void repoint_maps(struct restore *r)
{
	const struct image *im = r->im;
	size_t k = 0;

	for (size_t i = 0; i < im->nregions; i++) {
		const struct region *g = &im->regions[i];
		if (g->d.kind == IMG_RGN_SPECIAL)
			continue;
		if (g->d.kind == IMG_RGN_FILE)
			for (size_t j = 0; j < r->fs.n; j++)
				if (!strcmp(r->fs.paths[j], g->path))
					r->maps[k].fd = r->fs.fds[j];
		if (g->d.kind == IMG_RGN_SHM)
			r->maps[k].fd = r->sm.fd[shm_index(im, g->d.dev, g->d.ino)];
		k++;
	}
}

/* Our own fds go above every fd number the program uses. */
static int lift_own_fds(struct restore *r)
{
	struct img_input *in = r->in;
	int base = r->maxfd + 1;

	if ((in->r.fd = lift_fd(in->r.fd, base)) < 0)
		return -1;
	if (in->status_fd >= 0 && (in->status_fd = lift_fd(in->status_fd, base)) < 0)
		return -1;
	for (size_t i = 0; i < r->fs.n; i++)
		if ((r->fs.fds[i] = lift_fd(r->fs.fds[i], base)) < 0)
			return -1;
	for (size_t i = 0; i < r->sm.n; i++)
		if (r->sm.fd[i] >= 0 && (r->sm.fd[i] = lift_fd(r->sm.fd[i], base)) < 0)
			return -1;
	repoint_maps(r);
	for (size_t i = 0; i < r->nu; i++) {
		if ((r->ufd[i] = lift_fd(r->ufd[i], base)) < 0)
			return -1;
		r->maps[r->umap[i]].fd = r->ufd[i];
	}
	for (size_t i = 0; i < r->im->nfiles; i++)
		if (r->plan[i].tmp >= 0 && (r->plan[i].tmp = lift_fd(r->plan[i].tmp, base)) < 0)
			return -1;
	if (r->exe_fd >= 0 && (r->exe_fd = lift_fd(r->exe_fd, base)) < 0)
		return -1;
	if (r->tree && ((r->a->tree_cmd_fd = lift_fd(r->tree->cmd_fd, base)) < 0 ||
			(r->a->tree_rep_fd = lift_fd(r->tree->rep_fd, base)) < 0))
		return -1;
	return 0;
}

/* The process's POSIX locks, on the program's fd numbers: the restorer
 * takes them (take_desc_locks checked that no one holds a conflicting
 * one). */
static void plan_locks(struct restore *r)
{
	struct rst_lock *l = (struct rst_lock *)(r->base + r->off);
	struct rst_args *a = r->a;

	a->nlocks = 0;
	a->locks = (uint64_t)l;
	for (size_t i = 0; i < r->im->nfiles; i++) {
		const struct fd_entry *f = &r->im->files[i];
		for (uint32_t k = 0; !f->inherit && k < fd_file_nlocks(f); k++) {
			struct img_lock il;
			fd_file_lock(f, k, &il);
			if (il.kind != IMG_LOCK_POSIX)
				continue;
			l[a->nlocks++] = (struct rst_lock){
			    .fd = f->d.fd,
			    .fl = {.type = il.type, .whence = SEEK_SET, .start = il.start,
				   .len = il.len}};
		}
	}
	r->off += ALIGN(a->nlocks * sizeof(*l), 64);
}

/* The fds of ours that the restorer uses, kept when every other one of
 * ours is closed, and closed by the restorer at the end. */
static void plan_keep(struct restore *r)
{
	struct img_input *in = r->in;
	struct rst_args *a = r->a;
	int *keep;

	/* The restorer reports on ckpt-remap's stderr, not the program's. */
	r->err_fd = fcntl(2, F_DUPFD_CLOEXEC, r->maxfd + 1);
	keep = r->keep = (int *)(r->base + r->off);
	/* First those the restorer closes before it takes the POSIX locks
	 * (they may be files the program locked). */
	for (size_t i = 0; i < r->fs.n; i++)
		keep[r->nkeep++] = r->fs.fds[i];
	for (size_t i = 0; i < r->sm.n; i++)
		if (r->sm.fd[i] >= 0)
			keep[r->nkeep++] = r->sm.fd[i];
	if (r->exe_fd >= 0)
		keep[r->nkeep++] = r->exe_fd;
	for (size_t i = 0; i < r->nu; i++)
		keep[r->nkeep++] = r->ufd[i];
	a->nclose_early = r->nkeep;
	keep[r->nkeep++] = in->r.fd;
	if (in->status_fd >= 0)
		keep[r->nkeep++] = in->status_fd;
	if (r->uffd >= 0) {
		keep[r->nkeep++] = a->uffd = r->uffd;
		keep[r->nkeep++] = a->lazy_fd = r->lazy_fd;
		a->flags |= RST_F_UFFD;
	}
	if (r->err_fd >= 0)
		keep[r->nkeep++] = r->err_fd;
	if (r->tree) {
		keep[r->nkeep++] = a->tree_cmd_fd;
		keep[r->nkeep++] = a->tree_rep_fd;
	}
	r->off += ALIGN(r->nkeep * sizeof(int32_t), 64);
	a->img_fd = in->r.fd;
	a->err_fd = r->err_fd;
	a->status_fd = in->status_fd;
	if (r->im->parent)
		a->flags |= RST_F_MERGED;
	a->nclose = r->nkeep;
	a->close_fds = (uint64_t)keep;
	plan_locks(r);
}

/* The program's current directory; one that was removed (its link says
 * " (deleted)") is made again, entered and removed, so that the program
 * is in a removed directory again (getcwd fails with ENOENT). */
static int enter_cwd(const struct image *im)
{
	size_t l = strlen(im->cwd);
	int fd, rc;

	if (l > 10 && !strcmp(im->cwd + l - 10, " (deleted)") && chdir(im->cwd)) {
		if ((fd = fd_make_deleted(im->cwd, S_IFDIR | 0700)) < 0)
			return -1;
		rc = fchdir(fd);
		close(fd);
		if (rc) {
			err_sys("cannot change directory to %s made again", im->cwd);
			return -1;
		}
	} else if (chdir(im->cwd)) {
		err_sys("cannot change directory to %s", im->cwd);
		return -1;
	}
	umask(im->proc.umask);
	return 0;
}

/* The kernel state the restorer sets. */
static int plan_process_state(struct restore *r)
{
	const struct image *im = r->im;
	struct rst_args *a = r->a;

	memcpy(&a->mm, (uint64_t[]){im->proc.mm[MM_START_CODE], im->proc.mm[MM_END_CODE],
				    im->proc.mm[MM_START_DATA], im->proc.mm[MM_END_DATA],
				    im->proc.mm[MM_START_BRK], im->proc.mm[MM_BRK],
				    im->proc.mm[MM_START_STACK], im->proc.mm[MM_ARG_START],
				    im->proc.mm[MM_ARG_END], im->proc.mm[MM_ENV_START],
				    im->proc.mm[MM_ENV_END]},
	       11 * sizeof(uint64_t));
	if (im->proc.auxv_len > sizeof(a->auxv)) {
		err_set("auxv of %u bytes is too large", im->proc.auxv_len);
		return -1;
	}
	memcpy(a->auxv, im->auxv, im->proc.auxv_len);
	a->mm.auxv_size = im->proc.auxv_len;
	a->mm.exe_fd = r->exe_fd >= 0 ? (uint32_t)r->exe_fd : (uint32_t)-1;
	if (r->exe_fd >= 0)
		a->flags |= RST_F_EXE_FD;
	memcpy(r->base + r->off, im->sigacts, sizeof(im->sigacts));
	a->sigacts = (uint64_t)(r->base + r->off);
	r->off += ALIGN(sizeof(im->sigacts), 64);
	return 0;
}

/* --setenv, --unsetenv: the program's environ, and the changes, for the
 * restorer (edit_env). */
static int plan_env(struct restore *r)
{
	if (rst_env_find(r->im, &r->a->env_addr))
		return -1;
	if (!r->a->env_addr)
		return 0;
	memcpy(r->base + r->off, rst_env_edits(), rst_env_len());
	r->a->env_edits = (uint64_t)(r->base + r->off);
	r->a->env_edits_len = rst_env_len();
	r->off += ALIGN(rst_env_len(), 64);
	return 0;
}

/* The init of a pid namespace below the tree's: the proc of it that its
 * mount namespace had, mounted last (rst_ns_late_proc, found while the
 * tree was forked). */
static void plan_proc(struct restore *r)
{
	const struct mnt_step *m = r->tree ? r->tree->late_proc : NULL;

	if (!m)
		return;
	memcpy(r->base + r->off, m->path, m->d.path_len + 1);
	r->a->proc_path = (uint64_t)(r->base + r->off);
	r->a->proc_flags = rst_mnt_flags(m->d.flags) & ~MS_RDONLY;
	r->a->proc_prop = (m->d.flags & IMG_MNTF_PRIVATE)	? MS_PRIVATE
			  : (m->d.flags & IMG_MNTF_UNBINDABLE) ? MS_UNBINDABLE
			  : (m->d.flags & IMG_MNTF_SHARED)	? MS_SHARED
								: 0;
	r->off += ALIGN(m->d.path_len + 1, 64);
}

/* The restorer's scratch for a PAGES record's runs, and the prefault
 * helper's chunks and stack. */
static void plan_scratch(struct restore *r)
{
	struct rst_args *a = r->a;

	a->runs = (uint64_t)(r->base + r->off);
	r->off += ALIGN(IMG_MAX_RUNS * sizeof(struct img_run), 64);
	a->pf.chunks = (uint64_t)(r->base + r->off);
	r->off += ALIGN(RST_MAX_CHUNKS * sizeof(struct rst_range), 64);
	r->off += RST_THREAD_STACK;
	a->pf.stack_top = (uint64_t)(r->base + r->off);
}

/* The threads: their frames, and stacks for the clones. */
static int plan_threads(struct restore *r)
{
	const struct image *im = r->im;
	struct rst_thread *rt = (struct rst_thread *)(r->base + r->off);

	r->off += ALIGN(im->nthreads * sizeof(*rt), 64);
	r->a->nthreads = im->nthreads;
	r->a->threads = (uint64_t)rt;
	for (size_t i = 0; i < im->nthreads; i++) {
		build_frame(&im->threads[i], restart_handler_pending(im, i), r->xfeatures, r->xsize,
			    r->base + r->off, &rt[i]);
		r->off += ALIGN(rt[i].frame_len, 64);
		if (!frame_fits(r->maps, r->nmaps, rt[i].frame_sp, rt[i].frame_len)) {
			err_set("thread %d: the stack pointer %#llx is not in a writable region "
				"of the image",
				im->threads[i].d.tid,
				(unsigned long long)im->threads[i].d.regs[19]);
			return -1;
		}
		if (i) {
			r->off += RST_THREAD_STACK;
			rt[i].stack_top = (uint64_t)(r->base + r->off);
		}
	}
	return 0;
}

/* Everything of ckpt-remap that is not the blob, the trampoline or a
 * special mapping goes. */
static int plan_unmap(struct restore *r)
{
	struct rst_args *a = r->a;
	struct rst_range *unmap;

	proc_free_maps(r->self, r->nself);
	r->self = NULL;
	if (proc_read_layout(0, &r->self, &r->nself))
		return -1;
	unmap = (struct rst_range *)(r->base + r->off);
	a->unmap = (uint64_t)unmap;
	for (size_t i = 0; i < r->nself; i++) {
		const struct proc_map *m = &r->self[i];
		if (is_special(m->path) || !strcmp(m->path, "[vsyscall]") ||
		    (m->start >= r->blob && m->end <= r->tramp + r->ps) ||
		    rst_live_staged(r->in, m->start, m->end))
			continue;
		unmap[a->nunmap++] = (struct rst_range){m->start, m->end};
	}
	r->off += ALIGN(a->nunmap * sizeof(*unmap), 64);
	if (r->off > ALIGN(r->scratch_len, r->ps) + r->code_len + r->data_len) {
		err_set("restorer data overflow (%llu bytes)", (unsigned long long)r->off);
		return -1;
	}
	proc_free_maps(r->self, r->nself);
	r->self = NULL;
	return 0;
}

/* Whether the process was in the foreground of a terminal it did not
 * make, one of its standard streams, which the restore gives it on
 * ckpt-remap's terminal. */
static int on_outer_tty(const struct image *im)
{
	if (im->proc.tpgid <= 0 || im->proc.tpgid != im->proc.pgid)
		return 0;
	for (size_t i = 0; i < im->nfiles; i++)
		if (fd_tty_inherits(&im->files[i]) && isatty((int)im->files[i].d.fd))
			return 1;
	return 0;
}

/* From here on nothing may fail: returns only if ckpt-remap's own rseq
 * area stays registered (-1, err_set). */
static int enter_restorer(struct restore *r)
{
	sigset_t all;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	/* On a terminal from outside, in its foreground: a SIGWINCH waits for
	 * the program (blocked until its own mask is back), so that it reads
	 * the new terminal's size and redraws its screen, which is blank. */
	if (on_outer_tty(r->im))
		kill(getpid(), SIGWINCH);
	if (unregister_rseq()) {
		sigprocmask(SIG_UNBLOCK, &all, NULL);
		return -1;
	}
	fflush(NULL);
	install_files(r->im, r->plan, r->keep, r->nkeep);
	/* Epoll watches name fds by number: only now are they all there.  A
	 * failure is reported on ckpt-remap's stderr, as fd 2 may be the
	 * program's already. */
	if (fd_epoll_register(r->im)) {
		dprintf(r->err_fd, "%s: %s\n", prog, err_get());
		_exit(ckpt_fail_rc());
	}
	jump(r->blob + ALIGN(r->scratch_len, r->ps), r->blob + r->blob_len, r->a);
}

int rst_restore(struct img_input *in, int flags, const struct rst_tree *tree)
{
	struct restore r = {.in = in,
			    .im = &in->im,
			    .flags = flags,
			    .tree = tree,
			    .ps = sysconf(_SC_PAGESIZE),
			    .maxfd = 2,
			    .exe_fd = -1,
			    .uffd = -1,
			    .lazy_fd = -1};

	if (check_cpu(r.im, flags, &r.xfeatures, &r.xsize))
		return -1;
	if ((flags & RST_LAZY) && check_lazy(in, tree != NULL))
		return -1;
	r.stream = (flags & RST_LAZY) && !tree && rst_lazy_stream(in);
	/* A tree's supervisor checked the huge pages of every process. */
	if (precheck(&r) || (!tree && rst_check_hugetlb(in)) || make_shared_objects(&r) ||
	    proc_read_layout(0, &r.self, &r.nself))
		goto fail;
	if (map_blob(&r) || map_trampoline(r.tramp, r.ps) || copy_code(&r))
		goto fail;
	init_args(&r);
	if (plan_specials(r.im, r.self, r.nself, r.a) || plan_maps(&r) ||
	    rst_live_plan(in, r.maps, r.nmaps, r.a, r.base, &r.off))
		goto fail;
	/* A tree's session leaders took their sessions as they forked. */
	if ((!tree && fd_take_session(r.im, &r.pipes)) || plan_files(&r) || lift_own_fds(&r))
		goto fail;
	if (r.stream && rst_lazy_start(in, r.maps, r.nmaps, r.maxfd + 1, &r.uffd, &r.lazy_fd))
		goto fail;
	plan_keep(&r);
	plan_proc(&r);
	if (enter_cwd(r.im) || plan_process_state(&r) || plan_env(&r))
		goto fail;
	plan_scratch(&r);
	if (plan_threads(&r) || plan_signals_timers(r.im, r.a, r.base, &r.off) ||
	    rst_attrs_plan(r.im, r.a, r.base, &r.off) || plan_unmap(&r) || rst_attrs_set(r.im))
		goto fail;
	/* Last, so that a restore refused says only why. */
	warn_outside_pipes(r.im, tree != NULL);
	if (flags & RST_STOP)
		fprintf(stderr,
			"%s: pid %d stopped before its first instruction (gdb -p %d, or "
			"kill -CONT %d)\n",
			prog, (int)getpid(), (int)getpid(), (int)getpid());
	return enter_restorer(&r);
fail:
	fd_pipes_close(&r.pipes);
	/* The filler, if started, gets nothing and goes. */
	if (r.uffd >= 0)
		close(r.uffd);
	if (r.lazy_fd >= 0)
		close(r.lazy_fd);
	if (!tree)
		shm_made_free(&r.sm, 1);
	proc_free_maps(r.self, r.nself);
	/* A decompressor or merge that failed says why better than the
	 * stream it cut short. */
	img_input_fail(in);
	return -1;
}
