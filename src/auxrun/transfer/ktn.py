"""``transfer=ktn``: Knowledge Transfer Networks (Yoon et al., NeurIPS 2022).

For every meta-path ``p = (r_1, ..., r_k)`` from the source type ``S`` to the target type ``T``
with at most ``transfer.hops`` relations (all of them, or the ones ``transfer.paths`` lists),
KTN maps target embeddings into the source space with a chain of bias-free linear maps, one
per relation of the path (``transfer.maps: per_path``, the authors' code: a path's maps are
its own, so ``cites, rev_writes`` and ``rev_writes`` learn different ``rev_writes`` maps), or
one per relation shared by every path that walks it (``per_relation``):

    T_p h = W_{p,r_1} W_{p,r_2} ... W_{p,r_k} h      (W_{p,r_k}, next to the target, applied first),

and trains them together with the GNN by the matching loss

    L_KTN = sum_p || H_S[S_p] - (A_p T_p H_T)[S_p] ||_F^2 / |S_p|,

``A_p`` the adjacency along ``p`` (:mod:`auxrun.transfer.paths`; ``transfer.path_weighting:
random_walk``, the authors' chain of row-normalised relation adjacencies, or ``instances``,
every path instance alike). The authors map and aggregate hop by hop,
``A_{r_1}(W_{r_1}(... A_{r_k}(W_{r_k} H_T)))``; row aggregation and a linear map commute, so
that is ``A_p T_p H_T``. ``S_p`` is the
source nodes with at least one instance of ``p`` (a source without one has nothing to match);
the loss enters as ``L_cls + lambda * L_KTN``. On neighbour-sampled steps (as the paper trains,
on HGT-sampled subgraphs) the sum runs over the step's source nodes: ``S_p`` is the batch's
sources with an instance of ``p``, and their rows of ``A_p`` reach target nodes that the
step's subgraph is sampled around (:meth:`KTN.seeds`), so every term is exact. Every
``W_r`` starts at the identity, so an untrained KTN is ``direct`` transfer. At test time a
target node is classified by the source classifier applied to ``mean_p T_p h_t``.

The authors' released run script passes ``--no_matching_loss`` on every call, which leaves
this loss out; here it is always on (``lambda = 0`` is ``direct``). Their loss is
``MSELoss`` over every source node of the sampled subgraph, the ones without an instance of
``p`` matched against zero; here those are left out and the squared distances summed over
the embedding width (a constant factor, absorbed by ``lambda``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import AuxrunError
from .base import Embeddings, StepBatch, Transfer
from .data import ZeroShotData
from .paths import MetaPath, has_instance, metapaths, path_adjacency, select_paths


MAPS = ("per_path", "per_relation")


def relation_key(rel: tuple[str, str, str]) -> str:
    """The module name of relation ``rel``'s map (``.`` is not allowed in module names)."""
    return "__".join(rel).replace(".", "_")


class KTN(Transfer):
    name = "ktn"
    tensor_lists = ("adjacency", "rows", "row_ptr")

    def __init__(self, zs: ZeroShotData, hidden: int, cfg) -> None:
        super().__init__(zs, hidden, cfg)
        g = zs.graph
        found = metapaths(g.edge_types, zs.source, zs.target, int(cfg.hops))
        wanted = None if cfg.get("paths") in (None, "all") else [str(p) for p in cfg.paths]
        self.paths: list[MetaPath] = select_paths(found, wanted)
        if not self.paths:
            raise AuxrunError(f"transfer=ktn: no meta-path from {zs.source!r} to {zs.target!r} within "
                              f"transfer.hops={int(cfg.hops)} relations; raise transfer.hops")
        counts = {t: g.num_nodes(t) for t in g.node_types}
        weighting = str(cfg.get("path_weighting", "random_walk"))
        self.adjacency = [path_adjacency(p, g.edge_index, counts, weighting) for p in self.paths]
        self.rows = [has_instance(a) for a in self.adjacency]
        self.row_ptr = [torch.searchsorted(a.indices()[0], torch.arange(a.shape[0] + 1)) for a in self.adjacency]
        self.per_path = str(cfg.get("maps", "per_path")) == "per_path"
        keys = sorted({self.map_key(i, r) for i, p in enumerate(self.paths) for r in p.relations})
        self.maps = nn.ModuleDict({k: nn.Linear(hidden, hidden, bias=False) for k in keys})
        for m in self.maps.values():
            nn.init.eye_(m.weight)

    def map_key(self, index: int, rel: tuple[str, str, str]) -> str:
        """The name of the map of relation ``rel`` on the ``index``-th path (``p<index>__`` first
        when every path has maps of its own)."""
        return (f"p{index}__" if self.per_path else "") + relation_key(rel)

    def map_path(self, h: Tensor, index: int) -> Tensor:
        """``T_p h`` of the ``index``-th path for rows ``h`` (the relation next to the target first)."""
        for rel in reversed(self.paths[index].relations):
            h = self.maps[self.map_key(index, rel)](h)
        return h

    def matching_loss(self, emb: Embeddings, batch: StepBatch | None = None) -> Tensor:
        """``L_KTN`` (see the module docstring): over all source nodes, or over the batch's
        when the step runs on a sampled subgraph (``batch.source_ids`` set)."""
        if batch is not None and batch.source_ids is not None:
            return self._batch_matching_loss(emb, batch)
        h_s, h_t = emb[self.source], emb[self.target]
        total = h_s.new_zeros(())
        for index, (adj, rows) in enumerate(zip(self.adjacency, self.rows)):
            mapped = torch.sparse.mm(adj, self.map_path(h_t, index))
            total = total + (h_s[rows] - mapped[rows]).pow(2).sum() / rows.sum().clamp_min(1)
        return total

    def _batch_rows(self, adj: Tensor, ptr: Tensor, ids: Tensor) -> Tensor:
        """Rows ``ids`` of a sparse path adjacency (coalesced COO, so sorted by row; ``ptr[r]``
        its first entry of row ``r``) as a ``(len(ids), n_target)`` COO matrix, gathered by
        each row's range of entries."""
        col = adj.indices()[1]
        start, count = ptr[ids], ptr[ids + 1] - ptr[ids]
        seg = torch.repeat_interleave(torch.arange(len(ids), device=ids.device), count)
        pos = start[seg] + torch.arange(len(seg), device=ids.device) - (torch.cumsum(count, 0) - count)[seg]
        return torch.sparse_coo_tensor(torch.stack([seg, col[pos]]), adj.values()[pos], (len(ids), adj.shape[1]),
                                       is_coalesced=True)

    def seeds(self, source: Tensor, target: Tensor) -> dict[str, list[Tensor]]:
        """The batch's nodes and every target node their rows of each ``A_p`` reach."""
        reached = [self._batch_rows(adj, ptr, source).indices()[1]
                   for adj, ptr in zip(self.adjacency, self.row_ptr)]
        return {self.source: [source], self.target: [target, *reached]}

    def _batch_matching_loss(self, emb: Embeddings, batch: StepBatch) -> Tensor:
        assert batch.source_ids is not None and batch.localize is not None
        h_s, h_t = emb[self.source][batch.source], emb[self.target]
        total = h_s.new_zeros(())
        for index, (adj, ptr) in enumerate(zip(self.adjacency, self.row_ptr)):
            rows = self._batch_rows(adj, ptr, batch.source_ids)
            i, j = rows.indices()
            local = torch.sparse_coo_tensor(torch.stack([i, batch.localize(self.target, j)]), rows.values(),
                                            (len(batch.source_ids), len(h_t)))
            has = has_instance(rows)
            mapped = torch.sparse.mm(local, self.map_path(h_t, index))
            total = total + (h_s[has] - mapped[has]).pow(2).sum() / has.sum().clamp_min(1)
        return total

    def loss(self, emb: Embeddings, batch: StepBatch, classifier: nn.Module) -> Tensor:
        return self.matching_loss(emb, batch)

    def target_embeddings(self, emb: Embeddings) -> Tensor:
        """``mean_p T_p h_t``."""
        h_t = emb[self.target]
        return torch.stack([self.map_path(h_t, i) for i in range(len(self.paths))]).mean(0)
