"""Weighting strategies: ``weighting.name`` -> class; one module per strategy family."""

from __future__ import annotations

from typing import Any

from ..errors import AuxrunError
from .base import TARGET, Diagnostics, LossWeighting, Step, Weighting
from .arml import ARML
from .auxinash import AuxiNash
from .blo import BLO, AuxiLearn, BLORCGrad
from .fixed import Fixed, NoAux
from .gradient import GCS, GCSGNS, GNS, Cosine, Jd, PCGrad
from .gradnorm import GradNorm
from .meta import AuxTS, Selar
from .metabalance import MetaBalance
from .rcgrad import RCGrad
from .scalarize import Scalarize

# in display order: the rows of every comparison table follow it (:func:`display_order`)
REGISTRY: dict[str, type[Weighting]] = {c.name: c for c in (
    NoAux, Fixed, Cosine, Selar, AuxTS, GCS, GNS, GCSGNS, PCGrad, RCGrad, BLO, BLORCGrad, Jd,
    AuxiLearn, ARML, AuxiNash, MetaBalance, GradNorm, Scalarize)}


def display_order() -> list[str]:
    """Every ``weighting=`` option in table order: each class of :data:`REGISTRY` in turn,
    then the presets built on it (``auxts_all``: ``strategy: auxts``), by name."""
    from ..configs import group_options, option_settings

    presets: dict[str, list[str]] = {}
    for option in group_options("weighting"):
        presets.setdefault(str(option_settings("weighting", option).get("strategy", option)), []).append(option)
    return [o for name in REGISTRY for o in [name, *sorted(set(presets.get(name, [])) - {name})]]


def build(cfg: Any, tasks: list[str]) -> Weighting:
    """Instantiate the strategy ``cfg.strategy`` (default ``cfg.name``; a preset such as
    ``auxts_all`` names its class there) for ``tasks`` (``"target"`` first, as the engine
    orders a step's losses)."""
    kind = str(cfg.get("strategy", cfg.name))
    try:
        cls = REGISTRY[kind]
    except KeyError:
        raise AuxrunError(f"unknown weighting {kind!r}; available: {', '.join(REGISTRY)}") from None
    return cls(cfg, tasks)


__all__ = ["TARGET", "Diagnostics", "LossWeighting", "Step", "Weighting", "REGISTRY", "build", "display_order"]
