"""The one boundary around every command: whatever escapes becomes one line and an exit code.

It is the last resort, not the fix: bad values are refused when the config is composed
(:mod:`auxrun.schema`) and bad files when they are read, each with its own message. What still
escapes lands here:

* :class:`~auxrun.errors.AuxrunError` (bad input, exit 2; a storage failure, exit 1): its message;
* an ``OSError`` of a full disk or an unwritable folder: one line naming the file, exit 1;
* an allocation that failed (out of memory, CPU or GPU): one line with what to shrink, exit 1;
* any other exception, a defect of auxrun: one line with the exception, the run folder and the
  file that holds the full traceback (the run folder's ``error.txt``, or a file in the
  system's temporary folder outside a run), exit 1. ``auxrun --debug ...`` or
  ``AUXRUN_DEBUG=1`` lets the traceback through instead.

Inside a sweep a job that fails does not stop the others: the job records ``status: failed``
in its ``result.json`` (unless the folder holds a finished result, which is never replaced, or
another process is running the folder's job: :class:`~auxrun.errors.FolderInUse`),
notes one line in the command's shared folder (:func:`auxrun.sweep.note_failure`) and returns;
the sweep's command then lists the failed jobs and exits with the highest of their codes. A single run
records ``status: failed`` for an internal error; its bad input is the one line only.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from .errors import AuxrunError
from .run_folder import RunFolder

DEBUG_ENV = "AUXRUN_DEBUG"
EXIT_INTERNAL = 1  # exit codes: 0 completed, 1 internal or storage error, 2 bad input, 3 diverged, 128 + signal
EXIT_DIVERGED = 3
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def debug() -> bool:
    """Whether tracebacks should reach the terminal (``--debug`` or ``AUXRUN_DEBUG=1``)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def write_trace(exc: BaseException, folder: Path | None) -> Path | None:
    """Write ``exc``'s full traceback to ``folder/error.txt`` (outside a run, or where that
    cannot be written, a new file in the temporary folder); its path, or ``None`` if no file
    could be written at all."""
    text = "".join(traceback.format_exception(exc))
    if folder is not None:
        try:
            path = RunFolder(folder).error
            path.write_text(text)
            return path
        except OSError:
            pass
    try:
        fd, name = tempfile.mkstemp(prefix=f"auxrun-error-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return Path(name)
    except OSError:
        return None


def describe(exc: BaseException, folder: Path | None) -> tuple[str, int]:
    """The one line and the exit code for ``exc``, raised in the run folder ``folder`` (or
    outside any run); an internal error's traceback is written first (:func:`write_trace`)."""
    if isinstance(exc, AuxrunError):
        return str(exc), exc.exit_code
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        return (f"cannot write {exc.filename or 'the run folder'}: {exc.strerror}; finished files keep their "
                "previous content"), EXIT_INTERNAL
    if out_of_memory(exc):
        where = f" in {folder}" if folder is not None else ""
        detail = " ".join(str(exc).split())[:200]
        return (f"out of memory{where}: {detail or type(exc).__name__}; use a smaller graph, batch or width, "
                "or trainer.sampling=neighbor for a large graph"), EXIT_INTERNAL
    trace = write_trace(exc, folder)
    where = f" in {folder}" if folder is not None else ""
    saved = f"; the full traceback is in {trace}" if trace else ""
    detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return (f"internal error{where}: {type(exc).__name__}{': ' + detail if detail else ''}{saved} "
            f"(auxrun --debug or {DEBUG_ENV}=1 shows it; please report it)"), EXIT_INTERNAL


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation that failed (Python's, torch's CPU allocator or CUDA's):
    a resource limit, not a defect."""
    import torch

    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))


def failure_base(cfg: Any) -> dict[str, Any]:
    """The fields a failed run's ``result.json`` needs, from its composed config alone (for a
    job that failed before the run built its own record)."""
    from omegaconf import OmegaConf

    def name(group: str) -> str:
        node = cfg.get(group)
        return str(node.get("name", "none")) if node is not None else "none"

    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that cannot resolve: keep what is there
        config = OmegaConf.to_container(cfg, resolve=False)
    weighting = name("transfer") if cfg.get("command") == "zeroshot" else name("weighting")
    return {"command": str(cfg.get("command")), "dataset": name("dataset"), "backbone": name("backbone"),
            "aux": "none" if cfg.get("command") == "zeroshot" else name("aux"), "weighting": weighting,
            "seed": cfg.get("seed"), "config": config}


def record_failure(cfg: Any, folder: Path, exc: BaseException, start: float) -> None:
    """Record ``status: failed`` with ``exc`` in ``folder/result.json``, unless the folder holds a
    finished result (completed, diverged or pruned), which is never replaced, or the run already
    recorded its failure itself."""
    from .report.results import finished, read_result, write_failure

    path = RunFolder(folder).result
    old = read_result(path) if path.exists() else None
    if finished(Path(folder)) is not None or (old is not None and old["status"] == "failed"
                                              and _timestamp(old.get("finished_at")) >= start):
        return
    try:
        write_failure(Path(folder), failure_base(cfg), exc, start)
    except OSError:
        pass  # an unwritable folder: the one line on the terminal says what failed


def _timestamp(value: Any) -> float:
    """Seconds since the epoch of an ISO time stamp (``finished_at``); ``-inf`` if there is none."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return float("-inf")
