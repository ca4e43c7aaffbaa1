"""Metrics computed from scores (pure torch, no extra dependency)."""

from __future__ import annotations

import torch
from torch import Tensor


def roc_auc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative),
    ties counted one half (Mann-Whitney U with average ranks). ``nan`` if a class is absent."""
    scores, labels = scores.detach().double().cpu(), labels.detach().cpu().bool()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(scores)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.double)
    # average ranks over ties
    uniq, inverse, counts = torch.unique(sorted_scores, return_inverse=True, return_counts=True)
    if len(uniq) < len(scores):
        rank_sum = torch.zeros(len(uniq), dtype=torch.double).index_add_(0, inverse, ranks[order])
        ranks[order] = (rank_sum / counts)[inverse]
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def f1_scores(pred: Tensor, labels: Tensor, num_classes: int) -> dict[str, float]:
    """Micro-F1 (= accuracy for single-label classification) and macro-F1 over classes."""
    pred, labels = pred.cpu(), labels.cpu()
    micro = float((pred == labels).float().mean()) if len(labels) else float("nan")
    f1s = []
    for c in range(num_classes):
        tp = int(((pred == c) & (labels == c)).sum())
        fp = int(((pred == c) & (labels != c)).sum())
        fn = int(((pred != c) & (labels == c)).sum())
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"f1_micro": micro, "f1_macro": float(sum(f1s) / len(f1s)) if f1s else float("nan")}


def ranking_metrics(scores: Tensor, relevant: Tensor, exclude: Tensor, k: int = 10) -> Tensor:
    """Per-row reciprocal rank and NDCG@k of a score matrix; returns ``(2, rows)``.

    ``scores`` (rows, items); ``relevant`` and ``exclude`` boolean masks of the same shape
    (excluded items, e.g. known positives of other splits, are removed from the ranking).
    Reciprocal rank ``1 / (1 + #{j kept, not relevant: s_j > s*} + #{... s_j = s*} / 2)`` with
    ``s*`` the best relevant score: the rank of the best-ranked relevant item, ties broken at
    random in expectation (a model scoring everything alike gets no credit for ties). ``NDCG@k = DCG@k / IDCG@k`` with
    ``DCG@k = sum_{r=1..k} rel_r / log2(r + 1)`` over the top-k kept items and IDCG the DCG of
    a perfect ranking of ``min(k, #relevant)`` items. Rows without a relevant item give 0.
    """
    scores = scores.detach().double()
    kept = ~exclude | relevant
    masked = scores.masked_fill(~kept, float("-inf"))
    best = masked.masked_fill(~relevant, float("-inf")).max(1).values
    above = ((masked > best[:, None]) & ~relevant).sum(1).double()
    tied = ((masked == best[:, None]) & ~relevant).sum(1).double()
    has = relevant.any(1)
    rr = torch.where(has, 1.0 / (1.0 + above + tied / 2), torch.zeros_like(best))
    k = min(k, scores.shape[1])
    top = masked.topk(k, dim=1).indices
    gains = relevant.gather(1, top).double()
    discount = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.double, device=scores.device))
    dcg = (gains * discount).sum(1)
    n_rel = relevant.sum(1).clamp(max=k)
    idcg = torch.cumsum(discount, 0)[(n_rel - 1).clamp(min=0)]
    ndcg = torch.where(has, dcg / idcg, torch.zeros_like(dcg))
    return torch.stack([rr, ndcg])
