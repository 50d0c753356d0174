/* util.c: small helpers: write_all, whole files, formatting sizes and times, capabilities,
 * directories. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

ssize_t read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, p + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

char *read_file(const char *path, size_t *lenp)
{
	return read_file_step(path, lenp, SIZE_MAX);
}

/* A seq_file fills each read(2) with whole records into its buffer (a
 * page, until one record alone needs more) while it holds fewer bytes
 * than asked for; the record that would overflow it is made, thrown away
 * and made again at the next read.  Each record of /proc/PID/smaps walks
 * its mapping's page tables: 10 ms a GiB, twice for a large mapping that
 * came at the wrong place (seen with strace: a 1 GiB mapping's walk in
 * two reads in a row).  Asking for at most half a page (step 2048) stops
 * the filling before any record of 2 KiB or less could overflow it, and
 * an smaps record is 0.7 to 1.2 KiB but for a long path. */
char *read_file_step(const char *path, size_t *lenp, size_t step)
{
	size_t cap = 4096, len = 0;
	char *buf;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err_sys("cannot open %s", path);
		return NULL;
	}
	buf = malloc(cap);
	for (;;) {
		ssize_t n;

		if (!buf) {
			close(fd);
			err_set("cannot read %s: out of memory", path);
			return NULL;
		}
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				continue;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1 < step ? cap - len - 1 : step);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_sys("cannot read %s", path);
			free(buf);
			close(fd);
			return NULL;
		}
		if (n == 0)
			break;
		len += n;
	}
	close(fd);
	buf[len] = '\0';
	if (lenp)
		*lenp = len;
	return buf;
}

char *fmt_path(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return buf;
}

const char *fmt_bytes(char *buf, size_t size, unsigned long long n)
{
	static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%llu B", n);
	else
		snprintf(buf, size, "%.1f %s", v, unit[u]);
	return buf;
}

const char *fmt_time(char *buf, size_t size, int64_t t)
{
	time_t tt = t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, size, "%lld", (long long)t);
	return buf;
}

const char *fmt_time_ns(char *buf, size_t size, int64_t t, uint32_t nsec)
{
	time_t tt = t;
	struct tm tm;
	char s[32];

	if (!gmtime_r(&tt, &tm) || !strftime(s, sizeof(s), "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, size, "%lld.%09u", (long long)t, nsec);
	else
		snprintf(buf, size, "%s.%09u UTC", s, nsec);
	return buf;
}

double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int page_is_zero(const void *p, long ps)
{
	const uint64_t *q = (const uint64_t *)p;
	uint64_t acc = 0;

	for (long i = 0; i < ps / 8; i += 8)
		acc |= q[i] | q[i + 1] | q[i + 2] | q[i + 3] | q[i + 4] | q[i + 5] | q[i + 6] |
		       q[i + 7];
	return acc == 0;
}

long long parse_size(const char *s)
{
	unsigned long long v = 0;
	int shift = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (1ull << 50))
			return -1;
		v = v * 10 + (*s - '0');
	}
	switch (*s) {
	case 0:
		break;
	case 'k': case 'K':
		shift = 10;
		break;
	case 'm': case 'M':
		shift = 20;
		break;
	case 'g': case 'G':
		shift = 30;
		break;
	default:
		return -1;
	}
	if (*s && s[1] && strcmp(s + 1, "iB") && strcmp(s + 1, "B"))
		return -1;
	if (v > (1ull << (62 - shift)))
		return -1;
	return (long long)(v << shift);
}

int has_cap(int cap)
{
	char line[256];
	int yes = 0;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "CapEff:", 7))
			yes = (strtoull(line + 7, NULL, 16) >> cap) & 1;
	fclose(f);
	return yes;
}

void grow_pipe(int fd)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && fcntl(fd, F_GETPIPE_SZ) < 1 << 20)
		fcntl(fd, F_SETPIPE_SZ, 1 << 20);
}

int make_dirs(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	/* Each prefix that ends at a slash, then the whole path. */
	for (char *p = buf + 1; ; p++) {
		if (*p && *p != '/')
			continue;
		char c = *p;
		*p = 0;
		if (mkdir(buf, mode) && errno != EEXIST)
			return -1;
		*p = c;
		if (!c)
			return 0;
	}
}

void *append_zeroed(void *arr, size_t n, size_t size)
{
	void **p = arr;
	char *q = realloc(*p, (n + 1) * size);

	if (!q) {
		err_set("out of memory");
		return NULL;
	}
	*p = q;
	memset(q + n * size, 0, size);
	return q + n * size;
}
