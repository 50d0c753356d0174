#!/usr/bin/env bats
# Trust: images are private (0600), ckpt-dump's and ckpt-gzip's; ckpt-dump
# says why it may not trace a process; root restores another user's image
# only when told to.

bats_require_minimum_version 1.5.0
load lib

setup() {
	shared_dir
}

teardown() {
	kill_started
	rm -rf "$shared"
}

# refused STATUS TEXT: one_line STATUS TEXT, and no word of Yama where
# there is none: its rules are not to be blamed.
refused() {
	one_line "$1" "$2"
	[ -e /proc/sys/kernel/yama ] || [[ $stderr != *Yama* ]]
}

@test "-o FILE is written 0600 whatever the umask" {
	start_bulk_as "$shared/w"
	run --separate-stderr bash -c 'umask 000; ckpt-dump -o "$1" "$2"' _ "$shared/x.img" "$pid"
	[ "$status" -eq 0 ]
	[ "$(stat -c %a "$shared/x.img")" = 600 ]
	untraced "$pid"
	runs_on "$shared/w"
}

@test "> FILE: ckpt-dump takes the permissions for others away from its standard output" {
	start_bulk_as "$shared/w"
	run --separate-stderr bash -c 'umask 022; ckpt-dump "$2" >"$1"' _ "$shared/x.img" "$pid"
	[ "$status" -eq 0 ]
	[ "$(stat -c %a "$shared/x.img")" = 600 ]
	# Even a file that was there, group-writable: its owner's bits stay.
	install -m 0664 /dev/null "$shared/y.img"
	run --separate-stderr bash -c 'ckpt-dump "$2" >>"$1"' _ "$shared/y.img" "$pid"
	[ "$status" -eq 0 ]
	[ "$(stat -c %a "$shared/y.img")" = 600 ]
	ckpt-inspect --verify "$shared/y.img"
	untraced "$pid"
	runs_on "$shared/w"
}

# bats test_tags=root
@test "ckpt-dump of another user's process: refused, naming its uid, and it runs on" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run processes as two users"
	start_bulk_as "$shared/w"
	run --separate-stderr "${AS_OTHER[@]}" ckpt-dump -o "$shared/x.img" "$pid"
	refused 1 "pid $pid: not permitted to trace: it belongs to uid 0 and ckpt-dump runs as uid $(id -u "$OTHER"), without CAP_SYS_PTRACE"
	[ ! -e "$shared/x.img" ]
	[ -z "$(find "$shared" -name '.x.img*')" ]
	untraced "$pid"
	runs_on "$shared/w"
}

@test "ckpt-dump of a process that is not dumpable: refused, saying so, and it runs on" {
	local ctl=()
	# Root may trace anything: as root, the user is $OTHER on both sides.
	[ "$(id -u)" -ne 0 ] || ctl=("${AS_OTHER[@]}")
	mkdir -m 1777 "$shared/w"
	spawn_ready "$shared/w.out" "${ctl[@]}" workload --undumpable "$shared/w"
	run --separate-stderr "${ctl[@]}" ckpt-dump -o "$shared/x.img" "$pid"
	refused 1 "pid $pid: not permitted to trace: it is not dumpable"
	[ ! -e "$shared/x.img" ]
	touch "$shared/w/go"
	reap "$pid" "$cat_pid"
	[ "$status" -eq 0 ]
}

@test "ckpt-dump of a process another tracer holds: refused, naming the tracer, and it runs on" {
	local tracer
	start_bulk_as "$shared/w"
	# shellcheck disable=SC2016
	spawn "$shared/tracer.out" python3 -c '
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_SEIZE = 0x4206
ok = libc.ptrace(PTRACE_SEIZE, int(sys.argv[1]), None, None) == 0
print("tracing" if ok else "seize failed: errno %d" % ctypes.get_errno(), flush=True)
time.sleep(1000)
' "$pid"
	tracer=$SPAWN_PID
	wait_for_line "$shared/tracer.out" 'tracing\|failed'
	grep -qx tracing "$shared/tracer.out"
	run --separate-stderr ckpt-dump -o "$shared/x.img" "$pid"
	refused 1 "pid $pid: not permitted to trace: it is already traced by pid $tracer (python3)"
	[ ! -e "$shared/x.img" ]
	# Its tracer gone (SEIZE stops nothing), it runs on.
	kill -KILL "$tracer"
	reap "$tracer" "$SPAWN_CAT"
	wait_for untraced "$pid"
	runs_on "$shared/w"
}

# dump_other_killed: a bulk process of $OTHER, dumped by root with --kill
# into $shared/other.img (root's file), its go file there.
dump_other_killed() {
	start_bulk_as "$shared/o" "${AS_OTHER[@]}"
	ckpt-dump --kill -o "$shared/other.img" "$pid"
	reap "$pid" "$cat_pid"
	[ "$status" -eq 137 ]
	touch "$shared/o/go"
}

# bats test_tags=root
@test "root restoring an image of another user's process: refused before anything runs, unless --allow-other-user" {
	[ "$(id -u)" -eq 0 ] || skip "only root is asked"
	dump_other_killed
	restore "$shared/other.img"
	refused 99 "$shared/other.img: the process belonged to uid $(id -u "$OTHER"); restoring it as root would run it as root: refused without --allow-other-user"
	[ -z "$output" ]
	run --separate-stderr ckpt-remap - <"$shared/other.img"
	refused 99 "standard input: the process belonged to uid $(id -u "$OTHER")"
	[ -z "$output" ]
	restore --allow-other-user "$shared/other.img"
	intact_and_restored
}

# bats test_tags=root
@test "root restoring an image file another user owns: refused, unless --allow-other-user" {
	[ "$(id -u)" -eq 0 ] || skip "only root is asked"
	start_bulk_as "$shared/w"
	ckpt-dump --kill -o "$shared/x.img" "$pid"
	reap "$pid" "$cat_pid"
	touch "$shared/w/go"
	chown "$OTHER" "$shared/x.img"
	restore "$shared/x.img"
	refused 99 "$shared/x.img: the file belongs to uid $(id -u "$OTHER"), who could have written any code into it"
	[ -z "$output" ]
	restore --allow-other-user "$shared/x.img"
	intact_and_restored
}

@test "a user restoring an image of its own: no question asked" {
	start_bulk_as "$shared/w"
	ckpt-dump --kill -o "$shared/x.img" "$pid"
	reap "$pid" "$cat_pid"
	touch "$shared/w/go"
	restore "$shared/x.img"
	intact_and_restored
}

# ckpt-gzip writes images too: compressed (or, with -d, not).

# bats test_tags=root
@test "ckpt-gzip -o, --xz -o, --zstd -o and -d -o under umask 022 and 000: files another user cannot read" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to read as another user"
	local u opt f n=0
	seq 1 100000 >"$shared/in"
	chmod 0644 "$shared/in"
	for u in 022 000; do
		for opt in "" --xz --zstd; do
			n=$((n + 1))
			f=$shared/c$n
			# shellcheck disable=SC2086 # $opt: no option or one
			(umask "$u" && ckpt-gzip $opt -o "$f" <"$shared/in")
			(umask "$u" && ckpt-gzip -d -o "$f.d" <"$f")
			cmp "$f.d" "$shared/in"
			for f in "$f" "$f.d"; do
				[ "$(stat -c %a:%U "$f")" = 600:root ]
				run "${AS_OTHER[@]}" cat "$f"
				[ "$status" -ne 0 ]
				[[ $output == *"Permission denied"* ]]
			done
		done
	done
	# What the others may read, they do read: the check is not vacuous.
	run "${AS_OTHER[@]}" cat "$shared/in"
	[ "$status" -eq 0 ]
}

# bats test_tags=root
@test "a symbolic link another user planted at ckpt-gzip -o FILE is replaced, its target untouched" {
	[ "$(id -u)" -eq 0 ] || skip "needs root and another user"
	local mode ino
	echo "root's own" >"$shared/target"
	chmod 0644 "$shared/target"
	mode=$(stat -c %a:%U:%s "$shared/target")
	ino=$(stat -c %i "$shared/target")
	"${AS_OTHER[@]}" ln -s "$shared/target" "$shared/x.img.gz"
	[ "$(stat -c %U "$shared/x.img.gz")" = "$OTHER" ]
	seq 1 1000 | ckpt-gzip -o "$shared/x.img.gz"
	[ ! -L "$shared/x.img.gz" ]
	[ "$(stat -c %a:%U "$shared/x.img.gz")" = 600:root ]
	seq 1 1000 | cmp - <(gzip -d <"$shared/x.img.gz")
	[ "$(cat "$shared/target")" = "root's own" ]
	[ "$(stat -c %a:%U:%s "$shared/target")" = "$mode" ]
	[ "$(stat -c %i "$shared/target")" = "$ino" ]
	# -d as well.
	"${AS_OTHER[@]}" ln -s "$shared/target" "$shared/x.img"
	ckpt-gzip -d -o "$shared/x.img" <"$shared/x.img.gz"
	[ ! -L "$shared/x.img" ]
	[ "$(stat -c %a:%U "$shared/x.img")" = 600:root ]
	[ "$(cat "$shared/target")" = "root's own" ]
	[ -z "$(find "$shared" -name '.x.img*')" ]
}

# bats test_tags=root
@test "> FILE of another user's that ckpt-gzip cannot make private: refused in one line, as ckpt-dump does" {
	[ "$(id -u)" -eq 0 ] || skip "needs root and another user"
	install -m 0666 /dev/null "$shared/y.img.gz"
	run --separate-stderr "${AS_OTHER[@]}" bash -c 'echo secret | ckpt-gzip >>"$1"' _ "$shared/y.img.gz"
	refused 1 "standard output is a file others may read (mode 0666) and cannot be made private: Operation not permitted"
	[ ! -s "$shared/y.img.gz" ]
}
