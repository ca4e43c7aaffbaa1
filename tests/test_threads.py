"""Threads per job: parallel sweeps share the cores instead of over-subscribing them."""

from __future__ import annotations

import json

import pytest

from auxrun.threads import joblib_parallel, plan
from conftest import run_cli

JOBLIB = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": -1}


@pytest.mark.parametrize("n_jobs, cores, parallel", [(-1, 8, 8), (-2, 8, 7), (-8, 8, 1), (-20, 8, 1), (3, 8, 3),
                                                     (1, 2, 1), (None, 4, 1)])
def test_joblib_counts_parallel_jobs_as_joblib_does(n_jobs, cores, parallel):
    assert joblib_parallel(n_jobs, cores) == parallel


@pytest.mark.parametrize("n_jobs, cores, threads", [(-1, 2, 1), (2, 2, 1), (1, 2, 2), (2, 16, 8), (3, 16, 5),
                                                    (32, 16, 1), (-2, 16, 1)])
def test_a_joblib_sweep_shares_the_cores(n_jobs, cores, threads):
    got = plan("auto", {**JOBLIB, "n_jobs": n_jobs}, multirun=True, cores=cores, env={})
    assert got.threads == threads and "parallel jobs" in got.reason


def test_single_runs_use_every_core_and_slurm_and_explicit_settings_win():
    assert plan("auto", None, multirun=False, cores=6, env={}).threads == 6
    assert plan("auto", JOBLIB, multirun=False, cores=6, env={}).threads == 6  # a single run ignores the launcher
    basic = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}
    assert plan("auto", basic, multirun=True, cores=6, env={}).threads == 6   # sequential sweep
    assert plan("auto", JOBLIB, multirun=True, cores=64, env={"SLURM_CPUS_PER_TASK": "8"}).threads == 8
    assert plan("auto", None, multirun=False, cores=4, env={"SLURM_CPUS_PER_TASK": "8"}).threads == 4
    local = {"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", "cpus_per_task": 2}
    assert plan("auto", local, multirun=True, cores=8, env={}).threads == 2
    assert plan(3, {**JOBLIB, "n_jobs": 4}, multirun=True, cores=2, env={}).threads == 3


def test_more_threads_at_once_than_cores_is_a_warning_and_auto_never_gives_one():
    """``threads=N`` above the cores, or more parallel jobs than cores, oversubscribes them;
    ``threads=auto`` with at most one job per core never does."""
    assert "999 thread(s) per job x 1 job(s) at once = 999 threads on 2 core(s)" in \
        plan(999, None, multirun=False, cores=2, env={}).oversubscribed(2)
    assert "2 thread(s) per job x 2 job(s) at once = 4 threads" in \
        plan(2, {**JOBLIB, "n_jobs": 2}, multirun=True, cores=2, env={}).oversubscribed(2)
    assert "x 4 job(s) at once" in plan("auto", {**JOBLIB, "n_jobs": 4}, multirun=True, cores=2, env={}).oversubscribed(2)
    assert plan(1, {**JOBLIB, "n_jobs": 2}, multirun=True, cores=2, env={}).oversubscribed(2) is None
    assert plan(2, {**JOBLIB, "n_jobs": 2}, multirun=False, cores=2, env={}).oversubscribed(2) is None  # one run
    for cores in range(1, 33):
        for n_jobs in (-1, -2, -cores, 1, 2, 3, cores, None):
            got = plan("auto", {**JOBLIB, "n_jobs": n_jobs}, multirun=True, cores=cores, env={})
            fits = joblib_parallel(n_jobs, cores) <= cores  # else more jobs than cores: warned, rightly
            assert (got.oversubscribed(cores) is None) == fits, (cores, n_jobs)
            assert not fits or got.threads * got.jobs <= cores


def test_each_job_of_a_joblib_sweep_gets_its_share(tmp_path):
    """Two jobs at once on this machine: each records cores // 2 threads (at least 1)."""
    import os

    sweep = tmp_path / "sweep"
    proc = run_cli("mtl", "-m", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "trainer.max_epochs=1",
                   "trainer.progress=false", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(p.read_text()) for p in sorted(sweep.rglob("result.json"))]
    assert len(results) == 2
    want = max(1, len(os.sched_getaffinity(0)) // 2)
    assert [r["threads"] for r in results] == [want, want]
    assert all(r["config"]["threads"] == "auto" for r in results)  # the setting, not the machine, is the config
