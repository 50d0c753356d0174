#!/usr/bin/env bats
# X programs: a virtual X server from Debian (Xtigervnc, TigerVNC's X
# server, the one VNC users run; Xvfb where it is missing) and clients of
# it as one tree (t/progs/x11tree.sh: xterm showing known text, xeyes, a
# Tk program with a label and a button, t/progs/x11tk.py, and a client
# drawing through MIT-SHM, System V segments it shares with the server,
# t/progs/x11shm.py), checkpointed
# with --kill and restored three times, by pid (ckpt-dump -t, ckpt-remap)
# and under ckpt-inject (the restart script).  After each restore a
# screenshot of the display (xwd -root) is the one taken before the
# checkpoint, byte for byte, and the clients still answer X events:
# xdotool types a line into xterm (its shell gets it) and presses the Tk
# button (its label counts the presses), and a press on the MIT-SHM
# client's window makes it draw a new pattern through one segment and
# read it back through the other; Xtigervnc's VNC listener (a unix
# socket in the test's directory) still greets a client.  No privilege is
# needed.

load lib

bats_require_minimum_version 1.5.0

setup() {
	local p
	for p in xterm xeyes xdotool xwd; do
		command -v "$p" >/dev/null || skip "$p is not installed (make test-deps installs it)"
	done
	/usr/bin/python3 -c 'import tkinter' 2>/dev/null ||
		skip "python3-tk is not installed (make test-deps installs it)"
	if command -v Xtigervnc >/dev/null; then
		SERVER=Xtigervnc
	elif command -v Xvfb >/dev/null; then
		SERVER=Xvfb
	else
		skip "neither Xtigervnc (tigervnc-standalone-server) nor Xvfb is installed"
	fi
	workdir x11
	SHOT=$BATS_TEST_TMPDIR/shot.xwd
}

teardown() {
	local n
	coord_teardown
	kill_in_dir "$D" "$SERVER"
	# A server killed by a checkpoint leaves its socket and lock file.
	n=$(cat "$D/display" 2>/dev/null) || return 0
	if ! xwd -root -silent -display ":$n" >/dev/null 2>&1; then
		[ ! -O "/tmp/.X11-unix/X$n" ] || rm -f "/tmp/.X11-unix/X$n"
		[ ! -O "/tmp/.X$n-lock" ] || rm -f "/tmp/.X$n-lock"
	fi
}

# x11_ready FILE: x11tree says "ready" (or could not start its server) in FILE.
x11_ready() {
	grep -qs -e '^ready ' -e '^cannot start' "$1"
}

# started FILE: x11tree, whose output is FILE, is ready: $DISPLAY is its
# display, BUTTON the root coordinates of the Tk button, SHMWIN those of
# the MIT-SHM client's window; skips where the server cannot start.
started() {
	wait_for x11_ready "$1"
	if grep -q '^cannot start' "$1"; then
		skip "$(cat "$1")"
	fi
	DISPLAY=:$(awk '/^ready /{print $3}' "$1")
	export DISPLAY
	read -r _ _ BX BY < <(grep '^ready button' "$D/tk.out")
	BUTTON=("$BX" "$BY")
	read -r _ _ BX BY < <(grep '^ready window' "$D/shm.out")
	SHMWIN=("$BX" "$BY")
}

# shot FILE: a screenshot of the whole display into FILE; one that takes
# more than 10 s fails (and wait_for tries again) rather than hang the test
# (CI saw xwd hang once against a restarted server).
shot() {
	timeout 10 xwd -root -silent >"$1" 2>/dev/null
}

# settled: two screenshots in a row are the same (every client has drawn
# what it was asked to); the last in $SHOT.
settled() {
	shot "$SHOT.new" || return 1
	if cmp -s "$SHOT.new" "$SHOT"; then
		return 0
	fi
	mv "$SHOT.new" "$SHOT"
	return 1
}

# same_screen: once the restored server answers, the display is the one
# of the screenshot taken before the checkpoint ($SHOT), byte for byte;
# if not, where the two differ (t/progs/xwddiff.py).
same_screen() {
	wait_for -t 30 shot "$SHOT.after"
	cmp -s "$SHOT" "$SHOT.after" && return 0
	/usr/bin/python3 "$TOP/t/progs/xwddiff.py" "$SHOT" "$SHOT.after" || true
	return 1
}

# vnc_greets: Xtigervnc's VNC listener sends the RFB greeting.
vnc_greets() {
	[ "$SERVER" = Xtigervnc ] || return 0
	/usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
g = s.recv(12)
print(g)
sys.exit(0 if g.startswith(b"RFB 003.") else 1)' "$D/vnc.sock"
}

# drive N: X events from outside: "round N" typed into xterm reaches its
# shell, a press of the Tk button makes its label "clicked N", one on the
# MIT-SHM client's window its drawing N, shown and read back; the screen
# then settles on something else than before.
drive() {
	cp "$SHOT" "$SHOT.before"
	xdotool mousemove 60 30 type "round $1"$'\n'
	wait_for_line "$D/typed" "^round $1\$"
	xdotool mousemove "${BUTTON[@]}" click 1
	wait_for_line "$D/tk.out" "^label: clicked $1\$"
	xdotool mousemove "${SHMWIN[@]}" click 1
	wait_for_line "$D/shm.out" "^shm: put $1 ok\$"
	wait_for settled
	run ! cmp -s "$SHOT.before" "$SHOT"
}

# finish FILE PID: xterm's shell told to quit, the Tk and MIT-SHM
# programs to check they saw 3 presses; the tree (PID: the launcher, ckpt-remap or the
# restart script) exits 0, x11tree saying "x11: ok" in FILE.
finish() {
	xdotool mousemove 60 30 type $'quit\n'
	echo 3 >"$D/go"
	reap "$2"
	cat "$1" "$D/tk.out" "$D/tk.err" "$D/shm.out" "$D/shm.err" "$D/typed" "$BATS_TEST_TMPDIR/bg.err" \
		"$BATS_TEST_TMPDIR/remap.err" 2>/dev/null || true
	[ "$status" -eq 0 ]
	grep -qx 'x11: ok' "$1"
	grep -qx 'restored: yes' "$D/tk.out"
	grep -qx 'tk: ok clicks 3' "$D/tk.out"
	grep -qx 'restored: yes' "$D/shm.out"
	grep -qx 'shm: ok presses 3' "$D/shm.out"
	[ "$(cat "$D/typed")" = "$(printf '%s\n' 'round 1' 'round 2' 'round 3' quit)" ]
}

# remap_bg: ckpt-remap $IMG in the background, its pid in $BG_PID.
remap_bg() {
	exec_clean ckpt-remap "$IMG" </dev/null >"$BATS_TEST_TMPDIR/remap.out" 2>"$BATS_TEST_TMPDIR/remap.err" &
	BG_PID=$!
	CKPT_PIDS+=("$BG_PID")
}

@test "Xtigervnc (or Xvfb), xterm, xeyes, a Tk program and an MIT-SHM client as one tree: three round trips by pid (ckpt-dump -t --kill, ckpt-remap), the screen the same after each, typing into xterm, pressing the Tk button and drawing through shared memory still work" {
	local root host r
	start_bg x11tree.sh "$D" "$SERVER"
	started "$OUT"
	root=$BG_PID host=$BG_PID
	for r in 1 2 3; do
		wait_for settled
		ckpt-dump -t --kill -o "$IMG" "$host"
		wait "$BG_PID" || true
		# The server and the MIT-SHM client map both segments.
		[ "$(ckpt-inspect "$IMG" | grep -c ' rw-s shm .* /SYSV')" -eq 4 ]
		CKPT_PIDS=()
		wait_for none_in_dir "$D"
		remap_bg
		same_screen
		vnc_greets
		drive "$r"
		host=$(host_of "$root")
	done
	finish "$OUT" "$BG_PID"
}

@test "the same tree under ckpt-inject: three checkpoints with --kill, each restarted by the restart script, the screen the same after each, the clients still answer X events" {
	local r dir port pid
	start_coord
	port=$CPORT
	inject x11 x11tree.sh "$D" "$SERVER"
	pid=$INJ_PID
	started "$BATS_TEST_TMPDIR/x11.out"
	wait_for has_members 1
	for r in 1 2 3; do
		wait_for settled
		run ckpt-signal --coord-port "$port" --checkpoint --wait --kill
		echo "$output"
		[ "$status" -eq 0 ]
		dir=$output
		reap "$pid"
		wait_for none_in_dir "$D"
		restart_bg "$dir"
		port=$RPORT pid=$RS_PID
		wait_for has_members 1 "$port"
		same_screen
		vnc_greets
		drive "$r"
	done
	finish "$BATS_TEST_TMPDIR/x11.out" "$RS_PID"
}
