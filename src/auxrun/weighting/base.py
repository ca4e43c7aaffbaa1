"""The weighting interface shared by every strategy.

Notation: ``theta`` are the shared encoder parameters, ``l_ij`` the loss of example ``j`` of
task ``i`` (task 0 is the target), ``L_i = mean_j l_ij`` and ``g_i = grad_theta L_i``.

The engine builds one :class:`Step` per optimisation step and calls
``strategy.backward(step)``; the strategy fills ``.grad`` of the shared parameters with its
update direction and of every head, and the engine then calls ``optimizer.step()``.
Strategies with parameters of their own own their optimiser.

Heads follow the kind of strategy:

* *loss weighting* (:class:`LossWeighting`: none, fixed, selar, auxts, blo; the weights of
  blo_rcgrad): the update is the gradient of the weighted loss ``L_w = sum_i mean_j w_ij l_ij``
  with respect to *every* parameter, heads included, so head ``i`` gets
  ``grad_phi_i mean_j w_ij l_ij``. This is the update a look-ahead ``theta - alpha grad L_w``
  (SELAR, AUX-TS) or an inner problem ``min L_w`` (BLO) assumes.
* *gradient surgery* (:class:`~.gradient.GradientCombination`, jd): the strategy rewrites the
  shared gradient only; head ``i`` gets its own task's gradient ``grad_phi_i L_i``.

Meta strategies also need the step's losses at *other* parameter values: the engine then
attaches a :class:`Lookahead` (``needs_lookahead = True`` on the strategy).

Per-task gradients may be taken over every shared parameter (``params="all"``) or over the
encoder's last layer only (``params="last_layer"``: GradNorm's ``W``, and the opt-in cheaper
cosines of ``weighting.cos_params=last_layer``); each set is computed once per step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..specs import Spec
from ..train.resume import ResumableState

TARGET = "target"
PARAM_SETS = ("all", "last_layer")
Diagnostics = dict[str, dict[str, float | None]]


def flatten(grads: Iterable[Tensor | None], params: list[nn.Parameter]) -> Tensor:
    """Concatenate gradients into one vector, zeros where a parameter got none."""
    return torch.cat([
        (g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)
    ])


@dataclass
class Lookahead:
    """The step as a function of the look-ahead parameters ``theta`` (shared encoder and
    target head), for one-step look-ahead meta-gradients.

    Attributes:
        params: the current look-ahead parameters, in a fixed order.
        losses_at: ``theta -> {task: per-example losses}`` on this step's batches and inputs,
            with the same dropout masks as the step's own forward pass (so
            ``losses_at(params)`` equals ``Step.losses``).
        meta_loss_at: ``theta -> mean target loss`` on a held-out batch from a fold of the
            training split (never validation), with fixed dropout masks.
    """

    params: list[nn.Parameter]
    losses_at: Callable[[list[Tensor]], dict[str, Tensor]]
    meta_loss_at: Callable[[list[Tensor]], Tensor]


@dataclass
class Step:
    """Everything a strategy sees for one step.

    Attributes:
        losses: task -> per-example losses ``l_i`` (1-D), ``"target"`` first (absent when
            pre-training).
        shared: the encoder parameters shared by all tasks (``theta``).
        heads: task -> that task's head parameters.
        batches: task -> the batch its losses were computed on (labels for SELAR's input).
        lookahead: for meta strategies, the functional view of this step (else ``None``).
        last_layer: the parameters of the encoder's last layer (a subset of ``shared``;
            ``None``: all of ``shared``).
        reevaluate: ``() -> {task: per-example losses}`` on this step's batches at the
            model's *current* parameters, without a graph and with the step's dropout masks
            (FAMO scores the update with it after the optimiser step).
        grad_route: how :meth:`task_grads` computes its rows: ``"loop"`` (one backward pass
            per task) or ``"batched"`` (one backward pass vmapped over the tasks' unit
            cotangents, ``is_grads_batched``); the same rows, at different speeds per device.
    """

    losses: dict[str, Tensor]
    shared: list[nn.Parameter]
    heads: dict[str, list[nn.Parameter]]
    batches: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    lookahead: Lookahead | None = None
    last_layer: list[nn.Parameter] | None = None
    reevaluate: Callable[[], dict[str, Tensor]] | None = None
    grad_route: str = "loop"
    _grads: dict[str, Tensor] = field(default_factory=dict, repr=False)
    _cos: dict[str, Tensor] = field(default_factory=dict, repr=False)

    @property
    def tasks(self) -> list[str]:
        return list(self.losses)

    @property
    def aux_tasks(self) -> list[str]:
        return [t for t in self.losses if t != TARGET]

    def param_set(self, params: str = "all") -> list[nn.Parameter]:
        """The shared parameters of ``params``: ``"all"`` or ``"last_layer"``."""
        if params not in PARAM_SETS:
            raise ValueError(f"params must be one of {PARAM_SETS}, got {params!r}")
        return self.shared if params == "all" or self.last_layer is None else self.last_layer

    def grad_of(self, objective: Tensor, params: str = "all") -> Tensor:
        """``grad objective`` over :meth:`param_set` as a flat vector (graph kept)."""
        wrt = self.param_set(params)
        grads = torch.autograd.grad(objective, wrt, retain_graph=True, allow_unused=True)
        return flatten(grads, wrt)

    def task_grads(self, params: str = "all") -> Tensor:
        """``G`` with row ``i = g_i = grad L_i`` over :meth:`param_set` ``params``, shape
        (tasks, n_params).

        Computed once per step and parameter set, and cached, so every strategy (and
        diagnostic) that needs per-task gradients shares one set of backward passes; the
        last layer's rows are a slice of the full rows when those exist already.
        """
        if params not in self._grads:
            if params == "last_layer" and "all" in self._grads and self.last_layer is not None:
                self._grads[params] = self._grads["all"][:, self._last_layer_columns()]
            elif self.grad_route == "batched":
                self._grads[params] = self._batched_grads(params)
            else:
                self._grads[params] = torch.stack([self.grad_of(loss.mean(), params) for loss in self.losses.values()])
        return self._grads[params]

    def _batched_grads(self, params: str) -> Tensor:
        """The rows of :meth:`task_grads` by one vmapped backward pass."""
        wrt = self.param_set(params)
        means = torch.stack([loss.mean() for loss in self.losses.values()])
        eye = torch.eye(len(means), dtype=means.dtype, device=means.device)
        grads = torch.autograd.grad(means, wrt, grad_outputs=eye, is_grads_batched=True, retain_graph=True,
                                    allow_unused=True)
        return torch.cat([(g if g is not None else p.new_zeros(len(means), *p.shape)).reshape(len(means), -1)
                          for g, p in zip(grads, wrt)], 1)

    def _last_layer_columns(self) -> Tensor:
        """Columns of the last layer's parameters in the flat vector of ``shared``."""
        assert self.last_layer is not None
        wanted = {id(p) for p in self.last_layer}
        cols, offset = [], 0
        for p in self.shared:
            if id(p) in wanted:
                cols.append(torch.arange(offset, offset + p.numel()))
            offset += p.numel()
        return torch.cat(cols).to(self.shared[0].device)

    def cosines(self, params: str = "all") -> Tensor:
        """``c_i = cos(g_0, g_i)`` for every auxiliary task ``i`` (from :meth:`task_grads` over
        ``params``); 0 where a gradient vanishes. Cached with the gradients."""
        if params not in self._cos:
            G = self.task_grads(params)
            norms = G.norm(dim=1)
            self._cos[params] = (G[1:] @ G[0]) / (norms[1:] * norms[0]).clamp_min(1e-12)
        return self._cos[params]

    def objective_gradients(self, objective: Callable[[Tensor], Tensor], params: Iterable[Tensor] = ()
                            ) -> tuple[Tensor, list[Tensor | None]]:
        """For a scalar ``S(L)`` of this step's mean losses ``L``, from one call of it: ``dS/dL``
        (the weight with which task ``i``'s gradient enters ``grad S(L(theta)) = sum_i dS/dL_i
        g_i``) and ``dS/dp`` for each of ``params`` (``None`` where ``S`` does not use one)."""
        means = torch.stack([loss.detach().mean() for loss in self.losses.values()]).requires_grad_()
        params = list(params)
        with torch.enable_grad():
            grads = torch.autograd.grad(objective(means), [means, *params], allow_unused=True)
        weights = grads[0] if grads[0] is not None else torch.zeros_like(means)
        return weights.detach(), list(grads[1:])

    def lookahead_point(self, update: Tensor, step_size: float, head_scale: Tensor | float = 1.0
                        ) -> tuple[list[Tensor], tuple[Tensor | None, ...]]:
        """The look-ahead parameters ``theta' = theta - eta d``: ``d`` = the flat ``update`` on
        the shared parameters (its graph kept) and ``head_scale * grad L_0`` on the target head
        (``eta = step_size``); returns ``theta'`` and the target head's gradients."""
        la = self.lookahead
        if la is None:
            raise RuntimeError("the strategy needs the engine's look-ahead closures")
        n = len(self.shared)
        assert all(p is q for p, q in zip(la.params[:n], self.shared)), "look-ahead params start with shared"
        head = la.params[n:]
        head_grads = torch.autograd.grad(self.losses[TARGET].mean(), head, retain_graph=True, allow_unused=True)
        parts = update.split([p.numel() for p in self.shared])
        theta1 = [p.detach() - step_size * u.view_as(p) for p, u in zip(self.shared, parts)]
        theta1 += [p.detach() - step_size * head_scale * (g if g is not None else torch.zeros_like(p))
                   for p, g in zip(head, head_grads)]
        return theta1, head_grads

    def set_shared_grad(self, flat: Tensor) -> None:
        """Write the flat update direction into ``.grad`` of the shared parameters."""
        offset = 0
        for p in self.shared:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n

    def weighted_objective(self, weights: Mapping[str, Tensor | float]) -> Tensor:
        """``L_w = sum_i mean_j w_ij l_ij`` over the tasks in ``weights`` (per-example weights,
        or one per task, broadcast)."""
        return torch.stack([(weights[t] * self.losses[t]).mean() for t in weights]).sum()

    def _fill_grads(self, objective: Tensor, params: list[nn.Parameter]) -> None:
        """Set ``.grad`` of ``params`` to ``grad objective`` (zeros where it does not reach)."""
        grads = torch.autograd.grad(objective, params, retain_graph=True, allow_unused=True)
        for p, g in zip(params, grads):
            p.grad = g if g is not None else torch.zeros_like(p)

    def backward_weighted(self, weights: Mapping[str, Tensor | float]) -> None:
        """Fill ``.grad`` of the shared parameters and of the weighted tasks' heads with
        ``grad L_w`` (one backward pass): the loss-weighting update, heads included."""
        heads = [p for t in weights for p in self.heads.get(t, [])]
        self._fill_grads(self.weighted_objective(weights), [*self.shared, *heads])

    def backward_heads(self, weights: Mapping[str, Tensor | float] | None = None) -> None:
        """Give head ``i`` the gradient ``grad_phi_i mean_j w_i l_ij`` of its own task (``w_i``
        from ``weights``; ``None``: every task, weight 1, the gradient-surgery rule).

        One backward call over the weighted sum of the tasks' losses: head ``i`` only appears
        in task ``i``'s loss, and autograd stops at the heads (no encoder parameter is
        requested).
        """
        weights = weights if weights is not None else {t: 1.0 for t in self.losses}
        names = [t for t in weights if self.heads.get(t)]
        if names:
            self._fill_grads(self.weighted_objective({t: weights[t] for t in names}),
                             [p for t in names for p in self.heads[t]])


# Strategy families, in the order the documentation presents them: what each family's
# strategies decide from
FAMILIES: dict[str, str] = {
    "baseline": "no auxiliary task, or every task at a fixed weight",
    "meta": "per-example weights from a weighting network learned by looking one step ahead on target data",
    "gradient": "each auxiliary gradient scaled, gated or projected by its agreement with the target's",
    "bilevel": "task weights as hyper-parameters, learned by implicit differentiation through training",
    "adaptive": "task weights adapted from gradient magnitudes, alignment or a bargaining game",
    "multitask": "one scalar function of every task's loss, the target one task among equals (torchjd)",
}
# every concrete strategy, by ``weighting.name``: filled as their modules are imported
# (:meth:`Weighting.__init_subclass__`); :data:`auxrun.weighting.REGISTRY` is it in table order
REGISTRY: dict[str, type[Weighting]] = {}


class Weighting(ResumableState, nn.Module):
    """Base class of all strategies, and the contract between a strategy and the engine.

    ``trains_aux`` is ``False`` for strategies that ignore auxiliary tasks (``none``): the
    engine then does not even compute their losses. ``needs_target``: the strategy cannot
    run without a target task (pre-training refuses it). ``needs_lookahead`` asks the engine
    for the :class:`Lookahead` closures, whose meta batch :meth:`meta_batch` picks: from fold
    ``step mod folds`` of a fixed ``folds``-way partition of the target's training split, or,
    when ``meta_holdout > 0``, from that fraction of the training split, which the engine
    holds out of training (``TargetTask.hold_out``) before the first step. Never from
    validation. Its own optimisers and :attr:`counters` are part of its ``state_dict``
    (:class:`~auxrun.train.resume.ResumableState`), so a resumed run restores them.
    """

    name: str = "base"
    family: str = ""  # one of FAMILIES
    order: int = 0  # place in the rows of every comparison table (ascending; unique)
    keys: ClassVar[dict[str, Spec]] = {}  # specs of the strategy's own config keys (weighting.<key>)
    trains_aux: bool = True
    needs_target: bool = False
    needs_lookahead: bool = False
    folds: int = 1             # meta batches cycle through this many folds of the training split
    meta_holdout: float = 0.0  # fraction of the target's training split reserved for meta batches

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A class that sets its own ``name`` is a strategy: it joins :data:`REGISTRY`, and must
        say its family and its place in the tables."""
        super().__init_subclass__(**kwargs)
        if "name" not in vars(cls):
            return
        if cls.family not in FAMILIES:
            raise TypeError(f"weighting {cls.name!r}: family must be one of {', '.join(FAMILIES)}, not {cls.family!r}")
        taken = [other.name for other in REGISTRY.values() if other.order == cls.order and other.name != cls.name]
        if "order" not in vars(cls) or taken:
            raise TypeError(f"weighting {cls.name!r} needs an order of its own (taken by: {', '.join(taken) or '-'})")
        REGISTRY[cls.name] = cls

    @classmethod
    def check(cls, settings: dict[str, Any]) -> None:
        """What the strategy's config (``settings``: the resolved ``weighting`` group) must satisfy
        beyond its keys' specs (:attr:`keys`), checked when the config is composed
        (:func:`auxrun.schema.validate`); raises :class:`~auxrun.errors.AuxrunError`. None here."""

    def meta_batch(self, target, step_index: int, batch_size: int, gen: torch.Generator) -> dict[str, Tensor]:
        """The target examples this step's meta loss is scored on (see the class docstring)."""
        if self.meta_holdout > 0:
            return target.heldout_batch(batch_size, gen)
        return target.fold_batch(step_index, self.folds, batch_size, gen)

    def backward(self, step: Step) -> Diagnostics:
        """Fill ``.grad`` of shared and head parameters; return per-task diagnostics
        ``{task: {"weight": mean, "weight_std": std, "cos": cos(g_0, g_i) or None}}``."""
        raise NotImplementedError

    def after_optimizer_step(self, step: Step) -> None:
        """Called by the engine after the model's optimiser applied this step's update."""

    def end_epoch(self) -> None:
        """Called by the engine when an epoch's training steps are done."""


class LossWeighting(Weighting):
    """Strategies that weight losses: the update of every parameter, shared or head, is

    ``grad sum_i mean_j w_ij l_ij``

    with per-example (or per-task, broadcast) weights ``w_ij`` from :meth:`weights`.
    """

    def weights(self, step: Step) -> dict[str, Tensor]:
        raise NotImplementedError

    def backward(self, step: Step) -> Diagnostics:
        w = self.weights(step)
        step.backward_weighted(w)
        return diagnostics(step, w)


class ObjectiveWeighting(Weighting):
    """Strategies whose update is the gradient of a scalar function ``S`` of the task losses:
    every parameter, heads included, moves along

    ``grad S(L_0, ..., L_K) = sum_i (dS/dL_i) grad L_i``,

    so the effective weight of task ``i`` at this step is ``dS/dL_i`` (what the trace
    records). :meth:`objective` gets the vector of mean losses as a detached leaf; one call of
    it per step gives both ``dS/dL`` and the gradient of ``S`` with respect to the
    strategy's own parameters (left in their ``.grad`` for :meth:`learn`).
    """

    def objective(self, losses: Tensor) -> Tensor:
        """``S(L)`` for the vector ``L`` of the step's mean task losses (task order)."""
        raise NotImplementedError

    def learn(self, step: Step) -> None:
        """Update the strategy's own parameters (their ``.grad`` holds ``dS/dparam``)."""

    def backward(self, step: Step) -> Diagnostics:
        own = [p for p in self.parameters() if p.requires_grad]
        dS_dL, grads = step.objective_gradients(self.objective, own)
        for p, g in zip(own, grads):
            p.grad = g
        w = dict(zip(step.tasks, dS_dL))
        step.backward_weighted(w)
        self.learn(step)
        return diagnostics(step, w)


def diagnostics(step: Step, weights: dict[str, Tensor]) -> Diagnostics:
    """Mean and std of each task's (per-example or per-task) weights, and ``cos(g_0, g_i)``
    over every shared parameter where the step computed those per-task gradients anyway
    (never computed just for the trace)."""
    cos: dict[str, float | None] = {}
    if "all" in step._grads and TARGET in step.losses:  # the exact cosines only (not the last layer's)
        cos = {t: float(c) for t, c in zip(step.aux_tasks, step.cosines())}
    out: Diagnostics = {}
    for t, w in weights.items():
        w = w.detach().expand_as(step.losses[t]) if w.dim() == 0 else w.detach()
        std = float(w.std()) if w.numel() > 1 else 0.0
        out[t] = {"weight": float(w.mean()), "weight_std": std, "cos": cos.get(t)}
    return out
