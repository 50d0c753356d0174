#!/usr/bin/env bats
# O_PATH descriptors come back as O_PATH opens of the same path: of a file,
# a directory (O_DIRECTORY) and a symlink itself (O_NOFOLLOW);
# t/progs/opath checks each with fstat, fstatat(AT_EMPTY_PATH),
# readlinkat(fd, "") and F_GETFL after the restore.  One whose file was
# removed is refused by name.

load lib

bats_require_minimum_version 1.5.0

# started MODE...: t/progs/opath MODE... DIR, ready.
started() {
	workdir opath
	start_bg opath "$@" "$D"
	wait_for_line "$OUT" '^ready '
}

killed() {
	bg_dump_kill
	touch "$D/go"
}

# restored LINE: ckpt-remap runs the program to its end, which says LINE.
restored() {
	bg_restored "$1"
}

@test "O_PATH fds of a file, a directory and a symlink come back O_PATH, on the same files" {
	started
	killed
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 3   opath   flags 010000000 "*"$D/f"* ]]
	[[ "$output" == *"fd 4   opath   flags 010200000 "*"$D/d"* ]]
	[[ "$output" == *"fd 5   opath   flags 010400000 "*"$D/l"* ]]
	restored "opath: ok"
}

@test "the dumped process runs on with its O_PATH fds" {
	started
	ckpt-dump -o "$IMG" "$BG_PID"
	finish_bg
	grep -qx "opath: ok" "$OUT"
}

@test "a symlink replaced by a file since the checkpoint fails the restore, naming it" {
	started
	killed
	rm "$D/l"
	touch "$D/l"
	run --separate-stderr ckpt-remap "$IMG"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"fd 5: $D/l is no longer the kind of file it was (mode 120000, now 100000)"* ]]
}

@test "an O_PATH fd of a deleted file is refused by name" {
	started --gone
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"pid $BG_PID: fd 3 is an O_PATH descriptor of deleted or unreachable $D/f (deleted); not supported"* ]]
	finish_bg
	grep -qx "opath: ok" "$OUT"
}
