"""Runs that survive being stopped: whole-state checkpoints and clean stops on signals.

**Checkpoint** (``<run>/checkpoints/last.pt``, written atomically by the training loop,
:mod:`auxrun.train.loop`, at the end of every epoch and when a signal stops the run between
two steps): the job's state (the model, its optimiser, the strategy or transfer method with
their own optimisers and counters: :meth:`Weighting.get_extra_state`), the run state
(:class:`~auxrun.train.loop.RunState`: epoch, step, trace, history, early-stopping state,
timings, the position within the epoch: its order of training examples and how many batches
are done), the kept epoch's weights, and every random state: Python's, NumPy's, torch's global CPU and CUDA generators and
the run's own generator, from which the data view's neighbour sampler and every task draw.
A run started again on the same folder with the same resolved config loads it and continues;
on CPU it then ends with the metrics and trace of a run that was never stopped.

**Signals**: inside :class:`StopSignals`, the first SIGINT or SIGTERM only asks the training
loop to stop at the next step boundary (:attr:`StopSignals.signum`); a second SIGINT stops at
once (``KeyboardInterrupt``). The loop then checkpoints, and the scheme records
``status: interrupted`` and exits with ``128 + signal`` (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import logging
import random
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import save_torch
from ..report.results import config_differences

log = logging.getLogger(__name__)
FORMAT = "auxrun-run-state"
VERSION = 2  # 2: one run state for every command (auxrun.train.loop.RunState)


class ResumableState:
    """Mixin for an ``nn.Module`` whose state is more than its parameters and buffers: every
    attribute that is a ``torch.optim.Optimizer`` (a strategy's weighting-net optimiser,
    WDGRL's critic optimiser) and the plain attributes named in :attr:`counters` (BLO's step
    count) become part of its ``state_dict`` (``get_extra_state``), so loading a checkpoint
    restores them too."""

    counters: tuple[str, ...] = ()

    def get_extra_state(self) -> dict[str, Any]:
        optimizers = {n: o.state_dict() for n, o in vars(self).items() if isinstance(o, torch.optim.Optimizer)}
        return {"optimizers": optimizers, "counters": {n: getattr(self, n) for n in self.counters}}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        for name, opt in state.get("optimizers", {}).items():
            getattr(self, name).load_state_dict(opt)
        for name, value in state.get("counters", {}).items():
            setattr(self, name, value)


class Interrupted(Exception):
    """The run stopped on a signal after writing its checkpoint; exit with ``128 + signum``."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class StopSignals:
    """While active, SIGINT and SIGTERM set :attr:`signum` instead of killing the process;
    a second SIGINT raises ``KeyboardInterrupt``. Outside the main thread it does nothing."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("%s received: stopping after this step and writing a checkpoint (Ctrl-C again to stop at once)",
                    signal.Signals(signum).name)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def rng_states(gen: torch.Generator) -> dict[str, Any]:
    """Every random state a run draws from."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "gen": gen.get_state()}


def set_rng_states(states: dict[str, Any], gen: torch.Generator) -> None:
    """Restore what :func:`rng_states` saved."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    gen.set_state(states["gen"])


def save_run_state(path: Path, payload: dict[str, Any]) -> Path:
    """Write a checkpoint atomically (the previous one stays until the new one is complete)."""
    return save_torch(path, {"format": FORMAT, "version": VERSION, **payload})


def load_run_state(path: Path, config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The checkpoint at ``path`` when it was written by a run of ``config`` (up to keys that never
    change a run's numbers, :func:`~auxrun.report.results.config_differences`); ``None``
    (with a warning where one exists but does not fit) otherwise."""
    if config is None or not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file: start over, say why
        log.warning("ignoring checkpoint %s, which cannot be read (%s); starting from the first epoch", path, exc)
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("version") != VERSION:
        log.warning("ignoring checkpoint %s: not a run state of this auxrun version", path)
        return None
    if config_differences(state.get("config"), config):
        log.warning("ignoring checkpoint %s: written by a run of another config; starting from the first epoch", path)
        return None
    return state
