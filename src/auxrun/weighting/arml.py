"""``weighting=arml`` (Shi et al., NeurIPS 2020, "Auxiliary task reweighting for
minimum-data learning"): auxiliary weights ``a`` that make the weighted auxiliary gradient
approximate the target gradient,

``min_a  D(a) = || g_0 - sum_k a_k g_k ||^2``  subject to  ``a >= 0``, ``sum_k a_k = K``

(the paper's constraint set; ``a`` starts at 1). Each step, from the step's cached task
gradients: one Adam step on ``a`` along ``dD/da = -2 A (g_0 - A^T a)`` (``A``: the auxiliary
rows; ``weighting.lr``) on its component within the plane ``sum_k a_k = K`` (what the
constraint leaves free; Adam's per-coordinate scaling would otherwise be set by the component
the projection removes), then the Euclidean projection of ``a`` onto the constraint set; the
model then moves along ``grad (L_0 + sum_k a_k L_k)``, heads included. The paper's Langevin
noise on the model's gradient is left out (it serves its sampling argument, not the weights).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .base import TARGET, Diagnostics, Step, Weighting, diagnostics


def project_to_simplex(v: Tensor, total: float) -> Tensor:
    """The Euclidean projection of ``v`` onto ``{a : a >= 0, sum a = total}``: ``a_k =
    max(0, v_k - tau)`` with the threshold ``tau`` found from the sorted values
    (Held et al. 1974; Duchi et al. 2008)."""
    u, _ = torch.sort(v, descending=True)
    cumulative = torch.cumsum(u, 0) - total
    k = torch.arange(1, len(v) + 1, dtype=v.dtype, device=v.device)
    rho = int(torch.nonzero(u - cumulative / k > 0).max())
    tau = cumulative[rho] / (rho + 1)
    return (v - tau).clamp_min(0)


class ARML(Weighting):
    name = "arml"
    family = "adaptive"
    order = 140
    needs_target = True

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__()
        self.aux = [t for t in tasks if t != TARGET]
        self.a = nn.Parameter(torch.ones(len(self.aux)))
        self.optimizer = torch.optim.Adam([self.a], lr=float(cfg.lr))

    @staticmethod
    def gap_gradient(G: Tensor, a: Tensor) -> Tensor:
        """``dD/da = -2 A (g_0 - A^T a)`` for task-gradient rows ``G = [g_0; A]``."""
        A = G[1:]
        return -2 * A @ (G[0] - a @ A)

    def backward(self, step: Step) -> Diagnostics:
        G = step.task_grads()
        if self.aux:
            self.optimizer.zero_grad(set_to_none=True)
            grad = self.gap_gradient(G, self.a.detach().to(G.dtype))
            self.a.grad = (grad - grad.mean()).to(self.a.dtype)  # within the plane sum a = K
            self.optimizer.step()
            with torch.no_grad():
                self.a.copy_(project_to_simplex(self.a, float(len(self.aux))))
        w = torch.cat([G.new_ones(1), self.a.detach().to(G.dtype)])
        step.set_shared_grad(w @ G)
        weights = dict(zip(step.tasks, w))
        step.backward_heads(weights)  # heads: the a-weighted losses
        return diagnostics(step, weights)
