"""The tensors an encoder runs on: a whole :class:`GraphData` or a subgraph of it.

Homogeneous layers (GCN, GAT, GIN, SAGE) and RGCN run on the *homogeneous view*: node types
are stacked (``offsets[t]`` is where type ``t`` starts) and all relations are merged into
one ``edge_index``, with ``edge_type`` keeping each edge's relation id for RGCN. HGT and HAN
run on the per-relation ``edge_index_dict`` (indices local to each node type).

A subgraph (:meth:`GraphView.subgraph`) has the same fields over its own nodes, plus
``n_id[t]``: the graph-wide index of each of its type-``t`` nodes (for ID embeddings and for
gathering features); ``n_id`` is ``None`` on the whole graph. ``degree`` is each node's
in-degree in the *whole* homogeneous graph, on a subgraph too: layers whose normalisation
depends on degrees (GCN) use it so a sampled subgraph estimates the whole-graph layer.
A subgraph also keeps ``nodes`` (the stacked graph-wide index of each of its nodes) and
``e_id`` (the position of each of its edges in the whole graph's ``edge_index``), so edges a
task hides from one step can be removed from it (:meth:`GraphView.without`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .graph import EdgeType, GraphData


@dataclass
class GraphView:
    node_types: list[str]
    counts: dict[str, int]
    offsets: dict[str, int]
    edge_index: Tensor
    edge_type: Tensor
    edge_index_dict: dict[EdgeType, Tensor]
    n_id: dict[str, Tensor] | None = None
    degree: Tensor | None = None
    nodes: Tensor | None = None
    e_id: Tensor | None = None

    @property
    def metadata(self) -> tuple[list[str], list[EdgeType]]:
        return self.node_types, list(self.edge_index_dict)

    @property
    def num_nodes(self) -> int:
        return sum(self.counts.values())

    @classmethod
    def of(cls, data: GraphData) -> "GraphView":
        """The stacked view of ``data``, built once per graph and shared by everything that
        reads it (the data view, edge generation's lookup, propagation baselines): a graph
        of 10^8 edges is stacked once, not once per reader. ``data.to`` drops it."""
        if data._stacked is None:
            data._stacked = cls.from_data(data)
        return data._stacked

    @classmethod
    def from_data(cls, data: GraphData) -> "GraphView":
        types = data.node_types
        counts = {t: data.num_nodes(t) for t in types}
        offsets, acc = {}, 0
        for t in types:
            offsets[t], acc = acc, acc + counts[t]
        parts, rel_ids = [], []
        for i, ((s, _, d), ei) in enumerate(data.edge_index.items()):
            parts.append(torch.stack([ei[0] + offsets[s], ei[1] + offsets[d]]))
            rel_ids.append(torch.full((ei.shape[1],), i, dtype=torch.long, device=ei.device))
        edge_index = torch.cat(parts, 1)
        return cls(
            node_types=types,
            counts=counts,
            offsets=offsets,
            edge_index=edge_index,
            edge_type=torch.cat(rel_ids),
            edge_index_dict=dict(data.edge_index),
            degree=torch.bincount(edge_index[1], minlength=acc),
        )

    def split(self, h: Tensor) -> dict[str, Tensor]:
        """Cut stacked node embeddings back into one tensor per node type."""
        return {t: h[self.offsets[t] : self.offsets[t] + self.counts[t]] for t in self.node_types}

    def stacked(self, node_type: str, ids: Tensor) -> Tensor:
        """Indices of type-``node_type`` nodes ``ids`` in the homogeneous (stacked) view."""
        return ids + self.offsets[node_type]

    def subgraph(self, nodes: Tensor, edges: Tensor) -> "GraphView":
        """The subgraph on stacked node indices ``nodes`` (sorted, unique) with the edges
        ``edges`` (indices into :attr:`edge_index`, both ends among ``nodes``).

        Sorting keeps every type's nodes contiguous, so the subgraph is again a stacked view:
        its type-``t`` nodes are ``nodes`` in ``[offsets[t], offsets[t] + counts[t])``."""
        bounds = torch.tensor([self.offsets[t] + self.counts[t] for t in self.node_types], device=nodes.device)
        per_type = torch.bucketize(nodes, bounds, right=True)
        sizes = torch.bincount(per_type, minlength=len(self.node_types)).tolist()
        counts = dict(zip(self.node_types, sizes))
        offsets, acc, n_id = {}, 0, {}
        for t in self.node_types:
            offsets[t], acc = acc, acc + counts[t]
            n_id[t] = nodes[offsets[t] : acc] - self.offsets[t]
        local = torch.searchsorted(nodes, self.edge_index[:, edges])
        edge_type = self.edge_type[edges]
        edge_index_dict = self._per_relation(local, edge_type, offsets)
        degree = None if self.degree is None else self.degree[nodes]
        e_id = edges if self.e_id is None else self.e_id[edges]
        wide = nodes if self.nodes is None else self.nodes[nodes]
        return GraphView(self.node_types, counts, offsets, local, edge_type, edge_index_dict, n_id, degree, wide, e_id)

    def _per_relation(self, edge_index: Tensor, edge_type: Tensor, offsets: dict[str, int]) -> dict[EdgeType, Tensor]:
        """Stacked edges cut back into one ``edge_index`` per relation, in type-local indices."""
        out = {}
        for i, (s, r, d) in enumerate(self.edge_index_dict):
            ei = edge_index[:, edge_type == i]
            out[(s, r, d)] = torch.stack([ei[0] - offsets[s], ei[1] - offsets[d]])
        return out

    def without(self, hidden: Tensor, hidden_dst: Tensor) -> "GraphView":
        """This view without the whole-graph edges at positions ``hidden`` (whose stacked
        destinations are ``hidden_dst``): none of them passes a message, and ``degree``
        no longer counts them, so nothing of a hidden edge reaches the encoder."""
        if len(hidden) == 0:
            return self
        positions = self.e_id if self.e_id is not None else torch.arange(self.edge_index.shape[1],
                                                                         device=self.edge_index.device)
        keep = ~torch.isin(positions, hidden)
        edge_index, edge_type = self.edge_index[:, keep], self.edge_type[keep]
        edge_index_dict = self._per_relation(edge_index, edge_type, self.offsets)
        degree = self.degree
        if degree is not None:
            local = hidden_dst if self.nodes is None else torch.searchsorted(self.nodes, hidden_dst)
            inside = local < len(degree)
            if self.nodes is not None:
                inside &= self.nodes[local.clamp(max=len(degree) - 1)] == hidden_dst
            degree = degree - torch.bincount(local[inside], minlength=len(degree))
        return GraphView(self.node_types, self.counts, self.offsets, edge_index, edge_type, edge_index_dict,
                         self.n_id, degree, self.nodes, positions[keep])

    def localize(self, node_type: str, ids: Tensor) -> Tensor:
        """Positions, among this subgraph's type-``node_type`` nodes, of the graph-wide node
        indices ``ids`` (which must all be in the subgraph)."""
        if self.n_id is None:
            return ids
        return torch.searchsorted(self.n_id[node_type], ids)
