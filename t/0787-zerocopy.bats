#!/usr/bin/env bats
# ckpt-dump --splice: the program moves its own pages into a pipe (an
# injected vmsplice) that ckpt-dump splices on to the image, never copying
# them.  The image holds the pages of the freeze, not what the program
# writes once it runs on (t/progs/rewrite writes over all its memory the
# moment it is let go); pages that map the zero page stay holes; into a
# file the data checksums are read back and written in, into a pipe the
# image says it has none; every image restores.  Nothing is spliced
# unless asked.

load lib

bats_require_minimum_version 1.5.0

setup() {
	d=$BATS_TEST_TMPDIR/rw
	mkdir -p "$d"
}

# start_rewrite KIB: t/progs/rewrite KIB on $d, ready; $pid, $cat_pid.
start_rewrite() {
	spawn_ready "$d.out" rewrite "$1" "$d"
}

# rewritten: the program, told to go, wrote over its memory and exited 0
# (it was dumped, not killed).
rewritten() {
	touch "$d/go"
	reap "$pid" "$cat_pid"
	cat "$d.out"
	[ "$status" -eq 0 ]
	grep -qx rewritten "$d.out"
}

# frozen_or_dumped: the program is stopped under ptrace, or its dump ended.
frozen_or_dumped() {
	state_is "$pid" t || [ -e "$d.dumped" ]
}

# stored IMG: the bytes of page data IMG holds.
stored() {
	ckpt-inspect --json "$1" | grep -o '"stored_bytes":[0-9]*' | awk -F: '{ n += $2 } END { print n }'
}

@test "--splice -o FILE: the image holds the memory of the freeze, not what the program wrote after it" {
	start_rewrite 4096
	ckpt-dump --splice -o "$d.img" "$pid"
	rewritten
	restore --allow-changed-files "$d.img"
	intact_and_restored
}

@test "--splice to a file: checksummed after; pages that map the zero page stay holes" {
	local addr
	start_rewrite 1024
	addr=$(awk '/^ready /{ print $3 }' "$d.out")
	ckpt-dump --splice -o "$d.img" "$pid"
	# Not spliced unless asked (zeroed pages would be stored).
	ckpt-dump -o "$d.copy.img" "$pid"
	ckpt-dump --no-splice -o "$d.copy2.img" "$pid"
	rewritten
	[ "$(stored "$d.copy.img")" -eq "$(stored "$d.copy2.img")" ]
	# What the spliced image stores beyond the copied one: the 32 pages
	# the program zeroed (a dump that reads them drops them), not the 32
	# that map the zero page, and a few of the program's own zeroed ones.
	spliced=$(stored "$d.img") copied=$(stored "$d.copy.img")
	echo "stored: spliced $spliced, copied $copied"
	[ "$((spliced - copied))" -ge $((32 * 4096)) ]
	[ "$((spliced - copied))" -lt $((56 * 4096)) ]
	# Read back once the program ran on: checksummed as any image.
	run ckpt-inspect "$d.img"
	[[ ${lines[0]} != *"not checksummed"* ]]
	ckpt-inspect --verify "$d.img"
	cp "$d.img" "$d.good.img"
	t/progs/pageat.py "$d.img" "$(printf %x $((0x$addr + 7 * 4096)))"
	run --separate-stderr ckpt-inspect --verify "$d.img"
	one_line 1 "checksum mismatch" ckpt-inspect
	restore --allow-changed-files "$d.good.img"
	intact_and_restored
}

@test "--splice to a pipe: the program runs on only once the reader has taken the pages lent to it" {
	# An image smaller than the pipe (1 MiB): ckpt-dump could write it all
	# and let the program go before the reader has read a byte.  The
	# reader waits (at most 3 s) for the program to have rewritten its
	# memory first; it must not have, or the image would hold the new
	# pages (splice into a pipe moves references, not bytes).
	# The program is told to go once it is frozen (or, were it let go
	# early, once ckpt-dump is done).
	start_rewrite 256
	{
		ckpt-dump --splice "$pid"
		touch "$d.dumped"
	} | {
		wait_for -t 3 grep -qx rewritten "$d.out" 2>/dev/null || true
		cat >"$d.img"
	} &
	reader=$!
	CKPT_PIDS+=("$reader")
	wait_for frozen_or_dumped
	touch "$d/go"
	wait "$reader"
	CKPT_PIDS=("$pid" "$cat_pid")
	rewritten
	# Nothing can be read back from a pipe: the image says so.
	run ckpt-inspect "$d.img"
	[[ ${lines[0]} == *"page data spliced, not checksummed"* ]]
	restore --allow-changed-files "$d.img"
	intact_and_restored
}

@test "a dump through a pipe reads the pages as before unless --splice is given" {
	start_rewrite 256
	ckpt-dump "$pid" | cat >"$d.img"
	rewritten
	run ckpt-inspect "$d.img"
	[[ ${lines[0]} != *"not checksummed"* ]]
	restore --allow-changed-files "$d.img"
	intact_and_restored
}

@test "an image appended to a file (>>): with --splice, through a buffer" {
	# splice(2) refuses a file opened O_APPEND.
	start_rewrite 1024
	ckpt-dump --splice "$pid" >>"$d.img"
	rewritten
	ckpt-inspect --verify "$d.img"
	restore --allow-changed-files "$d.img"
	intact_and_restored
}

@test "--splice > /dev/null, again and again: the program runs on intact" {
	start_bulk "$d" 8
	for _ in 1 2 3; do
		ckpt-dump --splice "$pid" >/dev/null
	done
	ckpt-dump "$pid" >/dev/null
	runs_on "$d"
}

@test "SIGTERM to a --splice dump into a stuck reader: it exits 1, the program runs on" {
	local fifo=$BATS_TEST_TMPDIR/fifo dump st
	start_bulk "$d" 8
	mkfifo "$fifo"
	# A reader that opens the pipe and never reads.
	exec_clean sleep 1000 <"$fifo" &
	CKPT_PIDS+=($!)
	exec_clean ckpt-dump --splice "$pid" >"$fifo" 2>"$BATS_TEST_TMPDIR/dump.err" &
	dump=$!
	# Writing (or splicing) into the full pipe: pipe_write,
	# pipe_wait_writable.
	wait_for -t 10 waits_in "$dump" pipe
	kill -TERM "$dump"
	st=0
	wait "$dump" || st=$?
	cat "$BATS_TEST_TMPDIR/dump.err"
	[ "$st" -eq 1 ]
	[ "$(wc -l <"$BATS_TEST_TMPDIR/dump.err")" -eq 1 ]
	grep -q "^ckpt-dump: interrupted by a signal" "$BATS_TEST_TMPDIR/dump.err"
	wait_for -t 5 untraced "$pid"
	runs_on "$d"
}

@test "--splice to a socket: refused in one line, the program runs on" {
	start_bulk "$d"
	run --separate-stderr python3 -c '
import socket, subprocess, sys, threading
a, b = socket.socketpair()
threading.Thread(target=lambda: [None for _ in iter(lambda: b.recv(65536), b"")], daemon=True).start()
sys.exit(subprocess.run(sys.argv[1:], stdout=a).returncode)' ckpt-dump --splice "$pid"
	one_line 1 "pid $pid: --splice: the image's output is a socket" ckpt-dump
	runs_on "$d"
}

@test "--splice with --cow or --parent: a usage error" {
	run ckpt-dump --splice --cow 1
	[ "$status" -eq 2 ]
	run ckpt-dump --splice --parent x.img 1
	[ "$status" -eq 2 ]
}

# bats test_tags=root
@test "--splice --kill into a pipe read by ckpt-remap --lazy - (root): its pages come without checksums, filled as the stream comes, intact" {
	start_rewrite 32768
	# The restored program waits for DIR/go: once the dump has ended
	# (the program the test started is killed).
	# shellcheck disable=SC2016
	run --separate-stderr bash -c '{ ckpt-dump --splice --kill "$1" && touch "$2/go"; } |
		timeout 120 ckpt-remap --lazy --allow-other-user --allow-changed-files -' _ "$pid" "$d"
	printf 'status %s\nstdout:\n%s\nstderr:\n%s\n' "$status" "$output" "$stderr"
	intact_and_restored
}
