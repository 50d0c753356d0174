#!/usr/bin/env bats
# A dump that goes wrong leaves the target running as before: signals to
# ckpt-dump, a reader that goes away, a file that cannot grow.

load lib

bats_require_minimum_version 1.5.0

# A process with 8 MiB of data (more than a pipe holds) that finishes with
# status 0 once DIR/go exists, having checked its data.
setup() {
	GO=$BATS_TEST_TMPDIR/go
	start_bg python3 -c '
import hashlib, os, sys, time
b = os.urandom(8 << 20)
h = hashlib.sha256(b).digest()
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
sys.exit(0 if hashlib.sha256(b).digest() == h else 1)
' "$GO"
	wait_for_line "$BATS_TEST_TMPDIR/bg.out" ready
}

# The target runs (not stopped, not traced) and finishes normally.
target_finishes() {
	# Running or asleep within 5 s; if not, the checks below say what.
	wait_for -t 5 state_is "$BG_PID" S R || true
	untraced "$BG_PID"
	touch "$GO"
	wait_exit "$BG_PID"
}


interrupt_with() {
	local fifo=$BATS_TEST_TMPDIR/fifo dump st
	mkfifo "$fifo"
	# A reader that opens the pipe and never reads.
	exec_clean sleep 1000 <"$fifo" &
	CKPT_PIDS+=($!)
	exec_clean ckpt-dump "$BG_PID" >"$fifo" 2>"$BATS_TEST_TMPDIR/dump.err" &
	dump=$!
	wait_for -t 10 waits_in "$dump" pipe_write
	kill "-$1" "$dump"
	# Not `run`: its subshell is not the parent that can wait.
	st=0
	wait "$dump" || st=$?
	[ "$st" -eq 1 ]
	[ "$(wc -l <"$BATS_TEST_TMPDIR/dump.err")" -eq 1 ]
	cat "$BATS_TEST_TMPDIR/dump.err" # shown when the test fails
	grep -q "^ckpt-dump: interrupted by a signal" "$BATS_TEST_TMPDIR/dump.err"
	target_finishes
}

@test "SIGINT to a dump blocked on a stuck reader: it exits 1 and the target runs on" {
	interrupt_with INT
}

@test "SIGTERM to a dump blocked on a stuck reader: it exits 1 and the target runs on" {
	interrupt_with TERM
}

@test "a reader that exits early fails the dump with one line and the target runs on" {
	run --separate-stderr bash -c 'ckpt-dump "$1" | head -c 1000 >/dev/null; exit "${PIPESTATUS[0]}"' _ "$BG_PID"
	[ "$status" -eq 1 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "ckpt-dump: cannot write image"*"Broken pipe" ]]
	target_finishes
}

@test "-o on a file that cannot grow (ulimit -f) leaves no file, keeps the old one, and the target runs on" {
	img=$BATS_TEST_TMPDIR/app.img
	echo "the previous image" >"$img"
	run --separate-stderr bash -c 'ulimit -f 1024; ckpt-dump -o "$1" "$2"' _ "$img" "$BG_PID"
	[ "$status" -eq 1 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "ckpt-dump: cannot write image"*"too large" ]]
	[ "$(cat "$img")" = "the previous image" ]
	[ "$(find "$BATS_TEST_TMPDIR" -name '.app.img.*' | wc -l)" -eq 0 ]
	target_finishes
}

@test "a dump of a process that exits first fails with one line" {
	touch "$GO"
	wait_exit "$BG_PID"
	run --separate-stderr ckpt-dump "$BG_PID"
	[ "$status" -eq 1 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "ckpt-dump: pid $BG_PID: no such process" ]]
}
