"""AUX-TS finds the planted signal: with one helpful and one harmful auxiliary task it learns
to weight the harmful one clearly lower, and its target metric is not worse than `fixed`."""

from __future__ import annotations

import statistics

import pandas as pd
import pytest

from auxrun.train.schemes import run

SEEDS = range(4)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from hydra import compose, initialize_config_module

    root = tmp_path_factory.mktemp("mixed")
    out: dict[str, list[dict]] = {"fixed": [], "auxts": []}
    with initialize_config_module("auxrun.conf", version_base="1.3"):
        for weighting in out:
            for seed in SEEDS:
                cfg = compose("mtl", overrides=[f"weighting={weighting}", "aux=mixed", f"seed={seed}",
                                                "trainer.progress=false", "trainer.checkpoint=false"])
                run_dir = root / f"{weighting}-{seed}"
                result = run(cfg, run_dir)
                trace = pd.read_csv(run_dir / "trace.csv")
                late = trace[trace.epoch >= trace.epoch.max() - 10].groupby("task").weight.mean()
                out[weighting].append({"f1": result["metrics"]["test"]["f1_micro"], "weights": late.to_dict()})
    return out


def test_auxts_weights_the_harmful_task_clearly_lower(runs):
    for r in runs["auxts"]:
        assert r["weights"]["harmful"] < 0.75 * r["weights"]["helpful"], r["weights"]


def test_auxts_is_not_worse_than_fixed(runs):
    auxts = statistics.mean(r["f1"] for r in runs["auxts"])
    fixed = statistics.mean(r["f1"] for r in runs["fixed"])
    assert auxts >= fixed, (auxts, fixed)
