"""``compare --report DIR``: the whole comparison as one Markdown file and one self-contained
HTML file, readable top to bottom.

Both hold, in this order: what was compared (outputs folder, split, runs counted and skipped);
the main table in the chosen layout, and the one-row-per-strategy table when the layout is a
paper's; the paired tests and the ranking; then the figures of
:func:`~auxrun.report.figures.write_figures` and the critical-difference diagram, grouped by
what they show. ``DIR/figures/`` holds every figure as PNG and PDF; ``report.md`` links the
PNGs there, while ``report.html`` embeds them (base64 data URIs) and its style, so the file
alone can be mailed or attached to a paper's supplement.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .. import __version__
from ..atomic import write_text
from .compare import Comparison
from .render import extra_table, render_grid, stats_grid, table_grid

# Figure sections: the stem prefix of write_figures' files, a heading, and what they show.
SECTIONS = [
    ("val_", "Target metric per epoch (AUX-TS Fig. 3)",
     "The validation target metric per epoch, one line per strategy; a line below none is negative transfer."),
    ("weight_and_loss_per_step__", "Weights and losses per step (Fig. 4)",
     "Each task's mean weight and loss per step, moving average over steps, averaged over seeds."),
    ("cosine_", "Gradient cosine with the target (Fig. 5)",
     "The cosine between each auxiliary task's gradient and the target's, per step; MTL beside P&F where "
     "both ran."),
    ("weights_under_loss_scales__", "Weights under rescaled losses (Fig. 6)",
     "Each task's mean weight per step, one panel per pair of auxiliary loss scales."),
    ("bars__", "Means and their spread", "Mean over seeds with the standard deviation as error bar."),
    ("tuning_history", "Tuning: best validation score against trial",
     "auxrun tune's search, one line per strategy, every strategy with the same number of trials; the score is "
     "the validation metric model selection uses (negated where lower is better). Test metrics were never read."),
    ("critical_difference", "Critical-difference diagram",
     "Mean ranks over the common columns (1 = best); strategies joined by a bar do not differ at alpha 0.05 "
     "(Nemenyi)."),
]

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.6rem 0; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.5rem; text-align: right; white-space: nowrap; }
th { background: #f6f8fa; } td:first-child, th:first-child { text-align: left; }
tbody tr:nth-child(even) { background: #fafbfc; }
.caption, .meta { color: #57606a; font-size: 0.85rem; max-width: 70rem; }
figure { margin: 1rem 0 1.6rem; } figure img { max-width: 100%; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: 0.8rem; }
"""


@dataclass
class Report:
    """The files one report consists of."""

    markdown: Path
    html: Path
    figures: list[Path]


def _grid_html(grid: list[list[str]], caption: str) -> str:
    text = render_grid(grid, "html", "", "")
    return f'<div class="scroll">{text}</div>\n<p class="caption">{html.escape(caption)}</p>'


def _figure_sections(figures: list[Path]) -> list[tuple[str, str, list[Path]]]:
    pngs = [p for p in figures if p.suffix == ".png"]
    out = []
    for prefix, heading, text in SECTIONS:
        mine = [p for p in pngs if p.stem.startswith(prefix)]
        if mine:
            out.append((heading, text, mine))
    return out


def _label(path: Path) -> str:
    """A figure's caption from its file name: ``kind__row__column`` -> ``row · column``."""
    parts = path.stem.split("__")[1:] or [path.stem]
    return " · ".join(p.replace("_", " ") for p in parts)


def write_report(c: Comparison, out: Path, layout: str, split: str, outputs: Path) -> Report:
    """Figures into ``out/figures``, then ``out/report.md`` and ``out/report.html`` (module
    docstring); ``layout`` is a concrete layout (``auto`` already resolved)."""
    from .figures import tuning_figures, write_figures
    from .stats import plot_cd, ranking

    figures_dir = out / "figures"
    figures = write_figures(c, figures_dir) + tuning_figures(outputs, figures_dir)
    figures += [Path(p) for p in plot_cd(ranking(c), str(figures_dir / "critical_difference"))]
    runs = c.runs if c.runs is not None else None
    counted = 0 if runs is None else len(runs)
    completed = 0 if runs is None else int((runs.status == "completed").sum())
    skipped = ", ".join(f"{n} {status}" for status, n in sorted(c.skipped.items())) or "none"
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    meta = (f"Runs below {outputs} ({counted} counted: {completed} completed, {counted - completed} diverged; "
            f"skipped: {skipped}); metric on the {split} split; layout {layout}; auxrun {__version__}; "
            f"written {stamp}.")
    tables = [(f"Results ({layout} layout)", table_grid(c, layout))]
    extra = extra_table(c, layout)
    if extra is not None:
        tables.append((extra[0], (extra[1], extra[2])))
    if layout != "strategies":
        tables.append(("One row per strategy", table_grid(c, "strategies")))
    stats, stats_caption = stats_grid(c)
    sections = _figure_sections(figures)

    md = [f"# auxrun comparison: {outputs}", "", meta, ""]
    for heading, (grid, caption) in tables:
        md += [f"## {heading}", "", render_grid(grid, "md", "", caption), ""]
    md += ["## Is a gain more than seed noise?", ""]
    md += [render_grid(stats, "md", "", stats_caption) if len(stats) > 1 else "No cell has a baseline to test "
           "against (no none, or direct for zero-shot, with the same settings).", ""]
    for heading, text, pngs in sections:
        md += [f"## {heading}", "", text, ""]
        md += [f"![{_label(p)}](figures/{p.name})" + "\n" for p in pngs]
    md += ["Every figure is also in figures/ as PDF."] if figures else ["No figure: the runs have no history or "
                                                                          "trace to draw."]
    if c.unfinished:
        md += ["", "## Runs not counted", "", "| status | run folder | why |", "|---|---|---|"]
        md += [f"| {s} | {folder} | {why.replace('|', '/')} |" for s, folder, why in c.unfinished]
    md_path = write_text(out / "report.md", "\n".join(md).rstrip() + "\n")

    body = [f"<h1>auxrun comparison: {html.escape(str(outputs))}</h1>", f'<p class="meta">{html.escape(meta)}</p>']
    for heading, (grid, caption) in tables:
        body += [f"<h2>{html.escape(heading)}</h2>", _grid_html(grid, caption)]
    body += ["<h2>Is a gain more than seed noise?</h2>"]
    body += [_grid_html(stats, stats_caption) if len(stats) > 1 else
             "<p>No cell has a baseline to test against.</p>"]
    for heading, text, pngs in sections:
        body += [f"<h2>{html.escape(heading)}</h2>", f'<p class="caption">{html.escape(text)}</p>']
        for p in pngs:
            data = base64.b64encode(p.read_bytes()).decode("ascii")
            body += [f'<figure><img alt="{html.escape(_label(p))}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{html.escape(_label(p))}</figcaption></figure>"]
    if c.unfinished:
        body += ["<h2>Runs not counted</h2>", "<table><tr><th>status</th><th>run folder</th><th>why</th></tr>"]
        body += [f"<tr><td>{html.escape(s)}</td><td>{html.escape(folder)}</td><td>{html.escape(why)}</td></tr>"
                 for s, folder, why in c.unfinished] + ["</table>"]
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>auxrun comparison: {html.escape(str(outputs))}</title>\n<style>{STYLE}</style>\n</head>\n"
            "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")
    html_path = write_text(out / "report.html", page)
    return Report(md_path, html_path, figures)
