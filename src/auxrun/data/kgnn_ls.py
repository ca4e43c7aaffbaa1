"""``dataset=lastfm`` and ``dataset=bookcrossing``: the files KGNN-LS and RippleNet released,
as SELAR and AUX-TS used them.

Format (read from ``dataset.data_dir``, ``.npy`` preferred over ``.txt`` when both exist):

* ``ratings_final.txt|.npy``: ``user item label`` per line, integers; label 1 = interaction,
  0 = a negative sampled by the authors' preprocessing.
* ``kg_final.txt|.npy``: ``head relation tail`` per line, integers; entities ``0..n_items-1``
  are the items of the ratings file (KGNN-LS indexes items first).

The files number relations without names; ``dataset.relation_names`` maps names used in
meta-paths (``actor``) to relation ids (a relation without a name is ``r<id>``, usable as is).
No side features: users, items and entities are ID-embedded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from ..errors import AuxrunError
from .cache import cached, file_stamp, fingerprint, progress
from .graph import GraphData
from .kg import build_kg_graph, kg_relations

VERSION = 1
WHERE = {
    "lastfm": "KGNN-LS's data/music (github.com/hwwang55/KGNN-LS), made by its preprocess.py --dataset music",
    "bookcrossing": "KGNN-LS's or RippleNet's data/book (github.com/hwwang55/RippleNet), made by preprocess.py "
                    "--dataset book",
}


def _find(folder: Path, stem: str) -> Path | None:
    for ext in (".npy", ".txt"):
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return None


def data_files(name: str, data_dir: str | None) -> dict[str, Path]:
    """``ratings`` and ``kg`` file paths, or a message naming the files and where to get them."""
    folder = Path(str(data_dir or f"data/{name}")).expanduser()
    found = {k: _find(folder, f"{k}_final") for k in ("ratings", "kg")}
    if any(p is None for p in found.values()):
        missing = [f"{k}_final.txt (or .npy)" for k, p in found.items() if p is None]
        raise AuxrunError(
            f"dataset={name} needs {' and '.join(missing)} in {folder} (set dataset.data_dir=FOLDER). "
            f"They are published with {WHERE.get(name, 'KGNN-LS / RippleNet')}. "
            "dataset=movielens has the same shape and runs offline."
        )
    return found  # type: ignore[return-value]


def read_int_table(path: Path, columns: int) -> np.ndarray:
    """An integer table with ``columns`` columns from ``.npy`` or whitespace-separated text."""
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            arr = pd.read_csv(path, sep=r"\s+", header=None, dtype=np.int64, engine="c").to_numpy()
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise AuxrunError(f"cannot read {path} as a table of integers: {exc}") from None
    if arr.ndim != 2 or arr.shape[1] != columns or len(arr) == 0:
        raise AuxrunError(f"{path}: expected {columns} integer columns per line, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer) or (arr < 0).any():
        raise AuxrunError(f"{path}: entries must be non-negative integers")
    return arr.astype(np.int64)


def load_kgnn_ls(cfg: DictConfig, seed: int, cache_dir: str | None = None) -> GraphData:
    """Build (or load from the cache) the graph of this config and seed."""
    paths = data_files(str(cfg.name), cfg.get("data_dir"))
    settings = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "data_dir"}
    key = fingerprint("kgnn_ls", VERSION, settings, int(seed), {k: file_stamp(p) for k, p in paths.items()})
    return cached(cache_dir, "graphs", key, lambda: _build(cfg, seed, paths, key, cache_dir))


def _build(cfg: DictConfig, seed: int, paths: dict[str, Path], key: str, cache_dir: str | None) -> GraphData:
    name = str(cfg.name)
    with progress(f"building {name} graph", 3) as advance:
        ratings = read_int_table(paths["ratings"], 3)
        kg = read_int_table(paths["kg"], 3)
        advance("read files")
        if not np.isin(ratings[:, 2], (0, 1)).all():
            raise AuxrunError(f"{paths['ratings']}: the third column must be a 0/1 label")
        num_users, num_items = int(ratings[:, 0].max()) + 1, int(ratings[:, 1].max()) + 1
        names = {int(v): str(k) for k, v in (cfg.get("relation_names") or {}).items()}
        triples = pd.DataFrame({"h": kg[:, 0], "r": [names.get(int(r), f"r{int(r)}") for r in kg[:, 1]],
                                "t": kg[:, 2]})
        item_of = {i: i for i in range(num_items)}
        num_entities, relations = kg_relations(triples, item_of, int(cfg.kg_min_items))
        advance("knowledge graph")
        x = {"user": torch.zeros(num_users, 0), "item": torch.zeros(num_items, 0)}
        if num_entities:
            x["entity"] = torch.zeros(num_entities, 0)
        data = build_kg_graph(
            name=name, x=x, pairs=torch.from_numpy(ratings[:, :2].T.copy()),
            labels=torch.from_numpy(ratings[:, 2]).float(), relations=relations, split=tuple(cfg.split),
            seed=int(seed), embedded=list(x), aliases={}, fingerprint=key, cache_dir=cache_dir,
            info={"source": str(paths["ratings"].parent), "ratings": len(ratings), "kg_triples": len(kg)},
        )
        advance("split")
    return data
