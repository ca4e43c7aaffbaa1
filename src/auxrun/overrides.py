"""A command line's overrides composed and checked before any job, as ``auxrun COMMAND`` and
:func:`auxrun.api.compose` both do: unknown options and keys, malformed overrides and values
out of range are one line (:class:`~auxrun.errors.AuxrunError`), not Hydra's report."""

from __future__ import annotations

import re

from omegaconf import DictConfig

from .configs import CONF_DIR, group_options
from .errors import AuxrunError

VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
               "-cd", "--experimental-rerun")
STRICT_GROUPS = ("trainer", "backbone", "dataset", "weighting", "aux", "transfer", "logger")


def check_group_overrides(args: list[str]) -> None:
    """Reject ``group=option`` overrides (sweep lists included) naming no config file, with
    one line listing the options, before Hydra prints its longer report; and ``+group.key``
    additions that no config of the group declares (:func:`auxrun.schema.check_added_keys`)."""
    from .configs import declared_keys
    from .schema import check_added_keys

    check_added_keys(args, {g: set(declared_keys(g)) for g in STRICT_GROUPS})
    for arg in args:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or "." in key or "/" in key or not (CONF_DIR / key).is_dir():
            continue
        options = group_options(key)
        for choice in value.split(","):
            if choice and choice not in options and not any(c in choice for c in "()[]{}$"):
                raise AuxrunError(f"unknown {key} {choice!r}; available: {', '.join(options)}")


SHAPES = {dict: "a mapping ({...})", list: "a list ([...])"}


def _merge_problem(cause: BaseException) -> str:
    """What OmegaConf found when Hydra merged an override, in the user's terms: a list given
    where the config holds a mapping (``aux.tasks=[]``) or the other way round."""
    detail = str(cause).splitlines()[0] if str(cause).strip() else type(cause).__name__
    held = getattr(cause, "object_type", None)  # the type the config holds at the key
    if detail.startswith("Cannot merge") and held in SHAPES:
        given = next(v for k, v in SHAPES.items() if k is not held)
        return f"{getattr(cause, 'full_key', '') or 'the key'} holds {SHAPES[held]}, not {given}"
    return detail


def precompose(command: str, args: list[str]) -> DictConfig:
    """Compose the config the way Hydra will (each sweep at its first value), so that a key
    that does not exist, a malformed override or a missing option is one line and exit code 2
    rather than Hydra's report; then check its values (:mod:`auxrun.schema`) before any job; returns the composed config."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from .schema import check_folder, check_folders, check_job_folders, validate

    plain, skip = [], False
    for arg in args:  # overrides only: Hydra's flags and their values stay Hydra's
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in VALUE_FLAGS
        else:
            plain.append(arg)
    try:
        parsed = OverridesParser.create().parse_overrides(plain)
    except HydraException as exc:
        raise AuxrunError(f"cannot parse the overrides: {str(exc).splitlines()[0]}") from None
    overrides = []
    for o in parsed:
        key = o.get_key_element()
        if key in ("hydra.run.dir", "hydra.sweep.dir") and not o.is_sweep_override():
            check_folder(key, o.value())
            if key == "hydra.sweep.dir":
                check_job_folders(key, o.value())
        if key == "hydra.launcher.n_jobs":  # joblib's: 0 has no meaning, negative counts back from the cores
            value = o.value()
            if isinstance(value, bool) or not isinstance(value, int) or value == 0 or abs(value) > 4096:
                raise AuxrunError(f"hydra.launcher.n_jobs={value!r}: expected a number of parallel jobs, 1 to 4096 "
                                  "(or -1 for one per core)")
        group = key.lstrip("+~")
        if group.startswith("hydra"):
            continue  # Hydra's own settings (launcher, run and sweep folders) are Hydra's to check
        if (not o.is_sweep_override() and not o.is_delete() and not isinstance(o.value(), str) and "." not in group
                and (CONF_DIR / group).is_dir()):  # a list, mapping or null: Hydra merges a list of options, or fails
            keys = f"; its keys are set one by one, e.g. {group}.KEY=VALUE" if o.value() is not None else ""
            raise AuxrunError(f"{o.input_line}: {group} takes the name of one option "
                              f"({', '.join(group_options(group))}){keys}")
        if o.is_sweep_override():
            first = next(iter(o.sweep_string_iterator()), None)
            if first is None:
                continue
            overrides.append(f"{key}={first}")
        else:
            overrides.append(o.input_line)
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_module("auxrun.conf", version_base="1.3"):
            cfg = compose(config_name=command, overrides=overrides)
    except HydraException as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        unknown = re.match(r"Could not override '([^']+)'", lines[0]) if lines else None
        if unknown:
            key = unknown.group(1)
            given = next((x.split("=", 1)[1] for x in overrides if x.split("=", 1)[0].lstrip("+~") == key), "")
            raise AuxrunError(unknown_key_message(command, key, given)) from None
        raise AuxrunError(f"{lines[0]}: {_merge_problem(exc.__cause__)}" if exc.__cause__ and lines
                          else " ".join(lines[:2])) from None
    validate(cfg)
    check_folders(cfg)
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    for key in sorted(given):
        group, _, rest = key.partition(".")
        if rest == "name" and group in STRICT_GROUPS and group != "trainer":  # the option's own name, read as such
            raise AuxrunError(f"{key} is the name of the chosen {group} option, not a setting; choose another "
                              f"option with {group}=NAME ({', '.join(group_options(group))})")
    for key in ("trainer.fanout", "trainer.eval_fanout"):
        if key in given and cfg.trainer.get("sampling") != "neighbor":
            raise AuxrunError(f"{key} is read only with trainer.sampling=neighbor (this run trains on the whole "
                              "graph): add trainer.sampling=neighbor, or leave the fanout out")
    return cfg


def unknown_key_message(command: str, key: str, given: str) -> str:
    """One line for an override Hydra could not apply to ``key`` (given the value ``given``):
    a typo in a key says which keys there are, not how to add a new one."""
    from .configs import declared_keys, declaring_options

    group, _, rest = key.partition(".")
    if group not in STRICT_GROUPS or not rest:
        return f"unknown key {key}; `auxrun {command} --cfg job` shows every key"
    if given.lstrip().startswith("{"):  # the key exists; the value brought keys it lacks
        return (f"{key}: a value with keys {key} does not have; add each with +{key}.KEY=VALUE "
                f"(e.g. +weighting.options.mu=0.5)")
    if rest in declared_keys(group):  # a key of other options of the group
        return (f"unknown key {key}: the chosen {group} option has no key {rest!r}; it belongs to "
                f"{group}={', '.join(declaring_options(group, rest))} (and options built on them)")
    known = ", ".join(sorted(k for k in declared_keys(group) if "." not in k))
    return f"unknown key {key}: {group} has no key {rest!r}; its keys: {known}"
