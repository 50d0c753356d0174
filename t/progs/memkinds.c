/* memkinds: a process holding each kind of memory mapping ckpt keeps, and
 * files only the image can bring back.  After a restore it checks each one
 * (contents, addresses, protections, the madvise/mlock flags the kernel
 * shows in smaps, and that shared memory is still shared) and exits 0 only
 * if all are intact.
 *
 * usage: memkinds DIR [KIND...]
 * KIND: advice split remap posixshm sharedanon memfd deleted delmap sysvshm
 * sysvkey sparse savedfile ipc delshm.  With none given, all of them but sparse
 * and ipc, and sysvkey only when CKPT_SHM_KEY (its key) is set.
 * Prints "ready PID", waits for DIR/go, checks, prints "memkinds: ok". */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG "memkinds"
#include "progs.h"

#define PS 4096ul

static const char *dir;

static void fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = mix(seed, i);
}

static int same(const void *p, size_t len, uint64_t seed)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != mix(seed, i))
			return 0;
	return 1;
}

static void *map(size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = mmap(NULL, len, prot, flags, fd, off);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

/* The smaps entry of the mapping that starts at addr: its permissions
 * ("rw-p"), and whether VmFlags has the two-letter flag. */
static int smaps_of(void *addr, char perms[5], const char *flag, unsigned long *end)
{
	char line[1024];
	unsigned long s, e;
	int in = 0, has = 0, found = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		die("/proc/self/smaps");
	while (fgets(line, sizeof(line), f)) {
		char p[5];
		if (sscanf(line, "%lx-%lx %4s", &s, &e, p) == 3 && strchr(line, ' ') &&
		    line[strspn(line, "0123456789abcdef")] == '-') {
			in = s == (unsigned long)addr;
			if (in) {
				found = 1;
				memcpy(perms, p, 5);
				if (end)
					*end = e;
			}
		} else if (in && !strncmp(line, "VmFlags:", 8) && flag) {
			char want[8];
			snprintf(want, sizeof(want), " %s", flag);
			for (char *q = line + 8; (q = strstr(q, want)); q++)
				if (q[3] == ' ' || q[3] == '\n')
					has = 1;
		}
	}
	fclose(f);
	if (!found)
		return -1;
	return has;
}

static void want_flag(void *addr, const char *flag, const char *what)
{
	char perms[5];

	if (smaps_of(addr, perms, flag, NULL) != 1)
		fail("%s at %p: VmFlags lacks %s", what, addr, flag);
}

/* ---- advice: madvise and mlock ----------------------------------------- */

static char *adv_fork, *adv_wipe, *adv_dump, *adv_huge, *adv_nohuge, *adv_lock, *adv_rand;
#define HUGE (4ul << 20)

static void advice_setup(void)
{
	char *h;

	adv_fork = map(4 * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	adv_wipe = map(4 * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	adv_dump = map(4 * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	adv_lock = map(4 * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	adv_rand = map(4 * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	adv_nohuge = map(4 * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* A 2 MiB-aligned 2 MiB region inside a 4 MiB mapping. */
	h = map(HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	adv_huge = (char *)(((uintptr_t)h + (2ul << 20) - 1) & ~((2ul << 20) - 1));
	if (madvise(adv_fork, 4 * PS, MADV_DONTFORK) || madvise(adv_wipe, 4 * PS, MADV_WIPEONFORK) ||
	    madvise(adv_dump, 4 * PS, MADV_DONTDUMP) || madvise(adv_rand, 4 * PS, MADV_RANDOM) ||
	    madvise(adv_nohuge, 4 * PS, MADV_NOHUGEPAGE) ||
	    madvise(adv_huge, 2ul << 20, MADV_HUGEPAGE))
		die("madvise");
	fill(adv_fork, 4 * PS, 11);
	fill(adv_wipe, 4 * PS, 12);
	fill(adv_dump, 4 * PS, 13);
	fill(adv_lock, 4 * PS, 14);
	fill(adv_rand, 4 * PS, 15);
	fill(adv_nohuge, 4 * PS, 16);
	fill(adv_huge, 2ul << 20, 17);
	if (mlock(adv_lock, 4 * PS))
		die("mlock");
}

static void advice_check(void)
{
	pid_t pid;
	int st;

	if (!same(adv_fork, 4 * PS, 11) || !same(adv_wipe, 4 * PS, 12) ||
	    !same(adv_dump, 4 * PS, 13) || !same(adv_lock, 4 * PS, 14) ||
	    !same(adv_rand, 4 * PS, 15) || !same(adv_nohuge, 4 * PS, 16) ||
	    !same(adv_huge, 2ul << 20, 17))
		fail("advice: contents differ");
	want_flag(adv_fork, "dc", "MADV_DONTFORK region");
	want_flag(adv_wipe, "wf", "MADV_WIPEONFORK region");
	want_flag(adv_dump, "dd", "MADV_DONTDUMP region");
	want_flag(adv_lock, "lo", "mlock'd region");
	want_flag(adv_rand, "rr", "MADV_RANDOM region");
	want_flag(adv_nohuge, "nh", "MADV_NOHUGEPAGE region");
	want_flag(adv_huge, "hg", "MADV_HUGEPAGE region");
	/* And they act: a child has no DONTFORK region and a zeroed WIPEONFORK one. */
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		char perms[5];
		if (smaps_of(adv_fork, perms, NULL, NULL) >= 0)
			_exit(3);
		for (size_t i = 0; i < 4 * PS; i++)
			if (adv_wipe[i])
				_exit(4);
		_exit(0);
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("advice: a forked child saw a DONTFORK region or an unwiped WIPEONFORK one "
		     "(status %#x)",
		     st);
}

/* ---- split: one mapping cut in three by mprotect ------------------------ */

static char *split;

static void split_setup(void)
{
	split = map(16 * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fill(split, 16 * PS, 21);
	if (mprotect(split + 4 * PS, 4 * PS, PROT_READ))
		die("mprotect");
}

static void split_check(void)
{
	char perms[5];
	unsigned long end;

	if (!same(split, 16 * PS, 21))
		fail("split: contents differ");
	if (smaps_of(split, perms, NULL, &end) < 0 || strcmp(perms, "rw-p") ||
	    end != (unsigned long)(split + 4 * PS))
		fail("split: first part is not rw-p of 4 pages");
	if (smaps_of(split + 4 * PS, perms, NULL, &end) < 0 || strcmp(perms, "r--p") ||
	    end != (unsigned long)(split + 8 * PS))
		fail("split: middle part is not r--p of 4 pages");
	if (smaps_of(split + 8 * PS, perms, NULL, NULL) < 0 || strcmp(perms, "rw-p"))
		fail("split: last part is not rw-p");
}

/* ---- remap: a region moved by mremap ------------------------------------ */

static char *moved;

static void remap_setup(void)
{
	char *a = map(8 * PS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *hole = map(64 * PS, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	fill(a, 8 * PS, 31);
	/* Grow it into a place of its own: the tail is fresh zero pages. */
	moved = mremap(a, 8 * PS, 12 * PS, MREMAP_MAYMOVE | MREMAP_FIXED, hole + 16 * PS);
	if (moved == MAP_FAILED)
		die("mremap");
}

static void remap_check(void)
{
	if (!same(moved, 8 * PS, 31))
		fail("remap: contents differ");
	for (size_t i = 8 * PS; i < 12 * PS; i++)
		if (moved[i]) {
			fail("remap: the grown tail is not zero");
			break;
		}
}

/* ---- posixshm: shm_open'd memory, shared with the file ------------------ */

static char shm_name[64];
static char *shm;
#define SHM_LEN (64 * PS)

static void posixshm_setup(void)
{
	int fd;

	snprintf(shm_name, sizeof(shm_name), "/ckpt-memkinds-%d", (int)getpid());
	fd = shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || ftruncate(fd, SHM_LEN))
		die("shm_open");
	shm = map(SHM_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	fill(shm, SHM_LEN, 41);
}

static void posixshm_check(void)
{
	uint64_t v = 0xabcdef;
	int fd = shm_open(shm_name, O_RDWR, 0);

	if (fd < 0) {
		fail("posixshm: shm_open %s: %s", shm_name, strerror(errno));
		return;
	}
	if (!same(shm, SHM_LEN, 41))
		fail("posixshm: contents differ");
	/* The mapping is the object's: a write through it shows in the file. */
	memcpy(shm + 100 * 8, &v, 8);
	v = 0;
	if (pread(fd, &v, 8, 100 * 8) != 8 || v != 0xabcdef)
		fail("posixshm: the mapping is no longer the shm object's");
	close(fd);
	shm_unlink(shm_name);
}

/* ---- delshm: a POSIX shm object unlinked while open and mapped ---------- */
/* (Open MPI keeps its /dev/shm/open_mpi.0000 so; shm_open opens with
 * O_NOFOLLOW, which the fd's flags keep.) */

static int delshm_fd = -1;
static char *delshm;
#define DELSHM_LEN (8 * PS)

static void delshm_setup(void)
{
	char name[64];

	snprintf(name, sizeof(name), "/ckpt-memkinds-del-%d", (int)getpid());
	delshm_fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (delshm_fd < 0 || ftruncate(delshm_fd, DELSHM_LEN))
		die("shm_open");
	delshm = map(DELSHM_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, delshm_fd, 0);
	fill(delshm, DELSHM_LEN, 43);
	shm_unlink(name);
}

static void delshm_check(void)
{
	uint64_t v = 0x5eed, w = 0;
	struct stat sb;

	if (fstat(delshm_fd, &sb) || sb.st_nlink != 0 || sb.st_size != (off_t)DELSHM_LEN)
		fail("delshm: fd %d is not the unlinked object of %lu bytes", delshm_fd,
		     DELSHM_LEN);
	if (!same(delshm, DELSHM_LEN, 43))
		fail("delshm: contents differ");
	/* The fd and the mapping are still one object. */
	if (pwrite(delshm_fd, &v, 8, 3 * 8) != 8)
		fail("delshm: cannot write through fd %d: %s", delshm_fd, strerror(errno));
	memcpy(&w, delshm + 3 * 8, 8);
	if (w != v)
		fail("delshm: the mapping no longer shows what the fd writes");
}

/* ---- sharedanon: MAP_SHARED|MAP_ANONYMOUS ------------------------------- */

static char *sa;
#define SA_LEN (256 * PS)

static void sharedanon_setup(void)
{
	sa = map(SA_LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	/* Half of it touched, half left as holes. */
	fill(sa, SA_LEN / 2, 51);
}

static void sharedanon_check(void)
{
	pid_t pid;
	int st;

	if (!same(sa, SA_LEN / 2, 51))
		fail("sharedanon: contents differ");
	for (size_t i = SA_LEN / 2; i < SA_LEN; i++)
		if (sa[i]) {
			fail("sharedanon: an untouched page is not zero");
			break;
		}
	/* Still shared: what a child writes, the parent sees. */
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		sa[SA_LEN - 1] = 0x5a;
		_exit(0);
	}
	if (waitpid(pid, &st, 0) != pid || st || sa[SA_LEN - 1] != 0x5a)
		fail("sharedanon: a child's write did not reach the parent");
}

/* ---- memfd: an fd and a mapping of one memfd, sealed -------------------- */

static int mfd;
static char *mfd_map;
#define MFD_LEN (75 * PS + 123)

static void memfd_setup(void)
{
	char *buf = malloc(MFD_LEN + 8);

	mfd = memfd_create("ckpt-memkinds", MFD_ALLOW_SEALING);
	if (mfd < 0 || !buf)
		die("memfd_create");
	fill(buf, MFD_LEN + 8, 61);
	if (write(mfd, buf, MFD_LEN) != MFD_LEN)
		die("write memfd");
	free(buf);
	mfd_map = map(16 * PS, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 8 * PS);
	if (lseek(mfd, 1234, SEEK_SET) != 1234 ||
	    fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
		die("memfd seals");
}

static void memfd_check(void)
{
	char *buf = malloc(MFD_LEN + 8), link[256], path[64];
	struct stat sb;
	uint64_t v = 0x1234567;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
	n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (strncmp(link, "/memfd:ckpt-memkinds", 20))
		fail("memfd: fd %d is %s", mfd, link);
	if (lseek(mfd, 0, SEEK_CUR) != 1234)
		fail("memfd: offset is not 1234");
	if (fcntl(mfd, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_GROW))
		fail("memfd: seals are %#x", fcntl(mfd, F_GET_SEALS));
	if (fstat(mfd, &sb) || sb.st_size != MFD_LEN)
		fail("memfd: size %lld", (long long)sb.st_size);
	memset(buf, 0, MFD_LEN + 8);
	if (pread(mfd, buf, MFD_LEN, 0) != MFD_LEN || !same(buf, MFD_LEN & ~7ul, 61))
		fail("memfd: contents differ");
	if (memcmp(mfd_map, buf + 8 * PS, 16 * PS))
		fail("memfd: the mapping's contents differ");
	memcpy(mfd_map + 16, &v, 8);
	v = 0;
	if (pread(mfd, &v, 8, 8 * PS + 16) != 8 || v != 0x1234567)
		fail("memfd: the mapping is no longer the memfd's");
	free(buf);
}

/* ---- deleted: an open file that was unlinked ---------------------------- */

static int dfd;
#define DEL_LEN (10 * PS + 77)

static void deleted_setup(void)
{
	char path[4096], *buf = malloc(DEL_LEN + 8);

	snprintf(path, sizeof(path), "%s/deleted", dir);
	dfd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0640);
	if (dfd < 0 || !buf)
		die("open deleted");
	fill(buf, DEL_LEN + 8, 71);
	if (write(dfd, buf, DEL_LEN) != DEL_LEN || unlink(path))
		die("write deleted");
	if (lseek(dfd, 4321, SEEK_SET) != 4321)
		die("lseek");
	free(buf);
}

static void deleted_check(void)
{
	char *buf = malloc(DEL_LEN + 8), link[4096], path[64];
	struct stat sb;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", dfd);
	n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (n < 10 || strcmp(link + n - 10, " (deleted)"))
		fail("deleted: fd %d is %s", dfd, link);
	if (fstat(dfd, &sb) || sb.st_nlink != 0 || sb.st_size != DEL_LEN ||
	    (sb.st_mode & 0777) != 0640)
		fail("deleted: nlink %lu, size %lld, mode %o", (unsigned long)sb.st_nlink,
		     (long long)sb.st_size, sb.st_mode & 0777);
	if (lseek(dfd, 0, SEEK_CUR) != 4321)
		fail("deleted: offset is not 4321");
	if (!(fcntl(dfd, F_GETFL) & O_APPEND) || (fcntl(dfd, F_GETFL) & O_ACCMODE) != O_RDWR)
		fail("deleted: flags %#o", fcntl(dfd, F_GETFL));
	if (pread(dfd, buf, DEL_LEN, 0) != DEL_LEN || !same(buf, DEL_LEN & ~7ul, 71))
		fail("deleted: contents differ");
	free(buf);
}

/* ---- delmap: a shared mapping of a file unlinked and closed ------------- */

static char *dm;
#define DM_LEN (32 * PS)

static void delmap_setup(void)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/delmap", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, DM_LEN))
		die("open delmap");
	dm = map(DM_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	fill(dm, DM_LEN, 81);
	close(fd);
	if (unlink(path))
		die("unlink delmap");
}

static void delmap_check(void)
{
	if (!same(dm, DM_LEN, 81))
		fail("delmap: contents differ");
}

/* ---- sysvshm: a System V segment, attached, its id removed -------------- */

static char *sv, *sv2;
static int svid;
#define SV_LEN (40 * PS)

static void sysvshm_setup(void)
{
	svid = shmget(IPC_PRIVATE, SV_LEN, IPC_CREAT | 0600);
	if (svid < 0)
		die("shmget");
	sv = shmat(svid, NULL, 0);
	sv2 = shmat(svid, NULL, SHM_RDONLY);
	if (sv == (void *)-1 || sv2 == (void *)-1)
		die("shmat");
	fill(sv, SV_LEN / 2, 91);
	/* Gone from the namespace, alive while attached. */
	if (shmctl(svid, IPC_RMID, NULL))
		die("shmctl");
}

static void sysvshm_check(void)
{
	if (!same(sv, SV_LEN / 2, 91) || !same(sv2, SV_LEN / 2, 91))
		fail("sysvshm: contents differ");
	/* Both attachments are one segment. */
	sv[SV_LEN - 1] = 0x77;
	if (sv2[SV_LEN - 1] != 0x77)
		fail("sysvshm: the two attachments are not one segment");
}

/* ---- sysvkey: a System V segment by key, left for others to find ------- */

static char *sk;
static int skid;
#define SK_LEN (8 * PS)

/* The key: CKPT_SHM_KEY from the environment (the test picks one and
 * removes the segment in its teardown). */
static void sysvkey_setup(void)
{
	const char *k = getenv("CKPT_SHM_KEY");

	if (!k)
		die("CKPT_SHM_KEY is not set");
	skid = shmget((key_t)strtol(k, NULL, 0), SK_LEN, IPC_CREAT | IPC_EXCL | 0640);
	if (skid < 0)
		die("shmget by key");
	sk = shmat(skid, NULL, 0);
	if (sk == (void *)-1)
		die("shmat");
	fill(sk, SK_LEN, 101);
}

static void sysvkey_check(void)
{
	const char *k = getenv("CKPT_SHM_KEY");
	struct shmid_ds ds;
	int id = shmget((key_t)strtol(k, NULL, 0), 0, 0);

	if (!same(sk, SK_LEN, 101))
		fail("sysvkey: contents differ");
	if (id < 0 || shmctl(id, IPC_STAT, &ds) || ds.shm_segsz != SK_LEN ||
	    (ds.shm_perm.mode & 0777) != 0640)
		fail("sysvkey: the key does not name a segment of %lu bytes, mode 0640", SK_LEN);
	/* The key's segment is the one attached. */
	sk[0] ^= 1;
	{
		char *p = shmat(id, NULL, SHM_RDONLY);
		if (p == (void *)-1 || p[0] != sk[0])
			fail("sysvkey: the segment the key names is not the one attached");
		if (p != (void *)-1)
			shmdt(p);
	}
	sk[0] ^= 1;
}

/* ---- savedfile: a regular file open at an offset -------------------------- */

static int sfd;
#define SF_LEN (5 * PS + 300)

static void savedfile_setup(void)
{
	char path[4096], *buf = malloc(SF_LEN + 8);

	snprintf(path, sizeof(path), "%s/saved", dir);
	sfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0604);
	if (sfd < 0 || !buf)
		die("open saved");
	fill(buf, SF_LEN + 8, 121);
	if (write(sfd, buf, SF_LEN) != SF_LEN || lseek(sfd, 5000, SEEK_SET) != 5000)
		die("write saved");
	free(buf);
}

static void savedfile_check(void)
{
	char *buf = malloc(SF_LEN + 8);
	struct stat sb;

	if (lseek(sfd, 0, SEEK_CUR) != 5000)
		fail("savedfile: offset is not 5000");
	if (fstat(sfd, &sb) || sb.st_size != SF_LEN || sb.st_nlink != 1 ||
	    (sb.st_mode & 0777) != 0604)
		fail("savedfile: size %lld, links %lu, mode %o", (long long)sb.st_size,
		     (unsigned long)sb.st_nlink, sb.st_mode & 0777);
	if (pread(sfd, buf, SF_LEN, 0) != SF_LEN || !same(buf, SF_LEN & ~7ul, 121))
		fail("savedfile: contents differ");
	free(buf);
}

/* ---- ipc: a System V semaphore set and message queue ------------------- */

static int semid, msqid;
static const unsigned short sem_vals[3] = {5, 0, 7};
static const char *const msgs[3] = {"first", "", "the third message, longer than the others"};

struct msgbuf_ {
	long type;
	char text[256];
};

static void ipc_setup(void)
{
	struct sembuf ops[2] = {{0, 5, 0}, {2, 7, 0}};
	char path[4096];
	FILE *f;

	semid = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
	msqid = msgget(IPC_PRIVATE, IPC_CREAT | 0640);
	if (semid < 0 || msqid < 0 || semop(semid, ops, 2))
		die("semget/msgget/semop");
	for (int i = 0; i < 3; i++) {
		struct msgbuf_ m = {.type = i + 1};
		strcpy(m.text, msgs[i]);
		if (msgsnd(msqid, &m, strlen(msgs[i]), 0))
			die("msgsnd");
	}
	/* For the test's teardown. */
	snprintf(path, sizeof(path), "%s/ipc-ids", dir);
	f = fopen(path, "w");
	if (!f)
		die("ipc-ids");
	fprintf(f, "%d %d\n", semid, msqid);
	fclose(f);
}

static void ipc_check(void)
{
	unsigned short v[3];
	struct sembuf op = {2, -7, IPC_NOWAIT};

	if (semctl(semid, 0, GETALL, v) || memcmp(v, sem_vals, sizeof(v)))
		fail("ipc: semaphore values differ");
	if (semop(semid, &op, 1))
		fail("ipc: semop on the restored set: %s", strerror(errno));
	for (int i = 0; i < 3; i++) {
		struct msgbuf_ m;
		ssize_t n = msgrcv(msqid, &m, sizeof(m.text), 0, IPC_NOWAIT);
		if (n != (ssize_t)strlen(msgs[i]) || m.type != i + 1 || memcmp(m.text, msgs[i], n))
			fail("ipc: message %d differs (%zd bytes, type %ld)", i, n, m.type);
	}
	{
		struct msgbuf_ m;
		if (msgrcv(msqid, &m, sizeof(m.text), 0, IPC_NOWAIT) >= 0)
			fail("ipc: a message too many");
	}
	if (!failures) {
		semctl(semid, 0, IPC_RMID);
		msgctl(msqid, IPC_RMID, NULL);
	}
}

/* ---- sparse: 64 GiB of MAP_NORESERVE with 1 MiB touched ---------------- */

static char *sp;
#define SP_LEN (64ul << 30)
#define SP_STEP (SP_LEN / 256)

static void sparse_setup(void)
{
	sp = map(SP_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
		 0);
	for (size_t i = 0; i < 256; i++)
		fill(sp + i * SP_STEP, PS, 111 + i);
}

static void sparse_check(void)
{
	want_flag(sp, "nr", "the MAP_NORESERVE region");
	for (size_t i = 0; i < 256; i++)
		if (!same(sp + i * SP_STEP, PS, 111 + i) || sp[i * SP_STEP + PS] != 0) {
			fail("sparse: page %zu differs", i);
			break;
		}
}

/* ------------------------------------------------------------------------ */

static const struct kind {
	const char *name;
	void (*setup)(void), (*check)(void);
} kinds[] = {
    {"advice", advice_setup, advice_check},	     {"split", split_setup, split_check},
    {"remap", remap_setup, remap_check},	     {"posixshm", posixshm_setup, posixshm_check},
    {"sharedanon", sharedanon_setup, sharedanon_check}, {"memfd", memfd_setup, memfd_check},
    {"deleted", deleted_setup, deleted_check},	     {"delmap", delmap_setup, delmap_check},
    {"sysvshm", sysvshm_setup, sysvshm_check},	     {"sysvkey", sysvkey_setup, sysvkey_check},
    {"sparse", sparse_setup, sparse_check},	     {"savedfile", savedfile_setup, savedfile_check},
    {"ipc", ipc_setup, ipc_check},		     {"delshm", delshm_setup, delshm_check},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

int main(int argc, char **argv)
{
	int on[NKINDS] = {0}, any = 0;
	char go[4096];

	if (argc < 2) {
		fprintf(stderr, "usage: memkinds DIR [KIND...]\n");
		return 2;
	}
	dir = argv[1];
	for (int i = 2; i < argc; i++) {
		size_t k;
		for (k = 0; k < NKINDS && strcmp(argv[i], kinds[k].name); k++)
			;
		if (k == NKINDS) {
			fprintf(stderr, "memkinds: unknown kind %s\n", argv[i]);
			return 2;
		}
		on[k] = any = 1;
	}
	/* sysvkey only when asked for or given its key, sparse when asked. */
	if (!any)
		for (size_t k = 0; k < NKINDS; k++)
			on[k] = strcmp(kinds[k].name, "sparse") && strcmp(kinds[k].name, "ipc") &&
				(strcmp(kinds[k].name, "sysvkey") || getenv("CKPT_SHM_KEY"));
	for (size_t k = 0; k < NKINDS; k++)
		if (on[k])
			kinds[k].setup();
	snprintf(go, sizeof(go), "%s/go", dir);
	dprintf(1, "ready %d\n", (int)getpid());
	wait_file(go);
	for (size_t k = 0; k < NKINDS; k++)
		if (on[k])
			kinds[k].check();
	if (failures)
		return 1;
	printf("memkinds: ok\n");
	return 0;
}
