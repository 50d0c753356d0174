#!/usr/bin/env bats
# Computations on several hosts: three hosts made of network namespaces
# (t/lib-net.bash: each with its own address, hostname and a real sshd),
# a coordinator on h1 that listens beyond loopback with a secret, members
# started over ssh on every host by the unprivileged user, checkpointed
# together, and restarted by the generation's script over ssh: on the same
# hosts, on a permutation of them (--host-map) and all on one (--hostfile).
# The members are loggers (t/progs/logger): each exits 0 only if its log
# holds each of its lines once, in order, as after a restore from the
# checkpoint with its log set back.  Root: only root makes the hosts; what
# runs on them runs as ckpt-test.

load lib
load lib-net

bats_require_minimum_version 1.5.0

setup_file() {
	net_hosts 3
	echo "# 3 hosts up in $NET_SECONDS s" >&3
}

teardown_file() {
	net_cleanup
}

# A test's directory, the user's (its checkpoints, logs, the secret).
setup() {
	[ -n "${NET_DIR:-}" ] || skip "no hosts"
	W=$NET_DIR/home/t$BATS_TEST_NUMBER
	as_user mkdir -m 700 "$W"
	as_user sh -c 'umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" >"$1"' sh "$W/secret"
	SSH_CMD="ssh -F $NET_SSH_CONFIG"
}

# Every process the test started on the hosts (coordinators, members,
# their helpers, ssh sessions); the sshds stay, for the next test.
teardown() {
	net_end_test
}

# coord_on HOST: a coordinator on HOST as ckpt-test, listening on its
# address with the test's secret: $CP its port, $CH its address.
coord_on() {
	CH=$NET_PREFIX.${1#h}
	net_on "$1" --as "$NET_USER" ckpt-coord --bind "$CH" --port 0 --port-file "$W/port" \
		--secret-file "$W/secret" --dir "$W/ck" --log "$W/coord.log" \
		</dev/null >/dev/null 2>&1 &
	CKPT_PIDS+=("$!")
	wait_for_file "$W/port"
	CP=$(cat "$W/port")
}

# csignal ARG...: ckpt-signal ARG... to the coordinator at $CH:$CP, from h1.
csignal() {
	net_on h1 --as "$NET_USER" ckpt-signal --coord-host "$CH" --coord-port "$CP" \
		--secret-file "$W/secret" "$@"
}

# lines FILE: how many lines FILE has (0 if none); at_least N FILE.
lines() {
	if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi
}
at_least() {
	[ "$(lines "$2")" -ge "$1" ]
}

# member_on HOST NAME: a logger of 100 lines (held before its last until
# $W/hold) started on HOST over ssh from h1 by ckpt-test, a member of the
# coordinator; its log $W/NAME.log, what ssh printed in $W/NAME.out.
member_on() {
	local cmd
	cmd="$TOP/bin/ckpt-inject --coord-host $CH --coord-port $CP --secret-file $W/secret"
	cmd+=" -- $TOP/t/progs/logger $W/$2.log 100 20 $W/hold"
	net_ssh h1 --as "$NET_USER" "$1" "$cmd" </dev/null >"$W/$2.out" 2>&1 &
	CKPT_PIDS+=("$!")
}

# has N: the coordinator has N members.
has() {
	[ "$(csignal --status | sed -n 's/^members: //p')" = "$1" ]
}

# hosts_are LIST: the coordinator's members are on these hosts
# ("1@h1,2@h2,...", in any order).
hosts_are() {
	[ "$(csignal --status | sed -n 's/^hosts: //p' | tr , '\n' | sort | paste -sd,)" = "$1" ]
}

# three_members: loggers a, b, c on h1, h2, h3 (ids 1, 2, 3), each past
# its tenth line; then checkpointed together and killed: $GEN the
# generation's directory.
three_members() {
	local n=0 m
	coord_on h1
	for m in a b c; do
		member_on "h$((++n))" "$m"
		wait_for has "$n"
	done
	for m in a b c; do
		wait_for at_least 10 "$W/$m.log"
	done
	run hosts_are "1@h1,2@h2,3@h3"
	csignal --status
	[ "$status" -eq 0 ]
	run csignal --checkpoint --wait --kill
	echo "$output"
	[ "$status" -eq 0 ]
	GEN=$output
	[ "$GEN" = "$W/ck/ckpt_gen_000001" ]
	# Each member's image, written on its own host, into the same path
	# there (one filesystem here).
	[ "$(find "$GEN" -name 'ckpt_logger_*.ckpt.zst' | wc -l)" -eq 3 ]
	wait_for has 0
}

# restart_on HOSTS ARG...: the generation's script run on h1 as
# ckpt-test with ARG..., ssh as $SSH_CMD; the members must come back on
# HOSTS (as hosts_are says), then run to their end and exit 0.
restart_on() {
	local want=$1 m rc=0
	shift
	net_on h1 --as "$NET_USER" env CKPT_SSH="$SSH_CMD" "$GEN/ckpt_restart_script.sh" \
		--coord-port 0 --port-file "$W/rport" "$@" </dev/null >"$W/restart.out" 2>&1 &
	RS=$!
	CKPT_PIDS+=("$RS")
	wait_for_file "$W/rport"
	CP=$(cat "$W/rport")
	wait_for has 3
	run hosts_are "$want"
	csignal --status
	[ "$status" -eq 0 ]
	for m in a b c; do
		wait_for at_least 99 "$W/$m.log"
	done
	as_user touch "$W/hold"
	wait_exit "$RS" || rc=$?
	cat "$W/restart.out"
	[ "$rc" -eq 0 ]
}

# bats test_tags=root
@test "hosts: ssh between them as root and as ckpt-test, each its own hostname and address" {
	run net_ssh h1 h2 'hostname; id -un'
	echo "$output"
	[ "$output" = "$(printf 'h2\nroot')" ]
	run net_ssh h3 --as "$NET_USER" h1 'hostname; id -un; ip -4 -o addr show eth0'
	echo "$output"
	[ "${lines[0]}" = h1 ]
	[ "${lines[1]}" = "$NET_USER" ]
	[[ ${lines[2]} == *" $NET_PREFIX.1/24 "* ]]
	run net_on h2 --as "$NET_USER" hostname
	[ "$output" = h2 ]
}

# bats test_tags=root
@test "members on three hosts, checkpointed together, restarted by the script on the same hosts" {
	three_members
	shellcheck "$GEN/ckpt_restart_script.sh"
	grep -qx "secret_file=\${CKPT_COORD_SECRET_FILE:-'$W/secret'}" "$GEN/ckpt_restart_script.sh"
	grep -qx "coord_host=\${CKPT_COORD_HOST:-'$NET_PREFIX.1'}" "$GEN/ckpt_restart_script.sh"
	restart_on "1@h1,2@h2,3@h3"
}

# bats test_tags=root
@test "restarted with --host-map on a permutation of the hosts (h1 -> h2 -> h3 -> h1)" {
	three_members
	restart_on "1@h2,2@h3,3@h1" --host-map h1=h2 --host-map h2=h3 --host h3=h1
}

# bats test_tags=root
@test "restarted with --hostfile: all on one host, and round-robin over two" {
	three_members
	echo h3 >"$W/one"
	restart_on "1@h3,2@h3,3@h3" --hostfile "$W/one"
	rm -f "$W/hold" "$W/rport"
	printf '# two hosts in turn, h3 stays\nh2\nh1\nh3 h3\n' >"$W/two"
	restart_on "1@h2,2@h1,3@h3" --hostfile "$W/two"
}

# as_member CMD...: CMD run on h1 by ckpt-inject as ckpt-test, a member
# of the coordinator at $CH:$CP, its ssh the shim's with $SSH_CMD behind.
as_member() {
	net_on h1 --as "$NET_USER" env CKPT_SSH="$SSH_CMD" ckpt-inject --coord-host "$CH" \
		--coord-port "$CP" --secret-file "$W/secret" -- "$@"
}

# bats test_tags=root
@test "ssh in a member is ckpt-ssh: a pipeline over two hosts gives a plain pipeline's bytes; stdin's end, stderr and exit status come through" {
	coord_on h1
	run --separate-stderr as_member bash -c \
		"ssh h2 'seq 1 30000' | ssh h3 'tr 0-9 a-j; echo filtered >&2' | sha256sum"
	echo "$output $stderr"
	[ "$status" -eq 0 ]
	[ "$output" = "$(seq 1 30000 | tr 0-9 a-j | sha256sum)" ]
	[ "$stderr" = filtered ]
	# The remote commands are members there, on their host.
	run as_member bash -c "ssh h2 '$TOP/bin/ckpt-signal --member --status; hostname'"
	echo "$output"
	[[ ${lines[0]} == "member: "[1-9]* ]]
	[ "${lines[-1]}" = h2 ]
	run as_member bash -c "printf 'a\nb\n' | ssh h3 'cat; echo end'"
	echo "$output"
	[ "$output" = "$(printf 'a\nb\nend')" ]
	run as_member ssh h2 'exit 7'
	[ "$status" -eq 7 ]
	run -127 as_member ssh h3 "$TOP/t/progs/no-such-program"
	echo "$output"
	[ "$status" -eq 127 ]
}

# script_on_h1 ARG...: the generation $GEN's restart script, on h1 as
# ckpt-test, to its end.
script_on_h1() {
	rm -f "$W/rport"
	net_on h1 --as "$NET_USER" env CKPT_SSH="$SSH_CMD" "$GEN/ckpt_restart_script.sh" \
		--coord-port 0 --port-file "$W/rport" "$@" </dev/null
}

# bats test_tags=root
@test "a pipeline through ckpt-ssh over three hosts, checkpointed ten times (the last --kill), restarted on the same and on permuted hosts: an uninterrupted run's bytes" {
	local job want k seed=${CKPT_SEED:-$RANDOM}
	echo "# CKPT_SEED=$seed" >&3
	RANDOM=$seed
	coord_on h1
	# shellcheck disable=SC2016 # expanded by the shells on h2
	job='ssh h2 '\''for i in $(seq 1 4000); do echo "line $i"; sleep 0.002; done'\'
	job+=" | ssh h3 'tr 0-9 a-j' | tee $W/progress | sha256sum >$W/sum"
	want=$(for i in $(seq 1 4000); do echo "line $i"; done | tr 0-9 a-j | sha256sum)
	# The member's output file is the user's: a restart puts it back as the user.
	as_user touch "$W/job.out"
	(
		no_bats_fds
		as_member bash -c "$job"
	) </dev/null >"$W/job.out" 2>&1 &
	CKPT_PIDS+=("$!")
	wait_for has 3
	for ((k = 1; k <= 9; k++)); do
		wait_for at_least $((k * 350 + RANDOM % 150)) "$W/progress"
		run csignal --checkpoint --wait
		echo "$output"
		[ "$status" -eq 0 ]
	done
	wait_for at_least 3500 "$W/progress"
	run csignal --checkpoint --wait --kill
	echo "$output"
	[ "$status" -eq 0 ]
	GEN=$output
	wait_for has 0
	run script_on_h1
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(cat "$W/sum")" = "$want" ]
	run script_on_h1 --host-map h1=h2 --host-map h2=h3 --host-map h3=h1
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(cat "$W/sum")" = "$want" ]
}

# pp_member HOST ROLE: peerpair ROLE on HOST, a member as ckpt-test, over
# TCP to h1's address; its output into $W/pp.ROLE.
pp_member() {
	as_user touch "$W/pp.$2"
	(
		no_bats_fds
		net_on "$1" --as "$NET_USER" env PEERPAIR_ADDR="$NET_PREFIX.1" ckpt-inject \
			--coord-host "$CH" --coord-port "$CP" --secret-file "$W/secret" \
			-- "$TOP/t/progs/peerpair" "$2" "$W/pp" 3000000
	) </dev/null >"$W/pp.$2" 2>&1 &
	CKPT_PIDS+=("$!")
}

# pp_lines: the lines both peerpair logs hold.
pp_lines() {
	cat "$W/pp/server.out" "$W/pp/client.out" 2>/dev/null | wc -l
}

# pp_past N: the logs hold more than N lines.
pp_past() {
	[ "$(pp_lines)" -gt "$1" ]
}

# pp_same: each log is an uninterrupted run's, byte for byte.
pp_same() {
	local role
	for role in server client; do
		"$TOP/t/progs/peerpair" expect "$role" 3000000 >"$W/$role.expect"
		cmp "$W/$role.expect" "$W/pp/$role.out"
	done
}

# bats test_tags=root
@test "a TCP client/server pair across two hosts, requests in flight both ways, checkpointed ten times (the last --kill), restarted on the same and on permuted hosts: every byte in order" {
	local k n kept
	coord_on h1
	as_user mkdir "$W/pp"
	pp_member h1 server
	pp_member h2 client
	wait_for has 2
	wait_for pp_past 0
	# Each checkpoint after a new milestone in either log.
	for ((k = 1; k <= 9; k++)); do
		n=$(pp_lines)
		run csignal --checkpoint --wait
		echo "$output"
		[ "$status" -eq 0 ]
		wait_for pp_past "$n"
	done
	# The coordinator shows the connection between them.
	run csignal --status
	echo "$output"
	[[ $output == *"connections: 1-2:tcp"* ]]
	run csignal --checkpoint --wait --kill
	echo "$output"
	[ "$status" -eq 0 ]
	GEN=$output
	wait_for has 0
	# Bytes were in flight at some checkpoint, kept in an image.
	kept=$(for img in "$W"/ck/ckpt_gen_*/ckpt_peerpair_*.ckpt*; do ckpt-inspect "$img"; done |
		sed -n 's/.* bytes_kept \([0-9]*\).*/\1/p' | sort -n | tail -1)
	echo "most bytes kept: $kept"
	[ "$kept" -gt 0 ]
	run script_on_h1
	echo "$output"
	[ "$status" -eq 0 ]
	pp_same
	run script_on_h1 --host-map h1=h2 --host-map h2=h1
	echo "$output"
	[ "$status" -eq 0 ]
	pp_same
}

# bats test_tags=root
@test "a checkpoint while a member's ssh is still starting fails cleanly or waits, and the pipeline goes on; the next checkpoint, with the remote member joined, works" {
	local first
	coord_on h1
	# A real ssh (not the shim, first in the member's PATH) that starts only
	# once $W/go is there.
	as_user sh -c 'cat >"$1/slowssh"; chmod 700 "$1/slowssh"' sh "$W" <<-SH
		#!/bin/sh
		while [ ! -e $W/go ]; do sleep 0.05; done
		exec /usr/bin/ssh -F $NET_SSH_CONFIG "\$@"
	SH
	as_user touch "$W/job.out"
	(
		no_bats_fds
		net_on h1 --as "$NET_USER" env CKPT_SSH="$W/slowssh" ckpt-inject --coord-host "$CH" \
			--coord-port "$CP" --secret-file "$W/secret" -- bash -c \
			"ssh h2 'while [ ! -e $W/go2 ]; do sleep 0.05; done; seq 1 20000' | sha256sum >$W/sum"
	) </dev/null >"$W/job.out" 2>&1 &
	CKPT_PIDS+=("$!")
	wait_for has 1
	# ckpt-ssh waits for its ssh: the checkpoint either holds it as it is
	# or fails naming why; no generation is made of a half.
	run csignal --checkpoint --wait
	echo "$output"
	first=$status
	if [ "$first" -ne 0 ]; then
		[[ $output == *"checkpoint 1 failed: "* ]]
		[ ! -e "$W/ck/current" ]
	fi
	as_user touch "$W/go"
	wait_for has 2
	run csignal --checkpoint --wait
	echo "$output"
	[ "$status" -eq 0 ]
	as_user touch "$W/go2"
	wait_for has 0
	[ "$(cat "$W/sum")" = "$(seq 1 20000 | sha256sum)" ]
}
