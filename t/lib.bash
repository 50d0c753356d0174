# t/lib.bash: the one helper file every bats test loads (load lib).
# shellcheck shell=bash
# shellcheck disable=SC2154 # d, pid, cat_pid are set by the test file, output and stderr by bats run

TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
PATH="$TOP/bin:$TOP/t/progs:$PATH"
export TOP PATH
export CKPT_FAIL_RC=99

# Processes a test started; teardown kills what is still alive.
CKPT_PIDS=()

# exec_clean CMD...: exec CMD with no fd above 2 (bats' fd 3 and whatever
# the caller inherited are fds the tools would have to capture), but those
# listed in $KEEP_FDS (numbers, space-separated).
exec_clean() {
	local fd
	for fd in "/proc/$BASHPID/fd/"*; do
		fd=${fd##*/}
		[[ " ${KEEP_FDS:-} " == *" $fd "* ]] && continue
		[ "$fd" -gt 2 ] && eval "exec $fd>&-"
	done
	exec "$@"
}

# start_bg CMD...: run CMD in the background, stdin from /dev/null,
# stdout/stderr to files in the test's temp dir, no other fds; the pid is
# in $BG_PID.
start_bg() {
	exec_clean "$@" </dev/null >"$BATS_TEST_TMPDIR/bg.out" 2>"$BATS_TEST_TMPDIR/bg.err" &
	BG_PID=$!
	CKPT_PIDS+=("$BG_PID")
}

# wait_for [-t SECONDS] CMD...: wait until CMD succeeds, trying every 10 ms
# for SECONDS (20) of the clock at most (a slow CMD counts: the deadline is
# not a number of tries); then say what for and fail.
wait_for() {
	local t=20 end now
	if [ "$1" = -t ]; then
		t=$2
		shift 2
	fi
	now=${EPOCHREALTIME/./}
	end=$((now + t * 1000000))
	while :; do
		"$@" && return 0
		now=${EPOCHREALTIME/./}
		[ "$now" -lt "$end" ] || break
		sleep 0.01
	done
	echo "timed out after $t s waiting for: $*" >&2
	return 1
}

# wait_for_file FILE [TIMEOUT_S]: wait until FILE exists and is non-empty.
wait_for_file() {
	wait_for -t "${2:-20}" test -s "$1"
}

# wait_for_line FILE PATTERN [TIMEOUT_S]: wait until FILE has a line matching PATTERN.
wait_for_line() {
	wait_for -t "${3:-20}" grep -qs -- "$2" "$1"
}

# not CMD...: CMD fails (for wait_for, which takes a command, not "!").
not() {
	! "$@"
}

# wait_exit PID: wait for a background child and return its status.
wait_exit() {
	local rc=0
	wait "$1" || rc=$?
	return "$rc"
}

# anon_pipe: an anonymous pipe, its read end on fd $PIPE_R and its write
# end on fd $PIPE_W of this shell.  Reopening a pipe through /proc (as
# /dev/fd/N of a process substitution is) opens the same pipe, and O_RDWR
# does not wait for a partner.
anon_pipe() {
	local p
	exec {p}<> <(:)
	# shellcheck disable=SC2094 # one pipe: its two ends, on purpose
	exec {PIPE_R}<"/proc/$BASHPID/fd/$p" {PIPE_W}>"/proc/$BASHPID/fd/$p"
	exec {p}>&-
}

# spawn OUT CMD...: run CMD in the background with stdin on /dev/null, no fd
# above 2 (exec_clean), and stdout and stderr on a pipe (as a shell pipeline
# would give them: an anonymous one, which a restore takes from ckpt-remap's
# own; a named FIFO would be reopened by its path) that a cat copies to the
# file OUT.  Sets SPAWN_PID and SPAWN_CAT; teardown kills both.
spawn() {
	local out=$1
	shift
	anon_pipe
	exec_clean cat <&"$PIPE_R" >"$out" &
	SPAWN_CAT=$!
	CKPT_PIDS+=("$SPAWN_CAT")
	exec_clean "$@" </dev/null >&"$PIPE_W" 2>&1 &
	SPAWN_PID=$!
	CKPT_PIDS+=("$SPAWN_PID")
	exec {PIPE_R}<&- {PIPE_W}>&-
}

# spawn_ready OUT CMD...: spawn OUT CMD..., then wait for its "ready" line;
# sets $pid and $cat_pid.
spawn_ready() {
	spawn "$@"
	pid=$SPAWN_PID
	cat_pid=$SPAWN_CAT
	wait_for_line "$1" '^ready '
}

# start_bulk DIR [ARG...]: t/progs/bulk ARG... DIR (ARG... is 2, for 2 MiB,
# if none) with spawn_ready, its output in DIR.out; sets $pid and $cat_pid.
start_bulk() {
	local dir=$1
	shift
	[ $# -gt 0 ] || set -- 2
	mkdir -p "$dir"
	spawn_ready "$dir.out" bulk "$@" "$dir"
}

# bulk_killed DIR IMG [ARG...]: start_bulk DIR ARG..., dumped with --kill
# into IMG and reaped (its status in $status), with DIR/go made: a restore
# of IMG that goes through runs it to its end at once.
bulk_killed() {
	local dir=$1 img=$2
	shift 2
	start_bulk "$dir" "$@"
	ckpt-dump --kill -o "$img" "$pid"
	reap "$pid" "$cat_pid"
	touch "$dir/go"
}

# runs_on DIR: the program spawned on DIR ($pid, $cat_pid), left running,
# finishes intact once told to (DIR/go): status 0, and the last line of
# DIR.out says it was not restored.
runs_on() {
	touch "$1/go"
	reap "$pid" "$cat_pid"
	cat "$1.out"
	[ "$status" -eq 0 ]
	[ "$(tail -n 1 "$1.out")" = "restored: no" ]
}

# reap PID [CAT]: wait for PID, its exit status in $status, then for the cat
# copying its output so that the output file is complete.  Both leave
# CKPT_PIDS: teardown must not kill whatever process reuses their pids.
reap() {
	status=0
	wait "$1" || status=$?
	if [ -n "${2:-}" ]; then
		wait "$2" || true
	fi
	forget "$1" "${2:-}"
}

# forget PID...: the PIDs, gone, out of CKPT_PIDS; the others stay.
forget() {
	local p q keep=()
	for p in "${CKPT_PIDS[@]}"; do
		for q in "$@"; do
			[ "$p" != "$q" ] || continue 2
		done
		keep+=("$p")
	done
	CKPT_PIDS=("${keep[@]}")
}

# The round trip of a program started with spawn, its pid in $pid and its
# output's cat in $cat_pid, dumped into $d.img:
# dump_killed: ckpt-dump --kill the program into $d.img; it died of SIGKILL.
dump_killed() {
	ckpt-dump --kill -o "$d.img" "$pid"
	reap "$pid" "$cat_pid"
	[ "$status" -eq 137 ]
}

# restore [OPTION...] IMG: ckpt-remap in the foreground (timed out after 2 minutes).
restore() {
	run --separate-stderr timeout 120 ckpt-remap "$@"
	printf 'ckpt-remap status %s\nstdout:\n%s\nstderr:\n%s\n' "$status" "$output" "$stderr"
}

# intact_and_restored: the last restore ran the program to a clean exit.
intact_and_restored() {
	[ "$status" -eq 0 ]
	[ "$output" = "restored: yes" ]
	[ -z "$stderr" ]
}

# records IMG: "OFFSET TYPE LENGTH" of each record of the uncompressed
# image IMG after its 192-byte header (types: 1 PROC ... 5 DATA ends the
# metadata, 6 PAGES, 7 END; see ckpt-image(5)).
records() {
	local off=192 size type len
	size=$(stat -c %s "$1")
	while [ "$off" -lt "$size" ]; do
		type=$(od -An -t u4 -j "$off" -N 4 "$1")
		len=$(od -An -t u8 -j "$((off + 8))" -N 8 "$1")
		echo "$off $((type)) $((len))"
		off=$((off + 16 + len))
	done
}

# comm_is PID NAME: the process's command name is NAME.
comm_is() {
	[ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

# stat_field PID N: field N (1-based, as in proc(5)) of /proc/PID/stat.
stat_field() {
	local s f
	s=$(cat "/proc/$1/stat") || return 1
	read -ra f <<<"${s##*) }"
	echo "${f[$2 - 3]}"
}

# state_is PID STATE...: PID's state (R, S, T, t, Z ...) is one of STATE...
state_is() {
	local st
	st=$(stat_field "$1" 3) || return 1
	shift
	[[ " $* " == *" $st "* ]]
}

# utime_past PID TICKS: PID has run more than TICKS clock ticks in user mode.
utime_past() {
	[ "$(stat_field "$1" 14)" -gt "$2" ]
}

# wait_spinning PID: PID has used another 0.1 s of user CPU time since now
# (a program that spins once set up is in its loop).
wait_spinning() {
	local t0
	t0=$(stat_field "$1" 14)
	wait_for utime_past "$1" $((t0 + 10))
}

# file_lines FILE: how many lines FILE has (0 if none); at_least N FILE:
# it has N or more.
file_lines() {
	if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi
}
at_least() {
	[ "$(file_lines "$2")" -ge "$1" ]
}

# untraced PID: no process traces PID (TracerPid 0).
untraced() {
	[ "$(awk '/^TracerPid:/ {print $2}' "/proc/$1/status")" = 0 ]
}

# invert_byte FILE OFFSET: invert the byte at OFFSET of FILE (a write of a
# fixed byte would leave the file as it was where that byte already is).
invert_byte() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1")
	# shellcheck disable=SC2059
	printf "\\x$(printf %02x $((~b & 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# grown_pipe: the size, in bytes, of a pipe the tools grew: 1 MiB, or the
# default 64 KiB where an unprivileged process may not have more
# (/proc/sys/fs/pipe-max-size).
grown_pipe() {
	if [ "$(id -u)" -eq 0 ] || [ "$(cat /proc/sys/fs/pipe-max-size)" -ge 1048576 ]; then
		echo 1048576
	else
		echo 65536
	fi
}

# descendants PID: the pids of every process below PID, children first
# listed before theirs.
descendants() {
	local c t kids
	for t in /proc/"$1"/task/*/children; do
		[ -e "$t" ] || continue
		read -ra kids <"$t" || true
		for c in "${kids[@]}"; do
			echo "$c"
			descendants "$c"
		done
	done
}

# waits_in PID WCHAN: a thread of a process below PID (ckpt-dump's worker)
# waits in a kernel function matching WCHAN (pipe_write: writing to a
# full pipe).
waits_in() {
	local w
	for w in $(descendants "$1"); do
		cat "/proc/$w/task/"*/wchan 2>/dev/null | grep -q "$2" && return 0
	done
	return 1
}

kill_started() {
	local p d
	# A restored tree hangs below ckpt-remap: every process of it goes
	# (stopped first, so that none forks more meanwhile).
	for p in "${CKPT_PIDS[@]}"; do
		for d in $(descendants "$p"); do
			kill -STOP "$d" 2>/dev/null || true
		done
		for d in $(descendants "$p"); do
			kill -KILL "$d" 2>/dev/null || true
		done
	done
	for p in "${CKPT_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	for p in "${CKPT_PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	CKPT_PIDS=()
	# The POSIX shm object t/progs/memkinds made (named by its first pid):
	# it removes it itself once it has checked it, which a test that
	# only dumps it never lets it do.
	if [ -n "${BG_PID:-}" ] && [ -O "/dev/shm/ckpt-memkinds-$BG_PID" ]; then
		rm -f "/dev/shm/ckpt-memkinds-$BG_PID"
	fi
}

# workdir NAME: $D, a directory the program works in; $OUT, where
# start_bg puts its stdout; $IMG, an image path named after NAME (all three
# for the test that calls it).
# shellcheck disable=SC2034
workdir() {
	D=$BATS_TEST_TMPDIR/d
	mkdir "$D"
	OUT=$BATS_TEST_TMPDIR/bg.out
	IMG=$BATS_TEST_TMPDIR/$1.img
}

# bg_dump_kill [OPTION...]: ckpt-dump --kill -o $IMG of the program
# start_bg started (and with -t its tree), reaped.
bg_dump_kill() {
	ckpt-dump "$@" --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	forget "$BG_PID"
}

# bg_restored LINE [OPTION...]: $IMG restored by ckpt-remap OPTION...; the
# program, told to go ($D/go), passes its checks and says LINE.
bg_restored() {
	local line=$1
	shift
	touch "$D/go"
	run --separate-stderr timeout 60 ckpt-remap "$@" "$IMG"
	cat "$BATS_TEST_TMPDIR/bg.err" >&2 || true
	echo "status $status stderr: $stderr"
	[ "$status" -eq 0 ]
	grep -qx "$line" "$OUT"
}

# finish_bg: let the background program check (DIR/go) and wait for it;
# it must exit 0.  Its stderr goes to ours.
finish_bg() {
	local st=0
	touch "$D/go"
	wait "$BG_PID" || st=$?
	CKPT_PIDS=()
	cat "$BATS_TEST_TMPDIR/bg.err" >&2 || true
	[ "$st" -eq 0 ]
}

teardown() {
	kill_started
}

# no_core: the last `run` did not die of a signal.
no_core() {
	[ "$status" -lt 128 ] || {
		echo "died of signal $((status - 128))" >&2
		return 1
	}
}

# one_line STATUS [TEXT [TOOL]]: the last `run --separate-stderr` exited
# STATUS, not by a signal, with one line on stderr: "TOOL: " and, after
# it, TEXT.  TOOL is a pattern: any ckpt tool (ckpt-*) if not given.
one_line() {
	printf 'status %s\nstdout:\n%s\nstderr:\n%s\n' "$status" "$output" "$stderr"
	no_core
	[ "$status" -eq "$1" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == ${3:-ckpt-*}": "*"${2:-}"* ]]
}

# Coordinated checkpoints (t/05xx).  start_coord [OPTION...]: a ckpt-coord
# on a free loopback port (never the default 7779: tests run beside other
# things), checkpoints in $CDIR; its port in $CPORT (exported as
# CKPT_COORD_PORT for the clients), its log in $BATS_TEST_TMPDIR/coord.log.
# coord_teardown stops it and every member and helper it knows.
COORD_PORTS=()
start_coord() {
	local pf
	CDIR=$BATS_TEST_TMPDIR/ckpt
	mkdir -p "$CDIR"
	pf=$(mktemp -u "$BATS_TEST_TMPDIR/port.XXXXXX")
	exec_clean ckpt-coord --port 0 --port-file "$pf" --dir "$CDIR" "$@" \
		</dev/null >/dev/null 2>>"$BATS_TEST_TMPDIR/coord.log" &
	COORD_PID=$!
	CKPT_PIDS+=("$COORD_PID")
	wait_for_file "$pf"
	CPORT=$(cat "$pf")
	COORD_PORTS+=("$CPORT")
	# The members' API sockets (ckpt.h) in the test's directory, not
	# /tmp: a helper killed at teardown leaves its directory behind.
	export CKPT_COORD_PORT=$CPORT CDIR COORD_PID XDG_RUNTIME_DIR=$BATS_TEST_TMPDIR
}

# inject NAME CMD...: ckpt-inject -- CMD in the background, output in
# $BATS_TEST_TMPDIR/NAME.out; its pid (the program's, once it execs) in
# $INJ_PID.
inject() {
	local name=$1
	shift
	exec_clean ckpt-inject -- "$@" </dev/null >"$BATS_TEST_TMPDIR/$name.out" 2>&1 &
	INJ_PID=$!
	CKPT_PIDS+=("$INJ_PID")
}

# coord_members [PORT]: how many members the coordinator has.
coord_members() {
	ckpt-signal --coord-port "${1:-$CPORT}" --status | sed -n 's/^members: //p'
}

# has_members N [PORT]: the coordinator has N members.
has_members() {
	[ "$(coord_members "${2:-$CPORT}")" = "$1" ]
}

# restart_bg GEN_DIR: the generation's restart script in the background
# under a new coordinator (a free port, in $RPORT), its pid in $RS_PID,
# its output in $BATS_TEST_TMPDIR/restart.out.
restart_bg() {
	local pf=$BATS_TEST_TMPDIR/rport
	rm -f "$pf"
	exec_clean "$1/ckpt_restart_script.sh" --coord-port 0 --port-file "$pf" \
		</dev/null >"$BATS_TEST_TMPDIR/restart.out" 2>&1 &
	RS_PID=$!
	CKPT_PIDS+=("$RS_PID")
	wait_for_file "$pf"
	RPORT=$(cat "$pf")
	COORD_PORTS+=("$RPORT")
}

# coord_teardown: kill what the coordinators of this test know (members,
# their helpers), then the coordinators, and wait until the helpers are gone.
coord_teardown() {
	local port pid helper rest helpers=() h
	for port in "${COORD_PORTS[@]}"; do
		# id, pid, helper pid, host, program; a fake member's pid is
		# no process to signal.
		while read -r _ pid helper rest; do
			if [ -z "$rest" ] || [ "$pid" -le 1 ] || [ "$helper" -le 1 ]; then
				continue
			fi
			kill -KILL "$pid" "$helper" 2>/dev/null || true
			helpers+=("$pid" "$helper")
		done < <(ckpt-signal --coord-port "$port" --list 2>/dev/null || true)
		ckpt-signal --coord-port "$port" --quit >/dev/null 2>&1 || true
	done
	COORD_PORTS=()
	kill_started
	# Gone, or given up on after 5 s each: teardown does not fail on it.
	for h in "${helpers[@]}"; do
		wait_for -t 5 not kill -0 "$h" 2>/dev/null || true
	done
}

# Trust tests (t/0150, t/0155, t/0520): as root, the attacker is the
# unprivileged user $OTHER, and "${AS_OTHER[@]}" CMD... runs CMD as it.
OTHER=ckpt-test
# shellcheck disable=SC2034 # used by the tests that load this file
AS_OTHER=(setpriv --reuid="$OTHER" --regid="$OTHER" --init-groups)

# shared_dir: $shared, a new directory every user may write (sticky), for
# the processes and files of two users; the test's teardown removes it.
shared_dir() {
	shared=$(mktemp -d /tmp/ckpt-trust.XXXXXX)
	chmod 1777 "$shared"
}

# start_bulk_as DIR [CMD-PREFIX...]: start_bulk DIR, with bulk run by
# CMD-PREFIX (for example "${AS_OTHER[@]}") and DIR writable by every user
# (sticky).
start_bulk_as() {
	local dir=$1
	shift
	mkdir -p "$dir"
	chmod 1777 "$dir"
	spawn_ready "$dir.out" "$@" bulk 2 "$dir"
}

# Real servers from Debian (t/0800).  free_port: a TCP port on 127.0.0.1
# that nothing listens on, below the ephemeral range (no client connection
# of another test takes it meanwhile).
free_port() {
	/usr/bin/python3 -c '
import random, socket
for _ in range(100):
    p = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(p)
    break'
}

# kill_in_dir DIR COMM: SIGKILL the processes named COMM whose cwd is DIR
# (a server a test started there, even one a dead parent left to the
# reaper or a restore put in a pid namespace of its own).
kill_in_dir() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(cat "$p/comm" 2>/dev/null)" = "$2" ] || continue
		[ "$(readlink "$p/cwd" 2>/dev/null)" = "$1" ] || continue
		kill -KILL "${p#/proc/}" 2>/dev/null || true
	done
}

# host_of PID: the process below ckpt-remap ($BG_PID) that is PID in its
# own pid namespace (innermost NSpid): PID itself as root, where the tree
# keeps its pids here; without privilege the tree is in a pid namespace
# of its own, below ckpt-remap's copy that is its init.
host_of() {
	local p
	for p in $(descendants "$BG_PID"); do
		if [ "$(awk '/^NSpid:/ { print $NF }' "/proc/$p/status" 2>/dev/null)" = "$1" ]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# none_in_dir DIR: no live process has DIR as its cwd (a tree that worked
# there is gone, killed by a checkpoint, its zombies reaped or not).
none_in_dir() {
	local p
	# -ef, not readlink: no fork per process (a wait_for of this runs it
	# many times, on a busy machine).
	for p in /proc/[0-9]*; do
		[ ! "$p/cwd" -ef "$1" ] || return 1
	done
}

# nsprog_own_ns MODE [SETUP]: (unprivileged) t/progs/nsprog MODE's tree
# dumped with --kill and restored inside a user, mount and pid namespace of
# their own (unshare -Urpf --mount-proc), where they are root, after the
# shell command SETUP ran there; the program passes.  $output: what
# ckpt-inspect said of the image, then the program's output.
nsprog_own_ns() {
	mkdir -p "$D"
	# No fd of ours above 2 (a pipe the shell leaked, bats' own): one the
	# namespace's root cannot open would fail the dump.
	# shellcheck disable=SC2016 # $1, $2, $3 and $! are the inner shell's
	run --separate-stderr exec_clean timeout 60 unshare -Urpf --mount-proc bash -c '
		set -e
		eval "$3"
		nsprog "$2" "$1" >"$1.out" 2>"$1.err" &
		until grep -q "^ready " "$1.out"; do sleep 0.01; done
		ckpt-dump -t --kill -o "$1.img" $!
		wait $! || true
		ckpt-inspect "$1.img"
		touch "$1/go"
		ckpt-remap "$1.img"
		cat "$1.out" "$1.err"' sh "$D" "$1" "${2:-}"
	echo "status $status: $output; $stderr"
	[ "$status" -eq 0 ]
	[[ "$output" == *"nsprog: ok" ]]
}
