"""The meta-gradient of SELAR / AUX-TS: the forward-mode (jvp) version, the unrolled
create_graph reference and a central finite difference of the meta loss all agree."""

from __future__ import annotations

import pytest
import torch

from auxrun.data import load
from auxrun.data.step_inputs import FullGraph, SampledGraph
from auxrun.models import Encoder
from auxrun.tasks import build_aux, build_target
from auxrun.train.multitask import StepContext, TaskModel
from auxrun.weighting import build

VARIANTS = [("selar", []), ("auxts", ["weighting.sims=one"]), ("auxts", ["weighting.sims=all"]),
            ("selar", ["weighting.normalize=target"]), ("auxts", ["weighting.sims=one", "weighting.normalize=target"])]
SMALL = ["dataset.num_users=60", "dataset.num_items=40", "dataset.num_tags=8", "dataset.train_frac=0.3",
         "aux=ssl", "+aux.tasks.helpful={kind: planted, relation: helpful}", "trainer.aux_batch_size=16",
         "trainer.batch_size=12", "backbone.dropout=0.3"]


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def make_step(make_cfg, weighting: str, overrides: list[str], seed: int = 0, sampling: str = "full"):
    """A step exactly as the engine builds it: attribute generation hides inputs, dropout is
    on (the look-ahead closures must replay its masks), meta batch from a training fold; with
    ``sampling="neighbor"`` the step's tasks share one sampled subgraph and the meta batch
    has its own."""
    net = ["weighting.hidden=16"] if weighting in ("selar", "auxts") else []
    cfg = make_cfg("mtl", f"weighting={weighting}", *SMALL, *net, *overrides)
    torch.manual_seed(seed)
    data = load(cfg.dataset, seed)
    hidden = int(cfg.backbone.hidden)
    target = build_target(data, hidden, int(cfg.aux.head_dim))
    aux = build_aux(cfg.aux, data, hidden, seed)
    strategy = build(cfg.weighting, ["target", *aux])
    model = TaskModel(Encoder(cfg.backbone, data.schema()), {"target": target, **aux})
    model.train()
    bs = int(cfg.trainer.aux_batch_size)
    view = FullGraph(data, model.tasks, bs) if sampling == "full" else \
        SampledGraph(data, model.tasks, bs, [4, 3], [4, 3], 64, torch.Generator().manual_seed(seed))
    ctx = StepContext(model, view, target, aux, strategy, cfg.trainer)
    gen = torch.Generator().manual_seed(seed)
    return strategy, ctx.step(next(target.train_batches(int(cfg.trainer.batch_size), gen)), gen, 1)


def joint_weights(strategy, step) -> torch.Tensor:
    """V_phi's outputs for every example, divided for normalize=target by the mean output over
    the target's examples (the first block: the step's tasks start with the target)."""
    w = strategy.net(strategy.features(step))
    assert step.tasks[0] == "target"
    return w / w[:len(step.losses["target"])].mean() if strategy.normalize == "target" else w


def meta_loss(strategy, step) -> torch.Tensor:
    """The definition: M(phi) = target loss at theta - alpha grad_theta sum_i mean_j w_ij l_ij."""
    la = step.lookahead
    losses, scale = strategy._flat(step)
    w = joint_weights(strategy, step)
    g = torch.autograd.grad((w * scale * losses).sum(), la.params, retain_graph=True, allow_unused=True)
    return la.meta_loss_at([p - strategy.step_size * (gi if gi is not None else 0) for p, gi in zip(la.params, g)])


@pytest.mark.parametrize("sampling", ["full", "neighbor"])
@pytest.mark.parametrize(("weighting", "overrides"), VARIANTS)
def test_jvp_unrolled_and_finite_difference_agree(make_cfg, float64, weighting, overrides, sampling):
    strategy, step = make_step(make_cfg, weighting, overrides, sampling=sampling)
    assert set(step.losses) == {"target", "uiu", "iti", "edge_rates", "attr_user", "helpful"}
    la = step.lookahead
    before = {t: v.detach().clone() for t, v in la.losses_at([p.detach() for p in la.params]).items()}
    assert all(torch.equal(before[t], step.losses[t].detach()) for t in before), "dropout masks replayed"

    strategy.meta_grad = "jvp"
    fast = strategy.meta_gradient(step)
    strategy.meta_grad = "unrolled"
    slow = strategy.meta_gradient(step)
    for a, b in zip(fast, slow):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    assert max(float(g.abs().max()) for g in fast) > 1e-8, "a vanishing meta-gradient would test nothing"

    # Finite differences are valid only where M is smooth: probe, in every tensor of V_phi, the
    # largest-|gradient| entry whose +-eps perturbation leaves V_phi's ReLU pattern unchanged
    # (a dead unit's zero entry would test nothing). Richardson extrapolation of central
    # differences at eps and eps/2 has O(eps^4) truncation error; eps = 1e-3 keeps float64
    # round-off (~1e-13 / eps) far below the tolerance. With normalize=target the meta loss is
    # blind to a common scale of V_phi's outputs and its gradient entries are ~100x smaller
    # (1e-6 to 1e-5), so eps = 1e-2 keeps the round-off below the tolerance there.
    eps = 1e-2 if strategy.normalize == "target" else 1e-3
    feats = strategy.features(step)
    pattern = lambda: strategy.net.net[0](feats) > 0  # noqa: E731
    base = pattern()

    def perturbed(param, index, shift, fn):
        with torch.no_grad():
            param[index] += shift
        try:
            return fn()
        finally:
            with torch.no_grad():
                param[index] -= shift

    def central(param, index, h):
        value = lambda: float(meta_loss(strategy, step))  # noqa: E731
        return (perturbed(param, index, h, value) - perturbed(param, index, -h, value)) / (2 * h)

    def smooth_at(param, index):
        return all(perturbed(param, index, shift, lambda: torch.equal(pattern(), base)) for shift in (eps, -eps))

    largest = max(float(g.abs().max()) for g in fast)
    for param, grad in zip(strategy.net.parameters(), fast):
        order = grad.abs().flatten().argsort(descending=True)
        index = next(i for i in (torch.unravel_index(k, grad.shape) for k in order[:50]) if smooth_at(param, i))
        fd = (4 * central(param, index, eps / 2) - central(param, index, eps)) / 3
        # 1e-5 of the entry, or of the largest entry anywhere in dM/dphi for an entry far below it
        assert float(grad[index]) == pytest.approx(fd, rel=1e-5, abs=1e-5 * largest)


@pytest.mark.parametrize(("weighting", "overrides"), VARIANTS)
def test_jvp_and_unrolled_agree_in_float32(make_cfg, weighting, overrides):
    strategy, step = make_step(make_cfg, weighting, overrides, seed=1)
    strategy.meta_grad = "jvp"
    fast = torch.cat([g.reshape(-1) for g in strategy.meta_gradient(step)])
    strategy.meta_grad = "unrolled"
    slow = torch.cat([g.reshape(-1) for g in strategy.meta_gradient(step)])
    assert float((fast - slow).abs().max()) <= 1e-5 * max(1.0, float(slow.abs().max()))


def test_input_rows_follow_each_papers_layout(make_cfg):
    for weighting, overrides, dim in [("selar", [], 1 + 5 + 1), ("auxts", ["weighting.sims=one"], 1 + 6 + 1),
                                      ("auxts", ["weighting.sims=all"], 1 + 6 + 5)]:
        strategy, step = make_step(make_cfg, weighting, overrides)
        feats = strategy.features(step)
        assert feats.shape == (sum(len(v) for v in step.losses.values()), dim)
        assert torch.equal(feats[:, 0], torch.cat([step.losses[t].detach() for t in step.tasks]))
        n0 = len(step.losses["target"])
        helpful = slice(feats.shape[0] - len(step.losses["helpful"]), feats.shape[0])
        if weighting == "selar":
            assert feats[:n0, 1:6].abs().sum() == 0, "SELAR: the target's one-hot is all zeros"
            assert torch.equal(feats[helpful, 6], step.batches["helpful"]["labels"]), "SELAR: the label column"
        else:
            assert torch.equal(feats[:n0, 1], torch.ones(n0)) and feats[:n0, 2:7].abs().sum() == 0
            cos = step.cosines()
            if overrides == ["weighting.sims=one"]:
                assert torch.equal(feats[:n0, 7], torch.ones(n0)), "c_target = 1"
                assert torch.allclose(feats[helpful, 7], cos[4].expand(len(step.losses["helpful"])))
            else:
                assert torch.allclose(feats[0, 7:], cos)


def test_rcgrad_meta_gradient_matches_closed_form_and_finite_difference(make_cfg, float64):
    strategy, step = make_step(make_cfg, "rcgrad", ["weighting.learn=meta"])
    G = step.task_grads()
    g0, A = G[0], strategy.surgery(G[0], G[1:], step.cosines())
    grad = strategy.meta_gradient(step, g0, A)
    w0 = strategy.w.detach().double().clone()
    # closed form: dM/dw_i = -(alpha / 2) <grad M(theta'), g~_i> on the shared parameters
    w = w0.clone().requires_grad_()
    meta = strategy.meta_loss(step, g0, A, w)
    n = len(step.shared)
    la = step.lookahead
    theta1 = [p.detach() - strategy.step_size * u.view_as(p)
              for p, u in zip(la.params[:n], (g0 + strategy.scales(g0, A, w0) @ A).split([p.numel() for p in la.params[:n]]))]
    head = la.params[n:]
    head_g = torch.autograd.grad(step.losses["target"].mean(), head, retain_graph=True)
    theta1 = [t.requires_grad_() for t in theta1] + [p.detach() - strategy.step_size * g for p, g in zip(head, head_g)]
    h = torch.cat([x.reshape(-1) for x in torch.autograd.grad(la.meta_loss_at(theta1), theta1[:n])])
    assert torch.allclose(grad, -strategy.step_size / 2 * (A @ h), rtol=1e-9)
    assert float(meta) == pytest.approx(float(la.meta_loss_at(theta1)), rel=1e-12)
    # central differences (M is linear-in-w inside the GNN up to its ReLUs: small eps)
    for i in range(len(w0)):
        e = torch.zeros_like(w0)
        e[i] = 1e-4
        fd = (float(strategy.meta_loss(step, g0, A, w0 + e)) - float(strategy.meta_loss(step, g0, A, w0 - e))) / 2e-4
        assert float(grad[i]) == pytest.approx(fd, rel=1e-5)
    assert grad.abs().max() > 1e-8


@pytest.mark.parametrize(("weighting", "overrides"), VARIANTS)
def test_real_update_of_every_parameter_is_the_weighted_gradient_the_lookahead_assumed(make_cfg, weighting, overrides):
    """SELAR / AUX-TS train the whole model on the weighted joint loss: the look-ahead steps
    theta (encoder + target head) along grad_theta sum_i mean_j w_ij l_ij, so the real update
    must be that gradient too, target head included, and each auxiliary head gets its
    weighted loss's gradient."""
    strategy, step = make_step(make_cfg, weighting, overrides)
    strategy.backward(step)
    la = step.lookahead
    losses, scale = strategy._flat(step)
    with torch.no_grad():
        w = joint_weights(strategy, step)  # the updated phi's weights: the real stage's
    assumed = torch.autograd.grad((w * scale * losses).sum(), la.params, retain_graph=True, allow_unused=True)
    for p, g in zip(la.params, assumed):
        assert torch.allclose(p.grad, g if g is not None else torch.zeros_like(p), rtol=1e-5, atol=1e-7)
    head = step.heads["target"]
    unweighted = torch.autograd.grad(step.losses["target"].mean(), head, retain_graph=True)
    gap = max(float((p.grad - u).norm() / u.norm()) for p, u in zip(head, unweighted))
    if strategy.normalize == "none":  # (normalize=target sets the target's mean weight to 1)
        assert gap > 0.01, "weights far from 1 must show in the target head's gradient"
    ws = dict(zip(step.tasks, w.split([len(step.losses[t]) for t in step.tasks])))
    for t in step.aux_tasks:
        expected = torch.autograd.grad((ws[t] * step.losses[t]).mean(), step.heads[t], retain_graph=True,
                                       allow_unused=True)
        for p, g in zip(step.heads[t], expected):
            assert torch.allclose(p.grad, g if g is not None else torch.zeros_like(p), rtol=1e-5, atol=1e-7), t


@pytest.mark.parametrize("weighting", ["selar", "auxts"])
def test_normalize_target_sets_the_target_mean_weight_to_one_and_keeps_the_ratios(make_cfg, weighting):
    """normalize=target divides every weight by the target examples' mean weight: the real
    stage's target weights average 1 and every ratio of two weights is V_phi's."""
    strategy, step = make_step(make_cfg, weighting, ["weighting.normalize=target"])
    w = strategy.weights(step)
    assert float(w["target"].mean()) == pytest.approx(1.0, rel=1e-6)
    with torch.no_grad():
        raw = strategy.net(strategy.features(step))
    flat = torch.cat([w[t] for t in step.tasks])
    assert torch.allclose(flat / flat[0], raw / raw[0], rtol=1e-5)
    assert float(raw[:len(w["target"])].mean()) != pytest.approx(1.0, abs=1e-3), "V_phi alone would test nothing"


def test_normalize_is_validated_when_the_config_is_composed(make_cfg):
    from auxrun.errors import AuxrunError
    from auxrun.schema import validate

    with pytest.raises(AuxrunError, match="weighting.normalize"):
        validate(make_cfg("mtl", "weighting=selar", "weighting.normalize=mean"))
