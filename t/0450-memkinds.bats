#!/usr/bin/env bats
# Every kind of memory mapping comes back: madvise and mlock state, regions
# split by mprotect and moved by mremap, POSIX shm, shared anonymous memory,
# a memfd held as fd and mapping, an open deleted file, a mapping of a
# deleted file, System V segments (removed id, and by key), a deleted
# executable.  t/progs/memkinds checks each one itself.

load lib

bats_require_minimum_version 1.5.0

setup() {
	workdir mem
	# A key of our own for the System V segment, removed in teardown.
	CKPT_SHM_KEY=$(printf '0x%x' $(((0x6b000000 | (RANDOM << 8) | $$ & 0xff))))
	export CKPT_SHM_KEY
}

teardown() {
	kill_started
	ipcrm -M "$CKPT_SHM_KEY" 2>/dev/null || true
	# Left behind by a test that failed half way, a semaphore set or
	# queue of this user would go into every later image of the user's.
	remove_ipc
}

# go_and_restore IMG: let the restored program check, and wait for it.
go_and_restore() {
	touch "$D/go"
	restore "$@"
	cat "$BATS_TEST_TMPDIR/bg.err" >&2 || true
}

@test "dump --kill then restore: every kind of memory intact" {
	start_bg memkinds "$D"
	wait_for_line "$OUT" '^ready '
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	go_and_restore "$IMG"
	[ "$status" -eq 0 ]
	# Only the line that says the keyed segment was taken back.
	[ "$stderr" = "ckpt-remap: System V shared memory key $CKPT_SHM_KEY: its contents are set back to the checkpoint's" ]
	grep -qx 'memkinds: ok' "$OUT"
}

@test "the dumped process runs on with its memory and objects untouched" {
	start_bg memkinds "$D"
	wait_for_line "$OUT" '^ready '
	ckpt-dump -o "$IMG" "$BG_PID"
	finish_bg
	grep -qx 'memkinds: ok' "$OUT"
}

@test "ckpt-inspect lists each object with its kind and the flags of each region" {
	start_bg memkinds "$D"
	wait_for_line "$OUT" '^ready '
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	run --separate-stderr ckpt-inspect "$IMG"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"objects:  8"* ]]
	grep -Eq '^  sysv .*key 0, id removed' <<<"$output"
	grep -Eq "^  sysv .*key $CKPT_SHM_KEY\$" <<<"$output"
	grep -Eq '^  anon ' <<<"$output"
	grep -Eq '^  memfd .*seals 0x6 ckpt-memkinds$' <<<"$output"
	grep -Eq "^  file .*mode 0640 $D/deleted\$" <<<"$output"
	grep -Eq "^  file .*$D/delmap\$" <<<"$output"
	grep -Eq "^  file .*mode 0600 /dev/shm/ckpt-memkinds-del-[0-9]+\$" <<<"$output"
	# A POSIX shm object still linked: a tmpfs file, made again at restore.
	grep -Eq "^  tmpfs .*mode 0600, owner [0-9]+:[0-9]+ /dev/shm/ckpt-memkinds-[0-9]+\$" <<<"$output"
	grep -Eq '^  fd 3 +shm ' <<<"$output"
	for f in dontfork wipeonfork dontdump hugepage nohugepage locked random; do
		grep -Eq "\\[(.*,)?$f(,.*)?\\]\$" <<<"$output"
	done
	run --separate-stderr ckpt-inspect --json "$IMG"
	[ "$status" -eq 0 ]
	python3 -c '
import json, sys
d = json.load(sys.stdin)
kinds = sorted(o["kind"] for o in d["objects"])
assert kinds == ["anon", "file", "file", "file", "memfd", "sysv", "sysv", "tmpfs"], kinds
assert any("locked" in r["flags"].split(",") for r in d["regions"])
' <<<"$output"
}

@test "one image restores twice; the second time the key's segment is taken back" {
	start_bg memkinds "$D" sysvkey sysvshm memfd sharedanon
	wait_for_line "$OUT" '^ready '
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	# The segment outlived the process, unattached: taken back, said so.
	go_and_restore "$IMG"
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"System V shared memory key $CKPT_SHM_KEY: its contents are set back"* ]]
	: >"$OUT"
	# (The program's stdout, a file, changed: said, and allowed.)
	go_and_restore --allow-changed-files "$IMG"
	[ "$status" -eq 0 ]
	grep -qx 'memkinds: ok' "$OUT"
}

@test "a key whose segment another process has attached is refused before anything happens" {
	start_bg memkinds "$D" sysvkey
	wait_for_line "$OUT" '^ready '
	ckpt-dump -o "$IMG" "$BG_PID"
	# The original still runs with the segment attached.
	run --separate-stderr ckpt-remap "$IMG"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[ "$status" -lt 128 ]
	[[ "$stderr" == "ckpt-remap: "*"key $CKPT_SHM_KEY exists here, attached by another process"* ]]
	[ "$(wc -l <<<"$stderr")" -eq 1 ]
	# and the original goes on, intact.
	finish_bg
	grep -qx 'memkinds: ok' "$OUT"
}

@test "a program whose executable was deleted restores from the image's copy" {
	cp "$BATS_TEST_DIRNAME/progs/memkinds" "$D/memkinds-copy"
	start_bg "$D/memkinds-copy" "$D" split remap
	wait_for_line "$OUT" '^ready '
	rm "$D/memkinds-copy"
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	run ckpt-inspect "$IMG"
	grep -Eq "^  file .*mode 0755 $D/memkinds-copy\$" <<<"$output"
	go_and_restore "$IMG"
	[ "$status" -eq 0 ]
	grep -qx 'memkinds: ok' "$OUT"
}

@test "a page of a memory object changed in the image is caught before the program runs" {
	start_bg memkinds "$D" memfd
	wait_for_line "$OUT" '^ready '
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	# A byte near the end of the first SHMDATA record: its page data.
	off=$(python3 - "$IMG" <<'EOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
off = 192
while True:
    typ, crc, ln = struct.unpack_from("<IIQ", b, off)
    if typ == 12:  # SHMDATA: data ends the record
        print(off + 16 + ln - 100)
        break
    off += 16 + ln
EOF
)
	invert_byte "$IMG" "$off"
	touch "$D/go"
	run --separate-stderr ckpt-remap "$IMG"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[ "$status" -lt 128 ]
	[[ "$stderr" == "ckpt-remap: "*"SHMDATA record: page data checksum mismatch"* ]]
	[ ! -s "$OUT" ] || ! grep -q 'memkinds: ok' "$OUT"
}

@test "a 64 GiB MAP_NORESERVE region with 1 MiB touched costs about 1 MiB" {
	start_bg memkinds "$D" sparse
	wait_for_line "$OUT" '^ready '
	t0=$(date +%s%N)
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	t1=$(date +%s%N)
	wait "$BG_PID" || true
	CKPT_PIDS=()
	size=$(stat -c %s "$IMG")
	echo "# 64 GiB sparse: image $size bytes, dump $(((t1 - t0) / 1000000)) ms" >&3
	# 256 pages of data, plus the program's own few hundred KiB.
	[ "$size" -lt $((2 * 1024 * 1024)) ]
	run ckpt-inspect "$IMG"
	grep -Eq '^  [0-9a-f]+-[0-9a-f]+ rw-p anon +1\.0 MiB +\[noreserve\]$' <<<"$output"
	go_and_restore "$IMG"
	[ "$status" -eq 0 ]
	grep -qx 'memkinds: ok' "$OUT"
}

@test "--save-files: an open file missing or changed at restore is put back as it was" {
	start_bg memkinds "$D" savedfile
	wait_for_line "$OUT" '^ready '
	ckpt-dump --kill --save-files -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	run ckpt-inspect "$IMG"
	grep -Eq "^  saved .*mode 0604 $D/saved\$" <<<"$output"
	cp -p "$D/saved" "$BATS_TEST_TMPDIR/saved.orig"
	# The program's stdout (bg.out) is an open regular file too: saved,
	# and set back each time, as the restore after it grows says.
	# Unchanged: used as it is, nothing said.
	touch "$D/go"
	restore "$IMG"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	grep -qx 'memkinds: ok' "$OUT"
	# Changed after the checkpoint: set back, said in one line.
	echo "written after the checkpoint" >>"$D/saved"
	restore "$IMG"
	[ "$status" -eq 0 ]
	grep -qx "ckpt-remap: $D/saved: contents set back to the checkpoint's from the image" <<<"$stderr"
	grep -qx "ckpt-remap: $OUT: contents set back to the checkpoint's from the image" <<<"$stderr"
	[ "$(wc -l <<<"$stderr")" -eq 2 ]
	grep -qx 'memkinds: ok' "$OUT"
	cmp "$D/saved" "$BATS_TEST_TMPDIR/saved.orig"
	[ "$(stat -c %Y.%y "$D/saved")" = "$(stat -c %Y.%y "$BATS_TEST_TMPDIR/saved.orig")" ]
	# ckpt-remap's own stderr the program's output file, as a batch job
	# has it: set back, and nothing said into it, which would make it
	# differ from the checkpoint's and fail the restore.
	echo "written after the checkpoint" >>"$OUT"
	timeout 120 ckpt-remap "$IMG" 2>>"$OUT"
	grep -qx 'memkinds: ok' "$OUT"
	run grep -c ckpt-remap "$OUT"
	[ "$output" = 0 ]
	# Gone, with its directory: made again (the go file with it).
	rm -r "$D"
	ckpt-remap "$IMG" 2>"$BATS_TEST_TMPDIR/r.err" &
	CKPT_PIDS+=($!)
	wait_for_file "$D/saved"
	touch "$D/go"
	st=0
	wait "${CKPT_PIDS[-1]}" || st=$?
	CKPT_PIDS=()
	cat "$BATS_TEST_TMPDIR/r.err"
	[ "$st" -eq 0 ]
	grep -qx "ckpt-remap: $D/saved: made again from the image" "$BATS_TEST_TMPDIR/r.err"
	[ "$(stat -c %a "$D/saved")" = 604 ]
	cmp "$D/saved" "$BATS_TEST_TMPDIR/saved.orig"
	# Unchanged, with a second link made since (perf's build-id cache
	# links the libraries it sees, one ld.so had open at a checkpoint):
	# left alone as unchanged, and the program runs (changed, it would
	# be refused: t/0155).  It finds the second link, which it checks.
	ln "$D/saved" "$BATS_TEST_TMPDIR/saved.link"
	restore "$IMG"
	cat "$BATS_TEST_TMPDIR/bg.err"
	[ "$status" -eq 1 ]
	[[ $stderr != *"$D/saved"* ]]
	grep -q '^memkinds: savedfile: .*, links 2,' "$BATS_TEST_TMPDIR/bg.err"
	rm "$BATS_TEST_TMPDIR/saved.link"
}

@test "without --save-files a missing open file fails the restore before anything happens" {
	start_bg memkinds "$D" savedfile
	wait_for_line "$OUT" '^ready '
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	rm "$D/saved"
	run --separate-stderr ckpt-remap "$IMG"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[ "$status" -lt 128 ]
	[[ "$stderr" == "ckpt-remap: fd 3: cannot reopen $D/saved: No such file or directory" ]]
}

# remove_ipc: the program's semaphore set and queue, if left behind.
remove_ipc() {
	local s q
	[ -s "$D/ipc-ids" ] || return 0
	read -r s q <"$D/ipc-ids"
	ipcrm -s "$s" 2>/dev/null || true
	ipcrm -q "$q" 2>/dev/null || true
}

@test "System V semaphores and messages: set back where they outlived the process" {
	start_bg memkinds "$D" ipc
	wait_for_line "$OUT" '^ready '
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	run ckpt-inspect "$IMG"
	grep -Eq '^  semaphores id [0-9]+, key 0, mode 0600, 3 semaphores$' <<<"$output"
	grep -Eq '^  messages   id [0-9]+, key 0, mode 0640, 3 messages queued$' <<<"$output"
	read -r s q <"$D/ipc-ids"
	go_and_restore "$IMG"
	remove_ipc
	[ "$status" -eq 0 ]
	grep -qx "ckpt-remap: semaphore set $s (key 0): contents set back to the checkpoint's" <<<"$stderr"
	grep -qx "ckpt-remap: message queue $q (key 0): contents set back to the checkpoint's" <<<"$stderr"
	grep -qx 'memkinds: ok' "$OUT"
}

@test "System V semaphores and messages in use by a live process refuse the restore" {
	start_bg memkinds "$D" ipc
	wait_for_line "$OUT" '^ready '
	ckpt-dump -o "$IMG" "$BG_PID"
	run --separate-stderr ckpt-remap "$IMG"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[ "$status" -lt 128 ]
	[[ "$stderr" == "ckpt-remap: semaphore set "*" is in use by pid $BG_PID" ]]
	touch "$D/go"
	st=0
	wait "$BG_PID" || st=$?
	CKPT_PIDS=()
	remove_ipc
	[ "$st" -eq 0 ]
	grep -qx 'memkinds: ok' "$OUT"
}

# bats test_tags=root
@test "System V semaphores and messages that are gone are made again under their ids" {
	start_bg memkinds "$D" ipc
	wait_for_line "$OUT" '^ready '
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	remove_ipc
	go_and_restore "$IMG"
	remove_ipc
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	grep -qx 'memkinds: ok' "$OUT"
}

@test "without the right to choose ids, gone semaphores refuse the restore by name" {
	[ "$(id -u)" -ne 0 ] || skip "root may write sem_next_id"
	start_bg memkinds "$D" ipc
	wait_for_line "$OUT" '^ready '
	ckpt-dump --kill -o "$IMG" "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	read -r s q <"$D/ipc-ids"
	remove_ipc
	run --separate-stderr ckpt-remap "$IMG"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[ "$status" -lt 128 ]
	[[ "$stderr" == "ckpt-remap: semaphore set $s cannot be made again under its id (writing /proc/sys/kernel/sem_next_id): Permission denied" ]]
}
