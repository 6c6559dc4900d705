"""The report of a run: summary.json, report.md and a self-contained report.html, with the
figures; or the plain-text summary.

`summary.build` assembles everything the report says into one dict, written as
summary.json; `layout` turns it into blocks, `render` writes them as Markdown and HTML, and
`textreport` prints it as text. None of the renderers computes a number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iommubench.analysis.decisions import with_scaling
from iommubench.analysis.point_summary import summarize
from iommubench.analysis.run_reader import load_run
from iommubench.report import plots, summary, text
from iommubench.report.blocks import FIGURE_CAPTIONS, blocks
from iommubench.report.render import render_html, render_md


def summary_of(run_dir: str | Path, figures: list[Path] | None = None) -> dict[str, Any]:
    """The summary dict of a run (no files written)."""
    run = load_run(run_dir)
    return summary.build(run, with_scaling(summarize(run)), figures or [], FIGURE_CAPTIONS)


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
    content = summary.build(run, frame, figures, {**FIGURE_CAPTIONS, **plots.CAPTIONS})
    json_path = summary.write(content, out / "summary.json")
    doc = blocks(content)
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(render_md(doc))
    html_path.write_text(render_html(doc, f"iommubench report: {content['run_id']}", out))
    return json_path, md_path, html_path


def text_report(run_dir: str | Path) -> str:
    """The plain-text summary (every line at most 72 columns)."""
    return text.render_text(summary_of(run_dir))
