#!/usr/bin/env bats
# A pipe end above fd 2 whose other end is outside the process (a make
# jobserver, a leaked log pipe): ckpt-dump captures it (a read end with
# the bytes queued in it, left in the pipe); ckpt-remap gives the program
# a pipe whose other end is gone -- a reader gets the saved bytes, then end
# of file; a writer gets EPIPE -- and says so in one line naming the fd,
# or with --inherit-fd FD=N hands it ckpt-remap's own fd N.  The same for
# a tree (ckpt-dump -t) and for a coordinated restart.  t/progs/pipeend
# holds fd 200, whose other end is the test's.

bats_require_minimum_version 1.5.0
load lib

setup() {
	workdir pipeend
}

# start_end MODE [--fork]: pipeend [--fork] MODE 200 $D in the background
# with fd 200 one end of a new pipe (the read end for MODE read), ready;
# the test keeps the other end on fd $KEPT.
start_end() {
	local mode=$1
	shift
	anon_pipe
	if [ "$mode" = read ]; then
		KEEP_FDS=200 start_bg pipeend "$@" read 200 "$D" 200<&"$PIPE_R"
		KEPT=$PIPE_W
		exec {PIPE_R}<&-
	else
		KEEP_FDS=200 start_bg pipeend "$@" write 200 "$D" 200>&"$PIPE_W"
		KEPT=$PIPE_R
		exec {PIPE_W}>&-
	fi
	wait_for_line "$OUT" '^ready$'
}

# dump [OPTION...]: ckpt-dump --kill OPTION... the program into $IMG; it
# died of SIGKILL.
dump() {
	ckpt-dump --kill "$@" -o "$IMG" "$BG_PID"
	reap "$BG_PID"
	[ "$status" -eq 137 ]
}

# restored [OPTION...]: ckpt-remap OPTION... $IMG, the program let go at
# once; it exits 0.  $stderr_lines: what ckpt-remap said.
restored() {
	touch "$D/go"
	run --separate-stderr timeout 60 ckpt-remap "$@" "$IMG"
	printf 'ckpt-remap status %s\nstderr:\n%s\nprogram:\n' "$status" "$stderr"
	cat "$OUT" "$BATS_TEST_TMPDIR/bg.err"
	[ "$status" -eq 0 ]
}

# one_line_names_fd WHAT [PID]: ckpt-remap said exactly one line, about fd
# 200 (of PID) and WHAT.
# shellcheck disable=SC2154 # stderr_lines: set by bats run
one_line_names_fd() {
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "ckpt-remap: ${2:+pid $2: }fd 200 "*"$1"*"--inherit-fd 200=N"* ]]
}

@test "a read end whose writer is outside: its queued bytes, then EOF, the writer still open; one line names fd 200" {
	start_end read
	echo before >&"$KEPT"
	dump
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 200 pipe "*" read end queued 7 size "*" other end outside "* ]]
	restored
	one_line_names_fd "read end"
	grep -qx 'read: before|' "$OUT"
	grep -qx 'eof' "$OUT"
	# The restored program saw the end of its input while the test's
	# write end was open all along; and the pipe still holds what the dump
	# peeked (a read end opened through /proc, the write end closed).
	local rd
	exec {rd}<"/proc/$BASHPID/fd/$KEPT"
	exec {KEPT}>&-
	[ "$(timeout 5 cat <&"$rd")" = before ]
}

@test "--inherit-fd 200=N on a read end: the program reads ckpt-remap's fd N, the saved bytes not put back" {
	local r w
	start_end read
	echo before >&"$KEPT"
	dump
	exec {KEPT}>&-
	anon_pipe
	r=$PIPE_R w=$PIPE_W
	echo after >&"$w"
	exec {w}>&-
	restored --inherit-fd "200=$r"
	[ -z "$stderr" ]
	grep -qx 'read: after|' "$OUT"
	grep -qx 'eof' "$OUT"
}

@test "a write end whose reader is outside: writing fails with EPIPE; one line names fd 200; the reader got nothing" {
	start_end write
	dump
	restored
	one_line_names_fd "write end"
	grep -qx 'write: EPIPE' "$OUT"
	# The test's read end: no writer left, nothing written.
	[ -z "$(timeout 5 cat <&"$KEPT")" ]
}

@test "--inherit-fd 200=N on a write end: the program writes into ckpt-remap's fd N" {
	local r w
	start_end write
	dump
	exec {KEPT}<&-
	anon_pipe
	r=$PIPE_R w=$PIPE_W
	restored --inherit-fd "200=$w"
	exec {w}>&-
	[ -z "$stderr" ]
	grep -qx 'write: ok' "$OUT"
	# Its pid: the old one, or a new one where that cannot be had.
	[[ "$(timeout 5 cat <&"$r")" =~ ^hello\ from\ [0-9]+$ ]]
}

@test "--inherit-fd refuses an fd the image lacks, an fd of its own that is not open, and a malformed pair" {
	start_end write
	dump
	run --separate-stderr ckpt-remap --inherit-fd 201=2 "$IMG"
	[ "$status" -eq 99 ]
	[[ "$stderr" == "ckpt-remap: --inherit-fd 201=2: "*"no fd 201"* ]]
	run --separate-stderr ckpt-remap --inherit-fd 200=250 "$IMG"
	[ "$status" -eq 99 ]
	[[ "$stderr" == "ckpt-remap: --inherit-fd 200=250: fd 250 "*"not open"* ]]
	run --separate-stderr ckpt-remap --inherit-fd 200 "$IMG"
	[ "$status" -eq 99 ]
	[ "$stderr" = "ckpt-remap: --inherit-fd takes FD=N, two fd numbers: 200" ]
}

@test "a tree whose two processes share a write end to the outside: both get EPIPE, one line each" {
	start_end write --fork
	dump -t
	run ckpt-inspect "$IMG"
	[[ "$output" == *"fd 200 pipe "*" write end "*" other end outside "* ]]
	restored
	[ "${#stderr_lines[@]}" -eq 2 ]
	[[ "${stderr_lines[0]}" == "ckpt-remap: pid "*": fd 200 "*"write end"* ]]
	[[ "${stderr_lines[1]}" == "ckpt-remap: pid "*": fd 200 "*"write end"* ]]
	grep -qx 'child write: EPIPE' "$OUT"
	grep -qx 'write: EPIPE' "$OUT"
}

@test "a tree, --inherit-fd 200=N: both processes (one open file) write into ckpt-remap's fd N" {
	local r w
	start_end write --fork
	dump -t
	anon_pipe
	r=$PIPE_R w=$PIPE_W
	restored --inherit-fd "200=$w"
	exec {w}>&-
	[ -z "$stderr" ]
	grep -qx 'child write: ok' "$OUT"
	grep -qx 'write: ok' "$OUT"
	[ "$(timeout 5 cat <&"$r" | wc -l)" -eq 2 ]
}

@test "a tree whose child reads a pipe from the outside: the saved bytes, then EOF for both" {
	start_end read --fork
	printf 'one\ntwo\n' >&"$KEPT"
	dump -t
	restored
	[ "${#stderr_lines[@]}" -eq 2 ]
	grep -qx 'child read: one|two|' "$OUT"
	grep -qx 'read: ' "$OUT"
}

@test "ckpt-inject --restart of a program with a write end to the outside: the restart goes on, EPIPE, one line" {
	local img
	teardown() { coord_teardown; }
	start_coord
	anon_pipe
	KEEP_FDS=200 inject a pipeend write 200 "$D" 200>&"$PIPE_W"
	exec {PIPE_W}>&-
	wait_for grep -qx ready "$BATS_TEST_TMPDIR/a.out"
	run ckpt-signal --checkpoint --wait --kill
	[ "$status" -eq 0 ]
	reap "$INJ_PID"
	[ "$status" -eq 137 ]
	ls "$output"
	img=$(find "$output" -name 'ckpt_*.ckpt*')
	touch "$D/go"
	run --separate-stderr timeout 60 ckpt-inject --restart "$img"
	echo "status $status stderr: $stderr"
	cat "$BATS_TEST_TMPDIR/a.out"
	[ "$status" -eq 0 ]
	[[ "$stderr" == "ckpt-remap: fd 200 "*"write end"*"--inherit-fd 200=N"* ]]
	grep -qx 'write: EPIPE' "$BATS_TEST_TMPDIR/a.out"
}
