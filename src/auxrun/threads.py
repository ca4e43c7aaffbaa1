"""How many CPU threads one job may use, so parallel jobs never over-subscribe the machine.

Two processes that each run torch's (or BLAS's, or OpenMP's) default thread pools on every
core slow each other far more than twice: they spin on cores the other one holds. So each job
gets its share of the cores it was given (``threads: auto``, the default):

* ``cores`` = the CPUs this process may run on (its affinity mask: ``taskset``, a SLURM or
  container cpuset), capped by ``SLURM_CPUS_PER_TASK`` inside a SLURM job;
* a sweep with Hydra's joblib launcher runs ``n_jobs`` jobs at once (``-1``: one per core,
  ``-k``: cores + 1 - k, as joblib counts), each getting ``max(1, cores // n_jobs)``;
  a submitit launcher's ``cpus_per_task`` is the job's share where it is set;
* anything else (a single run, a sequential sweep) uses every core.

``threads=N`` sets the number outright. The number is applied to torch's intra-op pool, to
every BLAS / OpenMP pool loaded in the process (``threadpoolctl``), and to the environment
(``OMP_NUM_THREADS`` ...) that child processes inherit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)
ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class ThreadPlan:
    """The threads one job uses and why (for the log and ``result.json``)."""

    threads: int
    reason: str
    jobs: int = 1  # jobs of the same sweep that run at once on this machine, each with ``threads``

    def oversubscribed(self, cores: int) -> str | None:
        """A warning where the jobs running at once use more threads than the ``cores``
        (``threads=N`` set above them, or more parallel jobs than cores); else ``None``."""
        total = self.threads * self.jobs
        if total <= cores:
            return None
        return (f"{self.threads} thread(s) per job x {self.jobs} job(s) at once = {total} threads on {cores} "
                f"core(s): threads beyond the cores wait for each other, which is slower, not faster "
                f"(threads=auto shares the cores among the jobs)")


def available_cores() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def joblib_parallel(n_jobs: Any, cores: int) -> int:
    """How many jobs joblib runs at once for ``n_jobs`` on ``cores`` cores."""
    if n_jobs is None:
        return 1
    n = int(n_jobs)
    if n < 0:
        n = cores + 1 + n
    return max(1, n)


def plan(setting: Any, launcher: Mapping | None, multirun: bool, cores: int | None = None,
         env: Mapping[str, str] | None = None) -> ThreadPlan:
    """The thread count for ``threads=setting`` under ``launcher`` (Hydra's launcher config)."""
    env = os.environ if env is None else env
    cores = available_cores() if cores is None else cores
    target = str((launcher or {}).get("_target_", ""))
    joblib = multirun and target.endswith("JoblibLauncher")
    jobs = joblib_parallel((launcher or {}).get("n_jobs", -1), cores) if joblib else 1
    if str(setting) != "auto":
        return ThreadPlan(int(setting), f"threads={setting}", jobs)
    slurm = env.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return ThreadPlan(min(cores, int(slurm)), f"SLURM_CPUS_PER_TASK={slurm}")
    if joblib:
        return ThreadPlan(max(1, cores // jobs), f"{cores} cores shared by {jobs} parallel jobs (hydra.launcher.n_jobs)",
                          jobs)
    cpus = (launcher or {}).get("cpus_per_task") if multirun and "submitit" in target else None
    if cpus:
        return ThreadPlan(min(cores, int(cpus)), f"hydra.launcher.cpus_per_task={cpus}")
    return ThreadPlan(cores, f"{cores} cores, one job at a time")


def apply(threads: int) -> None:
    """Limit torch, BLAS / OpenMP pools and child processes to ``threads`` threads."""
    import threadpoolctl
    import torch

    torch.set_num_threads(threads)
    threadpoolctl.threadpool_limits(limits=threads)
    for var in ENV_VARS:
        os.environ[var] = str(threads)


def configure(setting: Any) -> ThreadPlan:
    """Plan and apply the threads of the Hydra job running now (module docstring)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    launcher, multirun = None, False
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        launcher = OmegaConf.to_container(hc.launcher, resolve=True) if hc.get("launcher") is not None else None
        multirun = hc.mode == RunMode.MULTIRUN
    chosen = plan(setting, launcher, multirun)  # type: ignore[arg-type]
    apply(chosen.threads)
    log.info("threads: %d per job (%s)", chosen.threads, chosen.reason)
    if (warning := chosen.oversubscribed(available_cores())) is not None:
        log.warning(warning)
    return chosen
