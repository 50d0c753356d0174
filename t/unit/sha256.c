/* Unit tests of SHA-256 and HMAC-SHA-256 against the published vectors:
 * FIPS 180-4's examples (one block, two blocks, a million 'a's) and
 * RFC 4231's HMAC test cases 1, 2 and 6 (a key longer than a block). */
#include <stdio.h>
#include <string.h>

#include "base/base.h"

static int failed, passed;

static void hex(const uint8_t *d, char *out)
{
	for (int i = 0; i < SHA256_LEN; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void check(const char *what, const uint8_t *got, const char *want)
{
	char h[2 * SHA256_LEN + 1];

	hex(got, h);
	if (strcmp(h, want)) {
		failed++;
		fprintf(stderr, "FAIL %s: %s, want %s\n", what, h, want);
	} else {
		passed++;
	}
}

static void sha(const char *what, const void *d, size_t n, const char *want)
{
	struct sha256 s;
	uint8_t out[SHA256_LEN];

	sha256_init(&s);
	sha256_update(&s, d, n);
	sha256_final(&s, out);
	check(what, out, want);
}

static void hmac(const char *what, const void *k, size_t kn, const void *d, size_t dn,
		 const char *want)
{
	uint8_t out[SHA256_LEN];
	/* Two parts, cut anywhere: the same as one. */
	const void *part[2] = {d, (const char *)d + dn / 3};
	size_t len[2] = {dn / 3, dn - dn / 3};

	hmac_sha256(k, kn, part, len, 2, out);
	check(what, out, want);
}

int main(void)
{
	static char million[1000000];
	uint8_t key[131];
	struct sha256 s;
	uint8_t out[SHA256_LEN];

	sha("abc", "abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha("empty", "", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha("two blocks", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	memset(million, 'a', sizeof(million));
	sha("a million a", million, sizeof(million),
	    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	/* Fed a byte at a time: the same. */
	sha256_init(&s);
	for (int i = 0; i < 3; i++)
		sha256_update(&s, "abc" + i, 1);
	sha256_final(&s, out);
	check("abc by bytes", out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

	memset(key, 0x0b, 20);
	hmac("rfc4231 1", key, 20, "Hi There", 8,
	     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	hmac("rfc4231 2", "Jefe", 4, "what do ya want for nothing?", 28,
	     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	memset(key, 0xaa, sizeof(key));
	hmac("rfc4231 6", key, 131, "Test Using Larger Than Block-Size Key - Hash Key First", 54,
	     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	printf("sha256: %d passed, %d failed\n", passed, failed);
	return failed != 0;
}
