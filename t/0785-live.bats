#!/usr/bin/env bats
# Live migration (ckpt-dump --live): the memory is copied while the program
# runs, then what it wrote meanwhile, in rounds, and the program is frozen
# only for the last one.  t/progs/livework writes random pages all the
# time (50 MB/s here) and drops and reads back pages now and then; once
# restored it checks every page against the generation it last wrote, so
# a page the rounds missed (written, dropped, read back as the zero page)
# makes it fail.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir live
}

# started [ARG]: livework of 64 MiB writing 50 MB/s, ready, in $BG_PID.
started() {
	start_bg livework 64 50 "$@"
	wait_for_line "$OUT" "^ready $BG_PID\$"
}

# moved_ok: the restored program said its memory was intact.
moved_ok() {
	cat "$OUT"
	grep -qE '^restored gap [0-9]+ ok$' "$OUT"
}

# no_tracker PID: PID holds no userfaultfd (--live closed its tracker).
no_tracker() {
	local l
	l=$(ls -l "/proc/$1/fd")
	[[ $l != *userfaultfd* ]]
}

@test "--live --kill through a pipe into ckpt-remap -: the program, writing all the time, runs on intact" {
	started
	# shellcheck disable=SC2016
	run --separate-stderr bash -c 'ckpt-dump --live --kill "$1" | timeout 120 ckpt-remap --allow-other-user -' _ "$BG_PID"
	echo "status $status stderr: $stderr"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	moved_ok
}

@test "--live into a file, the program running on untraced and without the tracker; ckpt-remap FILE brings back a copy, intact; ckpt-inspect shows the pre-copy" {
	started
	ckpt-dump --live -o "$IMG" "$BG_PID"
	untraced "$BG_PID"
	no_tracker "$BG_PID"
	state_is "$BG_PID" S R
	run ckpt-inspect "$IMG"
	echo "$output" | grep '^live:'
	[[ $output == *"live:     a live stream (ckpt-dump --live): "*" pages copied while it ran, in "*" rounds; "*" taken from that pre-copy, in "*" runs"* ]]
	run ckpt-inspect --json "$IMG"
	[[ $output =~ \"live\":\{\"rounds\":[0-9]+,\"precopied_pages\":[0-9]+ ]]
	restore --allow-other-user "$IMG"
	[ "$status" -eq 0 ]
	moved_ok
	# Not a parent for an incremental dump: its pages are in the pre-copy.
	run --separate-stderr ckpt-dump --parent "$IMG" -o "$IMG.2" "$BG_PID"
	one_line 1 "is a live stream (ckpt-dump --live), which cannot be a parent" ckpt-dump
	# The first program still runs and still checks out.
	kill -USR1 "$BG_PID"
	wait_for_line "$OUT" '^gap [0-9][0-9]*$'
}

@test "--live --stop: the program is left stopped; the stream, from a pipe, runs it again intact" {
	started
	ckpt-dump --live --stop "$BG_PID" >"$IMG"
	wait_for state_is "$BG_PID" T
	no_tracker "$BG_PID"
	run --separate-stderr timeout 120 ckpt-remap --allow-other-user - <"$IMG"
	echo "status $status stderr: $stderr"
	[ "$status" -eq 0 ]
	moved_ok
}

@test "--live refuses a program that has a userfaultfd of its own, in one line; the program runs on untraced" {
	started uffd
	run --separate-stderr ckpt-dump --live -o "$IMG" "$BG_PID"
	one_line 1 "pid $BG_PID: fd " ckpt-dump
	[[ $stderr == *"is a userfaultfd of its own: --live (write tracking) of such a program is not supported" ]]
	[ ! -e "$IMG" ]
	untraced "$BG_PID"
	state_is "$BG_PID" S R
}

@test "a live stream's image without its pre-copy, or with a pre-copied page damaged, is refused before anything runs" {
	local off
	started
	ckpt-dump --live --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	off=$(grep -obUa 'CKPTIMG' "$IMG" | head -1 | cut -d: -f1)
	[ "$off" -gt 8 ]
	tail -c +$((off + 1)) "$IMG" >"$IMG.cut"
	run --separate-stderr ckpt-remap --allow-other-user "$IMG.cut"
	one_line 99 "pre-copy that is not there" ckpt-remap
	# A byte half-way to the image: in the first round's page data.
	invert_byte "$IMG" $((off / 2))
	run --separate-stderr ckpt-remap --allow-other-user "$IMG"
	one_line 99 "live stream: PRECOPY record: " ckpt-remap
	[ "$(file_lines "$OUT")" -eq 1 ]
}
