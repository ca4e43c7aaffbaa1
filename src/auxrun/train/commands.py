"""The commands ``auxrun pretrain | finetune | mtl``: their configs, built into multi-task jobs.

* ``pretrain``: auxiliary (self-supervised) tasks only; saves ``encoder.pt``.
* ``finetune``: loads a pre-trained encoder (``pretrained=PATH`` or ``auto``), then trains the
  target and auxiliary tasks under the chosen weighting.
* ``mtl``: target and auxiliary tasks from a random initialisation.

:func:`run` executes one composed config in one run folder and writes ``result.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.markup import escape

from .. import data as datasets
from .. import schema
from ..configs import CONF_DIR
from ..data.graph import GraphData
from ..data.cache import file_hash
from ..data.step_inputs import check_sampling
from ..errors import AuxrunError
from ..models import Encoder, build_encoder
from ..models.heads import head_spec
from ..report.groups import result_view
from ..report.results import finished_result
from ..seed import seed_everything, start
from ..tasks import Task, TargetTask, build_aux, build_target
from ..weighting import Weighting
from ..weighting import build as build_weighting
from ..run_folder import RunFolder
from .multitask import TaskJob
from .loggers import check_logger
from .pretrained import FILENAME, closest_pretrained, encoder_file, exact, load_encoder, save_encoder
from .runner import run_job

COMMANDS = ("pretrain", "finetune", "mtl")
log = logging.getLogger(__name__)
console = Console(stderr=True)


def _validate(cfg: DictConfig) -> None:
    """Before any data loads: every value's type and range (:mod:`auxrun.schema`: trainer
    counts, learning rates, precision, loss scales, ...), then what relates keys to each other
    or to the machine (the command, the logger's package, sampling on this kind of data)."""
    schema.validate(cfg)
    schema.check_folders(cfg)
    if cfg.command not in COMMANDS:
        raise AuxrunError(f"unknown command {cfg.command!r}; use one of {', '.join(COMMANDS)}")
    check_logger(cfg)
    loader = datasets.loader_name(cfg.dataset)
    check_sampling(cfg.trainer, molecular=loader in datasets.MOLECULAR_LOADERS, layers=int(cfg.backbone.num_layers))
    if cfg.command == "pretrain":
        if not cfg.aux.tasks:
            raise AuxrunError("pretrain needs auxiliary tasks: choose an aux= set with tasks (e.g. aux=ssl)")
        if cfg.weighting.name == "none":
            raise AuxrunError("pretrain trains auxiliary tasks only; weighting=none would train nothing")
    elif not cfg.aux.tasks and cfg.weighting.name != "none":  # the run would be weighting=none under another name
        raise AuxrunError(f"weighting={cfg.weighting.name} weighs auxiliary tasks against the target, and "
                          f"aux={cfg.aux.name} has none: use weighting=none to train on the target alone, or choose "
                          "an aux= set with tasks")


def _compose_pretrain(cfg: DictConfig) -> DictConfig:
    """The dataset's default pretrain config for this run's backbone: on the dataset's
    ``pretrain_dataset`` when it names one (molecules pre-train on the MOSES corpus), else on
    this run's dataset (with its settings); ``pretrain_overrides`` (an experiment's list of
    overrides, e.g. Table 2's pre-training learning rate) apply on top, and an experiment's
    ``loss_scales.<task>`` (Table 4) rescales that pre-training task as it does fine-tuning's."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    corpus = cfg.dataset.get("pretrain_dataset")
    dataset_choice = str(corpus) if corpus else _choice("dataset", str(cfg.dataset.name))
    overrides = [f"aux={cfg.dataset.pretrain_aux}", *(str(o) for o in cfg.get("pretrain_overrides") or ())]
    overrides += [f"aux.tasks.{task}.loss_scale={scale}" for task, scale in (cfg.get("loss_scales") or {}).items()]
    if dataset_choice:  # the dataset file may set trainer keys (batch sizes) for pretraining too
        overrides.insert(0, f"dataset={dataset_choice}")
    backbone_choice = _choice("backbone", str(cfg.backbone.name))
    if backbone_choice:  # so the backbone's own keys (gat: heads) exist before this run's are merged
        overrides.insert(0, f"backbone={backbone_choice}")
    if GlobalHydra.instance().is_initialized():
        pre = compose(config_name="pretrain", overrides=overrides)
    else:
        with initialize_config_module("auxrun.conf", version_base="1.3"):
            pre = compose(config_name="pretrain", overrides=overrides)
    keep = {k: cfg[k] for k in ("backbone", "seed", "device", "paths", *(() if corpus else ("dataset",)))}
    return OmegaConf.merge(pre, keep)


def _choice(group: str, fallback: str) -> str | None:
    """The option chosen for ``group`` in this Hydra run, else ``fallback`` when a config file
    of that name exists, else ``None``."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(group)
        if choice:
            return str(choice)
    return fallback if (CONF_DIR / group / f"{fallback}.yaml").is_file() else None


def _finetune_encoder(cfg: DictConfig, schema: dict, device) -> tuple[Encoder, Path]:
    choice = str(cfg.pretrained)
    outputs = Path(cfg.paths.outputs)
    if choice != "auto":
        path = Path(choice).expanduser()
        return load_encoder(path, cfg.backbone, schema, device), path
    pre = _compose_pretrain(cfg)
    closest = closest_pretrained(outputs, pre, schema)  # one scan: the match, else what came closest
    found = exact(closest)
    if found is not None:
        console.print(f"Using pre-trained encoder {escape(str(found / FILENAME))}")
        return load_encoder(found, cfg.backbone, schema, device), found
    found = auto_pretrain_dir(outputs, pre)
    found.mkdir(parents=True, exist_ok=True)
    with FileLock(str(found / ".lock")):  # parallel jobs that need the same encoder: one trains it, the rest wait
        if finished_result(found, OmegaConf.to_container(pre, resolve=True)) is None or not (found / FILENAME).exists():
            console.print(f"[yellow]No pre-trained {cfg.backbone.name} encoder for this data under {escape(str(outputs))}; "
                          f"pre-training one first in {escape(str(found))} (reused by later finetune runs; an interrupted one "
                          "resumes there).[/]")
            if closest is not None:
                keys = ", ".join(closest[1][:6]) + (", ..." if len(closest[1]) > 6 else "")
                console.print(f"[yellow]The closest pretrain run there, {escape(str(closest[0]))}, differs from the "
                              f"pre-training this run calls for in {escape(keys)}; pretrained=PATH uses it anyway.[/]")
            result = run(pre, found)
            if result["status"] != "completed":
                raise AuxrunError(f"automatic pre-training in {found} ended with status {result['status']}")
    return load_encoder(found, cfg.backbone, schema, device), found


def auto_pretrain_dir(outputs: Path, pre: DictConfig) -> Path:
    """The folder where ``pretrained=auto`` pre-trains when no encoder fits, for the composed
    pretrain config ``pre``: ``outputs/pretrain/auto/<dataset>-<backbone>-seed<seed>-<digest>``,
    the digest over every key that changes its numbers (:func:`~auxrun.report.groups.result_view`),
    so a rerun after an interruption finds and resumes it, and parallel jobs share one."""
    view = result_view(OmegaConf.to_container(pre, resolve=True))
    digest = hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:12]
    return outputs / "pretrain" / "auto" / f"{pre.dataset.name}-{pre.backbone.name}-seed{pre.seed}-{digest}"


@dataclass
class TaskParts:
    """Everything a run trains, built from its config (shared by :func:`run` and the benchmark)."""

    data: GraphData
    encoder: Encoder
    target: TargetTask | None
    aux: dict[str, Task]
    strategy: Weighting
    device: torch.device
    gen: torch.Generator
    extra: dict = field(default_factory=dict)


def task_parts(cfg: DictConfig) -> TaskParts:
    """Seed, load the data, build (or load) the encoder, the tasks and the strategy."""
    gen, device = start(int(cfg.seed), str(cfg.device))
    data = datasets.load(cfg.dataset, int(cfg.seed), cfg.paths.get("cache")).to(device)
    schema = data.schema()
    hidden = int(cfg.backbone.hidden)
    extra: dict = {}
    if cfg.command == "finetune":
        encoder, source = _finetune_encoder(cfg, schema, device)
        extra["pretrained"] = str(source)
        extra["pretrained_sha256"] = file_hash(encoder_file(source))  # which file: compare checks the pairing
        seed_everything(int(cfg.seed))  # the same heads/sampling whether or not we pre-trained now
    else:
        encoder = build_encoder(cfg.backbone, schema).to(device)
    head = head_spec(cfg.aux.get("target_head", "projected"), cfg.aux.head_dim, cfg.aux.get("head_hidden", 100))
    target = None if cfg.command == "pretrain" else build_target(data, hidden, head)
    with torch.random.fork_rng(devices=[]):  # aux heads do not shift the RNG: `none` ignores aux
        aux = build_aux(cfg.aux, data, hidden, int(cfg.seed), int(cfg.backbone.num_layers))
    strategy = build_weighting(cfg.weighting, ([] if target is None else ["target"]) + list(aux))
    if target is None and strategy.needs_target:
        raise AuxrunError(f"weighting={cfg.weighting.name} needs a target task; pretrain with weighting=fixed")
    return TaskParts(data, encoder, target, aux, strategy, device, gen, extra)


class TaskScheme:
    """``pretrain``, ``finetune`` and ``mtl`` for :func:`~auxrun.train.runner.run_job`."""

    def validate(self, cfg: DictConfig) -> None:
        _validate(cfg)

    def build(self, cfg: DictConfig) -> tuple[TaskJob, dict]:
        p = task_parts(cfg)
        target = p.target
        job = TaskJob(p.data, p.encoder, target, p.aux, p.strategy, cfg.trainer, p.gen)
        base = {
            "command": str(cfg.command), "dataset": str(cfg.dataset.name), "backbone": str(cfg.backbone.name),
            "aux": str(cfg.aux.name), "weighting": str(cfg.weighting.name), "seed": int(cfg.seed),
            "primary_metric": target.primary_metric if target else None,
            "higher_is_better": target.higher_is_better if target else None,
            "device": str(p.device), "data_schema": p.data.schema(), "data_info": p.data.info, **p.extra,
        }
        return job, base

    def completed(self, job: TaskJob, cfg: DictConfig, run_dir: Path, base: dict) -> None:
        if cfg.command == "pretrain":
            save_encoder(RunFolder(run_dir).encoder, job.model.encoder, cfg.backbone, base["data_schema"])

    def summary(self, result: dict, job: TaskJob) -> str:
        test = result["metrics"]["test"]
        key = result["primary_metric"]
        shown = f"test {key}={test[key]:.4f}" if key and key in test else \
            ", ".join(f"{k}={v:.4f}" for k, v in list(test.items())[:4])
        return (f"[bold]{result['command']}[/] {result['dataset']}/{result['backbone']}/{result['weighting']} "
                f"seed={result['seed']}: {result['status']}, {shown}")


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Run one job of ``cfg.command`` in ``run_dir``; returns the written result.

    A run folder that already holds a finished result of the same config is not run again
    (relaunching an interrupted sweep completes only the missing jobs) unless ``rerun=true``;
    one that holds a checkpoint of the same config resumes from it. A run stopped by SIGINT or
    SIGTERM records ``status: interrupted`` and raises :class:`~auxrun.train.resume.Interrupted`.
    """
    return run_job(cfg, run_dir, TaskScheme(), console)
