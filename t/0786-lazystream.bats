#!/usr/bin/env bats
# ckpt-remap --lazy from a stream (a pipe, a compressed image): the program
# runs before its large regions are read; a filler process fills them from
# the stream with a userfaultfd, and a fault waits for its page.  A stream
# cut short kills the program with one line and leaves nothing behind; a
# program whose pages are all in is an ordinary one (it dumps again).

bats_require_minimum_version 1.5.0
load lib

# One image for the file: t/progs/lazyio of 48 MiB (one region the
# stream fills last), its output on a pipe (a restore gives it
# ckpt-remap's), dumped with --kill; plain, ckpt-gzip'd and
# ckpt-gzip --zstd'd.  Each test gives it its own go files in $D.
setup_file() {
	local d=$BATS_FILE_TMPDIR/d pid cat_pid
	mkdir "$d"
	spawn_ready "$BATS_FILE_TMPDIR/out" lazyio 48 "$d"
	ckpt-dump --kill -o "$BATS_FILE_TMPDIR/img" "$pid"
	reap "$pid" "$cat_pid"
	ckpt-gzip -o "$BATS_FILE_TMPDIR/img.gz" <"$BATS_FILE_TMPDIR/img"
	ckpt-gzip --zstd -o "$BATS_FILE_TMPDIR/img.zst" <"$BATS_FILE_TMPDIR/img"
}

setup() {
	D=$BATS_FILE_TMPDIR/d
	OUT=$BATS_TEST_TMPDIR/out
	IMG=$BATS_FILE_TMPDIR/img
	# Where ckpt-remap starts (the filler stays there; the program goes
	# back to $D).
	R=$BATS_TEST_TMPDIR/r
	mkdir "$R"
	rm -f "$D/go" "$D/go2" "$D/w"
}

teardown() {
	kill_started
	kill_in_dir "$R" ckpt-fill
}

# uffd_ok: this user may make a userfaultfd that waits on faults in system
# calls too and follows forks (CAP_SYS_PTRACE: root).
uffd_ok() {
	[ "$(id -u)" -eq 0 ]
}

# filling: a filler started in $R is there.
filling() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(cat "$p/comm" 2>/dev/null)" = ckpt-fill ] && [ "$p/cwd" -ef "$R" ] && return 0
	done
	return 1
}

# lazy_bg SOURCE: ckpt-remap --lazy - in $R, in the background, reading
# SOURCE (a file or FIFO) on stdin, the program's output in $OUT; its pid
# in $rpid.
lazy_bg() {
	(cd "$R" && exec_clean ckpt-remap --allow-other-user --lazy - <"$1" >"$OUT" \
		2>"$BATS_TEST_TMPDIR/err") &
	rpid=$!
	CKPT_PIDS+=("$rpid")
}

@test "--lazy from a pipe: the program runs before its memory is in, and its read()/write() of memory not filled yet wait for it" {
	uffd_ok || skip "no userfaultfd for faults in system calls and forks for this user (root only)"
	local fifo=$BATS_TEST_TMPDIR/fifo sz st=0
	mkfifo "$fifo"
	sz=$(stat -c %s "$IMG")
	touch "$D/go"
	# All but the last 2 MiB, until the program has looked at its last
	# page: it is not in, and the program's system calls on it wait.
	{
		head -c $((sz - 2097152)) "$IMG"
		wait_for_line "$OUT" '^lazyio: last page in'
		tail -c 2097152 "$IMG"
	} >"$fifo" &
	CKPT_PIDS+=("$!")
	lazy_bg "$fifo"
	wait_for_line "$OUT" '^lazyio: ok 1'
	touch "$D/go2"
	wait "$rpid" || st=$?
	CKPT_PIDS=()
	cat "$OUT" "$BATS_TEST_TMPDIR/err"
	[ "$st" -eq 0 ]
	grep -qx 'lazyio: last page in: no' "$OUT"
	grep -qx 'lazyio: ok 2' "$OUT"
}

@test "--lazy from a zstd image file and from a gzip image on a pipe: the program is intact" {
	uffd_ok || skip "no userfaultfd for faults in system calls and forks for this user (root only)"
	touch "$D/go" "$D/go2"
	# shellcheck disable=SC2016
	run --separate-stderr bash -c 'cd "$1" && ckpt-remap --lazy "$2"' _ "$R" "$IMG.zst"
	printf 'status %s\nstdout:\n%s\nstderr:\n%s\n' "$status" "$output" "$stderr"
	[ "$status" -eq 0 ]
	[[ $output == *"lazyio: ok 2"* ]]
	lazy_bg <(cat "$IMG.gz")
	st=0
	wait "$rpid" || st=$?
	CKPT_PIDS=()
	cat "$OUT" "$BATS_TEST_TMPDIR/err"
	[ "$st" -eq 0 ]
	grep -qx 'lazyio: ok 2' "$OUT"
}

@test "--lazy from a stream cut short: the program is killed with one line, and nothing is left" {
	uffd_ok || skip "no userfaultfd for faults in system calls and forks for this user (root only)"
	local sz
	sz=$(stat -c %s "$IMG.zst")
	touch "$D/go" "$D/go2"
	# shellcheck disable=SC2016
	run --separate-stderr bash -c 'cd "$1" && head -c "$2" "$3" |
		exec timeout 60 reaper ckpt-remap --allow-other-user --lazy -' \
		_ "$R" $((sz / 2)) "$IMG.zst"
	printf 'status %s\nstdout:\n%s\nstderr:\n%s\n' "$status" "$output" "$stderr"
	[ "$status" -eq 137 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr =~ ^ckpt-remap:\ pid\ [0-9]+:\ the\ image\ stream\ ended\ at\ byte\ [0-9]+:\ .*\;\ killed$ ]]
	[[ $output != *"lazyio: ok"* ]]
	none_in_dir "$R"
	none_in_dir "$D"
}

@test "--lazy from a corrupt stream: a bad checksum after the program runs kills it with one line, before it sees the data" {
	uffd_ok || skip "no userfaultfd for faults in system calls and forks for this user (root only)"
	local sz
	sz=$(stat -c %s "$IMG")
	cp "$IMG" "$IMG.bad"
	# A byte of the large region's data, 1 MiB before the end.
	invert_byte "$IMG.bad" $((sz - 1048576))
	touch "$D/go" "$D/go2"
	# shellcheck disable=SC2016
	run --separate-stderr bash -c 'cd "$1" && exec timeout 60 reaper ckpt-remap --allow-other-user --lazy - <"$2"' \
		_ "$R" <(cat "$IMG.bad")
	printf 'status %s\nstdout:\n%s\nstderr:\n%s\n' "$status" "$output" "$stderr"
	[ "$status" -eq 137 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr =~ ^ckpt-remap:\ pid\ [0-9]+:\ the\ image\ stream\ broke\ at\ byte\ [0-9]+:\ .*checksum\ mismatch\;\ killed$ ]]
	# Its record is checked before the program sees any of it.
	[[ $output != *"lazyio: ok"* ]]
	[[ $output != *"differs"* ]]
	none_in_dir "$R"
}

@test "--lazy from a stream: once all its pages are in, the program dumps and restores again" {
	uffd_ok || skip "no userfaultfd for faults in system calls and forks for this user (root only)"
	touch "$D/go"
	lazy_bg <(cat "$IMG.zst")
	wait_for_line "$OUT" '^lazyio: ok 1'
	# The filler is gone once every page is in.
	wait_for not filling
	# The program: ckpt-remap's child where it got its old pid back
	# (root), else ckpt-remap itself.
	prog=$(cat "/proc/$rpid/task/$rpid/children")
	prog=${prog// /}
	ckpt-dump --kill -o "$IMG.2" "${prog:-$rpid}"
	wait "$rpid" || true
	CKPT_PIDS=()
	touch "$D/go2"
	restore "$IMG.2"
	[ "$status" -eq 0 ]
	grep -qx 'lazyio: ok 2' "$OUT"
}

@test "--lazy from a stream refuses an image not in lazy order (--cow), before anything happens" {
	local pid cat_pid
	spawn_ready "$OUT" lazyio 1 "$D"
	ckpt-dump --cow -o "$IMG.cow" "$pid"
	kill "$pid"
	reap "$pid" "$cat_pid"
	# shellcheck disable=SC2016
	run --separate-stderr bash -c 'cat "$1" | ckpt-remap --allow-other-user --lazy -' _ "$IMG.cow"
	one_line 99 "--lazy from a compressed image or a stream needs an image in lazy order" ckpt-remap
}

@test "--lazy from a stream without a userfaultfd for faults in system calls and forks: refused with one line" {
	if uffd_ok; then
		skip "this user may make such a userfaultfd"
	fi
	run --separate-stderr ckpt-remap --lazy "$IMG.zst"
	one_line 99 "--lazy from a compressed image or a stream needs a userfaultfd that waits on faults in system calls too and follows the program's forks, which takes CAP_SYS_PTRACE" ckpt-remap
}
