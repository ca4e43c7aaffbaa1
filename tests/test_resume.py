"""A run stopped between two steps, or killed, resumes from its checkpoint and ends exactly
as if it had never stopped (CPU, same seed)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import auxrun.train.commands as schemes
from auxrun.run_folder import RunFolder
from auxrun.train import runner
from auxrun.train.loggers import NoLogger
from auxrun.train.resume import Interrupted

from conftest import read_result, start_cli
from processes import alive, joblib_workers


class SignalAt(NoLogger):
    """A logger that sends this process ``signum`` after step ``at`` (a user's Ctrl-C, a
    cluster's SIGTERM), to stop the run between two steps."""

    def __init__(self, at: int, signum: int) -> None:
        self.at, self.signum = at, signum

    def step(self, step: int, rows) -> None:
        if step == self.at:
            os.kill(os.getpid(), self.signum)


def _same_run(a: Path, b: Path) -> None:
    ra, rb = read_result(a), read_result(b)
    assert ra["status"] == rb["status"] == "completed"
    assert rb["metrics"] == ra["metrics"] and rb["val_history"] == ra["val_history"]
    assert (ra["best_epoch"], ra["steps"]) == (rb["best_epoch"], rb["steps"])
    ta, tb = pd.read_csv(a / "trace.csv"), pd.read_csv(b / "trace.csv")
    pd.testing.assert_frame_equal(ta, tb)


# auxts: a strategy with a weighting net and its own optimiser; blo: counters; neighbour
# sampling: the sampler draws from the run's generator
# sampling: the sampler draws from the run's generator. Small batches: several steps an epoch,
# random auxiliary batches, so the signal lands mid-epoch and every random state matters.
SMALL = ["trainer.batch_size=4", "trainer.aux_batch_size=32"]
CASES = {"auxts": ["weighting=auxts", *SMALL], "blo-sampled": ["weighting=blo", "trainer.sampling=neighbor", *SMALL],
         "pretrain": [],
         # state torchjd keeps outside parameters: DWA's epoch means, FAMO's own Adam; MetaBalance's averages
         "dwa": ["weighting=scalarize", "weighting.scalarizer=dwa", *SMALL],
         "famo": ["weighting=scalarize", "weighting.scalarizer=famo", *SMALL],
         "metabalance": ["weighting=metabalance", *SMALL]}


@pytest.mark.parametrize(("case", "signum"), [("auxts", signal.SIGTERM), ("blo-sampled", signal.SIGTERM),
                                              ("pretrain", signal.SIGTERM), ("auxts", signal.SIGINT),
                                              ("dwa", signal.SIGTERM), ("famo", signal.SIGTERM),
                                              ("metabalance", signal.SIGTERM)])
def test_a_signal_stops_between_steps_and_the_rerun_ends_as_an_uninterrupted_run(make_cfg, tmp_path, monkeypatch,
                                                                                   case, signum):
    command = "pretrain" if case == "pretrain" else "mtl"
    overrides = ["trainer=fast", "trainer.max_epochs=4", "trainer.patience=0", *CASES[case]]
    schemes.run(make_cfg(command, *overrides), tmp_path / "whole")
    steps = read_result(tmp_path / "whole")["steps"]
    at = steps // 2 + 1  # mid-epoch, in the third epoch or so
    monkeypatch.setattr(runner, "make_logger", lambda cfg, run_dir: SignalAt(at, signum))
    with pytest.raises(Interrupted) as stop:
        schemes.run(make_cfg(command, *overrides), tmp_path / "stopped")
    assert stop.value.exit_code == 128 + signum
    first = read_result(tmp_path / "stopped")
    assert first["status"] == "interrupted" and f"step {at + 1}" in first["message"]
    assert (at + 1) % (steps // 4) != 0  # mid-epoch: the resumed run has steps of this epoch left
    assert "the checkpoint is kept to resume from" in first["message"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    monkeypatch.undo()
    schemes.run(make_cfg(command, *overrides), tmp_path / "stopped")
    _same_run(tmp_path / "whole", tmp_path / "stopped")


class PauseThenSignal(NoLogger):
    """Waits ``pause`` seconds at step ``at``, then sends this process SIGTERM: an attempt that
    takes at least that long before it is stopped."""

    def __init__(self, at: int, pause: float) -> None:
        self.at, self.pause = at, pause

    def step(self, step: int, rows) -> None:
        if step == self.at:
            time.sleep(self.pause)
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_resumed_runs_runtime_counts_every_attempt(make_cfg, tmp_path, monkeypatch):
    """``runtime_s`` of a run stopped and resumed is its wall time over both attempts (it used
    to be the last attempt's only: an RCGrad job resumed after an hour said 41 minutes)."""
    overrides = ["trainer=fast", "trainer.max_epochs=2", "trainer.patience=0", *SMALL]
    monkeypatch.setattr(runner, "make_logger", lambda cfg, run_dir: PauseThenSignal(2, 3.0))
    with pytest.raises(Interrupted):
        schemes.run(make_cfg("mtl", *overrides), tmp_path / "r")
    first = read_result(tmp_path / "r")
    assert first["status"] == "interrupted" and first["runtime_s"] >= 3.0
    monkeypatch.undo()
    start = time.time()
    second = schemes.run(make_cfg("mtl", *overrides), tmp_path / "r")
    attempt = time.time() - start
    assert second["status"] == "completed"
    assert 3.0 + attempt - 0.5 < second["runtime_s"] <= first["runtime_s"] + attempt + 0.5


def test_a_run_that_starts_while_its_sweep_stops_stops_after_its_first_step(make_cfg, tmp_path):
    """A stop that reaches a worker after its job checked for it (while the job loads its data,
    before the run's own handler is in place), or that only the launcher recorded: the run
    stops after one step with its checkpoint, as if the signal had come then; outside a
    stopping sweep the same config runs to the end."""
    from auxrun import sweep
    from auxrun.train.resume import SweepSignals

    overrides = ["trainer=fast", "trainer.max_epochs=2", "trainer.patience=0"]
    with sweep.shared(), SweepSignals(launcher=False):
        sweep.note_stop(signal.SIGTERM)
        with pytest.raises(Interrupted) as stop:
            schemes.run(make_cfg("mtl", *overrides), tmp_path / "r")
    assert stop.value.exit_code == 128 + signal.SIGTERM
    result = read_result(tmp_path / "r")
    assert result["status"] == "interrupted" and result["steps"] == 1 and "SIGTERM" in result["message"]
    assert (tmp_path / "r" / "checkpoints" / "last.pt").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    assert schemes.run(make_cfg("mtl", *overrides), tmp_path / "r")["status"] == "completed"  # resumes


def test_a_checkpoint_of_another_config_is_not_resumed_and_rerun_starts_over(make_cfg, tmp_path, monkeypatch, caplog):
    overrides = ["trainer=fast", "trainer.max_epochs=3", "trainer.patience=0"]
    monkeypatch.setattr(runner, "make_logger", lambda cfg, run_dir: SignalAt(1, signal.SIGTERM))
    with pytest.raises(Interrupted):
        schemes.run(make_cfg("mtl", *overrides), tmp_path / "r")
    monkeypatch.undo()
    other = schemes.run(make_cfg("mtl", *overrides, "trainer.lr=0.002"), tmp_path / "r")
    assert other["status"] == "completed" and "written by a run of another config" in caplog.text
    schemes.run(make_cfg("mtl", *overrides), tmp_path / "whole")
    assert read_result(tmp_path / "whole")["steps"] == other["steps"]


def test_a_checkpoint_of_a_run_that_started_from_another_encoder_file_is_not_resumed(make_cfg, tmp_path, monkeypatch,
                                                                                      caplog):
    """``pretrained=auto`` made its encoder again between two attempts of a finetune run, and
    not the same file (another machine, other library releases; here the weights are nudged by
    hand). The config is the same, but the checkpoint's run started from other weights: the run
    starts over from the file it now loads, as its record says, and ends as a run from that
    file does. With the same file it resumes."""
    import auxrun.data as datasets
    from auxrun.models import build_encoder
    from auxrun.train.pretrained import save_encoder

    encoder = tmp_path / "encoder.pt"
    overrides = ["trainer=fast", "trainer.max_epochs=3", "trainer.patience=0", f"pretrained={encoder}"]
    cfg = make_cfg("finetune", *overrides)
    schema = datasets.load(cfg.dataset, 0, None).schema()
    save_encoder(encoder, build_encoder(cfg.backbone, schema), cfg.backbone, schema)

    def interrupted(folder):
        with monkeypatch.context() as m:
            m.setattr(runner, "make_logger", lambda cfg, run_dir: SignalAt(1, signal.SIGTERM))
            with pytest.raises(Interrupted):
                schemes.run(cfg, folder)

    interrupted(tmp_path / "same")
    with caplog.at_level("WARNING"):
        schemes.run(cfg, tmp_path / "same")
    assert "resuming" in caplog.text and "other weights" not in caplog.text
    interrupted(tmp_path / "r")
    saved = torch.load(encoder, weights_only=True)
    name = next(k for k, v in saved["state_dict"].items() if v.is_floating_point())
    saved["state_dict"][name] += 1e-2
    torch.save(saved, encoder)
    caplog.clear()
    with caplog.at_level("WARNING"):
        again = schemes.run(cfg, tmp_path / "r")
    assert "its run started from other weights" in caplog.text and "resuming" not in caplog.text
    fresh = schemes.run(cfg, tmp_path / "fresh")
    assert again["pretrained_sha256"] == fresh["pretrained_sha256"] != read_result(tmp_path / "same")["pretrained_sha256"]
    assert again["metrics"] == fresh["metrics"] and again["steps"] == fresh["steps"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_the_same_command_resumes_from_the_last_epoch_and_matches(tmp_path):
    """A killed process writes nothing more: the rerun continues from the last epoch's checkpoint."""
    args = ["mtl", "weighting=auxts", "trainer.max_epochs=40", "trainer.patience=0", "trainer.progress=false",
            "dataset.num_users=1500"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    whole = subprocess.run([sys.executable, "-m", "auxrun", *args, f"hydra.run.dir={tmp_path / 'whole'}"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "auxrun", *args, f"hydra.run.dir={run_dir}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and last.stat().st_size and time.time() - last.stat().st_mtime > 0.05:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "result.json").exists()
    again = subprocess.run([sys.executable, "-m", "auxrun", *args, f"hydra.run.dir={run_dir}"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and "resuming" in again.stderr, again.stderr[-2000:]
    _same_run(tmp_path / "whole", run_dir)
    assert not list(run_dir.rglob(".*.tmp"))


@pytest.mark.slow
def test_sigterm_to_the_cli_exits_143_with_an_interrupted_result_and_resumes(tmp_path):
    args = ["mtl", "trainer.max_epochs=60", "trainer.patience=0", "trainer.progress=false", "dataset.num_users=1500",
            f"hydra.run.dir={tmp_path / 'r'}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "auxrun", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not last.exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-2000:]
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["status"] == "interrupted" and "SIGTERM" in result["message"]
    assert "Traceback" not in stderr
    (line,) = [x for x in stderr.splitlines() if x.startswith("resume it with: ")]
    resume = shlex.split(line.removeprefix("resume it with: "))  # the printed command, as printed
    assert resume[:2] == ["auxrun", "mtl"] and f"hydra.run.dir={tmp_path / 'r'}" in resume
    again = subprocess.run([sys.executable, "-m", "auxrun", *resume[1:]], capture_output=True, text=True, env=env,
                           timeout=600, cwd=tmp_path)
    assert again.returncode == 0 and json.loads((tmp_path / "r" / "result.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("transfer", ["ktn", "wdgrl"])  # wdgrl: a critic with its own optimiser
def test_a_zero_shot_run_stopped_by_a_signal_resumes_mid_epoch_and_matches(make_cfg, tmp_path, monkeypatch,
                                                                                     transfer):
    import auxrun.transfer.zeroshot as zs

    overrides = ["trainer=fast", "trainer.max_epochs=4", "trainer.patience=0", "trainer.batch_size=16",
                 f"transfer={transfer}"]
    zs.run(make_cfg("zeroshot", *overrides), tmp_path / "whole")
    steps = read_result(tmp_path / "whole")["steps"]
    monkeypatch.setattr(runner, "make_logger", lambda cfg, run_dir: SignalAt(steps // 2 + 1, signal.SIGTERM))
    with pytest.raises(Interrupted) as stop:
        zs.run(make_cfg("zeroshot", *overrides), tmp_path / "stopped")
    assert stop.value.exit_code == 143 and read_result(tmp_path / "stopped")["status"] == "interrupted"
    saved = torch.load(RunFolder(tmp_path / "stopped").last, weights_only=False)["state"]
    assert saved["plan"]["done"] > 0 and saved["step"] == steps // 2 + 2  # stopped mid-epoch, kept there
    monkeypatch.undo()
    zs.run(make_cfg("zeroshot", *overrides), tmp_path / "stopped")
    a, b = read_result(tmp_path / "whole"), read_result(tmp_path / "stopped")
    assert b["status"] == "completed" and a["metrics"] == b["metrics"] and a["val_history"] == b["val_history"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "whole" / "trace.csv"),
                                  pd.read_csv(tmp_path / "stopped" / "trace.csv"))


def test_exit_codes_a_diverged_run_exits_3_and_a_sweep_goes_on_past_it(tmp_path):
    from conftest import run_cli

    bad = ["dataset.feature_signal=1e30", "trainer.max_epochs=4", "trainer.patience=0"]  # overflows float32
    single = run_cli("mtl", *bad, f"hydra.run.dir={tmp_path / 'one'}")
    assert single.returncode == 3 and "diverged:" in single.stderr and "Traceback" not in single.stderr
    sweep = run_cli("mtl", "-m", "dataset.feature_signal=1e30,1.0", "trainer.max_epochs=4", "trainer.patience=0",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert sweep.returncode == 0, sweep.stderr[-1500:]
    statuses = sorted(json.loads(p.read_text())["status"] for p in (tmp_path / "sweep").rglob("result.json"))
    assert statuses == ["completed", "diverged"]


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_with_exit_code_130(tmp_path):
    args = ["mtl", "trainer.max_epochs=200", "trainer.patience=0", "trainer.progress=false",
            "dataset.num_users=1500", f"hydra.run.dir={tmp_path / 'r'}"]
    proc = subprocess.Popen([sys.executable, "-m", "auxrun", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not last.exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "at once" in stderr and "Traceback" not in stderr, stderr[-1500:]
    assert last.exists()


# Imported first by every Python process of a test's sweep (PYTHONPATH): in joblib's workers
# (loky), it makes loky replace a worker after each of its jobs from the second on, as it does
# on a real sweep when a job leaves the worker's memory grown (loky's memory check), and notes
# when each worker started.
REPLACE_WORKERS = """
import os, time
if b"popen_loky" in open("/proc/self/cmdline", "rb").read():
    from joblib.externals.loky import process_executor
    process_executor._MAX_MEMORY_LEAK_SIZE = -(1 << 62)  # any change, even a shrink, counts as grown
    process_executor._MEMORY_LEAK_CHECK_DELAY = -1.0
    with open(os.environ["AUXRUN_TEST_WORKERS"], "a") as fh:
        fh.write(f"{os.getpid()} {time.time()}\\n")
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("stop", ["sigterm to the launcher", pytest.param("ctrl-c", marks=pytest.mark.slow)])
def test_a_joblib_sweep_stopped_by_a_signal_stops_every_running_job_cleanly_and_starts_no_other(tmp_path, stop):
    """A scheduler's SIGTERM to the launcher alone, or a terminal's Ctrl-C (SIGINT to every
    process of the session): each job running in a joblib worker stops after its step with its
    checkpoint and an interrupted record, the queued jobs do not start, not even in the workers
    that joblib starts after the signal to replace the two, no worker is left behind, the launcher
    exits 128 + signal; the same command then finishes the sweep.

    Two one-epoch jobs come first, one in each worker, so that both long jobs that the signal
    stops run in workers that have done a job before and are replaced after them. The two queued
    jobs are short (two epochs): the rerun that finishes the sweep stays quick."""
    sweep, site = tmp_path / "sweep", tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(REPLACE_WORKERS)
    log = tmp_path / "workers.txt"
    args = ["mtl", "-m", "dataset=synthetic", "weighting=fixed", "trainer.max_epochs=1,150,2", "seed=0,1", "threads=1", "trainer.patience=0", "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2", "hydra.launcher.batch_size=1", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "AUXRUN_TEST_WORKERS": str(log),
           "PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = start_cli(*args, env=env)

    def running() -> set[Path]:  # a long job past its first epoch, not finished
        return {p.parents[1] for p in sweep.glob("*max_epochs=150*/checkpoints/last.pt")
                if not (p.parents[1] / "result.json").exists()}

    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(running()) < 2:
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be stopped; make its jobs longer"
    busy, started = running(), {p.parent for p in sweep.glob("*/config.yaml")}
    signum = signal.SIGTERM if stop.startswith("sigterm") else signal.SIGINT
    signalled = time.time()
    if signum == signal.SIGTERM:
        proc.send_signal(signum)
    else:
        os.killpg(proc.pid, signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum and "Traceback" not in stderr, stderr[-3000:]
    assert f"sweep stopped by {signal.Signals(signum).name}" in stderr
    for job in busy:
        result = read_result(job)
        assert result["status"] == "interrupted" and signal.Signals(signum).name in result["message"], job
    workers = {int(pid): float(at) for pid, at in (line.split() for line in log.read_text().splitlines())}
    assert max(workers.values()) > signalled, "no worker was replaced after the signal: the test checks nothing"
    assert {p.parent for p in sweep.glob("*/config.yaml")} == started  # no job started after the signal
    assert len(started) == 4  # two jobs were still to start
    time.sleep(1)
    assert not alive(list(workers)), "a worker outlived the sweep"
    # the rerun without the worker replacement, which it does not test (each new worker imports torch)
    again = start_cli(*args, env={**env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    _, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr[-3000:]
    assert [read_result(job)["status"] for job in sorted(p for p in sweep.iterdir() if p.is_dir())] == ["completed"] * 6
    assert stderr.count("resuming") == len(busy) == 2


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_ctrl_c_while_joblib_starts_its_workers_stops_the_sweep_cleanly(tmp_path):
    """A Ctrl-C reaches every process of the session, also the workers joblib is still starting
    (importing torch, unpickling their first job), which used to die of it: joblib then aborted
    the pool and the sweep ended in a traceback ("BrokenProcessPool: A task has failed to
    un-serialize"), exit 1. The workers now hold the signal until their handler is in place: the
    sweep ends as stopped, exit 130, and no job starts."""
    sweep = tmp_path / "sweep"
    args = ["mtl", "-m", "dataset=synthetic", "weighting=fixed", "seed=0,1,2", "threads=1", "trainer.max_epochs=50",
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"]
    proc = start_cli(*args, env={**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not joblib_workers(proc.pid):
        time.sleep(0.01)
    workers = joblib_workers(proc.pid)
    assert workers and not list(sweep.glob("*/config.yaml")), "no worker was starting when the signal came"
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    assert "sweep stopped by SIGINT" in stderr
    assert not list(sweep.glob("*/config.yaml"))  # no job started
    time.sleep(1)
    assert not alive(workers), "a worker outlived the sweep"
