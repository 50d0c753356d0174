#!/usr/bin/env bats
# Pipes, eventfd, signalfd, timerfd and epoll come back with their state,
# and threads blocked in read() and epoll_wait() go on; a dump does not
# make the program it leaves running see EINTR.  t/progs/fdkinds checks.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir fdkinds
	start_bg fdkinds "$D"
	wait_for_line "$OUT" '^ready '
	# The two threads are blocked in their calls before we dump.
	wait_for threads_asleep "$BG_PID"
}

# threads_asleep PID: three threads of PID sleep (S), the main one and
# the two blocked in their calls.
threads_asleep() {
	local t n=0
	for t in /proc/"$1"/task/*; do
		[ "$(awk '{print $3}' "$t/stat")" = S ] && n=$((n + 1))
	done
	[ "$n" -ge 3 ]
}

@test "dump --kill then restore: pipe bytes, eventfd, signalfd, timerfd, epoll and blocked threads intact" {
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	touch "$D/go"
	run --separate-stderr ckpt-remap "$IMG"
	cat "$BATS_TEST_TMPDIR/bg.err" >&2 || true
	[ "$status" -eq 0 ]
	grep -qx 'fdkinds: ok' "$OUT"
}

@test "the dumped process runs on with every byte of its pipes and no EINTR in epoll_wait" {
	ckpt-dump -o "$IMG" "$BG_PID"
	finish_bg
	grep -qx 'fdkinds: ok' "$OUT"
}

@test "one image restores twice, and ckpt-inspect names each kind of fd" {
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	run ckpt-inspect "$IMG"
	[[ "$output" == *" pipe "* ]]
	[[ "$output" == *" eventfd "* ]]
	[[ "$output" == *" signalfd "* ]]
	[[ "$output" == *" timerfd "* ]]
	[[ "$output" == *" epoll "* ]]
	touch "$D/go"
	for _ in 1 2; do
		run --separate-stderr ckpt-remap --new-pids --allow-changed-files "$IMG"
		[ "$status" -eq 0 ]
	done
	[ "$(grep -cx 'fdkinds: ok' "$OUT")" -ge 1 ]
}
