#!/usr/bin/env bats
# ckpt-remap reading an image from a pipe whose writer dies (SIGKILL) in the
# middle of the stream, before or after the point of no return: one line on
# stderr, CKPT_FAIL_RC, never a signal, no process left, and the program
# never runs.

bats_require_minimum_version 1.5.0
load lib

# One image for the file: t/progs/bulk (4 MiB), dumped with --kill, its
# DIR/go already there, so that a restore that went through would run it
# to its end at once and print "restored: yes".
setup_file() {
	local pid cat_pid
	# Its output through a pipe (spawn): a restored program inherits
	# ckpt-remap's stdout then.
	bulk_killed "$BATS_FILE_TMPDIR/b" "$BATS_FILE_TMPDIR/img" 4
	gzip -c "$BATS_FILE_TMPDIR/img" >"$BATS_FILE_TMPDIR/img.gz"
}

setup() {
	img=$BATS_FILE_TMPDIR/img
}

# writer_dies FILE N [OPTION...]: a writer puts the first N bytes of FILE
# into a pipe and is killed with SIGKILL while it holds the pipe open;
# ckpt-remap OPTION... - reads the pipe, under a reaper of its own that
# fails if any process is left.  Its status, stdout and stderr in $status,
# $output, $stderr (and $stderr_lines).
writer_dies() {
	local file=$1 n=$2 fifo=$BATS_TEST_TMPDIR/fifo w r
	shift 2
	rm -f "$fifo"
	mkfifo "$fifo"
	# shellcheck disable=SC2016
	exec_clean bash -c 'head -c "$1" "$2" && exec sleep 1000' _ "$n" "$file" >"$fifo" &
	w=$!
	CKPT_PIDS+=("$w")
	exec_clean reaper ckpt-remap --allow-other-user "$@" - <"$fifo" >"$BATS_TEST_TMPDIR/out" \
		2>"$BATS_TEST_TMPDIR/err" &
	r=$!
	CKPT_PIDS+=("$r")
	# Once it is sleep, all N bytes are in the pipe or read.
	wait_for comm_is "$w" sleep
	kill -KILL "$w"
	reap "$w"
	reap "$r"
	output=$(cat "$BATS_TEST_TMPDIR/out")
	stderr=$(cat "$BATS_TEST_TMPDIR/err")
	mapfile -t stderr_lines <"$BATS_TEST_TMPDIR/err"
	printf 'cut at %s: status %s\nstdout:\n%s\nstderr:\n%s\n' "$n" "$status" "$output" "$stderr"
}

# fails_cleanly [TEXT]: the last writer_dies gave CKPT_FAIL_RC, one line
# "ckpt-remap: ...TEXT...", and the program never ran.
fails_cleanly() {
	one_line 99 "${1:-}" ckpt-remap
	[ -z "$output" ]
}

@test "the writer killed in the header: 99, one line, nothing left" {
	writer_dies "$img" 100
	fails_cleanly truncated
}

@test "the writer killed in the metadata: 99, one line, nothing left" {
	writer_dies "$img" 300
	fails_cleanly truncated
	writer_dies "$img" "$(records "$img" | awk '$2 == 5 { print $1 + 20; exit }')"
	fails_cleanly truncated
}

@test "the writer killed in the page data, after the point of no return: 99, one line, nothing left" {
	local off len
	read -r off _ len < <(records "$img" | awk '$2 == 6' | head -n 1)
	writer_dies "$img" "$((off + 16 + 100))"
	fails_cleanly truncated
	writer_dies "$img" "$((off + 16 + len / 2))"
	fails_cleanly truncated
	read -r off _ len < <(records "$img" | awk '$2 == 6' | tail -n 1)
	writer_dies "$img" "$((off + 16 + len - 1))"
	fails_cleanly truncated
}

@test "the writer killed one byte before the end: 99, one line, nothing left" {
	writer_dies "$img" "$(($(stat -c %s "$img") - 1))"
	fails_cleanly truncated
}

@test "the writer killed in the page data, --new-pids and --pid-ns: 99, one line, nothing left" {
	local off len
	read -r off _ len < <(records "$img" | awk '$2 == 6' | head -n 1)
	writer_dies "$img" "$((off + 16 + len / 2))" --new-pids
	fails_cleanly truncated
	if [ "$(id -u)" -ne 0 ] && ! unshare -Ur true 2>/dev/null; then
		skip "no user namespaces for --pid-ns here"
	fi
	writer_dies "$img" "$((off + 16 + len / 2))" --pid-ns
	fails_cleanly truncated
}

@test "the writer of a gzip stream killed in the middle: 99, one line, the decompressor gone too" {
	local size
	size=$(stat -c %s "$img.gz")
	writer_dies "$img.gz" 100
	fails_cleanly gzip
	writer_dies "$img.gz" "$((size / 2))"
	fails_cleanly gzip
	writer_dies "$img.gz" "$((size - 1))"
	fails_cleanly gzip
}

@test "the whole stream, the writer killed after it: the program runs (the test's own check)" {
	writer_dies "$img" "$(stat -c %s "$img")"
	[ "$status" -eq 0 ]
	[ "$output" = "restored: yes" ]
	[ -z "$stderr" ]
}

# pipe_size_after CMD...: write the image into a pipe that CMD - reads, and
# print the pipe's size (F_GETPIPE_SZ, 1032) once CMD has read it all.
pipe_size_after() {
	# shellcheck disable=SC2016
	python3 -c 'import fcntl, sys
sys.stdout.buffer.write(open(sys.argv[1], "rb").read())
sys.stdout.flush()
print(fcntl.fcntl(1, 1032), file=sys.stderr)' "$img" 2>"$BATS_TEST_TMPDIR/size" |
		"$@" - >/dev/null
	cat "$BATS_TEST_TMPDIR/size"
}

@test "ckpt-inspect and ckpt-remap give the pipe they read 1 MiB" {
	run pipe_size_after ckpt-inspect
	[ "$status" -eq 0 ]
	[ "$output" = "$(grown_pipe)" ]
	run pipe_size_after ckpt-remap --allow-other-user --new-pids
	[ "$status" -eq 0 ]
	[ "$output" = "$(grown_pipe)" ]
}
