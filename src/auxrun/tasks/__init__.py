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
``gpt_attr``   ``node_type`` (GPT-GNN)                          :class:`GenerativeAttributes`
``gpt_edge``   ``relation``, optional ``negatives`` (GPT-GNN)   :class:`GenerativeEdges`
``attr_mask``  optional ``mask_rate`` (molecules)               :class:`AttributeMasking`
``edge_pred``  (molecules)                                      :class:`EdgePrediction`
``context``    optional ``context_layers``, ``num_layers``,     :class:`ContextPrediction`
               ``dropout`` (molecules)
``infograph``  (molecules)                                      :class:`InfoGraph`
``motif``      (molecules)                                      :class:`MotifPrediction`
=============  ===============================================  ==========================

Every spec may set ``loss_scale`` (default 1), which multiplies the task's per-example losses.
:data:`SPEC_KEYS` holds the same table for the checks made when the config is composed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..data.cache import progress
from ..data.graph import GraphData
from ..data.encoder_graph import GraphView
from ..data.molecules import MolData
from ..errors import AuxrunError
from ..models.heads import MLPHead, head_spec
from .base import Task, TargetTask
from .generative import EdgeLookup, GenerativeAttributes, GenerativeEdges
from .node import AttributeGeneration, MultiLabelRanking, NodeClassification
from .molecular import AttributeMasking, ContextPrediction, EdgePrediction, GraphPrediction, InfoGraph, MotifPrediction
from .pairs import PairTask, EdgeGeneration, LinkPrediction, MetaPathPrediction, PlantedPairs

# kind -> (the spec keys it needs, those it may have) besides kind and loss_scale: what _build_one reads
SPEC_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    kind: (frozenset(needed), frozenset(optional)) for kind, needed, optional in (
        ("planted", {"relation"}, ()),
        ("metapath", {"path"}, {"max_pairs", "max_density", "min_count"}),
        ("edge_gen", {"relation"}, ()),
        ("attr_gen", {"node_type"}, ()),
        ("gpt_attr", {"node_type"}, ()),
        ("gpt_edge", {"relation"}, {"negatives"}),
        ("attr_mask", (), {"mask_rate"}),
        ("context", (), {"context_layers", "num_layers", "dropout"}),
        ("edge_pred", (), ()),
        ("infograph", (), ()),
        ("motif", (), ()),
    )}
COMMON_SPEC_KEYS = frozenset({"kind", "loss_scale"})
MOL_KINDS = ("attr_mask", "context", "edge_pred", "infograph", "motif")
AUX_KINDS = tuple(SPEC_KEYS)


def molecular(data: GraphData | MolData) -> bool:
    """Whether ``data`` holds molecules (its declared ``kind``)."""
    return data.kind == "molecules"


def build_target(data: GraphData | MolData, hidden: int, head_dim: int | MLPHead | None) -> TargetTask:
    if molecular(data):
        return GraphPrediction(data, hidden)  # type: ignore[arg-type]
    if data.target.kind == "node_cls":
        return NodeClassification(data.target, hidden)
    if data.target.kind == "node_rank":
        return MultiLabelRanking(data.target, hidden)
    return LinkPrediction(data, hidden, head_dim)


def build_aux(aux_cfg: Any, data: GraphData | MolData, hidden: int, seed: int, num_layers: int = 5) -> dict[str, Task]:
    """Instantiate every task in ``aux_cfg.tasks`` (in config order)."""
    head_dim = head_spec(aux_cfg.pair_head, aux_cfg.head_dim, aux_cfg.get("head_hidden", 100))
    tasks: dict[str, Task] = {}
    specs = dict(aux_cfg.tasks or {})

    @functools.cache
    def edge_index() -> tuple[GraphView, EdgeLookup]:  # built once, shared by every gpt_edge task
        view = GraphView.of(data)  # type: ignore[arg-type]
        return view, EdgeLookup(view)

    with progress("building auxiliary tasks", len(specs), enabled=bool(data.fingerprint) and bool(specs)) as advance:
        for name, spec in specs.items():
            tasks[name] = _build_one(name, spec, aux_cfg, data, hidden, seed, head_dim, num_layers, edge_index)
            tasks[name].loss_scale = loss_scale(name, spec)
            advance(name)
    return tasks


def _build_one(name: str, spec: Any, aux_cfg: Any, data: GraphData | MolData, hidden: int, seed: int,
               head_dim: int | MLPHead | None, num_layers: int,
               edge_index: Callable[[], tuple[GraphView, EdgeLookup]]) -> Task:
    """One auxiliary task from its spec (see the module docstring for the kinds)."""
    if name == "target":
        raise AuxrunError("an auxiliary task cannot be called 'target'")
    kind = spec.get("kind")
    if kind in MOL_KINDS or molecular(data):
        return _build_molecular(name, kind, spec, data, hidden, num_layers)
    if kind == "planted":
        task: Task = PlantedPairs(name, data, str(spec.relation), hidden, head_dim)
    elif kind == "metapath":
        task = MetaPathPrediction(name, data, str(spec.path), hidden, head_dim,
                                  int(spec.get("max_pairs", aux_cfg.max_metapath_pairs)), seed,
                                  float(spec.get("max_density", aux_cfg.get("max_metapath_density", 1.0))),
                                  int(spec.get("min_count", 1)))
    elif kind == "edge_gen":
        task = EdgeGeneration(name, data, str(spec.relation), hidden, head_dim)
    elif kind in ("attr_gen", "gpt_attr"):
        node_type = str(spec.node_type)
        if node_type not in data.x or data.x[node_type].shape[1] == 0:
            raise AuxrunError(f"auxiliary task {name!r}: node type {node_type!r} has no attributes to generate "
                              f"(types with features: {', '.join(t for t in data.node_types if data.x[t].shape[1])})")
        if kind == "attr_gen":
            task = AttributeGeneration(name, node_type, data.x[node_type], hidden, int(aux_cfg.eval_size), seed)
        else:
            task = GenerativeAttributes(name, node_type, data.x[node_type], hidden, int(aux_cfg.eval_size), seed,
                                        data.pretrain_nodes.get(node_type))
    elif kind == "gpt_edge":
        view, lookup = edge_index()
        negatives = int(spec.get("negatives", 255))  # >= 1: the schema's aux.tasks.*.negatives
        task = GenerativeEdges(name, data, str(spec.relation), hidden, negatives, int(aux_cfg.eval_size), seed,
                               lookup, view)
    else:  # the schema's aux.tasks.*.kind is one of AUX_KINDS
        raise AssertionError(f"auxiliary task kind {kind!r} has no builder")
    if isinstance(task, PairTask):
        task.eval_size = int(aux_cfg.eval_size)
    return task


def loss_scale(name: str, spec: Any) -> float:
    """``aux.tasks.<name>.loss_scale``: a positive number (default 1; the schema checks it)."""
    return float(spec.get("loss_scale", 1.0) if hasattr(spec, "get") else 1.0)


def _build_molecular(name: str, kind: str, spec: Any, data: GraphData | MolData, hidden: int,
                     num_layers: int) -> Task:
    """A molecular self-supervised task (see :mod:`auxrun.tasks.molecular`)."""
    if not molecular(data):
        raise AuxrunError(f"auxiliary task {name!r} ({kind}) needs a molecular dataset, not {data.name!r}")
    if kind == "attr_mask":
        return AttributeMasking(name, hidden, float(spec.get("mask_rate", 0.15)))
    if kind == "edge_pred":
        return EdgePrediction(name, hidden)
    if kind == "context":
        return ContextPrediction(name, hidden, int(spec.get("num_layers", num_layers)),
                                 int(spec.get("context_layers", 3)), float(spec.get("dropout", 0.0)))
    if kind == "infograph":
        return InfoGraph(name, hidden)
    if kind == "motif":
        return MotifPrediction(name, hidden, data.mols, data.cache_dir)  # type: ignore[union-attr]
    raise AuxrunError(f"auxiliary task {name!r}: kind {kind!r} does not apply to molecules; "
                      f"use one of {', '.join(MOL_KINDS)}")


__all__ = ["Task", "TargetTask", "build_target", "build_aux", "AUX_KINDS", "SPEC_KEYS", "COMMON_SPEC_KEYS"]
