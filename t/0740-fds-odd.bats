#!/usr/bin/env bats
# Odd kinds of fd: namespace files held open, epoll watching a file whose
# fd was closed or replaced, POSIX message queues with their messages, AIO
# contexts with their completions; an io_uring instance with its ring
# mapped (t/0780 has the rest), and refused without its fd or without its
# ring mapped.  t/progs/fdodd sets each state, waits
# for the checkpoint and checks after the restore that it is as it was.

load lib

bats_require_minimum_version 1.5.0

# started MODE: t/progs/fdodd MODE DIR, ready.
started() {
	workdir fdodd
	start_bg fdodd "$1" "$D"
	wait_for_line "$OUT" '^ready '
}

teardown() {
	kill_started
	[ -z "${D:-}" ] || fdodd mqclean "$D" >/dev/null 2>&1 || true
}

# refused PATTERN: ckpt-dump refuses the program, saying PATTERN on one
# line; the program runs on untouched and passes its checks.
refused() {
	run --separate-stderr ckpt-dump -o "$IMG" "$BG_PID"
	echo "status $status stderr: $stderr"
	[ "$status" -ne 0 ]
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
	[[ "$stderr" == $1 ]]
	untraced "$BG_PID"
	finish_bg
}

@test "files of its own namespaces, every type, come back as the restored process's own" {
	started nsfile
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 6   nsfile  flags 0100000 "*" own net namespace net:["* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"ns":"user"'* ]]
	bg_restored "fdodd nsfile: ok"
}

@test "the file of another process's namespace is refused by name" {
	started nsother
	refused "ckpt-dump: pid $BG_PID: fd 3 is user:\[*\], not the process's own user namespace; not supported"
	grep -qx "fdodd nsother: ok" "$OUT"
}

@test "epoll watches whose fds were closed or replaced come back on their files, under the numbers they were added as" {
	started epoll
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 3   epoll   "*" watches 4 moved 2 "* ]]
	bg_restored "fdodd epoll: ok"
}

@test "an epoll watch on a file no fd of the process holds, dumped without its tree, is refused by name" {
	started epollgone
	refused "ckpt-dump: pid $BG_PID: fd 3: epoll watches a file (added as fd 5) that no fd of the dumped processes holds; not supported"
	grep -qx "fdodd epollgone: ok" "$OUT"
}

@test "a POSIX message queue comes back under its name: attributes, mode, each fd's flags, six messages at four priorities in their order" {
	started mqueue
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *"fd 3   mqueue  flags 02000002 "*" maxmsg 8 msgsize 100 mode 0640 uid $(id -u) messages 6 /ckpt-fdodd-"* ]]
	[[ "$output" == *"fd 4   mqueue  flags 02004001 "*" messages 0 /ckpt-fdodd-"* ]]
	bg_restored "fdodd mqueue: ok"
}

@test "a POSIX message queue removed before the restore is made again, with its mode and its messages" {
	started mqueue
	bg_dump_kill
	fdodd mqclean "$D"
	bg_restored "fdodd mqueue: ok"
}

@test "a dump without --kill gives every message back: the program runs on and receives them in order" {
	started mqueue
	ckpt-dump -o "$IMG" "$BG_PID"
	untraced "$BG_PID"
	finish_bg
	grep -qx "fdodd mqueue: ok" "$OUT"
}

@test "a queue of that name holding messages at restore fails the restore, naming it" {
	started mqueue
	ckpt-dump -o "$IMG" "$BG_PID"
	kill -KILL "$BG_PID"
	wait "$BG_PID" || true
	CKPT_PIDS=()
	run --separate-stderr ckpt-remap "$IMG"
	echo "$stderr"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"fd 3: POSIX message queue /ckpt-fdodd-"*" exists, with 8 messages of at most 100 bytes (6 queued), not empty with 8 of 100 as it was"* ]]
}

@test "a POSIX message queue with a notification registered (mq_notify) is refused by name" {
	started mqnotify
	refused "ckpt-dump: pid $BG_PID: fd 3: POSIX message queue /ckpt-fdodd-* has a notification registered (mq_notify, by pid $BG_PID); not supported"
	grep -qx "fdodd mqnotify: ok" "$OUT"
}

@test "an AIO context comes back at its address (the context id), with the completions not yet reaped around its ring's end; reads go on through it" {
	started aio
	bg_dump_kill
	run ckpt-inspect "$IMG"
	echo "$output"
	[[ "$output" == *" rw-p aio        4.0 KiB /[aio] nr "*" head "*" tail 3"* ]]
	run ckpt-inspect --json "$IMG"
	[[ "$output" == *'"kind":"aio",'*'"aio_tail":3}'* ]]
	bg_restored "fdodd aio: ok"
}

@test "an AIO context: a dump without --kill leaves the program's context as it was" {
	started aio
	ckpt-dump -o "$IMG" "$BG_PID"
	untraced "$BG_PID"
	finish_bg
	grep -qx "fdodd aio: ok" "$OUT"
}

@test "an AIO context with --cow: the ring is written before the program runs on and reaps from it" {
	started aio
	ckpt-dump --cow -o "$IMG" "$BG_PID"
	finish_bg
	grep -qx "fdodd aio: ok" "$OUT"
	# Its output file grew since: the restored program exits 0 only if
	# its checks pass.
	bg_restored "fdodd aio: ok" --allow-changed-files
}

@test "an AIO ring a child inherited across fork, without its context, is refused by name" {
	local child
	started aiofork
	child=$(awk '/^ready / {print $2}' "$OUT")
	run --separate-stderr ckpt-dump -o "$IMG" "$child"
	echo "status $status stderr: $stderr"
	[ "$status" -ne 0 ]
	local want="ckpt-dump: pid $child: region 0x*-0x* (/\[aio\]) is the ring of an AIO context not the process's own (io_getevents: Invalid argument; a parent's, inherited across fork); not supported"
	# shellcheck disable=SC2053
	[[ "$stderr" == $want ]]
	untraced "$child"
	finish_bg
	grep -qx "fdodd aiofork: ok" "$OUT"
}

# aio_field IMG FIELD VALUE: IMG's AIO region with its u64 at FIELD (40
# nr, 24 head, 32 tail) set to VALUE, the record's CRC-32C made again.
aio_field() {
	python3 - "$@" <<'PY'
import struct, sys
path, field, value = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def crc32c(b, c=0xffffffff):
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ (0x82f63b78 if c & 1 else 0)
    return c ^ 0xffffffff
d = bytearray(open(path, 'rb').read())
off = 192
while True:
    typ, _, ln = struct.unpack_from('<IIQ', d, off)
    if typ == 3 and struct.unpack_from('<I', d, off + 16 + 68)[0] == 6:
        break
    assert typ != 5, 'no AIO region'
    off += 16 + ln
struct.pack_into('<Q', d, off + 16 + field, value)
struct.pack_into('<I', d, off + 4, 0)
struct.pack_into('<I', d, off + 4, crc32c(bytes(d[off:off + 16 + ln])))
open(path, 'wb').write(d)
PY
}

@test "an AIO region whose nr, head or tail the ring cannot have is refused by the reader" {
	started aio
	bg_dump_kill
	for f in "40 126" "24 100000" "32 100000"; do
		cp "$IMG" "$IMG.bad"
		# shellcheck disable=SC2086
		aio_field "$IMG.bad" $f
		run --separate-stderr ckpt-inspect "$IMG.bad"
		echo "$f: status $status stderr: $stderr"
		[ "$status" -ne 0 ]
		[[ "$stderr" == *"REGION record "*": AIO ring 0x"*" with bad fields (nr "* ]]
	done
	run --separate-stderr ckpt-remap "$IMG.bad"
	[ "$status" -eq 99 ]
	[[ "$stderr" == *"with bad fields"* ]]
}

@test "an io_uring instance with only its SQ ring mapped comes back" {
	started uring
	bg_dump_kill
	bg_restored "fdodd uring: ok"
}

@test "an io_uring ring mapped with its fd closed is refused by its mapping" {
	started uringmap
	refused "ckpt-dump: pid $BG_PID: region 0x*-0x* (anon_inode:\[io_uring\]) is the ring of an io_uring instance whose fd is closed; not supported"
	grep -qx "fdodd uringmap: ok" "$OUT"
}

@test "an io_uring fd whose ring is not mapped is refused by its fd" {
	started uringfd
	refused "ckpt-dump: pid $BG_PID: fd 3 is an io_uring instance whose rings are not mapped; not supported"
	grep -qx "fdodd uringfd: ok" "$OUT"
}

# bypass_refused: in a user and mount namespace of their own, where
# /dev/infiniband/uverbs0 is /dev/null and /dev/xpmem a regular file
# (bind mounts over a tmpfs /dev), a sleep holding the first open on fd 3
# and a python3 that mapped the second and closed it are each refused by
# ckpt-dump before it freezes them, naming the device and the settings
# that avoid it; each runs on, neither stopped.
@test "a kernel-bypass device (an RDMA verbs fd, an XPMEM mapping) is refused by name before freezing, naming the MPI settings that avoid it" {
	workdir bypass
	# shellcheck disable=SC2016 # the inner shell's $1 and $!
	run --separate-stderr exec_clean timeout 60 unshare -Urm bash -c '
		set -e
		d=$1
		: >"$d/null"
		head -c 4096 /dev/zero >"$d/page"
		mount --bind /dev/null "$d/null"
		mount -t tmpfs none /dev
		mkdir /dev/infiniband
		: >/dev/infiniband/uverbs0
		: >/dev/xpmem
		mount --bind "$d/null" /dev/infiniband/uverbs0
		mount --bind "$d/page" /dev/xpmem
		sleep 60 3</dev/infiniband/uverbs0 <"$d/null" &
		s=$!
		python3 -c "
import ctypes, os, time
libc = ctypes.CDLL(None)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
fd = os.open(\"/dev/xpmem\", os.O_RDWR)
assert libc.mmap(None, 4096, 3, 1, fd, 0) not in (None, ctypes.c_void_p(-1).value)
os.close(fd)
print(\"ready\", flush=True)
time.sleep(60)" <"$d/null" >"$d/py.out" &
		p=$!
		until grep -q ready "$d/py.out"; do sleep 0.01; done
		for pid in $s $p; do
			ckpt-dump -o /dev/null $pid 2>&1 && echo "dumped $pid" || true
			echo "state $(cut -d" " -f3 /proc/$pid/stat)"
		done
		echo "pids $s $p"
		kill $s $p' sh "$D"
	echo "status $status: $output; $stderr"
	[ "$status" -eq 0 ]
	[[ "$output" == *"ckpt-dump: pid "*": fd 3 /dev/infiniband/uverbs0 is an RDMA device (InfiniBand, RoCE or iWARP verbs), a kernel-bypass transport whose state is in the device (select TCP and shared memory: Open MPI --mca pml ob1 --mca btl self,vader,tcp --mca btl_vader_single_copy_mechanism none, MPICH FI_PROVIDER=tcp or UCX_TLS=tcp,sm); not supported"* ]]
	[[ "$output" == *"ckpt-dump: pid "*": maps /dev/xpmem is XPMEM (cross-process memory mapping), a kernel-bypass transport"*"; not supported"* ]]
	[[ "$output" != *dumped* ]]
	[ "$(grep -c "^state S" <<<"$output")" -eq 2 ]
}
