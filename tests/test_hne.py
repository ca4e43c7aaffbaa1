"""``dataset=pubmed_hne``: the HNE benchmark's format read from tiny files written as HNE
publishes them, and a zero-shot run from the labelled diseases to genes on them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from auxrun.data import read
from auxrun.errors import AuxrunError
from auxrun.transfer.data import zeroshot_data

INFO = """This file describes the PubMed dataset.

TYPE\tMEANING
0\tGENE
1\tDISEASE
2\tCHEMICAL
3\tSPECIES

LINK\tSTART\tEND\tMEANING
0\t0\t0\tGENE-and-GENE
1\t0\t1\tGENE-causing-DISEASE
2\t1\t1\tDISEASE-and-DISEASE
3\t2\t0\tCHEMICAL-in-GENE
4\t2\t1\tCHEMICAL-in-DISEASE
5\t3\t1\tSPECIES-with-DISEASE

LABEL\tCLASS\tMEANING
0\t0\tfirst_class
"""

# node ids by line: genes 0-5, diseases 6-13, chemicals 14-17, species 18-19 (interleaved below
# to check that a type's nodes are numbered by id, not by type block)
TYPES = [0, 0, 0, 1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3]
DISEASES = [i for i, t in enumerate(TYPES) if t == 1]   # ids 3, 4, 5, 6, 8, 9, 12, 13
GENES = [i for i, t in enumerate(TYPES) if t == 0]      # ids 0, 1, 2, 7, 10, 11
LABELS = {3: 0, 4: 0, 5: 1, 6: 1, 8: 2, 9: 2}           # label.dat
LABELS_TEST = {12: 0, 13: 1}                            # label.dat.test


def links() -> list[tuple[int, int, int]]:
    out = [(0, 1, 0), (1, 2, 0), (7, 10, 0)]
    # each gene causes two diseases: gene g -> diseases of the same class where there is one
    for k, g in enumerate(GENES):
        out += [(g, DISEASES[k % 8], 1), (g, DISEASES[(k + 4) % 8], 1)]
    out += [(3, 4, 2), (5, 6, 2), (14, 0, 3), (15, 7, 3), (16, 3, 4), (17, 12, 4), (18, 5, 5), (19, 13, 5)]
    return out


def write_hne(folder: Path, *, info: bool = True, nodes=None, link_rows=None, labels=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = nodes if nodes is not None else [
        f"{i}\tname_{i}\t{t}\t" + ",".join(f"{(i * 7 + j) % 5 * 0.25:.2f}" for j in range(5)) for i, t in enumerate(TYPES)]
    (folder / "node.dat").write_text("\n".join(rows) + "\n")
    link_rows = link_rows if link_rows is not None else [f"{s}\t{d}\t{lt}\t1" for s, d, lt in links()]
    (folder / "link.dat").write_text("\n".join(link_rows) + "\n")
    for name, lab in (("label.dat", labels if labels is not None else LABELS), ("label.dat.test", LABELS_TEST)):
        (folder / name).write_text("".join(f"{i}\tname_{i}\t{TYPES[i]}\t{c}\n" for i, c in lab.items()))
    if info:
        (folder / "info.dat").write_text(INFO)
    return folder


def hne_cfg(folder: Path, **kw):
    return OmegaConf.merge(OmegaConf.load("conf/dataset/pubmed_hne.yaml"), {"data_dir": str(folder), **kw})


def test_the_hne_format_becomes_typed_nodes_named_relations_and_merged_labels(tmp_path):
    data = read(hne_cfg(write_hne(tmp_path)), seed=0)
    assert {t: data.num_nodes(t) for t in data.node_types} == {"gene": 6, "disease": 8, "chemical": 4, "species": 2}
    assert all(data.x[t].shape[1] == 5 for t in data.node_types)
    # disease 5 is node id 12 (its sixth disease by id): its attributes are line 12's
    assert data.x["disease"][6].tolist() == pytest.approx([((12 * 7 + j) % 5) * 0.25 for j in range(5)])
    rel = ("gene", "gene_causing_disease", "disease")
    local = {i: k for k, i in enumerate(DISEASES)}
    gene_local = {i: k for k, i in enumerate(GENES)}
    want = sorted((gene_local[s], local[d]) for s, d, lt in links() if lt == 1)
    assert sorted(map(tuple, data.edge_index[rel].T.tolist())) == want
    assert ("disease", "rev_gene_causing_disease", "gene") in data.edge_index
    assert len(data.edge_index) == 2 * 6
    y = data.node_labels["disease"].y
    assert y.shape == (8, 3)
    assert {DISEASES[k]: int(c) for k, c in zip(*torch.nonzero(y).T.tolist())} == {**LABELS, **LABELS_TEST}
    assert data.node_labels.keys() == {"disease"}


def test_without_info_dat_types_and_links_are_numbered(tmp_path):
    data = read(hne_cfg(write_hne(tmp_path, info=False)), seed=0)
    assert set(data.node_types) == {"type0", "type1", "type2", "type3"}
    assert ("type0", "link1", "type1") in data.edge_index


def test_a_zero_shot_task_from_diseases_to_genes_derives_the_genes_labels(tmp_path):
    data = read(hne_cfg(write_hne(tmp_path)), seed=0)
    zs = zeroshot_data(data, OmegaConf.create({"source": "disease", "target": "gene", "source_split": [0.5, 0.25],
                                               "min_share": 0.1, "label_features": "drop"}), seed=0)
    assert zs.source == "disease" and zs.num_classes == 3
    assert sum(len(v) for v in zs.source_split.values()) == 8
    y_gene = zs.target_labels()
    # gene k causes diseases k % 8 and (k + 4) % 8: its relevant set is their classes
    disease_class = {k: ({**LABELS, **LABELS_TEST}[i]) for k, i in enumerate(DISEASES)}
    for k in range(6):
        assert set(torch.nonzero(y_gene[k]).flatten().tolist()) == {disease_class[k % 8], disease_class[(k + 4) % 8]}


def test_pubmed_hne_runs_under_auxrun_zeroshot(make_cfg, tmp_path):
    from auxrun.transfer.zeroshot import fit, target_metrics, zeroshot_parts

    cfg = make_cfg("zeroshot", "dataset=pubmed_hne", f"dataset.data_dir={write_hne(tmp_path / 'pubmed')}",
                   "backbone=hmpnn", "transfer=ktn", "trainer.max_epochs=2", "trainer.checkpoint=false",
                   "zeroshot.source_split=[0.5,0.25]")
    p = zeroshot_parts(cfg)
    fit(p, cfg.trainer, tmp_path / "run")
    assert 0 < target_metrics(p)["ndcg"] <= 1


@pytest.mark.parametrize(("change", "message"), [
    (dict(nodes=[f"{i}\tn\t{t}\t1,2" for i, t in enumerate(TYPES[:-1])] + ["25\tn\t3\t1,2"]), r"ids must be 0\.\.19"),
    (dict(nodes=[f"{i}\tn\t{t}\t1,2" for i, t in enumerate(TYPES[:-1])] + ["19\tn\t3\t1"]),
     r"node 19 has 1 attributes, others of type 3 have 2"),
    (dict(link_rows=["0\t3\t1\t1", "14\t4\t1\t1"]), r"link type 1 joins gene->disease, chemical->disease"),
    (dict(link_rows=["0\t33\t1\t1"]), r"link.dat.*second node_id"),
    (dict(link_rows=["0\t3"]), r"link.dat: line 1 has fewer than 3"),
    (dict(labels={3: 0, 0: 1}), r"labelled nodes of types 0, 1"),
    (dict(labels={3: "x"}), r"label.dat: line 1: the label of node 3 must be a non-negative integer"),
])
def test_damaged_hne_files_are_one_clear_error(tmp_path, change, message):
    with pytest.raises(AuxrunError, match=message):
        read(hne_cfg(write_hne(tmp_path, **change)), seed=0)


def test_missing_hne_files_name_them_where_to_get_them_and_the_offline_alternative(tmp_path):
    with pytest.raises(AuxrunError, match=r"node.dat, link.dat, label.dat not found.*yangji9181/HNE.*synthetic_zeroshot"):
        read(hne_cfg(tmp_path / "empty"), seed=0)
