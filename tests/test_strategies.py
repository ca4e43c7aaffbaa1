"""Gradient-combining strategies on hand-built task gradients, and the meta strategies'
behaviour in training."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from auxrun.weighting import Step, build


def hand_built_step(vectors: dict[str, list[float]]) -> tuple[Step, torch.nn.Parameter]:
    """Losses l_i = <theta, v_i> (one example each), so g_i = v_i exactly."""
    theta = torch.nn.Parameter(torch.zeros(len(next(iter(vectors.values())))))
    losses = {t: (theta * torch.tensor(v)).sum()[None] for t, v in vectors.items()}
    return Step(losses=losses, shared=[theta], heads={t: [] for t in vectors}), theta


def test_cosine_includes_exactly_the_auxiliary_gradients_with_positive_cosine():
    vectors = {
        "target": [1.0, 0.0, 0.0],
        "agree": [2.0, 1.0, 0.0],       # cos > 0: kept
        "conflict": [-1.0, 3.0, 0.0],   # cos < 0: dropped
        "orthogonal": [0.0, 0.0, 5.0],  # cos = 0: dropped (strictly positive only)
        "barely": [0.01, -4.0, 2.0],    # cos slightly > 0: kept
    }
    step, theta = hand_built_step(vectors)
    diag = build(OmegaConf.create({"name": "cosine"}), list(vectors)).backward(step)
    expected = torch.tensor(vectors["target"]) + torch.tensor(vectors["agree"]) + torch.tensor(vectors["barely"])
    assert torch.equal(theta.grad, expected)
    assert {t: d["weight"] for t, d in diag.items()} == {"target": 1.0, "agree": 1.0, "conflict": 0.0,
                                                         "orthogonal": 0.0, "barely": 1.0}
    assert diag["conflict"]["cos"] == pytest.approx(-1 / 10**0.5)


@pytest.mark.parametrize("weighting", ["selar", "auxts"])
def test_weighting_network_is_trained(make_cfg, tmp_path, monkeypatch, weighting):
    """The authors' released AUX-TS code never updates its weighting network; ours must."""
    import auxrun.train.schemes as schemes

    built = []
    original = schemes.build_weighting
    initial = None

    def snapshot(*a):
        nonlocal initial
        strategy = original(*a)
        initial = [p.detach().clone() for p in strategy.net.parameters()]
        built.append(strategy)
        return strategy

    monkeypatch.setattr(schemes, "build_weighting", snapshot)
    schemes.run(make_cfg("mtl", f"weighting={weighting}", "trainer=fast", "trainer.checkpoint=false"), tmp_path)
    moved = [float((p.detach() - q).abs().max()) for p, q in zip(built[0].net.parameters(), initial)]
    assert all(m > 0 for m in moved), moved
    trace = pd.read_csv(tmp_path / "trace.csv")
    per_step = trace[trace.task == "helpful"].weight
    assert per_step.nunique() > 1, "the weights the trace records change as the network learns"
    assert (trace[trace.task != "target"].weight_std > 0).all(), "per-example weights differ within a batch"
