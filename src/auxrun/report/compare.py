"""``auxrun compare``: one row per weighting strategy, one column per (dataset, scheme,
backbone), cells ``mean ± std (n)`` over seeds of the run's primary target metric, and the
average relative gain over ``none`` as in the AUX-TS paper's tables:

``gain(s) = mean over columns c of  sign_c * (m_{s,c} - m_{none,c}) / |m_{none,c}| * 100%``

with ``sign_c = -1`` for metrics where lower is better (e.g. RMSE). Only columns where both
``s`` and its ``none`` baseline have finished runs count.

A cell never pools unlike runs. Runs are grouped by their whole resolved config minus the
seed and the keys that do not change results (:mod:`auxrun.report.groups`); groups that would
share a row label (weighting [+ aux set]) or a column label become separate rows or columns
whose labels name the keys that differ (``fixed [trainer.patience=5]``). ``n`` counts distinct
seeds: when one group holds a seed twice, a warning names both folders and the newer run
counts. Diverged runs are never averaged in; the cell says how many diverged. The ``none``
baseline of a row is the ``none`` row with the same settings (trainer, device, ...).
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import AuxrunError
from .groups import RunKey, differing, run_key
from .results import find_results

log = logging.getLogger(__name__)
ORDER = ["none", "fixed", "cosine", "selar", "auxts", "auxts_all", "gcs", "gns", "gcs_gns", "pcgrad", "rcgrad", "blo",
         "blo_rcgrad", "jd"]
GAIN = "Avg. Gain"
COUNTED = ("completed", "diverged")  # a diverged run counts, as diverged, never in the mean


@dataclass
class Comparison:
    """Aggregated results: ``cells`` has one row per (strategy row, column) with
    ``mean``/``std``/``n`` over the completed runs' distinct seeds, ``diverged`` (distinct
    seeds that diverged), the distinguishing ``keys`` and the ``baseline`` row it is compared
    with."""

    cells: pd.DataFrame
    rows: list[str]
    columns: list[str]
    gains: dict[str, float]
    skipped: Counter


def _finished_at(run_dir: Path, result: dict[str, Any]) -> float:
    """When the run finished: ``finished_at`` of the result, else the file's modification time."""
    stamp = result.get("finished_at")
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp).timestamp()
        except ValueError:
            pass
    return os.stat(run_dir / "result.json").st_mtime


def collect(root: Path, split: str = "test") -> tuple[pd.DataFrame, Counter]:
    """One record per completed or diverged run below ``root`` with its primary metric on
    ``split`` (``nan`` for diverged runs) and its grouping key; failed runs and runs without
    the metric are counted in the returned ``Counter``."""
    if not root.exists():
        raise AuxrunError(f"outputs folder {root} does not exist; run e.g. `auxrun mtl` first or pass --outputs DIR")
    records, skipped = [], Counter()
    for run_dir, r in find_results(root):
        if r["command"] == "pretrain":
            continue
        metric = r.get("primary_metric")
        value = r["metrics"].get(split, {}).get(metric) if metric else None
        finite = isinstance(value, (int, float)) and not math.isnan(value)
        if r["status"] not in COUNTED or metric is None or (r["status"] == "completed" and not finite):
            skipped[r["status"] if r["status"] != "completed" else "no metric"] += 1
            continue
        records.append({
            "dataset": r["dataset"], "scheme": r["command"], "backbone": r["backbone"], "weighting": r["weighting"],
            "aux": r["aux"], "seed": r["seed"], "metric": metric, "status": r["status"],
            "value": float(value) if r["status"] == "completed" else math.nan,
            "higher_is_better": bool(r.get("higher_is_better", True)), "run_dir": str(run_dir),
            "finished": _finished_at(run_dir, r), "key": run_key(r.get("config") or {}, r["weighting"]),
        })
    if not any(rec["status"] == "completed" for rec in records):
        extra = f" ({sum(skipped.values()) + len(records)} unfinished, diverged or failed runs skipped)" \
            if skipped or records else ""
        raise AuxrunError(f"no finished runs under {root}{extra}; run e.g. `auxrun mtl` first or pass --outputs DIR")
    return pd.DataFrame.from_records(records), skipped


def _identify(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``row_id`` / ``col_id`` (what a row and a column stand for) and ``group`` (one
    experiment: a row in a column)."""
    several = df.loc[df.weighting != "none", "aux"].nunique() > 1
    base = [f"{w} [{a}]" if several and w != "none" else w for w, a in zip(df.weighting, df.aux)]
    keys: list[RunKey] = list(df.key)
    df = df.assign(row_base=base)
    df["row_id"] = [(b, k.setting, k.strategy) for b, k in zip(base, keys)]
    df["col_id"] = [(d, s, b, m, k.column) for d, s, b, m, k in zip(df.dataset, df.scheme, df.backbone, df.metric, keys)]
    df["group"] = list(zip(df.row_id, df.col_id))
    return df


def _newest_per_seed(df: pd.DataFrame) -> pd.DataFrame:
    """One run per (group, seed): the newest. A repeated seed is a warning naming both folders,
    except for ``none`` runs that differ only in the auxiliary set they never trained."""
    df = df.sort_values("finished", kind="stable")
    dup = df.duplicated(["group", "seed"], keep="last")
    newest = df[~dup].set_index(["group", "seed"]).run_dir
    newest_aux = df[~dup].set_index(["group", "seed"]).aux
    for _, r in df[dup].iterrows():
        keep = newest[(r.group, r.seed)]
        if r.weighting == "none" and r.aux != newest_aux[(r.group, r.seed)]:
            continue  # the same run by construction: none ignores its aux set
        log.warning("seed %s appears twice in one configuration: %s and %s; only the newer, %s, counts",
                    r.seed, r.run_dir, keep, keep)
    return df[~dup]


def _labels(ids: pd.Series, base: pd.Series, parts) -> tuple[dict, dict]:
    """Label of each distinct id: its base label, plus ``[key=value, ...]`` naming what sets it
    apart from the other ids with the same base label; and those key texts."""
    label, keys = {}, {}
    by_base: dict[str, list] = {}
    for i, b in dict(zip(ids, base)).items():
        by_base.setdefault(b, []).append(i)
    for b, members in by_base.items():
        for i, text in zip(members, differing([parts(i) for i in members])):
            label[i], keys[i] = (f"{b} [{text}]" if text else b), text
    return label, keys


def _std(v: pd.Series) -> float:
    v = v.dropna()
    return float(v.std(ddof=1)) if len(v) > 1 else 0.0


def compare(root: Path, split: str = "test") -> Comparison:
    records, skipped = collect(root, split)
    df = _newest_per_seed(_identify(records))
    row_label, row_keys = _labels(df.row_id, df.row_base, lambda i: i[1] + i[2])
    col_base = df.dataset + " / " + df.scheme + " / " + df.backbone + " (" + df.metric + ")"
    col_label, col_keys = _labels(df.col_id, col_base, lambda i: i[4])
    df["row"], df["column"] = df.row_id.map(row_label), df.col_id.map(col_label)
    df["completed"] = df.status == "completed"
    cells = (df.groupby(["row", "column"], sort=False)
               .agg(dataset=("dataset", "first"), scheme=("scheme", "first"), backbone=("backbone", "first"),
                    metric=("metric", "first"), row_id=("row_id", "first"), col_id=("col_id", "first"),
                    mean=("value", "mean"), std=("value", _std), n=("completed", "sum"),
                    diverged=("completed", lambda c: int((~c).sum())),
                    higher_is_better=("higher_is_better", "first"))
               .reset_index())
    cells["row_keys"] = cells.row_id.map(row_keys)
    cells["column_keys"] = cells.col_id.map(col_keys)
    cells["keys"] = [", ".join(k for k in pair if k) for pair in zip(cells.row_keys, cells.column_keys)]
    cells["baseline"] = _baselines(cells, row_label)
    rank = {name: i for i, name in enumerate(ORDER)}
    rows = sorted(cells.row.unique(), key=lambda r: (rank.get(r.split(" ")[0], len(ORDER)), r))
    columns = sorted(cells.column.unique())
    gains = _gains(cells)
    order = {r: i for i, r in enumerate(rows)}
    cells = (cells.drop(columns=["row_id", "col_id"]).sort_values(["row", "column"], key=lambda v: v.map(order)
             if v.name == "row" else v).reset_index(drop=True))
    return Comparison(cells=cells, rows=rows, columns=columns, gains=gains, skipped=skipped)


def _baselines(cells: pd.DataFrame, row_label: dict) -> list[str | None]:
    """The ``none`` row each row is compared with: the one with the same settings (the
    ``setting`` part of the key), if exactly one exists."""
    nones: dict[Any, list[str]] = {}
    for row_id, label in row_label.items():
        if row_id[0] == "none":
            nones.setdefault(row_id[1], []).append(label)
    out = []
    for row_id in cells.row_id:
        match = nones.get(row_id[1], [])
        out.append(match[0] if len(match) == 1 and row_id[0] != "none" else None)
    return out


def _gains(cells: pd.DataFrame) -> dict[str, float]:
    """Avg. Gain of every row over its ``none`` baseline, across the columns both have."""
    means = {(r, c): m for r, c, m, n in zip(cells.row, cells.column, cells["mean"], cells.n) if n > 0}
    rel: dict[str, list[float]] = {}
    for r, c, base, higher in zip(cells.row, cells.column, cells.baseline, cells.higher_is_better):
        m, m0 = means.get((r, c)), means.get((base, c))
        if base is not None and m is not None and m0 is not None and m0 != 0:
            rel.setdefault(r, []).append((1 if higher else -1) * (m - m0) / abs(m0) * 100)
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
