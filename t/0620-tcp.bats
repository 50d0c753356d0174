#!/usr/bin/env bats
# Established TCP connections whose two ends the tree holds come back with
# their addresses and every byte in flight each way, exactly once;
# t/progs/tcpconn checks each byte of each stream.  A connection to a peer
# outside is refused, or restored reset with --tcp-close.  No privilege
# is needed.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir tcp
}

# start MODE: tcpconn MODE in the background, ready; its port in $PORT.
start() {
	start_bg tcpconn "$1" "$D"
	wait_for_line "$OUT" '^ready '
	PORT=$(awk '/^ready /{print $4}' "$OUT")
}

# killed_and_restored MODE [DUMP OPTION...]: dump --kill, restore, the program's checks pass.
killed_and_restored() {
	local mode=$1
	shift
	bg_dump_kill "$@"
	bg_restored "tcpconn $mode: ok"
}

@test "a server, its listener and three clients (one tree), 48 KiB unread each way: dump --kill, restore, every byte once; the listener takes a new client" {
	start tree
	killed_and_restored tree -t
}

@test "a client parent and its server child, whose listener (no SO_REUSEADDR) is made after the connection on its port: dump --kill, restore" {
	start late
	killed_and_restored late -t
}

@test "a client port that a connection without SO_REUSEADDR left in TIME_WAIT (connect shares it, bind refuses it) is had again" {
	start twport
	killed_and_restored twport
}

@test "one process holding both ends of two connections: dump --kill and restore (as root with their sequence numbers, TCP_REPAIR)" {
	start one
	killed_and_restored one
	if [ "$(id -u)" -eq 0 ]; then
		grep -q '^ready .* seqs$' "$OUT"
		ckpt-inspect "$IMG" | grep -q ' tcp .* shutdown 0 pair [0-9]* end 0 repair unacked 0 '
	fi
}

@test "in a user and net namespace of its own, without privilege: both ends of each connection come back with their sequence numbers (TCP_REPAIR in the new namespace)" {
	unshare -Urn true 2>/dev/null || skip "no unprivileged user namespaces here"
	start_bg unshare -Urn tcpconn ownnet "$D"
	wait_for_line "$OUT" '^ready '
	grep -q '^ready .* seqs$' "$OUT"
	bg_dump_kill
	ckpt-inspect "$IMG" | grep -q ' tcp .* shutdown 0 pair [0-9]* end 1 repair unacked 0 '
	bg_restored "tcpconn ownnet: ok"
}

@test "IPv6 on ::1: a server and three clients come back with every byte" {
	python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null ||
		skip "no IPv6 loopback"
	start v6
	killed_and_restored v6 -t
	ckpt-inspect "$IMG" | grep -q ' tcp .* inet6 established \[::1\]:'"$PORT"' -> \[::1\]:'
}

@test "an idle connection, nothing in flight: dump --kill, restore at once (the kill left no TIME_WAIT behind)" {
	start idle
	killed_and_restored idle -t
}

# blocked_in_send: the child of tcpconn full sleeps in sendto(2).
blocked_in_send() {
	local kid
	kid=$(descendants "$BG_PID")
	wait_for grep -q '^44 ' "/proc/$kid/syscall"
}

@test "a dual-stack IPv6 server on [::] and its IPv4 clients: the two ends of each connection differ in family and come back so" {
	start dual
	killed_and_restored dual -t
	ckpt-inspect "$IMG" | grep -q ' tcp .* inet6 established \[::ffff:127.0.0.1\]:'"$PORT"' -> \[::ffff:127.0.0.1\]:'
	ckpt-inspect "$IMG" | grep -q ' tcp .* inet established 127.0.0.1:[0-9]* -> 127.0.0.1:'"$PORT"' '
}

@test "a full window, the sender blocked in send(2), 1 MiB each way: dump --kill and restore" {
	start full
	blocked_in_send
	killed_and_restored full -t
}

@test "a dump without --kill leaves the program intact: the bytes drained from a full window are given back in order" {
	start full
	blocked_in_send
	ckpt-dump -t -o "$IMG" "$BG_PID"
	ckpt-inspect "$IMG" | grep -q ' tcp .* queued [1-9]'
	finish_bg
	grep -qx "tcpconn full: ok" "$OUT"
}

@test "one image restored three times in a row: the connections each run closed at its end hold their addresses in TIME_WAIT, and the next restore makes them again (loopback reuses them after a second; root ends them)" {
	start tree
	ckpt-dump -t -o "$IMG" "$BG_PID"
	finish_bg
	grep -qx "tcpconn tree: ok" "$OUT"
	bg_restored "tcpconn tree: ok" --allow-changed-files
	bg_restored "tcpconn tree: ok" --allow-changed-files
}

@test "a dump without --kill of the tree mid-conversation: the program goes on with every byte" {
	start tree
	ckpt-dump -t -o "$IMG" "$BG_PID"
	finish_bg
	grep -qx "tcpconn tree: ok" "$OUT"
}

@test "half-closed: the client's data and end of stream queued at the server come back, and the server's shutdown after its reply" {
	start half
	bg_dump_kill -t
	ckpt-inspect "$IMG" | grep -q ' tcp .* close-wait .* queued 40960 .* shutdown 1 '
	ckpt-inspect "$IMG" | grep -q ' tcp .* fin-wait2 .* queued 0 .* shutdown 2 '
	bg_restored "tcpconn half: ok"
}

@test "ckpt-inspect shows family, state, both addresses and the queued bytes (text and JSON)" {
	start one
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 5   tcp "*" inet established 127.0.0.1:$PORT -> 127.0.0.1:"*" queued 49152 sendq 0 shutdown 0 pair "* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"kind":"tcp"'*'"family":"inet","state":"established","address":"127.0.0.1:'"$PORT"'","peer":"127.0.0.1:'*'"queued":49152,'* ]]
}

@test "a connection to a peer outside the dumped processes is refused naming both addresses and --tcp-close; the program runs on" {
	start outside
	CKPT_PIDS+=("$(awk '/^ready /{print $6}' "$OUT")")
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	one_line 1 "pid $BG_PID: fd 3 is a TCP connection from 127.0.0.1:"
	[[ "$stderr" == *" to 127.0.0.1:$PORT, a peer outside the dumped processes (--tcp-close restores it reset, --tcp-established as it was); not supported" ]]
	untraced "$BG_PID"
	finish_bg
	grep -qx "tcpconn outside: ok" "$OUT"
}

@test "--tcp-close: the outside connection comes back reset (ECONNRESET, then end of stream, EPIPE); the program connects again and goes on" {
	start outside
	CKPT_PIDS+=("$(awk '/^ready /{print $6}' "$OUT")")
	bg_dump_kill --tcp-close
	ckpt-inspect "$IMG" | grep -q ' tcp .* inet reset 127.0.0.1:[0-9]* -> 127.0.0.1:'"$PORT"' '
	bg_restored "tcpconn outside: ok"
}

@test "--tcp-established: as root a connection to a server outside the tree comes back as it was (TCP_REPAIR) and the conversation goes on; without CAP_NET_ADMIN the dump says what it needs" {
	start keep
	CKPT_PIDS+=("$(awk '/^ready /{print $6}' "$OUT")")
	if [ "$(id -u)" -ne 0 ]; then
		run --separate-stderr ckpt-dump --kill --tcp-established -o "$IMG" "$BG_PID"
		one_line 1 "pid $BG_PID: fd 3: cannot put its TCP connection from 127.0.0.1:"
		[[ "$stderr" == *" to 127.0.0.1:$PORT in repair mode (--tcp-established needs CAP_NET_ADMIN): Operation not permitted" ]]
		finish_bg
		grep -qx "tcpconn keep: ok" "$OUT"
		return
	fi
	bg_dump_kill --tcp-established
	ckpt-inspect "$IMG" | grep -q ' tcp .* inet established 127.0.0.1:[0-9]* -> 127.0.0.1:'"$PORT"' queued 30000 .* repair unacked 0'
	bg_restored "tcpconn keep: ok"
}

# bats test_tags=root
@test "--tcp-established without --kill: the connection leaves repair mode untouched and the program goes on" {
	start keep
	CKPT_PIDS+=("$(awk '/^ready /{print $6}' "$OUT")")
	ckpt-dump --tcp-established -o "$IMG" "$BG_PID"
	ckpt-inspect "$IMG" | grep -q ' tcp .* queued 30000 .* repair '
	finish_bg
	grep -qx "tcpconn keep: ok" "$OUT"
}

@test "urgent data not read is refused naming the connection; the program runs on and reads it" {
	start urgent
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	one_line 1 "pid $BG_PID: fd 5 is a TCP connection from 127.0.0.1:$PORT to 127.0.0.1:"
	[[ "$stderr" == *" with urgent (out-of-band) data not read; not supported" ]]
	untraced "$BG_PID"
	finish_bg
	grep -qx "tcpconn urgent: ok" "$OUT"
}

@test "a listening port busy at restore is named in one line" {
	start tree
	bg_dump_kill -t
	exec_clean python3 -c 'import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
print("held", flush=True)
time.sleep(120)' "$PORT" </dev/null >"$D/held" 2>&1 &
	CKPT_PIDS+=("$!")
	wait_for_line "$D/held" '^held'
	run --separate-stderr ckpt-remap "$IMG"
	one_line "$CKPT_FAIL_RC" "pid $BG_PID: fd 3: TCP address 127.0.0.1:$PORT: port $PORT is in use" ckpt-remap
}

@test "an HTTP/1.1 keep-alive server and client (Python's http.server, http.client) in one tree, caught mid-response, go on on the same connection" {
	[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
	start_bg /usr/bin/python3 "$TOP/t/progs/httpka.py" "$D"
	wait_for_line "$OUT" '^ready '
	bg_dump_kill -t
	bg_restored "httpka: ok"
}

@test "a server that accepted two clients and not two others (waiting in its queue with the bytes they sent, one its end too): dump -t --kill, restore; accept gives them in their order with every byte, each joined to its client" {
	start backlog
	bg_dump_kill -t
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *" tcp "*" inet established 127.0.0.1:"*" -> 127.0.0.1:$PORT sent 20480 sendq 0 shutdown 0 pending 0"* ]]
	[[ "$output" == *" tcp "*" inet fin-wait"?" 127.0.0.1:"*" -> 127.0.0.1:$PORT sent 20480 sendq "?" shutdown 2 pending 1"* ]]
	bg_restored "tcpconn backlog: ok"
}

# kill_tree: SIGKILL to the program and its tree, reaped.
kill_tree() {
	local d
	for d in $(descendants "$BG_PID"); do
		kill -KILL "$d"
	done
	kill -KILL "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
}

@test "idle connections waiting in a listener's queue, without --kill: the program runs on and accepts them; the image, restored once the tree is gone, gives them in their order" {
	start backlogidle
	ckpt-dump -t -o "$IMG" "$BG_PID"
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *" pending 0"* && "$output" == *" pending 1"* && "$output" == *" pending 2"* ]]
	finish_bg
	grep -qx "tcpconn backlogidle: ok" "$OUT"
	rm -f "$D"/go "$D"/c*
	: >"$OUT"
	start backlogidle
	ckpt-dump -t -o "$IMG" "$BG_PID"
	kill_tree
	bg_restored "tcpconn backlogidle: ok"
}

@test "a connection waiting in a listener's queue with bytes its client sent, without --kill: refused naming the client and --kill; the program runs on intact" {
	start backlog
	run --separate-stderr ckpt-dump -t -o "$IMG" "$BG_PID"
	one_line 1 "pid "
	[[ "$stderr" =~ pid\ [0-9]+:\ fd\ 4\ is\ a\ TCP\ connection\ from\ 127\.0\.0\.1:[0-9]+\ to\ 127\.0\.0\.1:$PORT,\ which\ has\ not\ been\ accepted\ yet,\ with\ data\ it\ sent\ \(taken\ with\ --kill\)\;\ not\ supported$ ]]
	untraced "$BG_PID"
	finish_bg
	grep -qx "tcpconn backlog: ok" "$OUT"
}

@test "a listener with a connection waiting whose client is outside the dumped processes is refused naming it; the program runs on" {
	start backlogidle
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	one_line 1 "pid $BG_PID: fd 3 is a listening TCP socket on 127.0.0.1:$PORT with a connection nobody accepted yet whose client is not in the dumped processes; not supported"
	untraced "$BG_PID"
	finish_bg
	grep -qx "tcpconn backlogidle: ok" "$OUT"
}

# ---- ckpt-remap --net-ns ----------------------------------------------

# in_other_net PID: a process under PID named tcpconn is in a net
# namespace other than ours.
in_other_net() {
	local k ours
	ours=$(readlink /proc/self/ns/net)
	for k in $(descendants "$1"); do
		[ "$(cat "/proc/$k/comm" 2>/dev/null)" = tcpconn ] &&
			[ "$(readlink "/proc/$k/ns/net" 2>/dev/null)" != "$ours" ] && return 0
	done
	return 1
}

# net_restored LINE OPTION...: $IMG restored by ckpt-remap --net-ns
# OPTION... in the background; once the program is in a net namespace
# other than ours it is told to go, and says LINE (ckpt-remap exits 0).
net_restored() {
	local line=$1 pid st=0
	shift
	rm -f "$D/go"
	exec_clean timeout 60 ckpt-remap --net-ns "$@" "$IMG" </dev/null >"$D/remap.out" 2>"$D/remap.err" &
	pid=$!
	CKPT_PIDS+=("$pid")
	wait_for in_other_net "$pid" || { pstree -p "$pid" >&2; cat "$D/remap.err" >&2; false; }
	touch "$D/go"
	wait "$pid" || st=$?
	CKPT_PIDS=()
	cat "$D/remap.err" >&2
	echo "status $st"
	[ "$st" -eq 0 ]
	grep -qx "$line" "$OUT"
}

# may_net_ns: root, or unprivileged user namespaces are allowed here.
may_net_ns() {
	[ "$(id -u)" -eq 0 ] || unshare -Urn true 2>/dev/null || skip "no unprivileged user namespaces here"
}

@test "--net-ns: a server, its listener and three clients (one tree) come back in a new net namespace, lo up, every byte once; with --pid-ns too" {
	may_net_ns
	start tree
	bg_dump_kill -t
	# As root the dump had the sequence numbers, which the restore in the
	# new namespace puts back; as a user the pairs are refilled.
	if [ "$(id -u)" -eq 0 ]; then
		[ "$(ckpt-inspect "$IMG" | grep -c ' tcp .* repair unacked ')" -eq 6 ]
	fi
	net_restored "tcpconn tree: ok"
	# The same image once more, in new pid and net namespaces at once (the
	# program's exit status is ckpt-remap's; its output file has grown).
	net_restored "tcpconn tree: ok" --pid-ns --allow-changed-files
}

@test "--net-ns: one process holding both ends of two connections; as root their sequence numbers come back (TCP_REPAIR in the new namespace), as a user the dump could not read them and the pairs are refilled" {
	may_net_ns
	start one
	bg_dump_kill
	if grep -q '^ready .* seqs$' "$OUT"; then
		ckpt-inspect "$IMG" | grep -q ' tcp .* shutdown 0 pair [0-9]* end 0 repair unacked 0 '
	else
		echo "# the dump could not use TCP_REPAIR (no CAP_NET_ADMIN in the host's net namespace): the pairs are refilled" >&3
		run ckpt-inspect "$IMG"
		[[ $output != *' repair '* ]]
	fi
	net_restored "tcpconn one: ok"
}

@test "--net-ns without privilege: one process restored in its new namespace and dumped again; the second image carries the sequence numbers (the dumper owns the namespace) and its restore keeps them" {
	[ "$(id -u)" -ne 0 ] || skip "as root the first dump has them already (the test above)"
	may_net_ns
	local pid
	start one
	bg_dump_kill
	run ckpt-inspect "$IMG"
	[[ $output != *' repair '* ]]
	rm -f "$D/go"
	exec_clean ckpt-remap --net-ns "$IMG" </dev/null >"$D/remap.out" 2>"$D/remap.err" &
	pid=$!
	CKPT_PIDS+=("$pid")
	# Without CAP_SYS_ADMIN ckpt-remap becomes the program (its own pid).
	wait_for eval '[ "$(cat /proc/$pid/comm)" = tcpconn ]'
	[ "$(readlink "/proc/$pid/ns/net")" != "$(readlink /proc/self/ns/net)" ]
	ckpt-dump --kill -o "$IMG.2" "$pid"
	wait "$pid" || true
	CKPT_PIDS=()
	run ckpt-inspect "$IMG.2"
	echo "$output"
	[[ "$output" == *" net    inode "*", lo up"* ]]
	[[ "$output" == *" tcp "*" shutdown 0 pair "*" end 0 repair unacked 0 "* ]]
	[[ "$output" == *" tcp "*" shutdown 0 pair "*" end 1 repair unacked 0 "* ]]
	IMG=$IMG.2 bg_restored "tcpconn one: ok"
}

# own_addr: an IPv4 address of this machine's other than loopback, or nothing.
own_addr() {
	ip -4 -o addr show scope global 2>/dev/null | awk '{sub(/\/.*/, "", $4); print $4; exit}'
}

@test "--net-ns refuses, before anything is made, a UDP socket bound to an address the new namespace does not have" {
	local addr
	addr=$(own_addr)
	[ -n "$addr" ] || skip "this machine has no IPv4 address but loopback: nothing to bind the refused socket to"
	start_bg python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
print("ready", s.fileno(), s.getsockname()[1], flush=True)
time.sleep(120)' "$addr"
	wait_for_line "$OUT" '^ready '
	local fd port
	fd=$(awk '/^ready /{print $2}' "$OUT")
	port=$(awk '/^ready /{print $3}' "$OUT")
	bg_dump_kill
	run --separate-stderr ckpt-remap --net-ns "$IMG"
	one_line "$CKPT_FAIL_RC" "pid $BG_PID: fd $fd: UDP socket bound to $addr:$port, an address a new net namespace (--net-ns) does not have; not supported" ckpt-remap
}
