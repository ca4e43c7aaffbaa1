"""Sweeps and tuning on a real SLURM controller: the one-node cluster of tests/slurm/start.sh.

Run by ``make test-slurm`` (which starts and stops the cluster); skipped wherever no cluster
answers ``sinfo``. Each test drives the ``auxrun`` command line as a user would, in a fresh
working directory, and waits for the jobs SLURM runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from test_docs_commands import ALL  # noqa: E402  (the docs' printed commands)


def _cluster_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and any(s.strip() in ("idle", "mixed", "allocated") for s in out.stdout.split())


pytestmark = [pytest.mark.slurm,
              pytest.mark.skipif(not _cluster_up(), reason="no SLURM cluster answers sinfo: run make test-slurm")]

ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}


def auxrun(*args: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "auxrun", *args], capture_output=True, text=True, cwd=cwd,
                          env=ENV, timeout=timeout)


def results(folder: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in folder.rglob("result.json")}


def test_the_docs_slurm_sweep_runs_as_printed_and_compare_reads_it(tmp_path: Path) -> None:
    (printed,) = {c.argv for c in ALL if "hydra/launcher=slurm" in c.argv and c.argv[1] == "mtl"
                  and "weighting=fixed,auxts" not in " ".join(c.argv)}
    proc = auxrun(*printed[1:], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = results(tmp_path / "outputs")
    assert sorted(found) == ["0_seed=0", "1_seed=1"] and all(r["status"] == "completed" for r in found.values())
    cores = len(os.sched_getaffinity(0))  # the job's 8 CPUs (SLURM_CPUS_PER_TASK), capped by the real cores
    assert all(r["config"]["threads"] == "auto" and r["threads"] == min(8, cores) for r in found.values())
    table = auxrun("compare", "--outputs", "outputs", "--format", "csv", cwd=tmp_path)
    assert table.returncode == 0 and ",2,0," in table.stdout, table.stdout  # one cell of 2 seeds, 0 diverged


def test_a_failing_job_is_recorded_failed_while_the_sweep_goes_on(tmp_path: Path) -> None:
    """device=cuda fails on the node (no CUDA): that job is recorded failed, the other completes,
    and the sweep ends with the failure named and a non-zero exit."""
    proc = auxrun("mtl", "-m", "device=cpu,cuda", "threads=1", "trainer.max_epochs=3", "hydra/launcher=slurm",
                  "hydra.launcher.partition=gpu", "hydra.launcher.cpus_per_task=1", "hydra.sweep.dir=sweep",
                  cwd=tmp_path)
    found = results(tmp_path / "sweep")
    assert {k.split(",")[0]: r["status"] for k, r in found.items()} == {"0_device=cpu": "completed",
                                                                         "1_device=cuda": "failed"}
    assert proc.returncode != 0 and "1 job(s) of the sweep failed" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr


def _running(name: str) -> list[str]:
    """The ids of the running jobs named ``name``."""
    out = subprocess.run(["squeue", "-h", "-n", name, "-t", "RUNNING", "-o", "%A"], capture_output=True, text=True,
                         check=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def test_a_requeued_job_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_run(tmp_path: Path) -> None:
    common = ["weighting=auxts", "aux=mixed", "threads=1", "trainer.max_epochs=400", "trainer.patience=0"]
    name = f"requeue_{os.getpid()}"  # this test's job only
    sweep = subprocess.Popen(
        [sys.executable, "-m", "auxrun", "mtl", "-m", *common, "seed=3", "hydra/launcher=slurm",
         "hydra.launcher.partition=gpu", "hydra.launcher.cpus_per_task=1", "hydra.sweep.dir=sweep",
         f"hydra.job.name={name}"], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    deadline = time.time() + 600
    while not list((tmp_path / "sweep").glob("0_*/checkpoints/last.pt")):  # a few epochs in
        assert time.time() < deadline and sweep.poll() is None, "the job never wrote a checkpoint"
        time.sleep(1)
    (run_dir,) = (tmp_path / "sweep").glob("0_*")
    time.sleep(3)
    ids = _running(name)
    assert ids, "the job is not running"
    subprocess.run(["scontrol", "requeue", ids[0]], check=True)  # as a pre-emption does: stopped, queued again
    _, stderr = sweep.communicate(timeout=900)
    assert sweep.returncode == 0, stderr[-3000:]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed"
    log = " ".join(p.read_text() for p in run_dir.glob("*.log"))
    assert "SIGTERM received" in log and "resuming" in log, "the requeued job started again from scratch"
    alone = auxrun("mtl", *common, "seed=3", "hydra.run.dir=alone", cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr[-2000:]
    reference = json.loads((tmp_path / "alone" / "result.json").read_text())
    assert result["metrics"] == reference["metrics"] and result["val_history"] == reference["val_history"]


def test_tune_runs_one_slurm_job_per_strategy(tmp_path: Path) -> None:
    proc = auxrun("tune", "mtl", "weighting=none,gcs", "aux=mixed", "trainer.max_epochs=3", "--trials", "2",
                  "--seeds", "1", "--launcher", "slurm", "--partition", "gpu", "--cpus", "1", "--time-min", "20",
                  "--out", "tune", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "tune" / "final" / "tuning.json").read_text())
    assert {s: len(r["trials"]) for s, r in summary["strategies"].items()} == {"none": 2, "gcs": 2}
    assert len([p for p in (tmp_path / "tune" / "submitit").iterdir() if p.name != "%j"]) >= 2
