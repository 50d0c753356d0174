#!/usr/bin/env bats
# Odd kinds of fd: namespace files held open, epoll watching a file whose
# fd was closed or replaced, POSIX message queues with their messages, AIO
# contexts and io_uring instances.  t/progs/fdodd sets each state, waits
# for the checkpoint and checks after the restore that it is as it was.

load lib

bats_require_minimum_version 1.5.0

# started MODE: t/progs/fdodd MODE DIR, ready.
started() {
	workdir fdodd
	start_bg fdodd "$1" "$D"
	wait_for_line "$OUT" '^ready '
}

# refused PATTERN: ckpt-dump refuses the program, saying PATTERN on one
# line; the program runs on untouched and passes its checks.
refused() {
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	echo "status $status stderr: $stderr"
	[ "$status" -ne 0 ]
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
	[[ "$stderr" == $1 ]]
	untraced "$BG_PID"
	finish_bg
}

@test "files of its own namespaces, every type, come back as the restored process's own" {
	started nsfile
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 6   nsfile  flags 0100000 "*" own net namespace net:["* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"ns":"user"'* ]]
	bg_restored "fdodd nsfile: ok"
}

@test "the file of another process's namespace is refused by name" {
	started nsother
	refused "ckpt-dump: pid $BG_PID: fd 3 is user:\[*\], not the process's own user namespace; not supported"
	grep -qx "fdodd nsother: ok" "$OUT"
}

@test "epoll watches whose fds were closed or replaced come back on their files, under the numbers they were added as" {
	started epoll
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 3   epoll   "*" watches 4 "* ]]
	bg_restored "fdodd epoll: ok"
}

@test "an epoll watch on a file no fd of the process holds is refused by name" {
	started epollgone
	refused "ckpt-dump: pid $BG_PID: fd 3: epoll watches a file (added as fd 5, inode *) that no fd of the process holds; not supported"
	grep -qx "fdodd epollgone: ok" "$OUT"
}
