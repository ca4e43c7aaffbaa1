"""Meta-paths between two node types and their row-normalised adjacency matrices.

A meta-path ``p = (r_1, ..., r_k)`` from type ``S`` to type ``T`` is a walk over relations:
``r_1`` leaves ``S``, each ``r_{i+1}`` leaves the type ``r_i`` enters, ``r_k`` enters ``T``.
With ``A_r`` the 0/1 adjacency of relation ``r = (a, rel, b)`` (``A_r[i, j] = 1`` for the edge
``i -> j``, shape ``(n_a, n_b)``) and ``D(M)`` a matrix with each row divided by its sum (rows
of zeros stay zero), the path's adjacency is, by ``weighting``:

* ``random_walk`` (the KTN authors' aggregation, and what the paper's per-relation mean
  aggregation composes to): the chain of each relation's own row-normalised adjacency,

      A_p = D(A_{r_1}) D(A_{r_2}) ... D(A_{r_k}),

  so ``A_p[s, t]`` is the probability that a random walk along ``p`` from ``s`` ends at ``t``;
* ``instances``: the row-normalised product, ``A_p = D(A_{r_1} ... A_{r_k})``, where every path
  instance from ``s`` counts alike, whichever node it passes.

Either way ``(A_p H_T)[s]`` is a weighted mean of target embeddings (under ``random_walk``
with weights summing below 1 where a walk can end early, at a node without the next
relation), and a source without an instance of ``p`` has a zero row.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.graph import EdgeType, relation_chains
from ..errors import AuxrunError


@dataclass(frozen=True)
class MetaPath:
    """A walk over relations; ``name`` is the relation names joined by ``,``."""

    relations: tuple[EdgeType, ...]

    @property
    def name(self) -> str:
        return ",".join(r[1] for r in self.relations)


def metapaths(edge_types: list[EdgeType], source: str, target: str, hops: int) -> list[MetaPath]:
    """Every meta-path from ``source`` to ``target`` with 1 to ``hops`` relations
    (:func:`~auxrun.data.graph.relation_chains`), shortest first, then in the graph's relation
    order (``r_1``, then ``r_2``, ...)."""
    chains = sorted(relation_chains(edge_types, target, hops, start=source), key=lambda c: (len(c), c))
    return [MetaPath(tuple(edge_types[i] for i in c)) for c in chains]


def select_paths(found: list[MetaPath], wanted: list[str] | None) -> list[MetaPath]:
    """``found`` (``wanted`` None or ``all``) or the listed ones by name, in the listed order."""
    if not wanted or wanted == ["all"]:
        return found
    by_name = {p.name: p for p in found}
    missing = [w for w in wanted if w not in by_name]
    if missing:
        raise AuxrunError(f"ktn.paths: {', '.join(map(repr, missing))} not among the meta-paths "
                          f"({', '.join(by_name) or 'none'}); use all or a subset of them")
    return [by_name[w] for w in wanted]


def relation_adjacency(edge_index: Tensor, n_src: int, n_dst: int) -> Tensor:
    """``A_r`` as a sparse COO ``(n_src, n_dst)`` float matrix (repeated edges count once)."""
    keys = torch.unique(edge_index[0] * n_dst + edge_index[1])
    idx = torch.stack([keys // n_dst, keys % n_dst])
    return torch.sparse_coo_tensor(idx, torch.ones(idx.shape[1], device=edge_index.device), (n_src, n_dst)).coalesce()


WEIGHTINGS = ("random_walk", "instances")


def row_normalised(adj: Tensor) -> Tensor:
    """``D(adj)``: each row of a sparse COO matrix divided by its sum (empty rows stay empty)."""
    adj = adj.coalesce()
    rows, values = adj.indices()[0], adj.values()
    sums = torch.zeros(adj.shape[0], device=values.device, dtype=values.dtype).index_add_(0, rows, values)
    return torch.sparse_coo_tensor(adj.indices(), values / sums[rows], adj.shape).coalesce()


def path_adjacency(path: MetaPath, edge_index: dict[EdgeType, Tensor], counts: dict[str, int],
                   weighting: str = "random_walk") -> Tensor:
    """``A_p`` of ``path`` under ``weighting`` (module docstring; sparse COO, ``(n_start, n_end)``)."""
    per_relation = weighting == "random_walk"
    prod = None
    with warnings.catch_warnings():  # torch's notes on sparse support being in beta
        warnings.simplefilter("ignore", UserWarning)
        for rel in path.relations:
            a = relation_adjacency(edge_index[rel], counts[rel[0]], counts[rel[2]])
            a = row_normalised(a) if per_relation else a
            prod = a if prod is None else torch.sparse.mm(prod, a).coalesce()
    assert prod is not None
    return prod if per_relation else row_normalised(prod)


def has_instance(adj: Tensor) -> Tensor:
    """Boolean mask of the rows of a sparse ``adj`` with at least one nonzero entry."""
    mask = torch.zeros(adj.shape[0], dtype=torch.bool, device=adj.device)
    mask[adj.indices()[0]] = True
    return mask
