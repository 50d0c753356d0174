#!/usr/bin/env bats
# Datagram sockets with datagrams queued, and netlink sockets: UDP on IPv4
# and ::1 (connected and not) and unix datagram sockets joined to no peer
# come back with every queued datagram once, in order, intact, from the
# sender it came from (t/progs/dgram numbers and checksums each, then the
# sockets go on talking); a dump that lets the program run on leaves every
# datagram where the program expects it.  A route netlink listener comes
# back bound to its port id and group and answers a dump request; a
# netlink socket with an answer queued, and a packet socket, are refused
# naming them.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir dgram
}

# start KIND: dgram KIND in the background, ready.
start() {
	start_bg dgram "$1" "$D"
	wait_for_line "$OUT" '^ready '
}

# refused KIND PATTERN: ckpt-dump -t of dgram KIND fails with one line
# matching PATTERN (@PID@: the program's pid); the program runs on.
refused() {
	local pat
	start "$1"
	pat=${2//@PID@/$BG_PID}
	run --separate-stderr ckpt-dump -t -o "$IMG" "$BG_PID"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 1 ]
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
	[[ "$stderr" =~ $pat ]]
	untraced "$BG_PID"
}

@test "UDP in a tree, IPv4 and ::1: connected sockets and datagrams queued both ways come back, none lost, doubled or reordered, each from its sender; the ping-pong goes on" {
	start udp
	bg_dump_kill -t
	bg_restored "dgram udp: ok"
}

@test "UDP: a dump without --kill leaves every queued datagram where the program expects it" {
	start udp
	ckpt-dump -t -o "$IMG" "$BG_PID"
	finish_bg
	grep -qx "dgram udp: ok" "$OUT"
}

@test "unix datagram server and two bound clients in a tree: the queues come back, each datagram from its client's name (or none); the answers reach the clients" {
	start unix
	bg_dump_kill -t
	bg_restored "dgram unix: ok"
}

@test "unix datagram sockets: a dump without --kill leaves every queued datagram" {
	start unix
	ckpt-dump -t -o "$IMG" "$BG_PID"
	finish_bg
	grep -qx "dgram unix: ok" "$OUT"
}

@test "ckpt-inspect shows each datagram socket's family, type, state, addresses and queue, in text and JSON" {
	start udp
	bg_dump_kill -t
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *" socket "*" inet dgram bound 127.0.0.1:"*" queued 12284 datagrams 7 "* ]]
	[[ "$output" == *" socket "*" inet6 dgram bound [::1]:"*" queued 7750 datagrams 5 "* ]]
	[[ "$output" == *" socket "*" inet dgram connected 127.0.0.1:"*" peer 127.0.0.1:"*" queued 3909 datagrams 2 "* ]]
	[[ "$output" == *" socket "*" inet6 dgram connected [::1]:"*" peer [::1]:"*" queued 2849 datagrams 2 "* ]]
	run ckpt-inspect --json "$IMG"
	echo "$output"
	# (JSON lists the first process's fds.)
	[[ "$output" == *'"family":"inet6","type":"dgram","protocol":"UDP","state":"bound","address":"[::1]:'*'","queued":7750,"datagrams":5'* ]]
}

# outside HELD: dgram outside, dumped alone (its child, the sender, is not);
# the child gone (HELD 0) or still holding its port (1) at restore.
outside() {
	local child port
	start outside
	read -r _ _ child port <"$OUT"
	bg_dump_kill
	CKPT_PIDS+=("$child")
	if [ "$1" = 0 ]; then
		touch "$D/release"
		wait_for not kill -0 "$child"
	else
		touch "$D/held"
	fi
	bg_restored "dgram outside: ok"
	echo "$stderr"
	if [ "$1" = 0 ]; then
		[ -z "$stderr" ]
	else
		[ "$stderr" = "ckpt-remap: fd 3: a datagram queued from 127.0.0.1:$port is put back from another address: cannot bind a socket to it: Address already in use
ckpt-remap: fd 5: a datagram queued from $D/out is put back from another address: cannot bind a socket to it: Address already in use" ]
	fi
}

@test "UDP and unix: datagrams queued from a sender outside the dump come from its address again (a socket of ckpt-remap's bound there)" {
	outside 0
}

@test "UDP and unix: when the sender's address cannot be bound at restore, its datagrams come from another, said in one line each" {
	outside 1
}

@test "netlink: a route listener (RTMGRP_LINK) comes back with its port id and group, and answers an RTM_GETLINK dump" {
	start netlink
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"offset 0 netlink route port "*" groups 1 dropped 0 "* ]]
	bg_restored "dgram netlink: ok"
}

@test "netlink: a socket with the answer to a request queued is refused naming it; the program runs on" {
	refused nlpending "^ckpt-dump: pid @PID@: fd 3 is a netlink socket \(route\) with the answer to a request queued; not supported\$"
	finish_bg
	grep -qx "dgram nlpending: ok" "$OUT"
}

# bats test_tags=root
@test "a packet socket is refused naming its family" {
	refused packet "^ckpt-dump: pid @PID@: fd 3 is a packet socket \(socket:\[[0-9]+\]\); not supported\$"
	finish_bg
}
