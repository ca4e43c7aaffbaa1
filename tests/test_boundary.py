"""The boundary around every command: an exception that escapes a run is one line, a trace
file and an exit code; a failing sweep job is recorded and the other jobs still run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from auxrun import boundary
from auxrun.errors import AuxrunError

# runs `auxrun ARGS` with the training scheme's run() replaced by one that fails like a defect would
HARNESS = """
import sys
import auxrun.train.commands as schemes
def broken(cfg, run_dir):
    run_dir.mkdir(parents=True, exist_ok=True)
    raise RuntimeError(f"boom at seed {cfg.seed}")
schemes.run = broken
sys.argv = ["auxrun", *sys.argv[1:]]
from auxrun.cli import main
main()
"""
QUICK = ["trainer.max_epochs=1", "trainer.progress=false", "dataset.num_users=40", "dataset.num_items=30"]


def auxrun_broken(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", HARNESS, *args], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "COLUMNS": "300", **(env or {})}, timeout=300)


def test_an_internal_error_in_a_run_is_one_line_a_trace_file_a_failed_record_and_exit_1(tmp_path):
    proc = auxrun_broken(tmp_path, "mtl", *QUICK, "hydra.run.dir=run")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "RuntimeError: boom at seed 0" in errors[0]
    trace = tmp_path / "run" / "error.txt"
    assert str(trace) in errors[0].replace("\n", "")
    assert "Traceback" in trace.read_text() and "boom at seed 0" in trace.read_text()
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert record["status"] == "failed" and record["error"] == "RuntimeError: boom at seed 0"
    assert record["seed"] == 0 and record["weighting"] == "fixed" and record["config"]["seed"] == 0


def test_debug_lets_the_traceback_through(tmp_path):
    for args, env in ((["--debug", "mtl"], None), (["mtl"], {boundary.DEBUG_ENV: "1"})):
        proc = auxrun_broken(tmp_path, *args, *QUICK, "hydra.run.dir=run", env=env)
        assert proc.returncode != 0 and "Traceback" in proc.stderr and "boom" in proc.stderr


def test_a_failing_sweep_job_does_not_stop_the_others_and_the_sweep_lists_them(tmp_path):
    proc = auxrun_broken(tmp_path, "mtl", "-m", "seed=0,1,2", *QUICK, "hydra.sweep.dir=sweep")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "3 job(s) of the sweep failed" in proc.stderr
    for seed in range(3):
        (folder,) = (tmp_path / "sweep").glob(f"{seed}_*")
        assert json.loads((folder / "result.json").read_text())["error"] == f"RuntimeError: boom at seed {seed}"
        assert str(folder) in proc.stderr


def test_a_finished_result_is_never_replaced_by_a_failure_record(tmp_path, make_cfg):
    from auxrun.report.results import write_result

    cfg = make_cfg("mtl", "weighting=fixed")
    write_result(tmp_path, {**boundary.failure_base(cfg), "status": "completed", "metrics": {"val": {}, "test": {}}})
    before = (tmp_path / "result.json").read_text()
    boundary.record_failure(cfg, tmp_path, RuntimeError("late"), 0.0)
    assert (tmp_path / "result.json").read_text() == before
    (tmp_path / "result.json").unlink()
    boundary.record_failure(cfg, tmp_path, RuntimeError("late"), 0.0)
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "failed"


def test_a_rerun_that_fails_keeps_the_finished_result_it_was_to_replace(tmp_path, make_cfg, monkeypatch):
    """rerun=true starts the run again; when that attempt fails, the earlier finished result
    stays (the error is still raised), since no run may lose a finished result."""
    import auxrun.train.runner as runner
    from auxrun.train.commands import run

    cfg = make_cfg("mtl", "weighting=fixed")
    first = run(cfg, tmp_path)
    assert first["status"] == "completed"
    before = (tmp_path / "result.json").read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("boom in the rerun")

    monkeypatch.setattr(runner, "fit", broken)
    cfg.rerun = True
    with pytest.raises(RuntimeError, match="boom in the rerun"):
        run(cfg, tmp_path)
    assert (tmp_path / "result.json").read_text() == before


@pytest.mark.parametrize(("exc", "code", "words"), [
    (AuxrunError("trainer.lr='x': not a number"), 2, "trainer.lr='x'"),
    (OSError(28, "No space left on device", "/full/result.json"), 1, "cannot write /full/result.json"),
    (KeyError("missing"), 1, "internal error in"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to "
                  "allocate 12000000000000 bytes."), 1, "out of memory in"),
])
def test_describe_gives_one_line_and_the_documented_code(tmp_path, exc, code, words):
    message, got = boundary.describe(exc, tmp_path)
    assert got == code and words in message and "\n" not in message
    assert (tmp_path / "error.txt").exists() == (code == 1 and isinstance(exc, KeyError))


def test_a_folder_with_a_finished_run_of_another_config_is_refused_and_kept(tmp_path):
    """A second run in the same hydra.run.dir with another config (or command) would replace the
    first one's finished result: refused, one line naming the folder and the way out; the same
    config up to keys that never change results (progress bars, threads) is skipped as done."""
    from conftest import run_cli

    run = ["hydra.run.dir=run", f"paths.outputs={tmp_path / 'outputs'}", "threads=1", *QUICK]
    first = run_cli("mtl", "weighting=fixed", *run, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    kept = (tmp_path / "run" / "result.json").read_text()
    for other in (["mtl", "weighting=none"], ["mtl", "weighting=fixed", "trainer.lr=0.01"], ["pretrain"]):
        proc = run_cli(*other, *run, cwd=tmp_path)
        text = " ".join(proc.stderr.split())
        assert proc.returncode == 2 and "Traceback" not in text, text
        assert f"{tmp_path / 'run'} holds a finished mtl run of another config" in text and "rerun=true" in text
        assert (tmp_path / "run" / "result.json").read_text() == kept
    same = run_cli("mtl", "weighting=fixed", *run, "trainer.progress=true", "threads=2", cwd=tmp_path)
    assert same.returncode == 0 and "already completed with this config, skipped" in " ".join(same.stderr.split())
    assert (tmp_path / "run" / "result.json").read_text() == kept
    replaced = run_cli("mtl", "weighting=none", *run, "rerun=true", cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads((tmp_path / "run" / "result.json").read_text())["weighting"] == "none"


def test_a_sweep_folder_holding_a_job_folder_that_cannot_be_written_is_refused_before_any_job(tmp_path):
    """Hydra sets a job's folder up before auxrun's boundary runs: a job folder that is a file
    (or read-only) would abort the sweep half-way with a traceback."""
    from conftest import run_cli

    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "1_seed=1").write_text("not a folder")
    proc = run_cli("mtl", "-m", "seed=0,1", *QUICK, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "1_seed=1 is not a writable folder" in " ".join(proc.stderr.split())
    assert not list((tmp_path / "sweep").glob("0_*"))  # nothing ran
