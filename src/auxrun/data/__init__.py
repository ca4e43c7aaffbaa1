"""Dataset registry: ``dataset.name`` -> loader returning :class:`GraphData`."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig

from ..errors import AuxrunError
from .checks import check_dataset
from .graph import EdgeType, GraphData, NodeLabels, PairLabels, TargetSpec
from .kgnn_ls import load_kgnn_ls
from .moleculenet import load_moleculenet, load_moses
from .molecules import MolData
from .movielens import load_movielens
from .oag import load_oag
from .reddit import load_reddit
from .ogb_mag import load_ogb_mag
from .synthetic import load_synthetic
from .synthetic_zeroshot import load_synthetic_zeroshot

Loader = Callable[[DictConfig, int, "str | None"], GraphData]

REGISTRY: dict[str, Loader] = {"synthetic": load_synthetic, "movielens": load_movielens, "kgnn_ls": load_kgnn_ls,
                               "moleculenet": load_moleculenet, "moses": load_moses,
                               "synthetic_zeroshot": load_synthetic_zeroshot, "ogbn_mag": load_ogb_mag,
                               "reddit": load_reddit, "oag": load_oag}


MOLECULAR_LOADERS = ("moleculenet", "moses")  # loaders that return MolData


def read(cfg: DictConfig, seed: int, cache_dir: str | None = None) -> GraphData | MolData:
    """What the loader ``cfg.loader`` (default ``cfg.name``) builds for the run's ``seed``
    (splits), with each file checked as it is read but the whole not yet checked (tests of a
    loader's parsing read tiny files this way); loaders that build slowly keep what they built
    under ``cache_dir``."""
    name = str(cfg.get("loader", cfg.name))
    try:
        loader = REGISTRY[name]
    except KeyError:
        raise AuxrunError(
            f"unknown dataset loader {name!r}; available: {', '.join(sorted(REGISTRY))}"
        ) from None
    return loader(cfg, seed, cache_dir)


def load(cfg: DictConfig, seed: int, cache_dir: str | None = None) -> GraphData | MolData:
    """The dataset a run trains on: :func:`read`, then checked whole
    (:func:`~auxrun.data.checks.check_dataset`: every split non-empty, every index in range,
    the classes each metric needs present)."""
    return check_dataset(read(cfg, seed, cache_dir))


__all__ = ["EdgeType", "GraphData", "NodeLabels", "MolData", "PairLabels", "TargetSpec", "REGISTRY", "MOLECULAR_LOADERS",
           "load", "read"]
