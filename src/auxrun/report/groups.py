"""Which runs are repetitions of one experiment: the configuration a result depends on.

Two runs belong to the same group, and may be averaged over their seeds, only when their
whole resolved configs agree once the seed and the keys that do not change results are
removed (:data:`NON_RESULT_KEYS`: output and data paths, progress bars, live-curve loggers,
checkpointing, ``rerun``, thread counts, Hydra's own settings). The remaining keys fall into three parts:

* **column** (:data:`COLUMN_PREFIXES`): the scheme (``command``) and the encoder it starts
  from (``pretrained``, finetune and zeroshot), the dataset, the backbone and, for zero-shot
  runs, the source and target types (``zeroshot.*``): what a paper's table puts in its columns;
* **strategy**: ``weighting.*`` and ``aux.*`` (``transfer.*`` for zero-shot runs), which define
  the row;
* **setting**: everything else (trainer, device, ...), which also distinguishes rows where it
  varies within a column, and must match between a strategy and the ``none`` run it is
  compared with.

``weighting=none`` trains no auxiliary task, so its strategy part leaves out ``aux.*``: runs
that differ only in the unused auxiliary set are the same experiment. ``aux.head_dim``,
``aux.target_head`` and ``aux.head_hidden`` also shape the *target's* pair head and therefore
count as settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..dotted import flat

# Keys (or prefixes ending in ".") that never change a run's numbers.
NON_RESULT_KEYS = ("seed", "rerun", "threads", "paths.", "hydra.", "logger.", "trainer.progress", "trainer.checkpoint",
                   "dataset.data_dir", "dataset.download", "dataset.published_stats",
                   "trainer.search", "trainer.search.", "weighting.search", "weighting.search.")  # search spaces: what auxrun tune may try, not what runs
COLUMN_PREFIXES = ("command", "pretrained", "dataset.", "backbone.", "zeroshot.")
STRATEGY_PREFIXES = ("weighting.", "aux.", "transfer.")
TARGET_READS = ("aux.head_dim", "aux.target_head", "aux.head_hidden")  # aux keys the target reads: settings
Part = tuple[tuple[str, str], ...]
UNSET = "<unset>"


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(key.startswith(p) if p.endswith(".") else key == p for p in patterns)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted key -> value as text (lists and empty mappings as JSON), for hashing and labels."""
    return {k: json.dumps(v, sort_keys=True, default=str) if isinstance(v, (Mapping, list, tuple)) else str(v)
            for k, v in flat(config, prefix).items()}


def result_view(config: Mapping[str, Any]) -> dict[str, str]:
    """``config`` flattened (:func:`flatten`) without the keys that never change a run's numbers
    (:data:`NON_RESULT_KEYS`), the seed kept: two runs with equal views compute the same thing."""
    ignored = tuple(k for k in NON_RESULT_KEYS if k != "seed")
    return {k: v for k, v in flatten(config).items() if not _matches(k, ignored)}


@dataclass(frozen=True)
class RunKey:
    """A run's configuration, minus seed and non-result keys, split into its three parts."""

    column: Part
    setting: Part
    strategy: Part

    @property
    def group(self) -> tuple[Part, Part, Part]:
        return self.column, self.setting, self.strategy


def run_key(config: Mapping[str, Any], weighting: str) -> RunKey:
    """The grouping key of one run's resolved ``config`` (see the module docstring)."""
    flat = flatten(config)
    command = flat.get("command", "")
    column, setting, strategy = {}, {}, {}
    for key, value in flat.items():
        if _matches(key, NON_RESULT_KEYS) or (key == "pretrained" and command not in ("finetune", "zeroshot")):
            continue
        if _matches(key, COLUMN_PREFIXES):
            column[key] = value
        elif _matches(key, STRATEGY_PREFIXES) and key not in TARGET_READS:
            if weighting != "none" or key.startswith("weighting."):
                strategy[key] = value
        else:
            setting[key] = value
    return RunKey(*(tuple(sorted(part.items())) for part in (column, setting, strategy)))


def varying(parts: Iterable[Part]) -> set[str]:
    """The keys whose values are not the same in all ``parts`` (a key one part lacks counts as
    ``<unset>``)."""
    dicts = [dict(p) for p in parts]
    keys = {k for d in dicts for k in d}
    return {k for k in keys if len({d.get(k, UNSET) for d in dicts}) > 1}


def describe(part: Part, keys: Iterable[str]) -> str:
    """``key=value, ...`` of ``part`` for ``keys`` (sorted), for a label."""
    d = dict(part)
    return ", ".join(f"{k}={d.get(k, UNSET)}" for k in sorted(keys))
