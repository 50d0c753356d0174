/* cpu.c: the CPU record, the instruction-set features of the CPU that
 * wrote an image (ckpt-image(5), CPU), and their names. */
#include <cpuid.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "image/image.h"

/* The features whose absence makes an instruction fault (SIGILL), by the
 * CPUID word and bit that tell of each (Intel SDM vol. 2, CPUID; AMD
 * APM vol. 3, E.3); bits of other things (the hypervisor, OSXSAVE, the
 * APIC) differ between machines that run the same code, and are not
 * compared. */
static const struct cpu_feature {
	unsigned char word, bit;
	const char *name;
} features[] = {
    {IMG_CPU_1_ECX, 0, "SSE3"},
    {IMG_CPU_1_ECX, 1, "PCLMULQDQ"},
    {IMG_CPU_1_ECX, 9, "SSSE3"},
    {IMG_CPU_1_ECX, 12, "FMA"},
    {IMG_CPU_1_ECX, 13, "CMPXCHG16B"},
    {IMG_CPU_1_ECX, 19, "SSE4.1"},
    {IMG_CPU_1_ECX, 20, "SSE4.2"},
    {IMG_CPU_1_ECX, 22, "MOVBE"},
    {IMG_CPU_1_ECX, 23, "POPCNT"},
    {IMG_CPU_1_ECX, 25, "AES"},
    {IMG_CPU_1_ECX, 26, "XSAVE"},
    {IMG_CPU_1_ECX, 28, "AVX"},
    {IMG_CPU_1_ECX, 29, "F16C"},
    {IMG_CPU_1_ECX, 30, "RDRAND"},
    {IMG_CPU_1_EDX, 15, "CMOV"},
    {IMG_CPU_1_EDX, 23, "MMX"},
    {IMG_CPU_1_EDX, 25, "SSE"},
    {IMG_CPU_1_EDX, 26, "SSE2"},
    {IMG_CPU_7_EBX, 0, "FSGSBASE"},
    {IMG_CPU_7_EBX, 3, "BMI1"},
    {IMG_CPU_7_EBX, 4, "HLE"},
    {IMG_CPU_7_EBX, 5, "AVX2"},
    {IMG_CPU_7_EBX, 8, "BMI2"},
    {IMG_CPU_7_EBX, 11, "RTM"},
    {IMG_CPU_7_EBX, 16, "AVX-512F"},
    {IMG_CPU_7_EBX, 17, "AVX-512DQ"},
    {IMG_CPU_7_EBX, 18, "RDSEED"},
    {IMG_CPU_7_EBX, 19, "ADX"},
    {IMG_CPU_7_EBX, 21, "AVX-512IFMA"},
    {IMG_CPU_7_EBX, 23, "CLFLUSHOPT"},
    {IMG_CPU_7_EBX, 24, "CLWB"},
    {IMG_CPU_7_EBX, 26, "AVX-512PF"},
    {IMG_CPU_7_EBX, 27, "AVX-512ER"},
    {IMG_CPU_7_EBX, 28, "AVX-512CD"},
    {IMG_CPU_7_EBX, 29, "SHA"},
    {IMG_CPU_7_EBX, 30, "AVX-512BW"},
    {IMG_CPU_7_EBX, 31, "AVX-512VL"},
    {IMG_CPU_7_ECX, 1, "AVX-512VBMI"},
    {IMG_CPU_7_ECX, 3, "PKU"},
    {IMG_CPU_7_ECX, 5, "WAITPKG"},
    {IMG_CPU_7_ECX, 6, "AVX-512VBMI2"},
    {IMG_CPU_7_ECX, 8, "GFNI"},
    {IMG_CPU_7_ECX, 9, "VAES"},
    {IMG_CPU_7_ECX, 10, "VPCLMULQDQ"},
    {IMG_CPU_7_ECX, 11, "AVX-512VNNI"},
    {IMG_CPU_7_ECX, 12, "AVX-512BITALG"},
    {IMG_CPU_7_ECX, 14, "AVX-512VPOPCNTDQ"},
    {IMG_CPU_7_ECX, 22, "RDPID"},
    {IMG_CPU_7_ECX, 27, "MOVDIRI"},
    {IMG_CPU_7_ECX, 28, "MOVDIR64B"},
    {IMG_CPU_7_EDX, 2, "AVX-512_4VNNIW"},
    {IMG_CPU_7_EDX, 3, "AVX-512_4FMAPS"},
    {IMG_CPU_7_EDX, 8, "AVX-512VP2INTERSECT"},
    {IMG_CPU_7_EDX, 14, "SERIALIZE"},
    {IMG_CPU_7_EDX, 22, "AMX-BF16"},
    {IMG_CPU_7_EDX, 23, "AVX-512FP16"},
    {IMG_CPU_7_EDX, 24, "AMX-TILE"},
    {IMG_CPU_7_EDX, 25, "AMX-INT8"},
    {IMG_CPU_7_1_EAX, 4, "AVX-VNNI"},
    {IMG_CPU_7_1_EAX, 5, "AVX-512BF16"},
    {IMG_CPU_80000001_ECX, 0, "LAHF-SAHF"},
    {IMG_CPU_80000001_ECX, 5, "LZCNT"},
    {IMG_CPU_80000001_ECX, 6, "SSE4A"},
    {IMG_CPU_80000001_ECX, 8, "PREFETCHW"},
    {IMG_CPU_80000001_ECX, 11, "XOP"},
    {IMG_CPU_80000001_ECX, 16, "FMA4"},
    {IMG_CPU_80000001_ECX, 21, "TBM"},
    {IMG_CPU_80000001_EDX, 27, "RDTSCP"},
};

void img_cpu_here(struct img_cpu *c)
{
	unsigned a, b, cx, d, max, xmax;

	memset(c, 0, sizeof(*c));
	max = __get_cpuid_max(0, NULL);
	xmax = __get_cpuid_max(0x80000000u, NULL);
	if (max >= 1) {
		__cpuid(1, a, b, cx, d);
		c->words[IMG_CPU_1_ECX] = cx;
		c->words[IMG_CPU_1_EDX] = d;
	}
	if (max >= 7) {
		__cpuid_count(7, 0, a, b, cx, d);
		c->words[IMG_CPU_7_EBX] = b;
		c->words[IMG_CPU_7_ECX] = cx;
		c->words[IMG_CPU_7_EDX] = d;
		if (a >= 1) {
			__cpuid_count(7, 1, a, b, cx, d);
			c->words[IMG_CPU_7_1_EAX] = a;
		}
	}
	if (xmax >= 0x80000001u) {
		__cpuid(0x80000001u, a, b, cx, d);
		c->words[IMG_CPU_80000001_ECX] = cx;
		c->words[IMG_CPU_80000001_EDX] = d;
	}
}

size_t img_cpu_names(const struct img_cpu *has, const struct img_cpu *lacks, char *buf, size_t size)
{
	size_t len = 0, n = 0;

	buf[0] = 0;
	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
		const struct cpu_feature *f = &features[i];
		uint32_t bit = 1u << f->bit;

		if (!(has->words[f->word] & bit) || (lacks && (lacks->words[f->word] & bit)))
			continue;
		n++;
		if (len < size)
			len += snprintf(buf + len, size - len, "%s%s", len ? ", " : "", f->name);
	}
	return n;
}

int img_parse_cpu(struct image *im, const void *buf, uint64_t len)
{
	if (im->cpu) {
		err_set("second CPU record");
		return -1;
	}
	if (len != sizeof(struct img_cpu)) {
		err_set("CPU record of bad length %llu", (unsigned long long)len);
		return -1;
	}
	if (!(im->cpu = malloc(sizeof(*im->cpu)))) {
		err_set("out of memory");
		return -1;
	}
	memcpy(im->cpu, buf, sizeof(*im->cpu));
	if (im->cpu->flags || im->cpu->pad) {
		err_set("CPU record: unknown flags %#x or padding", im->cpu->flags);
		return -1;
	}
	return 0;
}
