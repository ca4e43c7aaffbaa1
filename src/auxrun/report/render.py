"""Rendering a :class:`~auxrun.report.compare.Comparison`: as a rich table or as Markdown,
CSV or LaTeX text, one row per strategy (``strategies``) or laid out like a paper's table
(``table3``, ``molecules``; see :mod:`auxrun.report.paper`)."""

from __future__ import annotations

import io

import pandas as pd
from rich.markup import escape
from rich.table import Table

from ..errors import AuxrunError
from .compare import GAIN, Comparison, cell_at
from .paper import ktn_grid, molecules_grid, table2_grid, table3_grid

FORMATS = ("rich", "md", "csv", "latex")
LAYOUTS = ("strategies", "table2", "table3", "molecules", "ktn")
PAPER_GRIDS = {"table2": table2_grid, "table3": table3_grid, "molecules": molecules_grid, "ktn": ktn_grid}


def _gain(c: Comparison, row: str) -> str:
    return "-" if row not in c.gains else f"{c.gains[row]:+.2f}%"


def _grid(c: Comparison) -> list[list[str]]:
    header = ["weighting", *c.columns, GAIN]
    by_column = {col: c.cells[c.cells.column == col].set_index("row") for col in c.columns}
    return [header] + [[row, *(cell_at(by_column[col], row) for col in c.columns), _gain(c, row)] for row in c.rows]


def render(c: Comparison, fmt: str, layout: str = "strategies") -> str | Table:
    """The comparison as a rich Table or as Markdown / CSV / LaTeX text: one row per strategy
    (``strategies``), or the AUX-TS paper's Table 3 layout with its published figures
    (``table3``), or one row per molecular target beside Hu et al.'s figures (``molecules``), or
    one row per zero-shot transfer method beside the published KTN figures (``ktn``);
    see :mod:`auxrun.report.paper`."""
    if layout in PAPER_GRIDS:
        grid, caption = PAPER_GRIDS[layout](c)
        return render_grid(grid, fmt, f"auxrun compare: {layout} layout, mean ± std (n seeds)", caption)
    if layout != "strategies":
        raise AuxrunError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if fmt == "csv":
        tidy = c.cells[["row", "column", "dataset", "scheme", "backbone", "metric", "keys", "mean", "std", "n",
                        "diverged", "baseline"]].copy()
        tidy["avg_gain_pct"] = tidy.row.map(c.gains)
        buf = io.StringIO()
        tidy.to_csv(buf, index=False)
        return buf.getvalue().rstrip("\n")
    return render_grid(_grid(c), fmt, "auxrun compare: mean ± std (n seeds)",
                       f"{GAIN}: relative to none with the same settings, column by column")


def render_grid(grid: list[list[str]], fmt: str, title: str, caption: str) -> str | Table:
    """A header row plus rows of strings as a rich Table or Markdown / CSV / LaTeX text."""
    if fmt == "rich":
        table = Table(title=escape(title), caption=escape(caption))
        for i, h in enumerate(grid[0]):  # labels hold [key=value]: text, never rich markup
            table.add_column(escape(h), justify="left" if i == 0 else "right")
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
