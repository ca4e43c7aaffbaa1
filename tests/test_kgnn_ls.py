"""dataset=lastfm / bookcrossing: the files KGNN-LS and RippleNet publish, read as published.

The reference below is the authors' preprocessing protocol written out with Python sets, as
their ``preprocess.py`` describes it (users in order of their first positive, the unwatched
items as a set, NumPy's legacy global generator seeded with 555), independent of the loader's
vectorised version. Property tests draw many small datasets in the published layouts.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from auxrun.data import read  # the loader's parsing: tiny files leave splits too small for a run
from auxrun.data.kgnn_ls import data_files, read_published
from auxrun.errors import AuxrunError
from auxrun.tasks.pairs import metapath_counts, resolve_relation

REAL_LASTFM = Path("data/lastfm")


def dataset_cfg(name: str, folder: Path, **kw):
    base = OmegaConf.load(f"conf/dataset/{name}.yaml").dataset
    return OmegaConf.merge(base, {"data_dir": str(folder), **kw})


def reference_pairs(rows, items, threshold: float, seed: int = 555) -> set[tuple[int, int, int]]:
    """The authors' protocol: labelled (user, item, label) triples."""
    index = {it: i for i, it in enumerate(items)}
    pos: dict[int, set[int]] = {}
    neg: dict[int, set[int]] = {}
    for user, item, rating in rows:
        if item in index:
            (pos if rating >= threshold else neg).setdefault(int(user), set()).add(index[item])
    rs = np.random.RandomState(seed)
    out = set()
    for new, (user, liked) in enumerate(pos.items()):
        out |= {(new, i, 1) for i in liked}
        unwatched = set(range(len(items))) - liked
        unwatched -= neg.get(user, set())
        out |= {(new, int(i), 0) for i in rs.choice(list(unwatched), size=len(liked), replace=False)}
    return out


def write_lastfm(folder: Path, rows, items, triples) -> None:
    """Last-FM as KGNN-LS publishes it: user_artists.dat (header), item_index2entity_id.txt, kg.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "user_artists.dat").write_text("userID\tartistID\tweight\n" +
                                             "".join(f"{u}\t{i}\t{w}\n" for u, i, w in rows))
    (folder / "item_index2entity_id.txt").write_text("".join(f"{i}\t{e}\n" for i, e in items))
    (folder / "kg.txt").write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in triples))


def write_book(folder: Path, rows, items, triples) -> None:
    """Book-Crossing as RippleNet publishes it: quoted ';'-separated ratings with a header."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "BX-Book-Ratings.csv").write_text('"User-ID";"ISBN";"Book-Rating"\n' +
                                                "".join(f'"{u}";"{i}";"{r}"\n' for u, i, r in rows))
    (folder / "item_index2entity_id_rehashed.txt").write_text("".join(f"{i}\t{e}\n" for i, e in items))
    (folder / "kg_rehashed.txt").write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in triples))


def labelled(data) -> set[tuple[int, int, int]]:
    t = data.target
    out = set()
    for s in ("train", "val", "test"):
        out |= {(u, i, 1) for u, i in t.split[s].T.tolist()}
        out |= {(u, i, 0) for u, i in t.negatives[s].T.tolist()}
    return out


# A small Last-FM: artists 10..15 map to entities e0..e5 (items 0..5); artist 99 has no entity.
ITEMS = [(10 + k, f"e{k}") for k in range(6)]
ROWS = [(7, 11, 300), (7, 12, 40), (3, 12, 5), (3, 99, 8), (3, 15, 1), (7, 10, 2), (5, 14, 9)]
TRIPLES = [("e0", "film.actor.film", "f1"), ("e1", "film.actor.film", "f1"), ("e2", "music.artist.origin", "p1"),
           ("e3", "music.artist.origin", "p1"), ("e4", "film.actor.film", "f2"), ("e1", "people.person.sibling", "e5")]


def test_published_lastfm_layout_follows_the_authors_protocol(tmp_path):
    write_lastfm(tmp_path, ROWS, ITEMS, TRIPLES)
    data = read(dataset_cfg("lastfm", tmp_path), seed=0)
    assert data.info["layout"] == "published"
    want = reference_pairs(ROWS, [i for i, _ in ITEMS], 0)
    assert labelled(data) == want
    # user 7 rated first: user 0 with 3 positives; user 3 second (artist 99 is no item); user 5 third
    assert {(u, i) for u, i, y in want if y} == {(0, 1), (0, 2), (0, 0), (1, 2), (1, 5), (2, 4)}
    assert data.info["stats"] == {"users": 3, "items": 6, "interactions": 12, "entities": 9, "relations": 3,
                                  "triples": 6}
    # relation names survive; entities f1, f2, p1 are the non-item entities, e5 (item 5) stays an item
    assert data.num_nodes("entity") == 3
    assert ("item", "film.actor.film", "entity") in data.edge_index
    assert ("item", "people.person.sibling", "item") in data.edge_index
    assert resolve_relation(data, "actor") == ("item", "film.actor.film", "entity")  # the dataset's alias
    assert resolve_relation(data, "artist.origin") == ("item", "music.artist.origin", "entity")
    pairs, counts, src, dst = metapath_counts(data, "item-actor-item")
    assert (src, dst) == ("item", "item") and {tuple(p) for p in pairs.T.tolist()} == {(0, 1), (1, 0)}


def test_both_layouts_give_the_same_graph(tmp_path):
    """ratings_final / kg_final written in another order give the same split for each seed."""
    write_lastfm(tmp_path / "pub", ROWS, ITEMS, TRIPLES)
    pub = read(dataset_cfg("lastfm", tmp_path / "pub"), seed=4)
    rows = sorted(reference_pairs(ROWS, [i for i, _ in ITEMS], 0), key=lambda r: (-r[2], r[1], r[0]))
    ent = {e: k for k, (_, e) in enumerate(ITEMS)}
    rel = {}
    kg = []
    for h, r, t in TRIPLES:  # the script's numbering: entities and relations in order of appearance
        for e in (h, t):
            ent.setdefault(e, len(ent))
        kg.append((ent[h], rel.setdefault(r, len(rel)), ent[t]))
    pre_dir = tmp_path / "pre"
    pre_dir.mkdir()
    np.save(pre_dir / "ratings_final.npy", np.array(rows))
    (pre_dir / "kg_final.txt").write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in kg))
    pre = read(dataset_cfg("lastfm", pre_dir, relation_names=rel), seed=4)
    assert pre.info["layout"] == "preprocessed" and pre.info["stats"] == pub.info["stats"]
    for s in ("train", "val", "test"):
        assert torch.equal(pub.target.split[s], pre.target.split[s])
        assert torch.equal(pub.target.negatives[s], pre.target.negatives[s])
    assert pub.edge_index.keys() == pre.edge_index.keys()
    assert all(torch.equal(pub.edge_index[k], pre.edge_index[k]) for k in pub.edge_index)


def test_published_book_crossing_layout(tmp_path):
    isbns = ["0002005018", "0060973129", "0771074670", "080652121X", "0887841740"]
    items = [(b, str(k)) for k, b in enumerate(isbns)]
    rows = [(276725, "0060973129", 0), (276726, "080652121X", 5), (276725, "0887841740", 9),
            (276727, "9999999999", 7), (276726, "0002005018", 0)]
    triples = [("0", "book.book.genre", "g1"), ("1", "book.book.genre", "g1"), ("3", "book.written_work.literary_series", "s1"),
               ("4", "book.written_work.literary_series", "s1")]
    write_book(tmp_path, rows, items, triples)
    data = read(dataset_cfg("bookcrossing", tmp_path), seed=0)
    assert labelled(data) == reference_pairs(rows, isbns, 0)  # implicit 0 ratings are positives too
    assert data.info["stats"]["users"] == 2 and data.info["stats"]["interactions"] == 8
    assert resolve_relation(data, "literary.series") == ("item", "book.written_work.literary_series", "entity")
    assert resolve_relation(data, "genre") == ("item", "book.book.genre", "entity")


names = st.sampled_from(["film.actor.film", "music.artist.origin", "people.person.sibling"])


@st.composite
def published_dataset(draw):
    n_items = draw(st.integers(2, 12))
    artists = draw(st.lists(st.integers(0, 60), min_size=n_items, max_size=n_items, unique=True))
    items = [(a, f"m{a}") for a in artists]
    users = draw(st.lists(st.integers(1, 500), min_size=1, max_size=6, unique=True))
    rows = []
    for u in users:
        # a prefix of a permutation: distinct without the rejection sampling of unique=True, which
        # from so few values discarded enough draws to fail Hypothesis's health check
        rated = draw(st.permutations(artists + [999]))[:draw(st.integers(0, n_items))]
        rows += [(u, a, draw(st.integers(-3, 9))) for a in rated]
    ents = [f"m{a}" for a in artists] + [f"x{k}" for k in range(4)]
    triples = draw(st.lists(st.tuples(st.sampled_from(ents), names, st.sampled_from(ents)), min_size=1, max_size=15))
    return items, draw(st.permutations(rows)), triples


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=published_dataset(), threshold=st.sampled_from([0, 3]))
def test_property_published_read_is_the_authors_protocol(tmp_path_factory, case, threshold):
    items, rows, triples = case
    index = {a: k for k, (a, _) in enumerate(items)}
    liked: dict[int, set] = {}
    seen: dict[int, set] = {}
    for u, a, r in rows:
        if a in index:
            seen.setdefault(u, set()).add(a)
            if r >= threshold:
                liked.setdefault(u, set()).add(a)
    assume(liked)  # the script needs a positive somewhere, and enough unwatched items per user
    assume(all(2 * len(v) + len(seen[u] - v) <= len(items) for u, v in liked.items()))
    folder = tmp_path_factory.mktemp("pub")
    write_lastfm(folder, rows, items, triples)
    cfg = dataset_cfg("lastfm", folder, published={"positive_rating": threshold})
    got = read_published(cfg, data_files(cfg)[1])
    assert {tuple(r) for r in got.ratings.tolist()} == reference_pairs(rows, [a for a, _ in items], threshold)
    kg_entities = {h for h, _, _ in triples} | {t for _, _, t in triples}
    assert got.stats()["entities"] == len(items) + len(kg_entities - {e for _, e in items})
    assert got.stats()["relations"] == len({r for _, r, _ in triples}) and got.stats()["triples"] == len(triples)


def test_statistics_are_logged_against_the_published_ones(tmp_path, caplog):
    write_lastfm(tmp_path, ROWS, ITEMS, TRIPLES)
    with caplog.at_level(logging.INFO, logger="auxrun.data.kgnn_ls"):
        data = read(dataset_cfg("lastfm", tmp_path), seed=0)
    assert data.info["stats_differ"]["users"] == {"read": 3, "published": 1872}
    assert "differs from the published users 1,872" in caplog.text
    caplog.clear()
    stats = data.info["stats"]
    with caplog.at_level(logging.INFO, logger="auxrun.data.kgnn_ls"):
        data = read(dataset_cfg("lastfm", tmp_path, published_stats=stats), seed=0)
    assert data.info["stats_differ"] == {} and "as published" in caplog.text


@pytest.mark.parametrize("mangle, message", [
    (lambda d: (d / "user_artists.dat").write_text("userID\tartistID\n2\t10\n"), "3 fields per line"),
    (lambda d: (d / "user_artists.dat").write_text("userID\tartistID\tweight\n2\t10\tmany\n"), "ratings are not numbers"),
    (lambda d: (d / "user_artists.dat").write_text("userID\tartistID\tweight\nbob\t10\t3\n"), "user ids are not integers"),
    (lambda d: (d / "item_index2entity_id.txt").write_text("10\te0\n10\te1\n"), "repeated item id"),
    (lambda d: (d / "kg.txt").write_text("e0\tfilm.actor.film\n"), "3 fields per line"),
    (lambda d: (d / "kg.txt").write_bytes(b""), "kg.txt"),
])
def test_bad_published_files_are_one_message(tmp_path, mangle, message):
    write_lastfm(tmp_path, ROWS, ITEMS, TRIPLES)
    mangle(tmp_path)
    with pytest.raises(AuxrunError, match=message):
        read(dataset_cfg("lastfm", tmp_path), seed=0)


def test_missing_files_name_both_layouts_the_download_and_the_offline_alternative(tmp_path):
    with pytest.raises(AuxrunError) as err:
        read(dataset_cfg("bookcrossing", tmp_path), seed=0)
    msg = str(err.value)
    assert "BX-Book-Ratings.csv" in msg and "kg_rehashed.txt" in msg and "RippleNet" in msg
    assert "ratings_final" in msg and "auxrun data download bookcrossing" in msg and "dataset=movielens" in msg


@pytest.mark.skipif(not (REAL_LASTFM / "user_artists.dat").is_file(), reason="the real Last-FM is not in data/lastfm")
def test_real_lastfm_has_the_published_statistics_and_the_authors_negatives():
    cfg = dataset_cfg("lastfm", REAL_LASTFM)
    got = read_published(cfg, data_files(cfg)[1])
    assert got.stats() == dict(cfg.published_stats)
    ordered = got.ratings[np.lexsort((got.ratings[:, 1], got.ratings[:, 0]))]
    text = "".join(f"{u}\t{i}\t{y}\n" for u, i, y in ordered.tolist())
    # sha256 of the sorted ratings_final.txt that KGNN-LS's own preprocess.py writes for data/music
    assert hashlib.sha256(text.encode()).hexdigest() == "20e3f1e2a454b474941b5228fb6ba357b0f455b9a1c400574ae7c4089597482e"


@pytest.mark.parametrize("fmt", ["txt", "npy"])
def test_preprocessed_layout_names_relations_with_relation_names(tmp_path, fmt):
    ratings = np.array([[0, 0, 1], [0, 1, 0], [1, 1, 1], [1, 2, 0], [2, 2, 1], [2, 0, 0], [0, 2, 1], [1, 0, 0]])
    # entities 0..2 are the items; 3 and 4 other entities; relation 0 named, relation 1 not
    kg = np.array([[0, 0, 3], [1, 0, 3], [2, 1, 4], [0, 1, 4]])
    for name, arr in (("ratings_final", ratings), ("kg_final", kg)):
        if fmt == "npy":
            np.save(tmp_path / f"{name}.npy", arr)
        else:
            (tmp_path / f"{name}.txt").write_text("\n".join("\t".join(map(str, r)) for r in arr) + "\n")
    data = read(dataset_cfg("lastfm", tmp_path, relation_names={"appearing.in.film": 0}), seed=0)
    assert {t: data.num_nodes(t) for t in data.node_types} == {"user": 3, "item": 3, "entity": 2}
    assert labelled(data) == {tuple(r) for r in ratings.tolist()}
    assert ("item", "appearing.in.film", "entity") in data.edge_index and ("item", "r1", "entity") in data.edge_index
    pairs, _, _, _ = metapath_counts(data, "item-appearing.in.film-item")  # the name itself, before the alias
    assert {tuple(p) for p in pairs.T.tolist()} == {(0, 1), (1, 0)}


def test_preprocessed_files_are_validated(tmp_path):
    (tmp_path / "ratings_final.txt").write_text("0 0 2\n")
    (tmp_path / "kg_final.txt").write_text("0 0 1\n")
    with pytest.raises(AuxrunError, match="0/1 label"):
        read(dataset_cfg("bookcrossing", tmp_path), seed=0)
    (tmp_path / "ratings_final.txt").write_text("0 0 1\n")
    with pytest.raises(AuxrunError, match="relation id is a non-negative integer"):
        read(dataset_cfg("bookcrossing", tmp_path, relation_names={"genre": "x"}), seed=0)


def test_relation_names_override_as_the_readme_prints_it():
    """A dict value with dotted names replaces the null default (no +KEY=VALUE needed)."""
    from conftest import run_cli

    proc = run_cli("mtl", "dataset=lastfm", "dataset.relation_names={film.actor.film: 2, appearing.in.film: 1}",
                   "--cfg", "job")
    assert proc.returncode == 0, proc.stderr
    block = proc.stdout.split("relation_names:")[1].split("relation_aliases:")[0]
    assert "film.actor.film: 2" in block and "appearing.in.film: 1" in block
    bad = run_cli("mtl", "dataset=lastfm", "dataset.relation_names={actor: -1}")
    assert bad.returncode == 2 and "dataset.relation_names.actor=-1" in bad.stderr
    nested = run_cli("mtl", "dataset=lastfm", "dataset.relation_names={film.actor.film: {a: 1}}")
    assert nested.returncode == 2 and "dataset.relation_names.film.actor.film={'a': 1}: a mapping" in nested.stderr
