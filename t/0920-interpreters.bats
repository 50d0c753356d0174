#!/usr/bin/env bats
# Interpreters users checkpoint, each driven through command files by a
# script of its own that checks its state after every restore and exits 0
# only if all was intact: Python 3 with numpy on OpenBLAS's threads and a
# sqlite3 database open (t/progs/pynum.py), an R session with a data frame
# of two million rows and a fitted lm() (t/progs/rsession.R), Perl with a
# hash of a million keys and a file open (t/progs/perlhash.pl), a bash
# script mid-loop with background jobs and their pipes
# (t/progs/bashjobs.sh).  Each goes three round trips by its pid
# (ckpt-dump -t without --kill, then twice with it, each image restored
# by ckpt-remap) and three under ckpt-inject (checkpoint --kill, restarted
# by the generation's restart script).  No privilege is needed.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir interp
}

teardown() {
	coord_teardown
}

# prog NAME [ARG]: the command line of t/progs' NAME on $D in PROG (an
# array); skips where Debian's package for it is missing.  $BUSY is what
# the program must be doing when it is checkpointed (a command given the
# program's pid, or its image once checkpointed).
prog() {
	BUSY=true
	case $1 in
	pynum)
		/usr/bin/python3 -c 'import numpy' 2>/dev/null ||
			skip "python3-numpy is not installed (make test-deps installs it)"
		PROG=(/usr/bin/python3 "$TOP/t/progs/pynum.py" "$D" "${2:-delete}")
		;;
	rsession)
		command -v Rscript >/dev/null || skip "r-base-core is not installed (make test-deps installs it)"
		PROG=(Rscript --vanilla "$TOP/t/progs/rsession.R" "$D")
		;;
	perlhash)
		PROG=(perl "$TOP/t/progs/perlhash.pl" "$D")
		;;
	bashjobs)
		PROG=(bash "$TOP/t/progs/bashjobs.sh" "$D")
		BUSY=jobs_running
		;;
	esac
}

# jobs_running PID [IMG]: bashjobs (PID) is in its loop's wait, its two
# jobs running: the consumers at the ends of their pipes, awk and wc, are
# its children; or, IMG given, they are in the image.
jobs_running() {
	if [ -n "${2:-}" ]; then
		[ "$(ckpt-inspect "$2" | grep -c -E '^ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +(awk NR|wc -c)')" = 2 ]
	else
		# Not ps, which reads files of every process, some of which wait
		# while a process of another test is stopped or being restored.
		local c kids
		kids=$(for c in $(descendants "$1"); do
			[ "$(awk '{ print $4 }' "/proc/$c/stat" 2>/dev/null)" = "$1" ] &&
				cat "/proc/$c/comm" 2>/dev/null
		done | sort | tr '\n' ' ')
		[[ $kids == *"awk bash bash wc "* ]]
	fi
}

# tell N CMD: the program's command N is CMD (written whole, by rename).
tell() {
	printf '%s\n' "$2" >"$D/cmd.$1.tmp"
	mv "$D/cmd.$1.tmp" "$D/cmd.$1"
}

# ask N CMD: tell N CMD, then wait for the answer; it is in $ANS and does
# not start with "bad".
ask() {
	tell "$1" "$2"
	wait_for -t 60 test -e "$D/ans.$1"
	ANS=$(cat "$D/ans.$1")
	echo "answer $1: $ANS"
	[[ $ANS != bad* ]]
}

# remap_bg: ckpt-remap $IMG in the background, its pid in $BG_PID (the
# restored program writes to $OUT again: its stdout was that file).
remap_bg() {
	exec_clean ckpt-remap "$IMG" </dev/null >"$BATS_TEST_TMPDIR/remap.out" \
		2>>"$BATS_TEST_TMPDIR/remap.err" &
	BG_PID=$!
	CKPT_PIDS+=("$BG_PID")
}

# program_pid PID: the program's process at or below PID: PID itself, or
# the first process below it that is no ckpt-remap (the restored root:
# below ckpt-remap, or below its copy that is init of a pid namespace).
program_pid() {
	local p
	for p in "$1" $(descendants "$1"); do
		if [ "$(cat "/proc/$p/comm" 2>/dev/null)" != ckpt-remap ]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# gone PID...: none of the PIDs is there any more.
gone() {
	local p
	for p in "$@"; do
		[ ! -e "/proc/$p" ] || return 1
	done
}

# finished PID NAME RESTORED: PID (the program, or the ckpt-remap that
# became it) exits 0, its output says RESTORED and "NAME: ok".
finished() {
	local st=0
	wait "$1" || st=$?
	CKPT_PIDS=()
	cat "$OUT" "$BATS_TEST_TMPDIR/bg.err" "$BATS_TEST_TMPDIR/remap.err" 2>/dev/null || true
	[ "$st" -eq 0 ]
	grep -qx "restored: $3" "$OUT"
	grep -qx "$2: ok" "$OUT"
}

# by_pid NAME CMD [ARG]: NAME (prog NAME ARG) started, asked CMD, then
# three round trips by its pid, asked CMD after each: dumped with -t and
# --save-files, left running (asked CMD and told to quit: it must finish
# intact), the image restored (its files put back); then twice the
# restored program dumped with -t --kill and restored.  The answers of the
# restored program to the commands the one left running had answered are
# the same.  $N is the next command's number.
by_pid() {
	local name=$1 cmd=$2 live p tree
	prog "$name" "${3:-}"
	start_bg "${PROG[@]}"
	wait_for -t 60 grep -qs '^ready ' "$OUT"
	ask 1 "$cmd"
	wait_for "$BUSY" "$BG_PID"
	ckpt-dump -t --save-files -o "$IMG" "$BG_PID"
	"$BUSY" "$BG_PID" "$IMG"
	ask 2 "$cmd"
	live=$ANS
	tell 3 quit
	finished "$BG_PID" "$name" no
	rm "$D/cmd.2" "$D/cmd.3" "$D/ans.2"
	remap_bg
	ask 2 "$cmd"
	[ "$ANS" = "$live" ]
	for N in 3 4; do
		p=$(program_pid "$BG_PID")
		wait_for "$BUSY" "$p"
		read -ra tree <<<"$p $(descendants "$p" | tr '\n' ' ')"
		ckpt-dump -t --kill -o "$IMG" "$p"
		"$BUSY" "$p" "$IMG"
		wait "$BG_PID" || true
		CKPT_PIDS=()
		wait_for gone "${tree[@]}"
		remap_bg
		ask "$N" "$cmd"
	done
	N=5
}

# member ID PORT: the pid the coordinator on PORT has for member ID.
member() {
	ckpt-signal --coord-port "$2" --list | awk -F '\t' -v id="$1" '$1 == id { print $2 }'
}

# by_coord NAME CMD [ARG]: NAME (prog NAME ARG) run by ckpt-inject, asked
# CMD, then three times checkpointed by its coordinator with --kill,
# restarted by the generation's restart script and asked CMD.  The
# restart script's pid is in $RS_PID, the next command's number in $N.
by_coord() {
	local name=$1 cmd=$2 port dir
	prog "$name" "${3:-}"
	start_coord
	port=$CPORT
	OUT=$BATS_TEST_TMPDIR/$name.out
	inject "$name" "${PROG[@]}"
	RS_PID=$INJ_PID
	wait_for has_members 1
	wait_for -t 60 grep -qs '^ready ' "$OUT"
	ask 1 "$cmd"
	for N in 2 3 4; do
		wait_for "$BUSY" "$(member 1 "$port")"
		run ckpt-signal --coord-port "$port" --checkpoint --wait --kill
		echo "$output"
		[ "$status" -eq 0 ]
		dir=$output
		"$BUSY" - "$dir"/ckpt_*.ckpt.zst
		reap "$RS_PID"
		[ "$status" -eq 137 ]
		restart_bg "$dir"
		port=$RPORT
		wait_for has_members 1 "$port" || { cat "$BATS_TEST_TMPDIR/restart.out"; false; }
		ask "$N" "$cmd"
	done
	N=5
}

# coord_finished NAME: told to quit, the program restarted by the script
# ($RS_PID) exits 0, restored and intact.
coord_finished() {
	tell "$N" quit
	reap "$RS_PID"
	cat "$OUT" "$BATS_TEST_TMPDIR/restart.out"
	[ "$status" -eq 0 ]
	grep -qx "restored: yes" "$OUT"
	grep -qx "$1: ok" "$OUT"
}

# blas_threads: the last answer counts OpenBLAS's threads beside the main
# one (one a CPU past the first; none on one CPU).
blas_threads() {
	[ "${ANS##* }" -ge 2 ] || [ "$(nproc)" -eq 1 ]
}

@test "python3, numpy on OpenBLAS's threads, sqlite3 in WAL mode: three round trips by pid (dump -t left running, then --kill), the arrays and the table intact, a write after each restore" {
	by_pid pynum check wal
	[[ $ANS == "ok rows 10004 sum 50005000 threads "* ]]
	blas_threads
	tell "$N" quit
	finished "$BG_PID" pynum yes
}

@test "python3, numpy on OpenBLAS's threads, sqlite3 with a rollback journal: three round trips under ckpt-inject, restarted by the script" {
	by_coord pynum check delete
	[[ $ANS == "ok rows 10004 sum 50005000 threads "* ]]
	blas_threads
	coord_finished pynum
}

# same_answers: every answer in $D is the first one.
same_answers() {
	local a
	for a in "$D"/ans.*; do
		cmp "$D/ans.1" "$a"
	done
}

@test "R, a data frame of two million rows and a fitted lm(): three round trips by pid (dump -t left running, then --kill), every query answered as before" {
	by_pid rsession query
	same_answers
	tell "$N" quit
	finished "$BG_PID" rsession yes
}

@test "R, a data frame of two million rows and a fitted lm(): three round trips under ckpt-inject, every query answered as before" {
	by_coord rsession query
	same_answers
	coord_finished rsession
}

@test "perl, a hash of a million keys and a file open: three round trips by pid (dump -t left running, then --kill), the hash intact, the file read on where it was" {
	by_pid perlhash check
	[ "$ANS" = "ok keys 1000000 sum 3499996500000 line 5" ]
	tell "$N" quit
	finished "$BG_PID" perlhash yes
}

@test "perl, a hash of a million keys and a file open: three round trips under ckpt-inject" {
	by_coord perlhash check
	[ "$ANS" = "ok keys 1000000 sum 3499996500000 line 5" ]
	coord_finished perlhash
}

# uninterrupted: what bashjobs prints for four checks and a quit, run with
# its commands all there from the start, without "ready" and "restored".
uninterrupted() {
	local d=$BATS_TEST_TMPDIR/plain n
	mkdir "$d"
	for n in 1 2 3 4; do echo check >"$d/cmd.$n"; done
	echo quit >"$d/cmd.5"
	bash "$TOP/t/progs/bashjobs.sh" "$d" </dev/null | grep -v -e '^ready ' -e '^restored: '
}

@test "bash mid-loop with background jobs, their children and pipes: three round trips by pid (dump -t left running, then --kill); the output is an uninterrupted run's" {
	by_pid bashjobs check
	tell "$N" quit
	finished "$BG_PID" bashjobs yes
	diff <(uninterrupted) <(grep -v -e '^ready ' -e '^restored: ' "$OUT")
}

@test "bash mid-loop with background jobs, their children and pipes: three round trips under ckpt-inject; the output is an uninterrupted run's" {
	by_coord bashjobs check
	coord_finished bashjobs
	diff <(uninterrupted) <(grep -v -e '^ready ' -e '^restored: ' "$OUT")
}
