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

REGISTRY: dict[str, type[Weighting]] = {
    "none": NoAux, "fixed": Fixed, "cosine": Cosine, "selar": Selar, "auxts": AuxTS,
    "gcs": GCS, "gns": GNS, "gcs_gns": GCSGNS, "pcgrad": PCGrad, "rcgrad": RCGrad, "blo": BLO, "blo_rcgrad": BLORCGrad, "jd": Jd,
    "auxilearn": AuxiLearn, "arml": ARML, "auxinash": AuxiNash, "metabalance": MetaBalance, "gradnorm": GradNorm,
    "scalarize": Scalarize,
}


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


__all__ = ["TARGET", "Diagnostics", "LossWeighting", "Step", "Weighting", "REGISTRY", "build"]
