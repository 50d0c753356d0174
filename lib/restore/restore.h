/* restore.h: rebuild a process from an image, in this process. */
#ifndef CKPT_RESTORE_H
#define CKPT_RESTORE_H

#include "image/image.h"

#define RST_PROGRESS 1
#define RST_KEEP_TIDS 2 /* give the threads their old tids where free */
#define RST_FORCE_CPU 4 /* go on despite XSAVE features this CPU lacks (a warning) */
#define RST_ALLOW_CHANGED 0x100 /* reopen files changed since the dump (a warning each) */
#define RST_LAZY 0x200 /* map page data from the image file (an uncompressed file) */
#define RST_STOP 0x400 /* leave the program stopped (SIGSTOP) before its first instruction */
#define RST_NET_NS 0x2000 /* in a new net namespace, lo up (ckpt-remap --net-ns) */

/* How the restored process gets its pid. */
enum rst_pids {
	RST_PIDS_AUTO, /* its old pid if this process may ask for it (and it is
			  free), as a child that ckpt-remap supervises; else NEW */
	RST_PIDS_NEW,  /* ckpt-remap's own: it becomes the process */
	RST_PIDS_NS,   /* its old pid in a new user and pid namespace */
};

/* Restore as pids says.  Returns -1 (err_set) on a failure before the
 * point of no return; otherwise it does not return: this process becomes
 * the program, or supervises it and exits as it exits. */
int rst_run(struct img_input *in, int flags, enum rst_pids pids) __attribute__((warn_unused_result));
/* Whether restoring the image changes something outside the new process
 * before its page data is read (after the point of no return): a saved
 * file put back, a System V object taken back, bytes put into a FIFO.
 * Such an image is verified whole first (img_verify_rest). */
int rst_changes_host(struct img_input *in);
/* ns.c: whether the namespaces and cgroups of every process of the image
 * can be made again here (userns: the restore runs in a user namespace of
 * its own, ckpt-remap --pid-ns), checked before anything is made; -1
 * (err_set naming the pid) if not. */
int rst_ns_check(struct img_input *in, int userns) __attribute__((warn_unused_result));
/* In the process about to become process k of the stream, forked and
 * before its children: its new namespaces, and its cgroup. */
int rst_ns_enter(struct img_input *in, size_t k) __attribute__((warn_unused_result));
/* Process k's pids for clone3's set_tid, innermost first (its pid in each
 * pid namespace below the tree's, then the tree's pid): how many, into
 * ids (IMG_NS_MAX_PIDS + 1 of them); *newpid CLONE_NEWPID when its pid
 * namespace is not its parent's, else 0. */
size_t rst_ns_pids(struct img_input *in, size_t k, pid_t *ids, uint64_t *newpid);
/* Whether process k, in a pid namespace below the tree's, is left in the
 * process group it inherits (its parent's, which it cannot name). */
int rst_ns_inherits_group(struct img_input *in, size_t k);
/* ckpt-remap --net-ns (ns.c): whether every fd of the image can be made in
 * a new net namespace with lo alone, checked before anything is made (-1,
 * err_set naming the pid and fd); making it, with lo up, in this process
 * (which holds CAP_SYS_ADMIN in its user namespace). */
/* The steps of n's MOUNTS record in the new mount namespace it made
 * (mounts.c), but a proc of a pid namespace other than its own (pidns, its
 * inode at dump); -1 (err_set). */
int rst_mnt_make(pid_t pid, const struct ns_rec *n, uint64_t pidns)
	__attribute__((warn_unused_result));
/* The MS_* flags of IMG_MNTF_* flags. */
unsigned long rst_mnt_flags(uint32_t f);
/* The proc step process k, the init of a pid namespace below the tree's
 * in a mount namespace its parent made, mounts last, or NULL. */
const struct mnt_step *rst_ns_late_proc(struct img_input *in, size_t k);
int rst_net_ns_check(struct img_input *in) __attribute__((warn_unused_result));
int rst_net_ns_enter(void) __attribute__((warn_unused_result));

struct shm_made;
struct fd_pipes;

/* One process of a tree: what the tree's supervisor made for it, and its
 * two ends of the pipes it talks to the supervisor through (see
 * restorer.h, struct rst_token). */
struct rst_tree {
	const int *premade;	     /* per FILE record: an fd made already, or -1 */
	const struct shm_made *sm; /* its SHM objects, made already */
	int cmd_fd, rep_fd;
	const struct mnt_step *late_proc; /* rst_ns_late_proc, or NULL */
};

/* Check everything that can be checked, set up files, cwd and signals, and
 * jump into the restorer.  Returns (-1, err_set) only while the point of no
 * return is still ahead; after it, the program runs or the restorer exits
 * with CKPT_FAIL_RC.  tree: in->im is one process of a tree. */
int rst_restore(struct img_input *in, int flags, const struct rst_tree *tree)
	__attribute__((warn_unused_result));

/* Every file the image maps (but those it, or the stream tree if not
 * NULL, holds) is there and unchanged, or -1 naming the first that is
 * not: a tree's supervisor asks before it makes the tree's objects, each
 * process again as it restores. */
int rst_precheck_maps(const struct image *im, const struct img_input *tree)
	__attribute__((warn_unused_result));
/* What the image's memory needs of this kernel and machine (guard pages,
 * huge pages) is there: -1 with err_set naming the region if not. */
int rst_check_memory(const struct image *im) __attribute__((warn_unused_result));

/* The huge pages every process and object of the image needs (hugetlbfs
 * memory) are free here: -1 with err_set naming the first that is not. */
int rst_check_hugetlb(struct img_input *in) __attribute__((warn_unused_result));

/* An executable that no path leads to ("/memfd:NAME (deleted)" after
 * fexecve, a deleted file): a read-only fd of the object made for it (the
 * mapping of it that may execute), for /proc/PID/exe; -1 if none. */
struct shm_made;
int rst_exe_object(const struct image *im, const struct shm_made *sm);

/* --lazy can map page data from in: an uncompressed image file that starts
 * at offset 0.  -1 with err_set if not. */
int rst_check_lazy(const struct img_input *in) __attribute__((warn_unused_result));
/* --lazy from a compressed image or a stream (lazy.c): whether in is one,
 * whether it can be (an image in lazy order, a userfaultfd that serves
 * faults in system calls too), and the filler started: a process of its
 * own that fills the regions the restorer registers on *uffd with what the
 * restorer hands it on *lazy_fd (both above base). */
int rst_lazy_stream(const struct img_input *in);
int rst_lazy_check(const struct img_input *in) __attribute__((warn_unused_result));
struct rst_map;
int rst_lazy_start(struct img_input *in, const struct rst_map *maps, size_t nmaps, int base,
		   int *uffd, int *lazy_fd) __attribute__((warn_unused_result));

/* ckpt-remap --inherit-fd fd=ours: the program's fd `fd`, in every process
 * of the image that has it, and every fd that shares its open file
 * description, will be a duplicate of our fd `ours`.  -1 with err_set if
 * no process has that fd or ours is not open. */
int rst_inherit_fd(struct img_input *in, int fd, int ours) __attribute__((warn_unused_result));
/* ckpt-remap --inherit-fd peer:token=ours: the same for the fd that is
 * the end of that connection to another member (IMG_FD_PEER, its 32-digit
 * token), whichever process of the tree holds it at whatever number. */
int rst_inherit_peer(struct img_input *in, const char *token, int ours)
	__attribute__((warn_unused_result));
/* elsewhere.c: ckpt-remap --path-map OLD=NEW: every path the image's
 * processes reopen (their cwd, executable, mapped files, files reopened by
 * path, saved and deleted files made again) that is OLD or under it is
 * looked for under NEW instead.  -1 with err_set if arg is not OLD=NEW. */
int rst_path_map(struct img_input *in, const char *arg) __attribute__((warn_unused_result));
/* --setenv NAME=VALUE (set 1), --unsetenv NAME (set 0): a change of every
 * restored process's environment, kept for rst_restore; -1 (err_set) if
 * arg is not of that form. */
int rst_env_edit(const char *arg, int set) __attribute__((warn_unused_result));
/* The changes, packed for the restorer (restorer.h, env_edits). */
uint64_t rst_env_len(void);
const void *rst_env_edits(void);
/* Where im's environ variable is (the executable's, or a library's, as
 * the dynamic linker binds it): *addr; 0 without changes.  -1 (err_set,
 * naming the pid) if there are changes and none was found. */
int rst_env_find(const struct image *im, uint64_t *addr) __attribute__((warn_unused_result));
/* A process that supervises the restored ones: close the fds that
 * --inherit-fd gave them, so that they alone hold them (a reader of one
 * sees end of file when the program closes it). */
void rst_close_inherited(struct img_input *in);

/* Make the file of f again: an fd (close-on-exec) at any number; -1 with
 * err_set; RST_FD_KEEP for a standard stream the restoring process's own
 * stands for (the fd at f's number is kept). */
#define RST_FD_KEEP (-2)
int rst_make_fd(const struct img_input *in, const struct image *im, const struct fd_entry *f,
		struct fd_pipes *pipes, const struct shm_made *sm, int allow_changed)
	__attribute__((warn_unused_result));
/* f is a file of /proc/PID held open: the process reopens it itself, as
 * its own, once the tree's processes exist (none is made beforehand). */
int rst_proc_file(const struct fd_entry *f);

/* A process's attributes (attrs.c): refused by name before anything is
 * touched (check); set in the restoring process where they outlive the
 * restorer (set, the last step that may fail); the rest handed to the
 * restorer in its blob at base + *off, rst_attrs_len bytes (plan).  All
 * do nothing for an image without an ATTRS record. */
struct rst_args;
int rst_attrs_check(const struct image *im) __attribute__((warn_unused_result));
int rst_attrs_set(const struct image *im) __attribute__((warn_unused_result));
uint64_t rst_attrs_len(const struct image *im);
int rst_attrs_plan(const struct image *im, struct rst_args *args, unsigned char *base,
		   uint64_t *off) __attribute__((warn_unused_result));

#endif
