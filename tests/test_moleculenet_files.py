"""MoleculeNet's eight classification targets as MoleculeNet publishes them: tiny files in each
published layout (columns, gzip where DeepChem serves gzip, quoted task names, empty cells
for missing labels) downloaded from a local HTTP server against their own MD5, then read with
every task; Hu et al.'s chem_dataset layout; a damaged download."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import auxrun.data.sources as sources
from auxrun.data import read
from auxrun.data.download import download
from auxrun.data.sources import MOLECULENET_FILES, Remote
from auxrun.errors import AuxrunError
from test_download import served  # noqa: F401 - the local server fixture

SMILES = ["CCO", "c1ccccc1O", "N[C@@H](C)C(=O)O", "C1CCCCC1N", "c1ccncc1", "C1CCOC1", "c1ccc2ccccc2c1",
          "O=C1CCCN1", "c1ccsc1", "C1CC1C(=O)O", "c1cnc2ccccc2c1", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "C1CCNCC1",
          "c1ccoc1", "O=c1cc[nH]c(=O)[nH]1", "C1=CCCCC1", "c1ccc(cc1)-c1ccccc1", "CN1CCCC1", "C1COCCN1",
          "c1ccc2[nH]ccc2c1"]
SIDER = ["Hepatobiliary disorders", "Neoplasms benign, malignant and unspecified (incl cysts and polyps)",
         *(f"Organ class {i}" for i in range(25))]
TOX21 = ["NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD", "NR-PPAR-gamma", "SR-ARE",
         "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53"]
MUV = [f"MUV-{n}" for n in (466, 548, 600, 644, 652, 689, 692, 712, 713, 733, 737, 810, 832, 846, 852, 858, 859)]
TOXCAST = ["ACEA_T47D_80hr_Negative", "APR_HepG2_CellLoss_24h_dn", "ATG_AR_TRANS_up", "BSK_3C_Eselectin_down"]


def label(i: int, j: int, missing: bool) -> str:
    """Row i, task j: 0 / 1, or empty (missing) where ``missing`` and (i + j) % 3 == 0."""
    return "" if missing and (i + j) % 3 == 0 else str((i * 7 + j) % 2)


def quoted(name: str) -> str:
    return f'"{name}"' if "," in name else name


def table(name: str) -> tuple[str, list[str]]:
    """A tiny file of ``name`` in its published columns, and the tasks it holds."""
    rows = range(len(SMILES))
    if name == "bbbp":
        return "num,name,p_np,smiles\n" + "".join(f"{i + 1},mol{i},{label(i, 0, False)},{s}\n"
                                                 for i, s in zip(rows, SMILES)), ["p_np"]
    if name == "bace":
        return "mol,CID,Class,Model,pIC50\n" + "".join(f"{s},BACE_{i},{label(i, 0, False)},Train,{6 + i / 10}\n"
                                                       for i, s in zip(rows, SMILES)), ["Class"]
    if name == "hiv":
        return "smiles,activity,HIV_active\n" + "".join(f"{s},{'CI' if label(i, 0, False) == '0' else 'CM'},"
                                                        f"{label(i, 0, False)}\n" for i, s in zip(rows, SMILES)), \
            ["HIV_active"]
    tasks = {"clintox": ["FDA_APPROVED", "CT_TOX"], "sider": SIDER, "toxcast": TOXCAST, "tox21": TOX21, "muv": MUV}[name]
    missing = name in ("tox21", "toxcast", "muv")
    if name in ("tox21", "muv"):  # tasks first, then mol_id and smiles
        return ",".join(tasks) + ",mol_id,smiles\n" + "".join(
            ",".join(label(i, j, missing) for j in range(len(tasks))) + f",ID{i},{s}\n"
            for i, s in zip(rows, SMILES)), tasks
    return "smiles," + ",".join(map(quoted, tasks)) + "\n" + "".join(
        s + "," + ",".join(label(i, j, missing) for j in range(len(tasks))) + "\n" for i, s in zip(rows, SMILES)), tasks


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def cfg(name: str, folder: Path, **kw):
    base = OmegaConf.load("conf/dataset/_molecules.yaml").dataset
    return OmegaConf.merge(base, OmegaConf.load(f"conf/dataset/{name}.yaml").dataset, {"data_dir": str(folder), **kw})


@pytest.mark.parametrize("name", sorted(MOLECULENET_FILES))
def test_each_published_file_downloads_against_its_checksum_and_reads_every_task(name, served, tmp_path,  # noqa: F811
                                                                                  monkeypatch):
    root, base = served
    file, _ = MOLECULENET_FILES[name]
    text, tasks = table(name)
    md5 = hashlib.md5(write(root / file, text).read_bytes()).hexdigest()
    monkeypatch.setitem(sources.SOURCES, name, replace(sources.SOURCES[name],
                                                       files=(Remote(f"{base}/{file}", file, md5=md5),)))
    dest = tmp_path / "data" / name
    download(name, dest, retries=0, progress=False)
    data = read(cfg(name, dest), seed=0)
    assert data.mols.task_names == tasks and data.mols.y.shape == (len(SMILES), len(tasks))
    for i in range(len(SMILES)):  # missing labels are nan (masked), present ones as written
        for j in range(len(tasks)):
            want = label(i, j, name in ("tox21", "toxcast", "muv"))
            got = data.mols.y[i, j]
            assert (torch.isnan(got) if want == "" else float(got) == float(want)), (name, i, j)
    assert data.info["split"] == "scaffold" and sum(data.info["sizes"].values()) == len(SMILES)


def test_hu_et_als_chem_dataset_layout_is_read_without_a_download(tmp_path):
    text, tasks = table("tox21")
    write(tmp_path / "tox21" / "raw" / "tox21.csv", text)  # chem_dataset.zip: NAME/raw/, uncompressed
    data = read(cfg("tox21", tmp_path / "tox21"), seed=0)
    assert data.mols.task_names == tasks and data.info["source"].endswith("raw/tox21.csv")


@pytest.mark.parametrize("name", sorted(MOLECULENET_FILES))
@pytest.mark.parametrize("layout", sources.CHEM_DATASET_LAYOUTS)
def test_data_list_download_and_the_loader_agree_on_where_the_file_is(name, layout, tmp_path):
    """Wherever the loader reads a target's file (downloaded, or as chem_dataset.zip has it),
    ``auxrun data list`` says it is here and ``auxrun data download`` fetches nothing."""
    from typer.testing import CliRunner

    from auxrun.cli import app
    from auxrun.data.moleculenet import published_file

    file = MOLECULENET_FILES[name][0]
    plain = file.removesuffix(".gz")
    folder = tmp_path / name

    def listed() -> str:
        out = CliRunner().invoke(app, ["data", "list", "--root", str(tmp_path)])
        assert out.exit_code == 0, out.output
        return next(line for line in out.output.splitlines() if line.startswith(f"{name}:"))

    assert "not here" in listed()
    path = write(folder / layout.format(file=file, plain=plain), table(name)[0])
    assert published_file(cfg(name, folder)) == path
    assert "; here in" in listed()
    assert download(name, folder, retries=0, progress=False) == [path]  # no server: fetching would fail
    assert read(cfg(name, folder), seed=0).info["source"] == str(path)


def test_a_download_that_does_not_match_its_md5_is_one_message_and_leaves_nothing(served, tmp_path,  # noqa: F811
                                                                                  monkeypatch):
    root, base = served
    write(root / "BBBP.csv", table("bbbp")[0])
    monkeypatch.setitem(sources.SOURCES, "bbbp", replace(sources.SOURCES["bbbp"], files=(
        Remote(f"{base}/BBBP.csv", "BBBP.csv", md5="0" * 32),)))
    with pytest.raises(AuxrunError, match=r"did not match its published MD5"):
        download("bbbp", tmp_path / "bbbp", retries=0, progress=False)
    assert not (tmp_path / "bbbp" / "BBBP.csv").exists()


def test_a_missing_published_file_names_the_download_command(tmp_path):
    with pytest.raises(AuxrunError, match=r"muv.csv.gz not found in .*chem_dataset layout.*auxrun data download muv"):
        read(cfg("muv", tmp_path / "muv"), seed=0)



def test_experiment_rcgrad_is_the_papers_grid_at_its_batch_size(make_cfg):
    from auxrun.cli import check_single_job
    from auxrun.configs import sweep_params

    grid = sweep_params("experiment", "rcgrad")
    assert set(grid["dataset"].split(",")) == set(MOLECULENET_FILES)
    assert grid["weighting"].split(",") == ["none", "fixed", "gcs", "gns", "pcgrad", "rcgrad", "blo", "blo_rcgrad"]
    assert len(grid["seed"].split(",")) == 10
    cfg = make_cfg("finetune", "experiment=rcgrad", "dataset=tox21", "weighting=rcgrad", "seed=3")
    assert cfg.trainer.batch_size == 256 and cfg.trainer.max_epochs == 100 and cfg.dataset.split == "scaffold"
    assert cfg.backbone.hidden == 300 and cfg.backbone.num_layers == 5 and cfg.aux.name == "mol_ssl"
    with pytest.raises(AuxrunError, match="sweep of 640 jobs"):
        check_single_job("finetune", ["experiment=rcgrad"])
