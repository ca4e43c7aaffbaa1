"""Whether this machine can submit to SLURM: the one check before anything is submitted.

``hydra/launcher=slurm`` (a sweep) and ``auxrun tune --launcher slurm`` both submit with
``sbatch``. Off a cluster that fails deep inside submitit, with a traceback; on a machine
that has SLURM's commands but no controller that answers (a workstation with the client
installed, a login node whose controller is down) it fails the same way. :func:`check`
turns both into one message before the first job is submitted.
"""

from __future__ import annotations

import shutil
import subprocess

from .errors import AuxrunError

PROBE_SECONDS = 20  # how long the controller may take to answer sinfo


def check(what: str, instead: str) -> None:
    """Raise one :class:`AuxrunError` when ``what`` (the option that submits) cannot reach a
    SLURM controller from here; ``instead`` names the way to run on this machine."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        raise AuxrunError(f"{what} submits each job with sbatch, which this machine does not have (not a SLURM login "
                          f"node): run the command on the cluster, or use {instead} here")
    try:
        probe = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=PROBE_SECONDS)
    except subprocess.TimeoutExpired:
        raise AuxrunError(f"{what}: no SLURM controller answered sinfo within {PROBE_SECONDS} s; check the cluster "
                          f"(scontrol ping), or use {instead} here") from None
    if probe.returncode != 0:
        lines = [line for line in probe.stderr.strip().splitlines() if line.strip()]
        raise AuxrunError(f"{what}: SLURM's commands are here but no controller answers "
                          f"(sinfo: {lines[-1] if lines else f'exit code {probe.returncode}'}); check SLURM_CONF or "
                          f"the cluster (scontrol ping), or use {instead} here")
