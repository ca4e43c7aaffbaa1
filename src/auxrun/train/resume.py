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

**A sweep on this machine** (Hydra's basic or joblib launcher): outside its runs, every process
of the sweep (the launcher, each joblib worker from its first job on) is inside
:class:`SweepSignals`, which notes the first SIGINT or SIGTERM (a run's :class:`StopSignals`
notes it too). The launcher also records it in the command's shared folder
(:func:`auxrun.sweep.note_stop`), where a worker that joblib starts after the signal finds it,
and passes it on as SIGTERM to the workers that have a handler (:func:`auxrun.sweep.workers`).
A job asks :func:`stop_signal` (this process's note or the shared record) before it starts, and a
run that starts in a stopping sweep stops after its first step. So a Ctrl-C, or a SIGTERM to the
launcher alone, stops every running job after its step with its checkpoint and record, no job
starts after it, and the launcher exits with ``128 + signal``. ``auxrun tune`` on this machine
stops its trials the same way (:mod:`auxrun.tuning.study`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
from multiprocessing import resource_tracker
import os
import random
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import sweep
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

    def __reduce__(self) -> tuple[Any, tuple[int, str]]:  # whole across processes (a joblib worker's result)
        return type(self), (self.signum, str(self))


MASKS = hasattr(signal, "pthread_sigmask")  # POSIX: threads' signal masks (SweepSignals' shield)
_stopped_by: int | None = None  # the first SIGINT or SIGTERM this process got in a sweep or a run


def stop_signal() -> int | None:
    """The signal that stops this sweep, or ``None``: the first SIGINT or SIGTERM that
    :class:`StopSignals` or :class:`SweepSignals` caught in this process since the sweep began
    (:meth:`SweepSignals.__enter__`), else the one the launcher recorded for every process of the
    sweep (:func:`auxrun.sweep.stopped`)."""
    return _stopped_by or sweep.stopped()


class _Handler:
    """SIGINT and SIGTERM handled in the main thread while active (elsewhere: nothing): the
    first one is noted (:func:`stop_signal`) and passed to :meth:`first`; a second SIGINT raises
    ``KeyboardInterrupt`` (stop at once); further SIGTERMs change nothing."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._sigints = 0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT:
            self._sigints += 1
            if self._sigints > 1:
                raise KeyboardInterrupt
        if self.signum is not None:
            return
        global _stopped_by
        self.signum = signum
        _stopped_by = _stopped_by or signum
        self.first(signum)

    def first(self, signum: int) -> None:
        """What the first signal does besides being noted."""

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class StopSignals(_Handler):
    """While a run trains: the first SIGINT or SIGTERM sets :attr:`signum`, and the loop stops
    after the step and checkpoints; a second SIGINT raises ``KeyboardInterrupt``. In a sweep that
    is already stopping (the signal came while the job loaded its data) :attr:`signum` starts set,
    so the run stops after its first step."""

    def __enter__(self) -> StopSignals:
        super().__enter__()
        if SweepSignals.active is not None:
            self.signum = stop_signal()
        return self

    def first(self, signum: int) -> None:
        log.warning("%s received: stopping after this step and writing a checkpoint (Ctrl-C again to stop at once)",
                    signal.Signals(signum).name)


class SweepSignals(_Handler):
    """Around a sweep on this machine, in the launcher and (for good, from its first job on) in
    each joblib worker: the first SIGINT or SIGTERM is noted instead of ending the process. The
    launcher records it in the command's shared folder (:func:`auxrun.sweep.note_stop`) and passes
    it on as SIGTERM to its worker processes that have entered one (:func:`auxrun.sweep.workers`;
    not joblib's resource trackers, nor a worker still starting, which a signal would kill), whose
    runs then stop after their step; a job asks :func:`stop_signal` before it starts. Entering one
    forgets an earlier stop of this process (a process that runs several sweeps: tests).

    ``shield`` (a launcher whose jobs run in worker processes): a Ctrl-C reaches every process of
    the terminal's session, also a worker that joblib is still starting, which would die of it
    (and joblib would then abort the pool, killing the running jobs mid-step). So while inside,
    the launcher's main thread blocks SIGINT and SIGTERM, and every thread and process started
    from it inherits that mask: a new worker holds such a signal pending until it enters its own
    handler (:meth:`in_worker`), which then unblocks and takes it. The launcher itself receives
    them on a thread of its own that leaves them unblocked (Python then runs the handler in the
    main thread)."""

    active: SweepSignals | None = None  # this process's, while one is entered
    HELD = frozenset({signal.SIGINT, signal.SIGTERM})

    def __init__(self, launcher: bool = True, shield: bool = False) -> None:
        super().__init__()
        self.launcher, self.shield = launcher, shield
        self._mask: set[int] | None = None
        self._receiver: threading.Event | None = None

    def __enter__(self) -> SweepSignals:
        global _stopped_by
        _stopped_by = None
        SweepSignals.active = super().__enter__()
        if self.shield and MASKS and threading.current_thread() is threading.main_thread():
            # started first: Python's resource tracker, started later, would unblock the signals in
            # this thread (it blocks them around its own start, then unblocks them)
            resource_tracker.ensure_running()
            self._receiver = threading.Event()  # the receiving thread, started before the mask: it keeps them unblocked
            threading.Thread(target=self._receiver.wait, name="auxrun-sweep-signals", daemon=True).start()
            self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, self.HELD)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
            self._mask = None
        if self._receiver is not None:
            self._receiver.set()
            self._receiver = None
        super().__exit__(*exc)
        SweepSignals.active = None

    @classmethod
    def in_worker(cls) -> None:
        """Enter one for the rest of this process, unless one is active (the launcher's, when
        the basic launcher runs the jobs in its own process); then take the signals that the
        launcher's mask held back while this process started."""
        if cls.active is None:
            cls(launcher=False).__enter__()
            sweep.add_worker()  # after the handler: the launcher signals only a worker that can take it
            if MASKS:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, cls.HELD)  # a Ctrl-C held since the start arrives now

    def first(self, signum: int) -> None:
        if not self.launcher:
            return
        sweep.note_stop(signum)  # before reading the workers: one that registers later finds the stop
        handled = sweep.workers()
        for child in multiprocessing.active_children():
            if child.pid in handled:
                with contextlib.suppress(OSError):  # gone already
                    os.kill(child.pid, signal.SIGTERM)
        log.warning("%s received: the sweep stops; running jobs stop after their step and write a checkpoint, "
                    "and no job starts after them (Ctrl-C again to stop at once)", signal.Signals(signum).name)


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


def load_run_state(path: Path, config: dict[str, Any] | None,
                   start: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The checkpoint at ``path`` when it was written by a run of ``config`` (up to keys that never
    change a run's numbers, :func:`~auxrun.report.results.config_differences`) that started
    from ``start`` (the SHA-256 of its pre-trained encoder file: ``pretrained=auto`` may have
    made that file again, differently, since the checkpoint was written; a checkpoint that does
    not say is taken as it is); ``None`` (with a warning where one exists but does not fit)
    otherwise."""
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
    if state.get("start") is not None and state["start"] != start:
        log.warning("ignoring checkpoint %s: its run started from other weights (%s; this run: %s), so it cannot "
                    "go on as this run; starting from the first epoch", path, _said(state["start"]), _said(start))
        return None
    return state


def _said(start: dict[str, Any] | None) -> str:
    """``pretrained_sha256 1a2b3c4d5e6f`` for a checkpoint's ``start``."""
    return ", ".join(f"{k} {str(v)[:12]}" for k, v in (start or {}).items()) or "nothing pre-trained"
