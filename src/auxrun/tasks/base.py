"""The task interface: a head, per-example losses and a metric.

A task never runs the encoder itself: the engine runs it once per step on (possibly
corrupted) inputs and hands every task the embeddings, so all tasks' losses share one graph
forward pass and the weighting strategy can differentiate them with respect to the shared
parameters.
"""

from __future__ import annotations

import functools
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
    """

    name: str
    primary_metric: str = "auc"
    higher_is_better: bool = True
    head: nn.Module

    def sample(self, batch_size: int, gen: torch.Generator) -> Batch:
        """A random training batch (auxiliary tasks draw one per step)."""
        raise NotImplementedError

    def sample_for(self, graph, batch_size: int, gen: torch.Generator) -> Batch:
        """This step's training batch given the step's graph (a molecular batch draws its
        examples from the step's molecules; a task on one fixed graph ignores it)."""
        return self.sample(batch_size, gen)

    def losses(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        """Per-example losses ``l_j`` (shape ``(n,)``) on ``batch``; ``x`` are the clean features."""
        raise NotImplementedError

    def corrupt(self, x: dict[str, Tensor], batch: Batch) -> dict[str, Tensor] | None:
        """Inputs to use for this step's forward pass, or ``None`` to leave them alone."""
        return None

    def evaluate(self, emb: Embeddings, split: str, x: dict[str, Tensor]) -> dict[str, float]:
        """Metrics on ``split`` (auxiliary tasks use a fixed evaluation sample)."""
        raise NotImplementedError

    def eval_batch(self) -> Batch | None:
        """The fixed batch ``evaluate`` scores, when it needs a corrupted forward pass."""
        return None


class TargetTask(Task):
    """A target task: training examples ``0..num_train()-1`` that :meth:`batch` turns into a
    batch. Shuffled epochs, random batches and meta batches from one fold of the training
    split are all built from it. :meth:`hold_out` reserves the last part of the training
    examples as an auxiliary split that training never sees (BLO's outer objective)."""

    _heldout: int = 0

    def num_train(self) -> int:
        raise NotImplementedError

    def batch(self, idx: Tensor, gen: torch.Generator) -> Batch:
        """The batch of training examples at positions ``idx`` (CPU long tensor)."""
        raise NotImplementedError

    def hold_out(self, fraction: float) -> None:
        """Reserve the last ``fraction`` of the training examples (at least one, and at least
        one left to train on) for :meth:`heldout_batch`."""
        n = self.num_train()
        self._heldout = min(n - 1, max(1, int(round(fraction * n)))) if fraction > 0 else 0

    def _trainable(self) -> int:
        return self.num_train() - self._heldout

    def train_batches(self, batch_size: int, gen: torch.Generator) -> Iterator[Batch]:
        for idx in shuffled_chunks(self._trainable(), batch_size, gen):
            yield self.batch(idx, gen)

    def sample(self, batch_size: int, gen: torch.Generator) -> Batch:
        return self.batch(torch.randint(self._trainable(), (batch_size,), generator=gen), gen)

    def fold_batch(self, fold: int, num_folds: int, batch_size: int, gen: torch.Generator) -> Batch:
        """A random batch (with replacement) from fold ``fold`` of a fixed ``num_folds``-way
        partition of the training examples: the held-out batches of meta strategies."""
        folds = fold_partition(self._trainable(), num_folds)
        members = folds[fold % len(folds)]
        return self.batch(members[torch.randint(len(members), (batch_size,), generator=gen)], gen)

    def heldout_batch(self, batch_size: int, gen: torch.Generator) -> Batch:
        """A random batch (with replacement) from the examples reserved by :meth:`hold_out`."""
        if not self._heldout:
            raise RuntimeError("no training examples are held out")
        start = self._trainable()
        return self.batch(start + torch.randint(self._heldout, (batch_size,), generator=gen), gen)


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
