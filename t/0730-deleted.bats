#!/usr/bin/env bats
# Deleted files of every kind (a FIFO with its bytes, a directory open or
# as the current directory, regular files with their owner, mode, times
# and contents), every fd's status flags and close-on-exec, and files of
# /proc held open come back as they were; t/progs/ghosts checks each.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir ghosts
}

# start MODE: ghosts MODE in the background, ready.
start() {
	start_bg ghosts "$1" "$D"
	wait_for_line "$OUT" '^ready '
}

# killed_and_restored MODE [OPTION...]: dump --kill, restore, the program's checks pass.
killed_and_restored() {
	local mode=$1
	shift
	bg_dump_kill
	bg_restored "ghosts $mode: ok" "$@"
}

@test "deleted FIFO: made again, removed, with its bytes, modes and flags" {
	start fifo
	killed_and_restored fifo
}

@test "deleted directory held open: made again empty and removed, of its mode; fchdir enters it" {
	start dir
	killed_and_restored dir
}

@test "deleted current directory: the restored process is in a removed directory" {
	start cwd
	killed_and_restored cwd
}

@test "deleted files: owner, mode, times, sparse contents, offset, O_APPEND, mapping, a write-only one" {
	start file
	killed_and_restored file
}

@test "flags: every fd's fdinfo flags and close-on-exec, every kind, as before the dump" {
	start flags
	killed_and_restored flags
}

@test "flags: a FIFO's mtime is not changed by the bytes the restore puts back" {
	start flags
	before=$(stat -c %y "$D/ff")
	bg_dump_kill
	bg_restored "ghosts flags: ok"
	[ "$(stat -c %y "$D/ff")" = "$before" ]
}

@test "/proc files held open: the restored process's own, under a new pid" {
	start proc
	killed_and_restored proc --new-pids
	not grep -qx "pid $BG_PID" "$OUT"
}

@test "/proc files held open: the restored process's own, under its old pid" {
	start proc
	if [ "$(id -u)" -eq 0 ]; then
		killed_and_restored proc
	else
		killed_and_restored proc --pid-ns
	fi
	grep -qx "pid $BG_PID" "$OUT"
}

@test "/proc files held open in a tree: a child's stat is the restored child's" {
	start proctree
	bg_dump_kill -t
	bg_restored "ghosts proctree: ok"
}

@test "a /proc file of a process outside the image: ckpt-dump refuses it by name" {
	start proctree
	child=$(pgrep -P "$BG_PID")
	run -1 ckpt-dump -o "$IMG" "$BG_PID"
	echo "$output"
	[[ "$output" == *"pid $BG_PID: fd "*" is /proc/$child/stat, a file of process $child, which the image does not hold; not supported" ]]
	finish_bg
}

@test "ckpt-inspect shows a deleted FIFO as kind deleted with its bytes, and a deleted file's owner" {
	start fifo
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *" deleted "*"queued 5000 "*"$D/gf (deleted)"* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"kind":"deleted"'*'"queued":5000'* ]]
	D=$BATS_TEST_TMPDIR/d2
	mkdir "$D"
	start_bg ghosts file "$D"
	wait_for_line "$OUT" '^ready '
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *" shm "*" uid $(id -u) gid $(id -g) "*"$D/gwo (deleted)"* ]]
}
