"""``--layout ktn``: the KTN paper's zero-shot table, one row per transfer method, one column per
zero-shot setting, the published OAG-CS figures beside. Fits runs that are all zero-shot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Layout, register

if TYPE_CHECKING:
    from ..compare import Comparison


def fits(c: Comparison) -> bool:
    return set(c.cells.scheme) == {"zeroshot"}


def grid(c: Comparison) -> tuple[list[list[str]], str]:
    """The KTN paper's layout: one row per transfer method, one column per zero-shot setting
    (dataset, source -> target, backbone) with ``mean ± std (n)`` of the target metric, then the
    published OAG-CS figures (OpenHGNN's KTN reproduction) as extra columns labelled with their
    dataset, in the rows of the methods they report (their base HGNN is our ``direct``). A last
    column holds each method's gain over ``direct`` averaged over our columns, and a last row,
    ``ktn vs direct``, KTN's gain in every column, published ones included:

    ``gain_c(s) = (m_{s,c} - m_{direct,c}) / m_{direct,c} * 100%``.
    """
    from ...errors import AuxrunError
    from ..compare import GAIN, row_gains, sort_rows
    from ..marks import cell_texts
    from ..paper import backbone_key, published

    pub = published()["ktn"]
    cells = c.cells[c.cells.scheme == "zeroshot"]
    if cells.empty:
        raise AuxrunError("compare --layout ktn: no zeroshot runs found; run e.g. `auxrun zeroshot -m "
                          "transfer=ktn,direct seed=0,1,2` first")
    rows = sort_rows(cells.row.unique())
    columns = (cells.drop_duplicates("column").assign(gnn=lambda d: d.backbone.map(backbone_key))
               .sort_values(["dataset", "direction", "gnn", "column"]))
    labels = [f"{d} {dirn} / {b.upper()}" + (f" [{k}]" if k else "")
              for d, dirn, b, k in zip(columns.dataset, columns.direction, columns.backbone, columns.column_keys)]
    gains = [row_gains(cells[cells.column == col]) for col in columns.column]  # each against direct, same seeds
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


def hgnns(c: Comparison) -> tuple[str, list[list[str]], str] | None:
    """The KTN paper's comparison of HGNNs (its second figure, as a table): one row per
    backbone, and for each zero-shot setting (dataset, source -> target, other keys) the cells
    of ``direct`` and of each KTN row with KTN's gain over ``direct``. Only where at least two
    backbones have both; else ``None``."""
    from ..compare import sort_rows
    from ..marks import cell_texts
    from ..paper import backbone_key

    cells = c.cells[c.cells.scheme == "zeroshot"]
    ktn_rows = [r for r in sort_rows(cells.row.unique()) if r.split(" ")[0] == "ktn"]
    paired = cells[cells.row.isin(["direct", *ktn_rows])]
    both = paired.groupby("column").row.nunique()
    paired = paired[paired.column.isin(both[both >= 2].index)]
    if paired.backbone.nunique() < 2:
        return None
    paired = paired.assign(setting=[f"{d} {dirn}" + (f" [{k}]" if k else "") for d, dirn, k in
                                    zip(paired.dataset, paired.direction, paired.column_keys)])
    settings = sorted(paired.setting.unique())
    backbones = sorted(paired.backbone.unique(), key=backbone_key)
    texts = cell_texts(c)
    header = ["HGNN"]
    for s in settings:
        header += [f"{s}: direct", *(f"{s}: {k}" for k in ktn_rows), *(f"{s}: {k} vs direct" for k in ktn_rows)]
    grid = [header]
    for b in backbones:
        line = [b.upper()]
        for s in settings:
            here = paired[(paired.backbone == b) & (paired.setting == s)].set_index("row")
            base = here.at["direct", "mean"] if "direct" in here.index else None
            line += [texts.get(("direct", here.at["direct", "column"]), "-") if base is not None else "-"]
            line += [texts.get((k, here.at[k, "column"]), "-") if k in here.index else "-" for k in ktn_rows]
            line += [f"{(here.at[k, 'mean'] - base) / base * 100:+.2f}%" if k in here.index and base else "-"
                     for k in ktn_rows]
        grid.append(line)
    caption = (f"Target {paired.metric.iloc[0]}, mean ± std (n seeds), the cells of the table above regrouped by "
               "HGNN: KTN against the same HGNN transferred directly, as the KTN paper's comparison of six "
               "HGNNs (R-GCN, HAN, HGT, MAGNN, MPNN, H-MPNN; its figures are on OAG and PubMed, not shown).")
    return "KTN on each HGNN", grid, caption


register(Layout("ktn", "zero-shot runs: one row per transfer method, columns dataset / source -> target / "
                "backbone, published KTN figures beside; a table of KTN vs direct per HGNN", grid, fits,
                "zero-shot runs (auxrun zeroshot) only", rank=10, published="ktn", extra=hgnns))
