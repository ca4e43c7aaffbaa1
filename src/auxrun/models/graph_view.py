"""Tensors an encoder needs from a :class:`GraphData`, built once per run.

Homogeneous layers (GCN, GAT, GIN, SAGE) and RGCN run on the *homogeneous view*: node types
are stacked (``offsets[t]`` is where type ``t`` starts) and all relations are merged into
one ``edge_index``, with ``edge_type`` keeping each edge's relation id for RGCN. HGT runs on
the per-relation ``edge_index_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.graph import EdgeType, GraphData


@dataclass
class GraphView:
    node_types: list[str]
    counts: dict[str, int]
    offsets: dict[str, int]
    edge_index: Tensor
    edge_type: Tensor
    edge_index_dict: dict[EdgeType, Tensor]

    @property
    def metadata(self) -> tuple[list[str], list[EdgeType]]:
        return self.node_types, list(self.edge_index_dict)

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
        return cls(
            node_types=types,
            counts=counts,
            offsets=offsets,
            edge_index=torch.cat(parts, 1),
            edge_type=torch.cat(rel_ids),
            edge_index_dict=dict(data.edge_index),
        )

    def split(self, h: Tensor) -> dict[str, Tensor]:
        """Cut stacked node embeddings back into one tensor per node type."""
        return {t: h[self.offsets[t] : self.offsets[t] + self.counts[t]] for t in self.node_types}
