"""``auxrun tune``: every strategy of a comparison gets the same tuning budget, on validation only.

For each strategy ``s`` of ``weighting=a,b,...``:

1. **Search.** An Optuna study (TPE sampler seeded with the tuning seed, median pruner) draws
   ``trials`` configurations from ``s``'s search space (:mod:`auxrun.tuning.space`: the shared
   ``trainer.search`` and the strategy's ``weighting.search``). Each trial is an ordinary run
   in ``OUT/trials/s/trial_NNN`` (resumable, a ``result.json`` like every run) at the tuning
   seed; its objective is the run's **best validation score** (``best_score``: the primary
   validation metric, negated where lower is better), the number model selection already uses.
   The pruner sees the validation score after every epoch and stops a trial that is below the
   median of earlier trials at the same epoch (status ``pruned``). Test metrics are never read.
   Every strategy gets exactly ``trials`` finished trials (completed, pruned or diverged alike).
2. **Final runs.** The best trial's configuration runs on ``seeds`` fresh seeds (the tuning seed
   + 1, + 2, ...) in ``OUT/final/tuned/s/seed_K`` with ``trainer.tuned_trials`` set to the
   budget, and the strategy's defaults on the same seeds in ``OUT/final/default/s/seed_K``, so
   that ``auxrun compare --outputs OUT/final`` sets the tuned rows (labelled with the chosen
   values and the trial count) beside the default ones. ``OUT/final/tuning.json`` records each
   strategy's space, trials and best configuration (the report draws it).

Each strategy's study lives in its own SQLite file, ``OUT/studies/s.db``: a tuning that stops
(a signal, a lost machine) resumes with the same command. A trial that was running when it
stopped is retried with the same parameters in the same folder, so its run resumes from its
checkpoint; finished trials and final runs are not run again. ``jobs > 1`` tunes that many
strategies at once in separate processes (joblib), each with its share of the cores
(``threads``).

**Stopping** (on this machine: the strategies one after another, or in joblib workers). The
command is a sweep of its own (:class:`auxrun.train.resume.SweepSignals`, the shared folder of
:mod:`auxrun.sweep`): the first SIGINT or SIGTERM, to the command alone or to every process of
the terminal (Ctrl-C), stops each running trial or final run after its step with its checkpoint,
no run starts after it (:func:`_stop_point`), and ``auxrun tune`` exits with ``128 + signal``
and says how to resume. A worker returns its stop instead of raising it, so that joblib does
not kill the other workers while they write their checkpoints.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..errors import AuxrunError

TUNING = "tuning.json"  # below OUT/final: what the report's tuning figure reads
PRUNE_STARTUP = 3  # trials that run to the end before the pruner compares anything
PRUNE_WARMUP = 2  # epochs of every trial that are never pruned


@dataclass(frozen=True)
class Plan:
    """What one ``auxrun tune`` call does (module docstring)."""

    command: str
    base: tuple[str, ...]  # overrides every run shares (the strategies' list left out)
    strategies: tuple[str, ...]
    trials: int
    seeds: int
    out: Path
    tune_seed: int = 0
    jobs: int = 1
    launcher: str = "joblib"  # joblib | local | slurm (module docstring)
    cluster: tuple[tuple[str, Any], ...] = ()  # submitit's parameters (slurm_partition, timeout_min, ...)
    threads: int | None = None  # threads per run; None: the cores over jobs

    @property
    def final_seeds(self) -> list[int]:
        return [self.tune_seed + k for k in range(1, self.seeds + 1)]


@dataclass
class Outcome:
    """One strategy's tuning: its space, the trials it took and the best one."""

    strategy: str
    space: list[str]
    trials: list[dict[str, Any]] = field(default_factory=list)  # number, state, value, params, folder
    best: dict[str, Any] | None = None  # params of the best completed trial
    best_value: float | None = None


def _storage(plan: Plan, strategy: str) -> str:
    folder = plan.out / "studies"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / f'{strategy}.db'}"


def _study(plan: Plan, strategy: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=strategy, storage=_storage(plan, strategy), load_if_exists=True, direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=plan.tune_seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNE_STARTUP, n_warmup_steps=PRUNE_WARMUP))


def _compose(plan: Plan, extra: list[str]):
    from ..api import compose

    threads = [f"threads={plan.threads}"] if plan.threads else \
        [f"threads={max(1, (os.cpu_count() or 1) // plan.jobs)}"] if plan.jobs > 1 else []
    return compose(plan.command, [*plan.base, *threads, *extra])


def _observer(trial: Any):
    def observe(epoch: int, score: float) -> bool:
        if not math.isfinite(score):
            return False
        trial.report(score, epoch)
        return bool(trial.should_prune())
    return observe


def tune_strategy(plan: Plan, strategy: str) -> Outcome:
    """Run (or resume) the search of one strategy; its outcome."""
    from optuna.trial import TrialState

    from ..api import run
    from ..train.loop import EPOCH_OBSERVER
    from .space import overrides, space_of, suggest

    own = [f"weighting={strategy}", f"seed={plan.tune_seed}"]
    cfg = _compose(plan, own)
    dims = space_of(cfg)
    study = _study(plan, strategy)
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # stopped mid-run: retry
        study.tell(stale.number, state=TrialState.FAIL)
        study.enqueue_trial(stale.params, user_attrs={"folder": stale.user_attrs.get("folder", "")})

    def counted() -> int:
        return sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("counted"))

    while counted() < plan.trials:
        _stop_point(f"weighting={strategy}: its trial {counted() + 1} of {plan.trials}")
        trial = study.ask()
        values = suggest(trial, dims)
        name = trial.user_attrs.get("folder") or f"trial_{trial.number:03d}"
        trial.set_user_attr("folder", name)
        job_cfg = _compose(plan, [*own, *overrides(dims, values, cfg)])
        folder = plan.out / "trials" / strategy / name
        token = EPOCH_OBSERVER.set(_observer(trial))
        try:
            result = run(job_cfg, folder)
        except AuxrunError:
            trial.set_user_attr("counted", True)
            study.tell(trial, state=TrialState.FAIL)
            raise
        finally:
            EPOCH_OBSERVER.reset(token)
        trial.set_user_attr("counted", True)
        trial.set_user_attr("status", result["status"])
        if result["status"] == "completed" and math.isfinite(float(result.get("best_score", -math.inf))):
            study.tell(trial, float(result["best_score"]))
        elif result["status"] == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        else:  # diverged, or no finite validation score: a spent trial that found nothing
            study.tell(trial, state=TrialState.FAIL)
    return _outcome(study, strategy, dims)


def _outcome(study: Any, strategy: str, dims: list) -> Outcome:
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("counted")]
    outcome = Outcome(strategy, [d.describe() for d in dims])
    outcome.trials = [{"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params,
                       "folder": t.user_attrs.get("folder")} for t in done]
    complete = [t for t in done if t.state == TrialState.COMPLETE]
    if complete:
        best = max(complete, key=lambda t: (t.value, -t.number))
        outcome.best, outcome.best_value = dict(best.params), float(best.value)
    return outcome


def final_runs(plan: Plan, outcome: Outcome) -> list[dict[str, Any]]:
    """The best configuration and the defaults of one strategy on the fresh seeds."""
    from ..api import run
    from .space import overrides, space_of

    if outcome.best is None:
        raise AuxrunError(f"weighting={outcome.strategy}: none of its {plan.trials} trials completed with a "
                          f"finite validation score (see {plan.out / 'trials' / outcome.strategy})")
    results = []
    for seed in plan.final_seeds:
        _stop_point(f"weighting={outcome.strategy}: its final runs on seed {seed}")
        default = _compose(plan, [f"weighting={outcome.strategy}", f"seed={seed}"])
        dims = [d for d in space_of(default) if d.key in outcome.best]
        tuned = _compose(plan, [f"weighting={outcome.strategy}", f"seed={seed}", *overrides(dims, outcome.best, default),
                                f"trainer.tuned_trials={plan.trials}"])
        for kind, cfg in (("default", default), ("tuned", tuned)):
            results.append(run(cfg, plan.out / "final" / kind / outcome.strategy / f"seed_{seed}"))
    return results


def _stop_point(what: str) -> None:
    """Raise :class:`~auxrun.train.resume.Interrupted` instead of starting ``what`` when the
    tuning is stopping (:func:`~auxrun.train.resume.stop_signal`: a signal this process noted,
    or the one the command recorded for all its processes)."""
    import signal

    from ..train.resume import Interrupted, stop_signal

    signum = stop_signal()
    if signum is not None:
        raise Interrupted(signum, f"{what} did not start: stopped by {signal.Signals(signum).name}")


def _strategy_job(plan: Plan, strategy: str) -> Outcome:
    """One strategy, search and final runs: what a submitit job does, or this process."""
    outcome = tune_strategy(plan, strategy)
    final_runs(plan, outcome)
    return outcome


def _joblib_job(plan: Plan, strategy: str) -> Any:
    """:func:`_strategy_job` in a joblib worker, which handles a stop signal from here on; its
    :class:`Outcome`, or the :class:`~auxrun.train.resume.Interrupted` that stopped it, returned
    rather than raised (a raised one makes joblib kill the workers still finishing their step)."""
    from ..train.resume import Interrupted, SweepSignals

    SweepSignals.in_worker()
    try:
        return _strategy_job(plan, strategy)
    except Interrupted as exc:
        return exc


def _here(plan: Plan) -> list[Outcome]:
    """The strategies on this machine: one after another in this process, or ``plan.jobs`` at
    once in joblib workers; a stop signal ends the tuning as the module docstring says."""
    from .. import sweep
    from ..train.resume import Interrupted, SweepSignals

    parallel = plan.jobs > 1 and len(plan.strategies) > 1
    with sweep.shared(), SweepSignals(shield=parallel):  # shield: workers hold a Ctrl-C until they can take it
        if not parallel:
            return [_strategy_job(plan, s) for s in plan.strategies]
        from joblib import Parallel, delayed

        done = Parallel(n_jobs=min(plan.jobs, len(plan.strategies)), backend="loky")(
            delayed(_joblib_job)(plan, s) for s in plan.strategies)
    stops = [d for d in done if isinstance(d, Interrupted)]
    if stops:
        raise Interrupted(stops[0].signum, "\n".join(str(s) for s in stops))
    return done


def _submitit(plan: Plan) -> list[Outcome]:
    """One submitit job per strategy (an array, at most ``plan.jobs`` at once); waits for all."""
    import submitit

    from .. import slurm

    if plan.launcher == "slurm":
        slurm.check("--launcher slurm", "--launcher joblib (the strategies in processes on this machine)")
    executor = submitit.AutoExecutor(folder=plan.out / "submitit" / "%j", cluster=plan.launcher)
    settings = dict(plan.cluster)
    if plan.launcher == "slurm":
        settings.setdefault("slurm_array_parallelism", plan.jobs)
    executor.update_parameters(name="auxrun-tune", **settings)
    jobs = executor.map_array(_strategy_job, [plan] * len(plan.strategies), list(plan.strategies))
    outcomes = []
    for strategy, job in zip(plan.strategies, jobs):
        try:
            outcomes.append(job.result())
        except Exception as exc:  # noqa: BLE001 - a failed job's error, named with its strategy and logs
            text = str(exc).strip().splitlines()
            raise AuxrunError(f"weighting={strategy}: its {plan.launcher} job {job.job_id} failed "
                              f"({text[-1] if text else type(exc).__name__}); its logs are in "
                              f"{plan.out / 'submitit' / str(job.job_id)}") from None
    return outcomes


def tune(plan: Plan) -> list[Outcome]:
    """Tune every strategy of ``plan`` (in parallel with ``plan.jobs``), run the finals, and
    write ``OUT/final/tuning.json`` (each strategy's space, trials and best configuration)."""
    outcomes = _submitit(plan) if plan.launcher in ("local", "slurm") else _here(plan)
    summary = {"command": plan.command, "base": list(plan.base), "trials": plan.trials, "tune_seed": plan.tune_seed,
               "final_seeds": plan.final_seeds, "selection": "best validation score of each trial (test never read)",
               "strategies": {o.strategy: {"space": o.space, "best": o.best, "best_value": o.best_value,
                                           "trials": o.trials} for o in outcomes}}
    write_text(plan.out / "final" / TUNING, json.dumps(summary, indent=2, default=str))
    return list(outcomes)
