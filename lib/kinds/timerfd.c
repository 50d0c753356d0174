/* timerfd.c: timerfds: the clock, the time left, the interval and the expirations not read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <fcntl.h>
#include <unistd.h>

#include "base/base.h"
#include "kinds/kinds-internal.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

static int capture_timerfd(const struct fd_source *src, struct fd_entry *f)
{
	struct img_timerfd t = {0};
	unsigned long long a = 0, b = 0;
	const char *info = src->info, *v;

	if ((v = fd_info_field(info, "clockid")))
		t.clock = atoi(v);
	if ((v = fd_info_field(info, "ticks")))
		t.ticks = strtoull(v, NULL, 10);
	if ((v = fd_info_field(info, "settime flags")))
		t.settime_flags = strtoul(v, NULL, 8);
	if ((v = fd_info_field(info, "it_value")) && sscanf(v, " (%llu, %llu)", &a, &b) == 2)
		t.left = (struct img_timespec){(int64_t)a, (int64_t)b};
	if ((v = fd_info_field(info, "it_interval")) && sscanf(v, " (%llu, %llu)", &a, &b) == 2)
		t.interval = (struct img_timespec){(int64_t)a, (int64_t)b};
	return fd_set_extra(f, &t, sizeof(t), NULL, 0);
}

static int check_timerfd(const unsigned char *x, uint32_t n)
{
	struct img_timerfd t;

	if (n != sizeof(t))
		return -1;
	memcpy(&t, x, sizeof(t));
	if (t.left.sec < 0 || t.left.nsec < 0 || t.left.nsec >= 1000000000 || t.interval.sec < 0 ||
	    t.interval.nsec < 0 || t.interval.nsec >= 1000000000)
		return -1;
	return 0;
}

static int make_timerfd(const struct fd_entry *f, struct fd_pipes *pipes)
{
	struct img_timerfd t;
	struct itimerspec its;
	int fd;

	(void)pipes;
	memcpy(&t, f->extra, sizeof(t));
	fd = timerfd_create(t.clock, TFD_CLOEXEC | ((f->d.flags & O_NONBLOCK) ? TFD_NONBLOCK : 0));
	if (fd < 0) {
		err_sys("fd %d: cannot make a timerfd on clock %d", f->d.fd, t.clock);
		return -1;
	}
	/* The time it had left, from now (relative), as for other timers. */
	its.it_value.tv_sec = t.left.sec;
	its.it_value.tv_nsec = t.left.nsec;
	its.it_interval.tv_sec = t.interval.sec;
	its.it_interval.tv_nsec = t.interval.nsec;
	if ((t.left.sec || t.left.nsec) && timerfd_settime(fd, 0, &its, NULL)) {
		err_sys("fd %d: cannot arm its timerfd", f->d.fd);
		close(fd);
		return -1;
	}
	if (t.ticks && ioctl(fd, TFD_IOC_SET_TICKS, &t.ticks)) {
		err_sys("fd %d: cannot restore %llu expirations of its timerfd", f->d.fd,
			(unsigned long long)t.ticks);
		close(fd);
		return -1;
	}
	return fd;
}

static void show_timerfd(FILE *out, const struct fd_entry *f, int json)
{
	struct img_timerfd v;

	memcpy(&v, f->extra, sizeof(v));
	fd_put_num(out, json, "clock", v.clock);
	fd_put_num(out, json, "ticks", v.ticks);
	fprintf(out,
		json ? ",\"left_ns\":%llu,\"interval_ns\":%llu" : " left %lluns interval %lluns",
		(unsigned long long)(v.left.sec * 1000000000ull + v.left.nsec),
		(unsigned long long)(v.interval.sec * 1000000000ull + v.interval.nsec));
}

const struct fd_ops fd_timerfd_ops = {
    .name = "timerfd",
    .anon = "anon_inode:[timerfd]",
    .capture = capture_timerfd,
    .check = check_timerfd,
    .make = make_timerfd,
    .show = show_timerfd,
};
