"""Where the Hydra configs live (the installed package ``auxrun.conf``) and what each group offers.

Kept apart from the CLI so that the schemes can read the config folder without importing the
command line (which imports the schemes).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

CONF_DIR = Path(str(files("auxrun.conf")))


def group_options(group: str) -> list[str]:
    """The options of config group ``group``: its YAML files, without the private ``_*`` ones."""
    return sorted(f.stem for f in (CONF_DIR / group).glob("*.yaml") if not f.stem.startswith("_"))
