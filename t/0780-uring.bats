#!/usr/bin/env bats
# io_uring instances: one idle at the checkpoint comes back at the same
# addresses, at the same positions in its rings, with the completions not
# reaped and the entries prepared and not submitted, of every size and
# setup flag that shows (CQSIZE, SQE128, CQE32, NO_SQARRAY), and works;
# one with requests in flight, a submission thread, registered files, a
# single issuer, or shared by a tree, is refused by name.  t/progs/uringprog
# sets each state, waits for the checkpoint and checks after the restore
# that it is as it was.

load lib

bats_require_minimum_version 1.5.0

# started ARG...: t/progs/uringprog ARG... DIR, ready.
started() {
	workdir uring
	start_bg uringprog "$@" "$D"
	wait_for_line "$OUT" '^ready '
}

# round_trip INSPECT ARG...: started ARG..., dumped --kill, its fd 3 as
# ckpt-inspect shows it matching INSPECT, restored: intact.
round_trip() {
	local want=$1
	shift
	started "$@"
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 3   io_uring flags 02000002 offset 0 $want anon_inode:[io_uring]"* ]]
	[[ "$output" == *" rw-s uring "* ]]
	bg_restored "restored: yes"
}

# refused PATTERN [OPTION...]: ckpt-dump OPTION... refuses the program,
# saying PATTERN on one line; the program runs on and passes its checks.
refused() {
	local pat=$1
	shift
	run --separate-stderr ckpt-dump "$@" -o "$IMG" "$BG_PID"
	echo "status $status stderr: $stderr"
	[ "$status" -ne 0 ]
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
	[[ "$stderr" == $pat ]]
	untraced "$BG_PID"
	finish_bg
}

# restored_as OLD REMAP: the program runs again, as OLD or as REMAP
# (ckpt-remap's pid): $BG_PID.
restored_as() {
	local p
	for p in "$1" "$2"; do
		if comm_is "$p" uringprog; then
			BG_PID=$p
			return 0
		fi
	done
	return 1
}

# has_worker PID: a thread of PID is an io_uring worker of the kernel's.
has_worker() {
	grep -q '^iou-wrk-' /proc/"$1"/task/*/comm
}

@test "an idle io_uring instance comes back: positions, completions not reaped, an entry not submitted; it reads and writes after" {
	round_trip "sq_entries 8 cq_entries 16 setup_flags 0 submitted 1005 completed 1005" idle
}

@test "an io_uring instance of 128-byte SQEs and 32-byte CQEs comes back with them" {
	round_trip "sq_entries 64 cq_entries 128 setup_flags 3072 submitted 1005 completed 1005" \
		-e 64 -f sqe128 -f cqe32 idle
}

@test "an io_uring instance without a submission array (NO_SQARRAY), and one with a CQ ring of its own size (CQSIZE), come back" {
	round_trip "sq_entries 64 cq_entries 128 setup_flags 66560 submitted 1005 completed 1005" \
		-e 64 -f sqe128 -f nosqarray idle
	rm -rf "$D"
	round_trip "sq_entries 8 cq_entries 64 setup_flags 8 submitted 1005 completed 1005" -c 64 idle
}

@test "an io_uring instance with an idle worker of the kernel's, used by two threads, comes back; the worker is no thread of the image" {
	started -w -t -e 256 idle
	wait_for has_worker "$BG_PID"
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[ "$(grep -c '^  tid ' <<<"$output")" -eq 1 ]
	bg_restored "restored: yes"
}

@test "a dump that lets the program run on leaves its io_uring instance as it was (the words shown for a moment put back); with --cow too, whose image restores" {
	started -f cqe32 idle
	ckpt-dump -o "$IMG" "$BG_PID"
	ckpt-dump --cow -o "$IMG.cow" "$BG_PID"
	untraced "$BG_PID"
	finish_bg
	grep -qx "restored: no" "$OUT"
	run ckpt-inspect "$IMG.cow"
	echo "$output"
	[[ "$output" == *"io_uring flags 02000002 offset 0 sq_entries 8 cq_entries 16 setup_flags 2048 "* ]]
	# Its output file grew since: the restored program writes over it.
	IMG=$IMG.cow
	bg_restored "restored: yes" --allow-changed-files
}

@test "an io_uring instance made again is refused by name at the next dump; the program runs on" {
	started idle
	old=$BG_PID
	bg_dump_kill
	ckpt-remap "$IMG" 2>"$BATS_TEST_TMPDIR/remap.err" &
	remap=$!
	CKPT_PIDS+=("$remap")
	# Under its old pid where the restore may (root), else as ckpt-remap.
	wait_for restored_as "$old" "$remap"
	run --separate-stderr ckpt-dump -o "$IMG.2" "$BG_PID"
	one_line 1 "pid $BG_PID: fd 3: io_uring instance whose rings are memory of the program's (IORING_SETUP_NO_MMAP: its own, or one ckpt-remap made again); not supported" ckpt-dump
	untraced "$BG_PID"
	touch "$D/go"
	# ckpt-remap exits as the program does.
	wait "$remap"
	CKPT_PIDS=()
	grep -qx "restored: yes" "$OUT"
	[ ! -s "$BATS_TEST_TMPDIR/remap.err" ]
}

@test "an io_uring instance with a read in flight, waiting for its file, is refused by name" {
	started inflight
	refused "ckpt-dump: pid $BG_PID: fd 5: io_uring instance with requests in flight (1 waiting for their file, 0 completions overflowed); not supported"
}

@test "an io_uring instance whose NOP completed without a completion (CQE_SKIP_SUCCESS) is refused as one that may have a request in flight" {
	started skip
	refused "ckpt-dump: pid $BG_PID: fd 5: io_uring instance with requests in flight (1 submitted, 0 completed; one completed without a completion, IOSQE_CQE_SKIP_SUCCESS, counts as in flight); not supported"
}

@test "an io_uring instance with a submission thread (SQPOLL) is refused by name" {
	started sqpoll
	refused "ckpt-dump: pid $BG_PID: fd 5: io_uring instance with a submission thread (IORING_SETUP_SQPOLL, tid *); not supported"
}

@test "an io_uring instance with registered files is refused by name" {
	started files
	refused "ckpt-dump: pid $BG_PID: fd 5: io_uring instance with 2 registered files and 0 registered buffers; not supported"
}

@test "an io_uring instance of a single issuer is refused by name" {
	started single
	refused "ckpt-dump: pid $BG_PID: fd 5: io_uring instance set up with IORING_SETUP_SINGLE_ISSUER (and perhaps DEFER_TASKRUN, which nothing shows); not supported"
}

@test "an io_uring instance in a tree (ckpt-dump -t) is refused by name" {
	started fork
	refused "ckpt-dump: pid *: fd 5 is an io_uring instance in a process tree (ckpt-dump -t); not supported" -t
}

@test "an image whose io_uring entry asks for a setup flag no restore gives is refused as it is read" {
	started idle
	bg_dump_kill
	forge.py "$IMG" uringflags 2 # IORING_SETUP_SQPOLL
	run --separate-stderr ckpt-inspect "$IMG"
	one_line 1 "fd 3, io_uring): bad kind data"
	touch "$D/go"
}
