"""Run results: the ``result.json`` contract and reading results back.

``result.json`` (schema 1)::

    {"schema": 1, "status": "completed" | "diverged" | "pruned" | "failed" | "interrupted", "command", "dataset",
     "backbone", "aux", "weighting", "seed", "metrics": {"val": {...}, "test": {...}},
     "primary_metric", "higher_is_better", "best_epoch", "best_score", "runtime_s", "device",
     "finished_at", "config": {...}}

Metric names are lower-case; ``finished_at`` is an ISO 8601 UTC time stamp (``compare``
counts the newer of two runs of one configuration and seed). Written atomically, so a reader
never sees half a file.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import AuxrunError
from ..atomic import write_json, write_text
from ..run_folder import RESULT, RunFolder
from ..specs import Spec

SCHEMA = 1
# pruned: stopped by the tuner (auxrun.tuning); interrupted: stopped by a signal, resumable from its checkpoint
STATUSES = ("completed", "diverged", "pruned", "failed", "interrupted")
# Config keys added after runs were recorded, each with the value that gives the behaviour runs
# recorded without it had: a stored config that lacks one reads as having that value, so a
# relaunched sweep still skips its finished runs and compare still pools them with new ones.
# A key that only some choices of a group have names a sibling key those choices have, and is
# added only where that sibling is (weighting.normalize: the meta weightings, which have meta_grad).
LATER_KEYS: dict[str, object] = {"aux.target_head": "projected", "aux.head_hidden": 100, "weighting.normalize": "none",
                                  "trainer.tuned_trials": 0}
LATER_KEYS_WHERE: dict[str, str] = {"weighting.normalize": "meta_grad"}
REQUIRED = ("schema", "status", "command", "dataset", "backbone", "aux", "weighting", "seed", "metrics")
TEXT, MAYBE_TEXT = Spec(str), Spec(str, optional=True)
WHOLE = Spec(int, low=-(2**63), high=2**63 - 1)  # a seed: any whole number a record may hold (the config's range is newer)
# the values readers use, each with its spec (an absent optional one reads as null); metrics,
# val_history and config have shapes of their own (:func:`record_problem`)
FIELDS: dict[str, Spec] = {
    "status": Spec(str, choices=STATUSES), "command": TEXT, "dataset": TEXT, "backbone": TEXT, "aux": TEXT,
    "weighting": TEXT, "seed": WHOLE, "primary_metric": MAYBE_TEXT, "higher_is_better": Spec(bool, optional=True),
    "source": MAYBE_TEXT, "target": MAYBE_TEXT, "pretrained": MAYBE_TEXT, "pretrained_sha256": MAYBE_TEXT,
    "finished_at": MAYBE_TEXT, "error": MAYBE_TEXT, "message": MAYBE_TEXT,
}
log = logging.getLogger(__name__)


def write_result(run_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Atomically write ``run_dir/result.json``; returns the record as written."""
    record = {"schema": SCHEMA, **result}
    record.setdefault("finished_at", datetime.now(timezone.utc).isoformat())
    write_json(RunFolder(run_dir).result, record)
    return record


def write_failure(run_dir: Path, base: dict[str, Any], exc: BaseException, start: float) -> dict[str, Any]:
    """Record a run that stopped with ``exc``: ``base`` with status ``failed``, the error, empty
    metrics and the time since ``start`` (``time.time()``)."""
    return write_result(run_dir, {**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                                  "metrics": {"val": {}, "test": {}}, "runtime_s": time.time() - start})


def upgrade_config(config: Any) -> Any:
    """``config`` (a resolved config as stored) with every :data:`LATER_KEYS` key it lacks set
    to that key's value, wherever the key's section exists (and, for a key of
    :data:`LATER_KEYS_WHERE`, holds that sibling key); other values as they are. Compare two
    configs only after upgrading both."""
    if not isinstance(config, dict):
        return config
    out = dict(config)
    for dotted, value in LATER_KEYS.items():
        section, key = dotted.split(".", 1)
        sibling = LATER_KEYS_WHERE.get(dotted)
        if isinstance(out.get(section), dict) and key not in out[section] \
                and (sibling is None or sibling in out[section]):
            out[section] = {**out[section], key: value}
    return out


def is_number(value: Any) -> bool:
    """A JSON number (``NaN`` and infinities included), not a boolean."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def record_problem(result: Any) -> str | None:
    """What makes a parsed ``result.json`` unusable, in one phrase naming the field; ``None``
    for a record of the contract: the :data:`REQUIRED` fields, schema :data:`SCHEMA`, each of
    :data:`FIELDS` that is there fitting its spec, ``metrics`` a mapping of split to a mapping
    of metric name to a number (``NaN`` where a run diverged), ``val_history`` a list of such
    mappings with an integer ``epoch``, ``config`` a mapping whose ``aux.tasks`` (read by
    ``compare``'s loss-scale columns) maps each task to its settings, ``loss_scale`` a number."""
    if not isinstance(result, dict):
        return f"a JSON {type(result).__name__}, not an object"
    missing = [k for k in REQUIRED if k not in result]
    if missing:
        return f"missing field(s) of the result contract: {', '.join(missing)}"
    if result["schema"] != SCHEMA:
        return f"result schema {result['schema']!r}, expected {SCHEMA}"
    for key, spec in FIELDS.items():
        if (why := spec.problem(result.get(key))) is not None:
            return f"field {key} is {json.dumps(result.get(key))[:40]}: {why} (should be {spec.describe()})"
    metrics = result["metrics"]
    if not isinstance(metrics, dict) or not all(
            isinstance(split, dict) and all(is_number(v) for v in split.values()) for split in metrics.values()):
        return "field metrics is not a mapping of split to a mapping of metric name to a number"
    history = result.get("val_history") or []
    if not isinstance(history, list) or not all(
            isinstance(h, dict) and isinstance(h.get("epoch"), int) and all(map(is_number, h.values()))
            for h in history):
        return "field val_history is not a list of per-epoch mappings of metric name to a number with an integer epoch"
    config = result.get("config", {})
    if not isinstance(config, dict):
        return "field config is not a mapping"
    aux = config.get("aux") or {}
    tasks = (aux.get("tasks") or {}) if isinstance(aux, dict) else None
    if not isinstance(tasks, dict) or not all(
            spec is None or (isinstance(spec, dict) and is_number(spec.get("loss_scale", 1))) for spec in tasks.values()):
        return "field config.aux.tasks is not a mapping of task name to its settings with a numeric loss_scale"
    return None


def read_record(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The parsed result and ``None``; or ``None`` and why it is unusable (not readable JSON, or
    :func:`record_problem`)."""
    try:
        result = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"not readable JSON ({exc})"
    if (why := record_problem(result)) is not None:
        return None, why
    if "config" in result:
        result["config"] = upgrade_config(result["config"])
    return result, None


def read_result(path: Path) -> dict[str, Any] | None:
    """The parsed result, or ``None`` (with a warning naming the file and what is wrong) if it
    is unusable (:func:`read_record`)."""
    result, why = read_record(path)
    if why is not None:
        log.warning("skipping %s: %s", path, why)
    return result


def find_results(root: Path, unusable: list[tuple[Path, str]] | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Every usable ``result.json`` below ``root`` (sorted by path), as (run folder, result).
    Each unusable one goes to ``unusable`` as (run folder, why) where that list is given, else
    to a warning."""
    out = []
    for path in sorted(root.rglob(RESULT)):
        if unusable is None:
            result = read_result(path)
        else:
            result, why = read_record(path)
            if why is not None:
                unusable.append((path.parent, why))
        if result is not None:
            out.append((path.parent, result))
    return out


def config_differences(stored: Any, config: dict[str, Any]) -> list[str]:
    """The dotted keys whose values differ between a stored config and ``config``, both read
    with :data:`LATER_KEYS`, leaving out the keys that never change a run's numbers (output
    and data paths, progress bars, checkpointing, threads, ...; the seed counts)."""
    from .groups import result_view

    a = result_view(upgrade_config(stored)) if isinstance(stored, dict) else {}
    b = result_view(upgrade_config(config))
    return [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def finished(run_dir: Path) -> dict[str, Any] | None:
    """The result in ``run_dir`` when it finished (completed; diverged, which a deterministic
    rerun would repeat; pruned, which its tuner decided); else ``None``."""
    path = RunFolder(run_dir).result
    result = read_result(path) if path.exists() else None
    return result if result and result["status"] in ("completed", "diverged", "pruned") else None


def finished_result(run_dir: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The finished result already in ``run_dir`` (:func:`finished`) of this resolved
    ``config``, up to keys that never change a run's numbers (:func:`config_differences`);
    else ``None``."""
    result = finished(run_dir)
    return result if result and not config_differences(result.get("config"), config) else None


def start_run(cfg: Any, run_dir: Path, console: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Begin a run of the composed ``cfg`` in ``run_dir``: its resolved config, and the finished
    result already there for that config (unless ``rerun=true``), which the caller returns
    instead of running again, saying so on ``console``; a finished result of another config
    there is refused (:class:`AuxrunError` naming the differing keys); else ``None``, after creating the
    folder, removing temporary files a killed write left there (and, with ``rerun=true``, the
    checkpoint a run would resume from) and writing ``config.yaml``."""
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(cfg, resolve=True)
    if not cfg.get("rerun", False) and (done := finished(run_dir)) is not None:
        differ = config_differences(done.get("config"), config)
        if not differ:
            from rich.markup import escape

            console.print(f"{escape(str(run_dir))}: already {done['status']} with this config, skipped "
                          "(rerun=true runs it again)")
            return config, done
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
        raise AuxrunError(f"{run_dir} holds a finished {done['command']} run of another config (differing: {shown}), "
                          "which this run would replace: give it another folder (hydra.run.dir=DIR, or "
                          "hydra.sweep.dir=DIR for a sweep), or add rerun=true to replace that result")
    folder = RunFolder(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*run_dir.glob(".*.tmp"), *folder.checkpoints.glob(".*.tmp")]:  # left by a killed write
        stale.unlink(missing_ok=True)
    if cfg.get("rerun", False):  # from scratch: no resuming from an earlier attempt's checkpoint
        folder.last.unlink(missing_ok=True)
    write_text(folder.config, OmegaConf.to_yaml(cfg, resolve=True))
    return config, None
