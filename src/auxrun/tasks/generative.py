"""GPT-GNN's generative auxiliary tasks (Hu et al., KDD 2020), as the AUX-TS paper's Table 2
uses them: attribute generation and edge generation, on whatever graph the step runs on
(the whole graph or its neighbour-sampled subgraph).

* ``kind: gpt_attr`` (:class:`GenerativeAttributes`): a batch of nodes of ``node_type`` has its
  input attributes replaced by a learned token ``m`` (GPT-GNN's ``init_emb``, initialised at
  the mean attribute vector); the node's embedding, computed from its context only, must
  generate them: ``l_j = (1 - cos(W h_j, x_j)) / tau`` (GPT-GNN's loss ``-cos / tau`` shifted
  by the constant ``1 / tau`` so it is non-negative; ``W`` a linear map with dropout, ``tau``
  the temperature, 0.1). Metric ``cosine``: the mean ``cos(W h_j, x_j)`` on a fixed sample.
* ``kind: gpt_edge`` (:class:`GenerativeEdges`): a batch of edges ``u -> v`` of ``relation``
  is hidden from the step's graph (every edge between ``u`` and ``v``, either direction, any
  relation), and each ``v`` must pick its ``u`` out of ``M`` shared candidates of ``u``'s type
  (``negatives``, drawn uniformly; candidates joined to ``v`` by an edge are masked out):
  ``l_j = -log softmax_c(s(v_j, c))`` at ``c = u_j`` over ``{u_j} + negatives``, with
  ``s(v, c) = cos(W h_v, h_c) / tau`` (GPT-GNN's Matcher). Metrics ``mrr`` and ``ndcg`` of the
  true source among the candidates on a fixed sample.

Where GPT-GNN differs: it hides half of the batch nodes' edges inside its own subgraph sampler
and draws negatives from that subgraph, with an adaptive queue of earlier embeddings; its
"node separation" gives the masked node a copy that still passes its attributes to the
neighbours, so 2-hop paths can leak them back (here the masked attributes reach no node in
that step). On OAG it generates paper titles with a GRU; here attributes are the feature
vectors (its Reddit setting). Examples are drawn from ``data.pretrain_nodes`` where the
dataset defines a pre-training part (Reddit's 70% of posts, OAG's papers before 2014).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.graph import GraphData
from ..errors import AuxrunError
from ..data.encoder_graph import GraphView
from .base import Batch, Embeddings, Task
from .metrics import ranking_metrics_chunked
from .node import AttributeGeneration
from .pairs import parse_relation

TEMPERATURE = 0.1  # GPT-GNN's Matcher temperature
DROPOUT = 0.2      # GPT-GNN's Matcher dropout


def draw(pool: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """About ``k`` distinct members of ``pool`` at O(k) cost: ``k`` uniform draws with
    replacement, duplicates dropped (all of ``pool``, shuffled, when it is not larger than 4k)."""
    if len(pool) <= 4 * k:
        return pool[torch.randperm(len(pool), generator=gen)[:k].to(pool.device)]
    return torch.unique(pool[torch.randint(len(pool), (k,), generator=gen).to(pool.device)])


class EdgeLookup:
    """The edges between node pairs of the whole graph's stacked view, either direction, any
    relation: sorted keys ``src * N + dst`` and their positions in ``edge_index``."""

    def __init__(self, view: GraphView) -> None:
        self.n = view.num_nodes
        self.keys, self.perm = torch.sort(view.edge_index[0] * self.n + view.edge_index[1])

    def _ranges(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        q = torch.cat([a * self.n + b, b * self.n + a])
        lo = torch.searchsorted(self.keys, q)
        return lo, torch.searchsorted(self.keys, q, right=True) - lo

    def between(self, a: Tensor, b: Tensor) -> Tensor:
        """Positions of every edge joining ``a[j]`` and ``b[j]`` (stacked ids) for any ``j``."""
        lo, count = self._ranges(a.reshape(-1), b.reshape(-1))
        seg = torch.repeat_interleave(torch.arange(len(lo), device=lo.device), count)
        first = torch.cumsum(count, 0) - count
        return self.perm[lo[seg] + torch.arange(len(seg), device=lo.device) - first[seg]]

    def joined(self, a: Tensor, b: Tensor) -> Tensor:
        """Whether ``a`` and ``b`` (stacked ids, same shape) are joined by an edge."""
        _, count = self._ranges(a.reshape(-1), b.reshape(-1))
        both = count.view(2, -1).sum(0)
        return (both > 0).view(a.shape)


class GenerativeAttributes(AttributeGeneration):
    """``kind: gpt_attr`` (module docstring)."""

    primary_metric = "cosine"
    higher_is_better = True

    def __init__(self, name: str, node_type: str, x: Tensor, hidden: int, eval_size: int, seed: int,
                 pool: Tensor | None = None) -> None:
        super().__init__(name, node_type, x, hidden, eval_size, seed)
        self.head = nn.Sequential(nn.Linear(hidden, x.shape[1]), nn.Dropout(DROPOUT))
        self.mask = nn.Parameter(x.mean(0).detach().clone())
        self.pool = pool if pool is not None else torch.arange(self.num_nodes, device=x.device)
        g = torch.Generator().manual_seed(seed)
        self._eval = {"nodes": draw(self.pool, eval_size, g)}

    def sample(self, batch_size: int, gen: torch.Generator, graph=None) -> Batch:
        return {"nodes": draw(self.pool, batch_size, gen)}

    def corrupt(self, x: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
        masked = x[self.node_type].clone()
        masked[batch["nodes"]] = self.mask.to(masked.dtype)
        return {**x, self.node_type: masked}

    def _cos(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        nodes = batch["nodes"]
        return F.cosine_similarity(self.head(emb[self.node_type][nodes]), x[self.node_type][nodes], dim=-1)

    def losses(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        return (1.0 - self._cos(emb, batch, x)) / TEMPERATURE

    def evaluate(self, emb: Embeddings, split: str, x: dict[str, Tensor] | None = None,
                 batch: Batch | None = None) -> dict[str, float]:
        assert x is not None
        return {"cosine": float(self._cos(emb, batch if batch is not None else self._eval, x).mean())}


class GenerativeEdges(Task):
    """``kind: gpt_edge`` (module docstring)."""

    primary_metric = "mrr"

    def __init__(self, name: str, data: GraphData, relation: str, hidden: int, negatives: int, eval_size: int,
                 seed: int, lookup: EdgeLookup, view: GraphView) -> None:
        super().__init__()
        self.name = name
        self.relation = parse_relation(data, relation)
        self.src_type, _, self.dst_type = self.relation
        edges = data.edge_index[self.relation]
        pool = data.pretrain_nodes.get(self.dst_type)
        if pool is not None:
            member = torch.zeros(data.num_nodes(self.dst_type), dtype=torch.bool, device=edges.device)
            member[pool] = True
            edges = edges[:, member[edges[1]]]
        if edges.shape[1] == 0:
            raise AuxrunError(f"auxiliary task {name!r}: relation {relation!r} has no edges to generate"
                              + (" among the dataset's pre-training nodes" if pool is not None else ""))
        self.edges = edges
        self.num_src = data.num_nodes(self.src_type)
        self.negatives = int(negatives)
        self.lookup = lookup
        self.offsets = (view.offsets[self.src_type], view.offsets[self.dst_type])
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.Dropout(DROPOUT))
        self._eval = self.sample(eval_size, torch.Generator().manual_seed(seed))

    def sample(self, batch_size: int, gen: torch.Generator, graph=None) -> Batch:
        device = self.edges.device
        pairs = self.edges[:, torch.randint(self.edges.shape[1], (batch_size,), generator=gen).to(device)]
        negatives = torch.randint(self.num_src, (self.negatives,), generator=gen).to(device)
        u, v = pairs[0] + self.offsets[0], pairs[1] + self.offsets[1]
        cand = negatives + self.offsets[0]
        joined = self.lookup.joined(v[:, None].expand(-1, len(cand)), cand[None, :].expand(len(v), -1))
        return {"pairs": pairs, "negatives": negatives, "joined": joined, "hide": self.lookup.between(u, v)}

    def node_refs(self) -> dict[str, tuple[str, ...]]:
        return {"pairs": (self.src_type, self.dst_type), "negatives": (self.src_type,)}

    def hidden_edges(self, batch: Batch) -> Tensor:
        return batch["hide"]

    def scores(self, emb: Embeddings, batch: Batch) -> Tensor:
        """``(B, 1 + M)``: each query's score of its true source, then of every candidate
        (``-inf`` where a candidate is joined to the query)."""
        q = F.normalize(self.head(emb[self.dst_type][batch["pairs"][1]]), dim=-1)
        src = emb[self.src_type]
        pos = (q * F.normalize(src[batch["pairs"][0]], dim=-1)).sum(-1, keepdim=True)
        neg = (q @ F.normalize(src[batch["negatives"]], dim=-1).T).masked_fill(batch["joined"], float("-inf"))
        return torch.cat([pos, neg], 1) / TEMPERATURE

    def losses(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        return -F.log_softmax(self.scores(emb, batch), -1)[:, 0]

    def eval_batch(self) -> Batch:
        return self._eval

    def evaluate(self, emb: Embeddings, split: str, x: dict[str, Tensor] | None = None,
                 batch: Batch | None = None) -> dict[str, float]:
        batch = batch if batch is not None else self._eval
        scores = self.scores(emb, batch)
        relevant = torch.zeros_like(scores, dtype=torch.bool)
        relevant[:, 0] = True
        rr, ndcg = ranking_metrics_chunked(scores, relevant, torch.isinf(scores), k=scores.shape[1])
        return {"mrr": float(rr.mean()), "ndcg": float(ndcg.mean())}
