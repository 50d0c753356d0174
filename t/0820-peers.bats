#!/usr/bin/env bats
# Connections between the members of one coordinated computation: at the
# barrier the bytes in flight between members are drained and kept with
# the generation (IMG_FD_PEER), given back on resume, and at a restart the
# connections are made again through the new coordinator before the
# programs run.  The workloads check every byte they receive against the
# pattern its sender writes and log milestones to a file of their own; a
# run with ten checkpoints at random moments, one of them --kill and a
# restart, must leave the same logs as an uninterrupted run, byte for
# byte.

load lib

bats_require_minimum_version 1.5.0

TOTAL=3000000

teardown() {
	coord_teardown
}

# pause: a random moment, 0.1 to 0.5 s from now (when the next
# checkpoint comes; nothing waits on it).
pause() {
	sleep "0.$((RANDOM % 5 + 1))"
}

# checkpoints N [PORT]: N checkpoints of the coordinator at random moments.
checkpoints() {
	for _ in $(seq "$1"); do
		pause
		ckpt-signal --coord-port "${2:-$CPORT}" --checkpoint --wait >/dev/null
	done
}

# kept_bytes DIR: the bytes in flight each image of generation DIR kept for
# its peer connections, one number a connection.
kept_bytes() {
	local img
	for img in "$1"/ckpt_*.ckpt*; do
		ckpt-inspect "$img" | sed -n 's/.* peer .* bytes_kept \([0-9]*\) .*/\1/p'
	done
}

# same_as_uninterrupted DIR ROLE...: each ROLE's log in DIR is what an
# uninterrupted run writes.
same_as_uninterrupted() {
	local d=$1 role
	shift
	for role in "$@"; do
		peerpair expect "$role" "$TOTAL" >"$BATS_TEST_TMPDIR/$role.expect"
		echo "$role:"
		cat "$d/$role.out"
		cmp "$BATS_TEST_TMPDIR/$role.expect" "$d/$role.out"
	done
}

# pair SERVER CLIENT KIND [tree]: two members, peerpair SERVER and CLIENT,
# on a connection of KIND (tcp, unix) with bytes in flight both ways,
# through five checkpoints at random moments, a sixth with --kill, a
# restart and four more; both logs must be an uninterrupted run's.  With
# tree, the server is the child of a shell, the member's root: restarted
# without privilege, the member comes back in a pid namespace of its own.
pair() {
	local d=$BATS_TEST_TMPDIR/$3 gen kept img imgs
	mkdir -p "$d"
	start_coord
	if [ "${4:-}" = tree ]; then
		inject "$1" sh -c 'peerpair "$@"; exit $?' sh "$1" "$d" "$TOTAL"
	else
		inject "$1" peerpair "$1" "$d" "$TOTAL"
	fi
	inject "$2" peerpair "$2" "$d" "$TOTAL"
	wait_for has_members 2
	wait_for_line "$d/$1.out" "262144 bytes"
	checkpoints 5
	pause
	gen=$(ckpt-signal --checkpoint --wait --kill)
	wait_for has_members 0
	# What was in flight at the checkpoints was kept, in the images of
	# both ends, and ckpt-inspect names the other member.
	for img in "$gen"/ckpt_*.ckpt.zst; do ckpt-inspect "$img"; done >"$BATS_TEST_TMPDIR/inspect"
	[ "$(grep -c " peer .* $3 token [0-9a-f]\{32\} side [01] peer_member [12] peer_name [a-z]* bytes_kept [0-9]*" "$BATS_TEST_TMPDIR/inspect")" -eq 2 ]
	# ckpt-inspect of the generation pairs the two ends: one connection
	# of this kind between members 1 and 2, each end named.
	ckpt-inspect "$gen" | tee "$BATS_TEST_TMPDIR/gen"
	grep -q "^generation $gen: 2 members$" "$BATS_TEST_TMPDIR/gen"
	[ "$(grep -c "^  [0-9a-f]\{32\} $3: member [12] [a-z]* (pid [0-9]* fd [0-9]*, " "$BATS_TEST_TMPDIR/gen")" -eq 1 ]
	[ "$(grep -c "^    <-> member [12] [a-z]* (pid [0-9]* fd [0-9]*, " "$BATS_TEST_TMPDIR/gen")" -eq 1 ]
	ckpt-inspect --json "$gen" | python3 -c '
import json, sys
g = json.load(sys.stdin)
assert [m["id"] for m in g["members"]] == [1, 2], g
(c,) = g["connections"]
assert c["kind"] == sys.argv[1] and "missing" not in c, c
assert sorted(e["member"] for e in c["ends"]) == [1, 2], c
assert sorted(e["side"] for e in c["ends"]) == [0, 1], c
' "$3"
	kept=$(for g in "$CDIR"/ckpt_gen_*; do kept_bytes "$g"; done | sort -n | tail -1)
	echo "most bytes kept for one connection: $kept"
	[ "$kept" -gt 0 ]
	# A plain ckpt-remap cannot make the connection: refused by name,
	# before anything is made.
	imgs=("$gen"/ckpt_peerpair_*.ckpt.zst)
	run --separate-stderr ckpt-remap "${imgs[0]}"
	one_line 99 "a $3 connection to member "
	[[ $stderr == *"of a coordinated computation, which only its restart script (ckpt-inject --restart) connects again; not supported" ]]

	restart_bg "$gen"
	wait_for has_members 2 "$RPORT"
	checkpoints 1 "$RPORT"
	# The coordinator shows the connection between them.
	run ckpt-signal --coord-port "$RPORT" --status
	echo "$output"
	[[ $output == *"connections: 1-2:$3"* ]]
	checkpoints 3 "$RPORT"
	reap "$RS_PID"
	cat "$BATS_TEST_TMPDIR/restart.out"
	[ "$status" -eq 0 ]
	# Ten generations, the last four of the restarted computation.
	[ -d "$CDIR/ckpt_gen_000010" ]
	same_as_uninterrupted "$d" "$1" "$2"
}

@test "TCP between two members: ten checkpoints at random moments, one --kill and a restart; every byte in order" {
	pair server client tcp
}

@test "TCP to a member that is a process tree (a pid namespace of its own when restarted without privilege)" {
	pair server client tcp tree
}

@test "a unix stream socket between two members: ten checkpoints, one --kill and a restart; every byte in order" {
	pair userver uclient unix
}

@test "a pipe between two members (producer | consumer): ten checkpoints, one --kill and a restart; every byte in order" {
	local d=$BATS_TEST_TMPDIR/pipe gen img
	mkdir -p "$d"
	start_coord
	exec_clean bash -c 'ckpt-inject -- peerpair producer "$1" "$2" | ckpt-inject -- peerpair consumer "$1" "$2"' \
		_ "$d" "$TOTAL" </dev/null >"$BATS_TEST_TMPDIR/pipeline.out" 2>&1 &
	CKPT_PIDS+=("$!")
	wait_for has_members 2
	wait_for_line "$d/consumer.out" "262144 bytes"
	checkpoints 5
	pause
	gen=$(ckpt-signal --checkpoint --wait --kill)
	wait_for has_members 0
	# The consumer's end kept what was in the pipe; the producer's
	# nothing (it is all the reader's).
	for img in "$gen"/ckpt_peerpair_*.ckpt.zst; do ckpt-inspect "$img"; done >"$BATS_TEST_TMPDIR/inspect"
	grep " peer .* pipe token [0-9a-f]\{32\} side 0 .* bytes_kept [0-9]*" "$BATS_TEST_TMPDIR/inspect"
	grep " peer .* pipe token [0-9a-f]\{32\} side 1 .* bytes_kept 0 " "$BATS_TEST_TMPDIR/inspect"

	restart_bg "$gen"
	wait_for has_members 2 "$RPORT"
	checkpoints 1 "$RPORT"
	run ckpt-signal --coord-port "$RPORT" --status
	echo "$output"
	[[ $output == *"connections: 1-2:pipe"* ]]
	checkpoints 3 "$RPORT"
	reap "$RS_PID"
	cat "$BATS_TEST_TMPDIR/restart.out"
	[ "$status" -eq 0 ]
	[ -d "$CDIR/ckpt_gen_000010" ]
	same_as_uninterrupted "$d" producer consumer
}
