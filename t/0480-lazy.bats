#!/usr/bin/env bats
# ckpt-remap --lazy maps page data from the image file instead of reading
# it: the program runs at once and its pages come in on first touch.  A
# lazily restored program dumps again into an image that needs no other.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir lazy
}

# dumped_churn: churn of 64 MiB, dumped with --kill into $IMG.
dumped_churn() {
	start_bg churn 64 "$D"
	wait_for_line "$OUT" '^ready '
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
}

# image_mapped PID: the restored program's memory is mapped from $IMG.  It
# is PID (ckpt-remap became it) or, where pids are kept, ckpt-remap's
# child under the old pid $BG_PID.
image_mapped() {
	grep -qs " $IMG\$" /proc/"$1"/maps /proc/"$BG_PID"/maps
}

@test "--lazy: the program runs with its memory mapped from the image, and intact" {
	dumped_churn
	: >"$OUT"
	ckpt-remap --lazy --allow-changed-files "$IMG" 2>"$BATS_TEST_TMPDIR/r.err" &
	pid=$!
	CKPT_PIDS+=("$pid" "$BG_PID")
	wait_for image_mapped "$pid"
	touch "$D/go"
	st=0
	wait "$pid" || st=$?
	CKPT_PIDS=()
	cat "$BATS_TEST_TMPDIR/r.err"
	[ "$st" -eq 0 ]
	grep -q '^churn: ok' "$OUT"
}

@test "--lazy: a lazily restored program dumps again into an image of its own" {
	dumped_churn
	ckpt-remap --lazy --allow-changed-files --new-pids "$IMG" 2>/dev/null &
	pid=$!
	CKPT_PIDS+=("$pid")
	wait_for image_mapped "$pid"
	# Mapped is not done: the restorer names the program last, and a dump
	# before that took the restorer half way (once in a CI run here:
	# "cannot read 256 bytes at ...: Bad address").
	wait_for comm_is "$pid" churn
	ckpt-dump --kill -o "$IMG.2" "$pid"
	wait "$pid" || true
	CKPT_PIDS=()
	# The second image holds all the memory: the first may go.
	rm "$IMG"
	run ckpt-inspect "$IMG.2"
	[[ "$output" != *"$IMG"* ]]
	: >"$OUT"
	touch "$D/go"
	restore --allow-changed-files "$IMG.2"
	[ "$status" -eq 0 ]
	grep -q '^churn: ok' "$OUT"
}
