#!/usr/bin/env bats
# ckpt-dump and ckpt-remap: a process dumped and restored finds its memory,
# files, signals and registers intact (t/progs/workload checks them all and
# says whether its pid changed), whatever way the image travels.

bats_require_minimum_version 1.5.0
load lib

setup() {
	d=$BATS_TEST_TMPDIR/w
	mkdir "$d"
}

# start_workload [OPTION...]: t/progs/workload on $d, output in $d.out; waits
# for "ready" and sets $pid.
start_workload() {
	spawn_ready "$d.out" workload "$@" "$d"
	[ "$(sed -n 's/^ready //p' "$d.out")" = "$pid" ]
}

@test "dump --kill then restore: the workload's state is intact and its pid changed" {
	start_workload
	dump_killed
	touch "$d/go"
	restore "$d.img"
	intact_and_restored
	# Its last words went to the log it had open with O_APPEND.
	[ "$(grep -c '^exit of pid' "$d/log")" -eq 1 ]
}

@test "the same image restores twice, both runs intact" {
	start_workload
	dump_killed
	touch "$d/go"
	restore "$d.img"
	intact_and_restored
	# The first run wrote to the files it had open: one warning each.
	restore --allow-changed-files "$d.img"
	[ "$status" -eq 0 ]
	[ "$output" = "restored: yes" ]
	[[ "$stderr" == *"/log changed since the checkpoint ("*"); going on"* ]]
	[ -z "$(grep -v '^ckpt-remap: fd [0-9]*: .* changed since the checkpoint (.*); going on$' <<<"$stderr")" ]
	[ "$(grep -c '^exit of pid' "$d/log")" -eq 2 ]
}

@test "a mapped file whose mtime alone changed: refused in one line naming its mtime now and then" {
	local sec ns was
	start_workload
	dump_killed
	touch "$d/go"
	sec=$(stat -c %Y "$d/mapped")
	ns=$(stat -c %y "$d/mapped" | sed 's/^[^.]*\.\([0-9]*\) .*/\1/')
	was=$(date -u -d "@$sec" '+%F %T UTC')
	# The same size, another second: shown to the second.
	touch -d '2001-02-03 04:05:06 UTC' "$d/mapped"
	restore "$d.img"
	[ "$status" -eq 99 ]
	[ -z "$output" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" =~ ^ckpt-remap:\ $d/mapped,\ mapped\ at\ 0x[0-9a-f]+,\ changed\ since\ the\ checkpoint\ \(mtime\ 2001-02-03\ 04:05:06\ UTC,\ was\ $was\)$ ]]
	# The same second, another nanosecond: shown to the nanosecond.
	[ "$ns" != 000000000 ]
	touch -d "@$sec" "$d/mapped"
	restore "$d.img"
	[ "$status" -eq 99 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == *"/mapped, mapped at 0x"*", changed since the checkpoint (mtime ${was% UTC}.000000000 UTC, was ${was% UTC}.$ns UTC)" ]]
	# Put back as it was, the file lets the restore through.
	touch -d "@$sec.$ns" "$d/mapped"
	restore "$d.img"
	intact_and_restored
}

@test "ckpt-dump --kill PID | ckpt-remap - restores through a pipe" {
	start_workload
	# shellcheck disable=SC2016
	spawn "$d.restored" bash -c 'set -o pipefail; ckpt-dump --kill "$1" | ckpt-remap --allow-other-user -' _ "$pid"
	# The original dies once the whole image is written.
	reap "$pid" "$cat_pid"
	[ "$status" -eq 137 ]
	touch "$d/go"
	reap "$SPAWN_PID" "$SPAWN_CAT"
	cat "$d.restored"
	[ "$status" -eq 0 ]
	[ "$(cat "$d.restored")" = "restored: yes" ]
}

@test "ckpt-dump gives the pipe it writes 1 MiB (a 64 KiB pipe costs a switch per 64 KiB)" {
	start_workload
	# F_GETPIPE_SZ (1032) of the same pipe, once the whole image is read.
	# shellcheck disable=SC2016
	run bash -c 'set -o pipefail; ckpt-dump "$1" | { cat >/dev/null &&
		python3 -c "import fcntl; print(fcntl.fcntl(0, 1032))"; }' _ "$pid"
	[ "$status" -eq 0 ]
	[ "$output" = "$(grown_pipe)" ]
}

# restore_compressed CMD...: dump the workload, compress the image with CMD
# (a filter), and restore the compressed image.
restore_compressed() {
	start_workload
	dump_killed
	"$@" <"$d.img" >"$d.img.z"
	[ "$(head -c 8 "$d.img.z")" != "CKPTIMG" ]
	touch "$d/go"
	restore "$d.img.z"
	intact_and_restored
}

@test "an image compressed by ckpt-gzip restores intact" {
	restore_compressed ckpt-gzip
}

@test "an image compressed by ckpt-gzip --xz restores intact" {
	restore_compressed ckpt-gzip --xz
}

@test "ckpt-gzip --zstd: zstd -d and ckpt-gzip -d give back the image, -T 1 and -T 2 alike; it restores intact" {
	local t
	start_workload
	dump_killed
	for t in 1 2; do
		ckpt-gzip --zstd -T "$t" <"$d.img" >"$d.img.$t.zst"
		[ "$(head -c 4 "$d.img.$t.zst" | od -An -tx1)" = " 28 b5 2f fd" ]
		zstd -q -d -c "$d.img.$t.zst" | cmp - "$d.img"
		ckpt-gzip -d <"$d.img.$t.zst" | cmp - "$d.img"
		ckpt-inspect "$d.img.$t.zst" >/dev/null
	done
	touch "$d/go"
	restore "$d.img.2.zst"
	intact_and_restored
}

@test "an image compressed by gzip -c restores intact" {
	restore_compressed gzip -c
}

@test "an image compressed by xz -c restores intact" {
	restore_compressed xz -c
}

@test "an image compressed by zstd -c restores intact" {
	restore_compressed zstd -c
}

@test "after a default dump the target runs on and finishes intact, not restored" {
	start_workload
	ckpt-dump -o "$d.img" "$pid"
	kill -0 "$pid"
	[ "$(stat_field "$pid" 3)" != T ]
	touch "$d/go"
	reap "$pid" "$cat_pid"
	cat "$d.out"
	[ "$status" -eq 0 ]
	grep -qx 'restored: no' "$d.out"
	[ -s "$d.img" ]
}

@test "--kill: the target is dead of SIGKILL when ckpt-dump returns" {
	start_workload
	ckpt-dump --kill -o "$d.img" "$pid"
	# Dead: at most a zombie left for its parent, this shell, to reap.
	if [ -e "/proc/$pid" ]; then
		state_is "$pid" Z
	fi
	reap "$pid" "$cat_pid"
	[ "$status" -eq 137 ]
	[ ! -e "/proc/$pid" ]
}

@test "--stop: the target is left stopped and finishes intact after SIGCONT" {
	start_workload
	ckpt-dump --stop -o "$d.img" "$pid"
	wait_for state_is "$pid" T
	kill -CONT "$pid"
	touch "$d/go"
	reap "$pid" "$cat_pid"
	cat "$d.out"
	[ "$status" -eq 0 ]
	grep -qx 'restored: no' "$d.out"
}

@test "-o FILE writes a mode 0600 image and leaves no temporary file" {
	mkdir "$d.dir"
	start_workload
	umask 022
	ckpt-dump -o "$d.dir/w.img" "$pid"
	[ "$(stat -c %a "$d.dir/w.img")" = 600 ]
	[ "$(head -c 8 "$d.dir/w.img")" = CKPTIMG ]
	[ "$(ls -A "$d.dir")" = w.img ]
	touch "$d/go"
	reap "$pid" "$cat_pid"
	[ "$status" -eq 0 ]
}

@test "ckpt-dump refuses to write an image to a terminal and leaves the target alone" {
	command -v script >/dev/null || skip "no script(1) to give a terminal"
	spawn "$d.out" sleep 1000
	wait_for comm_is "$SPAWN_PID" sleep
	# script(1) runs ckpt-dump on a pseudo-terminal through $SHELL.
	run env SHELL=/bin/bash script -qec "$TOP/bin/ckpt-dump $SPAWN_PID" /dev/null
	echo "$output"
	no_core
	[ "$status" -eq 1 ]
	[[ $output == *ckpt-dump:*terminal* ]]
	state_is "$SPAWN_PID" S
}

# vecregs_round_trip [LEVEL]: t/progs/vecregs dumped inside its spin loop,
# restored, told to stop spinning: its registers must be as it loaded them.
vecregs_round_trip() {
	local rpid
	spawn "$d.out" vecregs "$@"
	pid=$SPAWN_PID
	wait_for_line "$d.out" '^ready '
	# It loads its registers after printing "ready", then spins.
	wait_spinning "$pid"
	ckpt-dump --kill -o "$d.img" "$pid"
	reap "$pid" "$SPAWN_CAT"
	[ "$status" -eq 137 ]
	# --new-pids: ckpt-remap becomes the program, so its pid is the one to signal.
	spawn "$d.restored" ckpt-remap --new-pids "$d.img"
	rpid=$SPAWN_PID
	# Its name is set at the end of the restore, signals still blocked: a
	# signal sent from then on reaches the program's handler.
	wait_for comm_is "$rpid" vecregs
	kill -USR1 "$rpid"
	reap "$rpid" "$SPAWN_CAT"
	cat "$d.restored"
	[ "$status" -eq 0 ]
	grep -q 'registers intact' "$d.restored"
}

@test "vector registers (the widest the CPU has) survive a dump in the middle of a loop" {
	vecregs_round_trip
}

@test "xmm and ymm registers survive a dump in the middle of a loop" {
	vecregs_round_trip sse
	grep -qw avx /proc/cpuinfo || skip "no AVX on this CPU"
	vecregs_round_trip avx
}

@test "sleep 1000 restored: same command line, sleeping, until killed" {
	local rpid
	spawn "$d.out" sleep 1000
	pid=$SPAWN_PID
	# Past the exec (the shell before it holds bats' fds), and asleep.
	wait_for comm_is "$pid" sleep
	wait_for state_is "$pid" S
	ckpt-dump --kill -o "$d.img" "$pid"
	reap "$pid"
	[ "$status" -eq 137 ]
	spawn "$d.restored" ckpt-remap --new-pids "$d.img"
	rpid=$SPAWN_PID
	wait_for comm_is "$rpid" sleep
	printf 'sleep\0001000\000' >"$d.cmdline"
	cmp "$d.cmdline" "/proc/$rpid/cmdline"
	wait_for state_is "$rpid" S
	kill "$rpid"
	reap "$rpid"
	[ "$status" -eq 143 ]
}

@test "python3 with a 100 MB bytearray and a dict restores intact" {
	[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
	local prog='
import hashlib, os, random, sys, time
top = sys.argv[1]
buf = bytearray(random.Random(42).randbytes(100 << 20))
want = hashlib.sha256(buf).digest()
table = {str(i): i * i for i in range(200000)}
pid = os.getpid()
def started():  # field 22 of /proc/self/stat: a restored process is a new one
    return open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]
start = started()
# One write: with PYTHONUNBUFFERED, print() writes its parts one by one,
# and a dump between them would split the line across the restore.
sys.stdout.write("ready %d\n" % pid)
sys.stdout.flush()
while not os.path.exists(os.path.join(top, "go")):
    time.sleep(0.01)
ok = True
if hashlib.sha256(buf).digest() != want:
    print("python: bytearray differs", file=sys.stderr)
    ok = False
if len(table) != 200000 or any(table[str(i)] != i * i for i in range(200000)):
    print("python: dict differs", file=sys.stderr)
    ok = False
print("restored:", "yes" if started() != start else "no", flush=True)
sys.exit(0 if ok else 1)
'
	spawn "$d.out" /usr/bin/python3 -c "$prog" "$d"
	pid=$SPAWN_PID
	cat_pid=$SPAWN_CAT
	wait_for_line "$d.out" '^ready ' 60
	dump_killed
	touch "$d/go"
	restore "$d.img"
	intact_and_restored
}

@test "a workload with a second thread restores intact and joins it" {
	start_workload --thread
	dump_killed
	touch "$d/go"
	restore "$d.img"
	intact_and_restored
}

@test "a pipe on fd 5 whose write end no process holds: dumped; restored intact, one line names fd 5" {
	start_workload --pipe-fd 5
	dump_killed
	run ckpt-inspect "$d.img"
	[[ "$output" == *"fd 5   pipe "*" read end queued 0 "*" other end outside "* ]]
	touch "$d/go"
	restore "$d.img"
	[ "$status" -eq 0 ]
	[ "$output" = "restored: yes" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "ckpt-remap: fd 5 was the read end of a pipe "* ]]
}

@test "a process holding an fd ckpt-dump cannot capture (a pipe open read-write on fd 5) is refused, naming fd 5, and runs on" {
	anon_pipe
	KEEP_FDS=5 start_workload 5<>"/proc/$BASHPID/fd/$PIPE_R"
	exec {PIPE_R}<&- {PIPE_W}>&-
	run --separate-stderr ckpt-dump -o "$d.img" "$pid"
	one_line 1 "fd 5 " ckpt-dump
	[ ! -e "$d.img" ]
	[ "$(ls -A "$(dirname "$d.img")" | grep -c '\.img\.')" -eq 0 ]
	touch "$d/go"
	reap "$pid" "$cat_pid"
	cat "$d.out"
	[ "$status" -eq 0 ]
	grep -qx 'restored: no' "$d.out"
}

@test "a process flooded with signals is seized every time: 200 dumps, none waits for ever" {
	local w=$BATS_TEST_TMPDIR/flood i
	mkdir "$w"
	start_bg sigflood "$w"
	wait_for_line "$BATS_TEST_TMPDIR/bg.out" '^ready '
	# A signal-delivery-stop took the dump's interrupt with it: the dump
	# waited on, for ever once the signals kept coming.
	for ((i = 0; i < 200; i++)); do
		run timeout -k 2 10 ckpt-dump -o "$w.img" "$BG_PID"
		[ "$status" -eq 0 ] || {
			echo "dump $i: status $status: $output"
			false
		}
	done
	touch "$w/go"
	reap "$BG_PID"
	cat "$BATS_TEST_TMPDIR/bg.out"
	[ "$status" -eq 0 ]
}
