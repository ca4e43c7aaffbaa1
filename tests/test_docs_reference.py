"""The documentation's generated tables (auxrun.docs_reference) against the registries they
are generated from, and the pages' markers against what the generator knows."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from auxrun import docs_reference as ref
from auxrun.configs import group_options
from auxrun.errors import AuxrunError

DOCS = Path(__file__).resolve().parents[1] / "docs"


def markers() -> list[tuple[str, str | None, str]]:
    return [(m.group(1), m.group(2), str(p.relative_to(DOCS))) for p in sorted(DOCS.rglob("*.md"))
            for m in ref.MARKER.finditer(p.read_text())]


def test_every_marker_of_the_pages_renders_a_table() -> None:
    found = markers()
    assert found, "the pages hold markers"
    for name, arg, page in found:
        text = ref.render(name, arg)
        assert text.count("\n|") >= 2, (page, name, arg)  # a header and at least one row


def test_each_strategy_family_has_its_table_on_exactly_one_page() -> None:
    from auxrun.weighting import FAMILIES

    pages = collections.Counter(arg for name, arg, _ in markers() if name == "family")
    assert dict(pages) == {family: 1 for family in FAMILIES}


def test_the_family_tables_list_every_weighting_option_once() -> None:
    from auxrun.weighting import FAMILIES

    rows = [line.split("|")[1].strip().strip("`") for family in FAMILIES
            for line in ref.family_table(family).splitlines()[4:]]
    assert sorted(rows) == group_options("weighting")


def test_the_reference_lists_every_group_option_and_dataset() -> None:
    groups = ref.groups_table()
    for group in ref.groups():
        assert f"| `{group}` |" in groups
        for option in group_options(group):
            assert f"`{option}`" in groups
    datasets = ref.datasets_table()
    assert all(f"| `{name}` |" in datasets for name in group_options("dataset"))
    keyed = {arg for name, arg, _ in markers() if name == "keys"}
    assert keyed >= {"trainer", "backbone", "weighting", "aux", "dataset", "transfer"}


def test_key_tables_show_the_schema_spec_and_each_options_value() -> None:
    table = ref.keys_table("trainer")
    row = next(line for line in table.splitlines() if line.startswith("| `trainer.max_epochs`"))
    assert "an integer in [1, 1000000]" in row and "`100` (default)" in row and "`5` (fast)" in row
    from auxrun.weighting import REGISTRY

    assert "`lr=0.003`" in ref.family_table("meta") and REGISTRY["selar"].family == "meta"  # selar's lr comes from _meta


def test_the_commands_table_lists_every_cli_command() -> None:
    table = ref.commands_table()
    for command in ("pretrain", "finetune", "mtl", "zeroshot", "compare", "data list", "data download"):
        assert f"| `auxrun {command}` |" in table


@pytest.mark.parametrize("marker", ["<!-- auxrun:nothing -->", "<!-- auxrun:keys nogroup -->",
                                    "<!-- auxrun:family nofamily -->", "<!-- auxrun:keys -->"])
def test_an_unknown_marker_is_an_error(marker: str) -> None:
    with pytest.raises(AuxrunError):
        ref.expand(f"text\n{marker}\nmore")
