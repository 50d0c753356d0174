#!/usr/bin/env bats
# Bad input to ckpt-dump and ckpt-remap: one line on stderr prefixed with the
# tool's name, the documented status (ckpt-dump 1 or 2, ckpt-remap
# CKPT_FAIL_RC = 99), and never a crash.

bats_require_minimum_version 1.5.0
load lib

# workload_bg DIR OUT [OPTION...]: t/progs/workload on DIR in the background,
# output to OUT; waits for "ready" and sets $pid.
workload_bg() {
	local dir=$1 out=$2
	shift 2
	mkdir "$dir"
	exec_clean workload "$@" "$dir" </dev/null >"$out" 2>&1 &
	pid=$!
	wait_for_line "$out" '^ready '
}

# One real image for the whole file: t/progs/workload, dumped with --kill,
# its DIR/go already there, so that an image wrongly accepted would run it
# to its end at once instead of hanging the test.
setup_file() {
	local pid
	workload_bg "$BATS_FILE_TMPDIR/w" "$BATS_FILE_TMPDIR/w.out"
	echo "$pid" >"$BATS_FILE_TMPDIR/pid"
	ckpt-dump --kill -o "$BATS_FILE_TMPDIR/w.img" "$pid"
	wait "$pid" || true
	touch "$BATS_FILE_TMPDIR/w/go"
}

teardown_file() {
	local pid
	pid=$(cat "$BATS_FILE_TMPDIR/pid")
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

setup() {
	img=$BATS_FILE_TMPDIR/w.img
	bad=$BATS_TEST_TMPDIR/bad.img
	out=$BATS_TEST_TMPDIR/out
	mkdir "$out"
}

# record_offset TYPE: offset of the first record of TYPE in $img.
record_offset() {
	records "$img" | awk -v t="$1" '$2 == t { print $1; exit }'
}

# flip_byte OFFSET: $bad is $img with the byte at OFFSET inverted.
flip_byte() {
	cp "$img" "$bad"
	invert_byte "$bad" "$1"
}

# remap FILE...: ckpt-remap, stdout and stderr apart.
remap() {
	run --separate-stderr timeout 120 ckpt-remap "$@"
	printf 'status %s\nstdout:\n%s\nstderr:\n%s\n' "$status" "$output" "$stderr"
}

# cut_at N: restore the first N bytes of the image: 99, one line, "truncated".
cut_at() {
	head -c "$1" "$img" >"$bad"
	remap "$bad"
	one_line 99 truncated ckpt-remap
}

@test "ckpt-dump on a dead pid: exit 1, one line naming the pid" {
	local pid
	true &
	pid=$!
	wait "$pid"
	run --separate-stderr ckpt-dump -o "$out/x.img" "$pid"
	one_line 1 "$pid" ckpt-dump
	[ -z "$(ls -A "$out")" ]
}

@test "ckpt-dump on a process it may not trace: exit 1, not permitted, and it runs on" {
	[ "$(id -u)" -ne 0 ] || skip "root may trace anything"
	# An undumpable process of our own: only CAP_SYS_PTRACE may trace it.
	workload_bg "$BATS_TEST_TMPDIR/w" "$BATS_TEST_TMPDIR/w.out" --undumpable
	CKPT_PIDS+=("$pid")
	run --separate-stderr ckpt-dump -o "$out/x.img" "$pid"
	echo "$stderr"
	one_line 1 "not permitted" ckpt-dump
	[ -z "$(ls -A "$out")" ]
	touch "$BATS_TEST_TMPDIR/w/go"
	status=0
	wait "$pid" || status=$?
	CKPT_PIDS=()
	cat "$BATS_TEST_TMPDIR/w.out"
	[ "$status" -eq 0 ]
}

@test "ckpt-dump without a pid: exit 2 and the usage line" {
	run --separate-stderr ckpt-dump
	no_core
	[ "$status" -eq 2 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "usage: ckpt-dump "* ]]
}

@test "ckpt-dump with a non-numeric pid: exit 2, one line naming it" {
	run --separate-stderr ckpt-dump -o "$out/x.img" 12abc
	one_line 2 12abc ckpt-dump
	[ -z "$(ls -A "$out")" ]
}

@test "ckpt-dump with an unknown option: exit 2, naming it, then the usage line" {
	run --separate-stderr ckpt-dump --bogus 1
	no_core
	[ "$status" -eq 2 ]
	[[ ${stderr_lines[0]} == ckpt-dump:*--bogus* ]]
	[[ ${stderr_lines[-1]} == "usage: ckpt-dump "* ]]
}

@test "ckpt-remap on an image cut in the header: 99, one line" {
	cut_at 100
}

@test "ckpt-remap on an image cut in a record header: 99, one line" {
	cut_at 200
}

@test "ckpt-remap on an image cut in the metadata: 99, one line" {
	cut_at 500
	cut_at "$(($(record_offset 5) - 3))"
}

@test "ckpt-remap on an image cut right after the metadata: 99, one line" {
	cut_at "$(($(record_offset 5) + 16))"
}

@test "ckpt-remap on an image cut in the page data: 99, one line" {
	local off len
	read -r off _ len < <(records "$img" | awk '$2 == 6' | tail -n 1)
	cut_at "$((off + 16 + 40))"
	cut_at "$((off + 16 + len / 2))"
	read -r off _ len < <(records "$img" | awk '$2 == 6' | head -n 1)
	cut_at "$((off + 16 + len - 4096))"
}

@test "ckpt-remap on an image cut before its END record: 99, one line" {
	cut_at "$(record_offset 7)"
	cut_at "$(($(stat -c %s "$img") - 1))"
}

@test "ckpt-remap on random bytes: 99, not a ckpt image" {
	{
		printf 'X'
		head -c 65535 /dev/urandom
	} >"$bad"
	remap "$bad"
	one_line 99 "not a ckpt image" ckpt-remap
}

@test "ckpt-remap on an empty file: 99, empty" {
	: >"$bad"
	remap "$bad"
	one_line 99 empty ckpt-remap
}

@test "ckpt-remap on an empty standard input: 99, empty" {
	# An empty file (/dev/null is a device, whose writer root cannot know:
	# refused before it is read, see t/0155).
	: >"$BATS_TEST_TMPDIR/empty"
	run --separate-stderr ckpt-remap - <"$BATS_TEST_TMPDIR/empty"
	one_line 99 empty ckpt-remap
}

@test "ckpt-remap on a file that does not exist: 99, one line naming it" {
	remap "$BATS_TEST_TMPDIR/nonexistent.img"
	one_line 99 nonexistent.img ckpt-remap
}

@test "ckpt-remap on a gzip image cut in the middle: 99, one line" {
	local size
	gzip -c "$img" >"$bad.gz"
	size=$(stat -c %s "$bad.gz")
	head -c $((size / 2)) "$bad.gz" >"$bad"
	remap "$bad"
	one_line 99 "" ckpt-remap
}

@test "ckpt-remap on a gzip image without its trailer (CRC and size): 99, one line" {
	local size
	gzip -c "$img" >"$bad.gz"
	size=$(stat -c %s "$bad.gz")
	head -c $((size - 4)) "$bad.gz" >"$bad"
	remap "$bad"
	one_line 99 "" ckpt-remap
}

@test "ckpt-remap on a ckpt-gzip --zstd image cut in the middle or in its checksum: 99, one line" {
	local size cut
	ckpt-gzip --zstd <"$img" >"$bad.zst"
	size=$(stat -c %s "$bad.zst")
	# The last 4 bytes are the frame's checksum: cut there, every byte of
	# the image arrives, and only the decompressor's status tells.
	for cut in $((size / 2)) $((size - 2)); do
		head -c "$cut" "$bad.zst" >"$bad"
		remap "$bad"
		one_line 99 "zstd stream truncated" ckpt-remap
	done
}

@test "ckpt-remap on an image with bytes after its END record: 99, one line with their offset and count, nothing run" {
	local size
	size=$(stat -c %s "$img")
	{ cat "$img"; printf 'appended'; } >"$bad"
	# A file (--lazy too) and standard input on it: refused before the
	# program runs.
	remap "$bad"
	one_line 99 "$bad: 8 bytes after the END record, from offset $size: not part of the image" ckpt-remap
	[ -z "$output" ]
	remap --lazy "$bad"
	one_line 99 "$bad: 8 bytes after the END record, from offset $size" ckpt-remap
	[ -z "$output" ]
	run --separate-stderr timeout 120 ckpt-remap - <"$bad"
	one_line 99 "standard input: 8 bytes after the END record, from offset $size" ckpt-remap
	[ -z "$output" ]
	# Compressed, the page data comes after the point of no return: the
	# restorer refuses the bytes after END before the program runs.
	ckpt-gzip --zstd -o "$bad.zst" <"$bad"
	remap "$bad.zst"
	one_line 99 "data after the END record at offset" ckpt-remap
	[ -z "$output" ]
}

@test "ckpt-remap on an image with one flipped byte in the page data: 99, checksum" {
	local off len
	read -r off _ len < <(records "$img" | awk '$2 == 6' | head -n 1)
	flip_byte $((off + 16 + len - 1000))
	remap "$bad"
	one_line 99 checksum ckpt-remap
}

@test "ckpt-remap on an image with one flipped byte in the metadata: 99, checksum" {
	flip_byte 300
	remap "$bad"
	one_line 99 checksum ckpt-remap
}

@test "ckpt-remap with two operands: 99 and the usage line" {
	run --separate-stderr ckpt-remap "$img" "$img"
	no_core
	[ "$status" -eq 99 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "usage: ckpt-remap "* ]]
}

# Last: the program it runs writes to its files, and ckpt-remap refuses an
# image whose files changed since the dump.
@test "the image these tests spoil restores intact" {
	remap "$img"
	[ "$status" -eq 0 ]
	grep -qx 'restored: yes' "$BATS_FILE_TMPDIR/w.out"
}
