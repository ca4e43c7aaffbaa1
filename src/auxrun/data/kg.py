"""The shape shared by the knowledge-graph recommendation datasets (``movielens``, ``lastfm``,
``bookcrossing``): users, items and KG entities; implicit-feedback user-item labels; an item
knowledge graph.

Graph: node types ``user``, ``item`` and (when the KG has any) ``entity``. The message-passing
relations are ``user -rates-> item`` (the *training* positives only: validation and test
interactions never reach the encoder) and one relation per KG relation type, each with its
reverse. KG triples are canonicalised so every relation points from items: a relation whose
triples all point at items (``film.director.film``) is flipped, and a flipped relation that
merely repeats another one's edges (``film.director.film`` vs ``film.film.directed_by``) is
dropped.

Target (as KGNN-LS and SELAR): labelled user-item pairs, positives and sampled negatives,
split at random 60/20/20 by the run's seed. Training uses the training pairs with their
labels; validation and test AUC is over each split's pairs; MRR and NDCG@10 rank every item
for each user (see :class:`auxrun.tasks.pairs.LinkPrediction`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..errors import AuxrunError
from .graph import EdgeType, GraphData, TargetSpec, add_reverse, random_split
from .sampling import pair_keys

RATES: EdgeType = ("user", "rates", "item")


@dataclass
class KGRelation:
    """One KG relation: edges ``(2, E)`` from ``src_type`` to ``dst_type`` (item or entity)."""

    name: str
    src_type: str
    dst_type: str
    edges: Tensor


def implicit_pairs(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, num_items: int, threshold: float,
                   neg_ratio: float, rng: np.random.Generator | np.random.RandomState,
                   candidates: str = "sorted") -> tuple[Tensor, Tensor]:
    """KGNN-LS's implicit feedback from explicit ``ratings`` of ``(users, items)`` (indices).

    Positives: ``rating >= threshold``. Then, user by user in increasing index, ``k =
    round(neg_ratio * #positives)`` negatives are drawn without replacement by
    ``rng.choice(free, k, replace=False)`` from ``free``, the items the user never rated (all
    of them when there are fewer than ``k``), listed

    * ``candidates="sorted"``: in increasing order;
    * ``candidates="script"``: as KGNN-LS's and RippleNet's ``preprocess.py`` lists them,
      ``list(set(range(num_items)) - positives)`` less the items rated below the threshold,
      in CPython's iteration order of that set (increasing, except for sets much smaller than
      the item range, whose hash table wraps around).

    With ``np.random.RandomState(555)``, ``candidates="script"`` and users indexed in the order
    of their first positive, this is exactly the draw of their script (NumPy's legacy
    ``choice`` without replacement is ``permutation(len(free))[:k]``). Users without a
    positive get no pairs. Returns pairs (2, n), positives in input order then each user's
    negatives, and 0/1 labels (n,).
    """
    pos = ratings >= threshold
    us, its, labels = [users[pos]], [items[pos]], [np.ones(int(pos.sum()))]
    everything = set(range(num_items)) if candidates == "script" else None
    if len(users):
        order = np.argsort(users, kind="stable")
        bounds = np.searchsorted(users[order], np.arange(users.max() + 2))
        n_pos = np.bincount(users[pos], minlength=users.max() + 1)
        for u in np.flatnonzero(n_pos):
            mine = order[bounds[u]:bounds[u + 1]]
            if everything is None:
                free = np.setdiff1d(np.arange(num_items), items[mine])
            else:
                unwatched = everything - set(items[mine][pos[mine]].tolist())
                unwatched -= set(items[mine][~pos[mine]].tolist())
                free = np.fromiter(unwatched, dtype=np.int64, count=len(unwatched))
            k = min(len(free), int(round(neg_ratio * n_pos[u])))
            us.append(np.full(k, u))
            its.append(rng.choice(free, size=k, replace=False))
            labels.append(np.zeros(k))
    pairs = torch.from_numpy(np.stack([np.concatenate(us), np.concatenate(its)]).astype(np.int64))
    return pairs, torch.from_numpy(np.concatenate(labels)).float()


def kg_relations(triples: pd.DataFrame, item_of: dict, min_items: int) -> tuple[int, list[KGRelation]]:
    """Typed relations from KG ``triples`` (columns ``h``, ``r``, ``t``: entity keys and the
    relation name). ``item_of`` maps the entity keys that are items to item indices; every
    other entity becomes an ``entity`` node when it is linked to at least ``min_items``
    distinct items (an entity of one item carries no relation between items; KGNN-LS keeps
    them, ``min_items=1``). Triples touching a dropped entity are dropped.

    Returns the number of entity nodes and the relations, one per (name, head type, tail
    type): a relation whose triples mix types is split.
    """
    df = triples[["h", "r", "t"]].copy()
    df["hi"], df["ti"] = df.h.map(item_of), df.t.map(item_of)
    h_item, t_item = df.hi.notna(), df.ti.notna()
    links = pd.concat([
        pd.DataFrame({"e": df.t[h_item & ~t_item], "i": df.hi[h_item & ~t_item]}),
        pd.DataFrame({"e": df.h[t_item & ~h_item], "i": df.ti[t_item & ~h_item]}),
    ])
    degree = links.drop_duplicates().groupby("e").size()
    kept = np.sort(degree[degree >= max(1, int(min_items))].index.to_numpy())
    entity_of = {k: i for i, k in enumerate(kept.tolist())}
    df["he"], df["te"] = df.h.map(entity_of), df.t.map(entity_of)
    df["hs"] = np.where(h_item, "item", np.where(df.he.notna(), "entity", ""))
    df["ts"] = np.where(t_item, "item", np.where(df.te.notna(), "entity", ""))
    df = df[(df.hs != "") & (df.ts != "")]
    df["hx"] = df.hi.fillna(df.he).astype("int64")
    df["tx"] = df.ti.fillna(df.te).astype("int64")
    rels = []
    for (name, hs, ts), g in df.groupby(["r", "hs", "ts"], sort=True):
        edges = torch.from_numpy(np.stack([g.hx.to_numpy(), g.tx.to_numpy()]))
        rels.append(KGRelation(str(name), hs, ts, edges))
    return len(kept), rels


def canonical_relations(relations: list[KGRelation]) -> dict[EdgeType, Tensor]:
    """Relations oriented away from items, inverse duplicates dropped (module docstring).

    A relation from ``entity`` to ``item`` is flipped to ``item -> entity`` (named
    ``<name>.inverse`` when the same name already has item -> entity triples); it is dropped
    when an item-headed relation has exactly the same (item, entity) pairs. Item-item and
    entity-entity relations are kept as they are. Duplicate edges within a relation go.
    """
    out: dict[EdgeType, Tensor] = {}
    flipped: list[tuple[str, Tensor]] = []
    for rel in relations:
        edges = torch.unique(rel.edges, dim=1) if rel.edges.numel() else rel.edges
        if rel.src_type == "entity" and rel.dst_type == "item":
            flipped.append((rel.name, edges.flip(0)))
        else:
            out[(rel.src_type, rel.name, rel.dst_type)] = edges
    seen = {frozenset(pair_keys(e, 1 << 31).tolist()) for r, e in out.items() if r[0] == "item" and r[2] == "entity"}
    for name, edges in flipped:
        if frozenset(pair_keys(edges, 1 << 31).tolist()) in seen:
            continue
        key = ("item", name, "entity")
        out[key if key not in out else ("item", f"{name}.inverse", "entity")] = edges
    return out


def build_kg_graph(
    *,
    name: str,
    x: dict[str, Tensor],
    pairs: Tensor,
    labels: Tensor,
    relations: list[KGRelation],
    split: tuple[float, float],
    seed: int,
    embedded: list[str],
    aliases: dict[str, str],
    info: dict,
    fingerprint: str,
    cache_dir: str | None,
) -> GraphData:
    """Assemble :class:`GraphData` from labelled user-item ``pairs`` (2, n) with 0/1 ``labels``.

    The split is a seeded random partition of the labelled pairs (``split`` = train and val
    fractions, test takes the rest); every split keeps its negatives, the training ones
    included (the target trains on the labelled pairs, as KGNN-LS).
    """
    if isinstance(split, str):  # the schema checks the fractions; a word names a split of molecules
        raise AuxrunError(f"dataset.split={split!r} splits molecules; give the train and validation fractions of the "
                          "labelled pairs, e.g. [0.6, 0.2] (test takes the rest)")
    gen = torch.Generator().manual_seed(int(seed))
    parts = random_split(pairs.shape[1], split, gen)
    pos, neg = {}, {}
    for s, idx in parts.items():
        lab = labels[idx].bool()
        pos[s], neg[s] = pairs[:, idx[lab]], pairs[:, idx[~lab]]
    target = TargetSpec(kind="link_pred", edge_type=RATES, split=pos, negatives=neg)
    edges: dict[EdgeType, Tensor] = {RATES: pos["train"]}
    edges.update(canonical_relations(relations))
    edges = {k: v for k, v in edges.items() if v.shape[1] > 0 or k == RATES}
    embedded = [t for t in x if t in embedded or x[t].shape[1] == 0]
    info = {
        **info,
        "nodes": {t: int(v.shape[0]) for t, v in x.items()},
        "interactions": {s: {"pos": int(pos[s].shape[1]), "neg": int(neg[s].shape[1])} for s in pos},
        "kg_relations": len(edges) - 1,
        "kg_edges": int(sum(v.shape[1] for k, v in edges.items() if k != RATES)),
    }
    return GraphData(name=name, x=x, edge_index=add_reverse(edges), target=target, embedded=embedded,
                     aliases=dict(aliases), info=info, fingerprint=fingerprint, cache_dir=cache_dir)


def one_hot(codes: Tensor, num: int | None = None) -> Tensor:
    """``(n,) -> (n, num)`` float one-hot rows."""
    num = int(codes.max()) + 1 if num is None else num
    out = torch.zeros(len(codes), num)
    out[torch.arange(len(codes)), codes] = 1.0
    return out
