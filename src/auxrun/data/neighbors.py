"""Neighbour sampling (GraphSAGE; PyG's ``NeighborLoader``): the subgraph around seed nodes.

Hop ``l`` keeps, for every node reached at hop ``l - 1`` (the seeds at hop 1), at most
``fanout[l]`` of its incoming edges, drawn uniformly without replacement over all relations
(``-1``: all of them); the sources of the kept edges are the nodes reached at hop ``l``. The
subgraph is every node reached and every kept edge, so a ``len(fanout)``-layer encoder
computes each seed's embedding from its sampled computation tree.

Sampling runs on the stacked (homogeneous) view of :class:`~auxrun.data.encoder_graph.GraphView`
with PyG's :class:`torch_geometric.sampler.NeighborSampler` whenever its compiled backend
(``pyg-lib`` or ``torch-sparse``) is installed (``backend=pyg``). Those backends are not on
the package registry for every torch build (not for torch 2.13 here), so ``backend=torch``
implements the same :class:`~torch_geometric.sampler.BaseSampler` interface with vectorised
torch operations, drawing from a seeded generator (reproducible, and its state is the run's
to checkpoint); ``auto`` takes PyG's when it can.
"""

from __future__ import annotations

import copy

import torch
import torch_geometric.typing
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.sampler import BaseSampler, NeighborSampler, NodeSamplerInput, SamplerOutput

from ..errors import AuxrunError
from .encoder_graph import GraphView
from .sampling import in_sorted

BACKENDS = ("auto", "pyg", "torch")


def pyg_backend_available() -> bool:
    """Whether PyG's own neighbour sampler can run (it needs pyg-lib or torch-sparse)."""
    return bool(torch_geometric.typing.WITH_PYG_LIB or torch_geometric.typing.WITH_TORCH_SPARSE)


def resolve_backend(name: str) -> str:
    """The sampler ``trainer.sampler=name`` runs: ``pyg`` or ``torch`` (``auto``: PyG's when it
    can run; the name is one of BACKENDS, the schema's ``trainer.sampler``); ``pyg`` without its
    compiled backend is a clear error."""
    if name == "pyg" and not pyg_backend_available():
        raise AuxrunError("trainer.sampler=pyg needs pyg-lib or torch-sparse (see PyG's installation notes); "
                          "trainer.sampler=auto falls back to the built-in sampler")
    return "pyg" if name == "pyg" or (name == "auto" and pyg_backend_available()) else "torch"


class TorchNeighborSampler(BaseSampler):
    """Uniform neighbour sampling without replacement (module docstring) in plain torch.

    The incoming edges of every node are kept in CSC order (sorted by destination); a hop
    draws, for all frontier nodes at once, ``fanout`` of each node's incoming edges uniformly
    without replacement (:meth:`_hop`), at a cost of O(fanout) per node.
    """

    def __init__(self, edge_index: Tensor, num_nodes: int, fanout: list[int], gen: torch.Generator) -> None:
        super().__init__()
        dst = edge_index[1].cpu()
        self.perm = torch.argsort(dst, stable=True)
        self.row = edge_index[0].cpu()[self.perm]
        self.colptr = torch.zeros(num_nodes + 1, dtype=torch.long)
        self.colptr[1:] = torch.cumsum(torch.bincount(dst, minlength=num_nodes), 0)
        self.fanout = [int(k) for k in fanout]
        self.gen = gen

    def derive(self, fanout: list[int], gen: torch.Generator) -> "TorchNeighborSampler":
        """A sampler over the same CSC arrays (not copied) with another fanout and generator."""
        other = copy.copy(self)
        other.fanout, other.gen = [int(k) for k in fanout], gen
        return other

    def _hop(self, frontier: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Positions (in CSC order) of the incoming edges kept for ``frontier``, and each kept
        edge's destination. Per node: every edge when ``deg <= k`` (or ``k = -1``); with
        ``k < deg <= 2k`` the ``k`` of its edges with the smallest uniform keys; with
        ``deg > 2k`` ``k`` uniform offsets, duplicates redrawn until all differ. Both draws
        are equivariant under relabelling a node's edges, so every ``k``-subset is equally
        likely, and both cost O(k) per node: a hub's cost does not grow with its degree."""
        start, deg = self.colptr[frontier], self.colptr[frontier + 1] - self.colptr[frontier]
        take_all = deg <= k if k >= 0 else torch.ones_like(deg, dtype=torch.bool)
        parts = [self._ranges(frontier[take_all], start[take_all], deg[take_all])[:2]]
        if k >= 0:
            mid = ~take_all & (deg <= 2 * k)
            pos, dst, seg, first = self._ranges(frontier[mid], start[mid], deg[mid])
            if len(pos):
                order = torch.argsort(torch.rand(len(pos), generator=self.gen, dtype=torch.double) + seg)
                keep = order[(torch.arange(len(pos)) - first[seg[order]]) < k]
                parts.append((pos[keep], dst[keep]))
            big = deg > 2 * k
            if bool(big.any()):
                parts.append((start[big, None] + self._distinct(deg[big], k), frontier[big, None].expand(-1, k)))
        return torch.cat([p.reshape(-1) for p, _ in parts]), torch.cat([d.reshape(-1) for _, d in parts])

    @staticmethod
    def _ranges(nodes: Tensor, start: Tensor, deg: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Every incoming edge position of ``nodes`` and its destination; with them each
        position's node (``seg``, an index into ``nodes``) and each node's first position in
        the output (``first``)."""
        seg = torch.repeat_interleave(torch.arange(len(nodes)), deg)
        first = torch.cumsum(deg, 0) - deg
        return start[seg] + torch.arange(len(seg)) - first[seg], nodes[seg], seg, first

    def _distinct(self, deg: Tensor, k: int) -> Tensor:
        """Per row, ``k`` distinct uniform offsets in ``[0, deg)`` (``deg > 2k``)."""
        span = deg[:, None].double()
        off = (torch.rand(len(deg), k, generator=self.gen, dtype=torch.double) * span).long()
        while True:
            off = off.sort(1).values
            dup = torch.zeros_like(off, dtype=torch.bool)
            dup[:, 1:] = off[:, 1:] == off[:, :-1]
            if not bool(dup.any()):
                return off
            fresh = (torch.rand(int(dup.sum()), generator=self.gen, dtype=torch.double)
                     * span.expand_as(off)[dup]).long()
            off[dup] = fresh

    def sample_from_nodes(self, index: NodeSamplerInput, **kwargs) -> SamplerOutput:
        seeds = torch.unique(index.node.cpu())
        reached, frontier, kept = seeds, seeds, []
        dsts = []
        for k in self.fanout:
            pos, dst = self._hop(frontier, k)
            kept.append(pos)
            dsts.append(dst)
            src = torch.unique(self.row[pos])
            frontier = src[~in_sorted(src, reached)]
            reached = torch.unique(torch.cat([reached, frontier]))
            if len(frontier) == 0:
                break
        pos, dst = torch.cat(kept), torch.cat(dsts)
        edge = self.perm[pos]
        row, col = torch.searchsorted(reached, self.row[pos]), torch.searchsorted(reached, dst)
        return SamplerOutput(node=reached, row=row, col=col, edge=edge)

    def sample_from_edges(self, index, neg_sampling=None):  # pragma: no cover - node seeds only
        raise NotImplementedError("auxrun samples around node seeds (a step's examples' endpoints)")


class NeighborSubgraphs:
    """Subgraphs of one graph around seed nodes, with ``fanout`` per hop (module docstring)."""

    def __init__(self, view: GraphView, fanout: list[int], gen: torch.Generator, backend: str = "auto",
                 share: "NeighborSubgraphs | None" = None) -> None:
        self.view = view
        self.backend = resolve_backend(backend)
        if share is not None and isinstance(share.sampler, TorchNeighborSampler) and self.backend == "torch":
            self.sampler: BaseSampler = share.sampler.derive(fanout, gen)  # one CSC for both
            return
        edge_index = view.edge_index.cpu()
        if self.backend == "pyg":
            self.sampler = NeighborSampler(Data(edge_index=edge_index, num_nodes=view.num_nodes),
                                                        num_neighbors=list(fanout))
        else:
            self.sampler = TorchNeighborSampler(edge_index, view.num_nodes, list(fanout), gen)

    def around(self, seeds: Tensor) -> GraphView:
        """The sampled subgraph around stacked node indices ``seeds`` (see :meth:`GraphView.subgraph`)."""
        out = self.sampler.sample_from_nodes(NodeSamplerInput(input_id=None, node=seeds.cpu()))
        edge = out.edge
        perm = getattr(self.sampler, "perm", None)
        if self.backend == "pyg" and perm is not None:
            edge = perm[edge]
        nodes = torch.sort(out.node).values
        device = self.view.edge_index.device
        return self.view.subgraph(nodes.to(device), edge.to(device))
