/* vecregs: vector registers survive a checkpoint taken at any instruction.
 *
 * usage: vecregs [-t N] [avx512 | avx | sse]
 *
 * With -t N, N threads (the main one among them) do it at once, each with
 * its own patterns and a counter in thread-local storage.
 *
 * Uses the widest register file the CPU has (or the one named): zmm0-31 and
 * the mask registers k0-7 with AVX-512F, ymm0-15 with AVX, xmm0-15
 * otherwise, and MXCSR in every case.  Prints "ready PID" first (printf
 * clobbers vector registers), then in one asm block loads every register
 * with a distinct pattern, spins without calls or system calls until
 * SIGUSR1 sets a flag, and stores every register back.  Exits 0 if all hold
 * their pattern, 1 naming the first that does not. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t flag;

static void on_usr1(int sig)
{
	(void)sig;
	flag = 1;
}

/* One thread's register images: 32 registers of up to 64 bytes, 8 mask
 * registers, MXCSR. */
struct regset {
	uint8_t in[32 * 64] __attribute__((aligned(64)));
	uint8_t out[32 * 64] __attribute__((aligned(64)));
	uint64_t kin[8], kout[8];
	uint32_t mxcsr_in, mxcsr_out;
	int index, bad;
	pthread_t thread;
};

static __thread uint64_t tls_count;
static const char *level, *name;
static int nregs, width, nk, kbytes, bw;
static volatile int started;

#define R16(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define R32(M)                                                                                     \
	R16(M)                                                                                     \
	M(16) M(17) M(18) M(19) M(20) M(21) M(22) M(23) M(24) M(25) M(26) M(27) M(28) M(29) M(30)  \
	    M(31)
#define R8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)

#define SPIN "1: pause\n\tcmpl $0, %[flag]\n\tje 1b\n\t"
#define MXLOAD "ldmxcsr %[mxin]\n\t"
#define MXSTORE "stmxcsr %[mxout]\n\t"
#define OPERANDS                                                                                   \
	: [mxout] "=m"(s->mxcsr_out)                                                       \
	: [in] "r"(s->in), [out] "r"(s->out), [kin] "r"(s->kin), [kout] "r"(s->kout),        \
	  [flag] "m"(flag), [mxin] "m"(s->mxcsr_in)
#define XMM_CLOBBERS                                                                               \
	"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",   \
	    "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
#define XMM_HI_CLOBBERS                                                                            \
	"xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25",  \
	    "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31"
#define K_CLOBBERS "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"

#define LOAD_X(n) "movdqu " #n "*64(%[in]), %%xmm" #n "\n\t"
#define STORE_X(n) "movdqu %%xmm" #n ", " #n "*64(%[out])\n\t"
#define LOAD_Y(n) "vmovdqu " #n "*64(%[in]), %%ymm" #n "\n\t"
#define STORE_Y(n) "vmovdqu %%ymm" #n ", " #n "*64(%[out])\n\t"
#define LOAD_Z(n) "vmovdqu64 " #n "*64(%[in]), %%zmm" #n "\n\t"
#define STORE_Z(n) "vmovdqu64 %%zmm" #n ", " #n "*64(%[out])\n\t"
#define LOAD_KW(n) "kmovw " #n "*8(%[kin]), %%k" #n "\n\t"
#define STORE_KW(n) "kmovw %%k" #n ", " #n "*8(%[kout])\n\t"
#define LOAD_KQ(n) "kmovq " #n "*8(%[kin]), %%k" #n "\n\t"
#define STORE_KQ(n) "kmovq %%k" #n ", " #n "*8(%[kout])\n\t"

static void run_sse(struct regset *s)
{
	__asm__ volatile(MXLOAD R16(LOAD_X) SPIN R16(STORE_X) MXSTORE OPERANDS
			 : "memory", "cc", XMM_CLOBBERS);
}

__attribute__((target("avx"))) static void run_avx(struct regset *s)
{
	__asm__ volatile(MXLOAD R16(LOAD_Y) SPIN R16(STORE_Y) MXSTORE "vzeroupper\n\t" OPERANDS
			 : "memory", "cc", XMM_CLOBBERS);
}

__attribute__((target("avx512f"))) static void run_avx512f(struct regset *s)
{
	__asm__ volatile(MXLOAD R32(LOAD_Z) R8(LOAD_KW) SPIN R32(STORE_Z) R8(STORE_KW) MXSTORE
			 "vzeroupper\n\t" OPERANDS
			 : "memory", "cc", XMM_CLOBBERS, XMM_HI_CLOBBERS, K_CLOBBERS);
}

__attribute__((target("avx512f,avx512bw"))) static void run_avx512bw(struct regset *s)
{
	__asm__ volatile(MXLOAD R32(LOAD_Z) R8(LOAD_KQ) SPIN R32(STORE_Z) R8(STORE_KQ) MXSTORE
			 "vzeroupper\n\t" OPERANDS
			 : "memory", "cc", XMM_CLOBBERS, XMM_HI_CLOBBERS, K_CLOBBERS);
}

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill(struct regset *s, int index)
{
	for (size_t i = 0; i < sizeof(s->in) / 8; i++) {
		uint64_t w = mix(0x5eed0000 + i + ((uint64_t)index << 32));
		memcpy(s->in + i * 8, &w, 8);
	}
	for (int i = 0; i < 8; i++)
		s->kin[i] = mix(0x6b000000 + i + ((uint64_t)index << 32));
	s->mxcsr_in = 0x1f80 | 0x6000 | 0x8000; /* round to zero, FTZ */
	s->index = index;
}

/* Load, spin, store, check: for one thread. */
static void *run(void *arg)
{
	struct regset *s = arg;
	uint32_t mx_default;
	char who[32] = "";

	tls_count = 1000 * (uint64_t)s->index + 7;
	__atomic_add_fetch(&started, 1, __ATOMIC_RELEASE);
	__asm__ volatile("stmxcsr %0" : "=m"(mx_default));
	if (!strcmp(level, "avx512"))
		bw ? run_avx512bw(s) : run_avx512f(s);
	else if (!strcmp(level, "avx"))
		run_avx(s);
	else
		run_sse(s);
	/* Back to the usual MXCSR before any C floating point. */
	__asm__ volatile("ldmxcsr %0" : : "m"(mx_default));
	if (s->index)
		snprintf(who, sizeof(who), "thread %d: ", s->index);
	for (int r = 0; r < nregs && !s->bad; r++)
		for (int b = 0; b < width; b++)
			if (s->out[r * 64 + b] != s->in[r * 64 + b]) {
				fprintf(stderr,
					"vecregs: %s%s%d differs at byte %d: 0x%02x, not 0x%02x\n",
					who, name, r, b, s->out[r * 64 + b], s->in[r * 64 + b]);
				s->bad = 1;
				break;
			}
	for (int k = 0; k < nk && !s->bad; k++)
		if (memcmp(&s->kout[k], &s->kin[k], kbytes)) {
			fprintf(stderr, "vecregs: %sk%d differs: %#llx, not %#llx\n", who, k,
				(unsigned long long)s->kout[k], (unsigned long long)s->kin[k]);
			s->bad = 1;
		}
	if (!s->bad && s->mxcsr_out != s->mxcsr_in) {
		fprintf(stderr, "vecregs: %sMXCSR differs: %#x, not %#x\n", who, s->mxcsr_out,
			s->mxcsr_in);
		s->bad = 1;
	}
	if (!s->bad && tls_count != 1000 * (uint64_t)s->index + 7) {
		fprintf(stderr, "vecregs: %sthread-local counter is %llu\n", who,
			(unsigned long long)tls_count);
		s->bad = 1;
	}
	return NULL;
}

static void usage(void)
{
	fputs("usage: vecregs [-t N] [avx512 | avx | sse]\n", stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	int avx512, avx, bad = 0, nthreads = 1, argi = 1;
	struct regset *sets;
	struct sigaction sa;

	__builtin_cpu_init();
	avx512 = __builtin_cpu_supports("avx512f");
	bw = avx512 && __builtin_cpu_supports("avx512bw");
	avx = __builtin_cpu_supports("avx");
	if (argi + 1 < argc && !strcmp(argv[argi], "-t")) {
		nthreads = atoi(argv[argi + 1]);
		argi += 2;
		if (nthreads < 1 || nthreads > 1024)
			usage();
	}
	level = argi < argc ? argv[argi++] : NULL;
	if (argi < argc ||
	    (level && strcmp(level, "avx512") && strcmp(level, "avx") && strcmp(level, "sse")))
		usage();
	if (!level)
		level = avx512 ? "avx512" : avx ? "avx" : "sse";
	if ((!strcmp(level, "avx512") && !avx512) || (!strcmp(level, "avx") && !avx)) {
		fprintf(stderr, "vecregs: this CPU has no %s\n", level);
		return 2;
	}
	if (!strcmp(level, "avx512")) {
		name = "zmm", nregs = 32, width = 64, nk = 8, kbytes = bw ? 8 : 2;
	} else if (!strcmp(level, "avx")) {
		name = "ymm", nregs = 16, width = 32;
	} else {
		name = "xmm", nregs = 16, width = 16;
	}
	if (posix_memalign((void **)&sets, 64, nthreads * sizeof(*sets)))
		return 2;
	memset(sets, 0, nthreads * sizeof(*sets));
	for (int i = 0; i < nthreads; i++)
		fill(&sets[i], i);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL)) {
		perror("vecregs: sigaction");
		return 2;
	}
	for (int i = 1; i < nthreads; i++)
		if (pthread_create(&sets[i].thread, NULL, run, &sets[i])) {
			perror("vecregs: pthread_create");
			return 2;
		}
	while (__atomic_load_n(&started, __ATOMIC_ACQUIRE) < nthreads - 1)
		sched_yield();
	printf("level: %s\nready %d\n", level, (int)getpid());
	fflush(stdout);
	run(&sets[0]);
	for (int i = 1; i < nthreads; i++)
		pthread_join(sets[i].thread, NULL);
	for (int i = 0; i < nthreads; i++)
		bad |= sets[i].bad;
	free(sets);
	if (!bad)
		printf("%s registers intact\n", level);
	return bad;
}
