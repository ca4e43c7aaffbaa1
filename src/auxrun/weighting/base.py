"""The weighting interface shared by every strategy.

Notation: ``theta`` are the shared encoder parameters, ``l_ij`` the loss of example ``j`` of
task ``i`` (task 0 is the target), ``L_i = mean_j l_ij`` and ``g_i = grad_theta L_i``.

The engine builds one :class:`Step` per optimisation step and calls
``strategy.backward(step)``; the strategy fills ``.grad`` of the shared parameters with its
update direction, every head receives its own task's unweighted gradient ``grad L_i``
(strategies act on the shared parameters only), and the engine then calls
``optimizer.step()``. Strategies with parameters of their own own their optimiser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

TARGET = "target"
Diagnostics = dict[str, dict[str, float | None]]


def flatten(grads: Iterable[Tensor | None], params: list[nn.Parameter]) -> Tensor:
    """Concatenate gradients into one vector, zeros where a parameter got none."""
    return torch.cat([
        (g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)
    ])


@dataclass
class Step:
    """Everything a strategy sees for one step.

    Attributes:
        losses: task -> per-example losses ``l_i`` (1-D), ``"target"`` first (absent when
            pre-training).
        shared: the encoder parameters shared by all tasks (``theta``).
        heads: task -> that task's head parameters.
        meta_loss: for meta strategies, the target loss on a held-out batch at given
            parameter values (``None`` when the engine provides none).
    """

    losses: dict[str, Tensor]
    shared: list[nn.Parameter]
    heads: dict[str, list[nn.Parameter]]
    meta_loss: Callable[[dict[str, Tensor]], Tensor] | None = None
    _task_grads: Tensor | None = field(default=None, repr=False)

    @property
    def tasks(self) -> list[str]:
        return list(self.losses)

    @property
    def aux_tasks(self) -> list[str]:
        return [t for t in self.losses if t != TARGET]

    def grad_of(self, objective: Tensor) -> Tensor:
        """``grad_theta objective`` as a flat vector (the graph is kept for later calls)."""
        grads = torch.autograd.grad(objective, self.shared, retain_graph=True, allow_unused=True)
        return flatten(grads, self.shared)

    def task_grads(self) -> Tensor:
        """``G`` with row ``i = g_i = grad_theta L_i``, shape (tasks, n_shared).

        Computed once per step and cached, so every strategy (and diagnostic) that needs
        per-task gradients shares one set of backward passes.
        """
        if self._task_grads is None:
            self._task_grads = torch.stack([self.grad_of(loss.mean()) for loss in self.losses.values()])
        return self._task_grads

    def set_shared_grad(self, flat: Tensor) -> None:
        """Write the flat update direction into ``.grad`` of the shared parameters."""
        offset = 0
        for p in self.shared:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n

    def backward_heads(self, tasks: Iterable[str] | None = None) -> None:
        """Give each head its own task's unweighted gradient ``grad_phi_i L_i``.

        One backward call over the sum of the tasks' mean losses: head ``i`` only appears
        in task ``i``'s loss, and autograd stops at the heads (it does not go through the
        encoder because no encoder parameter is requested).
        """
        names = [t for t in (tasks if tasks is not None else self.losses) if self.heads.get(t)]
        params = [p for t in names for p in self.heads[t]]
        if not params:
            return
        total = torch.stack([self.losses[t].mean() for t in names]).sum()
        grads = torch.autograd.grad(total, params, retain_graph=True, allow_unused=True)
        for p, g in zip(params, grads):
            p.grad = g if g is not None else torch.zeros_like(p)


class Weighting(nn.Module):
    """Base class of all strategies.

    ``trains_aux`` is ``False`` for strategies that ignore auxiliary tasks (``none``): the
    engine then does not even compute their losses.
    """

    name: str = "base"
    trains_aux: bool = True

    def backward(self, step: Step) -> Diagnostics:
        """Fill ``.grad`` of shared and head parameters; return per-task diagnostics
        ``{task: {"weight": mean, "weight_std": std, "cos": cos(g_0, g_i) or None}}``."""
        raise NotImplementedError


class LossWeighting(Weighting):
    """Strategies that weight losses: the shared update is

    ``grad_theta sum_i mean_j w_ij l_ij``

    with per-example (or per-task, broadcast) weights ``w_ij`` from :meth:`weights`.
    """

    def weights(self, step: Step) -> dict[str, Tensor]:
        raise NotImplementedError

    def backward(self, step: Step) -> Diagnostics:
        w = self.weights(step)
        objective = torch.stack([(w[t] * step.losses[t]).mean() for t in w]).sum()
        step.set_shared_grad(step.grad_of(objective))
        step.backward_heads(w)
        return {t: _weight_stats(w[t], step.losses[t]) for t in w}


def _weight_stats(w: Tensor, loss: Tensor) -> dict[str, float | None]:
    w = w.detach().expand_as(loss) if w.dim() == 0 else w.detach()
    std = float(w.std()) if w.numel() > 1 else 0.0
    return {"weight": float(w.mean()), "weight_std": std, "cos": None}
