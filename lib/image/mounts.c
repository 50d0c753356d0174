/* mounts.c: the MOUNTS record, how a mount namespace of its own differs
 * from the tree's (format.h), written and read back; the reader refuses
 * steps a dump does not write. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "image/image.h"

_Static_assert(sizeof(struct img_mount) == 40, "img_mount layout");

#define PAD8(n) (((n) + 7) & ~(uint64_t)7)

void img_mounts_free(struct ns_rec *n)
{
	for (size_t i = 0; i < n->nmounts; i++) {
		free(n->mounts[i].path);
		free(n->mounts[i].src);
		free(n->mounts[i].data);
	}
	free(n->mounts);
	n->mounts = NULL;
	n->nmounts = 0;
}

int img_write_mounts(struct img_writer *w, const struct ns_rec *n)
{
	struct img_mounts h = {.n = (uint32_t)n->nmounts};
	uint64_t len = sizeof(h), off;
	unsigned char *buf;
	struct iovec v;
	int rc;

	for (size_t i = 0; i < n->nmounts; i++)
		len += PAD8(sizeof(struct img_mount) + n->mounts[i].d.path_len +
			    n->mounts[i].d.src_len +
			    (n->mounts[i].d.op == IMG_MNT_FILE ? n->mounts[i].d.size : 0));
	if (!(buf = calloc(1, len))) {
		err_set("out of memory");
		return -1;
	}
	memcpy(buf, &h, sizeof(h));
	off = sizeof(h);
	for (size_t i = 0; i < n->nmounts; i++) {
		const struct mnt_step *m = &n->mounts[i];
		uint64_t start = off;

		memcpy(buf + off, &m->d, sizeof(m->d));
		off += sizeof(m->d);
		memcpy(buf + off, m->path, m->d.path_len);
		off += m->d.path_len;
		memcpy(buf + off, m->src, m->d.src_len);
		off += m->d.src_len;
		if (m->d.op == IMG_MNT_FILE && m->d.size) {
			memcpy(buf + off, m->data, m->d.size);
			off += m->d.size;
		}
		off = start + PAD8(off - start);
	}
	v = (struct iovec){buf, len};
	rc = img_write_rec(w, IMG_REC_MOUNTS, &v, 1);
	free(buf);
	return rc;
}

/* One entry: what each op carries, and nothing else. */
static int bad_step(const struct img_mount *d, const char *path, const char *src)
{
	uint32_t prop = IMG_MNTF_PRIVATE | IMG_MNTF_SLAVE | IMG_MNTF_SHARED | IMG_MNTF_UNBINDABLE;
	int in_tmpfs = d->op == IMG_MNT_DIR || d->op == IMG_MNT_FILE || d->op == IMG_MNT_LINK;

	if (d->op < IMG_MNT_KEEP || d->op >= IMG_MNT_NOPS || d->flags & ~IMG_MNTF_FLAGS ||
	    d->pad || img_bad_path(path, d->path_len))
		return 1;
	if (in_tmpfs && (d->flags || d->pidns))
		return 1;
	if ((d->op == IMG_MNT_LINK) != !!d->src_len && d->op != IMG_MNT_BIND)
		return 1;
	if (d->op == IMG_MNT_BIND && img_bad_path(src, d->src_len))
		return 1;
	if (d->op == IMG_MNT_LINK && memchr(src, 0, d->src_len))
		return 1;
	if ((d->op != IMG_MNT_PROC) != !d->pidns)
		return 1;
	if (d->size && d->op != IMG_MNT_TMPFS && d->op != IMG_MNT_FILE)
		return 1;
	if (d->mode & ~07777u || (d->mode && d->op != IMG_MNT_TMPFS && d->op != IMG_MNT_DIR &&
				  d->op != IMG_MNT_FILE))
		return 1;
	if ((d->flags & IMG_MNTF_REMOUNT) && d->op != IMG_MNT_KEEP)
		return 1;
	/* private, slave, shared or slave and shared, unbindable alone */
	if (!in_tmpfs && d->op != IMG_MNT_UMOUNT &&
	    ((d->flags & IMG_MNTF_PRIVATE) ? (d->flags & prop) != IMG_MNTF_PRIVATE
	     : (d->flags & IMG_MNTF_UNBINDABLE)
		 ? (d->flags & prop) != IMG_MNTF_UNBINDABLE
		 : !(d->flags & prop)))
		return 1;
	if (d->op == IMG_MNT_UMOUNT && d->flags)
		return 1;
	return 0;
}

int img_parse_mounts(struct ns_rec *n, const char *buf, uint64_t len)
{
	struct img_mounts h;
	uint64_t off = sizeof(h), data = 0;
	int tmpfs = 0;

	n->have_mounts = 1;
	if (len < sizeof(h)) {
		err_set("MOUNTS record: too short");
		return -1;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.n > IMG_MNT_MAX || h.flags) {
		err_set("MOUNTS record: %u entries, flags %#x", h.n, h.flags);
		return -1;
	}
	if (!(n->mounts = calloc(h.n ? h.n : 1, sizeof(*n->mounts)))) {
		err_set("out of memory");
		return -1;
	}
	for (uint32_t i = 0; i < h.n; i++) {
		struct mnt_step *m = &n->mounts[i];
		uint64_t body;

		if (len - off < sizeof(m->d)) {
			err_set("MOUNTS record: entry %u cut short", i);
			return -1;
		}
		memcpy(&m->d, buf + off, sizeof(m->d));
		n->nmounts = i + 1;
		body = (uint64_t)m->d.path_len + m->d.src_len +
		       (m->d.op == IMG_MNT_FILE ? m->d.size : 0);
		if (m->d.size > IMG_MNT_MAX_DATA || m->d.path_len >= PATH_MAX ||
		    m->d.src_len >= PATH_MAX || len - off - sizeof(m->d) < body) {
			err_set("MOUNTS record: entry %u cut short", i);
			return -1;
		}
		if (m->d.op == IMG_MNT_FILE)
			data += m->d.size;
		m->path = strndup(buf + off + sizeof(m->d), m->d.path_len);
		m->src = strndup(buf + off + sizeof(m->d) + m->d.path_len, m->d.src_len);
		if (!m->path || !m->src) {
			err_set("out of memory");
			return -1;
		}
		if (bad_step(&m->d, buf + off + sizeof(m->d),
			     buf + off + sizeof(m->d) + m->d.path_len) ||
		    (m->d.op >= IMG_MNT_DIR && !tmpfs) || data > IMG_MNT_MAX_DATA) {
			err_set("MOUNTS record: entry %u: bad step, flags, path or size", i);
			return -1;
		}
		if (m->d.op == IMG_MNT_FILE) {
			if (!(m->data = malloc(m->d.size ? m->d.size : 1))) {
				err_set("out of memory");
				return -1;
			}
			memcpy(m->data, buf + off + sizeof(m->d) + m->d.path_len + m->d.src_len,
			       m->d.size);
		}
		if (m->d.op == IMG_MNT_TMPFS)
			tmpfs = 1;
		else if (m->d.op < IMG_MNT_DIR)
			tmpfs = 0;
		off += sizeof(m->d) + body;
		if (PAD8(off) > len || memcmp(buf + off, "\0\0\0\0\0\0\0", PAD8(off) - off)) {
			err_set("MOUNTS record: entry %u cut short or not padded with zeros", i);
			return -1;
		}
		off = PAD8(off);
	}
	if (off != len) {
		err_set("MOUNTS record: %llu bytes after its entries",
			(unsigned long long)(len - off));
		return -1;
	}
	return 0;
}
