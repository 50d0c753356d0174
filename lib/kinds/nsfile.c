/* nsfile.c: namespace files held open (/proc/PID/ns/TYPE): one of the process's own namespaces,
 * opened again as the restored process's own of that type. */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x80
#endif

/* Each type: its name in /proc/PID/ns and in the file's link
 * ("net:[4026531840]"), and its CLONE_NEW* flag, which the image keeps. */
static const struct {
	const char *name;
	uint32_t flag;
} types[] = {
    {"cgroup", CLONE_NEWCGROUP}, {"ipc", CLONE_NEWIPC}, {"mnt", CLONE_NEWNS},
    {"net", CLONE_NEWNET},	 {"pid", CLONE_NEWPID}, {"time", CLONE_NEWTIME},
    {"user", CLONE_NEWUSER},	 {"uts", CLONE_NEWUTS},
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

/* The type of a namespace file's link, NTYPES if it is none. */
static size_t type_of_link(const char *link)
{
	for (size_t t = 0; t < NTYPES; t++) {
		size_t n = strlen(types[t].name);
		if (!strncmp(link, types[t].name, n) && !strncmp(link + n, ":[", 2))
			return t;
	}
	return NTYPES;
}

static size_t type_of_flag(uint32_t flag)
{
	size_t t = 0;

	while (t < NTYPES && types[t].flag != flag)
		t++;
	return t;
}

int fd_is_nsfile(const char *link)
{
	return type_of_link(link) < NTYPES;
}

/* Only the process's own namespace of the type is one a restore can
 * name: another's (a process's gone by then, or one kept by a bind
 * mount) has no path that would lead to it again. */
static int capture_nsfile(const struct fd_source *src, struct fd_entry *f)
{
	size_t t = type_of_link(src->link);
	struct img_nsfile n = {.type = types[t].flag};
	char path[64];
	struct stat own;

	if (stat(fmt_path(path, sizeof(path), "/proc/%d/ns/%s", src->pid, types[t].name), &own) ||
	    own.st_dev != src->sb->st_dev || own.st_ino != src->sb->st_ino) {
		err_set("pid %d: fd %d is %s, not the process's own %s namespace; not supported",
			src->pid, f->d.fd, src->link, types[t].name);
		return -1;
	}
	return fd_set_extra(f, &n, sizeof(n), NULL, 0);
}

static int check_nsfile(const unsigned char *x, uint32_t n)
{
	struct img_nsfile v;

	if (n != sizeof(v))
		return -1;
	memcpy(&v, x, sizeof(v));
	return type_of_flag(v.type) < NTYPES && !v.pad ? 0 : -1;
}

/* The namespace of the process that opens it: in a tree each process
 * opens its own (fd_in_process). */
static int make_nsfile(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_nsfile v;
	char path[64];
	int fd;

	(void)pipes;
	memcpy(&v, f->extra, sizeof(v));
	fmt_path(path, sizeof(path), "/proc/self/ns/%s", types[type_of_flag(v.type)].name);
	fd = open(path, (f->d.flags & O_ACCMODE) | O_CLOEXEC);
	if (fd < 0)
		err_sys("fd %d: cannot open %s", f->d.fd, path);
	return fd;
}

static void show_nsfile(FILE *out, const struct fd_entry *f, int json)
{
	struct img_nsfile v;

	memcpy(&v, f->extra, sizeof(v));
	fprintf(out, json ? ",\"ns\":\"%s\"" : " own %s namespace",
		types[type_of_flag(v.type)].name);
}

const struct fd_ops fd_nsfile_ops = {
    .name = "nsfile",
    .capture = capture_nsfile,
    .check = check_nsfile,
    .make = make_nsfile,
    .show = show_nsfile,
};
