"""Rendering a :class:`~auxrun.report.compare.Comparison`: as a rich table or as Markdown,
CSV, LaTeX or HTML text, in one of the layouts of :mod:`auxrun.report.layouts`."""

from __future__ import annotations

import html
import io

import pandas as pd
from rich.markup import escape
from rich.table import Table

from ..errors import AuxrunError
from .compare import Comparison
from .marks import Best, best_cells
from . import layouts
from .stats import paired_tests, ranking

FORMATS = ("rich", "md", "csv", "latex", "html")


def stats_grid(c: Comparison) -> tuple[list[list[str]], str]:
    """The paired test of every cell against its baseline, and the strategies' ranking as caption."""
    tests = paired_tests(c)
    grid = [["weighting", "column", "vs", "n", "mean diff", "t-test p", "Wilcoxon p", "", "note"]]
    for r in tests.itertuples():
        grid.append([r.row, r.column, r.baseline, str(r.n), "-" if r.n == 0 else f"{r.mean_diff:+.4f}",
                     "-" if pd.isna(r.t_p) else f"{r.t_p:.3g}", "-" if pd.isna(r.wilcoxon_p) else f"{r.wilcoxon_p:.3g}",
                     r.mark, r.note])
    caption = ranking(c).caption()
    return grid, "Paired over the seeds both cells share; mean diff > 0: better than the baseline. * p < 0.05, " \
                 "** p < 0.01 (Wilcoxon where n >= 6, else the t-test). " + caption


def render_stats(c: Comparison, fmt: str) -> str | Table | None:
    """:func:`stats_grid` in ``fmt`` (``None`` when no cell has a baseline)."""
    grid, caption = stats_grid(c)
    if len(grid) == 1:
        return None
    return render_grid(grid, fmt, "auxrun compare: paired tests against the baseline", caption)


def render(c: Comparison, fmt: str, layout: str = "strategies") -> str | Table:
    """The comparison as a rich Table or as Markdown / CSV / LaTeX / HTML text: one row per
    strategy (``strategies``), or a paper's layout with its published figures
    (:mod:`auxrun.report.layouts`); ``auto`` picks the one the runs call for."""
    if layout == layouts.AUTO:
        layout = layouts.auto(c)
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


def render_extra(c: Comparison, fmt: str, layout: str) -> str | Table | None:
    """The layout's second table where the runs hold one (``Layout.extra``), else ``None``."""
    extra = extra_table(c, layout)
    return None if extra is None else render_grid(extra[1], fmt, f"auxrun compare: {extra[0]}", extra[2])


def extra_table(c: Comparison, layout: str) -> tuple[str, list[list[str]], str] | None:
    """``(heading, grid, caption)`` of the layout's second table, or ``None``."""
    found = layouts.get(layouts.auto(c) if layout == layouts.AUTO else layout).extra
    return None if found is None else found(c)


def table_grid(c: Comparison, layout: str) -> tuple[list[list[str]], str]:
    """The header and rows of one layout (not ``auto``), and its caption."""
    return layouts.get(layout).table(c)


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
