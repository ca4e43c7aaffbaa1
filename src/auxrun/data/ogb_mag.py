"""``dataset=ogbn_mag``: OGB's ogbn-mag from its raw files, the public stand-in for KTN's OAG.

Place the ``raw`` folder of OGB's ``mag.zip`` (published with the Open Graph Benchmark,
ogb.stanford.edu, node property prediction, ogbn-mag; ODC-BY) under ``dataset.data_dir``:

    raw/num-node-dict.csv.gz                          header of node types, one row of counts
    raw/node-feat/paper/node-feat.csv.gz              one row of 128 floats per paper
    raw/node-label/paper/node-label.csv.gz            one venue id per paper
    raw/relations/<src>___<rel>___<dst>/edge.csv.gz   one "src,dst" row per edge, for
        author___affiliated_with___institution, author___writes___paper,
        paper___cites___paper, paper___has_topic___field_of_study

(``data_dir`` may also point at the ``raw`` folder itself.) Papers are labelled with their
venue (349 classes); authors, as KTN labels authors from their papers, get labels derived from
the venues of the papers they wrote (:mod:`auxrun.transfer.data`). Only papers have features;
with ``derived_features: true`` every other type gets the mean of its linked nodes' features
(authors: their papers; fields of study: their papers; institutions: their authors), a
type-specific view of the same signal as in KTN's OAG graph; otherwise they get ID embeddings.
The regular schemes' target is paper venue classification on a seeded random 80/10/10 split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from ..errors import AuxrunError
from .registry import loader
from ..specs import INT32_MAX
from .checks import check_ids, check_labels, check_matrix, reading
from .cache import cached, file_stamp, fingerprint, progress
from .download import dataset_folder, fetch_missing
from .graph import GraphData, NodeLabels, TargetSpec, add_reverse, random_split
from .kg import one_hot

VERSION = 1
RELATIONS = (("author", "affiliated_with", "institution"), ("author", "writes", "paper"),
             ("paper", "cites", "paper"), ("paper", "has_topic", "field_of_study"))
OFFLINE = "dataset=synthetic_zeroshot or dataset=movielens (offline)"


def raw_files(cfg: DictConfig) -> dict[str, Path]:
    """The raw files' paths (fetched first with ``dataset.download=true``), or one clear error
    naming what is missing, where it is published and how to get it."""
    root = dataset_folder(cfg, "ogbn_mag")

    def found() -> tuple[Path, dict[str, Path]]:
        raw = root / "raw" if (root / "raw").is_dir() else root
        files = {"num_nodes": raw / "num-node-dict.csv.gz", "feat": raw / "node-feat" / "paper" / "node-feat.csv.gz",
                 "label": raw / "node-label" / "paper" / "node-label.csv.gz"}
        return raw, files | {"__".join(r): raw / "relations" / "___".join(r) / "edge.csv.gz" for r in RELATIONS}

    raw, files = found()
    if fetch_missing(cfg, "ogbn_mag", root, files.values()):
        raw, files = found()
    missing = [str(p.relative_to(raw)) for p in files.values() if not p.is_file()]
    if missing:
        raise AuxrunError(f"dataset=ogbn_mag: {', '.join(missing)} not found in {raw}: run `auxrun data download "
                          f"ogbn_mag` (or add dataset.download=true), or place the raw/ folder of OGB's mag.zip "
                          f"(Open Graph Benchmark, ogbn-mag) there (dataset.data_dir=FOLDER); or use {OFFLINE}")
    return files


def _csv(path: Path, **kwargs) -> pd.DataFrame:
    """A gzipped CSV of OGB's raw files, or one clear error naming the file."""
    with reading(path, "a gzipped CSV of OGB's raw ogbn-mag files"):
        return pd.read_csv(path, compression="gzip", **kwargs)


def _read(path: Path, dtype, columns: int | None = None) -> np.ndarray:
    """The headerless table ``path`` (``columns`` of them, if given) as an array of ``dtype``."""
    arr = _csv(path, header=None, dtype=dtype).to_numpy()
    if columns is not None and (arr.ndim != 2 or arr.shape[1] != columns):
        raise AuxrunError(f"{path}: expected {columns} columns per line, found {arr.shape[1] if arr.ndim == 2 else 0}")
    return arr


def _count(column: pd.Series, path: Path, name: str) -> int:
    """One node count of num-node-dict: a single non-negative integer."""
    values = pd.to_numeric(column, errors="coerce")
    if len(values) != 1 or values.isna().any() or not 0 <= float(values.iloc[0]) <= INT32_MAX or float(values.iloc[0]) % 1:
        raise AuxrunError(f"{path}: the count of {name} must be one integer in [0, {INT32_MAX}], found "
                          f"{column.tolist()[:3]}")
    return int(values.iloc[0])


@loader("ogbn_mag", kinds=("zeroshot",))
def load_ogb_mag(cfg: DictConfig, seed: int, cache_dir: str | None = None) -> GraphData:
    """Build (or load from the cache) the ogbn-mag graph of this config and seed."""
    files = raw_files(cfg)
    key = fingerprint("ogbn_mag", VERSION, bool(cfg.derived_features), int(seed),
                      {k: file_stamp(p) for k, p in files.items()})
    return cached(cache_dir, "graphs", key, lambda: _build(cfg, seed, files, key, cache_dir))


def _mean_of(edges: torch.Tensor, x_src: torch.Tensor, n_dst: int) -> torch.Tensor:
    """Row ``d``: the mean of ``x_src`` over the edges ``s -> d`` (zeros where there is none)."""
    total = torch.zeros(n_dst, x_src.shape[1]).index_add_(0, edges[1], x_src[edges[0]])
    count = torch.zeros(n_dst).index_add_(0, edges[1], torch.ones(edges.shape[1]))
    return total / count.clamp_min(1)[:, None]


def _build(cfg: DictConfig, seed: int, files: dict[str, Path], key: str, cache_dir: str | None) -> GraphData:
    with progress("building ogbn-mag graph", 3) as advance:
        counts_df = _csv(files["num_nodes"])
        counts = {str(c): _count(counts_df[c], files["num_nodes"], str(c)) for c in counts_df.columns}
        missing = [t for t in ("paper", "author", "institution", "field_of_study") if t not in counts]
        if missing:
            raise AuxrunError(f"{files['num_nodes']}: no count of {', '.join(missing)} (columns: {', '.join(counts)})")
        x_paper = _read(files["feat"], np.float32)
        check_matrix(x_paper, str(files["feat"]), "paper features", rows=counts["paper"])
        labels = check_labels(_read(files["label"], np.float64), str(files["label"]), "venue", rows=counts["paper"])
        x_paper, labels = torch.from_numpy(x_paper), torch.from_numpy(labels)
        n_paper = counts["paper"]
        advance("papers")
        edges = {}
        for rel in RELATIONS:
            path = files["__".join(rel)]
            ei = _read(path, np.int64, columns=2).T
            check_ids(ei[0], counts[rel[0]], str(path), f"{rel[0]} (first column)")
            check_ids(ei[1], counts[rel[2]], str(path), f"{rel[2]} (second column)")
            edges[rel] = torch.from_numpy(np.ascontiguousarray(ei))
        advance("relations")
        x: dict[str, torch.Tensor] = {"paper": x_paper}
        if bool(cfg.derived_features):
            x["author"] = _mean_of(edges[("author", "writes", "paper")].flip(0), x_paper, counts["author"])
            x["field_of_study"] = _mean_of(edges[("paper", "has_topic", "field_of_study")], x_paper,
                                           counts["field_of_study"])
            x["institution"] = _mean_of(edges[("author", "affiliated_with", "institution")], x["author"],
                                        counts["institution"])
            embedded: list[str] = []
        else:
            for t in ("author", "institution", "field_of_study"):
                x[t] = torch.zeros(counts[t], 0)
            embedded = ["author", "institution", "field_of_study"]
        num_classes = int(labels.max()) + 1
        split = random_split(n_paper, (0.8, 0.1), torch.Generator().manual_seed(int(seed)))
        advance("features")
    return GraphData(
        name=str(cfg.name), x=x, edge_index=add_reverse(edges),
        target=TargetSpec(kind="node_cls", split=split, node_type="paper", labels=labels, num_classes=num_classes),
        embedded=embedded,
        node_labels={"paper": NodeLabels(one_hot(labels, num_classes), [f"venue{i}" for i in range(num_classes)])},
        info={"source": str(files["num_nodes"].parent), "nodes": counts,
              "edges": {"__".join(r): int(e.shape[1]) for r, e in edges.items()}},
        fingerprint=key, cache_dir=cache_dir,
    )
