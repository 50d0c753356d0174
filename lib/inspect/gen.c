/* A generation directory of a coordinated computation (ckpt_gen_NNNNNN):
 * its members' images and the connections between them, paired by the
 * token each end's peer record (IMG_FD_PEER) holds. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "inspect/inspect.h"

/* One member: an image ckpt_NAME_ID.ckpt[.zst|.gz|.xz] of the directory. */
struct g_member {
	char file[NAME_MAX + 1];
	char name[NAME_MAX + 1];
	unsigned id;
	size_t nprocs;
	unsigned long long bytes;
};

/* One end of a connection, as its member's image records it. */
struct g_end {
	size_t member; /* index in the members */
	int pid, fd;
	struct img_peer p;
};

static const char *const peer_kind[] = {[IMG_PEER_TCP] = "tcp", [IMG_PEER_UNIX] = "unix",
					[IMG_PEER_PIPE] = "pipe"};

/* "ckpt_NAME_ID.ckpt..." into NAME and ID; 0 if file is no member's image. */
static int member_of(const char *file, struct g_member *m)
{
	const char *end = strstr(file, ".ckpt"), *us;
	char *stop;
	unsigned long id;

	if (strncmp(file, "ckpt_", 5) || !end)
		return 0;
	if (strcmp(end, ".ckpt") && strcmp(end, ".ckpt.zst") && strcmp(end, ".ckpt.gz") &&
	    strcmp(end, ".ckpt.xz"))
		return 0;
	for (us = end; us > file + 5 && us[-1] != '_'; us--)
		;
	if (us <= file + 6)
		return 0;
	errno = 0;
	id = strtoul(us, &stop, 10);
	if (stop != end || errno || id > 0xffffffffu)
		return 0;
	snprintf(m->file, sizeof(m->file), "%s", file);
	snprintf(m->name, sizeof(m->name), "%.*s", (int)(us - 1 - (file + 5)), file + 5);
	m->id = (unsigned)id;
	return 1;
}

static int by_id(const void *a, const void *b)
{
	const struct g_member *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* The peer ends member k's image at path holds, appended to *ends. */
static int read_member(const char *path, size_t k, struct g_member *m, struct g_end **ends,
		       size_t *n)
{
	struct img_input in;

	if (img_open(path, &in))
		return -1;
	m->nprocs = 1 + in.nrest;
	for (size_t i = 0; i < m->nprocs; i++) {
		struct image *im = img_proc_at(&in, i);
		for (size_t j = 0; j < im->nfiles; j++) {
			struct fd_entry *f = &im->files[j];
			struct g_end *e;

			if (f->d.kind != IMG_FD_PEER || f->d.extra_len < sizeof(struct img_peer))
				continue;
			e = realloc(*ends, (*n + 1) * sizeof(**ends));
			if (!e) {
				img_input_close(&in);
				err_set("out of memory");
				return -1;
			}
			*ends = e;
			e += (*n)++;
			e->member = k;
			e->pid = im->proc.pid;
			e->fd = f->d.fd;
			memcpy(&e->p, f->extra, sizeof(e->p));
		}
	}
	/* Only the metadata is read: a decompressor still writing the pages
	 * ends on its closed pipe. */
	img_input_fail(&in);
	img_input_close(&in);
	return 0;
}

static const char *kind_of(const struct g_end *e)
{
	return e->p.kind >= IMG_PEER_TCP && e->p.kind <= IMG_PEER_PIPE ? peer_kind[e->p.kind] : "?";
}

static void end_text(FILE *f, const struct g_member *ms, const struct g_end *e)
{
	fprintf(f, "member %u %s (pid %d fd %d, %s, %llu bytes in flight to it)", ms[e->member].id,
		ms[e->member].name, e->pid, e->fd,
		e->p.kind == IMG_PEER_PIPE ? (e->p.side ? "write end" : "read end")
					   : (e->p.side ? "connects" : "listens"),
		(unsigned long long)e->p.nbytes);
}

static void end_json(FILE *f, const struct g_member *ms, const struct g_end *e)
{
	fprintf(f, "{\"member\":%u,\"name\":", ms[e->member].id);
	json_str(f, ms[e->member].name, strlen(ms[e->member].name));
	fprintf(f, ",\"pid\":%d,\"fd\":%d,\"side\":%u,\"bytes_in_flight\":%llu}", e->pid, e->fd,
		e->p.side, (unsigned long long)e->p.nbytes);
}

/* The other end of ends[i] among ends (same token, other side), or -1. */
static long other_end(const struct g_end *ends, size_t n, size_t i)
{
	for (size_t j = 0; j < n; j++)
		if (j != i && !memcmp(ends[j].p.token, ends[i].p.token, sizeof(ends[i].p.token)) &&
		    ends[j].p.side != ends[i].p.side)
			return (long)j;
	return -1;
}

int inspect_generation(FILE *f, const char *dir, int json)
{
	struct g_member *ms = NULL;
	struct g_end *ends = NULL;
	size_t nm = 0, ne = 0;
	struct dirent *d;
	DIR *dp = opendir(dir);
	int rc = -1;

	if (!dp) {
		err_sys("cannot read %s", dir);
		return -1;
	}
	while ((d = readdir(dp))) {
		struct g_member m = {0}, *nms;
		if (!member_of(d->d_name, &m))
			continue;
		nms = realloc(ms, (nm + 1) * sizeof(*ms));
		if (!nms) {
			err_set("out of memory");
			goto out;
		}
		ms = nms;
		ms[nm++] = m;
	}
	if (!nm) {
		err_set("%s: no member's image (ckpt_NAME_ID.ckpt...) in it", dir);
		goto out;
	}
	qsort(ms, nm, sizeof(*ms), by_id);
	for (size_t k = 0; k < nm; k++) {
		char path[PATH_MAX];
		struct stat sb;

		snprintf(path, sizeof(path), "%s/%s", dir, ms[k].file);
		if (!stat(path, &sb))
			ms[k].bytes = (unsigned long long)sb.st_size;
		if (read_member(path, k, &ms[k], &ends, &ne)) {
			err_set("%s: %s", path, err_get());
			goto out;
		}
	}
	if (json) {
		fputs("{\"generation\":", f);
		json_str(f, dir, strlen(dir));
		fputs(",\"members\":[", f);
		for (size_t k = 0; k < nm; k++) {
			fprintf(f, "%s{\"id\":%u,\"name\":", k ? "," : "", ms[k].id);
			json_str(f, ms[k].name, strlen(ms[k].name));
			fputs(",\"image\":", f);
			json_str(f, ms[k].file, strlen(ms[k].file));
			fprintf(f, ",\"processes\":%zu,\"bytes\":%llu}", ms[k].nprocs, ms[k].bytes);
		}
		fputs("],\"connections\":[", f);
	} else {
		fprintf(f, "generation %s: %zu member%s\n", dir, nm, nm == 1 ? "" : "s");
		for (size_t k = 0; k < nm; k++)
			fprintf(f, "  member %u %s: %s, %zu process%s, %llu bytes\n", ms[k].id,
				ms[k].name, ms[k].file, ms[k].nprocs, ms[k].nprocs == 1 ? "" : "es",
				ms[k].bytes);
		fputs("connections between members:", f);
	}
	/* Each connection once: from its side-0 end, or from an end whose
	 * other end no image here holds. */
	size_t shown = 0;
	for (size_t i = 0; i < ne; i++) {
		long j = other_end(ends, ne, i);
		if (j >= 0 && ends[i].p.side != 0)
			continue;
		if (json) {
			fprintf(f, "%s{\"token\":\"%.32s\",\"kind\":\"%s\",\"ends\":[", shown ? "," : "",
				ends[i].p.token, kind_of(&ends[i]));
			end_json(f, ms, &ends[i]);
			if (j >= 0) {
				fputc(',', f);
				end_json(f, ms, &ends[j]);
			}
			fputs("]", f);
			if (j < 0) {
				fprintf(f, ",\"missing\":{\"member\":%u,\"name\":", ends[i].p.peer_id);
				json_str(f, ends[i].p.peer_name,
					 strnlen(ends[i].p.peer_name, sizeof(ends[i].p.peer_name)));
				fputc('}', f);
			}
			fputc('}', f);
		} else {
			fprintf(f, "\n  %.32s %s: ", ends[i].p.token, kind_of(&ends[i]));
			end_text(f, ms, &ends[i]);
			fputs("\n    <-> ", f);
			if (j >= 0)
				end_text(f, ms, &ends[j]);
			else
				fprintf(f, "member %u %.64s, whose image is not here", ends[i].p.peer_id,
					ends[i].p.peer_name);
		}
		shown++;
	}
	if (json)
		fputs("]}\n", f);
	else
		fputs(shown ? "\n" : " none\n", f);
	rc = 0;
out:
	closedir(dp);
	free(ms);
	free(ends);
	return rc;
}
