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

from ..data.step_inputs import StepInputs
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


def make_lookahead(model: nn.Module, names: list[str], x: dict[str, Tensor], inputs: StepInputs,
                   rng_step: RngState, meta: StepInputs, rng_meta: RngState) -> Lookahead:
    """Closures over this step's inputs; ``model(x, x_clean, graph, batches)`` must return the
    per-example losses of every task in ``batches``. The step's losses are computed on ``x``
    (its possibly corrupted features) over ``inputs``; the meta batch on ``meta``'s clean
    features and graph (the step's own, or a graph of its own where the data view samples)."""
    device = inputs.x[next(iter(inputs.x))].device
    named = dict(model.named_parameters())

    def losses_at(values: list[Tensor]) -> dict[str, Tensor]:
        with replay(rng_step, device), frozen_norm_stats(model):
            return functional_call(model, dict(zip(names, values)), (x, inputs.x, inputs.graph, inputs.batches))

    def meta_loss_at(values: list[Tensor]) -> Tensor:
        with replay(rng_meta, device), frozen_norm_stats(model):
            out = functional_call(model, dict(zip(names, values)), (meta.x, meta.x, meta.graph, meta.batches))
        return out[TARGET].mean()

    return Lookahead(params=[named[n] for n in names], losses_at=losses_at, meta_loss_at=meta_loss_at)
