#!/bin/sh
# x11tree.sh DIR SERVER: a virtual X server and three clients of it, one tree
# under this shell, for t/0930-x11.bats.
#
# SERVER (Xtigervnc, or Xvfb) runs on the first free display number
# (-displayfd, written to DIR/display), 400x300x24, no TCP (its VNC
# listener, for Xtigervnc, on the unix socket DIR/vnc.sock, no password),
# its log in DIR/server.log.  On it, with DISPLAY=:N:
#   xterm at +0+0, running a shell that shows "KNOWN TEXT" and appends
#   each line typed to DIR/typed, until the line "quit" (exit 0);
#   xeyes at +250+0 (it looks at the pointer, and moves only with it);
#   x11tk.py at +0+120 (a label and a button; its output in DIR/tk.out);
#   x11shm.py at +150+140 (drawing through MIT-SHM; output in DIR/shm.out).
# Prints "ready PID N" (this shell's pid, the display) once the Tk and
# MIT-SHM clients are mapped, then waits for xterm, x11tk.py and
# x11shm.py to exit, stops xeyes and the server, and prints "x11: ok" and
# exits 0 if all three exited 0 (else 1).  If the server does not start: "cannot start SERVER: ..."
# and exit 77.
dir=$1
server=$2
progs=$(cd "$(dirname "$0")" && pwd)
cd "$dir" || exit 1
case $server in
Xtigervnc) set -- Xtigervnc -rfbunixpath "$dir/vnc.sock" -rfbport -1 -SecurityTypes None \
	-geometry 400x300 -depth 24 ;;
Xvfb) set -- Xvfb -screen 0 400x300x24 ;;
*)
	echo "x11tree.sh: $server: neither Xtigervnc nor Xvfb" >&2
	exit 2
	;;
esac
"$@" -displayfd 3 -nolisten tcp 3>"$dir/display" </dev/null >"$dir/server.log" 2>&1 &
server_pid=$!
until [ -s "$dir/display" ]; do
	if ! kill -0 "$server_pid" 2>/dev/null; then
		echo "cannot start $server: $(tail -n 2 "$dir/server.log" | tr '\n' ' ')"
		exit 77
	fi
	sleep 0.05
done
DISPLAY=:$(cat "$dir/display")
export DISPLAY
# shellcheck disable=SC2016 # the inner shell expands $1
xterm -geometry 30x4+0+0 -e sh -c 'echo KNOWN TEXT
while read -r l; do
	echo "$l" >>"$1/typed"
	[ "$l" = quit ] && exit 0
done
exit 1' sh "$dir" </dev/null >/dev/null 2>"$dir/xterm.err" &
xterm_pid=$!
xeyes -geometry 120x80+250+0 </dev/null >/dev/null 2>"$dir/xeyes.err" &
xeyes_pid=$!
/usr/bin/python3 "$progs/x11tk.py" "$dir" </dev/null >"$dir/tk.out" 2>"$dir/tk.err" &
tk_pid=$!
/usr/bin/python3 "$progs/x11shm.py" "$dir" </dev/null >"$dir/shm.out" 2>"$dir/shm.err" &
shm_pid=$!
for c in tk shm; do
	until grep -qs '^ready ' "$dir/$c.out"; do
		if ! kill -0 "$tk_pid" 2>/dev/null || ! kill -0 "$shm_pid" 2>/dev/null; then
			echo "x11tree.sh: a client exited: $(cat "$dir/tk.err" "$dir/shm.err" "$dir/shm.out")" >&2
			exit 1
		fi
		sleep 0.05
	done
done
echo "ready $$ ${DISPLAY#:}"
st=0
wait "$xterm_pid" || st=1
wait "$tk_pid" || st=1
wait "$shm_pid" || st=1
kill "$xeyes_pid" "$server_pid"
wait "$xeyes_pid"
wait "$server_pid"
[ "$st" -eq 0 ] || exit 1
echo "x11: ok"
