"""``weighting=auxinash`` (Shamsian et al., ICML 2023, "Auxiliary learning as an asymmetric
bargaining game"): the shared update is the Nash bargaining solution over the task
gradients with preferences ``p`` (``p_0 = 1`` for the target, ``p_k`` learned for each
auxiliary task),

``d = sum_i alpha_i g_i``  with  ``alpha`` the positive solution of  ``M alpha = p / alpha``,
``M = G G^T``

(Nash-MTL is the case ``p = 1``). ``alpha`` minimises the strictly convex
``f(alpha) = alpha^T M alpha / 2 - sum_i p_i log alpha_i`` (its gradient is
``M alpha - p / alpha``), which :func:`bargain` solves by damped Newton steps in float64; a
ridge ``1e-8 tr(M) / N`` keeps a vanishing gradient from sending its ``alpha_i`` to infinity.
Heads follow the weighted losses ``alpha_i L_i``.

Preferences learn from the target loss on a held-out batch of the training split (a fold,
never validation): with ``theta' = theta - eta d`` (target head: ``- eta alpha_0 grad L_0``)
and ``M(theta')`` that loss, ``dM/dalpha_i = -eta <grad M(theta'), g_i>`` (one backward at
``theta'``), and by the implicit function theorem on ``F(alpha, p) = M alpha - p / alpha = 0``

``dM/dp = diag(1 / alpha) (M + diag(p / alpha^2))^{-1} dM/dalpha``.

Every ``adapt_every`` steps the auxiliary ``p_k`` take one Adam step on it
(``weighting.lr``) and are clamped to ``[1e-3, inf)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import AuxrunError
from .base import Diagnostics, Step, Weighting, diagnostics, flatten

MIN_PREFERENCE = 1e-3


def bargain(M: Tensor, p: Tensor, iters: int = 100, tol: float = 1e-12) -> Tensor:
    """The positive ``alpha`` with ``M alpha = p / alpha`` (module docstring), in float64."""
    M, p = M.double(), p.double()
    M = M + 1e-8 * M.diagonal().sum().clamp_min(1e-30) / len(p) * torch.eye(len(p), dtype=M.dtype, device=M.device)
    alpha = (p / M.diagonal()).sqrt()  # exact when the gradients are orthogonal

    def f(a: Tensor) -> Tensor:
        return 0.5 * a @ M @ a - (p * a.log()).sum()

    for _ in range(iters):
        grad = M @ alpha - p / alpha
        if float(grad.abs().max()) <= tol * float((p / alpha).abs().max()):
            break
        step = torch.linalg.solve(M + torch.diag(p / alpha**2), grad)
        t = 1.0  # backtracking: stay positive, decrease f (Armijo); full steps near the solution
        while bool((alpha - t * step <= 0).any()) or f(alpha - t * step) > f(alpha) - 0.25 * t * (grad @ step):
            t *= 0.5
            if t < 1e-6:  # f's rounding: the Newton step itself is the best there is
                t = 1.0 if bool((alpha - step > 0).all()) else t
                break
        alpha = alpha - t * step
    return alpha


def preference_gradient(M: Tensor, p: Tensor, alpha: Tensor, d_alpha: Tensor) -> Tensor:
    """``dM/dp`` from ``dM/dalpha`` at the bargaining solution (implicit function theorem)."""
    M, p, alpha = M.double(), p.double(), alpha.double()
    return torch.linalg.solve(M + torch.diag(p / alpha**2), d_alpha.double()) / alpha


class AuxiNash(Weighting):
    name = "auxinash"
    family = "adaptive"
    order = 150
    needs_target = True
    needs_lookahead = True
    counters = ("steps",)

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__()
        if int(cfg.adapt_every) < 1 or float(cfg.step_size) <= 0:
            raise AuxrunError("weighting.adapt_every >= 1 and weighting.step_size > 0 are required")
        self.tasks = list(tasks)
        self.adapt_every, self.step_size, self.folds = int(cfg.adapt_every), float(cfg.step_size), int(cfg.folds)
        self.p = nn.Parameter(torch.ones(len(tasks) - 1))  # the auxiliary preferences
        self.optimizer = torch.optim.Adam([self.p], lr=float(cfg.lr))
        self.steps = 0

    def preferences(self) -> Tensor:
        return torch.cat([self.p.new_ones(1), self.p.detach()])

    def meta_gradient(self, step: Step, G: Tensor, alpha: Tensor) -> Tensor:
        """``dM/dalpha`` (module docstring): one forward and backward at ``theta'``."""
        theta1, head_grads = step.lookahead_point((alpha.to(G.dtype) @ G).detach(), self.step_size, float(alpha[0]))
        theta1 = [t.requires_grad_() for t in theta1]
        grads = torch.autograd.grad(step.lookahead.meta_loss_at(theta1), theta1, allow_unused=True)
        n = len(step.shared)
        h = flatten(grads[:n], theta1[:n])
        d_alpha = -self.step_size * (G @ h)
        head_term = sum(((g * hg).sum() for g, hg in zip(grads[n:], head_grads) if g is not None and hg is not None),
                        torch.zeros((), dtype=G.dtype, device=G.device))
        d_alpha[0] = d_alpha[0] - self.step_size * head_term
        return d_alpha

    def backward(self, step: Step) -> Diagnostics:
        G = step.task_grads()
        M = G.double() @ G.double().T
        p = self.preferences().to(M)
        alpha = bargain(M, p)
        self.steps += 1
        if self.steps % self.adapt_every == 0 and len(self.tasks) > 1:
            grad = preference_gradient(M, p, alpha, self.meta_gradient(step, G, alpha))
            self.optimizer.zero_grad(set_to_none=True)
            self.p.grad = grad[1:].to(self.p.dtype)
            self.optimizer.step()
            with torch.no_grad():
                self.p.clamp_(min=MIN_PREFERENCE)
        w = alpha.to(G.dtype)
        step.set_shared_grad(w @ G)
        weights = dict(zip(step.tasks, w))
        step.backward_heads(weights)
        return diagnostics(step, weights)
