"""``auxrun tune``: budget-matched search per strategy on validation only (auxrun.tuning)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from auxrun.cli import main
from auxrun.data import registry
from auxrun.errors import AuxrunError
from auxrun.tuning import space as sp
from auxrun.tuning.study import Plan, tune

from conftest import read_result, start_cli
from processes import alive, joblib_workers

# short planted runs: 4 epochs, so that the pruner (3 start-up trials, 2 warm-up epochs) can act
BASE = ("aux=mixed", "trainer.max_epochs=4", "trainer.patience=0", "trainer.progress=false", "trainer.checkpoint=false")


def plan(out: Path, trials: int = 4, seeds: int = 1) -> Plan:
    return Plan("mtl", (*BASE, f"paths.cache={out}/cache"), ("none", "fixed"), trials, seeds, out)


def history(out: Path) -> dict:
    """Each strategy's trials as the study recorded them: parameters, state and value."""
    summary = json.loads((out / "final" / "tuning.json").read_text())
    return {s: [(t["params"], t["state"], t["value"]) for t in r["trials"]] for s, r in summary["strategies"].items()}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tune")
    tune(plan(out))
    return out


def test_every_strategy_gets_the_same_number_of_trials_and_its_finals(tuned: Path) -> None:
    found = history(tuned)
    assert set(found) == {"none", "fixed"} and all(len(trials) == 4 for trials in found.values())
    # none searches the shared space only; fixed adds the target's weight
    assert set(found["none"][0][0]) == {"trainer.lr", "trainer.weight_decay"}
    assert set(found["fixed"][0][0]) == {"trainer.lr", "trainer.weight_decay", "weighting.weights.target"}
    for strategy in ("none", "fixed"):
        for kind in ("default", "tuned"):
            result = json.loads((tuned / "final" / kind / strategy / "seed_1" / "result.json").read_text())
            assert result["status"] == "completed" and result["seed"] == 1  # a fresh seed: trials ran at 0
            assert result["config"]["trainer"]["tuned_trials"] == (4 if kind == "tuned" else 0)
    summary = json.loads((tuned / "final" / "tuning.json").read_text())
    best = summary["strategies"]["fixed"]["best"]
    tuned_cfg = json.loads((tuned / "final" / "tuned" / "fixed" / "seed_1" / "result.json").read_text())["config"]
    assert tuned_cfg["trainer"]["lr"] == pytest.approx(best["trainer.lr"], rel=1e-3)
    assert tuned_cfg["weighting"]["weights"]["target"] == pytest.approx(best["weighting.weights.target"], rel=1e-3)


def test_the_objective_is_each_trials_best_validation_score(tuned: Path) -> None:
    summary = json.loads((tuned / "final" / "tuning.json").read_text())
    for strategy, record in summary["strategies"].items():
        for trial in record["trials"]:
            result = json.loads((tuned / "trials" / strategy / trial["folder"] / "result.json").read_text())
            if trial["state"] == "complete":
                kept = result["val_history"][result["best_epoch"]]["f1_micro"]
                assert trial["value"] == pytest.approx(kept) == pytest.approx(result["best_score"])
        values = [t["value"] for t in record["trials"] if t["state"] == "complete"]
        assert record["best_value"] == max(values)


def test_a_relaunch_runs_nothing_again(tuned: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in tuned.rglob("result.json")}
    tune(plan(tuned))
    assert {p: p.stat().st_mtime_ns for p in tuned.rglob("result.json")} == before


def test_tuning_cannot_see_test_labels(tuned: Path, tmp_path: Path, monkeypatch) -> None:
    """The same tuning with the planted target's test labels permuted: an identical trial
    history (parameters, states, values), so no test metric reached the search."""
    original = registry.REGISTRY["synthetic"]

    def permuted(cfg, seed, cache_dir=None):
        data = original.load(cfg, seed, cache_dir)
        test = data.target.split["test"]
        labels = data.target.labels.clone()
        labels[test] = labels[test][torch.randperm(len(test), generator=torch.Generator().manual_seed(7))]
        labels[test] = (labels[test] + 1) % data.target.num_classes  # every test label changes
        return dataclasses.replace(data, target=dataclasses.replace(data.target, labels=labels))

    monkeypatch.setitem(registry.REGISTRY, "synthetic", dataclasses.replace(original, load=permuted))
    tune(plan(tmp_path))
    assert history(tmp_path) == history(tuned)
    test_of = lambda out: json.loads((out / "final" / "tuned" / "none" / "seed_1" / "result.json").read_text())[  # noqa: E731
        "metrics"]["test"]["f1_micro"]
    assert test_of(tmp_path) != test_of(tuned)  # the permutation did reach the test metric


def test_space_entries_are_checked_against_the_schema() -> None:
    assert sp._dim("trainer.lr", {"low": 1e-4, "high": 1e-2, "log": True}) == sp.Dim("trainer.lr", 1e-4, 1e-2, True)
    assert sp._dim("backbone.hidden", {"choices": [64, 128]}).choices == (64, 128)
    assert sp._dim("backbone.num_layers", {"low": 1, "high": 4}).integer
    for key, entry, why in [("trainer.lr", {"low": 0.0, "high": 1e-2}, "not allowed"),
                            ("trainer.lr", {"low": 1e-2, "high": 1e-3}, "low < high"),
                            ("trainer.weight_decay", {"low": 0.0, "high": 1.0, "log": True}, "low > 0"),
                            ("trainer.lr", {"low": 1e-3}, "numbers"),
                            ("trainer.sampling", {"choices": ["full", "nope"]}, "nope"),
                            ("trainer.lr", {"lo": 1, "hi": 2}, "expected"),
                            ("trainer.no_such_key", {"low": 1, "high": 2}, "not a key")]:
        with pytest.raises(AuxrunError, match=why):
            sp._dim(key, entry)


def test_every_strategys_declared_space_is_valid() -> None:
    """Each weighting option's search space composes and passes the schema (what tune reads)."""
    from auxrun.api import compose
    from auxrun.configs import group_options

    for option in group_options("weighting"):
        dims = sp.space_of(compose("mtl", [f"weighting={option}"]))
        assert {d.key for d in dims} >= {"trainer.lr", "trainer.weight_decay"}, option


@pytest.mark.parametrize("args, why", [
    (["tune", "zeroshot", "transfer=ktn,direct"], "mtl or finetune"),
    (["tune", "mtl", "aux=mixed"], "weighting=a,b"),
    (["tune", "mtl", "weighting=none,nope"], "unknown weighting 'nope'"),
    (["tune", "mtl", "weighting=none", "seed=0,1"], "one value"),
    (["tune", "mtl", "weighting=none", "seed=range(0,2)"], "seed=range(0,2): auxrun tune sweeps the strategies only"),
    (["tune", "mtl", "weighting=glob(non*)"], "weighting=glob(non*): auxrun tune takes the strategies as a list"),
    (["tune", "mtl", "weighting=none", "-m"], "without Hydra's -m"),
    (["tune", "mtl", "weighting=none", "--trials", "0"], "trials"),
])
def test_bad_tune_commands_are_one_message(args: list[str], why: str, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.argv", ["auxrun", *args])
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as stop:
        main()
    output = " ".join((capsys.readouterr().err).split())
    assert stop.value.code == 2 and why in output, output
    assert "Traceback" not in output


def test_an_observer_that_says_stop_prunes_the_run_which_then_counts_as_finished(tmp_path: Path) -> None:
    from auxrun.api import compose, run
    from auxrun.report.compare import compare
    from auxrun.train.loop import EPOCH_OBSERVER

    seen: list[tuple[int, float]] = []

    def observe(epoch: int, score: float) -> bool:
        seen.append((epoch, score))
        return epoch == 1

    cfg = compose("mtl", [*BASE, f"paths.cache={tmp_path}/cache"])
    token = EPOCH_OBSERVER.set(observe)
    try:
        result = run(cfg, tmp_path / "run")
    finally:
        EPOCH_OBSERVER.reset(token)
    assert result["status"] == "pruned" and result["epochs_run"] == 2 and [e for e, _ in seen] == [0, 1]
    assert [h["f1_micro"] for h in result["val_history"]] == [s for _, s in seen]  # the score the pruner saw
    assert result["metrics"]["val"]  # the kept epoch is still evaluated
    assert run(cfg, tmp_path / "run")["finished_at"] == result["finished_at"]  # finished: not run again
    with pytest.raises(AuxrunError, match="no finished runs"):  # compare never counts a pruned run
        compare(tmp_path, "test")


def test_the_report_draws_the_tuning_history(tuned: Path, tmp_path: Path) -> None:
    from auxrun.report.compare import compare
    from auxrun.report.document import write_report

    made = write_report(compare(tuned / "final", "test"), tmp_path, "strategies", "test", tuned / "final")
    assert any(p.name == "tuning_history.png" for p in made.figures)
    assert "Tuning: best validation score against trial" in made.markdown.read_text()


def test_submitit_runs_one_job_per_strategy_as_slurm_would(tmp_path: Path) -> None:
    """``--launcher local``: the strategies as submitit jobs (the path ``--launcher slurm``
    takes on a cluster), here as processes; each job's runs use the job's CPUs as threads."""
    small = Plan("mtl", (*BASE, "trainer.max_epochs=2", f"paths.cache={tmp_path}/cache"), ("none", "gcs"), 1, 1,
                 tmp_path, jobs=2, launcher="local", cluster=(("timeout_min", 10), ("cpus_per_task", 1)), threads=1)
    outcomes = tune(small)
    assert [o.strategy for o in outcomes] == ["none", "gcs"] and all(len(o.trials) == 1 for o in outcomes)
    result = json.loads((tmp_path / "final" / "tuned" / "gcs" / "seed_1" / "result.json").read_text())
    assert result["status"] == "completed" and result["config"]["threads"] == 1
    assert len([p for p in (tmp_path / "submitit").iterdir() if p.name != "%j"]) == 2  # a log folder per job


def test_slurm_off_a_cluster_is_one_message(tmp_path: Path, monkeypatch) -> None:
    """No SLURM commands, or commands but no controller answering: one message each, before
    anything is submitted (whatever this machine has installed)."""
    plan_ = Plan("mtl", BASE, ("none",), 1, 1, tmp_path / "out", launcher="slurm")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(AuxrunError, match="sbatch, which this machine does not have.*--launcher joblib"):
        tune(plan_)
    for command in ("sbatch", "sinfo"):  # a client whose controller does not answer
        script = bin_dir / command
        script.write_text("#!/bin/sh\necho 'sinfo: error: Could not establish a configuration source' >&2\nexit 1\n")
        script.chmod(0o755)
    with pytest.raises(AuxrunError, match="no controller answers .*Could not establish a configuration source"):
        tune(plan_)
    assert not (tmp_path / "out" / "submitit").exists()  # nothing was submitted


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("stop", ["sigterm to the command, two strategies at once",
                                  pytest.param("ctrl-c, one strategy in this process", marks=pytest.mark.slow)])
def test_a_tuning_stopped_by_a_signal_ends_in_one_message_and_resumes(tmp_path: Path, stop: str) -> None:
    """A SIGTERM to ``auxrun tune`` alone (a scheduler's) reaches the trials running in its joblib
    workers, and a Ctrl-C the trial running in the command itself: each stops after its step with
    its checkpoint, the command says how to resume and exits 128 + signal, no worker is left behind
    (it used to: exit 1 with an internal error, or a SIGTERM ended the command and left its
    workers training), and the same command then finishes the tuning, resuming those trials."""
    parallel = stop.startswith("sigterm")
    strategies = ("none", "fixed") if parallel else ("fixed",)
    args = ["tune", "mtl", "dataset=synthetic", f"weighting={','.join(strategies)}",
            "trainer.max_epochs=60", "trainer.patience=0", "threads=1", "--trials", "1", "--seeds", "1",
            "--jobs", "2" if parallel else "1", "--out", str(tmp_path / "out")]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "COLUMNS": "300"}
    trials = [tmp_path / "out" / "trials" / s / "trial_000" for s in strategies]
    proc = start_cli(*args, env=env)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not all(
            (t / "checkpoints" / "last.pt").exists() for t in trials):
        time.sleep(0.02)
    workers = joblib_workers(proc.pid)
    assert proc.poll() is None and not any((t / "result.json").exists() for t in trials), \
        "a trial ended before it could be stopped; make the runs longer"
    assert len(workers) == (2 if parallel else 0)
    signum = signal.SIGTERM if parallel else signal.SIGINT
    if parallel:
        proc.send_signal(signum)
    else:
        os.killpg(proc.pid, signum)
    _, stderr = proc.communicate(timeout=120)
    said = " ".join(stderr.split())
    assert proc.returncode == 128 + signum and "Traceback" not in said and "internal error" not in said, said[-3000:]
    assert f"tuning stopped by {signal.Signals(signum).name}" in said and "run the same command again" in said
    for trial in trials:
        result = read_result(trial)
        assert result["status"] == "interrupted" and signal.Signals(signum).name in result["message"], trial
    time.sleep(1)
    assert not alive(workers), "a worker outlived the tuning"
    assert not (tmp_path / "out" / "final").exists()  # no final run started
    again = start_cli(*args, env=env)
    _, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr[-3000:]
    assert stderr.count("resuming") == len(trials)
    summary = json.loads((tmp_path / "out" / "final" / "tuning.json").read_text())
    for strategy in strategies:
        assert [(t["folder"], t["state"]) for t in summary["strategies"][strategy]["trials"]] == \
            [("trial_000", "complete")]  # the stopped trial, resumed in its folder: the budget is one trial
        for kind in ("default", "tuned"):
            assert read_result(tmp_path / "out" / "final" / kind / strategy / "seed_1")["status"] == "completed"


def test_no_trial_or_final_run_starts_once_the_tuning_is_stopping(tmp_path: Path, monkeypatch) -> None:
    """The stop that the command recorded for all its processes (:mod:`auxrun.sweep`) is read
    before each run: a worker that learns of it between two runs starts neither."""
    import auxrun.sweep
    from auxrun.train.resume import Interrupted
    from auxrun.tuning.study import Outcome, final_runs

    monkeypatch.setattr(auxrun.sweep, "stopped", lambda: signal.SIGTERM)
    with pytest.raises(Interrupted, match="weighting=none: its trial 1 of 4 did not start: stopped by SIGTERM"):
        tune(plan(tmp_path))
    assert not (tmp_path / "trials").exists()
    with pytest.raises(Interrupted, match="weighting=fixed: its final runs on seed 1 did not start"):
        final_runs(plan(tmp_path), Outcome("fixed", [], best={}))
    assert not (tmp_path / "final").exists()


def test_a_ctrl_c_while_waiting_for_slurm_says_the_jobs_go_on(tmp_path: Path, monkeypatch, capsys) -> None:
    """``--launcher slurm``: a Ctrl-C stops only the command that waits for the jobs; it says so
    and how to end them, rather than suggesting a rerun that would run them twice."""
    import auxrun.tuning.study

    def waiting(plan: Plan) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(auxrun.tuning.study, "tune", waiting)
    monkeypatch.setattr("sys.argv", ["auxrun", "tune", "mtl", "weighting=none,fixed", "--launcher", "slurm",
                                     "--out", str(tmp_path / "out")])
    monkeypatch.setenv("COLUMNS", "300")
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as stop:
            main()
    finally:
        signal.signal(signal.SIGINT, handler)  # the command ignores a further Ctrl-C while it exits
    said = " ".join(capsys.readouterr().err.split())
    assert stop.value.code == 130 and "Traceback" not in said, said
    assert "tuning stopped by SIGINT at once" in said and "scancel --name auxrun-tune" in said
    assert said.index("scancel") < said.index("run the same command again")
