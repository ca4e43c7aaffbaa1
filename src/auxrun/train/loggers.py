"""Live curves while a run trains (``logger=none|tensorboard|mlflow``).

A logger receives what the training loops already record: after every step the step's
trace rows (one per task: ``loss``, ``weight``, ``cos``; see ``trace.csv``), and after every
epoch the validation metrics and the epoch's mean training loss. It writes them as scalars

* ``loss/<task>``, ``weight/<task>``, ``cos/<task>`` at the global step (empty values skipped),
* ``val/<metric>`` and ``train/loss`` at the epoch,

through TensorBoard's own writer (``torch.utils.tensorboard.SummaryWriter``, event files in
``<run>/tensorboard``) or MLflow's client (``logger=mlflow``, by default into a SQLite store
``<outputs>/mlflow.db``, the resolved config as the run's parameters). ``logger=none`` (the default) writes nothing: ``trace.csv`` and ``result.json``
hold the same numbers once the run ends. A logger never changes what is trained.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

from ..errors import AuxrunError
from ..run_folder import RunFolder

LOGGERS = ("none", "tensorboard", "mlflow")
STEP_FIELDS = ("loss", "weight", "cos")


class RunLogger(Protocol):
    """Where live curves go; every method is cheap enough to call on every step."""

    def step(self, step: int, rows: list[dict[str, Any]]) -> None: ...

    def epoch(self, epoch: int, metrics: dict[str, float], train_loss: float) -> None: ...

    def close(self) -> None: ...


def scalars(rows: list[dict[str, Any]]) -> dict[str, float]:
    """``{"loss/<task>": ..., "weight/<task>": ..., "cos/<task>": ...}`` of one step's trace
    rows, leaving out what the strategy does not compute (``None`` or nan)."""
    out = {}
    for row in rows:
        for field in STEP_FIELDS:
            value = row.get(field)
            if value is not None and math.isfinite(float(value)):
                out[f"{field}/{row['task']}"] = float(value)
    return out


def epoch_scalars(metrics: dict[str, float], train_loss: float) -> dict[str, float]:
    """``val/<metric>`` of the finite validation metrics and ``train/loss``."""
    out = {f"val/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    if math.isfinite(train_loss):
        out["train/loss"] = float(train_loss)
    return out


class NoLogger:
    """``logger=none``."""

    def step(self, step: int, rows: list[dict[str, Any]]) -> None:
        pass

    def epoch(self, epoch: int, metrics: dict[str, float], train_loss: float) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardLogger:
    """``logger=tensorboard``: event files in ``<run>/tensorboard``."""

    def __init__(self, run_dir: Path, flush_secs: int = 30) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch ships the writer; it needs the tensorboard package
            raise AuxrunError(f"logger=tensorboard needs the tensorboard package ({exc}); pip install tensorboard")
        self.writer = SummaryWriter(log_dir=str(RunFolder(run_dir).tensorboard), flush_secs=int(flush_secs))

    def step(self, step: int, rows: list[dict[str, Any]]) -> None:
        for tag, value in scalars(rows).items():
            self.writer.add_scalar(tag, value, step)

    def epoch(self, epoch: int, metrics: dict[str, float], train_loss: float) -> None:
        for tag, value in epoch_scalars(metrics, train_loss).items():
            self.writer.add_scalar(tag, value, epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowLogger:
    """``logger=mlflow``: one MLflow run in ``tracking_uri`` (a local folder by default)."""

    def __init__(self, run_dir: Path, tracking_uri: str, experiment: str, params: dict[str, Any]) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise AuxrunError("logger=mlflow needs MLflow: pip install -e '.[mlflow]' (or use logger=tensorboard)") from None
        if str(tracking_uri).startswith("sqlite:///"):  # SQLite creates the file, not its folder
            Path(str(tracking_uri)[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=str(tracking_uri))
        found = self.client.get_experiment_by_name(str(experiment))
        exp_id = found.experiment_id if found else self.client.create_experiment(str(experiment))
        self.run_id = self.client.create_run(exp_id, run_name=run_dir.name).info.run_id
        from mlflow.entities import Param

        items = [Param(k, str(v)[:500]) for k, v in params.items()]  # MLflow's limit on a value's length
        for i in range(0, len(items), 100):  # and on parameters per batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def _log(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, stamp, step) for k, v in values.items()])

    def step(self, step: int, rows: list[dict[str, Any]]) -> None:
        self._log(scalars(rows), step)

    def epoch(self, epoch: int, metrics: dict[str, float], train_loss: float) -> None:
        self._log(epoch_scalars(metrics, train_loss), epoch)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def check_logger(cfg: Any) -> None:
    """At composition: the chosen logger's package is installed (that the name is one of
    :data:`LOGGERS` is the schema's check, :mod:`auxrun.schema`)."""
    spec = cfg.get("logger")
    name = str(spec.name) if spec is not None else "none"
    needs = {"tensorboard": ("tensorboard", "pip install tensorboard"),
             "mlflow": ("mlflow", "pip install -e '.[mlflow]', or use logger=tensorboard")}.get(name)
    if needs is not None:
        import importlib.util

        if importlib.util.find_spec(needs[0]) is None:
            raise AuxrunError(f"logger={name} needs the {needs[0]} package: {needs[1]}")


def make_logger(cfg: Any, run_dir: Path) -> RunLogger:
    """The logger ``cfg.logger`` names (``none`` when the config has no logger group)."""
    spec = cfg.get("logger") if hasattr(cfg, "get") else None
    name = str(spec.name) if spec is not None else "none"
    if name == "none":
        return NoLogger()
    if name == "tensorboard":
        return TensorBoardLogger(run_dir, int(spec.get("flush_secs", 30)))
    if name == "mlflow":
        from omegaconf import OmegaConf

        from ..report.groups import flatten

        params = flatten(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
        return MLflowLogger(run_dir, str(spec.tracking_uri), str(spec.experiment), params)
    raise AuxrunError(f"unknown logger {name!r}; use one of {', '.join(LOGGERS)}")
