"""``dataset=lastfm`` and ``dataset=bookcrossing``: the files KGNN-LS and RippleNet publish, read
as published, with the authors' preprocessing protocol applied here.

Two layouts of ``dataset.data_dir`` are read; the published one wins when both are present.

**Published** (``dataset.published`` names the files; ``auxrun data download NAME`` fetches them):

* Last-FM, KGNN-LS's ``data/music``: ``user_artists.dat`` (tab-separated, a header, ``userID
  artistID weight``), ``item_index2entity_id.txt`` (``artistID <tab> entity``),
  ``kg.txt`` (``head <tab> relation name <tab> tail``).
* Book-Crossing, RippleNet's ``data/book``: ``BX-Book-Ratings.csv`` (``;``-separated, every
  field in quotes, a header, ``User-ID ISBN Book-Rating``),
  ``item_index2entity_id_rehashed.txt``, ``kg_rehashed.txt``.

The protocol of their ``preprocess.py``, which SELAR and AUX-TS trained on: items are the
rated ids listed in the item-to-entity file, numbered in its line order, and the KG entity of
line ``i`` *is* item ``i``; a rating ``>= positive_rating`` is a positive pair (every Last-FM
play count and every Book-Crossing rating, implicit 0s included: the threshold is 0); users
with a positive are numbered in the order of their first positive; each user gets as many
negatives as positives, drawn from the items the user never rated with NumPy's legacy
generator seeded with ``negative_seed`` (their 555), exactly as their script draws them, from
the candidates listed as their script lists them (:func:`~auxrun.data.kg.implicit_pairs`); KG
entities that are not items are numbered after the items in order of first appearance. The
relations keep their *names* (``film.actor.film``), which meta-paths use directly or through
``relation_aliases``.

**Preprocessed** (the output of that script, and SELAR's ``.npy`` copies): ``ratings_final.txt``
or ``.npy`` (``user item label``) and ``kg_final.txt`` or ``.npy`` (``head relation tail``,
entities ``0..n_items-1`` being the items). Relations are numbered; ``relation_names`` names
the ids (``{film.actor.film: 2}``); an unnamed one is ``r<id>``.

Both layouts give the same graph for the same seed: the labelled pairs are put in (user, item)
order before the seeded 60/20/20 split. The statistics of the data read (users, items,
labelled interactions, entities with the items, relations, triples) are logged against
``published_stats``, the figures the papers report. No side features: users, items and
entities are ID-embedded.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from ..errors import AuxrunError
from .registry import loader
from .checks import reading
from .cache import cached, file_stamp, fingerprint, progress
from .download import dataset_folder, fetch_missing, where_published
from .graph import GraphData
from .kg import build_kg_graph, implicit_pairs, kg_relations

log = logging.getLogger(__name__)
VERSION = 2  # bump when the graph built from the same files changes
STATS = ("users", "items", "interactions", "entities", "relations", "triples")
# keys of the dataset config that do not change the graph (left out of its cache key)
NOT_IN_KEY = ("data_dir", "download", "published_stats")


@dataclass
class Interactions:
    """What either layout yields: labelled user-item pairs, the KG as (head, relation name,
    tail) with items as entities ``0..num_items-1``, and where it came from."""

    ratings: np.ndarray        # (n, 3) int64: user, item, 0/1 label
    heads: np.ndarray          # (m,) int64 entity ids
    relations: np.ndarray      # (m,) relation names
    tails: np.ndarray          # (m,) int64 entity ids
    num_items: int
    layout: str                # "published" | "preprocessed"
    files: dict[str, Path]

    def stats(self) -> dict[str, int]:
        """The statistics the papers' dataset tables report, computed on what was read."""
        ids = np.concatenate([self.heads, self.tails])
        entities = max(self.num_items, int(ids.max()) + 1 if len(ids) else 0)
        return {"users": int(len(np.unique(self.ratings[:, 0]))), "items": int(self.num_items),
                "interactions": int(len(self.ratings)), "entities": entities,
                "relations": int(len(np.unique(self.relations))), "triples": int(len(self.heads))}


def published_files(cfg: DictConfig, folder: Path) -> dict[str, Path]:
    """The published layout's files in ``folder`` (``ratings``, ``items``, ``kg0``, ...)."""
    pub = cfg.published
    files = {"ratings": folder / str(pub["ratings"]), "items": folder / str(pub["items"])}
    files |= {f"kg{i}": folder / str(name) for i, name in enumerate(pub.kg)}
    return files


def _find(folder: Path, stem: str) -> Path | None:
    for ext in (".npy", ".txt"):
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return None


def data_files(cfg: DictConfig) -> tuple[str, dict[str, Path]]:
    """The layout found in ``cfg.data_dir`` and its files; downloads the published files first
    when ``cfg.download`` is true and they are missing; else one message naming both layouts,
    where they are published, the download command and the offline alternative."""
    name = str(cfg.name)
    folder = dataset_folder(cfg, name)
    if cfg.get("published") is not None:
        published = published_files(cfg, folder)
        if all(p.is_file() for p in published.values()):
            return "published", published
    preprocessed = {k: _find(folder, f"{k}_final") for k in ("ratings", "kg")}
    if all(p is not None for p in preprocessed.values()):
        return "preprocessed", preprocessed  # type: ignore[return-value]
    if cfg.get("published") is not None and fetch_missing(cfg, name, folder, published.values()):
        return "published", published
    wanted = ", ".join(p.name for p in published_files(cfg, folder).values()) if cfg.get("published") is not None \
        else "the published files"
    raise AuxrunError(
        f"dataset={name} needs {wanted} ({where_published(name)}), or ratings_final.txt|.npy and "
        f"kg_final.txt|.npy made from them, in {folder}: run `auxrun data download {name}` (or add "
        f"dataset.download=true), or set dataset.data_dir=FOLDER. dataset=movielens has the same shape and "
        "runs offline."
    )


def read_int_table(path: Path, columns: int) -> np.ndarray:
    """An integer table with ``columns`` columns from ``.npy`` or whitespace-separated text."""
    with reading(path, "a table of integers"):
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            arr = pd.read_csv(path, sep=r"\s+", header=None, dtype=np.int64, engine="c").to_numpy()
    if arr.ndim != 2 or arr.shape[1] != columns or len(arr) == 0:
        raise AuxrunError(f"{path}: expected {columns} integer columns per line, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer) or (arr < 0).any():
        raise AuxrunError(f"{path}: entries must be non-negative integers")
    return arr.astype(np.int64)


def _read_table(path: Path, sep: str, columns: int, header: bool, what: str) -> pd.DataFrame:
    """A text table of strings, exactly ``columns`` fields per line (quotes are data), or one
    message naming the file and what it should hold."""
    with reading(path, what):
        df = pd.read_csv(path, sep=sep, header=0 if header else None, dtype=str, keep_default_na=False,
                         quoting=csv.QUOTE_NONE, engine="c", encoding="utf-8", encoding_errors="surrogateescape",
                         on_bad_lines="error")
    if df.shape[1] != columns or len(df) == 0:
        raise AuxrunError(f"{path}: expected {what}, {columns} fields per line separated by {sep!r}; found "
                          f"{df.shape[1]} field(s) on {len(df)} line(s)")
    df.columns = range(columns)
    return df


def _numbers(values: pd.Series, path: Path, what: str, integer: bool) -> np.ndarray:
    out = pd.to_numeric(values, errors="coerce")
    bad = out.isna() | (~np.isfinite(out.to_numpy(dtype=float)))
    if integer:
        bad |= out.to_numpy(dtype=float) % 1 != 0
    if bad.any():
        first = values[bad].iloc[0]
        raise AuxrunError(f"{path}: {int(bad.sum())} {what} are not {'integers' if integer else 'numbers'} "
                          f"(first: {first!r})")
    return out.to_numpy(dtype=np.int64 if integer else float)


def read_published(cfg: DictConfig, files: dict[str, Path]) -> Interactions:
    """The published files under the authors' protocol (module docstring)."""
    pub = cfg.published
    items = _read_table(files["items"], "\t", 2, False, "one 'item id <tab> entity id' per line")
    for col, what in ((0, "item id"), (1, "entity id")):
        dup = items[col][items[col].duplicated()]
        if len(dup):
            raise AuxrunError(f"{files['items']}: {len(dup)} repeated {what}(s) (first: {dup.iloc[0]!r}); each "
                              "item maps to one entity")
    item_index = dict(zip(items[0], range(len(items))))
    entity_index = dict(zip(items[1], range(len(items))))

    rated = _read_table(files["ratings"], str(pub.separator), 3, True, "'user, item, rating' per line")
    if pub.get("quoted"):  # RippleNet's Book-Crossing: every field in double quotes
        rated = rated.apply(lambda col: col.str[1:-1])
    rated = rated[rated[1].isin(item_index)]
    users_raw = _numbers(rated[0], files["ratings"], "user ids", integer=True)
    scores = _numbers(rated[2], files["ratings"], "ratings", integer=False)
    positive = scores >= float(pub.positive_rating)
    first_positive = pd.unique(users_raw[positive])  # users numbered in the order of their first positive
    users = pd.Index(first_positive).get_indexer(users_raw)
    keep = users >= 0
    users = users[keep].astype(np.int64)
    item_ids = rated[1].map(item_index).to_numpy(dtype=np.int64)[keep]
    pairs, labels = implicit_pairs(users, item_ids, scores[keep], len(items), float(pub.positive_rating), 1.0,
                                   np.random.RandomState(int(cfg.negative_seed)), candidates="script")
    ratings = np.column_stack([pairs.numpy().T, labels.numpy().astype(np.int64)])
    if not len(ratings):
        raise AuxrunError(f"{files['ratings']}: no positive rating of an item listed in {files['items'].name} "
                          f"({len(item_index)} items), so there is nothing to train on")

    kg = pd.concat([_read_table(files[k], "\t", 3, False, "one 'head <tab> relation <tab> tail' per line")
                    for k in files if k.startswith("kg")], ignore_index=True)
    for key in pd.unique(pd.concat([kg[0], kg[2]]).to_numpy().reshape(2, -1).T.ravel()):
        entity_index.setdefault(key, len(entity_index))  # new entities in order of first appearance
    heads = kg[0].map(entity_index).to_numpy(dtype=np.int64)
    tails = kg[2].map(entity_index).to_numpy(dtype=np.int64)
    return Interactions(ratings, heads, kg[1].to_numpy(dtype=str), tails, len(items), "published", files)


def read_preprocessed(cfg: DictConfig, files: dict[str, Path]) -> Interactions:
    """``ratings_final`` / ``kg_final`` as their script writes them; relation ids named by
    ``relation_names`` (``r<id>`` otherwise)."""
    ratings = read_int_table(files["ratings"], 3)
    kg = read_int_table(files["kg"], 3)
    if not np.isin(ratings[:, 2], (0, 1)).all():
        raise AuxrunError(f"{files['ratings']}: the third column must be a 0/1 label")
    names = {}
    for name, rid in (cfg.get("relation_names") or {}).items():
        if not isinstance(rid, int) or isinstance(rid, bool) or rid < 0:
            raise AuxrunError(f"dataset.relation_names.{name}={rid!r}: a relation id is a non-negative integer "
                              f"(the second column of {files['kg'].name})")
        names[int(rid)] = str(name)
    relations = np.array([names.get(int(r), f"r{int(r)}") for r in kg[:, 1]], dtype=str)
    return Interactions(ratings, kg[:, 0], relations, kg[:, 2], int(ratings[:, 1].max()) + 1, "preprocessed", files)


def check_stats(name: str, stats: dict[str, int], published: dict | None) -> dict[str, dict[str, int]]:
    """Log the statistics against the published ones; returns the keys that differ as
    ``{key: {"read": ..., "published": ...}}`` (empty when all agree)."""
    published = {k: int(v) for k, v in (published or {}).items()}
    differ = {k: {"read": stats[k], "published": published[k]} for k in STATS
              if k in published and stats[k] != published[k]}
    shown = ", ".join(f"{stats[k]:,} {k}" for k in STATS)
    if not published:
        log.info("%s: %s (no published statistics to compare with)", name, shown)
    elif differ:
        log.warning("%s: %s; differs from the published %s", name, shown,
                    ", ".join(f"{k} {v['published']:,}" for k, v in differ.items()))
    else:
        log.info("%s: %s, as published", name, shown)
    return differ


@loader("kgnn_ls", layouts=("table3",))
def load_kgnn_ls(cfg: DictConfig, seed: int, cache_dir: str | None = None) -> GraphData:
    """Build (or load from the cache) the graph of this config and seed."""
    layout, paths = data_files(cfg)
    settings = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in NOT_IN_KEY}
    key = fingerprint("kgnn_ls", VERSION, layout, settings, int(seed), {k: file_stamp(p) for k, p in paths.items()})
    data = cached(cache_dir, "graphs", key, lambda: _build(cfg, seed, layout, paths, key, cache_dir))
    data.info["stats_differ"] = check_stats(str(cfg.name), data.info["stats"], cfg.get("published_stats"))
    return data


def _build(cfg: DictConfig, seed: int, layout: str, paths: dict[str, Path], key: str,
           cache_dir: str | None) -> GraphData:
    name = str(cfg.name)
    with progress(f"building {name} graph ({layout} files)", 3) as advance:
        read = read_published if layout == "published" else read_preprocessed
        got = read(cfg, paths)
        advance("read files")
        ratings = got.ratings[np.lexsort((got.ratings[:, 1], got.ratings[:, 0]))]  # the same order from both layouts
        num_users = int(ratings[:, 0].max()) + 1
        triples = pd.DataFrame({"h": got.heads, "r": got.relations, "t": got.tails})
        num_entities, relations = kg_relations(triples, {i: i for i in range(got.num_items)}, int(cfg.kg_min_items))
        advance("knowledge graph")
        x = {"user": torch.zeros(num_users, 0), "item": torch.zeros(got.num_items, 0)}
        if num_entities:
            x["entity"] = torch.zeros(num_entities, 0)
        data = build_kg_graph(
            name=name, x=x, pairs=torch.from_numpy(ratings[:, :2].T.copy()),
            labels=torch.from_numpy(ratings[:, 2]).float(), relations=relations, split=tuple(cfg.split),
            seed=int(seed), embedded=list(x), aliases=dict(cfg.get("relation_aliases") or {}), fingerprint=key,
            cache_dir=cache_dir,
            info={"source": str(next(iter(paths.values())).parent), "layout": layout, "stats": got.stats()},
        )
        advance("split")
    return data
