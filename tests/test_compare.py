"""compare's arithmetic on hand-written result files, and its tolerance of broken folders."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from auxrun.errors import AuxrunError
from auxrun.report.compare import compare, render
from auxrun.report.results import write_result


def put(root: Path, name: str, weighting: str, seed: int, value: float, dataset="synthetic", metric="auc",
        higher=True, status="completed", aux="planted", backbone="gcn"):
    write_result(root / name, {
        "status": status, "command": "mtl", "dataset": dataset, "backbone": backbone, "aux": aux,
        "weighting": weighting, "seed": seed, "primary_metric": metric, "higher_is_better": higher,
        "metrics": {"val": {metric: value}, "test": {metric: value}}, "config": {},
    })


def test_mean_std_n_and_avg_gain(tmp_path):
    for seed, (a, b) in enumerate([(0.70, 0.77), (0.80, 0.83)]):
        put(tmp_path, f"n{seed}", "none", seed, a)
        put(tmp_path, f"f{seed}", "fixed", seed, b)
    put(tmp_path, "r0", "none", 0, 2.0, dataset="freesolv", metric="rmse", higher=False)
    put(tmp_path, "r1", "fixed", 0, 1.5, dataset="freesolv", metric="rmse", higher=False)
    c = compare(tmp_path)
    assert c.rows == ["none", "fixed"]
    cell = c.cells[(c.cells.row == "fixed") & (c.cells.column.str.startswith("synthetic"))].iloc[0]
    assert cell["mean"] == pytest.approx(0.80) and cell["n"] == 2
    assert cell["std"] == pytest.approx(((0.03**2 + 0.03**2) / 1) ** 0.5)
    # gains: (0.80-0.75)/0.75 = +6.667% on AUC, (2.0-1.5)/2.0 = +25% on RMSE (lower is better)
    assert c.gains["fixed"] == pytest.approx((100 * 0.05 / 0.75 + 25.0) / 2)
    md = render(c, "md")
    assert "| fixed | 1.5000 ± 0.0000 (1) | 0.8000 ± 0.0424 (2) | +15.83% |" in md
    assert r"\pm" in render(c, "latex")


def test_aux_sets_become_row_labels_and_none_counts_once_per_seed(tmp_path):
    for aux in ("helpful", "harmful"):
        put(tmp_path, f"none-{aux}", "none", 0, 0.7, aux=aux)
        put(tmp_path, f"fixed-{aux}", "fixed", 0, 0.8 if aux == "helpful" else 0.6, aux=aux)
    c = compare(tmp_path)
    assert c.rows == ["none", "fixed [harmful]", "fixed [helpful]"]
    assert int(c.cells[c.cells.row == "none"].n.iloc[0]) == 1
    assert c.gains["fixed [harmful]"] < 0 < c.gains["fixed [helpful]"]


def test_corrupt_partial_and_failed_runs_are_skipped_with_a_warning(tmp_path, caplog):
    put(tmp_path, "ok", "none", 0, 0.7)
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "result.json").write_text("{not json")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "result.json").write_text(json.dumps({"schema": 1, "status": "completed"}))
    put(tmp_path, "failed", "fixed", 0, 0.9, status="failed")
    with caplog.at_level(logging.WARNING):
        c = compare(tmp_path)
    assert c.rows == ["none"] and c.skipped["failed"] == 1
    assert "corrupt" in caplog.text and "partial" in caplog.text


def test_no_results_is_a_user_error(tmp_path):
    with pytest.raises(AuxrunError, match="no finished runs"):
        compare(tmp_path)


def test_table3_layout_recomputes_the_papers_gains_and_lays_out_ours(tmp_path):
    from auxrun.report.paper import block_gains, published

    pub = published()["table3"]
    blocks: dict = {}
    for row in pub["rows"]:
        blocks.setdefault((row["dataset"], row["scheme"]), {})[row["backbone"]] = dict(zip(pub["columns"], row["values"]))
    for printed in pub["printed_gains"]:
        gains = block_gains(blocks[(printed["dataset"], printed["scheme"])], pub["columns"])
        for s, v in zip(pub["columns"], printed["values"]):
            if v is not None:  # the paper averaged unrounded means: its gains agree to 0.05 points
                assert gains[s] == pytest.approx(v, abs=0.06), (printed["dataset"], printed["scheme"], s)
    for backbone, (none, auxts) in {"gcn": (0.80, 0.84), "gin": (0.70, 0.77)}.items():
        put(tmp_path, f"n{backbone}", "none", 0, none, dataset="movielens", backbone=backbone)
        put(tmp_path, f"a{backbone}", "auxts", 0, auxts, dataset="movielens", backbone=backbone)
    md = render(compare(tmp_path), "md", "table3")
    lines = md.splitlines()
    assert lines[0].startswith("| dataset | scheme | GNN | none | fixed | cosine | selar | auxts_all | auxts |")
    assert "| movielens (auc) | MTL | GCN | 0.8000 ± 0.0000 (1) | - | - | - | - | 0.8400 ± 0.0000 (1) |" in md
    assert "| movielens (auc) | MTL | Avg. Gain | - | - | - | - | - | +7.50% |" in md  # (5% + 10%) / 2
    assert "| Last-FM (published) | MTL | GCN | 0.7762 | 0.7985 | 0.7770 | 0.7999 | 0.8003 | 0.8015 |" in md
    assert "| Book-Crossing (published) | P&F | Avg. Gain |  | +2.65% | +0.37% | +4.09% | +3.92% | +4.31% |" in md
    assert "different datasets" in md or "other datasets" in md


def test_molecules_layout_sets_hu_et_al_beside_ours(tmp_path):
    for seed, (none, fixed) in enumerate([(0.64, 0.68), (0.66, 0.70)]):
        put(tmp_path, f"n{seed}", "none", seed, none, dataset="bbbp", metric="roc_auc", backbone="gin")
        put(tmp_path, f"f{seed}", "fixed", seed, fixed, dataset="bbbp", metric="roc_auc", backbone="gin")
    put(tmp_path, "r0", "none", 0, 2.0, dataset="freesolv", metric="rmse", higher=False, backbone="gin")
    put(tmp_path, "r1", "fixed", 0, 1.5, dataset="freesolv", metric="rmse", higher=False, backbone="gin")
    md = render(compare(tmp_path), "md", "molecules")
    assert "| dataset | scheme | none | fixed | Hu et al.: no pre-training | Hu et al.: attribute masking |" in md
    assert "| bbbp (roc_auc) | MTL | 0.6500 ± 0.0141 (2) | 0.6900 ± 0.0141 (2) | 65.8 ± 4.5 | 64.3 ± 2.8 | 68.0 ± 2.0 |" in md
    assert "| freesolv (rmse) | MTL | 2.0000 ± 0.0000 (1) | 1.5000 ± 0.0000 (1) |  |  |  |" in md
    assert "| hiv (roc_auc) | published only |" in md and "MOSES" in md
    assert "| Avg. Gain |  | - | " in md  # gain: (6.15% + 25%) / 2
    assert f"+{(100 * 0.04 / 0.65 + 25) / 2:.2f}%" in md
