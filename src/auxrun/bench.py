"""``make bench``: time per training step and peak memory of each weighting strategy, as
ratios to ``fixed``, on the synthetic benchmark preset with K = 2 and K = 5 auxiliary tasks.

Each (strategy, K) is measured in a fresh process, so peak-memory readings do not leak
between configurations: on CUDA the peak of ``torch.cuda.max_memory_allocated`` during the
steps minus the memory held before them. On CPU the process runs with
``MALLOC_MMAP_THRESHOLD_=65536``, so every tensor-sized block is mapped on allocation and
returned on free and the resident set tracks live memory; a thread samples the resident set
(``/proc/self/statm``) every 0.2 ms during the steps, and the peak minus the level before the
steps is what the steps needed beyond data and model.
Time per step is the median over the timed steps, after warm-up steps, of exactly what the
engine does per step (sampling, forward, the strategy's backward, optimiser step); timing runs
in interleaved rounds over all configurations and the median over rounds is reported, since
a shared or virtual machine has slow phases lasting seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import os
import statistics
import subprocess
import sys
import threading
import time

import torch
from omegaconf import OmegaConf

from .anchors import ANCHORS, AnchorStep
from .atomic import write_json
from .environment import device_name

AUX_SETS = {
    2: {"helpful": {"kind": "planted", "relation": "helpful"},
        "harmful": {"kind": "planted", "relation": "harmful"}},
    5: {"helpful": {"kind": "planted", "relation": "helpful"},
        "noise": {"kind": "planted", "relation": "noise"},
        "harmful": {"kind": "planted", "relation": "harmful"},
        "uiu": {"kind": "metapath", "path": "user-item-user"},
        "edge_rates": {"kind": "edge_gen", "relation": "user-rates-item"}},
}
STRATEGIES = {
    "none": ["weighting=none"],
    "fixed": ["weighting=fixed"],
    "cosine": ["weighting=cosine"],
    "selar": ["weighting=selar"],
    "auxts": ["weighting=auxts"],  # the default route: meta_grad=auto
    "auxts_jvp": ["weighting=auxts", "weighting.meta_grad=jvp"],
    "auxts_unrolled": ["weighting=auxts", "weighting.meta_grad=unrolled"],
    "auxts_last_layer": ["weighting=auxts", "weighting.cos_params=last_layer"],
    "gcs": ["weighting=gcs"],
    "gns": ["weighting=gns"],
    "gcs_gns": ["weighting=gcs_gns"],
    "pcgrad": ["weighting=pcgrad"],
    "rcgrad": ["weighting=rcgrad"],
    "rcgrad_meta": ["weighting=rcgrad", "weighting.learn=meta"],
    "blo": ["weighting=blo", "weighting.adapt_every=1"],
    "blo_rcgrad": ["weighting=blo_rcgrad", "weighting.adapt_every=1"],
    "jd_upgrad": ["weighting=jd", "weighting.aggregator=upgrad"],
    "auxilearn": ["weighting=auxilearn", "weighting.adapt_every=1"],
    "arml": ["weighting=arml"],
    "auxinash": ["weighting=auxinash", "weighting.adapt_every=1"],
    "metabalance": ["weighting=metabalance"],
    "gradnorm": ["weighting=gradnorm"],
    **{f"scalarize_{k}": ["weighting=scalarize", f"weighting.scalarizer={k}"] for k in ("uw", "imtll", "dwa", "famo", "stch")},
    # the anchors' routes (auxrun.anchors), references for the auxrun/anchor ratios
    **ANCHORS,
}
# auxrun strategy -> the anchor whose route it is set against
ANCHORED = {"auxts": "anchor_auxts", "selar": "anchor_selar", "pcgrad": "anchor_pcgrad"}


class ResidentPeak:
    """Samples the process's resident set size in a background thread (torch ops release the
    GIL, so the sampler runs while they do)."""

    def __init__(self, interval_s: float = 2e-4) -> None:
        self.interval_s = interval_s
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def current(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(self.interval_s)

    def __enter__(self) -> "ResidentPeak":
        self.base = self.current()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def prepared_steps(overrides: list[str], aux_tasks: dict):
    """An ``mtl`` run's model, step builder and optimiser, ready for engine steps: the config
    composed with ``overrides`` and ``aux_tasks`` as its auxiliary tasks (in training mode).
    Returns ``(prepared, step context, optimiser, batch size)``."""
    from hydra import compose, initialize_config_module

    from .train.multitask import setup
    from .train.commands import task_parts

    with initialize_config_module("auxrun.conf", version_base="1.3"):
        cfg = compose("mtl", overrides=[*overrides, "trainer.progress=false"])
    cfg.aux.tasks = OmegaConf.create(aux_tasks)
    p = task_parts(cfg)
    assert p.target is not None
    _, ctx, optimizer = setup(p.data, p.encoder, p.target, p.aux, p.strategy, cfg.trainer, p.gen)
    ctx.model.train()
    return p, ctx, optimizer, int(cfg.trainer.batch_size)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work on ``device`` (call before reading a clock); nothing on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepPeak:
    """Peak memory of the steps inside the block beyond the level at its start, in MiB: on
    CUDA ``max_memory_allocated``; on CPU the resident set sampled by :class:`ResidentPeak`
    (``sample=False`` skips the sampler thread, e.g. while timing)."""

    def __init__(self, device: torch.device, sample: bool = True) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.rss = ResidentPeak() if sample and not self.cuda else None
        self.mib: float | None = None

    def __enter__(self) -> "StepPeak":
        if self.cuda:
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        elif self.rss is not None:
            self.rss.__enter__()
        return self

    def sync(self) -> None:
        """Wait for queued GPU work (call before reading a clock)."""
        synchronize(self.device)

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            self.mib = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        elif self.rss is not None:
            self.rss.__exit__(*exc)
            self.mib = (self.rss.peak - self.rss.base) / 2**20


def stepper(name: str, k: int, dataset: str, device: str, backbone: str = "gcn"):
    """``(prepared, step context, optimiser, one)``: ``one(i)`` runs engine step ``i`` of
    configuration ``name`` (an anchor's route for the ``anchor_*`` names)."""
    from .train.multitask import train_step

    p, ctx, optimizer, batch_size = prepared_steps(
        [*STRATEGIES[name], f"dataset={dataset}", f"backbone={backbone}", "aux=mixed", f"device={device}"], AUX_SETS[k])
    if name in ANCHORS:
        anchor = AnchorStep(name, ctx)

        def one(i: int) -> None:
            anchor(optimizer, p.target.sample(batch_size, p.gen), p.gen, i)
    else:
        def one(i: int) -> None:
            train_step(ctx, optimizer, p.target.sample(batch_size, p.gen), p.gen, i)
    return p, ctx, optimizer, batch_size, one


def measure(name: str, k: int, dataset: str, steps: int, warmup: int, device: str, backbone: str = "gcn",
            what: str = "time") -> dict:
    """Run ``warmup + steps`` engine steps of one configuration in this process, measuring
    ``what``: ``time`` (median seconds per step) or ``memory`` (peak MiB beyond the start)."""
    p, ctx, optimizer, batch_size, one = stepper(name, k, dataset, device, backbone)
    if what == "cosines":
        return cosine_agreement(p, ctx, optimizer, batch_size, warmup + steps)
    for i in range(warmup):
        one(i)
    times = []
    with StepPeak(p.device, sample=what == "memory") as peak:  # no sampler thread competing with timed steps
        for i in range(warmup, warmup + steps):
            t0 = time.perf_counter()
            one(i)
            peak.sync()
            times.append(time.perf_counter() - t0)
    if what == "time":
        return {"step_s": statistics.median(times), "device": str(p.device)}
    return {"peak_mib": peak.mib}


# (configuration, reference): timed step by step in alternation in one process
PAIRS = (("auxts", "fixed"), ("auxts_last_layer", "fixed"), ("auxts", "anchor_auxts"),
         ("auxts_last_layer", "anchor_auxts"), ("selar", "anchor_selar"), ("pcgrad", "anchor_pcgrad"))


def measure_pair(name: str, reference: str, k: int, dataset: str, steps: int, warmup: int, device: str,
                 backbone: str = "gcn") -> dict:
    """Both configurations built in this process, their steps alternating (the order flips
    every step), so a slow phase of the machine slows both alike: the median time of each
    and their ratio, the robust way to read a ratio on a shared machine."""
    a = stepper(name, k, dataset, device, backbone)
    b = stepper(reference, k, dataset, device, backbone)
    times: dict[str, list[float]] = {name: [], reference: []}
    for i in range(warmup + steps):
        order = [(name, a[4]), (reference, b[4])]
        for label, one in (order if i % 2 == 0 else order[::-1]):
            synchronize(a[0].device)
            t0 = time.perf_counter()
            one(i)
            synchronize(a[0].device)
            if i >= warmup:
                times[label].append(time.perf_counter() - t0)
    med = {label: statistics.median(v) for label, v in times.items()}
    return {"step_s": med[name], "reference_step_s": med[reference], "ratio": med[name] / med[reference]}


def cosine_agreement(p, ctx, optimizer, batch_size: int, steps: int) -> dict:
    """How closely the last layer's cosines (``cos_params=last_layer``) follow the exact ones
    over every shared parameter, along ``steps`` AUX-TS training steps."""
    from .weighting.base import Step

    exact, cheap = [], []
    for i in range(steps):
        step = ctx.step(p.target.sample(batch_size, p.gen), p.gen, i)
        exact.append(step.cosines("all").detach())
        last = Step(losses=step.losses, shared=step.shared, heads=step.heads, last_layer=step.last_layer)
        cheap.append(last.cosines("last_layer").detach())  # by its own backward passes, as training does
        optimizer.zero_grad(set_to_none=True)
        ctx.strategy.backward(step)
        optimizer.step()
    a, b = torch.stack(exact).flatten().double(), torch.stack(cheap).flatten().double()
    return {"pairs": len(a), "mean_abs_diff": float((a - b).abs().mean()), "max_abs_diff": float((a - b).abs().max()),
            "sign_agreement": float(((a > 0) == (b > 0)).double().mean()),
            "pearson": float(torch.corrcoef(torch.stack([a, b]))[0, 1])}


ROUTES = ("loop", "batched", "autogram")


def route_time(route: str, k: int, dataset: str, steps: int, warmup: int, device: str, backbone: str) -> dict:
    """Median seconds to get the Gram matrix ``G G^T`` of one step's task gradients (all an
    AUX-TS step's cosines need) by ``route``: ``loop`` / ``batched`` (``Step.task_grads``
    with ``trainer.task_grads``) or torchjd's ``autogram`` engine (its module hooks are
    installed before the step's forward pass; hence one process per route)."""
    p, ctx, optimizer, batch_size, _ = stepper("fixed", k, dataset, device, backbone)
    engine = None
    if route == "autogram":
        from torchjd.autogram import Engine

        engine = Engine(ctx.model.encoder, batch_dim=None)
    times = []
    for i in range(warmup + steps):
        step = ctx.step(p.target.sample(batch_size, p.gen), p.gen, i)
        step.grad_route = route
        synchronize(p.device)
        t0 = time.perf_counter()
        if engine is not None:
            engine.compute_gramian(torch.stack([v.mean() for v in step.losses.values()]))
        else:
            G = step.task_grads()
            G @ G.T
        synchronize(p.device)
        times.append(time.perf_counter() - t0)
        optimizer.zero_grad(set_to_none=True)
        ctx.strategy.backward(step)
        optimizer.step()
    return {"gram_s": statistics.median(times[warmup:])}


def _in_subprocess(name: str, k: int, what: str, args: argparse.Namespace) -> dict:
    """One measurement in a fresh process. Memory runs with every tensor-sized block
    mmapped, which slows allocation down too much to time in the same process."""
    steps, env = (args.steps, {}) if what != "memory" else (3, {"MALLOC_MMAP_THRESHOLD_": "65536"})
    extra = ["--reference", args.reference] if what == "pair" else []
    cmd = [sys.executable, "-m", "auxrun.bench", "--one", name, *extra, "--what", what, "--k", str(k),
           "--dataset", args.dataset, "--backbone", args.backbone, "--steps", str(steps),
           "--warmup", str(args.warmup), "--device", args.device]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, **env})
    if proc.returncode != 0:
        raise SystemExit(f"benchmark of {name} (K={k}, {what}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_all(args: argparse.Namespace, log) -> list[dict]:
    """Every (K, strategy): memory once, time in ``args.rounds`` interleaved rounds (each round
    visits every configuration, so a slow phase of the machine hits all of them alike); the
    reported time is the median over rounds of each round's median step time."""
    names = args.only or list(STRATEGIES)
    configs = [(k, name) for k in args.k for name in names]
    rows = {c: {"strategy": c[1], "k": c[0], "round_step_s": []} for c in configs}
    for r in range(args.rounds):
        for k, name in configs:
            log(f"round {r + 1}/{args.rounds}: timing {name} with K={k}")
            out = _in_subprocess(name, k, "time", args)
            rows[(k, name)]["round_step_s"].append(out["step_s"])
            rows[(k, name)]["device"] = out["device"]
    for k, name in configs:
        log(f"memory of {name} with K={k}")
        rows[(k, name)].update(_in_subprocess(name, k, "memory", args))
        rows[(k, name)]["step_s"] = statistics.median(rows[(k, name)]["round_step_s"])
    return list(rows.values())


def measure_pairs(args: argparse.Namespace, log) -> dict:
    """Every pair of :data:`PAIRS` (both measured, or ``--only`` names them), per K."""
    out: dict = {}
    for k in args.k:
        for name, reference in PAIRS:
            if args.only and not (name in args.only and reference in args.only):
                continue
            log(f"paired steps: {name} against {reference} with K={k}")
            sub = argparse.Namespace(**{**vars(args), "reference": reference})
            out.setdefault(f"K={k}", {})[f"{name}/{reference}"] = _in_subprocess(name, k, "pair", sub)
    return out


def measure_routes(args: argparse.Namespace, log) -> dict:
    """Per K, the time to the Gram matrix of the task gradients by each route (8 steps)."""
    out = {}
    for k in args.k:
        row = {}
        for route in ROUTES:
            log(f"per-task gradient route {route} with K={k}")
            row[route] = _in_subprocess(route, k, "route", argparse.Namespace(**{**vars(args), "steps": 8}))["gram_s"]
        row["fastest"] = min(ROUTES, key=lambda r: row[r])
        out[f"K={k}"] = row
    return out


def measure_cosines(args: argparse.Namespace, log) -> dict:
    """The last layer's cosines against the exact ones, per K (AUX-TS steps, 30 of them)."""
    out = {}
    for k in args.k:
        log(f"cosine agreement (last layer vs all shared parameters) with K={k}")
        out[f"K={k}"] = _in_subprocess("auxts", k, "cosines", argparse.Namespace(**{**vars(args), "steps": 30}))
    return out


def summarise(rows: list[dict], pairs: dict | None = None) -> dict:
    """Ratios to ``fixed`` (from the rounds) and auxrun/anchor ratios per K, and the targets
    checked: AUX-TS (its default route) at most 5x ``fixed`` at K = 5 on CPU (3x on a GPU)
    and at least 1.5x faster than the AUX-TS authors' intended route (``anchor_auxts``); the
    same for the opt-in ``cos_params=last_layer``; from the AUX-TS issue, ``jvp`` against
    ``unrolled``. A ratio comes from the paired measurement (:func:`measure_pair`) where
    there is one, else from the rounds."""
    out: dict = {}
    for k in sorted({r["k"] for r in rows}):
        by = {r["strategy"]: r for r in rows if r["k"] == k}
        paired = {key: v["ratio"] for key, v in (pairs or {}).get(f"K={k}", {}).items()}

        def ratio(name: str, reference: str) -> float | None:
            if f"{name}/{reference}" in paired:
                return paired[f"{name}/{reference}"]
            return by[name]["step_s"] / by[reference]["step_s"] if name in by and reference in by else None

        fixed = by["fixed"]
        ratios = {n: {"time": r["step_s"] / fixed["step_s"],
                      "memory": r["peak_mib"] / fixed["peak_mib"] if fixed["peak_mib"] > 0 else None}
                  for n, r in by.items()}
        summary: dict = {"ratios_to_fixed": ratios, "paired_ratios": paired, "targets": {}}
        summary["auxrun_over_anchor_time"] = {n: r for n, a in ANCHORED.items() if (r := ratio(n, a)) is not None}
        gpu = str(by.get("auxts", fixed).get("device", "cpu")).startswith("cuda")
        bound = 3 if gpu else 5
        for name, suffix in (("auxts", ""), ("auxts_last_layer", "_with_last_layer_cosines")):
            if (r := ratio(name, "anchor_auxts")) is not None:
                summary["targets"][f"auxts_at_least_1.5x_faster_than_the_authors_route{suffix}"] = 1 / r >= 1.5
            if k == 5 and (r := ratio(name, "fixed")) is not None:
                summary["targets"][f"auxts_at_most_{bound}x_fixed{suffix}"] = r <= bound
        if "auxts_jvp" in by and "auxts_unrolled" in by:
            jvp, unrolled = by["auxts_jvp"], by["auxts_unrolled"]
            summary["jvp_speedup_over_unrolled"] = unrolled["step_s"] / jvp["step_s"]
            summary["targets"]["jvp_at_least_1.5x_faster_than_unrolled"] = unrolled["step_s"] / jvp["step_s"] >= 1.5
            summary["targets"]["jvp_no_more_memory_than_unrolled"] = jvp["peak_mib"] <= unrolled["peak_mib"]
        out[f"K={k}"] = summary
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m auxrun.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/results.json")
    ap.add_argument("--dataset", default="synthetic_large")
    ap.add_argument("--backbone", default="gcn")
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (median taken)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--k", type=int, nargs="*", default=[2, 5])
    ap.add_argument("--only", nargs="*", choices=list(STRATEGIES), help="measure these configurations only "
                    "(fixed is always added: the ratios need it)")
    ap.add_argument("--keep-rows", action="store_true", help="reuse the per-configuration rows of --out and "
                    "measure only the paired ratios, the cosine agreement and the gradient routes")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--what", default="time", choices=["time", "memory", "cosines", "route", "pair"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--reference", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.only and "fixed" not in args.only:
        args.only = ["fixed", *args.only]
    if args.one:
        if args.what == "pair":
            print(json.dumps(measure_pair(args.one, args.reference, args.k[0], args.dataset, args.steps, args.warmup,
                                          args.device, args.backbone)))
            return
        if args.what == "route":
            print(json.dumps(route_time(args.one, args.k[0], args.dataset, args.steps, args.warmup, args.device,
                                        args.backbone)))
            return
        print(json.dumps(measure(args.one, args.k[0], args.dataset, args.steps, args.warmup, args.device,
                                args.backbone, args.what)))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if args.keep_rows:
        with open(args.out) as fh:
            rows = json.load(fh)["rows"]
    else:
        rows = measure_all(args, console.print)
    pairs = measure_pairs(args, console.print)
    summary = summarise(rows, pairs)
    cosines = measure_cosines(args, console.print)
    routes = measure_routes(args, console.print)
    write_json(args.out, {"dataset": args.dataset, "backbone": args.backbone, "steps": args.steps, "warmup": args.warmup,
                          "rounds": args.rounds, "device_name": device_name(args.device),
                          "torch": torch.__version__, "machine": platform.machine(), "cpu_threads": torch.get_num_threads(),
                          "rows": rows, "pairs": pairs, "summary": summary, "last_layer_cosines": cosines,
                          "task_gradient_routes_s": routes})
    table = Table(title=f"step time and peak memory, ratios to fixed ({args.dataset}, {args.backbone})")
    for col in ("K", "strategy", "ms/step", "x fixed", "peak MiB", "x fixed (mem)"):
        table.add_column(col, justify="right")
    for r in rows:
        ratio = summary[f"K={r['k']}"]["ratios_to_fixed"][r["strategy"]]
        mem = "-" if ratio["memory"] is None else f"{ratio['memory']:.2f}"
        table.add_row(str(r["k"]), r["strategy"], f"{1000 * r['step_s']:.1f}", f"{ratio['time']:.2f}",
                      f"{r['peak_mib']:.1f}", mem)
    console.print(table)
    for k, s in summary.items():
        anchors = ", ".join(f"{n} {1 / r:.2f}x faster than {ANCHORED[n]}" for n, r in s["auxrun_over_anchor_time"].items())
        console.print(f"{k}: {anchors or 'no anchors measured'}")
        for pair, r in s["paired_ratios"].items():
            console.print(f"  paired, one process: {pair} = {r:.2f}")
        for target, met in s["targets"].items():
            console.print(f"  {target}: {'met' if met else 'MISSED'}")
    for k, c in cosines.items():
        console.print(f"{k}: last-layer cosines vs exact over {c['pairs']} (step, task) pairs: mean |diff| "
                      f"{c['mean_abs_diff']:.3f}, max {c['max_abs_diff']:.3f}, same sign {c['sign_agreement']:.1%}, "
                      f"Pearson r {c['pearson']:.3f}")
    for k, r in routes.items():
        console.print(f"{k}: Gram of the task gradients: " + ", ".join(f"{n} {1000 * r[n]:.0f} ms" for n in ROUTES)
                      + f"; fastest: {r['fastest']}")
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    main()
