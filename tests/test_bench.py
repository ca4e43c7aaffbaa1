"""``make bench``'s references: the anchors' routes compute the same step as the strategy
they are timed against (so the ratio compares routes, not methods), and the targets are
read off the measurements as stated."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchjd.aggregation import PCGrad as TorchjdPCGrad

from auxrun.anchors import AnchorStep, libmtl_pcgrad_step
from auxrun.bench import AUX_SETS, prepared_steps, summarise
from auxrun.train.multitask import train_step
from auxrun.weighting import Step

SMALL = ["dataset=synthetic", "aux=mixed", "backbone.dropout=0.3", "device=cpu", "trainer.batch_size=16"]


def _after_one_step(overrides: list[str], anchor: str | None):
    p, ctx, optimizer, batch_size = prepared_steps([*overrides, *SMALL], AUX_SETS[2])
    batch = p.target.sample(batch_size, p.gen)
    if anchor is None:
        train_step(ctx, optimizer, batch, p.gen, 0)
    else:
        AnchorStep(anchor, ctx)(optimizer, batch, p.gen, 0)
    return ctx


@pytest.mark.parametrize(("weighting", "anchor"), [("auxts", "anchor_auxts"), ("selar", "anchor_selar")])
def test_the_authors_route_makes_the_same_step_as_ours(weighting, anchor):
    ours = _after_one_step([f"weighting={weighting}", "weighting.meta_grad=jvp"], None)
    theirs = _after_one_step([f"weighting={weighting}"], anchor)
    for (name, a), b in zip(ours.strategy.named_parameters(), theirs.strategy.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name      # the weighting network's meta step
    for (name, a), b in zip(ours.model.named_parameters(), theirs.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name      # the real update of every parameter
    initial = prepared_steps([f"weighting={weighting}", *SMALL], AUX_SETS[2])[1].strategy
    assert any(not torch.allclose(a, b) for a, b in zip(ours.strategy.parameters(), initial.parameters()))


def test_libmtl_pcgrad_route_matches_torchjd_pcgrad():
    torch.manual_seed(1)  # a draw whose two task gradients conflict
    theta, heads = nn.Linear(3, 2), {t: nn.Linear(2, 1) for t in ("target", "aux")}
    x, y = torch.randn(5, 3), torch.randn(5, 2)
    h = theta(x)
    losses = {t: (heads[t](h).squeeze(-1) - y[:, i]).pow(2) for i, t in enumerate(heads)}
    step = Step(losses=losses, shared=list(theta.parameters()), heads={t: list(m.parameters()) for t, m in heads.items()})
    G = step.task_grads()
    assert float(G[0] @ G[1]) < 0, "the case must have a conflict to project"
    libmtl_pcgrad_step(step, torch.Generator().manual_seed(0))
    got = torch.cat([p.grad.reshape(-1) for p in theta.parameters()])
    assert torch.allclose(got, TorchjdPCGrad()(G), atol=1e-6)


def _row(name: str, k: int, ms: float, device: str = "cpu") -> dict:
    return {"strategy": name, "k": k, "step_s": ms / 1000, "peak_mib": 10.0, "device": device}


@pytest.mark.parametrize(("auxts_ms", "anchor_ms", "five", "faster"), [(400, 800, True, True), (420, 500, False, False)])
def test_targets_are_read_off_the_measured_ratios(auxts_ms, anchor_ms, five, faster):
    rows = [_row("fixed", 5, 80), _row("auxts", 5, auxts_ms), _row("anchor_auxts", 5, anchor_ms)]
    s = summarise(rows)["K=5"]
    assert s["targets"] == {"auxts_at_least_1.5x_faster_than_the_authors_route": faster, "auxts_at_most_5x_fixed": five}
    assert s["auxrun_over_anchor_time"]["auxts"] == pytest.approx(auxts_ms / anchor_ms)
    on_gpu = summarise([_row("fixed", 5, 80, "cuda:0"), _row("auxts", 5, 300, "cuda:0")])["K=5"]
    assert on_gpu["targets"] == {"auxts_at_most_3x_fixed": False}


def test_a_paired_ratio_overrides_the_one_from_separate_rounds():
    rows = [_row("fixed", 5, 80), _row("auxts", 5, 600), _row("anchor_auxts", 5, 700)]
    pairs = {"K=5": {"auxts/fixed": {"ratio": 4.5}, "auxts/anchor_auxts": {"ratio": 0.6}}}
    s = summarise(rows, pairs)["K=5"]
    assert s["targets"] == {"auxts_at_least_1.5x_faster_than_the_authors_route": True, "auxts_at_most_5x_fixed": True}
    assert s["auxrun_over_anchor_time"]["auxts"] == 0.6 and s["ratios_to_fixed"]["auxts"]["time"] == 7.5


@pytest.mark.slow
def test_sweep_throughput_times_the_three_ways_and_reads_the_target(tmp_path, monkeypatch):
    """make bench's sweep case on a short planted job: one job, the cores' worth of jobs sharing
    the cores, and the same each asking for every core; the bound is 1.2 x one job's time."""
    import auxrun.throughput as tp

    monkeypatch.setitem(tp.JOBS, "synthetic", ["dataset=synthetic", "weighting=fixed", "trainer.max_epochs=2",
                                               "trainer.patience=0"])
    row = tp.sweep_throughput("synthetic", 2, tmp_path)
    assert row["bound_s"] == pytest.approx(1.2 * row["one_job_one_core_s"])
    assert row["target_met"] == (row["sweep_s"] <= row["bound_s"])
    assert all(row[k] > 0 for k in ("one_job_one_core_s", "sweep_s", "oversubscribed_s"))
    assert len(list((tmp_path / "sweep").rglob("result.json"))) == 2
