"""Where the Hydra configs live (the installed package ``auxrun.conf``) and what each group offers.

Kept apart from the CLI so that the schemes can read the config folder without importing the
command line (which imports the schemes).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

import yaml

CONF_DIR = Path(str(files("auxrun.conf")))


def group_options(group: str) -> list[str]:
    """The options of config group ``group``: its YAML files, without the private ``_*`` ones."""
    return sorted(f.stem for f in (CONF_DIR / group).glob("*.yaml") if not f.stem.startswith("_"))


def _keys(tree: object, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(tree, dict):
        for key, value in tree.items():
            name = f"{prefix}{key}"
            out.add(name)
            out |= _keys(value, f"{name}.")
    return out


@cache
def option_keys(group: str) -> dict[str, frozenset[str]]:
    """Per option file of ``group`` (private ``_*`` files included), the dotted keys it
    declares itself under the group (not through its defaults list; the group's subtree of
    files that use ``# @package _global_``)."""
    out = {}
    for f in sorted((CONF_DIR / group).glob("*.yaml")):
        text = f.read_text()
        tree = yaml.safe_load(text) or {}
        if "@package _global_" in text.split("\n", 1)[0]:
            tree = tree.get(group, {})
        out[f.stem] = frozenset(k for k in _keys(tree) if k != "defaults" and not k.startswith("defaults."))
    return out


def sweep_params(group: str, option: str) -> dict[str, str]:
    """The ``hydra.sweeper.params`` an option file of ``group`` sets (an experiment's sweep):
    key -> its comma-separated values; empty if it sets none or does not exist."""
    path = CONF_DIR / group / f"{option}.yaml"
    if not path.is_file():
        return {}
    tree = yaml.safe_load(path.read_text()) or {}
    params = ((tree.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    return {str(k): str(v) for k, v in params.items()}


def declaring_options(group: str, key: str) -> list[str]:
    """The option files of ``group`` that declare ``key`` themselves (not through defaults)."""
    return [name for name, keys in option_keys(group).items() if key in keys]


def declared_keys(group: str) -> frozenset[str]:
    """Every dotted key that some option of ``group`` declares under the group."""
    return frozenset().union(*option_keys(group).values())
