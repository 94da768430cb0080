#!/usr/bin/env bash
# A real SLURM on this machine for `make test-cluster` (Debian 12 / Ubuntu, as root): munged,
# MariaDB + slurmdbd (accounting: sacct is how submitit and the Snakemake plugin see job states),
# slurmctld, and two compute nodes n1 and n2 emulated on this one host: two slurmd daemons
# (`slurmd -N n1`, `slurmd -N n2`, on ports 17001 and 17002; Debian's slurm-wlm is built with
# MULTIPLE_SLURMD). The node names resolve through /etc/hosts to this host's first non-loopback
# address, as a cluster's node names resolve to addresses the other nodes can reach: a 2-node job
# then runs one task under each slurmd and its ranks meet over that address. One partition
# `debug` holds both; each node has this machine's CPU count and half its memory
# (select/cons_tres, CR_Core_Memory: jobs are placed by cores and memory as on a cluster).
# Idempotent: installs what is missing, rewrites the configs, (re)starts what is not running,
# and returns when `sinfo` shows both nodes idle. scripts/slurm-down.sh stops it all.
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
NODES=(n1 n2)
NODE_MEM_MB=$(( ($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - RESERVE_MB) / ${#NODES[@]} ))
mkdir -p "$DIR"/{ctld,log} /etc/slurm /run/slurm
for node in "${NODES[@]}"; do mkdir -p "$DIR/d/$node"; done
chown -R slurm:slurm "$DIR" /run/slurm

# --- node names -------------------------------------------------------------------------------
# this host's first non-loopback IPv4 address (loopback only when it has none)
ADDR=$(ip -4 -o addr show scope global 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}')
[ -n "$ADDR" ] || ADDR=$(hostname -I 2>/dev/null | awk '{print $1}')
ADDR=${ADDR:-127.0.0.1}
hosts_line="$ADDR ${NODES[*]}  # lamm-slurm: emulated nodes"
if ! grep -qxF "$hosts_line" /etc/hosts; then
  # rewrite in place (the file may be a bind mount): drop our old line, add the current one
  kept=$(grep -v "# lamm-slurm" /etc/hosts || true)
  printf '%s\n%s\n' "$kept" "$hosts_line" >/etc/hosts
fi
for node in "${NODES[@]}"; do
  getent hosts "$node" >/dev/null || { log "$node does not resolve; see /etc/hosts"; exit 1; }
done

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
# written by scripts/slurm-up.sh: two nodes on one host, one partition, accounting via slurmdbd
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$DIR/ctld
# one slurmd per emulated node: %n is its node name
SlurmdSpoolDir=$DIR/d/%n
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
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
NodeName=n1 NodeHostname=$HOST NodeAddr=$ADDR Port=17001 CPUs=$CPUS RealMemory=$NODE_MEM_MB State=UNKNOWN
NodeName=n2 NodeHostname=$HOST NodeAddr=$ADDR Port=17002 CPUs=$CPUS RealMemory=$NODE_MEM_MB State=UNKNOWN
# the partition default memory a cluster sets: a job that asks for none gets 2 GB per CPU
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE DefMemPerCPU=2048 State=UP
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
# a single-node setup of an earlier slurm-up.sh: its slurmd has no node of that name any more
if [ -s /run/slurm/slurmd.pid ] && kill -0 "$(cat /run/slurm/slurmd.pid)" 2>/dev/null; then
  kill "$(cat /run/slurm/slurmd.pid)"
fi
for node in "${NODES[@]}"; do
  pidfile=/run/slurm/slurmd-$node.pid
  if ! { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }; then
    log "starting slurmd -N $node"
    slurmd -N "$node"
  fi
done

up() { case "$1" in idle|mixed|allocated) return 0 ;; *) return 1 ;; esac; }
for _ in $(seq 120); do
  ready=0
  for node in "${NODES[@]}"; do
    state=$(sinfo -h -n "$node" -N -o "%T" 2>/dev/null | head -1 || true)
    case "$state" in
      down*|drain*) scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true ;;
    esac
    up "$state" && ready=$((ready + 1))
  done
  [ "$ready" = "${#NODES[@]}" ] && break
  sleep 1
done
if [ "$ready" != "${#NODES[@]}" ]; then
  log "the nodes did not come up: $(sinfo -h -N -o '%N %T' | tr '\n' ' '); see $DIR/log/"
  exit 1
fi
log "up: $(sinfo --version), nodes ${NODES[*]} on $HOST ($ADDR): $CPUS CPUs and $NODE_MEM_MB MB each, partition debug, account $ACCOUNT"
sinfo -N -o "%N %P %T %c %m"
