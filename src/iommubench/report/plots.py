"""Figures of a run (PNG and SVG each): throughput, scaling, contention, per-lock waiting,
latency percentiles and survival, fairness, and the throughput timeline.

One style for every figure, readable in grayscale: each hue value gets its own colour, marker
and line style, and the legend's title names every variable a series label encodes. Points
whose audit failed (or that have no valid repetition) are drawn as crosses and never joined
into a line. When x is `workers`, the region beyond the CPUs available is shaded, the linear
ideal stops at the CPU count, and the legend names the shading. Throughput is in I/O/s for
the dma workload (an op is one I/O) and ops/s for prefault. A panel or figure with nothing to
show is left out, and the caption (or `notes`) says so.

The figures themselves live in `iommubench.figures`; this module chooses and writes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from iommubench.analysis.decisions import with_scaling
from iommubench.analysis.point_summary import summarize
from iommubench.analysis.run_reader import (
    STRATEGY_PARTS,
    Run,
    add_strategy,
    load_run,
    norm_value,
    param_columns,
)
from iommubench.report.figures.locks import locks_figure
from iommubench.report.figures.style import RC, save
from iommubench.report.figures.summary import (
    contention_figure,
    fairness_figure,
    latency_figure,
    scaling_figure,
    throughput_figure,
)
from iommubench.report.figures.survival import survival_figure
from iommubench.report.figures.timeline import timeline_figure

__all__ = [
    "CAPTIONS",
    "PlotInputError",
    "check_axes",
    "check_run",
    "contention_figure",
    "fairness_figure",
    "latency_figure",
    "locks_figure",
    "make_figures",
    "plt",
    "scaling_figure",
    "survival_figure",
    "throughput_figure",
    "timeline_figure",
]

log = logging.getLogger(__name__)
NONE_WORDS = ("", "none")

CAPTIONS: dict[str, str] = {
    "locks": (
        "Share of worker time spent waiting on each lock (wait / (duration x workers)), "
        "stacked by lock, median over valid repetitions: which lock the waiting goes to. "
        "Hatched: more workers than CPUs available. Faded with a dashed outline: a flagged "
        "point (competing load, a level shift, a stretched window, a placement change, noisy)."
    ),
    "latency-survival": (
        "P(latency > t) from the histograms of the valid repetitions, at the smallest worker "
        "count and the largest one without oversubscription; log axes. Markers: each curve's "
        "p99 (at 10^-2) and p99.9 (at 10^-3). Dashed: a flagged point (competing load, a level "
        "shift, a stretched window, a placement change, noisy)."
    ),
    "timeline": (
        "Throughput over the counted window in bins of at least 50 ms, one panel per headline "
        "point, one line per repetition (its colour the same in every panel). Dashed: a "
        "repetition under competing load or with a level shift; grey dashed: set aside "
        "(another placement state, or not valid); dotted: the point's median. Each panel's "
        "title names its point and its flagged repetitions (with their load share)."
    ),
}


class PlotInputError(ValueError):
    """An x, hue or facet that the run cannot be drawn by."""


REQUIRED_COLUMNS = ("point", "rep", "ops_per_s")


def check_run(
    run_dir: str | Path, x: str = "workers", hue: str | None = None, facet: str | None = None
) -> None:
    """Raise PlotInputError (one line) when points.csv cannot be drawn (unreadable, empty,
    without the columns every figure needs) or x, hue or facet is not one of its parameters;
    reads only the table's first row."""
    path = Path(run_dir) / "points.csv"
    try:
        head = pd.read_csv(path, nrows=1)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PlotInputError(f"{path}: cannot be read ({first})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in head.columns]
    if missing:
        raise PlotInputError(f"{path}: no column {', '.join(missing)}: not a points table")
    if head.empty:
        raise PlotInputError(f"{path}: no rows yet: nothing to draw")
    add_strategy(head)
    check_axes(head, x, _none(hue), _none(facet))


def check_axes(summary: pd.DataFrame, x: str, hue: str | None, facet: str | None) -> None:
    """Raise PlotInputError naming the option and the allowed columns for a bad choice."""
    parts = [c for c in STRATEGY_PARTS if c in summary]
    allowed = list(dict.fromkeys([*param_columns(summary), *parts]))
    for option, value in (("--x", x), ("--hue", hue), ("--facet", facet)):
        if value is not None and value not in allowed:
            raise PlotInputError(
                f"{option}: unknown column {value!r}; allowed: {', '.join(allowed)}"
            )
    chosen = [v for v in (x, hue, facet) if v is not None]
    if len(set(chosen)) != len(chosen):
        raise PlotInputError(
            f"--x, --hue and --facet must name different columns (got {', '.join(chosen)})"
        )


def _none(value: str | None) -> str | None:
    return None if value is None or value.strip().lower() in NONE_WORDS else value


def make_figures(
    run_dir: str | Path,
    out_dir: str | Path,
    x: str = "workers",
    hue: str | None = "strategy",
    facet: str | None = None,
    summary: pd.DataFrame | None = None,
    notes: list[str] | None = None,
) -> list[Path]:
    """Every figure of a run as PNG and SVG in `out_dir`; figures without data are skipped
    and each skip (and each left-out panel) is appended to `notes` and logged."""
    hue, facet = _none(hue), _none(facet)
    run = load_run(run_dir)
    if summary is None:
        summary = with_scaling(summarize(run))
    check_axes(summary, x, hue, facet)
    if summary.empty:
        return []
    if facet is None and _varies(summary, "workload") and "workload" not in (x, hue):
        facet = "workload"  # an I/O and a prefault op never share an axis
    elif facet is None and _varies(summary, "host") and "host" not in (x, hue):
        facet = "host"  # a fleet run: each machine's curves in its own panel
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    found: list[str] = []
    paths: list[Path] = []
    with plt.rc_context(RC):
        for name, draw in _figures(run, summary, x, hue, facet, found):
            fig = draw()
            if fig is not None:
                paths.extend(save(fig, out, name))
    for line in found:
        log.info("%s", line)
    if notes is not None:
        notes.extend(found)
    return paths


def _varies(summary: pd.DataFrame, column: str) -> bool:
    return column in summary and summary[column].map(norm_value).nunique() > 1


def _figures(
    run: Run,
    summary: pd.DataFrame,
    x: str,
    hue: str | None,
    facet: str | None,
    notes: list[str],
) -> list[tuple[str, Callable[[], Figure | None]]]:
    """(file name, a callable drawing the figure or returning None), in report order."""
    workers = "workers" in summary
    drawers: list[tuple[str, Callable[[], Figure | None]]] = [
        ("throughput", lambda: throughput_figure(summary, x, hue, facet)),
        ("scaling", lambda: scaling_figure(summary, hue, facet, notes) if workers else None),
        ("contention", lambda: contention_figure(summary, x, hue, facet, notes)),
        ("locks", lambda: locks_figure(run.points, summary, x, hue, facet, notes)),
        ("latency", lambda: latency_figure(summary, x, hue, facet, notes)),
        ("latency-survival", lambda: survival_figure(run, summary, hue, notes)),
        ("fairness", lambda: fairness_figure(summary, x, hue, facet, notes)),
        ("timeline", lambda: timeline_figure(run, summary, hue, notes)),
    ]
    return drawers
