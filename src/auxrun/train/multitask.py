"""The multi-task step of ``mtl``, ``finetune`` and ``pretrain``, and their job for the training loop.

Each step: take a batch of target examples, ask the data view (:mod:`auxrun.data.step_inputs`) for
the step's inputs (one batch per auxiliary task and the graph they all share: the whole
graph, a sampled subgraph or the step's molecules), run the encoder once on them (auxiliary
tasks such as attribute generation may hide some features), compute every task's
per-example losses, let the weighting strategy fill the gradients, take an optimiser step.
:class:`TaskJob` is this step and its epochs as a job of the one training loop
(:mod:`auxrun.train.loop`), which evaluates on validation after every epoch, keeps the best
epoch (early stopping with ``patience``), checkpoints, and at the end restores the best epoch
and evaluates it on validation and test.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from ..data.graph import GraphData
from ..data.encoder_graph import GraphView
from ..data.molecules import MolData
from ..data.step_inputs import DataView, make_view
from ..models import Encoder
from ..tasks import Task, TargetTask
from ..weighting import TARGET, Step, Weighting
from .lookahead import frozen_norm_stats, lookahead_names, make_lookahead, replay, rng_snapshot
from .loop import Diverged, EpochPlan


class TaskModel(nn.Module):
    """The shared encoder and every task (whose heads are the only parameters tasks own).

    ``precision="bf16"`` runs every forward pass (steps, look-ahead re-evaluations,
    evaluation) under ``torch.autocast`` in bfloat16; losses come back in float32."""

    def __init__(self, encoder: Encoder, tasks: dict[str, Task], precision: str = "32") -> None:
        super().__init__()
        self.encoder = encoder
        self.tasks = nn.ModuleDict(tasks)
        self.precision = str(precision)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context of this model's precision (a no-op at 32 bits)."""
        if self.precision != "bf16":
            return contextlib.nullcontext()
        device = next(self.parameters()).device
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    def forward(self, x: dict[str, Tensor], x_clean: dict[str, Tensor], graph: GraphView,
                batches: dict[str, dict[str, Tensor]]) -> dict[str, Tensor]:
        """Per-example losses of every task in ``batches``: one encoder pass on ``x`` (the
        step's possibly corrupted inputs), reconstruction targets from ``x_clean``; each task's
        losses multiplied by its ``loss_scale``."""
        with self.autocast():
            emb = self.encoder(x, graph)
            losses = {name: self._scaled(self.tasks[name], self.tasks[name].losses(emb, batch, x_clean))
                      for name, batch in batches.items()}
        return {n: v.float() for n, v in losses.items()} if self.precision == "bf16" else losses

    @staticmethod
    def _scaled(task: Task, losses: Tensor) -> Tensor:
        return losses if task.loss_scale == 1.0 else losses * task.loss_scale


class StepContext:
    """Builds the :class:`Step` of one optimisation step (the engine's inner loop body, kept
    separate so tests can build exactly the steps the engine trains on)."""

    def __init__(self, model: TaskModel, view: DataView, target: TargetTask | None, aux: dict[str, Task],
                 strategy: Weighting, trainer: Any) -> None:
        self.model, self.view = model, view
        self.target, self.aux, self.strategy, self.trainer = target, aux, strategy, trainer
        self.shared = [p for p in model.encoder.parameters() if p.requires_grad]
        last = getattr(model.encoder, "last_layer", None)
        self.last_layer = [p for p in last() if p.requires_grad] if last is not None else None
        self.grad_route = str(trainer.get("task_grads", "loop"))
        self.heads = {name: [p for p in t.parameters() if p.requires_grad] for name, t in model.tasks.items()}
        self.theta_names = lookahead_names(model)
        self.device = next(model.parameters()).device

    def step(self, batch: dict | None, gen: torch.Generator, index: int) -> Step:
        """The step's inputs from the data view (target batch, a batch of every auxiliary
        task, the graph they share), corrupted inputs, one forward pass; the look-ahead
        closures when the strategy needs them, on the meta batch the strategy picks
        (:meth:`Weighting.meta_batch`) with inputs of its own from the view."""
        inputs = self.view.step(batch, gen)
        x = inputs.x
        for n, t in self.aux.items():
            x = t.corrupt(x, inputs.batches[n]) or x
        rng_step = rng_snapshot(self.device)
        losses = self.model(x, inputs.x, inputs.graph, inputs.batches)
        lookahead = None
        if self.strategy.needs_lookahead:
            assert self.target is not None
            meta_batch = self.strategy.meta_batch(self.target, index, int(self.trainer.batch_size), gen)
            meta = self.view.meta_inputs(meta_batch, gen)
            lookahead = make_lookahead(self.model, self.theta_names, x, inputs, rng_step, meta,
                                       rng_snapshot(self.device))

        def reevaluate() -> dict[str, Tensor]:
            with torch.no_grad(), replay(rng_step, self.device), frozen_norm_stats(self.model):
                return self.model(x, inputs.x, inputs.graph, inputs.batches)

        return Step(losses=losses, shared=self.shared, heads=self.heads, batches=inputs.batches, lookahead=lookahead,
                    last_layer=self.last_layer, reevaluate=reevaluate,
                    grad_route=self.grad_route)


def _select_score(metrics: dict[str, float], task: TargetTask | None) -> float:
    """Higher is better: the target's primary metric (negated when lower is better)."""
    if task is None:
        return 0.0
    value = metrics.get(task.primary_metric, float("nan"))
    if math.isnan(value):
        return -math.inf
    return value if task.higher_is_better else -value


def evaluate(model: TaskModel, view: DataView, target: TargetTask | None, aux: dict[str, Task],
             splits: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Metrics per split: the target's under their own names (on the embeddings the view
    computes for the splits), each auxiliary task's as ``<task>_<metric>`` (on its fixed
    evaluation batch, with a corrupted forward pass where the task hides inputs)."""
    model.eval()
    out: dict[str, dict[str, float]] = {s: {} for s in splits}
    with torch.no_grad(), model.autocast():
        if target is not None:
            embs = view.target_embeddings(model.encoder, splits)
            for s in splits:
                out[s].update(target.evaluate(embs[s], s))
        plain: dict[tuple[int, int], dict[str, Tensor]] = {}  # uncorrupted passes, per (inputs, graph)
        for name, task in aux.items():
            inputs = view.aux_eval_inputs(name)
            batch = inputs.batches[name]
            corrupted = task.corrupt(inputs.x, batch)
            if corrupted is not None:
                emb = model.encoder(corrupted, inputs.graph)
            else:  # tasks that hide nothing share one pass where the view hands them one graph
                key = (id(inputs.x), id(inputs.graph))
                if key not in plain:
                    plain[key] = model.encoder(inputs.x, inputs.graph)
                emb = plain[key]
            metrics = task.evaluate(emb, "val", inputs.x, batch)
            for s in splits:
                out[s].update({f"{name}_{k}": v for k, v in metrics.items()})
    return out


def setup(data: GraphData | MolData, encoder: nn.Module, target: TargetTask | None, aux: dict[str, Task],
          strategy: Weighting, trainer: Any,
          gen: torch.Generator) -> tuple[TaskModel, StepContext, torch.optim.Optimizer]:
    """The model (encoder + the heads the strategy trains), its step builder and optimiser; a
    strategy's held-out part of the training split is drawn with the run's seed (without
    advancing ``gen``)."""
    device = next(encoder.parameters()).device
    if target is not None:
        target.hold_out(strategy.meta_holdout, gen.initial_seed())
    active_aux = aux if strategy.trains_aux else {}
    tasks: dict[str, Task] = ({TARGET: target} if target is not None else {}) | active_aux
    model = TaskModel(encoder, tasks, str(trainer.get("precision", "32"))).to(device)
    strategy.to(device)
    view = make_view(data, tasks, trainer, gen, device)
    ctx = StepContext(model, view, target, active_aux, strategy, trainer)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(trainer.lr), weight_decay=float(trainer.weight_decay))
    return model, ctx, optimizer


def train_step(ctx: StepContext, optimizer: torch.optim.Optimizer, batch: dict | None, gen: torch.Generator,
               index: int, grad_clip: float | None = None) -> tuple[Step, dict]:
    """One optimisation step; raises :class:`Diverged` (before any update) when a loss is
    not finite."""
    step = ctx.step(batch, gen, index)
    bad = [n for n, v in step.losses.items() if not bool(torch.isfinite(v).all())]
    if bad:
        raise Diverged(f"non-finite loss in {', '.join(bad)} at step {index}")
    optimizer.zero_grad(set_to_none=True)
    diag = ctx.strategy.backward(step)
    if grad_clip:
        nn.utils.clip_grad_norm_(ctx.model.parameters(), float(grad_clip))
    optimizer.step()
    ctx.strategy.after_optimizer_step(step)
    return step, diag


class TaskJob:
    """The multi-task job of ``mtl``, ``finetune`` and ``pretrain`` for the training loop
    (:class:`~auxrun.train.loop.Job`): an epoch is the target's training examples in a random
    order, cut into ``trainer.batch_size`` batches (pre-training, which has no target, counts
    ``trainer.pretrain_steps_per_epoch`` steps); the kept epoch is the one with the best
    validation primary metric (ties: the earlier; pre-training keeps the last); the final metrics
    are the target's and every auxiliary task's, on validation and test."""

    name = "epochs"

    def __init__(self, data: GraphData | MolData, encoder: nn.Module, target: TargetTask | None,
                 aux: dict[str, Task], strategy: Weighting, trainer: Any, gen: torch.Generator) -> None:
        self.model, self.ctx, self.optimizer = setup(data, encoder, target, aux, strategy, trainer, gen)
        self.target, self.strategy, self.trainer, self.gen = target, strategy, trainer, gen
        self.max_epochs = int(trainer.max_epochs)
        self.loss_task = TARGET if target is not None else None
        self.loss_name = "train loss" if target is not None else "train aux loss"

    def new_epoch(self) -> EpochPlan:
        return EpochPlan(self.target.epoch_order(self.gen) if self.target is not None else None)

    def batches(self, plan: EpochPlan) -> Iterator[dict | None]:
        if self.target is None:
            for _ in range(plan.done, int(self.trainer.pretrain_steps_per_epoch)):
                yield None
        else:
            assert plan.order is not None
            yield from self.target.batches_from(plan.order, int(self.trainer.batch_size), plan.done, self.gen)

    def train_step(self, batch: dict | None, index: int) -> list[dict[str, Any]]:
        step, diag = train_step(self.ctx, self.optimizer, batch, self.gen, index, self.trainer.grad_clip)
        return [{"task": n, "loss": float(loss.detach().mean()), "weight": diag.get(n, {}).get("weight"),
                 "weight_std": diag.get(n, {}).get("weight_std"), "cos": diag.get(n, {}).get("cos")}
                for n, loss in step.losses.items()]

    def end_epoch(self) -> None:
        self.strategy.end_epoch()

    def validate(self) -> tuple[dict[str, float], float]:
        if self.target is None:
            return {}, 0.0
        val = evaluate(self.model, self.ctx.view, self.target, {}, ("val",))["val"]
        return val, _select_score(val, self.target)

    def improved(self, score: float, best: float) -> bool:
        return self.target is None or score > best

    def shown(self, val: dict[str, float]) -> tuple[str, float] | None:
        if self.target is None:
            return None
        return f"val {self.target.primary_metric}", val.get(self.target.primary_metric, math.nan)

    def final(self) -> tuple[dict[str, float], dict[str, float]]:
        out = evaluate(self.model, self.ctx.view, self.target, self.ctx.aux, ("val", "test"))
        return out["val"], out["test"]

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "strategy": self.strategy.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.strategy.load_state_dict(state["strategy"])

    def best_extras(self) -> dict[str, Any]:
        return {"strategy": self.strategy.state_dict()}
