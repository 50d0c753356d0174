#!/usr/bin/env bats
# Write tracking (ckpt-dump --track): a userfaultfd in asynchronous
# write-protect mode left in the program tells the next ckpt-dump --parent
# which pages were written, so it reads only those.  Every way a page gets
# written must be seen, or the restore brings back a stale page, which
# the program's check finds.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir track
	FULL=$BATS_TEST_TMPDIR/full.img
}

# started [close]: the tracked workload, running, in $BG_PID.
started() {
	start_bg tracked "$D" "$@"
	wait_for_line "$OUT" "^ready $BG_PID\$"
}

# step N: the workload takes its step N.
step() {
	touch "$D/change.$1"
	wait_for_line "$OUT" "^changed $1\$"
}

# how IMG: how the dump of IMG found the changed pages (ckpt-inspect).
how() {
	ckpt-inspect --json "$1" | grep -o '"tracking":{"how":"[a-z]*"' | cut -d'"' -f6
}

# intact IMG STEPS: ckpt-remap IMG brings back the program as it was after
# STEPS steps, every page checked.
intact() {
	touch "$D/go"
	: >"$OUT"
	restore --allow-changed-files "$1"
	cat "$BATS_TEST_TMPDIR/bg.err" "$OUT"
	[ "$status" -eq 0 ]
	grep -qx "tracked: ok, $2 steps, restored: yes" "$OUT"
}

@test "--track: heap, stack, anon (pages dropped and read again too), read(2), another thread, a new region and writes after a fork, each dump reading only what was written" {
	started
	ckpt-dump --track -o "$FULL" "$BG_PID"
	[ "$(how "$FULL")" = full ]
	step 1
	ckpt-dump --parent "$FULL" -o "$IMG.1" "$BG_PID"
	step 2
	ckpt-dump --parent "$IMG.1" -o "$IMG.2" "$BG_PID"
	step 3
	ckpt-dump --kill --parent "$IMG.2" -o "$IMG.3" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	for i in 1 2 3; do
		ckpt-inspect "$IMG.$i" | grep tracking
		[ "$(how "$IMG.$i")" = written ]
	done
	# Far fewer pages read than the program has: written ones only.
	ckpt-inspect --json "$IMG.2" | grep -o '"written_pages":[0-9]*'
	written=$(ckpt-inspect --json "$IMG.2" | grep -o '"written_pages":[0-9]*' | cut -d: -f2)
	[ "$written" -gt 50 ] && [ "$written" -lt 300 ]
	for i in 1 2 3; do
		intact "$IMG.$i" "$i"
	done
}

@test "--track: a program that closed its tracker is dumped by hashing, said on stderr and in the image" {
	started close
	ckpt-dump --track -o "$FULL" "$BG_PID"
	step 1
	run --separate-stderr ckpt-dump --kill --parent "$FULL" -o "$IMG" "$BG_PID"
	echo "$stderr"
	[ "$status" -eq 0 ]
	wait "$BG_PID" || true
	CKPT_PIDS=()
	[[ $stderr == *"the write tracker its last dump left at fd "*" is gone: pages compared by their hashes"* ]]
	[ "$(how "$IMG")" = hashed ]
	intact "$IMG" 1
}

@test "--track: a dump against an older image than the last one hashes (the tracker has moved on)" {
	started
	ckpt-dump --track -o "$FULL" "$BG_PID"
	step 1
	ckpt-dump --parent "$FULL" -o "$IMG.1" "$BG_PID"
	[ "$(how "$IMG.1")" = written ]
	step 2
	ckpt-dump --kill --parent "$FULL" -o "$IMG.2" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	[ "$(how "$IMG.2")" = hashed ]
	intact "$IMG.2" 2
}

# Without privilege, a program with seccomp filters is refused anyway.
# bats test_tags=root
@test "--track: a program with seccomp filters gets no tracker (no system call injected into it), said on stderr" {
	start_bg attrs seccomp "$D"
	wait_for_line "$OUT" "^ready $BG_PID\$"
	run --separate-stderr ckpt-dump --track -o "$FULL" "$BG_PID"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ $stderr == *"pid $BG_PID: it has seccomp filters: no write tracker armed or read"* ]]
	[ "$(how "$FULL")" = full ]
	[ "$(ckpt-inspect --json "$FULL" | grep -o '"tracking":{[^}]*}' | grep -o '"fd":-1')" = '"fd":-1' ]
	for f in "/proc/$BG_PID/fd/"*; do
		[ "$(readlink "$f")" != "anon_inode:[userfaultfd]" ]
	done
	finish_bg
}

# written IMG: the pages the tracker reported written to IMG's dump.
written() {
	ckpt-inspect --json "$1" | grep -o '"written_pages":[0-9]*' | cut -d: -f2
}

# hot STEP KIND: hotrun takes its step STEP (all, half or none).
hot() {
	touch "$D/$2.$1"
	wait_for_line "$OUT" "^step $1\$"
}

@test "--track: the runs an incremental dump stored stay unprotected, are read at the next dump whether written or not, and protected again if they did not change" {
	start_bg hotrun "$D"
	wait_for_line "$OUT" "^ready $BG_PID\$"
	ckpt-dump --track -o "$FULL" "$BG_PID"
	hot 1 all
	ckpt-dump --parent "$FULL" -o "$IMG.1" "$BG_PID"
	[ "$(written "$IMG.1")" -ge 256 ]
	# Nothing written since: the 256 pages stored are read again (no
	# protection, no fault on a write), and left out, being the same.
	hot 2 none
	ckpt-dump --parent "$IMG.1" -o "$IMG.2" "$BG_PID"
	echo "written: $(written "$IMG.1") $(written "$IMG.2")"
	[ "$(written "$IMG.2")" -ge 256 ]
	[ "$(stat -c %s "$IMG.2")" -lt $((256 * 4096 / 2)) ]
	# Unchanged at that dump: protected again, not read.
	hot 3 none
	ckpt-dump --parent "$IMG.2" -o "$IMG.3" "$BG_PID"
	echo "written: $(written "$IMG.3")"
	[ "$(written "$IMG.3")" -lt 64 ]
	# Half rewritten (protected again): each page seen.
	hot 4 half
	ckpt-dump --kill --parent "$IMG.3" -o "$IMG.4" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	echo "written: $(written "$IMG.4")"
	[ "$(written "$IMG.4")" -ge 128 ] && [ "$(written "$IMG.4")" -lt 192 ]
	touch "$D/go"
	for n in 1 2 3 4; do
		: >"$OUT"
		restore --allow-changed-files "$IMG.$n"
		cat "$BATS_TEST_TMPDIR/bg.err" "$OUT"
		[ "$status" -eq 0 ]
		# Its stdout goes on at the offset of the checkpoint, past
		# the truncation: zeros before the line.
		out=$(tr -d '\000' <"$OUT")
		echo "step $n: $out"
		[ "$out" = "hotrun: ok, $n steps, restored: yes" ]
	done
}
