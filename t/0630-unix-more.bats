#!/usr/bin/env bats
# Unix stream sockets beyond pairs (t/progs/unixconn checks each byte, the
# counts, a checksum, the names and the peer credentials itself):
# connections waiting in a listener's queue that nobody accepted yet come
# back in the queue, in their order, with the bytes their clients had sent
# (taken with --kill; refused without, the program unharmed); a connection
# to a server outside the dumped processes (one the test starts and stops)
# is refused by default naming its path, connected again with
# --ext-unix=reconnect, closed with --ext-unix=close; a message carrying
# file descriptors (SCM_RIGHTS) comes back with them.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir unixmore
	SRV=
}

teardown() {
	kill_started
	if [ -n "$SRV" ]; then
		kill -KILL "$SRV" 2>/dev/null || true
		wait "$SRV" 2>/dev/null || true
	fi
}

# start KIND: unixconn KIND in the background, ready.
start() {
	start_bg unixconn "$1" "$D"
	wait_for_line "$OUT" '^ready '
}

# server: the echo server on $D/ext, outside what is dumped; its pid in $SRV.
server() {
	exec_clean unixconn extserver "$D" </dev/null >"$BATS_TEST_TMPDIR/srv.out" 2>&1 &
	SRV=$!
	wait_for_line "$BATS_TEST_TMPDIR/srv.out" '^ready '
}

stop_server() {
	kill -KILL "$SRV"
	wait "$SRV" 2>/dev/null || true
	SRV=
}

# refused KIND PATTERN [OPTION...]: ckpt-dump OPTION... of unixconn KIND
# fails with one line matching PATTERN (@PID@ the program's pid, @D@ its
# directory); the program runs on, intact.
refused() {
	local kind=$1 pat=$2
	shift 2
	start "$kind"
	pat=${pat//@PID@/$BG_PID}
	pat=${pat//@D@/$D}
	run --separate-stderr ckpt-dump "$@" -o "$IMG" "$BG_PID"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 1 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == $pat ]]
	untraced "$BG_PID"
	finish_bg
	grep -qx "unixconn $kind: ok" "$OUT"
}

@test "a listener with two connections nobody accepted yet (bytes sent): --kill, restored; accept gives each in order with its bytes, names and credentials kept" {
	start pending
	bg_dump_kill
	bg_restored "unixconn pending: ok"
}

@test "connections waiting with nothing sent: a dump without --kill leaves the program unharmed, and the image restores" {
	start pendingidle
	ckpt-dump -o "$IMG" "$BG_PID"
	untraced "$BG_PID"
	finish_bg
	grep -qx "unixconn pendingidle: ok" "$OUT"
	# Its output file has grown since: the restored one writes the same
	# line at the same offset, and exits 0 only if its checks pass.
	bg_restored "unixconn pendingidle: ok" --allow-changed-files
}

@test "a tree (-t): a child's connection nobody accepted yet, with bytes sent, comes back in the parent's listener" {
	start pendingtree
	bg_dump_kill -t
	bg_restored "unixconn pendingtree: ok"
}

@test "a waiting connection whose client is not dumped (no -t) is refused naming the listener, the program unharmed" {
	refused pendingtree "*pid @PID@: fd 3 is a unix socket (socket:\[*\]) listening on @D@/s with a connection nobody accepted yet whose client is not in the dumped processes; not supported" --kill
}

@test "a waiting connection holding bytes: a dump without --kill is refused by name, the program unharmed" {
	refused pending "*pid @PID@: fd 6 is a unix socket (socket:\[*\]) connected to @D@/s, which has not accepted it yet, with data it sent (taken with --kill); not supported"
}

@test "ckpt-inspect shows waiting connections, their place in the queue and their names (text and --json)" {
	start pending
	bg_dump_kill
	run --separate-stderr ckpt-inspect "$IMG"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"fd 6   unix "*" stream pending 0 peer $D/s queued 40000 messages 1 "* ]]
	[[ "$output" == *"fd 7   unix "*" stream pending 1 name $D/c7 peer $D/s queued 777 "* ]]
	run --separate-stderr ckpt-inspect --json "$IMG"
	[ "$status" -eq 0 ]
	[[ "$output" == *'"pending":1,"name":"'"$D"'/c7","peer":"'"$D"'/s","queued":777'* ]]
}

@test "names: an abstract listener made after its connection's ends, an abstract client name, a listener closed since (a client of it autobound by SO_PASSCRED): every name as before" {
	start names
	bg_dump_kill
	bg_restored "unixconn names: ok"
}

@test "a client of a server outside the dumped processes: refused by default, naming the path" {
	server
	refused extreconnect "*pid @PID@: fd 3 is a unix socket (socket:\[*\]) connected to @D@/ext, a socket outside the dumped processes; not supported yet"
}

@test "--ext-unix=reconnect: the restore connects to the same path again, and the server answers" {
	server
	start extreconnect
	bg_dump_kill --ext-unix=reconnect
	run --separate-stderr ckpt-inspect "$IMG"
	[[ "$output" == *"fd 3   unix "*" stream reconnect peer $D/ext queued 0 "* ]]
	bg_restored "unixconn extreconnect: ok"
}

@test "--ext-unix=reconnect with nothing listening at restore: refused in one line naming the path" {
	server
	start extreconnect
	bg_dump_kill --ext-unix=reconnect
	stop_server
	run --separate-stderr timeout 60 ckpt-remap "$IMG"
	echo "status $status stderr: $stderr"
	[ "$status" -ne 0 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == *"fd 3: nothing listens on $D/ext, to which its unix socket was connected (--ext-unix=reconnect)" ]]
}

@test "--ext-unix=close: the program reads what was queued, then the end of the stream; writes fail with EPIPE" {
	server
	start extclose
	bg_dump_kill --ext-unix=close
	stop_server
	run --separate-stderr ckpt-inspect --json "$IMG"
	[[ "$output" == *'"closed":true,"peer":"'"$D"'/ext","queued":1'* ]]
	bg_restored "unixconn extclose: ok"
}

@test "a message carrying a file descriptor (SCM_RIGHTS) queued on a socket: restored, the program receives it and reads through it (t/0650 for more)" {
	start rights
	bg_dump_kill
	bg_restored "unixconn rights: ok"
}

@test "--ext-unix takes reconnect or close, nothing else (usage error, status 2)" {
	run --separate-stderr ckpt-dump --ext-unix=keep -o "$IMG" "$$"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 2 ]
	[[ "$stderr" == "ckpt-dump: --ext-unix: not reconnect or close: keep" ]]
}
