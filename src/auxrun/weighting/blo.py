"""Bi-level optimisation of task weights by implicit differentiation (AuxiLearn-style, as in
Dey & Ning 2024): ``weighting=blo`` and ``weighting=blo_rcgrad``.

Task weights ``lambda_i = max(0, nu_i) >= 0`` (a monotone linear map of the loss vector,
``nu`` initialised to ``1/N`` for ``N`` tasks, target included). Inner problem: ordinary
training on ``L_train(theta, lambda) = sum_i lambda_i L_i``. Outer problem: the target loss
``L_aux`` on an auxiliary split of the training data (an ``aux_split`` fraction drawn at
random with the run's seed, stratified by class, held out of training). Every
``adapt_every`` steps the hypergradient, by the implicit function theorem at the current
``theta`` (shared encoder + target head),

``dL_aux/dlambda_i = - <grad_theta L_i, H^{-1} grad_theta L_aux>``,  ``H = hess_theta L_train``,

with ``H^{-1} v`` approximated by the truncated Neumann series
``eta sum_{j=0..J} (I - eta H)^j v`` (``J = neumann_terms``, ``eta = neumann_step``; each term
one Hessian-vector product) and the inner products ``<grad L_i, p>`` for all tasks at once by
one forward-mode product. ``nu`` takes an SGD-with-momentum step and is clamped at 0.

``blo_rcgrad`` applies the RCGrad surgery (PCGrad projection, ``(min(1, r_i) + w_i)/2``
scaling with ``w`` decaying as in the authors' code) to the lambda-weighted task gradients of
the inner update, and meta-updates ``lambda`` as above (the authors' code never does). Its
heads train on the lambda-weighted losses (the weighting part); the surgery acts on the
shared gradient only.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn
from torch.func import jvp

from ..errors import AuxrunError
from .base import Diagnostics, Lookahead, LossWeighting, Step, diagnostics
from .rcgrad import RCGrad


def _dot(a: list[Tensor], b: list[Tensor]) -> Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


class BLO(LossWeighting):
    name = "blo"
    needs_target = True
    needs_lookahead = True
    counters = ("steps",)

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__()
        if int(cfg.adapt_every) < 1 or int(cfg.neumann_terms) < 0 or not 0 < float(cfg.aux_split) < 1:
            raise AuxrunError("weighting.adapt_every >= 1, weighting.neumann_terms >= 0 and "
                              "0 < weighting.aux_split < 1 are required")
        self.tasks = list(tasks)
        self.meta_holdout = float(cfg.aux_split)
        self.adapt_every = int(cfg.adapt_every)
        self.neumann_terms = int(cfg.neumann_terms)
        self.neumann_step = float(cfg.neumann_step)
        self.nu = nn.Parameter(torch.full((len(self.tasks),), 1.0 / len(self.tasks)))
        self.optimizer = torch.optim.SGD([self.nu], lr=float(cfg.lr), momentum=float(cfg.momentum))
        self.steps = 0

    def lambdas(self) -> Tensor:
        return self.nu.detach().clamp_min(0)

    def inverse_hvp(self, step: Step, la: Lookahead, v: list[Tensor]) -> list[Tensor]:
        """``eta sum_{j=0..J} (I - eta H)^j v`` with ``H`` the Hessian of ``L_train`` in theta."""
        lam = self.lambdas().to(v[0].dtype)
        train = sum(lam[i] * step.losses[t].mean() for i, t in enumerate(step.tasks))
        grads = torch.autograd.grad(train, la.params, create_graph=True, allow_unused=True)
        live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
        term, total = list(v), list(v)
        for _ in range(self.neumann_terms):
            hv = torch.autograd.grad([grads[i] for i in live], [la.params[i] for i in live],
                                     grad_outputs=[term[i] for i in live], retain_graph=True, allow_unused=True)
            full = [torch.zeros_like(x) for x in term]
            for i, h in zip(live, hv):
                if h is not None:
                    full[i] = h.detach()
            term = [t - self.neumann_step * h for t, h in zip(term, full)]
            total = [s + t for s, t in zip(total, term)]
        return [self.neumann_step * s for s in total]

    def hypergradient(self, step: Step) -> Tensor:
        """``dL_aux/dlambda`` by the implicit function theorem (see the module docstring)."""
        la = step.lookahead
        if la is None:
            raise RuntimeError(f"{self.name} needs the engine's look-ahead closures")
        theta = list(la.params)
        outer = torch.autograd.grad(la.meta_loss_at(theta), theta, allow_unused=True)
        v = [g.detach() if g is not None else torch.zeros_like(p) for g, p in zip(outer, theta)]
        p = self.inverse_hvp(step, la, v)

        def task_means(*values: Tensor) -> Tensor:
            out = la.losses_at(list(values))
            return torch.stack([out[t].mean() for t in step.tasks])

        _, directional = jvp(task_means, tuple(x.detach() for x in theta), tuple(p))
        return -directional.detach()

    def adapt(self, step: Step) -> None:
        """Every ``adapt_every`` steps: one SGD-with-momentum step on ``nu`` along the
        hypergradient, then ``nu >= 0``."""
        self.steps += 1
        if self.steps % self.adapt_every:
            return
        self.optimizer.zero_grad(set_to_none=True)
        self.nu.grad = self.hypergradient(step).to(self.nu.dtype)
        self.optimizer.step()
        with torch.no_grad():
            self.nu.clamp_(min=0.0)

    def weights(self, step: Step) -> dict[str, Tensor]:
        self.adapt(step)
        lam = self.lambdas()
        return {t: lam[i] for i, t in enumerate(step.tasks)}


class BLORCGrad(BLO):
    name = "blo_rcgrad"

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__(cfg, tasks)
        rc = OmegaConf.create({"learn": "decay", "lr": float(cfg.rc_lr), "step_size": 0.0, "folds": 1})
        self.rc = RCGrad(rc, tasks)

    def backward(self, step: Step) -> Diagnostics:
        self.adapt(step)
        lam = self.lambdas()
        G = step.task_grads()
        update, coef = self.rc.combine(step, lam.to(G.dtype)[:, None] * G)
        step.set_shared_grad(update)
        step.backward_heads(dict(zip(step.tasks, lam)))  # heads: the lambda-weighted losses
        self.rc.after_update(step)
        effective = lam.to(coef.dtype) * torch.cat([coef.new_ones(1), coef])
        return diagnostics(step, dict(zip(step.tasks, effective)))
