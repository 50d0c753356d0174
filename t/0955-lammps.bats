#!/usr/bin/env bats
# A real MPI application: LAMMPS from Debian (lmp, built with Open MPI)
# runs t/progs/lj.lmp (a Lennard-Jones liquid of 4000 atoms melting from
# an fcc lattice, 10000 steps, its thermodynamics printed every 500) with 4
# ranks under mpirun, as one member of a coordinated computation
# (ckpt-inject -- mpirun ...): checkpointed mid-run with --kill and
# restarted by the generated script, its thermodynamic output after the
# restart equals an uninterrupted run's to the last printed digit.  LAMMPS
# writes that output to a file it opened (-screen), which the restored
# job writes on from where the checkpoint found it (the coordinator saves
# open files' contents).  Skipped, saying why, where lmp or Open MPI's
# mpirun is missing (make test-deps installs lammps and openmpi-bin).

load lib

bats_require_minimum_version 1.5.0

setup_file() {
	if ! command -v lmp >/dev/null || ! command -v mpirun.openmpi >/dev/null; then
		export LMP_SKIP="lmp or mpirun.openmpi is not installed (make test-deps installs lammps and openmpi-bin)"
		return 0
	fi
	# As root, Open MPI wants to be told.
	if [ "$(id -u)" -eq 0 ]; then
		export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
	fi
	export REF=$BATS_FILE_TMPDIR/ref.txt
	(cd "$BATS_FILE_TMPDIR" && exec_clean timeout 300 mpirun.openmpi --oversubscribe -np 4 \
		lmp -in "$BATS_TEST_DIRNAME/progs/lj.lmp" -log none -screen "$REF" </dev/null >/dev/null 2>&1)
	grep -q "^Loop time" "$REF"
}

setup() {
	[ -z "${LMP_SKIP:-}" ] || skip "$LMP_SKIP"
	workdir lammps
	SHM_BEFORE=$(ls /dev/shm)
}

teardown() {
	local f
	coord_teardown
	kill_in_dir "$D" lmp
	kill_in_dir "$D" mpirun.openmpi
	# The shared-memory segments of this test's jobs (Open MPI's vader).
	for f in /dev/shm/vader_segment.*; do
		[ -O "$f" ] || continue
		grep -qxF "${f#/dev/shm/}" <<<"$SHM_BEFORE" || rm -f "$f"
	done
}

# thermo FILE: the rows of LAMMPS's thermodynamic table in FILE.
thermo() {
	sed -n '/^ *Step /,/^Loop time/p' "$1" | grep -v '^Loop time'
}

@test "LAMMPS, 4 ranks under mpirun: checkpointed mid-run with --kill and restarted by the script, its thermodynamics equal an uninterrupted run's to the last digit" {
	local dir
	thermo "$REF" >"$BATS_TEST_TMPDIR/ref.thermo"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/ref.thermo")" -eq 22 ]
	start_coord
	cd "$D"
	inject lammps mpirun.openmpi --oversubscribe -np 4 lmp -in "$TOP/t/progs/lj.lmp" -log none \
		-screen "$D/screen.txt"
	wait_for has_members 1
	wait_for -t 120 grep -qE '^ +2000 ' "$D/screen.txt"
	run --separate-stderr ckpt-signal --checkpoint --wait --kill
	echo "checkpoint: $status $output $stderr"
	[ "$status" -eq 0 ]
	dir=$output
	wait "$INJ_PID" || true
	# Mid-run: the run had not ended.
	grep -q '^ *Step ' "$D/screen.txt"
	[ -z "$(grep '^Loop time' "$D/screen.txt")" ]
	echo "checkpointed after step $(thermo "$D/screen.txt" | tail -1 | awk '{ print $1 }')"
	wait_for not pgrep -f "lmp -in $TOP/t/progs/lj.lmp"
	# Without privilege mpirun's port, which connections it closed hold
	# in TIME-WAIT for a minute, is free at once in a network namespace
	# of the job's own (root ends them: t/0600).
	[ "$(id -u)" -eq 0 ] || export CKPT_REMAP_ARGS=--net-ns
	restart_bg "$dir"
	wait_for -t 180 grep -q '^Loop time' "$D/screen.txt"
	cat "$BATS_TEST_TMPDIR/restart.out"
	thermo "$D/screen.txt" | diff "$BATS_TEST_TMPDIR/ref.thermo" -
	wait "$RS_PID"
}
