"""``--layout strategies`` (the default): one row per weighting strategy, one column per setting
(dataset, scheme, backbone and whatever else differs), each strategy's Avg. Gain over ``none``
last. Fits any runs: ``auto`` falls back to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import BEST_NOTE, Layout, register

if TYPE_CHECKING:
    from ..compare import Comparison


def grid(c: Comparison) -> tuple[list[list[str]], str]:
    """One row per strategy, its cells as :func:`~auxrun.report.marks.cell_texts` writes them
    (significance marks, the column's best in bold)."""
    from ..compare import GAIN
    from ..marks import cell_texts

    texts = cell_texts(c)
    rows = [[row, *(texts.get((row, col), "-") for col in c.columns),
             "-" if row not in c.gains else f"{c.gains[row]:+.2f}%"] for row in c.rows]
    caption = (f"{GAIN}: relative to none with the same settings, column by column; * / **: the paired test "
               f"against it has p < 0.05 / 0.01; {BEST_NOTE}")
    return [["weighting", *c.columns, GAIN], *rows], caption


register(Layout("strategies", "one row per weighting", grid, rank=0, best_note=None))
