"""The training loop shared by every scheme.

Each step: sample a batch of target examples (and one batch per auxiliary task), run the
encoder once on the step's inputs (auxiliary tasks such as attribute generation may hide
some features), compute every task's per-example losses, let the weighting strategy fill the
gradients, take an optimiser step. Each epoch: evaluate on validation, keep the best epoch
(early stopping with ``patience``), checkpoint it. At the end: restore the best epoch and
evaluate on validation and test.
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor, nn

from ..data.graph import GraphData
from ..data.molecules import MolData
from ..io import save_torch, write_text
from ..models import Encoder, GraphView
from ..tasks import Task, TargetTask
from ..weighting import TARGET, Step, Weighting
from .lookahead import lookahead_names, make_lookahead, rng_snapshot
from .molecular import evaluate_molecules

log = logging.getLogger(__name__)
TRACE_FIELDS = ("step", "epoch", "task", "loss", "weight", "weight_std", "cos")


class TaskModel(nn.Module):
    """The shared encoder and every task (whose heads are the only parameters tasks own)."""

    def __init__(self, encoder: Encoder, tasks: dict[str, Task]) -> None:
        super().__init__()
        self.encoder = encoder
        self.tasks = nn.ModuleDict(tasks)

    def forward(self, x: dict[str, Tensor], x_clean: dict[str, Tensor], graph: GraphView,
                batches: dict[str, dict[str, Tensor]]) -> dict[str, Tensor]:
        """Per-example losses of every task in ``batches``: one encoder pass on ``x`` (the
        step's possibly corrupted inputs), reconstruction targets from ``x_clean``."""
        emb = self.encoder(x, graph)
        return {name: self.tasks[name].losses(emb, batch, x_clean) for name, batch in batches.items()}


@dataclass
class RunState:
    """Everything needed to resume or report a run, kept in one place."""

    epoch: int = 0
    step: int = 0
    best_epoch: int = -1
    best_score: float = -math.inf
    bad_epochs: int = 0
    status: str = "completed"
    message: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FitResult:
    state: RunState
    val: dict[str, float]
    test: dict[str, float]
    seconds_per_step: float


class StepContext:
    """Builds the :class:`Step` of one optimisation step (the engine's inner loop body, kept
    separate so tests can build exactly the steps the engine trains on)."""

    def __init__(self, model: TaskModel, data: GraphData | MolData, graph: GraphView | None, target: TargetTask | None,
                 aux: dict[str, Task], strategy: Weighting, trainer: Any) -> None:
        self.model, self.data, self.graph = model, data, graph
        self.target, self.aux, self.strategy, self.trainer = target, aux, strategy, trainer
        self.shared = [p for p in model.encoder.parameters() if p.requires_grad]
        self.heads = {name: [p for p in t.parameters() if p.requires_grad] for name, t in model.tasks.items()}
        self.theta_names = lookahead_names(model)
        self.device = next(model.parameters()).device

    def inputs(self, batch: dict | None, gen: torch.Generator) -> tuple[dict[str, Tensor], Any]:
        """The step's clean inputs and graph: the dataset's graph, or for molecules the batch of
        the target's molecules (a random corpus sample when pre-training)."""
        if not isinstance(self.data, MolData):
            return self.data.x, self.graph
        if batch is not None:
            ids = batch["mols"]
        else:
            pool = self.data.split["train"]
            ids = pool[torch.randint(len(pool), (int(self.trainer.aux_batch_size),), generator=gen)]
        g = self.data.mols.collate(ids).to(self.device)
        return {"atom": g.x}, g

    def step(self, batch: dict | None, gen: torch.Generator, index: int) -> Step:
        """Sample the auxiliary batches, corrupt inputs, one forward pass; attach the
        look-ahead closures when the strategy needs them, with a meta batch from fold
        ``index mod folds`` of the training split, or from the held-out part of the training
        split for strategies that reserve one (``meta_holdout``)."""
        x_clean, graph = self.inputs(batch, gen)
        batches = {TARGET: batch} if self.target is not None else {}
        batches |= {n: t.sample_for(graph, int(self.trainer.aux_batch_size), gen) for n, t in self.aux.items()}
        x = x_clean
        for n, t in self.aux.items():
            x = t.corrupt(x, batches[n]) or x
        rng_step = rng_snapshot(self.device)
        losses = self.model(x, x_clean, graph, batches)
        lookahead = None
        if self.strategy.needs_lookahead:
            assert self.target is not None
            if self.strategy.meta_holdout:
                meta_batch = self.target.heldout_batch(int(self.trainer.batch_size), gen)
            else:
                meta_batch = self.target.fold_batch(index, self.strategy.folds, int(self.trainer.batch_size), gen)
            meta_inputs = self.inputs(meta_batch, gen) if isinstance(self.data, MolData) else None
            lookahead = make_lookahead(self.model, self.theta_names, x, x_clean, graph, batches, rng_step,
                                       meta_batch, rng_snapshot(self.device), meta_inputs)
        return Step(losses=losses, shared=self.shared, heads=self.heads, batches=batches, lookahead=lookahead)


def _select_score(metrics: dict[str, float], task: TargetTask | None) -> float:
    """Higher is better: the target's primary metric (negated when lower is better)."""
    if task is None:
        return 0.0
    value = metrics.get(task.primary_metric, float("nan"))
    if math.isnan(value):
        return -math.inf
    return value if task.higher_is_better else -value


def _evaluate(model: TaskModel, data: GraphData | MolData, graph: GraphView | None, target: TargetTask | None,
              aux: dict[str, Task], splits: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Metrics per split: the target's under their own names, each auxiliary task's as
    ``<task>_<metric>`` (on its fixed evaluation sample, with its own corrupted forward
    pass where it hides inputs)."""
    if isinstance(data, MolData):
        return evaluate_molecules(model, data, target, aux, splits)
    assert graph is not None
    model.eval()
    out: dict[str, dict[str, float]] = {s: {} for s in splits}
    with torch.no_grad():
        emb = model.encoder(data.x, graph)
        for s in splits:
            if target is not None:
                out[s].update(target.evaluate(emb, s, data.x))
        for name, task in aux.items():
            batch = task.eval_batch()
            x = task.corrupt(data.x, batch) if batch is not None else None
            task_emb = model.encoder(x, graph) if x is not None else emb
            metrics = task.evaluate(task_emb, "val", data.x)
            for s in splits:
                out[s].update({f"{name}_{k}": v for k, v in metrics.items()})
    return out


def _batches(target: TargetTask | None, trainer: Any, gen: torch.Generator) -> Iterator[dict | None]:
    if target is None:
        for _ in range(int(trainer.pretrain_steps_per_epoch)):
            yield None
    else:
        yield from target.train_batches(int(trainer.batch_size), gen)


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
    model = TaskModel(encoder, tasks).to(device)
    strategy.to(device)
    graph = None if isinstance(data, MolData) else GraphView.from_data(data)
    ctx = StepContext(model, data, graph, target, active_aux, strategy, trainer)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(trainer.lr), weight_decay=float(trainer.weight_decay))
    return model, ctx, optimizer


class Diverged(Exception):
    """A loss became non-finite; the message names the tasks and the step."""


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
    return step, diag


def fit(
    *,
    data: GraphData | MolData,
    encoder: nn.Module,
    target: TargetTask | None,
    aux: dict[str, Task],
    strategy: Weighting,
    trainer: Any,
    run_dir: Path,
    gen: torch.Generator,
    console: Console | None = None,
) -> FitResult:
    """Train ``encoder`` and the task heads under ``strategy``; see the module docstring."""
    model, ctx, optimizer = setup(data, encoder, target, aux, strategy, trainer, gen)
    graph, active_aux = ctx.graph, ctx.aux
    state = RunState()
    best_model = copy.deepcopy(model.state_dict())
    ckpt_dir = run_dir / "checkpoints"
    step_time, steps_timed = 0.0, 0
    max_epochs, patience = int(trainer.max_epochs), int(trainer.patience)

    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"), console=console or Console(stderr=True), transient=False,
        disable=not bool(trainer.progress),
    )
    with progress:
        bar = progress.add_task("epochs", total=max_epochs, info="")
        for epoch in range(max_epochs):
            state.epoch = epoch
            model.train()
            for batch in _batches(target, trainer, gen):
                t0 = time.perf_counter()
                try:
                    step, diag = train_step(ctx, optimizer, batch, gen, state.step, trainer.grad_clip)
                except Diverged as exc:
                    state.status, state.message = "diverged", str(exc)
                    break
                step_time += time.perf_counter() - t0
                steps_timed += 1
                for n, loss in step.losses.items():
                    d = diag.get(n, {})
                    state.trace.append({"step": state.step, "epoch": epoch, "task": n, "loss": float(loss.detach().mean()),
                                        "weight": d.get("weight"), "weight_std": d.get("weight_std"), "cos": d.get("cos")})
                state.step += 1
            if state.status == "diverged":
                log.warning("run diverged: %s", state.message)
                break

            val = _evaluate(model, data, graph, target, {}, ("val",))["val"] if target is not None else {}
            score = _select_score(val, target)
            state.history.append({"epoch": epoch, **val})
            # the first epoch always counts, so a metric that is undefined on every epoch
            # (nan: e.g. one class only in validation) still keeps a trained model
            if score > state.best_score or target is None or state.best_epoch < 0:
                state.best_score, state.best_epoch, state.bad_epochs = score, epoch, 0
                best_model = copy.deepcopy(model.state_dict())
                if trainer.checkpoint:
                    save_torch(ckpt_dir / "best.pt", {"epoch": epoch, "model": best_model,
                                                      "strategy": strategy.state_dict()})
            else:
                state.bad_epochs += 1
            info = " ".join(f"{k}={v:.4f}" for k, v in val.items() if k in ("auc", "f1_micro", "rmse", "loss"))
            progress.update(bar, advance=1, info=info)
            if patience and state.bad_epochs >= patience:
                log.info("early stopping at epoch %d (best %d)", epoch, state.best_epoch)
                break

    model.load_state_dict(best_model)
    final = _evaluate(model, data, graph, target, active_aux, ("val", "test"))
    write_trace(run_dir / "trace.csv", state.trace)
    return FitResult(state=state, val=final["val"], test=final["test"],
                     seconds_per_step=step_time / max(1, steps_timed))


def write_trace(path: Path, rows: list[dict[str, Any]]) -> None:
    """``trace.csv``: one row per (step, task); empty cells where a strategy computes nothing."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TRACE_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in TRACE_FIELDS})
    write_text(path, buf.getvalue())
