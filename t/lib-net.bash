# t/lib-net.bash: hosts for the tests of computations on several hosts
# (08xx), loaded after lib (load lib-net).  Root only: making the hosts
# needs privilege, what runs on them need not.
#
# A host hI is a network namespace of this run's (ckpt-PID-RANDOM-hI) on
# a bridge that lives in a namespace of its own (ckpt-...-br), address
# $NET_PREFIX.I/24, lo up; and a mount and UTS namespace in which
# `hostname` says hI and /etc/passwd and /etc/shadow are this run's copies
# (ckpt-test with a shell and a home, no account locked: sshd without PAM
# refuses a locked one), where a real sshd listens with its own host key
# and config.  Nothing is done in the namespaces the test was started in.
# shellcheck shell=bash
# shellcheck disable=SC2154 # BATS_* are set by bats

NET_PREFIX=10.253.0
NET_USER=ckpt-test

# net_hosts N: hosts h1..hN, each with its sshd listening; in the
# environment (exported, for the tests of the file): NET_DIR (this run's
# directory, /tmp/ckpt-net.*), NET_SSH_CONFIG (ssh -F's file: `ssh -F
# "$NET_SSH_CONFIG" h2 CMD` logs in with no prompt, as root or as
# ckpt-test, whoever runs ssh), NET_TAG, NET_HOSTS (N), NET_SECONDS (how
# long it took).  Skips, saying why, where namespaces cannot be made.
net_hosts() {
	local n=$1 i t0 ns uid err
	t0=$EPOCHREALTIME
	[ "$(id -u)" -eq 0 ] || skip "hosts are network namespaces: only root makes them"
	[ -x /usr/sbin/sshd ] || skip "no /usr/sbin/sshd (openssh-server)"
	uid=$(id -u "$NET_USER") || skip "no user $NET_USER (t/run-tests makes it)"
	NET_TAG=ckpt-$$-$RANDOM
	NET_HOSTS=$n
	NET_DIR=$(mktemp -d /tmp/ckpt-net.XXXXXX)
	NET_SSH_CONFIG=$NET_DIR/ssh_config
	export NET_TAG NET_HOSTS NET_DIR NET_SSH_CONFIG
	chmod 755 "$NET_DIR"
	if ! err=$(ip netns add "$NET_TAG-br" 2>&1); then
		rm -rf "$NET_DIR"
		skip "cannot make a network namespace: $err"
	fi
	# sshd's privilege separation directory, as its service makes it.
	[ -d /run/sshd ] || mkdir -m 0755 /run/sshd
	net_keys "$n" &
	ip -n "$NET_TAG-br" link add br0 type bridge
	ip -n "$NET_TAG-br" link set br0 up
	for ((i = 1; i <= n; i++)); do
		ns=$NET_TAG-h$i
		ip netns add "$ns"
		ip -n "$NET_TAG-br" link add "v$i" type veth peer name eth0 netns "$ns"
		ip -n "$NET_TAG-br" link set "v$i" master br0 up
		ip -n "$ns" addr add "$NET_PREFIX.$i/24" dev eth0
		ip -n "$ns" link set eth0 up
		ip -n "$ns" link set lo up
	done
	wait $! || return 1
	net_users "$uid"
	for ((i = 1; i <= n; i++)); do
		net_sshd "$i"
	done
	for ((i = 1; i <= n; i++)); do
		wait_for_file "$NET_DIR/h$i/sshd.pid"
	done
	NET_SECONDS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
	export NET_SECONDS
}

# net_keys N: the host keys of h1..hN, the users' keys, and what ssh
# needs to trust them: known_hosts and the ssh config.
net_keys() {
	local n=$1 i u
	for ((i = 1; i <= n; i++)); do
		mkdir "$NET_DIR/h$i"
		ssh-keygen -q -t ed25519 -N '' -C "h$i" -f "$NET_DIR/h$i/host_key" &
	done
	for u in root "$NET_USER"; do
		ssh-keygen -q -t ed25519 -N '' -C "$u" -f "$NET_DIR/id_$u" &
	done
	wait
	mkdir -m 755 "$NET_DIR/auth"
	cat "$NET_DIR/id_root.pub" >"$NET_DIR/auth/root"
	# Root may log in as ckpt-test too (ssh ckpt-test@h2).
	cat "$NET_DIR/id_$NET_USER.pub" "$NET_DIR/id_root.pub" >"$NET_DIR/auth/$NET_USER"
	chmod 644 "$NET_DIR/auth/"*
	chown "$NET_USER" "$NET_DIR/id_$NET_USER" "$NET_DIR/id_$NET_USER.pub"
	for ((i = 1; i <= n; i++)); do
		echo "h$i,$NET_PREFIX.$i $(cut -d' ' -f1,2 "$NET_DIR/h$i/host_key.pub")"
	done >"$NET_DIR/known_hosts"
	{
		for ((i = 1; i <= n; i++)); do
			printf 'Host h%d\n\tHostName %s.%d\n' "$i" "$NET_PREFIX" "$i"
		done
		printf '%s\n' "Host *" \
			"	IdentityFile $NET_DIR/id_%u" \
			"	IdentitiesOnly yes" \
			"	UserKnownHostsFile $NET_DIR/known_hosts" \
			"	GlobalKnownHostsFile /dev/null" \
			"	StrictHostKeyChecking yes" \
			"	CheckHostIP no" \
			"	UpdateHostKeys no" \
			"	BatchMode yes" \
			"	ConnectTimeout 20" \
			"	LogLevel ERROR"
	} >"$NET_SSH_CONFIG"
	chmod 644 "$NET_DIR/known_hosts" "$NET_SSH_CONFIG"
}

# net_users UID: the hosts' /etc/passwd and /etc/shadow: ckpt-test with
# a shell and a home of its own here (its real one is nologin and none),
# and neither it nor root locked.
net_users() {
	mkdir -m 700 "$NET_DIR/home"
	chown "$1" "$NET_DIR/home"
	awk -F: -v OFS=: -v u="$NET_USER" -v home="$NET_DIR/home" \
		'$1 == u { $6 = home; $7 = "/bin/sh" } { print }' /etc/passwd >"$NET_DIR/passwd"
	awk -F: -v OFS=: -v u="$NET_USER" \
		'$1 == u || $1 == "root" { $2 = "*" } { print }' /etc/shadow >"$NET_DIR/shadow"
	chmod 644 "$NET_DIR/passwd"
	chmod 600 "$NET_DIR/shadow"
}

# net_sshd I: host hI's sshd, in the background (sshd -D: the pid that
# $! gives is sshd's; it writes its PidFile once it listens).
net_sshd() {
	local i=$1 d=$NET_DIR/h$1
	printf '%s\n' "ListenAddress $NET_PREFIX.$i:22" \
		"HostKey $d/host_key" \
		"PidFile $d/sshd.pid" \
		"AuthorizedKeysFile $NET_DIR/auth/%u" \
		"StrictModes no" \
		"UsePAM no" \
		"PasswordAuthentication no" \
		"KbdInteractiveAuthentication no" \
		"PermitRootLogin prohibit-password" \
		"AllowUsers root $NET_USER" \
		"PrintMotd no" \
		"PrintLastLog no" \
		"UseDNS no" \
		"X11Forwarding no" \
		"MaxStartups 100" \
		"MaxSessions 100" \
		"LogLevel VERBOSE" >"$d/sshd_config"
	# shellcheck disable=SC2016 # the inner shell expands them
	ip netns exec "$NET_TAG-h$i" unshare --mount --uts -- /bin/sh -c \
		'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/shadow && hostname "$3" &&
		exec /usr/sbin/sshd -D -f "$4" -E "$5"' \
		sh "$NET_DIR/passwd" "$NET_DIR/shadow" "h$i" "$d/sshd_config" "$d/sshd.log" \
		</dev/null >/dev/null 2>"$d/sshd.err" &
}

# net_on HOST [--as USER] CMD...: run CMD on HOST (its network, mount and
# UTS namespaces: those of its sshd), in this directory, as root or as
# USER (with HOME and TMPDIR its home here).
net_on() {
	local host=$1 pid
	shift
	pid=$(cat "$NET_DIR/$host/sshd.pid")
	if [ "${1:-}" = --as ]; then
		local user=$2
		shift 2
		set -- setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups \
			env HOME="$NET_DIR/home" TMPDIR="$NET_DIR/home" "$@"
	fi
	nsenter -t "$pid" -m -u -n --wd="$PWD" -- "$@"
}

# net_ssh HOST [--as USER] TARGET CMD...: ssh from HOST to TARGET, run by
# USER (root if none), as ssh -F "$NET_SSH_CONFIG" does it.
net_ssh() {
	local host=$1
	shift
	if [ "${1:-}" = --as ]; then
		net_on "$host" "$1" "$2" ssh -F "$NET_SSH_CONFIG" "${@:3}"
	else
		net_on "$host" ssh -F "$NET_SSH_CONFIG" "$@"
	fi
}

# net_procs: the pids of every process in a namespace of this run's.
net_procs() {
	local ns p inos=" "
	for ns in /run/netns/"$NET_TAG"-*; do
		[ -e "$ns" ] && inos+="$(stat -L -c %i "$ns") "
	done
	for p in /proc/[0-9]*; do
		[[ $inos == *" $(stat -L -c %i "$p/ns/net" 2>/dev/null) "* ]] && echo "${p#/proc/}"
	done
	return 0
}

# net_end_test: a test's end: every process it started on the hosts
# (coordinators, members, their helpers, ssh sessions) killed, the sshds
# kept for the next test; then what it started here (kill_started).
net_end_test() {
	local p keep=" " try pids
	for p in "$NET_DIR"/h*/sshd.pid; do
		keep+="$(cat "$p") "
	done
	for ((try = 0; try < 200; try++)); do
		pids=()
		for p in $(net_procs); do
			[[ $keep == *" $p "* ]] || pids+=("$p")
		done
		[ ${#pids[@]} -gt 0 ] || break
		kill -KILL "${pids[@]}" 2>/dev/null || true
		sleep 0.01
	done
	kill_started
}

# no_bats_fds: this (sub)shell closes every fd but 0, 1, 2: no fd of
# bats' for a member to hold (root's pipes, which it may not read).
no_bats_fds() {
	local fd
	for fd in "/proc/$BASHPID/fd/"*; do
		fd=${fd##*/}
		[ "$fd" -le 2 ] || eval "exec $fd>&-"
	done
}

# as_user CMD...: CMD as ckpt-test, here (not on a host).
as_user() {
	setpriv --reuid="$NET_USER" --regid="$(id -g "$NET_USER")" --init-groups "$@"
}

# net_cleanup: kill every process on the hosts (sshd, sessions, what the
# test started there: all of it is this run's), delete the namespaces and
# NET_DIR.  For teardown_file: it runs whatever failed.
net_cleanup() {
	local ns try pids
	[ -n "${NET_TAG:-}" ] || return 0
	# Killed processes' children (a helper forking) may start meanwhile:
	# again until none is left (zombies, reaped by their parents, go too).
	for ((try = 0; try < 200; try++)); do
		pids=$(net_procs)
		[ -n "$pids" ] || break
		# shellcheck disable=SC2086 # a list of pids
		kill -KILL $pids 2>/dev/null || true
		sleep 0.01
	done
	for ns in /run/netns/"$NET_TAG"-*; do
		[ -e "$ns" ] && ip netns del "${ns##*/}"
	done
	rm -rf "$NET_DIR"
	NET_TAG=
}

# net_coord HOST DIR: a coordinator on HOST run by $NET_USER, listening on
# HOST's address with the secret DIR/secret (made if missing), its
# generations in DIR/ck: $CH its address, $CP its port.
net_coord() {
	local dir=$2
	CH=$NET_PREFIX.${1#h}
	# shellcheck disable=SC2016 # expanded by that shell
	[ -f "$dir/secret" ] || net_on "$1" --as "$NET_USER" sh -c \
		'umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" >"$1"' sh "$dir/secret"
	net_on "$1" --as "$NET_USER" ckpt-coord --bind "$CH" --port 0 --port-file "$dir/port" \
		--secret-file "$dir/secret" --dir "$dir/ck" --log "$dir/coord.log" \
		</dev/null >/dev/null 2>&1 &
	CKPT_PIDS+=("$!")
	NET_COORD_DIR=$dir
	wait_for_file "$dir/port"
	CP=$(cat "$dir/port")
}

# net_signal ARG...: ckpt-signal ARG... to the coordinator at $CH:$CP, from
# h1 as $NET_USER.
net_signal() {
	net_on h1 --as "$NET_USER" ckpt-signal --coord-host "$CH" --coord-port "$CP" \
		--secret-file "$NET_COORD_DIR/secret" "$@"
}

# net_members N: that coordinator has N members (for wait_for).
net_members() {
	[ "$(net_signal --status | sed -n 's/^members: //p')" = "$1" ]
}
