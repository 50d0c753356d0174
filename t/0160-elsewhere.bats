#!/usr/bin/env bats
# Restarting somewhere else (ckpt-remap(1)): --setenv and --unsetenv change
# the restored program's environment (getenv and /proc/PID/environ), also
# through the restart script; --path-map finds its files, mapped files and
# cwd under another directory; an image written on a CPU with features
# this one lacks is refused by name before anything runs (--ignore-cpu
# goes on); --stop leaves the program stopped for a debugger; a program
# already traced is not dumped, and the refusal names the tracer.  The
# workload, t/progs/elsewhere, checks its own state after the restore.

bats_require_minimum_version 1.5.0
load lib

teardown() {
	coord_teardown
}

# env_killed MODE: t/progs/elsewhere MODE with ELSE_KEEP, ELSE_GONE and
# ELSE_CHANGE set, in $W (its go file there), dumped with --kill into $IMG;
# its output in $W/out.
env_killed() {
	W=$BATS_TEST_TMPDIR/w
	IMG=$BATS_TEST_TMPDIR/env.img
	mkdir -p "$W"
	cd "$W"
	rm -f "$BATS_TEST_TMPDIR/bg.out" go
	start_bg env ELSE_KEEP=keep ELSE_GONE=gone ELSE_CHANGE=before elsewhere "$1"
	wait_for_line "$BATS_TEST_TMPDIR/bg.out" '^ready '
	bg_dump_kill
	touch "$W/go"
}

# ran_intact: the last restore ran the program (its output in bg.out) to
# a clean exit, every check held.
ran_intact() {
	cat "$BATS_TEST_TMPDIR/bg.out"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "$(tail -n 1 "$BATS_TEST_TMPDIR/bg.out")" = "restored: yes" ]
	not grep -q FAIL "$BATS_TEST_TMPDIR/bg.out"
}

ENV_OPTS=(--setenv ELSE_CHANGE=after --unsetenv ELSE_GONE --setenv "ELSE_NEW=a new value")

@test "--setenv, --unsetenv: getenv and /proc/PID/environ say the new environment" {
	local mode
	for mode in env envheap; do
		env_killed "$mode"
		restore "${ENV_OPTS[@]}" "$IMG"
		ran_intact
	done
}

@test "--setenv in a tree: the child of a shell sees the new environment (--pid-ns)" {
	W=$BATS_TEST_TMPDIR/w
	IMG=$BATS_TEST_TMPDIR/tree.img
	mkdir -p "$W"
	cd "$W"
	start_bg env ELSE_KEEP=keep ELSE_GONE=gone ELSE_CHANGE=before \
		bash -c 'elsewhere env; echo "child $?"'
	wait_for_line "$BATS_TEST_TMPDIR/bg.out" '^ready '
	bg_dump_kill -t
	touch go
	restore --pid-ns "${ENV_OPTS[@]}" "$IMG"
	cat "$BATS_TEST_TMPDIR/bg.out"
	[ "$status" -eq 0 ]
	grep -qx 'restored: yes' "$BATS_TEST_TMPDIR/bg.out"
	grep -qx 'child 0' "$BATS_TEST_TMPDIR/bg.out"
}

@test "--setenv for a program with no environ symbol (static, stripped) is refused by name" {
	local src=$BATS_TEST_TMPDIR/st.c
	printf '#include <unistd.h>\nint main(void) { for (;;) pause(); }\n' >"$src"
	cc -static -s -o "$BATS_TEST_TMPDIR/st" "$src" 2>/dev/null || skip "no static libc"
	IMG=$BATS_TEST_TMPDIR/st.img
	start_bg "$BATS_TEST_TMPDIR/st"
	wait_for comm_is "$BG_PID" st
	bg_dump_kill
	restore --setenv A=B "$IMG"
	one_line 99 "--setenv, --unsetenv: no environ variable in its executable or libraries" ckpt-remap
}

@test "without them the program sees its old environment (its checks fail)" {
	env_killed env
	restore "$IMG"
	[ "$status" -eq 1 ]
	grep -q "FAIL: getenv(ELSE_NEW)" "$BATS_TEST_TMPDIR/bg.out"
}

@test "--setenv without =, --unsetenv with =, --path-map of relative paths: usage errors" {
	run --separate-stderr ckpt-remap --setenv NAME /nonexistent
	one_line 99 "--setenv takes NAME=VALUE: NAME" ckpt-remap
	run --separate-stderr ckpt-remap --unsetenv A=B /nonexistent
	one_line 99 "--unsetenv takes NAME, without =: A=B" ckpt-remap
	run --separate-stderr ckpt-remap --path-map a=/b /nonexistent
	one_line 99 "--path-map takes OLD=NEW, two absolute paths: a=/b" ckpt-remap
}

@test "the restart script passes --setenv and --unsetenv to each ckpt-remap" {
	local dir
	start_coord --no-gzip
	mkdir -p "$BATS_TEST_TMPDIR/w"
	cd "$BATS_TEST_TMPDIR/w"
	inject a env ELSE_KEEP=keep ELSE_GONE=gone ELSE_CHANGE=before elsewhere envheap
	wait_for has_members 1
	wait_for_line "$BATS_TEST_TMPDIR/a.out" '^ready '
	run ckpt-signal --checkpoint --wait
	[ "$status" -eq 0 ]
	dir=$output
	kill -KILL "$INJ_PID"
	reap "$INJ_PID"
	touch go
	run "$dir/ckpt_restart_script.sh" --coord-port 0 "${ENV_OPTS[@]}"
	echo "$output"
	cat "$BATS_TEST_TMPDIR/a.out"
	[ "$status" -eq 0 ]
	[ "$(tail -n 1 "$BATS_TEST_TMPDIR/a.out")" = "restored: yes" ]
	not grep -q FAIL "$BATS_TEST_TMPDIR/a.out"
	grep -q -- '--setenv | --unsetenv | --path-map' "$dir/ckpt_restart_script.sh"
}

# moved_files: t/progs/elsewhere files in $T/old (data.txt open, map.bin
# mapped, its cwd), dumped with --kill into $IMG, then the directory copied
# to $T/new (cp -a: new inodes, the same sizes and mtimes) and removed.
moved_files() {
	T=$BATS_TEST_TMPDIR/t
	IMG=$BATS_TEST_TMPDIR/files.img
	mkdir -p "$T/old"
	printf 0123456789 >"$T/old/data.txt"
	head -c 4096 /dev/zero | tr '\0' m >"$T/old/map.bin"
	cd "$T/old"
	start_bg elsewhere files "$T/new"
	wait_for_line "$BATS_TEST_TMPDIR/bg.out" '^ready '
	cd "$BATS_TEST_TMPDIR"
	bg_dump_kill
	cp -a "$T/old" "$T/new"
	rm -rf "$T/old"
	touch "$T/new/go"
}

@test "--path-map: the file, the mapped file and the cwd moved to another directory" {
	moved_files
	restore --path-map "$T/old=$T/new" "$IMG"
	ran_intact
}

@test "without --path-map the moved directory is refused; a file changed under NEW too" {
	moved_files
	restore "$IMG"
	one_line 99 "$T/old" ckpt-remap
	printf x >>"$T/new/data.txt"
	restore --path-map "$T/old/=$T/new/" "$IMG"
	one_line 99 "$T/new/data.txt changed since the checkpoint (size 11, was 10" ckpt-remap
}

# cpu_forged: an image of elsewhere wait in $IMG, and in $BATS_TEST_TMPDIR/cpu.img
# a copy whose CPU record claims two features this CPU lacks (their names
# in $LACKS).
cpu_forged() {
	local bits
	env_killed wait
	bits=$(python3 - "$IMG" <<'EOF2'
import struct, sys
img = open(sys.argv[1], "rb").read()
off = 192
while off < len(img):
    t, _, n = struct.unpack_from("<IIQ", img, off)
    if t == 24:
        w = struct.unpack_from("<8I", img, off + 16)
        break
    off += 16 + n
cands = [(4, 24, "AMX-TILE"), (4, 25, "AMX-INT8"), (4, 2, "AVX-512_4VNNIW"),
         (4, 3, "AVX-512_4FMAPS"), (6, 11, "XOP"), (6, 16, "FMA4"), (6, 21, "TBM"),
         (4, 23, "AVX-512FP16"), (4, 8, "AVX-512VP2INTERSECT")]
lack = [c for c in cands if not w[c[0]] >> c[1] & 1][:2]
print(",".join("%d:%d" % c[:2] for c in lack), ", ".join(c[2] for c in lack))
EOF2
)
	cp "$IMG" "$BATS_TEST_TMPDIR/cpu.img"
	forge.py "$BATS_TEST_TMPDIR/cpu.img" cpu "${bits%% *}"
	LACKS=${bits#* }
}

@test "an image written on a CPU with features this one lacks is refused, naming them; --ignore-cpu restores it" {
	cpu_forged
	ckpt-inspect "$BATS_TEST_TMPDIR/cpu.img" | grep "features .*${LACKS%%,*}"
	restore "$BATS_TEST_TMPDIR/cpu.img"
	one_line 99 "this image was written on a CPU with $LACKS; this one lacks them; --ignore-cpu restores anyway" ckpt-remap
	[ -z "$output" ]
	restore --ignore-cpu "$BATS_TEST_TMPDIR/cpu.img"
	[ "$status" -eq 0 ]
	[[ $stderr == "ckpt-remap: warning: --ignore-cpu: this image was written on a CPU with $LACKS, which this one lacks;"*SIGILL* ]]
	[ "$(tail -n 1 "$BATS_TEST_TMPDIR/bg.out")" = "restored: yes" ]
	# --force, the old name, still does it (the output file grew meanwhile).
	restore --force --allow-changed-files "$BATS_TEST_TMPDIR/cpu.img"
	[ "$status" -eq 0 ]
}

@test "a CPU record with unknown flags is refused by the reader" {
	env_killed wait
	forge.py "$IMG" cpu 8:0
	run --separate-stderr ckpt-inspect "$IMG"
	one_line 1 "CPU record: unknown flags 0x1 or padding" ckpt-inspect
}

# stopped_remap: $IMG restored by ckpt-remap --stop in the background; its
# pid (from the one line it says) in $SPID, once stopped.
stopped_remap() {
	env_killed wait
	exec_clean ckpt-remap --stop "$IMG" </dev/null >"$BATS_TEST_TMPDIR/r.out" \
		2>"$BATS_TEST_TMPDIR/r.err" &
	RPID=$!
	CKPT_PIDS+=("$RPID")
	wait_for_line "$BATS_TEST_TMPDIR/r.err" 'stopped before its first instruction'
	SPID=$(sed -n 's/^ckpt-remap: pid \([0-9]*\) stopped before its first instruction (gdb -p [0-9]*, or kill -CONT [0-9]*)$/\1/p' "$BATS_TEST_TMPDIR/r.err")
	[ -n "$SPID" ]
	wait_for state_is "$SPID" T
	CKPT_PIDS+=("$SPID")
}

@test "--stop: the program waits stopped until SIGCONT, then runs on intact" {
	stopped_remap
	not grep -q restored "$BATS_TEST_TMPDIR/bg.out"
	kill -CONT "$SPID"
	wait_exit "$RPID"
	[ "$(tail -n 1 "$BATS_TEST_TMPDIR/bg.out")" = "restored: yes" ]
}

@test "--stop: gdb attaches to the stopped program, and it runs on after" {
	command -v gdb >/dev/null || skip "no gdb"
	stopped_remap
	run timeout 60 gdb -nx -p "$SPID" -batch -ex 'print $pc' -ex detach
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *'$1 = '* ]]
	kill -CONT "$SPID"
	wait_exit "$RPID"
	[ "$(tail -n 1 "$BATS_TEST_TMPDIR/bg.out")" = "restored: yes" ]
}

@test "ckpt-dump of a program being traced refuses, naming the tracer" {
	local tracee
	command -v strace >/dev/null || skip "no strace"
	W=$BATS_TEST_TMPDIR/w
	mkdir -p "$W"
	cd "$W"
	start_bg strace -o /dev/null elsewhere wait
	wait_for_line "$BATS_TEST_TMPDIR/bg.out" '^ready '
	tracee=$(sed -n 's/^ready //p' "$BATS_TEST_TMPDIR/bg.out")
	run --separate-stderr ckpt-dump -o "$BATS_TEST_TMPDIR/t.img" "$tracee"
	one_line 1 "pid $tracee: not permitted to trace: it is already traced by pid $BG_PID (strace)" ckpt-dump
	touch go
	wait_exit "$BG_PID"
}
