"""Is a gain more than seed noise? Paired tests of every cell against its baseline, and a
ranking of the strategies across all columns.

* **Paired tests** (:func:`paired_tests`): for a cell and its baseline cell (``none``, or
  ``direct`` for zero-shot) in the same column, the seeds both have completed runs for are the
  pairs. With ``n >= 2`` pairs, a paired t-test (``scipy.stats.ttest_rel``) on the differences
  ``d_s = m_s - m_{base,s}`` (sign flipped where lower is better); with ``n >= 6``, where a
  two-sided Wilcoxon signed-rank test can reach ``p < 0.05`` at all, also
  ``scipy.stats.wilcoxon``. Marks: ``*`` for ``p < 0.05``, ``**`` for ``p < 0.01`` (the t-test's
  p, or Wilcoxon's where it ran). Fewer pairs: no test, and the output says so.
* **Ranking** (:func:`ranking`): the strategies present in every column are ranked per column
  by their mean, the Friedman test asks whether they differ at all, and Nemenyi's critical
  difference says which mean ranks differ: ``autorank`` does it (non-parametric mode) and draws
  its CD diagram. It needs at least two strategies in at least five common columns; with two,
  autorank runs a one-sided Wilcoxon signed-rank test instead (is the better-ranked one
  greater?), without a post-hoc test, and the caption names the test that ran.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass

import pandas as pd

from .compare import Comparison

T_MIN, WILCOXON_MIN = 2, 6
RANK_MIN_COLUMNS = 5  # autorank's minimum number of performance estimates per strategy
# autorank's non-parametric tests: Friedman for three or more strategies; for two, Wilcoxon's
# signed-rank test that the better-ranked one is greater (one-sided)
OMNIBUS = {"friedman": "Friedman", "wilcoxon": "one-sided Wilcoxon signed-rank"}


def _mark(p: float) -> str:
    return "" if math.isnan(p) else "**" if p < 0.01 else "*" if p < 0.05 else ""


def paired_tests(c: Comparison) -> pd.DataFrame:
    """One row per cell with a baseline: ``row, column, baseline, n, mean_diff, t_p,
    wilcoxon_p, mark, note`` (module docstring)."""
    from scipy import stats

    assert c.runs is not None, "a comparison built by compare() keeps its runs"
    done = c.runs[c.runs.status == "completed"]
    values = {(r, col, s): v for r, col, s, v in zip(done.row, done.column, done.seed, done.value)}
    out = []
    for row, column, base, higher in zip(c.cells.row, c.cells.column, c.cells.baseline, c.cells.higher_is_better):
        if base is None or pd.isna(base):
            continue
        sign = 1.0 if higher else -1.0
        seeds = sorted(s for (r, col, s) in values if r == row and col == column and (base, col, s) in values)
        diffs = [sign * (values[(row, column, s)] - values[(base, column, s)]) for s in seeds]
        n = len(diffs)
        t_p = w_p = math.nan
        note = ""
        if n < T_MIN:
            note = f"n={n}: too few shared seeds for a test"
        elif all(math.isclose(d, diffs[0], rel_tol=1e-9, abs_tol=1e-12) for d in diffs):  # up to rounding
            note = "identical differences: no variance to test"
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t_p = float(stats.ttest_rel([sign * values[(row, column, s)] for s in seeds],
                                            [sign * values[(base, column, s)] for s in seeds]).pvalue)
                if n >= WILCOXON_MIN:
                    w_p = float(stats.wilcoxon(diffs).pvalue)
            if n < WILCOXON_MIN:
                note = f"n={n}: t-test only"  # the caption says from which n Wilcoxon runs
        p = w_p if not math.isnan(w_p) else t_p
        out.append({"row": row, "column": column, "baseline": base, "n": n,
                    "mean_diff": sum(diffs) / n if n else math.nan, "t_p": t_p, "wilcoxon_p": w_p,
                    "mark": _mark(p), "note": note})
    return pd.DataFrame(out, columns=["row", "column", "baseline", "n", "mean_diff", "t_p", "wilcoxon_p", "mark",
                                      "note"])


@dataclass
class Ranking:
    """autorank's result on the strategies x columns table of cell means (or why there is none)."""

    strategies: list[str]
    columns: list[str]
    result: object | None
    reason: str = ""

    @property
    def mean_ranks(self) -> dict[str, float]:
        if self.result is None:
            return {}
        return {str(k): float(v) for k, v in self.result.rankdf["meanrank"].items()}

    @property
    def pvalue(self) -> float:
        return math.nan if self.result is None else float(self.result.pvalue)

    @property
    def cd(self) -> float:
        cd = None if self.result is None else self.result.cd
        return math.nan if cd is None else float(cd)

    @property
    def test(self) -> str:
        """The test autorank ran: Friedman for three or more strategies, for two a one-sided
        Wilcoxon signed-rank test (better-ranked greater), with no post-hoc test."""
        omnibus = "" if self.result is None else str(self.result.omnibus)
        return OMNIBUS.get(omnibus, omnibus)

    def caption(self) -> str:
        """The ranking in one sentence, naming the test that ran (or why none did)."""
        if self.result is None:
            return f"Ranking: not computed, {self.reason}."
        ranks = ", ".join(f"{s} {v:.2f}" for s, v in sorted(self.mean_ranks.items(), key=lambda kv: kv[1]))
        text = f"Ranking over {len(self.columns)} columns (mean rank, 1 = best): {ranks}; {self.test} p = {self.pvalue:.3g}"
        if math.isnan(self.cd):
            return text + " (two strategies: no post-hoc test)."
        return text + f"; Nemenyi critical difference {self.cd:.2f} (mean ranks further apart differ at alpha 0.05)."


def ranking(c: Comparison, alpha: float = 0.05) -> Ranking:
    """Friedman test and Nemenyi critical difference over the columns every ranked strategy
    has (module docstring); ``reason`` says why not when there is too little."""
    means = c.cells[c.cells.n > 0].pivot_table(index="column", columns="row", values="mean", aggfunc="first")
    signs = c.cells.drop_duplicates("column").set_index("column").higher_is_better
    means = means.mul([1.0 if signs[col] else -1.0 for col in means.index], axis=0)  # higher is better everywhere
    if len(means) < RANK_MIN_COLUMNS:
        return Ranking([str(s) for s in means.columns], [str(col) for col in means.index], None,
                       f"{len(means.columns)} strategies in {len(means)} column(s): a ranking needs at least 2 "
                       f"strategies and {RANK_MIN_COLUMNS} columns")
    means = means.dropna(axis=1, thresh=max(2, len(means) // 2 + 1)).dropna(axis=0)
    strategies, columns = [str(s) for s in means.columns], [str(col) for col in means.index]
    if len(strategies) < 2 or len(columns) < RANK_MIN_COLUMNS:
        return Ranking(strategies, columns, None, f"{len(strategies)} strategies in {len(columns)} common columns: "
                                                   f"a ranking needs at least 2 strategies and {RANK_MIN_COLUMNS} "
                                                   "columns")
    from autorank import autorank

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # autorank prints its choices
        warnings.simplefilter("ignore")
        result = autorank(means, alpha=alpha, verbose=False, force_mode="nonparametric")
    return Ranking(strategies, columns, result)


def plot_cd(rank: Ranking, path_stem: str) -> list[str]:
    """The Nemenyi critical-difference diagram as ``<path_stem>.png`` and ``.pdf``."""
    if rank.result is None:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from autorank import plot_stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ax = plot_stats(rank.result, allow_insignificant=True)
    fig = ax.get_figure()
    written = []
    for ext in ("png", "pdf"):
        fig.savefig(f"{path_stem}.{ext}", bbox_inches="tight")
        written.append(f"{path_stem}.{ext}")
    plt.close(fig)
    return written
