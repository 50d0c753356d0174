/* util.h: I/O that survives short transfers and EINTR. */
#ifndef CKPT_UTIL_H
#define CKPT_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Write all of buf; -1 with errno on failure. */
int write_all(int fd, const void *buf, size_t len);
/* Read up to len bytes, stopping early only at end of file; returns the
 * count read, or -1 with errno. */
ssize_t read_full(int fd, void *buf, size_t len);
/* Read a whole small file (e.g. under /proc) into a NUL-terminated malloc'd
 * buffer; NULL with err_set on failure. *lenp gets the length if non-NULL. */
char *read_file(const char *path, size_t *lenp);
/* snprintf into a fixed buffer and return it; for /proc paths. */
char *fmt_path(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Human-readable size: "512 B", "3.2 MiB". */
const char *fmt_bytes(char *buf, size_t size, unsigned long long n);
/* Seconds since the epoch as "2024-01-31 12:00:00 UTC" (or the number, if
 * it is no date gmtime_r knows). */
const char *fmt_time(char *buf, size_t size, int64_t t);
/* The same with nanoseconds: "2024-01-31 12:00:00.123456789 UTC". */
const char *fmt_time_ns(char *buf, size_t size, int64_t t, uint32_t nsec);
/* Monotonic time in seconds. */
double now_sec(void);
/* Whether the ps bytes at p (a page: ps a multiple of 64) are all zero. */
int page_is_zero(const void *p, long ps);
/* Give fd, if it is a pipe of less than 1 MiB, the 1 MiB an unprivileged
 * process may (/proc/sys/fs/pipe-max-size): the default 64 KiB costs a
 * context switch every 64 KiB of an image.  A failure leaves it as it was. */
void grow_pipe(int fd);

/* A byte count: digits with an optional K, M or G (powers of 1024, "MiB"
 * and "MB" spelled out too); -1 if s is not one. */
long long parse_size(const char *s);
/* mkdir -p: make path and every missing directory above it with mode
 * (those that exist are left as they are); -1 with errno. */
int make_dirs(const char *path, mode_t mode);
/* Whether capability cap (its number, capability.h) is in this process's
 * effective set (/proc/self/status CapEff). */
int has_cap(int cap);

#endif
