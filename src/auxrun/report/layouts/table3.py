"""``--layout table3``: the AUX-TS paper's Table 3, one row per (dataset, scheme, GNN), one
column per weighting strategy, and per (dataset, scheme) block an "Avg. Gain" row,

``gain(s) = mean over GNNs g of (m_{s,g} - m_{none,g}) / m_{none,g} * 100%``

(sign flipped where lower is better). The published Last-FM and Book-Crossing rows follow
with the paper's printed gains (the same formula). The caption says which of our rows run on
the paper's own data (``lastfm``, ``bookcrossing``) and which on another dataset under the
same protocol (``movielens``). Fits runs whose datasets all declare it (the knowledge-graph
recommendation loaders).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Layout, datasets_fit, register, trained_only

if TYPE_CHECKING:
    from ..compare import Comparison

PAPER_DATASETS = {"lastfm": "Last-FM", "bookcrossing": "Book-Crossing"}  # Table 3's own data


def fits(c: Comparison) -> bool:
    return trained_only(c) and datasets_fit(c, "table3")


def grid(c: Comparison) -> tuple[list[list[str]], str]:
    """Header plus rows of the Table 3 layout, and a caption naming sources and caveats."""
    from ..compare import GAIN, row_gains, sort_rows
    from ..marks import cell_texts
    from ..paper import SCHEMES, backbone_key, block_gains, published

    pub = published()["table3"]
    strategies = list(pub["columns"]) + sort_rows(r for r in c.rows if r not in pub["columns"])
    grid = [["dataset", "scheme", "GNN", *strategies]]
    cells, texts = c.cells, cell_texts(c)
    blocks_measured = sorted(cells.groupby(["dataset", "scheme", "metric"]),
                             key=lambda kv: (kv[0][0], list(SCHEMES).index(kv[0][1]) if kv[0][1] in SCHEMES else 9))
    for (dataset, scheme, metric), block in blocks_measured:  # MTL before P&F, as the paper
        columns = block.drop_duplicates("column").sort_values("backbone", key=lambda b: b.map(backbone_key))
        for column, backbone, keys in zip(columns.column, columns.backbone, columns.column_keys):
            gnn = backbone.upper() + (f" [{keys}]" if keys else "")
            grid.append([f"{dataset} ({metric})", SCHEMES.get(scheme, scheme), gnn,
                         *(texts.get((s, column), "-") for s in strategies)])
        gains = row_gains(block)  # over the block's GNNs, each cell against its baseline on the seeds both have
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


register(Layout("table3", "the AUX-TS paper's Table 3 layout with its published Last-FM / Book-Crossing figures",
                grid, fits, "knowledge-graph recommendation runs (dataset=movielens, lastfm or bookcrossing)", rank=50,
                published="table3"))
