"""Weighting strategies: ``weighting.name`` -> class; one module per strategy family."""

from __future__ import annotations

from typing import Any

from ..errors import AuxrunError
from .base import TARGET, Diagnostics, LossWeighting, Step, Weighting
from .fixed import Fixed, NoAux

REGISTRY: dict[str, type[Weighting]] = {"none": NoAux, "fixed": Fixed}


def build(cfg: Any) -> Weighting:
    """Instantiate the strategy named by ``cfg.name`` with its config."""
    try:
        cls = REGISTRY[cfg.name]
    except KeyError:
        raise AuxrunError(f"unknown weighting {cfg.name!r}; available: {', '.join(REGISTRY)}") from None
    return cls(cfg)


__all__ = ["TARGET", "Diagnostics", "LossWeighting", "Step", "Weighting", "REGISTRY", "build"]
