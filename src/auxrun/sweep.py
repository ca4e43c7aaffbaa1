"""What the processes of one command share: a folder that the command creates
(:func:`shared`) and names in ``AUXRUN_SWEEP``, which every process it starts inherits (a
sweep's joblib workers, and the workers joblib starts later to replace one).

It holds

* ``failures``: one line per failed job of a sweep (exit code, run folder, message), appended
  by the process that ran the job (:func:`note_failure`), read by the command at the end
  (:func:`failures`);
* ``stop``: the signal that stopped the sweep, written by the launcher when it gets it
  (:func:`note_stop`) and read by every job before it starts (:func:`stopped`). A process's
  memory is not enough: joblib replaces a worker whose memory grew during a job, and the new
  worker, started after the signal, learns of the stop only here;
* ``workers/<pid>``: the worker processes that handle a stop signal
  (:class:`auxrun.train.resume.SweepSignals`), to which the launcher passes it on
  (:func:`workers`). A worker that is still starting has no handler yet, and a signal would
  kill it (and joblib would then abort the pool); it is not signalled, and reads ``stop``
  before its first job instead.

Outside a command (the Python API, tests) there is no such folder, and each function does
nothing or finds nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .atomic import write_text

ENV = "AUXRUN_SWEEP"


@contextlib.contextmanager
def shared() -> Iterator[Path]:
    """A fresh shared folder, named in ``AUXRUN_SWEEP`` while the block runs, removed after it."""
    folder = Path(tempfile.mkdtemp(prefix="auxrun-sweep-"))
    previous = os.environ.get(ENV)
    os.environ[ENV] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
        shutil.rmtree(folder, ignore_errors=True)


def folder() -> Path | None:
    """This process's shared folder, or ``None`` outside a command."""
    name = os.environ.get(ENV)
    return Path(name) if name else None


def note_failure(run_dir: Path, message: str, code: int) -> None:
    """Append a failed job (its exit code, run folder and one-line message) to ``failures``."""
    shared_dir = folder()
    if shared_dir is None:
        return
    line = f"{code}\t{run_dir}\t{' '.join(message.split())}\n"
    with contextlib.suppress(OSError):
        with open(shared_dir / "failures", "a") as fh:  # one short append per job: whole lines from parallel workers
            fh.write(line)


def failures() -> list[tuple[int, str, str]]:
    """The failed jobs noted so far: ``(exit code, run folder, message)`` each, in order."""
    shared_dir = folder()
    try:
        lines = (shared_dir / "failures").read_text().splitlines() if shared_dir else []
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split("\t", 2)
        if len(parts) == 3 and parts[0].isdigit():
            out.append((int(parts[0]), parts[1], parts[2]))
    return out


def note_stop(signum: int) -> None:
    """Record that ``signum`` stops the sweep (atomically: a reader sees it whole or not at all).
    The first one stays."""
    shared_dir = folder()
    if shared_dir is not None and stopped() is None:
        with contextlib.suppress(OSError):
            write_text(shared_dir / "stop", f"{int(signum)}\n")


def stopped() -> int | None:
    """The signal that stopped the sweep, or ``None``."""
    shared_dir = folder()
    try:
        text = (shared_dir / "stop").read_text().strip() if shared_dir else ""
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def add_worker(pid: int | None = None) -> None:
    """Register a worker process (this one by default) as one that handles a stop signal."""
    shared_dir = folder()
    if shared_dir is not None:
        with contextlib.suppress(OSError):
            (shared_dir / "workers").mkdir(exist_ok=True)
            (shared_dir / "workers" / str(pid or os.getpid())).touch()


def workers() -> set[int]:
    """The registered worker processes (some may have ended since)."""
    shared_dir = folder()
    if shared_dir is None or not (shared_dir / "workers").is_dir():
        return set()
    return {int(p.name) for p in (shared_dir / "workers").iterdir() if p.name.isdigit()}
