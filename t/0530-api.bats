#!/usr/bin/env bats
# The API for programs that want a say (ckpt.h(3)): a program run by
# ckpt-inject asks its helper, on the unix socket $CKPT_API, for a
# checkpoint, holds checkpoints off around a critical section, learns
# how many times it was restarted; the same from a shell (ckpt-signal
# --member) and from Python (contrib/python/ckpt.py); hooks around a
# checkpoint (ckpt-inject --hook) and a signal at resume and restart
# (--notify).  t/progs/apiprog is the C program; it writes what it
# learns to a file, one line each.

bats_require_minimum_version 1.5.0
load lib

# The helpers' API directories in the test's own directory (a helper
# killed by the teardown cannot remove its own).
setup() {
	export XDG_RUNTIME_DIR=$BATS_TEST_TMPDIR
}

teardown() {
	coord_teardown
	rm -rf "${shared:-}"
}

# restart_bg GEN_DIR: the generation's restart script in the background
# under a new coordinator, its port in $RPORT, its pid in $RS_PID.
restart_bg() {
	local pf=$BATS_TEST_TMPDIR/rport
	exec_clean "$1/ckpt_restart_script.sh" --coord-port 0 --port-file "$pf" \
		</dev/null >"$BATS_TEST_TMPDIR/restart.out" 2>&1 &
	RS_PID=$!
	CKPT_PIDS+=("$RS_PID")
	wait_for_file "$pf"
	RPORT=$(cat "$pf")
	COORD_PORTS+=("$RPORT")
}

# inject_with NAME OPTION... -- CMD...: ckpt-inject with options, in the
# background; the program's pid in $INJ_PID.
inject_with() {
	local name=$1
	shift
	exec_clean ckpt-inject "$@" </dev/null >"$BATS_TEST_TMPDIR/$name.out" 2>&1 &
	INJ_PID=$!
	CKPT_PIDS+=("$INJ_PID")
}

@test "ckpt_checkpoint: the program's own checkpoint is written and named; restarted from the script, the program learns it was, and its status says so" {
	local f=$BATS_TEST_TMPDIR/a.log
	# What a helper killed (SIGKILL) left: the next one removes it.
	mkdir -m 700 "$XDG_RUNTIME_DIR/ckpt-api-stale1"
	touch "$XDG_RUNTIME_DIR/ckpt-api-stale1/sock"
	touch -d '2 minutes ago' "$XDG_RUNTIME_DIR/ckpt-api-stale1"
	start_coord
	inject a apiprog "$f" checkpoint
	wait_for_line "$f" '^status .* gen=1 '
	cat "$f"
	diff - "$f" <<-EOF
		status rc=0 coordinated=1 restarts=0 gen=0 delayed=0
		checkpoint rc=0 gen=1
		status rc=0 coordinated=1 restarts=0 gen=1 delayed=0
	EOF
	[ "$(readlink "$CDIR/current")" = ckpt_gen_000001 ]
	# The socket is in a directory of this user's alone.
	api=$(tr '\0' '\n' <"/proc/$INJ_PID/environ" | sed -n 's/^CKPT_API=//p')
	[ -S "$api" ]
	[[ $api == "$BATS_TEST_TMPDIR/ckpt-api-"??????/sock ]]
	[ ! -e "$XDG_RUNTIME_DIR/ckpt-api-stale1" ]
	[ "$(stat -c %a "${api%/*}")" = 700 ]
	kill -KILL "$INJ_PID"
	reap "$INJ_PID"
	wait_for has_members 0
	restart_bg "$CDIR/ckpt_gen_000001"
	reap "$RS_PID"
	cat "$BATS_TEST_TMPDIR/restart.out"
	[ "$status" -eq 0 ]
	# Restarted where it was, waiting for the answer: the new helper
	# answers that it was restarted from generation 1.
	diff - "$f" <<-EOF
		status rc=0 coordinated=1 restarts=0 gen=0 delayed=0
		checkpoint rc=1 gen=1
		status rc=0 coordinated=1 restarts=1 gen=1 delayed=0
	EOF
	# Its helper took its socket away as it went.
	[ ! -e "$api" ]
}

@test "ckpt_delay/ckpt_allow, nested: a checkpoint asked for from outside waits for the critical section, then happens; one asked for inside is refused" {
	local f=$BATS_TEST_TMPDIR/d.log out=$BATS_TEST_TMPDIR/ck.out
	start_coord
	inject d apiprog "$f" delay
	wait_for_line "$f" '^critical'
	wait_for has_members 1
	exec_clean ckpt-signal --checkpoint --wait </dev/null >"$out" 2>&1 &
	local ck=$!
	CKPT_PIDS+=("$ck")
	wait_for eval 'ckpt-signal --status | grep -qx "state: checkpointing"'
	# Held off: still under way, no generation, the program not frozen.
	kill -0 "$ck"
	[ ! -e "$CDIR/ckpt_gen_000001" ]
	[ "$(ckpt-signal --status | sed -n 's/^state: //p')" = checkpointing ]
	[ "$(stat_field "$INJ_PID" 3)" != t ]
	touch "$f.go"
	reap "$ck"
	cat "$out" "$f"
	[ "$status" -eq 0 ]
	[ "$(cat "$out")" = "$CDIR/ckpt_gen_000001" ]
	diff - "$f" <<-EOF
		delay 1
		delay 2
		inside rc=-1 checkpoints are held off by ckpt_delay() (depth 2): a checkpoint asked for now would wait for itself
		status rc=0 coordinated=1 restarts=0 gen=0 delayed=2
		critical
		allow 1
		allow 0
	EOF
}

@test "ckpt_delay past the coordinator's --timeout: the checkpoint fails, naming the delay, and the program goes on" {
	local f=$BATS_TEST_TMPDIR/d.log
	start_coord --timeout 2
	inject d apiprog "$f" delay
	wait_for_line "$f" '^critical'
	wait_for has_members 1
	run ckpt-signal --checkpoint --wait
	echo "$output"
	[ "$status" -eq 1 ]
	[[ $output == "ckpt-signal: checkpoint 1 failed: member 1 (apiprog, pid $INJ_PID on "*"): checkpoints held off by ckpt_delay() for 1 s, past the coordinator's --timeout of 2 s less a second" ]]
	touch "$f.go"
	wait_for_line "$f" '^allow 0'
	run ckpt-signal --checkpoint --wait
	[ "$status" -eq 0 ]
}

@test "not under ckpt-inject: every call of ckpt.h and ckpt-signal --member says not available (ENOSYS), and the program goes on" {
	local f=$BATS_TEST_TMPDIR/n.log
	run env -u CKPT_API apiprog "$f" none
	cat "$f"
	[ "$status" -eq 0 ]
	[ "$(cat "$f")" = "none bad=0 not under ckpt-inject (no CKPT_API)" ]
	# A socket nobody answers on (a helper gone) is the same.
	rm -f "$f"
	run env CKPT_API="$BATS_TEST_TMPDIR/nosuch/sock" apiprog "$f" none
	[ "$status" -eq 0 ]
	[ "$(cat "$f")" = "none bad=0 no ckpt-inject helper answers on CKPT_API" ]
	run env -u CKPT_API ckpt-signal --member --status
	[ "$status" -eq 3 ]
	[ "$output" = "ckpt-signal: not under ckpt-inject (no CKPT_API)" ]
	run ckpt-signal --member --status --coord-port 1
	[ "$status" -eq 2 ]
}

@test "ckpt-signal --member from a member's shell: status, delay and allow, a checkpoint; a plain --checkpoint from inside fails naming its own connection" {
	start_coord
	run exec_clean ckpt-inject -- sh -c '
		ckpt-signal --member --status --json
		ckpt-signal --member --delay && ckpt-signal --member --status | grep delayed
		ckpt-signal --member --allow
		ckpt-signal --member --allow || echo "allow: $?"
		ckpt-signal --member --checkpoint
		ckpt-signal --member --status | grep gen
		ckpt-signal --checkpoint --wait 2>&1 || echo "plain: $?"'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = '{"member": 1, "restarts": 0, "gen": 0, "delayed": 0, "timeout": 3600}' ]
	[ "${lines[1]}" = "delayed: 1" ]
	[ "${lines[2]}" = "ckpt-signal: ckpt_allow() without a ckpt_delay()" ]
	[ "${lines[3]}" = "allow: 1" ]
	[ "${lines[4]}" = 1 ]
	[ "${lines[5]}" = "gen: 1" ]
	[[ ${lines[6]} == "ckpt-signal: checkpoint 2 failed: "*"is a TCP connection from 127.0.0.1:"*" a peer outside the dumped processes"* ]]
	[ "${lines[7]}" = "plain: 1" ]
}

@test "contrib/python/ckpt.py: status, delay/allow, a checkpoint from Python; not available outside ckpt-inject" {
	start_coord
	cat >"$BATS_TEST_TMPDIR/p.py" <<-EOF
		import sys
		sys.path.insert(0, "$TOP/contrib/python")
		import ckpt
		try:
		    ckpt.status()
		except ckpt.NotAvailable as e:
		    print("not available:", e.errno == 38)
		    sys.exit(0)
		print(ckpt.status()["restarts"], ckpt.delay(), ckpt.delay(), ckpt.allow(), ckpt.allow())
		print(ckpt.checkpoint())
		print(ckpt.status()["gen"])
	EOF
	run exec_clean ckpt-inject -- python3 "$BATS_TEST_TMPDIR/p.py"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "0 1 2 1 0" ]
	[ "${lines[1]}" = "(False, 1)" ]
	[ "${lines[2]}" = "1" ]
	run env -u CKPT_API python3 "$BATS_TEST_TMPDIR/p.py"
	[ "$output" = "not available: True" ]
}

@test "hooks at pre-checkpoint, resume, post-checkpoint and restart, with the generation's directory; a failing pre-checkpoint hook fails the checkpoint by name; --notify signals at resume and restart" {
	local n=$BATS_TEST_TMPDIR/n.log h=$BATS_TEST_TMPDIR/hook hl=$BATS_TEST_TMPDIR/hook.log
	cat >"$h" <<-EOF
		#!/bin/sh
		echo "\$1 \$CKPT_GEN \$CKPT_GEN_DIR" >>"$hl"
		[ "\$1" != pre-checkpoint ] || [ ! -e "$h.fail" ] || exit 3
	EOF
	chmod +x "$h"
	# --hooks: the executable files of a directory, by name.
	mkdir "$BATS_TEST_TMPDIR/hooks.d"
	printf '#!/bin/sh\necho "$1" >>"%s"\n' "$hl.2" >"$BATS_TEST_TMPDIR/hooks.d/20-second"
	chmod +x "$BATS_TEST_TMPDIR/hooks.d/20-second"
	echo "not a hook" >"$BATS_TEST_TMPDIR/hooks.d/README"
	start_coord
	inject_with n --hook "$h" --hooks "$BATS_TEST_TMPDIR/hooks.d" --notify USR1 -- apiprog "$n" notify
	wait_for_line "$n" '^ready'
	wait_for has_members 1
	run ckpt-signal --checkpoint --wait
	[ "$status" -eq 0 ]
	wait_for_line "$n" '^signals 1$'
	wait_for_line "$hl" '^post-checkpoint'
	diff - "$hl" <<-EOF
		pre-checkpoint 1 $CDIR/ckpt_gen_000001
		resume 1 $CDIR/ckpt_gen_000001
		post-checkpoint 1 $CDIR/ckpt_gen_000001
	EOF
	wait_for_line "$hl.2" '^post-checkpoint'
	[ "$(cat "$hl.2")" = "$(printf 'pre-checkpoint\nresume\npost-checkpoint')" ]
	touch "$h.fail"
	run ckpt-signal --checkpoint --wait
	echo "$output"
	[ "$status" -eq 1 ]
	[[ $output == "ckpt-signal: checkpoint 2 failed: member 1 (apiprog, pid $INJ_PID on "*"): pre-checkpoint hook $h: exited with status 3" ]]
	rm "$h.fail"
	# Never frozen: no resume, no signal.
	[ "$(tail -n 1 "$hl")" = "pre-checkpoint 2 $CDIR/ckpt_gen_000002" ]
	run ckpt-signal --checkpoint --wait --kill
	[ "$status" -eq 0 ]
	reap "$INJ_PID"
	[ "$status" -eq 137 ]
	[ "$(tail -n 1 "$n")" = "signals 1" ]
	# The restarted member keeps its hooks and --notify (its image's
	# .member file has them).
	restart_bg "$CDIR/ckpt_gen_000002"
	wait_for_line "$n" '^signals 2$'
	wait_for_line "$hl" '^restart 2 '
	tail -n 4 "$hl" | diff - <(printf '%s\n' "pre-checkpoint 2 $CDIR/ckpt_gen_000002" \
		"post-checkpoint 2 $CDIR/ckpt_gen_000002" "restart 2 $CDIR/ckpt_gen_000002") ||
		tail -n 3 "$hl" | diff - <(printf '%s\n' "pre-checkpoint 2 $CDIR/ckpt_gen_000002" \
			"post-checkpoint 2 $CDIR/ckpt_gen_000002" "restart 2 $CDIR/ckpt_gen_000002")
	run ckpt-inject --hook "$BATS_TEST_TMPDIR/nosuch" -- true
	[ "$status" -eq 99 ]
	[ "$output" = "ckpt-inject: --hook $BATS_TEST_TMPDIR/nosuch: not a program to run: No such file or directory" ]
	run ckpt-inject --notify NOSIG -- true
	[ "$output" = "ckpt-inject: --notify: not a signal: NOSIG" ]
}

# bats test_tags=root
@test "another user cannot ask root's member anything: the API's directory is closed to it, and a directory it plants for a restart is refused" {
	[ "$(id -u)" -eq 0 ] || skip "needs root (to be another user)"
	local f=$BATS_TEST_TMPDIR/a.log api
	# In /tmp, where the other user can reach it.
	export XDG_RUNTIME_DIR=
	start_coord
	inject a apiprog "$f" checkpoint
	wait_for_line "$f" '^status .* gen=1 '
	api=$(tr '\0' '\n' <"/proc/$INJ_PID/environ" | sed -n 's/^CKPT_API=//p')
	[ -S "$api" ]
	run "${AS_OTHER[@]}" env CKPT_API="$api" ckpt-signal --member --status
	echo "$output"
	[ "$status" -eq 3 ]
	[ "$output" = "ckpt-signal: no ckpt-inject helper answers on CKPT_API" ]
	run "${AS_OTHER[@]}" env CKPT_API="$api" ckpt-signal --member --delay
	[ "$status" -eq 3 ]
	# Even with the directory and the socket opened to all, the helper
	# answers no other uid (SO_PEERCRED).
	chmod 755 "${api%/*}"
	chmod 777 "$api"
	run "${AS_OTHER[@]}" env CKPT_API="$api" ckpt-signal --member --delay
	chmod 700 "${api%/*}"
	echo "$output"
	echo "status $status"; ls -la "${api%/*}"
	[ "$status" -eq 3 ]
	[ "$output" = "ckpt-signal: the helper went away" ]
	# The member's own status: nobody delayed it.
	run env CKPT_API="$api" ckpt-signal --member --status
	[[ $output == *"delayed: 0"* ]]
	# Killed; the other user plants the directory the restart would
	# listen in: the helper refuses it, and the restored program finds
	# no API (not available) but runs.
	kill -KILL "$INJ_PID"
	reap "$INJ_PID"
	wait_for has_members 0
	wait_for test ! -e "${api%/*}"
	"${AS_OTHER[@]}" mkdir -m 777 "${api%/*}"
	restart_bg "$CDIR/ckpt_gen_000001"
	wait_for_line "$f" '^status rc=-1'
	cat "$BATS_TEST_TMPDIR/restart.out" "$f"
	rmdir "${api%/*}"
	[ "$(tail -n 2 "$f" | head -n 1)" = "checkpoint rc=-1 gen=0 no ckpt-inject helper answers on CKPT_API" ]
	[ "$(tail -n 1 "$f")" = "status rc=-1 coordinated=0 restarts=0 gen=0 delayed=0" ]
}
