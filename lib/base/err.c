/* err.c: the tool's name, die/warn, and the per-thread reason a lib call failed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

const char *prog = "ckpt";

/* Per thread: a thread that fails (the dump's writer) has its own reason. */
static __thread char err_msg[1024];

void err_set(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err_msg, sizeof(err_msg), fmt, ap);
	va_end(ap);
}

void err_sys(const char *fmt, ...)
{
	int saved = errno;
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err_msg, sizeof(err_msg), fmt, ap);
	va_end(ap);
	n = strlen(err_msg);
	snprintf(err_msg + n, sizeof(err_msg) - n, ": %s", strerror(saved));
	errno = saved;
}

const char *err_get(void)
{
	return err_msg[0] ? err_msg : "unknown error";
}

static void vmsg(const char *ctx, const char *fmt, va_list ap)
{
	char line[2048];
	int n;

	n = snprintf(line, sizeof(line), "%s: ", prog);
	n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (ctx && n < (int)sizeof(line))
		snprintf(line + n, sizeof(line) - n, ": %s", ctx);
	fprintf(stderr, "%s\n", line);
}

void warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(NULL, fmt, ap);
	va_end(ap);
}

void die(int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(NULL, fmt, ap);
	va_end(ap);
	exit(rc);
}

void die_lib(int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(err_get(), fmt, ap);
	va_end(ap);
	exit(rc);
}

int ckpt_fail_rc(void)
{
	const char *s = getenv("CKPT_FAIL_RC");
	char *end;
	long v;

	if (!s || !*s)
		return 99;
	v = strtol(s, &end, 10);
	if (*end || v < 1 || v > 255)
		return 99;
	return (int)v;
}
