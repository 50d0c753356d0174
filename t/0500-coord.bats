#!/usr/bin/env bats
# Coordinated checkpoints: programs started by ckpt-inject into one
# ckpt-coord, checkpointed together with ckpt-signal, killed, and brought
# back by the restart script the coordinator wrote.  The workload, logger,
# writes a log through one fd and exits 0 only if the log holds each of its
# lines exactly once, in order: restarted from a checkpoint after it ran on
# and wrote more, it is right only if its log came back as it was then.

load lib

bats_require_minimum_version 1.5.0

teardown() {
	coord_teardown
}

# lines FILE: how many lines FILE has (0 if none).
lines() {
	if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi
}

# at_least N FILE: FILE has N lines or more.
at_least() {
	[ "$(lines "$2")" -ge "$1" ]
}

# two_loggers N: two loggers of N lines each, members of the coordinator,
# $A and $B their logs, $PA and $PB their pids.
two_loggers() {
	A=$BATS_TEST_TMPDIR/a.log B=$BATS_TEST_TMPDIR/b.log
	inject a logger "$A" "$1"
	PA=$INJ_PID
	inject b logger "$B" "$1"
	PB=$INJ_PID
	wait_for has_members 2
	wait_for at_least 10 "$A"
	wait_for at_least 10 "$B"
}

# one_logger N [MS [HOLD]]: a logger of N lines (MS and HOLD as logger
# takes them), a member of the coordinator, $A its log, $PA its pid.
one_logger() {
	A=$BATS_TEST_TMPDIR/a.log
	inject a logger "$A" "$@"
	PA=$INJ_PID
	wait_for has_members 1
}

# kill_members PID...: SIGKILL them (a crash) and reap them.
kill_members() {
	local p
	for p in "$@"; do
		kill -KILL "$p"
		reap "$p"
		[ "$status" -eq 137 ]
	done
}

@test "two injected programs checkpointed together, killed, restarted by the script: both finish 0" {
	local dir at_a at_b
	start_coord
	two_loggers 250
	run --separate-stderr ckpt-signal --checkpoint --wait
	echo "$output $stderr"
	[ "$status" -eq 0 ]
	dir=$output
	[ "$dir" = "$CDIR/ckpt_gen_000001" ]
	[ "$(readlink "$CDIR/current")" = ckpt_gen_000001 ]
	[ -x "$dir/ckpt_restart_script.sh" ]
	[ -x "$CDIR/ckpt_restart_script.sh" ]
	shellcheck "$dir/ckpt_restart_script.sh"
	# zstd by default: images that zstd itself accepts.
	[ "$(find "$dir" -name 'ckpt_logger_*.ckpt.zst' | wc -l)" -eq 2 ]
	zstd -q -t "$dir"/ckpt_logger_*.ckpt.zst
	grep -qx 'compress=zstd' "$dir/ckpt_restart_script.sh"
	# They ran on past the checkpoint, writing more of their logs.
	at_a=$(lines "$A") at_b=$(lines "$B")
	wait_for at_least $((at_a + 20)) "$A"
	wait_for at_least $((at_b + 20)) "$B"
	kill_members "$PA" "$PB"
	wait_for has_members 0

	restart_bg "$dir"
	wait_for has_members 2 "$RPORT" || { cat "$BATS_TEST_TMPDIR/restart.out" "$CDIR/ckpt_coord.log"; false; }
	# Members of the new coordinator: a second checkpoint works.
	run ckpt-signal --coord-port "$RPORT" --checkpoint --wait
	[ "$status" -eq 0 ]
	[ "$output" = "$CDIR/ckpt_gen_000002" ]
	reap "$RS_PID"
	cat "$BATS_TEST_TMPDIR/restart.out"
	[ "$status" -eq 0 ]
	[ "$(lines "$A")" -eq 250 ]
	[ "$(lines "$B")" -eq 250 ]
	grep -q "a.log: contents set back to the checkpoint's" "$BATS_TEST_TMPDIR/restart.out"
}

@test "a log over --save-files-max that only grew is cut back to its checkpoint size" {
	local dir
	start_coord --save-files-max 1K --no-gzip
	# The helper's files are private whatever its umask (the list was
	# 0666 under umask 000).
	umask 000
	one_logger 200
	umask 022
	wait_for at_least 30 "$A"
	run ckpt-signal --checkpoint --wait
	[ "$status" -eq 0 ]
	dir=$output
	[ -f "$dir/ckpt_logger_1.ckpt" ]
	grep -q "^GREW .*a.log$" "$dir/ckpt_logger_1.files"
	[ "$(stat -c %a "$dir/ckpt_logger_1.files" "$dir/ckpt_logger_1.ckpt")" = "600
600" ]
	wait_for at_least 60 "$A"
	kill_members "$PA"
	restart_bg "$dir"
	reap "$RS_PID"
	cat "$BATS_TEST_TMPDIR/restart.out"
	[ "$status" -eq 0 ]
	grep -q "a.log: cut back from [0-9]* to [0-9]* bytes" "$BATS_TEST_TMPDIR/restart.out"
	[ "$(lines "$A")" -eq 200 ]
}

@test "a large log changed before its checkpoint size is refused, naming it" {
	local dir
	start_coord --save-files-max 1K --no-gzip
	one_logger 400
	wait_for at_least 30 "$A"
	run ckpt-signal --checkpoint --wait
	[ "$status" -eq 0 ]
	dir=$output
	kill_members "$PA"
	printf 'X' | dd of="$A" bs=1 seek=1000 conv=notrunc status=none
	run "$dir/ckpt_restart_script.sh" --coord-port 0
	echo "$output"
	[ "$status" -eq 99 ]
	[[ $output == *"ckpt-inject: $A: refused: its content up to the checkpoint's"*"changed"* ]]
	printf 'x' >"$A"
	run "$dir/ckpt_restart_script.sh" --coord-port 0
	echo "$output"
	[ "$status" -eq 99 ]
	[[ $output == *"ckpt-inject: $A: refused: it shrank since the checkpoint"* ]]
}

@test "interval checkpoints make successive generations and --keep prunes the old ones" {
	start_coord --interval 1 --keep 2 --no-gzip
	one_logger 2000
	wait_for test -d "$CDIR/ckpt_gen_000003"
	wait_for test ! -d "$CDIR/ckpt_gen_000001"
	[ -f "$CDIR/ckpt_gen_000003/ckpt_logger_1.ckpt" ]
	[ "$(find "$CDIR" -maxdepth 1 -name 'ckpt_gen_*' | wc -l)" -le 2 ]
	run ckpt-signal --status --json
	echo "$output"
	[[ $output == *'"interval": 1'* ]]
	[[ $output == *'"members": 1'* ]]
	run ckpt-signal --interval 0
	[ "$status" -eq 0 ]
	run ckpt-signal --status
	[[ $output == *"interval: 0"* ]]
}

# fake_member: a member that speaks the protocol from this shell over fd 5
# (a /dev/tcp connection), to hold a checkpoint at a chosen step.
fake_member() {
	exec 5<>"/dev/tcp/127.0.0.1/$CPORT"
	echo "JOIN 999999999 999999999 fakehost fake" >&5
	read -r -t 10 reply <&5
	[[ $reply == "OK "* ]]
}

@test "killing the coordinator mid-checkpoint leaves the previous generation current and restorable" {
	local at
	start_coord
	one_logger 400
	wait_for at_least 10 "$A"
	run ckpt-signal --checkpoint --wait
	[ "$status" -eq 0 ]
	fake_member
	ckpt-signal --checkpoint
	read -r -t 10 reply <&5
	[ "$reply" = "FREEZE 2" ]
	echo "FROZEN 2" >&5
	read -r -t 10 reply <&5
	[[ $reply == "DUMP 2 "*" ckpt_fake_2.ckpt.zst zstd "* ]]
	# The logger is frozen, its image being written; the fake never answers.
	wait_for test -f "$CDIR/.ckpt_gen_000002.tmp/.ckpt_logger_1.ckpt.zst.raw"
	kill -KILL "$COORD_PID"
	reap "$COORD_PID"
	exec 5>&-
	[ "$(readlink "$CDIR/current")" = ckpt_gen_000001 ]
	[ ! -e "$CDIR/ckpt_gen_000002" ]
	# The member runs on without its coordinator.
	at=$(lines "$A")
	wait_for at_least $((at + 5)) "$A"
	kill_members "$PA"
	restart_bg "$CDIR/current"
	reap "$RS_PID"
	cat "$BATS_TEST_TMPDIR/restart.out"
	[ "$status" -eq 0 ]
	[ "$(lines "$A")" -eq 400 ]
	# The new coordinator cleared what the dead one left.
	[ ! -e "$CDIR/.ckpt_gen_000002.tmp" ]
}

@test "a member that exits during a checkpoint fails it; the others run on, the next one works" {
	local at
	start_coord
	one_logger 400
	fake_member
	ckpt-signal --checkpoint --wait >"$BATS_TEST_TMPDIR/ck.out" 2>&1 &
	local ck=$!
	CKPT_PIDS+=("$ck")
	read -r -t 10 reply <&5
	[ "$reply" = "FREEZE 1" ]
	# The fake's program exits now: its helper says so and goes.
	echo "GONE 0" >&5
	exec 5>&-
	reap "$ck"
	cat "$BATS_TEST_TMPDIR/ck.out"
	[ "$status" -eq 1 ]
	grep -q "ckpt-signal: checkpoint 1 failed: member 2 (fake, pid 999999999 on fakehost) left during the checkpoint" "$BATS_TEST_TMPDIR/ck.out"
	[ ! -e "$CDIR/current" ]
	[ ! -e "$CDIR/.ckpt_gen_000001.tmp" ]
	at=$(lines "$A")
	wait_for at_least $((at + 5)) "$A"
	run ckpt-signal --checkpoint --wait
	[ "$status" -eq 0 ]
	[ -f "$output/ckpt_logger_1.ckpt.zst" ]
	run ckpt-signal --list
	[ "${#lines[@]}" -eq 1 ]
}

@test "checkpoint --kill: the members are killed once the generation is written" {
	start_coord
	one_logger 400
	wait_for at_least 10 "$A"
	run ckpt-signal --checkpoint --wait --kill
	[ "$status" -eq 0 ]
	reap "$PA"
	[ "$status" -eq 137 ]
	restart_bg "$output"
	reap "$RS_PID"
	cat "$BATS_TEST_TMPDIR/restart.out"
	[ "$status" -eq 0 ]
	[ "$(lines "$A")" -eq 400 ]
}

@test "--compress gzip: .ckpt.gz images gzip accepts; the restart script's coordinator keeps gzip" {
	local dir
	start_coord --compress gzip
	run ckpt-signal --status
	[[ $output == *"compress: gzip"* ]]
	# Its last line waits for $BATS_TEST_TMPDIR/hold: it is still a
	# member at the second checkpoint, however slow the first was.
	one_logger 250 20 "$BATS_TEST_TMPDIR/hold"
	wait_for at_least 10 "$A"
	run ckpt-signal --checkpoint --wait --kill
	[ "$status" -eq 0 ]
	dir=$output
	reap "$PA"
	[ "$status" -eq 137 ]
	[ -f "$dir/ckpt_logger_1.ckpt.gz" ]
	[ ! -e "$dir/ckpt_logger_1.ckpt.zst" ]
	gzip -t "$dir/ckpt_logger_1.ckpt.gz"
	grep -qx 'compress=gzip' "$dir/ckpt_restart_script.sh"
	restart_bg "$dir"
	wait_for has_members 1 "$RPORT" || { cat "$BATS_TEST_TMPDIR/restart.out"; false; }
	run ckpt-signal --coord-port "$RPORT" --checkpoint --wait
	[ "$status" -eq 0 ]
	[ -f "$output/ckpt_logger_1.ckpt.gz" ]
	touch "$BATS_TEST_TMPDIR/hold"
	reap "$RS_PID"
	cat "$BATS_TEST_TMPDIR/restart.out"
	[ "$status" -eq 0 ]
	[ "$(lines "$A")" -eq 250 ]
}

# member_pid ID [PORT]: the pid the coordinator has for member ID, if
# that member is named logger (empty otherwise).
member_pid() {
	ckpt-signal --coord-port "${2:-$CPORT}" --list | awk -F '\t' -v id="$1" \
		'$1 == id && $5 == "logger" { print $2 }'
}

# runs_logger PID LOG: PID is a restored logger (its restorer has set
# its name) writing LOG.
runs_logger() {
	[ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = logger ] &&
		[ "$(readlink "/proc/$1/fd/3")" = "$2" ]
}

# member_runs ID PORT LOG: member ID of the coordinator on PORT is a
# restored logger writing LOG (asked anew each time: the pid the
# coordinator has changes once the restore is done).
member_runs() {
	runs_logger "$(member_pid "$1" "$2")" "$3"
}

# restarts_keep_names kept|taken: two loggers, checkpointed with --kill
# and restarted by the script twice.  Each time both members come back
# as logger with their own ids (the one that wrote a.log writes it
# again), and the next generation's images are named for them, whether
# the restore gave the programs their old pids back (kept: free, as on a
# fresh machine, and root) or found them taken (a process holds them, as
# on a busy machine; unprivileged, the pids are never kept).  Before the
# fix, the pid kept, a restarted member joined as ckpt-remap; the pid
# taken, the members' ids followed the order they joined in.
restarts_keep_names() {
	local path=$1 port dir round pa pb pid ia ib hold=$BATS_TEST_TMPDIR/hold
	start_coord
	port=$CPORT
	A=$BATS_TEST_TMPDIR/a.log B=$BATS_TEST_TMPDIR/b.log
	inject a logger "$A" 300 5 "$hold"
	PA=$INJ_PID
	inject b logger "$B" 300 5 "$hold"
	PB=$INJ_PID
	RS_PID=
	wait_for has_members 2
	wait_for at_least 10 "$A"
	wait_for at_least 10 "$B"
	# Which id is which: the order the two joined in.
	ia=1 ib=2
	[ "$(member_pid 1)" = "$PA" ] || ia=2 ib=1
	for round in 1 2; do
		pa=$(member_pid "$ia" "$port") pb=$(member_pid "$ib" "$port")
		runs_logger "$pa" "$A"
		runs_logger "$pb" "$B"
		run ckpt-signal --coord-port "$port" --checkpoint --wait --kill
		[ "$status" -eq 0 ]
		dir=$output
		ckpt-inspect "$dir/ckpt_logger_$ia.ckpt.zst" | grep -q "$A"
		ckpt-inspect "$dir/ckpt_logger_$ib.ckpt.zst" | grep -q "$B"
		for pid in "$PA" "$PB" "$RS_PID"; do
			[ -n "$pid" ] || continue
			reap "$pid"
			[ "$status" -eq 137 ]
		done
		PA= PB=
		if [ "$path" = taken ] && [ "$(id -u)" -eq 0 ]; then
			exec_clean "$TOP/t/progs/holdpid" "$pa" "$pb" </dev/null \
				>"$BATS_TEST_TMPDIR/holdpid.out" 2>&1 &
			CKPT_PIDS+=("$!")
			wait_for grep -qx ready "$BATS_TEST_TMPDIR/holdpid.out"
		fi
		restart_bg "$dir"
		port=$RPORT
		wait_for has_members 2 "$port" || { cat "$BATS_TEST_TMPDIR/restart.out"; false; }
		wait_for member_runs "$ia" "$port" "$A"
		wait_for member_runs "$ib" "$port" "$B"
		if [ "$path" = kept ]; then
			[ "$(member_pid "$ia" "$port")" = "$pa" ]
			[ "$(member_pid "$ib" "$port")" = "$pb" ]
		else
			[ "$(member_pid "$ia" "$port")" != "$pa" ]
			[ "$(member_pid "$ib" "$port")" != "$pb" ]
		fi
	done
	run ckpt-signal --coord-port "$port" --checkpoint --wait
	[ "$status" -eq 0 ]
	ckpt-inspect "$output/ckpt_logger_$ia.ckpt.zst" | grep -q "$A"
	ckpt-inspect "$output/ckpt_logger_$ib.ckpt.zst" | grep -q "$B"
	touch "$hold"
	reap "$RS_PID"
	cat "$BATS_TEST_TMPDIR/restart.out"
	[ "$status" -eq 0 ]
	[ "$(lines "$A")" -eq 300 ]
	[ "$(lines "$B")" -eq 300 ]
}

# bats test_tags=root
@test "restarted twice with their pids kept, members keep their names and ids" {
	restarts_keep_names kept
}

@test "restarted twice with their pids taken, members keep their names and ids" {
	restarts_keep_names taken
}

@test "a member stopped by SIGSTOP fails the checkpoint, naming it, and stays stopped" {
	start_coord
	one_logger 300
	wait_for at_least 5 "$A"
	kill -STOP "$PA"
	wait_for grep -q '^State:.*T' "/proc/$PA/status"
	run ckpt-signal --checkpoint --wait
	echo "$output"
	[ "$status" -eq 1 ]
	[[ $output == *"member 1 (logger, pid $PA on "*"): pid $PA is stopped (SIGSTOP or job control)"* ]]
	grep -q '^State:.*T' "/proc/$PA/status"
	kill -CONT "$PA"
	run ckpt-signal --checkpoint --wait
	[ "$status" -eq 0 ]
}

@test "ckpt-dump --save-files-max leaves larger files out of the image" {
	A=$BATS_TEST_TMPDIR/a.log
	start_bg logger "$A" 300
	wait_for at_least 40 "$A"
	ckpt-dump --save-files --save-files-max 1K -o "$BATS_TEST_TMPDIR/small.img" "$BG_PID"
	ckpt-dump --save-files -o "$BATS_TEST_TMPDIR/all.img" "$BG_PID"
	run ckpt-inspect "$BATS_TEST_TMPDIR/small.img"
	[[ $output != *"saved"*"a.log"* ]]
	run ckpt-inspect "$BATS_TEST_TMPDIR/all.img"
	[[ $output == *"saved"*"a.log"* ]]
	run ckpt-dump --save-files-max 1K -o "$BATS_TEST_TMPDIR/x.img" "$BG_PID"
	[ "$status" -eq 2 ]
	run ckpt-dump --save-files --save-files-max 1X -o "$BATS_TEST_TMPDIR/x.img" "$BG_PID"
	[ "$status" -eq 2 ]
	[ "$output" = "ckpt-dump: not a size: 1X" ]
}

@test "a member's whole tree is checkpointed and restarted: a parent and four children" {
	local dir D=$BATS_TEST_TMPDIR/w
	mkdir "$D"
	start_coord
	inject tree tree workers "$D"
	PA=$INJ_PID
	wait_for has_members 1
	wait_for_file "$D/ready"
	run ckpt-signal --checkpoint --wait --kill
	[ "$status" -eq 0 ]
	dir=$output
	reap "$PA"
	[ "$status" -eq 137 ]
	run ckpt-inspect "$dir/ckpt_tree_1.ckpt.zst"
	[[ $output == *"tree:     5 processes"* ]]
	restart_bg "$dir"
	touch "$D/go"
	reap "$RS_PID"
	cat "$BATS_TEST_TMPDIR/restart.out"
	[ "$status" -eq 0 ]
	grep -qx "ok workers" "$BATS_TEST_TMPDIR/tree.out"
}

@test "--timeout: a member that never answers fails the checkpoint by name; the others run on" {
	local at
	start_coord --timeout 1
	one_logger 400
	fake_member
	run ckpt-signal --checkpoint --wait
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$output" = "ckpt-signal: checkpoint 1 failed: member 2 (fake, pid 999999999 on fakehost) did not answer FREEZE within 1 s" ]
	[ ! -e "$CDIR/current" ]
	at=$(lines "$A")
	wait_for at_least $((at + 5)) "$A"
	exec 5>&-
}

@test "a checkpoint asked the moment a restarted member joins waits for its restore; both images restore intact" {
	local dir w=$BATS_TEST_TMPDIR/w
	mkdir "$w"
	start_coord --compress none
	# 256 MiB: its restorer fills pages for a while after ckpt-remap's
	# own code is gone from the process.
	inject bulk bulk 256 "$w"
	wait_for grep -q '^ready ' "$BATS_TEST_TMPDIR/bulk.out"
	wait_for has_members 1
	run ckpt-signal --checkpoint --wait --kill
	[ "$status" -eq 0 ]
	reap "$INJ_PID"
	[ "$status" -eq 137 ]
	restart_bg "$output"
	wait_for has_members 1 "$RPORT"
	run ckpt-signal --coord-port "$RPORT" --checkpoint --wait
	echo "$output"
	[ "$status" -eq 0 ]
	dir=$output
	touch "$w/go"
	reap "$RS_PID"
	cat "$BATS_TEST_TMPDIR/restart.out"
	[ "$status" -eq 0 ]
	# The checkpoint of the restarted member holds the program, not its
	# restorer half way.
	run ckpt-remap --new-pids "$dir/ckpt_bulk_1.ckpt"
	echo "$output"
	[ "$status" -eq 0 ]
	# Its output file was set back and written again: "restored: yes".
	[ "$(tail -n 1 "$BATS_TEST_TMPDIR/bulk.out")" = "restored: yes" ]
}

# A member holding both ends of idle TCP connections over loopback (as an
# MPI launcher and its ranks do): killed at a checkpoint, they close with
# a reset, leaving no TIME_WAIT on their addresses, which a restore
# without privilege could not make them on again for a minute.
@test "a member's TCP connections to itself, killed at a checkpoint, leave nothing in TIME_WAIT; restarted, they carry bytes again" {
	local dir port
	start_coord
	workdir tw
	inject tw python3 -c '
import os, socket, sys, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4)
pairs = []
for i in range(3):
    c = socket.create_connection(l.getsockname()); a, _ = l.accept(); pairs.append((c, a))
open(sys.argv[1] + "/port", "w").write(str(l.getsockname()[1]))
while not os.path.exists(sys.argv[1] + "/go"):
    time.sleep(0.01)
for c, a in pairs:
    c.sendall(b"ping"); assert a.recv(4) == b"ping"
    a.sendall(b"pong"); assert c.recv(4) == b"pong"
print("tw: ok", flush=True)' "$D"
	wait_for has_members 1
	wait_for_file "$D/port"
	port=$(cat "$D/port")
	run --separate-stderr ckpt-signal --checkpoint --wait --kill
	[ "$status" -eq 0 ]
	dir=$output
	wait "$INJ_PID" || true
	run ss -Htan state time-wait "( sport = :$port or dport = :$port )"
	echo "TIME_WAIT: $output"
	[ -z "$output" ]
	touch "$D/go"
	restart_bg "$dir"
	# Its output file, reopened by the restore.
	wait_for grep -qx "tw: ok" "$BATS_TEST_TMPDIR/tw.out"
}
