#!/usr/bin/env bats
# Memory a checkpoint finds odd comes back, or is refused by name before
# anything is touched: guard pages (MADV_GUARD_INSTALL) skipped in the
# dump and installed again.  t/progs/memodd checks its own state after
# the restore.

load lib

bats_require_minimum_version 1.5.0

# started MODE: t/progs/memodd MODE DIR, ready.
started() {
	workdir memodd
	start_bg memodd "$1" "$D"
	wait_for_line "$OUT" '^ready '
}

# guards: skip unless this kernel has MADV_GUARD_INSTALL (6.13) for shared
# memory too and pagemap shows the pages (6.15).
guards() {
	memodd guard-probe || skip "no guard pages of every sort here, or pagemap does not show them"
}

@test "guard pages: skipped in the dump, listed by ckpt-inspect, installed again" {
	guards
	started guard
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -Ec '[[,]guard\]$' <<<"$output")" -eq 4 ]
	bg_restored "memodd: ok"
}

@test "guard pages: the dumped process runs on with them" {
	guards
	started guard
	ckpt-dump -o "$IMG" "$BG_PID"
	finish_bg
	grep -qx "memodd: ok" "$OUT"
}

@test "guard pages: a --cow dump and a --lazy restore keep them" {
	guards
	started guard
	ckpt-dump --cow -o "$IMG" "$BG_PID"
	kill_started
	bg_restored "memodd: ok" --lazy
}
