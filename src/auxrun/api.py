"""auxrun from Python: finished runs as a DataFrame, their comparison and its tests, and runs
composed and started with the CLI's own checks. Everything here is also ``auxrun.NAME``::

    import auxrun

    df = auxrun.runs("outputs")                      # one row per run: config flattened, metrics, status
    c = auxrun.compare(df[df.dataset == "synthetic"])  # or auxrun.compare("outputs")
    c.cells                                          # mean, std, n per (strategy row, column)
    auxrun.tests(c)                                  # paired t-test / Wilcoxon against each cell's baseline
    print(auxrun.table(c, layout="auto"))            # a paper's layout as Markdown

    cfg = auxrun.compose("mtl", ["weighting=pcgrad", "trainer.max_epochs=5"])  # validated as the CLI does
    result = auxrun.run(cfg, "outputs/notebook/pcgrad")                          # the result record

A config the CLI would refuse raises :class:`~auxrun.errors.AuxrunError` with the same message.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from omegaconf import DictConfig

    from .report.compare import Comparison

FIXED = ["run_dir", "status", "command", "dataset", "backbone", "aux", "weighting", "seed", "primary_metric",
         "runtime_s"]


def runs(outputs: str | Path = "outputs") -> pd.DataFrame:
    """Every run below ``outputs`` with a readable ``result.json``, one row each, pretrain and
    unfinished runs included: ``run_dir``, ``status``, ``command``, ``dataset``, ``backbone``,
    ``aux``, ``weighting``, ``seed``, ``primary_metric``, ``runtime_s``, then the metrics as
    ``val.NAME`` / ``test.NAME`` and the resolved config flattened as ``config.KEY.SUBKEY``
    (a list stays one cell). The whole record is kept in the ``result`` column, which
    :func:`compare` reads."""
    import pandas as pd

    from .dotted import flat
    from .errors import AuxrunError
    from .report.results import find_results

    root = Path(outputs)
    if not root.exists():
        raise AuxrunError(f"outputs folder {root} does not exist")
    rows = []
    for run_dir, result in find_results(root):
        row: dict[str, Any] = {k: result.get(k) for k in FIXED[1:]}
        row["run_dir"] = str(run_dir)
        for split, metrics in (result.get("metrics") or {}).items():
            row.update({f"{split}.{k}": v for k, v in (metrics or {}).items()})
        row.update(flat(result.get("config") or {}, "config."))
        row["result"] = result
        rows.append(row)
    df = pd.DataFrame(rows, columns=None if rows else [*FIXED, "result"])
    metrics = sorted(c for c in df.columns if c.startswith(("val.", "test.")))
    config = sorted(c for c in df.columns if c.startswith("config."))
    return df[[*FIXED, *metrics, *config, "result"]]


def compare(source: str | Path | pd.DataFrame = "outputs", split: str = "test") -> Comparison:
    """The comparison ``auxrun compare`` prints, of the runs below a folder or of the rows of a
    :func:`runs` DataFrame (filter it first to compare a part): runs of the same config pooled
    over seeds, each strategy against its baseline. ``split``: the metrics' split."""
    from .report.compare import compare as build

    if isinstance(source, (str, Path)):
        return build(Path(source), split)
    found = [(Path(d), r) for d, r in zip(source["run_dir"], source["result"])]
    return build(Path("."), split, found)


def tests(c: Comparison) -> pd.DataFrame:
    """Paired tests of every cell against its baseline over the seeds both share: ``row,
    column, baseline, n, mean_diff, t_p, wilcoxon_p, mark, note``."""
    from .report.stats import paired_tests

    return paired_tests(c)


def table(c: Comparison, layout: str = "strategies", fmt: str = "md") -> str:
    """The comparison in a ``--layout`` (``auto`` picks the paper's table the runs fit) as
    ``md``, ``csv``, ``latex`` or ``html`` text."""
    from .errors import AuxrunError
    from .report.render import render

    if fmt == "rich":
        raise AuxrunError("table(..., fmt='rich') is the terminal's; use md, csv, latex or html")
    return str(render(c, fmt, layout))


def compose(command: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The config of ``auxrun COMMAND OVERRIDES...`` (one job: no sweep lists), checked as the
    CLI checks it before a run: unknown options and keys, values out of range, folders."""
    from .overrides import check_group_overrides, precompose
    from .errors import AuxrunError

    commands = ("mtl", "pretrain", "finetune", "zeroshot")
    if command not in commands:
        raise AuxrunError(f"unknown command {command!r}; one of {', '.join(commands)}")
    if isinstance(overrides, str):  # iterated, it would be one override per character
        raise AuxrunError(f"overrides: a list of strings ([{overrides!r}]), not one string")
    args = [str(o) for o in overrides]  # one job: a list of values is refused (overrides.first_of_sweep)
    check_group_overrides(args)
    return precompose(command, args)


def run(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Run one composed config in ``run_dir`` (created if needed) and return its result record,
    as ``auxrun COMMAND`` does: a folder that holds a finished run of the same config is not
    run again, one with a checkpoint of it resumes."""
    from omegaconf import DictConfig

    from .errors import AuxrunError
    from .schema import check_folder
    from .train.runner import run_command

    if not isinstance(cfg, DictConfig) or "command" not in cfg:
        raise AuxrunError(f"run() takes the config that compose() returns, not {type(cfg).__name__}")
    check_folder("run_dir", str(run_dir))  # an empty name would be the working folder
    return run_command(cfg, Path(run_dir))


__all__ = ["compare", "compose", "run", "runs", "table", "tests"]
