#!/usr/bin/env bats
# Trust at restore (ckpt(7), SECURITY): root restores only an image whose
# opened file root owns (the descriptor is checked, never the path), not a
# pipe unless told, opens what an image names only after that, never
# through a symlink it did not record, and changes nothing outside the new
# process before every record of the image was verified.

# shellcheck disable=SC2154 # status, output and stderr(_lines) are set by bats run
bats_require_minimum_version 1.5.0
load lib

setup() {
	shared_dir
}

teardown() {
	kill_started
	rm -rf "$shared"
}

# refused TEXT: the last run exited 99 (CKPT_FAIL_RC) with one line on
# stderr that starts with the tool's name and contains TEXT (one_line),
# and printed nothing.
refused() {
	one_line 99 "$1"
	[ -z "$output" ]
}

# other_image IMG [DUMP-OPTION...]: a bulk process of $OTHER (its output
# in a file of its own: $OTHER could not read a pipe of root's to dump it),
# dumped by $OTHER itself with --kill into IMG ($OTHER's file), with its go
# file there, so that a restore that went through would end at once.
other_image() {
	local img=$1
	shift
	other_bulk
	"${AS_OTHER[@]}" ckpt-dump --kill "$@" -o "$img" "$pid"
	wait_gone
	touch "$shared/o/go"
}

# other_bulk: bulk 2 $shared/o as $OTHER, its pid in $pid.
other_bulk() {
	mkdir -m 1777 "$shared/o"
	# shellcheck disable=SC2016
	exec_clean "${AS_OTHER[@]}" bash -c 'exec bulk 2 "$1" </dev/null >"$1.out" 2>&1' _ "$shared/o" &
	pid=$!
	CKPT_PIDS+=("$pid")
	wait_for_line "$shared/o.out" '^ready '
}

# wait_gone: the process $pid was killed by its dump.
wait_gone() {
	reap "$pid"
	[ "$status" -eq 137 ]
}

# root_image IMG: the same, a process of root's, dumped by root.
root_image() {
	bulk_killed "$shared/w" "$1"
	[ "$status" -eq 137 ]
}

# bats test_tags=root
@test "root: an image another user forged to say uid 0, on standard input as a file: refused, naming the file's owner" {
	[ "$(id -u)" -eq 0 ] || skip "only root is asked"
	other_image "$shared/o.img"
	"${AS_OTHER[@]}" forge.py "$shared/o.img" uid 0
	[ "$(stat -c %u "$shared/o.img")" = "$(id -u "$OTHER")" ]
	run --separate-stderr timeout 60 ckpt-remap - <"$shared/o.img"
	refused "standard input: the file belongs to uid $(id -u "$OTHER"), who could have written any code into it"
	run --separate-stderr timeout 60 ckpt-remap "$shared/o.img"
	refused "$shared/o.img: the file belongs to uid $(id -u "$OTHER")"
}

# bats test_tags=root
@test "root: an image through a pipe is refused, whoever wrote it, unless --allow-other-user" {
	[ "$(id -u)" -eq 0 ] || skip "only root is asked"
	root_image "$shared/r.img"
	# shellcheck disable=SC2016
	run --separate-stderr timeout 60 bash -c 'cat "$1" | ckpt-remap -' _ "$shared/r.img"
	refused "standard input: a pipe, whose writer may be any user, who could have written any code into it; restoring it as root: refused without --allow-other-user"
	# A file of root's that others may write: as good as theirs.
	chmod 0606 "$shared/r.img"
	run --separate-stderr timeout 60 ckpt-remap - <"$shared/r.img"
	refused "standard input: the file (mode 0606, group 0) may be written by users other than root"
	chmod 0600 "$shared/r.img"
	# shellcheck disable=SC2016
	run --separate-stderr timeout 60 bash -c 'cat "$1" | ckpt-remap --allow-other-user -' _ "$shared/r.img"
	intact_and_restored
}

# bats test_tags=root
@test "root: a FIFO swapped for a symlink to root's image once opened: the opened file is checked, not the path" {
	[ "$(id -u)" -eq 0 ] || skip "only root is asked"
	local w
	root_image "$shared/r.img"
	other_image "$shared/o.img"
	"${AS_OTHER[@]}" forge.py "$shared/o.img" uid 0
	"${AS_OTHER[@]}" mkfifo "$shared/p"
	# The attacker: once ckpt-remap has opened the FIFO (the writer's open
	# returns then), the name becomes a link to root's own image, and only
	# then does the forged image flow: whatever ckpt-remap checks after it
	# opened the file, the name says root's.
	# shellcheck disable=SC2016
	"${AS_OTHER[@]}" bash -c 'exec 3>"$1"; rm "$1"; ln -s "$2" "$1"; cat "$3" >&3' \
		_ "$shared/p" "$shared/r.img" "$shared/o.img" &
	w=$!
	CKPT_PIDS+=("$w")
	run --separate-stderr timeout 60 ckpt-remap "$shared/p"
	refused "$shared/p: a FIFO, whose writer may be any user"
}

# bats test_tags=root
@test "root: a parent named by another user's image is not opened before the image is refused, and a FIFO parent hangs nothing" {
	[ "$(id -u)" -eq 0 ] || skip "only root is asked"
	local w
	other_bulk
	"${AS_OTHER[@]}" ckpt-dump -o "$shared/p.img" "$pid"
	"${AS_OTHER[@]}" ckpt-dump --kill --parent "$shared/p.img" -o "$shared/c.img" "$pid"
	wait_gone
	touch "$shared/o/go"
	# The parent becomes a FIFO whose writer tells when a reader opened it.
	rm "$shared/p.img"
	"${AS_OTHER[@]}" mkfifo "$shared/p.img"
	# shellcheck disable=SC2016
	"${AS_OTHER[@]}" bash -c 'exec 3>"$1"; echo opened >"$2"' _ "$shared/p.img" "$shared/opened" &
	w=$!
	CKPT_PIDS+=("$w")
	run --separate-stderr timeout 20 ckpt-remap "$shared/c.img"
	refused "$shared/c.img: the file belongs to uid $(id -u "$OTHER")"
	[ ! -e "$shared/opened" ]
	# Allowed, the parent is opened, but never waited on: not a regular file.
	run --separate-stderr timeout 20 ckpt-remap --allow-other-user "$shared/c.img"
	refused "$shared/c.img: parent image $shared/p.img: not a regular file (a FIFO)"
	[ ! -e "$shared/opened" ]
	run --separate-stderr timeout 20 ckpt-inspect "$shared/c.img"
	no_core
	[ "$status" -eq 1 ]
	[ ! -e "$shared/opened" ]
	# A device named as the parent (the record forged): not opened either.
	"${AS_OTHER[@]}" forge.py "$shared/c.img" parent /dev/zero
	run --separate-stderr timeout 20 ckpt-remap --allow-other-user "$shared/c.img"
	refused "not a regular file (a character device)"
}

# bats test_tags=root
@test "root: root's incremental image whose parent another user owns: refused, naming the parent" {
	[ "$(id -u)" -eq 0 ] || skip "only root is asked"
	start_bulk_as "$shared/w"
	ckpt-dump -o "$shared/p.img" "$pid"
	ckpt-dump --kill --parent "$shared/p.img" -o "$shared/c.img" "$pid"
	reap "$pid" "$cat_pid"
	touch "$shared/w/go"
	chown "$OTHER" "$shared/p.img"
	run --separate-stderr timeout 60 ckpt-remap "$shared/c.img"
	refused "$shared/c.img: parent image $shared/p.img: the file belongs to uid $(id -u "$OTHER"), who could have written any code into it"
}

# logged DIR: t/progs/logger writing DIR/log, 20 lines, the last held until
# $shared/hold exists; killed by ckpt-dump --save-files into $shared/l.img once
# 19 lines are written.
logged() {
	local dir=$1
	spawn "$shared/l.out" logger "$dir/log" 20 1 "$shared/hold"
	pid=$SPAWN_PID
	cat_pid=$SPAWN_CAT
	wait_for grep -qs '^line 19 ' "$dir/log"
	ckpt-dump --kill --save-files -o "$shared/l.img" "$pid"
	reap "$pid" "$cat_pid"
	touch "$shared/hold"
}

# bats test_tags=root
@test "root: --save-files put back through another user's symlink: refused by name, the file it points to untouched" {
	[ "$(id -u)" -eq 0 ] || skip "only root is asked"
	local dir=$shared/shared-dir
	mkdir "$dir"
	chown "$OTHER" "$dir"
	logged "$dir"
	echo secret >"$shared/victim"
	chmod 0600 "$shared/victim"
	cp -p "$shared/victim" "$shared/victim.orig"
	"${AS_OTHER[@]}" rm "$dir/log"
	"${AS_OTHER[@]}" ln -s "$shared/victim" "$dir/log"
	run --separate-stderr timeout 60 ckpt-remap "$shared/l.img"
	refused "$dir/log: a symbolic link"
	cmp "$shared/victim" "$shared/victim.orig"
	# A directory of the path a link: refused the same.
	"${AS_OTHER[@]}" rm "$dir/log"
	"${AS_OTHER[@]}" mkdir "$shared/elsewhere"
	mv "$dir" "$shared/moved"
	"${AS_OTHER[@]}" ln -s "$shared/elsewhere" "$dir"
	run --separate-stderr timeout 60 ckpt-remap "$shared/l.img"
	refused "$dir/log: a symbolic link"
	[ -z "$(ls -A "$shared/elsewhere")" ]
	rm "$dir"
	mv "$shared/moved" "$dir"
	# A FIFO there: refused, not opened.
	"${AS_OTHER[@]}" mkfifo "$dir/log"
	run --separate-stderr timeout 60 ckpt-remap "$shared/l.img"
	refused "$dir/log: saved in the image as a regular file, but here it is not one"
	# A hard link to the victim (where fs.protected_hardlinks would not
	# stop its owner): refused, as writing it would write the victim.
	rm "$dir/log"
	ln "$shared/victim" "$dir/log"
	run --separate-stderr timeout 60 ckpt-remap "$shared/l.img"
	refused "$dir/log: has 2 hard links here"
	cmp "$shared/victim" "$shared/victim.orig"
}

@test "--save-files: a missing directory is made 0700, not 0777 less the umask" {
	local dir=$shared/a/b
	mkdir -p "$dir"
	logged "$dir"
	rm -r "$shared/a"
	run --separate-stderr bash -c 'umask 022; exec timeout 60 ckpt-remap "$1"' _ "$shared/l.img"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$(stat -c %a "$shared/a")" = 700 ]
	[ "$(stat -c %a "$dir")" = 700 ]
	[ "$(grep -c '^line ' "$dir/log")" -eq 20 ]
}

# flipped IMG: a copy of IMG, $shared/bad.img, with one byte of its last
# PAGES record's page data inverted.
flipped() {
	local off len
	cp "$1" "$shared/bad.img"
	read -r off _ len < <(records "$1" | awk '$2 == 6' | tail -n 1)
	invert_byte "$shared/bad.img" $((off + 16 + len - 100))
}

@test "--save-files image with a flipped page-data byte: 99, one line, the saved file not set back (from a file and from a pipe)" {
	local dir=$shared/d
	mkdir "$dir"
	logged "$dir"
	flipped "$shared/l.img"
	# Written after the checkpoint: a restore that went through would cut it.
	echo "after the checkpoint" >>"$dir/log"
	cp -p "$dir/log" "$shared/log.before"
	run --separate-stderr timeout 60 ckpt-remap "$shared/bad.img"
	refused "checksum"
	cmp "$dir/log" "$shared/log.before"
	[ "$(stat -c %y "$dir/log")" = "$(stat -c %y "$shared/log.before")" ]
	# shellcheck disable=SC2016
	run --separate-stderr timeout 60 bash -c 'cat "$1" | ckpt-remap --allow-other-user -' _ "$shared/bad.img"
	refused "checksum"
	cmp "$dir/log" "$shared/log.before"
	[ "$(stat -c %y "$dir/log")" = "$(stat -c %y "$shared/log.before")" ]
	# Compressed: the decompressor's stream is verified the same way.
	gzip -c "$shared/bad.img" >"$shared/bad.img.gz"
	run --separate-stderr timeout 60 ckpt-remap "$shared/bad.img.gz"
	refused "checksum"
	cmp "$dir/log" "$shared/log.before"
	# The image whole: set back, and the program ends intact.
	run --separate-stderr timeout 60 bash -c 'cat "$1" | ckpt-remap --allow-other-user -' _ "$shared/l.img"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$stderr" = "ckpt-remap: $dir/log: contents set back to the checkpoint's from the image" ]
	[ "$(grep -c '^line ' "$dir/log")" -eq 20 ]
}
