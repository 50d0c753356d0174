#!/usr/bin/env bash
# make demo: checkpoint a counting program, kill it, restore it, and watch
# it count on from where it was.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/bin
counter=$top/t/progs/counter
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-demo.XXXXXX")
counter_pid=
tee_pid=

cleanup() {
	local p
	for p in "$counter_pid" "$tee_pid"; do
		[ -n "$p" ] || continue
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

# The counter must hold no fd but its standard ones (make may pass pipes
# on fd 3 and up, and ckpt-dump refuses pipes there).
run_counter() {
	local f fd
	for f in /proc/"$BASHPID"/fd/*; do
		fd=${f##*/}
		if [ "$fd" -gt 2 ]; then
			exec {fd}>&-
		fi
	done
	exec "$counter" "$@"
}

# The counter writes into a pipe to tee, which shows its lines and keeps a
# copy to watch; restored, it writes into whatever stdout ckpt-remap has.
mkfifo "$tmp/pipe"
tee "$tmp/before" <"$tmp/pipe" &
tee_pid=$!
run_counter 60 >"$tmp/pipe" &
counter_pid=$!
say "started counter 60 (pid $counter_pid)"

for ((i = 0; i < 3000; i++)); do
	grep -qsx 'count: 10' "$tmp/before" && break
	kill -0 "$counter_pid" 2>/dev/null || break
	sleep 0.01
done
grep -qx 'count: 10' "$tmp/before" || {
	say "counter did not reach 10" >&2
	exit 1
}

# --kill: the count it was killed at is the count in the image.  (The
# shell's own "Killed" notice is not news here: keep it off the screen.)
exec 3>&2
{
	"$bin/ckpt-dump" --kill -o "$tmp/counter.img" "$counter_pid" 2>&3
	wait "$counter_pid" || true
} 2>/dev/null
exec 3>&-
counter_pid=
wait "$tee_pid" || true
tee_pid=
last=$(tail -n 1 "$tmp/before")
last=${last#count: }
say "checkpointed counter at count $last into $tmp/counter.img ($(du -h "$tmp/counter.img" | cut -f1))"
say "killed it"

if [ -x "$bin/ckpt-inspect" ]; then
	say "what the image holds (ckpt-inspect):"
	"$bin/ckpt-inspect" "$tmp/counter.img" || say "ckpt-inspect failed; going on"
fi

say "restoring"
rc=0
"$bin/ckpt-remap" "$tmp/counter.img" | tee "$tmp/after" || rc=$?
if [ "$rc" -ne 0 ]; then
	say "restored counter failed (status $rc)" >&2
	exit 1
fi
first=$(head -n 1 "$tmp/after")
end=$(tail -n 1 "$tmp/after")
if [ "$first" != "count: $((last + 1))" ] || [ "$end" != "count: 60" ]; then
	say "restored counter printed '$first' to '$end', not count $((last + 1)) to 60" >&2
	exit 1
fi
say "restored counter went on from $((last + 1)) to 60"
