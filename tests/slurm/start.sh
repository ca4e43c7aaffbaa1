#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for `make test-slurm`: slurmctld and slurmd on
# localhost, one partition `gpu` (the name the docs' commands use) holding the node. The node
# declares the resources the shipped launcher config asks for (8 CPUs, 64 GB, one GPU) whatever
# the machine has (SlurmdParameters=config_overrides; the GPUs are empty files, never opened), so the docs'
# sweep runs as printed; the jobs then share the real cores. Authentication is off
# (auth/none): a throwaway test cluster, reachable from this machine only.
#
#   tests/slurm/start.sh [DIR]    # DIR (default /tmp/auxrun-slurm) holds slurm.conf, state, logs
#   export SLURM_CONF=DIR/slurm.conf
#   tests/slurm/stop.sh [DIR]
#
# Installs Debian's slurm-wlm first when slurmctld is missing (needs root and the package
# mirror). Exits non-zero, saying why, when the cluster does not come up.
set -euo pipefail
DIR="${1:-/tmp/auxrun-slurm}"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "slurmctld/slurmd are missing: install Debian's slurm-wlm (apt-get install slurm-wlm) as root" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm >/dev/null
fi
if [ "$(id -u)" != 0 ]; then
  echo "the test cluster runs slurmd as root (it starts jobs as their users): run this as root" >&2
  exit 1
fi
"$(dirname "$0")/stop.sh" "$DIR" 2>/dev/null || true
rm -rf "$DIR"/state "$DIR"/spool  # a fresh cluster: no queue or node state from an earlier start
mkdir -p "$DIR"/{state,spool,log}
HOST="$(hostname -s)"
cat > "$DIR/slurm.conf" <<CONF
ClusterName=auxrun-test
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=${AUXRUN_SLURMCTLD_PORT:-6817}
SlurmdPort=${AUXRUN_SLURMD_PORT:-6818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
GresTypes=gpu
ReturnToService=2
KillWait=30
JobRequeue=1
NodeName=$HOST CPUs=64 RealMemory=512000 Gres=gpu:8 State=UNKNOWN
PartitionName=gpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
mkdir -p "$DIR/dev" && touch "$DIR"/dev/gpu{0..7}  # stand-ins for device files: no GPU is used
cat > "$DIR/gres.conf" <<CONF
NodeName=$HOST Name=gpu File=$DIR/dev/gpu[0-7]
CONF
export SLURM_CONF="$DIR/slurm.conf"
slurmctld -f "$SLURM_CONF" || { echo "slurmctld did not start: $(tail -n 1 "$DIR/log/slurmctld.log")" >&2; exit 1; }
slurmd -f "$SLURM_CONF" || { echo "slurmd did not start: $(tail -n 1 "$DIR/log/slurmd.log")" >&2; exit 1; }
for _ in $(seq 1 30); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "SLURM test cluster up: export SLURM_CONF=$SLURM_CONF (partition gpu, node $HOST)"
    exit 0
  fi
  sleep 1
done
echo "the SLURM test cluster did not come up; see $DIR/log/" >&2
exit 1
