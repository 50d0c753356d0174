#!/usr/bin/env bats
# ckpt-dump --cow: the process runs on while its memory is written from a
# snapshot forked inside it.  t/progs/churn writes its memory without
# pause and checks that its words still add up to its total (an image read
# at different moments would not), and measures its longest stop.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir cow
}

# no_children PID: the process has no child left (the snapshot is reaped).
no_children() {
	[ -z "$(cat /proc/"$1"/task/*/children)" ]
}

@test "--cow: a reader stuck for 3 s does not stop the program; the image is one moment" {
	start_bg churn 64 "$D"
	wait_for_line "$OUT" '^ready '
	# The reader takes nothing for 3 s: without --cow the program would
	# stay stopped that long, as ckpt-dump blocks on the full pipe.
	ckpt-dump --cow "$BG_PID" | {
		sleep 3
		cat >"$IMG"
	}
	no_children "$BG_PID"
	grep -q '^State:.*[RS]' /proc/"$BG_PID"/status
	grep -q '^TracerPid:.*0$' /proc/"$BG_PID"/status
	finish_bg
	line=$(grep '^churn: ok' "$OUT")
	echo "# running on after --cow: $line" >&3
	stop=${line##*longest stop }
	stop=${stop% ms}
	[ "$stop" -lt 1500 ]
	# The image is of one moment: the words add up after a restore.
	: >"$OUT"
	rm "$D/go"
	ckpt-remap --allow-changed-files "$IMG" 2>/dev/null &
	CKPT_PIDS+=($!)
	wait_for_file "$OUT" || true
	touch "$D/go"
	st=0
	wait "${CKPT_PIDS[-1]}" || st=$?
	CKPT_PIDS=()
	[ "$st" -eq 0 ]
	grep -q '^churn: ok' "$OUT"
}

@test "--cow keeps what a fork would not: MADV_DONTFORK and MADV_WIPEONFORK memory, shared memory" {
	start_bg memkinds "$D" advice sharedanon memfd sysvshm
	wait_for_line "$OUT" '^ready '
	ckpt-dump --cow -o "$IMG" "$BG_PID"
	no_children "$BG_PID"
	kill -KILL "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	touch "$D/go"
	restore --allow-changed-files "$IMG"
	[ "$status" -eq 0 ]
	grep -qx 'memkinds: ok' "$OUT"
}

@test "--cow with --kill or --stop is a usage error" {
	run ckpt-dump --cow --kill 1
	[ "$status" -eq 2 ]
	run ckpt-dump --stop --cow 1
	[ "$status" -eq 2 ]
}

@test "--cow: fork advice that changes as the dump begins fails that dump, never the image" {
	local addr bytes ok=0 refused=0 i
	start_bg advflip
	wait_for_line "$OUT" '^ready '
	addr=$((16#$(awk '/^ready/ { print $3 }' "$OUT")))
	# A thread flips the mapping between MADV_WIPEONFORK and
	# MADV_KEEPONFORK: the advice read before the freeze is, half the
	# time, not the one the snapshot's fork follows.
	for i in $(seq 1 24); do
		if ckpt-dump --cow -o "$IMG" "$BG_PID" 2>"$D.err"; then
			bytes=$(ckpt-inspect --json "$IMG" | grep -F "\"start\":$addr," |
				grep -o '"stored_bytes":[0-9]*')
			echo "dump $i: $bytes"
			[ "$bytes" = '"stored_bytes":65536' ]
			ok=$((ok + 1))
		else
			cat "$D.err"
			grep -q "^ckpt-dump: pid $BG_PID: the memory at 0x$(printf %x "$addr") was given MADV_DONTFORK or MADV_WIPEONFORK advice (or lost it) as the dump began; dump again$" "$D.err"
			[ "$(wc -l <"$D.err")" -eq 1 ]
			refused=$((refused + 1))
		fi
		no_children "$BG_PID"
		grep -q '^TracerPid:.*0$' /proc/"$BG_PID"/status
	done
	echo "# advice flipping: $ok images whole, $refused dumps refused" >&3
	[ "$ok" -gt 0 ]
}
