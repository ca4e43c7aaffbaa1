"""Rendering a :class:`~auxrun.report.compare.Comparison`: as a rich table or as Markdown,
CSV, LaTeX or HTML text, one row per strategy (``strategies``) or laid out like a paper's table
(``table3``, ``molecules``; see :mod:`auxrun.report.paper`)."""

from __future__ import annotations

import html
import io

import pandas as pd
from rich.markup import escape
from rich.table import Table

from ..errors import AuxrunError
from .compare import GAIN, Comparison, rescaled
from .marks import Best, best_cells, cell_texts
from .paper import ktn_grid, molecules_grid, table2_grid, table3_grid, table4_grid
from .stats import paired_tests, ranking

FORMATS = ("rich", "md", "csv", "latex", "html")
LAYOUTS = ("strategies", "table2", "table3", "table4", "molecules", "ktn", "auto")
KG_DATASETS = ("movielens", "lastfm", "bookcrossing")  # Table 3's protocol
MOLECULE_METRICS = ("roc_auc", "rmse")                # MoleculeNet targets (classification, regression)
TABLE2_DATASETS = ("reddit", "oag_cs")
BEST_NOTE = "bold: the best mean of its column among ours"
PAPER_GRIDS = {"table2": table2_grid, "table3": table3_grid, "table4": table4_grid, "molecules": molecules_grid,
               "ktn": ktn_grid}


def _gain(c: Comparison, row: str) -> str:
    return "-" if row not in c.gains else f"{c.gains[row]:+.2f}%"


def _grid(c: Comparison) -> list[list[str]]:
    """One row per strategy, its cells as :func:`~auxrun.report.marks.cell_texts` writes them
    (significance marks, the column's best in bold)."""
    texts = cell_texts(c)
    return [["weighting", *c.columns, GAIN]] + [[row, *(texts.get((row, col), "-") for col in c.columns),
                                                 _gain(c, row)] for row in c.rows]


def stats_grid(c: Comparison) -> tuple[list[list[str]], str]:
    """The paired test of every cell against its baseline, and the strategies' ranking as caption."""
    tests = paired_tests(c)
    grid = [["weighting", "column", "vs", "n", "mean diff", "t-test p", "Wilcoxon p", "", "note"]]
    for r in tests.itertuples():
        grid.append([r.row, r.column, r.baseline, str(r.n), "-" if r.n == 0 else f"{r.mean_diff:+.4f}",
                     "-" if pd.isna(r.t_p) else f"{r.t_p:.3g}", "-" if pd.isna(r.wilcoxon_p) else f"{r.wilcoxon_p:.3g}",
                     r.mark, r.note])
    rank = ranking(c)
    if rank.result is None:
        caption = f"Ranking (Friedman, Nemenyi): not computed, {rank.reason}."
    else:
        ranks = ", ".join(f"{s} {v:.2f}" for s, v in sorted(rank.mean_ranks.items(), key=lambda kv: kv[1]))
        caption = (f"Ranking over {len(rank.columns)} columns (mean rank, 1 = best): {ranks}; Friedman p = "
                   f"{rank.pvalue:.3g}; Nemenyi critical difference {rank.cd:.2f} (mean ranks further apart differ "
                   f"at alpha 0.05).")
    return grid, "Paired over the seeds both cells share; mean diff > 0: better than the baseline. * p < 0.05, " \
                 "** p < 0.01 (Wilcoxon where n >= 6, else the t-test). " + caption


def render_stats(c: Comparison, fmt: str) -> str | Table | None:
    """:func:`stats_grid` in ``fmt`` (``None`` when no cell has a baseline)."""
    grid, caption = stats_grid(c)
    if len(grid) == 1:
        return None
    return render_grid(grid, fmt, "auxrun compare: paired tests against the baseline", caption)


# What each paper layout needs of the runs (auto_layout's rules, in words for messages)
LAYOUT_NEEDS = {
    "ktn": "zero-shot runs (auxrun zeroshot) only",
    "molecules": "runs whose targets are all molecular (ROC-AUC or RMSE)",
    "table4": "runs that rescale auxiliary losses (a loss_scale other than 1, experiment=table4)",
    "table2": "Reddit / OAG-CS runs, or runs whose trained strategies all use GPT-GNN's tasks (aux=gpt)",
    "table3": "knowledge-graph recommendation runs (dataset=movielens, lastfm or bookcrossing)",
}


def auto_layout(c: Comparison) -> str:
    """The layout the runs call for: ``ktn`` when all are zero-shot; ``molecules`` when every
    target is a molecular one (ROC-AUC or RMSE); ``table4`` when the runs rescale auxiliary
    losses (a ``loss_scale`` other than 1); ``table2`` for Reddit / OAG-CS or when every
    trained run has GPT-GNN's tasks (``aux=gpt``); ``table3`` for the knowledge-graph
    recommendation datasets; else ``strategies``."""
    runs = c.runs if c.runs is not None else pd.DataFrame(columns=["scheme", "dataset", "weighting", "aux"])
    schemes, metrics, datasets = set(c.cells.scheme), set(c.cells.metric), set(c.cells.dataset)
    trained = runs[~runs.weighting.isin(["none", "direct"])]
    if schemes == {"zeroshot"}:
        return "ktn"
    if "zeroshot" in schemes:
        return "strategies"
    if metrics <= set(MOLECULE_METRICS):
        return "molecules"
    if any(rescaled(text) for text in c.cells.loss_scales):
        return "table4"
    if datasets & set(TABLE2_DATASETS) or (len(trained) and set(trained.aux) == {"gpt"}):
        return "table2"
    if datasets <= set(KG_DATASETS):
        return "table3"
    return "strategies"


def render(c: Comparison, fmt: str, layout: str = "strategies") -> str | Table:
    """The comparison as a rich Table or as Markdown / CSV / LaTeX / HTML text: one row per
    strategy (``strategies``), or a paper's layout with its published figures (``table2``,
    ``table3``, ``table4``: the AUX-TS paper's; ``molecules``: beside Hu et al.'s; ``ktn``:
    one row per zero-shot transfer method); see :mod:`auxrun.report.paper`; ``auto`` picks one
    with :func:`auto_layout`."""
    if layout == "auto":
        layout = auto_layout(c)
    if layout == "strategies" and fmt == "csv":
        tidy = c.cells[["row", "column", "dataset", "scheme", "backbone", "metric", "keys", "mean", "std", "n",
                        "diverged", "baseline"]].copy()
        tidy["avg_gain_pct"] = tidy.row.map(c.gains)
        best = best_cells(c.cells)
        tidy["best"] = [(r, col) in best for r, col in zip(tidy.row, tidy.column)]
        buf = io.StringIO()
        tidy.to_csv(buf, index=False)
        return buf.getvalue().rstrip("\n")
    grid, caption = table_grid(c, layout)
    title = "mean ± std (n seeds)" if layout == "strategies" else f"{layout} layout, mean ± std (n seeds)"
    return render_grid(grid, fmt, f"auxrun compare: {title}", caption)


def table_grid(c: Comparison, layout: str) -> tuple[list[list[str]], str]:
    """The header and rows of one layout (not ``auto``), and its caption."""
    if layout in PAPER_GRIDS:
        grid, caption = PAPER_GRIDS[layout](c)
        best = "bold: the best strategy at each pair of loss scales" if layout == "table4" else BEST_NOTE
        return grid, f"{caption} * / **: the paired test against the baseline has p < 0.05 / 0.01; {best}"
    if layout != "strategies":
        raise AuxrunError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    return _grid(c), (f"{GAIN}: relative to none with the same settings, column by column; * / **: the paired "
                      f"test against it has p < 0.05 / 0.01; {BEST_NOTE}")


def render_grid(grid: list[list[str]], fmt: str, title: str, caption: str) -> str | Table:
    """A header row plus rows of strings as a rich Table or Markdown / CSV / LaTeX text."""
    if fmt == "rich":
        table = Table(title=escape(title), caption=escape(caption))
        for i, h in enumerate(grid[0]):  # labels hold [key=value]: text, never rich markup
            table.add_column(escape(h), justify="left" if i == 0 else "right")
        for line in grid[1:]:
            table.add_row(*(f"[bold]{escape(x)}[/bold]" if isinstance(x, Best) else escape(x) for x in line))
        return table
    if fmt == "md":
        def md(x: str) -> str:  # significance marks are literal asterisks; bold is the best
            text = x.replace("*", r"\*").replace("|", r"\|")
            return f"**{text}**" if isinstance(x, Best) else text
        out = ["| " + " | ".join(md(h) for h in grid[0]) + " |", "|" + "---|" * len(grid[0])]
        out += ["| " + " | ".join(md(x) for x in line) + " |" for line in grid[1:]]
        return "\n".join(out + ([f"\n{md(caption)}"] if caption else []))
    if fmt == "csv":
        buf = io.StringIO()
        pd.DataFrame(grid[1:], columns=grid[0]).to_csv(buf, index=False)
        return buf.getvalue().rstrip("\n")
    if fmt == "html":
        def cell(tag: str, x: str) -> str:
            text = html.escape(x)
            return f"<{tag}><strong>{text}</strong></{tag}>" if isinstance(x, Best) else f"<{tag}>{text}</{tag}>"
        head = "<tr>" + "".join(cell("th", h) for h in grid[0]) + "</tr>"
        rows = "\n".join("<tr>" + "".join(cell("td", x) for x in line) + "</tr>" for line in grid[1:])
        parts = [f"<caption>{html.escape(title)}</caption>" if title else "", f"<thead>{head}</thead>",
                 f"<tbody>\n{rows}\n</tbody>"]
        table = "<table>" + "".join(parts) + "</table>"
        return table + (f'\n<p class="caption">{html.escape(caption)}</p>' if caption else "")
    if fmt == "latex":
        def esc(s: str) -> str:
            return s.replace("_", r"\_").replace("%", r"\%").replace("±", r"$\pm$").replace("&", r"\&")
        lines = [r"\begin{tabular}{l" + "r" * (len(grid[0]) - 1) + "}", r"\toprule",
                 " & ".join(esc(h) for h in grid[0]) + r" \\", r"\midrule"]
        lines += [" & ".join(rf"\textbf{{{esc(x)}}}" if isinstance(x, Best) else esc(x) for x in line) + r" \\"
                  for line in grid[1:]]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines)
    raise AuxrunError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
