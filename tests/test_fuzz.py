"""Property: whatever value a user gives whatever key, and whatever key a user adds or
removes, auxrun either refuses it with one line (exit 2, :class:`~auxrun.errors.AuxrunError`)
or finishes the run with finite metrics (or records that it diverged). A hypothesis fuzzer
draws a command, a key of that command's composed config, an edit of it (``key=value``,
``++key=value``, ``+key.extra=value`` beside or below it, ``~key``) and a value from a pool
of bad ones, and checks exactly that, in-process: the config is composed and checked as the CLI
does (:func:`auxrun.overrides.check_group_overrides`, :func:`~auxrun.overrides.precompose`),
then run. ``make test`` draws a bounded number of examples; ``-m slow`` many more."""

from __future__ import annotations

import math
import os
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from auxrun.overrides import check_group_overrides, precompose
from auxrun.configs import group_options
from auxrun.errors import AuxrunError
from auxrun.report.groups import flatten

TINY = {  # a run of a second or two per command, overridden by the drawn key
    "mtl": ["dataset.num_users=40", "dataset.num_items=30"],
    "pretrain": ["dataset.num_users=40", "dataset.num_items=30"],
    "finetune": ["dataset.num_users=40", "dataset.num_items=30"],
    "zeroshot": [],
}
COMMON = ["trainer.max_epochs=2", "trainer.progress=false", "trainer.checkpoint=false", "threads=1"]
BAD = ["abc", "nan", "inf", "-inf", "1e308", "-1e308", "-1", "0", "-0.5", "0.5", "2", "''", "[]", "[1,2]",
       "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]", "{}", "{a:1}", "{a:{b:[1]}}", "null", "true", "ü", "'[/x]'",
       "' '", "0,1", "range(0,0)", "interval(0,1)", "glob(*)"]  # the last four: Hydra's sweep syntax, without -m
SKIP = ("hydra.", "paths.", "logger.", "dataset.data_dir", "dataset.download")  # where files go: test_bad_input


GROUPS = {"mtl": ("weighting", "backbone", "aux"), "pretrain": ("backbone", "aux"), "finetune": ("weighting", "backbone"),
          "zeroshot": ("transfer", "backbone")}  # the groups whose options change which keys exist


@cache
def choices(command: str) -> tuple[str, ...]:
    """The command's defaults (``""``) and every option of the groups it lets a user choose."""
    return ("", *(f"{g}={o}" for g in GROUPS[command] for o in group_options(g)))


@cache
def keys_of(command: str, choice: str) -> tuple[str, ...]:
    try:
        cfg = precompose(command, [*TINY[command], *([choice] if choice else [])])
    except AuxrunError:  # an option that does not fit the tiny data: refused in one line, nothing to draw
        return ()
    flat = flatten(OmegaConf.to_container(cfg, resolve=False))
    return tuple(sorted(k for k in flat if not k.startswith(SKIP)))


def finite(metrics: dict) -> bool:
    return all(math.isfinite(v) for split in metrics.values() for v in split.values() if isinstance(v, float))


EDITS = {  # how an override edits the drawn key
    "set": "{key}={value}", "force": "++{key}={value}", "beside": "+{parent}extra={value}",
    "below": "+{key}.extra={value}", "remove": "~{key}",
}


def outcome(command: str, choice: str, key: str, value: str, folder, edit: str = "set") -> str:
    """``refused``, ``completed`` or ``diverged``; raises on anything else (the defect)."""
    parent = key.rpartition(".")[0] + "." if "." in key else ""
    overrides = [*TINY[command], *([choice] if choice else []), *COMMON, f"paths.outputs={folder / 'outputs'}", f"paths.cache={folder / 'cache'}",
                 EDITS[edit].format(key=key, value=value, parent=parent)]
    try:
        check_group_overrides(overrides)
        cfg = precompose(command, overrides)
        if command == "zeroshot":
            from auxrun.transfer.zeroshot import run
        else:
            from auxrun.train.commands import run
        result = run(cfg, folder / "run")
    except AuxrunError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip(), f"{key}={value}: not one line: {exc}"
        return "refused"
    assert result["status"] in ("completed", "diverged"), f"{key}={value}: {result['status']}"
    if result["status"] == "completed":
        assert finite(result["metrics"]), f"{key}={value}: completed with non-finite metrics {result['metrics']}"
    return result["status"]


def _fuzz(data, tmp_path_factory) -> None:
    command = data.draw(st.sampled_from(sorted(TINY)), label="command")
    choice = data.draw(st.sampled_from(choices(command)), label="choice")
    keys = keys_of(command, choice)
    if not keys:  # the option alone is refused (asserted one line by outcome)
        outcome(command, choice, "seed", "0", tmp_path_factory.mktemp("fuzz"))
        return
    key = data.draw(st.sampled_from((*keys, *GROUPS[command])), label="key")  # a leaf, or a group itself
    value = data.draw(st.sampled_from(BAD), label="value")
    edit = data.draw(st.sampled_from(("set", "set", *EDITS)), label="edit")  # a value given most often
    outcome(command, choice, key, value, tmp_path_factory.mktemp("fuzz"), edit)


def fuzz(examples: int) -> settings:
    """Derandomized (the same draws every run) unless ``AUXRUN_FUZZ_RANDOM=1`` explores new ones."""
    return settings(deadline=None, derandomize=not os.environ.get("AUXRUN_FUZZ_RANDOM"), database=None,
                    max_examples=examples,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@fuzz(int(os.environ.get("AUXRUN_FUZZ_EXAMPLES", "10")))
@given(data=st.data())
def test_any_key_with_a_bad_value_is_refused_in_one_line_or_runs_to_the_end(data, tmp_path_factory):
    _fuzz(data, tmp_path_factory)


@pytest.mark.slow
@fuzz(400)
@given(data=st.data())
def test_any_key_with_a_bad_value_many_draws(data, tmp_path_factory):
    _fuzz(data, tmp_path_factory)
