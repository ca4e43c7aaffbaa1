"""``pretrained=PATH`` with Hu et al.'s published GIN checkpoints: files written in their
format (their parameter names, shapes and dtypes, PyTorch's legacy serialisation as their
torch 1.0 wrote it), and the loaded encoder against an independent re-implementation of their
GIN written from the paper (Hu et al., ICLR 2020, Appendix A): node and edge embeddings from
RDKit's atoms and bonds, ``h_v <- MLP(sum_{u in N(v) + v} h_u + e_uv)``, batch norm, ReLU but
after the last layer, mean pooling."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from omegaconf import OmegaConf

from auxrun.data.molecules import MolSet
from auxrun.errors import AuxrunError
from auxrun.train.pretrained import load_encoder
from test_fuzz import fuzz  # the same settings: derandomized unless AUXRUN_FUZZ_RANDOM=1

SMILES = ["N[C@@H](C)C(=O)O", "F/C=C/F", "c1ccccc1O", "C#N", "CC(=O)Oc1ccccc1C(=O)O", "[O-][N+](=O)c1ccc(Cl)cc1"]
SCHEMA = {"kind": "molecules"}


def hu_checkpoint(d: int = 8, layers: int = 3, seed: int = 0, graphpred: bool = False) -> OrderedDict:
    """A state dict named and shaped as Hu et al.'s ``GNN`` (or ``GNN_graphpred``) saves it."""
    g = torch.Generator().manual_seed(seed)
    sd = OrderedDict()
    sd["x_embedding1.weight"] = torch.randn(120, d, generator=g)
    sd["x_embedding2.weight"] = torch.randn(3, d, generator=g)
    for i in range(layers):
        sd[f"gnns.{i}.mlp.0.weight"] = torch.randn(2 * d, d, generator=g) / d ** 0.5
        sd[f"gnns.{i}.mlp.0.bias"] = torch.randn(2 * d, generator=g)
        sd[f"gnns.{i}.mlp.2.weight"] = torch.randn(d, 2 * d, generator=g) / d ** 0.5
        sd[f"gnns.{i}.mlp.2.bias"] = torch.randn(d, generator=g)
        sd[f"gnns.{i}.edge_embedding1.weight"] = torch.randn(6, d, generator=g)
        sd[f"gnns.{i}.edge_embedding2.weight"] = torch.randn(3, d, generator=g)
    for i in range(layers):
        sd[f"batch_norms.{i}.weight"] = torch.rand(d, generator=g) + 0.5
        sd[f"batch_norms.{i}.bias"] = torch.randn(d, generator=g)
        sd[f"batch_norms.{i}.running_mean"] = torch.randn(d, generator=g)
        sd[f"batch_norms.{i}.running_var"] = torch.rand(d, generator=g) + 0.5
        sd[f"batch_norms.{i}.num_batches_tracked"] = torch.tensor(1234)
    if graphpred:
        sd = OrderedDict([(f"gnn.{k}", v) for k, v in sd.items()])
        sd["graph_pred_linear.weight"] = torch.randn(12, d, generator=g)
        sd["graph_pred_linear.bias"] = torch.randn(12, generator=g)
    return sd


def save(sd: OrderedDict, path: Path) -> Path:
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    return path


def backbone(d: int = 8, layers: int = 3, name: str = "gin"):
    return OmegaConf.create({"name": name, "hidden": d, "num_layers": layers, "dropout": 0.5, "pooling": "mean"})


def reference(sd: dict, smiles: str) -> np.ndarray:
    """Hu et al.'s GIN on one molecule, from the paper, in numpy (module docstring)."""
    from rdkit import Chem

    p = {k: v.double().numpy() for k, v in sd.items()}
    mol = Chem.MolFromSmiles(smiles)
    chir = [Chem.ChiralType.CHI_UNSPECIFIED, Chem.ChiralType.CHI_TETRAHEDRAL_CW, Chem.ChiralType.CHI_TETRAHEDRAL_CCW]
    bonds = [Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE, Chem.BondType.AROMATIC]
    dirs = [Chem.BondDir.NONE, Chem.BondDir.ENDUPRIGHT, Chem.BondDir.ENDDOWNRIGHT]
    h = np.stack([p["x_embedding1.weight"][a.GetAtomicNum() - 1] + p["x_embedding2.weight"][chir.index(a.GetChiralTag())]
                  for a in mol.GetAtoms()])
    edges = []  # (u, v, bond type, direction), both directions, then a self loop per atom (type 4)
    for b in mol.GetBonds():
        t, dr = bonds.index(b.GetBondType()), dirs.index(b.GetBondDir())
        edges += [(b.GetBeginAtomIdx(), b.GetEndAtomIdx(), t, dr), (b.GetEndAtomIdx(), b.GetBeginAtomIdx(), t, dr)]
    edges += [(v, v, 4, 0) for v in range(len(h))]
    layers = len({k.split(".")[1] for k in p if k.startswith("gnns.")})
    for i in range(layers):
        m = np.zeros_like(h)
        for u, v, t, dr in edges:
            m[v] += h[u] + p[f"gnns.{i}.edge_embedding1.weight"][t] + p[f"gnns.{i}.edge_embedding2.weight"][dr]
        hidden = np.maximum(m @ p[f"gnns.{i}.mlp.0.weight"].T + p[f"gnns.{i}.mlp.0.bias"], 0)
        h = hidden @ p[f"gnns.{i}.mlp.2.weight"].T + p[f"gnns.{i}.mlp.2.bias"]
        bn = {k: p[f"batch_norms.{i}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")}
        h = (h - bn["running_mean"]) / np.sqrt(bn["running_var"] + 1e-5) * bn["weight"] + bn["bias"]
        if i < layers - 1:
            h = np.maximum(h, 0)
    return h.mean(0)


@pytest.mark.parametrize("graphpred", [False, True])
def test_a_published_gin_checkpoint_computes_what_hu_et_als_gin_computes(tmp_path, graphpred):
    sd = hu_checkpoint(graphpred=graphpred)
    enc = load_encoder(save(sd, tmp_path / "supervised_contextpred.pth"), backbone(), SCHEMA, torch.device("cpu")).eval()
    mols = MolSet.build(SMILES, torch.zeros(len(SMILES), 0), [])
    batch = mols.collate(torch.arange(len(SMILES)))
    with torch.no_grad():
        ours = enc({"atom": batch.x}, batch)["graph"].double().numpy()
    plain = {k.removeprefix("gnn."): v for k, v in sd.items()}
    for i, s in enumerate(SMILES):
        assert np.allclose(ours[i], reference(plain, s), atol=1e-4), s


def test_a_published_gin_trains_on_under_finetune(tmp_path):
    """As a user: `auxrun finetune pretrained=supervised_contextpred.pth` on a CSV of molecules."""
    from conftest import read_result, run_cli

    ckpt = save(hu_checkpoint(d=16, layers=2), tmp_path / "supervised_contextpred.pth")
    path = tmp_path / "mine.csv"
    path.write_text("smiles,active\n" + "\n".join(f"{s},{i % 2}" for i, s in enumerate(SMILES * 6)) + "\n")
    proc = run_cli("finetune", "dataset=csv", f"dataset.path={path}", "dataset.label_cols=[active]",
                   "dataset.split=random", "trainer.max_epochs=2", "weighting=none", "backbone.hidden=16",
                   "backbone.num_layers=2", f"pretrained={ckpt}", "trainer.progress=false",
                   f"hydra.run.dir={tmp_path / 'ft'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_result(tmp_path / "ft")["status"] == "completed"


def other_architecture(kind: str) -> OrderedDict:
    sd = hu_checkpoint()
    for i in range(3):
        for k in [k for k in sd if k.startswith(f"gnns.{i}.mlp")]:
            del sd[k]
        sd[f"gnns.{i}.linear.weight"] = torch.randn(8, 8)
        if kind == "gat":
            sd[f"gnns.{i}.att"] = torch.randn(1, 1, 16)
    return sd


@pytest.mark.parametrize(("sd", "cfg", "schema", "message"), [
    (hu_checkpoint(d=8, layers=3), backbone(d=300, layers=5), SCHEMA,
     r"Hu et al.'s GIN with 3 layers of width 8; .*backbone.num_layers=5, backbone.hidden=300: set "
     r"backbone.num_layers=3 backbone.hidden=8"),
    (other_architecture("gcn"), backbone(), SCHEMA, r"not Hu et al.'s GIN: its layer 0 holds .*linear.weight.*gcn or "
                                                    r"graphsage checkpoint"),
    (other_architecture("gat"), backbone(), SCHEMA, r"a gat / gcn or graphsage checkpoint"),
    ({**hu_checkpoint(), "x_embedding2.weight": torch.randn(4, 8)}, backbone(), SCHEMA,
     r"x_embedding2.weight \(chirality tags\) has shape \(4, 8\)"),
    ({k: v for k, v in hu_checkpoint().items() if k != "batch_norms.1.running_var"}, backbone(), SCHEMA,
     r"no batch_norms.1.running_var"),
    (hu_checkpoint(), backbone(), {"kind": "graph"}, r"Hu et al.'s molecular GINs; this run's data is not molecules"),
    (hu_checkpoint(), backbone(name="gcn"), SCHEMA, r"needs backbone=gin, not backbone=gcn"),
])
def test_a_checkpoint_of_another_architecture_is_refused_naming_what_differs(tmp_path, sd, cfg, schema, message):
    with pytest.raises(AuxrunError, match=message):
        load_encoder(save(OrderedDict(sd), tmp_path / "model.pth"), cfg, schema, torch.device("cpu"))


def _damage(sd: OrderedDict, data) -> OrderedDict:
    """One drawn change to a checkpoint: drop, rename, reshape, retype or add a key, or put a
    non-finite value in a weight."""
    sd = OrderedDict(sd)
    key = data.draw(st.sampled_from(sorted(sd)))
    how = data.draw(st.sampled_from(["drop", "rename", "scalar", "flat", "extra dim", "wider", "dtype", "prefix some",
                                     "extra key", "nan", "inf", "empty"]))
    value = sd[key]
    if how == "drop":
        del sd[key]
    elif how == "rename":
        sd[key.replace(".", "_", 1)] = sd.pop(key)
    elif how == "scalar":
        sd[key] = torch.tensor(1.0)
    elif how == "flat":
        sd[key] = value.reshape(-1)
    elif how == "extra dim":
        sd[key] = value.unsqueeze(0)
    elif how == "wider":
        sd[key] = torch.zeros(tuple(s + 1 for s in value.shape), dtype=value.dtype)
    elif how == "dtype":
        sd[key] = value.to(data.draw(st.sampled_from([torch.float64, torch.float16, torch.int64, torch.bool])))
    elif how == "prefix some":
        sd[f"gnn.{key}"] = sd.pop(key)
    elif how == "extra key":
        sd[data.draw(st.sampled_from(["gnn.x", "x_embedding3.weight", "gnns.9.mlp.0.weight", "pool.weight"]))] = value
    elif how in ("nan", "inf") and value.is_floating_point() and value.numel():
        sd[key] = value.clone().view(-1).index_fill(0, torch.tensor([0]), float(how)).view(value.shape)
    elif how == "empty":
        sd = OrderedDict()
    return sd


def _fuzz_checkpoint(data, tmp_path_factory) -> None:
    folder = tmp_path_factory.mktemp("ckpt")
    if data.draw(st.booleans()):  # one of Hu et al.'s, damaged
        sd = _damage(hu_checkpoint(graphpred=data.draw(st.booleans())), data)
        path = save(sd, folder / "model.pth")
    else:  # auxrun's own encoder.pt, its state or one of its parts damaged
        from auxrun.models import build_encoder
        from auxrun.train.pretrained import save_encoder

        ckpt = torch.load(save_encoder(folder / "encoder.pt", build_encoder(backbone(), SCHEMA), backbone(), SCHEMA),
                          weights_only=True)
        part = data.draw(st.sampled_from(["state_dict", "state_dict", "backbone", "schema"]))
        if part == "state_dict":
            ckpt["state_dict"] = sd = _damage(ckpt["state_dict"], data)
        else:
            ckpt[part] = data.draw(st.sampled_from([None, [], "gin"]))
        path = folder / "encoder.pt"
        torch.save(ckpt, path)
    try:
        enc = load_encoder(path, backbone(), SCHEMA, torch.device("cpu"))
    except AuxrunError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
        return
    # accepted: then it is the architecture as drawn, finite, and the encoder holds its values
    plain = {k.removeprefix("gnn."): v for k, v in sd.items() if not k.startswith("graph_pred_linear")}
    names = {"atom_type.weight": "x_embedding1.weight", "layers.1.mlp.0.weight": "gnns.1.mlp.0.weight",
             "norms.2.running_var": "batch_norms.2.running_var"}
    assert all(torch.isfinite(v.float()).all() for v in plain.values())
    for ours, theirs in names.items():
        assert torch.equal(enc.state_dict()[ours], plain[ours if ours in plain else theirs].float())


@fuzz(int(os.environ.get("AUXRUN_FUZZ_EXAMPLES", "10")) * 3)
@given(data=st.data())
def test_a_damaged_published_checkpoint_is_refused_in_one_line_or_loads_its_values(data, tmp_path_factory):
    """Property: whatever one change a checkpoint has (Hu et al.'s or auxrun's own),
    ``pretrained=PATH`` refuses it with one line naming the file, or loads exactly its (finite)
    values."""
    _fuzz_checkpoint(data, tmp_path_factory)


@pytest.mark.slow
@fuzz(300)
@given(data=st.data())
def test_a_damaged_published_checkpoint_many_draws(data, tmp_path_factory):
    _fuzz_checkpoint(data, tmp_path_factory)
