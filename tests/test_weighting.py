"""The weighting interface on a hand-built model: shared gradients follow each strategy's
formula; heads get their weighted loss's gradient under loss-weighting strategies and their
own task's gradient under gradient surgery; per-task gradients are computed once."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from auxrun.errors import AuxrunError
from auxrun.weighting import Step, build


class Tiny(nn.Module):
    """theta (shared, 3x2) feeding two heads; l_ij = (head_i(theta x_j) - y_ij)^2."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.theta = nn.Linear(3, 2)
        self.heads = nn.ModuleDict({"target": nn.Linear(2, 1), "aux": nn.Linear(2, 1)})

    def step(self) -> Step:
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(5, 3, generator=g), torch.randn(5, 2, generator=g)
        h = self.theta(x)
        losses = {t: (self.heads[t](h).squeeze(-1) - y[:, i]).pow(2) for i, t in enumerate(["target", "aux"])}
        return Step(losses=losses, shared=list(self.theta.parameters()),
                    heads={t: list(m.parameters()) for t, m in self.heads.items()})


def flat_grad(loss, params):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)])


def shared_grad(model):
    return torch.cat([p.grad.reshape(-1) for p in model.theta.parameters()])


def test_task_grads_rows_are_each_tasks_mean_loss_gradient_and_cached():
    model = Tiny()
    step = model.step()
    G = step.task_grads()
    for i, t in enumerate(step.tasks):
        assert torch.allclose(G[i], flat_grad(step.losses[t].mean(), step.shared))
    assert step.task_grads() is G


def test_batched_route_and_last_layer_slice_give_the_loop_rows():
    model = Tiny()
    loop, batched = model.step(), model.step()
    batched.grad_route = "batched"
    assert torch.allclose(loop.task_grads(), batched.task_grads(), atol=1e-6)
    for step in (loop, batched):
        step.last_layer = [model.theta.bias]
    assert torch.allclose(loop.task_grads("last_layer"), loop.task_grads()[:, -2:])  # sliced from the full rows
    own = model.step()
    own.last_layer = [model.theta.bias]
    assert torch.allclose(own.task_grads("last_layer"), loop.task_grads()[:, -2:])   # its own backward passes
    assert "all" not in own._grads


@pytest.mark.parametrize("lambdas", [{}, {"aux": 0.25}, {"target": 2.0, "aux": -1.0}])
def test_fixed_shared_update_is_weighted_sum_and_heads_get_their_weighted_gradient(lambdas):
    model = Tiny()
    step = model.step()
    G = step.task_grads()
    strategy = build(OmegaConf.create({"name": "fixed", "default": 1.0, "weights": lambdas}), ["target", "aux"])
    diag = strategy.backward(step)
    lam = torch.tensor([lambdas.get("target", 1.0), lambdas.get("aux", 1.0)])
    assert torch.allclose(shared_grad(model), (lam[:, None] * G).sum(0), atol=1e-6)
    for (t, head), weight in zip(model.heads.items(), lam):
        expected = flat_grad(weight * step.losses[t].mean(), list(head.parameters()))
        got = torch.cat([p.grad.reshape(-1) for p in head.parameters()])
        assert torch.allclose(got, expected), f"head {t} must get the gradient of lambda_{t} L_{t}"
    assert diag["aux"]["weight"] == pytest.approx(float(lam[1]))
    assert diag["aux"]["weight_std"] == 0.0
    # the test computed G, so the trace reports cos(g_0, g_aux) at no extra cost
    assert diag["aux"]["cos"] == pytest.approx(float(G[0] @ G[1] / (G[0].norm() * G[1].norm())), rel=1e-5)


def test_none_uses_target_gradient_only_and_leaves_aux_untouched():
    model = Tiny()
    step = model.step()
    g0 = step.task_grads()[0]
    strategy = build(OmegaConf.create({"name": "none"}), ["target", "aux"])
    assert strategy.trains_aux is False
    strategy.backward(step)
    assert torch.allclose(shared_grad(model), g0)
    assert all(p.grad is None for p in model.heads["aux"].parameters())


def test_unknown_strategy_is_a_user_error():
    with pytest.raises(AuxrunError, match="available: none, fixed"):
        build(OmegaConf.create({"name": "nope"}), ["target", "aux"])


@pytest.mark.parametrize("name", ["cosine", "gcs", "gns", "gcs_gns", "pcgrad", "rcgrad", "jd"])
def test_gradient_surgery_gives_each_head_its_own_tasks_gradient(name):
    model = Tiny()
    step = model.step()
    extra = {"rcgrad": {"learn": "decay", "lr": 1e-3, "step_size": 0.005, "folds": 3},
             "jd": {"aggregator": "upgrad", "options": {}}}.get(name, {})
    build(OmegaConf.create({"name": name, **extra}), ["target", "aux"]).backward(step)
    for t, head in model.heads.items():
        expected = flat_grad(step.losses[t].mean(), list(head.parameters()))
        assert torch.allclose(torch.cat([p.grad.reshape(-1) for p in head.parameters()]), expected), t


def test_blo_rcgrad_heads_train_on_the_lambda_weighted_losses():
    model = Tiny()
    step = model.step()
    cfg = OmegaConf.create({"name": "blo_rcgrad", "adapt_every": 10, "aux_split": 0.2, "neumann_terms": 1,
                            "neumann_step": 0.01, "lr": 0.1, "momentum": 0.9, "rc_lr": 1e-3})
    strategy = build(cfg, ["target", "aux"])
    strategy.nu.data = torch.tensor([0.7, 0.2])  # adapt_every=10: no outer step on the first call
    strategy.backward(step)
    for t, head, lam in zip(["target", "aux"], model.heads.values(), [0.7, 0.2]):
        expected = flat_grad(lam * step.losses[t].mean(), list(head.parameters()))
        assert torch.allclose(torch.cat([p.grad.reshape(-1) for p in head.parameters()]), expected), t
