#!/usr/bin/env bats
# A scatter/gather job (t/progs/scatter): a master and four workers, each
# its own member, over TCP, with work items queued to the workers and
# results queued to the master at most moments.  The master checks every
# result, and its log ends with a checksum over all of them: through ten
# checkpoints at random moments (the seed printed; the last with --kill)
# and a restart by the generation's script, the log must equal an
# uninterrupted run's, byte for byte.  On three hosts made of network
# namespaces (t/lib-net.bash; root makes them, the members run as
# ckpt-test), restarted on the same hosts and on a permutation of them;
# and on one host over loopback, as root and unprivileged.

load lib
load lib-net

bats_require_minimum_version 1.5.0

ITEMS=6000
HOLD=5400 # items handed out only once DIR/go exists (the job is still running at the 10th checkpoint)
MIB=8

# The uninterrupted run's log, once for the file: the same job without
# checkpoints, pacing or coordinator.
setup_file() {
	local d=$BATS_FILE_TMPDIR/plain p i
	mkdir -p "$d"
	scatter master -p 0 -w 32 "$d" 4 "$ITEMS" "$MIB" </dev/null >"$d/master.log" 2>&1 &
	p=$!
	for i in 1 2 3 4; do
		scatter worker "$d" </dev/null >"$d/w$i.out" 2>&1 &
	done
	wait "$p"
	wait
	cp "$d/master.out" "$BATS_FILE_TMPDIR/expect"
	tail -1 "$BATS_FILE_TMPDIR/expect" | grep -q "^scatter: $ITEMS results from 4 workers, checksum [0-9a-f]\{16\}$"
}

# The hosts are made by the one test that needs them, and go with it.
teardown() {
	# (bash's word on each sshd killed is no news)
	net_cleanup 2>/dev/null
	coord_teardown
}

# seeded: RANDOM seeded from CKPT_SEED (or at random), the seed printed.
seeded() {
	local seed=${CKPT_SEED:-$RANDOM}
	echo "# CKPT_SEED=$seed" >&3
	RANDOM=$seed
}

# ten_checkpoints LOG SIGNAL...: ten checkpoints by SIGNAL (a ckpt-signal
# command), each once LOG has a random number more lines than at the one
# before; the last with --kill.  The generation in $GEN.
ten_checkpoints() {
	local log=$1 k
	shift
	for ((k = 1; k <= 9; k++)); do
		wait_for -t 60 at_least $((k * 5 + RANDOM % 4)) "$log"
		run "$@" --checkpoint --wait
		echo "$output"
		[ "$status" -eq 0 ]
	done
	wait_for -t 60 at_least $((50 + RANDOM % 4)) "$log"
	run "$@" --checkpoint --wait --kill
	echo "$output"
	[ "$status" -eq 0 ]
	GEN=$output
}

# in_flight CKDIR: over the generations kept in CKDIR, bytes were in
# flight both ways at a checkpoint: results to the master (kept in its
# images, member 1) and items to the workers (kept in theirs).
in_flight() {
	local to_master to_workers
	to_master=$(kept "$1"/ckpt_gen_*/ckpt_scatter_1.ckpt.zst)
	to_workers=$(kept "$1"/ckpt_gen_*/ckpt_scatter_[2-5].ckpt.zst)
	echo "bytes kept: $to_master to the master, $to_workers to the workers"
	[ "$to_master" -gt 0 ] && [ "$to_workers" -gt 0 ]
}
kept() {
	local img
	for img in "$@"; do
		ckpt-inspect "$img"
	done | sed -n 's/.* peer .* bytes_kept \([0-9]*\) .*/\1/p' | awk '{ n += $1 } END { print n + 0 }'
}

# same_as_uninterrupted LOG: LOG is the uninterrupted run's, byte for byte.
same_as_uninterrupted() {
	echo "master's log:"
	tail -3 "$1"
	cmp "$BATS_FILE_TMPDIR/expect" "$1"
}

# --- on three hosts ---

# net_job: three hosts, a directory of the user's ($W) and a coordinator
# on h1 as ckpt-test ($CH:$CP).
net_job() {
	net_hosts 3
	echo "# 3 hosts up in $NET_SECONDS s" >&3
	W=$NET_DIR/home/t$BATS_TEST_NUMBER
	net_user mkdir -m 700 "$W" "$W/job"
	SSH_CMD="ssh -F $NET_SSH_CONFIG"
	net_coord h1 "$W"
}

# net_member HOST NAME CMD...: CMD (words without spaces) started on
# HOST over ssh from h1 by ckpt-test under ckpt-inject, a member; its
# output in $W/job/NAME.out.
net_member() {
	local host=$1 name=$2
	shift 2
	net_ssh h1 --as "$NET_USER" "$host" "$TOP/bin/ckpt-inject --coord-host $CH --coord-port $CP \
--secret-file $W/secret -- $TOP/t/progs/$* >$W/job/$name.out 2>&1" </dev/null >/dev/null 2>&1 &
	CKPT_PIDS+=("$!")
}

# net_restart ARG...: the generation $GEN's restart script, on h1 as
# ckpt-test with ARG..., to its end (two minutes at most).
net_restart() {
	rm -f "$W/rport"
	net_on h1 --as "$NET_USER" env CKPT_SSH="$SSH_CMD" timeout 120 \
		"$GEN/ckpt_restart_script.sh" --coord-port 0 --port-file "$W/rport" "$@" </dev/null
}

# net_user CMD...: CMD as ckpt-test, here (not on a host).
net_user() {
	setpriv --reuid="$NET_USER" --regid="$(id -g "$NET_USER")" --init-groups "$@"
}

# bats test_tags=root
@test "scatter/gather on three hosts: master and four workers over TCP, ten checkpoints (the last --kill), restarted on the same and on permuted hosts: an uninterrupted run's log" {
	[ "$(id -u)" -eq 0 ] || skip "only root makes hosts"
	local i hosts
	seeded
	net_job
	# The master on h1, the workers on h2, h3, h1, h2: connections
	# between hosts and within one.
	net_member h1 master scatter master -H "$HOLD" "$W/job" 4 "$ITEMS" "$MIB" "$CH"
	wait_for net_members 1
	for i in 1 2 3 4; do
		net_member "h$(((i % 3) + 1))" "w$i" scatter worker "$W/job"
		wait_for net_members $((i + 1))
	done
	run net_signal --status
	echo "$output"
	hosts=$(sed -n 's/^hosts: //p' <<<"$output" | tr , '\n' | sort | paste -sd,)
	[ "$hosts" = "1@h1,2@h2,3@h3,4@h1,5@h2" ]
	ten_checkpoints "$W/job/master.out" net_signal
	wait_for net_members 0
	# Each image holds the connections' ends: the master's four.
	ckpt-inspect "$GEN"/ckpt_scatter_1.ckpt.zst >"$BATS_TEST_TMPDIR/inspect"
	[ "$(grep -c " peer .* tcp token " "$BATS_TEST_TMPDIR/inspect")" -eq 4 ]
	in_flight "$W/ck"

	net_user touch "$W/job/go"
	run net_restart
	echo "$output"
	[ "$status" -eq 0 ]
	same_as_uninterrupted "$W/job/master.out"
	for i in 1 2 3 4; do
		grep -qx "scatter worker: ok" "$W/job/w$i.out"
	done

	run net_restart --host-map h1=h2 --host-map h2=h3 --host-map h3=h1
	echo "$output"
	[ "$status" -eq 0 ]
	same_as_uninterrupted "$W/job/master.out"
}

# --- on one host, over loopback ---

@test "scatter/gather on one host over loopback: ten checkpoints (the last --kill) and a restart: an uninterrupted run's log" {
	local d=$BATS_TEST_TMPDIR/job i
	mkdir -p "$d"
	seeded
	start_coord
	inject master scatter master -H "$HOLD" "$d" 4 "$ITEMS" "$MIB"
	wait_for has_members 1
	for i in 1 2 3 4; do
		exec_clean ckpt-inject -- scatter worker "$d" </dev/null >"$d/w$i.out" 2>&1 &
		CKPT_PIDS+=("$!")
	done
	wait_for has_members 5
	ten_checkpoints "$d/master.out" ckpt-signal
	wait_for has_members 0
	in_flight "$CDIR"
	touch "$d/go"
	restart_bg "$GEN"
	reap "$RS_PID"
	cat "$BATS_TEST_TMPDIR/restart.out"
	[ "$status" -eq 0 ]
	same_as_uninterrupted "$d/master.out"
	for i in 1 2 3 4; do
		grep -qx "scatter worker: ok" "$d/w$i.out"
	done
}
