/* signalfd.c: signalfds: the set of signals each one reads. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>

#include "kinds/kinds-internal.h"

static int capture_signalfd(const struct fd_source *src, struct fd_entry *f)
{
	struct img_signalfd s = {0};
	const char *v;

	if ((v = fd_info_field(src->info, "sigmask")))
		s.mask = strtoull(v, NULL, 16);
	return fd_set_extra(f, &s, sizeof(s), NULL, 0);
}

static int check_signalfd(const unsigned char *x, uint32_t n)
{
	(void)x;
	return n == sizeof(struct img_signalfd) ? 0 : -1;
}

static int make_signalfd(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_signalfd s;
	sigset_t set;

	(void)pipes;
	memcpy(&s, f->extra, sizeof(s));
	sigemptyset(&set);
	for (int sig = 1; sig <= 64; sig++)
		if (s.mask & (1ull << (sig - 1)))
			sigaddset(&set, sig);
	return fd_made(
	    signalfd(-1, &set, SFD_CLOEXEC | ((f->d.flags & O_NONBLOCK) ? SFD_NONBLOCK : 0)), f);
}

static void show_signalfd(FILE *out, const struct fd_entry *f, int json)
{
	struct img_signalfd v;

	memcpy(&v, f->extra, sizeof(v));
	fprintf(out, json ? ",\"sigmask\":%llu" : " sigmask %#llx", (unsigned long long)v.mask);
}

const struct fd_ops fd_signalfd_ops = {
    .name = "signalfd",
    .anon = "anon_inode:[signalfd]",
    .capture = capture_signalfd,
    .check = check_signalfd,
    .make = make_signalfd,
    .show = show_signalfd,
};
