"""``--layout table4``: the AUX-TS paper's Table 4, one row per (dataset, scheme, GNN) and pair of
auxiliary loss scales, one column per strategy, the published OAG_CS rows beside. Fits runs
that rescale auxiliary losses (a ``loss_scale`` other than 1, ``experiment=table4``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Layout, register, trained_only

if TYPE_CHECKING:
    from ..compare import Comparison


def fits(c: Comparison) -> bool:
    from ..compare import rescaled

    return trained_only(c) and any(rescaled(text) for text in c.cells.loss_scales)


def grid(c: Comparison) -> tuple[list[list[str]], str]:
    """The AUX-TS paper's Table 4 layout: one row per (dataset, scheme, GNN) and pair of
    auxiliary loss scales (``loss_scales``, from each run's ``aux.tasks.<task>.loss_scale``),
    one column per strategy (its row label without the loss-scale keys) and metric (MRR beside
    NDCG), then the published OAG_CS rows, each cell NDCG / MRR. Bold marks the best strategy at
    each pair of scales; each strategy's significance mark is against ``none`` at the same scales."""
    from ..compare import sort_rows
    from ..marks import cell_texts, secondary_texts
    from ..paper import SCHEMES, SECONDARY, published

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


register(Layout("table4", "rows per pair of auxiliary loss scales, columns per strategy, published OAG_CS rows "
                "beside", grid, fits, "runs that rescale auxiliary losses (a loss_scale other than 1, "
                "experiment=table4)", rank=30, best_note="bold: the best strategy at each pair of loss scales",
                published="table4"))
