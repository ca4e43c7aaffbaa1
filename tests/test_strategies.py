"""Gradient-combining strategies on hand-built task gradients, and the meta strategies'
behaviour in training."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from auxrun.cli import CONF_DIR as CONF
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
    import auxrun.train.commands as schemes

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


VECTORS = {
    "target": [3.0, 0.0, 0.0, 0.0],
    "agree": [1.0, 2.0, 0.0, 0.0],
    "conflict": [-2.0, 0.0, 1.0, 0.0],
    "big": [12.0, 0.0, 0.0, 16.0],
}


def expected_update(name: str) -> torch.Tensor:
    """The formulas of DESIGN.md, written out with plain tensor arithmetic."""
    g0 = torch.tensor(VECTORS["target"])
    out = g0.clone()
    for t in ("agree", "conflict", "big"):
        g = torch.tensor(VECTORS[t])
        c = float(g @ g0 / (g.norm() * g0.norm()))
        r = float(g0.norm() / g.norm())
        if name == "gcs":
            out += max(0.0, c) * g
        elif name == "gns":
            out += min(1.0, r) * g
        elif name == "gcs_gns":
            out += max(0.0, c * r) * g
        elif name in ("pcgrad", "rcgrad"):
            g = g - (g @ g0) / (g0 @ g0) * g0 if c < 0 else g
            out += g if name == "pcgrad" else (min(1.0, float(g0.norm() / g.norm())) + 1.0) / 2 * g  # w_i = 1
    return out


RCGRAD = {"name": "rcgrad", "learn": "decay", "lr": 0.1, "step_size": 0.005, "folds": 3}


@pytest.mark.parametrize("name", ["gcs", "gns", "gcs_gns", "pcgrad", "rcgrad"])
def test_surgery_strategies_produce_exactly_the_formulas_vector(name):
    step, theta = hand_built_step(VECTORS)
    build(OmegaConf.create(RCGRAD if name == "rcgrad" else {"name": name}), list(VECTORS)).backward(step)
    assert torch.allclose(theta.grad, expected_update(name), atol=1e-6)
    # hand-checked values for two of them: c = (1/sqrt5, -2/sqrt5, 0.6), r = (3/sqrt5, 3/sqrt5, 0.15)
    if name == "gcs":
        assert torch.allclose(theta.grad, torch.tensor([3 + 1 / 5**0.5 + 7.2, 2 / 5**0.5, 0.0, 9.6]), atol=1e-6)
    if name == "pcgrad":  # conflict loses its g_0 component: [-2, 0, 1, 0] -> [0, 0, 1, 0]
        assert torch.allclose(theta.grad, torch.tensor([3 + 1 + 12.0, 2.0, 1.0, 16.0]), atol=1e-6)


@pytest.mark.parametrize("name", ["pcgrad", "rcgrad"])
def test_after_surgery_no_auxiliary_term_conflicts_and_the_target_passes_unchanged(name):
    g = torch.Generator().manual_seed(0)
    for trial in range(30):
        vectors = {t: torch.randn(8, generator=g).tolist() for t in ["target", "a", "b", "c", "d"]}
        step, theta = hand_built_step(vectors)
        strategy = build(OmegaConf.create(RCGRAD if name == "rcgrad" else {"name": name}), list(vectors))
        diag = strategy.backward(step)
        G = torch.tensor(list(vectors.values()))
        aux_part = theta.grad - G[0]  # the update minus the unchanged target gradient
        assert aux_part @ G[0] >= -1e-5
        for i, t in enumerate(["a", "b", "c", "d"], start=1):
            projected = strategy.surgery(G[0], G[1:], step.cosines())[i - 1]
            assert projected @ G[0] >= -1e-5, f"{t} still conflicts"
            if G[i] @ G[0] >= 0:
                assert torch.equal(projected, G[i]), "agreeing gradients pass unchanged"
        assert diag["target"]["weight"] == 1.0


def test_rcgrad_decay_shrinks_w_by_the_loss_gradient_and_stays_in_unit_interval():
    step, _ = hand_built_step(VECTORS)
    strategy = build(OmegaConf.create(RCGRAD), list(VECTORS))
    strategy.backward(step)
    # the gradient of w_i is the loss value L_i; at theta = 0 every l_i = <theta, v_i> is 0,
    # so nothing moves yet
    losses = torch.stack([step.losses[t].mean() for t in strategy.aux])
    assert torch.all(losses == 0) and torch.equal(strategy.w.detach(), torch.ones(3))
    step, _ = hand_built_step(VECTORS)
    step.losses = {t: loss + 2.0 for t, loss in step.losses.items()}  # positive losses: w must decay
    for _ in range(30):
        strategy.after_update(step)
    assert torch.all(strategy.w < 1) and torch.all(strategy.w >= 0)
    assert torch.allclose(strategy.w.detach(), torch.zeros(3), atol=1e-6), "clamped at 0 after decaying past it"


def _decay(losses: list[list[float]], lr: float = 1e-3) -> torch.Tensor:
    """Run RCGrad's ``learn=decay`` update on a sequence of per-task loss values; w after it."""
    tasks = ["target", *(f"a{i}" for i in range(len(losses[0])))]
    strategy = build(OmegaConf.create({**RCGRAD, "lr": lr}), tasks)
    for row in losses:
        step = Step(losses={"target": torch.zeros(1), **{t: torch.tensor([v]) for t, v in zip(tasks[1:], row)}},
                    shared=[], heads={})
        strategy.after_update(step)
    return strategy.w.detach().double()


def _adam_by_hand(grads: list[float], lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> float:
    """Kingma & Ba's Adam, written out, on one scalar starting at 1, clamped to [0, 1]."""
    w, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        w -= lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)) ** 0.5 + eps)
        w = min(1.0, max(0.0, w))
    return w


def test_rcgrad_decay_follows_adam_so_the_loss_size_does_not_set_the_pace():
    """The documented rule (weighting/rcgrad.py): a constant loss lowers w by exactly lr per
    step whatever its size; scaling every loss by c > 0 changes nothing; a fluctuating loss
    lowers it by about lr * mean / rms per step. The authors' configuration: Adam, lr 1e-3."""
    assert OmegaConf.load(CONF / "weighting" / "rcgrad.yaml").lr == 1e-3
    lr, steps = 1e-3, 50
    w = _decay([[0.01, 100.0]] * steps, lr)
    assert w.tolist() == pytest.approx([1 - lr * steps] * 2, abs=1e-6)  # 0.95 for both
    g = torch.Generator().manual_seed(0)
    noisy = (torch.rand(200, 3, generator=g) * torch.tensor([0.1, 1.0, 3.0])).tolist()  # three fluctuation levels
    base = _decay(noisy, lr)
    for c in (1e-2, 1e3):
        assert torch.allclose(_decay([[c * v for v in row] for row in noisy], lr), base, atol=1e-6)
    for i in range(3):  # an independent computation of the same recurrence
        assert float(base[i]) == pytest.approx(_adam_by_hand([row[i] for row in noisy], lr), abs=1e-6)
    # alternating 0, 2 (mean 1, rms sqrt 2) decays at ~lr / sqrt 2 per step; constant 1 at lr
    w = _decay([[0.0 if t % 2 else 2.0, 1.0] for t in range(400)], lr)
    per_step = (1 - w) / 400
    assert float(per_step[1]) == pytest.approx(lr, rel=1e-4)
    assert float(per_step[0]) == pytest.approx(lr / 2**0.5, rel=0.05)


@pytest.mark.parametrize("aggregator", ["upgrad", "mgda", "cagrad"])
def test_jd_applies_the_torchjd_aggregator_to_the_task_gradients(aggregator):
    from torchjd import aggregation

    step, theta = hand_built_step(VECTORS)
    cfg = OmegaConf.create({"name": "jd", "aggregator": aggregator, "options": {}})
    diag = build(cfg, list(VECTORS)).backward(step)
    reference = {"upgrad": aggregation.UPGrad(), "mgda": aggregation.MGDA(), "cagrad": aggregation.CAGrad(c=0.4)}
    J = torch.tensor(list(VECTORS.values()))
    assert torch.allclose(theta.grad, reference[aggregator](J), atol=1e-6)
    assert diag["conflict"]["cos"] == pytest.approx(-2 / 5**0.5, rel=1e-6)
