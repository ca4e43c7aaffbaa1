"""Meta-learned per-example weights: ``selar`` (Hwang et al., NeurIPS 2020) and ``auxts``
(Han et al., KDD 2021).

A weighting network ``V_phi`` (Linear(d, hidden) -> ReLU -> Linear(hidden, 1) -> softplus or
sigmoid) maps one input row per example ``j`` of task ``i`` to a weight ``w_ij``:

* SELAR: ``[l_ij, onehot(task) with the target all zeros, label_ij]`` (label: the example's
  0/1 label for pair tasks, 0 where a task has none);
* AUX-TS, ``sims=one``: ``[l_ij, onehot(task over target + aux), c_i]`` with ``c_0 = 1``;
* AUX-TS, ``sims=all``: ``[l_ij, onehot(task), c_1, ..., c_K]``;

where ``c_i = cos(g_0, g_i)`` on the shared parameters. The joint loss is
``L(theta, phi) = sum_i mean_j w_ij l_ij`` (the papers' formula, ``normalize=none``), or with
``normalize=target`` (what SELAR's released code trains) the same with every weight divided by
the mean weight of the step's target examples, ``w_ij / mean_j w_0j``: a loss invariant to a
common scale of ``V_phi``'s outputs, so the meta-gradient cannot stop training by shrinking
every weight towards 0. SELAR's code divides ``sum_ij w_ij l_ij / N`` (``N`` examples of all
tasks) by the target's mean weight, which equals this loss over ``K + 1`` when every task's
batch has the same size. Each step:

1. Meta stage: ``theta' = theta - alpha grad_theta L(theta, phi)`` (``theta`` = shared encoder
   + target head), ``M = `` target loss at ``theta'`` on a held-out batch from a fold of the
   training split; one Adam step on ``phi`` along ``dM/dphi``.
2. Real stage: ``w`` recomputed with the updated ``phi`` (no gradient to ``phi``); the shared
   parameters get ``grad_theta sum_i mean_j w_ij l_ij``.

``meta_grad=jvp`` computes ``dM/dphi`` exactly without a second-order graph: the
inputs of ``V_phi`` do not depend on ``phi`` and
``theta' = theta - alpha sum_ij w_ij grad l_ij / n_i``, so

``dM/dw_ij = -alpha <h, grad_theta l_ij(theta)> / n_i``  with  ``h = grad_theta' M(theta')``,

and the inner products for all examples at once are one forward-mode product
``jvp(theta -> (l_ij), theta, h)``; then ``dM/dphi = sum_ij dM/dw_ij dw_ij/dphi`` by one backward
through ``V_phi`` (and the normalisation, which is a function of ``w`` alone) only. ``meta_grad=unrolled`` is the reference: it differentiates through
``grad_theta L`` with ``create_graph=True``. Both agree to rounding (tests check it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.func import jvp

from .base import TARGET, Lookahead, LossWeighting, Step

ACTIVATIONS = {"softplus": nn.Softplus, "sigmoid": nn.Sigmoid}
META_GRADS = ("auto", "jvp", "unrolled")
NORMALIZE = ("none", "target")
SIMS = ("one", "all")  # AUX-TS's input: the cosine of the task's own gradient, or of every task's
# meta_grad=auto, by device (make bench): on CPU the double backward of "unrolled" costs less
# than the forward-mode product through message passing; on CUDA "jvp" keeps no second-order graph
AUTO_META_GRAD = {"cpu": "unrolled", "cuda": "jvp"}


class WeightNet(nn.Module):
    """``V_phi``: Linear(d, hidden) -> ReLU -> Linear(hidden, 1) -> activation."""

    def __init__(self, in_dim: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1), ACTIVATIONS[activation]())

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).squeeze(-1)


def _zeros_for_none(grads: tuple[Tensor | None, ...], like: list[Tensor]) -> list[Tensor]:
    return [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, like)]


class MetaWeighting(LossWeighting):
    """Shared machinery of SELAR and AUX-TS; subclasses define the input rows."""

    needs_target = True
    needs_lookahead = True

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__()
        self.normalize = str(cfg.get("normalize", "none"))  # values: checked by the schema (META_GRADS, NORMALIZE)
        self.tasks = list(tasks)
        self.aux = [t for t in self.tasks if t != TARGET]
        self.step_size = float(cfg.step_size)
        self.folds = int(cfg.folds)
        self.meta_grad = str(cfg.meta_grad)
        self.net = WeightNet(self.input_dim(), int(cfg.hidden), str(cfg.activation))
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=float(cfg.lr))

    # --- inputs -----------------------------------------------------------------------
    def input_dim(self) -> int:
        raise NotImplementedError

    def task_columns(self, step: Step, task: str, n: int) -> Tensor:
        """The columns after ``l_ij`` for the ``n`` examples of ``task``."""
        raise NotImplementedError

    def features(self, step: Step) -> Tensor:
        """Input rows of ``V_phi`` for every example of every task (task order of the step)."""
        if step.tasks != self.tasks:
            raise RuntimeError(f"strategy built for tasks {self.tasks}, step has {step.tasks}")
        rows = []
        for t in step.tasks:
            loss = step.losses[t].detach()
            rows.append(torch.cat([loss[:, None], self.task_columns(step, t, len(loss))], 1))
        return torch.cat(rows)

    def _onehot(self, index: int | None, n: int, size: int, like: Tensor) -> Tensor:
        out = like.new_zeros(n, size)
        if index is not None:
            out[:, index] = 1.0
        return out

    # --- weights ------------------------------------------------------------------------
    def scaled(self, step: Step, w: Tensor) -> Tensor:
        """The weights the joint loss uses, from ``V_phi``'s outputs ``w`` (every example of
        every task, in the step's task order): ``w`` itself, or for ``normalize=target``
        ``w / mean(w of the target's examples)``."""
        if self.normalize == "none":
            return w
        start = sum(len(step.losses[t]) for t in step.tasks[:step.tasks.index(TARGET)])
        mean = w[start:start + len(step.losses[TARGET])].mean()
        return w / mean.clamp_min(torch.finfo(w.dtype).tiny)

    # --- meta-gradient ------------------------------------------------------------------
    def _flat(self, step: Step) -> tuple[Tensor, Tensor]:
        """All per-example losses (with graph) and the matching ``1 / n_i`` factors."""
        losses = torch.cat([step.losses[t] for t in step.tasks])
        scale = torch.cat([losses.new_full((len(step.losses[t]),), 1.0 / len(step.losses[t])) for t in step.tasks])
        return losses, scale

    def resolved_meta_grad(self, device: torch.device) -> str:
        """``jvp`` or ``unrolled``: ``meta_grad``, or for ``auto`` the faster one measured on
        the device's kind (``AUTO_META_GRAD``)."""
        return AUTO_META_GRAD.get(device.type, "jvp") if self.meta_grad == "auto" else self.meta_grad

    def meta_gradient(self, step: Step) -> list[Tensor]:
        """``dM/dphi`` for this step (``phi`` = the weighting network's parameters)."""
        if step.lookahead is None:
            raise RuntimeError(f"{self.name} needs the engine's look-ahead closures")
        losses, scale = self._flat(step)
        w = self.scaled(step, self.net(self.features(step)))
        mode = self._meta_gradient_jvp if self.resolved_meta_grad(w.device) == "jvp" else self._meta_gradient_unrolled
        return mode(step, step.lookahead, losses, scale, w)

    def _meta_gradient_jvp(self, step: Step, la: Lookahead, losses: Tensor, scale: Tensor, w: Tensor) -> list[Tensor]:
        theta = la.params
        g = torch.autograd.grad((w.detach() * scale * losses).sum(), theta, retain_graph=True, allow_unused=True)
        theta1 = [(p.detach() - self.step_size * gi).requires_grad_() for p, gi in zip(theta, _zeros_for_none(g, theta))]
        h = _zeros_for_none(torch.autograd.grad(la.meta_loss_at(theta1), theta1, allow_unused=True), theta1)

        def flat_losses(*values: Tensor) -> Tensor:
            out = la.losses_at(list(values))
            return torch.cat([out[t] for t in step.tasks])

        _, directional = jvp(flat_losses, tuple(p.detach() for p in theta), tuple(h))
        grads = torch.autograd.grad(w, list(self.net.parameters()),
                                    grad_outputs=-self.step_size * scale * directional.detach())
        return list(grads)

    def _meta_gradient_unrolled(self, step: Step, la: Lookahead, losses: Tensor, scale: Tensor,
                                w: Tensor) -> list[Tensor]:
        theta = la.params
        g = torch.autograd.grad((w * scale * losses).sum(), theta, create_graph=True, allow_unused=True)
        theta1 = [p - self.step_size * gi for p, gi in zip(theta, _zeros_for_none(g, theta))]
        params = list(self.net.parameters())
        return _zeros_for_none(torch.autograd.grad(la.meta_loss_at(theta1), params, allow_unused=True), params)

    # --- the two stages -----------------------------------------------------------------
    def weights(self, step: Step) -> dict[str, Tensor]:
        grads = self.meta_gradient(step)
        self.optimizer.zero_grad(set_to_none=True)
        for p, g in zip(self.net.parameters(), grads):
            p.grad = g
        self.optimizer.step()
        with torch.no_grad():
            w = self.scaled(step, self.net(self.features(step)))
        return dict(zip(step.tasks, w.split([len(step.losses[t]) for t in step.tasks])))


class Selar(MetaWeighting):
    """SELAR: ``[l_ij, onehot(aux task) (target all zeros), label_ij]``."""

    name = "selar"
    family = "meta"
    order = 30

    def input_dim(self) -> int:
        return 1 + len(self.aux) + 1

    def task_columns(self, step: Step, task: str, n: int) -> Tensor:
        like = step.losses[task].detach()
        onehot = self._onehot(self.aux.index(task) if task != TARGET else None, n, len(self.aux), like)
        labels = step.batches.get(task, {}).get("labels")
        usable = labels is not None and labels.dim() == 1 and len(labels) == n  # one label per example
        label = labels.to(like.dtype) if usable else like.new_zeros(n)
        return torch.cat([onehot, label[:, None]], 1)


class AuxTS(MetaWeighting):
    """AUX-TS: ``[l_ij, onehot(task), c_i]`` (``sims=one``) or ``[..., c_1..c_K]`` (``sims=all``)."""

    name = "auxts"
    family = "meta"
    order = 40

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        self.sims = str(cfg.sims)  # one of SIMS, cos_params one of PARAM_SETS: checked by the schema
        self.cos_params = str(cfg.get("cos_params", "all"))
        super().__init__(cfg, tasks)

    def input_dim(self) -> int:
        return 1 + len(self.tasks) + (1 if self.sims == "one" else len(self.aux))

    def task_columns(self, step: Step, task: str, n: int) -> Tensor:
        like = step.losses[task].detach()
        onehot = self._onehot(self.tasks.index(task), n, len(self.tasks), like)
        cos = step.cosines(self.cos_params).detach().to(like.dtype) if self.aux else like.new_zeros(0)
        if self.sims == "one":
            c = like.new_ones(()) if task == TARGET else cos[self.aux.index(task)]
            sims = c.expand(n, 1)
        else:
            sims = cos.expand(n, len(self.aux))
        return torch.cat([onehot, sims], 1)
