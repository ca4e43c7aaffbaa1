"""Propagation baselines of the KTN paper: ``lp`` and ``ep``.

* ``lp`` (label propagation, Zhou et al. 2004; PyG's ``LabelPropagation``): no training. The
  source training nodes' label rows ``Y_0`` (normalised to sum 1) are propagated over the whole
  graph, all node types and relations merged and symmetrically normalised,
  ``Y <- alpha D^{-1/2} A D^{-1/2} Y + (1 - alpha) Y_0`` for ``transfer.layers`` rounds; a
  target node's scores are its propagated row.
* ``ep`` (embedding propagation): trained as ``direct``; at test time target node ``t`` takes
  the mean over the meta-paths ``q`` from target to source (up to ``transfer.hops``) of its
  source-type neighbours' embeddings along ``q``, ``mean_q (A_q H_S)[t]`` (``A_q`` the row-
  normalised product of the path's adjacencies: each path instance counts alike, KTN's
  ``transfer.path_weighting=instances``), over the paths where ``t`` has an instance; a target
  without any keeps ``h_t``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn.models import LabelPropagation

from ..errors import AuxrunError
from ..models import GraphView
from .base import Embeddings, Transfer
from .data import ZeroShotData
from .paths import has_instance, metapaths, path_adjacency


class LP(Transfer):
    name = "lp"
    trains = False

    def __init__(self, zs: ZeroShotData, hidden: int, cfg) -> None:
        super().__init__(zs, hidden, cfg)
        view = GraphView.of(zs.graph)
        train = zs.source_split["train"]
        y0 = torch.zeros(sum(view.counts.values()), zs.num_classes, device=zs.y_source.device)
        y = zs.y_source[train]
        y0[train + view.offsets[zs.source]] = y / y.sum(1, keepdim=True).clamp_min(1.0)
        out = LabelPropagation(num_layers=int(cfg.layers), alpha=float(cfg.alpha))(y0, view.edge_index)
        self.scores: dict[str, Tensor] = view.split(out)  # nothing is trained: propagate once

    def source_scores(self, emb: Embeddings, classifier: nn.Module) -> Tensor:
        return self.scores[self.source]

    def target_scores(self, emb: Embeddings, classifier: nn.Module) -> Tensor:
        return self.scores[self.target]


class EP(Transfer):
    name = "ep"
    tensor_lists = ("adjacency",)

    def __init__(self, zs: ZeroShotData, hidden: int, cfg) -> None:
        super().__init__(zs, hidden, cfg)
        g = zs.graph
        paths = metapaths(g.edge_types, zs.target, zs.source, int(cfg.hops))
        if not paths:
            raise AuxrunError(f"transfer=ep: no meta-path from {zs.target!r} to {zs.source!r} within "
                              f"transfer.hops={int(cfg.hops)} relations; raise transfer.hops")
        counts = {t: g.num_nodes(t) for t in g.node_types}
        self.paths = paths
        self.adjacency = [path_adjacency(p, g.edge_index, counts, "instances") for p in paths]

    def target_embeddings(self, emb: Embeddings) -> Tensor:
        h_s, h_t = emb[self.source], emb[self.target]
        total, hits = torch.zeros_like(h_t), torch.zeros(len(h_t), 1, device=h_t.device)
        for adj in self.adjacency:
            total = total + torch.sparse.mm(adj, h_s)
            hits = hits + has_instance(adj)[:, None].to(h_t.dtype)
        return torch.where(hits > 0, total / hits.clamp_min(1), h_t)
