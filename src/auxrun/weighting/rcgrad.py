"""``weighting=rcgrad`` (Dey & Ning 2024): PCGrad projection of the conflicting auxiliary
gradients, then each projected ``g~_i`` scaled by

``a_i = (min(1, ||g_0|| / ||g~_i||) + w_i) / 2``,  ``w_i in [0, 1]`` learnable per task,

so the shared update is ``g_0 + sum_i a_i g~_i`` (no auxiliary term conflicts with ``g_0``).

How ``w`` learns (``weighting.learn``):

* ``decay`` (the authors' code, default): ``w_i`` starts at 1; the gradient of ``w_i`` is the
  auxiliary loss value ``L_i`` (what back-propagating ``sum_i w_i L_i`` gives), stepped by
  Adam (``beta = (0.9, 0.999)``, ``eps = 1e-8``, no weight decay, ``lr = weighting.lr``, 1e-3
  as the authors' ``adapt_lr``), then clamped to ``[0, 1]``. Adam moves ``w_i`` by
  ``lr * m_i / (sqrt(v_i) + eps)`` per step, ``m_i`` and ``v_i`` the bias-corrected moving
  averages of ``L_i`` and ``L_i^2``. Hence the decay does not depend on the size of the
  loss: ``c * L_i`` for any ``c > 0`` gives the same trajectory (up to ``eps``), a constant
  loss lowers ``w_i`` by exactly ``lr`` per step (``w_i = 1 - lr t`` until it reaches 0 after
  ``1 / lr`` steps), and a loss that fluctuates lowers it by about
  ``lr * mean(L_i) / rms(L_i)`` per step (slower for noisier losses). What a task does to
  the target plays no part.
* ``meta``: ``w`` is trained by the target-loss look-ahead of AUX-TS. With
  ``theta' = theta - alpha (g_0 + sum_i a_i g~_i)`` (target head: ``- alpha grad L_0``) and
  ``M`` the target loss at ``theta'`` on a held-out training batch,
  ``dM/dw_i = -(alpha / 2) <grad M(theta'), g~_i>``: one backward at ``theta'``, exact,
  since ``theta'`` is linear in ``w``. Adam on ``w``, clamped to ``[0, 1]``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .base import TARGET, Step
from .gradient import GradientCombination, norm_ratio, project_conflicts

LEARN = ("decay", "meta")


class RCGrad(GradientCombination):
    name = "rcgrad"
    family = "gradient"
    order = 90

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__(cfg, tasks)
        self.learn = str(cfg.learn)  # one of LEARN: checked by the schema
        self.needs_lookahead = self.learn == "meta"
        self.step_size = float(cfg.step_size)
        self.folds = int(cfg.folds)
        self.aux = [t for t in tasks if t != TARGET]
        self.w = nn.Parameter(torch.ones(len(self.aux)))
        self.optimizer = torch.optim.Adam([self.w], lr=float(cfg.lr))

    def surgery(self, g0: Tensor, A: Tensor, cos: Tensor) -> Tensor:
        return project_conflicts(g0, A)

    def scales(self, g0: Tensor, A: Tensor, w: Tensor) -> Tensor:
        """``a_i = (min(1, ||g_0|| / ||g~_i||) + w_i) / 2``."""
        return (norm_ratio(g0, A).clamp_max(1) + w) / 2

    def aux_coefficients(self, g0: Tensor, A: Tensor, cos: Tensor) -> Tensor:
        return self.scales(g0, A, self.w.detach().to(A.dtype))

    def meta_loss(self, step: Step, g0: Tensor, A: Tensor, w: Tensor) -> Tensor:
        """``M(w)``: the target loss on the held-out batch after one step along the update."""
        theta1, _ = step.lookahead_point(g0 + self.scales(g0, A, w) @ A, self.step_size)
        return step.lookahead.meta_loss_at(theta1)

    def meta_gradient(self, step: Step, g0: Tensor, A: Tensor) -> Tensor:
        w = self.w.detach().to(A.dtype).clone().requires_grad_()
        (grad,) = torch.autograd.grad(self.meta_loss(step, g0.detach(), A.detach(), w), w)
        return grad

    def before_update(self, step: Step, g0: Tensor, A: Tensor, cos: Tensor) -> None:
        if self.learn == "meta":
            self._adam_step(self.meta_gradient(step, g0, A))

    def after_update(self, step: Step) -> None:
        if self.learn == "decay":
            self._adam_step(torch.stack([step.losses[t].detach().mean() for t in self.aux]))

    def _adam_step(self, grad: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.w.grad = grad.to(self.w.dtype)
        self.optimizer.step()
        with torch.no_grad():
            self.w.clamp_(0.0, 1.0)
