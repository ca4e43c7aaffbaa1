"""``auxrun compare``: one row per weighting strategy, one column per (dataset, scheme,
backbone), cells ``mean ± std (n)`` over seeds of the run's primary target metric, and the
average relative gain over ``none`` as in the AUX-TS paper's tables:

``gain(s) = mean over columns c of  sign_c * (m_{s,c} - m_{none,c}) / |m_{none,c}| * 100%``

with ``sign_c = -1`` for metrics where lower is better (e.g. RMSE). Only columns where both
``s`` and its ``none`` baseline have finished runs count.

A cell never pools unlike runs. Runs are grouped by their whole resolved config minus the
seed and the keys that do not change results (:mod:`auxrun.report.groups`). Columns that
share a label (dataset / scheme / backbone) but differ in their column keys get labels naming
the keys that differ. Within a column, groups that share a row label (weighting [+ aux set])
are told apart by the keys that differ among them, and those keys label the row in every
column (``fixed [trainer.patience=5]``); keys that differ only from column to column (a
dataset's own learning rate) do not split rows. ``n`` counts distinct seeds: when one group
holds a seed twice, a warning names both folders and the newer run counts. Diverged runs are
never averaged in; the cell says how many diverged. A cell's ``none`` baseline is the ``none``
group of its column with the same settings (trainer, device, ...); zero-shot runs are compared
with ``direct`` instead.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import AuxrunError
from .groups import RunKey, describe, run_key, varying
from ..run_folder import CONFIG, RunFolder
from .results import find_results
from .starts import describe_start, differing_starts, start_key

log = logging.getLogger(__name__)
GAIN = "Avg. Gain"
COUNTED = ("completed", "diverged")  # a diverged run counts, as diverged, never in the mean


@dataclass
class Comparison:
    """Aggregated results: ``cells`` has one row per (strategy row, column) with
    ``mean``/``std``/``n`` over the completed runs' distinct seeds, ``diverged`` (distinct
    seeds that diverged), the distinguishing ``keys``, the ``baseline`` row it is compared
    with and its ``gain`` over it on the seeds both have (:func:`cell_gains`); ``gains`` is
    each row's Avg. Gain (:func:`row_gains`)."""

    cells: pd.DataFrame
    rows: list[str]
    columns: list[str]
    gains: dict[str, float]
    runs: pd.DataFrame | None = None  # the runs behind the cells (``row``, ``column``, ``metrics``, ``history``, ...)
    unfinished: list[tuple[str, str, str]] = field(default_factory=list)  # (status, run folder, why) of each run not counted
    # cells also hold ``row_unscaled`` (the row label without loss-scale keys) and ``loss_scales``
    # (``task=scale ...``, from each run's aux.tasks)

    @property
    def skipped(self) -> Counter:
        """How many runs were not counted, per status (failed, interrupted, no metric, ...)."""
        return Counter(status for status, _, _ in self.unfinished)

    def secondary(self, row: str, column: str, metric: str) -> tuple[float, float, int]:
        """``(mean, std, n)`` of another target metric (e.g. ``mrr`` beside the primary ``ndcg``)
        over the completed runs of one cell, from each run's metrics on the compared split."""
        if self.runs is None:
            return math.nan, math.nan, 0
        mine = self.runs[(self.runs.row == row) & (self.runs.column == column) & (self.runs.status == "completed")]
        values = pd.Series([m.get(metric, math.nan) for m in mine.metrics], dtype=float).dropna()
        return (float(values.mean()) if len(values) else math.nan), _std(values), int(len(values))


def _finished_at(run_dir: Path, result: dict[str, Any]) -> float:
    """When the run finished: ``finished_at`` of the result, else the file's modification time."""
    stamp = result.get("finished_at")
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            pass
    return os.stat(RunFolder(run_dir).result).st_mtime


def unfinished_runs(root: Path) -> list[tuple[str, str, str]]:
    """Run folders below ``root`` that a run started (it wrote ``config.yaml``) but that hold
    no ``result.json``: ``("interrupted", folder, why)`` each."""
    return [("interrupted", str(p.parent), "no result.json: stopped (its command resumes it) or still running")
            for p in sorted(root.rglob(CONFIG))
            if p.parent.name != ".hydra" and not RunFolder(p.parent).result.exists()]


def collect(root: Path, split: str = "test",
            found: list[tuple[Path, dict[str, Any]]] | None = None) -> tuple[pd.DataFrame, list[tuple[str, str, str]]]:
    """One record per completed or diverged run below ``root`` (or of ``found``, pairs of run
    folder and result record already read) with its primary metric on ``split`` (``nan`` for
    diverged runs) and its grouping key; and the runs not counted, as ``(status, run folder,
    why)``: failed (with the error), interrupted (:func:`unfinished_runs`, below ``root`` only),
    unreadable (a ``result.json`` that is not of the contract, :func:`~.results.read_record`)
    and completed without the metric."""
    if found is None and not root.exists():
        raise AuxrunError(f"outputs folder {root} does not exist; run e.g. `auxrun mtl` first or pass --outputs DIR")
    if found is None and root.is_file():
        raise AuxrunError(f"--outputs {root} is a file; pass the folder that holds the runs (its run folder is "
                          f"{root.parent})")
    records: list[dict] = []
    unfinished = unfinished_runs(root) if found is None else []
    unusable: list[tuple[Path, str]] = []
    if found is None:
        found = find_results(root, unusable)
        unfinished += [("unreadable", str(run_dir), why) for run_dir, why in unusable]
    for run_dir, r in found:
        if r["command"] == "pretrain":
            continue
        metric = r.get("primary_metric")
        value = r["metrics"].get(split, {}).get(metric) if metric else None
        finite = isinstance(value, (int, float)) and not math.isnan(value)
        if r["status"] not in COUNTED or metric is None or (r["status"] == "completed" and not finite):
            status = r["status"] if r["status"] != "completed" else "no metric"
            why = str(r.get("error") or r.get("message") or f"no finite {metric or 'primary metric'} on {split}")
            unfinished.append((status, str(run_dir), " ".join(why.split())[:300]))
            continue
        records.append({
            "dataset": r["dataset"], "scheme": r["command"], "backbone": r["backbone"], "weighting": r["weighting"],
            "aux": r["aux"], "seed": r["seed"], "metric": metric, "status": r["status"],
            "direction": f"{r['source']} -> {r['target']}" if r.get("source") else "",
            "value": float(value) if r["status"] == "completed" else math.nan,
            "higher_is_better": bool(r.get("higher_is_better", True)), "run_dir": str(run_dir),
            "finished": _finished_at(run_dir, r), "key": run_key(r.get("config") or {}, r["weighting"]),
            "metrics": dict(r["metrics"].get(split, {})), "history": list(r.get("val_history") or []),
            "loss_scales": loss_scales(r.get("config") or {}),
            "pretrained_sha256": r.get("pretrained_sha256"), "start": start_key(r),
        })
    if not any(rec["status"] == "completed" for rec in records):
        extra = f" ({len(unfinished) + len(records)} unfinished, diverged or failed runs skipped)" \
            if unfinished or records else ""
        raise AuxrunError(f"no finished runs under {root}{extra}; run e.g. `auxrun mtl` first or pass --outputs DIR")
    return pd.DataFrame.from_records(records), unfinished


def _identify(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``col_id`` (what a column stands for), ``row_base`` (weighting, with the auxiliary
    set where one column holds a weighting with several) and ``group`` (one experiment)."""
    keys: list[RunKey] = list(df.key)
    scheme = [f"{s} {d}" if d else s for s, d in zip(df.scheme, df.direction)]  # zeroshot: source -> target
    df = df.assign(col_id=[(d, s, b, m, k.column) for d, s, b, m, k in
                           zip(df.dataset, scheme, df.backbone, df.metric, keys)])
    trained = df[df.weighting != "none"]
    several = bool((trained.groupby(["col_id", "weighting"]).aux.nunique() > 1).any())
    df["row_base"] = [f"{w} [{a}]" if several and w != "none" else w for w, a in zip(df.weighting, df.aux)]
    df["setting"] = [k.setting for k in keys]
    df["row_part"] = [k.setting + k.strategy for k in keys]
    df["group"] = list(zip(df.row_base, df.row_part, df.col_id))
    return df


def _newest_per_seed(df: pd.DataFrame) -> pd.DataFrame:
    """One run per (group, seed): the newest. A repeated seed is a warning naming both folders,
    except for ``none`` runs that differ only in the auxiliary set they never trained."""
    df = df.sort_values("finished", kind="stable")
    dup = df.duplicated(["group", "seed"], keep="last")
    newest = {(g, seed): (run_dir, aux) for g, seed, run_dir, aux in
              zip(df[~dup].group, df[~dup].seed, df[~dup].run_dir, df[~dup].aux)}
    for _, r in df[dup].iterrows():
        keep, keep_aux = newest[(r.group, r.seed)]
        if r.weighting == "none" and r.aux != keep_aux:
            continue  # the same run by construction: none ignores its aux set
        log.warning("seed %s appears twice in one configuration: %s and %s; only the newer, %s, counts",
                    r.seed, r.run_dir, keep, keep)
    return df[~dup]


def _warn_on_remade_encoders(df: pd.DataFrame) -> None:
    """Runs a table pairs by seed that name one encoder (:func:`~.starts.start_key`: one dataset,
    backbone, seed and ``pretrained`` setting) but started from files of different content: the
    encoder was pre-trained again between them (a session's lost ``outputs/``, another machine),
    so they did not start from the same weights. A warning per such key, naming a run of each file."""
    for key, runs in differing_starts(zip(df.run_dir, df.start, df.pretrained_sha256)).items():
        log.warning("runs on %s started from %d different encoder files (it was pre-trained again between "
                    "them), e.g. %s: runs paired by seed did not share their start; rerun the older ones",
                    describe_start(key), len(runs), " and ".join(map(str, runs.values())))


def _column_labels(df: pd.DataFrame) -> tuple[dict, dict]:
    """Each column's label, ``dataset / scheme / backbone (metric)`` plus ``[key=value, ...]``
    for the column keys that differ among columns with that label; and those key texts."""
    ids = df.drop_duplicates("col_id").col_id.tolist()
    base = {i: f"{i[0]} / {i[1]} / {i[2]} ({i[3]})" for i in ids}
    label, keys = {}, {}
    for b in set(base.values()):
        members = [i for i in ids if base[i] == b]
        vary = varying(i[4] for i in members)
        for i in members:
            keys[i] = describe(i[4], vary)
            label[i] = f"{b} [{keys[i]}]" if keys[i] else b
    return label, keys


def _row_labels(df: pd.DataFrame) -> tuple[dict, dict, dict]:
    """Each (row base, row part)'s label: the base plus ``[key=value, ...]`` for every key that
    tells apart two groups with that base within one column; those key texts; and the label
    without the loss-scale keys (the strategy a Table 4 layout puts in its columns)."""
    groups = df.drop_duplicates("group")
    label, keys, unscaled = {}, {}, {}
    for b, same in groups.groupby("row_base"):
        vary = set().union(*(varying(col.row_part) for _, col in same.groupby("col_id")))
        rest = {k for k in vary if not _is_scale(k)}
        for part in same.row_part:
            keys[(b, part)] = describe(part, vary)
            label[(b, part)] = f"{b} [{keys[(b, part)]}]" if keys[(b, part)] else b
            unscaled[(b, part)] = f"{b} [{describe(part, rest)}]" if rest else b
    return label, keys, unscaled


def _is_scale(key: str) -> bool:
    """A key that multiplies an auxiliary loss: ``aux.tasks.<task>.loss_scale`` or an
    experiment's ``loss_scales.<task>`` that sets it (Table 4)."""
    return key.endswith(".loss_scale") or key.startswith("loss_scales.")


def rescaled(scales: str) -> bool:
    """Whether a :func:`loss_scales` text rescales any auxiliary loss."""
    return any(float(part.split("=", 1)[1]) != 1 for part in scales.split())


def loss_scales(config: dict[str, Any]) -> str:
    """``task=scale ...`` of every auxiliary task of a run's resolved config (scale 1 where unset)."""
    tasks = (config.get("aux") or {}).get("tasks") or {}
    return " ".join(f"{t}={(spec or {}).get('loss_scale', 1)}" for t, spec in tasks.items())


def _std(v: pd.Series) -> float:
    v = v.dropna()
    return float(v.std(ddof=1)) if len(v) > 1 else 0.0


def compare(root: Path, split: str = "test", found: list[tuple[Path, dict[str, Any]]] | None = None) -> Comparison:
    """The comparison of the runs below ``root`` (or of ``found``: see :func:`collect`)."""
    records, unfinished = collect(root, split, found)
    df = _newest_per_seed(_identify(records))
    _warn_on_remade_encoders(df)
    row_label, row_keys, row_unscaled = _row_labels(df)
    col_label, col_keys = _column_labels(df)
    row_id = list(zip(df.row_base, df.row_part))
    df["row"], df["row_keys"] = [row_label[i] for i in row_id], [row_keys[i] for i in row_id]
    df["row_unscaled"] = [row_unscaled[i] for i in row_id]
    df["column"], df["column_keys"] = df.col_id.map(col_label), df.col_id.map(col_keys)
    df["completed"] = df.status == "completed"
    cells = (df.groupby(["row", "column"], sort=False)
               .agg(dataset=("dataset", "first"), scheme=("scheme", "first"), direction=("direction", "first"),
                    backbone=("backbone", "first"),
                    metric=("metric", "first"), weighting=("weighting", "first"), setting=("setting", "first"),
                    row_keys=("row_keys", "first"), column_keys=("column_keys", "first"),
                    row_unscaled=("row_unscaled", "first"), loss_scales=("loss_scales", "first"),
                    groups=("group", "nunique"), mean=("value", "mean"), std=("value", _std),
                    n=("completed", "sum"), diverged=("completed", lambda c: int((~c).sum())),
                    higher_is_better=("higher_is_better", "first"))
               .reset_index())
    assert (cells.groups == 1).all(), "a cell holds one configuration"
    cells["keys"] = [", ".join(k for k in pair if k) for pair in zip(cells.row_keys, cells.column_keys)]
    cells["baseline"] = _baselines(cells)
    cells["gain"] = cell_gains(cells, df)
    rows = sort_rows(cells.row.unique())
    columns = sorted(cells.column.unique())
    order = {r: i for i, r in enumerate(rows)}
    cells = (cells.drop(columns=["setting", "groups"])
             .sort_values(["row", "column"], key=lambda v: v.map(order) if v.name == "row" else v)
             .reset_index(drop=True))
    return Comparison(cells=cells, rows=rows, columns=columns, gains=row_gains(cells), unfinished=unfinished,
                      runs=df[["row", "column", "seed", "status", "value", "metrics", "history", "run_dir", "dataset",
                               "scheme", "backbone", "weighting", "aux", "loss_scales", "row_unscaled"]]
                      .reset_index(drop=True))


def baseline_name(scheme: str) -> str:
    """The row every strategy of a scheme is compared with: ``direct`` for zero-shot transfer,
    ``none`` (no auxiliary task) otherwise."""
    return "direct" if scheme == "zeroshot" else "none"


def _baselines(cells: pd.DataFrame) -> list[str | None]:
    """Each cell's baseline (:func:`baseline_name`): that row of the same column with the same
    settings (the ``setting`` part of the key), if exactly one exists."""
    bases: dict[Any, list[str]] = {}
    for row, column, weighting, setting, scheme in zip(cells.row, cells.column, cells.weighting, cells.setting,
                                                      cells.scheme):
        if weighting == baseline_name(scheme):
            bases.setdefault((column, setting), []).append(row)
    out = []
    for column, weighting, setting, scheme in zip(cells.column, cells.weighting, cells.setting, cells.scheme):
        match = bases.get((column, setting), [])
        out.append(match[0] if len(match) == 1 and weighting != baseline_name(scheme) else None)
    return out


@cache
def row_rank() -> dict[str, int]:
    """Each strategy's place in a table: the weighting registry's display order, then the
    transfer methods' (rows of zero-shot runs)."""
    from ..transfer import METHODS
    from ..weighting import display_order

    return {name: i for i, name in enumerate([*display_order(), *METHODS])}


def sort_rows(rows: Iterable[str]) -> list[str]:
    """Row labels (``auxts``, ``fixed [helpful]``, ``fixed lambda=0.5``) by their strategy's
    place (:func:`row_rank`; unknown ones last), then by label."""
    rank = row_rank()
    return sorted(rows, key=lambda r: (rank.get(r.split(" ")[0], len(rank)), r))


def relative_gain(mean: float, baseline: float, higher_is_better: bool) -> float:
    """``(m - m0) / |m0| * 100``, signed so that a better mean is a positive gain."""
    return (1 if higher_is_better else -1) * (mean - baseline) / abs(baseline) * 100


def cell_gains(cells: pd.DataFrame, runs: pd.DataFrame) -> list[float]:
    """Each cell's gain over its baseline cell (:func:`relative_gain`), both means taken over
    the seeds the two cells share with a finished run (``runs``: ``row``, ``column``, ``seed``,
    ``status``, ``value``), so that, like the paired tests, it sets a strategy beside the
    baseline on the same seeds. A seed only one of them has (not yet run, failed or diverged)
    would otherwise compare means of different seeds, and where seeds differ as much as on a
    scaffold split (BACE: 0.64 to 0.85 for plain fine-tuning) that can turn the sign. With the
    same seeds these are the cells' own means. NaN where a cell has no baseline or no seed in
    common with it."""
    done = runs[(runs.status == "completed") & runs.value.map(lambda v: math.isfinite(v))]
    by_cell = {key: dict(zip(group.seed, group.value)) for key, group in done.groupby(["row", "column"], sort=False)}
    out = []
    for r, c, base, higher in zip(cells.row, cells.column, cells.baseline, cells.higher_is_better):
        mine, theirs = by_cell.get((r, c), {}), by_cell.get((base, c), {}) if base is not None else {}
        shared = [seed for seed in mine if seed in theirs]
        m0 = sum(theirs[seed] for seed in shared) / len(shared) if shared else 0.0
        out.append(relative_gain(sum(mine[seed] for seed in shared) / len(shared), m0, higher) if m0 else math.nan)
    return out


def row_gains(cells: pd.DataFrame) -> dict[str, float]:
    """Avg. Gain of every row of ``cells`` (a whole comparison, or one block of a paper's
    table): the mean of its cells' ``gain`` (:func:`cell_gains`) over the columns where it has
    one."""
    rel: dict[str, list[float]] = {}
    for r, gain in zip(cells.row, cells.gain):
        if not math.isnan(gain):
            rel.setdefault(r, []).append(gain)
    return {r: sum(v) / len(v) for r, v in rel.items()}


def cell_text(mean: float, std: float, n: int, diverged: int = 0) -> str:
    """``mean ± std (n)``, with ``, k diverged`` when runs of the cell diverged."""
    text = f"{mean:.4f} ± {std:.4f} ({int(n)})" if n else "- (0)"
    return text + (f", {int(diverged)} diverged" if diverged else "")


def cell_at(column_cells: pd.DataFrame, row: str) -> str:
    """The text of ``row``'s cell among one column's cells (indexed by row), ``-`` if none."""
    if row not in column_cells.index:
        return "-"
    r = column_cells.loc[row]
    return cell_text(r["mean"], r["std"], r["n"], r["diverged"])
