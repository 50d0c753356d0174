#!/usr/bin/env bats
# Real servers from Debian, in one tree with clients of them caught
# mid-work, checkpointed and restored while they are driven through their
# own protocol: redis-server (t/progs/rediswork.py, plain sockets speaking
# RESP: answers queued at both ends of a connection, half a request sent,
# a transaction open, a subscriber with messages queued), then redis-cli
# from outside; memcached (t/progs/mcwork.py, its text protocol over TCP
# and UDP), then memcached-tool.  No privilege is needed.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir real
	PORT=$(free_port)
}

teardown() {
	kill_started
	kill_in_dir "$D" redis-server
	kill_in_dir "$D" memcached
}

# cli ARG...: redis-cli to the server of the test, on its TCP port.
cli() {
	redis-cli -p "$PORT" "$@"
}

# info FIELD: FIELD of the server's INFO.
info() {
	cli INFO server | tr -d '\r' | sed -n "s/^$1://p"
}

# redis_up_past S: the server's uptime is past S seconds (its clock goes on).
redis_up_past() {
	[ "$(info uptime_in_seconds)" -gt "$1" ]
}

# start_redis: rediswork on $D and $PORT in the background, ready; skips,
# with its one line, where redis-server cannot start.  $UPTIME and $RUN_ID
# are the server's then.
start_redis() {
	if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
		skip "redis-server or redis-cli is not installed (make test-deps installs them)"
	fi
	start_bg /usr/bin/python3 "$TOP/t/progs/rediswork.py" "$D" "$PORT"
	wait_for grep -qs -e '^ready ' -e '^cannot start' "$OUT"
	if grep -q '^cannot start' "$OUT"; then
		skip "$(cat "$OUT")"
	fi
	UPTIME=$(info uptime_in_seconds)
	RUN_ID=$(info run_id)
	[ -n "$RUN_ID" ]
}

# start_bare_redis: redis-server alone, in the background, on $PORT and
# $D/redis.sock, with the key k:7; skips where it cannot start.
start_bare_redis() {
	if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
		skip "redis-server or redis-cli is not installed (make test-deps installs them)"
	fi
	start_bg redis-server --port "$PORT" --bind 127.0.0.1 --unixsocket "$D/redis.sock" \
		--save '' --appendonly no --daemonize no --dir "$D"
	wait_for -t 10 pongs || skip "redis-server did not start: $(tail -n 2 "$OUT")"
	[ "$(cli SET k:7 value-7)" = OK ]
}

# done_or_gone NAME PID: the program said "NAME: ok", or PID is gone.
done_or_gone() {
	grep -qs "^$1: ok" "$OUT" || ! kill -0 "$2" 2>/dev/null
}

# checked NAME PID RESTORED: told to go, the tree PID (the driver, or the
# ckpt-remap that became it) checked every answer and says RESTORED and
# "NAME: ok".
checked() {
	touch "$D/go"
	wait_for -t 30 done_or_gone "$1" "$2"
	cat "$OUT" "$BATS_TEST_TMPDIR/bg.err" "$BATS_TEST_TMPDIR/remap.err" 2>/dev/null || true
	grep -qx "restored: $3" "$OUT"
	grep -q "^$1: ok" "$OUT"
}

# stopped PID: told to stop, the driver shuts its server down and exits 0.
stopped() {
	local st=0
	touch "$D/stop"
	wait "$1" || st=$?
	CKPT_PIDS=()
	echo "exit status $st"
	[ "$st" -eq 0 ]
}

# redis_checked PID RESTORED: checked redis PID RESTORED; then redis-cli
# finds the same server (run_id, uptime going on), the keys of before (by TCP
# and by the unix socket) and the DBSIZE the program counted; stopped.
redis_checked() {
	checked redis "$@"
	[ "$(cli DBSIZE)" = "$(awk '/^redis: ok/{print $4}' "$OUT")" ]
	[ "$(cli GET k:7)" = value-7 ]
	[ "$(redis-cli -s "$D/redis.sock" GET k:999)" = value-999 ]
	[ "$(cli STRLEN big:127)" = 65536 ]
	[ "$(cli GET cnt)" = 300 ]
	[ "$(info run_id)" = "$RUN_ID" ]
	wait_for -t 5 redis_up_past "$UPTIME"
	[ "$(cli SET after restored)" = OK ]
	[ "$(cli GET after)" = restored ]
	stopped "$1"
}

# again: the output file as it was at the checkpoint, its first line
# ("ready PID"), where a restored program goes on writing (it changed
# since: ckpt-remap --allow-changed-files), and the driver's go and stop
# files gone.
again() {
	rm "$D/go" "$D/stop"
	head -n 1 "$OUT" >"$BATS_TEST_TMPDIR/first"
	cat "$BATS_TEST_TMPDIR/first" >"$OUT"
}

# remap_bg [OPTION...]: ckpt-remap OPTION... $IMG in the background; its
# pid in $BG_PID (the restored program writes to $OUT again, where its
# stdout was).
remap_bg() {
	exec_clean ckpt-remap "$@" "$IMG" </dev/null >"$BATS_TEST_TMPDIR/remap.out" 2>"$BATS_TEST_TMPDIR/remap.err" &
	BG_PID=$!
	CKPT_PIDS+=("$BG_PID")
}

@test "redis-server, a client with 8 MiB of answers unread (TCP) and half a request sent (unix), another subscribed and in a transaction: dump -t --kill, restore, every answer checks out, redis-cli finds the same server" {
	start_redis
	bg_dump_kill -t
	ckpt-inspect "$IMG" >"$BATS_TEST_TMPDIR/inspect"
	grep -q ' inet stream listening 127.0.0.1:'"$PORT"' ' "$BATS_TEST_TMPDIR/inspect"
	grep -q " unix stream listening $D/redis.sock " "$BATS_TEST_TMPDIR/inspect"
	grep -q ' tcp .* established 127.0.0.1:'"$PORT"' -> 127.0.0.1:[0-9]* queued 0 sendq [1-9]' "$BATS_TEST_TMPDIR/inspect"
	grep -q ' tcp .* established 127.0.0.1:[0-9]* -> 127.0.0.1:'"$PORT"' queued [1-9]' "$BATS_TEST_TMPDIR/inspect"
	remap_bg
	redis_checked "$BG_PID" yes
}

@test "redis-server and its clients mid-work: a dump -t without --kill leaves them untouched, and the image restored once they are gone checks out too" {
	start_redis
	ckpt-dump -t -o "$IMG" "$BG_PID"
	redis_checked "$BG_PID" no
	# The server shut down: its port and socket are free again.
	again
	remap_bg --allow-changed-files
	redis_checked "$BG_PID" yes
}

# pongs: the server answers redis-cli.
pongs() {
	[ "$(cli PING 2>/dev/null)" = PONG ]
}

# gone PID...: none of the PIDs is there any more.
gone() {
	local p
	for p in "$@"; do
		[ ! -e "/proc/$p" ] || return 1
	done
}

# round_trips UP: the tree started with start_bg dumped with --kill and
# restored three times, the restored tree dumped again (by its pid here)
# once its server answers (UP succeeds); left restored, its ckpt-remap in
# $BG_PID.  The image records the pids the tree sees, so each restore
# gives every process the pids it knows.
round_trips() {
	local root host i tree
	root=$(awk '/^ready /{print $2}' "$OUT")
	read -ra tree <<<"$BG_PID $(descendants "$BG_PID" | tr '\n' ' ')"
	bg_dump_kill -t
	for i in 1 2 3; do
		wait_for gone "${tree[@]}"
		remap_bg
		[ "$i" -eq 3 ] && break
		wait_for "$1"
		host=$(host_of "$root")
		read -ra tree <<<"$host $(descendants "$host" | tr '\n' ' ')"
		ckpt-dump -t --kill -o "$IMG" "$host"
		wait "$BG_PID" || true
		CKPT_PIDS=()
	done
}

@test "redis-server and its clients mid-work: three round trips (the restored tree dumped with --kill and restored again), then every answer checks out" {
	start_redis
	round_trips pongs
	redis_checked "$BG_PID" yes
}

# outside_unix: a client outside, by the unix socket, that says
# "connected" once answered and then how its connection ended.
outside_unix() {
	exec_clean /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"PING\r\n")
print("connected" if s.recv(10) == b"+PONG\r\n" else "no PONG", flush=True)
print("closed" if s.recv(10) == b"" else "more", flush=True)' "$D/redis.sock" \
		</dev/null >"$BATS_TEST_TMPDIR/unix.out" 2>&1 &
	CKPT_PIDS+=("$!")
	wait_for_line "$BATS_TEST_TMPDIR/unix.out" '^connected$'
}

# clients N: the server has N clients.
clients() {
	[ "$(cli INFO clients | tr -d '\r' | sed -n 's/^connected_clients://p')" = "$1" ]
}

@test "redis-server dumped alone, clients outside by TCP and by its unix socket: refused naming each; with --tcp-close --ext-unix=close restored, their connections closed, the keys there" {
	start_bare_redis
	local tcp
	exec {tcp}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'PING\r\n' >&"$tcp"
	read -r -u "$tcp" line
	[ "$line" = $'+PONG\r' ]
	outside_unix
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	one_line 1 "pid $BG_PID: fd " ckpt-dump
	# shellcheck disable=SC2154 # bats' run sets stderr
	[[ $stderr == *" is a unix socket (socket:["*"]) on $D/redis.sock whose peer is outside the dumped processes (--ext-unix=close restores it closed); not supported" ]]
	run --separate-stderr ckpt-dump --ext-unix=close -o "$IMG" "$BG_PID"
	one_line 1 "pid $BG_PID: fd " ckpt-dump
	[[ $stderr == *" is a TCP connection from 127.0.0.1:$PORT to 127.0.0.1:"*", a peer outside the dumped processes (--tcp-close restores it reset, --tcp-established as it was); not supported" ]]
	bg_dump_kill --tcp-close --ext-unix=close
	remap_bg
	wait_for pongs
	[ "$(cli GET k:7)" = value-7 ]
	# The server finds its two old connections closed and drops them.
	wait_for clients 1
	wait_for_line "$BATS_TEST_TMPDIR/unix.out" '^closed$'
	run ! read -r -u "$tcp" line
	exec {tcp}<&-
	cli SHUTDOWN NOSAVE || true
	reap "$BG_PID"
	[ "$status" -eq 0 ]
}

# mc ARG...: memcached-tool (Debian's, in memcached's scripts) to the
# server of the test.
mc() {
	/usr/share/memcached/scripts/memcached-tool "127.0.0.1:$PORT" "$@"
}

# mc_stat NAME: NAME of the server's stats.
mc_stat() {
	mc stats | tr -d '\r' | awk -v n="$1" '$1 == n {print $2}'
}

# mc_get KEY: the value of KEY, by the text protocol from bash.
mc_get() {
	local fd ln
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'get %s\r\n' "$1" >&"$fd"
	read -r ln <&"$fd"
	read -r ln <&"$fd"
	exec {fd}>&-
	echo "${ln%$'\r'}"
}

# mc_up_past S: the server's uptime is past S seconds (its clock, which a
# timer of its event loop updates every second, goes on).
mc_up_past() {
	[ "$(mc_stat uptime)" -gt "$1" ]
}

# start_mc: mcwork on $D and $PORT in the background, ready; skips, with
# its one line, where memcached cannot start.  $UPTIME and $MCPID are the
# server's then.
start_mc() {
	if ! command -v memcached >/dev/null || ! [ -x /usr/share/memcached/scripts/memcached-tool ]; then
		skip "memcached is not installed (make test-deps installs it)"
	fi
	start_bg /usr/bin/python3 "$TOP/t/progs/mcwork.py" "$D" "$PORT"
	wait_for grep -qs -e '^ready ' -e '^cannot start' "$OUT"
	if grep -q '^cannot start' "$OUT"; then
		skip "$(cat "$OUT")"
	fi
	UPTIME=$(mc_stat uptime)
	MCPID=$(mc_stat pid)
	[ -n "$MCPID" ]
}

# mc_checked PID RESTORED: checked memcached PID RESTORED; then
# memcached-tool finds the same server (its pid, uptime going on) with the
# items the program counted, every key listed; stopped.
mc_checked() {
	checked memcached "$@"
	[ "$(mc_stat curr_items)" = "$(awk '/^memcached: ok/{print $4}' "$OUT")" ]
	[ "$(mc_stat pid)" = "$MCPID" ]
	wait_for -t 5 mc_up_past "$UPTIME"
	[ "$(mc_stat threads)" = 4 ]
	# Keys are listed URL-encoded (%3A is :).
	mc keys | tr -d '\r' >"$BATS_TEST_TMPDIR/keys"
	[ "$(grep -c '^key=' "$BATS_TEST_TMPDIR/keys")" = "$(mc_stat curr_items)" ]
	grep -q '^key=big%3A127 .* size=65' "$BATS_TEST_TMPDIR/keys"
	[ "$(mc_get k:7)" = value-7 ]
	stopped "$1"
}

@test "memcached (four threads, TCP and UDP), a client with 8 MiB of answers unread and half a set sent, another with answers queued over TCP and UDP: dump -t --kill, restore, every answer checks out, memcached-tool finds the same server" {
	start_mc
	bg_dump_kill -t
	ckpt-inspect "$IMG" >"$BATS_TEST_TMPDIR/inspect"
	grep -q ' inet dgram bound 127.0.0.1:'"$PORT"' ' "$BATS_TEST_TMPDIR/inspect"
	grep -q ' inet dgram bound 0.0.0.0:[0-9]* queued [1-9][0-9]* datagrams 1 ' "$BATS_TEST_TMPDIR/inspect"
	remap_bg
	mc_checked "$BG_PID" yes
}

@test "memcached and its clients mid-work: a dump -t without --kill leaves them untouched, and the image restored once they are gone checks out too" {
	start_mc
	ckpt-dump -t -o "$IMG" "$BG_PID"
	mc_checked "$BG_PID" no
	again
	remap_bg --allow-changed-files
	mc_checked "$BG_PID" yes
}

# mc_up: the server answers memcached-tool.
mc_up() {
	[ -n "$(mc_stat pid 2>/dev/null)" ]
}

@test "memcached and its clients mid-work: three round trips (the restored tree dumped with --kill and restored again), then every answer checks out" {
	start_mc
	round_trips mc_up
	mc_checked "$BG_PID" yes
}
