"""Engine behaviour: divergence is recorded, early stopping keeps the best epoch, writes are atomic."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from auxrun.errors import AuxrunError
from auxrun.atomic import atomic_write, write_json
from auxrun.train.commands import run


def test_divergence_is_recorded_not_crashed(make_cfg, tmp_path):
    # features of norm 1e30 overflow float32 in the first layer: the loss is not finite at once
    r = run(make_cfg("mtl", "dataset.feature_signal=1e30", "trainer.max_epochs=30", "trainer.patience=0"), tmp_path)
    assert r["status"] == "diverged" and "non-finite loss in helpful" in r["message"] and "at step 0" in r["message"]
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "diverged"


def test_early_stopping_reports_the_best_validation_epoch(make_cfg, tmp_path):
    r = run(make_cfg("mtl", "weighting=none", "trainer.max_epochs=200", "trainer.patience=5"), tmp_path)
    assert r["epochs_run"] == r["best_epoch"] + 6 or r["epochs_run"] == 200
    rows = list(csv.DictReader((tmp_path / "trace.csv").open()))
    assert int(rows[-1]["epoch"]) == r["epochs_run"] - 1


def test_a_record_says_what_it_ran_on(make_cfg, tmp_path):
    """The processor, the vector instructions torch's kernels use and the library releases:
    what can change a run's numbers when its config does not."""
    import platform
    from importlib.metadata import version

    env = run(make_cfg("mtl", "trainer=fast", "trainer.checkpoint=false"), tmp_path)["environment"]
    assert json.loads((tmp_path / "result.json").read_text())["environment"] == env
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and env["machine"] == platform.machine()
    assert env["packages"]["torch"] == torch.__version__ == version("torch")
    assert env["packages"]["torch_geometric"] == version("torch_geometric") and env["python"] == platform.python_version()
    with open("/proc/cpuinfo") as fh:
        assert any(line.startswith("model name") and line.split(":", 1)[1].strip() == env["device_name"] for line in fh)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "result.json"
    write_json(path, {"a": 1})

    def half_then_crash(fh):
        fh.write(b'{"a": 2, "trunc')
        raise KeyboardInterrupt  # e.g. the user pressing Ctrl-C mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_crash)
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"], "temporary file removed"


def test_a_finished_run_is_not_run_again_unless_asked(make_cfg, tmp_path, monkeypatch):
    from auxrun.train import runner

    cfg = make_cfg("mtl", "trainer=fast", "trainer.checkpoint=false")
    first = run(cfg, tmp_path)

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(runner, "fit", must_not_train)
    assert run(cfg, tmp_path) == first
    changed = make_cfg("mtl", "trainer=fast", "trainer.checkpoint=false", "seed=1")
    with pytest.raises(AuxrunError, match="holds a finished mtl run of another config .differing: seed."):
        run(changed, tmp_path)  # another config would replace the finished result: refused
    monkeypatch.undo()
    again = run(make_cfg("mtl", "trainer=fast", "trainer.checkpoint=false", "rerun=true"), tmp_path)
    assert again["metrics"] == first["metrics"] and again["config"]["rerun"] is True


def test_bf16_precision_trains_under_autocast_with_float32_losses(make_cfg, tmp_path):
    """trainer.precision=bf16: the encoder's matrix products run in bfloat16 inside the model's
    autocast (PyG's GCN aggregation promotes back to float32 with its float edge weights),
    the losses strategies see are float32, and a run completes with a different (rounded)
    result than the 32-bit one."""
    from auxrun.train.multitask import setup
    from auxrun.train.commands import run, task_parts

    cfg = make_cfg("mtl", "trainer.precision=bf16", "trainer=fast", f"paths.outputs={tmp_path}")
    p = task_parts(cfg)
    model, ctx, _ = setup(p.data, p.encoder, p.target, p.aux, p.strategy, cfg.trainer, p.gen)
    step = ctx.step(next(p.target.train_batches(8, p.gen)), p.gen, 0)
    assert all(v.dtype == torch.float32 for v in step.losses.values())
    inputs = ctx.view.step(None, p.gen)
    project = model.encoder.inputs["user"]  # the typed input projection, a matrix product
    with model.autocast():
        assert project(inputs.x["user"]).dtype == torch.bfloat16
    assert project(inputs.x["user"]).dtype == torch.float32
    half = run(make_cfg("mtl", "trainer.precision=bf16", "trainer=fast", "trainer.checkpoint=false"), tmp_path / "a")
    full = run(make_cfg("mtl", "trainer=fast", "trainer.checkpoint=false"), tmp_path / "b")
    assert half["status"] == full["status"] == "completed"
    assert half["metrics"]["val"]["loss"] != full["metrics"]["val"]["loss"]
