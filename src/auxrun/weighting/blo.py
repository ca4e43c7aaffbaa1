"""Bi-level optimisation by implicit differentiation: ``weighting=blo`` and ``blo_rcgrad``
(task weights, as in Dey & Ning 2024) and ``weighting=auxilearn`` (Navon et al., ICLR 2021:
a non-linear network combining the auxiliary losses), all on :class:`Implicit`.

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
``blo`` is the linear case of ``auxilearn``, whose ``L_train = L_0 + g_phi(L_1..L_K)``
(:class:`Combiner`) gets ``dL_aux/dphi = - d/dphi sum_k (dg_phi/dL_k) c_k``.

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


class Implicit(LossWeighting):
    """Shared machinery of ``blo`` and ``auxilearn``: an inner objective
    ``L_train(theta, phi)`` (:meth:`train_objective`) whose parameters ``phi`` are learned
    every ``adapt_every`` steps from the implicit hypergradient of the target loss on the
    held-out auxiliary split,

    ``dL_aux/dphi = - d/dphi <grad_theta L_train(theta, phi), p>``,  ``p = H^{-1} grad_theta L_aux``,

    (``p`` held fixed). Since ``grad_theta L_train = sum_i (dL_train/dL_i) g_i``, that is
    ``- d/dphi sum_i (dL_train/dL_i) c_i`` with ``c_i = <g_i, p>`` (:meth:`implicit_products`);
    :meth:`outer_step` takes the step on ``phi`` from ``c``.
    """

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
        self.steps = 0

    def combine(self, losses: Tensor) -> Tensor:
        """``L_train`` as a function of the vector of mean task losses (task order)."""
        raise NotImplementedError

    def outer_step(self, step: Step, c: Tensor) -> None:
        """One step on ``phi`` from the implicit products ``c``."""
        raise NotImplementedError

    def train_objective(self, step: Step) -> Tensor:
        """``L_train`` on the step's losses (with graph)."""
        return self.combine(torch.stack([step.losses[t].mean() for t in step.tasks]))

    def inverse_hvp(self, step: Step, la: Lookahead, v: list[Tensor]) -> list[Tensor]:
        """``eta sum_{j=0..J} (I - eta H)^j v`` with ``H`` the Hessian of ``L_train`` in theta."""
        train = self.train_objective(step)
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

    def implicit_products(self, step: Step) -> Tensor:
        """``c_i = <grad_theta L_i, H^{-1} grad_theta L_aux>`` for every task (the module
        docstring): the outer gradient, the Neumann series, one forward-mode product."""
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
        return directional.detach()

    def adapt(self, step: Step) -> None:
        """Every ``adapt_every`` steps: one outer step."""
        self.steps += 1
        if self.steps % self.adapt_every == 0:
            self.outer_step(step, self.implicit_products(step))

    def weights(self, step: Step) -> dict[str, Tensor]:
        self.adapt(step)
        return dict(zip(step.tasks, step.objective_gradients(self.combine)[0]))


class BLO(Implicit):
    """``L_train = sum_i lambda_i L_i``, ``lambda = max(0, nu)``: ``dL_aux/dlambda_i = -c_i``."""

    name = "blo"
    family = "bilevel"
    order = 100

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__(cfg, tasks)
        self.nu = nn.Parameter(torch.full((len(self.tasks),), 1.0 / len(self.tasks)))
        self.optimizer = torch.optim.SGD([self.nu], lr=float(cfg.lr), momentum=float(cfg.momentum))

    def lambdas(self) -> Tensor:
        return self.nu.detach().clamp_min(0)

    def combine(self, losses: Tensor) -> Tensor:
        return self.lambdas().to(losses.dtype) @ losses

    def hypergradient(self, step: Step) -> Tensor:
        """``dL_aux/dlambda = -c`` by the implicit function theorem (see the module docstring)."""
        return -self.implicit_products(step)

    def outer_step(self, step: Step, c: Tensor) -> None:
        """One SGD-with-momentum step on ``nu`` along ``-c``, then ``nu >= 0``."""
        self.optimizer.zero_grad(set_to_none=True)
        self.nu.grad = (-c).to(self.nu.dtype)
        self.optimizer.step()
        with torch.no_grad():
            self.nu.clamp_(min=0.0)


class Combiner(nn.Module):
    """AuxiLearn's auxiliary network ``g_phi(l) = softplus(v)^T softplus(softplus(W) l + b)``
    over the vector ``l`` of mean auxiliary losses: non-negative weights make ``g``
    non-decreasing in every loss (no auxiliary loss is ever maximised) and smooth."""

    def __init__(self, k: int, hidden: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.W = nn.Parameter(0.1 * torch.randn(hidden, k, generator=gen))
        self.b = nn.Parameter(torch.zeros(hidden))
        # softplus(v) = 1 / hidden: the initial weights dg/dl_k are about 0.5
        self.v = nn.Parameter(torch.full((hidden,), float(torch.log(torch.expm1(torch.tensor(1.0 / hidden))))))

    def forward(self, losses: Tensor) -> Tensor:
        sp = nn.functional.softplus
        return sp(self.v) @ sp(sp(self.W) @ losses + self.b)


class AuxiLearn(Implicit):
    """``L_train = L_0 + g_phi(L_1, ..., L_K)`` with the :class:`Combiner` network ``g_phi``:
    ``dL_aux/dphi = - d/dphi sum_k (dg_phi/dL_k) c_k`` (one double backward through ``g``
    only), then one Adam step on ``phi``."""

    name = "auxilearn"
    family = "bilevel"
    order = 130

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__(cfg, tasks)
        self.net = Combiner(len(self.tasks) - 1, int(cfg.hidden))
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=float(cfg.lr))

    def combine(self, losses: Tensor) -> Tensor:
        return losses[0] + self.net(losses[1:].to(self.net.b.dtype)).to(losses.dtype)

    def hypergradient(self, step: Step, c: Tensor) -> list[Tensor]:
        """``dL_aux/dphi`` from the implicit products ``c`` (the class docstring), at the
        step's mean auxiliary losses."""
        means = torch.stack([step.losses[t].detach().mean() for t in step.tasks[1:]]).to(self.net.b.dtype)
        means.requires_grad_()
        with torch.enable_grad():
            (dg,) = torch.autograd.grad(self.net(means), means, create_graph=True)
            return list(torch.autograd.grad(-(dg * c[1:].to(dg.dtype)).sum(), list(self.net.parameters())))

    def outer_step(self, step: Step, c: Tensor) -> None:
        if len(self.tasks) > 1:
            self.optimizer.zero_grad(set_to_none=True)
            for p, g in zip(self.net.parameters(), self.hypergradient(step, c)):
                p.grad = g
            self.optimizer.step()


class BLORCGrad(BLO):
    name = "blo_rcgrad"
    family = "bilevel"
    order = 110

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
