"""Where the Hydra configs live (the installed package ``auxrun.conf``) and what each group offers.

Kept apart from the CLI so that the schemes can read the config folder without importing the
command line (which imports the schemes).
"""

from __future__ import annotations

import copy
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
def option_file(group: str, option: str) -> tuple[dict, bool]:
    """The option file ``<group>/<option>.yaml`` as written, and whether it is in the global
    package (``# @package _global_``: its keys start at the config's root); ``({}, False)``
    when there is no such file."""
    path = CONF_DIR / group / f"{option}.yaml"
    if not path.is_file():
        return {}, False
    text = path.read_text()
    return yaml.safe_load(text) or {}, "@package _global_" in text.split("\n", 1)[0]


def option_settings(group: str, option: str) -> dict:
    """What the option file of ``group`` sets under the group (a global file's subtree)."""
    tree, is_global = option_file(group, option)
    return (tree.get(group) or {}) if is_global else tree


def composed_settings(group: str, option: str) -> dict:
    """What ``<group>/<option>.yaml`` sets under the group once the files of the same group in
    its defaults list are merged beneath it (``selar`` gets ``lr`` from ``_meta``, ``bbbp`` gets
    ``loader`` from ``_molecules``, ``synthetic_xl`` from ``/dataset/synthetic@dataset``); a
    copy the caller may change."""
    return copy.deepcopy(_composed(group, option))


@cache
def _composed(group: str, option: str) -> dict:
    """:func:`composed_settings`, merged once per option (the files do not change while auxrun runs)."""
    from omegaconf import OmegaConf

    tree, _ = option_file(group, option)
    merged = OmegaConf.create()
    for entry in tree.get("defaults") or []:
        name = str(entry).split("@")[0] if isinstance(entry, str) else ""
        name = name.removeprefix(f"/{group}/")
        if name and name != "_self_" and "/" not in name and (CONF_DIR / group / f"{name}.yaml").is_file():
            merged = OmegaConf.merge(merged, _composed(group, name))
    merged = OmegaConf.merge(merged, {k: v for k, v in option_settings(group, option).items() if k != "defaults"})
    return OmegaConf.to_container(merged)  # type: ignore[return-value]


def option_value(group: str, option: str, key: str, default: object = None) -> object:
    """The value ``<group>/<option>.yaml`` sets for ``key`` under the group, itself or through the
    files of the same group in its defaults list (:func:`composed_settings`); ``default`` where
    none does."""
    return _composed(group, option).get(key, default)



@cache
def option_keys(group: str) -> dict[str, frozenset[str]]:
    """Per option file of ``group`` (private ``_*`` files included), the dotted keys it
    declares itself under the group (not through its defaults list; the group's subtree of
    files that use ``# @package _global_``)."""
    return {f.stem: frozenset(k for k in _keys(option_settings(group, f.stem))
                              if k != "defaults" and not k.startswith("defaults."))
            for f in sorted((CONF_DIR / group).glob("*.yaml"))}


def _empty_mappings(tree: object, prefix: str = "") -> set[str]:
    """The dotted keys of ``tree`` whose value is an empty mapping (``tasks: {}``)."""
    out: set[str] = set()
    if isinstance(tree, dict):
        for key, value in tree.items():
            if value == {}:
                out.add(f"{prefix}{key}")
            out |= _empty_mappings(value, f"{prefix}{key}.")
    return out


@cache
def open_mappings(group: str) -> frozenset[str]:
    """The mappings under ``group`` whose entries are the user's to choose, not auxrun's, as
    dotted keys under the group: those some option file of the group declares empty
    (``aux.tasks``, ``weighting.weights``, ``weighting.options``), and the search spaces of
    ``auxrun tune`` (``trainer.search``, ``weighting.search``: a user may search more keys).
    What they hold is checked when the config is composed, each by the code that reads it."""
    return frozenset().union({k for k in declared_keys(group) if k == "search"},
                             *(_empty_mappings(option_settings(group, f.stem))
                               for f in sorted((CONF_DIR / group).glob("*.yaml"))))


@cache
def root_keys(command: str) -> frozenset[str]:
    """The dotted keys outside the config groups that some file may set for ``command``: the
    command's own file and the root files in its defaults list (``common``), and the option
    files in the global package (an experiment's ``pretrain_overrides``). Hydra's own and the
    groups' keys are left out."""
    groups = {d.name for d in CONF_DIR.iterdir() if d.is_dir()}
    keys: set[str] = set()

    def add(tree: dict) -> None:
        keys.update(k for k in _keys({k: v for k, v in tree.items() if k not in groups and k != "defaults"}))

    def root_file(name: str) -> None:
        tree = yaml.safe_load((CONF_DIR / f"{name}.yaml").read_text()) or {}
        for entry in tree.get("defaults") or []:
            if isinstance(entry, str) and entry != "_self_" and (CONF_DIR / f"{entry}.yaml").is_file():
                root_file(entry)
        add(tree)

    root_file(command)
    for group in sorted(groups):
        for f in sorted((CONF_DIR / group).glob("*.yaml")):
            tree, is_global = option_file(group, f.stem)
            if is_global:
                add(tree)
    return frozenset(keys)


def sweep_params(group: str, option: str) -> dict[str, str]:
    """The ``hydra.sweeper.params`` an option file of ``group`` sets (an experiment's sweep):
    key -> its comma-separated values; empty if it sets none or does not exist."""
    tree, _ = option_file(group, option)
    params = ((tree.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    return {str(k): str(v) for k, v in params.items()}


def declaring_options(group: str, key: str) -> list[str]:
    """The option files of ``group`` that declare ``key`` themselves (not through defaults)."""
    return [name for name, keys in option_keys(group).items() if key in keys]


def declared_keys(group: str) -> frozenset[str]:
    """Every dotted key that some option of ``group`` declares under the group."""
    return frozenset().union(*option_keys(group).values())
