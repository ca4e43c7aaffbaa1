"""Task registry: builds the target task and the auxiliary tasks named in ``cfg.aux``.

``aux.tasks`` maps a task name to its spec; ``kind`` picks the class:

=============  ===============================================  ==========================
kind           spec keys                                        class
=============  ===============================================  ==========================
``planted``    ``relation`` (helpful / noise / harmful)         :class:`PlantedPairs`
``metapath``   ``path`` (e.g. ``user-item-genre-item``),        :class:`MetaPathPrediction`
               optional ``max_pairs``, ``max_density``,
               ``min_count``
``edge_gen``   ``relation`` (e.g. ``user-rates-item``)          :class:`EdgeGeneration`
``attr_gen``   ``node_type``                                    :class:`AttributeGeneration`
=============  ===============================================  ==========================
"""

from __future__ import annotations

from typing import Any

from ..data.cache import progress
from ..data.graph import GraphData
from ..errors import AuxrunError
from .base import Task, TargetTask
from .node import AttributeGeneration, NodeClassification
from .pairs import PairTask, EdgeGeneration, LinkPrediction, MetaPathPrediction, PlantedPairs

AUX_KINDS = ("planted", "metapath", "edge_gen", "attr_gen")


def build_target(data: GraphData, hidden: int, head_dim: int) -> TargetTask:
    if data.target.kind == "node_cls":
        return NodeClassification(data.target, hidden)
    return LinkPrediction(data, hidden, head_dim)


def build_aux(aux_cfg: Any, data: GraphData, hidden: int, seed: int) -> dict[str, Task]:
    """Instantiate every task in ``aux_cfg.tasks`` (in config order)."""
    head_dim = None if aux_cfg.pair_head == "dot" else int(aux_cfg.head_dim)
    tasks: dict[str, Task] = {}
    specs = dict(aux_cfg.tasks or {})
    with progress("building auxiliary tasks", len(specs), enabled=bool(data.fingerprint) and bool(specs)) as advance:
        for name, spec in specs.items():
            tasks[name] = _build_one(name, spec, aux_cfg, data, hidden, seed, head_dim)
            advance(name)
    return tasks


def _build_one(name: str, spec: Any, aux_cfg: Any, data: GraphData, hidden: int, seed: int,
               head_dim: int | None) -> Task:
    """One auxiliary task from its spec (see the module docstring for the kinds)."""
    if name == "target":
        raise AuxrunError("an auxiliary task cannot be called 'target'")
    kind = spec.get("kind")
    if kind == "planted":
        task: Task = PlantedPairs(name, data, str(spec.relation), hidden, head_dim)
    elif kind == "metapath":
        task = MetaPathPrediction(name, data, str(spec.path), hidden, head_dim,
                                  int(spec.get("max_pairs", aux_cfg.max_metapath_pairs)), seed,
                                  float(spec.get("max_density", aux_cfg.get("max_metapath_density", 1.0))),
                                  int(spec.get("min_count", 1)))
    elif kind == "edge_gen":
        task = EdgeGeneration(name, data, str(spec.relation), hidden, head_dim)
    elif kind == "attr_gen":
        node_type = str(spec.node_type)
        if node_type not in data.x:
            raise AuxrunError(f"auxiliary task {name!r}: unknown node type {node_type!r} "
                              f"(types: {', '.join(data.node_types)})")
        task = AttributeGeneration(name, node_type, data.x[node_type], hidden, int(aux_cfg.eval_size), seed)
    else:
        raise AuxrunError(f"auxiliary task {name!r}: unknown kind {kind!r}; use one of {', '.join(AUX_KINDS)}")
    if isinstance(task, PairTask):
        task.eval_size = int(aux_cfg.eval_size)
    return task


__all__ = ["Task", "TargetTask", "build_target", "build_aux", "AUX_KINDS"]
