"""Weighting strategies: ``weighting.name`` -> class.

Every module of this package is imported here, and every class in it that sets its own
``name`` registers itself (:meth:`~.base.Weighting.__init_subclass__`) with its ``family``
(:data:`~.base.FAMILIES`) and its ``order`` in the tables: a new strategy is a new module and
its config file (``conf/weighting/<name>.yaml``), nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ..errors import AuxrunError
from . import base
from .base import FAMILIES, TARGET, Diagnostics, LossWeighting, Step, Weighting

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

# in display order: the rows of every comparison table follow it (:func:`display_order`)
REGISTRY: dict[str, type[Weighting]] = dict(sorted(base.REGISTRY.items(), key=lambda item: item[1].order))


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


__all__ = ["FAMILIES", "TARGET", "Diagnostics", "LossWeighting", "Step", "Weighting", "REGISTRY", "build",
           "display_order"]
