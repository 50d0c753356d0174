/* ipc.c: System V semaphore sets and message queues (kinds.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds.h"

#ifndef MSG_COPY
#define MSG_COPY 040000
#endif

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

static const char *what(uint32_t kind)
{
	return kind == IMG_IPC_SEM ? "semaphore set" : "message queue";
}

/* A live process (not a zombie) other than us and skip. */
static int other_alive(pid_t p, pid_t skip)
{
	char path[64], buf[512], *q;
	FILE *f;
	size_t n;

	if (p <= 0 || p == skip || p == getpid())
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)p);
	if (!(f = fopen(path, "re")))
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	q = strrchr(buf, ')');
	return q && q[1] == ' ' && q[2] != 'Z' && q[2] != 'X';
}

/* ---- dumping ---------------------------------------------------------- */

static int add(struct image *im, const struct img_ipc *d, unsigned char *data)
{
	struct ipc_obj *n = NULL;

	if (im->nipcs >= IMG_MAX_IPCS)
		err_set("more than %d semaphore sets and message queues", IMG_MAX_IPCS);
	else
		n = append_zeroed(&im->ipcs, im->nipcs, sizeof(*n));
	if (!n) {
		free(data);
		return -1;
	}
	n->d = *d;
	n->data = data;
	im->nipcs++;
	return 0;
}

static int capture_sem(pid_t pid, struct image *im, int id, int key, unsigned mode, int nsems)
{
	struct img_ipc d = {.kind = IMG_IPC_SEM, .key = key, .id = id, .mode = mode & 0777};
	unsigned short *v = calloc(nsems + 1, sizeof(*v));
	int used_by_other = 0;

	if (!v) {
		err_set("out of memory");
		return -1;
	}
	for (int i = 0; i < nsems; i++) {
		int p = semctl(id, i, GETPID);
		if (other_alive(p, pid))
			used_by_other = p;
		if (p == pid)
			d.flags |= IMG_IPC_USED;
	}
	if (used_by_other) {
		free(v);
		return 0;
	}
	if (semctl(id, 0, GETALL, (union semun){.array = v})) {
		err_sys("pid %d: cannot read semaphore set %d", pid, id);
		free(v);
		return -1;
	}
	d.n = nsems;
	d.data_len = 2ull * nsems;
	return add(im, &d, (unsigned char *)v);
}

static int capture_msg(pid_t pid, struct image *im, int id, int key, unsigned mode,
		       unsigned long cbytes, unsigned long qnum, pid_t lspid, pid_t lrpid)
{
	struct img_ipc d = {.kind = IMG_IPC_MSG, .key = key, .id = id, .mode = mode & 0777};
	size_t cap = 16 * qnum + cbytes + 8 * qnum + 8, off = 0;
	unsigned char *data;
	struct msqid_ds ds;
	struct {
		long type;
		char text[65536];
	} *m;

	if (other_alive(lspid, pid) || other_alive(lrpid, pid))
		return 0;
	if (lspid == pid || lrpid == pid)
		d.flags |= IMG_IPC_USED;
	if (msgctl(id, IPC_STAT, &ds)) {
		err_sys("pid %d: cannot read message queue %d", pid, id);
		return -1;
	}
	d.qbytes = ds.msg_qbytes;
	data = calloc(cap, 1);
	m = malloc(sizeof(*m));
	if (!data || !m) {
		free(data);
		free(m);
		err_set("out of memory");
		return -1;
	}
	/* MSG_COPY reads message i and leaves it queued. */
	for (unsigned long i = 0; i < qnum; i++) {
		ssize_t n = msgrcv(id, m, sizeof(m->text), i, IPC_NOWAIT | MSG_COPY);
		int64_t type;
		uint64_t len;
		if (n < 0) {
			err_sys("pid %d: cannot read message %lu of queue %d", pid, i, id);
			free(data);
			free(m);
			return -1;
		}
		type = m->type;
		len = n;
		if (off + 16 + (len + 7) / 8 * 8 > cap)
			break; /* the queue changed under us: what we have is consistent */
		memcpy(data + off, &type, 8);
		memcpy(data + off + 8, &len, 8);
		memcpy(data + off + 16, m->text, len);
		off += 16 + (len + 7) / 8 * 8;
		d.n++;
	}
	free(m);
	d.data_len = off;
	return add(im, &d, data);
}

int ipc_capture(pid_t pid, struct image *im)
{
	char line[512];
	FILE *f;

	if ((f = fopen("/proc/sysvipc/sem", "re"))) {
		while (fgets(line, sizeof(line), f)) {
			int key, id, nsems;
			unsigned mode, uid, gid, cuid;
			if (sscanf(line, "%d %d %o %d %u %u %u", &key, &id, &mode, &nsems, &uid, &gid,
				   &cuid) != 7 ||
			    cuid != im->proc.uid)
				continue;
			if (capture_sem(pid, im, id, key, mode, nsems)) {
				fclose(f);
				return -1;
			}
		}
		fclose(f);
	}
	if ((f = fopen("/proc/sysvipc/msg", "re"))) {
		while (fgets(line, sizeof(line), f)) {
			int key, id, lspid, lrpid;
			unsigned mode, uid, gid, cuid;
			unsigned long cbytes, qnum;
			if (sscanf(line, "%d %d %o %lu %lu %d %d %u %u %u", &key, &id, &mode, &cbytes,
				   &qnum, &lspid, &lrpid, &uid, &gid, &cuid) != 10 ||
			    cuid != im->proc.uid)
				continue;
			if (capture_msg(pid, im, id, key, mode, cbytes, qnum, lspid, lrpid)) {
				fclose(f);
				return -1;
			}
		}
		fclose(f);
	}
	return 0;
}

/* ---- restoring -------------------------------------------------------- */

/* The set or queue with this id, if it is the image's: same key, size. */
static int same_object(const struct img_ipc *d)
{
	if (d->kind == IMG_IPC_SEM) {
		struct semid_ds ds;
		return semctl(d->id, 0, IPC_STAT, (union semun){.buf = &ds}) == 0 &&
		       ds.sem_perm.__key == d->key && ds.sem_nsems == d->n;
	} else {
		struct msqid_ds ds;
		return msgctl(d->id, IPC_STAT, &ds) == 0 && ds.msg_perm.__key == d->key;
	}
}

/* Which live process other than us used it last, or 0. */
static pid_t user_of(const struct img_ipc *d)
{
	if (d->kind == IMG_IPC_SEM) {
		for (uint32_t i = 0; i < d->n; i++) {
			int p = semctl(d->id, i, GETPID);
			if (other_alive(p, 0))
				return p;
		}
	} else {
		struct msqid_ds ds;
		if (msgctl(d->id, IPC_STAT, &ds) == 0) {
			if (other_alive(ds.msg_lspid, 0))
				return ds.msg_lspid;
			if (other_alive(ds.msg_lrpid, 0))
				return ds.msg_lrpid;
		}
	}
	return 0;
}

/* Make it again under its old id: the next id the kernel hands out is
 * the one we write (CAP_CHECKPOINT_RESTORE). */
static int make_again(const struct img_ipc *d)
{
	const char *knob = d->kind == IMG_IPC_SEM ? "/proc/sys/kernel/sem_next_id"
						  : "/proc/sys/kernel/msg_next_id";
	char buf[32];
	int fd, id, n, key = d->key;

	if (key != IPC_PRIVATE) {
		id = d->kind == IMG_IPC_SEM ? semget(key, 0, 0) : msgget(key, 0);
		if (id >= 0) {
			err_set("%s key %#x exists here with id %d, but the program knows it as "
				"%d",
				what(d->kind), (unsigned)key, id, d->id);
			return -1;
		}
	}
	fd = open(knob, O_WRONLY | O_CLOEXEC);
	n = snprintf(buf, sizeof(buf), "%d", d->id);
	if (fd < 0 || write(fd, buf, n) != n) {
		err_sys("%s %d cannot be made again under its id (writing %s)", what(d->kind),
			d->id, knob);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	if (d->kind == IMG_IPC_SEM)
		id = semget(key, d->n, IPC_CREAT | IPC_EXCL | d->mode);
	else
		id = msgget(key, IPC_CREAT | IPC_EXCL | d->mode);
	if (id != d->id) {
		err_sys("%s %d cannot be made again under its id (got %d)", what(d->kind), d->id,
			id);
		if (id >= 0 && d->kind == IMG_IPC_SEM)
			semctl(id, 0, IPC_RMID);
		else if (id >= 0)
			msgctl(id, IPC_RMID, NULL);
		return -1;
	}
	return 0;
}

/* The contents: semaphore values, or the queue emptied and refilled. */
static int set_contents(const struct ipc_obj *o)
{
	struct msqid_ds ds;
	const struct img_ipc *d = &o->d;
	uint64_t off = 0;
	struct {
		long type;
		char text[65536];
	} *m;

	if (d->kind == IMG_IPC_SEM) {
		unsigned short *v = malloc(d->n * sizeof(*v) + 1);
		int rc;
		if (!v) {
			err_set("out of memory");
			return -1;
		}
		memcpy(v, o->data, d->n * sizeof(*v));
		rc = semctl(d->id, 0, SETALL, (union semun){.array = v});
		free(v);
		if (rc)
			err_sys("cannot set the values of semaphore set %d", d->id);
		return rc ? -1 : 0;
	}
	/* The queue's byte limit, if the program had changed it (raising it
	 * past msgmnb needs CAP_SYS_RESOURCE: said, not ignored). */
	if (d->qbytes && msgctl(d->id, IPC_STAT, &ds) == 0 && ds.msg_qbytes != d->qbytes) {
		ds.msg_qbytes = d->qbytes;
		if (msgctl(d->id, IPC_SET, &ds)) {
			err_sys("cannot set message queue %d's limit back to %llu bytes", d->id,
				(unsigned long long)d->qbytes);
			return -1;
		}
	}
	m = malloc(sizeof(*m));
	if (!m) {
		err_set("out of memory");
		return -1;
	}
	while (msgrcv(d->id, m, sizeof(m->text), 0, IPC_NOWAIT | MSG_NOERROR) >= 0)
		;
	for (uint32_t i = 0; i < d->n; i++) {
		int64_t type;
		uint64_t len;
		memcpy(&type, o->data + off, 8);
		memcpy(&len, o->data + off + 8, 8);
		if (len > sizeof(m->text))
			goto toolong;
		m->type = type;
		memcpy(m->text, o->data + off + 16, len);
		if (msgsnd(d->id, m, len, IPC_NOWAIT)) {
			err_sys("cannot put message %u back on queue %d", i, d->id);
			free(m);
			return -1;
		}
		off += 16 + (len + 7) / 8 * 8;
	}
	free(m);
	return 0;
toolong:
	free(m);
	err_set("message queue %d: a message of more than 64 KiB", d->id);
	return -1;
}

int ipc_restore(const struct image *im)
{
	/* Check every one first: refuse before changing any. */
	for (size_t i = 0; i < im->nipcs; i++) {
		const struct img_ipc *d = &im->ipcs[i].d;
		pid_t p;

		if ((d->flags & IMG_IPC_USED) && same_object(d) && (p = user_of(d))) {
			err_set("%s %d (key %#x) is in use by pid %d", what(d->kind), d->id,
				(unsigned)d->key, (int)p);
			return -1;
		}
	}
	for (size_t i = 0; i < im->nipcs; i++) {
		const struct ipc_obj *o = &im->ipcs[i];
		int existed = same_object(&o->d);

		/* One the program never used itself is only made again where
		 * it is gone: it may be another program's. */
		if (existed && !(o->d.flags & IMG_IPC_USED))
			continue;
		if (!existed && make_again(&o->d))
			return -1;
		if (set_contents(o))
			return -1;
		if (existed)
			fprintf(stderr, "ckpt-remap: %s %d (key %#x): contents set back to the "
					"checkpoint's\n",
				what(o->d.kind), o->d.id, (unsigned)o->d.key);
	}
	return 0;
}
