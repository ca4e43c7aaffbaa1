"""``auxrun compare``: one row per weighting strategy, one column per (dataset, scheme,
backbone), cells ``mean ± std (n)`` over seeds of the run's primary target metric, and the
average relative gain over ``none`` as in the AUX-TS paper's tables:

``gain(s) = mean over columns c of  sign_c * (m_{s,c} - m_{none,c}) / |m_{none,c}| * 100%``

with ``sign_c = -1`` for metrics where lower is better (e.g. RMSE). Only columns where both
``s`` and ``none`` have runs count.
"""

from __future__ import annotations

import io
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.markup import escape
from rich.table import Table

from ..errors import AuxrunError
from .results import find_results

log = logging.getLogger(__name__)
ORDER = ["none", "fixed", "cosine", "selar", "auxts", "auxts_all", "gcs", "gns", "gcs_gns", "pcgrad", "rcgrad", "blo",
         "blo_rcgrad", "jd"]
FORMATS = ("rich", "md", "csv", "latex")
LAYOUTS = ("strategies", "table3", "molecules")
GAIN = "Avg. Gain"


@dataclass
class Comparison:
    """Aggregated results: ``cells`` has one row per (strategy row, column) with mean/std/n."""

    cells: pd.DataFrame
    rows: list[str]
    columns: list[str]
    gains: dict[str, float]
    skipped: Counter


def collect(root: Path, split: str = "test") -> tuple[pd.DataFrame, Counter]:
    """One record per finished run below ``root`` with its primary metric on ``split``."""
    if not root.exists():
        raise AuxrunError(f"outputs folder {root} does not exist; run e.g. `auxrun mtl` first or pass --outputs DIR")
    records, skipped = [], Counter()
    for run_dir, r in find_results(root):
        if r["command"] == "pretrain":
            continue
        metric = r.get("primary_metric")
        value = r["metrics"].get(split, {}).get(metric) if metric else None
        if r["status"] != "completed" or value is None or (isinstance(value, float) and math.isnan(value)):
            skipped[r["status"] if r["status"] != "completed" else "no metric"] += 1
            continue
        records.append({
            "dataset": r["dataset"], "scheme": r["command"], "backbone": r["backbone"], "weighting": r["weighting"],
            "aux": r["aux"], "seed": r["seed"], "metric": metric, "value": float(value),
            "higher_is_better": bool(r.get("higher_is_better", True)), "run_dir": str(run_dir),
        })
    if not records:
        extra = f" ({sum(skipped.values())} unfinished or failed runs skipped)" if skipped else ""
        raise AuxrunError(f"no finished runs under {root}{extra}; run e.g. `auxrun mtl` first or pass --outputs DIR")
    return pd.DataFrame.from_records(records), skipped


def _row_label(df: pd.DataFrame) -> pd.Series:
    """The strategy name; with ``[aux]`` appended when runs used several auxiliary sets."""
    several = df.loc[df.weighting != "none", "aux"].nunique() > 1
    return df.apply(lambda r: f"{r.weighting} [{r.aux}]" if several and r.weighting != "none" else r.weighting, axis=1)


def compare(root: Path, split: str = "test") -> Comparison:
    df, skipped = collect(root, split)
    df["row"] = _row_label(df)
    df["column"] = df.dataset + " / " + df.scheme + " / " + df.backbone + " (" + df.metric + ")"
    # `none` trains no auxiliary task, so runs differing only in `aux` are the same run: one per seed
    df = df[~((df.weighting == "none") & df.duplicated(["row", "column", "seed"]))]
    cells = (df.groupby(["row", "column", "dataset", "scheme", "backbone", "metric"])
               .agg(mean=("value", "mean"), std=("value", lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0),
                    n=("value", "size"), higher_is_better=("higher_is_better", "first"))
               .reset_index())
    rank = {name: i for i, name in enumerate(ORDER)}
    rows = sorted(cells.row.unique(), key=lambda r: (rank.get(r.split(" ")[0], len(ORDER)), r))
    columns = sorted(cells.column.unique())
    means = cells.pivot(index="row", columns="column", values="mean")
    higher = cells.groupby("column").higher_is_better.first()
    gains: dict[str, float] = {}
    if "none" in means.index:
        for row in rows:
            if row == "none":
                continue
            rel = [
                (1 if higher[c] else -1) * (means.at[row, c] - means.at["none", c]) / abs(means.at["none", c]) * 100
                for c in columns
                if not pd.isna(means.at[row, c]) and not pd.isna(means.at["none", c]) and means.at["none", c] != 0
            ]
            if rel:
                gains[row] = sum(rel) / len(rel)
    return Comparison(cells=cells, rows=rows, columns=columns, gains=gains, skipped=skipped)


def _cell(c: Comparison, row: str, column: str) -> str:
    hit = c.cells[(c.cells.row == row) & (c.cells.column == column)]
    if hit.empty:
        return "-"
    r = hit.iloc[0]
    return f"{r['mean']:.4f} ± {r['std']:.4f} ({int(r['n'])})"


def _gain(c: Comparison, row: str) -> str:
    return "-" if row not in c.gains else f"{c.gains[row]:+.2f}%"


def _grid(c: Comparison) -> list[list[str]]:
    header = ["weighting", *c.columns, GAIN]
    return [header] + [[row, *(_cell(c, row, col) for col in c.columns), _gain(c, row)] for row in c.rows]


def render(c: Comparison, fmt: str, layout: str = "strategies") -> str | Table:
    """The comparison as a rich Table or as Markdown / CSV / LaTeX text: one row per strategy
    (``strategies``), or the AUX-TS paper's Table 3 layout with its published figures
    (``table3``), or one row per molecular target beside Hu et al.'s figures (``molecules``);
    see :mod:`auxrun.report.paper`."""
    if layout in ("table3", "molecules"):
        from .paper import molecules_grid, table3_grid

        grid, caption = (table3_grid if layout == "table3" else molecules_grid)(c)
        return render_grid(grid, fmt, f"auxrun compare: {layout} layout, mean ± std (n seeds)", caption)
    if layout != "strategies":
        raise AuxrunError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if fmt == "csv":
        tidy = c.cells.drop(columns="higher_is_better").copy()
        tidy["avg_gain_pct"] = tidy.row.map(c.gains)
        buf = io.StringIO()
        tidy.to_csv(buf, index=False)
        return buf.getvalue().rstrip("\n")
    return render_grid(_grid(c), fmt, "auxrun compare: mean ± std (n seeds)", f"{GAIN}: relative to none")


def render_grid(grid: list[list[str]], fmt: str, title: str, caption: str) -> str | Table:
    """A header row plus rows of strings as a rich Table or Markdown / CSV / LaTeX text."""
    if fmt == "rich":
        table = Table(title=title, caption=caption)
        for i, h in enumerate(grid[0]):
            table.add_column(h, justify="left" if i == 0 else "right")
        for line in grid[1:]:
            table.add_row(*(escape(x) for x in line))
        return table
    if fmt == "md":
        out = ["| " + " | ".join(grid[0]) + " |", "|" + "---|" * len(grid[0])]
        out += ["| " + " | ".join(line) + " |" for line in grid[1:]]
        return "\n".join(out + ([f"\n{caption}"] if caption else []))
    if fmt == "csv":
        buf = io.StringIO()
        pd.DataFrame(grid[1:], columns=grid[0]).to_csv(buf, index=False)
        return buf.getvalue().rstrip("\n")
    if fmt == "latex":
        def esc(s: str) -> str:
            return s.replace("_", r"\_").replace("%", r"\%").replace("±", r"$\pm$").replace("&", r"\&")
        lines = [r"\begin{tabular}{l" + "r" * (len(grid[0]) - 1) + "}", r"\toprule",
                 " & ".join(esc(h) for h in grid[0]) + r" \\", r"\midrule"]
        lines += [" & ".join(esc(x) for x in line) + r" \\" for line in grid[1:]]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines)
    raise AuxrunError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
