"""``dataset=pubmed_hne`` (loader ``hne``): a heterogeneous graph in the HNE benchmark's
published format (Yang et al., "Heterogeneous Network Representation Learning: A Unified
Framework with Survey and Benchmark", TKDE 2020), the PubMed graph of the KTN paper.

The files, tab-separated, below ``dataset.data_dir``:

    node.dat         node_id, node_name, node_type, node_attributes (comma-separated floats;
                     empty or absent for a type without attributes). Node ids are 0..N-1.
    link.dat         node_id, node_id, link_type, link_weight: one directed link per line
    label.dat        node_id, node_name, node_type, node_label (several labels: comma-separated)
    label.dat.test   the same, the benchmark's held-out labels (optional; merged with label.dat:
                     a zero-shot run draws its own split of the labelled source nodes)
    info.dat         optional: the meaning of each node and link type (its ``TYPE`` and
                     ``LINK`` sections); without it types are ``type0``... and links ``link0``...

PubMed: 63,109 nodes of 4 types (GENE, DISEASE, CHEMICAL, SPECIES), 10 link types, 200
attributes per node, 454 DISEASE nodes labelled with one of 8 classes. A node type becomes
its ``info.dat`` name in lower case (``disease``); a link type ``l`` from type ``s`` to type
``t`` becomes the relation ``(s, name_l, t)``, ``name_l`` its meaning in lower case with
non-alphanumerics as ``_`` (``gene_causing_disease``), plus its reverse. Link weights are not
used (the HNE files give 1 or a co-occurrence count; the backbones here take unweighted edges).

Zero-shot tasks: only DISEASE nodes carry labels, so the labelled type is the source, and a
target type (``gene``, ``chemical`` or ``species``) is labelled for evaluation from the
diseases it links to by the share rule of :mod:`auxrun.transfer.data`. For the regular
schemes the graph's target is the labelled type's classes on a seeded 80/10/10 split of its
labelled nodes; the loader serves zero-shot runs only.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from ..errors import AuxrunError
from .cache import cached, file_stamp, fingerprint, progress
from .checks import check_ids, check_matrix, reading
from .download import dataset_folder
from .graph import GraphData, NodeLabels, TargetSpec, add_reverse, random_split
from .registry import loader

VERSION = 1
FILES = ("node.dat", "link.dat", "label.dat")
OFFLINE = "dataset=synthetic_zeroshot or dataset=movielens (offline)"


def hne_files(cfg: DictConfig) -> dict[str, Path]:
    """The dataset's files (``label.dat.test`` and ``info.dat`` where present), or one clear
    error naming what is missing and where the data is published."""
    root = dataset_folder(cfg, str(cfg.name))
    missing = [f for f in FILES if not (root / f).is_file()]
    if missing:
        raise AuxrunError(f"dataset={cfg.name}: {', '.join(missing)} not found in {root}: the HNE benchmark's data "
                          f"(github.com/yangji9181/HNE, Data/README.md links it from a Google Drive folder) is a "
                          f"manual download: put the files of its PubMed/ folder there (dataset.data_dir=FOLDER), "
                          f"see `auxrun data list`; or use {OFFLINE}")
    return {f: root / f for f in (*FILES, "label.dat.test", "info.dat") if (root / f).is_file()}


def _table(path: Path, names: list[str], required: int) -> pd.DataFrame:
    """A tab-separated HNE file as strings, with at least ``required`` fields on every line."""
    with reading(path, f"the HNE format's tab-separated {', '.join(names)}"):
        df = pd.read_csv(path, sep="\t", header=None, names=names, dtype=str, quoting=csv.QUOTE_NONE,
                         keep_default_na=False, na_values=[], on_bad_lines="error", engine="c")
    if df.empty:
        raise AuxrunError(f"{path}: no lines")
    short = df[names[required - 1]].isna() | (df[names[required - 1]] == "")
    if short.any():
        line = int(np.flatnonzero(short.to_numpy())[0]) + 1
        raise AuxrunError(f"{path}: line {line} has fewer than {required} tab-separated fields "
                          f"({', '.join(names[:required])})")
    return df


def _ints(column: pd.Series, path: Path, what: str) -> np.ndarray:
    """A column of non-negative integers, or one error naming the first bad line."""
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() | (values < 0) | (values % 1 != 0) | (values > 2 ** 31 - 1)
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0])
        raise AuxrunError(f"{path}: line {line + 1}: {what} must be a non-negative integer, found "
                          f"{column.iloc[line]!r}")
    return values.to_numpy().astype(np.int64)


def read_info(path: Path | None) -> tuple[dict[int, str], dict[int, str]]:
    """Node-type and link-type meanings from ``info.dat``'s ``TYPE`` and ``LINK`` sections
    (a header line, then one row per type whose first field is its number and last its
    meaning, up to a blank line); empty where the file or a section is absent."""
    types: dict[int, str] = {}
    links: dict[int, str] = {}
    if path is None:
        return types, links
    section = None
    with reading(path, "the HNE format's description of node and link types"):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in lines:
        fields = [f for f in re.split(r"\s+", line.strip()) if f]
        if not fields:
            section = None
            continue
        head = fields[0].upper()
        if head in ("TYPE", "NODE", "LINK", "LABEL"):
            section = {"TYPE": types, "NODE": types, "LINK": links}.get(head)
            continue
        if section is not None and fields[0].isdigit() and len(fields) >= 2:
            section[int(fields[0])] = fields[-1]
    return types, links


def _name(meaning: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", meaning.lower()).strip("_") or "unnamed"


@loader("hne", kinds=("zeroshot",))
def load_hne(cfg: DictConfig, seed: int, cache_dir: str | None = None) -> GraphData:
    """Build (or load from the cache) the HNE-format graph of this config and seed."""
    files = hne_files(cfg)
    key = fingerprint("hne", VERSION, int(seed), {k: file_stamp(p) for k, p in files.items()})
    return cached(cache_dir, "graphs", key, lambda: _build(cfg, seed, files, key, cache_dir))


def _nodes(path: Path, type_names: dict[int, str]) -> tuple[np.ndarray, np.ndarray, dict[str, torch.Tensor]]:
    """Each node's type name index and its position among its type's nodes, and each type's
    attribute matrix (zero columns for a type without attributes)."""
    df = _table(path, ["id", "name", "type", "attributes"], 3)
    ids = _ints(df.id, path, "node_id")
    n = len(ids)
    if not np.array_equal(np.sort(ids), np.arange(n)):
        dup = pd.Series(ids).duplicated()
        what = (f"node {ids[dup.to_numpy()][0]} appears twice" if dup.any()
                else f"ids must be 0..{n - 1}, found {ids.max()}")
        raise AuxrunError(f"{path}: {what} (the HNE format numbers its nodes by line)")
    order = np.argsort(ids)
    types = _ints(df.type, path, "node_type")[order]
    attrs = df.attributes.fillna("").to_numpy()[order]
    local = np.zeros(n, dtype=np.int64)
    x: dict[str, torch.Tensor] = {}
    for t in np.unique(types):
        rows = np.flatnonzero(types == t)
        local[rows] = np.arange(len(rows))
        name = _name(type_names.get(int(t), f"type{t}"))
        given = attrs[rows] != ""
        if not given.any():
            x[name] = torch.zeros(len(rows), 0)
            continue
        if not given.all():
            raise AuxrunError(f"{path}: node {int(rows[~given][0])} of type {t} has no attributes while others of "
                              f"its type have them")
        with reading(path, f"comma-separated numbers as the attributes of type {t}"):
            parts = pd.Series(attrs[rows]).str.split(",", expand=True)
            if parts.isna().any().any():
                line = int(np.flatnonzero(parts.isna().any(axis=1).to_numpy())[0])
                raise AuxrunError(f"{path}: node {int(rows[line])} has {int(parts.iloc[line].notna().sum())} "
                                  f"attributes, others of type {t} have {parts.shape[1]}")
            matrix = parts.astype(np.float32).to_numpy()
        check_matrix(matrix, str(path), f"attributes of type {t}")
        x[name] = torch.from_numpy(np.ascontiguousarray(matrix))
    return types, local, x


def _labels(paths: list[Path], types: np.ndarray) -> tuple[int, dict[int, list[int]]]:
    """The labelled node type and each labelled node's classes (over every label file)."""
    found: dict[int, set[int]] = {}
    for path in paths:
        df = _table(path, ["id", "name", "type", "label"], 4)
        ids = _ints(df.id, path, "node_id")
        check_ids(ids, len(types), str(path), "node_id")
        for i, text in zip(ids, df.label):
            classes = _ints(pd.Series(text.split(",")), path, f"the label of node {i}")
            found.setdefault(int(i), set()).update(int(c) for c in classes)
    labelled = np.array(sorted(found))
    kinds = np.unique(types[labelled])
    if len(kinds) != 1:
        raise AuxrunError(f"{', '.join(map(str, paths))}: labelled nodes of types {', '.join(map(str, kinds))}; the HNE "
                          "format labels one node type")
    return int(kinds[0]), {i: sorted(c) for i, c in found.items()}


def _build(cfg: DictConfig, seed: int, files: dict[str, Path], key: str, cache_dir: str | None) -> GraphData:
    with progress(f"building {cfg.name} graph", 3) as advance:
        type_names, link_names = read_info(files.get("info.dat"))
        types, local, x = _nodes(files["node.dat"], type_names)
        name_of = {int(t): _name(type_names.get(int(t), f"type{t}")) for t in np.unique(types)}
        advance("nodes")
        path = files["link.dat"]
        links = _table(path, ["src", "dst", "type", "weight"], 3)
        src, dst = _ints(links.src, path, "the first node_id"), _ints(links.dst, path, "the second node_id")
        check_ids(src, len(types), str(path), "the first node_id")
        check_ids(dst, len(types), str(path), "the second node_id")
        kind = _ints(links.type, path, "link_type")
        edges: dict[tuple[str, str, str], torch.Tensor] = {}
        for lt in np.unique(kind):
            on = kind == lt
            ends = set(zip(types[src[on]].tolist(), types[dst[on]].tolist()))
            if len(ends) != 1:
                pairs = ", ".join(f"{name_of[s]}->{name_of[d]}" for s, d in sorted(ends)[:3])
                raise AuxrunError(f"{path}: link type {lt} joins {pairs}; a link type joins one pair of node types")
            s, d = ends.pop()
            rel = (name_of[s], _name(link_names.get(int(lt), f"link{lt}")), name_of[d])
            edges[rel] = torch.from_numpy(np.stack([local[src[on]], local[dst[on]]]))
        advance("links")
        labelled_type, classes = _labels([files["label.dat"], *([files["label.dat.test"]]
                                                                 if "label.dat.test" in files else [])], types)
        num_classes = max(max(c) for c in classes.values()) + 1
        t_name = name_of[labelled_type]
        n_t = int((types == labelled_type).sum())
        y = torch.zeros(n_t, num_classes)
        for node, cs in classes.items():
            y[int(local[node]), cs] = 1.0
        rows = torch.nonzero(y.sum(1) > 0).flatten()
        split = {k: rows[v] for k, v in random_split(len(rows), (0.8, 0.1),
                                                      torch.Generator().manual_seed(int(seed))).items()}
        advance("labels")
    counts = {name_of[int(t)]: int((types == t).sum()) for t in np.unique(types)}
    return GraphData(
        name=str(cfg.name), x=x, edge_index=add_reverse(edges),
        target=TargetSpec(kind="node_cls", split=split, node_type=t_name, labels=y.argmax(1),
                          num_classes=num_classes),
        embedded=[t for t, v in x.items() if v.shape[1] == 0],
        node_labels={t_name: NodeLabels(y, [f"class{c}" for c in range(num_classes)])},
        info={"source": str(files["node.dat"].parent), "nodes": counts,
              "edges": {"__".join(r): int(e.shape[1]) for r, e in edges.items()}, "labelled": int(len(rows))},
        fingerprint=key, cache_dir=cache_dir,
    )
