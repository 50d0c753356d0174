#!/usr/bin/env bats
# Many threads at once: each keeps its vector registers (zmm0-31 and k0-7
# with AVX-512, else ymm or xmm), MXCSR and a thread-local counter across a
# dump taken while all of them spin (t/progs/vecregs -t N checks them),
# again and again; 64 threads; abort() after a restore.

load lib

bats_require_minimum_version 1.5.0

setup() {
	OUT=$BATS_TEST_TMPDIR/bg.out
	IMG=$BATS_TEST_TMPDIR/v.img
}

# cycle N ARGS...: start vecregs ARGS, then N times: dump --kill while it
# spins and restore it (--new-pids: the restored program is ckpt-remap's
# own process, the one to dump next).  Finally stop the loops with SIGUSR1.
cycle() {
	local n=$1 pid i st
	shift
	start_bg vecregs "$@"
	pid=$BG_PID
	wait_for_line "$OUT" '^ready '
	for ((i = 0; i < n; i++)); do
		wait_spinning "$pid"
		ckpt-dump --kill -o "$IMG" "$pid"
		wait "$pid" || true
		exec_clean ckpt-remap --new-pids "$IMG" </dev/null >>"$OUT" 2>>"$BATS_TEST_TMPDIR/err" &
		pid=$!
		CKPT_PIDS+=("$pid")
	done
	wait_spinning "$pid"
	kill -USR1 "$pid"
	st=0
	wait "$pid" || st=$?
	cat "$OUT" "$BATS_TEST_TMPDIR/err" >&2 || true
	[ "$st" -eq 0 ]
	grep -q 'registers intact' "$OUT"
}

@test "8 threads keep their vector registers, MXCSR and TLS through a dump mid-loop" {
	cycle 1 -t 8
}

@test "8 threads, dumped and restored three times in a row, stay intact" {
	cycle 3 -t 8
}

@test "64 threads dump and restore, every one intact" {
	cycle 1 -t 64 sse
}

@test "abort() after a restore ends the program with SIGABRT" {
	start_bg python3 -c '
import os, sys, time
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
os.abort()
' "$BATS_TEST_TMPDIR/go"
	wait_for_line "$OUT" ready
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	touch "$BATS_TEST_TMPDIR/go"
	for mode in --new-pids ""; do
		st=0
		# shellcheck disable=SC2086
		ckpt-remap $mode "$IMG" || st=$?
		[ "$st" -eq 134 ]
	done
}
