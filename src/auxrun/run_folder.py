"""The files of a run folder, named once, each with the one module that writes it.

::

    <run>/
      config.yaml           the resolved config          auxrun.report.results (start_run)
      result.json           the result contract          auxrun.report.results (write_result)
      trace.csv             one row per step and task    auxrun.train.loop
      checkpoints/last.pt   the whole run state          auxrun.train.resume
      checkpoints/best.pt   the kept epoch's weights     auxrun.train.loop
      encoder.pt            pretrain's encoder           auxrun.train.pretrained
      tensorboard/          logger=tensorboard           auxrun.train.loggers
      error.txt             an internal error's traceback auxrun.boundary
      .running.lock         held while a process runs it  auxrun.train.runner

Every other module reads these paths from :class:`RunFolder` instead of spelling a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG = "config.yaml"
RESULT = "result.json"
TRACE = "trace.csv"
CHECKPOINTS = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
ENCODER = "encoder.pt"
TENSORBOARD = "tensorboard"
ERROR = "error.txt"
LOCK = ".running.lock"
# trace.csv's columns: one row per step and task; weight_std and cos empty where a strategy has none
TRACE_FIELDS = ("step", "epoch", "task", "loss", "weight", "weight_std", "cos")


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder (nothing is created until a writer writes)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def result(self) -> Path:
        return self.path / RESULT

    @property
    def trace(self) -> Path:
        return self.path / TRACE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def last(self) -> Path:
        """The whole-state checkpoint a stopped run resumes from."""
        return self.path / CHECKPOINTS / LAST

    @property
    def best(self) -> Path:
        """The kept (best validation) epoch's weights."""
        return self.path / CHECKPOINTS / BEST

    @property
    def encoder(self) -> Path:
        return self.path / ENCODER

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD

    @property
    def error(self) -> Path:
        return self.path / ERROR

    @property
    def lock(self) -> Path:
        """Locked (``flock``) by the process that runs the folder's job, for as long as it does."""
        return self.path / LOCK
