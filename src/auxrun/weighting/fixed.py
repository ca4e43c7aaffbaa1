"""``weighting=none`` and ``weighting=fixed``.

* ``none``: shared update ``g_0``; auxiliary tasks are not computed or trained at all.
* ``fixed``: shared update ``sum_i lambda_i g_i`` (target included, ``i = 0``) with configured
  ``lambda_i`` (``weights.<task>``; every task not listed gets ``default``, 1 unless set).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .base import TARGET, LossWeighting, Step


class NoAux(LossWeighting):
    name = "none"
    family = "baseline"
    order = 0
    trains_aux = False

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__()

    def weights(self, step: Step) -> dict[str, Tensor]:
        return {TARGET: torch.ones((), device=step.losses[TARGET].device)}


class Fixed(LossWeighting):
    name = "fixed"
    family = "baseline"
    order = 10

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__()
        self.default = float(cfg.get("default", 1.0))
        self.lambdas = {str(k): float(v) for k, v in (cfg.get("weights") or {}).items()}

    def weights(self, step: Step) -> dict[str, Tensor]:
        device = next(iter(step.losses.values())).device
        return {t: torch.tensor(self.lambdas.get(t, self.default), device=device) for t in step.losses}
