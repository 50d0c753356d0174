#!/usr/bin/env bats
# File locks come back: POSIX record locks (the process's), OFD and
# flock(2) locks (the open file description's, one for fds that share
# it) and a read lease, on the same ranges and types; t/progs/locks checks
# them from a process of its own after the restore.  A conflicting lock
# another process took meanwhile makes the restore fail, naming it.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir locks
	start_bg locks "$D"
	wait_for_line "$OUT" '^ready '
}

# hold FILE START LEN: another process holds a POSIX write lock on the range.
hold() {
	exec_clean locks --hold "$@" </dev/null >"$BATS_TEST_TMPDIR/hold.out" 2>&1 &
	HOLD_PID=$!
	CKPT_PIDS+=("$HOLD_PID")
	wait_for_line "$BATS_TEST_TMPDIR/hold.out" '^holding '
}

killed() {
	bg_dump_kill
	touch "$D/go"
}

restored() {
	bg_restored "locks: ok"
}

@test "dump --kill then restore: every lock held again, on its range, then released" {
	killed
	restored
}

@test "the dumped process runs on with its locks" {
	ckpt-dump -o "$IMG" "$BG_PID"
	finish_bg
	grep -qx "locks: ok" "$OUT"
}

@test "ckpt-inspect shows each fd's locks, in text and JSON" {
	killed
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 3 "*"locks 2 $D/a"*"lock posix read start 0 len 100"*"lock posix write start 200 len 0 (to the end)"* ]]
	[[ "$output" == *"fd 4 "*"locks 1 $D/a"*"lock ofd write start 100 len 50"* ]]
	[[ "$output" == *"fd 5 "*"locks 1 $D/b"*"lock flock write"*"fd 6 "*"locks 1 $D/b"*"lock flock write"* ]]
	[[ "$output" == *"fd 7 "*"locks 1 $D/c"*"lock lease read"* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"lock_list":[{"kind":"posix","type":"read","start":0,"len":100},{"kind":"posix","type":"write","start":200,"len":0}]'* ]]
	[[ "$output" == *'"locks":1'*'"lock_list":[{"kind":"ofd","type":"write","start":100,"len":50}]'* ]]
}

@test "a POSIX lock another process holds now fails the restore, naming it; the image restores once it is gone" {
	killed
	hold "$D/a" 50 10
	run --separate-stderr timeout 60 ckpt-remap "$IMG"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 99 ]
	[ "$stderr" = "ckpt-remap: fd 3: $D/a: cannot take again its POSIX read lock (start 0, len 100): pid $HOLD_PID holds a conflicting one" ]
	kill "$HOLD_PID"
	reap "$HOLD_PID"
	restored
}

@test "an OFD or flock lock in the way fails the restore by name" {
	killed
	hold "$D/a" 120 1
	run --separate-stderr timeout 60 ckpt-remap "$IMG"
	[ "$status" -eq 99 ]
	[ "$stderr" = "ckpt-remap: fd 4: $D/a: cannot take again its OFD write lock (start 100, len 50): pid $HOLD_PID holds a conflicting one" ]
	kill "$HOLD_PID"
	reap "$HOLD_PID"
	exec 8<"$D/b"
	flock -n 8
	run --separate-stderr timeout 60 ckpt-remap "$IMG"
	exec 8<&-
	[ "$status" -eq 99 ]
	[ "$stderr" = "ckpt-remap: fd 5: $D/b: cannot take again its flock write lock (the whole file): another open file description holds a conflicting one" ]
	restored
}

@test "a lock of an unknown kind in the image: the reader refuses its FILE record" {
	killed
	forge.py "$IMG" lockkind 9
	run --separate-stderr timeout 60 ckpt-remap "$IMG"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 99 ]
	[[ "$stderr" == *"(fd 3, file): bad kind data (56 bytes)"* ]]
	run ckpt-inspect "$IMG"
	[ "$status" -ne 0 ]
	[[ "$output" == *"(fd 3, file): bad kind data (56 bytes)"* ]]
}

@test "tree: each process's POSIX locks its own, the descriptions' locks once" {
	kill "$BG_PID"
	reap "$BG_PID"
	rm -f "$OUT"
	start_bg locks --tree "$D"
	wait_for_line "$OUT" '^ready '
	ckpt-dump -t --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	run ckpt-inspect "$IMG"
	echo "$output"
	# The child shares the parent's fds: the parent's POSIX locks are not its.
	[ "$(grep -c 'lock posix read start 0 len 100' <<<"$output")" -eq 1 ]
	[ "$(grep -c 'lock posix write start 0 len 10$' <<<"$output")" -eq 1 ]
	touch "$D/go"
	run --separate-stderr timeout 60 ckpt-remap --pid-ns "$IMG"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 0 ]
	grep -qx "locks: ok" "$OUT"
}
