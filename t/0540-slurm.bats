#!/usr/bin/env bats
# contrib/slurm/ckpt-sbatch.sh on a real one-node SLURM (Debian's
# slurm-wlm with munge): the file starts munged, slurmctld and slurmd of
# its own (its own config, key, socket, ports and state, all in its
# temporary directory), runs jobs of contrib/slurm/countjob through
# sbatch, and stops them all.  countjob counts to N, writing each step to
# a progress file, and prints its sum of squares only if the sum and the
# file are right: a job checkpointed, requeued and restarted from the
# checkpoint in several time slices is right only if it went on from each
# checkpoint with its memory and its file as they were.  Root only: the
# daemons run as root.

load lib

bats_require_minimum_version 1.5.0

# within SECONDS CMD...: wait until CMD succeeds, trying every 0.1 s for
# SECONDS of the clock at most (wait_for counts tries, and the SLURM
# clients take a while each); then say what for and fail.
within() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		if [ "$SECONDS" -ge "$end" ]; then
			echo "timed out waiting for: $*" >&2
			return 1
		fi
		sleep 0.1
	done
}

# The cluster, for every test of the file.
setup_file() {
	[ "$(id -u)" -eq 0 ] || return 0
	local c=$BATS_FILE_TMPDIR/slurm h ports mem
	export SLURM_CONF=$c/slurm.conf
	for t in munged slurmctld slurmd sbatch; do
		command -v "$t" >/dev/null || {
			echo "$t is not installed (make check installs munge, slurmctld, slurmd, slurm-client)" >"$c.skip"
			return 0
		}
	done
	mkdir -p "$c/state" "$c/spool" "$c/munge"
	chmod 711 "$c/munge"
	head -c 1024 /dev/urandom >"$c/munge/key"
	chmod 400 "$c/munge/key"
	munged -F --force --key-file="$c/munge/key" --socket="$c/munge/sock" \
		--pid-file="$c/munge/pid" --log-file="$c/munge/log" --seed-file="$c/munge/seed" \
		</dev/null >/dev/null 2>&1 3>&- &
	echo $! >"$c/munged.pid"
	# Two free ports: bound to 0 and let go (the kernel hands out the next
	# ones in turn, so nothing takes them meanwhile on a quiet machine).
	ports=$(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
	h=$(hostname -s)
	mem=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
	# cred_expire=5 (slurmctld refuses 2): a requeued job waits that long
	# before it may start again (120 s by default); sched_interval=1: the
	# scheduler looks at pending jobs every second (60 by default).
	cat >"$SLURM_CONF" <<-CONF
		ClusterName=ckpttest
		SlurmctldHost=$h(127.0.0.1)
		SlurmctldPort=${ports% *}
		SlurmdPort=${ports#* }
		SlurmUser=root
		SlurmdUser=root
		AuthType=auth/munge
		CredType=cred/munge
		AuthInfo=socket=$c/munge/sock,cred_expire=5
		StateSaveLocation=$c/state
		SlurmdSpoolDir=$c/spool
		SlurmctldPidFile=$c/slurmctld.pid
		SlurmdPidFile=$c/slurmd.pid
		SlurmctldLogFile=$c/slurmctld.log
		SlurmdLogFile=$c/slurmd.log
		ProctrackType=proctrack/linuxproc
		TaskPlugin=task/none
		SelectType=select/cons_tres
		SelectTypeParameters=CR_CPU
		SchedulerType=sched/builtin
		SchedulerParameters=sched_interval=1
		JobAcctGatherType=jobacct_gather/none
		AccountingStorageType=accounting_storage/none
		JobCompType=jobcomp/none
		MpiDefault=none
		SwitchType=switch/none
		MailProg=/bin/true
		ReturnToService=2
		JobRequeue=1
		MinJobAge=600
		KillWait=5
		NodeName=$h NodeAddr=127.0.0.1 CPUs=2 RealMemory=$mem State=UNKNOWN
		PartitionName=ckpt Nodes=$h Default=YES MaxTime=INFINITE State=UP
	CONF
	wait_for -t 10 test -S "$c/munge/sock" || {
		echo "munged did not start: $(tail -1 "$c/munge/log" 2>/dev/null)" >"$c.skip"
		return 0
	}
	slurmctld -D -f "$SLURM_CONF" </dev/null >"$c/slurmctld.out" 2>&1 3>&- &
	echo $! >"$c/slurmctld.bgpid"
	slurmd -D -f "$SLURM_CONF" </dev/null >"$c/slurmd.out" 2>&1 3>&- &
	echo $! >"$c/slurmd.bgpid"
	within 30 node_idle || {
		echo "slurmctld and slurmd did not bring the node up in 30 s: $(grep -h -i 'fatal\|error' "$c"/slurm*.log "$c"/slurm*.out 2>/dev/null | grep -v -m1 'pmix\|state file\|NOTE\|MailProg')" >"$c.skip"
		return 0
	}
}

node_idle() {
	[ "$(sinfo -h -o %T 2>/dev/null)" = idle ]
}

teardown_file() {
	[ "$(id -u)" -eq 0 ] || return 0
	local c=$BATS_FILE_TMPDIR/slurm p
	export SLURM_CONF=$c/slurm.conf
	if [ -f "$c/slurmctld.bgpid" ]; then
		scancel -u root 2>/dev/null
		within 20 no_jobs || true
	fi
	# slurmd first (its steps end with it), then slurmctld, then munged.
	for p in slurmd slurmctld munged; do
		[ -f "$c/$p.bgpid" ] || [ -f "$c/$p.pid" ] || continue
		p=$(cat "$c/$p.bgpid" 2>/dev/null || cat "$c/$p.pid")
		kill "$p" 2>/dev/null || continue
		wait_for -t 20 not kill -0 "$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null
	done
	true
}

# no_jobs: no job of the cluster is pending, running or completing.
no_jobs() {
	[ -z "$(squeue -h -o %i 2>/dev/null)" ]
}

setup() {
	[ "$(id -u)" -eq 0 ] || skip "only root runs the SLURM daemons"
	C=$BATS_FILE_TMPDIR/slurm
	export SLURM_CONF=$C/slurm.conf
	[ ! -f "$C.skip" ] || skip "$(cat "$C.skip")"
	W=$BATS_TEST_TMPDIR
	JOB=
}

teardown() {
	[ -z "${JOB:-}" ] || scancel "$JOB" 2>/dev/null || true
	[ -z "${JOB:-}" ] || within 20 job_gone || true
	if [ -n "${BATS_TEST_COMPLETED:-}" ]; then return 0; fi
	# A failure: what the job and SLURM said.
	cat "$W/out" "$W"/ckpt/ckpt-sbatch.log "$W"/ckpt/ckpt_coord.log 2>/dev/null | tail -40 >&2 || true
	tail -15 "$C/slurmctld.log" "$C/slurmd.log" >&2 || true
}

# submit N SECONDS [sbatch options...]: countjob N PROGRESS SECONDS as a
# job of ckpt-sbatch.sh, its output in $W/out, its checkpoints in $W/ckpt;
# the job id in $JOB.
submit() {
	local n=$1 s=$2
	shift 2
	N=$n
	JOB=$(CKPT_DIR=$W/ckpt sbatch --parsable -D "$W" -o "$W/out" "$@" \
		"$TOP/contrib/slurm/ckpt-sbatch.sh" "$TOP/contrib/slurm/countjob" "$n" "$W/progress" "$s")
	[ -n "$JOB" ]
}

# steps: how many steps countjob has written.
steps() {
	if [ -f "$W/progress" ]; then wc -l <"$W/progress"; else echo 0; fi
}

# past K: countjob has written more than K steps.
past() {
	[ "$(steps)" -gt "$1" ]
}

# logged WORDS: ckpt-sbatch.sh's log has a line with WORDS.
logged() {
	grep -qs -- "$*" "$W/ckpt/ckpt-sbatch.log"
}

job_gone() {
	[ -z "$(squeue -h -j "$JOB" -o %i 2>/dev/null)" ]
}

# finished RESTARTS: the job completed with status 0 after RESTARTS
# requeues, and printed the right sum of squares of 1..N.
finished() {
	local info
	info=$(scontrol show job "$JOB")
	echo "$info" | grep -q "JobState=COMPLETED" || {
		echo "job $JOB: $(echo "$info" | grep -o 'JobState=[^ ]*\|ExitCode=[^ ]*' | tr '\n' ' ')" >&2
		return 1
	}
	echo "$info" | grep -q "Restarts=$1 " || {
		echo "job $JOB: $(echo "$info" | grep -o 'Restarts=[^ ]*'), not $1" >&2
		return 1
	}
	[ "$(cat "$W/out")" = "countjob: $N $((N * (N + 1) * (2 * N + 1) / 6))" ] || {
		echo "job $JOB printed: $(cat "$W/out")" >&2
		return 1
	}
}

# bats test_tags=root
@test "four time slices, each ended by USR1 (scancel --signal=USR1 --batch): checkpoint, requeue, restart from current; the sum is right" {
	submit 80 0.05
	for run in 0 1 2; do
		within 30 logged "run $run: start\|run $run: restart"
		k=$(steps)
		within 20 past $((k + 5))
		scancel --signal=USR1 --batch "$JOB"
		within 20 logged "run $run: checkpoint .*ckpt_gen_00000$((run + 1)) written, program stopped"
	done
	within 30 logged "run 3: restart from ckpt_gen_000003"
	within 30 job_gone
	within 20 logged "run 3: the program exited with status 0"
	finished 3
}

# bats test_tags=root
@test "CKPT_INTERVAL checkpoints without a signal, USR2 (scancel --signal=USR2 --batch) on demand; the job runs on in one slice" {
	CKPT_INTERVAL=1 submit 50 0.05
	wait_for -t 20 test -d "$W/ckpt/ckpt_gen_000001"
	scancel --signal=USR2 --batch "$JOB"
	within 20 logged "run 0: checkpoint .*written$"
	within 30 job_gone
	finished 0
	gens=("$W"/ckpt/ckpt_gen_*)
	[ "${#gens[@]}" -ge 2 ]
}

# bats test_tags=root
@test "a real time limit: --time=1 --signal=B:USR1@60 ends the first slice, the requeued job finishes it" {
	# SLURM looks at time limits every 30 s, and sends the signal at the
	# first look that finds the job within 60 s (+30) of its end: here, at
	# most 30 s in.  The job needs 33 s.
	submit 330 0.1 --time=1 --signal=B:USR1@60
	within 40 logged "run 0: checkpoint .* written, program stopped"
	within 90 job_gone
	finished "[1-9]"
}
