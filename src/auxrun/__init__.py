"""auxrun: auxiliary-task transfer learning on graph neural networks.

The Python API (:mod:`auxrun.api`): ``auxrun.runs``, ``auxrun.compare``, ``auxrun.tests``,
``auxrun.table``, ``auxrun.compose``, ``auxrun.run``; imported on first use, so that the CLI
starts without them.
"""

from typing import Any

__version__ = "0.1.0"
API = ("compare", "compose", "run", "runs", "table", "tests")


def __getattr__(name: str) -> Any:
    if name in API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'auxrun' has no attribute {name!r}")


__all__ = ["__version__", *API]
