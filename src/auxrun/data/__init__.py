"""Datasets: ``dataset.loader`` (default ``dataset.name``) -> the registered loader
(:mod:`auxrun.data.registry`) that builds a :class:`GraphData` or :class:`MolData`."""

from __future__ import annotations

import importlib
import pkgutil

from omegaconf import DictConfig

from ..errors import AuxrunError
from .checks import check_dataset
from .graph import EdgeType, GraphData, NodeLabels, PairLabels, TargetSpec
from .molecules import MolData
from .registry import KINDS, REGISTRY, Loader, datasets_of, fits_layout, loader, loader_name, loader_of

for _module in pkgutil.iter_modules(__path__):  # each loader module registers its loaders
    importlib.import_module(f"{__name__}.{_module.name}")

MOLECULAR_LOADERS = tuple(name for name, found in REGISTRY.items() if "molecules" in found.kinds)


def read(cfg: DictConfig, seed: int, cache_dir: str | None = None) -> GraphData | MolData:
    """What the loader ``cfg.loader`` (default ``cfg.name``) builds for the run's ``seed``
    (splits), with each file checked as it is read but the whole not yet checked (tests of a
    loader's parsing read tiny files this way); loaders that build slowly keep what they built
    under ``cache_dir``."""
    name = loader_name(cfg)
    try:
        found = REGISTRY[name]
    except KeyError:
        raise AuxrunError(
            f"unknown dataset loader {name!r}; available: {', '.join(sorted(REGISTRY))}"
        ) from None
    return found.load(cfg, seed, cache_dir)


def load(cfg: DictConfig, seed: int, cache_dir: str | None = None) -> GraphData | MolData:
    """The dataset a run trains on: :func:`read`, then checked whole
    (:func:`~auxrun.data.checks.check_dataset`: every split non-empty, every index in range,
    the classes each metric needs present)."""
    return check_dataset(read(cfg, seed, cache_dir))


__all__ = ["EdgeType", "GraphData", "NodeLabels", "MolData", "PairLabels", "TargetSpec", "KINDS", "REGISTRY", "Loader",
           "MOLECULAR_LOADERS", "datasets_of", "fits_layout", "load", "loader", "loader_name", "loader_of", "read"]
