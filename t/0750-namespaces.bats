#!/usr/bin/env bats
# A process in a uts, net, user, ipc or time namespace of its own comes
# back in a new one with what it had set there (hostname, lo up and a UDP
# socket bound on 127.0.0.1, uid_map, clock offsets); a child that made
# its own while its parent did not comes back so, and so do the init of a
# pid namespace below the tree's and its child, with their pids at every
# level; a process in a cgroup (v2) of its own comes back in it (a mount
# namespace of its own: t/0790).  System V objects
# in an ipc namespace of its own are refused by name at dump.  t/progs/nsprog makes the namespaces (in a user namespace first,
# without root) and checks them after the restore.

load lib

bats_require_minimum_version 1.5.0

setup() {
	if [ "$(id -u)" -ne 0 ] && ! unshare -Ur true 2>/dev/null; then
		skip "no unprivileged user namespaces here"
	fi
	workdir ns
}

teardown() {
	kill_started
	if [ -n "${CG:-}" ]; then
		wait_for rmdir "$CG"
	fi
}

# started MODE: nsprog MODE runs, ready.
started() {
	start_bg nsprog "$1" "$D"
	wait_for_line "$OUT" '^ready '
}

@test "uts: a new namespace with the hostname and domainname; ckpt-inspect shows them" {
	started uts
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"namespaces: of its own, not the tree's:"*"  uts    inode "*", hostname ckpt-ns-test, domainname ckpt.test"* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"namespaces":[{"pid":'"$BG_PID"',"own":{'*'"uts":'*'"hostname":"ckpt-ns-test","domainname":"ckpt.test"'* ]]
	bg_restored "nsprog: ok"
}

@test "an NS record forged with a cgroup namespace is refused at restore, one with an unknown type when read" {
	started uts
	bg_dump_kill
	forge.py "$IMG" nsown 0x50
	run --separate-stderr ckpt-remap "$IMG"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"pid $BG_PID: the image gives it a cgroup namespace of its own; not supported"* ]]
	forge.py "$IMG" nsown 0x110
	run --separate-stderr ckpt-inspect "$IMG"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"NS record: bad namespaces, flags, names, maps, cgroup path or pids"* ]]
}

@test "net: a new namespace with lo up, the UDP socket bound on 127.0.0.1 there" {
	started net
	bg_dump_kill
	run ckpt-inspect "$IMG"
	[[ "$output" == *"  net    inode "*", lo up"* ]]
	bg_restored "nsprog: ok"
}

@test "user: a new user namespace with the same uid_map, uid 0 in it" {
	started user
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"  user   inode "*", uid_map 0 $(id -u) 1, gid_map 0 $(id -g) 1, setgroups deny"* ]]
	bg_restored "nsprog: ok"
}

@test "ipc: a new, empty ipc namespace" {
	started ipc
	bg_dump_kill
	bg_restored "nsprog: ok"
}

@test "an ipc namespace of its own holding a semaphore set is refused by name; the process runs on" {
	started ipcobj
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"pid $BG_PID: its ipc namespace is its own and holds 1 System V objects (sem among them): not recorded; not supported"* ]]
	finish_bg
}

@test "a tree: the child back in a uts namespace of its own, its parent in the one it started in" {
	started tree
	bg_dump_kill -t
	bg_restored "nsprog: ok"
}

@test "a tree whose root has a user namespace of its own is refused by name before anything is made" {
	start_bg unshare -Ur nsprog tree "$D"
	wait_for_line "$OUT" '^ready '
	bg_dump_kill -t
	touch "$D/go"
	run --separate-stderr ckpt-remap "$IMG"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"pid $BG_PID: its user namespace is its own and it has children in the tree; not supported"* ]]
	not grep -q "nsprog: ok" "$OUT"
}

@test "the dumped process runs on in its namespaces" {
	started uts
	ckpt-dump -o "$IMG" "$BG_PID"
	finish_bg
	grep -qx "nsprog: ok" "$OUT"
}

@test "time: a new time namespace with its offsets, entered; its clocks go on from where they stood" {
	started time
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"  time   inode "*", offsets monotonic 86400.000000000 s, boottime 172800.000000000 s"* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"time":{"monotonic":[86400,0],"boottime":[172800,0],"clocks_ns":['*'],"children_only":false}'* ]]
	bg_restored "nsprog: ok"
}

@test "time, the image taken for another boot's: offsets that make its clocks go on, smaller by the time it was down" {
	started time
	bg_dump_kill
	forge.py "$IMG" bootid 0123456789abcdef0123456789abcdef
	touch "$D/moved"
	bg_restored "nsprog: ok"
}

# in_own_userns MODE GREP: (unprivileged) nsprog MODE's tree dumped and
# restored inside a user and pid namespace of their own, where they are
# root: a user namespace of its own with children cannot be made again.
# ckpt-inspect's output has one line matching GREP; the program passes.
in_own_userns() {
	nsprog_own_ns "$1"
	[ "$(grep -c -- "$2" <<<"$output")" -eq 1 ]
}

@test "time: a namespace made for its children only (unshare --time --fork): the child back in it, the parent not" {
	if [ "$(id -u)" -ne 0 ]; then
		in_own_userns timekids "its children.s only"
		return
	fi
	started timekids
	local kid
	kid=$(descendants "$BG_PID")
	bg_dump_kill -t
	wait_for not kill -0 "$kid"
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *", boottime 172800.000000000 s, its children's only"* ]]
	bg_restored "nsprog: ok"
}

@test "pid: a namespace made for its children (unshare --pid --fork): its init (pid 1) and the init's child (pid 2) back with their pids at every level" {
	if [ "$(id -u)" -ne 0 ]; then
		in_own_userns pidns "pid 2 below the tree's"
		return
	fi
	started pidns
	local kids
	kids=$(descendants "$BG_PID")
	bg_dump_kill -t
	for k in $kids; do
		wait_for not kill -0 "$k"
	done
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"  pid    inode "*", pid 1 below the tree's"*"  pid    inode "*", pid 2 below the tree's"* ]]
	bg_restored "nsprog: ok"
}

# bats test_tags=root
@test "pid: a process with threads in a pid namespace below the tree's is refused by name; the tree runs on" {
	[ "$(id -u)" -eq 0 ] || skip "a pid namespace needs root here"
	started pidthreads
	local kids
	mapfile -t kids < <(descendants "$BG_PID")
	echo "kids ${kids[*]}"
	run --separate-stderr ckpt-dump -t -o "$IMG" "$BG_PID"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"pid ${kids[1]}: in a pid namespace below the tree's, with threads; not supported"* ]]
	finish_bg
}

@test "time: a second one made for its children while in one of its own is refused by name; the process runs on" {
	started timetwice
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"pid $BG_PID: its time namespace is its own and it made another for its children; not supported"* ]]
	finish_bg
}

@test "TIMENS: a record without the NS record of a time namespace before it is refused when read" {
	started time
	bg_dump_kill
	forge.py "$IMG" nsown 0x10
	run --separate-stderr ckpt-inspect "$IMG"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"TIMENS record without an NS record of a time namespace of its own before it, or a second one"* ]]
}

@test "TIMENS: an NS record of a time namespace without its TIMENS record is refused when read" {
	started uts
	bg_dump_kill
	forge.py "$IMG" nsown 0x90
	run --separate-stderr ckpt-inspect "$IMG"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"NS record: a time namespace of its own without its TIMENS record"* ]]
}

# bats test_tags=root
@test "a cgroup of its own: back in it; gone at restore, refused by name before anything is made" {
	local mnt
	mnt=$(awk '$0 ~ / - cgroup2 / {print $5; exit}' /proc/self/mountinfo)
	[ -n "$mnt" ] || skip "no cgroup v2 here"
	CG=$mnt/ckpt-ns-$$
	mkdir "$CG"
	# shellcheck disable=SC2016 # $$ is the inner shell's
	start_bg sh -c 'echo $$ > "$1/cgroup.procs" && exec nsprog cgroup "$2"' sh "$CG" "$D"
	wait_for_line "$OUT" '^ready '
	bg_dump_kill
	run ckpt-inspect "$IMG"
	[[ "$output" == *"cgroup:   /ckpt-ns-$$"* ]]
	rmdir "$CG"
	run --separate-stderr ckpt-remap "$IMG"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"pid $BG_PID: cannot move it into cgroup /ckpt-ns-$$: no such cgroup here"* ]]
	not grep -q "nsprog: ok" "$OUT"
	mkdir "$CG"
	bg_restored "nsprog: ok"
}
