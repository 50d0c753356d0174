#!/usr/bin/env bats
# Unix connections made by connect() and accept() whose two ends the process
# (or tree) holds come back joined, mid-conversation: every byte queued
# either way arrives once (t/progs/unixconn checks each byte, the counts and
# a checksum) and the conversation goes on; seqpacket and datagram ones
# keep their message boundaries.  A restored connection keeps its names:
# getsockname and getpeername give what they gave before, which unixconn
# checks.  A connection to a socket outside the dumped processes is refused
# naming the peer's path, except on fds 0-2, which the restoring process
# gives then, as it does a pipe there.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir unixconn
}

# start KIND: unixconn KIND in the background, ready.
start() {
	start_bg unixconn "$1" "$D"
	wait_for_line "$OUT" '^ready '
}

# restored KIND [OPTION...]: the image ($IMG) restored, the program's checks pass.
restored() {
	local kind=$1
	shift
	bg_restored "unixconn $kind: ok" "$@"
}

# refused KIND PATTERN: ckpt-dump of unixconn KIND fails with one line
# matching PATTERN (@PID@: the program's pid, @D@ its directory); the
# program runs on, its connection intact.
refused() {
	local pat
	start "$1"
	pat=${2//@PID@/$BG_PID}
	pat=${pat//@D@/$D}
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 1 ]
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
	[[ "$stderr" == $pat ]]
	untraced "$BG_PID"
	finish_bg
	grep -qx "unixconn $1: ok" "$OUT"
}

@test "a tree (-t): a unix server and two clients it accepted, bytes queued both ways: every byte back, the conversation goes on" {
	start tree
	bg_dump_kill -t
	restored tree
}

# named_unixconn PID N: N processes below PID (ckpt-remap) are unixconn,
# each restored (the restorer names a process last, as it jumps into it).
named_unixconn() {
	local n=0 p
	for p in $(descendants "$1"); do
		if comm_is "$p" unixconn; then
			n=$((n + 1))
		fi
	done
	[ "$n" -eq "$2" ]
}

@test "another process connecting to the listener again and again all through the restore: the tree's connections are joined to their own peers, not to its; those it made after them wait in the listener's queue" {
	local knock remap
	start busy
	bg_dump_kill -t
	exec_clean unixconn knock "$D" >"$BATS_TEST_TMPDIR/knock.out" 2>&1 &
	knock=$!
	CKPT_PIDS+=("$knock")
	wait_for_line "$BATS_TEST_TMPDIR/knock.out" '^knocking$'
	exec_clean ckpt-remap "$IMG" >"$BATS_TEST_TMPDIR/remap.out" 2>&1 &
	remap=$!
	CKPT_PIDS+=("$remap")
	wait_for named_unixconn "$remap" 3 || {
		cat "$BATS_TEST_TMPDIR/remap.out"
		false
	}
	touch "$D/stop"
	reap "$knock"
	cat "$BATS_TEST_TMPDIR/knock.out"
	[ "$status" -eq 0 ]
	# It got into the restored listener (nothing listened before).
	grep -Eq '^knock: [1-9][0-9]* connections made$' "$BATS_TEST_TMPDIR/knock.out"
	touch "$D/go"
	reap "$remap"
	cat "$BATS_TEST_TMPDIR/remap.out" "$OUT"
	[ "$status" -eq 0 ]
	grep -qx "unixconn busy: ok" "$OUT"
	# Those made after the restore's own were left to the program.
	grep -Eq '^queued strangers: [1-9][0-9]*$' "$OUT"
}

@test "a tree (-t) whose child's stdin is a socketpair end its parent holds (MPICH's launcher and proxy): paired, every byte back both ways" {
	start stdin
	bg_dump_kill -t
	run --separate-stderr ckpt-inspect "$IMG"
	[ "$status" -eq 0 ]
	echo "$output" | grep -E "^ +fd 0 +unix .* stream pair .* queued 5000 "
	echo "$output" | grep -E "^ +fd 5 +unix .* stream pair .* queued 20000 "
	restored stdin
}

@test "the child alone, whose stdin is a socket to a process not dumped: that fd is the restoring process's, as any socket on fds 0-2 from outside" {
	local kid
	start stdin
	kid=$(cat "/proc/$BG_PID/task/$BG_PID/children")
	kid=${kid% }
	ckpt-dump -o "$IMG" "$kid"
	untraced "$kid"
	run --separate-stderr ckpt-inspect "$IMG"
	[ "$status" -eq 0 ]
	echo "$output" | grep -E "^ +fd 0 +inherit"
	finish_bg
	grep -qx "unixconn stdin: ok" "$OUT"
}

@test "one process: accepted and connected stream ends (a client unbound, one bound), datagram sockets connected to each other: every byte back" {
	start one
	bg_dump_kill
	restored one
}

@test "a dump without --kill takes nothing: the program runs on and reads every byte queued in its connections" {
	start one
	ckpt-dump -o "$IMG" "$BG_PID"
	untraced "$BG_PID"
	finish_bg
	grep -qx "unixconn one: ok" "$OUT"
}

@test "seqpacket: an accepted connection keeps its message boundaries both ways" {
	start seqpacket
	bg_dump_kill
	restored seqpacket
}

@test "ckpt-inspect shows a connection as a unix pair with its names and what is queued" {
	start one
	bg_dump_kill
	run --separate-stderr ckpt-inspect "$IMG"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"fd 4   unix "*" stream pair "*" end 0 peer $D/s queued 30001 messages 1 "* ]]
	[[ "$output" == *"fd 5   unix "*" stream accepted pair "*" end 1 name $D/s queued 51000 messages 1 "* ]]
	[[ "$output" == *"fd 7   unix "*" stream accepted pair "*" name $D/s peer $D/c6 queued 52000 "* ]]
	[[ "$output" == *"fd 9   unix "*" dgram pair "*" name $D/d9 peer $D/d8 queued 3300 messages 3 "* ]]
	run --separate-stderr ckpt-inspect --json "$IMG"
	[ "$status" -eq 0 ]
	[[ "$output" == *'"accepted":true,"pair":'*',"name":"'"$D"'/s","peer":"'"$D"'/c6","queued":52000'* ]]
}

@test "a client connected to a server outside the dumped processes is refused, naming the path" {
	refused outside "*pid @PID@: fd 3 is a unix socket (socket:\[*\]) connected to @D@/ext, a socket outside the dumped processes; not supported yet"
}

@test "a datagram socket connected to one in the process that is not connected back is refused, naming the path" {
	refused oneway "*pid @PID@: fd 4 is a unix socket (socket:\[*\]) connected to @D@/srv, which is not connected back to it; not supported yet"
}
