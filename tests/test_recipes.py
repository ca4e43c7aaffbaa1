"""The contributor recipes of docs/contributing.md, run as printed on a copy of the package.

Each recipe's files (the fenced blocks titled with their path, ``title="PATH"``) are written into a copy of
``src/auxrun`` and ``conf``, and nothing else is changed: the new strategy, loader and layout
must then be found through their registries, the recipes' own tests must pass, and the
commands the page prints must do what it says. This is the proof that a new strategy, dataset
or layout is its module, its config and its tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "contributing.md"
FENCE = re.compile(r"^```(\w+)(?: title=\"(\S+)\")?\n(.*?)^```$", re.M | re.S)
SECTIONS = {"A weighting strategy": 3, "A dataset": 3, "A comparison layout": 2}


def recipes() -> dict[str, list[tuple[str, str | None, str]]]:
    """Per ``## `` section of the page: its fenced blocks ``(language, file, text)``."""
    out: dict[str, list[tuple[str, str | None, str]]] = {}
    for section in re.split(r"^## ", PAGE.read_text(), flags=re.M)[1:]:
        title, _, body = section.partition("\n")
        out[title.strip()] = [(m.group(1), m.group(2), m.group(3)) for m in FENCE.finditer(body)]
    return out


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    """A copy of the package with every recipe's files written into it."""
    root = tmp_path_factory.mktemp("recipes")
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "src" / "auxrun", root / "pkg" / "auxrun", ignore=ignore)
    shutil.copytree(ROOT / "conf", root / "pkg" / "auxrun" / "conf", ignore=ignore)
    (root / "tests").mkdir()
    for blocks in recipes().values():
        for _, file, text in blocks:
            if file is None:
                continue
            target = root / ("pkg/auxrun/" + file.removeprefix("src/auxrun/") if file.startswith("src/auxrun/")
                             else "pkg/auxrun/conf/" + file.removeprefix("conf/") if file.startswith("conf/")
                             else file)
            target.write_text(text)
    return root


def run(copy: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(copy / "pkg"), "PYTHONWARNINGS": "ignore", "COLUMNS": "400"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=copy, env=env, timeout=600)


def test_each_recipe_is_new_files_only_and_as_many_as_the_page_says():
    found = recipes()
    for title, count in SECTIONS.items():
        files = [f for _, f, _ in found[title] if f is not None]
        assert len(files) == count, (title, files)
        assert not any((ROOT / f).exists() for f in files), f"{title}: a recipe must add files, not edit them"
        assert {Path(f).parts[0] for f in files} <= {"src", "conf", "tests"}
    assert f"| weighting strategy `loss_ratio` | {SECTIONS['A weighting strategy']} " in PAGE.read_text()


def test_the_new_parts_are_found_through_their_registries(copy):
    probe = run(copy, "-c", (
        "import auxrun, auxrun.weighting as w, auxrun.data as d, auxrun.report.layouts as l;"
        "print(auxrun.__file__); print(list(w.REGISTRY).index('loss_ratio') == list(w.REGISTRY).index('gradnorm') + 1);"
        "print(d.REGISTRY['edgelist'].kinds, d.loader_of('edgelist').name); print('wins' in l.names())"))
    assert probe.returncode == 0, probe.stderr[-3000:]
    where, after_gradnorm, loader, layout = probe.stdout.splitlines()
    assert where.startswith(str(copy)), "the copy, not the checkout, must be imported"
    assert after_gradnorm == "True" and loader == "('graph',) edgelist" and layout == "True"
    helped = run(copy, "-m", "auxrun", "compare", "--help")
    assert "wins (per strategy, the columns where it beats its baseline)" in " ".join(helped.stdout.split())


def test_the_recipes_own_tests_pass(copy):
    tests = [f"tests/{name}" for name in ("test_loss_ratio.py", "test_edgelist.py", "test_wins.py")]
    done = run(copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "5 passed" in done.stdout


def test_the_printed_commands_do_what_the_page_says(copy):
    for _, file, text in recipes()["A weighting strategy"]:
        if file is not None:
            continue
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("$ auxrun "):
                continue
            rest = lines[i + 1:]
            expected = rest[:next((j for j, x in enumerate(rest) if x.startswith("$ ")), len(rest))]
            args = [*line.removeprefix("$ auxrun ").split(), "trainer.progress=false"]
            done = run(copy, "-m", "auxrun", *args)
            if expected:
                assert done.returncode == 2 and expected[0] in done.stderr, done.stderr[-2000:]
            else:
                assert done.returncode == 0, done.stderr[-3000:]
                assert "mtl synthetic/gcn/loss_ratio seed=0: completed" in " ".join(done.stderr.split())
