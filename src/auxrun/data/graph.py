"""The one data interface every loader returns: :class:`GraphData`.

A heterogeneous graph (node features per type, message-passing edges per relation), the
target task's labels and splits, and the raw material auxiliary tasks are built from
(held-out edges for edge generation, planted labelled pairs). A sampled loader for large
graphs implements the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

EdgeType = tuple[str, str, str]
SPLITS = ("train", "val", "test")


@dataclass
class TargetSpec:
    """What the target task predicts and on which examples.

    ``node_cls``: ``labels[node]`` for nodes of ``node_type``; ``split[s]`` are node indices.
    ``node_rank``: multi-label ranking (OAG's Paper-Field): ``labels`` is a ``(num_nodes, C)``
    0/1 matrix of each node's classes (rows outside the splits may be empty).
    ``link_pred``: ``split[s]`` is a (2, n) tensor of positive ``edge_type`` edges and
    ``negatives[s]`` (val/test) a fixed (2, n) tensor of sampled non-edges for evaluation.
    """

    kind: Literal["node_cls", "node_rank", "link_pred"]
    split: dict[str, Tensor]
    node_type: str | None = None
    labels: Tensor | None = None
    num_classes: int = 0
    edge_type: EdgeType | None = None
    negatives: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class PairLabels:
    """Labelled node pairs planted by a generator: ``pairs`` (2, P) and 0/1 ``labels`` (P,)."""

    src_type: str
    dst_type: str
    pairs: Tensor
    labels: Tensor


@dataclass
class NodeLabels:
    """Class labels of one node type, for zero-shot transfer between types that share them.

    ``y`` is ``(num_nodes, C)``: a 0/1 multi-hot row per node (one 1 for single-label data),
    an all-zero row for a node without a label; ``names`` the C class names (shared by every
    type that is labelled with the same classes); ``feature_columns`` the columns of this
    type's features that encode these labels (MovieLens's genre multi-hot), which a zero-shot
    run leaves out of the input so the source classifier learns from the graph.
    """

    y: Tensor
    names: list[str]
    feature_columns: list[int] = field(default_factory=list)


@dataclass
class GraphData:
    """A heterogeneous graph with its target task.

    Attributes:
        name: dataset registry name.
        x: node features per node type, (num_nodes_t, feat_dim_t).
        edge_index: message-passing edges per relation (src_type, rel, dst_type), (2, E);
            every relation has its reverse ``rev_<rel>`` so information flows both ways.
        target: the target task specification.
        heldout: per base relation, edges removed from ``edge_index`` for edge generation.
        pair_labels: planted labelled pairs, keyed by relation name.
        embedded: node types that get a learned per-node embedding (ID embedding) in the
            encoder's input, added to the projection of their features; a type with
            zero-width features (a knowledge-graph entity, a user known only by its ID) must
            be listed here.
        aliases: short names for relations, usable in meta-paths (``director`` ->
            ``film.film.directed_by``).
        info: free-form description (sizes, generator parameters) for logs and results.
        node_labels: class labels of node types that have them (zero-shot transfer); the
            regular schemes never read them.
        fingerprint: identifies the graph's content (loader, config, seed): keys on-disk caches
            of things derived from it (meta-path labels) and is part of :meth:`schema`;
            empty for graphs that do not depend on the seed and need no cache.
        cache_dir: where such caches live (``None`` = do not cache).
        pretrain_nodes: per node type, the nodes GPT-GNN's generative tasks draw their
            examples from (the pre-training part of a dataset's protocol: Reddit's 70% of
            posts, OAG's papers before 2014); a type not listed draws from all its nodes.
    """

    kind: ClassVar[str] = "graph"  # what a dataset holds: "graph" here, "molecules" for MolData
    name: str
    x: dict[str, Tensor]
    edge_index: dict[EdgeType, Tensor]
    target: TargetSpec
    heldout: dict[EdgeType, Tensor] = field(default_factory=dict)
    pair_labels: dict[str, PairLabels] = field(default_factory=dict)
    embedded: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    node_labels: dict[str, NodeLabels] = field(default_factory=dict)
    fingerprint: str = ""
    cache_dir: str | None = None
    pretrain_nodes: dict[str, Tensor] = field(default_factory=dict)
    _stacked: Any = field(default=None, repr=False, compare=False)  # GraphView.of's one stacked view

    @property
    def node_types(self) -> list[str]:
        return list(self.x)

    @property
    def edge_types(self) -> list[EdgeType]:
        return list(self.edge_index)

    def num_nodes(self, node_type: str) -> int:
        return int(self.x[node_type].shape[0])

    def schema(self) -> dict:
        """What an encoder's shape depends on: feature sizes per node type and relations.

        A pretrained encoder can be reused on any graph with the same schema (ID-embedded
        types: with the same number of nodes, the same node order being the loader's job).
        Where the message-passing graph depends on the split (link prediction on real data:
        val/test edges are removed), ``fingerprint`` is part of the schema, so an encoder
        pre-trained on one seed's graph, which contains another seed's test edges, is never
        reused for that other seed.
        """
        return {
            "features": {t: int(v.shape[1]) for t, v in self.x.items()},
            "relations": ["__".join(e) for e in self.edge_index],
            "embedded": {t: self.num_nodes(t) for t in self.embedded},
            **({"graph": self.fingerprint} if self.fingerprint else {}),
        }

    def to(self, device: torch.device) -> "GraphData":
        """Move every tensor to ``device`` (in place; returns self)."""
        self.x = {k: v.to(device) for k, v in self.x.items()}
        self.edge_index = {k: v.to(device) for k, v in self.edge_index.items()}
        self.heldout = {k: v.to(device) for k, v in self.heldout.items()}
        self.pretrain_nodes = {k: v.to(device) for k, v in self.pretrain_nodes.items()}
        self._stacked = None  # built again, on the new device, when next asked for
        t = self.target
        t.split = {k: v.to(device) for k, v in t.split.items()}
        t.negatives = {k: v.to(device) for k, v in t.negatives.items()}
        if t.labels is not None:
            t.labels = t.labels.to(device)
        for p in self.pair_labels.values():
            p.pairs, p.labels = p.pairs.to(device), p.labels.to(device)
        for lab in self.node_labels.values():
            lab.y = lab.y.to(device)
        return self

    def relations_between(self, src: str, dst: str) -> list[EdgeType]:
        """Message-passing relations from node type ``src`` to ``dst``."""
        return [e for e in self.edge_index if e[0] == src and e[2] == dst]


def relation_chains(relations: list[EdgeType], end: str, hops: int, start: str | None = None) -> list[tuple[int, ...]]:
    """Every chain ``(r_1, ..., r_k)``, ``1 <= k <= hops``, of ``relations`` (as indices into
    it) in which each relation enters the node type the next one leaves and ``r_k`` enters
    ``end`` (and ``r_1`` leaves ``start`` when given): the meta-paths of MAGNN and of the
    zero-shot methods.

    Grown backwards from ``end``, one relation per hop: shortest first, and within one length
    ordered by ``r_k``, then ``r_{k-1}``, ... in the order of ``relations``."""
    found: list[tuple[int, ...]] = []
    frontier = [(i,) for i, r in enumerate(relations) if r[2] == end]
    for hop in range(int(hops)):
        found += frontier
        if hop + 1 < hops:
            frontier = [(i, *p) for p in frontier for i, r in enumerate(relations) if r[2] == relations[p[0]][0]]
    return [p for p in found if start is None or relations[p[0]][0] == start]


def add_reverse(edges: dict[EdgeType, Tensor]) -> dict[EdgeType, Tensor]:
    """Return ``edges`` plus ``(dst, rev_rel, src)`` for every relation."""
    out = dict(edges)
    for (s, r, d), ei in edges.items():
        out[(d, f"rev_{r}", s)] = ei.flip(0)
    return out


def random_split(n: int, fractions: tuple[float, float], gen: torch.Generator) -> dict[str, Tensor]:
    """Seeded random split of ``range(n)`` into train/val/test with the given train and val
    fractions (test takes the rest). Each part gets at least one element."""
    perm = torch.randperm(n, generator=gen)
    n_train = max(1, int(round(fractions[0] * n)))
    n_val = max(1, int(round(fractions[1] * n)))
    return {
        "train": perm[:n_train].sort().values,
        "val": perm[n_train : n_train + n_val].sort().values,
        "test": perm[n_train + n_val :].sort().values,
    }
