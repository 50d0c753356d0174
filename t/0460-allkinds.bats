#!/usr/bin/env bats
# One process holding every kind of fd and memory mapping at once (fdmore
# "all" and memkinds' default set, as two threads of t/progs/allkinds)
# comes back whole, as root and as an ordinary user.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir all
}

# ready_twice: both threads have set up their kinds.
ready_twice() {
	[ "$(grep -c '^ready ' "$OUT")" -eq 2 ]
}

@test "every kind of fd and memory in one process: dump --kill, restore, all intact" {
	start_bg allkinds "$D"
	wait_for ready_twice
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	run ckpt-inspect "$IMG"
	echo "$output"
	for k in fifo unix inotify shm file; do
		grep -Eq "^  fd [0-9]+ +$k " <<<"$output"
	done
	for k in sysv anon memfd file; do
		grep -Eq "^  $k " <<<"$output"
	done
	touch "$D/go"
	restore "$IMG"
	cat "$BATS_TEST_TMPDIR/bg.err" >&2 || true
	[ "$status" -eq 0 ]
	grep -qx 'fdmore all: ok' "$OUT"
	grep -qx 'memkinds: ok' "$OUT"
}

@test "every kind in one process: the dumped process runs on intact" {
	start_bg allkinds "$D"
	wait_for ready_twice
	ckpt-dump -o "$IMG" "$BG_PID"
	finish_bg
	grep -qx 'fdmore all: ok' "$OUT"
	grep -qx 'memkinds: ok' "$OUT"
}
