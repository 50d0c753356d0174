#!/usr/bin/env bats
# Trust in the coordinated workflow, tried as an attacker would: another
# local user (ckpt-test, when the tests run as root) listening on the
# coordinator's port, or talking to root's coordinator; and a coordinator
# that cannot prove it knows the shared secret.  A client trusts only a
# coordinator whose socket its own uid owns (the kernel says, for a peer
# on this host) or, elsewhere, one that proves the secret; a coordinator
# serves only its own user, and from elsewhere only who proves the secret.

bats_require_minimum_version 1.5.0
load lib

setup() {
	shared_dir
}

teardown() {
	coord_teardown
	rm -rf "$shared"
}

# impostor [PREFIX...]: t/progs/fakecoord.py (run by PREFIX, e.g. as
# $OTHER) on a free port, in $FPORT; what it receives in $shared/heard.
impostor() {
	exec_clean "$@" /usr/bin/python3 "$TOP/t/progs/fakecoord.py" "$shared/fport" "$shared/heard" \
		</dev/null >/dev/null 2>"$shared/fake.err" &
	CKPT_PIDS+=("$!")
	wait_for_file "$shared/fport"
	FPORT=$(cat "$shared/fport")
}

# heard_nothing: the impostor received not one line.
heard_nothing() {
	if [ -s "$shared/heard" ]; then
		echo "the impostor heard:" >&2
		cat "$shared/heard" >&2
		return 1
	fi
}

# bats test_tags=root
@test "another user's impostor on the port: ckpt-inject, ckpt-signal and the restart script refuse it before saying a word" {
	local s=$BATS_TEST_TMPDIR/secret other dir refused
	other=$(id -u "$OTHER")
	echo "a-long-enough-secret" >"$s"
	chmod 600 "$s"
	# A generation to restart, made with a real coordinator first.
	start_coord --compress none
	exec_clean ckpt-inject -- logger "$BATS_TEST_TMPDIR/a.log" 300 </dev/null >/dev/null 2>&1 &
	local pa=$!
	CKPT_PIDS+=("$pa")
	wait_for has_members 1
	run ckpt-signal --checkpoint --wait --kill
	[ "$status" -eq 0 ]
	dir=$output
	reap "$pa"
	impostor "${AS_OTHER[@]}"
	refused="the coordinator there runs as uid $other, not as this user (uid 0): not ours, refused"
	run ckpt-inject --coord-port "$FPORT" -- sh -c 'echo ran'
	[ "$status" -eq 99 ]
	[ "$output" = "ckpt-inject: $refused" ]
	run ckpt-inject --coord-port "$FPORT" --secret-file "$s" -- sh -c 'echo ran'
	[ "$status" -eq 99 ]
	[ "$output" = "ckpt-inject: $refused" ]
	run ckpt-inject --coord-port "$FPORT" -p "$$"
	[ "$status" -eq 99 ]
	run ckpt-signal --coord-port "$FPORT" --kill
	[ "$status" -eq 1 ]
	[ "$output" = "ckpt-signal: $refused" ]
	# The restart script finds the port taken by someone it does not
	# trust: it fails, and no member is restored into the impostor.
	run "$dir/ckpt_restart_script.sh" --coord-port "$FPORT"
	echo "$output"
	[ "$status" -eq 99 ]
	heard_nothing
	[ ! -e "$shared/loot.img" ]
}

# bats test_tags=root
@test "another user cannot command root's coordinator, nor keep root out with 1100 connections" {
	local other hold=$BATS_TEST_TMPDIR/hold
	other=$(id -u "$OTHER")
	start_coord
	exec_clean ckpt-inject -- logger "$BATS_TEST_TMPDIR/a.log" 300 20 "$hold" \
		</dev/null >/dev/null 2>&1 &
	local pa=$!
	CKPT_PIDS+=("$pa")
	wait_for has_members 1
	# Its own tools refuse a coordinator that is not its user's.
	run "${AS_OTHER[@]}" ckpt-signal --kill
	[ "$status" -eq 1 ]
	[[ $output == *"runs as uid 0, not as this user (uid $other)"* ]]
	# Said by hand, every verb is refused before it is read.
	run "${AS_OTHER[@]}" /usr/bin/python3 - "$CPORT" <<'EOF'
import socket, sys
for line in (b"KILL\n", b"QUIT\n", b"JOIN 1 1 host fake\n", b"CHECKPOINT\n"):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(line)
    print(s.makefile().readline().strip())
EOF
	echo "$output"
	[ "${#lines[@]}" -eq 4 ]
	for l in "${lines[@]}"; do
		[ "$l" = "ERR uid $other is not this coordinator's user; refused" ]
	done
	kill -0 "$pa"
	# 1100 connections held open: refused at once, they take no place.
	"${AS_OTHER[@]}" /usr/bin/python3 - "$CPORT" "$shared/flood" <<'EOF' &
import os, socket, sys, time
conns = []
for i in range(1100):
    try:
        conns.append(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
    except OSError:
        pass
open(sys.argv[2], "w").write("%d\n" % len(conns))
time.sleep(30)
EOF
	CKPT_PIDS+=("$!")
	wait_for_file "$shared/flood"
	run ckpt-signal --status
	[ "$status" -eq 0 ]
	[[ $output == *"members: 1"* ]]
	run ckpt-signal --checkpoint --wait
	[ "$status" -eq 0 ]
	# The log says so, but not 1100 times.
	grep -q "a connection from uid $other refused" "$BATS_TEST_TMPDIR/coord.log"
	[ "$(grep -c refused "$BATS_TEST_TMPDIR/coord.log")" -lt 20 ]
	touch "$hold"
	reap "$pa"
	[ "$status" -eq 0 ]
}

@test "a coordinator that cannot prove the secret is refused, and never hears it" {
	local s=$BATS_TEST_TMPDIR/secret
	echo "a-long-enough-secret" >"$s"
	chmod 600 "$s"
	impostor
	run ckpt-inject --coord-port "$FPORT" --secret-file "$s" -- sh -c 'echo ran'
	[ "$status" -eq 99 ]
	[[ $output == "ckpt-inject: the coordinator's proof does not match our secret"* ]]
	run ckpt-signal --coord-port "$FPORT" --secret-file "$s" --status
	[ "$status" -eq 1 ]
	# It heard a nonce, nothing that holds or gives the secret.
	cat "$shared/heard"
	[ "$(grep -vc '^HELLO [0-9a-f]\{64\}$' "$shared/heard")" -eq 0 ]
	run ! grep -q "a-long-enough-secret" "$shared/heard"
}

@test "the secret's challenge: each connection its own nonces, so an AUTH seen once opens nothing" {
	local s=$BATS_TEST_TMPDIR/secret n1 n2
	echo "a-long-enough-secret" >"$s"
	chmod 600 "$s"
	start_coord --secret-file "$s"
	run /usr/bin/python3 - "$CPORT" <<'EOF'
import hashlib, hmac, socket, sys
port = int(sys.argv[1])
def session(auth=None):
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rw")
    nonce = "ab" * 32
    f.write("HELLO %s\n" % nonce); f.flush()
    _, theirs, proof = f.readline().split()
    # What a listener would have seen: the right client's proof for
    # this session; replayed in another, it must fail.
    mine = hmac.new(b"a-long-enough-secret", b"ckpt-client\0" + theirs.encode() + nonce.encode(),
                    hashlib.sha256).hexdigest()
    f.write("AUTH %s\n" % (auth or mine)); f.flush()
    print(theirs, f.readline().strip())
    return mine
seen = session()
session(seen)
EOF
	echo "$output"
	[ "${#lines[@]}" -eq 2 ]
	[[ ${lines[0]} == *" OK" ]]
	[[ ${lines[1]} == *" ERR wrong secret" ]]
	n1=${lines[0]%% *} n2=${lines[1]%% *}
	[ "$n1" != "$n2" ]
}

@test "a member that reports an image it did not write fails the checkpoint: no generation names it" {
	local hold=$BATS_TEST_TMPDIR/hold
	start_coord --compress none
	exec_clean ckpt-inject -- logger "$BATS_TEST_TMPDIR/a.log" 300 20 "$hold" \
		</dev/null >/dev/null 2>&1 &
	local pa=$!
	CKPT_PIDS+=("$pa")
	wait_for has_members 1
	# A member of this user's that answers every round and writes nothing.
	/usr/bin/python3 - "$CPORT" "$(hostname)" "$BATS_TEST_TMPDIR/fake.ready" <<'EOF2' &
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = s.makefile("rw")
f.write("JOIN 1 1 %s fake\n" % sys.argv[2]); f.flush()
f.readline()
open(sys.argv[3], "w").write("joined\n")
for line in f:
    verb, gen = line.split()[:2]
    reply = {"FREEZE": "FROZEN %s", "DUMP": "DUMPED %s 4096",
             "SYNC": "SYNCED %s 4096 12345"}.get(verb)
    if reply:
        f.write(reply % gen + "\n"); f.flush()
EOF2
	CKPT_PIDS+=("$!")
	wait_for_file "$BATS_TEST_TMPDIR/fake.ready"
	wait_for has_members 2
	run ckpt-signal --checkpoint --wait
	echo "$output"
	[ "$status" -eq 1 ]
	[[ $output == *"(fake): its image "*"is not the one it reported (4096 bytes, crc32c 00003039)"* ]]
	[ ! -e "$CDIR/current" ]
	[ -z "$(ls "$CDIR")" ]
	touch "$hold"
	reap "$pa"
	[ "$status" -eq 0 ]
}

@test "a checkpoint directory others may write is refused; a link planted where a generation was is removed, not followed" {
	run ckpt-coord --port 0 --dir "$shared"
	[ "$status" -eq 1 ]
	[[ $output == "ckpt-coord: checkpoint directory $shared: owned by uid "*", mode 1777: not this user's alone"* ]]
	# A stale temporary generation that is a link: the coordinator
	# clears those at start, and must not clear what the link names.
	mkdir -p "$BATS_TEST_TMPDIR/ckpt" "$BATS_TEST_TMPDIR/victim"
	echo keep >"$BATS_TEST_TMPDIR/victim/file"
	ln -s "$BATS_TEST_TMPDIR/victim" "$BATS_TEST_TMPDIR/ckpt/.ckpt_gen_000001.tmp"
	start_coord
	[ ! -L "$CDIR/.ckpt_gen_000001.tmp" ]
	[ "$(cat "$BATS_TEST_TMPDIR/victim/file")" = keep ]
}

@test "a helper writes an image only into a directory of its own user's, whatever the coordinator says" {
	local hold=$BATS_TEST_TMPDIR/hold
	# A coordinator of this user's that sends the image to a directory
	# others may write ($shared, 1777).
	impostor
	exec_clean ckpt-inject --coord-port "$FPORT" -- logger "$BATS_TEST_TMPDIR/a.log" 300 20 "$hold" \
		</dev/null >/dev/null 2>&1 &
	CKPT_PIDS+=("$!")
	wait_for grep -q "^FAILED 1 " "$shared/heard"
	cat "$shared/heard"
	grep -q "^FAILED 1 $shared:%20not%20a%20directory%20of%20this%20user's%20alone" "$shared/heard"
	[ ! -e "$shared/loot.img" ]
}

@test "with a secret: a flood without it keeps nobody out, the log stays short, and guessing costs time" {
	local s=$BATS_TEST_TMPDIR/secret i
	echo "a-long-enough-secret" >"$s"
	chmod 600 "$s"
	start_coord --secret-file "$s"
	# 1050 connections from 127.0.0.2 that send a few bytes and hold on.
	/usr/bin/python3 - "$CPORT" "$BATS_TEST_TMPDIR/flood" <<'EOF2' &
import resource, socket, sys, time
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for i in range(1050):
    try:
        c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), source_address=("127.0.0.2", 0))
        c.sendall(b"HEL")
        held.append(c)
    except OSError:
        pass
# Those answered and closed were refused; the rest are held.  The
# coordinator takes them in turn: count until at most 8 are left, for
# up to 20 s (a loaded machine is slow to get through 1050).
def alive():
    n = 0
    for c in held:
        try:
            c.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n
for i in range(200):
    n = alive()
    if n <= 8:
        break
    time.sleep(0.1)
open(sys.argv[2], "w").write("%d\n" % n)
time.sleep(30)
EOF2
	CKPT_PIDS+=("$!")
	wait_for_file "$BATS_TEST_TMPDIR/flood"
	cat "$BATS_TEST_TMPDIR/flood"
	[ "$(cat "$BATS_TEST_TMPDIR/flood")" -le 8 ]
	for ((i = 0; i < 12; i++)); do
		ckpt-signal --secret-file "$s" --status >/dev/null
	done
	[ "$(grep -c refused "$BATS_TEST_TMPDIR/coord.log")" -lt 20 ]
	# Guessing from 127.0.0.3 as fast as it can: one wrong answer, then
	# the address waits.
	run /usr/bin/python3 - "$CPORT" <<'EOF2'
import socket, sys
for i in range(20):
    c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), source_address=("127.0.0.3", 0))
    f = c.makefile("rw")
    f.write("HELLO %064d\n" % i); f.flush()
    line = f.readline().strip()
    if line.startswith("CHALLENGE"):
        f.write("AUTH %064d\n" % 0); f.flush()
        line = f.readline().strip()
    print(line)
EOF2
	[ "$(grep -c '^ERR wrong secret$' <<<"$output")" -eq 1 ]
	[ "$(grep -c '^ERR 1 failed proofs from 127.0.0.3: try again in 1 s$' <<<"$output")" -eq 19 ]
	ckpt-signal --secret-file "$s" --status >/dev/null
}
