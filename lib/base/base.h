/* base.h: what every layer uses: messages and errors, small utilities, progress lines, SHA-256
 * (and crc32c.h, the CRC the image format and the restorer share). */
#ifndef CKPT_BASE_H
#define CKPT_BASE_H

#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>
#include <sys/types.h>

#include "base/crc32c.h"

/* ---- err: the tool's name, one-line diagnostics, and the error message a
 * lib function leaves for its caller. */

/* The program's name in every message; each tool sets it first thing. */
extern const char *prog;

/* A lib function that fails returns -1 (or NULL) and leaves one line here
 * describing the object, the action and the cause. */
void err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like err_set, with ": strerror(errno)" appended; errno is preserved. */
void err_sys(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *err_get(void);

/* "prog: message" on stderr. */
void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void die(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "prog: <context>: <err_get()>" and exit rc. */
noreturn void die_lib(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Exit status of the tools that pass a program's status through, on their
 * own failure: $CKPT_FAIL_RC, default 99. */
int ckpt_fail_rc(void);

/* ---- util: I/O that survives short transfers and EINTR. */

/* Write all of buf; -1 with errno on failure. */
int write_all(int fd, const void *buf, size_t len);
/* Read up to len bytes, stopping early only at end of file; returns the
 * count read, or -1 with errno. */
ssize_t read_full(int fd, void *buf, size_t len);
/* Read a whole small file (e.g. under /proc) into a NUL-terminated malloc'd
 * buffer; NULL with err_set on failure. *lenp gets the length if non-NULL. */
char *read_file(const char *path, size_t *lenp);
/* The same, step bytes a read(2) at most: for a seq_file (/proc/PID/smaps)
 * whose records are each costly to make (see util.c). */
char *read_file_step(const char *path, size_t *lenp, size_t step);
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
/* Whether capability cap (CAP_*, <linux/capability.h>) is in this process's
 * effective set (/proc/self/status CapEff). */
int has_cap(int cap);
/* Room for one more element, zeroed, after the n of the array *arr (a
 * pointer to the array's pointer; each element size bytes): its address,
 * or NULL (err_set; *arr as it was). */
void *append_zeroed(void *arr, size_t n, size_t size);

/* ---- progress: one updating line on stderr for long dumps and restores. */

enum progress_mode { PROGRESS_AUTO, PROGRESS_ON, PROGRESS_OFF };

struct progress {
	int enabled;  /* decided from the mode and whether stderr is a terminal */
	int shown;    /* a line is on the screen and needs finishing */
	double start; /* when the work began */
	double last;  /* when the line was last drawn */
	const char *verb;
	uint64_t done; /* bytes, as last reported */
	uint64_t total;
};

void progress_init(struct progress *p, enum progress_mode mode, const char *verb);
/* Draw if more than a second has passed since start and 0.2 s since the
 * last draw; total 0 means unknown. */
void progress_update(struct progress *p, uint64_t done, uint64_t total);
void progress_done(struct progress *p);
/* The dump_opts callback shape. */
void progress_cb(uint64_t done, uint64_t total, void *arg);

/* ---- sha256: SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104), for the
 * coordinator's challenge-response: a shared secret proves itself without
 * being sent.  Small and slow enough for a few lines; not for images. */

#define SHA256_LEN 32

struct sha256 {
	uint32_t h[8];
	uint64_t len; /* bytes hashed so far */
	uint8_t buf[64];
	size_t nbuf;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_LEN]);
/* HMAC-SHA-256 of the concatenation of the n parts under key. */
void hmac_sha256(const void *key, size_t keylen, const void *const *part, const size_t *partlen,
		 int n, uint8_t out[SHA256_LEN]);

/* The len bytes at s as a JSON string: '"' and '\' after a backslash, bytes
 * outside ' '..'~' as \u00XX (json.c). */
void json_str(FILE *f, const char *s, size_t len);

#endif
