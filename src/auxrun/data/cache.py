"""On-disk cache of things that are slow to build from a dataset (graphs, meta-path labels).

An entry lives at ``<cache_dir>/<kind>/<key>.pt``; ``key`` is a hash of everything the entry
depends on (loader version, the dataset config, the seed, the source files' sizes and
modification times), so a changed input is a different key and a sweep builds each entry
once. Entries are written atomically; an unreadable entry is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..atomic import save_torch

T = TypeVar("T")
log = logging.getLogger(__name__)
console = Console(stderr=True)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable ``parts``."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def file_stamp(path: str | os.PathLike) -> dict[str, Any]:
    """What identifies a source file's version cheaply: its path, size and mtime."""
    st = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def file_hash(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cached(cache_dir: str | os.PathLike | None, kind: str, key: str, build: Callable[[], T]) -> T:
    """``build()``'s result, loaded from ``cache_dir/kind/key.pt`` when present, else built
    and stored there. ``cache_dir=None`` disables caching."""
    if cache_dir is None:
        return build()
    path = Path(cache_dir) / kind / f"{key}.pt"
    if path.exists():
        try:
            obj = torch.load(path, weights_only=False)
            log.info("loaded %s from cache %s", kind, path)
            return obj
        except Exception as exc:  # a damaged entry is rebuilt, never fatal
            log.warning("rebuilding unreadable cache entry %s (%s)", path, exc)
    obj = build()
    save_torch(path, obj)
    return obj


@contextmanager
def progress(description: str, total: int, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """A progress bar for a build with ``total`` stages; yields ``advance(stage_name, steps=1)``."""
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("{task.fields[stage]}"), console=console,
                   transient=False, disable=not enabled)
    with bar:
        task = bar.add_task(description, total=total, stage="")

        def advance(stage: str = "", steps: int = 1) -> None:
            bar.update(task, advance=steps, stage=stage)

        yield advance
