"""The table layouts of ``auxrun compare --layout``: one module each, found through :data:`REGISTRY`.

A layout module registers one :class:`Layout`: its name, a one-line summary (the CLI's help
and the docs list the layouts from here), the grid it builds from a
:class:`~auxrun.report.compare.Comparison` (header, rows and caption, with the published
figures beside ours), the published table it sets beside (a key of ``published.yaml``), and
an optional second table it adds where the runs hold one (``extra``; ``ktn``'s table of
HGNNs), the rule by which ``--layout auto`` picks it (``fits``, tried in ``rank`` order; a dataset
says which layouts it fits where it registers its loader, :func:`auxrun.data.loader`). Every
module of this package is imported here, so a new layout is its module (and its published
figures in ``published.yaml``) and its tests.

Layout modules import what builds their grid inside the functions: the CLI reads this
registry for its help, and must start fast.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import AuxrunError

if TYPE_CHECKING:
    from ..compare import Comparison

AUTO = "auto"
BEST_NOTE = "bold: the best mean of its column among ours"
MARKS_NOTE = "* / **: the paired test against the baseline has p < 0.05 / 0.01"


@dataclass(frozen=True)
class Layout:
    """One table layout (see the module docstring)."""

    name: str
    summary: str
    grid: Callable[[Comparison], tuple[list[list[str]], str]]
    fits: Callable[[Comparison], bool] | None = None  # None: fits any runs (the fallback of auto)
    needs: str = ""  # what ``fits`` asks of the runs, in words
    rank: int = 100  # auto asks the layouts in this order
    best_note: str | None = BEST_NOTE  # None: the grid's caption is complete
    published: str | None = None  # the published table beside ours (a key of published.yaml)
    # a second table the layout adds where the runs hold it: (heading, grid, caption) or None
    extra: Callable[[Comparison], tuple[str, list[list[str]], str] | None] | None = None

    def table(self, c: Comparison) -> tuple[list[list[str]], str]:
        """The grid and its whole caption (the marks and the bold explained)."""
        grid, caption = self.grid(c)
        return grid, caption if self.best_note is None else f"{caption} {MARKS_NOTE}; {self.best_note}"


REGISTRY: dict[str, Layout] = {}


def register(layout: Layout) -> Layout:
    REGISTRY[layout.name] = layout
    return layout


def names() -> list[str]:
    """Every ``--layout`` choice: the registered layouts in ``auto``'s order, then ``auto``."""
    return [layout.name for layout in sorted(REGISTRY.values(), key=lambda x: x.rank)] + [AUTO]


def get(name: str) -> Layout:
    try:
        return REGISTRY[name]
    except KeyError:
        raise AuxrunError(f"unknown layout {name!r}; use one of {', '.join(names())}") from None


def auto(c: Comparison) -> str:
    """The layout the runs call for: the first (by ``rank``) whose rule fits them, else the
    fallback that fits any runs."""
    ordered = sorted(REGISTRY.values(), key=lambda x: x.rank)
    found = next((x for x in ordered if x.fits is not None and x.fits(c)), None)
    return (found or next(x for x in ordered if x.fits is None)).name


def trained_only(c: Comparison) -> bool:
    """No zero-shot runs among the compared ones (the paper tables of trained strategies)."""
    return "zeroshot" not in set(c.cells.scheme)


def datasets_fit(c: Comparison, layout: str, every: bool = True) -> bool:
    """Whether every (``every``) or some compared dataset's loader declares ``layout``."""
    from ...data import fits_layout

    fit = [fits_layout(d, layout) for d in sorted(set(c.cells.dataset))]
    return bool(fit) and (all(fit) if every else any(fit))


def help_text() -> str:
    """The ``--layout`` help: every layout with its summary."""
    return " | ".join([*(f"{n} ({get(n).summary})" for n in names()[:-1]), f"{AUTO} (the one the runs call for)"])


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
