"""``dataset=synthetic_zeroshot``: a planted heterogeneous graph for zero-shot transfer.

Two node types share ``C`` classes: ``paper`` (the source, labelled) and ``author`` (the
target, whose labels are read for test metrics only). Each node ``v`` has a latent class
``c_v``.

* Features: ``x_paper = s * mu_c + eps`` and ``x_author = s * Q mu_c + eps`` with unit-norm
  class centres ``mu_c``, ``eps ~ N(0, I)`` and one fixed random orthogonal matrix ``Q``
  (``author_transform: rotation``; ``identity`` makes both types speak the same language).
  The class signal of an author is therefore present, but written in a *type-specific*
  basis that nothing trained on papers alone ever sees.
* Edges: ``author -writes-> paper`` (``author_degree`` per author) and ``paper -cites->
  paper`` (``paper_degree`` per paper), each endpoint of the same class with probability
  ``homophily``; reverses are added for message passing.

Why ``direct`` fails here, by construction: a heterogeneous GNN trained on the paper
classifier never trains the author-specific parameters of its *last* layer (nothing the
source loss depends on reads an author's last-layer output), and the author-specific input
map only through the messages authors send to papers, so author embeddings land in another
region and basis than paper embeddings. KTN's matching loss ``||H_P - A T H_A||^2`` ties the
two spaces through the ``writes`` edges, which are homophilous, so a learned ``T`` maps
authors into the paper classifier's space.

The graph depends on ``graph_seed`` only; the run ``seed`` draws the source split.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import Tensor

from .registry import loader
from .graph import GraphData, NodeLabels, TargetSpec, add_reverse, random_split
from .kg import one_hot
from .synthetic import _homophilous_edges


def _centres(num_classes: int, dim: int, g: torch.Generator) -> Tensor:
    centres = torch.randn(num_classes, dim, generator=g)
    return centres / centres.norm(dim=1, keepdim=True)


@loader("synthetic_zeroshot", kinds=("zeroshot",))
def load_synthetic_zeroshot(cfg: DictConfig, seed: int, cache_dir: str | None = None) -> GraphData:
    """Generate the planted graph (see the module docstring)."""
    g = torch.Generator().manual_seed(int(cfg.graph_seed))
    c, dim, signal = int(cfg.num_classes), int(cfg.feat_dim), float(cfg.feature_signal)
    paper_class = torch.randint(c, (int(cfg.num_papers),), generator=g)
    author_class = torch.randint(c, (int(cfg.num_authors),), generator=g)
    mu = _centres(c, dim, g)
    if str(cfg.author_transform) == "rotation":
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))
    elif str(cfg.author_transform) == "identity":
        q = torch.eye(dim)
    else:
        raise ValueError(f"dataset.author_transform must be rotation or identity, not {cfg.author_transform!r}")
    x_paper = signal * mu[paper_class] + torch.randn(len(paper_class), dim, generator=g)
    x_author = signal * mu[author_class] @ q.T + torch.randn(len(author_class), dim, generator=g)
    h = float(cfg.homophily)
    writes = _homophilous_edges(author_class, paper_class, int(cfg.author_degree), h, g)
    cites = _homophilous_edges(paper_class, paper_class, int(cfg.paper_degree), h, g)
    edges = add_reverse({("author", "writes", "paper"): writes, ("paper", "cites", "paper"): cites})
    names = [f"class{i}" for i in range(c)]
    split = random_split(len(paper_class), (0.8, 0.1), torch.Generator().manual_seed(int(seed)))
    return GraphData(
        name=str(cfg.name),
        x={"paper": x_paper, "author": x_author},
        edge_index=edges,
        # the regular schemes' target (paper classification); zeroshot reads node_labels
        target=TargetSpec(kind="node_cls", split=split, node_type="paper", labels=paper_class, num_classes=c),
        node_labels={"paper": NodeLabels(one_hot(paper_class, c), names),
                     "author": NodeLabels(one_hot(author_class, c), names)},
        info={"nodes": {"paper": len(paper_class), "author": len(author_class)},
              "edges": {"__".join(k): int(v.shape[1]) for k, v in edges.items()},
              "author_transform": str(cfg.author_transform)},
    )
