/* image.h: the image in memory, its writer and reader (the format is
 * format.h's, see ckpt-image(5)). */
#ifndef CKPT_IMAGE_H
#define CKPT_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base/crc32c.h"
#include "image/format.h"

/* Runs (and hashes) gathered from HASHES or REUSE records, in ascending
 * address order across records. */
struct run_list {
	struct img_run *runs;
	size_t nruns, cap;
	uint64_t npages;
	uint64_t (*h)[2]; /* HASHES: one per page */
	size_t hcap;
	uint64_t end; /* where the last run ended */
};

/* The structs below hold a record each.  Their member d is the record's
 * fixed part exactly as it is on disk (format.h): the writer writes it
 * as it is, the reader fills it with one memcpy, and its lengths and
 * counts size the variable part that follows it in the record (a path,
 * a name, extra bytes).  The members after d are that variable part,
 * decoded, and what the writer or a reader keeps beside it; they are
 * not in the image. */

/* An incremental image's PARENT record, and what a reader counted of its
 * HASHES and REUSE records. */
struct parent {
	struct img_parent d;
	char *path;
	/* What a reader counted in HASHES and REUSE records (ckpt-inspect). */
	uint64_t hashed, reused;
	uint64_t hash_end, reuse_end; /* where the last run of each ended */
	char *chain;		      /* ckpt-inspect: the chain as incr_print_chain wrote it */
	struct run_list *reuse_runs; /* ckpt-inspect: the REUSE runs read */
};

/* In memory: one process's metadata, as dumped or as read back. */
struct region {
	struct img_region d;
	char *path;
	uint64_t stored; /* pages of data in the image (reader: counted by ckpt-inspect) */
	int all_pages;	 /* dumper: store every page, present or not (see dump.c) */
	int tmpfs;	 /* dumper: kind shm, a file on tmpfs mapped shared (IMG_SHM_TMPFS) */
};

struct fd_entry {
	struct img_file d;
	char *path;
	unsigned char *extra; /* d.extra_len bytes */
	int inherit;	      /* not in the image: 1 + the restoring process's fd that
			       * stands for this one (ckpt-remap --inherit-fd), 0 none */
};

struct shm_obj {
	struct img_shm d;
	char *name;
	struct img_shm_tmpfs tmpfs; /* IMG_SHM_TMPFS: what follows the name */
	int32_t pid;		    /* reader: the process whose SHM record it is */
	int by_file; /* dumper: size and mode read from the file, not a mapping's reach */
	uint64_t stored; /* pages of data in the image (reader: counted by ckpt-inspect) */
};

#define IMG_MAX_SHMS 65536

struct thread {
	struct img_thread d;
	unsigned char *xstate;
};

struct sigqueue {
	struct img_sigqueue d;
	unsigned char *info; /* d.count siginfo_t */
};

/* An ATTRS record: the process's attributes, each thread's, its seccomp
 * filters (attrs.c). */
struct seccomp_filter {
	struct img_seccomp_filter d;
	unsigned char *insns; /* d.len struct sock_filter */
};

struct attrs {
	struct img_attrs d;
	struct img_attrs_thread *threads; /* d.nthreads */
	struct seccomp_filter *filters;	  /* d.nfilters, the first installed first */
};

struct img_writer;
struct image;
int img_write_attrs(struct img_writer *w, const struct attrs *a);
/* Parse an ATTRS record into im->attrs (its PROC record read already). */
int img_parse_attrs(struct image *im, const void *buf, uint64_t len);
void img_attrs_free(struct attrs *a);
/* "RLIMIT_NOFILE" for RLIMIT_NOFILE (7), "?" beyond IMG_NRLIMIT. */
const char *img_rlimit_name(int k);
/* "SCHED_FIFO" for SCHED_FIFO (SCHED_RESET_ON_FORK aside), "?" for others. */
const char *img_policy_name(int policy);

/* Threads an image may hold. */
#define IMG_MAX_THREADS 4096

struct image {
	struct img_header hdr;
	struct img_proc proc;
	char *exe, *cwd, *cmdline;
	uint64_t *auxv;
	struct thread *threads; /* threads[0] is the main thread (tid == pid) */
	size_t nthreads;
	struct img_sigact sigacts[IMG_NSIG];
	struct sigqueue *sigq; /* pending signals, per thread or shared */
	size_t nsigq;
	struct img_timers timers;
	struct img_ptimer *ptimers;
	struct region *regions;
	size_t nregions;
	struct fd_entry *files;
	size_t nfiles;
	struct shm_obj *shms; /* each SHM record, in stream order */
	size_t nshms;
	struct ipc_obj {
		struct img_ipc d;
		unsigned char *data;
	} *ipcs;
	size_t nipcs;
	struct ns_rec {
		struct img_ns d;
		char *uid_map, *gid_map, *cgroup; /* NUL-terminated */
		struct img_timens *timens; /* TIMENS record: own has the time namespace */
		int32_t *pids; /* npids: its pid below the tree's pid namespace, outermost first */
		struct mnt_step {
			struct img_mount d;
			char *path, *src;    /* NUL-terminated */
			unsigned char *data; /* FILE: d.size bytes */
		} *mounts; /* MOUNTS record: own has the mount namespace */
		size_t nmounts;
		int have_mounts;
	} *ns; /* NS record, or NULL: the namespaces and cgroup the tree started in */
	struct parent *parent; /* PARENT record: an incremental image (incr/) */
	struct attrs *attrs;   /* ATTRS record, or NULL: none (an older image) */
	struct img_cpu *cpu;   /* CPU record, or NULL: none (an older image) */
	struct img_track *track; /* TRACK record, or NULL: none (ckpt-dump --track) */
	struct live_rec *live;	 /* LIVE record, or NULL: none (ckpt-dump --live) */
};
/* The LIVE record (live.c): the pages of a live stream's image that its
 * pre-copy gives. */
struct live_rec {
	struct img_live d;
	struct img_run *runs;
	int tracker; /* ckpt-dump: the tracker's fd in the program (not written) */
};
int img_parse_live(struct image *im, const void *buf, uint64_t len);
int img_write_live(struct img_writer *w, const struct live_rec *l);
void img_live_free(struct live_rec *l);
/* The MOUNTS record (mounts.c): read into n, written, freed. */
int img_parse_mounts(struct ns_rec *n, const char *buf, uint64_t len);
int img_write_mounts(struct img_writer *w, const struct ns_rec *n);
void img_mounts_free(struct ns_rec *n);
/* The SHM object a region or fd of kind shm names, or NULL. */
struct shm_obj *img_find_shm(const struct image *im, uint64_t dev, uint64_t ino);
/* The region that holds addr, or NULL. */
struct region *img_find_region(const struct image *im, uint64_t addr);
/* Every distinct SHM object of the processes procs[0..n) (one dev and ino: one object, however
 * many processes have it), in order of first appearance, as SHMDATA records number them: *objs
 * gets each one's first SHM record (*nobjs of them), *number the number of every SHM record's
 * object, procs[0]'s records first.  Both malloc'd; -1 (err_set) if out of memory. */
int img_list_objects(struct image *const procs[], size_t n, struct shm_obj ***objs, size_t *nobjs,
		     uint64_t **number) __attribute__((warn_unused_result));

void image_free(struct image *im);
/* cpu.c: this CPU's feature words (the CPU record of an image it dumps). */
void img_cpu_here(struct img_cpu *c);
/* "AVX2, AVX-512F" for the features has has and lacks (NULL: none) lacks,
 * into buf; returns how many. */
size_t img_cpu_names(const struct img_cpu *has, const struct img_cpu *lacks, char *buf,
		     size_t size);
/* The CPU record's payload into im->cpu; -1 (err_set) if malformed. */
int img_parse_cpu(struct image *im, const void *buf, uint64_t len)
    __attribute__((warn_unused_result));
void img_parent_free(struct parent *p);
void run_list_free(struct run_list *l);
const char *img_kind_name(uint32_t kind);
const char *img_shm_kind_name(uint32_t kind);
/* Whether path may name a tmpfs file a restore makes (IMG_SHM_TMPFS):
 * absolute, without empty, "." or ".." components. */
int img_tmpfs_path_ok(const char *path);
/* "user", "mnt", "pid", "net", "uts", "ipc", "cgroup", "time" (IMG_NS_*). */
const char *img_ns_name(int type);
/* Whether a checksum computed (got) differs from the one read (want). */
int img_crc_bad(uint32_t got, uint32_t want);
/* Whether region d's pages come last in lazy order (IMG_PROC_LAZY_ORDER):
 * a large private anonymous region that ckpt-remap --lazy from a stream
 * fills on a fault (userfaultfd); every other one's come first. */
int img_lazy_late(const struct img_region *d);

/* Writing. */
struct img_writer {
	int fd;
	uint64_t off;	 /* stream offset */
	uint64_t nrec;	 /* records written */
	uint64_t npages; /* pages written */
	/* Told at each record written by the kinds' writers (shm_write):
	 * the offset, and 0 for an unknown total. */
	void (*progress)(uint64_t off, uint64_t total, void *arg);
	void *progress_arg;
	/* When set (by a signal handler), a write interrupted by a signal
	 * fails instead of being retried: a stuck reader cannot hold us. */
	volatile int *cancel;
};

void img_header_init(struct img_header *h);
int img_write_header(struct img_writer *w, struct img_header *h);
int img_write_rec(struct img_writer *w, uint32_t type, const struct iovec *iov, int iovcnt);
/* A record of a fixed part d and its variable tail, the shape of most. */
int img_write_rec_tail(struct img_writer *w, uint32_t type, const void *d, size_t dlen,
		       const void *tail, size_t tail_len);
int img_write_meta(struct img_writer *w, const struct image *im);
int img_write_pages(struct img_writer *w, const struct img_run *runs, uint32_t nruns,
		    const void *data, uint64_t npages);
/* The same, data_crc = img_crc(0, data, npages pages) known already. */
int img_write_pages_crc(struct img_writer *w, const struct img_run *runs, uint32_t nruns,
			const void *data, uint64_t npages, uint32_t data_crc);
/* The same for the contents of object shm (runs are offsets in it). */
/* A PAGES record without its data (data_crc 0: IMG_HDR_NO_DATA_CRC),
 * counted as written whole: the caller writes its npages pages of data
 * to w->fd itself, next (ckpt-dump --splice). */
int img_write_pages_head(struct img_writer *w, const struct img_run *runs, uint32_t nruns,
			 uint64_t npages) __attribute__((warn_unused_result));
int img_write_shmdata(struct img_writer *w, uint64_t shm, const struct img_run *runs,
		      uint32_t nruns, const void *data, uint64_t npages);
int img_write_end(struct img_writer *w);

/* Reading, in one pass (a pipe is fine). */
struct img_reader {
	int fd;
	uint64_t off;
	uint64_t nrec;
	uint64_t npages;
	uint32_t page_size;
	uint32_t hdr_flags; /* the header's IMG_HDR_* */
	/* 1 + an fd that gets a copy of every byte read (img_verify_rest), or 0. */
	int tee;
	/* Called on each FILE record as it is read, to check what only the
	 * fd's kind knows (its extra bytes): image/ does not know the kinds,
	 * kinds/ does (img_open sets fd_check_file).  So a bad one is refused
	 * where it stands, before the records after it are read. */
	int (*check_file)(const struct fd_entry *f, size_t idx);
};

int img_read_header(struct img_reader *r, struct img_header *h, const void *prefix,
		    size_t prefix_len);
/* The next record: header and payload (malloc'd into *payload, caller frees).
 * For PAGES and SHMDATA, the payload is the descriptor (struct img_pages,
 * or img_shmdata) and runs only; the data must then be consumed with
 * img_read_data or img_skip_data.  Checks the CRC. */
int img_read_rec(struct img_reader *r, struct img_rec *rec, void **payload);
/* The same in two steps: the header alone, then the rest. */
int img_read_rec_hdr(struct img_reader *r, struct img_rec *rec);
int img_read_rec_body(struct img_reader *r, struct img_rec *rec, void **payload);
/* Read records one by one, each handed to each() with its payload, which
 * is freed when each() returns (a PAGES or SHMDATA record's data each()
 * must read or skip).  each() returns 0 for the next record, 1 when the
 * record it took was the last (END, or DATA), -1 to stop on an error
 * (err_set).  0 after the last record, else -1. */
typedef int img_rec_fn(void *arg, const struct img_rec *rec, void *payload);
int img_read_each(struct img_reader *r, img_rec_fn *each, void *arg)
    __attribute__((warn_unused_result));
/* The runs of a PAGES or SHMDATA payload. */
struct img_run *img_runs(uint32_t type, void *payload);
int img_read_data(struct img_reader *r, const struct img_pages *p, void *buf, size_t len,
		  uint32_t *crc);
int img_skip_data(struct img_reader *r, const struct img_pages *p, uint32_t *crc);
/* Pass over a record's data unread where the image is a file (a seek),
 * so unchecked: for a reader that wants none of it (a dump's --parent).
 * Anything else is read and checked, as img_skip_data does. */
int img_pass_data(struct img_reader *r, const struct img_pages *p);
/* After a record's data is read, crc its CRC: count its pages, and check
 * it (the message names who, if not NULL). */
int img_data_end(struct img_reader *r, const struct img_pages *p, uint32_t crc, const char *who);
/* Read the data of a PAGES or SHMDATA record p (run: its runs) run by
 * run, in chunks of at most max pages, each into *buf (each() may point
 * *buf elsewhere for the next), and hand each() every chunk: its address
 * (or offset), its pages and its CRC.  Then img_data_end. */
typedef int img_chunk_fn(void *arg, uint64_t addr, uint64_t n, uint32_t crc);
int img_read_chunks(struct img_reader *r, const struct img_pages *p, const struct img_run *run,
		    unsigned char **buf, uint64_t max, img_chunk_fn *each, void *arg,
		    const char *who) __attribute__((warn_unused_result));
/* Header and every metadata record up to and including DATA, validated. */
int img_read_meta(struct img_reader *r, struct image *im, const void *prefix, size_t prefix_len);
/* The next process's metadata records, up to and including DATA (im->hdr
 * is the caller's to set). */
int img_read_proc(struct img_reader *r, struct image *im);
/* The processes of a tree must form one: distinct pids and tids, each
 * process's parent before it in the stream (the first is the root), no
 * children of a zombie. */
int img_check_tree(const struct image *procs[], size_t n);
/* An image being read: from a file or stdin, through a decompressor
 * process when it is compressed (gzip, xz, zstd; told by magic). */
struct img_input {
	struct img_reader r;
	struct image im; /* the first process: the root of a tree */
	struct image *rest; /* a tree: the other processes, in stream order */
	size_t nrest;
	/* Every distinct SHM object of the stream (by dev and ino), in order
	 * of first appearance: SHMDATA records number them so. */
	struct shm_obj **objs;
	size_t nobjs;
	int from_stdin; /* the image came on fd 0 */
	int compressed; /* a decompressor process feeds r.fd */
	int status_fd;	/* its status pipe (see zio_spawn_decompressor), or -1 */
	/* img_open_as: the image, and every parent of its chain, must be
	 * one that root wrote (imgopen.c, ckpt(7) SECURITY). */
	int trust;
	/* A live stream (ckpt-dump --live): its pre-copied areas, each
	 * staged in this process's memory (live.c). */
	struct img_stage {
		uint64_t start, end; /* the program's addresses */
		unsigned char *mem;  /* its pages here, end - start bytes */
	} *stage;
	size_t nstage;
	uint64_t staged; /* pages the PRECOPY records held */
};

/* Whether s (len bytes: a cgroup, a mount's path) is not an absolute path
 * shorter than PATH_MAX without NUL, "." or ".." components. */
int img_bad_path(const char *s, uint32_t len);
/* Process k of the stream (0 is in->im). */
struct image *img_proc_at(struct img_input *in, size_t k);
/* Open path ("-" or NULL for stdin) and read every metadata record (of
 * every process of a tree). */
int img_open(const char *path, struct img_input *in) __attribute__((warn_unused_result));
/* The same, but an incremental image's stream is its own (incr.h). */
int img_open_one(const char *path, struct img_input *in) __attribute__((warn_unused_result));
/* img_open for a restore as root (trust 1): the opened file (standard
 * input too) must be a regular file that root owns and only root may
 * write, every process it holds root's, and so must every parent of its
 * chain; refused (err_set naming the file and its owner) otherwise,
 * before anything the image names is opened. */
int img_open_as(const char *path, struct img_input *in, int trust)
    __attribute__((warn_unused_result));
/* A parent image the chain names: opened without following a symlink in
 * its last component and without waiting (a FIFO), a regular file only,
 * under the rule of trust; with merge, its own chain attached (img_open). */
int img_open_parent(const char *path, struct img_input *in, int merge, int trust)
    __attribute__((warn_unused_result));
/* After IMG_LIVE_MAGIC on fd: read the PRECOPY records into staging
 * memory (in->stage) up to the image's own magic, whose first bytes go to
 * next (*n of them, at most sizeof(struct img_header)). */
int img_live_receive(int fd, const char *path, struct img_input *in, unsigned char *next,
		     ssize_t *n) __attribute__((warn_unused_result));
void img_stage_free(struct img_input *in);
/* Free what img_open read (not the fds). */
void img_input_free(struct img_input *in);
/* Close the stream (not standard input) and the status pipe, and free
 * what img_open read. */
void img_input_close(struct img_input *in);
/* Wait for the decompressor, if any, to finish: -1 (err_set with its
 * reason) if it failed. */
int img_input_status(struct img_input *in) __attribute__((warn_unused_result));
/* After END: nothing may follow it (in the file, or in the pipe until its
 * writer closes it; in a decompressed stream, until the decompressor
 * ends), and the decompressor must have succeeded (a cut trailer shows
 * only there).  img_open refuses a file with bytes after END already. */
int img_input_end(struct img_input *in) __attribute__((warn_unused_result));
/* After a read error: stop the decompressor, and if it failed, make its
 * reason the message (it names the cause better than "truncated"). */
void img_input_fail(struct img_input *in);

/* Check an END record against what the reader counted. */
int img_check_end(struct img_reader *r, const struct img_rec *rec, const struct img_end *e);

#endif
