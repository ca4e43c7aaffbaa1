"""``auxrun zeroshot``: train on a labelled source node type, test on an unlabelled target type.

One run: compose the zero-shot data (:mod:`auxrun.transfer.data`), build the heterogeneous
encoder (``pretrained=PATH`` to start from a pre-trained one), the source classifier and the
transfer method, then train with ``L = L_cls + lambda * L_transfer`` (:mod:`auxrun.transfer.base`)
in epochs over the source training nodes. Model selection and early stopping use the source
*validation* labels only (``zeroshot.select`` metric, NDCG by default); the target's labels
are read once, for the test metrics of the restored best epoch. The run folder gets
``result.json``, ``trace.csv`` (tasks ``source`` and ``transfer``) and ``checkpoints/best.pt``
as every other command; a folder that already holds this config's finished result is skipped.

Metrics: ``test`` holds the target's ``ndcg``, ``mrr``, ``f1_micro``, ``f1_macro`` (the
primary metric is ``ndcg``) and the source test split's as ``source_*``; ``val`` holds the
source validation metrics as ``source_*``: there are no target validation labels.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from .. import data as datasets
from .. import schema
from ..errors import AuxrunError
from ..io import save_torch
from ..data.view import FullGraph, check_sampling, make_view
from ..models import ClassifierHead, Encoder, build_encoder
from ..report.results import start_run, write_failure, write_result
from ..seed import resolve_device, seed_everything
from ..tasks.base import shuffled_chunks
from ..tasks.metrics import label_ranking
from ..train.engine import epoch_line, epoch_loss, tolerant, write_trace
from ..train.loggers import NoLogger, RunLogger, check_logger, make_logger
from ..train.resume import LAST, Interrupted, StopSignals, load_run_state, rng_states, save_run_state, set_rng_states
from ..train.pretrained import load_encoder
from . import build
from .base import StepBatch, Transfer, soft_cross_entropy
from .data import ZeroShotData, prepare as prepare_data

log = logging.getLogger(__name__)
console = Console(stderr=True)
PRIMARY = "ndcg"
HETERO_BACKBONES = ("hgt", "rgcn", "han")


class ZeroShotModel(nn.Module):
    """The shared encoder, the source classifier and the method's trainable parts."""

    def __init__(self, encoder: Encoder, classifier: ClassifierHead, method: Transfer) -> None:
        super().__init__()
        self.encoder, self.classifier, self.method = encoder, classifier, method


@dataclass
class Prepared:
    zs: ZeroShotData
    model: ZeroShotModel
    view: FullGraph
    device: torch.device
    gen: torch.Generator
    pretrained: str | None


def validate(cfg: DictConfig) -> None:
    """Reject bad values before any data loads."""
    schema.validate(cfg)
    schema.check_folders(cfg)
    if str(cfg.backbone.name) not in HETERO_BACKBONES:
        raise AuxrunError(f"zeroshot needs a backbone with type-specific parameters: backbone="
                          f"{'|'.join(HETERO_BACKBONES)} (got {cfg.backbone.name})")
    check_sampling(cfg.trainer, layers=int(cfg.backbone.num_layers))
    check_logger(cfg)


def prepare(cfg: DictConfig) -> Prepared:
    """Seed, load and compose the zero-shot data, build (or load) the encoder, classifier and method."""
    gen = seed_everything(int(cfg.seed))
    device = resolve_device(str(cfg.device))
    data = datasets.load(cfg.dataset, int(cfg.seed), cfg.paths.get("cache"))
    if not hasattr(data, "node_labels"):
        raise AuxrunError(f"dataset={cfg.dataset.name} is not a graph with labelled node types; zeroshot "
                          f"runs on synthetic_zeroshot, movielens or ogbn_mag")
    zs = prepare_data(data, cfg.zeroshot, int(cfg.seed))
    zs.graph = zs.graph.to(device)
    zs.y_source, zs._y_target = zs.y_source.to(device), zs._y_target.to(device)
    zs.source_split = {k: v.to(device) for k, v in zs.source_split.items()}
    schema = zs.graph.schema()
    hidden = int(cfg.backbone.hidden)
    pretrained = cfg.get("pretrained")
    if pretrained:
        encoder = load_encoder(Path(str(pretrained)).expanduser(), cfg.backbone, schema, device)
        seed_everything(int(cfg.seed))
    else:
        encoder = build_encoder(cfg.backbone, schema).to(device)
    classifier = ClassifierHead(hidden, zs.num_classes)
    method = build(cfg.transfer, zs, hidden)
    model = ZeroShotModel(encoder, classifier, method).to(device)
    view = make_view(zs.graph, {}, cfg.trainer, gen, device)
    return Prepared(zs, model, view, device, gen, str(pretrained) if pretrained else None)


def embeddings(p: Prepared) -> dict[str, torch.Tensor]:
    """Every source and target node's embedding in evaluation mode (no gradient): one pass
    over the whole graph, or mini-batched inference on sampled subgraphs."""
    p.model.eval()
    every = {t: torch.arange(p.zs.graph.num_nodes(t), device=p.device) for t in (p.zs.source, p.zs.target)}
    with torch.no_grad():
        return p.view.embed(p.model.encoder, every)


def source_metrics(p: Prepared, split: str, emb: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
    """``source_*`` label metrics of the source nodes of ``split`` (on ``emb``, by default
    :func:`embeddings`)."""
    model, zs = p.model, p.zs
    emb = embeddings(p) if emb is None else emb
    nodes = zs.source_split[split]
    with torch.no_grad():
        scores = model.method.source_scores(emb, model.classifier)[nodes]
    y = zs.y_source[nodes]
    out = label_ranking(scores, y)
    if model.method.trains:  # classification loss of the source classifier (lp has no classifier)
        out["loss"] = float(soft_cross_entropy(scores, y).mean())
    return {f"source_{k}": v for k, v in out.items()}


def target_metrics(p: Prepared, emb: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
    """The target's label metrics: the only place a target label is read."""
    model = p.model
    emb = embeddings(p) if emb is None else emb
    with torch.no_grad():
        scores = model.method.target_scores(emb, model.classifier)
    return label_ranking(scores, p.zs.target_labels())


def _step(p: Prepared, optimizer: torch.optim.Optimizer, nodes: torch.Tensor, trainer: Any) -> tuple[float, float]:
    """One optimisation step on the labelled source ``nodes``; returns ``(L_cls, L_transfer)``."""
    model, zs = p.model, p.zs
    targets = torch.randint(zs.num_target, (len(nodes),), generator=p.gen).to(p.device)
    x, graph = p.view.around(lambda: model.method.seeds(nodes, targets), p.gen)
    sampled = graph.n_id is not None
    batch = StepBatch(source=graph.localize(zs.source, nodes), target=graph.localize(zs.target, targets),
                      source_ids=nodes if sampled else None, localize=graph.localize if sampled else None)
    emb = model.encoder(x, graph)
    model.method.before_step({k: v.detach() for k, v in emb.items()}, batch, model.classifier)
    cls = soft_cross_entropy(model.classifier(emb[zs.source][batch.source]), zs.y_source[nodes]).mean()
    extra = model.method.loss(emb, batch, model.classifier)
    loss = cls if extra is None else cls + model.method.weight * extra
    if not bool(torch.isfinite(loss)):
        raise FloatingPointError(f"non-finite loss (classification {float(cls):.4g}, transfer "
                                 f"{float(extra) if extra is not None else 0.0:.4g})")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if trainer.grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), float(trainer.grad_clip))
    optimizer.step()
    return float(cls.detach()), float(extra.detach()) if extra is not None else math.nan


def fit(p: Prepared, trainer: Any, run_dir: Path, select: str = PRIMARY, logger: RunLogger | None = None,
        config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train (unless the method is training-free), keeping the epoch with the best source
    validation ``select`` metric; returns the run state for the result. ``logger`` gets each
    step's trace rows and each epoch's source validation metrics (:mod:`auxrun.train.loggers`).
    With ``trainer.checkpoint`` and the run's ``config``, every epoch ends with a whole-state
    checkpoint (:mod:`auxrun.train.resume`) that a rerun of the same config resumes from; SIGINT
    or SIGTERM stops the run after the current step (status ``interrupted``), and the rerun
    repeats the unfinished epoch from that checkpoint."""
    logger = logger or NoLogger()
    model, method = p.model, p.model.method
    own = {id(q) for q in method.own_parameters()}
    params = [q for q in model.parameters() if id(q) not in own and q.requires_grad]
    optimizer = torch.optim.Adam(params, lr=float(trainer.lr), weight_decay=float(trainer.weight_decay))
    state: dict[str, Any] = {"status": "completed", "message": "", "best_epoch": -1, "epochs_run": 0, "steps": 0,
                             "history": [], "trace": [], "step_time": 0.0}
    best_score, bad, best = -math.inf, 0, copy.deepcopy(model.state_dict())
    epochs = int(trainer.max_epochs) if method.trains else 0
    keep, last, stopped = bool(trainer.checkpoint) and config is not None, run_dir / "checkpoints" / LAST, False
    saved = load_run_state(last, config) if keep else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state, best_score, bad, best, stopped = saved["state"], saved["best_score"], saved["bad"], saved["best"], \
            saved["stopped"]
        set_rng_states(saved["rng"], p.gen)
        log.warning("resuming %s from its checkpoint at the end of epoch %d", run_dir, state["epochs_run"])
    lines = bool(trainer.progress) and not console.is_terminal  # logs and pipes: a line per epoch instead
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=console,
                        disable=not bool(trainer.progress) or not epochs or lines)
    with progress, contextlib.closing(logger), StopSignals() as signals:
        bar = progress.add_task(f"zeroshot {method.name}", total=epochs, completed=state["epochs_run"], info="")
        for epoch in range(state["epochs_run"], 0 if stopped else epochs):
            model.train()
            train = p.zs.source_split["train"]
            first_row, steps_before, time_before = len(state["trace"]), state["steps"], state["step_time"]
            for idx in shuffled_chunks(len(train), int(trainer.batch_size), p.gen):
                t0 = time.perf_counter()
                try:
                    cls, extra = _step(p, optimizer, train[idx.to(train.device)], trainer)
                except FloatingPointError as exc:
                    state["status"], state["message"] = "diverged", f"{exc} at step {state['steps']}"
                    break
                state["step_time"] += time.perf_counter() - t0
                at = {"step": state["steps"], "epoch": epoch}
                rows = [{**at, "task": "source", "loss": cls, "weight": 1.0},
                        {**at, "task": "transfer", "loss": None if math.isnan(extra) else extra, "weight": method.weight}]
                state["trace"] += rows
                logger.step(state["steps"], rows)
                state["steps"] += 1
                if signals.signum is not None:
                    break
            if signals.signum is not None:  # the rerun repeats this epoch from the last checkpoint
                state["status"] = "interrupted"
                break
            state["epochs_run"] = epoch + 1
            if state["status"] == "diverged":
                log.warning("run diverged: %s", state["message"])
                break
            val = source_metrics(p, "val")
            state["history"].append({"epoch": epoch, **val})
            logger.epoch(epoch, val, epoch_loss(state["trace"][first_row:], "source"))
            score = val.get(f"source_{select}", math.nan) * (-1 if select == "loss" else 1)
            score = -math.inf if math.isnan(score) else score
            # ties go to the later epoch: the source metric saturates long before the transfer
            # term has been trained (a planted source reaches NDCG 1 in a few epochs)
            if score >= best_score or state["best_epoch"] < 0:
                best_score, bad, state["best_epoch"] = score, 0, epoch
                best = copy.deepcopy(model.state_dict())
                if trainer.checkpoint:
                    save_torch(run_dir / "checkpoints" / "best.pt", {"epoch": epoch, "model": best})
            else:
                bad += 1
            progress.update(bar, advance=1, info=f"source val {select}={val.get(f'source_{select}', math.nan):.4f}")
            if lines:
                step_s = (state["step_time"] - time_before) / max(1, state["steps"] - steps_before)
                loss = epoch_loss(state["trace"][first_row:], "source")
                log.info(epoch_line(epoch, epochs, step_s, "train loss", loss,
                                    (f"source val {select}", val.get(f"source_{select}", math.nan))))
            stopped = bool(int(trainer.patience) and bad >= int(trainer.patience))
            if keep:
                tolerant(lambda: save_run_state(last, {
                    "config": config, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "state": state, "best_score": best_score, "bad": bad, "best": best, "stopped": stopped,
                    "rng": rng_states(p.gen)}), "the checkpoint")
            if stopped:
                break
            if signals.signum is not None:  # during the evaluation: the checkpoint above has the epoch
                state["status"] = "interrupted"
                break
        if state["status"] == "interrupted":
            name = signal.Signals(signals.signum).name
            state["signum"] = int(signals.signum)
            state["message"] = (f"stopped by {name} in epoch {state['epochs_run'] + 1}, step {state['steps']}"
                                + ("; the checkpoint is kept to resume from" if keep else
                                   " (trainer.checkpoint=false: nothing to resume from)"))
    model.load_state_dict(best)
    return state


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """One zero-shot job in ``run_dir``; returns the written result (skipped when the folder
    already holds this config's finished result, unless ``rerun=true``)."""
    validate(cfg)
    run_dir = Path(run_dir)
    config, done = start_run(cfg, run_dir, console)
    if done is not None:
        return done
    start = time.time()
    p = prepare(cfg)
    zs, method = p.zs, p.model.method
    base = {"command": "zeroshot", "dataset": str(cfg.dataset.name), "backbone": str(cfg.backbone.name),
            "aux": "none", "weighting": method.name, "transfer": method.name, "seed": int(cfg.seed),
            "source": zs.source, "target": zs.target, "primary_metric": PRIMARY, "higher_is_better": True,
            "device": str(p.device), "threads": torch.get_num_threads(), "data_schema": zs.graph.schema(),
            "data_info": {**zs.graph.info, "zeroshot": zs.info()}, "config": config,
            **({"pretrained": p.pretrained} if p.pretrained else {})}
    try:
        state = fit(p, cfg.trainer, run_dir, str(cfg.zeroshot.select), make_logger(cfg, run_dir), config)
        if state["status"] != "interrupted":
            emb = embeddings(p)  # the kept epoch's embeddings serve every final metric
            val = source_metrics(p, "val", emb)
            test = {**target_metrics(p, emb), **source_metrics(p, "test", emb)}
    except Exception as exc:
        with contextlib.suppress(OSError):  # a full disk must not hide the error itself
            write_failure(run_dir, base, exc, start)
        raise
    if state["status"] == "interrupted":
        tolerant(lambda: write_trace(run_dir / "trace.csv", state["trace"]), "trace.csv")
        write_result(run_dir, {**base, "status": "interrupted", "message": state["message"],
                               "metrics": {"val": {}, "test": {}}, "epochs_run": state["epochs_run"],
                               "steps": state["steps"], "runtime_s": round(time.time() - start, 3),
                               "val_history": state["history"]})
        raise Interrupted(state["signum"], f"{run_dir}: {state['message']}")
    tolerant(lambda: write_trace(run_dir / "trace.csv", state["trace"]), "trace.csv")
    result = write_result(run_dir, {
        **base, "status": state["status"], "message": state["message"], "metrics": {"val": val, "test": test},
        "best_epoch": state["best_epoch"], "epochs_run": state["epochs_run"], "steps": state["steps"],
        "seconds_per_step": state["step_time"] / max(1, state["steps"]), "runtime_s": round(time.time() - start, 3),
        "val_history": state["history"],
    })
    console.print(f"[bold]zeroshot[/] {result['dataset']} {zs.source}->{zs.target} {result['backbone']}/"
                  f"{method.name} seed={result['seed']}: {result['status']}, target ndcg={test['ndcg']:.4f} "
                  f"mrr={test['mrr']:.4f} f1_micro={test['f1_micro']:.4f} -> {escape(str(run_dir))}", soft_wrap=True)
    return result
