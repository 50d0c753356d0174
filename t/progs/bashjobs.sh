#!/bin/bash
# bashjobs: a bash script mid-loop with background jobs (cmd &, wait),
# their children and the pipes between them, driven through command files;
# its output is the same whether or not it was checkpointed and restored.
#
# usage: bash bashjobs.sh DIR
#
# Says "ready PID", then loops: round N starts two background jobs and
# waits for both.  Each job is a subshell that waits for DIR/cmd.N (the
# test writes it whole, by rename; polled every 50 ms with sleep), its
# output piped into a consumer: job 1 writes the command and the numbers
# 1 .. 100N into awk, which sums them; job 2 writes 1000N lines "round N"
# into wc -c.  Once both are done the script checks the sum (50N(100N
# + 1)) and the byte count, prints "round N: CMD sum S bytes B" and
# writes it to DIR/ans.N (by rename); a check that fails goes to stderr
# too.  On "quit" it prints "restored: yes" (this process started after
# "ready": a restored one is a new process) or "restored: no", then
# "bashjobs: ok" and exits 0, or exits 1 if a round was wrong.
set -u
dir=$1

# start_time: when this shell started (field 22 of /proc/PID/stat).
start_time() {
	local s f
	read -r s </proc/$$/stat
	read -ra f <<<"${s##*) }"
	echo "${f[19]}"
}

# wait_cmd N: until DIR/cmd.N is there; then print it.
wait_cmd() {
	while [ ! -e "$dir/cmd.$1" ]; do
		sleep 0.05
	done
	cat "$dir/cmd.$1"
}

started=$(start_time)
failures=0
echo "ready $$"
for ((n = 1; ; n++)); do
	{
		wait_cmd "$n"
		seq 1 $((100 * n))
	} | awk 'NR == 1 { cmd = $0; next } { s += $1 } END { print cmd, s }' >"$dir/job1.$n" &
	{
		wait_cmd "$n" >/dev/null
		yes "round $n" | head -n $((1000 * n))
	} | wc -c >"$dir/job2.$n" &
	wait
	read -r cmd sum <"$dir/job1.$n"
	read -r bytes <"$dir/job2.$n"
	rm -f "$dir/job1.$n" "$dir/job2.$n"
	[ "$cmd" = quit ] && break
	line="round $n: $cmd sum $sum bytes $bytes"
	if [ "$sum" -ne $((50 * n * (100 * n + 1))) ] ||
		[ "$bytes" -ne $((1000 * n * (${#n} + 7))) ]; then
		echo "bashjobs: wrong $line" >&2
		failures=$((failures + 1))
	fi
	echo "$line"
	echo "$line" >"$dir/ans.$n.tmp"
	mv "$dir/ans.$n.tmp" "$dir/ans.$n"
done
if [ "$(start_time)" != "$started" ]; then
	echo "restored: yes"
else
	echo "restored: no"
fi
[ "$failures" -eq 0 ] || exit 1
echo "bashjobs: ok"
