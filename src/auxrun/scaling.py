"""``make bench`` (scaling part): step time and peak memory as the graph and K grow.

On the planted graph (``dataset=synthetic``, node classification, GCN) with
``fixed`` and ``auxts``, whole-graph steps (``trainer.sampling=full``) against neighbour-sampled
ones (``trainer.sampling=neighbor``, ``trainer.fanout=[10,5]``, batches of 64):

* as the message-passing graph grows from 1e4 to 1e7 edges (K = 2 auxiliary tasks);
* as K grows from 1 to 8 (at 1e5 edges).

Every configuration runs in a fresh process, measured like the strategy benchmark
(:mod:`auxrun.bench`): time per step is the median of timed engine steps after warm-up, peak
memory the peak beyond the level before the steps. The fitted growth exponent ``b`` of
``y ~ a x^b`` (least squares in log-log) says how a cost scales: about 1 for the whole graph,
about 0 when a step is bounded by its batch.

Overheads against a *bare loop* on the same model, the same view and the same batches (the
loop a PyG user writes: one forward, the sum of the task losses, ``backward()``, optimiser
step) show what the engine costs beyond the training itself: the per-task finiteness check,
the strategy's gradient filling and the trace. The two loops alternate step by step in one
process, so a slow phase of the machine slows both alike (separate processes on a shared VM
differ by more than the overhead being measured).

Batches of 64 keep the sampled subgraph (about 5,000 nodes with ``fanout=[10,5]``) well below
the size of even the smallest graph: a 1e5-edge planted graph holds about 18,500 nodes, and
the 2-hop neighbourhood of a batch of 256 would cover most of it, so memory at 1e5 would be
bounded by the graph rather than the batch and the comparison with 1e7 would say nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from .bench import StepPeak, prepared_steps
from .atomic import write_json

PLANTED = ("helpful", "noise", "harmful")
EDGES = (1e4, 1e5, 1e6, 1e7)
KS = (1, 2, 4, 8)
STRATEGIES = ("fixed", "auxts")
SAMPLINGS = ("full", "neighbor")
MP_EDGES_PER_USER = 10.8  # user_degree 5 + item_tags 1 (as many items as users), 10% held out, reversed
BATCH = 64                # target examples and pairs per auxiliary task per step


def aux_tasks(k: int) -> dict:
    """``k`` planted tasks, cycling through helpful, noise and harmful."""
    return {f"{PLANTED[i % 3]}{i}": {"kind": "planted", "relation": PLANTED[i % 3]} for i in range(k)}


def overrides(edges: float, strategy: str, sampling: str, device: str) -> list[str]:
    users = max(200, int(edges / MP_EDGES_PER_USER))
    return [f"weighting={strategy}", "backbone=gcn", "dataset=synthetic", f"dataset.num_users={users}",
            f"dataset.num_items={users}", "dataset.num_tags=100", "dataset.user_degree=5",
            "dataset.item_tags=1", "dataset.planted_pairs_per_node=5", "dataset.train_frac=0.2",
            f"trainer.sampling={sampling}", "trainer.fanout=[10,5]", f"trainer.batch_size={BATCH}",
            f"trainer.aux_batch_size={BATCH}", f"device={device}"]


def bare_step(ctx, optimizer, batch, gen) -> None:
    """The plain loop: the view's inputs, one forward, the summed losses, backward, step."""
    inputs = ctx.view.step(batch, gen)
    emb = ctx.model.encoder(inputs.x, inputs.graph)
    loss = sum(ctx.model.tasks[n].losses(emb, b, inputs.x).mean() for n, b in inputs.batches.items())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def measure(edges: float, k: int, strategy: str, sampling: str, loop: str, what: str, steps: int, warmup: int,
            device: str) -> dict:
    """One configuration in this process: ``loop`` = ``engine`` (the engine's train step),
    ``bare`` (:func:`bare_step`) or ``both`` (alternating, step by step, on the same model);
    ``what`` = ``time`` or ``memory``."""
    from .train.multitask import train_step

    p, ctx, optimizer, bs = prepared_steps(overrides(edges, strategy, sampling, device), aux_tasks(k))

    def one(i: int, loop: str) -> None:
        batch = p.target.sample(bs, p.gen)
        if loop == "bare":
            bare_step(ctx, optimizer, batch, p.gen)
        else:
            step, diag = train_step(ctx, optimizer, batch, p.gen, i)
            for n, loss in step.losses.items():  # what fit() records per step
                d = diag.get(n, {})
                _ = (float(loss.detach().mean()), d.get("weight"), d.get("weight_std"), d.get("cos"))

    loops = ("bare", "engine") if loop == "both" else (loop,)
    for i in range(warmup):
        for lp in loops:
            one(i, lp)
    times: dict[str, list[float]] = {lp: [] for lp in loops}
    with StepPeak(p.device, sample=what == "memory") as peak:
        for i in range(warmup, warmup + steps):
            for lp in loops:  # interleaved: a slow phase of the machine hits both loops alike
                t0 = time.perf_counter()
                one(i, lp)
                peak.sync()
                times[lp].append(time.perf_counter() - t0)
    mp_edges = int(sum(v.shape[1] for v in p.data.edge_index.values()))
    if what == "time":
        out = {f"{lp}_step_s": statistics.median(t) for lp, t in times.items()}
        return {"step_s": out.get("engine_step_s", out.get("bare_step_s")), **out, "edges": mp_edges,
                "device": str(p.device)}
    return {"peak_mib": peak.mib, "edges": mp_edges}


def _run(spec: dict, args: argparse.Namespace) -> dict:
    """One measurement in a fresh process (memory with every tensor-sized block mmapped)."""
    env = {"MALLOC_MMAP_THRESHOLD_": "65536"} if spec["what"] == "memory" else {}
    steps = 3 if spec["what"] == "memory" else args.steps
    cmd = [sys.executable, "-m", "auxrun.scaling", "--one", json.dumps(spec), "--steps", str(steps),
           "--warmup", str(args.warmup), "--device", args.device]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, **env})
    if proc.returncode != 0:
        raise SystemExit(f"scaling benchmark {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def exponent(xs: list[float], ys: list[float]) -> float | None:
    """``b`` of the least-squares fit ``log y = log a + b log x`` (None with < 2 usable points)."""
    pts = [(x, y) for x, y in zip(xs, ys) if x > 0 and y is not None and y > 0]
    if len(pts) < 2:
        return None
    return float(np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0])


def plan(args: argparse.Namespace) -> list[dict]:
    """Every configuration: the graph-size sweep, the K sweep and the bare loops."""
    specs = []
    for strategy in STRATEGIES:
        for sampling in SAMPLINGS:
            for e in args.edges:
                if sampling == "full" and e > args.max_full_edges:
                    continue
                specs.append({"sweep": "edges", "edges": e, "k": 2, "strategy": strategy, "sampling": sampling,
                              "loop": "engine"})
            for k in args.ks:
                specs.append({"sweep": "k", "edges": args.k_edges, "k": k, "strategy": strategy, "sampling": sampling,
                              "loop": "engine"})
    for sampling in SAMPLINGS:
        specs.append({"sweep": "bare", "edges": args.k_edges, "k": 2, "strategy": "fixed", "sampling": sampling,
                      "loop": "both"})
    return specs


def measure_all(args: argparse.Namespace, log) -> list[dict]:
    rows = []
    specs = plan(args)
    for i, spec in enumerate(specs):
        log(f"[{i + 1}/{len(specs)}] {spec}")
        row = {**spec, "edges_target": spec["edges"]}
        times = [_run({**spec, "what": "time"}, args) for _ in range(args.rounds)]
        row.update(times[0])
        for key in [k for k in times[0] if k.endswith("step_s")]:
            row[key] = statistics.median(t[key] for t in times)
        if spec["loop"] == "both":  # per process the ratio of the interleaved medians, then the median
            row["engine_ratio"] = statistics.median(t["engine_step_s"] / t["bare_step_s"] for t in times)
        if spec["sweep"] != "bare":
            row.update(_run({**spec, "what": "memory"}, args))
        rows.append(row)
    return rows


def summarise(rows: list[dict]) -> dict:
    """Growth exponents per (strategy, sampling) and the issue's targets, as ratios."""
    out: dict = {"exponents": {}, "targets": {}}
    for strategy in STRATEGIES:
        for sampling in SAMPLINGS:
            key = f"{strategy}/{sampling}"
            sized = sorted((r for r in rows if r["sweep"] == "edges" and r["strategy"] == strategy
                            and r["sampling"] == sampling), key=lambda r: r["edges"])
            by_k = sorted((r for r in rows if r["sweep"] == "k" and r["strategy"] == strategy
                           and r["sampling"] == sampling), key=lambda r: r["k"])
            out["exponents"][key] = {
                "time_vs_edges": exponent([r["edges"] for r in sized], [r["step_s"] for r in sized]),
                "memory_vs_edges": exponent([r["edges"] for r in sized], [r.get("peak_mib") for r in sized]),
                "time_vs_k": exponent([r["k"] for r in by_k], [r["step_s"] for r in by_k]),
                "memory_vs_k": exponent([r["k"] for r in by_k], [r.get("peak_mib") for r in by_k]),
            }
    for strategy in STRATEGIES:
        sized = {round(np.log10(r["edges_target"])): r for r in rows if r["sweep"] == "edges"
                 and r["strategy"] == strategy and r["sampling"] == "neighbor"}
        if 5 in sized and 7 in sized and sized[5].get("peak_mib"):
            ratio = sized[7]["peak_mib"] / sized[5]["peak_mib"]
            out["targets"][f"{strategy}_sampled_memory_1e7_over_1e5"] = {"ratio": ratio, "target": 1.3,
                                                                         "met": ratio <= 1.3}
    for sampling, limit in (("neighbor", 1.15), ("full", 1.10)):
        for r in rows:
            if r["sweep"] == "bare" and r["sampling"] == sampling:
                ratio = r["engine_ratio"]
                out["targets"][f"fixed_{sampling}_engine_over_bare_loop"] = {"ratio": ratio, "target": limit,
                                                                             "met": ratio <= limit}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m auxrun.scaling", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/scaling.json")
    ap.add_argument("--edges", type=float, nargs="*", default=list(EDGES))
    ap.add_argument("--ks", type=int, nargs="*", default=list(KS))
    ap.add_argument("--k-edges", type=float, default=1e5, help="graph size of the K sweep and the bare loops")
    ap.add_argument("--max-full-edges", type=float, default=None,
                    help="largest graph run whole (default: 1e7 on CUDA, 1e6 on CPU, where a whole-graph "
                         "auxts step on 1e7 edges takes a minute)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="timing processes per configuration (median taken)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.max_full_edges is None:
        cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
        args.max_full_edges = 1e7 if cuda else 1e6
    if args.one:
        s = json.loads(args.one)
        print(json.dumps(measure(s["edges"], s["k"], s["strategy"], s["sampling"], s["loop"], s["what"],
                                 args.steps, args.warmup, args.device)))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    rows = measure_all(args, console.print)
    summary = summarise(rows)
    device = rows[0].get("device", "cpu") if rows else "cpu"
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else None
    write_json(args.out, {"torch": torch.__version__, "machine": platform.machine(), "device": device, "gpu": gpu,
                          "cpu_threads": torch.get_num_threads(), "steps": args.steps, "rounds": args.rounds,
                          "rows": rows, "summary": summary})
    table = Table(title="scaling: step time and peak memory")
    for col in ("sweep", "strategy", "sampling", "loop", "edges", "K", "ms/step", "peak MiB"):
        table.add_column(col, justify="right")
    for r in rows:
        mem = r.get("peak_mib")
        table.add_row(r["sweep"], r["strategy"], r["sampling"], r["loop"], f"{r['edges']:,}", str(r["k"]),
                      f"{1000 * r['step_s']:.1f}", "-" if mem is None else f"{mem:.1f}")
    console.print(table)
    console.print_json(data=summary)
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    main()
