#!/usr/bin/env bats
# ckpt-dump killed at random moments (SIGKILL, SIGINT, SIGTERM): the target
# runs on and finishes intact every time, -o FILE is either what it was or
# a complete image, and a complete image restores.

bats_require_minimum_version 1.5.0
load lib

# Memory of the target: its dump takes 40 to 80 ms here, long enough for
# kills to land in every phase of it, short enough for 120 runs.
MIB=32

# A SIGKILL of ckpt-dump while a system call runs inside the target (about
# a millisecond of a dump) used to leave the target with the injected
# call's registers: it died.  ckpt-dump now runs the dump in a worker
# child that the kernel tells of ckpt-dump's death (PR_SET_PDEATHSIG), and
# the worker finishes the injected call and releases the target: every
# run below must leave the target intact.  Injected calls run with
# PTRACE_SYSCALL stops, so no trap flag is ever left set either.

# released PID: PID is neither stopped nor traced (or no longer exists).
released() {
	local k v st="" tr=""
	[ -r "/proc/$1/status" ] || return 0
	while read -r k v _; do
		case $k in
		State:) st=$v ;;
		TracerPid:) tr=$v ;;
		esac
	done <"/proc/$1/status" 2>/dev/null
	[ -z "$st" ] || { [ "$tr" = 0 ] && [ "$st" != t ] && [ "$st" != T ]; }
}

# An image file is complete: every checksum right and the END totals met.
complete_image() {
	ckpt-inspect --verify "$1" >/dev/null 2>&1
}

# one_run I SIG MODE DELAY_US: start a target, dump it in MODE (o: -o FILE,
# oprev: -o FILE over a previous file, kill: --kill -o FILE, redir: stdout
# to a file), send SIG to ckpt-dump after DELAY_US, and check everything.
one_run() {
	local i=$1 sig=$2 mode=$3 delay=$4 dir img dump how dst opts=() tst prev="" left
	dir=$BATS_TEST_TMPDIR/r$i
	img=$dir/img
	if ((i % 2)); then
		start_bulk "$dir" --thread "$MIB"
	else
		start_bulk "$dir" "$MIB"
	fi
	case $mode in
	oprev)
		prev="the previous image of run $i"
		echo "$prev" >"$img"
		;;
	kill) opts=(--kill) ;;
	esac
	if [ "$mode" = redir ]; then
		exec_clean ckpt-dump --quiet "$pid" >"$img" 2>"$dir/dump.err" &
	else
		exec_clean ckpt-dump --quiet "${opts[@]}" -o "$img" "$pid" 2>"$dir/dump.err" &
	fi
	dump=$!
	how=$(killer "$(kill -l "$sig")" "$delay" "$dump")
	dst=0
	wait "$dump" || dst=$?
	N[$sig.$how]=$((${N[$sig.$how]:-0} + 1))
	N[$sig.status$dst]=$((${N[$sig.status$dst]:-0} + 1))
	echo "run $i: SIG$sig after ${delay} us ($how), mode $mode: ckpt-dump status $dst"

	# ckpt-dump: done (0), failed with one line (1) or killed by SIG
	# (its handler not yet installed for INT and TERM).
	case $dst in
	0) ;;
	1)
		cat "$dir/dump.err"
		[ "$(wc -l <"$dir/dump.err")" -eq 1 ]
		grep -q '^ckpt-dump: ' "$dir/dump.err"
		;;
	*) [ "$dst" -eq $((128 + $(kill -l "$sig"))) ] ;;
	esac

	# The target: released and running on to a clean exit, or killed by
	# --kill after a complete image.
	wait_for released "$pid"
	touch "$dir/go"
	reap "$pid" "$cat_pid"
	tst=$status
	[ "$mode" != kill ] || [ "$dst" -ne 0 ] || [ "$tst" -eq 137 ]
	if [ "$tst" -eq 137 ] && [ "$mode" = kill ]; then
		complete_image "$img"
	else
		cat "$dir.out"
		[ "$tst" -eq 0 ]
		[ "$(tail -n 1 "$dir.out")" = "restored: no" ]
	fi

	# The file: untouched, absent, or a complete image; beside it no
	# temporary file, unless the SIGKILL fell in the microseconds between
	# the link of the finished image and its rename (then it is complete).
	left=$(find "$dir" -name '.img.*')
	if [ -n "$left" ]; then
		echo "run $i: killed between link and rename: $left"
		[ "$sig" = KILL ]
		complete_image "$left"
		rm -f "$left"
	fi
	if [ "$mode" != redir ]; then
		if [ -n "$prev" ] && printf '%s\n' "$prev" | cmp -s - "$img"; then
			[ "$dst" -ne 0 ]
			return 0
		fi
		if [ ! -e "$img" ]; then
			[ "$dst" -ne 0 ]
			return 0
		fi
		complete_image "$img"
	elif [ "$dst" -ne 0 ]; then
		return 0 # a partial stream is what a killed writer leaves on stdout
	fi
	[ "$(stat -c %a "$img")" = 600 ]
	# A complete image restores, intact.
	N[images]=$((${N[images]:-0} + 1))
	touch "$dir/go"
	restore "$img"
	intact_and_restored
	rm -f "$img"
}

@test "ckpt-dump killed at random moments, 120 runs: the target always runs on intact, -o FILE is old or complete" {
	local i seed t0 t1 dur="" sigs=(KILL INT TERM) modes=(o oprev kill redir) s start=$SECONDS
	declare -gA N # counters for the summary lines
	seed=${CKPT_SEED:-$((RANDOM * 32768 + RANDOM))}
	RANDOM=$((seed % 32768))
	echo "seed $seed (CKPT_SEED=$seed reproduces the choices)"
	# How long a dump takes here (the shortest of three): the delays
	# spread over it.
	start_bulk "$BATS_TEST_TMPDIR/m" "$MIB"
	for i in 1 2 3; do
		t0=${EPOCHREALTIME/./}
		ckpt-dump --quiet -o "$BATS_TEST_TMPDIR/m/img" "$pid"
		t1=${EPOCHREALTIME/./}
		if [ -z "$dur" ] || [ $((t1 - t0)) -lt "$dur" ]; then
			dur=$((t1 - t0))
		fi
	done
	touch "$BATS_TEST_TMPDIR/m/go"
	reap "$pid" "$cat_pid"
	[ "$status" -eq 0 ]
	echo "# a dump of $MIB MiB takes $((dur / 1000)) ms here; kills at 0 to $((dur / 1000)) ms" >&3
	for ((i = 0; i < ${CKPT_RUNS:-120}; i++)); do
		s=${sigs[i % 3]}
		one_run "$i" "$s" "${modes[RANDOM % 4]}" $(((RANDOM * 32768 + RANDOM) % (dur + 1)))
		rm -rf "$BATS_TEST_TMPDIR/r$i" "$BATS_TEST_TMPDIR/r$i.out"
	done
	for s in "${sigs[@]}"; do
		echo "# SIG$s: $((${N[$s.sent]:-0} + ${N[$s.blocked]:-0} + ${N[$s.gone]:-0})) sent" \
			"(${N[$s.blocked]:-0} while injecting, ${N[$s.gone]:-0} after ckpt-dump had exited);" \
			"ckpt-dump finished ${N[$s.status0]:-0}, failed cleanly ${N[$s.status1]:-0}," \
			"died of it $((${N[$s.status130]:-0} + ${N[$s.status137]:-0} + ${N[$s.status143]:-0}))" >&3
	done
	echo "# $i runs in $((SECONDS - start)) s; ${N[images]:-0} complete images, each restored intact;" \
		"every target ran on intact, ${N[KILL.blocked]:-0} of them through a SIGKILL inside an injected call" >&3
}

# killed_at KILLER_OPTION: SIGKILL to ckpt-dump -o at the moment
# t/progs/killer picks with KILLER_OPTION; the target runs on intact, no file
# is left.  On a busy machine
# the killer may miss the moment (it says "gone": the dump went through and
# the target must be intact too): up to 10 tries.
killed_at() {
	local dir dump dst how try
	for ((try = 0; try < 10; try++)); do
		dir=$BATS_TEST_TMPDIR/k$try
		start_bulk "$dir" --thread "$MIB"
		exec_clean ckpt-dump --quiet -o "$dir/img" "$pid" 2>"$dir/dump.err" &
		dump=$!
		how=$(killer "$1" 9 0 "$dump") || true
		dst=0
		wait "$dump" || dst=$?
		echo "try $try: killer: $how, ckpt-dump status $dst"
		if [ "$how" = gone ]; then
			[ "$dst" -eq 0 ]
		else
			[ "$dst" -eq 137 ]
			[ -z "$(find "$dir" -name '*img*')" ]
		fi
		wait_for released "$pid"
		runs_on "$dir"
		[ "$how" = gone ] || return 0
	done
	echo "the killer never found the moment in 10 dumps" >&2
	return 1
}

@test "SIGKILL to ckpt-dump while it runs system calls inside the target: the target runs on intact" {
	killed_at --blocked
}

@test "SIGKILL to ckpt-dump right after its injected system calls: the target runs on intact" {
	killed_at --after-blocked
}
