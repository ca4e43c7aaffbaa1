"""Which runs must have started from one encoder file, and which did not.

A table compares strategies seed by seed: on one dataset and backbone, the ``none`` run of
seed ``s`` and the ``pcgrad`` run of seed ``s`` differ only in the strategy. When they
fine-tune a pre-trained encoder named by the same setting (``pretrained=auto``, or one
``pretrained=PATH``), they must also have loaded the same weights. Each record keeps the
SHA-256 of the file it loaded (``pretrained_sha256``), so that can be checked.

It can fail without any config changing: ``pretrained=auto``'s encoder is made again where
its file is gone (a lost or moved ``outputs/``), and a pre-training repeats bit for bit only on
one machine with one set of library releases. Seed 1's MOSES GIN of the RCGrad slice was one
file on 7 December 2026 and another, on a fresh install on another machine, on 8 December.

* :func:`start_key`: what runs that must share a start have in common;
* :func:`differing_starts`: the keys whose runs loaded different files, for ``auxrun compare``'s
  warning;
* :func:`refuse_another_start`: a sweep's job that would load another file than the finished
  jobs of its key did stops before it trains.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import AuxrunError

StartKey = tuple[str, str, int, str]
"""``(dataset, backbone, seed, pretrained setting)``."""

FINISHED = ("completed", "diverged", "pruned")


def start_key(record: dict[str, Any]) -> StartKey | None:
    """The dataset, backbone, seed and ``pretrained`` setting (as configured, ``auto`` or a
    path) of a run that loaded a pre-trained encoder; ``None`` for a run that did not."""
    setting = (record.get("config") or {}).get("pretrained")
    if not record.get("pretrained_sha256") or setting is None:
        return None
    return str(record["dataset"]), str(record["backbone"]), int(record["seed"]), str(setting)


def describe_start(key: StartKey) -> str:
    """``dataset/backbone seed S (pretrained=...)``."""
    dataset, backbone, seed, setting = key
    return f"{dataset}/{backbone} seed {seed} (pretrained={setting})"


def differing_starts(starts: Iterable[tuple[Any, StartKey | None, str | None]]) -> dict[StartKey, dict[str, Any]]:
    """For each start key whose runs loaded files of different content, of ``starts`` (a run,
    e.g. its folder; its :func:`start_key`; the SHA-256 of the file it loaded): each file's
    SHA-256 and the first run that loaded it."""
    files: dict[StartKey, dict[str, Any]] = {}
    for run, key, digest in starts:
        if key is not None and isinstance(digest, str):
            files.setdefault(key, {}).setdefault(digest, run)
    return {key: seen for key, seen in files.items() if len(seen) > 1}


def current_sweep_dir() -> Path | None:
    """The folder of the Hydra sweep whose job runs now (``hydra.sweep.dir``); ``None`` for a
    single run or outside Hydra."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return Path(str(HydraConfig.get().sweep.dir))


def refuse_another_start(record: dict[str, Any], run_dir: Path, sweep_dir: Path | None) -> None:
    """Stop (:class:`~auxrun.errors.AuxrunError`) a job of the sweep in ``sweep_dir`` whose
    ``record`` (what it is about to record: dataset, backbone, seed, config and the SHA-256 of
    the encoder it loaded) has the :func:`start_key` of finished jobs there that loaded another
    file: the table would pair runs that did not start alike. Nothing is checked outside a
    sweep, or for a run that loads no encoder."""
    from .results import find_results

    key = start_key(record)
    if sweep_dir is None or key is None or not Path(sweep_dir).is_dir():
        return
    others = [(folder, r) for folder, r in find_results(Path(sweep_dir)) if folder.resolve() != run_dir.resolve()
              and r["status"] in FINISHED and start_key(r) == key
              and r["pretrained_sha256"] != record["pretrained_sha256"]]
    if not others:
        return
    folder, first = others[0]
    also = f" and {len(others) - 1} more" if len(others) > 1 else ""
    raise AuxrunError(
        f"{run_dir}: the encoder this job loaded, {record.get('pretrained')} (SHA-256 "
        f"{record['pretrained_sha256'][:12]}), is not the file that finished jobs of this sweep on "
        f"{describe_start(key)} started from ({first['pretrained_sha256'][:12]}, in {first.get('pretrained')}; "
        f"{folder}{also}). It was made again since (pretrained=auto pre-trains where the file is gone, and a "
        "pre-training repeats exactly only on one machine with the same library releases), so this table would "
        "compare runs that did not start from the same weights. Put that file back where the setting finds it "
        "(pretrained=auto looks under paths.outputs), or run those jobs again from this one (remove their folders, "
        "or relaunch with rerun=true), or give this sweep another hydra.sweep.dir")
