"""Neighbour sampling (GraphSAGE; PyG's ``NeighborLoader``): the subgraph around seed nodes.

Hop ``l`` keeps, for every node reached at hop ``l - 1`` (the seeds at hop 1), at most
``fanout[l]`` of its incoming edges, drawn uniformly without replacement over all relations
(``-1``: all of them); the sources of the kept edges are the nodes reached at hop ``l``. The
subgraph is every node reached and every kept edge, so a ``len(fanout)``-layer encoder
computes each seed's embedding from its sampled computation tree.

Sampling runs on the stacked (homogeneous) view of :class:`~auxrun.data.graph_view.GraphView`
with PyG's :class:`torch_geometric.sampler.NeighborSampler` whenever its compiled backend
(``pyg-lib`` or ``torch-sparse``) is installed (``backend=pyg``). Those backends are not on
the package registry for every torch build (not for torch 2.13 here), so ``backend=torch``
implements the same :class:`~torch_geometric.sampler.BaseSampler` interface with vectorised
torch operations, drawing from a seeded generator (reproducible, and its state is the run's
to checkpoint); ``auto`` takes PyG's when it can.
"""

from __future__ import annotations

import torch
import torch_geometric.typing
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.sampler import BaseSampler, NeighborSampler, NodeSamplerInput, SamplerOutput

from ..errors import AuxrunError
from .graph_view import GraphView
from .sampling import in_sorted

BACKENDS = ("auto", "pyg", "torch")


def pyg_backend_available() -> bool:
    """Whether PyG's own neighbour sampler can run (it needs pyg-lib or torch-sparse)."""
    return bool(torch_geometric.typing.WITH_PYG_LIB or torch_geometric.typing.WITH_TORCH_SPARSE)


class TorchNeighborSampler(BaseSampler):
    """Uniform neighbour sampling without replacement (module docstring) in plain torch.

    The incoming edges of every node are kept in CSC order (sorted by destination); a hop
    draws one uniform key per incoming edge of the frontier and keeps, per node, the
    ``fanout`` edges with the smallest keys: a uniform draw without replacement, for all
    frontier nodes in one sort. Cost per hop: the frontier's total in-degree.
    """

    def __init__(self, edge_index: Tensor, num_nodes: int, fanout: list[int], gen: torch.Generator) -> None:
        dst = edge_index[1].cpu()
        self.perm = torch.argsort(dst, stable=True)
        self.row = edge_index[0].cpu()[self.perm]
        self.colptr = torch.zeros(num_nodes + 1, dtype=torch.long)
        self.colptr[1:] = torch.cumsum(torch.bincount(dst, minlength=num_nodes), 0)
        self.fanout = [int(k) for k in fanout]
        self.gen = gen

    def _hop(self, frontier: Tensor, k: int) -> Tensor:
        """Positions (in CSC order) of the incoming edges kept for ``frontier``."""
        start, deg = self.colptr[frontier], self.colptr[frontier + 1] - self.colptr[frontier]
        total = int(deg.sum())
        if total == 0:
            return torch.empty(0, dtype=torch.long)
        seg = torch.repeat_interleave(torch.arange(len(frontier)), deg)
        first = torch.cumsum(deg, 0) - deg
        pos = start[seg] + torch.arange(total) - first[seg]
        if k < 0:
            return pos
        keys = torch.rand(total, generator=self.gen, dtype=torch.double) + seg  # segment, then random order
        order = torch.argsort(keys)
        rank = torch.arange(total) - first[seg[order]]
        return pos[order[rank < k]]

    def sample_from_nodes(self, index: NodeSamplerInput, **kwargs) -> SamplerOutput:
        seeds = torch.unique(index.node.cpu())
        reached, frontier, kept = seeds, seeds, []
        for k in self.fanout:
            pos = self._hop(frontier, k)
            kept.append(pos)
            src = torch.unique(self.row[pos])
            frontier = src[~in_sorted(src, reached)]
            reached = torch.unique(torch.cat([reached, frontier]))
            if len(frontier) == 0:
                break
        pos = torch.cat(kept)
        edge = self.perm[pos]
        dst = torch.searchsorted(self.colptr, pos, right=True) - 1
        row, col = torch.searchsorted(reached, self.row[pos]), torch.searchsorted(reached, dst)
        return SamplerOutput(node=reached, row=row, col=col, edge=edge)

    def sample_from_edges(self, index, neg_sampling=None):  # pragma: no cover - node seeds only
        raise NotImplementedError("auxrun samples around node seeds (a step's examples' endpoints)")


class NeighborSubgraphs:
    """Subgraphs of one graph around seed nodes, with ``fanout`` per hop (module docstring)."""

    def __init__(self, view: GraphView, fanout: list[int], gen: torch.Generator, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise AuxrunError(f"trainer.sampler={backend!r}; use one of {', '.join(BACKENDS)}")
        if backend == "pyg" and not pyg_backend_available():
            raise AuxrunError("trainer.sampler=pyg needs pyg-lib or torch-sparse (see PyG's installation notes); "
                              "use trainer.sampler=auto to fall back to the built-in sampler")
        self.view = view
        self.backend = "pyg" if backend == "pyg" or (backend == "auto" and pyg_backend_available()) else "torch"
        edge_index = view.edge_index.cpu()
        if self.backend == "pyg":
            self.sampler: BaseSampler = NeighborSampler(Data(edge_index=edge_index, num_nodes=view.num_nodes),
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
