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

@test "unix socketpairs: dump --kill then restore: queued bytes, datagram boundaries, shutdowns, flags" {
	start unix
	killed_and_restored unix
}

@test "unix socketpairs: the dumped process runs on with every queued message" {
	start unix
	runs_on unix
}

@test "unix socketpairs: ckpt-inspect shows type, queued bytes and messages" {
	start unix
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *" unix "*" stream pair "*" queued 61440 messages 1 shutdown 0 "* ]]
	[[ "$output" == *" unix "*" dgram pair "*" queued 1007 messages 3 "* ]]
	[[ "$output" == *" unix "*" seqpacket pair "*" queued 11 messages 2 shutdown 1 "* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"kind":"unix"'*'"type":"dgram"'*'"queued":1007,"messages":3'* ]]
}

# refused KIND PATTERN: ckpt-dump of fdmore KIND fails with one line
# matching PATTERN (@PID@ stands for the program's pid); the program was not left stopped or traced, and runs
# on to a clean exit.
refused() {
	local pat
	start "$1"
	pat=${2//@PID@/$BG_PID}
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 1 ]
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
	[[ "$stderr" =~ $pat ]]
	grep -q '^State:[[:space:]]*[RS]' "/proc/$BG_PID/status"
	grep -q '^TracerPid:[[:space:]]*0$' "/proc/$BG_PID/status"
	touch "$D/go"
	st=0
	wait "$BG_PID" || st=$?
	CKPT_PIDS=()
	[ "$st" -eq 0 ]
	grep -qx "fdmore $1: ok" "$OUT"
}

@test "a unix socket whose peer is in another process is refused naming the fd; the target runs on" {
	refused unixpeer "^ckpt-dump: pid @PID@: fd 3 is a unix socket \(socket:\[[0-9]+\]\) whose peer is not in the process; not supported\$"
}

@test "a listening unix socket is refused naming the fd; the target runs on" {
	refused listen "^ckpt-dump: pid @PID@: fd 3 is a unix socket \(socket:\[[0-9]+\]\) that is listening; only socketpairs are supported\$"
}

@test "a netlink socket makes ckpt-dump fail with one line naming fd, kind and pid; the target is neither stopped nor traced" {
	refused netlink "^ckpt-dump: pid @PID@: fd 3 is a netlink socket \(socket:\[[0-9]+\], family 16\); not supported yet\$"
}
