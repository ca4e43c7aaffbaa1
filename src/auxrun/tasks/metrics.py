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
    """Per-row reciprocal rank and NDCG@k of a score matrix, each the exact expectation under
    uniformly random tie-breaking; returns ``(2, rows)``.

    ``scores`` (rows, items); ``relevant`` and ``exclude`` boolean masks of the same shape
    (excluded items, e.g. known positives of other splits, are removed from the ranking;
    relevant items are always kept). Rows without a relevant item give 0.

    Reciprocal rank of the best-ranked relevant item. With ``s*`` the best relevant score,
    ``a`` the kept items scored above ``s*`` (none of them relevant), and a tie group at
    ``s*`` of ``r`` relevant and ``t`` other items, the rank is ``a + 1 + X`` where ``X``, the
    other items placed before the group's first relevant one, has
    ``P(X = x) = C(r + t - 1 - x, r - 1) / C(r + t, r)``, ``x = 0..t``; so
    ``RR = sum_x P(X = x) / (a + 1 + x)``.

    ``NDCG@k = E[DCG@k] / IDCG@k`` with ``DCG@k = sum_{p=1..k} rel_p / log2(p + 1)`` and IDCG
    the DCG of a perfect ranking of ``min(k, #relevant)`` items. A tie group of ``m`` items
    with ``q`` relevant ones occupying positions ``p`` puts a relevant item at each of them
    with probability ``q / m``, so ``E[rel_p] = q_p / m_p`` (linearity of expectation).
    """
    scores = scores.detach().double()
    kept = ~exclude | relevant
    masked = scores.masked_fill(~kept, float("-inf"))
    has = relevant.any(1)
    best = masked.masked_fill(~relevant, float("-inf")).max(1, keepdim=True).values
    others = kept & ~relevant
    above = ((masked > best) & others).sum(1).double()
    r = ((masked == best) & relevant).sum(1).double().clamp_min(1)
    t = ((masked == best) & others).sum(1).double()
    x = torch.arange(int(t.max()) + 1 if len(t) else 1, dtype=torch.double, device=scores.device)
    r_, t_ = r[:, None], t[:, None]
    valid = x[None, :] <= t_
    xs = torch.minimum(x[None, :], t_)  # keeps lgamma's arguments positive where x > t (masked out)
    log_p = (torch.lgamma(r_ + t_ - xs) - torch.lgamma(r_) - torch.lgamma(t_ - xs + 1)
             - torch.lgamma(r_ + t_ + 1) + torch.lgamma(r_ + 1) + torch.lgamma(t_ + 1))
    p = torch.where(valid, log_p.exp(), torch.zeros_like(log_p))
    rr = (p / (above[:, None] + 1 + x[None, :])).sum(1)
    rr = torch.where(has, rr, torch.zeros_like(rr))

    k = min(k, scores.shape[1])
    m, q = _top_tie_groups(masked, relevant, k)
    at_position = torch.arange(k, device=scores.device)[None, :] < kept.sum(1, keepdim=True)
    expected_rel = torch.where(at_position, q / m.clamp_min(1), torch.zeros_like(q))
    discount = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.double, device=scores.device))
    dcg = (expected_rel * discount).sum(1)
    n_rel = relevant.sum(1).clamp(max=k)
    idcg = torch.cumsum(discount, 0)[(n_rel - 1).clamp(min=0)]
    ndcg = torch.where(has, dcg / idcg, torch.zeros_like(dcg))
    return torch.stack([rr, ndcg])


def _top_tie_groups(masked: Tensor, relevant: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """For each of the first ``k`` positions of each row's ranking of ``masked`` (removed
    items at ``-inf``): the size ``m`` of the tie group holding that position and the number
    ``q`` of relevant items in it, both ``(rows, k)``.

    A row whose first ``k + 1`` scores are all different (model scores almost always) has
    groups of one: ``m = 1`` and ``q`` = whether the item there is relevant. Rows with a tie
    compare every item with the ``k`` top scores, ``(rows, k, items)``."""
    vals, idx = masked.topk(min(k + 1, masked.shape[1]), dim=1)
    m = torch.ones(masked.shape[0], k, dtype=torch.double, device=masked.device)
    q = relevant.gather(1, idx[:, :k]).double()
    tied = (vals[:, 1:] == vals[:, :-1]).any(1)
    if tied.any():
        rows = tied.nonzero().squeeze(1)
        same = masked[rows, None, :] == vals[rows, :k, None]  # (tied rows, k, items): each position's group
        m[rows] = (same & (masked[rows] > float("-inf"))[:, None, :]).sum(-1).double()
        q[rows] = (same & relevant[rows, None, :]).sum(-1).double()
    return m, q


def ranking_metrics_chunked(scores: Tensor, relevant: Tensor, exclude: Tensor, k: int = 10,
                            budget: int = 2 ** 24) -> Tensor:
    """:func:`ranking_metrics` over row chunks, so its ``(rows, k, items)`` tie masks stay within
    ``budget`` elements (a full ranking of C classes costs ``C^2`` per row)."""
    per_row = min(k, scores.shape[1]) * scores.shape[1]
    step = max(1, budget // max(1, per_row))
    parts = [ranking_metrics(scores[i:i + step], relevant[i:i + step], exclude[i:i + step], k)
             for i in range(0, scores.shape[0], step)]
    return torch.cat(parts, 1) if parts else scores.new_zeros(2, 0, dtype=torch.double)


def label_ranking(scores: Tensor, relevant: Tensor) -> dict[str, float]:
    """Zero-shot label metrics of ``scores`` (nodes, C) against 0/1 ``relevant`` (nodes, C),
    averaged over the nodes with at least one relevant label.

    * ``ndcg``: NDCG of the ranking of all C labels, ``mrr``: reciprocal rank of the first
      relevant label (both exact under random tie-breaking, :func:`ranking_metrics`).
    * ``f1_micro`` / ``f1_macro``: each node predicts its top ``|R_v|`` labels (``R_v`` its
      relevant set; one label for single-label data, where micro-F1 is accuracy);
      ``micro = 2 sum TP / (2 sum TP + sum FP + sum FN)`` over all (node, label) decisions,
      ``macro`` the mean over labels that are relevant or predicted somewhere of
      ``2 TP_c / (2 TP_c + FP_c + FN_c)``.
    """
    relevant = relevant.bool()
    keep = relevant.any(1)
    scores, relevant = scores[keep].detach().double(), relevant[keep]
    if not len(scores):
        return {"ndcg": float("nan"), "mrr": float("nan"), "f1_micro": float("nan"), "f1_macro": float("nan")}
    rr, ndcg = ranking_metrics_chunked(scores, relevant, torch.zeros_like(relevant), k=scores.shape[1])
    size = relevant.sum(1)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(scores.shape[1], device=scores.device).expand_as(order).contiguous())
    pred = rank < size[:, None]
    tp, fp, fn = ((m.sum(0).double()) for m in (pred & relevant, pred & ~relevant, ~pred & relevant))
    micro = float(2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()))
    seen = (tp + fp + fn) > 0
    macro = float((2 * tp[seen] / (2 * tp[seen] + fp[seen] + fn[seen])).mean())
    return {"ndcg": float(ndcg.mean()), "mrr": float(rr.mean()), "f1_micro": micro, "f1_macro": macro}
