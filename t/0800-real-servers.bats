#!/usr/bin/env bats
# Real servers from Debian, in one tree with clients of them caught
# mid-work, checkpointed and restored while they are driven through their
# own protocol: redis-server (t/progs/rediswork.py, plain sockets speaking
# RESP, answers queued both ways, half a request sent, a transaction open,
# a subscriber), then redis-cli from outside.  No privilege is needed.

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

# done_or_gone PID: the program said it checked all, or PID is gone.
done_or_gone() {
	grep -qs '^redis: ok' "$OUT" || ! kill -0 "$1" 2>/dev/null
}

# checked_from_outside PID RESTORED: the tree PID (rediswork, or the
# ckpt-remap that became it) checked every answer and says RESTORED; then
# redis-cli finds the same server (run_id, uptime on), the keys of before
# (by TCP and by the unix socket) and the DBSIZE the program counted; told
# to stop, the program shuts the server down and exits 0.
checked_from_outside() {
	local pid=$1 st=0
	touch "$D/go"
	wait_for -t 30 done_or_gone "$pid"
	cat "$OUT" "$BATS_TEST_TMPDIR/bg.err" "$BATS_TEST_TMPDIR/remap.err" 2>/dev/null || true
	grep -qx "restored: $2" "$OUT"
	grep -q '^redis: ok' "$OUT"
	[ "$(cli DBSIZE)" = "$(awk '/^redis: ok/{print $4}' "$OUT")" ]
	[ "$(cli GET k:7)" = value-7 ]
	[ "$(redis-cli -s "$D/redis.sock" GET k:999)" = value-999 ]
	[ "$(cli STRLEN big:127)" = 65536 ]
	[ "$(cli GET cnt)" = 300 ]
	[ "$(info run_id)" = "$RUN_ID" ]
	[ "$(info uptime_in_seconds)" -ge "$UPTIME" ]
	[ "$(cli SET after restored)" = OK ]
	[ "$(cli GET after)" = restored ]
	touch "$D/stop"
	wait "$pid" || st=$?
	CKPT_PIDS=()
	echo "exit status $st"
	[ "$st" -eq 0 ]
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
	checked_from_outside "$BG_PID" yes
}

@test "redis-server and its clients mid-work: a dump -t without --kill leaves them untouched, and the image restored once they are gone checks out too" {
	start_redis
	ckpt-dump -t -o "$IMG" "$BG_PID"
	checked_from_outside "$BG_PID" no
	# The server shut down: its port and socket are free again.  The
	# output file has its first line again, where the restored program
	# goes on writing: it changed since the checkpoint.
	rm "$D/go" "$D/stop"
	head -n 1 "$OUT" >"$BATS_TEST_TMPDIR/first"
	cat "$BATS_TEST_TMPDIR/first" >"$OUT"
	remap_bg --allow-changed-files
	checked_from_outside "$BG_PID" yes
}
