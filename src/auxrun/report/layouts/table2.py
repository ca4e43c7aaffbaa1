"""``--layout table2``: the AUX-TS paper's Table 2, one row per weighting strategy, NDCG and MRR
or F1 per (dataset, scheme, GNN), the published OAG_CS and Reddit columns beside. Fits runs on
a dataset that declares it (Reddit, OAG-CS) or whose trained strategies all use GPT-GNN's
tasks (``aux=gpt``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Layout, datasets_fit, register, trained_only

if TYPE_CHECKING:
    from ..compare import Comparison


def fits(c: Comparison) -> bool:
    runs = c.runs
    trained = runs[~runs.weighting.isin(["none", "direct"])] if runs is not None else None
    gpt = trained is not None and len(trained) > 0 and set(trained.aux) == {"gpt"}
    return trained_only(c) and (datasets_fit(c, "table2", every=False) or gpt)


def grid(c: Comparison) -> tuple[list[list[str]], str]:
    """The AUX-TS paper's Table 2 layout: one row per weighting strategy; one column per
    (dataset, scheme, GNN) of ours and metric (the primary one, and MRR beside NDCG), MTL
    before P&F, then each strategy's Avg. Gain over ``none`` across our columns, then the
    published OAG_CS and Reddit columns, each labelled with its dataset."""
    from ..compare import GAIN
    from ..marks import cell_texts, secondary_texts
    from ..paper import SCHEMES, SECONDARY, paper_order, published

    pub = published()["table2"]
    strategies = paper_order(c, pub["rows"])
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


register(Layout("table2", "the AUX-TS paper's Table 2: one row per weighting, NDCG and MRR or F1 per scheme, "
                "published OAG_CS / Reddit columns beside", grid, fits,
                "Reddit / OAG-CS runs, or runs whose trained strategies all use GPT-GNN's tasks (aux=gpt)", rank=40,
                published="table2"))
