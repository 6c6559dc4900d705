"""The report of a run: summary.json, report.md and a self-contained report.html, with the
figures; or the plain-text summary.

`reportdata.build` assembles everything the report says into one dict, written as
summary.json; `layout` turns it into blocks, `render` writes them as Markdown and HTML, and
`textreport` prints it as text. None of the renderers computes a number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iommubench import plots, reportdata, textreport
from iommubench.decisions import with_scaling
from iommubench.layout import FIGURE_CAPTIONS, blocks
from iommubench.pointsummary import summarize
from iommubench.render import render_html, render_md
from iommubench.rundata import load_run


def summary_of(run_dir: str | Path, figures: list[Path] | None = None) -> dict[str, Any]:
    """The summary dict of a run (no files written)."""
    run = load_run(run_dir)
    return reportdata.build(run, with_scaling(summarize(run)), figures or [], FIGURE_CAPTIONS)


def write_report(
    run_dir: str | Path,
    out_dir: str | Path,
    x: str = "workers",
    hue: str | None = "strategy",
    facet: str | None = None,
) -> tuple[Path, Path, Path]:
    """Write summary.json, report.md, report.html and the figures (PNG + SVG) into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = load_run(run_dir)
    frame = with_scaling(summarize(run))
    figures = plots.make_figures(run_dir, out, x=x, hue=hue, facet=facet, summary=frame)
    summary = reportdata.build(run, frame, figures, {**FIGURE_CAPTIONS, **plots.CAPTIONS})
    json_path = reportdata.write(summary, out / "summary.json")
    doc = blocks(summary)
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(render_md(doc))
    html_path.write_text(render_html(doc, f"iommubench report: {summary['run_id']}", out))
    return json_path, md_path, html_path


def text_report(run_dir: str | Path) -> str:
    """The plain-text summary (every line at most 72 columns)."""
    return textreport.render_text(summary_of(run_dir))
