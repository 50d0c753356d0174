/* mounts.c: a mount namespace of its own made again (the MOUNTS record).
 *
 * The process that made it (the first of the tree in it) unshares
 * CLONE_NEWNS, which copies ckpt-remap's mounts, makes every one a slave
 * (so that nothing it does reaches the namespace it came from, where the
 * copy is shared with it), then takes the recorded steps in order:
 * unmounts, each kept mount's propagation and flags, each new tmpfs with
 * its files, bind mount and proc.  A proc of a pid namespace below its own
 * is mounted by that namespace's init (a proc shows the pid namespace of
 * the process that mounts it), in the restorer, once every process of the
 * tree is ready: it covers the /proc the others read until then. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "restore/restore.h"

unsigned long rst_mnt_flags(uint32_t f)
{
	return ((f & IMG_MNTF_RDONLY) ? MS_RDONLY : 0) | ((f & IMG_MNTF_NOSUID) ? MS_NOSUID : 0) |
	       ((f & IMG_MNTF_NODEV) ? MS_NODEV : 0) | ((f & IMG_MNTF_NOEXEC) ? MS_NOEXEC : 0) |
	       ((f & IMG_MNTF_NOATIME) ? MS_NOATIME : 0) |
	       ((f & IMG_MNTF_NODIRATIME) ? MS_NODIRATIME : 0) |
	       ((f & IMG_MNTF_RELATIME) ? MS_RELATIME : 0);
}

/* Its propagation, as mountinfo showed it: everything is a slave already. */
static int propagation(const char *path, uint32_t f)
{
	if ((f & IMG_MNTF_PRIVATE) && mount(NULL, path, NULL, MS_PRIVATE, NULL))
		return -1;
	if ((f & IMG_MNTF_UNBINDABLE) && mount(NULL, path, NULL, MS_UNBINDABLE, NULL))
		return -1;
	if ((f & IMG_MNTF_SHARED) && mount(NULL, path, NULL, MS_SHARED, NULL))
		return -1;
	return 0;
}

static int put_file(const struct mnt_step *m)
{
	int fd = open(m->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0 || write_all(fd, m->data, m->d.size) || fchmod(fd, m->d.mode)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return close(fd);
}

static int step(const struct mnt_step *m)
{
	char opts[64];

	switch (m->d.op) {
	case IMG_MNT_UMOUNT:
		return umount2(m->path, MNT_DETACH);
	case IMG_MNT_KEEP:
		/* A mount of ckpt-remap's namespace gone since the dump (ENOENT:
		 * its mount point too, as `ip netns delete` leaves it; EINVAL:
		 * no mount there) is not in the copy either: nothing to set. */
		if ((m->d.flags & IMG_MNTF_REMOUNT) &&
		    mount(NULL, m->path, NULL, MS_REMOUNT | MS_BIND | rst_mnt_flags(m->d.flags), NULL))
			return errno == ENOENT ? 0 : -1;
		if (propagation(m->path, m->d.flags))
			return errno == ENOENT || (errno == EINVAL && !(m->d.flags & IMG_MNTF_REMOUNT))
				   ? 0
				   : -1;
		return 0;
	case IMG_MNT_TMPFS:
		if (m->d.size)
			snprintf(opts, sizeof(opts), "size=%llu,mode=%o",
				 (unsigned long long)m->d.size, m->d.mode);
		else
			snprintf(opts, sizeof(opts), "mode=%o", m->d.mode);
		if (mount("tmpfs", m->path, "tmpfs", rst_mnt_flags(m->d.flags), opts))
			return -1;
		return propagation(m->path, m->d.flags);
	case IMG_MNT_BIND:
		if (mount(m->src, m->path, NULL, MS_BIND, NULL))
			return -1;
		/* A read-only bind is made read-only after; the flags it keeps
		 * from its source (locked in a user namespace) go with it. */
		if ((m->d.flags & IMG_MNTF_RDONLY) &&
		    mount(NULL, m->path, NULL, MS_REMOUNT | MS_BIND | rst_mnt_flags(m->d.flags), NULL))
			return -1;
		return propagation(m->path, m->d.flags);
	case IMG_MNT_PROC:
		if (mount("proc", m->path, "proc", rst_mnt_flags(m->d.flags) & ~MS_RDONLY, NULL))
			return -1;
		return propagation(m->path, m->d.flags);
	case IMG_MNT_DIR:
		return mkdir(m->path, 0700) || chmod(m->path, m->d.mode) ? -1 : 0;
	case IMG_MNT_FILE:
		return put_file(m);
	case IMG_MNT_LINK:
		return symlink(m->src, m->path);
	}
	errno = EINVAL;
	return -1;
}

static const char *const op_name[IMG_MNT_NOPS] = {
    [IMG_MNT_KEEP] = "set the propagation and flags of",
    [IMG_MNT_UMOUNT] = "unmount",
    [IMG_MNT_TMPFS] = "mount a tmpfs on",
    [IMG_MNT_BIND] = "bind mount",
    [IMG_MNT_PROC] = "mount a proc on",
    [IMG_MNT_DIR] = "make the directory",
    [IMG_MNT_FILE] = "make the file",
    [IMG_MNT_LINK] = "make the symlink"};

int rst_mnt_make(pid_t pid, const struct ns_rec *n, uint64_t pidns)
{
	/* In a copy of ckpt-remap's namespace made by root, a shared mount
	 * is still in its peer group: a slave first, so nothing leaks out. */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL)) {
		err_sys("pid %d: cannot make the mounts of its new mount namespace slaves", pid);
		return -1;
	}
	for (size_t i = 0; i < n->nmounts; i++) {
		const struct mnt_step *m = &n->mounts[i];

		if (m->d.op == IMG_MNT_PROC && m->d.pidns != pidns)
			continue;
		if (step(m)) {
			if (m->d.op == IMG_MNT_BIND)
				err_sys("pid %d: cannot bind mount %s on %s", pid, m->src, m->path);
			else
				err_sys("pid %d: cannot %s %s in its mount namespace", pid,
					op_name[m->d.op], m->path);
			return -1;
		}
	}
	return 0;
}
