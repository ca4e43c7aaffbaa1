"""Metrics against brute-force definitions."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from auxrun.tasks.metrics import f1_scores, roc_auc


def _auc_by_pairs(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_pairwise_definition_with_ties(seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 6, (40,), generator=g).float()  # many ties
    labels = torch.randint(0, 2, (40,), generator=g)
    assert roc_auc(scores, labels) == pytest.approx(_auc_by_pairs(scores.tolist(), labels.tolist()))


def test_auc_extremes_and_missing_class():
    assert roc_auc(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1])) == 1.0
    assert roc_auc(torch.tensor([0.9, 0.8, 0.2, 0.1]), torch.tensor([0, 0, 1, 1])) == 0.0
    assert math.isnan(roc_auc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1])))


def test_f1_by_hand():
    pred = torch.tensor([0, 0, 1, 1, 2, 2])
    true = torch.tensor([0, 1, 1, 1, 2, 0])
    out = f1_scores(pred, true, 3)
    assert out["f1_micro"] == pytest.approx(4 / 6)
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp0 fn1 -> 0.8; class 2: tp1 fp1 fn0 -> 2/3
    assert out["f1_macro"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def _brute_force_ranking(scores, relevant, exclude, k):
    """Mean reciprocal rank and NDCG@k over every tie-breaking order, by enumeration: each
    permutation of the items is a secondary sort key, all equally likely."""
    items = [i for i in range(len(scores)) if relevant[i] or not exclude[i]]
    n_rel = sum(relevant)
    idcg = sum(1 / math.log2(p + 2) for p in range(min(k, n_rel)))
    rr_sum = ndcg_sum = 0.0
    perms = list(itertools.permutations(range(len(items))))
    for perm in perms:
        order = sorted(range(len(items)), key=lambda j: (-scores[items[j]], perm[j]))
        ranked = [relevant[items[j]] for j in order]
        rr_sum += 1 / (ranked.index(True) + 1)
        ndcg_sum += sum(1 / math.log2(p + 2) for p, rel in enumerate(ranked[:k]) if rel) / idcg
    return rr_sum / len(perms), ndcg_sum / len(perms)


def test_constant_scorer_gets_the_expected_rank_under_random_tie_breaking():
    """4 relevant items among 20, all scored alike: every placement of the relevant items is
    equally likely, so the expectation is the average over all C(20, 4) placements."""
    from auxrun.tasks.metrics import ranking_metrics

    n, k = 20, 10
    idcg = sum(1 / math.log2(p + 2) for p in range(4))
    placements = list(itertools.combinations(range(n), 4))
    rr = sum(1 / (min(c) + 1) for c in placements) / len(placements)
    ndcg = sum(sum(1 / math.log2(p + 2) for p in c if p < k) for c in placements) / len(placements) / idcg
    relevant = torch.zeros(2, n, dtype=torch.bool)
    relevant[0, [0, 1, 2, 3]] = True  # the answer must not depend on which ids are relevant
    relevant[1, [16, 17, 18, 19]] = True
    out = ranking_metrics(torch.zeros(2, n), relevant, torch.zeros(2, n, dtype=torch.bool), k)
    assert rr == pytest.approx(0.4152, abs=1e-4) and ndcg == pytest.approx(0.3547, abs=1e-4)
    assert out[0].tolist() == pytest.approx([rr, rr], abs=1e-12)
    assert out[1].tolist() == pytest.approx([ndcg, ndcg], abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_partly_tied_rankings_match_the_average_over_all_tie_breaks(seed):
    from auxrun.tasks.metrics import ranking_metrics

    g = torch.Generator().manual_seed(seed)
    n, k = 8, 3
    scores = torch.randint(0, 3, (n,), generator=g).double()  # three levels: many ties
    relevant = torch.rand(n, generator=g) < 0.35
    relevant[int(torch.randint(n, (1,), generator=g))] = True
    exclude = (torch.rand(n, generator=g) < 0.25) & ~relevant  # removed from the ranking
    rr, ndcg = _brute_force_ranking(scores.tolist(), relevant.tolist(), exclude.tolist(), k)
    out = ranking_metrics(scores[None], relevant[None], exclude[None], k)
    assert float(out[0, 0]) == pytest.approx(rr, abs=1e-12)
    assert float(out[1, 0]) == pytest.approx(ndcg, abs=1e-12)


def test_ranking_without_ties_and_rows_without_relevant_items():
    from auxrun.tasks.metrics import ranking_metrics

    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1], [0.4, 0.3, 0.2, 0.1]])
    relevant = torch.tensor([[False, True, False, True], [False, False, False, False]])
    exclude = torch.tensor([[True, False, False, False], [False] * 4])  # item 0 removed: item 1 ranks first
    out = ranking_metrics(scores, relevant, exclude, k=2)
    assert out[0].tolist() == pytest.approx([1.0, 0.0])
    assert out[1].tolist() == pytest.approx([1 / (1 + 1 / math.log2(3)), 0.0])


def test_rows_with_and_without_ties_in_one_call_match_each_row_alone():
    """Untied rows take the top-k shortcut, tied rows the full comparison; mixing them in one
    matrix changes no row's result."""
    from auxrun.tasks.metrics import ranking_metrics

    g = torch.Generator().manual_seed(3)
    scores = torch.cat([torch.randn(5, 12, generator=g), torch.randint(0, 3, (5, 12), generator=g).double()])
    relevant = torch.rand(10, 12, generator=g) < 0.3
    exclude = (torch.rand(10, 12, generator=g) < 0.3) & ~relevant
    together = ranking_metrics(scores, relevant, exclude, k=4)
    alone = torch.cat([ranking_metrics(scores[i:i + 1], relevant[i:i + 1], exclude[i:i + 1], k=4) for i in range(10)], 1)
    assert torch.allclose(together, alone, atol=1e-12)
