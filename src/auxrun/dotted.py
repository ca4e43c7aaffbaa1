"""Nested mappings as dotted keys: the one flattener behind the schema's checks, the groups of
runs that ``compare`` pools, the ``config.*`` columns of :func:`auxrun.runs` and the logged
hyper-parameters. Imports nothing heavy, so the light paths (``auxrun.runs``) stay light."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of every leaf: ``{"a": {"b": 1}, "c": {}}`` -> ``{"a.b": 1, "c": {}}``.

    A non-empty mapping is descended into; everything else, an empty mapping included, is a leaf.
    ``prefix`` is prepended to every key as given (pass ``"config."`` for ``config.a.b``)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out |= flat(value, f"{name}.")
        else:
            out[name] = value
    return out
