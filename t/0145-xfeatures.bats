#!/usr/bin/env bats
# An image from a CPU with XSAVE features this one lacks: ckpt-remap refuses
# it before the point of no return, naming them; --force restores it with a
# warning, and forces nothing else.

bats_require_minimum_version 1.5.0
load lib

# One image for the file: t/progs/bulk, dumped with --kill, its go file
# there; then a copy that claims an XSAVE feature this CPU lacks, in the
# header (XCR0 of the dumping CPU) and in every thread's XSAVE header
# (xstate_bv), checksums recomputed (ckpt-image(5)).
setup_file() {
	local pid cat_pid
	bulk_killed "$BATS_FILE_TMPDIR/b" "$BATS_FILE_TMPDIR/img" --thread 2
	python3 - "$BATS_FILE_TMPDIR/img" "$BATS_FILE_TMPDIR/foreign.img" >"$BATS_FILE_TMPDIR/bit" <<'EOF'
import struct, sys

def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xffffffff

img = bytearray(open(sys.argv[1], "rb").read())
xcr0 = struct.unpack_from("<Q", img, 24)[0]
# A user-state feature this CPU lacks: PKRU, MPX, AMX tile config, APX, UINTR.
bit = next(b for b in (9, 3, 4, 17, 19, 14) if not xcr0 >> b & 1)
struct.pack_into("<Q", img, 24, xcr0 | 1 << bit)
struct.pack_into("<I", img, 188, 0)
struct.pack_into("<I", img, 188, crc32c(img[:192]))
off, threads = 192, 0
while off < len(img):
    rtype, _, rlen = struct.unpack_from("<IIQ", img, off)
    if rtype == 2:  # THREAD: struct img_thread (312 bytes), then the XSAVE area
        xlen = struct.unpack_from("<I", img, off + 16 + 292)[0]
        assert xlen == rlen - 312
        bv = off + 16 + 312 + 512  # xstate_bv, first word of the XSAVE header
        struct.pack_into("<Q", img, bv, struct.unpack_from("<Q", img, bv)[0] | 1 << bit)
        struct.pack_into("<I", img, off + 4, 0)
        crc = crc32c(img[off:off + 16 + rlen])
        struct.pack_into("<I", img, off + 4, crc)
        threads += 1
    if rtype == 5:  # DATA: the metadata ends here
        break
    off += 16 + rlen
assert threads == 2
open(sys.argv[2], "wb").write(img)
print(bit)
EOF
}

setup() {
	img=$BATS_FILE_TMPDIR/foreign.img
	bit=$(cat "$BATS_FILE_TMPDIR/bit")
}

@test "the crafted image is sound but for the feature: its checksums verify" {
	ckpt-inspect --verify "$img"
	ckpt-inspect "$img" | grep "xsave features"
}

@test "an image with an XSAVE feature this CPU lacks: 99 before anything runs, naming the feature" {
	restore "$img"
	no_core
	[ "$status" -eq 99 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "ckpt-remap: the image needs XSAVE features this CPU lacks: bit $bit ("*")"*"--ignore-cpu"* ]]
	[ -z "$output" ]
	# The same through a pipe, and with --new-pids: checked before all.
	run --separate-stderr ckpt-remap --new-pids - <"$img"
	[ "$status" -eq 99 ]
	[[ $stderr == *"XSAVE features this CPU lacks: bit $bit"* ]]
}

@test "--force restores it, with one warning that names the feature and the risk" {
	restore --force "$img"
	[ "$status" -eq 0 ]
	[ "$output" = "restored: yes" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "ckpt-remap: warning: --ignore-cpu: restoring without XSAVE features this CPU lacks: bit $bit ("*")"*SIGILL* ]]
}

@test "--force forces nothing else: a damaged image is still refused" {
	local bad=$BATS_TEST_TMPDIR/bad.img
	cp "$img" "$bad"
	invert_byte "$bad" 300
	restore --force "$bad"
	no_core
	[ "$status" -eq 99 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == *checksum* ]]
	[ -z "$output" ]
}

@test "the image as dumped restores without --force" {
	restore "$BATS_FILE_TMPDIR/img"
	intact_and_restored
}
