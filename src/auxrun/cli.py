"""The ``auxrun`` command line.

``pretrain``, ``finetune``, ``mtl`` and ``zeroshot`` hand everything after the command name to Hydra:
``GROUP=OPTION`` and ``key=value`` overrides, ``-m/--multirun`` sweeps, launchers
(``hydra/launcher=joblib``, ``hydra/launcher=submitit_local``), ``hydra.run.dir=DIR``,
``--cfg job`` and the rest of Hydra's flags. ``compare`` reads finished runs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any, NoReturn

import typer
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.markup import escape

from . import boundary, sweep
from .configs import CONF_DIR, group_options
from .overrides import check_flags, check_group_overrides, is_multirun, is_sweep, precompose, split_args
from .errors import AuxrunError, FolderInUse
from .report import layouts

err = Console(stderr=True)
out = Console()
app = typer.Typer(add_completion=True, no_args_is_help=True, rich_markup_mode="markdown",
                  help="auxrun: auxiliary-task transfer learning on graph neural networks.")


def groups_help(command: str) -> str:
    """The config groups, their options and this command's defaults, for ``--help``."""
    defaults: dict[str, str] = {}
    for item in OmegaConf.load(CONF_DIR / f"{command}.yaml").get("defaults", []):
        if isinstance(item, DictConfig) or isinstance(item, dict):
            defaults.update({str(k): str(v) for k, v in item.items()})
    lines = ["**Config groups** (choose with GROUP=OPTION):", ""]
    for group in sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and not p.name.startswith("_")):
        options = group_options(group)
        lines.append(f"- **{group}**: {', '.join(options)} (default: {defaults.get(group, '-')})")
    lines += ["", "Set any key with key=value (e.g. trainer.max_epochs=20 seed=3). "
              "Sweep with -m, e.g. -m weighting=none,fixed seed=0,1,2. "
              "Show the composed config with --cfg job."]
    return "\n".join(lines)


def _job(cfg: DictConfig) -> None:
    """Hydra task function: one run in Hydra's output folder. Whatever stops the run becomes
    one line (:mod:`auxrun.boundary`); a single run then exits with its code, a sweep's job
    records its failure and lets the other jobs run."""
    import time

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .train.resume import Interrupted, SweepSignals, stop_signal
    from .train.runner import run_command

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    here = multirun and str(HydraConfig.get().launcher._target_) in LOCAL_LAUNCHERS.values()
    if here:  # a joblib worker keeps the sweep's stop between its jobs
        SweepSignals.in_worker()
        if stop_signal() is not None:  # the sweep is stopping: this job does not start
            return
    start = time.time()
    try:
        result = run_command(cfg, run_dir)
    except Interrupted as exc:
        err.print(f"[bold yellow]interrupted:[/] {escape(str(exc))}", soft_wrap=True)
        err.print(f"resume it with: {escape(resume_command(cfg, run_dir))}", soft_wrap=True)
        if multirun:
            err.print(f"or the whole sweep: relaunch it with hydra.sweep.dir={escape(str(HydraConfig.get().sweep.dir))} "
                      "(finished jobs are skipped)", soft_wrap=True)
        if here:  # not an exit, which in a joblib worker makes joblib kill the jobs still finishing their step
            return
        exit_stopped(exc.exit_code)
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once
        err.print("[bold yellow]interrupted[/] at once (second Ctrl-C): the last epoch's checkpoint is kept")
        exit_stopped(130)
    except Exception as exc:
        if boundary.debug() and not isinstance(exc, AuxrunError):
            raise
        message, code = boundary.describe(exc, run_dir)
        if (multirun or not isinstance(exc, AuxrunError)) and not isinstance(exc, FolderInUse):
            boundary.record_failure(cfg, run_dir, exc, start)  # a single run's bad input is its one line only,
            # and a folder another process runs is that one's to write
        err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
        if not multirun:
            sys.exit(code)
        sweep.note_failure(run_dir, message, code)
        return
    if result["status"] == "diverged":
        err.print(f"[bold yellow]diverged:[/] {escape(str(result.get('message', '')))}", soft_wrap=True)
        if not multirun:  # a sweep goes on past a diverged run
            sys.exit(boundary.EXIT_DIVERGED)


def exit_stopped(code: int) -> NoReturn:
    """End a command that a signal stopped, with ``code``, once it has said so. A further
    Ctrl-C changes nothing from here on: everything is written, and in the interpreter's exit
    (joblib joining its worker processes) it would only print a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


def resume_command(cfg: DictConfig, run_dir: Path) -> str:
    """The command that continues the run of ``cfg`` in ``run_dir`` from its checkpoint: the
    job's own overrides (a sweep job's values, not the sweep's lists) and its folder."""
    import shlex

    from hydra.core.hydra_config import HydraConfig

    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("hydra.run.dir=")]
    return " ".join(["auxrun", str(cfg.command), *(shlex.quote(o) for o in overrides),
                     shlex.quote(f"hydra.run.dir={run_dir}")])


SHOWN = 10  # compare: skipped runs listed per status on the terminal


# hydra/launcher= options (none given: basic) whose sweeps run their jobs on this machine, in the
# launcher's own process or in joblib's workers, and Hydra's classes of them: a signal stops the
# whole sweep (auxrun.train.resume.SweepSignals)
LOCAL_LAUNCHERS = {"basic": "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
                   "joblib": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}


def launcher_option(args: list[str]) -> str | None:
    """The ``hydra/launcher=`` option of the command line (``None``: Hydra's basic launcher)."""
    return next((a.split("=", 1)[1] for a in args if a.lstrip("+~").startswith("hydra/launcher=")), None)


def check_launcher(args: list[str]) -> None:
    """``hydra/launcher=slurm`` submits with ``sbatch``: off a cluster, or with no controller
    answering, one line saying so (:func:`auxrun.slurm.check`; submitit would fail deep inside
    the sweep)."""
    from . import slurm

    if launcher_option(args) == "slurm" and "--cfg" not in args and "-c" not in args:
        slurm.check("hydra/launcher=slurm", "hydra/launcher=joblib (parallel jobs on this machine)")


def check_single_job(command: str, args: list[str]) -> None:
    """Without ``-m``, an experiment that sweeps keys runs one job only when every swept key is
    given one value; else one line saying to add ``-m`` (Hydra would run its defaults, one
    job, in silence)."""
    from .configs import sweep_params

    if any(a in ("-m", "--multirun", "--cfg", "-c", "--info", "-i") for a in args):
        return
    given = {a.split("=", 1)[0].lstrip("+~"): a.split("=", 1)[1] for a in args if "=" in a and not a.startswith("-")}
    experiment = given.get("experiment")
    swept = sweep_params("experiment", experiment) if experiment else {}
    missing = [k for k in swept if k not in given and k != "command"]  # the command is the one typed
    if missing:
        jobs = math.prod(len(v.split(",")) for v in swept.values())
        raise AuxrunError(f"experiment={experiment} is a sweep of {jobs} jobs ({'; '.join(f'{k}={v}' for k, v in swept.items())}): "
                          f"run it with `auxrun {command} -m experiment={experiment}`, or run one of its jobs by giving "
                          f"{', '.join(f'{k}=...' for k in missing)}")


def _hydra(command: str, args: list[str]) -> None:
    import hydra

    from .train.resume import SweepSignals, stop_signal

    check_flags(command, args)
    check_group_overrides(args)
    modes = [a for a in args if a in ("-m", "--multirun", "--cfg", "-c", "--info", "-i", "--run", "-r")]
    # (--shell-completion, Hydra's fifth mode, is refused by check_flags above)
    if len({m.lstrip("-")[0] for m in modes}) > 1:  # Hydra would raise a ValueError with a traceback
        raise AuxrunError(f"{' and '.join(modes)} cannot be combined: use one of --multirun, --cfg, --info")
    check_single_job(command, args)
    check_launcher(args)
    precompose(command, args)
    sys.argv = [f"auxrun-{command}", *(a for part in split_args(args) for a in part)]
    here = is_multirun(args) and (launcher_option(args) or "basic") in LOCAL_LAUNCHERS
    with sweep.shared():  # the sweep's jobs, in any worker process, note failures there and read the stop
        # joblib's workers start inside the launcher: they hold a Ctrl-C until they can take it (shield)
        with SweepSignals(shield=launcher_option(args) == "joblib") if here else contextlib.nullcontext():
            hydra.main(version_base="1.3", config_path="conf", config_name=command)(_job)()
            stopped = stop_signal() if here else None
        failed = sweep.failures()
    if failed:
        err.print(f"[bold red]{len(failed)} job(s) of the sweep failed or were not run[/] (a failed one records "
                  "status: failed in its result.json; relaunching the sweep runs them again and skips the finished "
                  "ones):", soft_wrap=True)
        for _, folder, message in failed:
            err.print(f"  {escape(folder)}: {escape(message)}", soft_wrap=True)
    if stopped is not None:
        err.print(f"[bold yellow]sweep stopped[/] by {signal.Signals(stopped).name}: run the same command again to "
                  "finish it (finished jobs are skipped, interrupted ones resume from their checkpoint)", soft_wrap=True)
        exit_stopped(128 + stopped)
    if failed:
        sys.exit(max(code for code, _, _ in failed))


RUN = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["--help"]}


@app.command(context_settings=RUN, epilog=groups_help("pretrain"))
def pretrain(ctx: typer.Context) -> None:
    """Pre-train the shared encoder on auxiliary (self-supervised) tasks only; saves encoder.pt."""
    _hydra("pretrain", ctx.args)


@app.command(context_settings=RUN, epilog=groups_help("finetune"))
def finetune(ctx: typer.Context) -> None:
    """Fine-tune a pre-trained encoder (pretrained=PATH|auto) on the target with auxiliary tasks."""
    _hydra("finetune", ctx.args)


@app.command(context_settings=RUN, epilog=groups_help("mtl"))
def mtl(ctx: typer.Context) -> None:
    """Multi-task learning: target and auxiliary tasks from a random initialisation."""
    _hydra("mtl", ctx.args)


@app.command(context_settings=RUN, epilog=groups_help("zeroshot"))
def zeroshot(ctx: typer.Context) -> None:
    """Zero-shot transfer: train on a labelled source node type, test on a target type (transfer=ktn|...)."""
    _hydra("zeroshot", ctx.args)


TUNE_EPILOG = ("Example: auxrun tune mtl weighting=none,fixed,auxts aux=mixed --trials 10 --seeds 3 --out "
               "outputs/tune/planted. Each strategy's search space is its config's weighting.search plus the "
               "shared trainer.search (see the docs' config reference); every strategy gets the same number of "
               "trials, scored on validation only; then its best configuration and its defaults run on fresh "
               "seeds under OUT/final, which auxrun compare --outputs OUT/final compares.")


@app.command(context_settings=RUN, epilog=TUNE_EPILOG)
def tune(
    ctx: typer.Context,
    command: str = typer.Argument(..., help="the run command whose strategies are tuned: mtl or finetune"),
    trials: int = typer.Option(20, "--trials", min=1, max=100_000, help="finished trials per strategy (the same "
                               "budget for each; a pruned or diverged trial counts)"),
    seeds: int = typer.Option(3, "--seeds", min=1, max=1000, help="fresh seeds for each strategy's best configuration "
                              "and its defaults"),
    out: Path = typer.Option(Path("outputs/tune"), "--out", help="the tuning's folder: studies/ (SQLite, resumable), "
                             "trials/, final/"),
    jobs: int = typer.Option(1, "--jobs", min=1, max=256, help="strategies tuned at once, each in its own process "
                             "with its share of the cores"),
    tune_seed: int = typer.Option(0, "--tune-seed", min=0, max=2**32 - 1 - 1000, help="the seed of every trial and "
                                  "of the sampler; the final runs take the next --seeds seeds"),
    launcher: str = typer.Option("joblib", "--launcher", help="joblib: strategies in processes here | slurm: one "
                                 "SLURM job per strategy (submitit) | local: the same jobs run here by submitit"),
    partition: str | None = typer.Option(None, "--partition", help="slurm: the partition"),
    time_min: int = typer.Option(240, "--time-min", min=1, max=60 * 24 * 30, help="slurm/local: minutes per job"),
    gpus: int = typer.Option(0, "--gpus", min=0, max=64, help="slurm: GPUs per job"),
    cpus: int = typer.Option(2, "--cpus", min=1, max=1024, help="slurm/local: CPUs per job (and threads per run)"),
) -> None:
    """Tune every strategy of weighting=a,b,... with the same budget on validation, then test the winners."""
    from .schema import check_folder
    from .tuning.study import Plan
    from .tuning.study import tune as run_tuning

    if command not in ("mtl", "finetune"):
        raise AuxrunError(f"auxrun tune tunes the weighting strategies of mtl or finetune, not {command!r}")
    args = list(ctx.args)
    if any(a.startswith("-") for a in args):
        raise AuxrunError(f"{next(a for a in args if a.startswith('-'))}: auxrun tune takes overrides and its own "
                          "options (--trials, --seeds, --out, --jobs, --tune-seed); it runs its trials itself, "
                          "without Hydra's -m or launchers")
    picked = [a for a in args if a.split("=", 1)[0] == "weighting"]
    if len(picked) != 1:
        raise AuxrunError("name the strategies to tune once, as weighting=a,b,... (e.g. weighting=none,fixed,auxts)")
    if "(" in picked[0]:  # Hydra's range(), glob(), choice(), ...: the strategies are named one by one here
        raise AuxrunError(f"{picked[0]}: auxrun tune takes the strategies as a list, weighting=a,b,...")
    strategies = tuple(dict.fromkeys(s for s in picked[0].split("=", 1)[1].split(",") if s))
    base = tuple(a for a in args if a not in picked)
    check_group_overrides([*base, picked[0]])
    swept = next((a for a in base if is_sweep(a)), None)
    if swept is not None:
        raise AuxrunError(f"{swept}: auxrun tune sweeps the strategies only; give every other key one value")
    check_folder("--out", out)
    if launcher not in ("joblib", "local", "slurm"):
        raise AuxrunError(f"--launcher {launcher}: use joblib, local or slurm")
    cluster: dict[str, Any] = {"timeout_min": time_min, "cpus_per_task": cpus}
    if launcher == "slurm":
        cluster |= {"slurm_partition": partition, "gpus_per_node": gpus} if partition else {"gpus_per_node": gpus}
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    plan = Plan(command, base, strategies, trials, seeds, out, tune_seed, jobs, launcher,
                tuple(cluster.items()) if launcher != "joblib" else (), cpus if launcher != "joblib" else None)
    from .train.resume import Interrupted  # torch: only once the options are checked

    try:
        outcomes = run_tuning(plan)
    except (Interrupted, KeyboardInterrupt) as exc:  # KeyboardInterrupt: at once (a second Ctrl-C here)
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        how = "" if isinstance(exc, Interrupted) else " at once: the runs keep their last epoch's checkpoint"
        err.print(f"[bold yellow]tuning stopped[/] by {signal.Signals(signum).name}{how}", soft_wrap=True)
        if isinstance(exc, Interrupted):
            err.print(escape(str(exc)), soft_wrap=True)
        if launcher == "slurm":  # submitit's jobs are not this process's: stopping to wait cancels none
            err.print("the submitted jobs go on: `squeue --name auxrun-tune` lists them, `scancel --name auxrun-tune` "
                      f"ends them; their logs are in {escape(str(out / 'submitit'))}. Once none runs:", soft_wrap=True)
        err.print(f"run the same command again to finish it (finished trials and final runs are kept, an "
                  f"interrupted one resumes from its checkpoint; the studies are in {escape(str(out / 'studies'))})",
                  soft_wrap=True)
        exit_stopped(128 + signum)
    for o in outcomes:
        states = ", ".join(f"{n} {s}" for s, n in sorted(Counter(t["state"] for t in o.trials).items()))
        best = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in (o.best or {}).items())
        err.print(f"[bold]{o.strategy}[/]: {len(o.trials)} trials ({states}); best validation score "
                  f"{o.best_value:.4f} with {escape(best) or 'no searched key'}", soft_wrap=True)
    compare(outputs=out / "final", fmt="rich", split="test", layout="strategies", stats=True, plots=None,
            report=None)


@app.command()
def compare(
    outputs: Path = typer.Option(Path("outputs"), "--outputs", "-o", help="folder searched for result.json files"),
    fmt: str = typer.Option("rich", "--format", "-f", help="rich | md | csv | latex | html"),
    split: str = typer.Option("test", "--split", help="test | val"),
    layout: str = typer.Option("strategies", "--layout", "-l", help=layouts.help_text()),
    stats: bool = typer.Option(True, "--stats/--no-stats",
                               help="after the table: each cell's paired test against none (direct for zeroshot) "
                                    "and the strategies' Friedman / Nemenyi ranking (not with --format csv)"),
    plots: Path | None = typer.Option(None, "--plots", help="write figures here, PNG and PDF: validation metric per "
                                      "epoch, weights / losses / cosines per step, bars per metric, the "
                                      "critical-difference diagram"),
    report: Path | None = typer.Option(None, "--report", help="write DIR/report.md and a self-contained "
                                       "DIR/report.html (tables, statistics, figures embedded; figures also in "
                                       "DIR/figures as PNG and PDF)"),
) -> None:
    """Table of every finished run below --outputs: mean ± std over seeds, Avg. Gain vs none.

    Runs are grouped by their whole resolved config (minus seed, paths and other keys that do
    not change results): runs of different configurations never share a cell, and rows or
    columns that differ are labelled with the keys that differ."""
    from .report.compare import compare as build
    from .report.render import FORMATS, render, render_extra, render_stats

    if fmt not in FORMATS:
        raise AuxrunError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if layout != layouts.AUTO:
        layouts.get(layout)  # an unknown name: one message listing the layouts
    if split not in ("test", "val"):
        raise AuxrunError(f"unknown split {split!r}; use test or val")
    from .schema import check_folder

    for flag, folder in (("--plots", plots), ("--report", report)):  # before anything prints
        if folder is not None:
            check_folder(flag, folder)
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    result = build(outputs, split)
    fits = layouts.auto(result)
    if layout != layouts.AUTO and layouts.get(layout).fits is not None and layout != fits:
        raise AuxrunError(f"--layout {layout} is for {layouts.get(layout).needs}; the runs under {outputs} call for "
                          f"--layout {fits} (--layout strategies fits any runs)")
    for status, n in result.skipped.items():
        err.print(f"[yellow]skipped {n} {status} run(s):[/]", soft_wrap=True)
        mine = [(folder, why) for s, folder, why in result.unfinished if s == status]
        for folder, why in mine[:SHOWN]:
            err.print(f"  {escape(folder)}: {escape(why)}", soft_wrap=True)
        if len(mine) > SHOWN:
            err.print(f"  and {len(mine) - SHOWN} more (--report lists them all)", soft_wrap=True)
    if layout == layouts.AUTO:
        layout = fits
        err.print(f"layout: {layout}")
    tables = [render(result, fmt, layout)]
    if fmt != "csv":
        tables.append(render_extra(result, fmt, layout))
    if stats and fmt != "csv":
        tables.append(render_stats(result, fmt))
    for table in tables:
        if isinstance(table, str):
            print(table + ("\n" if len([t for t in tables if t is not None]) > 1 else ""))
        elif table is not None:
            out.print(table)
    if plots is not None:
        from .report.figures import write_figures
        from .report.stats import plot_cd, ranking

        written = [str(p) for p in write_figures(result, plots)]
        rank = ranking(result)
        written += plot_cd(rank, str(plots / "critical_difference"))
        err.print(f"wrote {len(written)} figure files to {plots}", soft_wrap=True)
        if rank.result is None:
            err.print(f"no critical-difference diagram: {rank.reason}")
    if report is not None:
        from .report.document import write_report

        made = write_report(result, report, layout, split, outputs)
        err.print(f"wrote {made.markdown} and {made.html} ({len(made.figures)} figure files in "
                  f"{report / 'figures'})", soft_wrap=True)


data_app = typer.Typer(no_args_is_help=True, help="Datasets: where each comes from, and fetching the published files.")
app.add_typer(data_app, name="data")
ROOT_HELP = "folder that holds one folder per dataset (the runs' paths.data)"


@data_app.command("list")
def data_list(root: Path = typer.Option(Path("data"), "--root", help=ROOT_HELP)) -> None:
    """Every dataset=option: how auxrun gets it, whether it is here, where it comes from, its licence."""
    from rich.markup import escape

    from .data.download import needed, present
    from .data.sources import SOURCES

    how = {"download": "auxrun data download {name}", "manual": "by hand", "package": "installed package {package}",
           "generated": "made by auxrun"}
    for name in group_options("dataset"):
        src = SOURCES.get(name)
        if src is None:
            out.print(f"[bold]{name}[/]: no entry in auxrun.data.sources")
            continue
        here = present(name, root / name)
        where = f" in {root / name}" if src.kind in ("download", "manual") else ""
        state = "[green]here[/]" if here else "[yellow]not here[/]"
        out.print(f"[bold]{name}[/]: {escape(how[src.kind].format(name=name, package=src.package))}; "
                  f"{state}{escape(where)}", soft_wrap=True)
        out.print(f"  from {escape(src.origin)}", soft_wrap=True)
        out.print(f"  licence: {escape(src.licence)}", soft_wrap=True)
        if src.kind == "manual":
            out.print(f"  {escape(src.how)}: {escape(', '.join(needed(src)))} into {escape(str(root / name))}",
                      soft_wrap=True)


@data_app.command("download")
def data_download(
    name: str = typer.Argument(..., help="a dataset=option with published files to fetch (`auxrun data list` says how "
                              "each one comes: e.g. lastfm, bookcrossing, reddit, ogbn_mag, and MoleculeNet's bbbp, "
                              "bace, clintox, sider, tox21, toxcast, hiv, muv)"),
    root: Path = typer.Option(Path("data"), "--root", help=ROOT_HELP),
    retries: int = typer.Option(3, "--retries", min=0, max=20, help="further attempts after a failed transfer"),
    mirror: str | None = typer.Option(None, "--mirror", help="fetch the files from this URL (a folder holding "
                                      "them under their published names) instead; the checksums stay the same"),
) -> None:
    """Fetch a dataset's published files into ROOT/NAME (checksums verified, nothing partial kept)."""
    from .data.download import download

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = download(name, root / name, retries=retries, mirror=mirror,
                     progress=err.is_terminal)  # a bar in a pipe or log repeats itself line after line
    err.print(f"{name}: {len(paths)} file(s) in {root / name}; runs with dataset={name} read them "
              f"(dataset.data_dir defaults to paths.data/{name})", soft_wrap=True)


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="let tracebacks through instead of one line "
                                        f"(the same as {boundary.DEBUG_ENV}=1)")) -> None:
    """auxrun: auxiliary-task transfer learning on graph neural networks."""
    if debug:
        os.environ[boundary.DEBUG_ENV] = "1"  # inherited by a sweep's worker processes


def main() -> None:
    """Console-script entry point and the last resort of :mod:`auxrun.boundary`: whatever
    escapes a command is one line and an exit code (2 bad input, 1 anything else)."""
    try:
        app(standalone_mode=True)
    except Exception as exc:
        if boundary.debug() and not isinstance(exc, AuxrunError):
            raise
        message, code = boundary.describe(exc, None)
        err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
        raise SystemExit(code) from None
