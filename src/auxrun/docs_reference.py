"""The documentation's reference tables, generated from the registries and the schema.

The site's pages hold markers, ``<!-- auxrun:NAME ARG -->`` alone on a line, which the build
(``tools/mkdocs_hooks.py``) replaces with :func:`render` of that marker, so what the pages list
is what the code has on the day the site is built:

- ``commands``: every ``auxrun`` command and its help line (the Typer app);
- ``groups``: every config group, its options and each run command's default
  (``conf/<command>.yaml``);
- ``keys GROUP``: every key the options of a group set, the allowed values
  (:func:`auxrun.schema.spec_of`, the spec the config is checked against) and the value of each
  option, shortened where many options agree;
- ``family NAME``: the strategies of one family (``Weighting.family``), their ``weighting=``
  options (presets included) and their own keys with defaults;
- ``search``: the shared search space of ``auxrun tune`` (``trainer.search`` of each trainer);
- ``datasets``: every ``dataset=`` option, how auxrun gets it, who publishes it and its licence
  (:data:`auxrun.data.sources.SOURCES`).

An unknown marker is an error, so a page cannot silently lose its table.
"""

from __future__ import annotations

import re
from collections import defaultdict

from omegaconf import DictConfig, OmegaConf

from .configs import CONF_DIR, composed_settings, group_options
from .dotted import flat
from .errors import AuxrunError

MARKER = re.compile(r"^<!-- auxrun:(\w+)(?: ([\w.-]+))? -->$", re.MULTILINE)
RUN_COMMANDS = ("mtl", "pretrain", "finetune", "zeroshot")
SHOWN_VALUES = 6  # options listed per key before the rest are counted


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def defaults(command: str) -> dict[str, str]:
    """The option each config group defaults to for ``auxrun COMMAND``."""
    found: dict[str, str] = {}
    for item in OmegaConf.load(CONF_DIR / f"{command}.yaml").get("defaults", []):
        if isinstance(item, (DictConfig, dict)):
            found.update({str(k).removeprefix("override ").lstrip("/"): str(v) for k, v in item.items()})
    return found


def groups() -> list[str]:
    """The config groups users pick from (the private ``_*`` folders and Hydra's own left out)."""
    return sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", "hydra")))


def commands_table() -> str:
    """Every command of the ``auxrun`` CLI with the first line of its help."""
    import typer.main

    from . import cli

    group = typer.main.get_group(cli.app)
    rows = ["| command | what it does |", "|---|---|"]

    def walk(cmd, prefix: str) -> None:
        for name in sorted(getattr(cmd, "commands", {})):
            sub = cmd.commands[name]
            if getattr(sub, "commands", None):
                walk(sub, f"{prefix} {name}")
                continue
            first = (sub.help or "").strip().split("\n")[0]
            rows.append(f"| `{prefix} {name}` | {_cell(first)} |")

    walk(group, "auxrun")
    return "\n".join(rows)


def groups_table() -> str:
    """Every config group, its options and the default of each run command."""
    per_command = {c: defaults(c) for c in RUN_COMMANDS}
    head = "| group | options | " + " | ".join(f"`{c}` default" for c in RUN_COMMANDS) + " |"
    rows = [head, "|---|---|" + "---|" * len(RUN_COMMANDS)]
    for group in groups():
        options = ", ".join(f"`{o}`" for o in group_options(group))
        cells = " | ".join(f"`{per_command[c][group]}`" if per_command[c].get(group, "None") != "None" else "-"
                           for c in RUN_COMMANDS)
        rows.append(f"| `{group}` | {options} | {cells} |")
    return "\n".join(rows)


def _values(by_option: dict[str, object]) -> str:
    """``value (options)`` per distinct value, the most common first, the rest counted."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for option, value in by_option.items():
        grouped[OmegaConf.to_yaml({"v": value}).strip()[3:] if isinstance(value, (list, dict)) else str(value)] \
            .append(option)
    parts = sorted(grouped.items(), key=lambda item: (-len(item[1]), item[0]))
    shown = [f"`{v}` ({', '.join(opts) if len(opts) <= 3 else f'{len(opts)} options'})" for v, opts in
             parts[:SHOWN_VALUES]]
    if len(parts) > SHOWN_VALUES:
        shown.append(f"{len(parts) - SHOWN_VALUES} other values")
    return "; ".join(shown)


def keys_table(group: str) -> str:
    """Every key the options of ``group`` set, what the schema allows, and each option's value."""
    from .schema import spec_of

    if group not in groups():
        raise AuxrunError(f"docs marker: no config group {group!r}; groups: {', '.join(groups())}")
    values: dict[str, dict[str, object]] = defaultdict(dict)
    for option in group_options(group):
        for key, value in flat(composed_settings(group, option)).items():
            values[key][option] = value
    rows = ["| key | allowed | value per option |", "|---|---|---|"]
    # the option itself names the run; search spaces are listed with the strategies (family tables)
    for key in sorted(k for k in values if k != "name" and not k.startswith("search.")):
        spec = spec_of(f"{group}.{key}")
        allowed = spec.describe() if spec else "free (checked where it is read)"
        rows.append(f"| `{group}.{key}` | {_cell(allowed)} | {_cell(_values(values[key]))} |")
    return "\n".join(rows)


def family_table(family: str) -> str:
    """The strategies of ``family``: their options and their own keys with their defaults."""
    from .schema import spec_of
    from .weighting import FAMILIES, REGISTRY, display_order

    if family not in FAMILIES:
        raise AuxrunError(f"docs marker: no strategy family {family!r}; families: {', '.join(FAMILIES)}")
    rows = [f"*{FAMILIES[family]}.*", "",
            "| `weighting=` | class | its keys (default; allowed) | searched by `auxrun tune` (with `trainer.search`) |",
            "|---|---|---|---|"]
    for option in display_order():
        settings = composed_settings("weighting", option)
        strategy = str(settings.get("strategy", option))
        if strategy not in REGISTRY or REGISTRY[strategy].family != family:
            continue
        keys = []
        for key, value in sorted(flat(settings).items()):
            if key in ("name", "strategy") or key.startswith("search."):
                continue
            spec = spec_of(f"weighting.{key}")
            keys.append(f"`{key}={value}`" + (f" ({_cell(spec.describe())})" if spec else ""))
        searched = [f"`{_dim_text(name, entry)}`" for name, entry in (settings.get("search") or {}).items()]
        rows.append(f"| `{option}` | `{REGISTRY[strategy].__name__}` | {'<br>'.join(keys) or '-'} | "
                    f"{'<br>'.join(searched) or '-'} |")
    return "\n".join(rows)


def _dim_text(name: str, entry: dict) -> str:
    from .tuning.space import _dim

    return _cell(_dim(f"weighting.{name}", entry).describe())


def search_table() -> str:
    """The shared search space, ``trainer.search``, of every trainer option."""
    from .tuning.space import _dim

    rows = ["| `trainer=` | searched by `auxrun tune` for every strategy |", "|---|---|"]
    for option in group_options("trainer"):
        entries = composed_settings("trainer", option).get("search") or {}
        dims = [f"`{_cell(_dim(f'trainer.{k}', v).describe())}`" for k, v in entries.items()]
        rows.append(f"| `{option}` | {'<br>'.join(dims) or '-'} |")
    return "\n".join(rows)


def datasets_table() -> str:
    """Every ``dataset=`` option: how auxrun gets it, who publishes it, its licence."""
    from .data.sources import SOURCES

    how = {"download": "`auxrun data download {name}`", "manual": "by hand (`auxrun data list` says how)",
           "package": "installed by `make setup` ({package})", "generated": "made by auxrun"}
    rows = ["| `dataset=` | how to get it | where it comes from | licence |", "|---|---|---|---|"]
    for name in group_options("dataset"):
        src = SOURCES.get(name)
        if src is None:
            raise AuxrunError(f"dataset={name} has no entry in auxrun.data.sources")
        rows.append(f"| `{name}` | {how[src.kind].format(name=name, package=src.package)} | {_cell(src.origin)} | "
                    f"{_cell(src.licence)} |")
    return "\n".join(rows)


def render(name: str, arg: str | None = None) -> str:
    """The Markdown of marker ``<!-- auxrun:NAME ARG -->``."""
    simple = {"commands": commands_table, "groups": groups_table, "datasets": datasets_table, "search": search_table}
    if name in simple and arg is None:
        return simple[name]()
    if name == "keys" and arg:
        return keys_table(arg)
    if name == "family" and arg:
        return family_table(arg)
    raise AuxrunError(f"unknown docs marker <!-- auxrun:{name}{' ' + arg if arg else ''} -->")


def expand(markdown: str) -> str:
    """``markdown`` with every marker replaced by its table."""
    return MARKER.sub(lambda m: render(m.group(1), m.group(2)), markdown)
