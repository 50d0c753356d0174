#!/usr/bin/env bats
# A process in a mount namespace of its own comes back in a new one made
# from ckpt-remap's, its mounts as they were: every mount private as
# `unshare -m` leaves them, a tmpfs with its size, mode and files, one
# read-only, a read-only bind mount (a write there fails), a mount of the tree's it
# unmounted, and the proc `unshare --pid --fork --mount-proc` mounts for
# its pid namespace.  A mount of another kind is refused by name at dump.
# t/progs/nsprog makes them (in a user namespace first, without root) and
# checks them after the restore.

load lib

bats_require_minimum_version 1.5.0

setup() {
	if [ "$(id -u)" -ne 0 ] && ! unshare -Urm true 2>/dev/null; then
		skip "no unprivileged user namespaces here"
	fi
	workdir mnt
}

teardown() {
	kill_started
	if [ -n "${UMNT:-}" ] && mountpoint -q "$UMNT"; then
		umount "$UMNT"
	fi
}

# started MODE: nsprog MODE runs, ready.
started() {
	start_bg nsprog "$1" "$D"
	wait_for_line "$OUT" '^ready '
}

@test "tmpfs: a new mount namespace, every mount private, a tmpfs with its size, mode and files; ckpt-inspect shows them" {
	started mnt
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"  mnt    inode "*"           tmpfs $D/m, size 1048576, mode 750"*" mounts of the tree's kept"* ]]
	[[ "$output" == *"           file $D/m/a, 5 bytes, mode 640"* ]]
	[[ "$output" == *"           dir $D/m/sub, mode 711"* ]]
	[[ "$output" == *"           symlink $D/m/l to a"* ]]
	[[ "$output" == *"           kept $D/r, read-only"* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"mounts":[{"op":"kept","path":"/"'*'{"op":"tmpfs","path":"'"$D"'/m"'* ]]
	bg_restored "nsprog: ok"
}

@test "bind: a read-only bind mount of a path that exists, back read-only: a write there fails with EROFS" {
	started mntbind
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"           bind $D/b from $D/src, read-only"* ]]
	bg_restored "nsprog: ok"
}

@test "unmounted: a mount of the tree's namespace it unmounted in its own is unmounted again" {
	if [ "$(id -u)" -ne 0 ]; then
		# shellcheck disable=SC2016 # $1 is the inner shell's
		nsprog_own_ns mntbind 'mkdir "$1/u" && mount -t tmpfs tmpfs "$1/u" && touch "$1/u/mounted"'
		return
	fi
	UMNT=$D/u
	mkdir "$UMNT"
	mount -t tmpfs tmpfs "$UMNT"
	touch "$UMNT/mounted"
	started mntbind
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"           unmounted $UMNT"* ]]
	bg_restored "nsprog: ok"
	mountpoint -q "$UMNT"
}

@test "proc: unshare --pid --fork --mount-proc: the init's proc of its pid namespace back on /proc" {
	if [ "$(id -u)" -ne 0 ]; then
		nsprog_own_ns mntproc
		return
	fi
	started mntproc
	local kids
	kids=$(descendants "$BG_PID")
	bg_dump_kill -t
	for k in $kids; do
		wait_for not kill -0 "$k"
	done
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"           proc /proc, of pid namespace inode "* ]]
	bg_restored "nsprog: ok"
}

@test "a devpts mounted in its own mount namespace is refused by name; the process runs on" {
	started mntdev
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"pid $BG_PID: its mount namespace has a devpts mount on $D/pts (devpts), not a tmpfs, a proc or a bind mount of a path it shows; not supported"* ]]
	finish_bg
}

@test "a tmpfs holding more than 16 MiB of files is refused by name; the process runs on" {
	started mntbig
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"pid $BG_PID: its tmpfs on $D/m holds more than 16777216 bytes of files (/big among them); not supported"* ]]
	finish_bg
}

@test "MOUNTS: an NS record of a mount namespace without its MOUNTS record is refused when read" {
	started uts
	bg_dump_kill
	forge.py "$IMG" nsown 0x12
	run --separate-stderr ckpt-inspect "$IMG"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"NS record: a mount namespace of its own without its MOUNTS record"* ]]
}
