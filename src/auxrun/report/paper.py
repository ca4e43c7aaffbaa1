"""Paper-layout tables: our runs laid out like a paper's table, its published figures beside.

``table3`` follows the AUX-TS paper's Table 3: one row per (dataset, scheme, GNN), one column
per weighting strategy, and per (dataset, scheme) block an "Avg. Gain" row,

``gain(s) = mean over GNNs g of (m_{s,g} - m_{none,g}) / m_{none,g} * 100%``

(sign flipped where lower is better). The published Last-FM and Book-Crossing rows follow
with the paper's printed gains (the same formula; see tests/test_compare.py). The caption says
which of our rows run on the paper's own data (``lastfm``, ``bookcrossing``) and which on
another dataset under the same protocol (``movielens``).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from omegaconf import OmegaConf

from ..errors import AuxrunError
from .compare import GAIN, Comparison, relative_gain, sort_rows
from .marks import cell_texts, secondary_texts

SCHEMES = {"mtl": "MTL", "finetune": "P&F", "pretrain": "pretrain"}
PAPER_DATASETS = {"lastfm": "Last-FM", "bookcrossing": "Book-Crossing"}  # Table 3's own data
BACKBONE_ORDER = ["gcn", "gat", "gin", "sage", "rgcn", "hgt", "han"]


@cache
def published() -> dict[str, Any]:
    """The published tables shipped in ``auxrun/report/published.yaml``."""
    cfg = OmegaConf.load(str(files("auxrun.report") / "published.yaml"))
    return OmegaConf.to_container(cfg)  # type: ignore[return-value]


def block_gains(means: dict[str, dict[str, float]], strategies: list[str], higher: bool = True,
                baseline: dict[str, str | None] | None = None) -> dict[str, float]:
    """Avg. Gain per strategy of one block; ``means[gnn][strategy]``. Each strategy is compared
    with its ``baseline`` row (``none`` unless given; ``None``: no baseline). Only GNNs with
    both count; strategies with none of them are left out."""
    out = {}
    for s in strategies:
        base = (baseline or {}).get(s, "none")
        if s == "none" or base is None:
            continue
        rel = [relative_gain(m[s], m[base], higher) for m in means.values() if s in m and base in m and m[base] != 0]
        if rel:
            out[s] = sum(rel) / len(rel)
    return out


def _backbone_key(b: str) -> tuple[int, str]:
    return (BACKBONE_ORDER.index(b) if b in BACKBONE_ORDER else len(BACKBONE_ORDER), b)


def table3_grid(c: Comparison) -> tuple[list[list[str]], str]:
    """Header plus rows of the Table 3 layout, and a caption naming sources and caveats."""
    pub = published()["table3"]
    strategies = list(pub["columns"]) + sort_rows(r for r in c.rows if r not in pub["columns"])
    grid = [["dataset", "scheme", "GNN", *strategies]]
    cells, texts = c.cells, cell_texts(c)
    blocks_measured = sorted(cells.groupby(["dataset", "scheme", "metric"]),
                             key=lambda kv: (kv[0][0], list(SCHEMES).index(kv[0][1]) if kv[0][1] in SCHEMES else 9))
    for (dataset, scheme, metric), block in blocks_measured:  # MTL before P&F, as the paper
        higher = bool(block.higher_is_better.iloc[0])
        means: dict[str, dict[str, float]] = {}
        columns = block.drop_duplicates("column").sort_values("backbone", key=lambda b: b.map(_backbone_key))
        for column, backbone, keys in zip(columns.column, columns.backbone, columns.column_keys):
            gnn = backbone.upper() + (f" [{keys}]" if keys else "")
            rows = block[block.column == column].set_index("row")
            means[gnn] = {s: float(rows.at[s, "mean"]) for s in strategies
                          if s in rows.index and rows.at[s, "n"] > 0}
            grid.append([f"{dataset} ({metric})", SCHEMES.get(scheme, scheme), gnn,
                         *(texts.get((s, column), "-") for s in strategies)])
        baseline = dict(zip(block.row, block.baseline))
        gains = block_gains(means, strategies, higher, baseline)
        grid.append([f"{dataset} ({metric})", SCHEMES.get(scheme, scheme), GAIN,
                     *(f"{gains[s]:+.2f}%" if s in gains else "-" for s in strategies)])
    blocks: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for row in pub["rows"]:
        blocks.setdefault((row["dataset"], row["scheme"]), {})[row["backbone"]] = dict(zip(pub["columns"], row["values"]))
    for (dataset, scheme), means in blocks.items():
        label = f"{dataset} (published)"
        for backbone, values in means.items():
            grid.append([label, SCHEMES[scheme], backbone.upper(),
                         *(f"{values[s]:.4f}" if s in values else "" for s in strategies)])
        printed = {(p["dataset"], p["scheme"]): dict(zip(pub["columns"], p["values"])) for p in pub["printed_gains"]}
        gains = printed.get((dataset, scheme)) or block_gains(means, strategies)
        grid.append([label, SCHEMES[scheme], GAIN,
                     *(f"{gains[s]:+.2f}%" if gains.get(s) is not None else "" for s in strategies)])
    ours = sorted(set(cells.dataset))
    same = [PAPER_DATASETS[d] for d in ours if d in PAPER_DATASETS]
    other = [d for d in ours if d not in PAPER_DATASETS]
    whose = ([f"our {' and '.join(same)} rows run on the paper's data (the files KGNN-LS / RippleNet publish, read "
              "with their preprocessing)"] if same else []) + \
            ([f"{' and '.join(other)} {'is another dataset' if len(other) == 1 else 'are other datasets'} than the "
              "paper's, under the same protocol"] if other else [])
    caption = (f"{GAIN}: mean over GNNs of the change relative to none. Published rows: {pub['source']}; "
               f"{'; '.join(whose) or 'no runs of ours'} (60/20/20 split, meta-path auxiliary tasks, AUC). "
               f"{pub['note']}")
    return grid, caption


SECONDARY = {"ndcg": ["mrr"]}  # Table 2 shows MRR beside NDCG for OAG's Paper-Field ranking (higher is better)


def _paper_order(c: Comparison, published_rows: list[str]) -> list[str]:
    return list(published_rows) + sort_rows(r for r in c.rows if r not in published_rows)


def table2_grid(c: Comparison) -> tuple[list[list[str]], str]:
    """The AUX-TS paper's Table 2 layout: one row per weighting strategy; one column per
    (dataset, scheme, GNN) of ours and metric (the primary one, and MRR beside NDCG), MTL
    before P&F, then each strategy's Avg. Gain over ``none`` across our columns, then the
    published OAG_CS and Reddit columns, each labelled with its dataset."""
    pub = published()["table2"]
    strategies = _paper_order(c, pub["rows"])
    cells, texts = c.cells, cell_texts(c)
    order = cells.drop_duplicates("column").copy()
    order["scheme_rank"] = order.scheme.map(lambda s: list(SCHEMES).index(s) if s in SCHEMES else 9)
    order = order.sort_values(["dataset", "scheme_rank", "column"])
    header, columns = ["strategy"], []
    for column, dataset, scheme, backbone, metric, keys in zip(order.column, order.dataset, order.scheme,
                                                               order.backbone, order.metric, order.column_keys):
        for m in [metric, *SECONDARY.get(metric, [])]:
            label = f"{dataset} {SCHEMES.get(scheme, scheme)} {backbone.upper()} {m}" + (f" [{keys}]" if keys else "")
            header.append(label)
            columns.append((column, m, m == metric))
    header += [GAIN, *(f"{col['dataset']} {SCHEMES[col['scheme']]} {col['metric']} (published)"
                       for col in pub["columns"])]
    grid = [header]
    secondary = secondary_texts(c, [(s, column, m, column) for s in strategies for column, m, primary in columns
                                    if not primary])
    for s in strategies:
        row = [s]
        for column, m, primary in columns:
            row.append(texts.get((s, column), "-") if primary else secondary[(s, column, m)])
        row.append(f"{c.gains[s]:+.2f}%" if s in c.gains else "-")
        published_at = pub["rows"].index(s) if s in pub["rows"] else None
        row += [col["values"][published_at] if published_at is not None else "" for col in pub["columns"]]
        grid.append(row)
    caption = (f"Ours: mean ± std (n seeds) of each target metric on the compared split; {GAIN}: over none "
               f"across our columns' primary metrics. Published columns: {pub['source']}; OAG_CS and Reddit are "
               f"the paper's datasets, and a stand-in such as synthetic_xl is not them. {pub['note']}")
    return grid, caption


def table4_grid(c: Comparison) -> tuple[list[list[str]], str]:
    """The AUX-TS paper's Table 4 layout: one row per (dataset, scheme, GNN) and pair of
    auxiliary loss scales (``loss_scales``, from each run's ``aux.tasks.<task>.loss_scale``),
    one column per strategy (its row label without the loss-scale keys) and metric (MRR beside
    NDCG), then the published OAG_CS rows, each cell NDCG / MRR. Bold marks the best strategy at
    each pair of scales; each strategy's significance mark is against ``none`` at the same scales."""
    pub = published()["table4"]
    cells = c.cells
    present = set(cells.row_unscaled)
    strategies = [s for s in pub["columns"] if s in present] + sort_rows(present - set(pub["columns"]))
    block = list(zip(cells.column, cells.loss_scales))
    texts = cell_texts(c, best_within=[scales for _, scales in block])
    by_name = {(u, col, sc): r for r, u, col, sc in zip(cells.row, cells.row_unscaled, cells.column, cells.loss_scales)}
    order = cells.drop_duplicates(["column", "loss_scales"]).copy()
    order["scheme_rank"] = order.scheme.map(lambda s: list(SCHEMES).index(s) if s in SCHEMES else 9)
    order = order.sort_values(["dataset", "scheme_rank", "column", "loss_scales"])
    metrics = list(dict.fromkeys(m for metric in order.metric for m in [metric, *SECONDARY.get(metric, [])]))
    header = ["dataset", "scheme", "GNN", "loss scales"]
    header += [f"{s} {m}" if len(metrics) > 1 else s for s in strategies for m in metrics]
    wanted = [(by_name[(s, col, sc)], col, m, sc) for col, sc, metric in zip(order.column, order.loss_scales,
                                                                           order.metric)
              for s in strategies if (s, col, sc) in by_name for m in SECONDARY.get(metric, [])]
    secondary = secondary_texts(c, wanted)
    grid = [header]
    for col, sc, dataset, scheme, backbone, metric, keys in zip(order.column, order.loss_scales, order.dataset,
                                                                order.scheme, order.backbone, order.metric,
                                                                order.column_keys):
        line = [f"{dataset} ({metric})", SCHEMES.get(scheme, scheme),
                backbone.upper() + (f" [{keys}]" if keys else ""), sc or "-"]
        for s in strategies:
            row = by_name.get((s, col, sc))
            for m in metrics:
                if row is None or m not in [metric, *SECONDARY.get(metric, [])]:
                    line.append("-")
                else:
                    line.append(texts[(row, col)] if m == metric else secondary[(row, col, m)])
        grid.append(line)
    for p in pub["rows"]:
        line = [f"{pub['dataset']} (published)", SCHEMES[pub["scheme"]], "GCN", p["scales"]]
        for s in strategies:
            value = p["values"][pub["columns"].index(s)] if s in pub["columns"] else ""
            line += [value, *("" for _ in metrics[1:])]
        grid.append(line)
    caption = (f"Ours: mean ± std (n seeds) at each pair of auxiliary loss scales. Published rows: {pub['source']}; "
               f"each cell {' / '.join(pub['metrics']).upper()}, in the first of a strategy's columns. "
               f"OAG_CS is the paper's dataset; a stand-in such as synthetic_xl is not it. {pub['note']}")
    return grid, caption


def molecules_grid(c: Comparison) -> tuple[list[list[str]], str]:
    """One row per column of the comparison (molecular target, scheme, and backbone or other
    distinguishing keys where they vary): our strategies' ``mean ± std (n)``, then Hu et al.'s
    published GIN ROC-AUC (x100) for no pre-training, attribute masking and context
    prediction; a last row with each strategy's Avg. Gain over ``none`` across targets."""
    pub = published()["hu2020"]
    strategies, texts = list(c.rows), cell_texts(c)
    header = ["dataset", "scheme", *strategies, *(f"Hu et al.: {col}" for col in pub["columns"])]
    grid = [header]
    seen = set()
    several_backbones = c.cells.backbone.nunique() > 1
    columns = c.cells.drop_duplicates("column").sort_values(["dataset", "scheme", "metric", "column"])
    for column, dataset, scheme, metric, backbone, keys in zip(columns.column, columns.dataset, columns.scheme,
                                                               columns.metric, columns.backbone, columns.column_keys):
        printed = pub["rows"].get(dataset, [""] * len(pub["columns"])) if metric == "roc_auc" else [""] * len(pub["columns"])
        label = (f"{dataset} ({metric})" + (f" {backbone.upper()}" if several_backbones else "")
                 + (f" [{keys}]" if keys else ""))
        grid.append([label, SCHEMES.get(scheme, scheme), *(texts.get((s, column), "-") for s in strategies), *printed])
        seen.add(dataset)
    for dataset, printed in pub["rows"].items():
        if dataset not in seen:
            grid.append([f"{dataset} (roc_auc)", "published only", *("" for _ in strategies), *printed])
    grid.append([GAIN, "", *(f"{c.gains[s]:+.2f}%" if s in c.gains else "-" for s in strategies),
                 *("" for _ in pub["columns"])])
    caption = (f"Ours: mean ± std (n seeds) of the target metric; {GAIN} relative to none over all columns. "
               f"Hu et al.: {pub['source']}, ROC-AUC x 100; pre-trained on ZINC-2M where ours uses MOSES. "
               f"{pub['note']}")
    return grid, caption


def ktn_grid(c: Comparison) -> tuple[list[list[str]], str]:
    """The KTN paper's layout: one row per transfer method, one column per zero-shot setting
    (dataset, source -> target, backbone) with ``mean ± std (n)`` of the target metric, then the
    published OAG-CS figures (OpenHGNN's KTN reproduction) as extra columns labelled with their
    dataset, in the rows of the methods they report (their base HGNN is our ``direct``). A last
    column holds each method's gain over ``direct`` averaged over our columns, and a last row,
    ``ktn vs direct``, KTN's gain in every column, published ones included:

    ``gain_c(s) = (m_{s,c} - m_{direct,c}) / m_{direct,c} * 100%``.
    """
    pub = published()["ktn"]
    cells = c.cells[c.cells.scheme == "zeroshot"]
    if cells.empty:
        raise AuxrunError("compare --layout ktn: no zeroshot runs found; run e.g. `auxrun zeroshot -m "
                          "transfer=ktn,direct seed=0,1,2` first")
    rows = sort_rows(cells.row.unique())
    columns = (cells.drop_duplicates("column").assign(gnn=lambda d: d.backbone.map(_backbone_key))
               .sort_values(["dataset", "direction", "gnn", "column"]))
    labels = [f"{d} {dirn} / {b.upper()}" + (f" [{k}]" if k else "")
              for d, dirn, b, k in zip(columns.dataset, columns.direction, columns.backbone, columns.column_keys)]
    by_column = [cells[cells.column == col].set_index("row") for col in columns.column]
    gains = [block_gains({"c": {s: float(col.at[s, "mean"]) for s in col.index if col.at[s, "n"] > 0}}, rows, True,
                         {s: col.at[s, "baseline"] for s in col.index}) for col in by_column]
    texts = cell_texts(c)
    grid = [["method", *labels, *(f"{r['task']} (published)" for r in pub["rows"]), f"{GAIN} vs direct"]]
    for r in rows:
        printed = [f"{p['values'][pub['columns'].index(r)]:.3f}" if r in pub["columns"] else "" for p in pub["rows"]]
        mine = [g[r] for g in gains if r in g]
        grid.append([r, *(texts.get((r, col), "-") for col in columns.column), *printed,
                     f"{sum(mine) / len(mine):+.2f}%" if mine else "-"])
    ktn_rows = [r for r in rows if r.split(" ")[0] == "ktn"]
    published_gain = [f"{(v[1] - v[0]) / v[0] * 100:+.2f}%" for v in (p["values"] for p in pub["rows"])]
    for i, k in enumerate(ktn_rows):  # the published gains once, in the first KTN row's line
        grid.append([f"{k} vs direct", *(f"{g[k]:+.2f}%" if k in g else "-" for g in gains),
                     *(published_gain if i == 0 else ["" for _ in published_gain]), ""])
    caption = (f"Target {cells.metric.iloc[0]}, mean ± std (n seeds); zero-shot: target labels are read for the "
               f"test metric only. {GAIN}: relative to direct with the same settings. Published: {pub['source']}. "
               f"{pub['note']}")
    return grid, caption
