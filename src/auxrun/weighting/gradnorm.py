"""``weighting=gradnorm`` (Chen et al., ICML 2018): task weights ``w_i`` (target included,
initialised 1) that balance the gradient norms of the weighted losses on ``W``, the
encoder's last layer (``weighting.params=last_layer``, the paper's choice; ``all``: every
shared parameter).

With ``G_i = w_i ||grad_W L_i||``, ``Gbar = mean_i G_i``, the inverse training rate
``r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0))`` (``L_i(0)``: task ``i``'s loss at the first
step) and the asymmetry ``alpha`` (``weighting.alpha``), the weights minimise

``L_grad(w) = sum_i | G_i - Gbar r_i^alpha |``

with ``Gbar r_i^alpha`` held constant, so ``dL_grad/dw_i = sign(G_i - Gbar r_i^alpha) ||grad_W L_i||``.
Each step the model moves along ``grad sum_i w_i L_i`` (heads included) with the current
weights; then ``w`` takes one Adam step on ``dL_grad/dw`` (``weighting.lr``), is clamped at
0 and renormalised to ``sum_i w_i = N``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .base import Diagnostics, Step, Weighting, diagnostics


class GradNorm(Weighting):
    name = "gradnorm"
    family = "adaptive"
    order = 170
    counters = ("started",)

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__()
        self.params = str(cfg.params)
        self.alpha = float(cfg.alpha)
        self.tasks = list(tasks)
        self.w = nn.Parameter(torch.ones(len(tasks)))
        self.register_buffer("initial", torch.ones(len(tasks)))
        self.optimizer = torch.optim.Adam([self.w], lr=float(cfg.lr))
        self.started = False

    def weight_gradient(self, losses: Tensor, norms: Tensor) -> Tensor:
        """``dL_grad/dw`` for mean losses ``L`` and norms ``||grad_W L_i||`` (module docstring)."""
        w = self.w.detach().to(norms.dtype)
        G = w * norms
        ratio = losses / self.initial.to(losses.dtype)
        r = ratio / ratio.mean()
        return torch.sign(G - G.mean() * r.pow(self.alpha)) * norms

    def backward(self, step: Step) -> Diagnostics:
        losses = torch.stack([loss.detach().mean() for loss in step.losses.values()])
        if not self.started:
            self.initial.copy_(losses.clamp_min(1e-12))
            self.started = True
        norms = step.task_grads(self.params).norm(dim=1)
        weights = dict(zip(step.tasks, self.w.detach().clone()))
        step.backward_weighted(weights)
        self.optimizer.zero_grad(set_to_none=True)
        self.w.grad = self.weight_gradient(losses, norms).to(self.w.dtype)
        self.optimizer.step()
        with torch.no_grad():
            self.w.clamp_(min=0.0)
            self.w.mul_(len(self.tasks) / self.w.sum().clamp_min(1e-12))
        return diagnostics(step, weights)
