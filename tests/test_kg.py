"""Knowledge-graph recommendation data: loaders on tiny files in the published formats, the
split, meta-path labels with relation tokens, ranking metrics and the on-disk cache."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from auxrun.data import read  # the loader's parsing: tiny files leave splits too small for a run
from auxrun.data.graph import GraphData, TargetSpec, add_reverse
from auxrun.errors import AuxrunError
from auxrun.tasks.metrics import ranking_metrics
from auxrun.tasks.pairs import LinkPrediction, MetaPathPrediction, density_threshold, metapath_counts

INTER = """user_id:token\titem_id:token\trating:float\ttimestamp:float
1\t1\t5\t1
1\t2\t4\t2
1\t3\t1\t3
2\t1\t4\t4
2\t4\t2\t5
3\t2\t5\t6
3\t5\t3\t7
4\t3\t4\t8
4\t4\t5\t9
4\t5\t4\t10
"""
USER = """user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token
1\t24\tM\ttechnician\t1
2\t53\tF\tother\t2
3\t17\tM\twriter\t3
4\t60\tF\twriter\t4
"""
ITEM = """item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq
1\tA\t1995\tAction Comedy
2\tB\t1977\tDrama
3\tC\t1994\tComedy
4\tD\t1980\tAction
5\tE\t1999\tDrama
"""
LINK = "item_id:token\tentity_id:token\n1\tm.a\n2\tm.b\n3\tm.c\n4\tm.d\n"
KG = """head_id:token\trelation_id:token\ttail_id:token
m.a\tfilm.film.genre\tg1
m.b\tfilm.film.genre\tg1
m.c\tfilm.film.genre\tg2
g1\tfilm.film_genre.films_in_this_genre\tm.a
g1\tfilm.film_genre.films_in_this_genre\tm.b
g2\tfilm.film_genre.films_in_this_genre\tm.c
m.a\tfilm.film.directed_by\td1
m.d\tfilm.film.directed_by\td1
m.b\tfilm.film.directed_by\td2
p1\tfilm.producer.film\tm.a
p1\tfilm.producer.film\tm.c
"""


def write_ml(folder) -> None:
    for ext, text in {"inter": INTER, "user": USER, "item": ITEM, "link": LINK, "kg": KG}.items():
        (folder / f"ml-100k.{ext}").write_text(text)


def ml_cfg(folder, **kw):
    base = OmegaConf.load("conf/dataset/movielens.yaml").dataset
    return OmegaConf.merge(base, {"data_dir": str(folder), **kw})


def as_set(pairs: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in pairs.t()}


def all_pairs(data: GraphData, labelled: bool) -> set[tuple[int, int]]:
    t = data.target
    parts = t.split if labelled else t.negatives
    return set().union(*(as_set(p) for p in parts.values()))


def test_movielens_loader_on_tiny_atomic_files(tmp_path):
    write_ml(tmp_path)
    data = read(ml_cfg(tmp_path), seed=0)
    # users 1..4 -> 0..3, items 1..5 -> 0..4; positives are ratings >= 4
    assert all_pairs(data, True) == {(0, 0), (0, 1), (1, 0), (2, 1), (3, 2), (3, 3), (3, 4)}
    negatives = all_pairs(data, False)
    rated = {(0, 0), (0, 1), (0, 2), (1, 0), (1, 3), (2, 1), (2, 4), (3, 2), (3, 3), (3, 4)}
    assert not negatives & rated  # drawn from never-rated items only
    per_user = {u: sum(1 for p in negatives if p[0] == u) for u in range(4)}
    assert per_user == {0: 2, 1: 1, 2: 1, 3: 2}  # one per positive; user 3 has only 2 unrated items
    # KG: g1 (items 0, 1), d1 (items 0, 3), p1 (items 0, 2) kept; g2 and d2 touch one item only
    assert data.num_nodes("entity") == 3 and data.embedded == ["user", "item", "entity"]
    rels = {k[1]: v for k, v in data.edge_index.items() if not k[1].startswith("rev_")}
    assert set(rels) == {"rates", "film.film.genre", "film.film.directed_by", "film.producer.film"}
    # the inverse genre relation repeats film.film.genre and is dropped; producer.film is flipped
    assert data.edge_types.count(("item", "film.producer.film", "entity")) == 1
    assert rels["film.film.genre"].shape[1] == 2 and rels["film.producer.film"].shape[1] == 2
    # the encoder sees training positives only
    assert as_set(rels["rates"]) == as_set(data.target.split["train"])
    assert data.x["user"].shape == (4, 7 + 2 + 3) and data.x["item"].shape[0] == 5
    assert data.x["item"][0, :3].tolist() == [1.0, 1.0, 0.0]  # Action, Comedy, Drama
    assert data.schema()["graph"] == data.fingerprint != ""


def test_movielens_keeps_every_entity_with_min_items_1(tmp_path):
    write_ml(tmp_path)
    assert read(ml_cfg(tmp_path, kg_min_items=1), seed=0).num_nodes("entity") == 5


def test_split_is_disjoint_complete_and_seeded(tmp_path):
    write_ml(tmp_path)
    a, b, c = (read(ml_cfg(tmp_path), seed=s) for s in (0, 0, 1))
    for labelled in ("split", "negatives"):
        parts = [as_set(p) for p in getattr(a.target, labelled).values()]
        assert sum(len(p) for p in parts) == len(set().union(*parts))  # disjoint
    assert sum(p.shape[1] for p in a.target.split.values()) == 7 and sum(
        p.shape[1] for p in a.target.negatives.values()) == 6
    same = all(torch.equal(a.target.split[s], b.target.split[s]) for s in a.target.split)
    differ = any(not torch.equal(a.target.split[s], c.target.split[s]) for s in a.target.split)
    assert same and differ


def test_packaged_movielens_sizes():
    data = read(OmegaConf.load("conf/dataset/movielens.yaml").dataset, seed=0)
    assert data.info["nodes"]["user"] == 943 and data.info["nodes"]["item"] == 1682
    counts = data.info["interactions"]
    assert sum(c["pos"] for c in counts.values()) == 55375  # ratings >= 4 in MovieLens-100k
    assert abs(counts["train"]["pos"] / 55375 - 0.6) < 0.01 and abs(counts["test"]["pos"] / 55375 - 0.2) < 0.01
    assert data.info["kg_relations"] >= 10 and data.num_nodes("entity") > 1000


def test_movielens_errors(tmp_path):
    with pytest.raises(AuxrunError, match=r"ml-100k.inter.*not found"):
        read(ml_cfg(tmp_path), seed=0)
    write_ml(tmp_path)
    (tmp_path / "ml-100k.inter").write_text("user_id:token\titem_id:token\trating:float\n1\t1\tgood\n")
    with pytest.raises(AuxrunError, match="not numbers"):
        read(ml_cfg(tmp_path), seed=0)


def kg_graph() -> GraphData:
    """users u0 u1; items i0 i1 i2; entities e0 (genre of i0, i1), e1 (director of i2).
    u0 rates i0, i1; u1 rates i1, i2."""
    edges = {
        ("user", "rates", "item"): torch.tensor([[0, 0, 1, 1], [0, 1, 1, 2]]),
        ("item", "film.film.genre", "entity"): torch.tensor([[0, 1], [0, 0]]),
        ("item", "film.film.directed_by", "entity"): torch.tensor([[2], [1]]),
    }
    x = {"user": torch.zeros(2, 0), "item": torch.zeros(3, 0), "entity": torch.zeros(2, 0)}
    pos, neg = torch.tensor([[0], [0]]), torch.tensor([[1], [0]])
    target = TargetSpec(kind="link_pred", edge_type=("user", "rates", "item"),
                        split={"train": edges[("user", "rates", "item")], "val": pos, "test": pos},
                        negatives={"train": torch.tensor([[0, 1], [2, 0]]), "val": neg, "test": neg})
    return GraphData(name="kg", x=x, edge_index=add_reverse(edges), target=target, embedded=list(x),
                     aliases={"director": "film.film.directed_by"})


def test_metapath_with_relation_tokens_by_hand():
    data = kg_graph()
    pairs, counts, src, dst = metapath_counts(data, "user-item-genre-item")
    got = {(int(a), int(b)): int(c) for (a, b), c in zip(pairs.t(), counts)}
    assert (src, dst) == ("user", "item")
    assert got == {(0, 0): 2, (0, 1): 2, (1, 0): 1, (1, 1): 1}  # u1 reaches genre only through i1
    pairs, _, _, _ = metapath_counts(data, "user-item-director-item")
    assert as_set(pairs) == {(1, 2)}
    pairs, _, _, _ = metapath_counts(data, "item-genre-item")
    assert as_set(pairs) == {(0, 1), (1, 0)}
    for bad, msg in (("item-genre-director", "two relations"), ("user-genre-item", "starts at 'item'"),
                     ("user-item-award-item", "neither a node type")):
        with pytest.raises(AuxrunError, match=msg):
            metapath_counts(data, bad)


def test_metapath_threshold_keeps_the_densest_pairs():
    counts = torch.tensor([2.0, 2.0, 1.0, 1.0])
    assert density_threshold(counts, 6, 0.5) == 2  # 4 positives > 3 allowed -> need 2 instances
    assert density_threshold(counts, 6, 0.7) == 1
    assert density_threshold(torch.tensor([3.0, 3.0, 3.0]), 4, 0.25) == 3  # never above the largest count
    data = kg_graph()
    task = MetaPathPrediction("uigi", data, "user-item-genre-item", 8, None, 100, 0, max_density=0.5)
    assert task.min_count == 2 and as_set(task.positives) == {(0, 0), (0, 1)}
    # pairs below the threshold are negatives; the positives never are
    batch = task.sample(200, torch.Generator().manual_seed(0))
    negatives = as_set(batch["pairs"][:, batch["labels"] == 0])
    assert negatives and not negatives & {(0, 0), (0, 1)}


def test_link_prediction_trains_on_labelled_pairs_and_ranks_all_items():
    data = kg_graph()
    task = LinkPrediction(data, 4, None)
    assert task.fixed_negatives and task.num_train() == 6
    batch = task.batch(torch.arange(6), torch.Generator())
    labelled = {(int(a), int(b)): float(y) for (a, b), y in zip(batch["pairs"].t(), batch["labels"])}
    assert labelled == {(0, 0): 1, (0, 1): 1, (1, 1): 1, (1, 2): 1, (0, 2): 0, (1, 0): 0}
    # hand-made embeddings: user 0 prefers item 0, then 2, then 1 (item 1 is a training positive)
    emb = {"user": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
           "item": torch.tensor([[3.0, 0.0], [2.5, 0.0], [1.0, 0.0]])}
    task = LinkPrediction(data, 2, None)
    out = task.ranking(emb, "test")  # positive (0, 0); training positives (0, 1) filtered out
    assert out["mrr"] == 1.0 and out["ndcg"] == 1.0
    emb["item"] = torch.tensor([[1.0, 0.0], [2.5, 0.0], [3.0, 0.0]])  # now item 2 outranks item 0
    out = task.ranking(emb, "test")
    assert out["mrr"] == 0.5 and math.isclose(out["ndcg"], 1 / math.log2(3))


def test_ranking_metrics_match_a_brute_force_reference():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(30, 20, generator=gen)
    relevant = torch.rand(30, 20, generator=gen) < 0.15
    exclude = (torch.rand(30, 20, generator=gen) < 0.2) & ~relevant
    got = ranking_metrics(scores, relevant, exclude, k=5)
    for r in range(30):
        order = [j for j in scores[r].argsort(descending=True).tolist() if not exclude[r, j]]
        rel = [bool(relevant[r, j]) for j in order]
        if not any(rel):
            assert got[0, r] == 0 and got[1, r] == 0
            continue
        assert math.isclose(got[0, r], 1 / (rel.index(True) + 1))
        dcg = sum(1 / math.log2(i + 2) for i, v in enumerate(rel[:5]) if v)
        idcg = sum(1 / math.log2(i + 2) for i in range(min(5, sum(rel))))
        assert math.isclose(got[1, r], dcg / idcg)
    # a model scoring every item alike gets what a random ranking gets: the one relevant item
    # is equally likely at each of the 5 places
    flat = ranking_metrics(torch.zeros(1, 5), torch.tensor([[True, False, False, False, False]]),
                           torch.zeros(1, 5, dtype=torch.bool))
    assert math.isclose(flat[0, 0], sum(1 / r for r in range(1, 6)) / 5)


def test_graph_and_metapaths_are_cached_and_rebuilt_when_the_source_changes(tmp_path, monkeypatch):
    write_ml(tmp_path)
    cache = tmp_path / "cache"
    import auxrun.data.movielens as ml

    calls = []
    real = ml._build
    monkeypatch.setattr(ml, "_build", lambda *a: calls.append(1) or real(*a))
    first = read(ml_cfg(tmp_path), 0, str(cache))
    second = read(ml_cfg(tmp_path), 0, str(cache))
    assert len(calls) == 1 and torch.equal(first.target.split["test"], second.target.split["test"])
    read(ml_cfg(tmp_path), 1, str(cache))  # another seed is another graph
    assert len(calls) == 2
    (tmp_path / "ml-100k.inter").write_text(INTER + "4\t1\t5\t11\n")
    changed = read(ml_cfg(tmp_path), 0, str(cache))
    assert len(calls) == 3 and changed.fingerprint != first.fingerprint
    MetaPathPrediction("uiu", second, "user-item-user", 8, None, 100, 0)
    assert len(list((cache / "metapaths").glob("*.pt"))) == 1


def test_finetune_on_movielens_files_end_to_end(tmp_path):
    """As a user: finetune on MovieLens-format files pre-trains first with the dataset's own
    aux set and trainer keys, reports AUC, MRR and NDCG; a missing meta-path relation is one
    clear error."""
    from conftest import read_result, run_cli

    data_dir = tmp_path / "ml"
    data_dir.mkdir()
    write_ml(data_dir)
    common = ["dataset=movielens", f"dataset.data_dir={data_dir}", f"paths.outputs={tmp_path / 'out'}",
              "trainer.max_epochs=2", "trainer.progress=false", "aux.tasks.uidi.path=user-item-writer-item"]
    proc = run_cli("finetune", *common, "aux.tasks.uidi.path=user-item-genre-item", "weighting=auxts",
                   f"hydra.run.dir={tmp_path / 'ft'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = read_result(tmp_path / "ft")
    assert result["status"] == "completed" and result["aux"] == "movielens"
    assert {"auc", "mrr", "ndcg"} <= set(result["metrics"]["test"])
    pre = next((tmp_path / "out" / "pretrain").rglob("result.json")).parent
    pre_cfg = read_result(pre)["config"]
    assert pre_cfg["aux"]["name"] == "movielens" and pre_cfg["trainer"]["batch_size"] == 4096
    assert pre_cfg["trainer"]["lr"] == 0.001
    proc = run_cli("mtl", *common, f"hydra.run.dir={tmp_path / 'bad'}")
    assert proc.returncode == 2 and "'writer' is neither a node type" in proc.stderr
    assert "Traceback" not in proc.stderr
