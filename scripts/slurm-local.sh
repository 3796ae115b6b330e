#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for tests and trials:  scripts/slurm-local.sh start|stop|status
# Debian's slurm-wlm and munge are installed with apt-get when absent. Everything else lives in the state folder
# ($SLURM_LOCAL_DIR, default /tmp/slurm-local): slurm.conf, munge key and socket, spools, logs and the daemons'
# pid files. Clients find the cluster through SLURM_CONF=<state>/slurm.conf (printed by start and status).
# start is idempotent; stop ends only the daemons this script started (by their recorded pids) and their jobs.
# Runs as root, without stdin (CI); no systemd, cgroups or accounting daemon.
set -euo pipefail

STATE="${SLURM_LOCAL_DIR:-/tmp/slurm-local}"
CONF="$STATE/slurm.conf"
WAIT_S="${SLURM_LOCAL_WAIT_S:-60}"
DAEMONS=(munged slurmctld slurmd)  # started in this order, stopped in reverse
export SLURM_CONF="$CONF"

die() {  # a failed start also ends whatever it had started, and quotes the daemons' last fatal error
    local last
    last="$(grep -hE 'fatal:|error:' "$STATE"/log/*.log 2>/dev/null | tail -n 1)"
    echo "slurm-local: $*${STARTING:+${last:+ (last daemon error: $last)}}" >&2
    [[ -z "${STARTING:-}" ]] || stop_daemons >/dev/null 2>&1
    exit 1
}
pidfile() { echo "$STATE/run/$1.pid"; }

running() {  # running NAME: its recorded pid is alive (not a zombie) and still that program (not a reused pid)
    local pid
    pid="$(cat "$(pidfile "$1")" 2>/dev/null)" || return 1
    [[ -n "$pid" && "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$1" ]] && ! grep -q '^State:.*zombie' "/proc/$pid/status"
}

install_packages() {
    local missing=0 tool guard=""
    for tool in munged slurmctld slurmd sinfo srun scontrol; do command -v "$tool" >/dev/null || missing=1; done
    ((missing)) || return 0
    [[ "$(id -u)" == 0 ]] || die "Slurm is not installed and installing it needs root: apt-get install slurm-wlm munge"
    echo "slurm-local: installing slurm-wlm and munge with apt-get"
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then  # keep apt from starting the system's own daemons
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && guard=1
    fi
    local rc=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurm-wlm munge; } </dev/null >"$STATE/apt.log" 2>&1 || rc=$?
    [[ -z "$guard" ]] || rm -f /usr/sbin/policy-rc.d
    ((rc == 0)) || die "apt-get install slurm-wlm munge failed (exit $rc): $(tail -n 1 "$STATE/apt.log")" \
        "(whole log: $STATE/apt.log)"
}

write_config() {
    local host cpus mem
    host="$(hostname -s)"
    cpus="$(nproc)"
    mem="$(free -m | awk '/^Mem:/ {print $2}')"
    mkdir -p "$STATE"/{munge,ctld,spool,log,run}
    chmod 700 "$STATE/munge"
    [[ -s "$STATE/munge/munge.key" ]] || { head -c 1024 /dev/urandom > "$STATE/munge/munge.key"; }
    chmod 400 "$STATE/munge/munge.key"
    cat > "$CONF.tmp" <<EOF
# Written by scripts/slurm-local.sh: a one-node cluster on $host ($cpus CPUs, $mem MB).
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$(pidfile slurmctld)
SlurmdPidFile=$(pidfile slurmd)
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ReturnToService=2
# Fast ends: SIGKILL 2 s after SIGTERM, no grace beyond a job's time limit; finished jobs stay readable 10 min.
KillWait=2
OverTimeLimit=0
MinJobAge=600
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

node_state() { sinfo -h -N -o '%t' 2>/dev/null | head -n 1; }

wait_idle() {
    local deadline=$((SECONDS + WAIT_S)) state=""
    while ((SECONDS < deadline)); do
        state="$(node_state)"
        [[ "$state" == idle || "$state" == mix || "$state" == alloc ]] && return 0
        sleep 0.5
    done
    die "the node is not idle after ${WAIT_S} s (sinfo: '${state:-no answer}' $(sinfo -h -R 2>/dev/null | head -1));" \
        "see $STATE/log/slurmctld.log and $STATE/log/slurmd.log"
}

start_daemon() {
    case "$1" in
        munged) munged --force --socket="$STATE/munge/munge.socket" --key-file="$STATE/munge/munge.key" \
                    --pid-file="$(pidfile munged)" --log-file="$STATE/log/munged.log" \
                    --seed-file="$STATE/munge/munged.seed" ;;
        slurmctld) slurmctld -c -f "$CONF" ;;  # -c: no jobs or node states from an earlier life
        slurmd) slurmd -f "$CONF" ;;
    esac </dev/null >>"$STATE/log/start.log" 2>&1 9>&- ||  # the daemons must not hold the script's lock
        die "$1 did not start; see $STATE/log/start.log and $STATE/log/$1.log"
    local deadline=$((SECONDS + 10))
    until running "$1"; do
        ((SECONDS < deadline)) || die "$1 wrote no live pid to $(pidfile "$1"); see $STATE/log/$1.log"
        sleep 0.2
    done
}

stop_daemons() {
    local name pid i
    if running slurmctld; then  # the jobs of this private cluster end with it
        squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
    fi
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        name="${DAEMONS[i]}"
        if running "$name"; then
            pid="$(cat "$(pidfile "$name")")"
            kill -TERM "$pid"
            for _ in $(seq 50); do running "$name" || break; sleep 0.2; done
            ! running "$name" || kill -KILL "$pid"
            echo "slurm-local: stopped $name (pid $pid)"
        fi
        rm -f "$(pidfile "$name")"
    done
}

status() {
    local name all=0
    for name in "${DAEMONS[@]}"; do
        if running "$name"; then echo "$name: running (pid $(cat "$(pidfile "$name")"))"
        else echo "$name: stopped"; all=1; fi
    done
    ((all == 0)) && echo "node: $(node_state)" && echo "export SLURM_CONF=$CONF"
    return "$all"
}

start() {
    local name log
    if running munged && running slurmctld && running slurmd; then
        wait_idle
        echo "slurm-local: already running; export SLURM_CONF=$CONF"
        return 0
    fi
    stop_daemons >/dev/null  # a half-started cluster from before: begin again
    install_packages
    write_config
    for log in "$STATE"/log/*.log; do : >"$log"; done  # a fresh start's errors only
    STARTING=1
    for name in "${DAEMONS[@]}"; do start_daemon "$name"; done
    wait_idle
    echo "slurm-local: node $(hostname -s) $(node_state) in partition debug; export SLURM_CONF=$CONF"
}

mkdir -p "$STATE"
exec 9>"$STATE/.lock"
flock -w 120 9 || die "another slurm-local.sh holds $STATE/.lock"
case "${1:-}" in
    start) start ;;
    stop) stop_daemons ;;
    status) status ;;
    *) die "usage: scripts/slurm-local.sh start|stop|status (state folder: $STATE)" ;;
esac
