#!/bin/bash
# ckpt-sbatch.sh: run a long job under SLURM in time slices, checkpointed
# with ckpt before each slice ends and requeued to go on from there.
#
#   sbatch [sbatch options] ckpt-sbatch.sh CMD [ARG...]
#
# The first run starts a coordinator (ckpt-coord) and CMD under it
# (ckpt-inject).  SIGUSR1 to this script (SLURM sends it --signal's
# SECONDS before the time limit; `scancel --signal=USR1 --batch JOB` sends
# it at once) checkpoints CMD and kills it (ckpt-signal --checkpoint
# --kill), then requeues the job (scontrol requeue): the next run finds
# the generation "current" in the checkpoint directory and restarts CMD
# from it with the restart script the coordinator wrote there.  SIGUSR2
# (`scancel --signal=USR2 --batch JOB`) checkpoints and lets CMD run on.
# The job's exit status is CMD's.  See README.
#
# Environment: CKPT_DIR, the checkpoint directory (default
# $SLURM_SUBMIT_DIR/ckpt-$SLURM_JOB_ID; on storage every node sees);
# CKPT_INTERVAL, checkpoint also every so many seconds (default 0: only on
# the signals); CKPT_COMPRESS (zstd, gzip or none) as ckpt-coord takes it.
# The ckpt tools are looked for on PATH.
#
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@300

set -u
: "${SLURM_JOB_ID:?ckpt-sbatch.sh: not a SLURM job (run it with sbatch)}"
dir=${CKPT_DIR:-${SLURM_SUBMIT_DIR:-$PWD}/ckpt-$SLURM_JOB_ID}
run=${SLURM_RESTART_COUNT:-0}
log=$dir/ckpt-sbatch.log
(umask 077 && mkdir -p "$dir") || exit 99

# say WORDS: a line in the log, with the time and which run of the job.
say() {
	printf '%s job %s run %s: %s\n' "$(date +%T.%3N)" "$SLURM_JOB_ID" "$run" "$*" >>"$log"
}

# The coordinator's port is free one, written to $pf once it listens.
pf=$dir/.coord-port.$run
rm -f "$pf"
port() {
	local i
	for ((i = 0; i < 3000; i++)); do
		[ -s "$pf" ] && { cat "$pf"; return 0; }
		sleep 0.01
	done
	return 1
}

here=$(hostname)
if [ -e "$dir/current" ]; then
	# The job may run on another node this time: its members come back
	# here.  Their output files are set back to what they held at the
	# checkpoint (ckpt-remap restores the regular files they had open).
	hostmap=()
	old=$(cat "$dir/.host" 2>/dev/null) && hostmap=(--host "$old=$here")
	echo "$here" >"$dir/.host"
	say "restart from $(readlink "$dir/current") on $here"
	# What ckpt-remap says goes to the log: a line in the output file would
	# change it again after it is set back, and fail the restore.
	"$dir/ckpt_restart_script.sh" --coord-port 0 --port-file "$pf" "${hostmap[@]}" 2>>"$log" &
	job=$!
else
	echo "$here" >"$dir/.host"
	say "start on $here: $*"
	ckpt-coord --daemon --exit-on-last --port 0 --port-file "$pf" --dir "$dir" \
		--interval "${CKPT_INTERVAL:-0}" --log "$dir/ckpt_coord.log" || exit 99
	ckpt-inject --coord-port "$(port)" -- "$@" &
	job=$!
fi

# A trapped signal interrupts `wait`, which then returns above 128: the
# flags say which one came (one that comes during a checkpoint waits for
# the next turn of the loop).
requeue=''
ondemand=''
trap 'requeue=1' USR1
trap 'ondemand=1' USR2
while :; do
	if [ -n "$ondemand" ]; then
		ondemand=''
		say "USR2: checkpoint"
		if gen=$(ckpt-signal --coord-port "$(port)" --checkpoint --wait 2>>"$log"); then
			say "checkpoint $gen written"
		else
			say "checkpoint failed; the job runs on"
		fi
	elif [ -n "$requeue" ]; then
		requeue=''
		say "USR1: checkpoint, stop and requeue"
		if gen=$(ckpt-signal --coord-port "$(port)" --checkpoint --wait --kill 2>>"$log"); then
			say "checkpoint $gen written, program stopped"
		elif kill -0 "$job" 2>/dev/null && [ -e "$dir/current" ]; then
			say "checkpoint failed: stop, to go on from $(readlink "$dir/current")"
			ckpt-signal --coord-port "$(port)" --kill 2>>"$log"
		else
			say "checkpoint failed; the job runs on"
			continue
		fi
		wait "$job"
		say "requeue"
		scontrol requeue "$SLURM_JOB_ID" 2>>"$log" && exit 0
		say "scontrol requeue failed"
		exit 99
	else
		wait "$job"
		rc=$?
		if [ -z "$ondemand$requeue" ]; then
			say "the program exited with status $rc"
			exit "$rc"
		fi
	fi
done
