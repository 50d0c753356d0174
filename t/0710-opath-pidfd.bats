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

# pidfds: of itself (fd 3), of a child (fd 4, PIDFD_NONBLOCK), of a child
# that exited and was reaped (fd 5).  t/progs/opath --pidfd checks fdinfo's
# Pid of each, the flags, and that the exited one answers poll,
# pidfd_send_signal and waitid(P_PIDFD) as before the checkpoint.

@test "a tree (-t): pidfds of itself, of its child and of an exited child come back, on the restored child and with their flags" {
	started --pidfd
	bg_dump_kill -t
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 3   pidfd   flags 02000002 "*" of self pid $BG_PID"* ]]
	[[ "$output" == *"fd 4   pidfd   flags 02004002 "*" of tree pid "* ]]
	[[ "$output" == *"fd 5   pidfd   flags 02 "*" of exited pid -1"* ]]
	# its exit status (3), where the kernel tells it (PIDFD_INFO_EXIT, Linux 6.15)
	[[ "$output" == *" of exited pid -1 status 0x300 "* ]] ||
		[ "$(printf '%s\n' 6.15 "$(uname -r)" | sort -V | head -n 1)" != 6.15 ]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"of":"self","pid":'"$BG_PID"* ]]
	restored "pidfd: ok"
}

@test "a pidfd of a live process outside the dump (a child, no -t) is refused by name; the program runs on" {
	started --pidfd
	child=$(sed -n 's/^child //p' "$OUT")
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"pid $BG_PID: fd 4 is a pidfd of pid $child, a live process outside the dumped tree; not supported"* ]]
	finish_bg
	grep -qx "pidfd: ok" "$OUT"
}
