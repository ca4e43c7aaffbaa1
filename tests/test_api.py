"""The Python API as a notebook uses it: compose and run from Python, read the runs as a
DataFrame, compare a filtered part of them, and get the same table the CLI prints."""

from __future__ import annotations

import pytest

import auxrun
from auxrun.errors import AuxrunError
from conftest import run_cli

FAST = ["dataset=synthetic", "trainer.max_epochs=2", "trainer.progress=false"]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Four runs started from Python: weighting none and fixed, seeds 0 and 1."""
    root = tmp_path_factory.mktemp("outputs")
    for weighting in ("none", "fixed"):
        for seed in (0, 1):
            cfg = auxrun.compose("mtl", [*FAST, f"weighting={weighting}", f"seed={seed}"])
            result = auxrun.run(cfg, root / f"{weighting}_s{seed}")
            assert result["status"] == "completed"
    return root


def test_runs_are_one_row_each_with_the_config_flattened_and_the_metrics(outputs):
    df = auxrun.runs(outputs)
    assert len(df) == 4 and set(df.status) == {"completed"}
    assert sorted(zip(df["config.weighting.name"], df.seed)) == [("fixed", 0), ("fixed", 1), ("none", 0), ("none", 1)]
    metric = df.primary_metric.iloc[0]
    assert all(0 <= v <= 1 for v in df[f"test.{metric}"]) and f"val.{metric}" in df
    assert (df["config.trainer.max_epochs"] == 2).all() and list(df.columns[:3]) == ["run_dir", "status", "command"]


def test_compare_of_the_dataframe_is_the_clis_comparison_and_a_filter_compares_a_part(outputs):
    df = auxrun.runs(outputs)
    c = auxrun.compare(df)
    assert c.rows == ["none", "fixed"] and set(c.cells.n) == {2}
    metric = df.primary_metric.iloc[0]
    fixed = df[df.weighting == "fixed"][f"test.{metric}"]
    assert float(c.cells.set_index("row").at["fixed", "mean"]) == pytest.approx(fixed.mean())
    tests = auxrun.tests(c)
    assert list(tests.row) == ["fixed"] and int(tests.n.iloc[0]) == 2 and tests.baseline.iloc[0] == "none"
    part = auxrun.compare(df[df.seed == 0])
    assert set(part.cells.n) == {1}
    cli = run_cli("compare", "--outputs", str(outputs), "--format", "csv")
    assert cli.returncode == 0, cli.stderr[-1000:]
    assert auxrun.table(auxrun.compare(outputs), fmt="csv").strip() == cli.stdout.strip()
    assert "| fixed |" in auxrun.table(c, "strategies", "md")


def test_a_finished_run_is_not_run_again_from_python_either(outputs):
    cfg = auxrun.compose("mtl", [*FAST, "weighting=none", "seed=0"])
    before = auxrun.runs(outputs)
    again = auxrun.run(cfg, outputs / "none_s0")
    assert again["finished_at"] == before[before.run_dir == str(outputs / "none_s0")]["result"].iloc[0]["finished_at"]


@pytest.mark.parametrize(("overrides", "message"), [
    (["weighting=nope"], "unknown weighting 'nope'; available: arml"),
    (["trainer.lr=-1"], "trainer.lr=-1"),
    (["trainer.max_epoch=3"], "unknown key trainer.max_epoch"),
    (["weighting=none,fixed"], "lists several values, which only a sweep runs: `auxrun mtl -m weighting=none,fixed"),
])
def test_compose_refuses_what_the_cli_refuses_with_its_message(overrides, message):
    with pytest.raises(AuxrunError, match=message):
        auxrun.compose("mtl", overrides)
    cli = run_cli("mtl", *overrides)
    assert cli.returncode == 2 and " ".join(cli.stderr.split()).count(message.replace("\\", "")[:20]) == 1


@pytest.mark.parametrize(("command", "overrides", "read"), [
    ("mtl", ["~aux.tasks.noise"], lambda c: list(c.aux.tasks) == ["helpful", "harmful"]),  # drops a task
    ("mtl", ["+aux.tasks.again.kind=planted", "+aux.tasks.again.relation=noise"],
     lambda c: list(c.aux.tasks)[-1] == "again" and c.aux.tasks.again.relation == "noise"),
    ("mtl", ["++seed=3"], lambda c: c.seed == 3),  # ++ on a key the config has: a plain override
    ("mtl", ["++trainer.grad_clip=1"], lambda c: c.trainer.grad_clip == 1),
    ("mtl", ["+weighting.weights.helpful=0.5"], lambda c: c.weighting.weights.helpful == 0.5),
    ("mtl", ["weighting=jd", "weighting.aggregator=cagrad", "+weighting.options.c=0.4"],
     lambda c: c.weighting.options.c == 0.4),
    ("mtl", ["+trainer.search.batch_size={choices:[16,32]}", "~trainer.search.lr"],
     lambda c: list(c.trainer.search) == ["weight_decay", "batch_size"]),
    ("finetune", ['+pretrain_overrides=["trainer.lr=0.01"]'],
     lambda c: list(c.pretrain_overrides) == ["trainer.lr=0.01"]),
    ("mtl", ["~experiment"], lambda c: c.command == "mtl"),
])
def test_keys_a_user_may_add_or_remove_compose_to_what_they_say(command, overrides, read):
    """The other side of the refusals of added and removed keys (test_bad_input): what lies in
    the mappings whose entries are the user's, keys the config has (``++``), and the root keys an
    experiment declares are taken as given."""
    assert read(auxrun.compose(command, overrides))


def test_empty_and_missing_outputs(tmp_path):
    with pytest.raises(AuxrunError, match="does not exist"):
        auxrun.runs(tmp_path / "nowhere")
    empty = auxrun.runs(tmp_path)
    assert len(empty) == 0 and list(empty.columns[:2]) == ["run_dir", "status"]
    with pytest.raises(AuxrunError, match="no finished runs"):
        auxrun.compare(empty)


def test_the_api_refuses_what_it_would_misread(tmp_path, monkeypatch):
    """One string of overrides was read one character at a time; a plain dict ended in an
    AttributeError inside the run; an empty folder name ran in the working folder."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AuxrunError, match=r"overrides: a list of strings \(\['seed=1'\]\), not one string"):
        auxrun.compose("mtl", "seed=1")
    with pytest.raises(AuxrunError, match="run\\(\\) takes the config that compose\\(\\) returns, not dict"):
        auxrun.run({"command": "mtl"}, tmp_path / "r")
    with pytest.raises(AuxrunError, match="run_dir='': an empty folder name"):
        auxrun.run(auxrun.compose("mtl", ["trainer.max_epochs=1"]), "")
    assert [p.name for p in tmp_path.iterdir()] == ["outputs"]  # compose() checks that paths.outputs can be made
