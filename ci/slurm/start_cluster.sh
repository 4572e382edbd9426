#!/usr/bin/env bash
# Bring up a single-node SLURM cluster for tests (Debian bookworm, slurm-wlm 22.05). Run as root.
#
# Partitions `cpu` (default) and `gpu`, as in profiles/slurm. The node is declared with the shape
# of a GPU node (SLURM_TEST_CPUS cores, SLURM_TEST_MEM_MB memory, SLURM_TEST_GPUS GPUs as a
# count-only GRES) and `SlurmdParameters=config_overrides` makes slurmd accept it on a small
# machine, so the profile's real requests (--gpus=1, --cpus-per-gpu=8, --mem 64000) are scheduled
# unchanged. Nothing is enforced (task/none, no cgroups): jobs share the machine's real cores.
# No accounting database: the SLURM executor plugin must poll with `squeue`.
# Idempotent: a second call leaves running daemons alone and waits for the node to be idle.
set -euo pipefail
H=$(hostname -s)
CPUS=${SLURM_TEST_CPUS:-32}
MEM=${SLURM_TEST_MEM_MB:-512000}
GPUS=${SLURM_TEST_GPUS:-4}

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Never take over a real cluster's configuration (the package ships no slurm.conf).
if [ -e /etc/slurm/slurm.conf ] && ! grep -q '^ClusterName=faulttune-test$' /etc/slurm/slurm.conf; then
  echo "start_cluster.sh: /etc/slurm/slurm.conf belongs to another cluster; left alone" >&2
  exit 2
fi

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --force 2>/dev/null ||
      dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  # /run/munge is made by systemd on a normal host; containers have no systemd.
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
  alive /run/munge/munged.pid || su -s /bin/sh munge -c /usr/sbin/munged
  munge -n | unmunge >/dev/null
}

write_config() {
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
  # slurmd counts a GPU GRES by its device files, which must be character devices: links to
  # /dev/null stand in for /dev/nvidia*.
  mkdir -p /var/spool/slurmd/fake-gpus
  for i in $(seq 0 $((GPUS - 1))); do ln -sfn /dev/null "/var/spool/slurmd/fake-gpus/nvidia$i"; done
  cat > /etc/slurm/gres.conf <<CONF
AutoDetect=off
NodeName=${H} Name=gpu File=/var/spool/slurmd/fake-gpus/nvidia[0-$((GPUS - 1))]
CONF
  # MinJobAge must stay >= 3 x the plugin's status interval, or it silently falls back to sacct
  # (which fails without accounting and hangs snakemake); 1800 s also outlives a test (its 1200 s
  # timeout), so a test reads back every job it submitted (SLURM's default, 300 s, did not on a
  # busy machine). DefMemPerCPU stops memory-less jobs
  # from taking the whole node.
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=faulttune-test
SlurmctldHost=${H}
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
GresTypes=gpu
DefMemPerCPU=1000
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=1800
KillWait=5
Waittime=0
NodeName=${H} CPUs=${CPUS} RealMemory=${MEM} Gres=gpu:${GPUS} State=UNKNOWN
PartitionName=cpu Nodes=${H} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=${H} Default=NO MaxTime=INFINITE State=UP
CONF
}

wait_for_idle_node() {
  local state=""
  for _ in $(seq 1 60); do
    state=$(sinfo -h -n "$H" -o %T 2>/dev/null | head -1)
    case "$state" in idle | mixed | allocated) return 0 ;; esac
    sleep 1
  done
  echo "start_cluster.sh: node ${H} is '${state}' after 60 s; see /var/log/slurm/*.log" >&2
  return 1
}

start_munge
alive /run/slurmctld.pid || write_config
# -c: start from a clean state, so that a node drained by an earlier configuration comes back.
alive /run/slurmctld.pid || /usr/sbin/slurmctld -c
alive /run/slurmd.pid || /usr/sbin/slurmd
wait_for_idle_node
sinfo -o '%P %a %D %T %c %m %G'
