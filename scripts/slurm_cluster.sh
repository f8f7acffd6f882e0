#!/usr/bin/env bash
# A real one-node SLURM cluster on this Debian machine, for the launcher tests.
#
#   bash scripts/slurm_cluster.sh up      install what is missing, start what is down, prove it works
#   bash scripts/slurm_cluster.sh status  exit 0 when slurmctld answers and the node accepts jobs
#   bash scripts/slurm_cluster.sh down    stop the daemons this script started (pid files; MariaDB via mysqladmin)
#
# Idempotent: `up` on a running cluster only re-checks it.  Needs root on Debian
# (apt-get); the facts behind every setting are in shared/notes/slurm-local-cluster.md.
# It writes /etc/slurm/{slurm,cgroup,slurmdbd}.conf and refuses to touch a
# slurm.conf it did not write, so it never clobbers a real cluster's config.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
MARKER="# written by efnas scripts/slurm_cluster.sh"
CLUSTER=efnas
PARTITION=debug
HOST=$(hostname -s)
STATE=/var/lib/efnas-slurm          # pid files, daemon logs, controller state
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=efnas-test-only

log() { echo "slurm_cluster: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  local i
  for ((i = 0; i < seconds * 2; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  die "$what did not come up within ${seconds}s (logs in $STATE)"
}

running() {  # running NAME: the daemon whose pid file we wrote is alive
  local pidfile="$STATE/$1.pid"
  [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {  # start NAME COMMAND...: detach a daemon, record its pid
  local name=$1; shift
  log "starting $name"
  setsid "$@" >"$STATE/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian only"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >"$STATE/apt.log" 2>&1 \
    || die "apt-get install ${missing[*]} failed (see $STATE/apt.log)"
}

write_if_changed() {  # write_if_changed PATH MODE < content; returns 0 when it changed
  local path=$1 mode=$2 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then rm -f "$tmp"; return 1; fi
  install -m "$mode" "$tmp" "$path"
  rm -f "$tmp"
  return 0
}

write_configs() {
  local conf=/etc/slurm/slurm.conf cpus mem changed=1
  if [ -f "$conf" ] && ! grep -qF "$MARKER" "$conf"; then
    die "$conf exists and was not written by this script; refusing to overwrite a real cluster config"
  fi
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
  mkdir -p /etc/slurm "$STATE/ctld" "$STATE/spool" /var/log/slurm
  write_if_changed "$conf" 644 <<EOF && changed=0
$MARKER (test cluster; do not edit)
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.internal.pid
SlurmdPidFile=$STATE/slurmd.internal.pid
SlurmctldLogFile=$STATE/slurmctld.daemon.log
SlurmdLogFile=$STATE/slurmd.daemon.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
MinJobAge=600
InactiveLimit=0
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
  write_if_changed /etc/slurm/cgroup.conf 644 <<EOF && changed=0
$MARKER
CgroupPlugin=cgroup/v1
EOF
  write_if_changed /etc/slurm/slurmdbd.conf 600 <<EOF && changed=0
$MARKER
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/slurmdbd.internal.pid
LogFile=$STATE/slurmdbd.daemon.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
  return $changed
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
  [ -s /etc/munge/munge.key ] || die "/etc/munge/munge.key is missing (reinstall the munge package)"
  install -d -o munge -g munge -m 755 /run/munge
  start munged runuser -u munge -- /usr/sbin/munged --foreground
  wait_for 20 munged bash -c 'munge -n | unmunge'
}

start_mariadb() {
  if ! mysqladmin ping >/dev/null 2>&1; then
    install -d -o mysql -g mysql -m 755 /run/mysqld
    start mariadb mysqld_safe --user=mysql
    wait_for 60 MariaDB mysqladmin ping
  fi
  mysql -u root <<EOF
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
EOF
}

stop() {  # stop NAME: end a daemon this script started
  if running "$1"; then
    log "stopping $1"
    kill "$(cat "$STATE/$1.pid")"
    local i
    for ((i = 0; i < 40; i++)); do running "$1" || break; sleep 0.25; done
  fi
  rm -f "$STATE/$1.pid"
}

node_idle() { sinfo -h -N -n "$HOST" -o '%t' | grep -Eq '^(idle|mix|alloc)$'; }  # up and accepting jobs

up() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts system daemons)"
  mkdir -p "$STATE"
  install_packages
  if write_configs; then
    log "config changed: restarting the SLURM daemons"
    stop slurmd; stop slurmctld; stop slurmdbd
  fi
  start_munge
  start_mariadb
  if ! running slurmdbd; then
    start slurmdbd /usr/sbin/slurmdbd -D
  fi
  wait_for 60 slurmdbd sacctmgr -n list cluster
  if ! sacctmgr -n -P list cluster format=Cluster | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
  running slurmctld || start slurmctld /usr/sbin/slurmctld -D
  wait_for 60 slurmctld scontrol ping
  running slurmd || start slurmd /usr/sbin/slurmd -D -N "$HOST"
  if ! node_idle; then
    sleep 1
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
  fi
  wait_for 60 "node $HOST (idle in sinfo)" node_idle
  if sinfo -h -N -n "$HOST" -o '%t' | grep -qx idle; then
    timeout 60 srun -N1 true || die "'srun -N1 true' failed (logs in $STATE)"
    log "up: node $HOST idle in partition $PARTITION; 'srun -N1 true' works"
  else
    log "up: node $HOST is running jobs (so it works); skipped the 'srun -N1 true' probe"
  fi
}

case "${1:-up}" in
  up) up ;;
  status) node_idle && scontrol ping >/dev/null ;;
  down)
    stop slurmd; stop slurmctld; stop slurmdbd
    if running mariadb; then mysqladmin shutdown >/dev/null 2>&1 || log "mysqladmin shutdown failed"; stop mariadb; fi
    stop munged ;;
  *) die "usage: $0 [up|status|down]" ;;
esac
