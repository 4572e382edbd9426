#!/usr/bin/env bash
# Stop the daemons that ci/slurm/start_cluster.sh started, by their PID files (never by name).
set -uo pipefail
for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "stop_cluster.sh: $pidfile pid $pid still alive" >&2
  else
    echo "stopped $pidfile ($pid)"
  fi
done
