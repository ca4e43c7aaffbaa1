"""``weighting=metabalance`` (He et al., WWW 2022): every auxiliary gradient is rescaled,
per shared parameter tensor, towards the magnitude of the target gradient.

For each tensor ``T`` of the shared parameters and each task ``i``, moving averages of the
gradient norms ``m_i^T <- beta m_i^T + (1 - beta) ||g_i^T||`` (``weighting.beta``); then

``g~_i^T = g_i^T (r s_i^T + 1 - r)``,  ``s_i^T = m_0^T / m_i^T``,

with the relax factor ``r`` (``weighting.relax``: 0 leaves the gradient as it is, 1 gives
it the target's magnitude) and ``weighting.mode``: ``both`` (every ``s_i^T``), ``decrease``
(``min(1, s_i^T)``: only auxiliary gradients larger than the target's shrink) or
``increase`` (``max(1, s_i^T)``). The shared update is ``g_0 + sum_i g~_i``; head ``i``
gets its own task's gradient (gradient surgery). The ratio of two moving averages started
at 0 needs no bias correction (both carry the same factor ``1 - beta^t``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .base import Diagnostics, Step, Weighting, diagnostics

MODES = ("both", "decrease", "increase")


class MetaBalance(Weighting):
    name = "metabalance"
    family = "adaptive"
    order = 160
    needs_target = True
    counters = ("m",)

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__()
        self.mode = str(cfg.mode)  # one of MODES: checked by the schema
        self.relax, self.beta = float(cfg.relax), float(cfg.beta)
        self.m: Tensor | None = None  # (tasks, tensors), from the first step

    def tensor_norms(self, step: Step, G: Tensor) -> Tensor:
        """``||g_i^T||`` for every task (rows) and shared tensor (columns)."""
        return torch.stack([part.norm(dim=1) for part in G.split([p.numel() for p in step.shared], dim=1)], 1)

    def scales(self, norms: Tensor) -> Tensor:
        """``r s_i^T + 1 - r`` for the auxiliary rows, after updating the moving averages."""
        m = torch.zeros_like(norms) if self.m is None else self.m.to(norms.device)
        self.m = m = self.beta * m + (1 - self.beta) * norms.detach()
        s = torch.where(m[1:] > 0, m[:1] / m[1:].clamp_min(1e-30), torch.ones_like(m[1:]))
        if self.mode == "decrease":
            s = s.clamp_max(1.0)
        elif self.mode == "increase":
            s = s.clamp_min(1.0)
        return self.relax * s + (1 - self.relax)

    def backward(self, step: Step) -> Diagnostics:
        G = step.task_grads()
        coef = self.scales(self.tensor_norms(step, G))  # (aux, tensors)
        sizes = [p.numel() for p in step.shared]
        per_column = torch.repeat_interleave(coef, torch.tensor(sizes, device=G.device), dim=1)
        step.set_shared_grad(G[0] + (per_column * G[1:]).sum(0))
        step.backward_heads()
        size = torch.tensor(sizes, dtype=coef.dtype, device=coef.device)
        mean = (coef * size).sum(1) / size.sum()  # the parameter-weighted mean scale per task
        return diagnostics(step, dict(zip(step.tasks, torch.cat([mean.new_ones(1), mean]))))
