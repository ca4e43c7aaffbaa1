"""The figures ``compare --plots DIR`` writes, each as PNG and PDF named by its content.

From each run's per-epoch validation history (``result.json``: ``val_history``, read once by
:func:`~auxrun.report.compare.collect`) and its
``trace.csv`` (per step and task: loss, weight, cosine), averaged over the seeds of a cell:

* ``val_<metric>_per_epoch__<column>``: the target's validation metric per epoch, one line per
  strategy (the AUX-TS paper's Fig. 3, negative transfer shows as a line below ``none``);
* ``weight_and_loss_per_step__<row>__<column>``: each task's mean weight and loss per step
  (Fig. 4; Fig. 6 where the runs rescale an auxiliary loss with ``loss_scale``);
* ``cosine_per_step__<row>__<column>``: each auxiliary task's gradient cosine with the target
  per step, for the strategies that compute one; ``cosine_mtl_vs_pf__<row>__<dataset>_<gnn>``
  sets MTL's panel beside P&F's where both were run (Fig. 5);
* ``weights_under_loss_scales__<strategy>__<column>``: each task's mean weight per step, one
  panel per pair of auxiliary loss scales, where a strategy ran with several (Fig. 6);
* ``bars__<metric>``: one group of bars per column, one bar per strategy, mean with the
  standard deviation over seeds as error bar.

Steps are smoothed with a moving average over ``window`` steps so a curve reads at a glance.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from ..run_folder import TRACE, TRACE_FIELDS
from .compare import Comparison, rescaled
from .results import is_number


def _slug(text: str, limit: int = 80) -> str:
    """A file-name part for ``text``; a long one is cut and keeps a hash of the whole, so two
    labels that differ only past the cut never share a file."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")
    if len(slug) <= limit:
        return slug
    return f"{slug[:limit - 9]}_{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def _save(fig, out: Path, stem: str) -> list[Path]:
    paths = []
    for ext in ("png", "pdf"):
        path = out / f"{stem}.{ext}"
        fig.savefig(path, bbox_inches="tight", dpi=120)
        paths.append(path)
    return paths


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


log = logging.getLogger(__name__)


def _trace(run_dir: str) -> pd.DataFrame | None:
    """The run's ``trace.csv``, or the ``trace.csv.gz`` a shipped record may hold instead;
    ``None`` where there is none or it has no rows, or (with a warning naming the file) where it
    is not a table of :data:`~auxrun.run_folder.TRACE_FIELDS` with numbers in every column but
    ``task``."""
    path = next((p for p in (Path(run_dir) / n for n in (TRACE, f"{TRACE}.gz")) if p.is_file()), None)
    if path is None:
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, EOFError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        log.warning("no per-step figure from %s: not a readable CSV (%s)", path, " ".join(str(exc).split())[:120])
        return None
    if frame.empty:
        return None
    missing = [c for c in TRACE_FIELDS if c not in frame]
    text = [c for c in TRACE_FIELDS if c != "task" and c in frame and not pd.api.types.is_numeric_dtype(frame[c])]
    if missing or text:
        why = f"no column {', '.join(missing)}" if missing else f"text in column {', '.join(text)}"
        log.warning("no per-step figure from %s: %s (a trace has the columns %s)", path, why, ", ".join(TRACE_FIELDS))
        return None
    return frame


Reader = Callable[[str], pd.DataFrame | None]


def _mean_trace(run_dirs: Iterable[str], read: Reader) -> pd.DataFrame | None:
    """The runs' traces (each from ``read``, :func:`_trace` once per run) averaged over seeds,
    indexed by (task, step); ``None`` without any."""
    traces = [t for t in map(read, run_dirs) if t is not None]
    if not traces:
        return None
    return pd.concat(traces).groupby(["task", "step"])[["loss", "weight", "cos"]].mean()


def _panels(plt, n: int, title: str):
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.6), sharey=True, squeeze=False, layout="constrained")
    fig.suptitle(title, fontsize=10)
    return fig, list(axes[0])


def _cosine_panel(ax, trace: pd.DataFrame, window: int, title: str) -> None:
    cos = trace.cos.dropna()
    for task in [t for t in dict.fromkeys(cos.index.get_level_values(0)) if t != "target"]:
        ax.plot(cos.loc[task].rolling(window, min_periods=1).mean(), label=task)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set(xlabel="step", ylabel="cos(g_target, g_aux)", title=title)
    ax.legend(fontsize=8)


def _paired_figures(c: Comparison, done: pd.DataFrame, out: Path, window: int, read: Reader) -> list[Path]:
    """Fig. 5 (MTL beside P&F) and Fig. 6 (one panel per pair of loss scales)."""
    plt = _plt()
    written: list[Path] = []
    for (row, scales, dataset, backbone), mine in done.groupby(["row_unscaled", "loss_scales", "dataset", "backbone"],
                                                                sort=False):
        by_scheme = {s: _mean_trace(part.run_dir, read) for s, part in mine.groupby("scheme")}
        pair = [(s, t) for s, t in ((s, by_scheme.get(s)) for s in ("mtl", "finetune"))
                if t is not None and t.cos.notna().any()]
        if len(pair) == 2:
            scaled = rescaled(scales)
            fig, axes = _panels(plt, 2, f"{row}: {dataset} / {backbone}" + (f", loss scales {scales}" if scaled
                                                                            else "") + ", gradient cosine with the target")
            for ax, (scheme, trace) in zip(axes, pair):
                _cosine_panel(ax, trace, window, "MTL" if scheme == "mtl" else "P&F")
            written += _save(fig, out, f"cosine_mtl_vs_pf__{_slug(row)}__{_slug(dataset)}_{_slug(backbone)}"
                                       + (f"__{_slug(scales)}" if scaled else ""))
            plt.close(fig)
    for (strategy, column), mine in done.groupby(["row_unscaled", "column"], sort=False):
        scales = sorted(set(mine.loss_scales))
        traces = {sc: _mean_trace(mine[mine.loss_scales == sc].run_dir, read) for sc in scales}
        traces = {sc: t for sc, t in traces.items() if t is not None and t.index.get_level_values(0).nunique() > 1}
        if len(traces) < 2:  # one scale, or the target alone (none): nothing to compare
            continue
        fig, axes = _panels(plt, len(traces), f"{strategy}: {column}, mean weight per step under rescaled losses")
        for ax, (sc, trace) in zip(axes, traces.items()):
            for task in dict.fromkeys(trace.index.get_level_values(0)):
                ax.plot(trace.loc[task].weight.rolling(window, min_periods=1).mean(), label=task)
            ax.set(xlabel="step", ylabel="mean weight", title=f"loss scales {sc}")
            ax.legend(fontsize=8)
        written += _save(fig, out, f"weights_under_loss_scales__{_slug(strategy)}__{_slug(column)}")
        plt.close(fig)
    return written


def write_figures(c: Comparison, out: Path, window: int = 20) -> list[Path]:
    """Every figure of the module docstring that the runs have data for; returns the files."""
    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    assert c.runs is not None
    done = c.runs[c.runs.status == "completed"]
    metrics = dict(zip(c.cells.column, c.cells.metric))
    read: Reader = functools.cache(_trace)  # each run's trace read (and any warning about it said) once per call
    written: list[Path] = []
    for column in c.columns:
        mine = done[done.column == column]
        metric = metrics[column]
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn = False
        for row in [r for r in c.rows if r in set(mine.row)]:
            frames = [pd.DataFrame(h) for h in mine[mine.row == row].history]
            frames = [f for f in frames if metric in f]
            if not frames:
                continue
            curve = pd.concat(frames).groupby("epoch")[metric].mean()
            ax.plot(curve.index + 1, curve.values, label=row, linestyle="--" if row == "none" else "-")
            drawn = True
        if drawn:
            ax.set(xlabel="epoch", ylabel=f"validation {metric}", title=column)
            ax.legend(fontsize=8)
            written += _save(fig, out, f"val_{metric}_per_epoch__{_slug(column)}")
        plt.close(fig)
        for row in [r for r in c.rows if r in set(mine.row)]:
            trace = _mean_trace(mine[mine.row == row].run_dir, read)
            if trace is None:
                continue
            tasks = list(dict.fromkeys(trace.index.get_level_values(0)))
            fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
            for task in tasks:
                t = trace.loc[task].rolling(window, min_periods=1).mean()
                top.plot(t.index, t.weight, label=task)
                bottom.plot(t.index, t.loss, label=task)
            top.set(ylabel="mean weight", title=f"{row}: {column}")
            bottom.set(xlabel="step", ylabel="loss")
            top.legend(fontsize=8)
            written += _save(fig, out, f"weight_and_loss_per_step__{_slug(row)}__{_slug(column)}")
            plt.close(fig)
            if trace.cos.notna().any():
                fig, ax = plt.subplots(figsize=(7, 3.5))
                _cosine_panel(ax, trace, window, f"{row}: {column}")
                written += _save(fig, out, f"cosine_per_step__{_slug(row)}__{_slug(column)}")
                plt.close(fig)
    written += _paired_figures(c, done, out, window, read)
    for metric, cells in c.cells[c.cells.n > 0].groupby("metric"):
        columns = list(dict.fromkeys(cells.column))
        rows = [r for r in c.rows if r in set(cells.row)]
        fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(columns) * len(rows) / 3), 4))
        width = 0.8 / max(1, len(rows))
        for i, row in enumerate(rows):
            at = cells[cells.row == row].set_index("column")
            xs = [j + i * width for j, col in enumerate(columns) if col in at.index]
            ax.bar(xs, [at.at[col, "mean"] for col in columns if col in at.index], width,
                   yerr=[at.at[col, "std"] for col in columns if col in at.index], capsize=3, label=row)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(columns))], columns, rotation=20, ha="right", fontsize=7)
        ax.set(ylabel=f"test {metric}", title=f"{metric}: mean ± std over seeds")
        ax.legend(fontsize=8)
        written += _save(fig, out, f"bars__{_slug(metric)}")
        plt.close(fig)
    return written


def _tuning_problem(summary: object) -> str | None:
    """What makes a parsed ``tuning.json`` unfit for the tuning figure, or ``None``: it must map
    ``strategies`` to ``{strategy: {"trials": [{"state": text, "value": number or null}, ...]}}``."""
    strategies = summary.get("strategies") if isinstance(summary, dict) else None
    if not isinstance(strategies, dict):
        return "no mapping of strategies"
    for name, record in strategies.items():
        trials = record.get("trials") if isinstance(record, dict) else None
        if not isinstance(trials, list) or not all(
                isinstance(t, dict) and isinstance(t.get("state"), str) and "value" in t
                and (t["value"] is None or is_number(t["value"]))
                for t in trials):
            return f"strategy {name}'s trials are not a list of {{state: text, value: number or null}}"
    return None


def tuning_figures(outputs: Path, out: Path) -> list[Path]:
    """``auxrun tune``'s history, when ``outputs`` holds its ``tuning.json``: the best validation
    score so far against the trial, one line per strategy (every strategy had the same number
    of trials; a pruned or failed trial keeps the line flat). A file that cannot be read, or
    does not have that shape (:func:`_tuning_problem`), gives no figure and a warning naming it."""
    import json
    import math

    from ..tuning.study import TUNING

    path = Path(outputs) / TUNING
    if not path.is_file():
        return []
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("no tuning figure from %s: not readable JSON (%s)", path, exc)
        return []
    if (why := _tuning_problem(summary)) is not None:
        log.warning("no tuning figure from %s: %s", path, why)
        return []
    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, record in summary["strategies"].items():
        best, curve = -math.inf, []
        for trial in record["trials"]:
            if trial["state"] == "complete" and trial["value"] is not None:
                best = max(best, float(trial["value"]))
            curve.append(best if math.isfinite(best) else math.nan)
        ax.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=strategy)
    ax.set(xlabel="trial", ylabel="best validation score so far",
           title=f"auxrun tune: {summary.get('trials', '?')} trials per strategy")
    ax.legend(fontsize=7)
    written = _save(fig, out, "tuning_history")
    plt.close(fig)
    return written
