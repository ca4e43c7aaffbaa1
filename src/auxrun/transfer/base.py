"""The interface every zero-shot transfer method implements, and ``direct``.

A zero-shot step runs the shared heterogeneous encoder once on the step's graph (embeddings
``H``: the whole graph, or with ``trainer.sampling=neighbor`` a subgraph sampled around the
nodes :meth:`Transfer.seeds` names), scores a batch of labelled source nodes with the source
classifier ``f`` and adds the method's transfer term on the same embeddings:

    L = L_cls(f(H_S[batch]), y_batch) + lambda * L_transfer(H, batch_S, batch_T, f)

``L_cls`` is the cross-entropy against the normalised label set ``y / |y|`` (ordinary
cross-entropy for single-label data). At test time a target node is scored by
:meth:`Transfer.target_scores`, by default ``f`` on :meth:`Transfer.target_embeddings`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..train.resume import ResumableState

from .data import ZeroShotData

Embeddings = dict[str, Tensor]


@dataclass
class StepBatch:
    """This step's nodes: labelled source training nodes and target nodes (labels unseen), as
    rows of the step's embeddings. On a sampled subgraph ``source_ids`` are the source nodes'
    graph-wide indices and ``localize(node_type, ids)`` maps graph-wide indices of nodes in
    the subgraph to rows; on the whole graph rows are the indices and both are ``None``."""

    source: Tensor
    target: Tensor
    source_ids: Tensor | None = None
    localize: Callable[[str, Tensor], Tensor] | None = None


class Transfer(ResumableState, nn.Module):
    """Base class: ``direct`` transfer (no transfer term, target embeddings as they are).

    Attributes:
        trains: whether the encoder is trained at all (``lp`` is training-free).
        weight: ``lambda``, the weight of the transfer term.
    """

    name = "direct"
    trains = True
    tensor_lists: tuple[str, ...] = ()  # attributes holding lists of (sparse) tensors to move with the module

    def __init__(self, zs: ZeroShotData, hidden: int, cfg) -> None:
        super().__init__()
        self.source, self.target = zs.source, zs.target
        self.weight = float(cfg.get("lambda", 0.0))

    def _apply(self, fn, recurse=True):  # sparse adjacencies are not buffers: move them too
        out = super()._apply(fn, recurse)
        for attr in self.tensor_lists:
            setattr(self, attr, [fn(t) for t in getattr(self, attr)])
        return out

    def domains(self, emb: Embeddings, batch: StepBatch) -> tuple[Tensor, Tensor]:
        """The step's source and target embeddings, ``(H_S[B_S], H_T[B_T])``."""
        return emb[self.source][batch.source], emb[self.target][batch.target]

    def seeds(self, source: Tensor, target: Tensor) -> dict[str, list[Tensor]]:
        """Graph-wide nodes whose embeddings this step's loss reads, per node type: the batch's
        source and target nodes (a sampled step's subgraph is drawn around them)."""
        return {self.source: [source], self.target: [target]}

    def loss(self, emb: Embeddings, batch: StepBatch, classifier: nn.Module) -> Tensor | None:
        """The transfer term ``L_transfer`` of this step (``None``: none)."""
        return None

    def before_step(self, emb: Embeddings, batch: StepBatch, classifier: nn.Module) -> None:
        """Updates of the method's own players before the model's step, on detached
        embeddings (WDGRL's critic)."""

    def plan(self, total_steps: int) -> None:
        """Told once, before training, how many steps the run takes (DANN's reversal warm-up
        spans them); most methods ignore it."""

    def own_parameters(self) -> list[nn.Parameter]:
        """Parameters this method updates itself (excluded from the model's optimiser)."""
        return []

    def target_embeddings(self, emb: Embeddings) -> Tensor:
        """The representation of every target node that the source classifier reads."""
        return emb[self.target]

    def target_scores(self, emb: Embeddings, classifier: nn.Module) -> Tensor:
        """Class scores of every target node, ``(n_target, C)``."""
        return classifier(self.target_embeddings(emb))

    def source_scores(self, emb: Embeddings, classifier: nn.Module) -> Tensor:
        """Class scores of every source node (source validation and test metrics)."""
        return classifier(emb[self.source])


def soft_cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Per-node ``- sum_c (y_c / |y|) log softmax(z)_c`` for 0/1 label rows ``y``."""
    q = y / y.sum(1, keepdim=True).clamp_min(1.0)
    return -(q * torch.log_softmax(logits, 1)).sum(1)
