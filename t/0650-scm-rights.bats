#!/usr/bin/env bats
# File descriptors in flight: messages queued on unix sockets that carry
# fds (SCM_RIGHTS) come back with their bytes and their files, so that the
# program's recvmsg gets working fds, on stream, seqpacket and datagram
# pairs and a datagram socket joined to no peer (t/progs/scmrights checks
# each: a pipe's bytes and its write end the program holds, a socket's
# bytes and its other end the program holds, a file's offset and
# the open file description it shares with an fd of the program, eventfd
# counts), in one process and from a parent to its child; a dump without
# --kill leaves every message and fd where it was; a socket in flight that
# has fds queued itself, and an epoll instance in flight, are refused by
# name; forged marks and kinds are refused by the reader or the restore.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir scm
}

start() {
	start_bg scmrights "$1" "$D"
	wait_for_line "$OUT" '^ready '
}

@test "one process: messages carrying a pipe with bytes, a file at its offset, eventfds and several fds at once come back; recvmsg gets each, shared descriptions still shared" {
	start one
	bg_dump_kill
	bg_restored "scmrights one: ok"
}

@test "ckpt-inspect shows the files in flight and how many each queue passes (text and --json)" {
	start one
	bg_dump_kill
	run --separate-stderr ckpt-inspect "$IMG"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"fd 4   unix "*" stream pair "*" end 1 queued 32 messages 5 passed 6 "* ]]
	[[ "$output" == *"fd 6   unix "*" seqpacket pair "*" end 1 queued 3 messages 1 passed 2 "* ]]
	[[ "$output" == *"fd 11  unix "*" dgram pair "*" end 1 queued 2 messages 1 passed 1 "* ]]
	[[ "$output" == *"fd 12  socket "*" unix dgram bound $D/dgram queued 4 datagrams 1 passed 1 "* ]]
	[[ "$output" == *"fd -"*" eventfd "*" count 42 "* ]]
	[[ "$output" == *"fd -"*" pipe "*" read end queued 8 "* ]]
	[[ "$output" == *"fd -"*" unix "*" stream pair "*" queued 10 messages 1 "* ]]
	run --separate-stderr ckpt-inspect --json "$IMG"
	[ "$status" -eq 0 ]
	[[ "$output" == *'"messages":5,"passed":6'* ]]
}

@test "a tree (-t): a parent's messages to its child carrying fds; the child gets them, the file's description shared with the parent's fd" {
	start tree
	bg_dump_kill -t
	bg_restored "scmrights tree: ok"
}

@test "a dump without --kill leaves every message and fd in flight as it was; the program reads them all" {
	start one
	ckpt-dump -o "$IMG" "$BG_PID"
	untraced "$BG_PID"
	finish_bg
	grep -qx "scmrights one: ok" "$OUT"
}

@test "a tree dumped without --kill: the child reads every message and fd as before" {
	start tree
	ckpt-dump -t -o "$IMG" "$BG_PID"
	untraced "$BG_PID"
	finish_bg
	grep -qx "scmrights tree: ok" "$OUT"
}

@test "a socket in flight that has fds queued itself: refused by name, the program gets both afterwards" {
	start cycle
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 1 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == *"pid $BG_PID: fd 4 (socket:["*"]): a message queued on it (SCM_RIGHTS) carries a unix socket (socket:["*"]) that has file descriptors queued on it too; not supported" ]]
	untraced "$BG_PID"
	finish_bg
	grep -qx "scmrights cycle: ok" "$OUT"
}

@test "an epoll instance in flight (its watches name fd numbers): refused by name, the program gets it afterwards" {
	start epoll
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 1 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == *"pid $BG_PID: fd 4 (socket:["*"]): a message queued on it (SCM_RIGHTS) carries epoll (anon_inode:[eventpoll]), a kind not taken in flight; not supported" ]]
	untraced "$BG_PID"
	finish_bg
	grep -qx "scmrights epoll: ok" "$OUT"
}

@test "the reader refuses a file in flight of a kind that cannot be, or a mark that is no mark; a restore refuses a mark no record has" {
	start one
	bg_dump_kill
	cp "$IMG" "$BATS_TEST_TMPDIR/kind.img"
	forge.py "$BATS_TEST_TMPDIR/kind.img" flightkind 9
	run --separate-stderr ckpt-inspect "$BATS_TEST_TMPDIR/kind.img"
	echo "status $status stderr: $stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"(in flight -"*"): kind epoll cannot be in flight"* ]]
	cp "$IMG" "$BATS_TEST_TMPDIR/mark.img"
	forge.py "$BATS_TEST_TMPDIR/mark.img" flightmark 5
	run --separate-stderr ckpt-inspect "$BATS_TEST_TMPDIR/mark.img"
	echo "status $status stderr: $stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"(fd 4, unix): bad kind data"* ]]
	forge.py "$IMG" flightmark -999
	run --separate-stderr timeout 60 ckpt-remap "$IMG"
	echo "status $status stderr: $stderr"
	[ "$status" -ne 0 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == *"fd 4: a message queued on it carries file in flight -999, which the image does not have" ]]
}
