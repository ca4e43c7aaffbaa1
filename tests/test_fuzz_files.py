"""Property: whatever damage a data file has, its loader either refuses it with one line
(:class:`~auxrun.errors.AuxrunError`) or returns a dataset that passes the whole-dataset check
(every split non-empty, indices in range, finite features, the classes each metric needs).

For every loader that reads files (Last-FM and Book-Crossing as published, MovieLens's atomic
files, Reddit's ``.npz``, ogbn-mag's gzipped CSVs, OAG's pickle, PubMed's HNE files, a molecule
CSV, MoleculeNet's BBBP, Tox21 and ToxCast files as published), a hypothesis fuzzer writes a small valid set of files in the published layout, damages one file (truncate
it, flip a byte, drop a column, put ``nan``, ``-1`` or a huge id into a field, empty it, keep
only its header) and loads it. ``make test`` draws a bounded number of examples; ``-m slow``
many more.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auxrun.data import load
from auxrun.errors import AuxrunError
from test_fuzz import fuzz  # the same settings: derandomized unless AUXRUN_FUZZ_RANDOM=1
from test_hne import hne_cfg, write_hne
from test_kg import ml_cfg
from test_kgnn_ls import dataset_cfg, write_book, write_lastfm
from auxrun.data.sources import MOLECULENET_FILES
from test_moleculenet_files import cfg as moleculenet_cfg
from test_moleculenet_files import table, write
from test_molecules import SMILES, csv_cfg
from test_table2_data import oag_cfg, reddit_cfg, write_oag, write_reddit
from test_zeroshot import mag_cfg, write_gz


def _ratings(rng: np.random.RandomState, users: int, items: int, per_user: int) -> list[tuple[int, int, int]]:
    return [(u, int(i), int(rng.randint(1, 9))) for u in range(users)
            for i in rng.choice(items, per_user, replace=False)]


def _kg(rng: np.random.RandomState, entities: list[str], relations: list[str], n: int) -> list[tuple[str, str, str]]:
    return [(entities[rng.randint(len(entities))], relations[rng.randint(len(relations))], f"x{rng.randint(6)}")
            for _ in range(n)]


def lastfm(folder: Path) -> object:
    rng = np.random.RandomState(0)
    items = [(100 + i, f"m.{i}") for i in range(24)]
    write_lastfm(folder, [(u, 100 + i, w) for u, i, w in _ratings(rng, 10, 24, 6)], items,
                 _kg(rng, [e for _, e in items], ["film.actor.film", "music.artist.origin"], 40))
    return dataset_cfg("lastfm", folder)


def bookcrossing(folder: Path) -> object:
    rng = np.random.RandomState(1)
    items = [(f"isbn{i}", f"b.{i}") for i in range(24)]
    write_book(folder, [(u, f"isbn{i}", w) for u, i, w in _ratings(rng, 10, 24, 6)], items,
               _kg(rng, [e for _, e in items], ["book.book.genre", "book.written_work.author"], 40))
    return dataset_cfg("bookcrossing", folder)


def movielens(folder: Path) -> object:
    rng = np.random.RandomState(2)
    users, items = 8, 12
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
        f"{u}\t{i}\t{r}\t{u * items + i}\n" for u, i, r in _ratings(rng, users, items, 6))
    user = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n" + "".join(
        f"{u}\t{20 + u}\t{'MF'[u % 2]}\t{('writer', 'other')[u % 2]}\t{u}\n" for u in range(users))
    item = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n" + "".join(
        f"{i}\tT{i}\t{1980 + i}\t{('Action Comedy', 'Drama', 'Comedy')[i % 3]}\n" for i in range(items))
    link = "item_id:token\tentity_id:token\n" + "".join(f"{i}\tm.{i}\n" for i in range(items))
    kg = "head_id:token\trelation_id:token\ttail_id:token\n" + "".join(
        f"{h}\t{r}\t{t}\n" for h, r, t in _kg(rng, [f"m.{i}" for i in range(items)],
                                             ["film.film.genre", "film.film.directed_by"], 30))
    for ext, text in {"inter": inter, "user": user, "item": item, "link": link, "kg": kg}.items():
        (folder / f"ml-100k.{ext}").write_text(text)
    return ml_cfg(folder)


def reddit(folder: Path) -> object:
    write_reddit(folder, n=60)
    return reddit_cfg(folder)


def ogbn_mag(folder: Path) -> object:
    rng = np.random.RandomState(3)
    papers, authors, fields, institutions = 30, 8, 4, 3
    raw = folder / "raw"

    def edges(a: int, b: int, n: int) -> str:
        return "".join(f"{rng.randint(a)},{rng.randint(b)}\n" for _ in range(n))

    write_gz(raw / "num-node-dict.csv.gz", f"author,field_of_study,institution,paper\n{authors},{fields},{institutions},"
                                           f"{papers}\n")
    write_gz(raw / "node-feat" / "paper" / "node-feat.csv.gz",
             "".join(",".join(f"{v:.3f}" for v in row) + "\n" for row in rng.randn(papers, 3)))
    write_gz(raw / "node-label" / "paper" / "node-label.csv.gz", "".join(f"{i % 3}\n" for i in range(papers)))
    rel = raw / "relations"
    write_gz(rel / "author___affiliated_with___institution" / "edge.csv.gz", edges(authors, institutions, 8))
    write_gz(rel / "author___writes___paper" / "edge.csv.gz", edges(authors, papers, 40))
    write_gz(rel / "paper___cites___paper" / "edge.csv.gz", edges(papers, papers, 40))
    write_gz(rel / "paper___has_topic___field_of_study" / "edge.csv.gz", edges(papers, fields, 40))
    return mag_cfg(folder)


def pubmed_hne(folder: Path) -> object:
    write_hne(folder)
    return hne_cfg(folder)


def oag(folder: Path) -> object:
    write_oag(folder / "graph_CS.pk")
    return oag_cfg(folder)


def molecules(folder: Path) -> object:
    path = folder / "mols.csv"
    path.write_text("smiles,y,z\n" + "".join(f"{s},{i % 2},{(i * 7) % 5 / 4}\n" for i, s in enumerate(SMILES)))
    return csv_cfg(path, label_cols=["y"], split="random")


def moleculenet(name: str) -> Callable[[Path], object]:
    """One of MoleculeNet's published files (its columns, gzip where DeepChem serves gzip,
    empty cells for missing labels)."""
    def write_file(folder: Path) -> object:
        write(folder / MOLECULENET_FILES[name][0], table(name)[0])
        return moleculenet_cfg(name, folder)
    return write_file


DATASETS: dict[str, Callable[[Path], object]] = {"lastfm": lastfm, "bookcrossing": bookcrossing,
                                                 "movielens": movielens, "reddit": reddit, "ogbn_mag": ogbn_mag,
                                                 "oag_cs": oag, "pubmed_hne": pubmed_hne, "csv": molecules,
                                                 **{name: moleculenet(name) for name in ("bbbp", "tox21", "toxcast")}}
DAMAGE = ("truncate", "flip", "drop_column", "nan", "negative", "huge", "empty", "header_only")
NUMBER = re.compile(rb"(?<![\w.])\d+(\.\d+)?(?![\w.])")


def damage_text(data: bytes, how: str, at: int) -> bytes:
    """``data`` (a text table) damaged ``how``; ``at`` picks the place."""
    if how == "truncate":
        return data[: at % max(len(data), 1)]
    if how == "flip":
        if not data:
            return data
        i = at % len(data)
        return data[:i] + bytes([data[i] ^ (1 + at % 255)]) + data[i + 1:]
    if how == "empty":
        return b""
    lines = data.splitlines(keepends=True)
    if how == "header_only":
        return b"".join(lines[:1])
    if how == "drop_column":
        return b"".join(re.sub(rb"[\t,;][^\t,;\n]*(\n?)$", rb"\1", line) for line in lines)
    numbers = list(NUMBER.finditer(data))
    if not numbers:
        return data
    m = numbers[at % len(numbers)]
    value = {"nan": b"nan", "negative": b"-1", "huge": b"99999999999"}[how]
    return data[: m.start()] + value + data[m.end():]


def damage_npz(path: Path, how: str, at: int) -> None:
    """An ``.npz`` damaged ``how``: its bytes (truncate, flip, empty) or one of its arrays."""
    if how in ("truncate", "flip", "empty", "header_only"):
        path.write_bytes(damage_text(path.read_bytes(), "truncate" if how == "header_only" else how, at))
        return
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k].copy() for k in f.files}
    names = sorted(k for k, a in arrays.items() if a.ndim and np.issubdtype(a.dtype, np.number))
    name = names[at % len(names)]
    a = arrays[name]
    if how == "drop_column":
        arrays[name] = a[..., :-1] if a.ndim > 1 else a[:-1]
    elif a.size:
        flat = a.astype(np.float64).reshape(-1)
        flat[at % flat.size] = {"nan": np.nan, "negative": -1, "huge": 1e11}[how]
        arrays[name] = flat.reshape(a.shape)
    np.savez(path, **arrays)


def damage(path: Path, how: str, at: int) -> None:
    if path.suffix == ".npz":
        damage_npz(path, how, at)
    elif path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            text = fh.read()
        if how in ("truncate", "flip"):  # the compressed bytes themselves
            path.write_bytes(damage_text(path.read_bytes(), how, at))
        else:
            with gzip.open(path, "wb") as fh:
                fh.write(damage_text(text, how, at))
    else:
        path.write_bytes(damage_text(path.read_bytes(), how, at))


def loads_or_refuses(cfg: object) -> str:
    try:
        load(cfg, 0, None)
    except AuxrunError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip(), f"not one line: {exc}"
        return "refused"
    return "loaded"


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_loaders_undamaged_files_load_whole(name, tmp_path):
    """The fuzzer's starting point: each set of files passes the whole-dataset check, so a
    refusal below comes from the damage, not from files too small to run on."""
    load(DATASETS[name](tmp_path), 0, None)


def _fuzz(data, tmp_path_factory) -> None:
    name = data.draw(st.sampled_from(sorted(DATASETS)), label="dataset")
    folder = tmp_path_factory.mktemp("files")
    cfg = DATASETS[name](folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    path = data.draw(st.sampled_from(files), label="file")
    how = data.draw(st.sampled_from(DAMAGE), label="damage")
    damage(path, how, data.draw(st.integers(0, 10**6), label="at"))
    loads_or_refuses(cfg)


@fuzz(int(os.environ.get("AUXRUN_FUZZ_FILE_EXAMPLES", "100")))
@given(data=st.data())
def test_a_damaged_file_is_refused_in_one_line_or_loads_whole(data, tmp_path_factory):
    _fuzz(data, tmp_path_factory)


@pytest.mark.slow
@fuzz(1000)
@given(data=st.data())
def test_a_damaged_file_many_draws(data, tmp_path_factory):
    _fuzz(data, tmp_path_factory)


def test_damage_changes_what_it_says(tmp_path):
    """The damage itself (a fuzzer whose damage did nothing could not fail)."""
    text = b"a,b\n1,2\n3,4\n"
    assert damage_text(text, "drop_column", 0) == b"a\n1\n3\n"
    assert damage_text(text, "nan", 1) == b"a,b\n1,nan\n3,4\n"
    assert damage_text(text, "header_only", 0) == b"a,b\n"
    assert damage_text(text, "truncate", 5) == b"a,b\n1"
    assert damage_text(text, "flip", 0) != text
    path = tmp_path / "a.npz"
    np.savez(path, a=np.zeros((2, 3)))
    damage(path, "nan", 4)
    with np.load(path) as f:
        assert np.isnan(f["a"][1, 1]) and np.isnan(f["a"]).sum() == 1
    damage(path, "drop_column", 0)
    with np.load(path) as f:
        assert f["a"].shape == (2, 2)
