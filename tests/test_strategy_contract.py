"""The contract every registered weighting strategy keeps, checked on each of them.

The list of strategies comes from the registry (every ``weighting=`` option, presets
included, and each of torchjd's scalarizers), so a new strategy is checked here without
being named. On a few steps of the
planted graph, each strategy must:

* give finite weights and finite gradients;
* round-trip through a checkpoint: a job rebuilt from the saved state (the job's state and
  every random state, as :class:`~auxrun.train.loop.Loop` saves them) takes the next step
  exactly as the job that never stopped;
* leave frozen parameters alone: no gradient and no change where ``requires_grad`` is off;
* be deterministic under a seed: two runs of one config take identical steps.
"""

from __future__ import annotations

import io
import math

import pytest
import torch

from auxrun import weighting
from auxrun.train.multitask import TaskJob
from auxrun.train.loop import EpochPlan
from auxrun.train.resume import rng_states, set_rng_states
from auxrun.train.commands import task_parts
from auxrun.weighting.scalarize import SCALARIZERS

SMALL = ["trainer.batch_size=4", "trainer.aux_batch_size=32", "seed=3"]
STEPS = 3


def build(make_cfg, option: str, freeze: bool = False) -> TaskJob:
    """The multi-task job of ``weighting=option`` on the planted graph; with ``freeze``, the
    encoder's first parameter tensor does not train."""
    name, _, scalarizer = option.partition("-")  # scalarize-dwa: each torchjd scalarizer
    cfg = make_cfg("mtl", f"weighting={name}", *SMALL, *([f"weighting.scalarizer={scalarizer}"] if scalarizer else []))
    p = task_parts(cfg)
    if freeze:
        next(p.encoder.parameters()).requires_grad_(False)
    return TaskJob(p.data, p.encoder, p.target, p.aux, p.strategy, cfg.trainer, p.gen)


def train(job: TaskJob, steps: int, plan: EpochPlan | None = None) -> tuple[EpochPlan, list[list[dict]]]:
    """``steps`` steps of the job's epoch (a new one unless ``plan`` is given); the plan and
    every step's trace rows."""
    plan = plan or job.new_epoch()
    rows = []
    batches = job.batches(plan)
    for _ in range(steps):
        rows.append(job.train_step(next(batches), plan.done))
        plan.done += 1
    return plan, rows


def params(job: TaskJob) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in job.model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Equal tensors under equal keys (other entries, such as a strategy's optimiser state, are
    checked through what they make the next step do)."""
    a = {k: v for k, v in a.items() if torch.is_tensor(v)}
    b = {k: v for k, v in b.items() if torch.is_tensor(v)}
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def same_rows(a: list, b: list) -> bool:
    """Trace rows equal to the last digit (``repr``: nan equals nan)."""
    return repr(a) == repr(b)


OPTIONS = [*weighting.display_order(), *(f"scalarize-{k}" for k in SCALARIZERS if k != "uw")]


@pytest.mark.parametrize("option", OPTIONS)
class TestEveryStrategy:
    def test_weights_and_gradients_are_finite(self, make_cfg, option):
        job = build(make_cfg, option)
        _, steps = train(job, STEPS)
        weights = [r["weight"] for rows in steps for r in rows if r["weight"] is not None]
        assert all(math.isfinite(w) for w in weights), weights  # jd reports none: it weights no loss
        grads = [p.grad for p in job.model.parameters() if p.grad is not None]
        assert grads and all(bool(torch.isfinite(g).all()) for g in grads)

    def test_state_round_trips_through_a_checkpoint(self, make_cfg, option):
        job = build(make_cfg, option)
        plan, _ = train(job, 2)
        buffer = io.BytesIO()
        torch.save({"job": job.state_dict(), "rng": rng_states(job.gen)}, buffer)
        saved_plan = EpochPlan(plan.order.clone(), plan.done)
        _, rows = train(job, 1, plan)

        buffer.seek(0)
        saved = torch.load(buffer, weights_only=False)
        again = build(make_cfg, option)
        again.load_state_dict(saved["job"])
        set_rng_states(saved["rng"], again.gen)
        _, rows_again = train(again, 1, saved_plan)
        assert same_rows(rows_again, rows)
        assert same(params(again), params(job)) and same(again.strategy.state_dict(), job.strategy.state_dict())

    def test_frozen_parameters_get_no_gradient_and_do_not_move(self, make_cfg, option):
        job = build(make_cfg, option, freeze=True)
        frozen = next(job.model.encoder.parameters())
        before = frozen.detach().clone()
        train(job, STEPS)
        assert frozen.grad is None and torch.equal(frozen, before)
        assert any(p.grad is not None for p in job.model.encoder.parameters() if p.requires_grad)

    def test_deterministic_under_a_seed(self, make_cfg, option):
        a = build(make_cfg, option)  # building seeds every generator: build and train one at a time
        _, rows_a = train(a, STEPS)
        b = build(make_cfg, option)
        _, rows_b = train(b, STEPS)
        assert same_rows(rows_a, rows_b) and same(params(a), params(b))


def test_every_strategy_declares_a_family_and_a_place_of_its_own():
    orders = [cls.order for cls in weighting.REGISTRY.values()]
    assert len(set(orders)) == len(orders) and orders == sorted(orders)
    assert {cls.family for cls in weighting.REGISTRY.values()} == set(weighting.FAMILIES)
    with pytest.raises(TypeError, match="family must be one of"):
        type("Unfiled", (weighting.Weighting,), {"name": "unfiled", "order": 999})
    with pytest.raises(TypeError, match="needs an order of its own .taken by: fixed"):
        type("Twin", (weighting.Weighting,), {"name": "twin", "family": "baseline", "order": 10})
    assert "unfiled" not in weighting.base.REGISTRY and "twin" not in weighting.base.REGISTRY
