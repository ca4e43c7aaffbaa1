"""Property: whatever damage one run's ``result.json`` or ``trace.csv`` has, ``auxrun compare``
over a folder of runs ends in a table (exit 0) or one line (exit 2), never a traceback, and the
damaged run is either counted or named (in the list of skipped runs, or in a warning about
the figures): never dropped in silence.

A hypothesis fuzzer writes four runs in the format ``auxrun mtl`` writes (two strategies x two
seeds, with validation history, auxiliary loss scales and per-step traces), then puts a bad
value (text, null, a list, a mapping, NaN, a negative or huge number, a boolean) at one place
of one run's record or of an ``auxrun tune`` summary (``tuning.json``) beside the runs, deletes
a field there, or damages a run's trace (a column dropped or renamed, text where numbers go,
only the header, cut in the middle of a row), and runs ``compare`` as a
user would (in-process, so that whatever escapes the command is seen), in a table format it
draws, sometimes with ``--report`` (figures included).
``make test`` draws a bounded number of examples; ``-m slow`` many more.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import traceback
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from auxrun.cli import app
from auxrun.errors import AuxrunError
from auxrun.report.compare import collect
from auxrun.report.results import write_result
from auxrun.run_folder import TRACE_FIELDS, RunFolder
from conftest import run_cli
from test_fuzz import fuzz

BAD: list[Any] = ["abc", "", None, True, -1, 2.5, 1e308, math.nan, [], [1], {}, {"a": 1}, "ü"]


class Delete:
    """The damage that removes a field."""

    def __repr__(self) -> str:
        return "<field deleted>"


DELETE = Delete()
TRACE_DAMAGE = ("drop a column", "rename task", "text in a number column", "header only", "cut mid-row", "empty")
FORMATS = ("rich", "md", "csv", "latex", "html")


def record(weighting: str, seed: int, value: float) -> dict[str, Any]:
    """A finished ``mtl`` run's record with every field ``compare`` reads."""
    history = [{"epoch": e, "auc": value - 0.1 / (e + 1), "loss": 1.0 / (e + 1)} for e in range(3)]
    return {
        "status": "completed", "command": "mtl", "dataset": "synthetic", "backbone": "gcn", "aux": "planted",
        "weighting": weighting, "seed": seed, "primary_metric": "auc", "higher_is_better": True,
        "metrics": {"val": {"auc": value + 0.01, "loss": 0.5}, "test": {"auc": value, "loss": 0.6}},
        "val_history": history, "best_epoch": 2, "best_score": value + 0.01, "runtime_s": 1.5, "device": "cpu",
        "threads": 1, "message": "", "finished_at": f"2026-12-0{seed + 1}T10:00:00+00:00",
        "config": {"command": "mtl", "seed": seed, "dataset": {"name": "synthetic"}, "backbone": {"name": "gcn"},
                   "weighting": {"name": weighting},
                   "aux": {"name": "planted", "tasks": {"helpful": {"loss_scale": 1.0}, "harmful": {"loss_scale": 1.0}}}},
    }


def write_trace(run_dir: Path) -> None:
    with RunFolder(run_dir).trace.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TRACE_FIELDS)
        writer.writeheader()
        for step in range(6):
            for task, cos in (("target", ""), ("helpful", 0.5), ("harmful", -0.2)):
                writer.writerow({"step": step, "epoch": step // 2, "task": task, "loss": 1.0 / (step + 1),
                                 "weight": 1.0, "weight_std": 0.0, "cos": cos})


def tuning_summary() -> dict[str, Any]:
    """``auxrun tune``'s ``tuning.json`` for two strategies of three trials each."""
    def trials() -> list[dict[str, Any]]:
        return [{"number": n, "state": state, "value": value, "params": {"trainer.lr": 0.01 * (n + 1)}}
                for n, (state, value) in enumerate((("complete", 0.7), ("pruned", None), ("complete", 0.75)))]

    return {"command": "mtl", "trials": 3, "final_seeds": 2, "strategies": {
        "none": {"space": {}, "best": {}, "best_value": 0.7, "trials": trials()},
        "fixed": {"space": {"trainer.lr": [0.001, 0.1]}, "best": {"trainer.lr": 0.03}, "best_value": 0.75,
                  "trials": trials()}}}


def places(value: Any, at: tuple = ()) -> list[tuple]:
    """Every place in a parsed JSON value (the first item of a list stands for all)."""
    out = [at] if at else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += places(v, (*at, k))
    elif isinstance(value, list) and value:
        out += places(value[0], (*at, 0))
    return out


def put_at(value: Any, at: tuple, new: Any) -> None:
    for k in at[:-1]:
        value = value[k]
    if new is DELETE:
        del value[at[-1]]
    else:
        value[at[-1]] = new


def damage_trace(path: Path, how: str) -> None:
    lines = path.read_text().splitlines()
    if how == "drop a column":
        lines = [",".join(line.split(",")[:-1]) for line in lines]
    elif how == "rename task":
        lines = [lines[0].replace("task", "tasks"), *lines[1:]]
    elif how == "text in a number column":
        lines = [lines[0], lines[1].replace("1.0", "one", 1), *lines[2:]]
    elif how == "header only":
        lines = lines[:1]
    elif how == "cut mid-row":
        lines = [*lines[:4], lines[4][:5]]
    else:
        lines = []
    path.write_text("\n".join(lines))


def check(data, folder: Path) -> None:
    runs = folder / "runs"
    for w, values in (("none", (0.70, 0.72)), ("fixed", (0.78, 0.80))):
        for seed, v in enumerate(values):
            write_result(runs / f"{w}-{seed}", record(w, seed, v))
            write_trace(runs / f"{w}-{seed}")
    victim = runs / data.draw(st.sampled_from(["none-0", "none-1", "fixed-0", "fixed-1"]), label="run")
    target = data.draw(st.sampled_from(("record", "trace", "tuning")), label="file")
    trace_damage = data.draw(st.sampled_from(TRACE_DAMAGE), label="damage") if target == "trace" else None
    if trace_damage:
        damage_trace(RunFolder(victim).trace, trace_damage)
    else:  # one bad value in the run's record, or in the tuning summary of an `auxrun tune` folder
        file, value = (RunFolder(victim).result, json.loads(RunFolder(victim).result.read_text())) \
            if target == "record" else (runs / "tuning.json", tuning_summary())
        at = data.draw(st.sampled_from(places(value)), label="place")
        put_at(value, at, data.draw(st.sampled_from([*BAD, DELETE]), label="value"))
        file.write_text(json.dumps(value))
    args = ["compare", "--outputs", str(runs), "--format", data.draw(st.sampled_from(FORMATS), label="format")]
    # figures take a second: one draw in four (a damaged tuning summary only shows in a report)
    report = target == "tuning" or data.draw(st.integers(0, 3), label="report") == 0
    if report:
        args += ["--report", str(folder / "report")]
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda r: seen.append(r.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("auxrun.report")  # results.py's and figures.py's warnings
    logger.addHandler(handler)
    try:
        proc = CliRunner().invoke(app, args)  # in-process: what escapes the command is proc.exception
    finally:
        logger.removeHandler(handler)
    if isinstance(proc.exception, AuxrunError):  # refused: the boundary prints this one line, exit 2
        assert str(proc.exception).strip() and "\n" not in str(proc.exception).strip(), proc.exception
        return
    assert proc.exception is None or (isinstance(proc.exception, SystemExit) and proc.exception.code == 0), \
        "".join(traceback.format_exception(proc.exception))
    said = " ".join((proc.output + " " + " ".join(seen)).split())
    # counted, or named: a run compare leaves out is in its warnings or its list of skipped runs
    frame, _ = collect(runs)
    assert str(victim) in set(frame.run_dir) or str(victim) in said, said
    if report and trace_damage in ("drop a column", "rename task", "text in a number column", "empty"):
        assert f"no per-step figure from {RunFolder(victim).trace}" in said, said  # the figures say what they lack


@fuzz(int(os.environ.get("AUXRUN_FUZZ_RECORD_EXAMPLES", "25")))
@given(data=st.data())
def test_a_damaged_record_or_trace_is_counted_or_named_never_a_traceback(data, tmp_path_factory):
    check(data, tmp_path_factory.mktemp("records"))


@pytest.mark.slow
@fuzz(400)
@given(data=st.data())
def test_a_damaged_record_or_trace_many_draws(data, tmp_path_factory):
    check(data, tmp_path_factory.mktemp("records"))


def test_a_record_of_the_contract_reads_and_each_kind_of_damage_is_named(tmp_path):
    """The fuzzer's baseline: the undamaged runs all count, and a seed given as text is skipped
    and listed, on the terminal and in the report, with its folder and the field (the damage is
    seen, not just survived)."""
    for seed in (0, 1):
        write_result(tmp_path / f"none-{seed}", record("none", seed, 0.7))
    frame, skipped = collect(tmp_path)
    assert len(frame) == 2 and not skipped
    from auxrun.report.results import FIELDS, SCHEMA, record_problem

    for key in FIELDS:  # a list where each field goes is named, field by field
        assert f"field {key} is [1]" in (record_problem({"schema": SCHEMA, **record("none", 0, 0.7), key: [1]}) or "")
    write_result(tmp_path / "none-1", {**record("none", 1, 0.7), "seed": "abc"})
    proc = run_cli("compare", "--outputs", str(tmp_path), "--report", str(tmp_path / "report"))
    said = " ".join(proc.stderr.split())
    assert proc.returncode == 0, proc.stderr
    assert f"skipped 1 unreadable run(s): {tmp_path / 'none-1'}: field seed is \"abc\": not an integer" in said
    assert f"| unreadable | {tmp_path / 'none-1'} | field seed is \"abc\": not an integer" in \
        (tmp_path / "report" / "report.md").read_text()


def test_every_shipped_record_is_of_the_contract():
    """The records under ``results/`` (written by every command: mtl, finetune, zeroshot,
    pretrain; completed, diverged, interrupted) all read: the contract describes what auxrun
    writes, not a narrower ideal."""
    from auxrun.report.results import record_problem

    records = sorted((Path(__file__).parents[1] / "results").rglob("result.json"))
    assert len(records) > 100
    problems = {str(p): record_problem(json.loads(p.read_text())) for p in records}
    assert not {p: why for p, why in problems.items() if why}
