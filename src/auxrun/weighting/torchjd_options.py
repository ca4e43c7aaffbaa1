"""``weighting.options``: the keyword arguments that ``weighting=jd`` passes to a torchjd
aggregator and ``weighting=scalarize`` to a torchjd scalarizer. :func:`check` refuses, when the
config is composed, options that are not a mapping or that name an argument the chosen class
does not take; :func:`build` makes the object and tries it once on a small input, so a value
the class takes but cannot work with is one message before training, not a traceback at the
first step."""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from ..errors import AuxrunError


def check(settings: dict[str, Any], choice: str, classes: dict[str, str], module: str) -> None:
    """``settings["options"]`` is a mapping whose names are parameters of the torchjd class
    ``classes[settings[choice]]`` in ``module`` (an unknown choice is the schema's to name)."""
    options = settings.get("options") or {}
    if not isinstance(options, dict):
        raise AuxrunError(f"weighting.options={options!r}: expected a mapping of keyword arguments of the torchjd "
                          "class; set one with +weighting.options.KEY=VALUE")
    name = classes.get(str(settings.get(choice)))
    if name is None:
        return
    accepted = [p for p in inspect.signature(getattr(importlib.import_module(module), name)).parameters if p != "self"]
    unknown = [str(k) for k in options if k not in accepted]
    if unknown:
        raise AuxrunError(f"weighting.options: torchjd's {name} takes no {', '.join(map(repr, unknown))}; "
                          f"it takes {', '.join(accepted) or 'no options'}")


def build(cls: type, args: tuple[Any, ...], options: dict[str, Any], probe: Callable[[Any], Any]) -> Any:
    """``cls(*args, **options)``, then ``probe`` on a copy of it (a copy: a stateful object's
    state is left as made); anything torchjd raises on the way is one :class:`AuxrunError`."""
    try:
        made = cls(*args, **options)
        probe(copy.deepcopy(made))
    except Exception as exc:  # whatever the class raises for the options it was given
        raise AuxrunError(f"weighting.options={options} do not fit torchjd's {cls.__name__}: "
                          f"{type(exc).__name__}: {exc}") from None
    return made
