#!/usr/bin/env bats
# FIFOs, unix socketpairs, inotify and terminals come back with their
# state; t/progs/fdmore checks each.  An fd of a kind not supported makes
# ckpt-dump fail naming it, and the target runs on.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir fdmore
}

# start KIND: fdmore KIND in the background, ready.
start() {
	start_bg fdmore "$1" "$D"
	wait_for_line "$OUT" '^ready '
}

# killed_and_restored KIND [OPTION...]: dump --kill, restore, the program's checks pass.
killed_and_restored() {
	local kind=$1
	shift
	bg_dump_kill
	bg_restored "fdmore $kind: ok" "$@"
}

# dumped_runs_on KIND: dump, the program runs on and its checks pass.
dumped_runs_on() {
	ckpt-dump -o "$IMG" "$BG_PID"
	finish_bg
	grep -qx "fdmore $1: ok" "$OUT"
}

@test "fifo: dump --kill then restore: bytes, pipe size, access modes and O_NONBLOCK intact" {
	start fifo
	killed_and_restored fifo
}

@test "fifo: FIFOs removed after the dump are made again with their mode, saying so, and hold their bytes" {
	start fifo
	bg_dump_kill
	rm "$D/f1" "$D/f2"
	bg_restored "fdmore fifo: ok"
	[[ "$stderr" == *"ckpt-remap: $D/f1: FIFO made again (it was gone)"* ]]
	[[ "$stderr" == *"ckpt-remap: $D/f2: FIFO made again (it was gone)"* ]]
	[ "$(stat -c %F:%a "$D/f1")" = "fifo:600" ]
}

@test "fifo: the dumped process runs on with every byte of its FIFOs" {
	start fifo
	dumped_runs_on fifo
}

@test "fifo: ckpt-inspect shows each FIFO's path and queued bytes" {
	start fifo
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *" fifo "*"queued 71680 size 131072 $D/f1"* ]]
	[[ "$output" == *" fifo "*"queued 5 "*"$D/f2"* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"kind":"fifo"'*'"queued":71680,"size":131072'* ]]
}

@test "unix socketpairs: dump --kill then restore: queued bytes, datagram boundaries, shutdowns, flags" {
	start unix
	killed_and_restored unix
}

@test "unix socketpairs: the dumped process runs on with every queued message" {
	start unix
	dumped_runs_on unix
}

@test "unix socketpairs: ckpt-inspect shows type, queued bytes and messages" {
	start unix
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *" unix "*" stream pair "*" queued 61440 messages 1 shutdown 0 "* ]]
	[[ "$output" == *" unix "*" dgram pair "*" queued 1007 messages 3 "* ]]
	[[ "$output" == *" unix "*" seqpacket pair "*" queued 11 messages 2 shutdown 1 "* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"kind":"unix"'*'"type":"dgram"'*'"queued":1007,"messages":3'* ]]
}

# refused KIND PATTERN: ckpt-dump of fdmore KIND fails with one line
# matching PATTERN (@PID@ stands for the program's pid); the program was not left stopped or traced, and runs
# on to a clean exit.
refused() {
	start "$1"
	refused_started "$@"
}

# refused_started KIND PATTERN: the same, fdmore KIND already started.
refused_started() {
	local pat
	pat=${2//@PID@/$BG_PID}
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 1 ]
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
	[[ "$stderr" =~ $pat ]]
	state_is "$BG_PID" R S
	untraced "$BG_PID"
	finish_bg
	grep -qx "fdmore $1: ok" "$OUT"
}

@test "a unix socket whose peer is in another process is refused naming the fd; the target runs on" {
	refused unixpeer "^ckpt-dump: pid @PID@: fd 3 is a unix socket \(socket:\[[0-9]+\]\) whose peer is not in the process; not supported\$"
}

@test "an accepted unix connection (bound to its listener's name) and its client in the process come back (t/0610 checks their bytes)" {
	start listen
	killed_and_restored listen
}

@test "an audit netlink socket makes ckpt-dump fail with one line naming fd, protocol and pid; the target is neither stopped nor traced" {
	refused netlink "^ckpt-dump: pid @PID@: fd 3 is a netlink socket of protocol 9 \(socket:\[[0-9]+\]\), whose kernel state is not kept; not supported\$"
}

@test "inotify: dump --kill then restore: every watch at its wd (a gap kept), events for changes after restore" {
	start inotify
	killed_and_restored inotify
}

@test "inotify: the dumped process runs on with its watches" {
	start inotify
	dumped_runs_on inotify
}

@test "inotify: ckpt-inspect lists each watch with wd, mask and path" {
	start inotify
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *" inotify "*" watches 3 unread 0 "*$'\n'"      wd 1 mask 0x2 $D/w/a"$'\n'"      wd 3 mask 0x6 $D/w/c"$'\n'"      wd 4 mask 0x100 $D/w"$'\n'* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"kind":"inotify"'*'"watch_list":[{"wd":1,"mask":2,"path":"'"$D"'/w/a"},{"wd":3,'* ]]
}

# A watch on a file that is neither open nor under the current directory:
# root opens it by its handle; without CAP_DAC_READ_SEARCH it has no path.
@test "inotify: a watch outside the program's files: found by handle as root, else refused naming the watch" {
	start inotifyfar
	if [ "$(id -u)" -eq 0 ]; then
		ckpt-dump -o "$IMG" "$BG_PID"
		run ckpt-inspect "$IMG"
		[[ "$output" == *"      wd 1 mask 0x2 /etc/hostname"* ]]
		touch "$D/go"
		wait "$BG_PID"
		CKPT_PIDS=()
	else
		refused_started inotifyfar "^ckpt-dump: pid @PID@: fd 3: cannot find the path of inotify watch 1 \(inode [0-9]+ on device [0-9]+:[0-9]+\): it is neither an open file's nor under the current directory, and opening it by handle needs CAP_DAC_READ_SEARCH\$"
	fi
}

# start_tty: fdmore tty on a pty of its own (t/progs/onpty), ready; its
# pid in $TTY_PID (BG_PID is onpty's).
start_tty() {
	start_bg onpty fdmore tty "$D"
	wait_for_line "$OUT" '^ready '
	TTY_PID=$(awk '/^ready/ {print $2}' "$OUT")
}

@test "tty: dump --kill, restore on another pty: settings on ckpt-remap's terminal, /dev/tty fd, own pty pair remade with the bytes queued to its master" {
	start_tty
	ckpt-dump --kill -o "$IMG" "$TTY_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 0   tty "*" terminal pty "*" rows 33 cols 111 "* ]]
	[[ "$output" == *"fd 3   tty "*" terminal rows 33 cols 111 "*" /dev/tty"* ]]
	[[ "$output" == *"fd 4   tty "*" ptmx pty "*" locked 0 queued 8 rows 10 cols 20 "* ]]
	[[ "$output" == *"fd 5   tty "*" pts pty "*" rows 10 cols 20 "* ]]
	[[ "$output" == *"fd 6   tty "*" ptmx pty "*" locked 1 "* ]]
	touch "$D/go"
	run --separate-stderr timeout 60 onpty ckpt-remap "$IMG"
	cat "$BATS_TEST_TMPDIR/bg.err" >&2 || true
	echo "status $status stderr: $stderr"
	[ "$status" -eq 0 ]
	grep -qx "fdmore tty: ok" "$OUT"
}

@test "tty: the dumped process runs on with its terminals" {
	start_tty
	ckpt-dump -o "$IMG" "$TTY_PID"
	finish_bg
	grep -qx "fdmore tty: ok" "$OUT"
}

# A time as ckpt-remap names a file's mtime (nanoseconds when the two
# times it compares are in the same second), as a [[ =~ ]] pattern.
WHEN='[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}(\.[0-9]{9})? UTC'

@test "a regular file grown since the checkpoint: restore refused naming file, size and mtime" {
	start file
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	echo more >>"$D/data"
	touch "$D/go"
	run --separate-stderr timeout 60 ckpt-remap "$IMG"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 99 ]
	[[ "$stderr" =~ ^ckpt-remap:\ fd\ 3:\ $D/data\ changed\ since\ the\ checkpoint\ \(size\ 10,\ was\ 5\;\ mtime\ $WHEN,\ was\ $WHEN\)\;\ --allow-changed-files\ restores\ anyway$ ]]
	run ! grep -q "fdmore file: ok" "$OUT"
}

@test "a regular file touched since the checkpoint: refused; --allow-changed-files restores with one warning" {
	start file
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	touch -d '2001-01-01 00:00:00 UTC' "$D/data"
	touch "$D/go"
	run --separate-stderr timeout 60 ckpt-remap "$IMG"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 99 ]
	[[ "$stderr" =~ ^ckpt-remap:\ fd\ 3:\ $D/data\ changed\ since\ the\ checkpoint\ \(mtime\ 2001-01-01\ 00:00:00\ UTC,\ was\ $WHEN\)\; ]]
	run --separate-stderr timeout 60 ckpt-remap --allow-changed-files "$IMG"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 0 ]
	[[ "$stderr" =~ ^ckpt-remap:\ fd\ 3:\ $D/data\ changed\ since\ the\ checkpoint\ \(mtime\ 2001-01-01\ 00:00:00\ UTC,\ was\ $WHEN\)\;\ going\ on$ ]]
	grep -qx "fdmore file: ok" "$OUT"
}

@test "all at once on a pty: FIFOs, socketpairs, inotify, a file, terminals and a pty pair come back" {
	start_bg onpty fdmore all "$D"
	wait_for_line "$OUT" '^ready '
	pid=$(awk '/^ready/ {print $2}' "$OUT")
	ckpt-dump --kill -o "$IMG" "$pid"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	touch "$D/go"
	run --separate-stderr timeout 60 onpty ckpt-remap "$IMG"
	cat "$BATS_TEST_TMPDIR/bg.err" >&2 || true
	echo "status $status stderr: $stderr"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	grep -qx "fdmore all: ok" "$OUT"
}
