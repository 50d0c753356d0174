# shellcheck shell=bash
# What t/0950-mpi.bats and t/0960-mpi-hosts.bats share: where heat is
# (t/progs/mpi/heat.c, built by make with each implementation's mpicc),
# and whether an implementation is here.

MPIDIR=$TOP/t/progs/mpi

# have IMPL (ompi, mpich): its launcher and the heat built with its mpicc
# are here.
have() {
	case $1 in
	ompi) command -v mpirun.openmpi >/dev/null && [ -x "$MPIDIR/heat-ompi" ] ;;
	mpich) command -v mpiexec.mpich >/dev/null && [ -x "$MPIDIR/heat-mpich" ] ;;
	esac
}

# need IMPL: skip unless have IMPL, saying which packages are missing.
need() {
	have "$1" && return 0
	case $1 in
	ompi) skip "Open MPI is missing (Debian openmpi-bin libopenmpi-dev; make builds t/progs/mpi/heat-ompi)" ;;
	mpich) skip "MPICH is missing (Debian mpich libmpich-dev; make builds t/progs/mpi/heat-mpich)" ;;
	esac
}

# ended PID: the child PID has exited (a zombie not yet reaped, or gone).
ended() {
	kill -0 "$1" 2>/dev/null || return 0
	state_is "$1" Z 2>/dev/null
}
