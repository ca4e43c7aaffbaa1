"""logger=tensorboard writes what trace.csv and the history hold, as the run trains."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from auxrun.errors import AuxrunError
from auxrun.train.commands import run


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every point
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def test_tensorboard_holds_every_steps_loss_weight_and_cosine_and_every_epochs_metrics(make_cfg, tmp_path):
    result = run(make_cfg("mtl", "trainer=fast", "trainer.checkpoint=false", "weighting=cosine", "logger=tensorboard"),
                 tmp_path / "r")
    assert result["status"] == "completed"
    events = _events(tmp_path / "r" / "tensorboard")
    trace = pd.read_csv(tmp_path / "r" / "trace.csv")
    for task, rows in trace.groupby("task"):
        assert events[f"loss/{task}"] == pytest.approx(dict(zip(rows.step, rows.loss)), rel=1e-6)
        assert events[f"weight/{task}"] == pytest.approx(dict(zip(rows.step, rows.weight)), rel=1e-6)
        cos = rows.dropna(subset=["cos"])
        assert (f"cos/{task}" in events) == (len(cos) > 0)  # cosine only where the strategy computes one
        if len(cos):
            assert events[f"cos/{task}"] == pytest.approx(dict(zip(cos.step, cos.cos)), rel=1e-6)
    metric = result["primary_metric"]
    history = {h["epoch"]: h[metric] for h in result["val_history"] if not math.isnan(h[metric])}
    assert events[f"val/{metric}"] == pytest.approx(history, rel=1e-6)
    per_epoch = trace[trace.task == "target"].groupby("epoch").loss.mean()
    assert events["train/loss"] == pytest.approx(dict(per_epoch), rel=1e-5)


def test_the_default_logger_writes_nothing_and_an_unknown_one_is_refused_at_composition(make_cfg, tmp_path):
    run(make_cfg("mtl", "trainer=fast", "trainer.checkpoint=false", "trainer.max_epochs=1"), tmp_path / "r")
    assert not (tmp_path / "r" / "tensorboard").exists()
    cfg = make_cfg("mtl", "trainer=fast")
    cfg.logger.name = "wandb"
    with pytest.raises(AuxrunError, match="logger.name='wandb': not allowed; expected one of none, tensorboard"):
        run(cfg, tmp_path / "bad")


def test_zeroshot_runs_log_their_source_loss_and_source_validation_metrics(make_cfg, tmp_path):
    from auxrun.transfer.zeroshot import run as zeroshot

    result = zeroshot(make_cfg("zeroshot", "trainer=fast", "trainer.checkpoint=false", "logger=tensorboard"),
                      tmp_path / "z")
    events = _events(tmp_path / "z" / "tensorboard")
    trace = pd.read_csv(tmp_path / "z" / "trace.csv")
    source = trace[trace.task == "source"]
    assert events["loss/source"] == pytest.approx(dict(zip(source.step, source.loss)), rel=1e-6)
    assert events["val/source_ndcg"] == pytest.approx({h["epoch"]: h["source_ndcg"] for h in result["val_history"]},
                                                      rel=1e-6)


def test_mlflow_logs_the_same_scalars_into_a_local_sqlite_store(make_cfg, tmp_path):
    pytest.importorskip("mlflow", reason="the optional extra: pip install -e '.[mlflow]'")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    result = run(make_cfg("mtl", "trainer=fast", "trainer.checkpoint=false", "trainer.max_epochs=2",
                          "logger=mlflow", f"logger.tracking_uri={uri}"), tmp_path / "r")
    client = MlflowClient(tracking_uri=uri)
    (mine,) = client.search_runs([client.get_experiment_by_name("auxrun").experiment_id])
    assert mine.info.run_name == "r" and mine.info.status == "FINISHED" and mine.data.params["weighting.name"] == "fixed"
    trace = pd.read_csv(tmp_path / "r" / "trace.csv")
    target = trace[trace.task == "target"]
    logged = {m.step: m.value for m in client.get_metric_history(mine.info.run_id, "loss/target")}
    assert logged == pytest.approx(dict(zip(target.step, target.loss)), rel=1e-6)
    metric = result["primary_metric"]
    logged = {m.step: m.value for m in client.get_metric_history(mine.info.run_id, f"val/{metric}")}
    assert logged == pytest.approx({h["epoch"]: h[metric] for h in result["val_history"]}, rel=1e-6)
