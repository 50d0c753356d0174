#!/usr/bin/env bats
# The coordinator's protocol and its clients' errors: a bad line gets an
# ERR reply and the coordinator serves on; no coordinator is exit 3;
# ckpt-inject starts one when none answers and passes the program's exit
# status through; --bind needs a shared secret, and a client without it
# is refused and logged.

load lib

bats_require_minimum_version 1.5.0

teardown() {
	coord_teardown
}

# free_port: a loopback port nobody listens on (as far as one can tell).
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ask LINE: send LINE on fd 5, the answer in $reply.
ask() {
	printf '%s\n' "$1" >&5
	read -r -t 10 reply <&5
	echo "$1 -> $reply"
}

@test "malformed and unknown lines get an ERR reply; the coordinator serves on" {
	start_coord
	exec 5<>"/dev/tcp/127.0.0.1/$CPORT"
	ask "GREETINGS world"
	[ "$reply" = "ERR unknown command GREETINGS" ]
	ask "JOIN abc 1 host prog"
	[ "$reply" = "ERR JOIN: argument 1 is not a number" ]
	ask "INTERVAL"
	[ "$reply" = "ERR INTERVAL takes 1 argument" ]
	ask "STATUS now"
	[ "$reply" = "ERR STATUS takes at most 0 arguments" ]
	ask "CHECKPOINT SOON"
	[[ $reply == "ERR CHECKPOINT: unknown argument"* ]]
	ask "FROZEN 3"
	[ "$reply" = "ERR FROZEN: not a member" ]
	ask "FREEZE 1"
	[ "$reply" = "ERR FREEZE is sent by the coordinator, not to it" ]
	# DUMP's compressor is a name, and only one of three.
	ask "DUMP 1 /tmp f 1 0"
	[ "$reply" = "ERR DUMP: argument 4 is not a compressor (zstd, gzip or none)" ]
	ask "DUMP 1 /tmp f zstd 0"
	[ "$reply" = "ERR DUMP is sent by the coordinator, not to it" ]
	ask "JOIN 1 1 h%zz p"
	[ "$reply" = "ERR JOIN: argument 3 has a bad %XX escape" ]
	# An escaped control character (a line break to forge a line of a
	# log or of the protocol) is no better.
	ask "JOIN 1 1 h%0Aforged p"
	[ "$reply" = "ERR JOIN: argument 3 has a bad %XX escape" ]
	ask ""
	[ "$reply" = "ERR empty line" ]
	printf 'STATUS\001\n' >&5
	read -r -t 10 reply <&5
	[ "$reply" = "ERR byte 0x01 at column 7 is not printable text" ]
	# A NUL is named as what it is (it was taken for 0x7f).
	printf 'STA\000TUS\n' >&5
	read -r -t 10 reply <&5
	[ "$reply" = "ERR byte 0x00 at column 4 is not printable text" ]
	# One answer for a line over the limit, however long it is.
	{
		head -c 10000 /dev/zero | tr '\0' A
		echo
	} >&5
	read -r -t 10 reply <&5
	[ "$reply" = "ERR line over 4096 bytes" ]
	# The same connection, then another client, are still served.
	ask "STATUS"
	[[ $reply == "OK members=0 state=idle "* ]]
	run ckpt-signal --status
	[ "$status" -eq 0 ]
	[[ $output == *"members: 0"* ]]
	ask "CHECKPOINT WAIT"
	[ "$reply" = "ERR no members to checkpoint" ]
	exec 5>&-
	run ckpt-signal --checkpoint
	[ "$status" -eq 1 ]
	[ "$output" = "ckpt-signal: no members to checkpoint" ]
	kill -0 "$COORD_PID"
}

@test "no coordinator: ckpt-signal exits 3 naming the address; usage errors exit 2" {
	local port
	port=$(free_port)
	for cmd in --status --checkpoint --list --kill --quit "--interval 5"; do
		# shellcheck disable=SC2086 # --interval 5 is two words
		run ckpt-signal --coord-port "$port" $cmd
		[ "$status" -eq 3 ]
		[ "$output" = "ckpt-signal: no coordinator at 127.0.0.1:$port: Connection refused" ]
	done
	CKPT_COORD_PORT=$port run ckpt-signal --status
	[ "$status" -eq 3 ]
	run ckpt-signal
	[ "$status" -eq 2 ]
	run ckpt-signal --status --list
	[ "$status" -eq 2 ]
	run ckpt-signal --wait --status
	[ "$status" -eq 2 ]
	run ckpt-signal --coord-port 70000 --status
	[ "$status" -eq 2 ]
	[ "$output" = "ckpt-signal: not a port: 70000" ]
}

@test "ckpt-inject starts a coordinator when none answers; it exits after the last member" {
	local port dir=$BATS_TEST_TMPDIR/new/ck
	port=$(free_port)
	COORD_PORTS+=("$port")
	# --dir names a directory not made yet: the coordinator makes it.
	exec_clean ckpt-inject --coord-port "$port" --dir "$dir" --no-gzip -- \
		logger "$BATS_TEST_TMPDIR/a.log" 100 </dev/null >"$BATS_TEST_TMPDIR/a.out" 2>&1 &
	local pa=$!
	CKPT_PIDS+=("$pa")
	wait_for has_members 1 "$port"
	run ckpt-signal --coord-port "$port" --checkpoint --wait
	[ "$status" -eq 0 ]
	[ -f "$output/ckpt_logger_1.ckpt" ]
	[ "$(stat -c %a "$dir")" = 700 ]
	reap "$pa"
	[ "$status" -eq 0 ]
	# --exit-on-last: gone with its only member.
	wait_for eval "! ckpt-signal --coord-port $port --status 2>/dev/null"
	run ckpt-signal --coord-port "$port" --status
	[ "$status" -eq 3 ]
}

@test "ckpt-inject: the program's exit status, its own failures CKPT_FAIL_RC" {
	start_coord
	run ckpt-inject -- sh -c 'exit 7'
	[ "$status" -eq 7 ]
	run ckpt-inject -- "$BATS_TEST_TMPDIR/no-such-program"
	[ "$status" -eq 99 ]
	[[ $output == "ckpt-inject: cannot run $BATS_TEST_TMPDIR/no-such-program: No such file or directory" ]]
	CKPT_FAIL_RC=111 run ckpt-inject
	[ "$status" -eq 111 ]
	run ckpt-inject -p 999999999
	[ "$status" -eq 99 ]
	[ "$output" = "ckpt-inject: pid 999999999: no such process" ]
	run ckpt-inject --coord-host 192.0.2.1.invalid -- true
	[ "$status" -eq 99 ]
	[[ $output == "ckpt-inject: no coordinator at 192.0.2.1.invalid:"* ]]
}

# answers PORT: a coordinator answers on PORT.
answers() {
	ckpt-signal --coord-port "$1" --status >/dev/null 2>&1
}

@test "ckpt-inject that cannot run its program: the coordinator it started exits at once" {
	local port
	port=$(free_port)
	COORD_PORTS+=("$port")
	run exec_clean ckpt-inject --coord-port "$port" --dir "$BATS_TEST_TMPDIR/ck" -- "$BATS_TEST_TMPDIR/no-such-program"
	[ "$status" -eq 99 ]
	[ "$output" = "ckpt-inject: cannot run $BATS_TEST_TMPDIR/no-such-program: No such file or directory" ]
	# It had a member, which is gone (it waited 30 s for one before).
	wait_for -t 5 not answers "$port"
}

@test "ckpt-inject not taken as a member (no secret, wrong secret): CKPT_FAIL_RC naming why, or --run-anyway" {
	local s=$BATS_TEST_TMPDIR/secret
	echo "a-long-enough-secret" >"$s"
	echo "not-the-secret" >"$BATS_TEST_TMPDIR/wrong"
	chmod 600 "$s" "$BATS_TEST_TMPDIR/wrong"
	start_coord --secret-file "$s"
	run ckpt-inject -- sh -c 'echo ran; exit 7'
	[ "$status" -eq 99 ]
	[ "$output" = "ckpt-inject: coordinator 127.0.0.1:$CPORT refused the member: ERR this coordinator needs the shared secret first (AUTH)" ]
	run ckpt-inject --secret-file "$BATS_TEST_TMPDIR/wrong" -- sh -c 'echo ran; exit 7'
	[ "$status" -eq 99 ]
	[[ $output == "ckpt-inject: "*"wrong secret"* ]]
	[[ $output != *ran* ]]
	run ckpt-inject --run-anyway -- sh -c 'echo ran; exit 7'
	[ "$status" -eq 7 ]
	[ "${lines[0]}" = "ckpt-inject: coordinator 127.0.0.1:$CPORT refused the member: ERR this coordinator needs the shared secret first (AUTH); running without checkpoints (--run-anyway)" ]
	[ "${lines[1]}" = ran ]
	run ckpt-inject --secret-file "$s" -- sh -c 'echo ran; exit 7'
	[ "$status" -eq 7 ]
	[ "$output" = ran ]
	# Nothing could be reached: the same rule.
	run ckpt-inject --coord-host 192.0.2.1.invalid --run-anyway -- sh -c 'exit 7'
	[ "$status" -eq 7 ]
	[[ $output == "ckpt-inject: no coordinator at 192.0.2.1.invalid:"*"; running without checkpoints (--run-anyway)" ]]
}

@test "ckpt-inject -p adopts a running process" {
	start_coord
	start_bg logger "$BATS_TEST_TMPDIR/a.log" 300
	local pa=$BG_PID
	# Once it is the logger (its log exists), not the shell before exec.
	wait_for_file "$BATS_TEST_TMPDIR/a.log"
	run ckpt-inject -p "$pa"
	[ "$status" -eq 0 ]
	wait_for has_members 1
	run ckpt-signal --list
	[[ $output == "1	$pa	"*"	logger" ]]
	run ckpt-signal --checkpoint --wait
	[ "$status" -eq 0 ]
	[ -f "$output/ckpt_logger_1.ckpt.zst" ]
	ckpt-inspect "$output/ckpt_logger_1.ckpt.zst" >/dev/null
}

@test "--bind needs a 0600 secret file; a client without the secret is refused and logged" {
	local s=$BATS_TEST_TMPDIR/secret
	run ckpt-coord --bind 127.0.0.1 --port 0
	[ "$status" -eq 2 ]
	[ "$output" = "ckpt-coord: --bind 127.0.0.1 listens beyond this host: it needs --secret-file" ]
	echo "a-long-enough-secret" >"$s"
	chmod 644 "$s"
	run ckpt-coord --bind 127.0.0.1 --port 0 --secret-file "$s"
	[ "$status" -eq 2 ]
	[[ $output == *"has mode 0644: others may read it"* ]]
	# A FIFO is refused at once (its open used to wait for a writer).
	mkfifo -m 600 "$BATS_TEST_TMPDIR/fifo"
	run timeout 10 ckpt-coord --port 0 --secret-file "$BATS_TEST_TMPDIR/fifo"
	[ "$status" -eq 2 ]
	[ "$output" = "ckpt-coord: secret file $BATS_TEST_TMPDIR/fifo is not a regular file" ]
	chmod 600 "$s"
	start_coord --bind 127.0.0.1 --secret-file "$s"
	run ckpt-signal --status
	[ "$status" -eq 1 ]
	[ "$output" = "ckpt-signal: this coordinator needs the shared secret first (AUTH)" ]
	grep -q "STATUS without the secret; refused" "$BATS_TEST_TMPDIR/coord.log"
	echo "not-the-secret" >"$BATS_TEST_TMPDIR/wrong"
	chmod 600 "$BATS_TEST_TMPDIR/wrong"
	run ckpt-signal --secret-file "$BATS_TEST_TMPDIR/wrong" --status
	[ "$status" -eq 1 ]
	[[ $output == *"wrong secret"* ]]
	wait_for grep -q "left without proving the secret" "$BATS_TEST_TMPDIR/coord.log"
	# A proof that is not the secret's.
	exec 5<>"/dev/tcp/127.0.0.1/$CPORT"
	ask "HELLO $(printf '%064d' 7)"
	[[ $reply =~ ^CHALLENGE\ [0-9a-f]{64}\ [0-9a-f]{64}$ ]]
	ask "AUTH $(printf '%064d' 0)"
	[ "$reply" = "ERR wrong secret" ]
	exec 5>&-
	grep -q "wrong secret; refused" "$BATS_TEST_TMPDIR/coord.log"
	# A failed proof costs the address a second before its next try.
	run ckpt-signal --secret-file "$s" --status
	[ "$status" -eq 1 ]
	[[ $output == "ckpt-signal: the coordinator did not prove it knows the secret: ERR 1 failed proofs from 127.0.0.1: try again in 1 s" ]]
	wait_for ckpt-signal --secret-file "$s" --status
	# Members bring it too; the environment says where it is.
	export CKPT_COORD_SECRET_FILE=$s
	inject a logger "$BATS_TEST_TMPDIR/a.log" 300
	wait_for has_members 1
	run ckpt-signal --checkpoint --wait
	[ "$status" -eq 0 ]
}

@test "with a secret, a client that stays silent is dropped after 10 s and others are served" {
	local s=$BATS_TEST_TMPDIR/secret line rc=0
	echo "a-long-enough-secret" >"$s"
	chmod 600 "$s"
	start_coord --secret-file "$s"
	exec 5<>"/dev/tcp/127.0.0.1/$CPORT"
	# The coordinator closes it: read sees the end within 20 s.
	read -r -t 20 line <&5 || rc=$?
	exec 5>&-
	[ "$rc" -eq 1 ]
	grep -q "no secret in 10 seconds; dropped" "$BATS_TEST_TMPDIR/coord.log"
	run ckpt-signal --secret-file "$s" --status
	[ "$status" -eq 0 ]
}

@test "--daemon returns once listening; CKPT_DIR and CKPT_GZIP=0 are honoured; --quit ends it" {
	local dir=$BATS_TEST_TMPDIR/ck pf=$BATS_TEST_TMPDIR/port port
	mkdir "$dir"
	CKPT_DIR=$dir CKPT_GZIP=0 run ckpt-coord --daemon --port 0 --port-file "$pf" \
		--log "$BATS_TEST_TMPDIR/coord.log"
	[ "$status" -eq 0 ]
	port=$(cat "$pf")
	COORD_PORTS+=("$port")
	export CKPT_COORD_PORT=$port
	run ckpt-signal --status
	[ "$status" -eq 0 ]
	[[ $output == *"dir: $dir"* ]]
	[[ $output == *"compress: none"* ]]
	inject a logger "$BATS_TEST_TMPDIR/a.log" 300
	wait_for has_members 1 "$port"
	run ckpt-signal --checkpoint --wait
	[ "$status" -eq 0 ]
	[ -f "$dir/ckpt_gen_000001/ckpt_logger_1.ckpt" ]
	run ckpt-signal --quit
	[ "$status" -eq 0 ]
	wait_for eval "! ckpt-signal --status 2>/dev/null"
	grep -q "exiting" "$BATS_TEST_TMPDIR/coord.log"
}

@test "--compress and CKPT_COMPRESS choose the compressor, the option first; a bad name is a usage error" {
	local pf=$BATS_TEST_TMPDIR/port
	run ckpt-coord --compress xz --port 0
	[ "$status" -eq 2 ]
	[ "$output" = "ckpt-coord: --compress: not a compressor (zstd, gzip or none): xz" ]
	CKPT_COMPRESS=lz4 run ckpt-coord --port 0
	[ "$status" -eq 2 ]
	[ "$output" = "ckpt-coord: CKPT_COMPRESS: not a compressor (zstd, gzip or none): lz4" ]
	run ckpt-inject --compress 1 -- true
	[ "$status" -eq 99 ]
	[ "$output" = "ckpt-inject: --compress: not a compressor (zstd, gzip or none): 1" ]
	CKPT_COMPRESS=gzip CKPT_GZIP=0 start_coord
	run ckpt-signal --status
	[[ $output == *"compress: gzip"* ]]
	CKPT_COMPRESS=gzip start_coord --compress none
	run ckpt-signal --status
	[[ $output == *"compress: none"* ]]
	# Given the option, the environment is not read at all.
	CKPT_COMPRESS=lz4 start_coord --compress gzip
	run ckpt-signal --status
	[[ $output == *"compress: gzip"* ]]
	start_coord --no-gzip --compress zstd
	run ckpt-signal --status
	[[ $output == *"compress: zstd"* ]]
	start_coord
	run ckpt-signal --status
	[[ $output == *"compress: zstd"* ]]
	ckpt-signal --status --json | grep -q '"compress": "zstd"'
}

@test "ckpt-signal --kill kills every member; the coordinator serves on" {
	start_coord
	inject a logger "$BATS_TEST_TMPDIR/a.log" 3000
	local pa=$INJ_PID
	inject b logger "$BATS_TEST_TMPDIR/b.log" 3000
	local pb=$INJ_PID
	wait_for has_members 2
	run ckpt-signal --kill
	[ "$status" -eq 0 ]
	reap "$pa"
	[ "$status" -eq 137 ]
	reap "$pb"
	[ "$status" -eq 137 ]
	wait_for has_members 0
	kill -0 "$COORD_PID"
}

# n_descendants PID N: PID has N descendants now (for wait_for, which runs
# it anew each time; a "$(...)" in its arguments is counted once).
n_descendants() {
	[ "$(descendants "$1" | wc -l)" -eq "$2" ]
}

@test "ckpt-signal --kill kills a member's whole tree, not only its root" {
	local kids
	start_coord
	inject t bash -c 'sleep 301 & sleep 302 & wait'
	local pt=$INJ_PID
	wait_for has_members 1
	wait_for n_descendants "$pt" 2
	kids=$(descendants "$pt")
	run ckpt-signal --kill
	[ "$status" -eq 0 ]
	reap "$pt"
	[ "$status" -eq 137 ]
	# The two sleeps went with it.
	for k in $kids; do
		wait_for bash -c "! kill -0 $k 2>/dev/null || grep -q '^State:.Z' /proc/$k/status"
	done
}
