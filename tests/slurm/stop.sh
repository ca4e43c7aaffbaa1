#!/usr/bin/env bash
# Stops the test cluster of tests/slurm/start.sh: its two daemons, by their PID files, waiting
# until each has exited (a restarted daemon must find its port free).
DIR="${1:-/tmp/auxrun-slurm}"
for daemon in slurmd slurmctld; do
  pidfile="$DIR/$daemon.pid"
  [ -f "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  rm -f "$pidfile"
done
exit 0
