"""The planted data is a valid test bed: with `fixed` weights the helpful task must beat
`none` and the harmful task must lose to it, averaged over seeds (default settings)."""

from __future__ import annotations

import statistics

import pytest

from auxrun.train.commands import run

SEEDS = range(6)


@pytest.fixture(scope="module", params=["full", pytest.param("neighbor", marks=pytest.mark.slow)])
def scores(request, tmp_path_factory):
    """Also on neighbour-sampled subgraphs (``-m slow``: it doubles the runs)."""
    from hydra import compose, initialize_config_module

    root = tmp_path_factory.mktemp("planted")
    out: dict[str, list[float]] = {}
    with initialize_config_module("auxrun.conf", version_base="1.3"):
        for name, overrides in {"none": ["weighting=none"], "helpful": ["aux=helpful"],
                                "harmful": ["aux=harmful"]}.items():
            out[name] = []
            for seed in SEEDS:
                cfg = compose("mtl", overrides=[*overrides, f"seed={seed}", "trainer.progress=false",
                                                f"trainer.sampling={request.param}",
                                                "trainer.checkpoint=false", f"paths.outputs={root}"])
                result = run(cfg, root / f"{name}-{seed}")
                out[name].append(result["metrics"]["test"]["f1_micro"])
    return out


def test_helpful_task_beats_no_auxiliary(scores):
    gain = statistics.mean(scores["helpful"]) - statistics.mean(scores["none"])
    assert gain > 0.05, scores
    assert sum(h > n for h, n in zip(scores["helpful"], scores["none"])) >= len(SEEDS) - 1


def test_harmful_task_loses_to_no_auxiliary(scores):
    loss = statistics.mean(scores["none"]) - statistics.mean(scores["harmful"])
    assert loss > 0.01, scores
    assert sum(h < n for h, n in zip(scores["harmful"], scores["none"])) >= len(SEEDS) // 2


def test_no_auxiliary_learns_something(scores):
    assert statistics.mean(scores["none"]) > 0.5  # 4 balanced classes: chance is 0.25
