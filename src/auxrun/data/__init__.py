"""Dataset registry: ``dataset.name`` -> loader returning :class:`GraphData`."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig

from ..errors import AuxrunError
from .graph import EdgeType, GraphData, PairLabels, TargetSpec
from .synthetic import load_synthetic

Loader = Callable[[DictConfig, int], GraphData]

REGISTRY: dict[str, Loader] = {"synthetic": load_synthetic}


def load(cfg: DictConfig, seed: int) -> GraphData:
    """Load the dataset with ``cfg.loader`` (default ``cfg.name``) and the run's ``seed`` (splits)."""
    name = str(cfg.get("loader", cfg.name))
    try:
        loader = REGISTRY[name]
    except KeyError:
        raise AuxrunError(
            f"unknown dataset loader {name!r}; available: {', '.join(sorted(REGISTRY))}"
        ) from None
    return loader(cfg, seed)


__all__ = ["EdgeType", "GraphData", "PairLabels", "TargetSpec", "REGISTRY", "load"]
