"""The Table 2 datasets from tiny files in their published formats: Reddit's two .npz files
(PyG's raw files) and OAG's dill pickle of pyHGT's ``Graph``, written here by a stand-in
class with the same module path that is gone again when auxrun loads the file."""

from __future__ import annotations

import sys
import types
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from auxrun.data import load
from auxrun.errors import AuxrunError


def write_reddit(folder, n: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import scipy.sparse as sp

    rng = np.random.RandomState(seed)
    feature = rng.randn(n, 6).astype(np.float32)
    label = rng.randint(0, 3, n)
    a = (rng.rand(n, n) < 0.1).astype(np.float32)
    a = np.triu(a, 1)
    a = a + a.T
    np.savez(folder / "reddit_data.npz", feature=feature, label=label, node_types=rng.randint(1, 4, n))
    sp.save_npz(folder / "reddit_graph.npz", sp.coo_matrix(a))
    return feature, label, a


def reddit_cfg(folder):
    return OmegaConf.create({"name": "reddit", "loader": "reddit", "data_dir": str(folder), "split_seed": 43})


def test_reddit_loads_features_graph_and_gptgnns_split(tmp_path):
    feature, label, adj = write_reddit(tmp_path)
    data = load(reddit_cfg(tmp_path), 0)
    x = data.x["post"]
    degree = adj.sum(0)
    assert torch.allclose(x[:, :6], torch.from_numpy(feature))
    assert torch.allclose(x[:, 6], torch.from_numpy(np.log(np.maximum(degree, 1))).float())
    ei = data.edge_index[("post", "links", "post")]
    dense = torch.zeros(50, 50)
    dense[ei[0], ei[1]] = 1
    assert torch.equal(dense, torch.from_numpy(adj))
    assert torch.equal(data.target.labels, torch.from_numpy(label).long())
    parts = {**data.target.split, "pretrain": data.pretrain_nodes["post"]}
    assert {k: len(v) for k, v in parts.items()} == {"pretrain": 35, "train": 5, "val": 5, "test": 5}
    assert torch.equal(torch.sort(torch.cat(list(parts.values()))).values, torch.arange(50))
    # GPT-GNN's shuffle: numpy's permutation with seed 43
    perm = np.random.RandomState(43).permutation(50)
    assert set(data.target.split["train"].tolist()) == set(perm[35:40].tolist())


def test_absent_or_broken_reddit_files_say_which_and_where(tmp_path):
    with pytest.raises(AuxrunError, match="reddit_graph.npz not found.*data.dgl.ai.*synthetic_xl"):
        (tmp_path / "reddit_data.npz").write_bytes(b"")
        load(reddit_cfg(tmp_path), 0)
    (tmp_path / "reddit_graph.npz").write_bytes(b"not a zip")
    with pytest.raises(AuxrunError, match=r"cannot read .*reddit_data.npz \(NumPy arrays"):
        load(reddit_cfg(tmp_path), 0)


# --- OAG ------------------------------------------------------------------------------------

PAPER_YEARS = [2008, 2010, 2012, 2013, 2014, 2015, 2016, 2016, 2017, 2017, 2018, 2019]
L2 = {0: [1, 2], 1: [2], 2: [1], 3: [3], 4: [1, 3], 5: [2], 6: [3], 7: [1], 8: [2, 3], 9: [1], 10: [3], 11: [2]}


def _stand_in_module():
    """``pyHGT.data.Graph`` as their code builds it: nested defaultdicts with lambdas (dill)."""
    pkg, mod = types.ModuleType("pyHGT"), types.ModuleType("pyHGT.data")

    class Graph:
        def __init__(self):
            self.node_forward = defaultdict(lambda: {})
            self.node_bacward = defaultdict(lambda: [])
            self.node_feature = defaultdict(lambda: [])
            self.edge_list = defaultdict(lambda: defaultdict(lambda: defaultdict(
                lambda: defaultdict(lambda: defaultdict(lambda: int)))))
            self.times = {}

        def add_edge(self, s_type, s, t_type, t, year, relation):
            self.edge_list[t_type][s_type][relation][t][s] = year
            self.edge_list[s_type][t_type]["rev_" + relation][s][t] = year
            self.times[year] = True

    Graph.__module__ = "pyHGT.data"
    Graph.__qualname__ = "Graph"
    mod.Graph = Graph
    pkg.data = mod
    return pkg, mod


def write_oag(path) -> None:
    import dill

    pkg, mod = _stand_in_module()
    sys.modules["pyHGT"], sys.modules["pyHGT.data"] = pkg, mod
    try:
        g = mod.Graph()
        rng = np.random.RandomState(0)
        n_papers, n_fields, n_authors = len(PAPER_YEARS), 4, 5
        g.node_feature["paper"] = pd.DataFrame({"emb": list(rng.randn(n_papers, 8)), "citation": rng.randint(0, 50, n_papers),
                                                "time": PAPER_YEARS, "title": [f"p{i}" for i in range(n_papers)]})
        g.node_feature["field"] = pd.DataFrame({"emb": list(rng.randn(n_fields, 8)), "citation": np.ones(n_fields),
                                                "node_emb": list(rng.randn(n_fields, 400))})
        g.node_feature["author"] = pd.DataFrame({"emb": list(rng.randn(n_authors, 8)), "citation": np.ones(n_authors)})
        for p, fields in L2.items():
            for f in fields:
                g.add_edge("paper", p, "field", f, PAPER_YEARS[p], "PF_in_L2")
            g.add_edge("paper", p, "field", 0, PAPER_YEARS[p], "PF_in_L1")
            g.add_edge("author", p % n_authors, "paper", p, PAPER_YEARS[p], "AP_write_first")
        for p in range(1, n_papers):
            g.add_edge("paper", p - 1, "paper", p, PAPER_YEARS[p], "PP_cite")
        with open(path, "wb") as f:
            dill.dump(g, f)
    finally:
        del sys.modules["pyHGT"], sys.modules["pyHGT.data"]


def oag_cfg(folder, trust=True, fraction=1.0):
    return OmegaConf.create({"name": "oag_cs", "loader": "oag", "data_dir": str(folder), "file": "graph_CS.pk",
                             "trust_pickle": trust, "label_fraction": fraction, "split_seed": 43})


def test_oag_pickle_loads_without_pyhgt_with_the_paper_field_protocol(tmp_path):
    write_oag(tmp_path / "graph_CS.pk")
    assert "pyHGT" not in sys.modules
    data = load(oag_cfg(tmp_path), 0)
    assert "pyHGT" not in sys.modules
    assert data.target.kind == "node_rank" and data.target.num_classes == 3  # L2 fields 1, 2, 3
    y = data.target.labels
    for p, fields in L2.items():
        assert y[p].nonzero().flatten().tolist() == [f - 1 for f in fields]
    split = {k: v.tolist() for k, v in data.target.split.items()}
    assert split == {"train": [4, 5, 6, 7], "val": [8, 9], "test": [10, 11]}
    assert data.pretrain_nodes["paper"].tolist() == [0, 1, 2, 3]
    # features: node_emb (zeros where absent) | emb | log10(citation + 0.01)
    assert data.x["paper"].shape == (12, 400 + 8 + 1) and data.x["field"][:, :400].abs().sum() > 0
    assert float(data.x["paper"][:, :400].abs().sum()) == 0.0
    # the L2 edges of papers from 2014 on (the labels) pass no messages; the others stay
    l2 = data.edge_index[("paper", "PF_in_L2", "field")]
    assert sorted(set(l2[0].tolist())) == [0, 1, 2, 3]
    rev = data.edge_index[("field", "rev_PF_in_L2", "paper")]
    assert sorted(set(rev[1].tolist())) == [0, 1, 2, 3]
    assert data.edge_index[("paper", "PP_cite", "paper")].shape[1] == 11
    assert ("paper", "PF_in_L1", "field") in data.edge_index


def test_oag_needs_trust_and_names_the_file(tmp_path):
    with pytest.raises(AuxrunError, match="graph_CS.pk not found.*GPT-GNN.*synthetic_xl"):
        load(oag_cfg(tmp_path), 0)
    write_oag(tmp_path / "graph_CS.pk")
    with pytest.raises(AuxrunError, match="trust_pickle=true"):
        load(oag_cfg(tmp_path, trust=False), 0)
    (tmp_path / "graph_CS.pk").write_bytes(b"garbage")
    with pytest.raises(AuxrunError, match="cannot read"):
        load(oag_cfg(tmp_path), 0)


def test_oag_label_fraction_draws_from_train_and_valid_only(tmp_path):
    write_oag(tmp_path / "graph_CS.pk")
    split = load(oag_cfg(tmp_path, fraction=0.5), 0).target.split
    assert len(split["train"]) == 2 and len(split["val"]) == 1 and split["test"].tolist() == [10, 11]
    assert set(split["train"].tolist()) <= {4, 5, 6, 7}


def test_table2_pipeline_runs_on_the_tiny_files(tmp_path, make_cfg):
    """A short MTL run with GPT-GNN's tasks on each tiny dataset, sampled, reports its metrics."""
    from auxrun.train.commands import run

    write_reddit(tmp_path)
    write_oag(tmp_path / "graph_CS.pk")
    for dataset, extra, metric in (("reddit", [], "f1_micro"), ("oag_cs", ["dataset.trust_pickle=true"], "ndcg")):
        cfg = make_cfg("mtl", f"dataset={dataset}", f"dataset.data_dir={tmp_path}", *extra, "weighting=auxts",
                       "trainer.max_epochs=2", "trainer.batch_size=4", "trainer.aux_batch_size=4",
                       "aux.tasks.edge.negatives=3", "trainer.progress=false", "trainer.checkpoint=false")
        result = run(cfg, tmp_path / dataset)
        assert result["status"] == "completed"
        val = result["metrics"]["val"]
        assert 0 <= val[metric] <= 1 and "edge_mrr" in val and "attr_cosine" in val
