#!/usr/bin/env bats
# Files on tmpfs mapped shared (POSIX shm in /dev/shm, Open MPI's vader
# segments, a file in a tmpfs directory) are memory: the image holds their
# contents, once per file however many processes map them, and a restore
# makes each again at its path as a new file (written aside, renamed over
# the path) before any process maps it.  t/progs/shmfiles: a parent and two
# children mapping a /dev/shm file and a file in a tmpfs directory; each
# checks after the restore that both hold its generation's contents, that
# the path and its fd are the file it maps, and that a write of each shows
# in the others' mappings.

load lib

bats_require_minimum_version 1.5.0

# A tmpfs directory beside /dev/shm: as root one mounted here, else one
# made in /dev/shm (itself a tmpfs).
setup_file() {
	if [ "$(id -u)" -eq 0 ]; then
		TMPFS_DIR=$BATS_FILE_TMPDIR/tmpfs
		mkdir "$TMPFS_DIR"
		mount -t tmpfs -o size=16m,mode=1777 ckpt-shmfiles "$TMPFS_DIR"
	else
		TMPFS_DIR=$(mktemp -d /dev/shm/ckpt-shmfiles-dir.XXXXXX)
	fi
	[ "$(stat -f -c %T "$TMPFS_DIR")" = tmpfs ]
	export TMPFS_DIR
}

teardown_file() {
	if [ "$(id -u)" -eq 0 ]; then
		umount "$TMPFS_DIR"
	else
		rm -rf "$TMPFS_DIR"
	fi
}

setup() {
	workdir shmfiles
	RERR=$BATS_TEST_TMPDIR/remap.err
	SUBDIR=
}

teardown() {
	kill_started
	if [ -n "${SF_PID:-}" ]; then
		rm -f "/dev/shm/ckpt-shmfiles-$SF_PID" "$TMPFS_DIR/shmfiles-$SF_PID"
	fi
	if [ -n "$SUBDIR" ]; then
		rm -rf "$SUBDIR"
	fi
}

# start_sf [-u|-c] [DIR]: shmfiles [-u|-c] (or $SF_PROG) with its tmpfs
# file in DIR ($TMPFS_DIR), ready; $SF_PID, $SHM and $TF its files.
start_sf() {
	local opt=()
	if [ "${1:-}" = -u ] || [ "${1:-}" = -c ]; then
		opt=("$1")
		shift
	fi
	local dir=${1:-$TMPFS_DIR}
	start_bg "${SF_PROG:-shmfiles}" "${opt[@]}" "$dir" "$D"
	wait_for_line "$OUT" '^ready '
	SF_PID=$BG_PID
	SHM=/dev/shm/ckpt-shmfiles-$SF_PID
	TF=$dir/shmfiles-$SF_PID
}

# gen2: every process of the running shmfiles writes generation 2.
gen2() {
	touch "$D/gen2"
	wait_for_file "$D/gen2.0"
	wait_for_file "$D/gen2.1"
	wait_for_file "$D/gen2.2"
}

# restored_ok: $IMG restored; every process found both files intact.
restored_ok() {
	bg_restored "shmfiles: ok"
	[ -z "$stderr" ]
	grep -qx "restored: yes" "$OUT"
}

@test "dumped with -t --kill, the files then overwritten and removed: each process finds the checkpoint's contents, still shared" {
	start_sf
	bg_dump_kill -t
	head -c 300000 /dev/urandom >"$SHM"
	rm "$TF"
	restored_ok
}

@test "--save-files, a child holding the /dev/shm file only open (unmapped): the same new file for all, fd and mappings" {
	start_sf -u
	bg_dump_kill -t --save-files
	ckpt-inspect "$IMG" | grep -E '^  (tmpfs|saved) ' >&2
	[ "$(ckpt-inspect "$IMG" | grep -c "^  tmpfs .* $SHM\$")" -eq 3 ]
	rm "$SHM"
	restored_ok
}

@test "ckpt-inspect: each file once, kind tmpfs, with its size, mode, owner and path; its data stored once" {
	start_sf
	bg_dump_kill -t
	run --separate-stderr ckpt-inspect "$IMG"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -Eq "^  tmpfs +193.0 KiB, 152.0 KiB stored, mode 0640, owner $(id -u):$(id -g) $SHM\$" <<<"$output"
	grep -Eq "^  tmpfs +193.0 KiB, 148.0 KiB stored, mode 0600, owner $(id -u):$(id -g) $TF\$" <<<"$output"
	# The children's records name the same files, whose data the parent's carry.
	[ "$(grep -Ec "^  tmpfs +193.0 KiB, 0 B stored, .* ($SHM|$TF)\$" <<<"$output")" -eq 4 ]
	grep -Eq "^  [0-9a-f-]+ rw-s shm +0 B $SHM \[maywrite\]\$" <<<"$output"
	run --separate-stderr ckpt-inspect --json "$IMG"
	[ "$status" -eq 0 ]
	python3 -c '
import json, os, sys
d = json.load(sys.stdin)
o = [x for x in d["objects"] if x["name"] == sys.argv[1]]
assert len(o) == 1 and o[0]["kind"] == "tmpfs" and o[0]["size"] == 197608, o
assert o[0]["mode"] == 0o640 and o[0]["uid"] == os.getuid() and o[0]["gid"] == os.getgid(), o
assert o[0]["stored_bytes"] == 38 * 4096 and o[0]["mtime"] > 0, o
' "$SHM" <<<"$output"
}

@test "a file whose directory under /dev/shm is gone comes back, the directory made again" {
	SUBDIR=$(mktemp -d /dev/shm/ckpt-shmfiles-sub.XXXXXX)
	start_sf "$SUBDIR"
	bg_dump_kill -t
	rm -rf "$SUBDIR" "$SHM"
	restored_ok
	[ "$(stat -c %a "$SUBDIR")" = 700 ]
}

@test "a dump without --kill, then a copy restored while the original runs on: each finds its own generation" {
	local ino rp st=0 pidns=()
	start_sf
	ckpt-dump -t -o "$IMG" "$SF_PID"
	gen2
	ino=$(stat -c %i "$SHM")
	[ "$(id -u)" -ne 0 ] || pidns=(--pid-ns)
	exec_clean ckpt-remap "${pidns[@]}" "$IMG" </dev/null >/dev/null 2>"$RERR" &
	rp=$!
	CKPT_PIDS+=("$rp")
	# The copy's files are new ones at the paths; the original keeps its own.
	wait_for replaced "$SHM" "$ino"
	wait_for three_running "$rp"
	touch "$D/go"
	wait "$rp" || st=$?
	cat "$RERR" "$BATS_TEST_TMPDIR/bg.err" >&2
	[ "$st" -eq 0 ]
	wait "$BG_PID"
	CKPT_PIDS=()
}

# replaced PATH INO: PATH is no longer inode INO.
replaced() {
	[ "$(stat -c %i "$1")" != "$2" ]
}

# gone PID...: none of them is alive (nor a zombie).
gone() {
	local p
	for p in "$@"; do
		[ ! -e "/proc/$p" ] || return 1
	done
}

# three_running PID: three processes named shmfiles below PID, the restored tree.
three_running() {
	local p n=0
	for p in $(descendants "$1"); do
		if comm_is "$p" shmfiles; then
			n=$((n + 1))
		fi
	done
	[ "$n" -eq 3 ]
}

@test "an older image restored over a newer run's files: the checkpoint's generation comes back" {
	local tree
	start_sf
	ckpt-dump -t -o "$IMG" "$SF_PID"
	gen2
	tree=$(descendants "$SF_PID")
	kill_started
	# shellcheck disable=SC2086 # the pids, a word each
	wait_for gone $tree
	restored_ok
}

@test "a tree whose mapped executable is gone is refused before any tmpfs file is made" {
	local exe=$BATS_TEST_TMPDIR/shmfiles-copy
	cp "$TOP/t/progs/shmfiles" "$exe"
	SF_PROG=$exe start_sf
	bg_dump_kill -t
	rm "$exe" "$SHM" "$TF"
	touch "$D/go"
	run --separate-stderr ckpt-remap "$IMG"
	one_line 99 "cannot open $exe, mapped at"
	[ ! -e "$SHM" ]
	[ ! -e "$TF" ]
}

@test "a file whose directory outside /dev/shm is gone comes back, its directories made again 0700" {
	SUBDIR=$TMPFS_DIR/sub.$$
	mkdir -p "$SUBDIR/job"
	start_sf "$SUBDIR/job"
	bg_dump_kill -t
	rm -rf "$SUBDIR"
	rm "$SHM"
	restored_ok
	[ "$(stat -c %a "$SUBDIR")" = 700 ]
}

@test "--save-files: a file on disk mapped shared and writable (an MPI job's session segment) is held and made again, its directory too; without, mapped by path" {
	SUBDIR=$BATS_TEST_TMPDIR/session
	mkdir -p "$SUBDIR/job"
	start_sf -c "$SUBDIR/job"
	bg_dump_kill -t --save-files
	ckpt-inspect "$IMG" | grep -E "^  tmpfs .* $SUBDIR/job/shmfiles-$SF_PID\$"
	rm -rf "$SUBDIR"
	head -c 300000 /dev/urandom >"$SHM"
	restored_ok
	# Without --save-files it is the file at its path.
	rm "$D/go"
	start_sf -c "$SUBDIR/job"
	bg_dump_kill -t
	[ "$(ckpt-inspect "$IMG" | grep -cE "^  tmpfs .* $SUBDIR/job/shmfiles-$SF_PID\$")" -eq 0 ]
	ckpt-inspect "$IMG" | grep -E " rw-s file .* $SUBDIR/job/shmfiles-$SF_PID"
}

@test "a symbolic link planted at the directory's path is not followed: refused, nothing made through it" {
	local link=$TMPFS_DIR/linked.$$
	SUBDIR=$TMPFS_DIR/real.$$
	mkdir "$SUBDIR"
	start_sf "$SUBDIR"
	bg_dump_kill -t
	rm -rf "$SUBDIR"
	mkdir "$link"
	ln -s "$link" "$SUBDIR"
	touch "$D/go"
	run --separate-stderr ckpt-remap "$IMG"
	ls -A "$link"
	[ -z "$(ls -A "$link")" ]
	rm -rf "$link"
	one_line 99 "file $SUBDIR/shmfiles-$SF_PID, mapped shared, cannot be made again here: $SUBDIR/shmfiles-$SF_PID: a symbolic link at $SUBDIR"
}
