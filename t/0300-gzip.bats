#!/usr/bin/env bats
# ckpt-gzip: the compression filter on lib/zio, checked against gzip, xz and
# zstd themselves (--zstd: against zstd -d).

load lib

bats_require_minimum_version 1.5.0

# A round trip through a pipeline must also fail when ckpt-gzip fails after
# writing everything.
setup() {
	set -o pipefail
}

# make_input: $in, a few MB of incompressible bytes then compressible text.
make_input() {
	in=$BATS_TEST_TMPDIR/in
	head -c 3M /dev/urandom >"$in"
	seq 1 200000 >>"$in"
}

# one_error_line PREFIX: the last `run` failed with status 1 and printed
# exactly one line, "ckpt-gzip: ..." containing PREFIX.
one_error_line() {
	no_core
	[ "$status" -eq 1 ]
	[ "$(printf '%s\n' "$output" | wc -l)" -eq 1 ]
	[[ $output == ckpt-gzip:* ]]
	[[ $output == *"$1"* ]]
}

# decompress_file FILE: run ckpt-gzip -d on FILE, stdout to $BATS_TEST_TMPDIR/out
# (made with umask 077: a file others may read would add a warning);
# $output is what it printed on stderr.
decompress_file() {
	run bash -c 'umask 077; ckpt-gzip -d <"$1" >"$2"' _ "$1" "$BATS_TEST_TMPDIR/out"
}

@test "compressed output is decompressed by gzip -d to the same bytes" {
	make_input
	ckpt-gzip <"$in" >"$in.gz"
	gzip -d <"$in.gz" | cmp - "$in"
	[ "$(stat -c %s "$in.gz")" -lt "$(stat -c %s "$in")" ]
}

@test "ckpt-gzip -d reads what gzip -c wrote" {
	make_input
	gzip -c "$in" >"$in.gz"
	ckpt-gzip -d <"$in.gz" | cmp - "$in"
}

@test "a two-member gzip file decompresses to both members, in order" {
	make_input
	echo "second member" >"$BATS_TEST_TMPDIR/b"
	gzip -c "$in" >"$BATS_TEST_TMPDIR/a.gz"
	ckpt-gzip <"$BATS_TEST_TMPDIR/b" >"$BATS_TEST_TMPDIR/b.gz"
	cat "$BATS_TEST_TMPDIR/a.gz" "$BATS_TEST_TMPDIR/b.gz" >"$BATS_TEST_TMPDIR/ab.gz"
	cat "$in" "$BATS_TEST_TMPDIR/b" >"$BATS_TEST_TMPDIR/expect"
	ckpt-gzip -d <"$BATS_TEST_TMPDIR/ab.gz" | cmp - "$BATS_TEST_TMPDIR/expect"
}

@test "--xz output is decompressed by xz -d, with a CRC64 check" {
	make_input
	ckpt-gzip --xz <"$in" >"$in.xz"
	xz -d <"$in.xz" | cmp - "$in"
	xz -lvv "$in.xz" >"$BATS_TEST_TMPDIR/list"
	grep -q 'CRC64' "$BATS_TEST_TMPDIR/list"
}

@test "ckpt-gzip -d reads what xz -c wrote" {
	make_input
	xz -c "$in" >"$in.xz"
	ckpt-gzip -d <"$in.xz" | cmp - "$in"
}

@test "--zstd output is decompressed by zstd -d, with its content checksum" {
	make_input
	ckpt-gzip --zstd <"$in" >"$in.zst"
	zstd -q -d -c "$in.zst" | cmp - "$in"
	ckpt-gzip -d <"$in.zst" | cmp - "$in"
	zstd -lv "$in.zst" >"$BATS_TEST_TMPDIR/list" 2>&1
	grep -q 'XXH64' "$BATS_TEST_TMPDIR/list"
	[ "$(stat -c %s "$in.zst")" -lt "$(stat -c %s "$in")" ]
}

@test "--zstd -T 1, -T 2 and -T 0 round-trip random, compressible, empty and odd sizes" {
	sized_inputs
	# Over several of libzstd's jobs (2 MiB at level 1), so that two
	# workers do compress side by side.
	seq 1 3000000 >"$BATS_TEST_TMPDIR/sizes/big"
	local f t
	for f in "$BATS_TEST_TMPDIR"/sizes/*; do
		for t in 1 2 0; do
			ckpt-gzip --zstd -T "$t" <"$f" >"$f.$t.zst"
			zstd -q -d -c "$f.$t.zst" | cmp - "$f"
			ckpt-gzip -d <"$f.$t.zst" | cmp - "$f"
		done
	done
}

@test "--zstd levels -1 and -9 round-trip; -9 is smaller on text" {
	seq 1 1000000 >"$BATS_TEST_TMPDIR/t"
	ckpt-gzip --zstd -1 <"$BATS_TEST_TMPDIR/t" >"$BATS_TEST_TMPDIR/1.zst"
	ckpt-gzip --zstd -9 <"$BATS_TEST_TMPDIR/t" >"$BATS_TEST_TMPDIR/9.zst"
	zstd -q -d -c "$BATS_TEST_TMPDIR/1.zst" | cmp - "$BATS_TEST_TMPDIR/t"
	zstd -q -d -c "$BATS_TEST_TMPDIR/9.zst" | cmp - "$BATS_TEST_TMPDIR/t"
	[ "$(stat -c %s "$BATS_TEST_TMPDIR/9.zst")" -lt "$(stat -c %s "$BATS_TEST_TMPDIR/1.zst")" ]
	# The default is -1.
	ckpt-gzip --zstd -T 1 <"$BATS_TEST_TMPDIR/t" | cmp - <(ckpt-gzip --zstd -1 -T 1 <"$BATS_TEST_TMPDIR/t")
}

@test "ckpt-gzip -d reads what zstd -c wrote, two frames included" {
	make_input
	zstd -q -c "$in" >"$in.zst"
	ckpt-gzip -d <"$in.zst" | cmp - "$in"
	cat "$in.zst" "$in.zst" | ckpt-gzip -d | cmp - <(cat "$in" "$in")
}

@test "levels -1 and -9 both round-trip, for gzip and for --xz" {
	make_input
	local l
	for l in 1 9; do
		ckpt-gzip "-$l" <"$in" | gzip -d | cmp - "$in"
		ckpt-gzip "-$l" <"$in" | ckpt-gzip -d | cmp - "$in"
		ckpt-gzip --xz "-$l" <"$in" | xz -d | cmp - "$in"
	done
	# The level reaches zlib: the gzip header's XFL byte is 4 for the
	# fastest level, 2 for the best (RFC 1952), as gzip -1 and -9 write.
	[ "$(ckpt-gzip -1 <"$in" | od -An -tx1 -j8 -N1)" = " 04" ]
	[ "$(ckpt-gzip -9 <"$in" | od -An -tx1 -j8 -N1)" = " 02" ]
}

@test "ckpt-gzip's own gzip, xz and zstd output, truncated, fails with status 1 and one line" {
	make_input
	local kind name size cut
	local -a opt
	for kind in gz xz zst; do
		case $kind in
		gz) name=gzip opt=() ;;
		xz) name=xz opt=(--xz) ;;
		zst) name=zstd opt=(--zstd) ;;
		esac
		ckpt-gzip "${opt[@]}" <"$in" >"$in.$kind"
		size=$(stat -c %s "$in.$kind")
		# Inside the compressed data, and one byte short of the end (the
		# trailer, index or checksum).
		for cut in $((size / 2)) $((size - 1)); do
			head -c "$cut" "$in.$kind" >"$BATS_TEST_TMPDIR/cut.$kind"
			decompress_file "$BATS_TEST_TMPDIR/cut.$kind"
			one_error_line "$name stream truncated"
		done
	done
}

@test "truncated zstd input fails with status 1 and one line" {
	make_input
	zstd -q -c "$in" >"$in.zst"
	head -c "$(($(stat -c %s "$in.zst") - 1))" "$in.zst" >"$BATS_TEST_TMPDIR/cut.zst"
	decompress_file "$BATS_TEST_TMPDIR/cut.zst"
	one_error_line "zstd stream truncated"
}

@test "corrupt gzip data fails its check with status 1 and one line" {
	seq 1 100000 | gzip -c >"$BATS_TEST_TMPDIR/x.gz"
	# Overwrite 16 bytes in the middle of the deflate data.
	printf 'corrupt corrupt!' |
		dd of="$BATS_TEST_TMPDIR/x.gz" bs=1 seek=100 conv=notrunc status=none
	decompress_file "$BATS_TEST_TMPDIR/x.gz"
	one_error_line "gzip stream corrupt"
}

@test "trailing garbage after a gzip member fails with status 1, data kept" {
	seq 1 1000 >"$BATS_TEST_TMPDIR/x"
	{ gzip -c "$BATS_TEST_TMPDIR/x"; echo garbage; } >"$BATS_TEST_TMPDIR/x.gz"
	decompress_file "$BATS_TEST_TMPDIR/x.gz"
	one_error_line "trailing garbage"
	cmp "$BATS_TEST_TMPDIR/out" "$BATS_TEST_TMPDIR/x"
}

@test "garbage input to -d fails with status 1 and one line" {
	echo "this is not compressed" >"$BATS_TEST_TMPDIR/junk"
	decompress_file "$BATS_TEST_TMPDIR/junk"
	one_error_line "not a compressed stream"
	decompress_file /dev/null
	one_error_line "not a compressed stream"
}

@test "writing to /dev/full gives a non-zero status and says why" {
	make_input
	run bash -c 'ckpt-gzip <"$1" >/dev/full' _ "$in"
	one_error_line "No space left on device"
	run bash -c 'ckpt-gzip --zstd <"$1" >/dev/full' _ "$in"
	one_error_line "No space left on device"
	gzip -c "$in" >"$in.gz"
	run bash -c 'ckpt-gzip -d <"$1" >/dev/full' _ "$in.gz"
	one_error_line "No space left on device"
	run bash -c 'ckpt-gzip --help >/dev/full'
	one_error_line "No space left on device"
}

@test "--help exits 0 and prints the usage line on stdout" {
	run ckpt-gzip --help
	[ "$status" -eq 0 ]
	[ "$output" = "usage: ckpt-gzip [-d] [-1 ... -9] [-T threads] [--xz | --zstd] [-o file]" ]
	run ckpt-gzip -V
	[ "$status" -eq 0 ]
	[ "$output" = "ckpt-gzip 0.1.0" ]
}

@test "--help, the man page SYNOPSIS and the completion agree" {
	local usage synopsis opt
	usage=$(ckpt-gzip --help)
	synopsis=$(mandoc -Tascii "$TOP/man/ckpt-gzip.1" | col -b |
		sed -n '/^SYNOPSIS/{n;s/^ *//;p;}')
	[ "usage: $synopsis" = "$usage" ]
	# Every option of the usage line, and -h/-V, is offered after "-".
	# shellcheck source=/dev/null
	source "$TOP/completions/ckpt-gzip"
	COMP_WORDS=(ckpt-gzip -)
	COMP_CWORD=1
	_ckpt_gzip
	for opt in $(grep -oE -- '-[-a-z0-9]+' <<<"${usage#usage: ckpt-gzip }") -h --help -V --version; do
		[[ " ${COMPREPLY[*]} " == *" $opt "* ]]
	done
}

# sized_inputs: in $BATS_TEST_TMPDIR/sizes/, random and compressible files of
# sizes around ckpt-gzip's 256 KiB chunk, and one that mixes both.
sized_inputs() {
	local d=$BATS_TEST_TMPDIR/sizes n
	mkdir -p "$d"
	head -c 2M /dev/urandom >"$d/random.src"
	seq 1 400000 >"$d/text.src"
	for n in 0 1 65535 262143 262144 262145 786449; do
		head -c "$n" "$d/random.src" >"$d/random-$n"
		head -c "$n" "$d/text.src" >"$d/text-$n"
	done
	{
		head -c 300000 "$d/random.src"
		head -c 600000 "$d/text.src"
		tail -c 300000 "$d/random.src"
	} >"$d/mixed"
	rm "$d/random.src" "$d/text.src"
}

@test "-T 1, -T 2 and -T 0 round-trip random, compressible, empty and odd sizes" {
	sized_inputs
	local f t
	for f in "$BATS_TEST_TMPDIR"/sizes/*; do
		for t in 1 2 0; do
			ckpt-gzip -T "$t" <"$f" >"$f.$t.gz"
			gzip -d <"$f.$t.gz" | cmp - "$f"
			ckpt-gzip -d <"$f.$t.gz" | cmp - "$f"
		done
		# Chunks are compressed alike whoever compresses them.
		cmp "$f.1.gz" "$f.2.gz"
		cmp "$f.1.gz" "$f.0.gz"
	done
}

@test "--threads N is -T N, and more threads than chunks is fine" {
	seq 1 100000 >"$BATS_TEST_TMPDIR/x"
	ckpt-gzip --threads 3 <"$BATS_TEST_TMPDIR/x" | gzip -d | cmp - "$BATS_TEST_TMPDIR/x"
	ckpt-gzip --threads=256 <"$BATS_TEST_TMPDIR/x" | gzip -d | cmp - "$BATS_TEST_TMPDIR/x"
}

@test "random data is written as stored blocks, at most 5 bytes per 64 KiB larger" {
	local n=$((8 << 20)) size t
	head -c "$n" /dev/urandom >"$BATS_TEST_TMPDIR/r"
	for t in 1 2; do
		ckpt-gzip -T "$t" <"$BATS_TEST_TMPDIR/r" >"$BATS_TEST_TMPDIR/r.gz"
		size=$(stat -c %s "$BATS_TEST_TMPDIR/r.gz")
		# 32 chunks of 5 blocks, an empty final block, gzip's 18 bytes.
		[ "$size" -le $((n + 32 * 5 * 5 + 2 + 18)) ]
		# The first block after the 10-byte header: not final, type
		# stored (00), LEN 65535 and its complement.
		[ "$(od -An -tx1 -j10 -N5 "$BATS_TEST_TMPDIR/r.gz")" = " 00 ff ff 00 00" ]
		gzip -d <"$BATS_TEST_TMPDIR/r.gz" | cmp - "$BATS_TEST_TMPDIR/r"
	done
}

@test "compressible data is deflated on two threads as small as on one" {
	seq 1 2000000 >"$BATS_TEST_TMPDIR/t"
	ckpt-gzip -T 1 <"$BATS_TEST_TMPDIR/t" >"$BATS_TEST_TMPDIR/1.gz"
	ckpt-gzip -T 2 <"$BATS_TEST_TMPDIR/t" >"$BATS_TEST_TMPDIR/2.gz"
	[ "$(stat -c %s "$BATS_TEST_TMPDIR/2.gz")" -eq "$(stat -c %s "$BATS_TEST_TMPDIR/1.gz")" ]
	# Not stored: well under half the input, as gzip -1 makes it.
	[ "$(stat -c %s "$BATS_TEST_TMPDIR/2.gz")" -lt "$(($(stat -c %s "$BATS_TEST_TMPDIR/t") / 2))" ]
	gzip -d <"$BATS_TEST_TMPDIR/2.gz" | cmp - "$BATS_TEST_TMPDIR/t"
}

@test "a byte changed inside a stored block fails the gzip CRC" {
	head -c 1M /dev/urandom >"$BATS_TEST_TMPDIR/r"
	ckpt-gzip -T 2 <"$BATS_TEST_TMPDIR/r" >"$BATS_TEST_TMPDIR/r.gz"
	cp "$BATS_TEST_TMPDIR/r.gz" "$BATS_TEST_TMPDIR/bad.gz"
	# Inside the second chunk's data: stored bytes have no code to break,
	# only the CRC combined from the chunks' CRCs can tell.
	local c
	for c in X Y; do
		printf '%s' "$c" |
			dd of="$BATS_TEST_TMPDIR/bad.gz" bs=1 seek=300000 conv=notrunc status=none
		cmp -s "$BATS_TEST_TMPDIR/r.gz" "$BATS_TEST_TMPDIR/bad.gz" || break
	done
	run ! cmp -s "$BATS_TEST_TMPDIR/r.gz" "$BATS_TEST_TMPDIR/bad.gz"
	decompress_file "$BATS_TEST_TMPDIR/bad.gz"
	one_error_line "gzip stream corrupt"
	run gzip -t "$BATS_TEST_TMPDIR/bad.gz"
	[ "$status" -ne 0 ]
}

@test "--xz -T 2 writes an xz stream of several blocks that xz -d reads" {
	# Over two blocks: at the default level a block is 3 MiB.
	seq 1 1000000 >"$BATS_TEST_TMPDIR/t"
	head -c 1M /dev/urandom >>"$BATS_TEST_TMPDIR/t"
	ckpt-gzip --xz -T 2 <"$BATS_TEST_TMPDIR/t" >"$BATS_TEST_TMPDIR/t.xz"
	xz -d <"$BATS_TEST_TMPDIR/t.xz" | cmp - "$BATS_TEST_TMPDIR/t"
	ckpt-gzip -d <"$BATS_TEST_TMPDIR/t.xz" | cmp - "$BATS_TEST_TMPDIR/t"
	xz -lvv "$BATS_TEST_TMPDIR/t.xz" >"$BATS_TEST_TMPDIR/list"
	# The threaded encoder's mark: several blocks, sizes in their headers.
	grep -qE '^ +Blocks: +[2-9]' "$BATS_TEST_TMPDIR/list"
	grep -qE 'Sizes in headers: +Yes' "$BATS_TEST_TMPDIR/list"
	grep -q 'CRC64' "$BATS_TEST_TMPDIR/list"
	# One thread: one block, as xz -T1 writes it.
	ckpt-gzip --xz -T 1 <"$BATS_TEST_TMPDIR/t" >"$BATS_TEST_TMPDIR/t1.xz"
	xz -d <"$BATS_TEST_TMPDIR/t1.xz" | cmp - "$BATS_TEST_TMPDIR/t"
	xz -lvv "$BATS_TEST_TMPDIR/t1.xz" | grep -qE '^ +Blocks: +1$'
}

@test "a bad thread count exits 2 with one line naming it" {
	local bad
	for bad in x -1 257 1x ''; do
		run bash -c 'ckpt-gzip -T "$1" </dev/null 2>&1 >/dev/null' _ "$bad"
		[ "$status" -eq 2 ]
		[ "$(printf '%s\n' "$output" | wc -l)" -eq 1 ]
		[ "$output" = "ckpt-gzip: bad thread count: '$bad' (want 0..256)" ]
	done
	run bash -c 'ckpt-gzip --threads=abc </dev/null 2>&1 >/dev/null'
	[ "$status" -eq 2 ]
	[[ $output == *"bad thread count: 'abc'"* ]]
	run bash -c 'ckpt-gzip -T </dev/null 2>&1 >/dev/null'
	[ "$status" -eq 2 ]
	[[ $output == *"usage: ckpt-gzip"* ]]
}

@test "a bad option or an operand exits 2 with the usage line on stderr" {
	run bash -c 'ckpt-gzip -q </dev/null 2>&1 >/dev/null'
	[ "$status" -eq 2 ]
	[[ $output == *"usage: ckpt-gzip [-d] [-1 ... -9] [-T threads] [--xz | --zstd] [-o file]"* ]]
	run bash -c 'ckpt-gzip --xz=3 </dev/null 2>&1 >/dev/null'
	[ "$status" -eq 2 ]
	run bash -c 'ckpt-gzip file </dev/null 2>&1 >/dev/null'
	[ "$status" -eq 2 ]
}

@test "empty input compresses to a valid stream and round-trips to nothing" {
	local d=$BATS_TEST_TMPDIR
	ckpt-gzip </dev/null >"$d/e.gz"
	ckpt-gzip --xz </dev/null >"$d/e.xz"
	ckpt-gzip --zstd </dev/null >"$d/e.zst"
	[ -s "$d/e.gz" ] && [ -s "$d/e.xz" ] && [ -s "$d/e.zst" ]
	zstd -q -d -c "$d/e.zst" >"$d/5"
	ckpt-gzip -d <"$d/e.zst" >"$d/6"
	[ ! -s "$d/5" ] && [ ! -s "$d/6" ]
	gzip -d <"$d/e.gz" >"$d/1"
	ckpt-gzip -d <"$d/e.gz" >"$d/2"
	xz -d <"$d/e.xz" >"$d/3"
	ckpt-gzip -d <"$d/e.xz" >"$d/4"
	[ ! -s "$d/1" ] && [ ! -s "$d/2" ] && [ ! -s "$d/3" ] && [ ! -s "$d/4" ]
}

@test "input arriving a few bytes at a time through a pipe decodes" {
	make_input
	ckpt-gzip <"$in" >"$in.gz"
	# Small reads exercise the refills and the member boundary checks.
	cat "$in.gz" "$in.gz" | dd bs=4093 status=none iflag=fullblock |
		ckpt-gzip -d | cmp - <(cat "$in" "$in")
}

@test "compressed data is not written to a terminal" {
	command -v script >/dev/null || skip "script(1) not installed"
	# script runs $SHELL, which is nologin for the unprivileged test user.
	[[ $(SHELL=/bin/sh script -qec tty /dev/null) == /dev/* ]] ||
		skip "script(1) cannot open a pseudo-terminal here"
	run env SHELL=/bin/sh script -qec "ckpt-gzip </dev/null" /dev/null
	[ "$status" -eq 1 ]
	[[ $output == *"ckpt-gzip: stdout: compressed data not written to a terminal"* ]]
}

@test "a zstd frame asking for a 2 GiB window is refused, not allocated" {
	# 19 bytes the fuzzer found: a frame header whose window is 2 GiB.
	printf '\x28\xb5\x2f\xfd\x00\xa8\xae\xab\x36\xd3\xb5\x2f\xfd\x00\x00\x01\x00\x00\x00' >"$BATS_TEST_TMPDIR/big.zst"
	run --separate-stderr ckpt-inspect "$BATS_TEST_TMPDIR/big.zst"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"zstd frame asks for a window over 128 MiB"* ]]
	run --separate-stderr ckpt-gzip -d <"$BATS_TEST_TMPDIR/big.zst"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"window over 128 MiB"* ]]
}

@test "ckpt-gzip gives the pipes it reads and writes 1 MiB" {
	make_input
	# F_GETPIPE_SZ (1032): the writer's view of the input pipe once all
	# of it is taken, the reader's of the output pipe once all is read.
	# shellcheck disable=SC2016
	run bash -c 'set -o pipefail
		python3 -c "import fcntl, sys
sys.stdout.buffer.write(open(sys.argv[1], \"rb\").read())
sys.stdout.flush()
print(fcntl.fcntl(1, 1032), file=sys.stderr)" "$1" 2>"$2" | ckpt-gzip --zstd |
		{ cat >/dev/null && python3 -c "import fcntl; print(fcntl.fcntl(0, 1032))"; }
		cat "$2"' _ "$in" "$BATS_TEST_TMPDIR/size"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "$(grown_pipe)" ]
	[ "${lines[1]}" = "$(grown_pipe)" ]
}

# -o FILE: private, and under its name only once complete.

# writing PID DIR: PID has written to a file in DIR other than its input DIR/in
# and its stderr DIR/err: its -o file, unnamed or under a temporary name (or
# DIR/F itself, were it written in place).
writing() {
	local fd
	for fd in /proc/"$1"/fd/*; do
		case $(readlink "$fd") in
		"$2/in" | "$2/err") ;;
		"$2"/*) [ "$(stat -L -c %s "$fd")" -gt 0 ] && return 0 ;;
		esac
	done
	return 1
}

# start_into_old: $d/F holds old bytes (inode $old_ino); ckpt-gzip -o $d/F
# runs ($gz_pid) on input from the fifo $d/in, which fd 5 writes, and has
# written part of its output.
start_into_old() {
	d=$BATS_TEST_TMPDIR/o
	mkdir "$d"
	echo old >"$d/F"
	old_ino=$(stat -c %i "$d/F")
	mkfifo "$d/in"
	exec_clean ckpt-gzip -o "$d/F" <"$d/in" 2>"$d/err" &
	gz_pid=$!
	CKPT_PIDS+=("$gz_pid")
	exec 5>"$d/in"
	head -c 2M /dev/urandom >"$BATS_TEST_TMPDIR/in"
	cat "$BATS_TEST_TMPDIR/in" >&5
	wait_for writing "$gz_pid" "$d"
}

@test "-o FILE, --xz -o, --zstd -o and -d -o write FILE 0600 under umask 022 and 000" {
	make_input
	local u opt
	for u in 022 000; do
		for opt in "" --xz --zstd; do
			rm -f "$in.c"
			# shellcheck disable=SC2086 # $opt: no option or one
			(umask "$u" && ckpt-gzip $opt -o "$in.c" <"$in")
			[ "$(stat -c %a "$in.c")" = 600 ]
			rm -f "$in.d"
			(umask "$u" && ckpt-gzip -d -o "$in.d" <"$in.c")
			[ "$(stat -c %a "$in.d")" = 600 ]
			cmp "$in.d" "$in"
		done
	done
	# A name without a directory: the current one.
	(cd "$BATS_TEST_TMPDIR" && umask 000 && ckpt-gzip -o rel.gz <"$in")
	[ "$(stat -c %a "$BATS_TEST_TMPDIR/rel.gz")" = 600 ]
	gzip -d <"$BATS_TEST_TMPDIR/rel.gz" | cmp - "$in"
}

@test "-o replaces an existing FILE only when it is complete: the old one stays until the end" {
	start_into_old
	# Output written, not yet under its name: FILE is the old one, and
	# nothing else is in the directory.
	[ "$(stat -c %i "$d/F")" = "$old_ino" ]
	[ "$(cat "$d/F")" = old ]
	[ "$(ls -A "$d")" = "$(printf 'F\nerr\nin')" ]
	exec 5>&-
	reap "$gz_pid"
	[ "$status" -eq 0 ]
	[ ! -s "$d/err" ]
	[ "$(stat -c %i "$d/F")" != "$old_ino" ]
	[ "$(stat -c %a "$d/F")" = 600 ]
	gzip -d <"$d/F" | cmp - "$BATS_TEST_TMPDIR/in"
	[ "$(ls -A "$d")" = "$(printf 'F\nerr\nin')" ]
}

@test "SIGINT, SIGTERM or SIGHUP to ckpt-gzip -o: the old FILE stays as it was, no other file" {
	local sig rc
	for sig in INT TERM HUP; do
		start_into_old
		kill -"$sig" "$gz_pid"
		exec 5>&-
		reap "$gz_pid"
		rc=$((128 + $(kill -l "$sig")))
		[ "$status" -eq "$rc" ]
		[ "$(stat -c %i "$d/F")" = "$old_ino" ]
		[ "$(cat "$d/F")" = old ]
		[ "$(ls -A "$d")" = "$(printf 'F\nerr\nin')" ]
		rm -rf "$d"
	done
}

@test "-d -o on truncated or corrupt input fails with one line, keeps the old FILE, leaves no other file" {
	local d=$BATS_TEST_TMPDIR/o ino
	mkdir "$d"
	seq 1 200000 | gzip -c >"$BATS_TEST_TMPDIR/x.gz"
	head -c 20000 "$BATS_TEST_TMPDIR/x.gz" >"$BATS_TEST_TMPDIR/cut.gz"
	echo old >"$d/F"
	ino=$(stat -c %i "$d/F")
	run ckpt-gzip -d -o "$d/F" <"$BATS_TEST_TMPDIR/cut.gz"
	one_error_line "gzip stream truncated"
	run ckpt-gzip -d -o "$d/F" <"$TOP/README.md"
	one_error_line "not a compressed stream"
	[ "$(stat -c %i "$d/F")" = "$ino" ]
	[ "$(cat "$d/F")" = old ]
	[ "$(ls -A "$d")" = F ]
	# No old file: none is left.
	run ckpt-gzip -d -o "$d/G" <"$BATS_TEST_TMPDIR/cut.gz"
	one_error_line "gzip stream truncated"
	[ "$(ls -A "$d")" = F ]
}

@test "-o on a file that cannot grow (ulimit -f) fails with one line, keeps the old FILE" {
	local d=$BATS_TEST_TMPDIR/o
	mkdir "$d"
	head -c 1M /dev/urandom >"$BATS_TEST_TMPDIR/r"
	echo old >"$d/F"
	# 100 blocks of 512 bytes: the stored blocks of 1 MiB do not fit.
	run bash -c 'ulimit -f 100; ckpt-gzip -o "$1" <"$2"' _ "$d/F" "$BATS_TEST_TMPDIR/r"
	one_error_line "File too large"
	[ "$(cat "$d/F")" = old ]
	[ "$(ls -A "$d")" = F ]
}

@test "> FILE that others may read: one warning line suggesting -o, FILE made 0600; with umask 077 no warning" {
	local d=$BATS_TEST_TMPDIR
	seq 1 1000 >"$d/x"
	run --separate-stderr bash -c 'umask 022; ckpt-gzip <"$1" >"$2"' _ "$d/x" "$d/x.gz"
	[ "$status" -eq 0 ]
	echo "$stderr"
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == "ckpt-gzip: standard output was readable by other users (mode 0644, now 0600;"*"use -o file" ]]
	[ "$(stat -c %a "$d/x.gz")" = 600 ]
	gzip -d <"$d/x.gz" | cmp - "$d/x"
	# -d as well, into a file that was there, group-readable.
	install -m 0640 /dev/null "$d/y"
	run --separate-stderr bash -c 'ckpt-gzip -d <"$1" >>"$2"' _ "$d/x.gz" "$d/y"
	[ "$status" -eq 0 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ $stderr == *"readable by other users (mode 0640, now 0600;"* ]]
	[ "$(stat -c %a "$d/y")" = 600 ]
	cmp "$d/y" "$d/x"
	# Private already: nothing to say.
	rm "$d/x.gz"
	run --separate-stderr bash -c 'umask 077; ckpt-gzip <"$1" >"$2"' _ "$d/x" "$d/x.gz"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "$(stat -c %a "$d/x.gz")" = 600 ]
	# A pipe is no file to warn about.
	run --separate-stderr bash -c 'umask 022; ckpt-gzip <"$1" | cat >/dev/null' _ "$d/x"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
}
