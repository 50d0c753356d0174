#!/usr/bin/env bash
# make demo: two counting programs started under a coordinator with
# ckpt-inject, checkpointed together with ckpt-signal, run on a little,
# killed, and brought back by the restart script the coordinator wrote:
# each counts on from where the checkpoint was, and its output file is set
# back to what it held then, so each count appears once.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/bin
counter=$top/t/progs/counter
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-demo.XXXXXX")
coord_pid=
pids=()

cleanup() {
	local p
	if [ -n "$coord_pid" ]; then
		kill "$coord_pid" 2>/dev/null || true
		wait "$coord_pid" 2>/dev/null || true
	fi
	for p in "${pids[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() {
	printf 'demo: %s\n' "$*"
}

# Run a command with no fd but the standard ones (make may pass pipes on
# fd 3 and up, and a checkpoint refuses pipes there).
clean_exec() {
	local f fd
	for f in /proc/"$BASHPID"/fd/*; do
		fd=${f##*/}
		if [ "$fd" -gt 2 ]; then
			exec {fd}>&-
		fi
	done
	exec "$@"
}

# last FILE: the last count in FILE (0 if none yet).
last() {
	local l
	l=$(tail -n 1 "$1" 2>/dev/null || true)
	l=${l#count: }
	echo "${l:-0}"
}

# A coordinator of our own on a free port (7779 may be someone else's).
mkdir "$tmp/ck"
clean_exec "$bin/ckpt-coord" --port 0 --port-file "$tmp/port" --dir "$tmp/ck" \
	--log "$tmp/coord.log" </dev/null &
coord_pid=$!
for ((i = 0; i < 2000; i++)); do
	[ -s "$tmp/port" ] && break
	kill -0 "$coord_pid" 2>/dev/null || break
	sleep 0.01
done
port=$(cat "$tmp/port")
export CKPT_COORD_PORT=$port
say "ckpt-coord listening on 127.0.0.1:$port, checkpoints in $tmp/ck"

# Each writes its own files: a restart sets the files of the computation
# back to the checkpoint, and this script's own output (a file, when the
# demo's output goes to one) is no member's to set back.
clean_exec "$bin/ckpt-inject" -- "$counter" 60 </dev/null >"$tmp/a.out" 2>"$tmp/a.err" &
pids+=($!)
clean_exec "$bin/ckpt-inject" -- "$counter" 40 </dev/null >"$tmp/b.out" 2>"$tmp/b.err" &
pids+=($!)
say "started two counters under ckpt-inject (pids ${pids[*]}): to 60 and to 40"

for ((i = 0; i < 3000; i++)); do
	[ "$(last "$tmp/a.out")" -ge 10 ] && [ "$(last "$tmp/b.out")" -ge 10 ] &&
		[ "$("$bin/ckpt-signal" --list | wc -l)" -eq 2 ] && break
	sleep 0.01
done
say "members of the coordinator (id, pid, helper, host, program):"
"$bin/ckpt-signal" --list | sed 's/^/    /'

dir=$("$bin/ckpt-signal" --checkpoint --wait)
a=$(last "$tmp/a.out") b=$(last "$tmp/b.out")
say "checkpointed both into $dir (at about $a and $b):"
find "$dir" -type f -printf '    %f  %s bytes\n'

# They go on past the checkpoint, then crash.
for ((i = 0; i < 3000; i++)); do
	[ "$(last "$tmp/a.out")" -ge $((a + 5)) ] && break
	sleep 0.01
done
exec 3>&2
{
	kill -KILL "${pids[@]}"
	wait "${pids[@]}" || true
} 2>/dev/null
exec 3>&-
pids=()
say "killed both at $(last "$tmp/a.out") and $(last "$tmp/b.out")"

if [ -x "$bin/ckpt-inspect" ]; then
	say "what one image holds (ckpt-inspect):"
	"$bin/ckpt-inspect" "$dir"/ckpt_counter_1.ckpt.zst | sed 's/^/    /' ||
		say "ckpt-inspect failed; going on"
fi

say "restarting with $dir/ckpt_restart_script.sh"
rc=0
"$dir/ckpt_restart_script.sh" --coord-port 0 || rc=$?
if [ "$rc" -ne 0 ]; then
	say "the restart script failed (status $rc)" >&2
	exit 1
fi
# Each count once, in order, to the end: the output files were set back
# to the checkpoint's and the counters went on from there.
if ! diff <(seq 1 60 | sed 's/^/count: /') "$tmp/a.out" >/dev/null ||
	! diff <(seq 1 40 | sed 's/^/count: /') "$tmp/b.out" >/dev/null; then
	say "the restarted counters' output is not 1..60 and 1..40" >&2
	exit 1
fi
say "restarted counters went on and finished: count 1 to 60 and 1 to 40, each once"
