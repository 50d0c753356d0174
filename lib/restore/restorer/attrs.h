/* attrs.h: the process attributes the restorer sets (attrs.c), as
 * ckpt-remap planned them (lib/restore/attrs.c).  Plain structs, no libc. */
#ifndef CKPT_RESTORER_ATTRS_H
#define CKPT_RESTORER_ATTRS_H

#include <stdint.h>

#include "image/format.h"

#define RST_A_RLIMITS 1u    /* set rlim[] where it differs from ours */
#define RST_A_CAPS 2u	    /* capability sets, bounding and ambient as the image's */
#define RST_A_SECUREBITS 4u /* PR_SET_SECUREBITS */
#define RST_A_NO_NEW_PRIVS 8u
#define RST_A_DUMPABLE 16u /* PR_SET_DUMPABLE to dumpable */

/* struct sock_fprog, as seccomp(2) takes it. */
struct rst_fprog {
	uint16_t len;
	uint16_t pad[3];
	uint64_t filter; /* struct sock_filter[len] */
};

struct rst_attrs {
	uint32_t flags; /* RST_A_* */
	uint32_t nthreads;
	uint64_t threads; /* struct img_attrs_thread[nthreads], in rst_thread order */
	struct img_rlimit rlim[IMG_NRLIMIT];
	struct img_rlimit our_rlim[IMG_NRLIMIT]; /* ckpt-remap's: only what differs is set */
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	uint64_t our_prm, our_eff, our_bnd; /* ckpt-remap's */
	uint32_t securebits;
	uint32_t dumpable;
	uint32_t nfilters;
	uint32_t pad;
	uint64_t filters; /* struct rst_fprog[nfilters], the first installed first */
	uint32_t filter_flags[IMG_MAX_FILTERS]; /* seccomp(2) flags of each */
};

/* Thread i (0: the main one) sets its own scheduling, nice, affinity,
 * timer slack and no_new_privs, and (i > 0) its capabilities.  0, or a
 * negative errno with *what naming the attribute. */
long rst_attrs_thread(const struct rst_attrs *at, uint64_t i, const char **what);
/* The main thread, last, once every other thread has its own set: its
 * own (rst_attrs_thread), the limits, dumpable, its capabilities, then
 * the seccomp filters, for every thread at once. */
long rst_attrs_last(const struct rst_attrs *at, const char **what, uint64_t *which);

#endif
