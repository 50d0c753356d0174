#!/usr/bin/env bats
# Sockets joined to no peer, as an idle server holds them: unix (path and
# abstract names), TCP and UDP on IPv4 and IPv6, listening, bound or not
# bound, come back on their fds with their flags and options, and take new
# connections and datagrams; t/progs/socks checks each.  What is not
# supported yet is refused with one line naming it.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir socks
}

# start KIND: socks KIND in the background, ready.
start() {
	start_bg socks "$1" "$D"
	wait_for_line "$OUT" '^ready '
}

# restored KIND [OPTION...]: the image ($IMG) restored, the program's checks pass.
restored() {
	local kind=$1
	shift
	bg_restored "socks $kind: ok" "$@"
}

# refused KIND PATTERN: ckpt-dump of socks KIND fails with one line
# matching PATTERN (@PID@: the program's pid); the program runs on.
refused() {
	local pat
	start "$1"
	pat=${2//@PID@/$BG_PID}
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 1 ]
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
	[[ "$stderr" =~ $pat ]]
	untraced "$BG_PID"
	finish_bg
	grep -qx "socks $1: ok" "$OUT"
}

@test "unix: listening stream and seqpacket (path, abstract), bound datagram, unbound: back with flags, options, mode; each takes a connection" {
	start unix
	bg_dump_kill
	# The socket files are gone, as after a reboot: made again with their mode.
	rm -f "$D/s1" "$D/d1"
	restored unix
}

@test "unix: a stale socket file nobody listens on is replaced" {
	start unix
	bg_dump_kill
	[ -S "$D/s1" ]
	restored unix
}

@test "unix: a file that is not a socket where the socket was bound: the restore refuses naming it" {
	start unix
	bg_dump_kill
	rm -f "$D/s1"
	echo data >"$D/s1"
	run --separate-stderr ckpt-remap "$IMG"
	echo "status $status stderr: $stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"fd 3: $D/s1, where its unix socket is bound, is a file that is not a socket"* ]]
	[ "$(cat "$D/s1")" = data ]
}

@test "unix: the dumped process runs on with its sockets" {
	start unix
	ckpt-dump -o "$IMG" "$BG_PID"
	finish_bg
	grep -qx "socks unix: ok" "$OUT"
}

@test "TCP and UDP, IPv4 and IPv6 (::1): listening, bound, unbound: same ports, flags and options; each takes a connection or a datagram" {
	start inet
	bg_dump_kill
	restored inet
}

@test "TCP and UDP: the dumped process runs on with its sockets" {
	start inet
	ckpt-dump -o "$IMG" "$BG_PID"
	finish_bg
	grep -qx "socks inet: ok" "$OUT"
}

@test "TCP: a restore while the dumped program still listens names the port" {
	local port
	start busy
	port=$(awk '/^ready/ { print $3 }' "$OUT")
	ckpt-dump -o "$IMG" "$BG_PID"
	run --separate-stderr ckpt-remap "$IMG"
	echo "status $status stderr: $stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"fd 3: TCP address 127.0.0.1:$port: port $port is in use (a process's listen socket)" ]]
	finish_bg
}

@test "a tree (-t): listening TCP and unix sockets a parent shares with its child come back shared; each accepts" {
	start prefork
	bg_dump_kill -t
	rm -f "$D/s1"
	restored prefork
}

# timewait_dumped: socks timewait dumped with --kill; its port in $PORT,
# held by the connection it closed (TIME-WAIT).
timewait_dumped() {
	start timewait
	PORT=$(awk '/^ready/ { print $3 }' "$OUT")
	bg_dump_kill
	TW=$(ss -Htan state time-wait "( sport = :$PORT )")
	echo "$TW"
	[ -n "$TW" ]
}

# bats test_tags=root
@test "TCP: a listener whose port connections it closed hold in TIME-WAIT comes back at once (root ends them: SOCK_DESTROY)" {
	timewait_dumped
	restored timewait
	# Those are gone (the check's own connection may leave another).
	[ -z "$(ss -Htan state time-wait "( sport = :$PORT )" | grep -Fxf <(echo "$TW"))" ]
}

@test "TCP: a listener whose port a connection it closed holds in FIN-WAIT-2 (its peer open, no process owning it) comes back: as root at once, else once it is gone, said in one line" {
	local t0
	start finwait
	PORT=$(awk '/^ready/ { print $3 }' "$OUT")
	exec_clean python3 -c 'import socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("connected", flush=True)
time.sleep(120)' "$PORT" </dev/null >"$D/peer" 2>&1 &
	CKPT_PIDS+=("$!")
	wait_for_line "$D/peer" '^connected'
	wait_for sh -c "ss -Htan state fin-wait-2 '( sport = :$PORT )' | grep -q ."
	bg_dump_kill
	ss -Htan state fin-wait-2 "( sport = :$PORT )" | grep -q .
	touch "$D/go"
	t0=$EPOCHREALTIME
	run --separate-stderr timeout 90 ckpt-remap "$IMG"
	echo "status $status stderr: $stderr, after $(awk "BEGIN { print $EPOCHREALTIME - $t0 }") s"
	[ "$status" -eq 0 ]
	if [ "$(id -u)" -eq 0 ]; then
		[ -z "$stderr" ]
	else
		[[ "$stderr" == "ckpt-remap: fd 3: port $PORT is held by connections closed in the last minute (FIN-WAIT2), which only root may end at once: waiting for them" ]]
	fi
	grep -qx "socks finwait: ok" "$OUT"
}

@test "TCP: without CAP_NET_ADMIN the restore waits for a port's TIME-WAIT to end, saying so in one line, then the listener comes back" {
	local t0
	[ "$(id -u)" -ne 0 ] || skip "root ends them at once (the test before); this one runs in the unprivileged pass"
	timewait_dumped
	t0=$EPOCHREALTIME
	touch "$D/go"
	run --separate-stderr timeout 90 ckpt-remap "$IMG"
	echo "status $status stderr: $stderr, after $(awk "BEGIN { print $EPOCHREALTIME - $t0 }") s"
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
	[[ "$stderr" == "ckpt-remap: fd 3: port $PORT is held by connections closed in the last minute (TIME-WAIT), which only root may end at once: waiting for them" ]]
	grep -qx "socks timewait: ok" "$OUT"
}

@test "TCP: a port busy at restore is named in one line" {
	local port holder
	start busy
	port=$(awk '/^ready/ { print $3 }' "$OUT")
	bg_dump_kill
	python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
open(sys.argv[2], "w").write("held\n"); time.sleep(60)' "$port" "$D/held" &
	holder=$!
	CKPT_PIDS+=("$holder")
	wait_for_file "$D/held"
	run --separate-stderr ckpt-remap "$IMG"
	echo "status $status stderr: $stderr"
	[ "$status" -ne 0 ]
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
	[[ "$stderr" == *"fd 3: TCP address 127.0.0.1:$port: port $port is in use (a process's listen socket)" ]]
}

@test "ckpt-inspect shows each socket's family, type, state and address, in text and JSON" {
	start inet
	read -r _ _ p3 p4 p5 _ <"$OUT"
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *" socket "*" inet stream listening 127.0.0.1:$p3 backlog 5"* ]]
	[[ "$output" == *" socket "*" inet6 stream listening [::1]:$p4 backlog 9"* ]]
	[[ "$output" == *" socket "*" inet dgram bound 127.0.0.1:$p5"* ]]
	[[ "$output" == *" socket "*" inet stream unbound -"* ]]
	run ckpt-inspect --json "$IMG"
	echo "$output"
	[[ "$output" == *'"kind":"socket"'*'"family":"inet6","type":"stream","protocol":"TCP","state":"listening","address":"[::1]:'"$p4"'","backlog":9'* ]]
}

@test "ckpt-inspect shows unix sockets' names and modes" {
	start unix
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *" socket "*" unix stream listening $D/s1 backlog 7 mode 0640"* ]]
	[[ "$output" == *" socket "*" unix seqpacket listening @ckpt-socks-"*" backlog 3"* ]]
	[[ "$output" == *" socket "*" unix dgram bound $D/d1"* ]]
	[[ "$output" == *" socket "*" unix stream unbound -"* ]]
}

@test "a listening unix socket with a connection nobody accepted comes back with it (t/0630 for more)" {
	start backlog
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *" unix "*" stream pending 0 peer $D/s1 "* ]]
	bg_restored "socks backlog: ok"
}

@test "a listening TCP socket with a connection nobody accepted comes back with it, joined to its client (t/0620 for more)" {
	start tcpbacklog
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 4   tcp "*" inet established 127.0.0.1:"*" -> 127.0.0.1:"*" sent 0 sendq 0 shutdown 0 pending 0 socket:"* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"kind":"tcp"'*'"state":"established"'*'"sent":0,"sendq":0,"shutdown":0,"pending":0'* ]]
	bg_restored "socks tcpbacklog: ok"
}

