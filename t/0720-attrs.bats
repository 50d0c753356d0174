#!/usr/bin/env bats
# A process's attributes come back as they were (t/progs/attrs sets one
# group, and checks after the restore that every attribute is exactly as
# before): resource limits; nice, scheduling policy, CPU affinity and
# timer slack of each thread, personality; real-time scheduling (root);
# prctl state (child subreaper, THP disable, no_new_privs, parent death
# signal, oom_score_adj, dumpable as root); membarrier registrations; a
# seccomp filter (root: it still denies after the restore); capabilities
# and securebits dropped, loginuid (root).  What cannot come back is
# refused by name: a seccomp filter an unprivileged dump cannot read,
# seccomp strict mode (the process runs on), a
# hard limit the restoring process may not raise, an oom_score_adj it may
# not lower.  ckpt-inspect shows
# what differs from a fresh process.

load lib

bats_require_minimum_version 1.5.0

# killed MODE: t/progs/attrs MODE, ready, dumped --kill into $IMG.
killed() {
	workdir "attrs-$1"
	start_bg attrs "$1" "$D"
	wait_for_line "$OUT" '^ready '
	bg_dump_kill
}

root_only() {
	[ "$(id -u)" -eq 0 ] || skip "only root may"
}

@test "resource limits, soft and hard, come back" {
	killed limits
	bg_restored "attrs: ok"
}

@test "nice, SCHED_BATCH and SCHED_IDLE, CPU affinity and timer slack of each thread, and the personality come back" {
	killed sched
	bg_restored "attrs: ok"
}

# bats test_tags=root
@test "a real-time policy (SCHED_RR) comes back, as root" {
	root_only
	killed rt
	bg_restored "attrs: ok"
}

@test "child subreaper, THP disable, no_new_privs, parent death signal, oom_score_adj (and dumpable, as root) come back" {
	killed prctl
	bg_restored "attrs: ok"
}

@test "membarrier registrations come back: private expedited membarrier still runs" {
	killed membarrier
	bg_restored "attrs: ok"
}

# bats test_tags=root
@test "a seccomp filter comes back in both threads, installed last: getppid still fails with EPERM" {
	root_only
	killed seccomp
	bg_restored "attrs: ok"
}

# bats test_tags=root
@test "capabilities dropped, inheritable and ambient ones, securebits and loginuid come back, as root" {
	root_only
	killed caps
	bg_restored "attrs: ok"
}

@test "an unprivileged process with a seccomp filter is refused by name, and runs on" {
	[ "$(id -u)" -ne 0 ] || skip "root can read the filter"
	workdir seccomp
	start_bg attrs seccomp "$D"
	wait_for_line "$OUT" '^ready '
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	one_line 1 "pid $BG_PID: thread $BG_PID: a seccomp filter cannot be read" ckpt-dump
	[ ! -e "$IMG" ]
	finish_bg
	grep -qx "attrs: ok" "$OUT"
}

# in_strict_mode PID: PID is in seccomp strict mode.
in_strict_mode() {
	grep -q '^Seccomp:[[:space:]]*1$' "/proc/$1/status"
}

@test "a process in seccomp strict mode is refused by name before any call is injected, and runs on" {
	workdir strict
	mkfifo "$D/fifo"
	start_bg attrs strict "$D"
	wait_for_line "$OUT" '^ready '
	wait_for in_strict_mode "$BG_PID"
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	one_line 1 "pid $BG_PID: seccomp strict mode (SECCOMP_MODE_STRICT); not supported" ckpt-dump
	[ ! -e "$IMG" ]
	echo x >"$D/fifo"
	wait "$BG_PID"
	CKPT_PIDS=()
	grep -qx "attrs: ok" "$OUT"
}

# Whether this shell has CAP_SYS_RESOURCE (24), which raises any limit.
cap_sys_resource() {
	local eff
	eff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
	(((16#$eff >> 24) & 1))
}

@test "a hard limit above what ckpt-remap may raise is refused by name before anything is touched" {
	if cap_sys_resource; then
		skip "CAP_SYS_RESOURCE may raise any limit"
	fi
	killed limits
	run --separate-stderr prlimit --core=0:0 ckpt-remap "$IMG"
	one_line 99 "resource limit RLIMIT_CORE: hard limit 1234567 above this process's 0 (raising it needs CAP_SYS_RESOURCE)" ckpt-remap
	[ "$(cat "$OUT")" = "ready $BG_PID" ]
}

@test "an oom_score_adj below ckpt-remap's is refused by name before anything is touched" {
	if cap_sys_resource; then
		skip "CAP_SYS_RESOURCE may lower it"
	fi
	killed prctl
	run --separate-stderr bash -c 'echo 600 >/proc/self/oom_score_adj && exec ckpt-remap "$1"' - "$IMG"
	one_line 99 "pid $BG_PID: oom_score_adj 500 below this process's 600: lowering it needs CAP_SYS_RESOURCE" ckpt-remap
	[ "$(cat "$OUT")" = "ready $BG_PID" ]
}

@test "ckpt-inspect shows each thread's scheduling and the personality, in text and JSON" {
	killed sched
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"attr:     thread $BG_PID SCHED_BATCH priority 0 nice 5 timerslack 123456 cpus "* ]]
	[[ "$output" == *" SCHED_IDLE priority 0 nice 7 timerslack 654321 cpus 0"* ]]
	[[ "$output" == *"attr:     personality 0x40000"* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"attrs":{"limits":[],"threads":[{"tid":'"$BG_PID"',"policy":"SCHED_BATCH","reset_on_fork":false,"priority":0,"nice":5,"timerslack_ns":123456,"cpus":'* ]]
	[[ "$output" == *'"personality":262144'* ]]
}

@test "ckpt-inspect shows limits other than its own, in text and JSON" {
	killed limits
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"attr:     limit RLIMIT_NOFILE soft 200 hard 500"* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'{"name":"RLIMIT_NOFILE","soft":200,"hard":500}'* ]]
}
