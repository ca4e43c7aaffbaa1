"""What a cell's text says beyond ``mean ± std (n)``: whether it holds its column's best mean,
and whether it differs significantly from its baseline.

* **Best**: in each column, the cells with the highest mean (lowest where lower is better)
  among the cells with at least one finished run, when at least two such cells exist; ties
  are all best. Such a text is a :class:`Best`, which every output format renders in bold
  (``**x**`` in Markdown, ``\\textbf{x}`` in LaTeX, bold in the terminal and HTML).
* **Significance**: ``*`` / ``**`` after the text where the paired test against the baseline
  (:func:`auxrun.report.stats.paired_tests`) has ``p < 0.05`` / ``p < 0.01``.
"""

from __future__ import annotations

import pandas as pd

from .compare import Comparison, cell_text
from .stats import paired_tests


class Best(str):
    """A cell text that holds its column's best mean; renderers set it in bold."""


def best_cells(cells: pd.DataFrame) -> set[tuple[str, str]]:
    """``(row, column)`` of every cell holding its column's best mean (module docstring)."""
    out: set[tuple[str, str]] = set()
    for column, mine in cells[cells.n > 0].groupby("column", sort=False):
        if len(mine) < 2:
            continue
        higher = bool(mine.higher_is_better.iloc[0])
        best = mine["mean"].max() if higher else mine["mean"].min()
        out |= {(r, column) for r, m in zip(mine.row, mine["mean"]) if m == best}
    return out


def cell_texts(c: Comparison, best_within: list | None = None) -> dict[tuple[str, str], str]:
    """Every cell's text, ``mean ± std (n)`` plus its significance mark, a :class:`Best` where
    it holds the best mean of its column (or of its group in ``best_within``, one entry per row
    of ``c.cells``: Table 4 compares the strategies at each pair of loss scales); keyed by
    ``(row, column)``."""
    tests = paired_tests(c)
    sig = {(r, col): m for r, col, m in zip(tests.row, tests.column, tests.mark) if m}
    cells = c.cells if best_within is None else c.cells.assign(column=list(zip(c.cells.column, best_within)))
    best = {(r, col if best_within is None else col[0]) for r, col in best_cells(cells)}
    out: dict[tuple[str, str], str] = {}
    for r in c.cells.itertuples():
        key = (r.row, r.column)
        text = cell_text(r.mean, r.std, r.n, r.diverged) + sig.get(key, "")
        out[key] = Best(text) if key in best else text
    return out


def secondary_texts(c: Comparison, wanted: list[tuple[str, str, str, object]]) -> dict[tuple[str, str, str], str]:
    """``mean ± std (n)`` of other target metrics (:meth:`Comparison.secondary`, higher is
    better), for each ``(row, column, metric, group)`` wanted, keyed by ``(row, column, metric)``;
    a :class:`Best` where it is the best of its ``(group, metric)``; ``-`` without runs."""
    values = {(r, col, m): c.secondary(r, col, m) for r, col, m, _ in wanted}
    frame = pd.DataFrame([{"row": (r, col), "column": (g, m), "mean": values[(r, col, m)][0],
                           "n": values[(r, col, m)][2], "higher_is_better": True} for r, col, m, g in wanted],
                         columns=["row", "column", "mean", "n", "higher_is_better"])
    best = best_cells(frame) if len(frame) else set()
    out: dict[tuple[str, str, str], str] = {}
    for r, col, m, g in wanted:
        mean, std, n = values[(r, col, m)]
        text = cell_text(mean, std, n) if n else "-"
        out[(r, col, m)] = Best(text) if ((r, col), (g, m)) in best else text
    return out
