"""``make bench`` (part): how fast a sweep runs, and what a step costs on the real Last-FM.

**Sweep throughput.** The same job (a fixed number of epochs, no early stopping; seeds differ)
is timed three ways, wall clock of whole ``auxrun`` commands:

* ``one``: a single job with ``threads=1`` (one job's time on one core, ``t_1``);
* ``sweep``: ``N`` jobs (``N`` = the cores) as one joblib sweep with ``threads=auto``, which
  gives each job ``cores // N`` threads (``T_N``);
* ``oversubscribed``: the same sweep with every job asking for every core
  (``threads=<cores>``), what parallel jobs did before they shared the cores.

Target: ``T_N <= 1.2 * N * t_1 / cores``. Measured on the planted ``synthetic`` data and,
when its files are in ``data/lastfm``, on the real Last-FM.

**Real-data step times.** ``none``, ``fixed``, ``selar`` and ``auxts`` on the real Last-FM
(GCN, the five meta-path tasks, K = 5), all built in one process and stepped in turn, the
order rotating every step, so a slow phase of the machine slows all of them alike; the
median step of each and its ratio to ``fixed``. Target: AUX-TS at most ``(K + 2) x fixed``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .atomic import write_json
from .threads import available_cores

LASTFM = Path("data/lastfm")
JOBS = {  # a job of fixed length per dataset (patience 0: every epoch runs)
    "synthetic": ["dataset=synthetic", "weighting=auxts", "trainer.max_epochs=30", "trainer.patience=0"],
    "lastfm": ["dataset=lastfm", "weighting=auxts", "trainer.max_epochs=4", "trainer.patience=0"],
}
STEP_CONFIGS = ("none", "fixed", "selar", "auxts")


def _auxrun(args: list[str], cwd: Path) -> float:
    """Wall seconds of ``auxrun ARGS`` (one command, its jobs included)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "auxrun", *args, "trainer.progress=false", "trainer.checkpoint=false"],
                          cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"auxrun {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def sweep_throughput(dataset: str, cores: int, work: Path) -> dict:
    """``one``, ``sweep`` and ``oversubscribed`` wall times of :data:`JOBS` ``[dataset]``."""
    job = JOBS[dataset]
    common = [f"paths.outputs={work / 'outputs'}", f"paths.data={Path.cwd() / 'data'}"]
    seeds = ",".join(str(s) for s in range(cores))
    sweep = ["-m", f"seed={seeds}", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={cores}"]
    _auxrun(["mtl", *job, *common, "trainer.max_epochs=1", f"hydra.run.dir={work / 'warm'}"], work)  # builds caches
    one = _auxrun(["mtl", *job, *common, "threads=1", f"hydra.run.dir={work / 'one'}"], work)
    shared = _auxrun(["mtl", *sweep, *job, *common, f"hydra.sweep.dir={work / 'sweep'}"], work)
    over = _auxrun(["mtl", *sweep, *job, *common, f"threads={cores}", f"hydra.sweep.dir={work / 'over'}"], work)
    bound = 1.2 * cores * one / cores
    return {"jobs": cores, "cores": cores, "job": job, "one_job_one_core_s": one, "sweep_s": shared,
            "oversubscribed_s": over, "bound_s": bound, "sweep_over_bound": shared / bound,
            "oversubscribed_over_sweep": over / shared, "target_met": shared <= bound}


def step_ratios(steps: int, warmup: int, device: str) -> dict:
    """Median step of each of :data:`STEP_CONFIGS` on the real Last-FM, stepped in turn in one
    process, and the ratios to ``fixed``."""
    from hydra import compose, initialize_config_module

    from .bench import synchronize
    from .train.multitask import setup, train_step
    from .train.commands import task_parts

    runs = {}
    for name in STEP_CONFIGS:
        with initialize_config_module("auxrun.conf", version_base="1.3"):
            cfg = compose("mtl", overrides=["dataset=lastfm", f"weighting={name}", f"device={device}",
                                            "trainer.progress=false", "paths.cache=null"])
        p = task_parts(cfg)
        _, ctx, optimizer = setup(p.data, p.encoder, p.target, p.aux, p.strategy, cfg.trainer, p.gen)
        ctx.model.train()
        runs[name] = (p, ctx, optimizer, int(cfg.trainer.batch_size))
    times: dict[str, list[float]] = {n: [] for n in runs}
    names = list(runs)
    for i in range(warmup + steps):
        for name in names[i % len(names):] + names[:i % len(names)]:
            p, ctx, optimizer, batch = runs[name]
            synchronize(p.device)
            t0 = time.perf_counter()
            train_step(ctx, optimizer, p.target.sample(batch, p.gen), p.gen, i)
            synchronize(p.device)
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    med = {n: statistics.median(v) for n, v in times.items()}
    k = len(runs["auxts"][0].aux)
    ratio = med["auxts"] / med["fixed"]
    return {"k": k, "step_s": med, "ratio_to_fixed": {n: med[n] / med["fixed"] for n in med},
            "auxts_bound": k + 2, "target_met": ratio <= k + 2}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m auxrun.throughput", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/throughput.json")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--datasets", nargs="*", default=list(JOBS), choices=list(JOBS))
    args = ap.parse_args(argv)
    from rich.console import Console

    from .environment import device_name

    console = Console()
    cores = available_cores()
    have_lastfm = (LASTFM / "user_artists.dat").is_file() or (LASTFM / "ratings_final.txt").is_file()
    out: dict = {"cores": cores, "device_name": device_name(args.device), "sweeps": {}}
    for dataset in args.datasets:
        if dataset == "lastfm" and not have_lastfm:
            console.print("sweep throughput on lastfm: skipped (no files in data/lastfm: auxrun data download lastfm)")
            continue
        console.print(f"sweep throughput on {dataset}: one job, {cores} jobs sharing the cores, {cores} jobs "
                      "each on every core")
        with tempfile.TemporaryDirectory() as tmp:
            out["sweeps"][dataset] = row = sweep_throughput(dataset, cores, Path(tmp))
        console.print(f"  one job on one core {row['one_job_one_core_s']:.1f} s; {cores} jobs sharing "
                      f"{row['sweep_s']:.1f} s (bound {row['bound_s']:.1f} s: {'met' if row['target_met'] else 'MISSED'}); "
                      f"each on every core {row['oversubscribed_s']:.1f} s ({row['oversubscribed_over_sweep']:.2f}x)")
    if have_lastfm:
        console.print(f"step times on the real Last-FM ({', '.join(STEP_CONFIGS)}), in turn in one process")
        out["lastfm_steps"] = s = step_ratios(args.steps, args.warmup, args.device)
        console.print("  " + ", ".join(f"{n} {1000 * v:.0f} ms ({s['ratio_to_fixed'][n]:.2f}x fixed)"
                                       for n, v in s["step_s"].items())
                      + f"; auxts <= {s['auxts_bound']}x fixed: {'met' if s['target_met'] else 'MISSED'}")
    else:
        console.print("step times on the real Last-FM: skipped (no files in data/lastfm)")
    write_json(args.out, out)
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
