"""Strategies on the planted data with one helpful and one harmful auxiliary task (aux=mixed):
AUX-TS and ARML learn to weight the harmful one clearly lower, and AUX-TS, GCS, RCGrad and
ARML are not worse than `fixed` (averaged over seeds)."""

from __future__ import annotations

import statistics

import pandas as pd
import pytest

from auxrun.train.commands import run

SEEDS = range(4)


@pytest.fixture(scope="module", params=["full", pytest.param("neighbor", marks=pytest.mark.slow)])
def runs(request, tmp_path_factory):
    """Also on neighbour-sampled subgraphs (``-m slow``: it doubles the runs)."""
    from hydra import compose, initialize_config_module

    root = tmp_path_factory.mktemp("mixed")
    out: dict[str, list[dict]] = {"fixed": [], "auxts": [], "gcs": [], "rcgrad": [], "arml": []}
    with initialize_config_module("auxrun.conf", version_base="1.3"):
        for weighting in out:
            for seed in SEEDS:
                cfg = compose("mtl", overrides=[f"weighting={weighting}", "aux=mixed", f"seed={seed}",
                                                "trainer.progress=false", f"trainer.sampling={request.param}",
                                                "trainer.checkpoint=false"])
                run_dir = root / f"{weighting}-{seed}"
                result = run(cfg, run_dir)
                trace = pd.read_csv(run_dir / "trace.csv")
                late = trace[trace.epoch >= trace.epoch.max() - 10].groupby("task").weight.mean()
                out[weighting].append({"f1": result["metrics"]["test"]["f1_micro"], "weights": late.to_dict()})
    return out


@pytest.mark.parametrize("weighting", ["auxts", "arml"])
def test_the_harmful_task_is_weighted_clearly_lower(runs, weighting):
    for r in runs[weighting]:
        assert r["weights"]["harmful"] < 0.75 * r["weights"]["helpful"], r["weights"]


@pytest.mark.parametrize("weighting", ["auxts", "gcs", "rcgrad", "arml"])
def test_not_worse_than_fixed_when_the_harmful_task_is_present(runs, weighting):
    ours = statistics.mean(r["f1"] for r in runs[weighting])
    fixed = statistics.mean(r["f1"] for r in runs["fixed"])
    assert ours >= fixed, (ours, fixed)
