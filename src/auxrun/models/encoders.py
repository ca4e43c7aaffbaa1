"""Shared GNN encoders: ``backbone=gcn|gat|gin|sage|rgcn|mpnn|hgt|han|hmpnn|magnn``.

Every encoder starts with a *typed input projection*: node type ``t`` has its own linear map
``h_v^0 = W_t x_v + b_t + e_t (+ z_v)`` into a common ``hidden`` space (``e_t`` is a learned
type embedding), so node types with different feature sizes and meanings share one space.
Node types the data marks as *embedded* also get a learned per-node vector ``z_v`` (an ID
embedding, as KGNN-LS and SELAR use for users, items and KG entities); for a type without
features (width 0) it is the whole input besides ``e_t``.

* ``gcn``, ``gat``, ``gin``, ``sage`` then run on the homogeneous view (all relations merged),
  which is how SELAR and AUX-TS apply these layers to knowledge graphs; it keeps one weight
  set per layer (a ``to_hetero`` copy per relation would multiply parameters by the number
  of relations) and keeps the model a plain function of its parameters for look-ahead steps.
* ``rgcn`` uses one weight per relation on the same homogeneous view (``edge_type``).
* ``hgt`` runs PyG's ``HGTConv`` on the per-relation edges (type-aware attention).
* ``han`` runs PyG's ``HANConv`` on the per-relation edges, each relation a length-one
  meta-path: node-level attention per relation, then semantic attention across relations.

``gcn`` propagates with ``A_hat = D^-1/2 (A + I) D^-1/2`` where ``D`` holds *whole-graph*
degrees (plus one for the self-loop), also on a neighbour-sampled subgraph: there node ``i``
keeps ``k_i`` of its ``deg_i`` incoming edges and each kept edge's weight is scaled by
``deg_i / k_i``, so ``sum_j A_hat_ij h_j`` over the kept edges is an unbiased estimate of the
whole-graph sum (exact when every edge is kept). Normalising by the subgraph's own degrees,
as a plain ``GCNConv`` would, gives the boundary nodes of a sampled tree degree one and
biases every sampled step (:func:`gcn_edge_weights`).

* ``mpnn``, ``hmpnn`` and ``magnn`` (Gilmer et al.'s MPNN with relation-typed edges, the KTN
  paper's heterogeneous MPNN, MAGNN): :mod:`auxrun.models.hetero`.

``rgcn``, ``mpnn``, ``hgt``, ``han``, ``hmpnn`` and ``magnn`` (:data:`TYPED`, the KTN paper's
six HGNNs) have type- or relation-specific parameters: the premise of zero-shot transfer
between node types (``auxrun zeroshot``).

``h^{l+1} = dropout(act(conv_l(h^l)))`` between layers (``mpnn``: ``dropout(conv(h^l))``, its GRU
being its own nonlinearity, and one ``conv`` for every layer); the last layer is linear so the
embeddings can be scored by dot products.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric import nn as gnn

from ..errors import AuxrunError
from ..data.encoder_graph import GraphView
from .hetero import HMPNNConv, MAGNNConv, MPNNConv

HOMOGENEOUS = ("gcn", "gat", "gin", "sage", "rgcn", "mpnn")
PER_RELATION = ("hgt", "han", "hmpnn", "magnn")  # run on the per-relation edge_index_dict
BACKBONES = (*HOMOGENEOUS, *PER_RELATION)
TYPED = ("rgcn", "mpnn", "hgt", "han", "hmpnn", "magnn")  # type- or relation-specific parameters
ATTENTION = ("gat", "hgt", "han")  # backbones whose heads split the hidden width
TIED = ("mpnn",)  # one layer applied num_layers times (Gilmer et al.); its GRU is its own nonlinearity


def _conv(name: str, hidden: int, cfg: Any, num_relations: int, metadata) -> nn.Module:
    heads = int(cfg.get("heads", 4))
    if name == "gcn":
        return gnn.GCNConv(hidden, hidden, normalize=False)  # weights from gcn_edge_weights
    if name == "gat":  # heads divide hidden (attention backbones): checked by the schema
        return gnn.GATConv(hidden, hidden // heads, heads=heads)
    if name == "gin":
        # Xu et al.'s GIN MLP, batch norm included: on a knowledge graph a genre entity sums
        # ~1,000 films, and without normalisation the scale of the sums compounds per layer
        norm: list[nn.Module] = [nn.BatchNorm1d(hidden)] if cfg.get("norm", "batch") == "batch" else []
        mlp = nn.Sequential(nn.Linear(hidden, hidden), *norm, nn.ReLU(), nn.Linear(hidden, hidden))
        return gnn.GINConv(mlp, train_eps=True)
    if name == "sage":
        return gnn.SAGEConv(hidden, hidden)
    if name == "rgcn":
        return gnn.RGCNConv(hidden, hidden, num_relations, num_bases=cfg.get("num_bases"))
    if name == "hgt":
        return gnn.HGTConv(hidden, hidden, metadata, heads=heads)
    if name == "han":
        return gnn.HANConv(hidden, hidden, metadata, heads=heads, dropout=float(cfg.get("attention_dropout", 0.0)))
    if name == "mpnn":
        return MPNNConv(hidden, num_relations, aggr=str(cfg.get("aggr", "sum")))
    if name == "hmpnn":
        return HMPNNConv(hidden, metadata)
    if name == "magnn":
        return MAGNNConv(hidden, metadata, heads=heads, metapath_hops=int(cfg.get("metapath_hops", 2)),
                         max_instances=int(cfg.get("max_instances", 16)),
                         attention_dropout=float(cfg.get("attention_dropout", 0.0)))
    raise AuxrunError(f"unknown backbone {name!r}; available: {', '.join(BACKBONES)}")


def gcn_edge_weights(graph: GraphView) -> tuple[Tensor, Tensor]:
    """Edges with self-loops and their GCN weights on ``graph`` (module docstring):
    ``w_ji = (deg_i / k_i) / sqrt((deg_j + 1)(deg_i + 1))`` for a kept edge ``j -> i`` and
    ``1 / (deg_i + 1)`` for the self-loop, ``deg`` the whole-graph in-degree and ``k_i`` the
    edges into ``i`` that ``graph`` kept. On the whole graph ``k_i = deg_i``: PyG's
    ``gcn_norm`` (for a graph without self-loops of its own)."""
    n = graph.num_nodes
    src, dst = graph.edge_index
    kept = torch.bincount(dst, minlength=n)
    deg = (kept if graph.degree is None else graph.degree).to(torch.float32)
    inv_sqrt = (deg + 1).rsqrt()
    weight = deg[dst] / kept[dst] * inv_sqrt[src] * inv_sqrt[dst]
    loops = torch.arange(n, device=src.device)
    return (torch.cat([graph.edge_index, torch.stack([loops, loops])], 1),
            torch.cat([weight, inv_sqrt.square()]))


class Encoder(nn.Module):
    """Typed input projection followed by ``num_layers`` message-passing layers."""

    def __init__(self, cfg: Any, schema: dict) -> None:
        super().__init__()
        self.name = str(cfg.name)
        self.hidden = int(cfg.hidden)
        self.dropout = float(cfg.dropout)
        feats: dict[str, int] = schema["features"]
        relations = [tuple(r.split("__")) for r in schema["relations"]]
        embedded: dict[str, int] = schema.get("embedded", {})
        self.inputs = nn.ModuleDict({t: nn.Linear(f, self.hidden) for t, f in feats.items() if f > 0})
        self.ids = nn.ModuleDict({t: nn.Embedding(n, self.hidden) for t, n in embedded.items()})
        for emb in self.ids.values():
            nn.init.normal_(emb.weight, std=0.1)
        bare = [t for t, f in feats.items() if f == 0 and t not in embedded]
        if bare:
            raise AuxrunError(f"node types {bare} have neither features nor ID embeddings")
        self.type_embedding = nn.Parameter(torch.zeros(len(feats), self.hidden))
        self.type_index = {t: i for i, t in enumerate(feats)}
        # PyG's per-relation layers key modules by relation name, which may not contain "."
        # (MovieLens's film.film.genre): they see the names with "_" instead
        self.safe_names = {rel: (rel[0], rel[1].replace(".", "_"), rel[2]) for rel in relations}
        metadata = (list(feats), list(self.safe_names.values()))
        layers = int(cfg.num_layers)
        if self.name in TIED:
            self.convs = nn.ModuleList([_conv(self.name, self.hidden, cfg, len(relations), metadata)] * layers)
        else:
            self.convs = nn.ModuleList(_conv(self.name, self.hidden, cfg, len(relations), metadata)
                                       for _ in range(layers))
        self.act = nn.ReLU()

    def last_layer(self) -> list[nn.Parameter]:
        """The parameters of the last message-passing layer (GradNorm's ``W``)."""
        return list(self.convs[-1].parameters())

    def embed_inputs(self, x: dict[str, Tensor], n_id: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """``h_v^0 = W_t x_v + b_t + e_t (+ z_v)`` per node type (see the module docstring);
        on a subgraph ``n_id[t]`` names the graph-wide node behind each row (its ``z_v``)."""
        out = {}
        for t, v in x.items():
            h = self.type_embedding[self.type_index[t]].expand(v.shape[0], -1)
            if t in self.inputs:
                h = h + self.inputs[t](v)
            if t in self.ids:
                h = h + (self.ids[t].weight if n_id is None else self.ids[t](n_id[t]))
            out[t] = h
        return out

    def forward(self, x: dict[str, Tensor], graph: GraphView) -> dict[str, Tensor]:
        """Embeddings per node type, each (num_nodes_t, hidden)."""
        h_dict = self.embed_inputs(x, graph.n_id)
        last = len(self.convs) - 1
        if self.name in PER_RELATION:
            edges = {self.safe_names[tuple(k)]: v for k, v in graph.edge_index_dict.items()}
            for i, conv in enumerate(self.convs):
                h_dict = conv(h_dict, edges)
                if i < last:
                    h_dict = {t: self._between(h) for t, h in h_dict.items()}
            return h_dict
        h = torch.cat([h_dict[t] for t in graph.node_types])
        edges = self._edge_args(graph)
        for i, conv in enumerate(self.convs):
            h = conv(h, *edges)
            if i < last:
                h = self._between(h)
        return graph.split(h)

    def _edge_args(self, graph: GraphView) -> tuple[Tensor, ...]:
        """What a homogeneous layer takes after ``h``: GCN its weighted edges, RGCN the edge types."""
        if self.name == "gcn":
            return gcn_edge_weights(graph)
        if self.name in ("rgcn", "mpnn"):
            return graph.edge_index, graph.edge_type
        return (graph.edge_index,)

    def _between(self, h: Tensor) -> Tensor:
        return nn.functional.dropout(h if self.name in TIED else self.act(h), self.dropout, self.training)
