#!/usr/bin/env bash
# Stop what scripts/slurm-up.sh started (jobs are cancelled first). State stays in LAMM_SLURM_DIR.
set -uo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "slurm-down.sh: run as root" >&2
  exit 1
fi
command -v scancel >/dev/null && scancel --user="$(id -un)" 2>/dev/null
for pidfile in /run/slurm/slurmd-*.pid /run/slurm/slurmd.pid /run/slurm/slurmctld.pid /run/slurm/slurmdbd.pid; do
  [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
done
sleep 2
if pid=$(pgrep -x mariadbd); then kill "$pid"; fi
if pid=$(pgrep -x munged); then kill "$pid"; fi
echo "slurm-down: stopped" >&2
