"""A command line's overrides composed and checked before any job, as ``auxrun COMMAND`` and
:func:`auxrun.api.compose` both do: unknown options and keys, malformed overrides and values
out of range are one line (:class:`~auxrun.errors.AuxrunError`), not Hydra's report."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .configs import CONF_DIR, group_options
from .errors import AuxrunError

VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir",
               "-cd", "--experimental-rerun")
INFO_FLAGS, INFO_TOPICS = ("--info", "-i"), ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")
# Hydra's flags that would run another config than the command's, or that do not fit a command
# of auxrun's, and what to do instead
REFUSED_FLAGS = {
    ("--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd"):
        "auxrun {command} runs {command}'s own config, which auxrun checks before any job; choose the command, "
        "and the options with GROUP=OPTION",
    ("--experimental-rerun",): "run the command again with the run's overrides and hydra.run.dir=DIR: a finished "
                               "run is skipped, an interrupted one resumes, rerun=true runs it again",
    ("--shell-completion", "-sc"): "completion of auxrun's commands is installed with `auxrun --install-completion`",
}
_ABSENT = object()
STRICT_GROUPS = ("trainer", "backbone", "dataset", "weighting", "aux", "transfer", "logger")


def split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """A command line's overrides, and Hydra's flags with their values (``--cfg job``,
    ``--info [TOPIC]``), each in their order. Hydra's parser takes the overrides as one run of
    arguments, so an override after a flag (``seed=1 --cfg job trainer.lr=0.1``) would be
    refused there: the command line is handed on as overrides, then flags."""
    plain, flags, skip, after_info = [], [], False, False
    for arg in args:
        if skip or (after_info and arg in INFO_TOPICS):  # --info takes a topic, or none
            flags.append(arg)
            skip = after_info = False
        elif arg.startswith("-"):
            flags.append(arg)
            skip, after_info = arg in VALUE_FLAGS, arg in INFO_FLAGS
        else:
            plain.append(arg)
            after_info = False
    return plain, flags


def check_flags(command: str, args: list[str]) -> None:
    """Refuse Hydra's flags of :data:`REFUSED_FLAGS` (``--flag VALUE`` or ``--flag=VALUE``) with
    one line saying what to do instead."""
    for arg in args:
        for flags, instead in REFUSED_FLAGS.items():
            if arg.split("=", 1)[0] in flags:
                raise AuxrunError(f"{arg.split('=', 1)[0]} is Hydra's, and auxrun does not take it: "
                                  f"{instead.format(command=command)}")


def check_group_overrides(args: list[str]) -> None:
    """Reject ``group=option`` overrides (sweep lists included) naming no config file, with
    one line listing the options, before Hydra prints its longer report; and keys removed that
    auxrun needs (:func:`check_removed_keys`; an added key is checked once composed, by
    :func:`check_added_keys`)."""
    check_removed_keys(args)
    for arg in args:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or "." in key or "/" in key or not (CONF_DIR / key).is_dir():
            continue
        options = group_options(key)
        for choice in value.split(","):
            if choice and choice not in options and not any(c in choice for c in "()[]{}$"):
                raise AuxrunError(f"unknown {key} {choice!r}; available: {', '.join(options)}")


def user_mappings() -> list[str]:
    """The mappings whose entries are the user's to add and remove, as dotted keys, in every
    strict group (:func:`auxrun.configs.open_mappings`)."""
    from .configs import open_mappings

    return sorted(f"{g}.{k}" for g in STRICT_GROUPS for k in open_mappings(g))


def command_not_a_setting(given: str, command: str | None = None) -> str:
    """The message for an override of ``command`` (``command=OTHER``, ``~command``): each
    command's file sets it, and the run reads it to choose what it trains."""
    from .schema import COMMAND_KINDS

    here = f" (here `auxrun {command}`)" if command else ""
    return (f"{given} is set by the command you run{here}, not a setting; to run another, call it: "
            f"auxrun {' | '.join(COMMAND_KINDS)}")


def check_removed_keys(args: list[str]) -> None:
    """Refuse ``~key`` (Hydra's deletion) for anything but what lies in a mapping whose entries
    are the user's (:func:`auxrun.configs.open_mappings`: ``~aux.tasks.noise`` drops an
    auxiliary task, ``~weighting.weights.helpful`` a weight; what is left there is checked once
    composed, as a task's keys by :func:`auxrun.schema.check_aux_tasks`) or the choice of a group
    outside :data:`STRICT_GROUPS` (``~experiment``): auxrun reads every other key its files
    declare, and a run without one would fail inside, or a ``${...}`` that names it would not
    resolve. Hydra's own keys (``hydra.*``, ``hydra/launcher``) are Hydra's to check."""
    opened = user_mappings()
    for arg in args:
        if not arg.startswith("~"):
            continue
        key = arg[1:].partition("=")[0]
        group, _, rest = key.partition(".")
        if key == "command":
            raise AuxrunError(command_not_a_setting("~command"))
        if (group.startswith("hydra") or any(key.startswith(m + ".") for m in opened)
                or (not rest and group not in STRICT_GROUPS and (CONF_DIR / group).is_dir())):
            continue
        whole = not rest and group in STRICT_GROUPS
        instead = f"choose one of its options with {key}=NAME" if whole else f"give it a value with {key}=VALUE"
        raise AuxrunError(f"~{key}: auxrun needs {f'the {key} group' if whole else key}, so it cannot be removed; "
                          f"{instead} (only what lies in these mappings can: "
                          f"{', '.join(f'{k}.NAME' for k in opened)})")


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


def is_multirun(args: list[str]) -> bool:
    """Whether Hydra runs ``args`` as a sweep: ``-m``/``--multirun``, or ``hydra.mode=MULTIRUN``."""
    return any(a in ("-m", "--multirun") or a.lstrip("+") == "hydra.mode=MULTIRUN" for a in args)


def is_sweep(arg: str) -> bool:
    """Whether the override ``arg`` lists several values (``a,b``, ``range()``, ``glob()``, ...),
    as Hydra's parser reads it; a malformed one is not (:func:`precompose` reports it)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_override(arg).is_sweep_override()
    except HydraException:
        return False


def first_of_sweep(o: Any, command: str, multirun: bool) -> str:
    """The first value of the sweep override ``o`` (Hydra's parsed override), which the
    config is composed with before any job. One line where Hydra would print its report, fail
    inside or run nothing in silence: several values without ``-m``; an empty sweep
    (``range(0,0)``); ``interval()``, which only a tuning sweeper can draw from; ``glob()``
    outside a config group, or matching none of its options (Hydra can expand a glob only
    where it loads the group's options)."""
    from hydra.core.override_parser.types import Glob, IntervalSweep

    key = o.get_key_element()
    if not multirun:
        raise AuxrunError(f"{o.input_line} lists several values, which only a sweep runs: "
                          f"`auxrun {command} -m {o.input_line} ...`; a single run takes one value")
    value = o.value()
    if isinstance(value, IntervalSweep):
        raise AuxrunError(f"{o.input_line}: interval() is a range to draw from, which only a tuning sweeper does; "
                          f"list the values ({key}=A,B,C or range(START,STOP,STEP)), or tune with `auxrun tune`")
    if isinstance(value, Glob):
        group = key.lstrip("+~")
        if "." in group or "/" in group or not (CONF_DIR / group).is_dir():
            raise AuxrunError(f"{o.input_line}: glob() picks options of a config group, and {key} is not one; "
                              f"list the values ({key}=A,B,C)")
        chosen = value.filter(group_options(group))
        if not chosen:
            raise AuxrunError(f"{o.input_line} matches no {group} option; available: {', '.join(group_options(group))}")
        return chosen[0]
    first = next(iter(o.sweep_string_iterator()), None)
    if first is None:
        raise AuxrunError(f"{o.input_line} holds no value, so the sweep would run no job")
    return first


def check_hydra_choices(parsed: list[Any]) -> None:
    """The options chosen for Hydra's own groups (``hydra/launcher=joblib``) exist, each a
    name, among the options Hydra finds (its plugins' and auxrun's ``conf/hydra``); called
    where Hydra is initialised. Hydra would print a report, or a traceback for ``null``."""
    from hydra.core.global_hydra import GlobalHydra

    for o in parsed:
        group = o.get_key_element().lstrip("+~")
        if not group.startswith("hydra/") or o.is_delete():
            continue
        loader = GlobalHydra.instance().config_loader()
        options = loader.get_group_options(group)
        if not options:
            raise AuxrunError(f"{o.input_line}: Hydra has no group {group}; its groups are "
                              f"{', '.join(sorted('hydra/' + g for g in loader.list_groups('hydra')))}")
        if not isinstance(o.value(), str) or o.value() not in options:  # one value: precompose refuses a sweep
            raise AuxrunError(f"{o.input_line}: {group} takes the name of one of its options: {', '.join(options)}")


def precompose(command: str, args: list[str]) -> DictConfig:
    """Compose the config the way Hydra will (each sweep at its first value), so that a key
    that does not exist, a malformed override or a missing option is one line and exit code 2
    rather than Hydra's report; then check the keys it adds (:func:`check_added_keys`) and its
    values (:mod:`auxrun.schema`) before any job; returns the composed config."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from .schema import check_folder, check_folders, check_job_folders, validate

    multirun = is_multirun(args)
    plain, _ = split_args(args)  # overrides only: Hydra's flags and their values stay Hydra's
    try:
        parsed = OverridesParser.create().parse_overrides(plain)
    except HydraException as exc:
        raise AuxrunError(f"cannot parse the overrides: {str(exc).splitlines()[0]}") from None
    overrides = []
    for o in parsed:
        key = o.get_key_element()
        if key.lstrip("+~").startswith("hydra") and o.is_sweep_override():
            raise AuxrunError(f"{o.input_line}: Hydra's own settings take one value (it cannot sweep them); run one "
                              "sweep per value")
        if key in ("hydra.run.dir", "hydra.sweep.dir"):
            check_folder(key, o.value())
            if key == "hydra.sweep.dir":
                check_job_folders(key, o.value())
        if key == "hydra.launcher.n_jobs":  # joblib's: 0 has no meaning, negative counts back from the cores
            value = o.value()
            if isinstance(value, bool) or not isinstance(value, int) or value == 0 or abs(value) > 4096:
                raise AuxrunError(f"hydra.launcher.n_jobs={value!r}: expected a number of parallel jobs, 1 to 4096 "
                                  "(or -1 for one per core)")
        if key == "hydra.job.chdir" and o.value() not in (False, "false", None):
            raise AuxrunError(f"{o.input_line}: auxrun reads its paths (paths.data, paths.outputs, pretrained=PATH) "
                              "from the folder it is started in, and writes into the run folder without entering it; "
                              "leave hydra.job.chdir at false")
        group = key.lstrip("+~")
        if group.startswith("hydra"):
            continue  # Hydra's own settings (launcher, run and sweep folders) are Hydra's to check
        if (not o.is_sweep_override() and not o.is_delete() and not isinstance(o.value(), str) and "." not in group
                and (CONF_DIR / group).is_dir()):  # a list, mapping or null: Hydra merges a list of options, or fails
            keys = f"; its keys are set one by one, e.g. {group}.KEY=VALUE" if o.value() is not None else ""
            raise AuxrunError(f"{o.input_line}: {group} takes the name of one option "
                              f"({', '.join(group_options(group))}){keys}")
        if o.is_sweep_override():
            overrides.append(f"{key}={first_of_sweep(o, command, multirun)}")
        else:
            overrides.append(o.input_line)
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_module("auxrun.conf", version_base="1.3"):
            check_hydra_choices(parsed)
            cfg = compose(config_name=command, overrides=overrides)
    except HydraException as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        unknown = re.match(r"Could not override '([^']+)'", lines[0]) if lines else None
        if unknown:
            key = unknown.group(1)
            given = next((x.split("=", 1)[1] for x in overrides if x.split("=", 1)[0].lstrip("+~") == key), "")
            raise AuxrunError(unknown_key_message(command, key, given, getattr(exc.__cause__, "full_key", None))) \
                from None
        raise AuxrunError(f"{lines[0]}: {_merge_problem(exc.__cause__)}" if exc.__cause__ and lines
                          else " ".join(lines[:2])) from None
    if cfg.get("command") != command:  # each command's file sets it, and the run reads it to choose what it trains
        raise AuxrunError(command_not_a_setting(f"command={cfg.get('command')!r}", command))
    added = {o.lstrip("+").split("=", 1)[0]: o for o in overrides if o.startswith("+") and "=" in o}
    added = {k: o for k, o in added.items() if not k.startswith("hydra") and not (CONF_DIR / k).is_dir()}
    if added:
        def base() -> DictConfig:  # the config without the additions, composed only if a check needs it
            try:
                with initialize_config_module("auxrun.conf", version_base="1.3"):
                    return compose(config_name=command, overrides=[o for o in overrides if o not in added.values()])
            except HydraException:  # another override sets what one adds: taken as there
                return cfg
        check_added_keys(command, base, added)
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


def did_you_mean(command: str, key: str) -> str:
    """`` (did you mean trainer.max_epochs?)`` for an unknown ``key`` of ``command``: the keys
    ending in the same name (a key given at the wrong place: ``max_epochs``), else up to three
    ending in the closest spellings of it (:func:`difflib.get_close_matches`, ratio at least
    0.8: ``maxepochs``), among the root keys and every key an option of a group declares (a
    tuning range's bounds left out); empty when none is near."""
    from .configs import declared_keys, root_keys

    known = {k for k in root_keys(command) | {f"{g}.{k}" for g in STRICT_GROUPS for k in declared_keys(g)}
             if ".search." not in k and k != key}
    leaf = key.rpartition(".")[2]
    near = sorted(k for k in known if k.rpartition(".")[2] == leaf)[:3]
    if not near:
        close = difflib.get_close_matches(leaf, sorted({k.rpartition(".")[2] for k in known}), n=3, cutoff=0.8)
        near = [k for name in close for k in sorted(known) if k.rpartition(".")[2] == name][:3]
    return f" (did you mean {' or '.join(near)}?)" if near else ""


def unknown_key_message(command: str, key: str, given: str, missing: str | None = None) -> str:
    """One line for an override Hydra could not apply to ``key`` (given the value ``given``;
    ``missing``: the full key OmegaConf did not find, where it says): a typo in a key says which
    keys there are, not how to add a new one; a mapping given to a key that exists, with keys
    it lacks, says how to add them."""
    if (given.lstrip().startswith("{") and key.partition(".")[0] in STRICT_GROUPS
            and missing and missing.startswith(key + ".")):
        return (f"{key}: a value with keys {key} does not have ({missing.removeprefix(key + '.')}); add each "
                f"with +{key}.KEY=VALUE")
    return f"unknown key {key}{key_problem(command, key)}"


def key_problem(command: str, key: str) -> str:
    """Why ``command``'s config has no ``key``, to follow the key in a message: in a strict
    group, the chosen option lacks a key other options of the group have, or the group's keys;
    elsewhere the keys it may have meant (:func:`did_you_mean`)."""
    from .configs import declared_keys, declaring_options

    group, _, rest = key.partition(".")
    if group not in STRICT_GROUPS or not rest:
        return f"{did_you_mean(command, key)}; `auxrun {command} --cfg job` shows every key"
    if rest in declared_keys(group):  # a key of other options of the group (private files' only if no other has it)
        owners = declaring_options(group, rest)
        owners = [o for o in owners if not o.startswith("_")] or owners
        return (f": the chosen {group} option has no key {rest!r}; it belongs to "
                f"{group}={', '.join(owners)} (and options built on them)")
    known = ", ".join(sorted(k for k in declared_keys(group) if "." not in k))
    return f": {group} has no key {rest!r}; its keys: {known}"


def check_added_keys(command: str, base: Callable[[], DictConfig], added: dict[str, str]) -> None:
    """Each key an override adds (``+key=value``, ``++key=value``; ``added`` maps key to
    override) is one something reads, else one error. It is a key outside the groups that a
    root file or an experiment declares (:func:`auxrun.configs.root_keys`:
    ``+pretrain_overrides=[...]``); or a key that ``base()``, the config composed without the
    additions, already has (which ``++`` merely sets); or what lies in a mapping whose entries
    are the user's (:func:`auxrun.configs.open_mappings`: ``+weighting.options.c=0.4``,
    ``+aux.tasks.NAME.kind=edge_pred``) where ``base()`` has that mapping. A misspelt
    ``+trainer.max_epoch=5`` would otherwise run 100 epochs in silence, and a key of another
    option of the group (``+weighting.lr`` with ``weighting=fixed``) be ignored."""
    from .configs import root_keys

    opened = user_mappings()
    without = None
    for key, override in added.items():
        if key in root_keys(command):
            continue
        without = base() if without is None else without
        needed = next((m for m in opened if key.startswith(m + ".")), key)  # an entry needs its mapping in the run
        if OmegaConf.select(without, needed, default=_ABSENT, throw_on_missing=False) is _ABSENT:
            raise AuxrunError(f"{override.split('=', 1)[0]} adds a key that nothing would read"
                              f"{key_problem(command, needed)}")
