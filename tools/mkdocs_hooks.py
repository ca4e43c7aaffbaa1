"""MkDocs hook: the pages' ``<!-- auxrun:... -->`` markers become the reference tables that
:mod:`auxrun.docs_reference` generates from the registries and the schema at build time."""

from __future__ import annotations

from auxrun.docs_reference import expand


def on_page_markdown(markdown: str, **_: object) -> str:
    return expand(markdown)
