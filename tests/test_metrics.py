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
