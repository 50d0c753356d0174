#!/bin/bash
# ckpt-qsub.sh: the Torque/PBS form of contrib/slurm/ckpt-sbatch.sh: run a
# long job in walltime slices, checkpointed with ckpt before each slice
# ends and submitted again to go on from there.  NOT RUN: there is no
# Torque in Debian to test it on (see README).
#
#   qsub -l walltime=HH:MM:SS [-v CKPT_DIR=DIR] -F "CMD ARG..." ckpt-qsub.sh
#
# Torque sends no signal before the walltime of its own, so this script
# sets a timer: CKPT_MARGIN seconds (default 300) before the walltime
# ($PBS_WALLTIME, else CKPT_WALLTIME, in seconds) it checkpoints CMD and
# kills it (ckpt-signal --checkpoint --kill), then submits itself again
# (qsub, with the same CKPT_DIR and arguments; CKPT_RERUN=1 uses `qrerun
# $PBS_JOBID` instead, which Torque allows operators only).  SIGTERM
# (what Torque sends at the walltime, kill_delay seconds before SIGKILL,
# and what qdel sends) and SIGUSR1 (`qsig -s USR1 JOB`) do the same at
# once; SIGUSR2 checkpoints and lets CMD run on.  The next job finds the
# generation "current" in CKPT_DIR and restarts CMD from it with the
# coordinator's restart script.  CKPT_INTERVAL: also checkpoint every so
# many seconds.
#
#PBS -r y
#PBS -j oe

set -u
: "${PBS_JOBID:?ckpt-qsub.sh: not a PBS job (run it with qsub)}"
cd "${PBS_O_WORKDIR:-.}" || exit 99
export CKPT_DIR=${CKPT_DIR:-$PWD/ckpt-${PBS_JOBID%%.*}}
log=$CKPT_DIR/ckpt-qsub.log
(umask 077 && mkdir -p "$CKPT_DIR") || exit 99
note() {
	printf '%s job %s: %s\n' "$(date +%T.%3N)" "$PBS_JOBID" "$*" >>"$log"
}

portfile=$CKPT_DIR/.coord-port.${PBS_JOBID%%.*}
coord_port() {
	local i
	for ((i = 0; i < 3000; i++)); do
		if [ -s "$portfile" ]; then
			cat "$portfile"
			return 0
		fi
		sleep 0.01
	done
	return 1
}

old=$(cat "$CKPT_DIR/.host" 2>/dev/null || hostname)
hostname >"$CKPT_DIR/.host"
if [ -e "$CKPT_DIR/current" ]; then
	note "restart from $(readlink "$CKPT_DIR/current") on $(hostname)"
	# ckpt-remap's messages go to the log, not to the job's output, which
	# it sets back to what it was at the checkpoint.
	"$CKPT_DIR/ckpt_restart_script.sh" --coord-port 0 --port-file "$portfile" \
		--host "$old=$(hostname)" 2>>"$log" &
else
	note "start on $(hostname): $*"
	ckpt-coord --daemon --exit-on-last --port 0 --port-file "$portfile" --dir "$CKPT_DIR" \
		--interval "${CKPT_INTERVAL:-0}" --log "$CKPT_DIR/ckpt_coord.log" || exit 99
	ckpt-inject --coord-port "$(coord_port)" -- "$@" &
fi
prog=$!

walltime=${PBS_WALLTIME:-${CKPT_WALLTIME:-0}}
if [ "$walltime" -gt 0 ]; then
	(sleep $((walltime > ${CKPT_MARGIN:-300} ? walltime - ${CKPT_MARGIN:-300} : 1)) && kill -USR1 $$) &
	timer=$!
fi

stop='' snap=''
trap 'stop=1' USR1 TERM
trap 'snap=1' USR2
while :; do
	if [ -n "$snap" ]; then
		snap=''
		if out=$(ckpt-signal --coord-port "$(coord_port)" --checkpoint --wait 2>>"$log"); then
			note "checkpoint $out"
		else
			note "checkpoint failed; the job runs on"
		fi
		continue
	fi
	if [ -z "$stop" ]; then
		wait "$prog"
		st=$?
		[ -n "$stop$snap" ] && continue
		note "the program exited with status $st"
		[ -z "${timer:-}" ] || kill "$timer" 2>/dev/null
		exit "$st"
	fi
	note "end of the slice: checkpoint, stop, submit again"
	if ! out=$(ckpt-signal --coord-port "$(coord_port)" --checkpoint --wait --kill 2>>"$log"); then
		note "checkpoint failed"
		[ -e "$CKPT_DIR/current" ] || exit 99
		ckpt-signal --coord-port "$(coord_port)" --kill 2>>"$log"
	fi
	wait "$prog"
	if [ "${CKPT_RERUN:-0}" = 1 ]; then
		qrerun "$PBS_JOBID" 2>>"$log" || exit 99
	else
		opts=(-v "CKPT_DIR=$CKPT_DIR,CKPT_INTERVAL=${CKPT_INTERVAL:-0}")
		[ "$walltime" -eq 0 ] || opts+=(-l "walltime=$walltime")
		# CKPT_QSUB_OPTS: more qsub options, split at spaces.
		# shellcheck disable=SC2086
		qsub "${opts[@]}" ${CKPT_QSUB_OPTS:-} -F "$*" "${CKPT_SCRIPT:-$0}" >>"$log" 2>&1 || exit 99
	fi
	note "submitted again after $out"
	exit 0
done
