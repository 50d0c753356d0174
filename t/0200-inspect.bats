#!/usr/bin/env bats
# ckpt-inspect shows what an image holds; ckpt-dump and ckpt-remap show
# progress only when asked (or on a terminal).

load lib

bats_require_minimum_version 1.5.0

setup() {
	start_bg sleep 1000
	# The image of a process stopped in nanosleep is dumped in a known state.
	wait_for state_is "$BG_PID" S
	IMG=$BATS_TEST_TMPDIR/sleep.img
	ckpt-dump -o "$IMG" "$BG_PID"
}

@test "inspect shows the header, the process, its regions and its files" {
	run --separate-stderr ckpt-inspect "$IMG"
	[ "$status" -eq 0 ]
	[[ "$output" == *"ckpt image version 2, x86-64, page size 4096"* ]]
	[[ "$output" == *"process:  pid $BG_PID (sleep)"* ]]
	[[ "$output" == *"command:  sleep 1000"* ]]
	[[ "$output" == *"in system call"* ]]
	[[ "$output" == *"[vdso]"* ]]
	[[ "$output" == *"[stack]"* || "$output" == *" stack "* ]]
	[[ "$output" == *"libc.so.6"* ]]
	[[ "$output" == *"checksums ok"* ]]
}

@test "inspect reads gzip, xz and zstd images and stdin, and says they were compressed" {
	ckpt-gzip <"$IMG" >"$IMG.gz"
	xz -c <"$IMG" >"$IMG.xz"
	zstd -q -c <"$IMG" >"$IMG.zst"
	plain=$(ckpt-inspect "$IMG" | grep -v '^format')
	for f in "$IMG.gz" "$IMG.xz" "$IMG.zst"; do
		run ckpt-inspect "$f"
		[ "$status" -eq 0 ]
		[[ "${lines[0]}" == *", compressed" ]]
		[ "$(grep -v '^format' <<<"$output")" = "$plain" ]
	done
	run ckpt-inspect - <"$IMG.gz"
	[ "$status" -eq 0 ]
	[ "$(grep -v '^format' <<<"$output")" = "$plain" ]
}

@test "inspect --json is one JSON document whose region bytes add up to the data" {
	run --separate-stderr ckpt-inspect --json "$IMG"
	[ "$status" -eq 0 ]
	python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["process"]["pid"] == int(sys.argv[2]), d["process"]
assert d["process"]["argv"] == ["sleep", "1000"], d["process"]["argv"]
assert d["threads"][0]["tid"] == int(sys.argv[2])
stored = sum(r["stored_bytes"] for r in d["regions"])
assert stored == d["data"]["bytes"] > 0, (stored, d["data"])
assert any(r["name"] == "[vdso]" and r["stored_bytes"] == 0 for r in d["regions"])
assert [f["fd"] for f in d["files"]] == sorted(f["fd"] for f in d["files"])
' "$output" "$BG_PID"
}

@test "inspect of a truncated image fails with one line naming the cut" {
	size=$(stat -c %s "$IMG")
	head -c $((size - 100)) "$IMG" >"$BATS_TEST_TMPDIR/cut.img"
	run --separate-stderr ckpt-inspect "$BATS_TEST_TMPDIR/cut.img"
	one_line 1 truncated ckpt-inspect
}

@test "--verify prints one line of totals for a good image, and exit 1 naming the record for a flipped byte" {
	run --separate-stderr ckpt-inspect --verify "$IMG"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "$IMG: "*" records, "*"every checksum ok" ]]
	# A byte in the middle of the page data, then one in the metadata.
	size=$(stat -c %s "$IMG")
	for at in $((size / 2)) 300; do
		cp "$IMG" "$BATS_TEST_TMPDIR/bad.img"
		invert_byte "$BATS_TEST_TMPDIR/bad.img" "$at"
		run --separate-stderr ckpt-inspect --verify "$BATS_TEST_TMPDIR/bad.img"
		one_line 1 "checksum mismatch" ckpt-inspect
	done
	run --separate-stderr ckpt-inspect --json --verify "$IMG"
	[ "$status" -eq 2 ]
}

# after_end WHAT TEXT: the last run failed with status 1 and one line,
# "ckpt-inspect: WHAT: TEXT...".
after_end() {
	echo "$stderr"
	[ "$status" -eq 1 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "ckpt-inspect: $1: $2"* ]]
}

@test "--verify of an image with bytes after its END record: exit 1, one line with their offset and count" {
	local size j=$BATS_TEST_TMPDIR/junk.img
	size=$(stat -c %s "$IMG")
	cp "$IMG" "$j"
	printf 'appended' >>"$j"
	run --separate-stderr ckpt-inspect --verify "$j"
	after_end "$j" "8 bytes after the END record, from offset $size: not part of the image"
	run --separate-stderr ckpt-inspect "$j"
	after_end "$j" "8 bytes after the END record, from offset $size"
	# Standard input, a file and a pipe.
	run --separate-stderr ckpt-inspect --verify - <"$j"
	after_end "standard input" "8 bytes after the END record, from offset $size"
	run --separate-stderr bash -c 'cat "$1" | ckpt-inspect --verify -' _ "$j"
	after_end "standard input" "8 bytes after the END record, from offset $size"
	# The image twice in a row is not an image.
	cat "$IMG" "$IMG" >"$j"
	run --separate-stderr ckpt-inspect --verify "$j"
	after_end "$j" "$size bytes after the END record, from offset $size"
	# Compressed: inside the stream, or a second image in a second gzip
	# member (gzip -d would join them), the decompressed stream goes on
	# after END.
	{ cat "$IMG"; printf 'appended'; } | ckpt-gzip --zstd -o "$j.zst"
	run --separate-stderr ckpt-inspect --verify "$j.zst"
	after_end "$j.zst" "8 bytes after the END record, from offset $size of the decompressed stream"
	ckpt-gzip -o "$j.gz" <"$IMG"
	cat "$j.gz" "$j.gz" >"$j.2.gz"
	run --separate-stderr ckpt-inspect --verify "$j.2.gz"
	after_end "$j.2.gz" "$size bytes after the END record, from offset $size of the decompressed stream"
	# Bytes after the gzip stream are the decompressor's to name.
	cat "$j.gz" - <<<appended >"$j.3.gz"
	run --separate-stderr ckpt-inspect --verify "$j.3.gz"
	after_end "$j.3.gz" "decompress: trailing garbage after gzip data"
	# The image itself still verifies.
	run --separate-stderr ckpt-inspect --verify "$IMG"
	[ "$status" -eq 0 ]
}

@test "inspect with a bad option or two operands exits 2 with the usage line" {
	run --separate-stderr ckpt-inspect --bogus
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"usage: ckpt-inspect"* ]]
	run --separate-stderr ckpt-inspect a b
	[ "$status" -eq 2 ]
}

# A dump slowed down by a slow reader takes seconds: long enough for the
# progress line, which only --progress shows when stderr is not a terminal.
slow_reader() {
	python3 -c '
import sys, time
while sys.stdin.buffer.read(1 << 16):
    time.sleep(0.004)
'
}

@test "--progress shows a progress line for a dump of over a second; without it, none" {
	kill_started
	start_bg python3 -c '
import os, sys, time
b = os.urandom(48 << 20)
print("ready", flush=True)
time.sleep(1000)
'
	wait_for_line "$BATS_TEST_TMPDIR/bg.out" ready
	ckpt-dump --progress "$BG_PID" 2>"$BATS_TEST_TMPDIR/progress" | slow_reader
	grep -q "ckpt-dump: dumped .* MiB" "$BATS_TEST_TMPDIR/progress"
	ckpt-dump "$BG_PID" 2>"$BATS_TEST_TMPDIR/quiet" | slow_reader
	[ ! -s "$BATS_TEST_TMPDIR/quiet" ]
	ckpt-dump --progress --quiet "$BG_PID" 2>"$BATS_TEST_TMPDIR/quiet" | slow_reader
	[ ! -s "$BATS_TEST_TMPDIR/quiet" ]
}

@test "--progress shows a progress line for a restore of over a second" {
	kill_started
	start_bg python3 -c '
import os, sys, time
b = os.urandom(48 << 20)
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
assert len(b) == 48 << 20
' "$BATS_TEST_TMPDIR/go"
	wait_for_line "$BATS_TEST_TMPDIR/bg.out" ready
	ckpt-dump --kill -o "$BATS_TEST_TMPDIR/py.img" "$BG_PID"
	touch "$BATS_TEST_TMPDIR/go"
	# Feed the restore slowly through a pipe.
	run --separate-stderr bash -c 'python3 -c "
import sys, time
f = open(sys.argv[1], \"rb\")
while True:
    b = f.read(1 << 16)
    if not b:
        break
    sys.stdout.buffer.write(b)
    sys.stdout.flush()
    time.sleep(0.004)
" "$1" | ckpt-remap --allow-other-user --progress -' _ "$BATS_TEST_TMPDIR/py.img"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"ckpt-remap: restored "*" MiB"* ]]
}
