#!/usr/bin/env bats
# Terminal programs, driven through their own interfaces: a detached tmux
# server and a detached GNU screen, each with two windows (an interactive
# bash running a loop that counts to a file and to its window, and vim
# editing an unsaved buffer), dumped by pid with -t --kill and restored
# three times, and each also under ckpt-inject (tmux -D, screen -D -m),
# checkpointed by its coordinator with --kill and restarted by the
# restart script three times; then a client of theirs (tmux capture-pane
# and send-keys, screen -X hardcopy and stuff) finds both windows, the
# count going on, vim's buffer and its undo.  And programs on a terminal
# of their own (an interactive bash, a python3 REPL, vim with an unsaved
# buffer, each in a window of an outer tmux the test drives), dumped with
# --kill from outside and restored by a ckpt-remap in a new window, three
# times (bash also under ckpt-inject, restarted by the restart script in
# a new window): the terminal is theirs again (a session or a group of
# its own, the job control of bash: ^Z, fg, ^C), they take input and see
# the new window's size (SIGWINCH; vim redraws, u undoes, :w writes).  No
# privilege is needed (the unprivileged restores keep the pids in a pid
# namespace of their own), but for screen: its server, restored so,
# cannot signal its clients.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir term
	command -v tmux >/dev/null || skip "tmux is not installed (make check installs it)"
	command -v vim >/dev/null || skip "vim is not installed (make check installs it)"
	# Panes run bash with no rc file, vim with no vimrc, swap or viminfo.
	export HOME=$D SHELL=/bin/bash TERM=xterm
	# vim with no vimrc, swap or viminfo, on a file of the test's (not
	# yet there: its buffer is unsaved).
	VIM="vim -u NONE -N -n -i NONE $D/edit.txt"
}

teardown() {
	kill_started
	coord_teardown
	tmux -S "$D/tmux.sock" kill-server 2>/dev/null || true
	tmux -S "$D/outer.sock" kill-server 2>/dev/null || true
	if command -v screen >/dev/null; then
		SCREENDIR=$D/screens screen -S w -X quit >/dev/null 2>&1 || true
	fi
	local c
	for c in "tmux: server" screen bash vim python3 sleep ckpt-remap; do
		kill_in_dir "$D" "$c"
	done
}

# ---- what the windows run, and their checks -----------------------------

# The shell of window 0 runs the loop itself (typed: ". ./loop").
# shellcheck disable=SC2016 # expanded by that shell
LOOP='n=0; while :; do n=$((n+1)); echo $n >count; echo "count $n"; sleep 0.1; done'

# counted: the loop's last count, from its file (0 before the first).
counted() {
	local n
	n=$(cat "$D/count" 2>/dev/null) || true
	[[ $n =~ ^[0-9]+$ ]] || n=0
	echo "$n"
}

# count_past N: the loop has counted past N.
count_past() {
	[ "$(counted)" -gt "$1" ]
}

# shows SCREEN PATTERN: the window contents SCREEN (a command that prints
# them) has a line matching PATTERN.
shows() {
	"$1" | grep -q -- "$2"
}

# shows_count_past SCREEN N: the window shows a count past N.
shows_count_past() {
	local last
	last=$("$1" | sed -n 's/^count \([0-9][0-9]*\)$/\1/p' | tail -n 1)
	[ -n "$last" ] && [ "$last" -gt "$2" ]
}

# ---- restoring ----------------------------------------------------------

# tree_of PID: PID and every pid below it.
tree_of() {
	echo "$1"
	descendants "$1"
}

# gone PID...: none of the PIDs is there any more.
gone() {
	local p
	for p in "$@"; do
		[ ! -e "/proc/$p" ] || return 1
	done
}

# remap_bg: ckpt-remap $IMG in the background, its pid in $BG_PID.
remap_bg() {
	exec_clean ckpt-remap "$IMG" </dev/null >"$BATS_TEST_TMPDIR/remap.out" \
		2>"$BATS_TEST_TMPDIR/remap.err" &
	BG_PID=$!
	CKPT_PIDS+=("$BG_PID")
}

# below PID COMM: the process named COMM below PID (a ckpt-remap): as
# root the restored program under its old pid, without privilege under
# the pid a pid namespace of its own has it by here.
below() {
	local p
	for p in $(descendants "$1"); do
		if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# server_round_trips PID COMM UP: the server PID (named COMM) and its
# windows dumped with -t --kill and restored by ckpt-remap, three times,
# each restore answering its client (UP) and counting on; the last one
# left running, its ckpt-remap in $BG_PID.
server_round_trips() {
	local host=$1 i n tree
	for i in 1 2 3; do
		wait_for count_past 2
		n=$(counted)
		read -ra tree <<<"$(tree_of "$host" | tr '\n' ' ')"
		ckpt-dump -t --kill -o "$IMG" "$host"
		if [ "$i" -gt 1 ]; then
			wait "$BG_PID" || true
			CKPT_PIDS=()
		fi
		wait_for gone "${tree[@]}"
		remap_bg
		wait_for "$3"
		wait_for count_past "$n"
		cat "$BATS_TEST_TMPDIR/remap.err"
		wait_for below "$BG_PID" "$2" >/dev/null
		host=$(below "$BG_PID" "$2")
	done
}

# ---- tmux ---------------------------------------------------------------

tm() {
	tmux -S "$D/tmux.sock" "$@"
}

pane0() {
	tm capture-pane -p -t w:0
}

pane1() {
	tm capture-pane -p -t w:1
}

tmux_up() {
	tm has-session -t w 2>/dev/null
}

# tmux_windows: the session's two windows, each with its program; the loop
# counting in window 0, vim's buffer of two lines in window 1.
tmux_windows() {
	wait_for tmux_up
	tm new-window -t w:1 "$VIM"
	echo "$LOOP" >"$D/loop"
	tm send-keys -t w:0 ". ./loop" Enter
	wait_for count_past 0
	wait_for shows pane1 '^~'
	tm send-keys -t w:1 i alpha Escape
	wait_for shows pane1 '^alpha$'
	tm send-keys -t w:1 o beta Escape
	wait_for shows pane1 '^beta$'
}

tmux_undo() {
	tm send-keys -t w:1 u
}

# windows_intact WINDOW0 WINDOW1 UNDO: the count goes on in its file and
# in window 0 (WINDOW0 prints it); vim has its unsaved buffer in window 1,
# whose last change UNDO (u typed there) takes back.
windows_intact() {
	local n
	n=$(counted)
	wait_for count_past "$((n + 2))"
	wait_for shows_count_past "$1" "$n"
	"$2" | tee "$BATS_TEST_TMPDIR/window1"
	grep -qx alpha "$BATS_TEST_TMPDIR/window1"
	grep -qx beta "$BATS_TEST_TMPDIR/window1"
	[ ! -e "$D/edit.txt" ]
	"$3"
	wait_for not shows "$2" '^beta$'
	"$2" | grep -qx alpha
}

# tmux_intact: both windows there, as windows_intact finds them.
tmux_intact() {
	tm list-windows -t w -F '#{window_index} #{pane_current_command}' | tee "$BATS_TEST_TMPDIR/windows"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/windows")" -eq 2 ]
	grep -qx '1 vim' "$BATS_TEST_TMPDIR/windows"
	windows_intact pane0 pane1 tmux_undo
}

@test "tmux: a detached server, a shell counting in one window and vim with an unsaved buffer in the other: three round trips by pid (dump -t --kill, ckpt-remap), then its client finds both windows, the count going on, vim's buffer and its undo" {
	(cd "$D" && exec_clean tmux -f /dev/null -S "$D/tmux.sock" new-session -d -s w -x 80 -y 24 \
		bash --norc --noprofile -i </dev/null >/dev/null 2>&1)
	tmux_windows
	server_round_trips "$(tm display -p '#{pid}')" "tmux: server" tmux_up
	tmux_intact
	tm kill-server
	reap "$BG_PID"
	echo "ckpt-remap: $status"
}

# ---- GNU screen ---------------------------------------------------------

sc() {
	SCREENDIR=$D/screens screen "$@"
}

# window N: what screen's window N shows (hardcopy, which the server writes
# once it reads the command).
window() {
	local f
	f=$(mktemp -u "$BATS_TEST_TMPDIR/hardcopy.XXXXXX")
	sc -S w -p "$1" -X hardcopy "$f" || return 1
	wait_for -t 5 test -s "$f" || return 1
	cat "$f"
	rm -f "$f"
}

window0() {
	window 0
}

window1() {
	window 1
}

# screen_windows: screen -Q lists the two windows.
screen_windows() {
	[ "$(sc -S w -Q windows)" = "0 bash  1 vim" ]
}

# screen_up: the server writes a hardcopy of each window.
screen_up() {
	window 0 >/dev/null && window 1 >/dev/null
}

screen_undo() {
	sc -S w -p 1 -X stuff u
}

# screen_two_windows: the session w (started) with its two windows, each
# with its program; the loop counting in window 0, vim's buffer of two
# lines in window 1.
screen_two_windows() {
	wait_for sc -S w -Q windows
	# shellcheck disable=SC2086 # a command line, split on purpose
	sc -S w -X screen -t vim $VIM
	wait_for screen_windows
	echo "$LOOP" >"$D/loop"
	sc -S w -p 0 -X stuff $'. ./loop\n'
	wait_for count_past 0
	wait_for shows window1 '^~'
	sc -S w -p 1 -X stuff $'ialpha\033'
	wait_for shows window1 '^alpha$'
	sc -S w -p 1 -X stuff $'obeta\033'
	wait_for shows window1 '^beta$'
}

# Root only: screen's clients wait for a signal from the server (-Q, -X
# hardcopy, attaching), which a server restored without privilege, in a
# pid namespace of its own, cannot send them by their pids outside it.
# bats test_tags=root
@test "GNU screen: a detached session, a shell counting in one window and vim with an unsaved buffer in the other: three round trips by pid, then screen -Q finds both windows, hardcopy the count going on, vim's buffer and its undo" {
	[ "$(id -u)" -eq 0 ] || skip "a restore without privilege is in a pid namespace, whose server cannot signal its clients"
	command -v screen >/dev/null || skip "screen is not installed (make check installs it)"
	mkdir -m 700 "$D/screens"
	printf 'startup_message off\n' >"$D/screenrc"
	(cd "$D" && SCREENDIR=$D/screens exec_clean screen -c "$D/screenrc" -dmS w \
		bash --norc --noprofile -i </dev/null >/dev/null 2>&1)
	screen_two_windows
	server_round_trips "$(sc -ls | sed -n 's/^\t\([0-9]*\)\.w\t.*/\1/p')" screen screen_up
	screen_windows
	windows_intact window0 window1 screen_undo
	sc -S w -X quit
	reap "$BG_PID"
	echo "ckpt-remap: $status"
}

# ---- programs on a terminal of their own --------------------------------

# ot ARG...: the outer tmux, whose windows are the terminals of the test.
ot() {
	tmux -S "$D/outer.sock" "$@"
}

# on_screen N PATTERN: window N of the outer tmux shows a line matching
# PATTERN.
on_screen() {
	ot capture-pane -p -t "o:$1" | grep -q -- "$2"
}

# start_outer CMD: the outer tmux, CMD in its window 0; a window whose
# program ended stays, so that the session outlives it.
start_outer() {
	printf 'set -g remain-on-exit on\n' >"$D/outer.conf"
	(cd "$D" && exec_clean tmux -f "$D/outer.conf" -S "$D/outer.sock" new-session -d -s o \
		-x 80 -y 24 "$1" </dev/null >/dev/null 2>&1)
	wait_for ot has-session -t o
}

# reaped PID: PID is gone; while it is a zombie, the outer tmux server,
# its parent, is told of it again (now and then it misses the SIGCHLD of
# a child its tracer killed, and leaves it a zombie, its pid taken).
reaped() {
	[ ! -e "/proc/$1" ] && return 0
	kill -CHLD "$(ot display -p '#{pid}')" 2>/dev/null || true
	return 1
}

# terminal_round_trips COMM CHECK: the program of window 0 (named COMM)
# dumped with -t --kill from outside and restored by ckpt-remap in a new
# window, three times (window I for round I, the image's program dumped
# from the window before); CHECK I finds each restore intact.  $LEADS
# says whether ckpt-remap led the window's session (and handed it over).
terminal_round_trips() {
	local host i opt=()
	host=$(ot display -p -t o:0 '#{pane_pid}')
	# Without privilege, the pids the program knows (a shell's groups)
	# are kept in a pid namespace of its own.
	[ "$(id -u)" -eq 0 ] || opt=(--pid-ns)
	for i in 1 2 3; do
		ckpt-dump -t --kill -o "$IMG" "$host"
		wait_for reaped "$host"
		# From round 2: ckpt-remap a job of the window's shell, not the
		# leader of its session: the program gets a group of its own
		# (and then, dumped so, a group of its own in round 3).
		LEADS=yes
		if [ "$i" -ge 2 ]; then
			LEADS=no
			ot new-window -t "o:$i" "ckpt-remap ${opt[*]} $IMG || :"
		else
			ot new-window -t "o:$i" "exec ckpt-remap ${opt[*]} $IMG"
		fi
		"$2" "$i"
		wait_for below "$(ot display -p -t "o:$i" '#{pane_pid}')" "$1" >/dev/null
		host=$(below "$(ot display -p -t "o:$i" '#{pane_pid}')" "$1")
	done
}

# remap_settled N: every ckpt-remap of window N waits for its program
# (waitpid): the size change it makes on a restore is over.
remap_settled() {
	local pane p n=0
	pane=$(ot display -p -t "o:$1" '#{pane_pid}')
	for p in "$pane" $(descendants "$pane"); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = ckpt-remap ] || continue
		[ "$(cat "/proc/$p/wchan" 2>/dev/null)" = do_wait ] || return 1
		n=$((n + 1))
	done
	[ "$n" -gt 0 ]
}

# in_front N COMM: COMM leads the foreground group of window N's terminal.
in_front() {
	[ "$(ot display -p -t "o:$1" '#{pane_current_command}')" = "$2" ]
}

# bash_intact I: the restored shell in window I has its variable and pid,
# leads a session of its own on the new terminal (or, $LEADS no, a group
# in ckpt-remap's), runs a program, sees the
# window's new size (SIGWINCH), and its job control works: a job stopped
# by ^Z, brought back by fg, ended by ^C.
# shellcheck disable=SC2016 # what is typed, expanded by the restored shell
bash_intact() {
	local w=$1 pid
	ot send-keys -t "o:$w" 'echo "x is $x, pid $$, session $(ps -o sid= -p $$)"' Enter
	wait_for on_screen "$w" '^x is 42, pid '
	pid=$(ot capture-pane -p -t "o:$w" | sed -n 's/^x is 42, pid \([0-9]*\), session *\([0-9]*\)$/\1 \2/p')
	echo "pid and session: $pid, leads its session: $LEADS"
	if [ "$LEADS" = yes ]; then
		[ "${pid% *}" = "${pid#* }" ]
	else
		[ "${pid% *}" != "${pid#* }" ]
	fi
	ot resize-window -t "o:$w" -x $((90 + w)) -y 24
	ot send-keys -t "o:$w" 'echo "cols $COLUMNS"' Enter
	wait_for on_screen "$w" "^cols $((90 + w))\$"
	ot send-keys -t "o:$w" 'sleep 1000' Enter
	wait_for in_front "$w" sleep
	ot send-keys -t "o:$w" C-z
	wait_for on_screen "$w" 'Stopped *sleep 1000'
	wait_for in_front "$w" bash
	ot send-keys -t "o:$w" 'fg' Enter
	wait_for in_front "$w" sleep
	ot send-keys -t "o:$w" C-c
	ot send-keys -t "o:$w" 'echo "back $?"' Enter
	wait_for on_screen "$w" '^back 130$'
}

@test "an interactive bash on a terminal: dumped with --kill from outside, restored by ckpt-remap on a new terminal, three times: a session of its own there (a group of its own, restored from a job of a shell), its variables, SIGWINCH, ^Z, fg and ^C" {
	start_outer "PS1='P\$ ' bash --norc --noprofile -i"
	ot send-keys -t o:0 'x=42' Enter
	wait_for on_screen 0 '^P\$ x=42$'
	terminal_round_trips bash bash_intact
}

# python_intact I: the REPL in window I has its variable, sees the new
# window's size and takes ^C (KeyboardInterrupt) and input after it.
python_intact() {
	local w=$1
	ot send-keys -t "o:$w" 'print("x is", x)' Enter
	wait_for on_screen "$w" '^x is 42$'
	ot resize-window -t "o:$w" -x $((90 + w)) -y 24
	ot send-keys -t "o:$w" 'print("cols", os.get_terminal_size().columns)' Enter
	wait_for on_screen "$w" "^cols $((90 + w))\$"
	ot send-keys -t "o:$w" 'while True: pass' Enter Enter
	ot send-keys -t "o:$w" C-c
	wait_for on_screen "$w" '^KeyboardInterrupt$'
	ot send-keys -t "o:$w" "print('after', $w)" Enter
	wait_for on_screen "$w" "^after $w\$"
}

@test "a python3 REPL on a terminal: dumped with --kill from outside, restored by ckpt-remap on a new terminal, three times: its variables, the new size, ^C and input" {
	start_outer "python3 -q"
	ot send-keys -t o:0 'import os; x = 6 * 7' Enter
	wait_for on_screen 0 '^>>> import os; x = 6 \* 7$'
	terminal_round_trips python3 python_intact
}

# vim_intact I: vim in window I redraws its unsaved buffer on the new,
# blank terminal of its old size, then knows the size of a resize
# (SIGWINCH); u takes back
# the last of the lines typed before the first checkpoint (rounds 1, 2, 3:
# three, two, then one line left); in round 3, a line typed and :w write
# the file the buffer says.
vim_intact() {
	local w=$1
	# The new window is blank and of the size vim had: it redraws all
	# the same (ckpt-remap changes the size and back once vim waits
	# again), before anything is typed or resized.
	wait_for in_front "$w" vim
	wait_for on_screen "$w" '^alpha$'
	wait_for on_screen "$w" "^line$((4 - w))\$"
	# A resize reaches it too, once ckpt-remap's own size change is over
	# (a resize in the middle of it could be taken back by it).
	wait_for remap_settled "$w"
	ot resize-window -t "o:$w" -x $((90 + w)) -y 24
	ot send-keys -t "o:$w" ':echo "cols" &columns' Enter
	wait_for on_screen "$w" "^cols $((90 + w))"
	[ ! -e "$D/edit.txt" ]
	ot send-keys -t "o:$w" u
	wait_for not on_screen "$w" "^line$((4 - w))\$"
	on_screen "$w" "^line$((3 - w))\$"
	[ "$w" -eq 3 ] || return 0
	ot send-keys -t "o:$w" olast Escape ':w' Enter
	# What the buffer holds, written (vim's "written" line is not waited
	# for: a redraw, ckpt-remap's size change coming late on a loaded
	# machine, clears it).
	printf 'alpha\nline0\nlast\n' >"$BATS_TEST_TMPDIR/expect"
	wait_for cmp -s "$BATS_TEST_TMPDIR/expect" "$D/edit.txt"
}

@test "vim on a terminal, a buffer unsaved and its undo history: dumped with --kill from outside, restored by ckpt-remap on a new terminal, three times: it redraws at the new size (SIGWINCH), u undoes a change made before the checkpoints, :w writes what the buffer holds" {
	start_outer "$VIM"
	wait_for on_screen 0 '^~'
	ot send-keys -t o:0 i alpha Escape
	local l
	for l in 0 1 2 3; do
		ot send-keys -t o:0 o "line$l" Escape
		wait_for on_screen 0 "^line$l\$"
	done
	terminal_round_trips vim vim_intact
	ot send-keys -t o:3 ':q' Enter
}

# ---- under ckpt-inject --------------------------------------------------

# inject_round_trips UP: the member (a server) checkpointed by its
# coordinator with --kill and restarted by the restart script, three
# times, each restart answering its client (UP) and counting on.
inject_round_trips() {
	local gen n gdir
	# shellcheck disable=SC2153 # CPORT: start_coord's
	RPORT=$CPORT
	for gen in 1 2 3; do
		n=$(counted)
		gdir=$(ckpt-signal --coord-port "$RPORT" --checkpoint --wait --kill)
		echo "$gdir"
		[ "$gdir" = "$CDIR/ckpt_gen_00000$gen" ]
		wait_for not "$1"
		restart_bg "$gdir"
		wait_for has_members 1 "$RPORT" || { cat "$BATS_TEST_TMPDIR/restart.out"; false; }
		wait_for "$1"
		wait_for count_past "$n"
	done
	cat "$BATS_TEST_TMPDIR/restart.out"
}

@test "tmux under ckpt-inject: checkpointed by its coordinator with --kill and restarted by the restart script, three times; its client finds both windows, the count going on, vim's buffer and its undo" {
	start_coord
	# tmux -D: the server in the foreground, the member itself.
	cd "$D"
	inject tmux tmux -D -f /dev/null -S "$D/tmux.sock"
	cd "$TOP"
	wait_for has_members 1
	wait_for test -S "$D/tmux.sock"
	(cd "$D" && exec_clean tmux -S "$D/tmux.sock" new-session -d -s w -x 80 -y 24 \
		bash --norc --noprofile -i </dev/null >/dev/null 2>&1)
	tmux_windows
	inject_round_trips tmux_up
	tmux_intact
}

@test "an interactive bash under ckpt-inject on a terminal: checkpointed by its coordinator with --kill and restarted by the restart script in a new window, three times: a group of its own in the foreground there, its variables, SIGWINCH, ^Z, fg and ^C" {
	local gen gdir pf=$BATS_TEST_TMPDIR/rport env=
	# The pids bash knows (its group's) are kept in a pid namespace of
	# its own (ckpt-remap --pid-ns, through the script): restored under a
	# new pid, it would give the terminal back to a group that is not
	# there (ESRCH) after a job stops.  As root too: the killed bash
	# holds its pid a while after the --kill (CI saw the restore take a
	# new one, and bash's setpgid fail), and the tests by pid above keep
	# the pids without a namespace.
	env="CKPT_REMAP_ARGS=--pid-ns "
	start_coord
	start_outer "PS1='P\$ ' ckpt-inject -- bash --norc --noprofile -i"
	wait_for has_members 1
	ot send-keys -t o:0 'x=42' Enter
	wait_for on_screen 0 '^P\$ x=42$'
	# The script's ckpt-remap is not the leader of the window's session:
	# bash gets a group of its own in the foreground.
	LEADS=no
	RPORT=$CPORT
	for gen in 1 2 3; do
		gdir=$(ckpt-signal --coord-port "$RPORT" --checkpoint --wait --kill)
		echo "$gdir"
		[ "$gdir" = "$CDIR/ckpt_gen_00000$gen" ]
		rm -f "$pf"
		ot new-window -t "o:$gen" "$env$gdir/ckpt_restart_script.sh --coord-port 0 --port-file $pf"
		wait_for_file "$pf"
		RPORT=$(cat "$pf")
		COORD_PORTS+=("$RPORT")
		wait_for has_members 1 "$RPORT"
		bash_intact "$gen"
	done
}

# Root only, as by pid.
# bats test_tags=root
@test "GNU screen under ckpt-inject (screen -D -m): checkpointed by its coordinator with --kill and restarted by the restart script, three times; screen -Q finds both windows, hardcopy the count going on, vim's buffer and its undo" {
	[ "$(id -u)" -eq 0 ] || skip "a restore without privilege is in a pid namespace, whose server cannot signal its clients"
	command -v screen >/dev/null || skip "screen is not installed (make check installs it)"
	mkdir -m 700 "$D/screens"
	printf 'startup_message off\n' >"$D/screenrc"
	start_coord
	# screen -D -m: the server in the foreground, the member itself.
	cd "$D"
	SCREENDIR=$D/screens inject screen screen -c "$D/screenrc" -D -m -S w \
		bash --norc --noprofile -i
	cd "$TOP"
	wait_for has_members 1
	screen_two_windows
	inject_round_trips screen_up
	screen_windows
	windows_intact window0 window1 screen_undo
}
