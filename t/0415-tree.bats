#!/usr/bin/env bats
# Process trees: ckpt-dump -t captures a process and every descendant into
# one stream, ckpt-remap rebuilds the tree with its pids (as root with
# clone3 set_tid; unprivileged, in a new user and pid namespace) and lets
# every process run only once all of them have their memory back.  Each
# workload (t/progs/tree, t/progs/mp.py) checks its own results, pids and
# parents after the restore.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir tree
	RERR=$BATS_TEST_TMPDIR/remap.err
}

# dump_tree: dump the tree of $BG_PID with --kill into $IMG once it is
# ready, and reap its root (its pid must be free again).
dump_tree() {
	wait_for_file "$D/ready"
	ckpt-dump -t --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
}

# remap_bg [OPTION...]: ckpt-remap $IMG in the background ($RP); teardown
# kills it and the tree below it.
remap_bg() {
	exec_clean ckpt-remap "$@" "$IMG" </dev/null >"$BATS_TEST_TMPDIR/remap.out" 2>"$RERR" &
	RP=$!
	CKPT_PIDS+=("$RP")
}

# remap_wait: wait for it; its status is the tree root's.
remap_wait() {
	local st=0
	wait "$RP" || st=$?
	CKPT_PIDS=()
	cat "$RERR" >&2
	cat "$BATS_TEST_TMPDIR/bg.err" >&2 || true
	return "$st"
}

# round_trip MODE [OPTION...]: tree MODE, dumped when ready, restored, let
# go; it must end with "ok MODE".
round_trip() {
	local mode=$1
	shift
	start_bg tree "$mode" "$D"
	dump_tree
	remap_bg "$@"
	touch "$D/go"
	remap_wait
	grep -qx "ok $mode" "$OUT"
}

@test "a bash -c three-stage pipeline over a counter keeps flowing: not a line lost or doubled" {
	local n=30000000 want
	want=$(seq 1 "$n" | grep -c 7)
	start_bg bash -c "seq 1 $n | awk 'NR == 2000 { system(\"echo 1 >$D/ready\") } { print }' | grep -c 7"
	dump_tree
	ckpt-inspect "$IMG" >"$BATS_TEST_TMPDIR/inspect"
	grep -q '^tree: *4 processes' "$BATS_TEST_TMPDIR/inspect"
	remap_bg
	remap_wait
	[ "$(cat "$OUT")" = "$want" ]
}

@test "a parent and four children over pipes and shared memory: every answer and sum intact" {
	round_trip workers
}

# bats test_tags=root
@test "--pid-ns: the same tree in a new pid namespace, as root" {
	round_trip workers --pid-ns
}

@test "a zombie is reaped after the restore with its status, and a child exiting later too" {
	start_bg tree zombie "$D"
	wait_for_file "$D/ready"
	dump_tree
	ckpt-inspect "$IMG" | grep -q 'zombie, exited 7'
	ckpt-inspect --json "$IMG" | grep -q '"zombie":true,"exit_status":1792'
	remap_bg
	touch "$D/go"
	remap_wait
	grep -qx "ok zombie" "$OUT"
}

@test "a session leader with two process groups keeps its session and groups" {
	round_trip session
}

@test "a fork+exec'd child runs on under its parent" {
	round_trip exec
}

@test "popen: the reader gets every line the child writes, and its status" {
	round_trip popen
}

@test "python multiprocessing: a pool of two workers finishes its computation" {
	[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
	start_bg /usr/bin/python3 "$TOP/t/progs/mp.py" "$D"
	dump_tree
	remap_bg
	remap_wait
	grep -qx "ok python" "$OUT"
}

@test "a session leader gets its pty back as its controlling terminal, its child's group in the foreground" {
	round_trip pty
}

@test "a child sharing its parent's cwd (CLONE_FS) shares it again" {
	round_trip clonefs
}

@test "a child sharing its parent's memory (CLONE_VM) is refused, naming both, and both run on" {
	start_bg tree clonevm "$D"
	wait_for_file "$D/ready"
	run --separate-stderr ckpt-dump -t -o "$IMG" "$BG_PID"
	[ "$status" -eq 1 ]
	[[ "$stderr" == "ckpt-dump: pid "*" shares its memory with its parent $BG_PID (vfork or CLONE_VM); not supported" ]]
	[ ! -e "$IMG" ]
	finish_bg
}

@test "ckpt-inspect shows the tree: pid, ppid, pgid, sid and command of each process" {
	start_bg tree session "$D"
	wait_for_file "$D/ready"
	ckpt-dump -t -o "$IMG" "$BG_PID"
	finish_bg
	run ckpt-inspect "$IMG"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"tree:     5 processes"* ]]
	[[ "$output" == *"PID    PPID    PGID     SID  COMMAND"* ]]
	# The root, the session leader indented under it, its three children
	# under that.
	echo "$output" | grep -Eq "^ +$BG_PID +[0-9]+ +[0-9]+ +[0-9]+  tree session "
	echo "$output" | grep -Eq "^ +[0-9]+ +$BG_PID +([0-9]+) +\1    tree session "
	[ "$(echo "$output" | grep -Ec '^ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+      tree session ')" -eq 3 ]
	run ckpt-inspect --json "$IMG"
	[ "$(echo "$output" | grep -o '"zombie":false' | wc -l)" -eq 5 ]
}

# alive PID...: whether any of them is a live process (not a zombie).
alive() {
	local p st
	for p in "$@"; do
		st=$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null) || continue
		[ "$st" = Z ] || return 0
	done
	return 1
}

@test "a tree image cut in the last process's pages: exit 99 naming the cut, and no process of it ran" {
	local pids size logsize
	start_bg tree workers "$D"
	dump_tree
	mapfile -t pids < <(ckpt-inspect "$IMG" | sed -n 's/^process:  pid \([0-9]*\) .*/\1/p')
	[ "${#pids[@]}" -eq 5 ]
	size=$(stat -c %s "$IMG")
	head -c $((size - 5000)) "$IMG" >"$IMG.cut"
	logsize=$(stat -c %s "$D/log")
	run --separate-stderr timeout 60 ckpt-remap "$IMG.cut"
	echo "$stderr"
	[ "$status" -eq 99 ]
	[[ "$stderr" == *"image truncated"* ]]
	# The processes that had their pages before the cut were killed
	# before any of them ran: the log the children write is as it was.
	wait_for -t 5 not alive "${pids[@]}"
	[ "$(stat -c %s "$D/log")" -eq "$logsize" ]
}

@test "--new-pids refuses a tree, naming why, before anything runs" {
	start_bg tree workers "$D"
	dump_tree
	run --separate-stderr ckpt-remap --new-pids "$IMG"
	[ "$status" -eq 99 ]
	[[ "$stderr" == *"--new-pids is for an image of one process"* ]]
}

@test "a pipe from the tree to a process outside it: dumped, fd 1 inherited, fd 3 marked as leading outside" {
	exec_clean bash -c "sleep 1000 3>&1 | cat >/dev/null" </dev/null >/dev/null 2>&1 &
	CKPT_PIDS+=("$!")
	local sl
	wait_for pgrep -P "$!" sleep
	sl=$(pgrep -P "$!" sleep)
	run --separate-stderr ckpt-dump -t -o "$IMG" "$sl"
	[ "$status" -eq 0 ]
	run ckpt-inspect "$IMG"
	[[ "$output" == *"fd 1   inherit "* ]]
	[[ "$output" == *"fd 3   pipe "*" write end queued 0 "*" other end outside "* ]]
}
