#!/usr/bin/env bash
# Install the single-node SLURM test cluster's packages (Debian: slurm-wlm + munge). Run as root.
# Idempotent: returns at once when the daemons and client commands are already there.
set -euo pipefail

needed=(/usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/munged sinfo squeue sbatch munge)
missing=0
for cmd in "${needed[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing=1
done
if [ "$missing" = 0 ]; then
  echo "slurm-wlm and munge already installed"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "ci/slurm/install.sh: needs root to apt-get install slurm-wlm munge" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The postinst scripts create the munge/slurm users and /etc/munge/munge.key. On a box without
# systemd they print "invoke-rc.d: policy-rc.d denied execution of start", which is harmless:
# ci/slurm/start_cluster.sh starts the daemons itself.
apt-get install -y -qq slurm-wlm munge >/dev/null
echo "installed: $(dpkg-query -W -f='${Package} ${Version}\n' slurm-wlm munge | tr '\n' ' ')"
