"""The molecular GIN of Hu et al. (ICLR 2020), with bond embeddings in every layer.

``h_v^0 = E_atom[type_v] + E_chir[chirality_v]``; layer ``l`` adds a self loop to every atom
(bond type ``SELF_LOOP``) and computes

``m_v = sum_{u in N(v) + {v}} (h_u^l + E^l_bond[type_uv] + E^l_dir[dir_uv])``,
``h_v^{l+1} = dropout(act(BN_l(MLP_l(m_v))))``, ``MLP_l = Linear(d, 2d) -> ReLU -> Linear(2d, d)``,

with ``act`` the ReLU except after the last layer. Atom representations are the last
layer's (JK = last); a molecule's representation is the mean (or sum / max) of its atoms'.
Defaults of ``backbone=gin`` on molecular data: 5 layers, 300 hidden, dropout 0.5, mean.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..data.molecules import (MolBatch, NUM_ATOM_TYPES, NUM_BOND_DIRS, NUM_BOND_TYPES, NUM_CHIRALITY,
                              SELF_LOOP)
from ..errors import AuxrunError

POOLING = ("mean", "sum", "max")


class MolGINLayer(nn.Module):
    """One GIN layer with bond embeddings (see the module docstring)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.bond_type = nn.Embedding(NUM_BOND_TYPES, dim)
        self.bond_dir = nn.Embedding(NUM_BOND_DIRS, dim)
        nn.init.xavier_uniform_(self.bond_type.weight)
        nn.init.xavier_uniform_(self.bond_dir.weight)

    def forward(self, h: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        n = h.shape[0]
        loops = torch.arange(n, device=h.device)
        src = torch.cat([edge_index[0], loops])
        dst = torch.cat([edge_index[1], loops])
        kind = torch.cat([edge_attr[:, 0], torch.full((n,), SELF_LOOP, device=h.device, dtype=torch.long)])
        direction = torch.cat([edge_attr[:, 1], torch.zeros(n, device=h.device, dtype=torch.long)])
        msg = h[src] + self.bond_type(kind) + self.bond_dir(direction)
        agg = torch.zeros_like(h).index_add(0, dst, msg)
        return self.mlp(agg)


class MolEncoder(nn.Module):
    """``backbone=gin`` on molecular data; ``forward(x, graph)`` returns ``{"atom": (n, d),
    "graph": (B, d)}`` for the atoms and molecules of a :class:`MolBatch`."""

    def __init__(self, cfg: Any, schema: dict) -> None:
        super().__init__()
        if str(cfg.name) != "gin":
            raise AuxrunError(f"molecular datasets use backbone=gin (Hu et al.'s GIN with bond features), "
                              f"not {cfg.name}")
        self.name = "gin"
        self.hidden = int(cfg.hidden)
        self.dropout = float(cfg.dropout)
        self.pooling = str(cfg.get("pooling", "mean"))  # one of POOLING: checked by the schema
        self.atom_type = nn.Embedding(NUM_ATOM_TYPES, self.hidden)
        self.chirality = nn.Embedding(NUM_CHIRALITY, self.hidden)
        nn.init.xavier_uniform_(self.atom_type.weight)
        nn.init.xavier_uniform_(self.chirality.weight)
        layers = int(cfg.num_layers)
        self.layers = nn.ModuleList(MolGINLayer(self.hidden) for _ in range(layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(self.hidden) for _ in range(layers))

    def last_layer(self) -> list[nn.Parameter]:
        """The parameters of the last GIN layer and its batch norm (GradNorm's ``W``)."""
        return [*self.layers[-1].parameters(), *self.norms[-1].parameters()]

    def forward(self, x: dict[str, Tensor], graph: MolBatch) -> dict[str, Tensor]:
        atoms = x["atom"]
        h = self.atom_type(atoms[:, 0]) + self.chirality(atoms[:, 1])
        last = len(self.layers) - 1
        for i, (layer, norm) in enumerate(zip(self.layers, self.norms)):
            h = norm(layer(h, graph.edge_index, graph.edge_attr))
            if i < last:
                h = torch.relu(h)
            h = nn.functional.dropout(h, self.dropout, self.training)
        return {"atom": h, "graph": pool(h, graph.batch, graph.num_graphs, self.pooling)}


def pool(h: Tensor, batch: Tensor, num_graphs: int, how: str = "mean") -> Tensor:
    """Per-molecule ``mean`` / ``sum`` / ``max`` of atom representations."""
    out = torch.zeros(num_graphs, h.shape[1], device=h.device, dtype=h.dtype)
    if how == "max":
        return out.index_reduce(0, batch, h, "amax", include_self=False)
    out = out.index_add(0, batch, h)
    if how == "sum":
        return out
    counts = torch.bincount(batch, minlength=num_graphs).clamp(min=1).to(h.dtype)
    return out / counts[:, None]
