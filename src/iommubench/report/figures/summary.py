"""Figures drawn from the per-point summary: throughput, scaling, contention, latency
percentiles and fairness. A panel whose values say nothing (all missing, all 0, or Jain's
index 1.0 everywhere) is left out and the caption says so; a figure with no panel left is not
drawn at all."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter, Formatter, FuncFormatter, PercentFormatter

from iommubench.analysis.usl import Fit, fit_run
from iommubench.report.figures import axes as fa
from iommubench.report.figures.labels import frame_unit, title
from iommubench.report.figures.series import Series, draw_series, split_series
from iommubench.report.figures.style import IDEAL_STYLE, MODEL_STYLE, caption, grid

DrawFn = Callable[[Axes, Sequence[Series], bool, bool], list[Any] | None]


@dataclass
class Panel:
    """One column of a panel figure: the summary columns it shows and how it draws them."""

    cols: list[str]
    draw: DrawFn  # (ax, series, join, log_x) -> legend proxies
    ylabel: str
    title: str
    flat: float | None = 0.0  # a panel whose every value is this says nothing
    yfmt: Callable[[], Formatter] | None = None
    reference: Sequence[float] = ()  # ideal values the y range must show
    ymax: float | None = None  # the top of a bounded measure's linear axis (Jain's index: 1)

    def values(self, summary: pd.DataFrame) -> np.ndarray:
        return fa.finite(v for c in self.cols if c in summary for v in summary[c])

    def skip_reason(self, summary: pd.DataFrame) -> str | None:
        return fa.uninformative(self.values(summary), self.flat)


def interval_words(summary: pd.DataFrame) -> str:
    """How the band was made, as the summary states it ('95% CI', 'range (n=3)'), with the
    repetition counts behind each kind; '95% CI' for a summary that does not say."""
    if "interval" not in summary:
        return "95% CI"
    words = []
    for kind, rows in summary.groupby(summary["interval"].fillna("").astype(str)):
        if not kind:
            continue
        ns = sorted({int(n) for n in fa.finite(rows["n"])}) if "n" in rows else []
        span = "" if not ns else f" (n={ns[0]})" if len(ns) == 1 else f" (n={ns[0]}–{ns[-1]})"
        words.append(kind + span)
    return " or ".join(words) or "95% CI"


def throughput_figure(
    summary: pd.DataFrame,
    x: str = "workers",
    hue: str | None = "driver",
    facet: str | None = None,
    title_text: str | None = None,
) -> Figure:
    """Median throughput vs x with its interval band, and the linear ideal when x is workers."""
    split = split_series(summary, x, hue, facet)
    n = len(split.groups)
    ncols = min(n, 3)
    units = {frame_unit(pd.concat([s.frame for s in ss])) for ss in split.groups.values() if ss}
    fig, axes = grid(
        math.ceil(n / ncols),
        ncols,
        title_text or title("throughput", summary, [x, hue, facet]),
        sharex=True,
        sharey=len(units) == 1,
    )
    cpus = fa.cpus_available(summary)
    band = interval_words(summary)
    extra: list[Any] = []
    ideal_y: list[float] = []
    for ax, (flabel, series) in zip(axes.flat, split.groups.items(), strict=False):
        log_x = fa.setup_x(ax, summary, x, split.cats)
        draw_series(ax, series, "ops_per_s", band=("ci_lo", "ci_hi"), join=split.cats is None)
        if x == "workers":
            drawn = fa.draw_ideals(ax, series, "ops_per_s", cpus, log_x)
            ideal_y += drawn
            extra = [fa.ideal_proxy()] if drawn or extra else []
        fa.mark_oversubscribed(ax, summary, x, series, ["ops_per_s"], cpus, log_x)
        unit = frame_unit(pd.concat([s.frame for s in series])) if series else "ops/s"
        ax.set_ylabel(f"{unit} (median; band: {band})")
        fa.facet_title(ax, fa.facet_label(flabel, facet, cpus))
    data = fa.finite(
        pd.concat([summary[c] for c in ("ops_per_s", "ci_lo", "ci_hi") if c in summary])
    )
    for ax in list(axes.flat)[:n]:
        # a log axis shows the ideal whole; a linear one is scaled to the data
        log_y = fa.wants_log(data)
        fa.set_y_range(ax, np.concatenate([data, ideal_y]) if log_y else data)
        ax.yaxis.set_major_formatter(EngFormatter(sep=" "))
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fa.show_x_labels(axes)
    fa.legend(fig, axes, extra, title=split.legend_title)
    return fig


def panel_figure(
    summary: pd.DataFrame,
    panels: Sequence[Panel],
    x: str,
    hue: str | None,
    facet: str | None,
    what: str,
    notes: list[str] | None = None,
) -> Figure | None:
    """Facets as rows, panels as columns (each column shares its y axis); panels without
    information are left out and named in the caption (and in `notes`)."""
    kept, dropped = [], []
    for p in panels:
        why = p.skip_reason(summary)
        if why is None:
            kept.append(p)
        else:
            dropped.append(f"not drawn: {p.title} ({why})")
    if notes is not None:
        notes.extend(f"{what}: {d}" + ("" if kept else "; figure skipped") for d in dropped)
    if not kept:
        return None
    split = split_series(summary, x, hue, facet)
    fig, axes = grid(
        len(split.groups),
        len(kept),
        title(what, summary, [x, hue, facet]),
        sharex=True,
        sharey="col",
    )
    cpus = fa.cpus_available(summary)
    extra: list[Any] = []
    for col, p in enumerate(kept):
        values = np.concatenate([p.values(summary), np.asarray(p.reference, dtype=float)])
        for row, (flabel, series) in enumerate(split.groups.items()):
            ax = axes[row][col]
            log_x = fa.setup_x(ax, summary, x, split.cats)
            extra = p.draw(ax, series, split.cats is None, log_x) or extra
            ax.set_ylabel(p.ylabel)
            fa.set_y_range(ax, values, bounded=p.ymax)
            if p.yfmt is not None:
                ax.yaxis.set_major_formatter(p.yfmt())
            fa.mark_oversubscribed(ax, summary, x, series, p.cols, cpus, log_x)
            fa.facet_title(ax, fa.facet_label(flabel, facet, cpus), p.title)
    caption(fig, dropped)
    fa.show_x_labels(axes)
    fa.legend(fig, axes, extra, title=split.legend_title)
    return fig


def scaling_figure(
    summary: pd.DataFrame,
    hue: str | None = "driver",
    facet: str | None = None,
    notes: list[str] | None = None,
) -> Figure | None:
    """Speedup and parallel efficiency vs workers, relative to each group's 1-worker point."""
    if "speedup" not in summary or "workers" not in summary:
        return None
    if hue == "workers":
        hue = "driver" if "driver" in summary else None
    if facet in ("workers", hue):
        facet = None
    cpus = fa.cpus_available(summary)
    ws = fa.finite(summary["workers"])
    w_lo = float(ws.min()) if ws.size else 1.0
    w_hi = min(float(ws.max()), cpus) if ws.size and cpus else (float(ws.max()) if ws.size else 1)

    def ideal_xs(log_x: bool) -> np.ndarray:
        return np.geomspace(w_lo, w_hi, 64) if log_x and w_lo > 0 else np.linspace(w_lo, w_hi, 64)

    fits, skipped = fit_run(summary, int(cpus) if cpus else None)
    if notes is not None:
        notes.extend(f"scaling: no USL model for {s.group}: {s.reason}" for s in skipped)
    w_model = max([float(ws.max()) if ws.size else 1.0] + [2 * max(f.workers) for f in fits])

    def speedup(ax: Axes, series: Sequence[Series], join: bool, log_x: bool) -> list[Any]:
        proxies = []
        if w_hi > w_lo:
            xs = ideal_xs(log_x)
            ax.plot(xs, xs / w_lo, gid="ideal:speedup", **IDEAL_STYLE)
            proxies.append(fa.ideal_proxy("linear ideal (up to the CPU count)"))
        draw_series(ax, series, "speedup", band=("speedup_lo", "speedup_hi"), join=join)
        drawn = draw_usl(ax, series, fits, w_model, per_worker=False)
        return proxies + ([Line2D([], [], label=USL_LABEL, **MODEL_STYLE)] if drawn else [])

    def efficiency(ax: Axes, series: Sequence[Series], join: bool, log_x: bool) -> None:
        if w_hi > w_lo:
            ax.plot([w_lo, w_hi], [1.0, 1.0], gid="ideal:efficiency", **IDEAL_STYLE)
        draw_series(ax, series, "efficiency", band=("efficiency_lo", "efficiency_hi"), join=join)
        draw_usl(ax, series, fits, w_model, per_worker=True)

    panels = [
        Panel(
            ["speedup", "speedup_lo", "speedup_hi"],
            speedup,
            "speedup vs 1 worker (band: 95% CI)",
            "speedup",
            flat=1.0,
            yfmt=lambda: FuncFormatter(lambda v, _: f"{v:g}"),
            reference=[1.0, w_hi / w_lo] if w_lo > 0 else [],
        ),
        Panel(
            ["efficiency", "efficiency_lo", "efficiency_hi"],
            efficiency,
            "parallel efficiency (band: 95% CI)",
            "efficiency",
            flat=1.0,
            yfmt=lambda: PercentFormatter(1.0),
        ),
    ]
    return panel_figure(summary, panels, "workers", hue, facet, "scaling", notes)


USL_LABEL = "USL model (fitted to the points within the CPU count; extrapolated beyond)"


def draw_usl(
    ax: Axes, series: Sequence[Series], fits: Sequence[Fit], w_end: float, per_worker: bool
) -> bool:
    """Each fitted series' USL speedup (or efficiency, `per_worker`) in the series' colour,
    from 1 worker to `w_end`, widening the x axis to show the extrapolation; speedup is
    relative to the series' measured 1-worker throughput, as the points are. Returns whether
    any curve was drawn."""
    drawn = False
    many_rest = len({s.rest for s in series}) > 1
    for s in series:
        pts = {int(p) for p in s.frame["point"]}
        f = next((f for f in fits if pts <= set(f.points)), None)
        one = s.frame[(s.frame["workers"] == 1) & s.frame["speedup"].notna()]
        if f is None or one.empty:
            continue
        t1 = float(one["ops_per_s"].iloc[0])
        xs = np.geomspace(1.0, w_end, 96)
        style = {**MODEL_STYLE, "color": s.style(many_rest)["color"]}
        ys = f.predict(xs) / t1 / (xs if per_worker else 1.0)
        ax.plot(xs, ys, gid=f"usl:{s.label}", label="_nolegend_", **style)
        drawn = True
    if drawn:
        lo, hi = ax.get_xlim()
        ax.set_xlim(lo, max(hi, w_end * (1.3 if ax.get_xscale() == "log" else 1.05)))
    return drawn


def contention_figure(
    summary: pd.DataFrame,
    x: str = "workers",
    hue: str | None = "driver",
    facet: str | None = None,
    notes: list[str] | None = None,
) -> Figure | None:
    """Share of worker time spent waiting for any lock, and CAS failures per op."""

    def share(ax: Axes, series: Sequence[Series], join: bool, log_x: bool) -> None:
        draw_series(ax, series, "contention_share", join=join)

    def cas(ax: Axes, series: Sequence[Series], join: bool, log_x: bool) -> None:
        draw_series(ax, series, "cas_fail_per_op", join=join)

    panels = [
        Panel(
            ["contention_share"],
            share,
            "lock wait / worker time",
            "lock wait share (all locks; per lock: locks figure)",
            yfmt=lambda: PercentFormatter(1.0),
        ),
        Panel(["cas_fail_per_op"], cas, "CAS failures per op", "CAS failures"),
    ]
    return panel_figure(summary, panels, x, hue, facet, "contention", notes)


def latency_figure(
    summary: pd.DataFrame,
    x: str = "workers",
    hue: str | None = "driver",
    facet: str | None = None,
    notes: list[str] | None = None,
) -> Figure | None:
    """Map and unmap latency percentiles, one panel each (p50 and p99 of map, then of
    unmap), so the line style keeps its one meaning."""

    def make(col: str) -> DrawFn:
        def draw(ax: Axes, series: Sequence[Series], join: bool, log_x: bool) -> None:
            draw_series(ax, series, col, join=join)

        return draw

    panels = [
        Panel([f"{k}_{q}_ns"], make(f"{k}_{q}_ns"), "latency (ns)", f"{k} {q}", flat=None)
        for k in ("map", "unmap")
        for q in ("p50", "p99")
    ]
    return panel_figure(summary, panels, x, hue, facet, "latency percentiles", notes)


def fairness_figure(
    summary: pd.DataFrame,
    x: str = "workers",
    hue: str | None = "driver",
    facet: str | None = None,
    notes: list[str] | None = None,
) -> Figure | None:
    """Per-worker fairness: Jain's index and the least/most busy worker's ops ratio."""
    s = summary.copy()
    if {"worker_ops_min", "worker_ops_max"} <= set(s.columns):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = s["worker_ops_min"].astype(float) / s["worker_ops_max"].astype(float)
        s["worker_min_max"] = ratio.replace([np.inf, -np.inf], np.nan)
    else:
        s["worker_min_max"] = np.nan
    if "jain" not in s:
        s["jain"] = np.nan

    def jain(ax: Axes, series: Sequence[Series], join: bool, log_x: bool) -> None:
        draw_series(ax, series, "jain", join=join)

    def minmax(ax: Axes, series: Sequence[Series], join: bool, log_x: bool) -> list[Any]:
        ax.axhline(0.5, color="0.3", ls=":", lw=1.0)
        draw_series(ax, series, "worker_min_max", join=join)
        return [Line2D([], [], color="0.3", ls=":", lw=1.0, label="starvation (max > 2x min)")]

    panels = [
        Panel(["jain"], jain, "Jain's index", "Jain's fairness", flat=1.0, ymax=1.05),
        Panel(
            ["worker_min_max"],
            minmax,
            "min / max worker ops",
            "least / most busy worker",
            flat=1.0,
            ymax=1.05,
        ),
    ]
    return panel_figure(s, panels, x, hue, facet, "per-worker fairness", notes)
