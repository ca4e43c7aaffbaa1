"""Pair tasks: score node pairs with a :class:`PairHead` and a per-pair logistic loss.

``l_j = BCE(sigma(s(u_j, v_j)), y_j)`` with ``s`` the head's dot-product score. The tasks
differ only in where their labelled pairs come from:

* :class:`LinkPrediction` (target): edges of one relation vs. sampled non-edges.
* :class:`PlantedPairs` (auxiliary): labelled pairs a generator planted (``synthetic``).
* :class:`MetaPathPrediction` (auxiliary, SELAR): is ``u`` connected to ``v`` by an instance of
  a meta-path such as ``user-item-tag-item``? Positives from sparse adjacency products.
* :class:`EdgeGeneration` (auxiliary): edges held out of the message-passing graph vs.
  sampled non-edges.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.graph import EdgeType, GraphData
from ..data.sampling import pair_keys, sample_non_edges
from ..errors import AuxrunError
from ..models.heads import PairHead
from .base import Batch, Embeddings, Task, TargetTask
from .metrics import roc_auc


class PairTask(Task):
    """Shared machinery of every pair task; subclasses provide ``sample``."""

    primary_metric = "auc"

    def __init__(self, name: str, src_type: str, dst_type: str, hidden: int, head_dim: int | None) -> None:
        super().__init__()
        self.name = name
        self.src_type, self.dst_type = src_type, dst_type
        self.head = PairHead(hidden, head_dim)
        self._eval: Batch | None = None

    def scores(self, emb: Embeddings, pairs: Tensor) -> Tensor:
        return self.head(emb[self.src_type][pairs[0]], emb[self.dst_type][pairs[1]])

    def losses(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        return F.binary_cross_entropy_with_logits(self.scores(emb, batch["pairs"]), batch["labels"], reduction="none")

    def evaluate(self, emb: Embeddings, split: str, x: dict[str, Tensor]) -> dict[str, float]:
        batch = self._eval_pairs(split)
        return {"auc": roc_auc(self.scores(emb, batch["pairs"]), batch["labels"])}

    def _eval_pairs(self, split: str) -> Batch:
        if self._eval is None:
            self._eval = self.sample(self.eval_size, torch.Generator().manual_seed(self.eval_seed))
        return self._eval

    eval_size: int = 2000
    eval_seed: int = 12345


def _labelled(pos: Tensor, neg: Tensor) -> Batch:
    labels = torch.cat([torch.ones(pos.shape[1]), torch.zeros(neg.shape[1])]).to(pos.device)
    return {"pairs": torch.cat([pos, neg], 1), "labels": labels}


class _PositivesVsNegatives(PairTask):
    """Half the batch from a pool of positive pairs, half from sampled pairs outside it."""

    def __init__(self, name: str, src_type: str, dst_type: str, positives: Tensor, num_src: int,
                 num_dst: int, known: Tensor, hidden: int, head_dim: int | None) -> None:
        super().__init__(name, src_type, dst_type, hidden, head_dim)
        if positives.shape[1] == 0:
            raise AuxrunError(f"auxiliary task {name!r} has no positive pairs on this graph")
        self.positives = positives
        self.num_src, self.num_dst = num_src, num_dst
        self.known = known  # sorted keys of pairs that must not be sampled as negatives

    def sample(self, batch_size: int, gen: torch.Generator) -> Batch:
        k = max(1, batch_size // 2)
        pos = self.positives[:, torch.randint(self.positives.shape[1], (k,), generator=gen).to(self.positives.device)]
        neg = sample_non_edges(k, self.num_src, self.num_dst, self.known, gen, device=self.positives.device)
        return _labelled(pos, neg)


class PlantedPairs(PairTask):
    """Auxiliary task on labelled pairs planted by the dataset (``relation`` names them)."""

    def __init__(self, name: str, data: GraphData, relation: str, hidden: int, head_dim: int | None) -> None:
        if relation not in data.pair_labels:
            avail = ", ".join(data.pair_labels) or "none"
            raise AuxrunError(
                f"auxiliary task {name!r}: dataset {data.name!r} has no planted relation {relation!r} "
                f"(available: {avail})"
            )
        p = data.pair_labels[relation]
        super().__init__(name, p.src_type, p.dst_type, hidden, head_dim)
        self.pairs, self.labels = p.pairs, p.labels

    def sample(self, batch_size: int, gen: torch.Generator) -> Batch:
        idx = torch.randint(self.pairs.shape[1], (batch_size,), generator=gen).to(self.pairs.device)
        return {"pairs": self.pairs[:, idx], "labels": self.labels[idx]}


def parse_relation(data: GraphData, text: str) -> EdgeType:
    """``user-rates-item`` -> the relation tuple, with a clear error when it does not exist."""
    parts = tuple(text.split("-"))
    if parts in data.edge_index or parts in data.heldout:
        return parts  # type: ignore[return-value]
    known = sorted({"-".join(e) for e in (*data.edge_index, *data.heldout) if not e[1].startswith("rev_")})
    raise AuxrunError(f"unknown relation {text!r} in dataset {data.name!r}; available: {', '.join(known)}")


def metapath_pairs(data: GraphData, path: str, max_pairs: int, gen: torch.Generator) -> Tensor:
    """Pairs ``(u, v)`` joined by at least one instance of ``path`` (node types separated by
    ``-``), as the nonzeros of ``A_{t0 t1} A_{t1 t2} ... A_{t(k-1) tk}`` where ``A_{ab}`` is the
    binary adjacency of all message-passing relations from type ``a`` to type ``b``.
    Self-pairs are dropped; at most ``max_pairs`` are kept (a seeded random subset)."""
    types = path.split("-")
    if len(types) < 2 or any(t not in data.x for t in types):
        raise AuxrunError(
            f"meta-path {path!r}: use node types joined by '-' (types here: {', '.join(data.node_types)})"
        )
    prod: Tensor | None = None
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")  # torch flags sparse COO as beta
    for a, b in zip(types, types[1:]):
        rels = data.relations_between(a, b)
        if not rels:
            raise AuxrunError(f"meta-path {path!r}: no relation from {a!r} to {b!r} in dataset {data.name!r}")
        ei = torch.cat([data.edge_index[r] for r in rels], 1).cpu()
        adj = torch.sparse_coo_tensor(ei, torch.ones(ei.shape[1]), (data.num_nodes(a), data.num_nodes(b))).coalesce()
        adj = torch.sparse_coo_tensor(adj.indices(), torch.ones(adj.indices().shape[1]), adj.shape).coalesce()
        prod = adj if prod is None else torch.sparse.mm(prod, adj).coalesce()
    assert prod is not None
    pairs = prod.indices()
    if types[0] == types[-1]:
        pairs = pairs[:, pairs[0] != pairs[1]]
    if pairs.shape[1] > max_pairs:
        pairs = pairs[:, torch.randperm(pairs.shape[1], generator=gen)[:max_pairs]]
    return pairs


class MetaPathPrediction(_PositivesVsNegatives):
    """SELAR's meta-path prediction: positives joined by the meta-path, negatives not."""

    def __init__(self, name: str, data: GraphData, path: str, hidden: int, head_dim: int | None,
                 max_pairs: int, seed: int) -> None:
        types = path.split("-")
        pos = metapath_pairs(data, path, max_pairs, torch.Generator().manual_seed(seed))
        n_src, n_dst = data.num_nodes(types[0]), data.num_nodes(types[-1])
        known = pair_keys(pos, n_dst).sort().values
        super().__init__(name, types[0], types[-1], pos.to(data.x[types[0]].device), n_src, n_dst, known,
                         hidden, head_dim)


class EdgeGeneration(_PositivesVsNegatives):
    """Reconstruct the edges of ``relation`` held out of the message-passing graph."""

    def __init__(self, name: str, data: GraphData, relation: str, hidden: int, head_dim: int | None) -> None:
        rel = parse_relation(data, relation)
        if rel not in data.heldout or data.heldout[rel].shape[1] == 0:
            raise AuxrunError(
                f"auxiliary task {name!r}: no held-out edges for {relation!r} (set dataset.edge_holdout > 0)"
            )
        s, _, d = rel
        pos = data.heldout[rel]
        all_edges = torch.cat([pos, data.edge_index.get(rel, pos[:, :0])], 1)
        known = pair_keys(all_edges, data.num_nodes(d)).sort().values
        super().__init__(name, s, d, pos, data.num_nodes(s), data.num_nodes(d), known, hidden, head_dim)


class LinkPrediction(PairTask, TargetTask):
    """Target link prediction on one relation; each batch pairs positives with as many
    sampled non-edges (destination corrupted). Metric: AUC on fixed val/test negatives."""

    def __init__(self, data: GraphData, hidden: int, head_dim: int | None) -> None:
        spec = data.target
        assert spec.edge_type is not None
        s, _, d = spec.edge_type
        super().__init__("target", s, d, hidden, head_dim)
        self.split, self.negatives = spec.split, spec.negatives
        self.num_src, self.num_dst = data.num_nodes(s), data.num_nodes(d)
        # negatives avoid training edges only: excluding val/test edges would leak them
        self.known = pair_keys(spec.split["train"], self.num_dst).sort().values

    def num_train(self) -> int:
        return int(self.split["train"].shape[1])

    def batch(self, idx: Tensor, gen: torch.Generator) -> Batch:
        """Training edges at ``idx`` plus as many non-edges with the same sources."""
        pos = self.split["train"][:, idx.to(self.split["train"].device)]
        neg = sample_non_edges(pos.shape[1], self.num_src, self.num_dst, self.known, gen, src=pos[0])
        return _labelled(pos, neg)

    def _eval_pairs(self, split: str) -> Batch:
        return _labelled(self.split[split], self.negatives[split])

    def evaluate(self, emb: Embeddings, split: str, x: dict[str, Tensor]) -> dict[str, float]:
        batch = self._eval_pairs(split)
        out = {"auc": roc_auc(self.scores(emb, batch["pairs"]), batch["labels"])}
        out["loss"] = float(self.losses(emb, batch, x).mean())
        return out
