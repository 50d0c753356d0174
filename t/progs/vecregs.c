/* vecregs: vector registers survive a checkpoint taken at any instruction.
 *
 * usage: vecregs [avx512 | avx | sse]
 *
 * Uses the widest register file the CPU has (or the one named): zmm0-31 and
 * the mask registers k0-7 with AVX-512F, ymm0-15 with AVX, xmm0-15
 * otherwise, and MXCSR in every case.  Prints "ready PID" first (printf
 * clobbers vector registers), then in one asm block loads every register
 * with a distinct pattern, spins without calls or system calls until
 * SIGUSR1 sets a flag, and stores every register back.  Exits 0 if all hold
 * their pattern, 1 naming the first that does not. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t flag;

static void on_usr1(int sig)
{
	(void)sig;
	flag = 1;
}

/* Register images: 32 registers of up to 64 bytes, 8 mask registers. */
static uint8_t in[32 * 64] __attribute__((aligned(64)));
static uint8_t out[32 * 64] __attribute__((aligned(64)));
static uint64_t kin[8], kout[8];
static uint32_t mxcsr_in = 0x1f80 | 0x6000 | 0x8000, mxcsr_out; /* round to zero, FTZ */

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
	: [mxout] "=m"(mxcsr_out)                                                          \
	: [in] "r"(in), [out] "r"(out), [kin] "r"(kin), [kout] "r"(kout), [flag] "m"(flag), \
	  [mxin] "m"(mxcsr_in)
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

static void run_sse(void)
{
	__asm__ volatile(MXLOAD R16(LOAD_X) SPIN R16(STORE_X) MXSTORE OPERANDS
			 : "memory", "cc", XMM_CLOBBERS);
}

__attribute__((target("avx"))) static void run_avx(void)
{
	__asm__ volatile(MXLOAD R16(LOAD_Y) SPIN R16(STORE_Y) MXSTORE "vzeroupper\n\t" OPERANDS
			 : "memory", "cc", XMM_CLOBBERS);
}

__attribute__((target("avx512f"))) static void run_avx512f(void)
{
	__asm__ volatile(MXLOAD R32(LOAD_Z) R8(LOAD_KW) SPIN R32(STORE_Z) R8(STORE_KW) MXSTORE
			 "vzeroupper\n\t" OPERANDS
			 : "memory", "cc", XMM_CLOBBERS, XMM_HI_CLOBBERS, K_CLOBBERS);
}

__attribute__((target("avx512f,avx512bw"))) static void run_avx512bw(void)
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

int main(int argc, char **argv)
{
	const char *level = argc > 1 ? argv[1] : NULL, *name;
	int nregs, width, nk = 0, kbytes = 0, bw = 0, avx512, avx, bad = 0;
	struct sigaction sa;
	uint32_t mx_default;

	__builtin_cpu_init();
	avx512 = __builtin_cpu_supports("avx512f");
	bw = avx512 && __builtin_cpu_supports("avx512bw");
	avx = __builtin_cpu_supports("avx");
	if (argc > 2 ||
	    (level && strcmp(level, "avx512") && strcmp(level, "avx") && strcmp(level, "sse"))) {
		fputs("usage: vecregs [avx512 | avx | sse]\n", stderr);
		return 2;
	}
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

	for (size_t i = 0; i < sizeof(in) / 8; i++) {
		uint64_t w = mix(0x5eed0000 + i);
		memcpy(in + i * 8, &w, 8);
	}
	for (int i = 0; i < 8; i++)
		kin[i] = mix(0x6b000000 + i);
	memset(out, 0, sizeof(out));
	memset(kout, 0, sizeof(kout));

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL)) {
		perror("vecregs: sigaction");
		return 2;
	}
	__asm__ volatile("stmxcsr %0" : "=m"(mx_default));

	printf("level: %s\nready %d\n", level, (int)getpid());
	fflush(stdout);
	if (!strcmp(level, "avx512"))
		bw ? run_avx512bw() : run_avx512f();
	else if (!strcmp(level, "avx"))
		run_avx();
	else
		run_sse();
	/* Back to the usual MXCSR before any C floating point. */
	__asm__ volatile("ldmxcsr %0" : : "m"(mx_default));

	for (int r = 0; r < nregs && !bad; r++)
		for (int b = 0; b < width; b++)
			if (out[r * 64 + b] != in[r * 64 + b]) {
				fprintf(stderr,
					"vecregs: %s%d differs at byte %d: 0x%02x, not 0x%02x\n",
					name, r, b, out[r * 64 + b], in[r * 64 + b]);
				bad = 1;
				break;
			}
	for (int k = 0; k < nk && !bad; k++)
		if (memcmp(&kout[k], &kin[k], kbytes)) {
			fprintf(stderr, "vecregs: k%d differs: %#llx, not %#llx\n", k,
				(unsigned long long)kout[k], (unsigned long long)kin[k]);
			bad = 1;
		}
	if (!bad && mxcsr_out != mxcsr_in) {
		fprintf(stderr, "vecregs: MXCSR differs: %#x, not %#x\n", mxcsr_out, mxcsr_in);
		bad = 1;
	}
	if (!bad)
		printf("%s registers intact\n", level);
	return bad;
}
