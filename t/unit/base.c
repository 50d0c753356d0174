/* Unit tests of base/: CRC-32C against its check value, the SSE4.2 and the
 * bitwise code agreeing at every length and alignment, joining two CRCs;
 * parse_size and fmt_bytes; json_str's escapes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

#include "unit.h"

static void crc(void)
{
	static unsigned char buf[8192 + 64];

	/* The CRC-32C check value (RFC 3720 B.4 lists the algorithm; every
	 * catalogue of CRCs gives 0xE3069283 for "123456789"). */
	CHECK(img_crc(0, "123456789", 9) == 0xE3069283u, "crc32c(123456789) = %#x",
	      img_crc(0, "123456789", 9));
	CHECK(crc32c_sw(0, "123456789", 9) == 0xE3069283u, "bitwise crc32c(123456789)");
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 131 + (i >> 7));
	/* img_crc takes the three-lane SSE4.2 path on this CPU: every length
	 * (short, across lane boundaries, long) at every alignment gives what
	 * the bitwise loop gives. */
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len <= 8192; len += len < 64 ? 1 : 509) {
			uint32_t a = img_crc(0, buf + off, len), b = crc32c_sw(0, buf + off, len);
			if (a != b) {
				CHECK(0, "crc of %zu bytes at +%zu: %#x, bitwise %#x", len, off, a, b);
				return;
			}
		}
	passed++;
	/* Continuing a CRC and joining two are the CRC of the whole. */
	for (size_t cut = 0; cut <= 8192; cut += 1021) {
		uint32_t whole = img_crc(0, buf, 8192);
		uint32_t a = img_crc(0, buf, cut), b = img_crc(0, buf + cut, 8192 - cut);
		CHECK(img_crc(a, buf + cut, 8192 - cut) == whole, "continued at %zu", cut);
		CHECK(img_crc_combine(a, b, 8192 - cut) == whole, "combined at %zu", cut);
	}
}

static void sizes(void)
{
	char b[32];

	CHECK(parse_size("4096") == 4096, "parse_size 4096");
	CHECK(parse_size("64k") == 64 << 10 && parse_size("64K") == 64 << 10, "parse_size 64k");
	CHECK(parse_size("2MiB") == 2 << 20, "parse_size 2MiB");
	CHECK(parse_size("1G") == 1ll << 30, "parse_size 1G");
	CHECK(parse_size("") < 0 && parse_size("12x") < 0 && parse_size("-1") < 0,
	      "parse_size refuses '', 12x, -1");
	CHECK(!strcmp(fmt_bytes(b, sizeof(b), 512), "512 B"), "fmt_bytes 512: %s", b);
	CHECK(!strcmp(fmt_bytes(b, sizeof(b), 7ull << 19), "3.5 MiB"), "fmt_bytes 3.5 MiB: %s", b);
	CHECK(!strcmp(fmt_bytes(b, sizeof(b), 3ull << 30), "3.0 GiB"), "fmt_bytes 3 GiB: %s", b);
}

static void json(void)
{
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);

	json_str(f, "a\"b\\c\n\x7f\xc3\xa9", 9);
	fclose(f);
	CHECK(!strcmp(s, "\"a\\\"b\\\\c\\u000a\\u007f\\u00c3\\u00a9\""), "json_str: %s", s);
	free(s);
}

int main(void)
{
	crc();
	sizes();
	json();
	return unit_done("base");
}
