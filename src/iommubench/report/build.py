"""The report of a run: summary.json, report.md and a self-contained report.html, with the
figures; or the plain-text summary.

`summary.build` assembles everything the report says into one dict, written as
summary.json; `layout` turns it into blocks, `render` writes them as Markdown and HTML, and
`textreport` prints it as text. None of the renderers computes a number.

A report is whole or absent: it is written into a hidden staging directory beside its
destination and renamed into place when every file is written, so an interrupted or killed
report leaves no half-written directory under the report's name (a killed one leaves its
staging directory, which the next report beside it removes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iommubench.analysis.decisions import with_scaling
from iommubench.analysis.point_summary import summarize
from iommubench.analysis.run_reader import load_run
from iommubench.core.pids import pid_alive
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
    """Write summary.json, report.md, report.html and the figures (PNG + SVG) into `out_dir`,
    all at once: `out_dir` (replaced if it exists) appears only when every file is written."""
    final = Path(out_dir)
    with _staged(final) as out:
        _write_files(run_dir, out, x, hue, facet)
    return final / "summary.json", final / "report.md", final / "report.html"


def _write_files(run_dir: str | Path, out: Path, x: str, hue: str | None, facet: str | None):
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


STAGING = ".partial-"  # .NAME.partial-PID: a report being written beside NAME


@contextlib.contextmanager
def _staged(final: Path) -> Iterator[Path]:
    """A fresh staging directory beside `final`, renamed to `final` when the block ends
    without an exception and removed when it does not."""
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(final)
    stage = final.with_name(f".{final.name}{STAGING}{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
        _replace(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _replace(stage: Path, final: Path) -> None:
    """Put `stage` where `final` is: one rename when there is no old report, else the old
    one moved aside first (between the two renames the report is absent, never partial)."""
    if not final.exists():
        stage.rename(final)
        return
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    final.rename(old)
    stage.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _remove_abandoned(final: Path) -> None:
    """Staging directories beside `final` left by reports that were killed."""
    for path in final.parent.glob(f".{final.name}{STAGING}*"):
        pid = path.name.rsplit(STAGING, 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def text_report(run_dir: str | Path) -> str:
    """The plain-text summary (every line at most 72 columns)."""
    return text.render_text(summary_of(run_dir))
