"""Every package and config group folder is declared in pyproject.toml, so a regular
(non-editable) install carries all code and configs."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_and_config_group_is_declared():
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    code = {".".join(p.parent.relative_to(ROOT / "src").parts) for p in (ROOT / "src").rglob("__init__.py")}
    groups = {f"auxrun.conf.{d.name}" for d in (ROOT / "conf").iterdir() if d.is_dir() and not d.name.startswith(("_", "."))}
    missing = (code | groups | {"auxrun.conf"}) - declared
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
