"""Atomic file writes: a finished result is never left half-written.

Every writer goes to a temporary file in the destination folder and then ``os.replace``s it,
which is atomic on POSIX, so a reader sees either the old file or the complete new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any



def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once: os.umask can only be read by setting it


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path``, then rename it to ``path``.

    The file gets the permissions of any file the user creates (``0666`` less the umask; the
    temporary file alone would be ``0600``). When writing fails (a full disk: ``ENOSPC``),
    the temporary file is removed and ``path`` keeps its previous content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~UMASK)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON."""
    data = (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode()
    return atomic_write(path, lambda fh: fh.write(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write a text file."""
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically ``torch.save`` an object. torch's zip writer turns a failed write (a full
    disk) into a ``RuntimeError``; the ``OSError`` behind it is raised instead, so callers see
    one kind of storage error. torch is imported here, not with the module: the commands
    that write no tensor (``--help``, ``compare``) start without it."""
    import torch

    def write(fh: IO[bytes]) -> None:
        try:
            torch.save(obj, fh)
        except RuntimeError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, OSError):
                raise cause from None
            raise
    return atomic_write(path, write)
