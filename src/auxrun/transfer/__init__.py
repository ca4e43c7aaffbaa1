"""Zero-shot transfer between node types: ``auxrun zeroshot transfer=NAME``.

``transfer.name`` -> class; see :mod:`auxrun.transfer.base` for the interface and the loss,
:mod:`~auxrun.transfer.ktn` for KTN, :mod:`~auxrun.transfer.adaptation` and
:mod:`~auxrun.transfer.propagation` for the baselines.
"""

from __future__ import annotations

from typing import Any

from ..errors import AuxrunError
from .adaptation import CDAN, CDANE, DAN, DANN, JAN, WDGRL
from .base import StepBatch, Transfer, soft_cross_entropy
from .data import ZeroShotData
from .ktn import KTN
from .propagation import EP, LP

# in display order (the rows of a zero-shot table): the baseline, domain adaptation, propagation, KTN
METHODS: dict[str, type[Transfer]] = {m.name: m for m in (Transfer, DAN, JAN, DANN, CDAN, CDANE, WDGRL, LP, EP, KTN)}


def build(cfg: Any, zs: ZeroShotData, hidden: int) -> Transfer:
    """The method ``cfg.name`` for this zero-shot data and embedding width."""
    name = str(cfg.name)
    if name not in METHODS:
        raise AuxrunError(f"unknown transfer {name!r}; available: {', '.join(METHODS)}")
    return METHODS[name](zs, hidden, cfg)


__all__ = ["METHODS", "StepBatch", "Transfer", "ZeroShotData", "build", "soft_cross_entropy"]
