#!/usr/bin/env bats
# lib/'s layers (t/check-includes): the tree passes, and a planted include
# that breaks a rule fails it, naming the file, the line and the rule.

load lib

setup() {
	cp -r "$TOP/lib" "$BATS_TEST_TMPDIR/lib"
	find "$BATS_TEST_TMPDIR/lib" -name '*.[oa]' -delete
}

# plant FILE LINE: add LINE after the first line of lib/FILE (the copy's).
plant() {
	sed -i "1a $2" "$BATS_TEST_TMPDIR/lib/$1"
}

@test "lib/ keeps its layers" {
	run "$TOP/t/check-includes"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "a lower layer including a higher one fails the check, by name" {
	plant image/image.c '#include "dump/dump.h"'
	run "$TOP/t/check-includes" "$BATS_TEST_TMPDIR/lib"
	[ "$status" -eq 1 ]
	[[ $output == *'lib/image/image.c:2: includes "dump/dump.h": image/ may include only'*' base' ]]
}

@test "a cycle between two layers fails the check" {
	plant incr/open.c '#include "inspect/inspect.h"'
	plant inspect/inspect.c '#include "incr/incr.h"'
	run "$TOP/t/check-includes" "$BATS_TEST_TMPDIR/lib"
	[ "$status" -eq 1 ]
	[[ $output == *'lib/incr/open.c:2: includes "inspect/inspect.h"'* ]]
}

@test "another layer's internal header, a bare name, the restorer reaching out: each fails" {
	plant dump/dump.c '#include "kinds/fd-internal.h"'
	plant io/zio.c '#include "util.h"'
	plant restore/restorer/restorer.c '#include "base/base.h"'
	run "$TOP/t/check-includes" "$BATS_TEST_TMPDIR/lib"
	[ "$status" -eq 1 ]
	[[ $output == *'"kinds/fd-internal.h": kinds/fd-internal.h is not kinds/'"'"'s public header'* ]]
	[[ $output == *'lib/io/zio.c:2: includes "util.h": write includes as FOLDER/HEADER.h'* ]]
	[[ $output == *'restorer.c:2: includes "base/base.h": the restorer includes only'* ]]
}

@test "a new folder of lib/ must be given a layer" {
	mkdir "$BATS_TEST_TMPDIR/lib/net"
	run "$TOP/t/check-includes" "$BATS_TEST_TMPDIR/lib"
	[ "$status" -eq 1 ]
	[[ $output == *'lib/net/ has no layer'* ]]
}
