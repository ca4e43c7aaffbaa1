"""The task interface: a head, per-example losses and a metric.

A task never runs the encoder itself: the engine runs it once per step on (possibly
corrupted) inputs and hands every task the embeddings, so all tasks' losses share one graph
forward pass and the weighting strategy can differentiate them with respect to the shared
parameters.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

Batch = dict[str, Tensor]
Embeddings = dict[str, Tensor]


class Task(nn.Module):
    """Base class.

    Attributes:
        name: ``target`` or the auxiliary task's config name.
        primary_metric: the metric used for model selection and in ``compare``.
        higher_is_better: direction of ``primary_metric``.
        head: the task's own parameters (never shared with other tasks).
        loss_scale: multiplies every per-example loss (``aux.tasks.<name>.loss_scale``; the
            AUX-TS paper's Table 4 rescales the auxiliary losses).
    """

    name: str
    primary_metric: str = "auc"
    higher_is_better: bool = True
    head: nn.Module
    loss_scale: float = 1.0

    def sample(self, batch_size: int, gen: torch.Generator, graph=None) -> Batch:
        """A random training batch (auxiliary tasks draw one per step). Tasks on one graph
        sample graph-wide (``graph`` is ``None``); molecular tasks draw their examples from
        the step's molecules, which the data view passes as ``graph``."""
        raise NotImplementedError

    def node_refs(self) -> dict[str, tuple[str, ...]]:
        """Which entries of this task's batches hold node indices, and of which node type (one
        type per row of a 2-D entry): a subgraph view takes them as seeds and localises them.
        Empty where batches index something else (molecules)."""
        return {}

    def losses(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        """Per-example losses ``l_j`` (shape ``(n,)``) on ``batch``; ``x`` are the clean features."""
        raise NotImplementedError

    def corrupt(self, x: dict[str, Tensor], batch: Batch) -> dict[str, Tensor] | None:
        """Inputs to use for this step's forward pass, or ``None`` to leave them alone."""
        return None

    def hidden_edges(self, batch: Batch) -> Tensor | None:
        """Positions, in the whole graph's stacked ``edge_index``, of the edges no message may
        pass over in the forward pass that scores ``batch`` (edge generation hides the edges
        it asks for); ``None`` hides nothing. The data view removes them from the step's graph."""
        return None

    def evaluate(self, emb: Embeddings, split: str, x: dict[str, Tensor] | None = None,
                 batch: Batch | None = None) -> dict[str, float]:
        """Metrics: a target's on ``split``; an auxiliary task's on ``batch``, its fixed
        evaluation batch (:meth:`eval_batch`), with ``x`` the clean features."""
        raise NotImplementedError

    def eval_batch(self) -> Batch | None:
        """The fixed batch an auxiliary task is evaluated on (graph-wide indices)."""
        return None


class TargetTask(Task):
    """A target task: training examples ``0..num_train()-1`` that :meth:`batch` turns into a
    batch. Shuffled epochs, random batches and meta batches from one fold of the training
    split are all built from it. :meth:`hold_out` reserves a seeded random part of the
    training examples, stratified by :meth:`strata`, as an auxiliary split that training never
    sees (BLO's outer objective)."""

    _kept: Tensor | None = None  # positions training uses (None: all)
    _held: Tensor | None = None  # positions reserved by hold_out

    def num_train(self) -> int:
        raise NotImplementedError

    def batch(self, idx: Tensor, gen: torch.Generator) -> Batch:
        """The batch of training examples at positions ``idx`` (CPU long tensor)."""
        raise NotImplementedError

    def eval_nodes(self, split: str) -> dict[str, Tensor]:
        """Graph-wide node indices per node type whose embeddings :meth:`evaluate` reads on
        ``split`` (a subgraph view computes only those)."""
        return {}

    def strata(self) -> Tensor | None:
        """One class key per training example (1-D, CPU) for stratified hold-outs, or ``None``
        where examples have no class (regression, positive-only links)."""
        return None

    def hold_out(self, fraction: float, seed: int) -> None:
        """Reserve ``round(fraction * n)`` training examples (at least one, and at least one
        left to train on) for :meth:`heldout_batch`: a random subset drawn with ``seed``,
        stratified by :meth:`strata` (see :func:`stratified_subset`)."""
        if fraction <= 0:
            self._kept = self._held = None
            return
        n = self.num_train()
        k = min(n - 1, max(1, int(round(fraction * n))))
        held = stratified_subset(n, k, self.strata(), torch.Generator().manual_seed(seed))
        mask = torch.zeros(n, dtype=torch.bool)
        mask[held] = True
        self._kept, self._held = torch.nonzero(~mask).squeeze(1), torch.nonzero(mask).squeeze(1)

    def _positions(self) -> Tensor:
        """The positions training draws from (every example unless some are held out)."""
        return self._kept if self._kept is not None else torch.arange(self.num_train())

    def train_batches(self, batch_size: int, gen: torch.Generator) -> Iterator[Batch]:
        """One epoch: the training examples in a random order, ``batch_size`` at a time."""
        return self.batches_from(self.epoch_order(gen), batch_size, 0, gen)

    def epoch_order(self, gen: torch.Generator) -> Tensor:
        """An epoch's random order of the training examples (the one draw from ``gen`` an epoch
        starts with; a resumed run keeps it in its checkpoint)."""
        return torch.randperm(len(self._positions()), generator=gen)

    def batches_from(self, order: Tensor, batch_size: int, start: int, gen: torch.Generator) -> Iterator[Batch]:
        """The batches of an epoch's ``order`` from the ``start``-th on (a run resumed mid-epoch
        continues where it stopped)."""
        positions = self._positions()
        for idx in order.split(batch_size)[start:]:
            yield self.batch(positions[idx], gen)

    def sample(self, batch_size: int, gen: torch.Generator, graph=None) -> Batch:
        positions = self._positions()
        return self.batch(positions[torch.randint(len(positions), (batch_size,), generator=gen)], gen)

    def fold_batch(self, fold: int, num_folds: int, batch_size: int, gen: torch.Generator) -> Batch:
        """A random batch (with replacement) from fold ``fold`` of a fixed ``num_folds``-way
        partition of the training examples: the held-out batches of meta strategies."""
        positions = self._positions()
        folds = fold_partition(len(positions), num_folds)
        members = positions[folds[fold % len(folds)]]
        return self.batch(members[torch.randint(len(members), (batch_size,), generator=gen)], gen)

    def heldout_batch(self, batch_size: int, gen: torch.Generator) -> Batch:
        """A random batch (with replacement) from the examples reserved by :meth:`hold_out`."""
        if self._held is None:
            raise RuntimeError("no training examples are held out")
        return self.batch(self._held[torch.randint(len(self._held), (batch_size,), generator=gen)], gen)


def stratified_subset(n: int, k: int, strata: Tensor | None, gen: torch.Generator) -> Tensor:
    """``k`` of the positions ``0..n-1``, drawn at random with ``gen``, stratified by ``strata``.

    Stratum ``s`` (``n_s`` members) gets its quota ``q_s = n_s k / n`` rounded by the largest
    remainder method: ``floor(q_s)`` each, then one more for the strata with the largest
    fractional parts (ties at random) until there are ``k``; so every class keeps its share of
    the subset up to one example. No stratum gives up its last member while another can
    (training keeps at least one example of every class whenever ``k`` allows). The members
    of each stratum are then drawn uniformly at random.
    """
    order = torch.randperm(n, generator=gen)
    if strata is None:
        return order[:k]
    _, inverse, counts = torch.unique(strata, return_inverse=True, return_counts=True)
    quota = counts.double() * k / n
    take = torch.minimum(quota.floor().long(), counts - 1)
    jitter = torch.rand(len(counts), generator=gen, dtype=torch.double) * 1e-6  # random ties
    for cap in (counts - 1, counts):  # first keep one member of every stratum; if k needs it, not
        while int(take.sum()) < k and bool((take < cap).any()):
            priority = torch.where(take < cap, quota - take + jitter, torch.full_like(quota, -math.inf))
            more = torch.argsort(priority, descending=True)[: min(k - int(take.sum()), int((take < cap).sum()))]
            take[more] += 1
    grouped = order[torch.argsort(inverse[order], stable=True)]  # by stratum, random within
    starts = torch.cumsum(counts, 0) - counts
    stratum = inverse[grouped]
    rank = torch.arange(n) - starts[stratum]
    return grouped[rank < take[stratum]]


@functools.lru_cache(maxsize=16)
def fold_partition(n: int, num_folds: int, seed: int = 0) -> tuple[Tensor, ...]:
    """A fixed random partition of ``range(n)`` into ``min(num_folds, n)`` non-empty folds
    (computed once per ``(n, num_folds, seed)``: meta strategies ask for it every step)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return tuple(f for f in perm.tensor_split(max(1, min(num_folds, n))) if len(f))


def shuffled_chunks(n: int, batch_size: int, gen: torch.Generator) -> Iterator[Tensor]:
    """Indices ``0..n-1`` in a random order, cut into chunks of ``batch_size``."""
    perm = torch.randperm(n, generator=gen)
    yield from perm.split(batch_size)
