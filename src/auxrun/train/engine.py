"""The training loop shared by every scheme.

Each step: take a batch of target examples, ask the data view (:mod:`auxrun.data.view`) for
the step's inputs (one batch per auxiliary task and the graph they all share: the whole
graph, a sampled subgraph or the step's molecules), run the encoder once on them (auxiliary
tasks such as attribute generation may hide some features), compute every task's
per-example losses, let the weighting strategy fill the gradients, take an optimiser step.
Each epoch: evaluate on validation, keep the best epoch (early stopping with ``patience``),
checkpoint it. At the end: restore the best epoch and
evaluate on validation and test.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import logging
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor, nn

from ..data.graph import GraphData
from ..data.graph_view import GraphView
from ..data.molecules import MolData
from ..data.view import DataView, make_view
from ..io import save_torch, write_text
from ..models import Encoder
from ..tasks import Task, TargetTask
from ..weighting import TARGET, Step, Weighting
from .lookahead import frozen_norm_stats, lookahead_names, make_lookahead, replay, rng_snapshot
from .loggers import NoLogger, RunLogger
from .resume import LAST, StopSignals, load_run_state, rng_states, save_run_state, set_rng_states

log = logging.getLogger(__name__)
TRACE_FIELDS = ("step", "epoch", "task", "loss", "weight", "weight_std", "cos")


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
    signum: int | None = None  # the signal that stopped an interrupted run


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


@dataclass
class EpochPlan:
    """Where an epoch stands: its order of the target's training examples (``None`` when
    pre-training, which counts ``pretrain_steps_per_epoch`` steps) and how many batches are done."""

    order: Tensor | None
    done: int = 0

    def batches(self, target: TargetTask | None, trainer: Any, gen: torch.Generator) -> Iterator[dict | None]:
        """The epoch's remaining batches (each drawn as the step that trains on it starts)."""
        if target is None:
            for _ in range(self.done, int(trainer.pretrain_steps_per_epoch)):
                yield None
        else:
            assert self.order is not None
            yield from target.batches_from(self.order, int(trainer.batch_size), self.done, gen)


def new_epoch(target: TargetTask | None, gen: torch.Generator) -> EpochPlan:
    """An epoch's plan: the target's order of examples for this epoch (one draw from ``gen``)."""
    return EpochPlan(target.epoch_order(gen) if target is not None else None)


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
    ctx.strategy.after_optimizer_step(step)
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
    logger: RunLogger | None = None,
    config: dict[str, Any] | None = None,
) -> FitResult:
    """Train ``encoder`` and the task heads under ``strategy``; see the module docstring.

    ``logger`` (:mod:`auxrun.train.loggers`) gets every step's trace rows and every epoch's
    validation metrics as they happen. With ``trainer.checkpoint`` and the run's resolved
    ``config``, the whole run state is checkpointed at the end of every epoch and when SIGINT or
    SIGTERM asks the run to stop (:mod:`auxrun.train.resume`); a run of the same config on the
    same folder resumes from that checkpoint. A stopped run returns ``status: interrupted``."""
    logger = logger or NoLogger()
    model, ctx, optimizer = setup(data, encoder, target, aux, strategy, trainer, gen)
    view, active_aux = ctx.view, ctx.aux
    state = RunState()
    best_model = copy.deepcopy(model.state_dict())
    ckpt_dir = run_dir / "checkpoints"
    step_time, steps_timed = 0.0, 0
    max_epochs, patience = int(trainer.max_epochs), int(trainer.patience)
    keep = bool(trainer.checkpoint) and config is not None
    plan: EpochPlan | None = None
    first_row, epoch_time, epoch_steps, start_epoch, stopped_early = 0, 0.0, 0, 0, False

    def checkpoint(plan: EpochPlan | None) -> None:
        if keep:
            tolerant(lambda: save_run_state(ckpt_dir / LAST, {
                "config": config, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "strategy": strategy.state_dict(), "state": asdict(state), "best_model": best_model,
                "plan": None if plan is None else {"order": plan.order, "done": plan.done},
                "timing": [step_time, steps_timed, first_row, epoch_time, epoch_steps],
                "stopped_early": stopped_early, "rng": rng_states(gen)}), "the checkpoint")

    saved = load_run_state(ckpt_dir / LAST, config) if keep else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        strategy.load_state_dict(saved["strategy"])
        state = RunState(**saved["state"])
        best_model = saved["best_model"]
        step_time, steps_timed, first_row, epoch_time, epoch_steps = saved["timing"]
        stopped_early = bool(saved["stopped_early"])
        plan = EpochPlan(**saved["plan"]) if saved["plan"] is not None else None
        start_epoch = state.epoch if plan is not None else state.epoch + 1
        set_rng_states(saved["rng"], gen)
        where = f"epoch {state.epoch + 1}, step {state.step}" if plan is not None else f"the end of epoch {state.epoch + 1}"
        log.warning("resuming %s from its checkpoint at %s", run_dir, where)
        state.status, state.message = "completed", ""

    console = console or Console(stderr=True)
    lines = bool(trainer.progress) and not console.is_terminal  # logs and pipes: a line per epoch instead
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"), console=console, transient=False,
        disable=not bool(trainer.progress) or lines,
    )
    with progress, contextlib.closing(logger), StopSignals() as signals:  # the logger is closed however it ends
        bar = progress.add_task("epochs", total=max_epochs, completed=start_epoch, info="")
        for epoch in range(start_epoch, 0 if stopped_early else max_epochs):
            state.epoch = epoch
            model.train()
            if plan is None:  # a new epoch (a resumed one keeps its plan and its counters)
                plan = new_epoch(target, gen)
                first_row, epoch_time, epoch_steps = len(state.trace), step_time, steps_timed
            for batch in plan.batches(target, trainer, gen):
                t0 = time.perf_counter()
                try:
                    step, diag = train_step(ctx, optimizer, batch, gen, state.step, trainer.grad_clip)
                except Diverged as exc:
                    state.status, state.message = "diverged", str(exc)
                    break
                step_time += time.perf_counter() - t0
                steps_timed += 1
                rows = [{"step": state.step, "epoch": epoch, "task": n, "loss": float(loss.detach().mean()),
                         "weight": diag.get(n, {}).get("weight"), "weight_std": diag.get(n, {}).get("weight_std"),
                         "cos": diag.get(n, {}).get("cos")} for n, loss in step.losses.items()]
                state.trace += rows
                logger.step(state.step, rows)
                state.step += 1
                plan.done += 1
                if signals.signum is not None:
                    break
            if state.status == "diverged":
                log.warning("run diverged: %s", state.message)
                break
            if signals.signum is not None:  # between two steps: the rest of this epoch follows on resume
                checkpoint(plan)
                state.status = "interrupted"
                break
            plan = None
            strategy.end_epoch()

            val = evaluate(model, view, target, {}, ("val",))["val"] if target is not None else {}
            score = _select_score(val, target)
            state.history.append({"epoch": epoch, **val})
            logger.epoch(epoch, val, epoch_loss(state.trace[first_row:], TARGET if target is not None else None))
            # the first epoch always counts, so a metric that is undefined on every epoch
            # (nan: e.g. one class only in validation) still keeps a trained model
            if score > state.best_score or target is None or state.best_epoch < 0:
                state.best_score, state.best_epoch, state.bad_epochs = score, epoch, 0
                best_model = copy.deepcopy(model.state_dict())
                if trainer.checkpoint:
                    tolerant(lambda: save_torch(ckpt_dir / "best.pt", {"epoch": epoch, "model": best_model,
                                                                       "strategy": strategy.state_dict()}),
                             "the best epoch's checkpoint")
            else:
                state.bad_epochs += 1
            info = " ".join(f"{k}={v:.4f}" for k, v in val.items() if k in ("auc", "f1_micro", "rmse", "loss"))
            progress.update(bar, advance=1, info=info)
            if lines:
                step_s = (step_time - epoch_time) / max(1, steps_timed - epoch_steps)
                rows = state.trace[first_row:]
                if target is not None:
                    log.info(epoch_line(epoch, max_epochs, step_s, "train loss", epoch_loss(rows, TARGET),
                                        (f"val {target.primary_metric}", val.get(target.primary_metric, math.nan))))
                else:
                    log.info(epoch_line(epoch, max_epochs, step_s, "train aux loss", epoch_loss(rows, None)))
            stopped_early = bool(patience and state.bad_epochs >= patience)
            checkpoint(None)
            if stopped_early:
                log.info("early stopping after epoch %d (best: epoch %d)", epoch + 1, state.best_epoch + 1)  # as "epoch N/M" counts
                break
            if signals.signum is not None:  # the signal came during the evaluation
                state.status = "interrupted"
                break
        signum = signals.signum

    if state.status == "interrupted":
        assert signum is not None
        state.message = (f"stopped by {signal.Signals(signum).name} at epoch {state.epoch + 1}, step {state.step}"
                         + ("; the checkpoint is kept to resume from" if keep else
                            " (trainer.checkpoint=false: nothing to resume from)"))
        tolerant(lambda: write_trace(run_dir / "trace.csv", state.trace), "trace.csv")
        return FitResult(state=state, val={}, test={}, seconds_per_step=step_time / max(1, steps_timed),
                         signum=signum)
    model.load_state_dict(best_model)
    final = evaluate(model, view, target, active_aux, ("val", "test"))
    tolerant(lambda: write_trace(run_dir / "trace.csv", state.trace), "trace.csv")
    return FitResult(state=state, val=final["val"], test=final["test"],
                     seconds_per_step=step_time / max(1, steps_timed))


def tolerant(write: Any, what: str) -> None:
    """Run ``write``; on a storage error (a full disk) warn and go on: the file keeps its
    previous content, and training or the run's result is worth more than this file."""
    try:
        write()
    except OSError as exc:
        log.warning("could not write %s (%s); its previous version, if any, is kept", what, exc)


def epoch_line(epoch: int, max_epochs: int, step_s: float, loss_name: str, loss: float,
               metric: tuple[str, float] | None = None) -> str:
    """One epoch for logs: ``epoch 3/100  step 41.2 ms  train loss 0.5321  val f1_micro=0.7100``
    (the epoch's mean step time and training loss, and a validation metric where there is
    one); the zero-shot scheme writes the same line with its own loss and metric names."""
    line = f"epoch {epoch + 1}/{max_epochs}  step {step_s * 1000:.1f} ms  {loss_name} {loss:.4f}"
    return line + (f"  {metric[0]}={metric[1]:.4f}" if metric is not None else "")


def epoch_loss(rows: list[dict[str, Any]], task: str | None) -> float:
    """Mean over the epoch's steps of ``task``'s loss (every task's summed when ``None``)."""
    mine = [r for r in rows if task is None or r["task"] == task]
    return sum(r["loss"] for r in mine) / max(1, len({r["step"] for r in mine}))


def write_trace(path: Path, rows: list[dict[str, Any]]) -> None:
    """``trace.csv``: one row per (step, task); empty cells where a strategy computes nothing."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TRACE_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in TRACE_FIELDS})
    write_text(path, buf.getvalue())
