#!/usr/bin/env bats
# Incremental images: ckpt-dump --parent stores only the pages that differ
# from the parent's, ckpt-remap and ckpt-inspect follow the chain, and a
# missing or replaced parent is told in one line.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir incr
	FULL=$BATS_TEST_TMPDIR/full.img
}

# started MIB PERMILLE: the incr workload, running, in $BG_PID.
started() {
	start_bg incr "$1" "$2" "$D"
	wait_for_line "$OUT" "^ready $BG_PID\$"
}

# step N: the workload takes its step N.
step() {
	touch "$D/change.$1"
	wait_for_line "$OUT" "^changed $1\$"
}

# dumped_killed IMG ARGS...: the last dump, which ends the program.
dumped_killed() {
	local img=$1
	shift
	ckpt-dump --kill -o "$img" "$@" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
}

# restored_intact IMG STEPS: ckpt-remap IMG brings back the program, which
# finds its memory as it was after STEPS steps.
restored_intact() {
	touch "$D/go"
	restore --allow-changed-files "$1"
	cat "$BATS_TEST_TMPDIR/bg.err" "$OUT"
	[ "$status" -eq 0 ]
	grep -q "^incr: ok, $2 steps, restored: yes\$" "$OUT"
}

size() {
	stat -c %s "$1"
}

@test "an incremental image brings back the memory of its dump: changed, zeroed, dropped, unmapped and moved pages" {
	started 64 10
	ckpt-dump -o "$FULL" "$BG_PID"
	step 1
	dumped_killed "$IMG" --parent "$FULL"
	restored_intact "$IMG" 1
}

@test "1 % of 64 MiB changed: the incremental image is under 3 % of the full one" {
	started 64 10
	ckpt-dump -o "$FULL" "$BG_PID"
	step 1
	dumped_killed "$IMG" --parent "$FULL"
	full=$(size "$FULL") inc=$(size "$IMG")
	echo "full $full incremental $inc"
	[ "$inc" -lt $((full * 3 / 100)) ]
	# Nothing changed: little more than the metadata and the hashes.
	rm "$D"/change.*
	started 16 0
	ckpt-dump -o "$FULL" "$BG_PID"
	dumped_killed "$IMG.same" --parent "$FULL"
	echo "unchanged: full $(size "$FULL") incremental $(size "$IMG.same")"
	[ "$(size "$IMG.same")" -lt $(($(size "$FULL") / 100)) ]
}

@test "a chain of three: full, incremental, incremental of the incremental" {
	started 32 20
	ckpt-dump -o "$FULL" "$BG_PID"
	step 1
	ckpt-dump --parent "$FULL" -o "$IMG.1" "$BG_PID"
	step 2
	dumped_killed "$IMG.2" --parent "$IMG.1"
	run ckpt-inspect "$IMG.2"
	[ "$status" -eq 0 ]
	grep -q "^parent:   $IMG.1 (2 images above this one)\$" <<<"$output"
	grep -q "^chain 1:  $IMG.1: found, created .*, incremental, stores .*, takes " <<<"$output"
	grep -q "^chain 2:  $FULL: found, created .*, full image, stores .*; gives " <<<"$output"
	run ckpt-inspect --verify "$IMG.2"
	[ "$status" -eq 0 ]
	[[ "$output" == *", every checksum ok, and so is its chain" ]]
	run ckpt-inspect --json "$IMG.2"
	[ "$status" -eq 0 ]
	# What the image takes, its parents give between them.
	python3 -c 'import json,sys; d=json.load(sys.stdin)["parent"]; c=d["chain"]
assert [x["state"] for x in c] == ["found","found"], c
assert c[1]["incremental"] is False and c[0]["incremental"] is True, c
assert c[0]["given_pages"] + c[1]["given_pages"] == d["reused_pages"] > 0, d' <<<"$output"
	restored_intact "$IMG.2" 2
}

@test "compressed parent and child, through ckpt-gzip, the child on standard input" {
	started 32 10
	ckpt-dump "$BG_PID" | ckpt-gzip -o "$FULL.gz"
	step 1
	ckpt-dump --kill --parent "$FULL.gz" "$BG_PID" | ckpt-gzip -o "$IMG.gz"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	run ckpt-inspect --verify "$IMG.gz"
	[ "$status" -eq 0 ]
	restored_intact - 1 <"$IMG.gz"
}

@test "bytes after the END record of the child or of its parent: refused in one line, before anything runs" {
	local size
	started 16 10
	ckpt-dump -o "$FULL" "$BG_PID"
	step 1
	dumped_killed "$IMG" --parent "$FULL"
	size=$(stat -c %s "$IMG")
	cp "$IMG" "$IMG.good"
	printf 'appended' >>"$IMG"
	# An image wrongly accepted runs to its end at once (go is there)
	# rather than hang the test.
	touch "$D/go"
	run --separate-stderr timeout 120 ckpt-remap "$IMG"
	[ "$status" -eq 99 ]
	[ "$stderr" = "ckpt-remap: $IMG: 8 bytes after the END record, from offset $size: not part of the image" ]
	[ "$(grep -c 'restored: yes' "$OUT")" -eq 0 ]
	run --separate-stderr ckpt-inspect --verify "$IMG"
	[ "$status" -eq 1 ]
	[ "$stderr" = "ckpt-inspect: $IMG: 8 bytes after the END record, from offset $size: not part of the image" ]
	mv "$IMG.good" "$IMG"
	size=$(stat -c %s "$FULL")
	printf 'appended' >>"$FULL"
	run --separate-stderr timeout 120 ckpt-remap "$IMG"
	[ "$status" -eq 99 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "ckpt-remap: $IMG: parent image $FULL: "*"8 bytes after the END record, from offset $size"* ]]
	[ "$(grep -c 'restored: yes' "$OUT")" -eq 0 ]
	run --separate-stderr ckpt-inspect --verify "$IMG"
	[ "$status" -eq 1 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == *"$FULL: "*"8 bytes after the END record, from offset $size"* ]]
	# Without them, the chain is whole again.
	truncate -s "$size" "$FULL"
	restored_intact "$IMG" 1
}

@test "--cow --parent: the snapshot is compared as the process was" {
	started 32 10
	ckpt-dump -o "$FULL" "$BG_PID"
	step 1
	ckpt-dump --cow --parent "$FULL" -o "$IMG" "$BG_PID"
	kill -KILL "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	[ "$(size "$IMG")" -lt $(($(size "$FULL") / 20)) ]
	restored_intact "$IMG" 1
}

@test "a missing parent: one line naming it, CKPT_FAIL_RC from ckpt-remap, 1 from ckpt-inspect" {
	started 16 10
	ckpt-dump -o "$FULL" "$BG_PID"
	step 1
	dumped_killed "$IMG" --parent "$FULL"
	rm "$FULL"
	run --separate-stderr ckpt-remap "$IMG"
	[ "$status" -eq 99 ]
	[ "$stderr" = "ckpt-remap: $IMG: parent image $FULL: missing (No such file or directory)" ]
	run --separate-stderr ckpt-inspect "$IMG"
	[ "$status" -eq 1 ]
	[ "$stderr" = "ckpt-inspect: $IMG: parent image $FULL: missing (No such file or directory)" ]
	grep -q "^chain 1:  $FULL: missing\$" <<<"$output"
}

@test "a replaced parent: one line saying it is not the image dumped against" {
	started 16 10
	ckpt-dump -o "$FULL" "$BG_PID"
	step 1
	dumped_killed "$IMG" --parent "$FULL"
	started 16 10
	dumped_killed "$FULL"
	run --separate-stderr ckpt-remap "$IMG"
	[ "$status" -eq 99 ]
	[[ "$stderr" == "ckpt-remap: $IMG: parent image $FULL is not the image $IMG was dumped against (it was created "* ]]
	[ "${#lines[@]}" -le 1 ]
	run --separate-stderr ckpt-inspect --verify "$IMG"
	[ "$status" -eq 1 ]
	[[ "$stderr" == "ckpt-inspect: $IMG: parent image $FULL is not the image"* ]]
}

@test "a parent moved beside its child is found there" {
	started 16 10
	mkdir "$BATS_TEST_TMPDIR/a"
	ckpt-dump -o "$BATS_TEST_TMPDIR/a/full.img" "$BG_PID"
	step 1
	(cd "$BATS_TEST_TMPDIR/a" && ckpt-dump --kill --parent full.img -o inc.img "$BG_PID")
	wait "$BG_PID" || true
	CKPT_PIDS=()
	restored_intact "$BATS_TEST_TMPDIR/a/inc.img" 1
}

@test "--lazy refuses an incremental image, before anything happens" {
	started 16 10
	ckpt-dump -o "$FULL" "$BG_PID"
	step 1
	dumped_killed "$IMG" --parent "$FULL"
	run --separate-stderr ckpt-remap --lazy "$IMG"
	[ "$status" -eq 99 ]
	[ "$stderr" = "ckpt-remap: --lazy maps page data from one image file, and an incremental image takes pages from its parents too: restore it without --lazy" ]
}

@test "ckpt-dump --parent refuses what cannot be a parent, and -o over an image of its chain" {
	started 16 10
	run --separate-stderr ckpt-dump --parent "$BATS_TEST_TMPDIR/nothing" -o "$IMG" "$BG_PID"
	[ "$status" -eq 1 ]
	[ "$stderr" = "ckpt-dump: --parent: cannot open $BATS_TEST_TMPDIR/nothing: No such file or directory" ]
	echo junk >"$BATS_TEST_TMPDIR/junk"
	run --separate-stderr ckpt-dump --parent "$BATS_TEST_TMPDIR/junk" -o "$IMG" "$BG_PID"
	[ "$status" -eq 1 ]
	[[ "$stderr" == "ckpt-dump: --parent: $BATS_TEST_TMPDIR/junk: not a ckpt image"* ]]
	ckpt-dump -o "$FULL" "$BG_PID"
	run --separate-stderr ckpt-dump --parent "$FULL" -o "$FULL" "$BG_PID"
	[ "$status" -eq 1 ]
	[ "$stderr" = "ckpt-dump: $FULL: the image would replace its own parent or an image of its parent's chain" ]
	ckpt-dump --parent "$FULL" -o "$IMG" "$BG_PID"
	run --separate-stderr ckpt-dump --parent "$IMG" -o "$FULL" "$BG_PID"
	[ "$status" -eq 1 ]
	[ "$stderr" = "ckpt-dump: $FULL: the image would replace its own parent or an image of its parent's chain" ]
	# The program was never disturbed.
	kill -0 "$BG_PID"
}

@test "a restored program dumped against the image it came from stores only what it changed since" {
	started 32 10
	dumped_killed "$FULL"
	ckpt-remap --allow-changed-files --new-pids "$FULL" 2>/dev/null &
	pid=$!
	CKPT_PIDS+=("$pid")
	wait_for grep -qx incr "/proc/$pid/comm"
	BG_PID=$pid
	step 1
	dumped_killed "$IMG" --parent "$FULL"
	echo "full $(size "$FULL") incremental $(size "$IMG")"
	[ "$(size "$IMG")" -lt $(($(size "$FULL") / 20)) ]
	restored_intact "$IMG" 1
}

@test "a tree takes no part: --parent with -t, or a tree image as parent, is refused in one line" {
	start_bg tree session "$D"
	wait_for_file "$D/ready"
	ckpt-dump -t -o "$FULL" "$BG_PID"
	run --separate-stderr ckpt-dump --parent "$FULL" -o "$IMG" "$BG_PID"
	[ "$status" -eq 1 ]
	[[ "$stderr" == "ckpt-dump: parent image $FULL: an image of "*" processes; --parent takes the image of one process" ]]
	ckpt-dump -o "$IMG.one" "$BG_PID"
	run --separate-stderr ckpt-dump -t --parent "$IMG.one" -o "$IMG" "$BG_PID"
	[ "$status" -eq 1 ]
	[ "$stderr" = "ckpt-dump: --parent is for one process, not a tree (-t)" ]
	# The tree was let go as it was; a dump ends it, every process.
	kill -0 "$BG_PID"
	ckpt-dump -t --kill -o "$IMG.end" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
}

# flipped_fails INSPECT REMAP: a byte of $FULL's page data is flipped;
# ckpt-inspect --verify "$IMG" fails with one line holding INSPECT,
# ckpt-remap with CKPT_FAIL_RC and one line holding REMAP.
flipped_fails() {
	run --separate-stderr ckpt-inspect --verify "$IMG"
	one_line 1 "$1" ckpt-inspect
	run --separate-stderr ckpt-remap "$IMG"
	one_line 99 "$2" ckpt-remap
	# The merge said it, not a decompressor.
	[[ "$stderr" != *decompress* ]]
}

@test "a byte of the parent's page data flipped fails the merge, in a page the image takes or not" {
	local main gone crc
	started 16 0
	read -r _ main _ gone < <(grep '^main ' "$OUT")
	ckpt-dump -o "$FULL" "$BG_PID"
	step 1
	dumped_killed "$IMG" --parent "$FULL"
	cp "$FULL" "$FULL.good"
	crc="parent image $FULL: page data before offset "
	# Nothing of the main region changed: its pages come from the parent,
	# each checked against the image's hash of it as the merge takes it
	# (--verify checks each image of the chain whole first).
	t/progs/pageat.py "$FULL" "$(printf %x $((main + 5 * 4096)))"
	flipped_fails "$crc" "page $(printf %#x $((main + 5 * 4096))) differs from the one"
	# The region unmapped at step 1 is in the parent only: nothing takes
	# its pages, and the parent's checksum of its record catches it.
	cp "$FULL.good" "$FULL"
	t/progs/pageat.py "$FULL" "$(printf %x $((gone + 3 * 4096)))"
	flipped_fails "$crc" "$crc"
	cp "$FULL.good" "$FULL"
	restored_intact "$IMG" 1
}
