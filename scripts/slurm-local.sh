#!/usr/bin/env bash
# A real single-node SLURM cluster from Debian's packages, for testing `make slurm-sweep` here:
#   scripts/slurm-local.sh start   install slurm-wlm + munge if missing, write a slurm.conf, start daemons
#   scripts/slurm-local.sh stop    stop them
set -euo pipefail
state=${SLURM_LOCAL_DIR:-/tmp/promptrepro-slurm}
host=$(hostname -s)
case "${1:-start}" in
start)
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
  mkdir -p "$state"/{spool,state,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge /etc/munge
  if [ ! -s /etc/munge/munge.key ]; then dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; fi
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || su -s /bin/sh munge -c "munged --force" 2>/dev/null || munged --force
  cpus=$(nproc); mem=$(awk '/MemTotal/ {print int($2/1024) - 1024}' /proc/meminfo)
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=promptrepro
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
ReturnToService=2
SlurmdSpoolDir=$state/spool
StateSaveLocation=$state/state
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  pgrep -x slurmctld >/dev/null || slurmctld -c
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 1 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed|alloc"; then echo "slurm-local: $(sinfo -h -o '%P %D %T')"; exit 0; fi
    scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  echo "slurm-local: the node did not come up; logs in $state/log" >&2; exit 1 ;;
stop)
  pkill -x slurmd || true; pkill -x slurmctld || true; echo "slurm-local: stopped" ;;
esac
