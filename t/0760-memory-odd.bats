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

HP=/proc/sys/vm/nr_hugepages
HPDIR=/sys/kernel/mm/hugepages/hugepages-$(awk '/^Hugepagesize:/ { print $2 }' /proc/meminfo)kB

teardown() {
	kill_started
	if [ -n "${HP_SAVED:-}" ]; then
		echo "$HP_SAVED" >"$HP"
	fi
}

# huge_free: free and unreserved huge pages of the default size.
huge_free() {
	echo $(($(cat "$HPDIR/free_hugepages") - $(cat "$HPDIR/resv_hugepages")))
}

# huge_pages N: N huge pages of the default size free, or skip.  Root adds
# them (given back in teardown); another user can only use what is free.
huge_pages() {
	local have
	have=$(huge_free)
	if [ "$have" -lt "$1" ] && [ "$(id -u)" -eq 0 ]; then
		HP_SAVED=${HP_SAVED:-$(cat "$HP")}
		echo $((HP_SAVED + $1 - have)) >"$HP"
		have=$(huge_free)
	fi
	[ "$have" -ge "$1" ] || skip "$1 huge pages are not free here"
}

two_ready() {
	[ "$(grep -c '^ready ' "$OUT")" -eq 2 ]
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

@test "hugetlbfs memory, private, shared and a memfd: made again of huge pages of the same size" {
	for mode in private shared memfd; do
		huge_pages 2
		started "hugetlb-$mode"
		bg_dump_kill
		run ckpt-inspect "$IMG"
		grep -Eq '^  [0-9a-f-]+ rw-[ps] (anon|shm) .*[[,]hugetlb[],]' <<<"$output"
		if [ "$mode" != private ]; then
			grep -Eq '^  (anon|memfd) .*huge pages of 2.0 MiB' <<<"$output"
		fi
		bg_restored "memodd: ok"
		rm -rf "$D" "$IMG"
	done
}

# bats test_tags=root
@test "hugetlbfs memory: refused by name before anything is made where too few huge pages are free" {
	[ "$(id -u)" -eq 0 ] || skip "only root sets nr_hugepages"
	huge_pages 2
	started hugetlb-private
	bg_dump_kill
	echo $(($(cat "$HP") - $(huge_free))) >"$HP"
	run --separate-stderr ckpt-remap "$IMG"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"region "*": hugetlbfs memory: 2 huge pages of 2.0 MiB needed, 0 free here ($HPDIR)"* ]]
}

@test "a memfd given to a child: one file again, shared by parent and child" {
	workdir memodd
	start_bg memodd memfd-child "$D"
	wait_for two_ready
	bg_dump_kill -t
	bg_restored "memodd: ok"
}

@test "a program started by fexecve from a memfd: restored with the memfd as its executable" {
	started fexecve
	bg_dump_kill
	run ckpt-inspect "$IMG"
	[[ "$output" == *"exe:      /memfd:memodd (deleted)"* ]]
	# Setting /proc/PID/exe takes CAP_CHECKPOINT_RESTORE: another user
	# has it in a user namespace of its own.
	if [ "$(id -u)" -eq 0 ]; then
		bg_restored "memodd: ok"
	else
		bg_restored "memodd: ok" --pid-ns
	fi
}

@test "a pty pair a process made and took as its controlling terminal, /dev/tty open on it: made again, its terminal again" {
	started pty
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 5   tty     "*" ctty pty "* ]]
	bg_restored "memodd: ok"
}

@test "the same in a tree: the session leader takes the new pty again, its child's /dev/tty is on it" {
	started pty-tree
	bg_dump_kill -t
	bg_restored "memodd: ok"
}
