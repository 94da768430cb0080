#!/usr/bin/env bash
# A real single-node SLURM on this machine for `make test-cluster` (Debian 12 / Ubuntu, as root):
# munged, MariaDB + slurmdbd (accounting: sacct is how submitit and the Snakemake plugin see job
# states), slurmctld and slurmd on localhost, one partition `debug` with this machine's real CPU
# count and memory (select/cons_tres, CR_Core_Memory: jobs are placed by cores and memory as on
# a cluster). Idempotent: installs what is missing, rewrites the configs, (re)starts what is not
# running, and returns when `sinfo` shows the node idle. scripts/slurm-down.sh stops it all.
#
#   LAMM_SLURM_DIR   state, spool and logs (default /var/lib/lamm-slurm)
#   LAMM_SLURM_MEM_RESERVE_MB   memory kept from SLURM for the machine itself (default 1024)
set -euo pipefail

DIR=${LAMM_SLURM_DIR:-/var/lib/lamm-slurm}
RESERVE_MB=${LAMM_SLURM_MEM_RESERVE_MB:-1024}
CLUSTER=lammtest
ACCOUNT=lamm
DB_PASS=lamm-test-only   # a local, throwaway database on 127.0.0.1

if [ "$(id -u)" != 0 ]; then
  echo "slurm-up.sh: run as root (it installs packages and starts daemons)" >&2
  exit 1
fi

log() { echo "slurm-up: $*" >&2; }

packages=(slurmctld slurmd slurmdbd slurm-client munge mariadb-server)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - RESERVE_MB ))
mkdir -p "$DIR"/{ctld,d,log} /etc/slurm /run/slurm
chown -R slurm:slurm "$DIR" /run/slurm

running() { pgrep -x "$1" >/dev/null; }

# --- munge ------------------------------------------------------------------------------------
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! running munged; then
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
fi

# --- MariaDB and slurmdbd ---------------------------------------------------------------------
mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld
if ! running mariadbd; then
  log "starting mariadb"
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  (setsid mariadbd --user=mysql --bind-address=127.0.0.1 >"$DIR/log/mariadb.log" 2>&1 &)
  for _ in $(seq 60); do mariadb -e "select 1" >/dev/null 2>&1 && break; sleep 1; done
fi
mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

cat >/etc/slurm/slurmdbd.conf <<EOF
# written by scripts/slurm-up.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
LogFile=$DIR/log/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
EOF
chown slurm:slurm /etc/slurm/slurmdbd.conf
chmod 0600 /etc/slurm/slurmdbd.conf

cat >/etc/slurm/slurm.conf <<EOF
# written by scripts/slurm-up.sh: one node, one partition, accounting through slurmdbd
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# no cgroups in containers: track processes by parentage, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# requeue (preemption, scontrol requeue) allowed; finished jobs stay visible to squeue for 5 min
JobRequeue=1
MinJobAge=300
KillWait=30
ReturnToService=2
SlurmdTimeout=60
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

if ! running slurmdbd; then
  log "starting slurmdbd"
  slurmdbd
  for _ in $(seq 60); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 1; done
fi
sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description="lamm tests" >/dev/null 2>&1 || true
sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null 2>&1 || true
if [ -n "${SUDO_USER:-}" ]; then
  sacctmgr -i add user "$SUDO_USER" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null 2>&1 || true
fi

if running slurmctld; then
  scontrol reconfigure >/dev/null
else
  log "starting slurmctld"
  slurmctld
fi
if ! running slurmd; then
  log "starting slurmd"
  slurmd
fi

for _ in $(seq 120); do
  state=$(sinfo -h -N -o "%T" 2>/dev/null | head -1 || true)
  case "$state" in
    idle|mixed|allocated) break ;;
    down*|drain*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
  esac
  sleep 1
done
if [ "${state:-}" != idle ] && [ "${state:-}" != mixed ] && [ "${state:-}" != allocated ]; then
  log "the node did not come up (state: ${state:-none}); see $DIR/log/"
  exit 1
fi
log "up: $(sinfo --version), node $HOST: $CPUS CPUs, $MEM_MB MB, partition debug, account $ACCOUNT"
sinfo
