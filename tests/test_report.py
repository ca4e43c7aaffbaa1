"""compare --report: the Markdown and self-contained HTML report, checked as files and, in a
slow test, in a real headless Chromium."""

from __future__ import annotations

import base64
import csv
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from auxrun.report.compare import compare
from auxrun.report.document import write_report
from auxrun.report.results import write_result

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sweep(root: Path) -> None:
    """Three strategies x three seeds on one column, each run with a history and a trace."""
    for weighting, base, cos in (("none", 0.70, None), ("cosine", 0.74, 0.3), ("auxts", 0.78, 0.5)):
        for seed in range(3):
            run = root / f"{weighting}{seed}"
            write_result(run, {
                "status": "completed", "command": "mtl", "dataset": "synthetic", "backbone": "gcn", "aux": "planted",
                "weighting": weighting, "seed": seed, "primary_metric": "auc", "higher_is_better": True,
                "metrics": {"val": {"auc": base}, "test": {"auc": base + (0.01 * seed if cos is None else
                                                                            [0.0, 0.02, 0.01][seed])}},
                "config": {},
                "val_history": [{"epoch": e, "auc": base - 0.2 + 0.05 * e} for e in range(5)],
            })
            with open(run / "trace.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["step", "epoch", "task", "loss", "weight", "weight_std", "cos"])
                for step in range(40):
                    for task in ("target", "helpful", "harmful"):
                        w.writerow([step, step // 10, task, 1.0 / (step + 1), 0.5 if task == "harmful" else 1.0,
                                    0.0, "" if cos is None or task == "target" else cos])


def test_report_holds_the_tables_the_statistics_and_every_figure(tmp_path):
    sweep(tmp_path / "runs")
    c = compare(tmp_path / "runs")
    made = write_report(c, tmp_path / "rep", "strategies", "test", tmp_path / "runs")
    md, page = made.markdown.read_text(), made.html.read_text()
    pngs = sorted(p for p in made.figures if p.suffix == ".png")
    assert pngs and all(p.stat().st_size > 1000 for p in made.figures)
    assert {p.with_suffix(".pdf") for p in pngs} <= set(made.figures)
    # Markdown: the sections in reading order, every PNG linked where it lies
    order = [md.index(h) for h in ("## Results (strategies layout)", "## Is a gain more than seed noise?",
                                   "## Target metric per epoch", "## Weights and losses per step",
                                   "## Gradient cosine with the target", "## Means and their spread")]
    assert order == sorted(order)
    links = re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", md)
    assert sorted(links) == sorted(f"figures/{p.name}" for p in pngs)
    assert all((tmp_path / "rep" / link).is_file() for link in links)
    assert r"| auxts | **0.7900 ± 0.0100 (3)\*\*** | +11.27% |" in md and "9 counted: 9 completed" in md
    # HTML: self-contained (no file or network reference), each PNG embedded byte for byte
    assert not re.search(r'(src|href)="(?!data:)', page) and "<link" not in page
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted(p.read_bytes() for p in pngs)
    assert "<td><strong>0.7900 ± 0.0100 (3)**</strong></td>" in page
    assert "n=3: t-test only" in page


def test_report_of_runs_without_traces_says_there_is_no_figure(tmp_path):
    for w, v in (("none", 0.7), ("fixed", 0.8)):
        write_result(tmp_path / "runs" / w, {
            "status": "completed", "command": "mtl", "dataset": "synthetic", "backbone": "gcn", "aux": "planted",
            "weighting": w, "seed": 0, "primary_metric": "auc", "higher_is_better": True,
            "metrics": {"val": {"auc": v}, "test": {"auc": v}}, "config": {}})
    made = write_report(compare(tmp_path / "runs"), tmp_path / "rep", "strategies", "test", tmp_path / "runs")
    md = made.markdown.read_text()
    assert "## Means and their spread" in md and "## Target metric per epoch" not in md  # bars only
    assert "n=1: too few shared seeds" in md


CHROMIUM = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
def test_the_html_report_renders_in_headless_chromium_with_every_figure_decoded(tmp_path):
    sweep(tmp_path / "runs")
    made = write_report(compare(tmp_path / "runs"), tmp_path / "rep", "strategies", "test", tmp_path / "runs")
    n_images = sum(p.suffix == ".png" for p in made.figures)
    probe = tmp_path / "probe.html"  # the report plus a script counting the images the browser decoded
    probe.write_text(made.html.read_text().replace(
        "</body>", "<script>window.addEventListener('load', () => document.body.setAttribute('data-decoded', "
                   "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length));</script></body>"))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--virtual-time-budget=10000"]
    dom = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert f'data-decoded="{n_images}"' in dom
    assert dom.count("<table>") == 2 and "Gradient cosine with the target" in dom
    shot = tmp_path / "report.png"
    subprocess.run([*flags, "--window-size=1280,2400", f"--screenshot={shot}", made.html.as_uri()],
                   capture_output=True, timeout=120)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert shot.read_bytes().startswith(PNG_MAGIC) and pixels.std() > 0.05  # not a blank page
