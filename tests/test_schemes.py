"""pretrain -> finetune: checkpoints saved, found, loaded, and refused when they do not fit."""

from __future__ import annotations

import hashlib

import pytest
import torch

from conftest import read_result, run_cli
from omegaconf import OmegaConf

from auxrun.errors import AuxrunError
from auxrun.train.commands import _compose_pretrain, run
from auxrun.train.pretrained import FILENAME, find_pretrained

SMALL = ["trainer=fast", "trainer.checkpoint=false"]


@pytest.mark.parametrize("sampling", ["full", "neighbor"])
def test_pretrain_then_finetune_loads_that_encoder(make_cfg, tmp_path, monkeypatch, sampling):
    out = tmp_path / "outputs"
    SMALL = ["trainer=fast", "trainer.checkpoint=false", f"trainer.sampling={sampling}"]  # noqa: N806
    # a pretrain run configured as this finetune would pre-train (``auxrun pretrain`` with the
    # same settings), so that ``pretrained=auto`` finds it
    pre = run(_compose_pretrain(make_cfg("finetune", *SMALL, f"paths.outputs={out}")), out / "pre")
    assert pre["status"] == "completed" and (out / "pre" / FILENAME).exists()
    assert {"uiu_auc", "edge_rates_auc", "attr_user_mse"} <= set(pre["metrics"]["val"])
    saved = torch.load(out / "pre" / FILENAME, weights_only=True)

    loaded = {}
    import auxrun.train.commands as schemes
    original = schemes.TaskJob

    def spy(data, encoder, *args):
        loaded.update({k: v.detach().clone() for k, v in encoder.state_dict().items()})
        return original(data, encoder, *args)

    monkeypatch.setattr(schemes, "TaskJob", spy)
    ft = run(make_cfg("finetune", *SMALL, f"paths.outputs={out}"), out / "ft")  # pretrained=auto
    assert ft["pretrained"] == str(out / "pre")
    assert ft["pretrained_sha256"] == hashlib.sha256((out / "pre" / FILENAME).read_bytes()).hexdigest()
    assert all(torch.equal(loaded[k], v) for k, v in saved["state_dict"].items())
    explicit = run(make_cfg("finetune", *SMALL, f"pretrained={out / 'pre' / FILENAME}"), out / "ft2")
    assert explicit["metrics"] == ft["metrics"]


@pytest.mark.parametrize("backbone", ["sage", "gat"])  # gat has keys of its own (heads)
def test_auto_pretrains_once_when_nothing_matches(make_cfg, tmp_path, backbone):
    out = tmp_path / "outputs"
    first = run(make_cfg("finetune", *SMALL, f"backbone={backbone}", f"paths.outputs={out}"), out / "a")
    made = list((out / "pretrain" / "auto").iterdir())
    assert len(made) == 1 and first["pretrained"] == str(made[0])
    second = run(make_cfg("finetune", *SMALL, f"backbone={backbone}", f"paths.outputs={out}"), out / "b")
    assert second["pretrained"] == first["pretrained"]
    assert len(list((out / "pretrain" / "auto").iterdir())) == 1
    pre = _compose_pretrain(make_cfg("finetune", *SMALL, f"backbone={backbone}"))
    assert find_pretrained(out, pre, {"features": {}, "relations": []}) is None  # another schema


def test_checkpoint_of_another_backbone_is_refused(make_cfg, tmp_path):
    run(make_cfg("pretrain", *SMALL, "backbone=gin", "trainer.max_epochs=1"), tmp_path / "gin")
    with pytest.raises(AuxrunError, match="holds a gin encoder"):
        run(make_cfg("finetune", *SMALL, "backbone=gcn", f"pretrained={tmp_path / 'gin'}"), tmp_path / "ft")


def test_pretrain_without_auxiliary_tasks_is_refused(make_cfg, tmp_path):
    with pytest.raises(AuxrunError, match="needs auxiliary tasks"):
        run(make_cfg("pretrain", "aux=none"), tmp_path)


def variant(cfg, key: str, value):
    """A copy of ``cfg`` with the dotted ``key`` set to ``value``."""
    copy = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    OmegaConf.update(copy, key, value, force_add=True)
    return copy


def test_auto_finds_only_an_encoder_pretrained_as_this_run_would_pretrain(make_cfg, tmp_path):
    """P&F cells never share one seed's encoder, nor one pre-trained on other tasks or with
    other settings (Table 2's pre-training learning rate); keys that never change numbers may
    differ."""
    out = tmp_path / "outputs"
    pre = _compose_pretrain(make_cfg("finetune", *SMALL))
    schema = run(variant(pre, "paths.outputs", str(out)), out / "pre")["data_schema"]
    assert find_pretrained(out, pre, schema) == out / "pre"
    for key, value in (("threads", 2), ("paths.cache", str(tmp_path / "elsewhere")), ("trainer.progress", True)):
        assert find_pretrained(out, variant(pre, key, value), schema) == out / "pre", key
    first_task = next(iter(pre.aux.tasks))
    for key, value in (("seed", 1), ("aux.name", "gpt"), (f"aux.tasks.{first_task}.loss_scale", 5),
                       ("trainer.lr", 0.003), ("trainer.max_epochs", 7), ("backbone.hidden", 16)):
        assert find_pretrained(out, variant(pre, key, value), schema) is None, key


def test_auto_says_which_keys_kept_the_closest_encoder_from_being_used(make_cfg, tmp_path, capsys):
    out = tmp_path / "outputs"
    run(make_cfg("pretrain", *SMALL, f"paths.outputs={out}"), out / "mine")  # trainer=fast, not trainer=pretrain
    result = run(make_cfg("finetune", *SMALL, f"paths.outputs={out}"), out / "ft")
    assert result["pretrained"] != str(out / "mine") and "pretrain/auto" in result["pretrained"]
    said = "".join(capsys.readouterr().err.split())  # rich folds long lines, paths too
    assert "".join(f"The closest pretrain run there, {out / 'mine'}, differs".split()) in said
    assert "trainer.max_epochs" in said and "pretrained=PATHusesitanyway" in said


def test_an_experiments_pretrain_overrides_reach_the_automatic_pretraining(make_cfg):
    cfg = make_cfg("finetune", "experiment=table2", "dataset=synthetic")
    pre = _compose_pretrain(cfg)
    assert pre.command == "pretrain" and pre.aux.name == "gpt" and float(pre.trainer.lr) == 0.001
    assert int(pre.trainer.batch_size) == 256


def test_table4s_loss_scales_reach_pretraining(make_cfg):
    cfg = make_cfg("finetune", "experiment=table4", "dataset=synthetic", "loss_scales.edge=5")
    assert (cfg.aux.tasks.edge.loss_scale, cfg.aux.tasks.attr.loss_scale) == (5, 1)
    pre = _compose_pretrain(cfg)
    assert (pre.aux.tasks.edge.loss_scale, pre.aux.tasks.attr.loss_scale) == (5, 1) and float(pre.trainer.lr) == 0.001


def test_the_automatic_pretraining_folder_is_one_per_pretraining_config(make_cfg, tmp_path):
    """pretrained=auto pre-trains in a folder named by its config: a rerun after an interruption
    finds (and resumes) the same one, parallel jobs share it, and any change that alters the
    pre-training's numbers gets a folder of its own; progress bars and threads do not."""
    from auxrun.train.commands import _compose_pretrain, auto_pretrain_dir

    def folder(*overrides):
        return auto_pretrain_dir(tmp_path, _compose_pretrain(make_cfg("finetune", "dataset=synthetic", *overrides)))

    base = folder()
    assert base.parent == tmp_path / "pretrain" / "auto" and base.name.startswith("synthetic-gcn-seed0-")
    assert folder() == base == folder("trainer.progress=true", "threads=1", "weighting=none")
    others = [folder("seed=1"), folder("backbone=gin"), folder("+pretrain_overrides=['trainer.lr=0.01']"),
              folder("dataset.homophily=0.9")]
    assert len({base, *others}) == 5


def test_a_job_whose_encoder_is_not_its_finished_siblings_file_stops_before_it_trains(make_cfg, tmp_path, monkeypatch):
    """In a sweep, the finished jobs of one dataset, backbone, seed and ``pretrained`` setting
    all loaded one file; a job that loads another stops with both files named, before its first
    step and without a result. Jobs of another seed or setting are not its pairs, nor unfinished
    ones; outside a sweep nothing is checked."""
    import auxrun.data as datasets
    import auxrun.train.runner as runner
    from auxrun.models import build_encoder
    from auxrun.report.results import write_result
    from auxrun.train.pretrained import save_encoder

    sweep, encoder = tmp_path / "sweep", tmp_path / "encoder.pt"
    cfg = make_cfg("finetune", *SMALL, f"pretrained={encoder}")  # seed 0
    schema = datasets.load(cfg.dataset, 0, None).schema()
    save_encoder(encoder, build_encoder(cfg.backbone, schema), cfg.backbone, schema)
    digest = hashlib.sha256(encoder.read_bytes()).hexdigest()
    sibling = {"status": "completed", "command": "finetune", "dataset": "synthetic", "backbone": "gcn", "seed": 0,
               "aux": "x", "weighting": "none", "metrics": {"test": {}}, "config": {"pretrained": str(encoder)},
               "pretrained": str(encoder), "pretrained_sha256": "a" * 64}
    write_result(sweep / "0_other_seed", {**sibling, "seed": 1})
    write_result(sweep / "1_other_setting", {**sibling, "config": {"pretrained": "auto"}})
    write_result(sweep / "2_unfinished", {**sibling, "status": "failed"})
    write_result(sweep / "3_same_file", {**sibling, "pretrained_sha256": digest})

    class Trains(Exception):
        """The job reached its training loop."""

    def fit(job, trainer, run_dir, *rest):
        raise Trains(run_dir)

    monkeypatch.setattr(runner, "fit", fit)
    monkeypatch.setattr(runner, "current_sweep_dir", lambda: sweep)
    with pytest.raises(Trains):  # no finished pair that loaded another file
        run(cfg, sweep / "4_job")
    write_result(sweep / "5_pair", sibling)
    with pytest.raises(AuxrunError) as err:
        run(cfg, sweep / "6_job")
    said = " ".join(str(err.value).split())
    assert f"(SHA-256 {digest[:12]}), is not the file that finished jobs of this sweep on synthetic/gcn seed 0 " \
           f"(pretrained={encoder}) started from ({'a' * 12}, in {encoder}; {sweep / '5_pair'})" in said
    assert not (sweep / "6_job" / "result.json").exists()
    monkeypatch.setattr(runner, "current_sweep_dir", lambda: None)  # a single run
    with pytest.raises(Trains):
        run(cfg, tmp_path / "single")


@pytest.mark.slow
def test_a_sweep_job_that_would_start_from_another_encoder_is_refused(tmp_path):
    """``pretrained=auto``'s encoder made again between two launches of one sweep, and not the
    same file (another machine, other library releases: here its weights nudged by hand): the
    relaunched job stops before it trains instead of pairing with runs that started elsewhere;
    ``rerun=true`` runs the sweep again from the new file."""
    out, sweep = tmp_path / "outputs", tmp_path / "sweep"
    args = ["finetune", "-m", "weighting=none,fixed", "seed=0", "trainer.max_epochs=2", "trainer.progress=false",
            "trainer.checkpoint=false", f"paths.outputs={out}", f"hydra.sweep.dir={sweep}"]
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    runs = {read_result(p.parent)["weighting"]: p.parent for p in sweep.glob("*/result.json")}
    old = read_result(runs["none"])["pretrained_sha256"]
    assert read_result(runs["fixed"])["pretrained_sha256"] == old
    (encoder,) = out.rglob(FILENAME)
    saved = torch.load(encoder, weights_only=True)
    first_weight = next(k for k, v in saved["state_dict"].items() if v.is_floating_point())
    saved["state_dict"][first_weight] += 1e-3
    torch.save(saved, encoder)
    new = hashlib.sha256(encoder.read_bytes()).hexdigest()
    (runs["fixed"] / "result.json").unlink()  # the job still to run when the sweep is launched again

    again = run_cli(*args, cwd=tmp_path)
    said = " ".join(again.stderr.split())
    assert again.returncode != 0
    assert f"SHA-256 {new[:12]}), is not the file that finished jobs of this sweep on synthetic/gcn seed 0 " \
           f"(pretrained=auto) started from ({old[:12]}" in said, said[-3000:]
    assert read_result(runs["fixed"])["status"] == "failed" and "rerun=true" in said
    assert read_result(runs["none"])["pretrained_sha256"] == old  # the finished job is left as it was

    fresh = run_cli(*args, "rerun=true", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert {read_result(p)["pretrained_sha256"] for p in runs.values()} == {new}
    assert {read_result(p)["status"] for p in runs.values()} == {"completed"}
