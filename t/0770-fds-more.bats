#!/usr/bin/env bats
# What is left of fds: inotify watches on files no open file leads to (a
# renamed directory, a file under a mount), kept by path or by handle;
# deleted directories and FIFOs with their owner; an epoll watch on a
# file only a child holds; pidfds, namespace files and /proc files shared
# across fork; /proc/PID/task/TID.  t/progs/fdrest sets each state, waits
# for the checkpoint and checks after the restore that it is as it was.

load lib

bats_require_minimum_version 1.5.0

# started MODE: t/progs/fdrest MODE DIR, ready.
started() {
	workdir fdrest
	start_bg fdrest "$1" "$D"
	wait_for_line "$OUT" '^ready '
}

teardown() {
	kill_started
	[ -z "${D:-}" ] || fdrest umount "$D" >/dev/null 2>&1 || true
}

@test "inotify: watches on a directory renamed since and a file in it come back on their inodes, events arrive" {
	started moved
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"      wd 1 mask 0x100 $D/v"$'\n'"      wd 2 mask 0x2 $D/v/f"$'\n'* ]]
	bg_restored "fdrest moved: ok"
}

# bats test_tags=root
@test "inotify: a watch on a file no path leads to (under a mount) comes back by its handle, events arrive" {
	started hidden
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"      wd 1 mask 0x2 no path: inode "*", by its handle"$'\n'* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"watch_list":[{"wd":1,"mask":2,"inode":'*',"by_handle":true}]'* ]]
	bg_restored "fdrest hidden: ok"
}

# refused PATTERN: ckpt-dump refuses the program, saying PATTERN (a
# regular expression) on one line; the program runs on untouched and
# passes its checks.
refused() {
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 1 ]
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
	[[ "$stderr" =~ $1 ]]
	untraced "$BG_PID"
	finish_bg
}

@test "inotify: a watch on a file deleted while open is refused by name; the program runs on" {
	started deleted
	if [ "$(id -u)" -eq 0 ]; then
		refused "^ckpt-dump: pid $BG_PID: fd 3: inotify watch 1 is on a deleted file \(inode [0-9]+ on device [0-9]+:[0-9]+\); not supported\$"
	else
		refused "^ckpt-dump: pid $BG_PID: fd 3: cannot find the path of inotify watch 1 \(inode [0-9]+ on device [0-9]+:[0-9]+\): "
	fi
	grep -qx "fdrest deleted: ok" "$OUT"
}

@test "a deleted directory and a deleted FIFO come back with their owner (another user's as root), mode and times" {
	started delowner
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	if [ "$(id -u)" -eq 0 ]; then
		[[ "$output" == *"fd 3 "*" uid 4321 gid 4322"* ]]
		[[ "$output" == *"fd 4 "*" uid 4323 gid 4324"* ]]
	fi
	bg_restored "fdrest delowner: ok"
}

@test "epoll: a watch on a file only the child holds comes back with -t, added before the tree forks; both files wake their watches" {
	started epolltree
	bg_dump_kill -t
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 3   epoll   "*" watches 2 in_other_process 1 "* ]]
	bg_restored "fdrest epolltree: ok"
}

@test "a pidfd, a namespace file and a /proc file inherited across fork come back as one description each, shared by parent and child" {
	started forkshare
	bg_dump_kill -t
	bg_restored "fdrest forkshare: ok"
}

@test "/proc/PID/task/TID of its main thread, restored under a new pid: the main thread's now" {
	started taskfile
	bg_dump_kill
	bg_restored "fdrest taskfile: ok" --new-pids
}

@test "/proc/PID/task/TID of another thread is refused by name; the program runs on" {
	started taskthread
	refused "^ckpt-dump: pid $BG_PID: fd 3 is /proc/$BG_PID/task/[0-9]+/stat, a file of thread [0-9]+, which the restore makes after the files; not supported\$"
	grep -qx "fdrest taskthread: ok" "$OUT"
}
