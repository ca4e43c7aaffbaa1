"""Building a :class:`~auxrun.weighting.base.Lookahead`: the step's losses as a pure function
of the look-ahead parameters ``theta`` (encoder + target head), via
``torch.func.functional_call``.

Dropout must draw the same masks when a step is re-evaluated (forward-mode product, unrolled
reference, finite differences): each closure replays a snapshot of the RNG state inside
``torch.random.fork_rng``, so calling it neither sees nor advances the global RNG.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..weighting import TARGET
from ..weighting.base import Lookahead

RngState = tuple[Tensor, Tensor | None]


def rng_snapshot(device: torch.device) -> RngState:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


@contextmanager
def replay(state: RngState, device: torch.device) -> Iterator[None]:
    cpu, cuda = state
    with torch.random.fork_rng(devices=[device] if cuda is not None else []):
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)
        yield


@contextmanager
def frozen_norm_stats(model: nn.Module) -> Iterator[None]:
    """Batch-norm layers normalise with the batch's statistics, as in the step itself, but do
    not update their running statistics: a re-evaluation inside a ``torch.func`` transform
    must not mutate buffers (and the step already updated them once)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    saved = [m.track_running_stats for m in norms]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, flag in zip(norms, saved):
            m.track_running_stats = flag


def lookahead_names(model: nn.Module) -> list[str]:
    """Names of ``theta``: every encoder parameter and the target head's."""
    return [n for n, p in model.named_parameters()
            if p.requires_grad and (n.startswith("encoder.") or n.startswith(f"tasks.{TARGET}."))]


def make_lookahead(model: nn.Module, names: list[str], x: dict[str, Tensor], x_clean: dict[str, Tensor],
                   graph, batches: dict, rng_step: RngState, meta_batch: dict,
                   rng_meta: RngState, meta_inputs: tuple | None = None) -> Lookahead:
    """Closures over this step's inputs; ``model(x, x_clean, graph, batches)`` must return the
    per-example losses of every task in ``batches``. The meta batch is scored on the step's
    clean inputs, or on ``meta_inputs = (x, graph)`` when it brings its own graph (molecules)."""
    meta_x, meta_graph = meta_inputs if meta_inputs is not None else (x_clean, graph)
    device = x_clean[next(iter(x_clean))].device
    named = dict(model.named_parameters())

    def losses_at(values: list[Tensor]) -> dict[str, Tensor]:
        with replay(rng_step, device), frozen_norm_stats(model):
            return functional_call(model, dict(zip(names, values)), (x, x_clean, graph, batches))

    def meta_loss_at(values: list[Tensor]) -> Tensor:
        with replay(rng_meta, device), frozen_norm_stats(model):
            out = functional_call(model, dict(zip(names, values)), (meta_x, meta_x, meta_graph, {TARGET: meta_batch}))
        return out[TARGET].mean()

    return Lookahead(params=[named[n] for n in names], losses_at=losses_at, meta_loss_at=meta_loss_at)
