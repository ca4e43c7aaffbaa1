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

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from rich.console import Console
from torch import nn

from .. import data as datasets
from .. import schema
from ..errors import AuxrunError
from ..data.step_inputs import FullGraph, check_sampling, make_view
from ..models import ClassifierHead, Encoder, build_encoder
from ..models.encoders import TYPED
from ..seed import seed_everything, start
from ..tasks.metrics import label_ranking
from ..train.loggers import RunLogger, check_logger
from ..train.loop import Diverged, EpochPlan, FitResult
from ..train.loop import fit as loop_fit
from ..train.runner import run_job
from ..train.pretrained import load_encoder
from . import build
from .base import StepBatch, Transfer, soft_cross_entropy
from .data import ZeroShotData, zeroshot_data

log = logging.getLogger(__name__)
console = Console(stderr=True)
PRIMARY = "ndcg"


class ZeroShotModel(nn.Module):
    """The shared encoder, the source classifier and the method's trainable parts."""

    def __init__(self, encoder: Encoder, classifier: ClassifierHead, method: Transfer) -> None:
        super().__init__()
        self.encoder, self.classifier, self.method = encoder, classifier, method


@dataclass
class ZeroShotParts:
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
    if str(cfg.backbone.name) not in TYPED:
        raise AuxrunError(f"zeroshot needs a backbone with type-specific parameters: backbone="
                          f"{'|'.join(TYPED)} (got {cfg.backbone.name})")
    check_sampling(cfg.trainer, layers=int(cfg.backbone.num_layers))
    check_logger(cfg)


def zeroshot_parts(cfg: DictConfig) -> ZeroShotParts:
    """Seed, load and compose the zero-shot data, build (or load) the encoder, classifier and method."""
    gen, device = start(int(cfg.seed), str(cfg.device))
    data = datasets.load(cfg.dataset, int(cfg.seed), cfg.paths.get("cache"))
    zs = zeroshot_data(data, cfg.zeroshot, int(cfg.seed))
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
    return ZeroShotParts(zs, model, view, device, gen, str(pretrained) if pretrained else None)


def embeddings(p: ZeroShotParts) -> dict[str, torch.Tensor]:
    """Every source and target node's embedding in evaluation mode (no gradient): one pass
    over the whole graph, or mini-batched inference on sampled subgraphs."""
    p.model.eval()
    every = {t: torch.arange(p.zs.graph.num_nodes(t), device=p.device) for t in (p.zs.source, p.zs.target)}
    with torch.no_grad():
        return p.view.embed(p.model.encoder, every)


def source_metrics(p: ZeroShotParts, split: str, emb: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
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


def target_metrics(p: ZeroShotParts, emb: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
    """The target's label metrics: the only place a target label is read."""
    model = p.model
    emb = embeddings(p) if emb is None else emb
    with torch.no_grad():
        scores = model.method.target_scores(emb, model.classifier)
    return label_ranking(scores, p.zs.target_labels())


def _step(p: ZeroShotParts, optimizer: torch.optim.Optimizer, nodes: torch.Tensor, trainer: Any,
          index: int) -> tuple[float, float]:
    """One optimisation step on the labelled source ``nodes``; returns ``(L_cls, L_transfer)``;
    raises :class:`Diverged` (before any update) when the loss is not finite."""
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
        raise Diverged(f"non-finite loss (classification {float(cls):.4g}, transfer "
                       f"{float(extra) if extra is not None else 0.0:.4g}) at step {index}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if trainer.grad_clip:  # what the model's optimiser steps: not a method's own players (WDGRL's critic)
        nn.utils.clip_grad_norm_([q for g in optimizer.param_groups for q in g["params"]], float(trainer.grad_clip))
    optimizer.step()
    return float(cls.detach()), float(extra.detach()) if extra is not None else math.nan


class ZeroShotJob:
    """Zero-shot training as a job of the one training loop (:class:`~auxrun.train.loop.Job`):
    an epoch is the labelled source training nodes in a random order, cut into
    ``trainer.batch_size`` batches, each step paired with as many random target nodes; the
    kept epoch is the one with the best source validation ``select`` metric (ties go to the
    later epoch: the source metric saturates long before the transfer term has been trained,
    a planted source reaching NDCG 1 in a few epochs); a training-free method trains no epoch.
    The target's labels are read in :meth:`final` only."""

    loss_task = "source"
    loss_name = "train loss"

    def __init__(self, p: ZeroShotParts, trainer: Any, select: str = PRIMARY) -> None:
        self.p, self.trainer, self.select = p, trainer, select
        self.model, self.gen, method = p.model, p.gen, p.model.method
        own = {id(q) for q in method.own_parameters()}  # stepped by the method's own optimisers
        params = [q for q in self.model.parameters() if id(q) not in own and q.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=float(trainer.lr), weight_decay=float(trainer.weight_decay))
        self.max_epochs = int(trainer.max_epochs) if method.trains else 0
        self.name = f"zeroshot {method.name}"
        self.train_nodes = p.zs.source_split["train"]
        method.plan(self.max_epochs * math.ceil(len(self.train_nodes) / int(trainer.batch_size)))

    def new_epoch(self) -> EpochPlan:
        return EpochPlan(torch.randperm(len(self.train_nodes), generator=self.gen))

    def batches(self, plan: EpochPlan) -> Iterator[torch.Tensor]:
        assert plan.order is not None
        for idx in plan.order.split(int(self.trainer.batch_size))[plan.done:]:
            yield self.train_nodes[idx.to(self.train_nodes.device)]

    def train_step(self, nodes: torch.Tensor, index: int) -> list[dict[str, Any]]:
        cls, extra = _step(self.p, self.optimizer, nodes, self.trainer, index)
        return [{"task": "source", "loss": cls, "weight": 1.0},
                {"task": "transfer", "loss": None if math.isnan(extra) else extra, "weight": self.model.method.weight}]

    def end_epoch(self) -> None:
        pass

    def validate(self) -> tuple[dict[str, float], float]:
        val = source_metrics(self.p, "val")
        score = val.get(f"source_{self.select}", math.nan) * (-1 if self.select == "loss" else 1)
        return val, -math.inf if math.isnan(score) else score

    def improved(self, score: float, best: float) -> bool:
        return score >= best

    def shown(self, val: dict[str, float]) -> tuple[str, float]:
        return f"source val {self.select}", val.get(f"source_{self.select}", math.nan)

    def final(self) -> tuple[dict[str, float], dict[str, float]]:
        emb = embeddings(self.p)  # the kept epoch's embeddings serve every final metric
        return source_metrics(self.p, "val", emb), {**target_metrics(self.p, emb), **source_metrics(self.p, "test", emb)}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    def best_extras(self) -> dict[str, Any]:
        return {}


def fit(p: ZeroShotParts, trainer: Any, run_dir: Path, select: str = PRIMARY, logger: RunLogger | None = None,
        config: dict[str, Any] | None = None) -> FitResult:
    """Train ``p`` with the one training loop (:func:`auxrun.train.loop.fit`); the kept epoch is
    restored and evaluated."""
    return loop_fit(ZeroShotJob(p, trainer, select), trainer, run_dir, config, logger, console)


class ZeroShotScheme:
    """``zeroshot`` for :func:`~auxrun.train.runner.run_job`."""

    def validate(self, cfg: DictConfig) -> None:
        validate(cfg)

    def build(self, cfg: DictConfig) -> tuple[ZeroShotJob, dict[str, Any]]:
        p = zeroshot_parts(cfg)
        zs, method = p.zs, p.model.method
        base = {"command": "zeroshot", "dataset": str(cfg.dataset.name), "backbone": str(cfg.backbone.name),
                "aux": "none", "weighting": method.name, "transfer": method.name, "seed": int(cfg.seed),
                "source": zs.source, "target": zs.target, "primary_metric": PRIMARY, "higher_is_better": True,
                "device": str(p.device), "data_schema": zs.graph.schema(),
                "data_info": {**zs.graph.info, "zeroshot": zs.info()},
                **({"pretrained": p.pretrained} if p.pretrained else {})}
        return ZeroShotJob(p, cfg.trainer, str(cfg.zeroshot.select)), base

    def completed(self, job: ZeroShotJob, cfg: DictConfig, run_dir: Path, base: dict[str, Any]) -> None:
        pass

    def summary(self, result: dict[str, Any], job: ZeroShotJob) -> str:
        test, zs = result["metrics"]["test"], job.p.zs
        shown = (f"target ndcg={test['ndcg']:.4f} mrr={test['mrr']:.4f} f1_micro={test['f1_micro']:.4f}"
                 if "ndcg" in test else "no metrics")
        return (f"[bold]zeroshot[/] {result['dataset']} {zs.source}->{zs.target} {result['backbone']}/"
                f"{result['weighting']} seed={result['seed']}: {result['status']}, {shown}")


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """One zero-shot job in ``run_dir``; returns the written result (skipped when the folder
    already holds this config's finished result, unless ``rerun=true``)."""
    return run_job(cfg, run_dir, ZeroShotScheme(), console)
