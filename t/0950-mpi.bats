#!/usr/bin/env bats
# MPI jobs, unmodified, under ckpt-inject: t/progs/mpi/heat (a 2-D Jacobi
# solver: non-blocking halo exchange, an Allreduce every iteration, a
# checksum of the grid at the end) on 4 ranks on this host, launched by
# Open MPI's mpirun (its default transports: vader shared memory between
# the ranks, tcp) and by MPICH's mpiexec (Hydra: hydra_pmi_proxy, ch4:ucx
# over shared memory).  The launcher, its daemons and the ranks are one
# member: checkpointed while the job runs on, killed and restarted by the
# generation's script, and restarted from each of ten generations in turn,
# the job's output must be an uninterrupted run's, residual lines and
# checksum, byte for byte.  Open MPI also over TCP only (--mca btl
# self,tcp).  A file is skipped, saying why, where an implementation's
# Debian packages are missing.

# shellcheck disable=SC2154,SC2153 # stderr is bats run's; CPORT, RPORT lib.bash's
load lib
load lib-mpi

bats_require_minimum_version 1.5.0

# The job, per implementation: the grid, iterations and print interval
# (the same in the uninterrupted run), and a pause in ms per iteration so
# that the run lasts through the checkpoints.  MPICH's ranks busy-poll
# (4 on 2 cores): its job is smaller and needs no pause.
OMPI_ARGS=(-n 64 -i 3000 -p 25)
OMPI_PACE=(-d 1)
MPICH_ARGS=(-n 32 -i 400 -p 3)
MPICH_PACE=()

# job_cmd IMPL [MCA...]: the words that run heat on 4 ranks ($JOB), with
# the implementation's arguments and pace; MCA... (Open MPI's --mca
# options) go to mpirun.
job_cmd() {
	local impl=$1
	shift
	case $impl in
	ompi)
		JOB=(mpirun.openmpi --oversubscribe -np 4)
		[ "$(id -u)" -ne 0 ] || JOB+=(--allow-run-as-root)
		JOB+=("$@" "$MPIDIR/heat-ompi" "${OMPI_ARGS[@]}" "${OMPI_PACE[@]}")
		;;
	mpich)
		JOB=(mpiexec.mpich -n 4 "$MPIDIR/heat-mpich" "${MPICH_ARGS[@]}" "${MPICH_PACE[@]}")
		;;
	esac
}

# The uninterrupted runs' output, once for the file:
# $BATS_FILE_TMPDIR/IMPL.expect.
setup_file() {
	# No pause: it changes no value.
	local impl OMPI_PACE=() MPICH_PACE=()
	for impl in ompi mpich; do
		have "$impl" || continue
		job_cmd "$impl"
		"${JOB[@]}" </dev/null >"$BATS_FILE_TMPDIR/$impl.expect" 2>&1
		tail -1 "$BATS_FILE_TMPDIR/$impl.expect" | grep -q '^checksum [0-9a-f]\{16\} sum '
	done
}

teardown() {
	local f p
	coord_teardown
	# What Open MPI leaves of a killed job: its vader segments in
	# /dev/shm and its session directory, under mpirun's pid (the
	# same pid, or in-namespace pid, after a restore).  Only this
	# test's.
	if [ -f "$BATS_TEST_TMPDIR/leftovers" ]; then
		while read -r f; do
			rm -rf "$f"
		done <"$BATS_TEST_TMPDIR/leftovers"
	fi
	for p in "${MPIRUNS[@]}"; do
		rm -rf "${TMPDIR:-/tmp}/ompi.$(hostname).$(id -u)/pid.$p"
	done
	rmdir "${TMPDIR:-/tmp}/ompi.$(hostname).$(id -u)" 2>/dev/null || true
}
MPIRUNS=()

# note_leftovers ROOT: the files in /dev/shm that the job below ROOT has
# mapped (Open MPI's vader segments), for teardown.
note_leftovers() {
	local p
	for p in $(descendants "$1"); do
		awk '$6 ~ /^\/dev\/shm\/vader_segment\./ { print $6 }' "/proc/$p/maps" 2>/dev/null || true
	done | sort -u >>"$BATS_TEST_TMPDIR/leftovers"
}

# start_job IMPL [MCA...]: a coordinator (with the test's options in
# COORD_OPTS) and the job under ckpt-inject, its output in $OUT, its
# first line printed (every rank is through MPI_Init).
start_job() {
	local impl=$1
	shift
	need "$impl"
	EXPECT=${EXPECT:-$BATS_FILE_TMPDIR/$impl.expect}
	start_coord "${COORD_OPTS[@]}"
	job_cmd "$impl" "$@"
	OUT=$BATS_TEST_TMPDIR/job.out
	inject job "${JOB[@]}"
	ROOT=$INJ_PID
	[ "$impl" != ompi ] || MPIRUNS+=("$INJ_PID")
	wait_for has_members 1
	wait_for_line "$OUT" '^heat ranks 4 '
	note_leftovers "$ROOT"
	# Without privilege the tree keeps its pids in a pid namespace of
	# its own (ckpt-remap --pid-ns, through the restart script): the
	# old ones may be taken here.
	if [ "$(id -u)" -ne 0 ]; then
		export CKPT_REMAP_ARGS=--pid-ns
	fi
}

# iters: the last iteration the job printed (0 if none yet).
iters() {
	sed -n 's/^iter \([0-9]*\) .*/\1/p' "$OUT" | tail -1 | grep . || echo 0
}

# past N: the job printed iteration N or a later one, or it ended (for
# wait_for: the checkpoint after it then fails, saying so).
past() {
	[ "$(iters)" -ge "$1" ] || ended "$ROOT"
}

# gone PID...: none of them is alive (zombies reaped too).
gone() {
	local p
	for p in "$@"; do
		if kill -0 "$p" 2>/dev/null; then
			return 1
		fi
	done
}

# checkpoint [--kill]: ckpt-signal --checkpoint --wait on the current
# coordinator ($PORT); the generation in $GEN, the job's processes then
# in $TREE.  With --kill, they are waited for until every one is gone (a
# restart needs their pids free).
checkpoint() {
	mapfile -t TREE < <(echo "$ROOT"; descendants "$ROOT")
	run --separate-stderr ckpt-signal --coord-port "$PORT" --checkpoint --wait "$@"
	echo "checkpoint at iteration $(iters): status $status $output $stderr"
	if [ "$status" -ne 0 ] && [ -f "$BATS_TEST_TMPDIR/restart.out" ]; then
		cat "$BATS_TEST_TMPDIR/restart.out"
	fi
	[ "$status" -eq 0 ]
	GEN=$output
	if [ "${1:-}" = --kill ]; then
		reap "$ROOT"
		wait_for gone "${TREE[@]}"
	fi
}

# restart GEN: the generation's restart script in the background, the
# job its member; ROOT and PORT now the restarted job's.
restart() {
	restart_bg "$1"
	ROOT=$RS_PID
	PORT=$RPORT
}

# finished: the job (ROOT, started or restarted) ended 0 with the
# uninterrupted run's output (2 minutes at most).
finished() {
	wait_for -t 120 ended "$ROOT"
	reap "$ROOT"
	if [ -f "$BATS_TEST_TMPDIR/restart.out" ]; then
		cat "$BATS_TEST_TMPDIR/restart.out"
	fi
	echo "job status $status; its output against the uninterrupted run's:"
	diff "$EXPECT" "$OUT"
	tail -1 "$OUT"
	[ "$status" -eq 0 ]
}

# checkpointed_twice IMPL: two checkpoints while the job runs on, at a
# quarter and at half of its iterations: it ends as if uninterrupted.
checkpointed_twice() {
	local n
	start_job "$1"
	PORT=$CPORT
	n=$(sed -n 's/^iter \([0-9]*\) .*/\1/p' "$EXPECT" | tail -1)
	wait_for -t 60 past $((n / 4))
	checkpoint
	wait_for -t 60 past $((n / 2))
	checkpoint
	[ "$GEN" = "$CDIR/ckpt_gen_000002" ]
	finished
}

# round_trips IMPL N [MCA...]: N times checkpointed with --kill at a later
# iteration and restarted by the script: it ends as if uninterrupted.
round_trips() {
	local impl=$1 n=$2 k last
	shift 2
	start_job "$impl" "$@"
	PORT=$CPORT
	last=$(sed -n 's/^iter \([0-9]*\) .*/\1/p' "$EXPECT" | tail -1)
	for ((k = 1; k <= n; k++)); do
		# Without privilege the restored ranks' TCP listeners wait
		# out the TIME_WAIT of the killed job's connections (a minute).
		wait_for -t 150 past $((last * k / (n + 2)))
		checkpoint --kill
		restart "$GEN"
		wait_for has_members 1 "$PORT"
	done
	finished
}

# seeded: RANDOM seeded from CKPT_SEED (or at random), the seed printed.
seeded() {
	local seed=${CKPT_SEED:-$RANDOM}
	echo "# CKPT_SEED=$seed" >&3
	RANDOM=$seed
}

# every_generation IMPL: ten checkpoints at random moments of one run
# (which ends as if uninterrupted), then a restart from each generation
# in turn, each run to its end (or killed after 2 minutes), the one
# before gone: the same output every time.
every_generation() {
	# The run paced so that ten checkpoints fit in it, however fast
	# this machine runs it.
	local impl=$1 k every at=0 gens=() bad=() OMPI_PACE=(-d 3) MPICH_PACE=(-d 15)
	seeded
	COORD_OPTS=(--keep 10)
	start_job "$impl"
	PORT=$CPORT
	every=$(sed -n 's/^iter \([0-9]*\) .*/\1/p' "$EXPECT" | head -1)
	for ((k = 1; k <= 10; k++)); do
		# One to four printed iterations after the last checkpoint
		# (the job runs on while each is compressed): all ten well
		# before its end.
		at=$(($(iters) + every * (1 + RANDOM % 3)))
		wait_for -t 60 past "$at"
		checkpoint
		gens+=("$GEN")
	done
	finished
	wait_for gone "${TREE[@]}"
	for k in "${!gens[@]}"; do
		restart "${gens[k]}"
		if ! wait_for -t 120 ended "$ROOT"; then
			echo "generation $((k + 1)): the restarted job still runs after 2 minutes: killed"
			kill_tree "$ROOT"
		fi
		reap "$ROOT"
		echo "generation $((k + 1)): restart status $status, $(tail -1 "$OUT")"
		if [ "$status" -ne 0 ] || ! cmp -s "$EXPECT" "$OUT"; then
			bad+=("$((k + 1))")
			cat "$BATS_TEST_TMPDIR/restart.out"
			diff "$EXPECT" "$OUT" | tail -5 || true
		fi
		wait_for gone "${TREE[@]}"
	done
	echo "generations whose restart went wrong: ${bad[*]:-none}"
	[ "${#bad[@]}" -eq 0 ]
}

# kill_tree PID: SIGKILL PID's descendants (stopped first) and PID.
kill_tree() {
	local p tree
	mapfile -t tree < <(descendants "$1")
	for p in "${tree[@]}"; do
		kill -STOP "$p" 2>/dev/null || true
	done
	for p in "${tree[@]}" "$1"; do
		kill -KILL "$p" 2>/dev/null || true
	done
}

COORD_OPTS=()

# --- Open MPI ---

@test "Open MPI, 4 ranks on vader and tcp under ckpt-inject: two checkpoints while it runs on; the uninterrupted run's residuals and checksum" {
	checkpointed_twice ompi
}

@test "Open MPI, 4 ranks on vader and tcp: checkpointed with --kill and restarted by the script, three round trips; the uninterrupted run's output" {
	round_trips ompi 3
}

@test "Open MPI, 4 ranks on vader and tcp: ten checkpoints at random moments, then a restart from each generation in turn; the same checksum every time" {
	every_generation ompi
}

@test "Open MPI, 4 ranks over TCP only (--mca btl self,tcp): checkpointed with --kill and restarted by the script; the uninterrupted run's output" {
	round_trips ompi 1 --mca btl self,tcp
}

@test "Open MPI, halos over vader's eager limit (4 KiB: sent by single copy, CMA's process_vm_readv): checkpointed with --kill and restarted by the script; the uninterrupted run's output" {
	need ompi
	local OMPI_ARGS=(-n 1200 -i 60 -p 10) OMPI_PACE=()
	EXPECT=$BATS_TEST_TMPDIR/cma.expect
	job_cmd ompi
	"${JOB[@]}" </dev/null >"$EXPECT" 2>&1
	OMPI_PACE=(-d 30)
	round_trips ompi 1
}

# --- MPICH ---

@test "MPICH (Hydra, ch4:ucx), 4 ranks under ckpt-inject: two checkpoints while it runs on; the uninterrupted run's residuals and checksum" {
	checkpointed_twice mpich
}

@test "MPICH, 4 ranks: checkpointed with --kill and restarted by the script, three round trips; the uninterrupted run's output" {
	round_trips mpich 3
}

@test "MPICH, 4 ranks: ten checkpoints at random moments, then a restart from each generation in turn; the same checksum every time" {
	every_generation mpich
}
