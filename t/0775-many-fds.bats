#!/usr/bin/env bats
# A program with more fds than ckpt-remap's own soft RLIMIT_NOFILE: the
# restore holds each of them twice for a moment (opened at a number of
# its own, then lifted above the program's highest), and raises its soft
# limit for that.  t/progs/manyfds.py checks every fd after the restore.

load lib

bats_require_minimum_version 1.5.0

@test "1,600 fds (pipes with bytes, a file at offsets, eventfds) restore under a soft RLIMIT_NOFILE of 1024" {
	local hard
	hard=$(ulimit -Hn)
	[ "$hard" = unlimited ] || [ "$hard" -ge 5000 ] || skip "RLIMIT_NOFILE's hard limit is $hard"
	workdir manyfds
	start_bg python3 "$TOP/t/progs/manyfds.py" 1600 "$D"
	wait_for_line "$OUT" '^ready '
	bg_dump_kill
	ulimit -Sn 1024
	bg_restored "manyfds: ok"
}
