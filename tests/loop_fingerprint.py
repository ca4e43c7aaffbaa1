"""Fingerprints of short planted runs of every weighting strategy and transfer method.

A change to the training loop that claims to keep behaviour runs this before and after and
compares the two files: every run's metrics, validation history, kept epoch, epoch and step
counts, and the SHA-256 of its ``trace.csv`` must be equal::

    python tests/loop_fingerprint.py --out loop_fingerprint_before.json
    # ... the change ...
    python tests/loop_fingerprint.py --out loop_fingerprint_after.json --against loop_fingerprint_before.json

Runs (in-process, CPU, a few seconds each): ``mtl`` on the planted graph with each weighting
strategy (and each preset), one of them on neighbour-sampled subgraphs and one with
``trainer.patience=1`` so early stopping ends it; ``pretrain`` and ``finetune`` with
``pretrained=auto``; ``zeroshot`` on the planted zero-shot graph with each transfer method,
KTN also on sampled subgraphs and on each other typed backbone (MAGNN's meta-paths, HAN's,
...), DANN with ``trainer.patience=1``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

MTL = ["trainer.max_epochs=5", "trainer.batch_size=8", "trainer.progress=false", "seed=1"]
ZEROSHOT = ["dataset.num_papers=200", "dataset.num_authors=120", "trainer.max_epochs=5", "trainer.batch_size=32", "trainer.progress=false",
            "seed=1", "backbone=rgcn"]


def given(base: list[str], *extra: str) -> list[str]:
    """``base`` overrides with ``extra`` replacing those of the same keys."""
    keys = {e.split("=")[0] for e in extra}
    return [b for b in base if b.split("=")[0] not in keys] + list(extra)


def jobs() -> list[tuple[str, str, list[str]]]:
    """``(name, command, overrides)`` of every fingerprinted run, from the registries."""
    from auxrun import transfer, weighting
    from auxrun.models.encoders import TYPED

    out = [(f"mtl-{w}", "mtl", [*MTL, f"weighting={w}"]) for w in weighting.display_order()]
    out += [("mtl-auxts-neighbor", "mtl", [*MTL, "weighting=auxts", "trainer.sampling=neighbor",
                                           "trainer.fanout=[5,5]"]),
            ("mtl-fixed-patience1", "mtl", given(MTL, "weighting=fixed", "trainer.max_epochs=8", "trainer.patience=1")),
            ("pretrain-fixed", "pretrain", [*MTL, "weighting=fixed"]),
            ("finetune-auto", "finetune", [*MTL, "weighting=auxts", "pretrained=auto"])]
    out += [(f"zeroshot-{m}", "zeroshot", [*ZEROSHOT, f"transfer={m}"]) for m in transfer.METHODS]
    out += [("zeroshot-ktn-neighbor", "zeroshot", [*ZEROSHOT, "transfer=ktn", "trainer.sampling=neighbor",
                                                   "trainer.fanout=[5,5]"]),
            ("zeroshot-dann-patience1", "zeroshot", given(ZEROSHOT, "transfer=dann", "trainer.max_epochs=12",
                                                           "trainer.patience=1"))]
    out += [(f"zeroshot-ktn-{b}", "zeroshot", given(ZEROSHOT, "transfer=ktn", f"backbone={b}")) for b in TYPED
            if f"backbone={b}" not in ZEROSHOT]
    return out


def fingerprint(run_dir: Path, result: dict) -> dict:
    """What must not change: metrics, history, kept epoch, counts, status, the trace's digest."""
    trace = run_dir / "trace.csv"
    return {"status": result["status"], "metrics": result["metrics"], "val_history": result.get("val_history"),
            "best_epoch": result.get("best_epoch"), "epochs_run": result.get("epochs_run"),
            "steps": result.get("steps"),
            "trace_sha256": hashlib.sha256(trace.read_bytes()).hexdigest() if trace.exists() else None}


def run_all(root: Path) -> dict[str, dict]:
    from hydra import compose, initialize_config_module
    from omegaconf import open_dict

    from auxrun.train.commands import run as run_scheme
    from auxrun.transfer.zeroshot import run as run_zeroshot

    out = {}
    with initialize_config_module("auxrun.conf", version_base="1.3"):
        for name, command, overrides in jobs():
            cfg = compose(command, overrides=overrides)
            with open_dict(cfg):
                cfg.paths.outputs = str(root)
            t0 = time.perf_counter()
            run_dir = root / name
            result = (run_zeroshot if command == "zeroshot" else run_scheme)(cfg, run_dir)
            out[name] = fingerprint(run_dir, result)
            print(f"{name}: {result['status']} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the fingerprints (JSON)")
    parser.add_argument("--against", type=Path, help="an earlier fingerprint file to compare with")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        prints = run_all(Path(tmp))
    args.out.write_text(json.dumps(prints, indent=1, sort_keys=True) + "\n")
    if args.against is None:
        print(f"{len(prints)} runs fingerprinted -> {args.out}")
        return 0
    before = json.loads(args.against.read_text())
    differ = sorted(n for n in before.keys() | prints.keys() if before.get(n) != prints.get(n))
    for name in differ:
        old, new = before.get(name) or {}, prints.get(name) or {}
        keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        print(f"DIFFERS {name}: {', '.join(keys)}")
    print(f"{len(prints)} runs, {len(prints) - len(differ)} identical, {len(differ)} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
