"""One job of any command in one run folder: the life of a run around the training loop.

:func:`run_job` is what ``auxrun mtl | finetune | pretrain | zeroshot`` each do with one
composed config: check it (before any data loads), skip a folder that already holds this
config's finished result (unless ``rerun=true``), build the job, train it with the one loop
(:mod:`auxrun.train.loop`), and write ``result.json``:

* completed or diverged: the metrics of the kept epoch, its index, the counts and timings;
* stopped by SIGINT or SIGTERM: ``status: interrupted`` with empty metrics, then
  :class:`~auxrun.train.resume.Interrupted` (exit ``128 + signal``); the same command resumes;
* any error: ``status: failed`` with the error, and the error goes on to the boundary;
* a sweep's job whose pre-trained encoder is not the file that the sweep's finished jobs of its
  dataset, backbone, seed and ``pretrained`` setting loaded: stopped before it trains
  (:func:`~auxrun.report.starts.refuse_another_start`), unless ``rerun=true``;
* a result that cannot be written (a full disk): its metrics in the log, then
  :class:`~auxrun.errors.StorageError`.

One process at a time runs a folder's job: it holds the folder's lock (:func:`occupy`) from
before it looks for a finished result until its result is written, and another process that
comes to the folder meanwhile (a second launch of the same run or sweep) stops with
:class:`~auxrun.errors.FolderInUse` and writes nothing there, so neither removes the other's
temporary files, resumes from the other's checkpoint halfway or replaces its record. The lock
is the kernel's (``flock``), so a process that dies, even killed, leaves none behind.

What differs between commands is a :class:`Scheme`: how a config is checked and built into a
job, what a completed run leaves beside its result (pre-training's encoder), and the one line
that reports it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape

from ..environment import environment
from ..errors import FolderInUse, StorageError
from ..report.results import finished, start_run, write_failure, write_result
from ..report.starts import current_sweep_dir, refuse_another_start
from ..run_folder import RunFolder
from .loggers import make_logger
from .loop import Job, fit
from .resume import Interrupted

log = logging.getLogger(__name__)


class Scheme(Protocol):
    """What one command adds to the run of a job."""

    def validate(self, cfg: DictConfig) -> None:
        """Refuse bad values before any data loads (:class:`~auxrun.errors.AuxrunError`)."""

    def build(self, cfg: DictConfig) -> tuple[Job, dict[str, Any]]:
        """The job, and the fields ``result.json`` records about it (command, dataset, device, ...;
        the run's thread count and resolved config are added)."""

    def completed(self, job: Job, cfg: DictConfig, run_dir: Path, base: dict[str, Any]) -> None:
        """What a completed run writes beside its result (nothing, or pre-training's encoder);
        ``base`` is what :meth:`build` recorded about the job."""

    def summary(self, result: dict[str, Any], job: Job) -> str:
        """The run's one line for the console (the run folder follows it)."""


def run_job(cfg: DictConfig, run_dir: Path, scheme: Scheme, console: Console) -> dict[str, Any]:
    """Run one job of ``cfg`` in ``run_dir`` (see the module docstring); returns the written
    result, or the finished one already there."""
    scheme.validate(cfg)
    run_dir = Path(run_dir)
    with occupy(run_dir):
        return _run(cfg, run_dir, scheme, console)


@contextlib.contextmanager
def occupy(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock (:attr:`~auxrun.run_folder.RunFolder.lock`, created with the
    folder) for the body; :class:`~auxrun.errors.FolderInUse` at once if another process holds it."""
    from filelock import FileLock, Timeout

    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(RunFolder(run_dir).lock), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise FolderInUse(f"{run_dir}: another auxrun process is running this job now (the same run or sweep "
                          "launched twice?); this one leaves it alone. Wait for that one to finish, or stop it "
                          "(its checkpoint is kept) and launch again") from None
    try:
        yield
    finally:
        lock.release()


def _run(cfg: DictConfig, run_dir: Path, scheme: Scheme, console: Console) -> dict[str, Any]:
    """:func:`run_job` in the folder it holds."""
    config, done = start_run(cfg, run_dir, console)
    if done is not None:
        return done
    start = time.time()
    job, base = scheme.build(cfg)
    base = {**base, "threads": torch.get_num_threads(), "environment": environment(base.get("device", "cpu")),
            "config": config}
    if not cfg.get("rerun", False):  # rerun=true replaces the sweep's runs, the ones that differ among them
        refuse_another_start(base, run_dir, current_sweep_dir())
    try:
        weights = {"pretrained_sha256": base["pretrained_sha256"]} if "pretrained_sha256" in base else None
        out = fit(job, cfg.trainer, run_dir, config, make_logger(cfg, run_dir), console, weights)
    except Exception as exc:
        with contextlib.suppress(OSError):  # a full disk must not hide the error itself
            if finished(run_dir) is None:  # a failed rerun (rerun=true) keeps the result it was to replace
                write_failure(run_dir, base, exc, start)
        raise
    state = out.state
    record = {**base, "status": state.status, "message": state.message, "epochs_run": state.epochs_run,
              "steps": state.step, "val_history": state.history}
    if state.status == "interrupted":
        assert out.signum is not None
        write_result(run_dir, {**record, "metrics": {"val": {}, "test": {}},
                               "runtime_s": round(out.earlier_seconds + time.time() - start, 3)})
        raise Interrupted(out.signum, f"{run_dir}: {state.message}")
    if state.status == "completed":
        scheme.completed(job, cfg, run_dir, base)
    result = _write(run_dir, state.status, {**record, "metrics": {"val": out.val, "test": out.test},
                                            "best_epoch": state.best_epoch, "best_score": state.best_score,
                                            "seconds_per_step": out.seconds_per_step,
                                            "runtime_s": round(out.earlier_seconds + time.time() - start, 3)})
    console.print(f"{scheme.summary(result, job)} -> {escape(str(run_dir))}", soft_wrap=True)  # the run
    # folder stays on one line a log reader can copy
    return result


def _write(run_dir: Path, status: str, result: dict[str, Any]) -> dict[str, Any]:
    """Write ``result``; on a storage error its metrics go to the log and :class:`StorageError` is
    raised. No failure record is written then: it would go to the same full disk, and where it
    fits (the failed write's temporary file freed its space) it would replace the finished
    result of an earlier run of the folder."""
    try:
        return write_result(run_dir, result)
    except OSError as exc:  # a full disk: the metrics still reach the log, and the old files stay intact
        log.error("%s: the run %s but result.json could not be written (%s); its metrics: %s", run_dir,
                  status, exc, json.dumps(result["metrics"]))
        raise StorageError(f"{run_dir}: the run {status} but its result could not be written "
                           f"({exc.strerror or exc}); its metrics are in the log line above") from None


def run_command(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """One job of ``cfg.command`` in ``run_dir`` with the job's thread settings: the run the
    CLI's Hydra task and :func:`auxrun.api.run` both start. ``zeroshot`` runs the zero-shot
    scheme, every other command the task scheme."""
    from ..threads import configure

    if cfg.command == "zeroshot":
        from ..transfer.zeroshot import run
    else:
        from .commands import run
    configure(cfg.get("threads", "auto"))
    return run(cfg, run_dir)
