#!/usr/bin/env bats
# Which pid a restored process gets: its old one (with its threads' old
# tids) when the kernel allows, as ckpt-remap's child; else ckpt-remap's,
# with glibc's cached tids rewritten.  t/progs/tids checks that
# pthread_kill reaches the right thread either way.

load lib

bats_require_minimum_version 1.5.0

setup() {
	D=$BATS_TEST_TMPDIR/d
	mkdir "$D"
	OUT=$BATS_TEST_TMPDIR/bg.out
}

# dump_tids [STATUS]: run tids, dump it --kill into $IMG, reap it so that
# its pid is free again, and let the restored one go on at once.
dump_tids() {
	start_bg tids "$D" "${1:-0}"
	wait_for_line "$OUT" '^ready '
	OLD=$(sed -n 's/^ready //p' "$OUT")
	IMG=$BATS_TEST_TMPDIR/tids.img
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	touch "$D/go"
}

# bats test_tags=root
@test "as root, a restore keeps the pid and every tid, and passes the exit status on" {
	dump_tids 3
	run --separate-stderr ckpt-remap "$IMG"
	echo "$stderr"
	[ "$status" -eq 3 ]
	grep -qx 'pid: kept' "$OUT"
	grep -qx 'tids: kept' "$OUT"
}

@test "--new-pids: ckpt-remap's pid, new tids, and pthread_kill still finds each thread" {
	dump_tids
	run --separate-stderr ckpt-remap --new-pids "$IMG"
	echo "$stderr"
	[ "$status" -eq 0 ]
	grep -qx 'pid: new' "$OUT"
	grep -qx 'tids: new' "$OUT"
}

@test "--pid-ns keeps the pid and every tid, with or without privilege" {
	dump_tids 4
	run --separate-stderr ckpt-remap --pid-ns "$IMG"
	echo "$stderr"
	[ "$status" -eq 4 ]
	grep -qx 'pid: kept' "$OUT"
	grep -qx 'tids: kept' "$OUT"
}

@test "unprivileged, the default falls back to a new pid" {
	[ "$(id -u)" -ne 0 ] || skip "root may choose its pid"
	dump_tids
	run --separate-stderr ckpt-remap "$IMG"
	[ "$status" -eq 0 ]
	grep -qx 'pid: new' "$OUT"
}

# A restored tids that waits for go forever; SIGTERM to ckpt-remap (its
# parent, or its namespace's init's parent) must kill the program, and
# ckpt-remap must then die of SIGTERM too.
term_through() {
	start_bg tids "$D"
	wait_for_line "$OUT" '^ready '
	IMG=$BATS_TEST_TMPDIR/tids.img
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	exec_clean ckpt-remap "$@" "$IMG" &
	rp=$!
	CKPT_PIDS+=("$rp")
	# The program runs once the process holding the old pid (or its
	# namespace) has threads again.
	wait_for has_threads "$rp" 4
	kill -TERM "$rp"
	st=0
	wait "$rp" || st=$?
	CKPT_PIDS=()
	[ "$st" -eq 143 ]
}

# has_threads PID N: PID, a child of it or a child of its first child has
# N threads or more.
has_threads() {
	local p
	for p in $(pgrep -P "$1") $(pgrep -P "$(pgrep -P "$1" | head -1)" 2>/dev/null) "$1"; do
		[ "$(ls "/proc/$p/task" 2>/dev/null | wc -l)" -ge "$2" ] && return 0
	done
	return 1
}

@test "SIGTERM to ckpt-remap --pid-ns reaches the program, and ckpt-remap dies of it" {
	term_through --pid-ns
}

# bats test_tags=root
@test "SIGTERM to ckpt-remap, parent of a program with its old pid, reaches it" {
	term_through
}

# zombie_tree N: a tree of sh and its child t/progs/counter N, the shell
# started by a parent that reaps it only once $D/reap exists, dumped with
# -t --kill: the shell's pid ($KID) is a zombie's.  (Its output file is
# reopened by the restore: the count goes on in $OUT.)
zombie_tree() {
	start_bg python3 -c '
import os, sys, time
kid = os.fork()
if kid == 0:
    os.execv("/bin/sh", ["sh", "-c", "\"$0\" \"$1\" & wait $!"] + sys.argv[1:3])
print("kid", kid, flush=True)
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
os.waitpid(kid, 0)
while True:
    time.sleep(1)' "$TOP/t/progs/counter" "$1" "$D/reap"
	wait_for_line "$OUT" '^count: 2$'
	KID=$(sed -n 's/^kid //p' "$OUT")
	IMG=$BATS_TEST_TMPDIR/counter.img
	ckpt-dump -t --kill -o "$IMG" "$KID"
	[ "$(cut -d' ' -f3 "/proc/$KID/stat")" = Z ]
}

# bats test_tags=root
@test "a tree killed at its dump whose parent reaps it a moment later: the restore waits for its pid to be free, then keeps it" {
	local rpid st=0
	zombie_tree 40
	ckpt-remap "$IMG" >"$BATS_TEST_TMPDIR/remap.out" 2>"$BATS_TEST_TMPDIR/remap.err" &
	rpid=$!
	CKPT_PIDS+=("$rpid")
	# It waits (sleeps) while the pid is a zombie's; then the parent reaps.
	wait_for grep -qx hrtimer_nanosleep "/proc/$rpid/wchan"
	[ "$(cut -d' ' -f3 "/proc/$KID/stat")" = Z ]
	touch "$D/reap"
	wait "$rpid" || st=$?
	cat "$BATS_TEST_TMPDIR/remap.err"
	[ "$st" -eq 0 ]
	grep -qx "count: 40" "$OUT"
}

# bats test_tags=root
@test "a tree whose pid a zombie nobody reaps still holds: the restore fails after 5 s naming the pid" {
	zombie_tree 1000
	run --separate-stderr ckpt-remap "$IMG"
	echo "status $status stderr: $stderr"
	[ "$status" -ne 0 ]
	[ "$stderr" = "ckpt-remap: pid $KID, which the tree had, is in use here: --pid-ns restores the tree in a new pid namespace" ]
	[ "$(cut -d' ' -f3 "/proc/$KID/stat")" = Z ]
}
