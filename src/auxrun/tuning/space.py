"""A strategy's search space: what ``auxrun tune`` may try, read from the run's own config.

The space of a run is the shared part, ``trainer.search`` (learning rate and weight decay by
default), and the strategy's own, ``weighting.search`` (its learning rates, step sizes,
relaxation factors...): each entry names a key below its section and how to draw it,

``{low: L, high: H}``      a number uniform in [L, H] (an integer when the key is one),
``{low: L, high: H, log: true}``   log-uniform in [L, H] (L > 0),
``{choices: [a, b, ...]}``  one of a list.

Every entry is checked when the space is read, against the schema the run itself is checked
with (:func:`auxrun.schema.spec_of`): the key must be one the schema knows, and both bounds (or
every choice) must be values it allows, so a space cannot propose a run that would be refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..errors import AuxrunError

SECTIONS = ("trainer", "weighting")  # where a space lives: <section>.search


@dataclass(frozen=True)
class Dim:
    """One searched key (dotted, from the config's root) and how it is drawn."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    integer: bool = False

    def describe(self) -> str:
        if self.choices:
            return f"{self.key} in {{{', '.join(map(str, self.choices))}}}"
        return f"{self.key} in [{self.low:g}, {self.high:g}]{' (log)' if self.log else ''}"


def _dim(key: str, entry: Any) -> Dim:
    from ..schema import spec_of

    spec = spec_of(key)
    where = f"{key.split('.')[0]}.search: {key.split('.', 1)[1]}"
    if spec is None:
        raise AuxrunError(f"{where}: not a key the schema checks, so it cannot be searched")
    if not isinstance(entry, dict) or not (set(entry) <= {"low", "high", "log", "choices"}):
        raise AuxrunError(f"{where}: expected {{low: L, high: H[, log: true]}} or {{choices: [...]}}, got {entry!r}")
    if "choices" in entry:
        choices = tuple(entry["choices"] or ())
        bad = [c for c in choices if spec.problem(c)]
        if not choices or bad or set(entry) != {"choices"}:
            raise AuxrunError(f"{where}: choices must be a non-empty list of values allowed for {key} "
                              f"({spec.describe()}){f'; not allowed: {bad}' if bad else ''}")
        return Dim(key, choices=choices)
    low, high, log = entry.get("low"), entry.get("high"), bool(entry.get("log", False))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if not numeric or spec.kind not in (int, float):
        raise AuxrunError(f"{where}: low and high must be numbers, and {key} a number ({spec.describe()})")
    for bound in (low, high):
        if spec.problem(int(bound) if spec.kind is int else float(bound)):
            raise AuxrunError(f"{where}: the bound {bound} is not allowed for {key} ({spec.describe()})")
    if not low < high or (log and low <= 0):
        raise AuxrunError(f"{where}: needs low < high{' and low > 0 (log)' if log else ''}, got [{low}, {high}]")
    return Dim(key, float(low), float(high), log, integer=spec.kind is int)


def space_of(cfg: DictConfig) -> list[Dim]:
    """The search space of a composed run config: ``trainer.search`` then ``weighting.search``."""
    dims: list[Dim] = []
    for section in SECTIONS:
        found = (cfg.get(section) or {}).get("search")
        entries = OmegaConf.to_container(found, resolve=True) if isinstance(found, DictConfig) else {}
        assert isinstance(entries, dict)
        dims += [_dim(f"{section}.{name}", entry) for name, entry in entries.items()]
    return dims


def overrides(dims: list[Dim], values: dict[str, Any], cfg: DictConfig) -> list[str]:
    """The command-line overrides that set ``values`` (a number to 4 significant digits: the
    runs, their labels in ``compare`` and the final runs all use that value); a key the config
    does not hold yet (``weighting.weights.target``) is added with ``+``."""
    out = []
    for dim in dims:
        present = OmegaConf.select(cfg, dim.key, default=None) is not None
        value = values[dim.key]
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        out.append(f"{'' if present else '+'}{dim.key}={shown}")
    return out


def suggest(trial: Any, dims: list[Dim]) -> dict[str, Any]:
    """Draw one value per dimension from an Optuna trial (its parameters are named by key)."""
    values: dict[str, Any] = {}
    for dim in dims:
        if dim.choices:
            values[dim.key] = trial.suggest_categorical(dim.key, list(dim.choices))
        elif dim.integer:
            values[dim.key] = trial.suggest_int(dim.key, int(dim.low), int(dim.high), log=dim.log)
        else:
            values[dim.key] = trial.suggest_float(dim.key, dim.low, dim.high, log=dim.log)
    return values
