"""Shared fixtures: composing configs in-process and running the CLI as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

QUIET = ["trainer.progress=false"]


@pytest.fixture
def make_cfg() -> Iterator[Callable[..., DictConfig]]:
    """``make_cfg("mtl", "weighting=none", ...)`` composes a config like the CLI does."""
    with initialize_config_module("auxrun.conf", version_base="1.3"):
        yield lambda command, *overrides: compose(command, overrides=[*QUIET, *overrides])


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``auxrun ARGS`` in a fresh interpreter; returns the completed process."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "auxrun", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def read_result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())
