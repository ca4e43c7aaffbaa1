"""Survey of the config fuzzer: draw many (command, option, key, edit, bad value) inputs at random,
run each as :func:`test_fuzz.outcome` does, and count what happened instead of stopping at the
first defect as hypothesis does. What reliability reports quote::

    .venv/bin/python tests/fuzz_survey.py --draws 1000 --seed 1 --out fuzz_survey.json

Each input ends as ``refused`` (one line, exit 2), ``completed`` (finite metrics), ``diverged``,
or a defect: ``traceback`` (an exception that is not a one-line refusal), ``multiline`` (a
refusal of more than one line) or ``silent`` (a run that finished with non-finite metrics or an
unfinished status). Lost results are the business of ``test_data_safety.py``,
``test_boundary.py`` and ``test_resume.py``, which reuse run folders on purpose. Defects are
listed with their input so that each can be replayed. ``--files N`` surveys the loaders
instead: every file of :mod:`test_fuzz_files` x every damage at N places.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from test_fuzz import BAD, EDITS, TINY, choices, keys_of, outcome  # noqa: E402


def draw(rng: random.Random) -> tuple[str, str, str, str, str]:
    """A command, an option, a key, a bad value and an edit, drawn as :func:`test_fuzz._fuzz` does."""
    command = rng.choice(sorted(TINY))
    choice = rng.choice(choices(command))
    keys = keys_of(command, choice)
    if not keys:
        return command, choice, "seed", "0", "set"
    return command, choice, rng.choice(keys), rng.choice(BAD), rng.choice(("set", "set", *EDITS))


def classify(command: str, choice: str, key: str, value: str, folder: Path, edit: str = "set") -> tuple[str, str]:
    """The outcome's kind and, for a defect, its one-line reason."""
    try:
        return outcome(command, choice, key, value, folder, edit), ""
    except AssertionError as exc:
        text = str(exc).splitlines()[0]
        return ("multiline" if "not one line" in text else "silent"), text
    except Exception as exc:  # noqa: BLE001 - what the survey is for
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        return "traceback", f"{type(exc).__name__}: {str(exc)[:200]} ({Path(frame.filename).name}:{frame.lineno})"


def survey_files(places: int, out: Path | None) -> None:
    """Every loader x file x damage of :mod:`test_fuzz_files` at ``places`` places each."""
    from test_fuzz_files import DAMAGE, DATASETS, damage, loads_or_refuses

    counts: Counter[str] = Counter()
    defects = []
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name, write in sorted(DATASETS.items()):
            probe = Path(tmp) / f"{name}-probe"
            probe.mkdir()
            write(probe)
            files = sorted(p.relative_to(probe) for p in probe.rglob("*") if p.is_file())
            for rel in files:
                for how in DAMAGE:
                    for at in range(places):
                        folder = Path(tmp) / f"{name}-{len(defects)}-{sum(counts.values())}"
                        folder.mkdir()
                        cfg = write(folder)
                        damage(folder / rel, how, at * 7919 + 13)
                        try:
                            kind, why = loads_or_refuses(cfg), ""
                        except AssertionError as exc:
                            kind, why = "multiline", str(exc).splitlines()[0]
                        except Exception as exc:  # noqa: BLE001
                            frame = traceback.extract_tb(exc.__traceback__)[-1]
                            kind, why = "traceback", (f"{type(exc).__name__}: {str(exc)[:160]} "
                                                      f"({Path(frame.filename).name}:{frame.lineno})")
                        counts[kind] += 1
                        if why:
                            defects.append({"dataset": name, "file": str(rel), "damage": how, "at": at, "why": why})
                            print(f"{kind}: {name} {rel} {how}@{at}: {why}", flush=True)
    summary = {"inputs": sum(counts.values()), "seconds": round(time.time() - start), "outcomes": dict(counts),
               "defects": defects}
    print(json.dumps({k: v for k, v in summary.items() if k != "defects"}))
    if out:
        out.write_text(json.dumps(summary, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--files", type=int, default=0, metavar="PLACES",
                        help="survey the loaders instead: every file x damage at PLACES places")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.files:
        survey_files(args.files, args.out)
        return
    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    defects = []
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.draws):
            command, choice, key, value, edit = draw(rng)
            folder = Path(tmp) / f"d{i}"
            folder.mkdir()
            kind, why = classify(command, choice, key, value, folder, edit)
            counts[kind] += 1
            if why:
                defects.append({"command": command, "choice": choice, "key": key, "value": value, "edit": edit,
                                "kind": kind, "why": why})
                print(f"[{i}] {kind}: auxrun {command} {choice} {edit}: {key}={value}: {why}", flush=True)
            if (i + 1) % 50 == 0:
                print(f"{i + 1}/{args.draws} in {time.time() - start:.0f} s: {dict(counts)}", flush=True)
    summary = {"draws": args.draws, "seed": args.seed, "seconds": round(time.time() - start), "outcomes": dict(counts),
               "defects": defects}
    print(json.dumps({k: v for k, v in summary.items() if k != "defects"}))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
