"""The one training loop behind every command (``mtl``, ``finetune``, ``pretrain``, ``zeroshot``).

What is trained is a :class:`Job`: the multi-task job of :mod:`auxrun.train.multitask` (a
target and auxiliary tasks under a weighting strategy) or the zero-shot job of
:mod:`auxrun.transfer.zeroshot` (a source classifier and a transfer method). The loop owns
everything around the steps, once for all of them:

* **epochs**: ``job.new_epoch`` draws an epoch's order of training examples (:class:`EpochPlan`),
  ``job.batches`` cuts it into batches, ``job.train_step`` trains on one and returns its trace
  rows (a non-finite loss raises :class:`Diverged`: status ``diverged``, the kept epoch is
  still evaluated);
* **the kept epoch**: after every epoch ``job.validate`` gives validation metrics and a score
  (higher is better); the epoch is kept when ``job.improved(score, best)`` (or it is the first),
  its weights go to ``checkpoints/best.pt``; ``trainer.patience`` epochs without a kept one stop
  the run early; at the end the kept weights are restored and ``job.final`` gives the
  validation and test metrics;
* **resume**: with ``trainer.checkpoint`` and the run's resolved config, the whole run state
  (:class:`RunState`, the job's state, the kept weights, every random state) is written to
  ``checkpoints/last.pt`` at the end of every epoch and when SIGINT or SIGTERM stops the run
  between two steps (:mod:`auxrun.train.resume`); a run of the same config on the same folder
  continues from there, mid-epoch included, and ends as a run that was never stopped;
* **observers**: a caller may watch every epoch's validation score through
  :data:`EPOCH_OBSERVER` (the tuner's pruner, :mod:`auxrun.tuning`); when it answers true, the
  run stops there with status ``pruned`` and its kept epoch is evaluated as usual;
* **records**: ``trace.csv`` (one row per step and task), the live logger
  (:mod:`auxrun.train.loggers`), a progress bar on a terminal or one line per epoch in a log.
  Files are written through :func:`tolerant`: a full disk costs a file, never the run.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import csv
import io
import logging
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import Tensor, nn

from ..atomic import save_torch, write_text
from ..run_folder import TRACE_FIELDS, RunFolder
from .loggers import NoLogger, RunLogger
from .resume import StopSignals, load_run_state, rng_states, save_run_state, set_rng_states

log = logging.getLogger(__name__)
# Called with (epoch, validation score, higher is better) after every validation of a run in this
# context; a true answer stops the run as ``pruned`` (the tuner's pruner: auxrun.tuning).
EPOCH_OBSERVER: contextvars.ContextVar[Callable[[int, float], bool] | None] = \
    contextvars.ContextVar("epoch_observer", default=None)


class Diverged(Exception):
    """A loss became non-finite; the message names the tasks and the step."""


@dataclass
class EpochPlan:
    """Where an epoch stands: its order of the training examples (``None`` for a job that
    counts a fixed number of steps instead, as pre-training does) and how many batches are done."""

    order: Tensor | None
    done: int = 0


class Job(Protocol):
    """What the loop trains. ``model`` holds every trained weight (its ``state_dict`` is what
    the kept epoch saves and restores); ``gen`` is the run's generator, from which every batch
    and sample is drawn."""

    name: str  # the progress bar's label
    model: nn.Module
    gen: torch.Generator
    max_epochs: int  # 0: nothing to train (a training-free method)
    loss_task: str | None  # whose trace loss is an epoch's training loss (None: every task's, summed)
    loss_name: str  # how the epoch line names that loss

    def new_epoch(self) -> EpochPlan:
        """A new epoch's plan (its one draw from ``gen``: the order of the training examples)."""

    def batches(self, plan: EpochPlan) -> Iterator[Any]:
        """The plan's remaining batches, each drawn as the step that trains on it starts."""

    def train_step(self, batch: Any, index: int) -> list[dict[str, Any]]:
        """One optimisation step; its trace rows (``task``, ``loss``, ``weight``, ...); raises
        :class:`Diverged` (before any update) when a loss is not finite."""

    def end_epoch(self) -> None:
        """After an epoch's last step (a strategy's per-epoch update)."""

    def validate(self) -> tuple[dict[str, float], float]:
        """Validation metrics and the score that selects the kept epoch (higher is better)."""

    def improved(self, score: float, best: float) -> bool:
        """Whether an epoch of ``score`` replaces the kept one of ``best`` (ties: the job says)."""

    def shown(self, val: dict[str, float]) -> tuple[str, float] | None:
        """The validation metric the progress bar and the epoch line show, if any."""

    def final(self) -> tuple[dict[str, float], dict[str, float]]:
        """Validation and test metrics of the restored kept epoch."""

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume from beyond the random states (model, optimisers, strategy)."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def best_extras(self) -> dict[str, Any]:
        """What ``best.pt`` holds beside the epoch and the model's weights."""


@dataclass
class RunState:
    """Everything the loop knows about a run, saved whole in every checkpoint."""

    epoch: int = 0  # the epoch in progress, or the last one that ran
    step: int = 0  # optimisation steps taken
    epochs_run: int = 0  # epochs whose steps all ran (a diverged epoch counts)
    best_epoch: int = -1
    best_score: float = -math.inf
    bad_epochs: int = 0  # epochs since the kept one
    stopped_early: bool = False
    status: str = "completed"
    message: str = ""
    step_seconds: float = 0.0  # time spent in training steps, over every attempt of the run
    wall_seconds: float = 0.0  # wall time of the run's attempts up to the last checkpoint (what a resume adds to)
    epoch_step_seconds: float = 0.0  # of the epoch in progress
    plan: EpochPlan | None = None  # the epoch in progress, while it is
    history: list[dict[str, Any]] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> RunState:
        values = {f.name: saved[f.name] for f in fields(cls) if f.name in saved}
        if values.get("plan") is not None:
            values["plan"] = EpochPlan(**values["plan"])
        return cls(**values)

    @property
    def seconds_per_step(self) -> float:
        return self.step_seconds / max(1, self.step)


@dataclass
class FitResult:
    state: RunState
    val: dict[str, float]
    test: dict[str, float]
    signum: int | None = None  # the signal that stopped an interrupted run
    earlier_seconds: float = 0.0  # wall time of the attempts before this one (a resumed run's)

    @property
    def seconds_per_step(self) -> float:
        return self.state.seconds_per_step


class Loop:
    """One run of a :class:`Job` in a run folder (see the module docstring)."""

    def __init__(self, job: Job, trainer: Any, run_dir: Path, config: dict[str, Any] | None = None,
                 logger: RunLogger | None = None, console: Console | None = None,
                 start: dict[str, Any] | None = None) -> None:
        self.job, self.trainer, self.folder = job, trainer, RunFolder(run_dir)
        self.config, self.logger, self.start = config, logger or NoLogger(), start
        self.console = console or Console(stderr=True)
        self.keep = bool(trainer.checkpoint) and config is not None  # whole-state checkpoints
        self.state = RunState()
        self.started, self.earlier = time.time(), 0.0  # this attempt's start; earlier attempts' wall time
        self.best = copy.deepcopy(job.model.state_dict())
        self.lines = bool(trainer.progress) and not self.console.is_terminal  # logs, pipes: a line per epoch

    def run(self) -> FitResult:
        """Train (resuming where a checkpoint of this config says), restore the kept epoch,
        evaluate it; an interrupted run returns empty metrics and the signal."""
        self.resume()
        state, epochs = self.state, self.job.max_epochs
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=self.console,
                            disable=not bool(self.trainer.progress) or self.lines or not epochs)
        with progress, contextlib.closing(self.logger), StopSignals() as signals:
            bar = progress.add_task(self.job.name, total=epochs, completed=state.epochs_run, info="")
            for epoch in range(state.epochs_run, 0 if state.stopped_early else epochs):
                state.epoch = epoch
                if not self.train_epoch(epoch, signals) or not self.end_epoch(epoch, signals):
                    break
                shown = self.job.shown(state.history[-1])
                progress.update(bar, advance=1, info="" if shown is None else f"{shown[0]}={shown[1]:.4f}")
        return self.finish(signals.signum)

    def train_epoch(self, epoch: int, signals: StopSignals) -> bool:
        """The epoch's steps (the rest of a resumed one); whether the run goes on to validate."""
        state, job = self.state, self.job
        job.model.train()
        if state.plan is None:  # a new epoch (a resumed one keeps its plan and its counters)
            state.plan, state.epoch_step_seconds = job.new_epoch(), 0.0
        for batch in job.batches(state.plan):
            t0 = time.perf_counter()
            try:
                rows = job.train_step(batch, state.step)
            except Diverged as exc:
                state.status, state.message = "diverged", str(exc)
                break
            seconds = time.perf_counter() - t0
            state.step_seconds += seconds
            state.epoch_step_seconds += seconds
            rows = [{"step": state.step, "epoch": epoch, **row} for row in rows]
            state.trace += rows
            self.logger.step(state.step, rows)
            state.step += 1
            state.plan.done += 1
            if signals.signum is not None:
                break
        if signals.signum is not None and state.status != "diverged":  # the rest of the epoch follows on resume
            self.checkpoint()
            state.status = "interrupted"
            return False
        state.plan, state.epochs_run = None, epoch + 1
        if state.status == "diverged":
            log.warning("run diverged: %s", state.message)
            return False
        return True

    def end_epoch(self, epoch: int, signals: StopSignals) -> bool:
        """Validate, keep the epoch if it is the best so far, checkpoint; whether to go on."""
        state, job = self.state, self.job
        job.end_epoch()
        val, score = job.validate()
        state.history.append({"epoch": epoch, **val})
        rows = epoch_rows(state.trace, epoch)
        self.logger.epoch(epoch, val, epoch_loss(rows, job.loss_task))
        # the first epoch always counts, so a metric that is undefined on every epoch
        # (nan: e.g. one class only in validation) still keeps a trained model
        if state.best_epoch < 0 or job.improved(score, state.best_score):
            state.best_score, state.best_epoch, state.bad_epochs = score, epoch, 0
            self.best = copy.deepcopy(job.model.state_dict())
            if self.trainer.checkpoint:
                payload = {"epoch": epoch, "model": self.best, **job.best_extras()}
                tolerant(lambda: save_torch(self.folder.best, payload), "the best epoch's checkpoint")
        else:
            state.bad_epochs += 1
        if self.lines:
            step_s = state.epoch_step_seconds / max(1, len({r["step"] for r in rows}))
            log.info(epoch_line(epoch, job.max_epochs, step_s, job.loss_name, epoch_loss(rows, job.loss_task),
                                job.shown(val)))
        patience = int(self.trainer.patience)
        state.stopped_early = bool(patience and state.bad_epochs >= patience)
        observer = EPOCH_OBSERVER.get()
        if observer is not None and not state.stopped_early and observer(epoch, score):
            state.stopped_early, state.status = True, "pruned"
            state.message = f"pruned by the tuner after epoch {epoch + 1}"
            log.info("%s", state.message)
        self.checkpoint()
        if state.stopped_early:
            if state.status != "pruned":
                log.info("early stopping after epoch %d (best: epoch %d)", epoch + 1, state.best_epoch + 1)
            return False
        if signals.signum is not None:  # the signal came during the validation: the checkpoint has the epoch
            state.status = "interrupted"
            return False
        return True

    def checkpoint(self) -> None:
        """The whole run state to ``checkpoints/last.pt`` (with ``trainer.checkpoint`` and a config),
        with the config and what the run started from, which a resumed run must share."""
        if self.keep:
            self.state.wall_seconds = self.earlier + time.time() - self.started
            payload = {"config": self.config, "start": self.start, "job": self.job.state_dict(),
                       "best_model": self.best, "state": asdict(self.state), "rng": rng_states(self.job.gen)}
            tolerant(lambda: save_run_state(self.folder.last, payload), "the checkpoint")

    def resume(self) -> None:
        """Load this config's checkpoint from the run folder, if there is one."""
        saved = load_run_state(self.folder.last, self.config, self.start) if self.keep else None
        if saved is None:
            return
        self.job.load_state_dict(saved["job"])
        self.best = saved["best_model"]
        self.state = state = RunState.from_dict(saved["state"])
        self.earlier = state.wall_seconds
        set_rng_states(saved["rng"], self.job.gen)
        where = (f"epoch {state.epoch + 1}, step {state.step}" if state.plan is not None
                 else f"the end of epoch {state.epochs_run}")
        log.warning("resuming %s from its checkpoint at %s", self.folder.path, where)
        state.status, state.message = "completed", ""

    def finish(self, signum: int | None) -> FitResult:
        """Write the trace; unless interrupted, restore the kept epoch and evaluate it."""
        state = self.state
        tolerant(lambda: write_trace(self.folder.trace, state.trace), "trace.csv")
        if state.status == "interrupted":
            assert signum is not None
            state.message = (f"stopped by {signal.Signals(signum).name} at epoch {state.epoch + 1}, step {state.step}"
                             + ("; the checkpoint is kept to resume from" if self.keep else
                                " (trainer.checkpoint=false: nothing to resume from)"))
            return FitResult(state=state, val={}, test={}, signum=signum, earlier_seconds=self.earlier)
        self.job.model.load_state_dict(self.best)
        val, test = self.job.final()
        return FitResult(state=state, val=val, test=test, earlier_seconds=self.earlier)


def fit(job: Job, trainer: Any, run_dir: Path, config: dict[str, Any] | None = None,
        logger: RunLogger | None = None, console: Console | None = None,
        start: dict[str, Any] | None = None) -> FitResult:
    """Train ``job`` in ``run_dir`` (:class:`Loop`). ``start``: what the run's weights came
    from beyond its config (a pre-trained encoder file's SHA-256), which a checkpoint must share
    to be resumed."""
    return Loop(job, trainer, run_dir, config, logger, console, start).run()


def tolerant(write: Any, what: str) -> None:
    """Run ``write``; on a storage error (a full disk) warn and go on: the file keeps its
    previous content, and training or the run's result is worth more than this file."""
    try:
        write()
    except OSError as exc:
        log.warning("could not write %s (%s); its previous version, if any, is kept", what, exc)


def epoch_rows(trace: list[dict[str, Any]], epoch: int) -> list[dict[str, Any]]:
    """The trace rows of ``epoch`` (the last rows: an epoch's rows follow the earlier ones')."""
    first = len(trace)
    while first and trace[first - 1]["epoch"] == epoch:
        first -= 1
    return trace[first:]


def epoch_line(epoch: int, max_epochs: int, step_s: float, loss_name: str, loss: float,
               metric: tuple[str, float] | None = None) -> str:
    """One epoch for logs: ``epoch 3/100  step 41.2 ms  train loss 0.5321  val f1_micro=0.7100``
    (the epoch's mean step time and training loss, and a validation metric where there is one)."""
    line = f"epoch {epoch + 1}/{max_epochs}  step {step_s * 1000:.1f} ms  {loss_name} {loss:.4f}"
    return line + (f"  {metric[0]}={metric[1]:.4f}" if metric is not None else "")


def epoch_loss(rows: list[dict[str, Any]], task: str | None) -> float:
    """Mean over the epoch's steps of ``task``'s loss (every task's summed when ``None``)."""
    mine = [r for r in rows if task is None or r["task"] == task]
    return sum(r["loss"] for r in mine if r["loss"] is not None) / max(1, len({r["step"] for r in mine}))


def write_trace(path: Path, rows: list[dict[str, Any]]) -> None:
    """``trace.csv``: one row per (step, task); empty cells where a strategy computes nothing."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TRACE_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in TRACE_FIELDS})
    write_text(path, buf.getvalue())
