#!/usr/bin/env bats
# A named FIFO on a standard stream is reopened by its path at restore, as
# on any other fd, with the bytes queued in it: the real sqlite3 shell
# reads SQL from a FIFO whose writer (the test) holds it open across the
# checkpoint, inside one transaction, and commits after the restore.

bats_require_minimum_version 1.5.0
load lib

setup() {
	command -v sqlite3 >/dev/null || skip "no sqlite3 (make test-deps installs it)"
	workdir sqlite
	FIFO=$D/sql
	DB=$D/db
	mkfifo "$FIFO"
}

# start_sqlite: sqlite3 $DB reading the FIFO, its output in $D/out; the
# test's write end of the FIFO is fd $W.  Its pid in $pid.
start_sqlite() {
	exec_clean sqlite3 "$DB" <"$FIFO" >"$D/out" 2>"$D/err" &
	pid=$!
	CKPT_PIDS+=("$pid")
	exec {W}>"$FIFO"
}

# sql TEXT...: write SQL into the FIFO.
sql() {
	printf '%s\n' "$@" >&"$W"
}

# step NAME: sqlite3 has read and run everything written so far.
step() {
	sql ".print $1"
	wait_for_line "$D/out" "^$1\$"
}

# dump_and_restore: ckpt-dump --kill sqlite3, then ckpt-remap it in the
# background ($rpid); its own stdin is /dev/null.
dump_and_restore() {
	ckpt-dump --kill -o "$IMG" "$pid"
	reap "$pid"
	[ "$status" -eq 137 ]
	exec_clean ckpt-remap "$IMG" </dev/null >"$D/remap.out" 2>"$D/remap.err" &
	rpid=$!
	CKPT_PIDS+=("$rpid")
	# Until the FIFO has a reader again, a write into it fails (EPIPE),
	# as it would for any writer whose reader was killed.
	wait_for has_fifo "$pid" "$rpid"
}

# has_fifo PID...: one of the processes holds $FIFO open (the restored
# sqlite3 is the old pid, or ckpt-remap's where that is not to be had).
has_fifo() {
	local p
	for p in "$@"; do
		[ "$(readlink "/proc/$p/fd/0")" = "$FIFO" ] && return 0
	done
	return 1
}

# finished: ckpt-remap (the restored sqlite3) exited 0 with nothing on
# its stderr, and so did sqlite3 (its stderr is $D/err).
finished() {
	reap "$rpid"
	cat "$D/remap.err" "$D/err" >&2
	[ "$status" -eq 0 ]
	[ ! -s "$D/remap.err" ]
	[ ! -s "$D/err" ]
}

@test "sqlite3 < fifo: a transaction open across dump --kill and restore commits every row" {
	start_sqlite
	sql "BEGIN;" "CREATE TABLE t(x INTEGER);" "INSERT INTO t VALUES (1), (2);"
	step before
	dump_and_restore
	run ckpt-inspect "$IMG"
	[[ "$output" == *"fd 0   fifo "*"$FIFO"* ]]
	# The restored sqlite3 reads the FIFO again: the writes after the
	# restore reach it (without a reader they would fail with EPIPE).
	sql "INSERT INTO t VALUES (3);" "INSERT INTO t VALUES (4);" "COMMIT;"
	step after
	exec {W}>&-
	finished
	run sqlite3 "$DB" "SELECT group_concat(x, ',') FROM t;"
	[ "$output" = "1,2,3,4" ]
}

# gate: sqlite3 runs ".read $D/gate" (a FIFO): it waits in open(2) for a
# writer, and reads nothing more of the main FIFO meanwhile.
gate() {
	mkfifo "$D/gate"
	sql ".read $D/gate"
	wait_for grep -qx wait_for_partner "/proc/$pid/wchan"
}

# open_gate: the restored sqlite3's open(2) of the gate (run again after
# the restore) finds a writer, which writes nothing.
open_gate() {
	# shellcheck disable=SC2016 # $1 is the inner shell's
	timeout 20 bash -c ': >"$1"' _ "$D/gate"
}

@test "sqlite3 < fifo: SQL queued in the FIFO at the dump is read after the restore, the writer gone meanwhile" {
	start_sqlite
	sql "BEGIN;" "CREATE TABLE t(x INTEGER);" "INSERT INTO t VALUES (1);"
	step before
	gate
	sql "INSERT INTO t VALUES (2);" "COMMIT;" ".print queued"
	ckpt-dump --kill -o "$IMG" "$pid"
	reap "$pid"
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 0   fifo "*"queued 48 "*"$FIFO"* ]]
	# The FIFO's last opener gone, the kernel drops its bytes: only the
	# image has them now.
	exec {W}>&-
	exec_clean ckpt-remap "$IMG" </dev/null >"$D/remap.out" 2>"$D/remap.err" &
	rpid=$!
	CKPT_PIDS+=("$rpid")
	open_gate
	# It ran the queued SQL, and at the end of it saw the end of input.
	finished
	grep -qx queued "$D/out"
	run sqlite3 "$DB" "SELECT group_concat(x, ',') FROM t;"
	[ "$output" = "1,2" ]
}

@test "sqlite3 < fifo: SQL queued at the dump, the writer still there: read once, then more" {
	start_sqlite
	sql "BEGIN;" "CREATE TABLE t(x INTEGER);" "INSERT INTO t VALUES (1);"
	step before
	gate
	sql "INSERT INTO t VALUES (2);"
	dump_and_restore
	open_gate
	# The FIFO kept its bytes (the writer held it open): they are not
	# put back a second time.
	sql "INSERT INTO t VALUES (3);" "COMMIT;"
	step after
	exec {W}>&-
	finished
	run sqlite3 "$DB" "SELECT group_concat(x, ',') FROM t;"
	[ "$output" = "1,2,3" ]
}
