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
from ..data.cache import cached, fingerprint
from ..data.sampling import pair_keys, sample_non_edges
from ..errors import AuxrunError
from ..models.heads import MLPHead, PairHead
from .base import Batch, Embeddings, Task, TargetTask
from .metrics import ranking_metrics, roc_auc


class PairTask(Task):
    """Shared machinery of every pair task; subclasses provide ``sample``."""

    primary_metric = "auc"

    def __init__(self, name: str, src_type: str, dst_type: str, hidden: int, head_dim: int | MLPHead | None) -> None:
        super().__init__()
        self.name = name
        self.src_type, self.dst_type = src_type, dst_type
        self.head = PairHead(hidden, head_dim)
        self._eval: Batch | None = None

    def scores(self, emb: Embeddings, pairs: Tensor) -> Tensor:
        return self.head(emb[self.src_type][pairs[0]], emb[self.dst_type][pairs[1]])

    def node_refs(self) -> dict[str, tuple[str, ...]]:
        return {"pairs": (self.src_type, self.dst_type)}

    def losses(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        return F.binary_cross_entropy_with_logits(self.scores(emb, batch["pairs"]), batch["labels"], reduction="none")

    def eval_batch(self) -> Batch:
        return self._eval_pairs("val")

    def evaluate(self, emb: Embeddings, split: str, x: dict[str, Tensor] | None = None,
                 batch: Batch | None = None) -> dict[str, float]:
        batch = batch if batch is not None else self._eval_pairs(split)
        return {"auc": roc_auc(self.scores(emb, batch["pairs"]), batch["labels"])}

    def _eval_pairs(self, split: str) -> Batch:
        if self._eval is None:
            self._eval = self.sample(self.eval_size, torch.Generator().manual_seed(self.eval_seed))
        return self._eval

    eval_size: int = 2000
    eval_seed: int = 12345


def labelled_pairs(pos: Tensor, neg: Tensor) -> Batch:
    """Positive then negative (2, n) pairs as one batch with 1 / 0 labels."""
    labels = torch.cat([torch.ones(pos.shape[1]), torch.zeros(neg.shape[1])]).to(pos.device)
    return {"pairs": torch.cat([pos, neg], 1), "labels": labels}


class _PositivesVsNegatives(PairTask):
    """Half the batch from a pool of positive pairs, half from sampled pairs outside it."""

    def __init__(self, name: str, src_type: str, dst_type: str, positives: Tensor, num_src: int,
                 num_dst: int, known: Tensor, hidden: int, head_dim: int | MLPHead | None) -> None:
        super().__init__(name, src_type, dst_type, hidden, head_dim)
        if positives.shape[1] == 0:
            raise AuxrunError(f"auxiliary task {name!r} has no positive pairs on this graph")
        self.positives = positives
        self.num_src, self.num_dst = num_src, num_dst
        self.known = known  # sorted keys of pairs that must not be sampled as negatives

    def sample(self, batch_size: int, gen: torch.Generator, graph=None) -> Batch:
        k = max(1, batch_size // 2)
        pos = self.positives[:, torch.randint(self.positives.shape[1], (k,), generator=gen).to(self.positives.device)]
        neg = sample_non_edges(k, self.num_src, self.num_dst, self.known, gen, device=self.positives.device)
        return labelled_pairs(pos, neg)


class PlantedPairs(PairTask):
    """Auxiliary task on labelled pairs planted by the dataset (``relation`` names them)."""

    def __init__(self, name: str, data: GraphData, relation: str, hidden: int, head_dim: int | MLPHead | None) -> None:
        if relation not in data.pair_labels:
            avail = ", ".join(data.pair_labels) or "none"
            raise AuxrunError(
                f"auxiliary task {name!r}: dataset {data.name!r} has no planted relation {relation!r} "
                f"(available: {avail})"
            )
        p = data.pair_labels[relation]
        super().__init__(name, p.src_type, p.dst_type, hidden, head_dim)
        self.pairs, self.labels = p.pairs, p.labels

    def sample(self, batch_size: int, gen: torch.Generator, graph=None) -> Batch:
        idx = torch.randint(self.pairs.shape[1], (batch_size,), generator=gen).to(self.pairs.device)
        return {"pairs": self.pairs[:, idx], "labels": self.labels[idx]}


def parse_relation(data: GraphData, text: str) -> EdgeType:
    """``user-rates-item`` -> the relation tuple, with a clear error when it does not exist."""
    parts = tuple(text.split("-"))
    if parts in data.edge_index or parts in data.heldout:
        return parts  # type: ignore[return-value]
    known = sorted({"-".join(e) for e in (*data.edge_index, *data.heldout) if not e[1].startswith("rev_")})
    raise AuxrunError(f"unknown relation {text!r} in dataset {data.name!r}; available: {', '.join(known)}")


def resolve_relation(data: GraphData, token: str) -> EdgeType | None:
    """The relation a meta-path token names, by the first rule that names any: the relation's
    own name; an alias (``director`` -> ``film.film.directed_by``); a suffix after a dot
    (``genre`` -> ``film.film.genre``); a run of the name's words, words being what dots and
    underscores separate (``appearing.in.film`` ->
    ``film.person_or_entity_appearing_in_film.film``). ``None`` if none names one; an error
    naming the candidates if a rule names several."""
    rels = list(dict.fromkeys(e for e in (*data.edge_index, *data.heldout) if not e[1].startswith("rev_")))
    alias = data.aliases.get(token)
    wanted = _words(token)
    rules = (lambda name: name == token, lambda name: alias is not None and name == alias,
             lambda name: name.endswith("." + token), lambda name: _holds(_words(name), wanted))
    for rule in rules:
        hits = [e for e in rels if rule(e[1])]
        if len(hits) > 1:
            raise AuxrunError(f"meta-path token {token!r} matches several relations: "
                              f"{', '.join('-'.join(h) for h in hits)}; use a longer name or a "
                              "dataset.relation_aliases entry")
        if hits:
            return hits[0]
    return None


def _words(name: str) -> list[str]:
    return [w for w in name.replace("_", ".").split(".") if w]


def _holds(words: list[str], run: list[str]) -> bool:
    """``run`` occurs in ``words`` as consecutive words."""
    return bool(run) and any(words[i:i + len(run)] == run for i in range(len(words) - len(run) + 1))


def metapath_steps(data: GraphData, path: str) -> list[tuple[str, str, Tensor]]:
    """The adjacency of every hop of ``path`` as ``(from_type, to_type, edges (2, E))``.

    Tokens are node types or relation names (see :func:`resolve_relation`). Between two node
    types a hop follows every message-passing relation from the first to the second; into a
    relation token it follows that relation (from its source type to its destination type),
    and out of it back along the relation's reverse, so ``user-item-genre-item`` is
    user -> item -> (genre entity) -> item.
    """
    tokens = path.split("-")
    if len(tokens) < 2:
        raise AuxrunError(f"meta-path {path!r}: give at least two tokens joined by '-'")
    kinds: list[tuple[str, EdgeType | None]] = []
    for tok in tokens:
        if tok in data.x:
            kinds.append((tok, None))
            continue
        rel = resolve_relation(data, tok)
        if rel is None:
            names = sorted(set(data.aliases) | {e[1] for e in data.edge_index if not e[1].startswith("rev_")})
            raise AuxrunError(f"meta-path {path!r}: {tok!r} is neither a node type ({', '.join(data.node_types)}) "
                              f"nor a relation of dataset {data.name!r} (relations: {', '.join(names)})")
        kinds.append((rel[2], rel))
    steps = []
    for (a_type, a_rel), (b_type, b_rel) in zip(kinds, kinds[1:]):
        if a_rel is not None and b_rel is not None:
            raise AuxrunError(f"meta-path {path!r}: two relations in a row ({a_rel[1]}, {b_rel[1]})")
        if b_rel is not None:
            if b_rel[0] != a_type:
                raise AuxrunError(f"meta-path {path!r}: relation {b_rel[1]} starts at {b_rel[0]!r}, not {a_type!r}")
            steps.append((a_type, b_type, _edges(data, b_rel)))
        elif a_rel is not None:
            if a_rel[0] != b_type:
                raise AuxrunError(f"meta-path {path!r}: relation {a_rel[1]} leads back to {a_rel[0]!r}, not {b_type!r}")
            steps.append((a_type, b_type, _edges(data, a_rel).flip(0)))
        else:
            rels = data.relations_between(a_type, b_type)
            if not rels:
                raise AuxrunError(f"meta-path {path!r}: no relation from {a_type!r} to {b_type!r} "
                                  f"in dataset {data.name!r}")
            steps.append((a_type, b_type, torch.cat([data.edge_index[r] for r in rels], 1)))
    return steps


def _edges(data: GraphData, rel: EdgeType) -> Tensor:
    return data.edge_index[rel] if rel in data.edge_index else data.heldout[rel]


def metapath_counts(data: GraphData, path: str) -> tuple[Tensor, Tensor, str, str]:
    """Pairs ``(u, v)`` joined by at least one instance of ``path`` and the number of
    instances, the nonzeros of ``A_1 A_2 ... A_k`` with ``A_j`` the binary adjacency of hop
    ``j`` (:func:`metapath_steps`). Self-pairs are dropped. Returns (pairs, counts, source
    type, destination type)."""
    prod: Tensor | None = None
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")  # torch flags sparse COO as beta
    steps = metapath_steps(data, path)
    for a, b, ei in steps:
        ei = ei.cpu()
        adj = torch.sparse_coo_tensor(ei, torch.ones(ei.shape[1]), (data.num_nodes(a), data.num_nodes(b))).coalesce()
        adj = torch.sparse_coo_tensor(adj.indices(), torch.ones(adj.indices().shape[1]), adj.shape).coalesce()
        prod = adj if prod is None else torch.sparse.mm(prod, adj).coalesce()
    assert prod is not None
    src, dst = steps[0][0], steps[-1][1]
    pairs, counts = prod.indices(), prod.values()
    if src == dst:
        keep = pairs[0] != pairs[1]
        pairs, counts = pairs[:, keep], counts[keep]
    return pairs, counts, src, dst


def density_threshold(counts: Tensor, total: int, max_density: float) -> int:
    """The smallest instance count ``m`` such that at most ``max_density * total`` pairs have
    ``count >= m`` (1 when the meta-path is that sparse already), but never above the largest
    count: when the most-connected pairs alone exceed the budget, they are the positives."""
    k = int(max_density * total)
    if counts.numel() <= k:
        return 1
    ranked = torch.sort(counts, descending=True).values
    return int(min(ranked[k] + 1, ranked[0]))


def metapath_positives(data: GraphData, path: str, max_density: float = 1.0, min_count: int = 1) -> tuple[Tensor, int]:
    """Every positive pair of ``path`` and the instance threshold used.

    SELAR calls a pair positive when one instance of the meta-path joins it. On a dense graph
    nearly every pair is (93% of MovieLens's user-item pairs are joined by a
    user-item-genre-item instance), which leaves nothing to learn, so a pair is positive when
    at least ``m`` instances join it, ``m = max(min_count, density_threshold(...))``: the
    smallest count at which at most ``max_density`` of all (source, destination) pairs are
    positive. ``m = 1`` on sparse meta-paths, as in SELAR.
    """
    pairs, counts, src, dst = metapath_counts(data, path)
    total = data.num_nodes(src) * data.num_nodes(dst) - (data.num_nodes(src) if src == dst else 0)
    m = max(int(min_count), density_threshold(counts, total, float(max_density)))
    return pairs[:, counts >= m], m


def metapath_pairs(data: GraphData, path: str, max_pairs: int, gen: torch.Generator,
                   min_count: int = 1) -> Tensor:
    """Positive pairs of ``path`` (at least ``min_count`` instances), at most ``max_pairs`` of
    them (a seeded random subset)."""
    pairs, _ = metapath_positives(data, path, 1.0, min_count)
    return _subsample(pairs, max_pairs, gen)


def _subsample(pairs: Tensor, max_pairs: int, gen: torch.Generator) -> Tensor:
    if pairs.shape[1] > max_pairs:
        pairs = pairs[:, torch.randperm(pairs.shape[1], generator=gen)[:max_pairs]]
    return pairs


class MetaPathPrediction(_PositivesVsNegatives):
    """SELAR's meta-path prediction: is ``(u, v)`` joined by (at least ``m``) instances of the
    meta-path in the training graph? Positives from :func:`metapath_positives` (a pool of at
    most ``max_pairs``), negatives sampled among all other pairs. The labels are computed
    once per graph and kept in the data's cache."""

    def __init__(self, name: str, data: GraphData, path: str, hidden: int, head_dim: int | MLPHead | None,
                 max_pairs: int, seed: int, max_density: float = 1.0, min_count: int = 1) -> None:
        def build() -> tuple[Tensor, int]:
            return metapath_positives(data, path, max_density, min_count)

        if data.fingerprint and data.cache_dir:
            key = fingerprint(data.fingerprint, path, float(max_density), int(min_count))
            pos, self.min_count = cached(data.cache_dir, "metapaths", key, build)
        else:
            pos, self.min_count = build()
        steps = metapath_steps(data, path)
        src, dst = steps[0][0], steps[-1][1]
        n_src, n_dst = data.num_nodes(src), data.num_nodes(dst)
        known = pair_keys(pos, n_dst).sort().values  # all positives, not only the pool
        self.num_positive = int(pos.shape[1])
        pool = _subsample(pos, max_pairs, torch.Generator().manual_seed(seed))
        super().__init__(name, src, dst, pool.to(data.x[src].device), n_src, n_dst, known, hidden, head_dim)


class EdgeGeneration(_PositivesVsNegatives):
    """Reconstruct the edges of ``relation`` held out of the message-passing graph."""

    def __init__(self, name: str, data: GraphData, relation: str, hidden: int, head_dim: int | MLPHead | None) -> None:
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
    """Target link prediction on one relation.

    Training examples: with fixed training negatives in the data (KGNN-LS's labelled pairs),
    the labelled training pairs, positives and negatives, in a fixed random order; otherwise
    the positive edges, each batch completed by as many sampled non-edges with the same
    sources. Metrics on val/test: ``auc`` over the split's positive and negative pairs, and
    ranking metrics over *all* destinations for each source with a positive in the split
    (positives of the other splits filtered out): ``mrr`` = mean of ``1 / rank`` of the best
    ranked positive, ``ndcg`` = NDCG@``rank_k`` with binary relevance, both the exact
    expectation under uniformly random tie-breaking (see :func:`~.metrics.ranking_metrics`).
    """

    rank_k: int = 10
    rank_chunk: int = 1024

    def __init__(self, data: GraphData, hidden: int, head_dim: int | MLPHead | None) -> None:
        spec = data.target
        assert spec.edge_type is not None
        s, _, d = spec.edge_type
        super().__init__("target", s, d, hidden, head_dim)
        self.split, self.negatives = spec.split, spec.negatives
        self.num_src, self.num_dst = data.num_nodes(s), data.num_nodes(d)
        # negatives avoid training edges only: excluding val/test edges would leak them
        self.known = pair_keys(spec.split["train"], self.num_dst).sort().values
        pos, neg = spec.split["train"], spec.negatives.get("train")
        self.fixed_negatives = neg is not None and neg.shape[1] > 0
        if self.fixed_negatives:
            assert neg is not None
            labels = torch.cat([torch.ones(pos.shape[1]), torch.zeros(neg.shape[1])]).to(pos.device)
            order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0)).to(pos.device)
            self.train_pairs, self.train_labels = torch.cat([pos, neg], 1)[:, order], labels[order]
        else:
            self.train_pairs, self.train_labels = pos, torch.ones(pos.shape[1], device=pos.device)

    def num_train(self) -> int:
        return int(self.train_pairs.shape[1])

    def batch(self, idx: Tensor, gen: torch.Generator) -> Batch:
        """The labelled training pairs at ``idx``; or the positive edges at ``idx`` plus as
        many sampled non-edges with the same sources."""
        idx = idx.to(self.train_pairs.device)
        if self.fixed_negatives:
            return {"pairs": self.train_pairs[:, idx], "labels": self.train_labels[idx]}
        pos = self.train_pairs[:, idx]
        neg = sample_non_edges(pos.shape[1], self.num_src, self.num_dst, self.known, gen, src=pos[0])
        return labelled_pairs(pos, neg)

    def strata(self) -> Tensor | None:
        """Positive / negative labelled pairs; positive edges only otherwise (no classes)."""
        return self.train_labels.long().cpu() if self.fixed_negatives else None

    def _eval_pairs(self, split: str) -> Batch:
        return labelled_pairs(self.split[split], self.negatives[split])

    def eval_nodes(self, split: str) -> dict[str, Tensor]:
        """The split's sources (its pairs and the ranked ones) and every destination (ranking)."""
        pairs = self._eval_pairs(split)["pairs"]
        dst = torch.arange(self.num_dst, device=pairs.device)
        if self.src_type == self.dst_type:
            return {self.dst_type: dst}
        return {self.src_type: torch.unique(pairs[0]), self.dst_type: dst}

    def evaluate(self, emb: Embeddings, split: str, x: dict[str, Tensor] | None = None,
                 batch: Batch | None = None) -> dict[str, float]:
        batch = self._eval_pairs(split)
        out = {"auc": roc_auc(self.scores(emb, batch["pairs"]), batch["labels"])}
        out.update(self.ranking(emb, split))
        out["loss"] = float(self.losses(emb, batch, x).mean())
        return out

    def ranking(self, emb: Embeddings, split: str) -> dict[str, float]:
        """``mrr`` and ``ndcg`` (at ``rank_k``) over all destinations, see the class docstring."""
        relevant = self.split[split]
        others = [p for s, p in self.split.items() if s != split]
        exclude = torch.cat(others, 1) if others else relevant[:, :0]
        sources = torch.unique(relevant[0])
        if len(sources) == 0:
            return {"mrr": float("nan"), "ndcg": float("nan")}
        h_src, h_dst = emb[self.src_type], emb[self.dst_type]
        totals = torch.zeros(2, dtype=torch.double)
        for chunk in sources.split(self.rank_chunk):
            row = torch.full((self.num_src,), -1, dtype=torch.long, device=chunk.device)
            row[chunk] = torch.arange(len(chunk), device=chunk.device)
            scores = self.head.score_matrix(h_src[chunk], h_dst)
            totals += ranking_metrics(scores, _mask(relevant, row, scores.shape),
                                      _mask(exclude, row, scores.shape), self.rank_k).sum(1).cpu()
        mrr, ndcg = (totals / len(sources)).tolist()
        return {"mrr": mrr, "ndcg": ndcg}


def _mask(pairs: Tensor, row: Tensor, shape: torch.Size) -> Tensor:
    """Boolean (rows, destinations) matrix of the ``pairs`` whose source has a row."""
    r = row[pairs[0]]
    keep = r >= 0
    out = torch.zeros(shape, dtype=torch.bool, device=pairs.device)
    out[r[keep], pairs[1][keep]] = True
    return out
