"""``dataset=reddit``: the Reddit post graph of GraphSAGE (Hamilton et al., 2017) from the raw
files PyG's ``Reddit`` dataset reads, under the AUX-TS / GPT-GNN protocol.

Place the two files of ``reddit.zip`` (published by DGL, data.dgl.ai/dataset/reddit.zip; PyG
downloads the same archive) under ``dataset.data_dir`` (or its ``raw/`` folder):

    reddit_data.npz    arrays ``feature`` (posts x 602 floats), ``label`` (one of 41
                       communities per post), ``node_types`` (GraphSAGE's own split; unused)
    reddit_graph.npz   the post-post adjacency as a SciPy sparse matrix (``save_npz``)

Posts are one node type ``post`` with one relation ``post-links-post`` (two posts commented on
by a user; the adjacency is symmetric, so the relation is its own reverse). As in GPT-GNN's
preprocessing, each post's features gain ``log(degree)``. The split follows GPT-GNN's Reddit
scripts, which AUX-TS uses: posts shuffled with ``dataset.split_seed`` (43, theirs), 70% for
pre-training (``pretrain_nodes``: the generative tasks draw their examples there), then 10%
each for fine-tuning train / valid / test; MTL uses the same 10/10/10. Metric: micro-F1 of
community classification.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from ..errors import AuxrunError
from .registry import loader
from .checks import check_labels, check_matrix, reading
from .download import dataset_folder, fetch_missing
from .graph import GraphData, TargetSpec

FILES = ("reddit_data.npz", "reddit_graph.npz")
SOURCE = "reddit.zip (data.dgl.ai/dataset/reddit.zip, the archive PyG's Reddit dataset downloads)"
OFFLINE = "dataset=synthetic_xl (offline, sampled, the same generative tasks)"
RELATION = ("post", "links", "post")


def raw_files(cfg: DictConfig) -> dict[str, Path]:
    """The two files' paths (fetched first with ``dataset.download=true``), or one clear error
    naming what is missing, where it is published and how to get it."""
    root = dataset_folder(cfg, "reddit")

    def found() -> dict[str, Path]:
        raw = root / "raw" if (root / "raw").is_dir() else root
        return {name: raw / name for name in FILES}

    files = found()
    if fetch_missing(cfg, "reddit", root, files.values()):
        files = found()
    missing = [name for name, p in files.items() if not p.is_file()]
    if missing:
        raise AuxrunError(f"dataset=reddit: {', '.join(missing)} not found in {root}: run `auxrun data download "
                          f"reddit` (or add dataset.download=true), or place the files of {SOURCE} there "
                          f"(dataset.data_dir=FOLDER); or use {OFFLINE}")
    return files


def _arrays(files: dict[str, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import scipy.sparse as sp

    data_file, graph_file = files["reddit_data.npz"], files["reddit_graph.npz"]
    with reading(data_file, "NumPy arrays feature and label"):
        with np.load(data_file, allow_pickle=False) as data:
            missing = [k for k in ("feature", "label") if k not in data.files]
            if missing:
                raise AuxrunError(f"{data_file}: no array {' or '.join(missing)} (arrays: {', '.join(data.files)})")
            feature, label = data["feature"], data["label"]
    check_matrix(feature, str(data_file), "feature")
    n = feature.shape[0]
    label = check_labels(label, str(data_file), rows=n)
    with reading(graph_file, "a SciPy sparse adjacency matrix"):
        adj = sp.load_npz(graph_file).tocoo()
    if adj.shape != (n, n):
        raise AuxrunError(f"{graph_file}: an adjacency of shape {adj.shape} for {n} posts")
    return feature, label, adj.row, adj.col


def split_posts(n: int, seed: int) -> dict[str, torch.Tensor]:
    """GPT-GNN's Reddit split: a seeded shuffle, 70% pre-training then 10% each train / val / test."""
    idx = np.random.RandomState(seed).permutation(n)
    cuts = [int(n * f) for f in (0.7, 0.8, 0.9)]
    parts = np.split(idx, cuts)
    return {name: torch.from_numpy(np.sort(p)).long() for name, p in zip(("pretrain", "train", "val", "test"), parts)}


@loader("reddit", layouts=("table2",))
def load_reddit(cfg: DictConfig, seed: int, cache_dir: str | None = None) -> GraphData:
    """The Reddit graph with the GPT-GNN split (module docstring); ``seed`` does not change it."""
    files = raw_files(cfg)
    feature, label, row, col = _arrays(files)
    n = feature.shape[0]
    edge_index = torch.from_numpy(np.stack([row, col]).astype(np.int64))
    degree = torch.bincount(edge_index[1], minlength=n).clamp(min=1).double()
    x = torch.cat([torch.from_numpy(np.asarray(feature, dtype=np.float32)), degree.log().float()[:, None]], 1)
    labels = torch.from_numpy(np.asarray(label)).long()
    split = split_posts(n, int(cfg.get("split_seed", 43)))
    pretrain = split.pop("pretrain")
    return GraphData(
        name="reddit",
        x={"post": x},
        edge_index={RELATION: edge_index},
        target=TargetSpec(kind="node_cls", split=split, node_type="post", labels=labels,
                          num_classes=int(labels.max()) + 1),
        info={"source": str(files["reddit_data.npz"].parent), "posts": n, "edges": int(edge_index.shape[1]),
              "classes": int(labels.max()) + 1},
        pretrain_nodes={"post": pretrain},
    )
