#!/usr/bin/env bats
# Multi-threaded processes: every thread of t/progs/threads comes back with
# its name, TLS, signal mask, alternate stack and the call it was blocked in,
# and (each group can be left out, see threads.c) the mutexes it held, the
# signals pending for it and the process, the timers, and the time its
# sleep had left; Python threads and an OpenMP loop restore mid-work;
# ckpt-inspect lists every thread.  The programs check themselves.

bats_require_minimum_version 1.5.0
load lib

# t/progs/threads without the groups of checks that need more than the
# threads themselves: held mutexes, pending signals, timers, sleep's rem.
CORE=(--no-held-locks --no-pending --no-timers --no-remaining)

setup() {
	d=$BATS_TEST_TMPDIR/w
	mkdir "$d"
}

# tasks_are PID N: PID has N threads.
tasks_are() {
	local tasks=("/proc/$1/task/"*)
	[ "${#tasks[@]}" -eq "$2" ]
}

# start_prog READY_TIMEOUT NTHREADS CMD...: CMD in the background, output in
# $d.out; waits for "ready PID" with its own pid and for its NTHREADS
# threads, and sets $pid and $cat_pid.
start_prog() {
	local t=$1 n=$2
	shift 2
	spawn "$d.out" "$@"
	pid=$SPAWN_PID
	cat_pid=$SPAWN_CAT
	wait_for_line "$d.out" '^ready ' "$t"
	cat "$d.out"
	[ "$(sed -n 's/^ready //p' "$d.out")" = "$pid" ]
	wait_for tasks_are "$pid" "$n"
}

# start_threads [OPTION...]: t/progs/threads on $d.  Its sleeps end 3 s
# after "ready", and the checkpoint must come before: dump at once.
start_threads() {
	start_prog 20 7 threads "$@" "$d"
}

# threads_round_trip [--remap OPTION] [THREADS OPTION...]: threads dumped
# --kill and restored; it must find itself intact.
threads_round_trip() {
	local remap=()
	if [ "${1:-}" = --remap ]; then
		remap=("$2")
		shift 2
	fi
	start_threads "$@"
	dump_killed
	touch "$d/go"
	restore "${remap[@]}" "$d.img"
	intact_and_restored
}

# runs_on_not_restored: the dumped program, told to go, finishes intact.
runs_on_not_restored() {
	touch "$d/go"
	reap "$pid" "$cat_pid"
	cat "$d.out"
	[ "$status" -eq 0 ]
	[ "$(grep -c . "$d.out")" -eq 2 ]
	grep -qx 'restored: no' "$d.out"
}

@test "seven threads restore with their names, TLS, masks, alt stack and blocked calls" {
	threads_round_trip "${CORE[@]}"
}

@test "--new-pids: with new tids, glibc's cached tids, pthread_kill and robust mutexes follow" {
	threads_round_trip --remap --new-pids "${CORE[@]}"
}

@test "signals pending for two threads and for the process arrive once each, with si_value, after restore" {
	threads_round_trip --no-held-locks --no-timers --no-remaining
}

@test "ITIMER_REAL/VIRTUAL/PROF and POSIX timers (same ids, SIGEV_THREAD_ID) run on after restore" {
	threads_round_trip --no-held-locks --no-pending --no-remaining
}

@test "a nanosleep given rem sleeps only the time it had left after restore" {
	threads_round_trip --no-held-locks --no-pending --no-timers
}

# Root restores with the old tids: the owner words in the mutexes hold
# them.  (Unprivileged, the tids are new: the test below.)
# bats test_tags=root
@test "as root (tids kept), an error-checking and a robust mutex held across the checkpoint unlock" {
	threads_round_trip --no-pending --no-timers --no-remaining
}

# New tids: the restore rewrites the owner of the robust mutexes each
# thread holds (they are on its robust list).  A plain error-checking
# mutex names its owner where no list leads: only kept tids unlock it.
@test "--new-pids: robust mutexes held across the checkpoint unlock, and one is EOWNERDEAD after its owner exits" {
	threads_round_trip --remap --new-pids --no-held-errcheck --no-pending --no-timers --no-remaining
}

@test "--pid-ns keeps the tids without privilege: an error-checking and a robust mutex held across the checkpoint unlock" {
	threads_round_trip --remap --pid-ns --no-pending --no-timers --no-remaining
}

@test "the whole threads workload (held mutexes, pending signals, timers, sleep's rem) restores intact" {
	# Tids kept: as root by default, else in a pid namespace.
	if [ "$(id -u)" -eq 0 ]; then
		threads_round_trip
	else
		threads_round_trip --remap --pid-ns
	fi
}

@test "after a dump without --kill the threads run on and finish intact, not restored" {
	start_threads "${CORE[@]}"
	ckpt-dump -o "$d.img" "$pid"
	[ -s "$d.img" ]
	runs_on_not_restored
}

@test "a dump without --kill disturbs neither pending signals nor timers nor held mutexes" {
	start_threads
	ckpt-dump -o "$d.img" "$pid"
	[ -s "$d.img" ]
	runs_on_not_restored
}

@test "one threads image restores twice, both runs intact" {
	start_threads "${CORE[@]}"
	dump_killed
	touch "$d/go"
	restore "$d.img"
	intact_and_restored
	restore "$d.img"
	intact_and_restored
}

@test "python3 threads, working and passing items through a queue.Queue, restore intact" {
	[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
	# main, four workers, a producer and a consumer
	start_prog 60 7 /usr/bin/python3 "$TOP/t/progs/pythreads.py" "$d"
	dump_killed
	touch "$d/go"
	restore "$d.img"
	intact_and_restored
}

@test "an OpenMP parallel for dumped mid-loop restores and sums exactly" {
	start_prog 20 4 omp
	dump_killed
	restore "$d.img"
	intact_and_restored
}

# dump_threads_for_inspect: threads dumped (and then run to its end), the
# tid and name of each of its threads in $d.tasks, "TID NAME" a line.
dump_threads_for_inspect() {
	local t
	start_threads "${CORE[@]}"
	for t in /proc/"$pid"/task/*; do
		echo "${t##*/} $(cat "$t/comm")"
	done | sort -n >"$d.tasks"
	ckpt-dump -o "$d.img" "$pid"
	runs_on_not_restored
	cat "$d.tasks"
	[ "$(wc -l <"$d.tasks")" -eq 7 ]
}

@test "ckpt-inspect lists the seven threads, each with its tid and name" {
	local tid name
	dump_threads_for_inspect
	run --separate-stderr ckpt-inspect "$d.img"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -qx 'threads:  7' <<<"$output"
	[ "$(grep -c '^  tid ' <<<"$output")" -eq 7 ]
	while read -r tid name; do
		grep -qF "  tid $tid ($name), " <<<"$output"
	done <"$d.tasks"
}

@test "ckpt-inspect --json has the seven threads, each with its tid and name" {
	dump_threads_for_inspect
	run --separate-stderr ckpt-inspect --json "$d.img"
	[ "$status" -eq 0 ]
	python3 -c '
import json, sys
d = json.loads(sys.argv[1])
want = sorted((int(l.split()[0]), l.split()[1]) for l in open(sys.argv[2]))
have = sorted((t["tid"], t["comm"]) for t in d["threads"])
assert len(d["threads"]) == 7, len(d["threads"])
assert have == want, (have, want)
' "$output" "$d.tasks"
}
