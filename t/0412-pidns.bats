#!/usr/bin/env bats
# A tree restored in a pid namespace (without privilege, or --pid-ns) has
# its old pids there; dumped again from outside by its host pid, its image
# keeps the pids the tree sees, so the next restore gives each process the
# pids it knows.  t/progs/pidns checks after each restore its getpid(), a
# thread's tid, its children's pids (kill, their answers, a pidfd) and at
# the end waitpid(child).

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir pidns
	RERR=$BATS_TEST_TMPDIR/remap.err
}

teardown() {
	coord_teardown
}

# remap_bg [OPTION...]: ckpt-remap $IMG in the background ($RP).
remap_bg() {
	exec_clean ckpt-remap "$@" "$IMG" </dev/null >>"$OUT" 2>>"$RERR" &
	RP=$!
	CKPT_PIDS=("$RP")
}

# tree_root: the host pid of the restored tree's root, the first process
# named pidns below ckpt-remap ($RP).
tree_root() {
	local p
	for p in $(descendants "$RP"); do
		if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = pidns ]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# ready_or_gone R: the tree is ready for round R, or ckpt-remap ended (a
# check failed).
ready_or_gone() {
	[ -s "$D/ready.$1" ] || ! kill -0 "$RP" 2>/dev/null
}

# rounds [OPTION...]: pidns dumped at ready.0, restored by ckpt-remap
# OPTION..., let go; then twice more the restored tree dumped by its host
# pid and restored again.  It must end with "ok pidns".
rounds() {
	local r root st=0
	start_bg pidns "$D" 3
	wait_for_file "$D/ready.0"
	ckpt-dump -t --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	for r in 0 1 2; do
		remap_bg "$@"
		touch "$D/go.$r"
		[ "$r" -eq 2 ] && break
		wait_for ready_or_gone $((r + 1))
		root=$(tree_root) || break
		ckpt-dump -t --kill -o "$IMG" "$root"
		ckpt-inspect "$IMG" | grep -E '^ +[0-9]+ +[0-9]+ ' >&2 || true
		wait "$RP" || true
	done
	wait "$RP" || st=$?
	CKPT_PIDS=()
	cat "$RERR" "$BATS_TEST_TMPDIR/bg.err" >&2 || true
	[ "$st" -eq 0 ]
	grep -qx "ok pidns" "$OUT"
}

@test "a tree restored in a pid namespace, dumped by its host pid and restored, three times: its pids hold" {
	[ "$(id -u)" -ne 0 ] || skip "as root the default keeps host pids (the --pid-ns test)"
	rounds
}

# bats test_tags=root
@test "as root, --pid-ns: the same three rounds" {
	rounds --pid-ns
}

# A coordinator's member: restarted without privilege, its tree is in a
# pid namespace of its own, below ckpt-remap and its init; the member's
# helper finds it there and checkpoints it by its pid here.
@test "a tree member checkpointed with --kill and restarted by the script, three times: its pids hold" {
	local r dir port
	start_coord
	port=$CPORT
	inject pidns pidns "$D" 3 noproc
	PA=$INJ_PID
	wait_for has_members 1
	for r in 0 1 2; do
		wait_for_file "$D/ready.$r"
		run ckpt-signal --coord-port "$port" --checkpoint --wait --kill
		echo "$output"
		[ "$status" -eq 0 ]
		dir=$output
		# Each generation holds the tree under the pids it had at first.
		ckpt-inspect "$dir/ckpt_pidns_1.ckpt.zst" >"$BATS_TEST_TMPDIR/inspect"
		grep -q '^tree: *3 processes' "$BATS_TEST_TMPDIR/inspect"
		grep -Eq "^ +$PA +[0-9]+ " "$BATS_TEST_TMPDIR/inspect"
		reap "${RS_PID:-$PA}"
		[ "$status" -eq 137 ]
		restart_bg "$dir"
		port=$RPORT
		wait_for has_members 1 "$port"
		touch "$D/go.$r"
	done
	reap "$RS_PID"
	cat "$BATS_TEST_TMPDIR/restart.out" "$BATS_TEST_TMPDIR/pidns.out"
	[ "$status" -eq 0 ]
	grep -qx "ok pidns" "$BATS_TEST_TMPDIR/pidns.out"
}
