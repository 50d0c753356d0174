/* err.h: the tool's name, one-line diagnostics, and the error message a
 * lib function leaves for its caller. */
#ifndef CKPT_ERR_H
#define CKPT_ERR_H

#include <stdarg.h>
#include <stdnoreturn.h>

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

#endif
