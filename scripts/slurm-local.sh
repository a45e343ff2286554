#!/usr/bin/env bash
# A single-node Slurm on this machine, from Debian's packages (slurm-wlm, munge), for the Slurm test
# and for trying examples/slurm/ by hand. No systemd: the daemons are started directly, with cgroups,
# accounting and the database off.
#
#   bash scripts/slurm-local.sh [start]   install what is missing (root + apt-get), start munged,
#                                         slurmctld and slurmd, wait until the node is idle; prints
#                                         the line `export SLURM_CONF=...` that clients need
#   bash scripts/slurm-local.sh stop      stop the daemons this script started, by their pid files
#   bash scripts/slurm-local.sh status    exit 0 when this script's Slurm answers
#
# Everything lives in $NEUROPRUNE_SLURM_DIR (default /tmp/neuroprune-slurm): slurm.conf, state, spool,
# logs and pid files; `stop` removes it (NEUROPRUNE_SLURM_KEEP=1 keeps it, logs included). Ports: $NEUROPRUNE_SLURM_PORT (slurmctld, default 6817) and the next one
# (slurmd). NEUROPRUNE_SLURM_INSTALL=0 never installs packages (the test sets it: CI installs them).
# Exit codes: 0 started (or was already running), 77 Slurm cannot start here (the reason is printed
# on stderr, with the end of the daemon's log), 1 a usage error.
set -uo pipefail

DIR=${NEUROPRUNE_SLURM_DIR:-/tmp/neuroprune-slurm}
PORT=${NEUROPRUNE_SLURM_PORT:-6817}
CONF=$DIR/slurm.conf
# How long to wait for the node to come up, in seconds.
WAIT=${NEUROPRUNE_SLURM_WAIT:-60}
MUNGE_SOCKET=/run/munge/munge.socket.2

say() { echo "[slurm-local] $*" >&2; }
# Prints the reason and exits 77, the "skipped" code that CI and the tests read.
cannot() {
  say "Slurm cannot start here: $*"
  exit 77
}
is_root() { [ "$(id -u)" = 0 ]; }
pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { [ -f "$1" ] && cat "$1" 2>/dev/null; }

# Ends one daemon by the pid in its pid file (only that pid, and only when that pid is still the
# daemon: a stale file may name a reused pid), waiting up to 10 s, then SIGKILL.
stop_pid_file() {
  local file=$1 name=$2 pid i
  pid=$(pid_of "$file") || return 0
  if pid_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 50); do pid_alive "$pid" || break; sleep 0.2; done
    pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$file"
}

stop() {
  stop_pid_file "$DIR/slurmd.pid" slurmd
  stop_pid_file "$DIR/slurmctld.pid" slurmctld
  # munged only when this script started it (another Slurm or service may share the system's one).
  [ -f "$DIR/munged.ours" ] && stop_pid_file "$DIR/munged.pid" munged
  rm -f "$DIR/munged.ours"
}

answers() { [ -f "$CONF" ] && SLURM_CONF=$CONF timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'; }

# The node's state in sinfo's short form (idle, mix, alloc, unk, down, drain, ...), "" if unknown.
node_state() { SLURM_CONF=$CONF timeout 10 sinfo -h -N -o '%t' 2>/dev/null | head -n 1 | tr -d '*~#!%$@^-'; }

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null && return 0
  [ "${NEUROPRUNE_SLURM_INSTALL:-1}" = 0 ] && cannot "slurm-wlm and munge are not installed (bash scripts/slurm-local.sh installs them as root; so does .ci/run)"
  is_root || cannot "slurm-wlm and munge are not installed, and installing them needs root (apt-get install slurm-wlm munge)"
  command -v apt-get >/dev/null || cannot "slurm-wlm and munge are not installed and there is no apt-get"
  say "installing slurm-wlm and munge with apt-get (one time, about a minute)"
  (timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends slurm-wlm munge) >"$DIR/apt.log" 2>&1 ||
    cannot "apt-get install slurm-wlm munge failed: $(tail -n 3 "$DIR/apt.log" | tr '\n' ' ')"
}

# munged: the system's when it already answers, else one started here as the munge user.
start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
  is_root || cannot "munged is not running and starting it needs root"
  if [ ! -s /etc/munge/munge.key ]; then
    say "creating the munge key /etc/munge/munge.key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key >/dev/null 2>&1 || cannot "mungekey failed"
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; fi
  fi
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  local user=root
  if id munge >/dev/null 2>&1; then
    user=munge
    chown munge:munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
    chmod 0400 /etc/munge/munge.key
    chmod 0755 /run/munge
  fi
  say "starting munged as $user"
  local args=(--pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log")
  touch "$DIR/munged.log"; chown "$user" "$DIR/munged.log" "$DIR"
  if [ "$user" = munge ]; then
    runuser -u munge -- munged "${args[@]}" >"$DIR/munged.out" 2>&1 ||
      cannot "munged did not start: $(tail -n 3 "$DIR/munged.out" "$DIR/munged.log" 2>/dev/null | tr '\n' ' ')"
  else
    munged --force "${args[@]}" >"$DIR/munged.out" 2>&1 ||
      cannot "munged did not start: $(tail -n 3 "$DIR/munged.out" "$DIR/munged.log" 2>/dev/null | tr '\n' ' ')"
  fi
  touch "$DIR/munged.ours"
  local i
  for i in $(seq 1 25); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.2; done
  cannot "munged started but munge -n | unmunge fails: $(tail -n 3 "$DIR/munged.log" | tr '\n' ' ')"
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  # A modest RealMemory: jobs are not limited by memory (CR_Core), and the node must not be drained
  # for having less memory than configured.
  mem=$(awk '/MemTotal/ { m = int($2 / 1024 / 2); print (m > 1024 ? 1024 : m) }' /proc/meminfo)
  mkdir -p "$DIR/state" "$DIR/spool"
  cat >"$CONF" <<EOF
# Written by scripts/slurm-local.sh: a single-node Slurm on localhost, no cgroups, no accounting.
ClusterName=neuroprune
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups (containers rarely delegate them): processes are tracked through /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# A node that was down comes back by itself when its slurmd registers.
ReturnToService=2
# Short timeouts: the node is local, and a test should not wait minutes for a lost job.
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  # slurmd reads cgroup.conf beside slurm.conf only for cgroup plugins; an empty one keeps it quiet.
  : >"$DIR/cgroup.conf"
}

start() {
  if answers && [ -n "$(node_state)" ]; then
    say "already running ($CONF)"
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  mkdir -p "$DIR" || cannot "cannot create $DIR"
  install_packages
  is_root || cannot "slurmd runs jobs as other users and must start as root; run this script as root"
  # Leftovers of an earlier run of this script (killed before `stop`) go first.
  stop 2>/dev/null
  start_munge
  write_conf
  export SLURM_CONF=$CONF
  say "starting slurmctld and slurmd ($CONF)"
  # -c: a fresh controller state (no jobs left from an earlier run); both fork into the background.
  slurmctld -c -f "$CONF" >"$DIR/slurmctld.out" 2>&1 ||
    { stop; cannot "slurmctld did not start: $(tail -n 5 "$DIR/slurmctld.out" "$DIR/slurmctld.log" 2>/dev/null | tr '\n' ' ')"; }
  slurmd -f "$CONF" >"$DIR/slurmd.out" 2>&1 ||
    { stop; cannot "slurmd did not start: $(tail -n 5 "$DIR/slurmd.out" "$DIR/slurmd.log" 2>/dev/null | tr '\n' ' ')"; }

  local deadline=$((SECONDS + WAIT)) state="" resumed=0
  while [ $SECONDS -lt $deadline ]; do
    state=$(node_state)
    case "$state" in
      idle | mix | alloc)
        say "the node $(hostname -s) is $state"
        echo "export SLURM_CONF=$CONF"
        return 0 ;;
      drain | drng | down)
        # A node remembered as down (or drained for a mismatch Slurm tolerates) is put back once.
        if [ $resumed = 0 ]; then scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1; resumed=1; fi ;;
    esac
    sleep 1
  done
  local reason
  reason=$(timeout 10 sinfo -h -N -o '%t %E' 2>/dev/null | head -n 1)
  say "last lines of slurmctld.log:"; tail -n 8 "$DIR/slurmctld.log" >&2 2>/dev/null
  say "last lines of slurmd.log:"; tail -n 8 "$DIR/slurmd.log" >&2 2>/dev/null
  stop
  cannot "the node did not become idle within $WAIT s (state: ${reason:-no answer from slurmctld})"
}

case "${1:-start}" in
  start) start ;;
  # The daemons gone, so goes their folder (config, state, logs), unless asked to keep the logs.
  stop) stop; [ "${NEUROPRUNE_SLURM_KEEP:-0}" = 1 ] || rm -rf "$DIR" ;;
  status) answers ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 1 ;;
esac
