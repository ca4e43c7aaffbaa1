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
