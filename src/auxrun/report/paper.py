"""What the paper layouts (:mod:`auxrun.report.layouts`) share: the published tables, the
per-block Avg. Gain, the order of schemes and GNNs."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from omegaconf import OmegaConf

from .compare import Comparison, relative_gain, sort_rows

SCHEMES = {"mtl": "MTL", "finetune": "P&F", "pretrain": "pretrain"}


@cache
def published() -> dict[str, Any]:
    """The published tables shipped in ``auxrun/report/published.yaml``."""
    cfg = OmegaConf.load(str(files("auxrun.report") / "published.yaml"))
    return OmegaConf.to_container(cfg)  # type: ignore[return-value]


def block_gains(means: dict[str, dict[str, float]], strategies: list[str], higher: bool = True,
                baseline: dict[str, str | None] | None = None) -> dict[str, float]:
    """Avg. Gain per strategy of one block of a published table, from its means alone
    (``means[gnn][strategy]``; ours are paired by seed: :func:`auxrun.report.compare.row_gains`).
    Each strategy is compared with its ``baseline`` row (``none`` unless given; ``None``: no
    baseline). Only GNNs with both count; strategies with none of them are left out."""
    out = {}
    for s in strategies:
        base = (baseline or {}).get(s, "none")
        if s == "none" or base is None:
            continue
        rel = [relative_gain(m[s], m[base], higher) for m in means.values() if s in m and base in m and m[base] != 0]
        if rel:
            out[s] = sum(rel) / len(rel)
    return out


def backbone_key(b: str) -> tuple[int, str]:
    """Sort key of a backbone: the order of :data:`auxrun.models.encoders.BACKBONES`
    (homogeneous GNNs first, as the papers list them), others after."""
    from ..models.encoders import BACKBONES

    return (BACKBONES.index(b) if b in BACKBONES else len(BACKBONES), b)


SECONDARY = {"ndcg": ["mrr"]}  # Table 2 shows MRR beside NDCG for OAG's Paper-Field ranking (higher is better)


def paper_order(c: Comparison, published_rows: list[str]) -> list[str]:
    """The published table's rows in its order, then ours in table order."""
    return list(published_rows) + sort_rows(r for r in c.rows if r not in published_rows)


