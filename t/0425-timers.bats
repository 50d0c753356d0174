#!/usr/bin/env bats
# Interval timers of every kind (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF,
# POSIX timers on a wall clock and on a CPU clock), 1 ms each, keep firing
# after every restore, with their ids and intervals, wherever the
# checkpoint fell: before an expiry, or between an expiry and the delivery
# of its signal (the kernel re-arms an ITIMER_REAL or POSIX timer only when
# its signal is delivered).  t/progs/timers checks itself.

bats_require_minimum_version 1.5.0
load lib

setup() {
	d=$BATS_TEST_TMPDIR/w
	mkdir "$d"
	# A kernel without PR_TIMER_CREATE_RESTORE_IDS restores no POSIX timer.
	POSIX=()
	timers --probe-ids || POSIX=(--no-posix)
}

# chain N WORD [TIMERS OPTION...]: t/progs/timers dumped --kill and
# restored N times, each restore from the image of the one before (with
# --new-pids: as root too the program is then ckpt-remap's process, the one
# to dump next); after
# the K-th the program must say "WORD K" (it checked every timer).  Then
# it is told to go and must end intact.
chain() {
	local n=$1 word=$2 i start=$SECONDS
	shift 2
	spawn "$d.out" timers "$@" "${POSIX[@]}" "$d"
	pid=$SPAWN_PID
	cat_pid=$SPAWN_CAT
	wait_for_line "$d.out" '^ready \|^timers: '
	[ "$(sed -n 's/^ready //p' "$d.out")" = "$pid" ] || {
		cat "$d.out"
		return 1
	}
	for ((i = 1; i <= n; i++)); do
		dump_killed
		spawn "$d.out" ckpt-remap --new-pids "$d.img"
		pid=$SPAWN_PID
		cat_pid=$SPAWN_CAT
		wait_for_line "$d.out" "^$word $i\$\\|^timers: \\|^ckpt-remap: "
		grep -qx "$word $i" "$d.out" || {
			echo "restore $i of $n:"
			cat "$d.out"
			return 1
		}
	done
	touch "$d/go"
	reap "$pid" "$cat_pid"
	cat "$d.out"
	[ "$status" -eq 0 ]
	[ "$(tail -n 1 "$d.out")" = "restored: yes" ]
	echo "# $n round trips in $((SECONDS - start)) s" >&3
}

@test "100 dump --kill and restore round trips: every timer fires on after each, same ids and intervals" {
	chain 100 ok
}

@test "checkpoints between each timer's expiry and its signal's delivery: the signal arrives once, the timer fires on" {
	chain 20 held --hold
}

@test "a dump without --kill leaves every timer firing" {
	spawn_ready "$d.out" timers "${POSIX[@]}" "$d"
	ckpt-dump -o "$d.img" "$pid"
	runs_on "$d"
}
