"""The dataset loaders, each registered by its own module with what it serves.

A loader module decorates its load function with :func:`loader`, giving the name that
``dataset.loader`` (default: ``dataset.name``) selects, the **kinds** of data it returns
(:data:`KINDS`: which commands it serves) and the **layouts** of ``auxrun compare`` its
datasets fit (:mod:`auxrun.report.layouts`). :mod:`auxrun.data` imports every module of the
package, so a new dataset is its module, its config file and its tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KINDS = {
    "graph": "a graph with a target task, trained by mtl, finetune and pretrain",
    "molecules": "molecules with MoleculeNet targets, trained by mtl, finetune and pretrain",
    "zeroshot": "a heterogeneous graph with labelled node types, for zeroshot transfer between them",
}


@dataclass(frozen=True)
class Loader:
    """A registered loader: ``load(cfg, seed, cache_dir)`` builds the data of ``dataset=`` configs
    that name it."""

    name: str
    load: Callable[..., Any]
    kinds: tuple[str, ...]
    layouts: tuple[str, ...]


REGISTRY: dict[str, Loader] = {}


def loader(name: str, *, kinds: tuple[str, ...] = ("graph",), layouts: tuple[str, ...] = ()) -> Callable:
    """Register the decorated load function as the loader ``name``."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise TypeError(f"loader {name!r}: kinds must be among {', '.join(KINDS)}, not {', '.join(sorted(unknown))}")

    def register(load: Callable) -> Callable:
        REGISTRY[name] = Loader(name, load, tuple(kinds), tuple(layouts))
        return load

    return register


def loader_name(dataset_cfg) -> str:
    """The loader a composed ``dataset`` config names: its ``loader``, else its ``name``."""
    return str(dataset_cfg.get("loader", dataset_cfg.name))


def loader_of(dataset: str) -> Loader | None:
    """The loader a ``dataset=`` option uses (its ``dataset.loader``, else its name); ``None`` for a
    name no config file or loader knows (a result of an option that was since removed)."""
    from ..configs import option_value

    return REGISTRY.get(str(option_value("dataset", dataset, "loader") or dataset))


def datasets_of(kind: str) -> list[str]:
    """The ``dataset=`` options whose loader serves ``kind``."""
    from ..configs import group_options

    return [d for d in group_options("dataset") if (found := loader_of(d)) is not None and kind in found.kinds]


def fits_layout(dataset: str, layout: str) -> bool:
    """Whether ``dataset``'s loader declares the compare layout ``layout``."""
    found = loader_of(dataset)
    return found is not None and layout in found.layouts
