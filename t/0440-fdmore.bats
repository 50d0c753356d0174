#!/usr/bin/env bats
# FIFOs, unix socketpairs, inotify and terminals come back with their
# state; t/progs/fdmore checks each.  An fd of a kind not supported makes
# ckpt-dump fail naming it, and the target runs on.

load lib

bats_require_minimum_version 1.5.0

setup() {
	D=$BATS_TEST_TMPDIR/d
	mkdir "$D"
	OUT=$BATS_TEST_TMPDIR/bg.out
	IMG=$BATS_TEST_TMPDIR/fdmore.img
}

# start KIND: fdmore KIND in the background, ready.
start() {
	start_bg fdmore "$1" "$D"
	wait_for_line "$OUT" '^ready '
}

# killed_and_restored KIND [OPTION...]: dump --kill, restore, the program's checks pass.
killed_and_restored() {
	local kind=$1
	shift
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	touch "$D/go"
	run --separate-stderr timeout 60 ckpt-remap "$@" "$IMG"
	cat "$BATS_TEST_TMPDIR/bg.err" >&2 || true
	echo "status $status stderr: $stderr"
	[ "$status" -eq 0 ]
	grep -qx "fdmore $kind: ok" "$OUT"
}

# runs_on KIND: dump, the program runs on and its checks pass.
runs_on() {
	ckpt-dump -o "$IMG" "$BG_PID"
	touch "$D/go"
	st=0
	wait "$BG_PID" || st=$?
	CKPT_PIDS=()
	cat "$BATS_TEST_TMPDIR/bg.err" >&2 || true
	[ "$st" -eq 0 ]
	grep -qx "fdmore $1: ok" "$OUT"
}

@test "fifo: dump --kill then restore: bytes, pipe size, access modes and O_NONBLOCK intact" {
	start fifo
	killed_and_restored fifo
}

@test "fifo: the dumped process runs on with every byte of its FIFOs" {
	start fifo
	runs_on fifo
}

@test "fifo: ckpt-inspect shows each FIFO's path and queued bytes" {
	start fifo
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *" fifo "*"queued 71680 size 131072 $D/f1"* ]]
	[[ "$output" == *" fifo "*"queued 5 "*"$D/f2"* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"kind":"fifo"'*'"queued":71680,"size":131072'* ]]
}
