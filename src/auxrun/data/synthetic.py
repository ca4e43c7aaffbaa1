"""``dataset=synthetic``: a seeded heterogeneous graph with planted task relatedness.

Graph
-----
Three node types, ``user``, ``item``, ``tag``, each with a latent class in ``{0..C-1}``.
Features are ``x = s * mu_class + eps`` with ``eps ~ N(0, I)`` and class centres ``mu`` of unit
norm, so ``feature_signal`` ``s`` sets how much each node's own features reveal its class.
Relations ``user -rates-> item`` (``user_degree`` per user) and ``item -tagged-> tag``
(``item_tags`` per item) pick an endpoint of the same class with probability ``homophily``
and a uniformly random one otherwise; every relation gets its reverse for message passing.

Target
------
``target=node``: classify users into their latent class; only ``train_frac`` of the users
are labelled, so the encoder must learn most of what it knows from elsewhere.
``target=link``: predict ``user -rates-> item`` edges (``link_split`` train/val fractions,
val/test edges removed from the message-passing graph, fixed sampled negatives).

Planted auxiliary relations (labelled user pairs, ``planted_pairs_per_node`` per user, half
of them same-class pairs and half cross-class pairs; the ``aux`` sets that use them score a
pair by the plain dot product of the two users' embeddings, ``pair_head: dot``):

- ``helpful``: label 1 iff the two users share the latent class. Fitting it pulls same-class
  users together and pushes classes apart *on every user*, labelled or not: exactly the
  structure the target classifier needs.
- ``noise``: the same kind of pairs with coin-flip labels. No consistent direction for the
  encoder; its gradient is noise with respect to the target.
- ``harmful``: label 1 iff the two users are in *different* classes. With a dot-product
  scorer (a positive semi-definite form of the embeddings) the only way to fit it is to
  make users of different classes look alike and users of one class look different, which
  erases the class structure the target needs.

The graph and the planted labels depend on ``graph_seed`` only; the run ``seed`` draws the
target split, so seeds vary the labelled users over one fixed graph.
"""

from __future__ import annotations


import torch
from omegaconf import DictConfig
from torch import Tensor

from .registry import loader
from .graph import GraphData, PairLabels, TargetSpec, add_reverse, random_split
from .sampling import pair_keys, sample_non_edges


def _features(classes: Tensor, num_classes: int, dim: int, signal: float, g: torch.Generator) -> Tensor:
    centres = torch.randn(num_classes, dim, generator=g)
    centres = centres / centres.norm(dim=1, keepdim=True)
    return signal * centres[classes] + torch.randn(len(classes), dim, generator=g)


def _homophilous_edges(
    src_class: Tensor, dst_class: Tensor, per_src: int, homophily: float, g: torch.Generator
) -> Tensor:
    """``per_src`` edges per source node; each goes to a random node of the source's class with
    probability ``homophily`` and to a uniformly random node otherwise (duplicates dropped)."""
    n_src, n_dst = len(src_class), len(dst_class)
    src = torch.arange(n_src).repeat_interleave(per_src)
    order = torch.argsort(dst_class, stable=True)
    counts = torch.bincount(dst_class, minlength=int(src_class.max()) + 1)
    starts = torch.cumsum(counts, 0) - counts
    cls = src_class[src]
    pick = (starts[cls] + (torch.rand(len(src), generator=g) * counts[cls]).long()).clamp(max=n_dst - 1)
    rand_idx = torch.randint(n_dst, (len(src),), generator=g)
    same_idx = torch.where(counts[cls] > 0, order[pick], rand_idx)  # a class with no destination: any node
    dst = torch.where(torch.rand(len(src), generator=g) < homophily, same_idx, rand_idx)
    keys = torch.unique(src * n_dst + dst)
    return torch.stack([keys // n_dst, keys % n_dst])


def _planted_pairs(classes: Tensor, num_classes: int, num_pairs: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Half same-class, half cross-class user pairs; returns (pairs (2, P), same-class 0/1)."""
    n = len(classes)
    order = torch.argsort(classes, stable=True)
    counts = torch.bincount(classes, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    u = torch.randint(n, (num_pairs,), generator=g)
    same = torch.arange(num_pairs) < num_pairs // 2
    shift = torch.randint(1, num_classes, (num_pairs,), generator=g)
    cls = torch.where(same, classes[u], (classes[u] + shift) % num_classes)
    v = order[starts[cls] + (torch.rand(num_pairs, generator=g) * counts[cls]).long()]
    return torch.stack([u, v]), (classes[u] == classes[v]).float()


def _holdout(ei: Tensor, frac: float, g: torch.Generator) -> tuple[Tensor, Tensor]:
    perm = torch.randperm(ei.shape[1], generator=g)
    k = int(round(frac * ei.shape[1]))
    return ei[:, perm[k:]], ei[:, perm[:k]]


@loader("synthetic")
def load_synthetic(cfg: DictConfig, seed: int, cache_dir: str | None = None) -> GraphData:
    """Build the planted graph described in the module docstring (fast: never cached)."""
    g = torch.Generator().manual_seed(int(cfg.graph_seed))
    C = int(cfg.num_classes)
    n = {"user": int(cfg.num_users), "item": int(cfg.num_items), "tag": int(cfg.num_tags)}
    classes = {t: torch.randint(C, (k,), generator=g) for t, k in n.items()}
    classes["tag"] = torch.arange(n["tag"]) % C  # every class owns some tags
    x = {t: _features(classes[t], C, int(cfg.feat_dim), float(cfg.feature_signal), g) for t in n}
    base = {
        ("user", "rates", "item"): _homophilous_edges(
            classes["user"], classes["item"], int(cfg.user_degree), float(cfg.homophily), g
        ),
        ("item", "tagged", "tag"): _homophilous_edges(
            classes["item"], classes["tag"], int(cfg.item_tags), float(cfg.homophily), g
        ),
    }
    num_pairs = int(cfg.planted_pairs_per_node) * n["user"]
    pair_labels = {}
    for kind in ("helpful", "noise", "harmful"):
        pairs, same = _planted_pairs(classes["user"], C, num_pairs, g)
        labels = {"helpful": same, "harmful": 1.0 - same}.get(kind)
        if labels is None:
            labels = (torch.rand(num_pairs, generator=g) < 0.5).float()
        pair_labels[kind] = PairLabels("user", "user", pairs, labels)

    split_gen = torch.Generator().manual_seed(int(seed))
    heldout: dict = {}
    target_rel = ("user", "rates", "item")
    target: TargetSpec
    if cfg.target == "node":
        target = TargetSpec(
            kind="node_cls",
            node_type="user",
            labels=classes["user"],
            num_classes=C,
            split=random_split(n["user"], (float(cfg.train_frac), float(cfg.val_frac)), split_gen),
        )
    elif cfg.target == "link":
        ei = base[target_rel]
        parts = random_split(ei.shape[1], tuple(cfg.link_split), split_gen)
        split = {s: ei[:, idx] for s, idx in parts.items()}
        base[target_rel] = split["train"]
        known = pair_keys(ei, n["item"]).sort().values
        negatives = {
            s: sample_non_edges(split[s].shape[1], n["user"], n["item"], known, split_gen, src=split[s][0])
            for s in ("val", "test")
        }
        target = TargetSpec(kind="link_pred", edge_type=target_rel, split=split, negatives=negatives)
    else:  # guarded by the config schema, kept for direct callers
        raise ValueError(f"dataset.target must be 'node' or 'link', got {cfg.target!r}")

    for rel in list(base):  # every relation, the target's training edges included
        base[rel], heldout[rel] = _holdout(base[rel], float(cfg.edge_holdout), g)
    if target.kind == "link_pred":
        target.split["train"] = base[target_rel]

    return GraphData(
        name=str(cfg.name),
        x=x,
        edge_index=add_reverse(base),
        target=target,
        heldout=heldout,
        pair_labels=pair_labels,
        info={
            "nodes": n,
            "edges": {"__".join(k): int(v.shape[1]) for k, v in base.items()},
            "homophily": float(cfg.homophily),
            "feature_signal": float(cfg.feature_signal),
            "avg_degree_user": round(base[target_rel].shape[1] / max(1, n["user"]), 2),
            "planted_pairs": num_pairs,
        },
    )
