"""The auxiliary-learning methods of issue 16 against independent computations: torchjd's
scalarizers against their formulas by hand, GradNorm's and MetaBalance's weights by hand,
ARML's and AuxiNash's solutions against cvxpy, AuxiNash's preference gradient and
AuxiLearn's implicit hypergradient against finite differences of re-solved problems."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from auxrun.weighting import Step, build
from auxrun.weighting.arml import project_to_simplex
from auxrun.weighting.auxinash import bargain, preference_gradient
from auxrun.weighting.base import Lookahead

from quadratic import Quadratic

TASKS = ["target", "a", "b"]


class Tiny(nn.Module):
    """A shared Linear(3, 2) (two tensors: weight and bias) feeding one head per task;
    ``l_ij = (head_i(theta x_j) - y_ij)^2`` on a batch drawn with ``seed``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.theta = nn.Linear(3, 2)
        self.heads = nn.ModuleDict({t: nn.Linear(2, 1) for t in TASKS})

    def losses(self, seed: int, params: dict | None = None) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        x, y = torch.randn(6, 3, generator=g), torch.randn(6, len(TASKS), generator=g)
        scale = torch.tensor([1.0, 2.0, 0.5])  # tasks of different sizes
        if params is None:
            h = self.theta(x)
            return {t: scale[i] * (self.heads[t](h).squeeze(-1) - y[:, i]).pow(2) for i, t in enumerate(TASKS)}
        h = nn.functional.linear(x, params["w"], params["b"])
        out = {}
        for i, t in enumerate(TASKS):
            hw, hb = (params["hw"], params["hb"]) if t == "target" else (self.heads[t].weight, self.heads[t].bias)
            out[t] = scale[i] * (nn.functional.linear(h, hw, hb).squeeze(-1) - y[:, i]).pow(2)
        return out

    def step(self, seed: int = 1, meta_seed: int = 99) -> Step:
        losses = self.losses(seed)
        names = ["w", "b", "hw", "hb"]

        def at(values, s):
            return self.losses(s, dict(zip(names, values)))

        la = Lookahead(params=[self.theta.weight, self.theta.bias, self.heads["target"].weight,
                               self.heads["target"].bias],
                       losses_at=lambda v: at(v, seed), meta_loss_at=lambda v: at(v, meta_seed)["target"].mean())
        return Step(losses=losses, shared=list(self.theta.parameters()),
                    heads={t: list(m.parameters()) for t, m in self.heads.items()}, lookahead=la,
                    reevaluate=lambda: {t: v.detach() for t, v in self.losses(seed).items()})


def flat(params) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in params])


def means(step: Step) -> torch.Tensor:
    return torch.stack([step.losses[t].detach().mean() for t in TASKS])


def scalarize(kind: str, **options):
    return build(OmegaConf.create({"name": "scalarize", "scalarizer": kind, "lr": 0.01, "options": options}), TASKS)


# --- torchjd scalarizers -----------------------------------------------------------------

def hand_weights(kind: str, L: torch.Tensor) -> torch.Tensor:
    """``dS/dL`` at the scalarizers' initial state, from each paper's formula."""
    n = len(L)
    if kind == "uw":        # sum (exp(-s) L + s) / 2 at s = 0
        return torch.full((n,), 0.5)
    if kind in ("imtll", "dwa"):  # sum exp(s) L - s at s = 0; DWA's first epochs: weights 1
        return torch.ones(n)
    if kind == "stch":      # mu log sum exp(L / (n mu)), mu = 0.1
        return torch.softmax(L / n / 0.1, 0) / n
    if kind == "famo":      # c sum z log L, z = 1/n, c = 1 / sum(z / L)
        return (1 / L) / (1 / L).sum()
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["uw", "imtll", "dwa", "stch", "famo"])
def test_scalarize_moves_every_parameter_along_the_gradient_of_the_scalarized_loss(kind):
    model = Tiny()
    step = model.step()
    G = step.task_grads()
    strategy = scalarize(kind)
    diag = strategy.backward(step)
    w = hand_weights(kind, means(step))
    assert torch.allclose(flat(step.shared), w @ G, rtol=1e-5, atol=1e-7)
    for i, t in enumerate(TASKS):  # heads: their weighted loss
        expected = torch.autograd.grad(w[i] * step.losses[t].mean(), step.heads[t], retain_graph=True)
        assert all(torch.allclose(p.grad, e, rtol=1e-5, atol=1e-7) for p, e in zip(step.heads[t], expected))
        assert diag[t]["weight"] == pytest.approx(float(w[i]), rel=1e-5)


@pytest.mark.parametrize(("kind", "attr", "grad"), [
    ("uw", "log_var", lambda L: 0.5 - 0.5 * L),      # dS/ds at s = 0
    ("imtll", "log_scale", lambda L: L - 1),
])
def test_uw_and_imtll_take_one_adam_step_on_their_log_parameters(kind, attr, grad):
    step = Tiny().step()
    strategy = scalarize(kind)
    strategy.backward(step)
    # Adam's first step moves each parameter by lr against the sign of its gradient
    expected = -0.01 * torch.sign(grad(means(step)))
    assert torch.allclose(getattr(strategy.scalarizer, attr).detach(), expected, atol=1e-6)


def test_dwa_weights_follow_the_ratio_of_the_last_two_epoch_means():
    model = Tiny()
    strategy = scalarize("dwa", temperature=2.0)
    epochs = [[1, 2], [3, 4, 5]]  # batches (seeds) of the first two epochs
    averages = []
    for seeds in epochs:
        steps = [model.step(s) for s in seeds]
        for s in steps:
            strategy.backward(s)
        averages.append(torch.stack([means(s) for s in steps]).mean(0))
        strategy.end_epoch()
    step = model.step(6)
    G = step.task_grads()
    diag = strategy.backward(step)
    w = 3 * torch.softmax((averages[1] / averages[0]) / 2.0, 0)
    assert torch.allclose(flat(step.shared), w @ G, rtol=1e-5, atol=1e-7)
    assert [diag[t]["weight"] for t in TASKS] == pytest.approx(w.tolist(), rel=1e-5)


def test_famo_updates_its_logits_from_the_drop_of_the_log_losses_after_the_model_step():
    model = Tiny()
    step = model.step()
    strategy = scalarize("famo")
    strategy.backward(step)
    before = means(step)
    with torch.no_grad():  # the model's update: plain SGD on what the strategy filled in
        for p in model.parameters():
            p -= 0.1 * p.grad
    after = torch.stack([model.losses(1)[t].mean() for t in TASKS]).detach()
    strategy.after_optimizer_step(step)
    delta = torch.log(before + 1e-8) - torch.log(after + 1e-8)
    z = torch.full((3,), 1 / 3)
    grad = z * (delta - z @ delta)  # softmax's Jacobian (at w = 0) applied to delta
    assert torch.allclose(strategy.scalarizer._w.detach(), -0.025 * torch.sign(grad), atol=1e-6)


@pytest.mark.parametrize("kind", ["dwa", "famo"])
def test_scalarizer_state_outside_parameters_survives_a_state_dict_round_trip(kind):
    model = Tiny()
    strategy, fresh = scalarize(kind), scalarize(kind)
    for s in (1, 2):
        step = model.step(s)
        strategy.backward(step)
        strategy.after_optimizer_step(step)
        strategy.end_epoch()
    fresh.load_state_dict(strategy.state_dict())
    a, b = model.step(3), model.step(3)
    da, db = strategy.backward(a), fresh.backward(b)
    strategy.after_optimizer_step(a)
    fresh.after_optimizer_step(b)
    assert [da[t]["weight"] for t in TASKS] == [db[t]["weight"] for t in TASKS]
    for key, value in strategy.scalarizer.state_dict().items():
        assert torch.equal(value, fresh.scalarizer.state_dict()[key])
    if kind == "dwa":  # past two epochs: the weights are no longer uniform
        assert [da[t]["weight"] for t in TASKS] != [1.0, 1.0, 1.0]


# --- GradNorm ----------------------------------------------------------------------------

def test_gradnorm_steps_the_weights_by_hand_and_renormalises_them():
    model = Tiny()
    strategy = build(OmegaConf.create({"name": "gradnorm", "alpha": 1.5, "lr": 0.025, "params": "all"}), TASKS)
    first = model.step(1)
    strategy.backward(first)  # L(0) recorded, r = 1: every w_i moves towards the mean norm
    step = model.step(2)
    G = step.task_grads()
    w = strategy.w.detach().clone()
    L, L0 = means(step), means(first)
    strategy.backward(step)
    assert torch.allclose(flat(step.shared), w @ G, rtol=1e-5, atol=1e-7)  # the current weights
    norms = G.norm(dim=1)
    r = (L / L0) / (L / L0).mean()
    grad = torch.sign(w * norms - (w * norms).mean() * r**1.5) * norms
    # Adam's second step on w, replayed with torch's own Adam on the hand gradients
    ref = nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([ref], lr=0.025)
    n0 = Tiny().step(1).task_grads().norm(dim=1)
    for g in (torch.sign(n0 - n0.mean()) * n0, grad):
        ref.grad = g
        opt.step()
        with torch.no_grad():
            ref.clamp_(min=0).mul_(3 / ref.sum())
    assert torch.allclose(strategy.w.detach(), ref.detach(), atol=1e-6)
    assert float(strategy.w.sum()) == pytest.approx(3.0)


# --- MetaBalance -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["both", "decrease", "increase"])
def test_metabalance_rescales_each_tensor_of_each_auxiliary_gradient_by_hand(mode):
    model = Tiny()
    strategy = build(OmegaConf.create({"name": "metabalance", "relax": 0.7, "beta": 0.9, "mode": mode}), TASKS)
    norms = []
    for seed in (1, 2):
        step = model.step(seed)
        G = step.task_grads()
        parts = G.split([6, 2], dim=1)  # weight (2x3) and bias (2)
        norms.append(torch.stack([p.norm(dim=1) for p in parts], 1))
        diag = strategy.backward(step)
    m = 0.9 * (0.1 * norms[0]) + 0.1 * norms[1]
    s = m[0] / m[1:]
    s = {"both": s, "decrease": s.clamp_max(1), "increase": s.clamp_min(1)}[mode]
    coef = 0.7 * s + 0.3
    expected = torch.cat([parts[j][0] + (coef[:, j:j + 1] * parts[j][1:]).sum(0) for j in range(2)])
    assert torch.allclose(flat(step.shared), expected, rtol=1e-5, atol=1e-7)
    for t in TASKS:  # heads: their own task's gradient
        own = torch.autograd.grad(step.losses[t].mean(), step.heads[t], retain_graph=True)
        assert all(torch.allclose(p.grad, e) for p, e in zip(step.heads[t], own))
    assert diag["a"]["weight"] == pytest.approx(float((coef[0] * torch.tensor([6.0, 2.0])).sum() / 8), rel=1e-5)
    if mode == "both":
        assert not torch.allclose(coef, torch.ones_like(coef))


# --- ARML --------------------------------------------------------------------------------

def test_arml_gap_gradient_is_the_gradient_of_the_squared_gap():
    G = torch.randn(3, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    strategy = build(OmegaConf.create({"name": "arml", "lr": 0.01}), TASKS)
    a = torch.tensor([0.7, 1.3], dtype=torch.float64, requires_grad=True)
    (auto,) = torch.autograd.grad((G[0] - a @ G[1:]).pow(2).sum(), a)
    assert torch.allclose(strategy.gap_gradient(G, a.detach()), auto)


def test_simplex_projection_matches_cvxpy():
    rng = np.random.default_rng(0)
    for _ in range(5):
        v = rng.normal(size=4) * 2
        x = cp.Variable(4)
        cp.Problem(cp.Minimize(cp.sum_squares(x - v)), [x >= 0, cp.sum(x) == 4]).solve()
        ours = project_to_simplex(torch.tensor(v), 4.0).numpy()
        assert np.allclose(ours, x.value, atol=1e-6)


def test_arml_weights_converge_to_the_constrained_least_squares_solution():
    model = Tiny()
    step = model.step()
    G = step.task_grads().double()
    strategy = build(OmegaConf.create({"name": "arml", "lr": 0.003}), TASKS)
    for _ in range(3000):
        strategy.backward(step)
    a = cp.Variable(2)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(G[0].numpy() - G[1:].numpy().T @ a)), [a >= 0, cp.sum(a) == 2])
    problem.solve()
    assert np.allclose(strategy.a.detach().numpy(), a.value, atol=2e-2)
    assert float(strategy.a.sum()) == pytest.approx(2.0)
    w = torch.cat([torch.ones(1), strategy.a.detach()])
    assert torch.allclose(flat(step.shared), w @ step.task_grads(), rtol=1e-5, atol=1e-7)


# --- AuxiNash ----------------------------------------------------------------------------

def gram(seed: int, n: int = 4, d: int = 10) -> torch.Tensor:
    G = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return G @ G.T


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bargaining_solution_matches_cvxpy(seed):
    M = gram(seed)
    p = torch.tensor([1.0, 0.5, 2.0, 0.1], dtype=torch.float64)
    alpha = bargain(M, p)
    assert torch.allclose(M @ alpha, p / alpha, rtol=1e-6)
    a = cp.Variable(4)
    cp.Problem(cp.Minimize(0.5 * cp.quad_form(a, cp.psd_wrap(M.numpy())) - p.numpy() @ cp.log(a))).solve()
    assert np.allclose(alpha.numpy(), a.value, rtol=1e-4)


def test_preference_gradient_matches_finite_differences_of_the_resolved_bargain():
    M = gram(3)
    p = torch.tensor([1.0, 0.8, 1.5, 0.4], dtype=torch.float64)
    u = torch.tensor([0.3, -1.0, 0.5, 2.0], dtype=torch.float64)  # some dM/dalpha
    alpha = bargain(M, p)
    grad = preference_gradient(M, p, alpha, u)
    for i in range(4):
        e = torch.zeros(4, dtype=torch.float64)
        e[i] = 1e-6
        fd = (u @ bargain(M, p + e) - u @ bargain(M, p - e)) / 2e-6
        assert float(grad[i]) == pytest.approx(float(fd), rel=1e-5)


def test_auxinash_meta_gradient_matches_finite_differences_of_the_lookahead_loss():
    torch.set_default_dtype(torch.float64)
    try:
        model = Tiny()
        step = model.step()
        G = step.task_grads()
        strategy = build(OmegaConf.create({"name": "auxinash", "adapt_every": 1, "step_size": 0.1, "lr": 0.01,
                                           "folds": 1}), TASKS)
        alpha = torch.tensor([0.9, 0.4, 1.2])
        grad = strategy.meta_gradient(step, G, alpha)
        head = [model.heads["target"].weight, model.heads["target"].bias]
        head_g = torch.autograd.grad(step.losses["target"].mean(), head, retain_graph=True)

        def lookahead_loss(a):
            w, b = (a @ G).split([6, 2])
            values = [model.theta.weight - 0.1 * w.view(2, 3), model.theta.bias - 0.1 * b,
                      *[p - 0.1 * a[0] * g for p, g in zip(head, head_g)]]
            return float(step.lookahead.meta_loss_at(values))

        for i in range(3):
            e = torch.zeros(3)
            e[i] = 1e-6
            fd = (lookahead_loss(alpha + e) - lookahead_loss(alpha - e)) / 2e-6
            assert float(grad[i]) == pytest.approx(fd, rel=1e-6, abs=1e-10)
        # and the whole step: the shared update is the bargaining solution of the step's Gram matrix
        strategy.backward(step)
        a = bargain(G @ G.T, torch.ones(3))
        assert torch.allclose(flat(step.shared), a @ G, rtol=1e-8)
        assert not torch.equal(strategy.p.detach(), torch.ones(2))  # preferences moved
    finally:
        torch.set_default_dtype(torch.float32)


# --- AuxiLearn ---------------------------------------------------------------------------

Q = Quadratic(TASKS)
quad, outer = Q.inner, Q.outer


def inner_optimum(strategy) -> torch.Tensor:
    """argmin_theta L_0 + g_phi(L_a, L_b), by Newton's method."""
    theta = torch.zeros(4, dtype=torch.float64)

    def train(th):
        return strategy.combine(torch.stack([quad(th, t) for t in TASKS]))

    for _ in range(50):
        grad = torch.autograd.functional.jacobian(train, theta)
        theta = theta - torch.linalg.solve(torch.autograd.functional.hessian(train, theta), grad)
    return theta


def test_auxilearn_hypergradient_matches_finite_differences_of_the_inner_optimum():
    cfg = OmegaConf.create({"name": "auxilearn", "hidden": 2, "adapt_every": 1, "aux_split": 0.2,
                            "neumann_terms": 400, "neumann_step": 0.2, "lr": 0.01})
    strategy = build(cfg, TASKS).double()
    theta = nn.Parameter(inner_optimum(strategy))  # the implicit function theorem holds at the optimum
    la = Lookahead(params=[theta], losses_at=lambda v: {t: quad(v[0], t)[None] for t in TASKS},
                   meta_loss_at=lambda v: outer(v[0]))
    step = Step(losses={t: quad(theta, t)[None] for t in TASKS}, shared=[theta], heads={t: [] for t in TASKS},
                lookahead=la)
    grads = strategy.hypergradient(step, strategy.implicit_products(step))
    params = list(strategy.net.parameters())
    for p, g in zip(params, grads):
        for j in range(p.numel()):
            with torch.no_grad():
                p.data.reshape(-1)[j] += 1e-5
            up = float(outer(inner_optimum(strategy)))
            with torch.no_grad():
                p.data.reshape(-1)[j] -= 2e-5
            down = float(outer(inner_optimum(strategy)))
            with torch.no_grad():
                p.data.reshape(-1)[j] += 1e-5
            assert float(g.reshape(-1)[j]) == pytest.approx((up - down) / 2e-5, rel=1e-4, abs=1e-9)
    assert max(float(g.abs().max()) for g in grads) > 1e-4
    # the step's weights are dL_train/dL_i: 1 for the target, g_phi's partial derivatives
    w = strategy.weights(step)
    means_ = torch.stack([quad(theta, t) for t in TASKS]).detach()[1:].requires_grad_()
    (dg,) = torch.autograd.grad(strategy.net(means_), means_)
    assert float(w["target"]) == 1.0 and torch.allclose(torch.stack([w["a"], w["b"]]), dg)
