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


def test_every_config_option_composes_and_every_weighting_builds():
    """Each file of each config group composes with the CLI's primary configs, and each
    weighting preset builds its strategy (a preset naming no strategy class fails here, not
    halfway through a sweep)."""
    from hydra import compose, initialize_config_module

    from auxrun.cli import group_options
    from auxrun.transfer import METHODS
    from auxrun.weighting import build

    with initialize_config_module("auxrun.conf", version_base="1.3"):
        for group in ("dataset", "backbone", "aux", "weighting", "trainer", "experiment"):
            for option in group_options(group):
                cfg = compose("finetune", overrides=[f"{group}={option}"])
                assert cfg[group if group != "experiment" else "command"] is not None
        for option in group_options("weighting"):
            cfg = compose("mtl", overrides=[f"weighting={option}"])
            assert build(cfg.weighting, ["target", "a", "b"]) is not None, option
        for option in group_options("transfer"):  # every transfer method names a registered class
            cfg = compose("zeroshot", overrides=[f"transfer={option}"])
            assert cfg.transfer.name in METHODS, option
        for option in ("movielens", "ogbn_mag", "synthetic_zeroshot"):  # datasets with zero-shot defaults
            cfg = compose("zeroshot", overrides=[f"dataset={option}"])
            assert cfg.zeroshot.source and cfg.zeroshot.target, option


def test_nothing_below_the_command_line_imports_it():
    """One direction of imports: the CLI imports the schemes, never the reverse (the schemes
    read the config folder from auxrun.configs), not even inside a function."""
    import re

    src = ROOT / "src" / "auxrun"
    offenders = [str(f.relative_to(src)) for f in src.rglob("*.py") if f.name not in ("cli.py", "__main__.py")
                 and re.search(r"from \.+cli import|import auxrun\.cli|from auxrun\.cli import", f.read_text())]
    assert not offenders
