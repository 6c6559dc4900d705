"""Axes: the x axis, a log y axis where a panel spans more than 10x, oversubscription
shading, the linear ideal (straight in the axis' own scale, never past the CPU count), and
the figure legend that names every encoded variable."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    NullFormatter,
    NullLocator,
)

from iommubench.analysis.run_reader import norm_value
from iommubench.report.figures.labels import axis_name
from iommubench.report.figures.series import Series
from iommubench.report.figures.style import (
    FLAGGED_LS,
    IDEAL_STYLE,
    OVERSUB_STYLE,
)

LOG_SPAN = 10.0  # a panel whose positive values span more than this ratio gets a log y axis
FLAT_TOL = 1e-3
IDEAL_SAMPLES = 64


def setup_x(ax: Axes, summary: pd.DataFrame, x: str, cats: list[str] | None) -> bool:
    """Label the x axis; log2 for wide positive numeric ranges. Returns whether it is log."""
    ax.set_xlabel(axis_name(x))
    if cats is not None:
        ax.xaxis.set_major_locator(FixedLocator(range(len(cats))))
        ax.set_xticklabels(cats, rotation=20 if max(map(len, cats)) > 8 else 0)
        ax.set_xlim(-0.5, len(cats) - 0.5)
        return False
    xs = sorted(pd.to_numeric(summary[x], errors="coerce").dropna().unique())
    if not xs:
        return False
    log = xs[0] > 0 and xs[-1] / xs[0] >= 8
    if log:
        ax.set_xscale("log", base=2)
        ax.set_xlim(xs[0] / 1.3, xs[-1] * 1.3)
    else:
        pad = (xs[-1] - xs[0]) * 0.05 or 0.5
        ax.set_xlim(xs[0] - pad, xs[-1] + pad)
    ax.xaxis.set_major_locator(FixedLocator(xs))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([norm_value(v) for v in xs])
    return log


def cpus_available(summary: pd.DataFrame) -> float | None:
    """The CPU count of the run (the largest recorded), or None when unknown."""
    if "cpus_available" not in summary:
        return None
    c = pd.to_numeric(summary["cpus_available"], errors="coerce").dropna()
    return float(c.max()) if len(c) else None


def shade_oversubscribed(ax: Axes, xs: Iterable[float], cpus: float | None, log: bool) -> None:
    """Shade x > cpus (the workers beyond the CPUs available); the legend names it."""
    if cpus is None or not np.isfinite(cpus):
        return
    xs = sorted({float(v) for v in xs if np.isfinite(v)})
    above = [v for v in xs if v > cpus]
    if not above:
        return
    nxt = above[0]
    start = math.sqrt(cpus * nxt) if log and cpus > 0 else (cpus + nxt) / 2.0
    lo, hi = ax.get_xlim()
    span = ax.axvspan(start, hi, gid="oversubscribed", zorder=0, lw=0, **OVERSUB_STYLE)
    span.set_label(f"_oversubscribed (> {cpus:g} CPUs available)")
    ax.set_xlim(lo, hi)


RING = {"s": 170, "facecolors": "none", "edgecolors": "0.35", "linewidths": 1.2, "zorder": 5}


def ring_oversubscribed(ax: Axes, series: Sequence[Series], ycol: str, cpus: float | None) -> None:
    """Ring each oversubscribed point: where x is not workers there is no region to shade."""
    for s in series:
        f = s.frame
        if "oversubscribed" not in f or ycol not in f:
            continue
        o = f[f["oversubscribed"].astype(bool) & f[ycol].notna()]
        if len(o):
            ring = ax.scatter(o["_x"], o[ycol], gid="oversubscribed-point", **RING)
            more = f" (> {cpus:g} CPUs available)" if cpus is not None else ""
            ring.set_label(f"_oversubscribed{more}, ringed")


def mark_oversubscribed(
    ax: Axes,
    summary: pd.DataFrame,
    x: str,
    series: Sequence[Series],
    ycols: Sequence[str],
    cpus: float | None,
    log_x: bool,
) -> None:
    """Shade the oversubscribed region when x is workers, else ring the oversubscribed points."""
    if x == "workers":
        shade_oversubscribed(ax, pd.to_numeric(summary["workers"], errors="coerce"), cpus, log_x)
        return
    for c in ycols:
        ring_oversubscribed(ax, series, c, cpus)


def facet_label(label: str, facet: str | None, cpus: float | None) -> str:
    """'workers=8 (oversubscribed: > 4 CPUs)' for a workers facet beyond the CPU count."""
    if facet != "workers" or cpus is None or "=" not in label:
        return label
    try:
        value = float(label.split("=", 1)[1])
    except ValueError:
        return label
    return f"{label} (oversubscribed: > {cpus:g} CPUs)" if value > cpus else label


def show_x_labels(axes: np.ndarray) -> None:
    """Tick labels under every visible panel (shared x hides them above a missing panel)."""
    for ax in axes.flat:
        if ax.get_visible():
            ax.tick_params(labelbottom=True)


def finite(values: Iterable[Any]) -> np.ndarray:
    a = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(float)
    return a[np.isfinite(a)]


def uninformative(values: Iterable[Any], flat: float | None = 0.0) -> str | None:
    """Why a panel of these values would say nothing (all missing, or all `flat`), or None."""
    v = finite(values)
    if v.size == 0:
        return "no value at any point"
    if flat is not None and np.all(np.abs(v - flat) <= FLAT_TOL * max(1.0, abs(flat))):
        return f"{flat:g} at every point"
    return None


def wants_log(values: Iterable[Any]) -> bool:
    """True when every value is positive and they span more than LOG_SPAN."""
    v = finite(values)
    return bool(v.size and v.min() > 0 and v.max() / v.min() > LOG_SPAN)


def set_y_range(ax: Axes, values: Iterable[Any], bounded: float | None = None) -> bool:
    """Log y when the values span more than 10x, else linear from 0; returns whether log."""
    v = finite(values)
    if wants_log(v):
        ax.set_yscale("log")
        ax.set_ylim(v.min() / 1.5, v.max() * 1.5)
        # labels at 1, 2 and 5 of each decade, as plain numbers (a panel's own formatter,
        # set after this, replaces the plain one); no labels on the other minor ticks
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        return True
    top = bounded if bounded is not None else (float(v.max()) * 1.12 if v.size else 1.0)
    ax.set_ylim(0, top if top > 0 else 1.0)
    return False


def ideal_points(
    s: Series, ycol: str, cpus: float | None, log_x: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """The linear ideal of one series: y = y0 * x / x0 from its smallest valid,
    non-oversubscribed point, sampled densely so it is exact in any axis scale, and ending at
    the CPU count (never in the oversubscribed region)."""
    f = s.frame
    ok = f["valid"].astype(bool) & f[ycol].notna()
    if "oversubscribed" in f:
        ok &= ~f["oversubscribed"].astype(bool)
    v = f[ok]
    if v.empty:
        return None
    base = v.loc[v["_x"].idxmin()]
    x0, y0 = float(base["_x"]), float(base[ycol])
    x_end = float(f["_x"].max())
    if cpus is not None and np.isfinite(cpus):
        x_end = min(x_end, cpus)
    if not (x0 > 0 and x_end > x0):
        return None
    xs = np.geomspace(x0, x_end, IDEAL_SAMPLES) if log_x else np.linspace(x0, x_end, IDEAL_SAMPLES)
    return xs, y0 * xs / x0


def draw_ideals(
    ax: Axes, series: Sequence[Series], ycol: str, cpus: float | None, log_x: bool
) -> list[float]:
    """Each series' linear ideal as a dotted line of its colour; returns the ideal y values."""
    many_rest = len({s.rest for s in series}) > 1
    ys: list[float] = []
    for s in series:
        pts = ideal_points(s, ycol, cpus, log_x)
        if pts is None:
            continue
        style = {**IDEAL_STYLE, "color": s.style(many_rest)["color"]}
        ax.plot(*pts, alpha=0.8, gid=f"ideal:{s.label}", label="_nolegend_", **style)
        ys.extend(pts[1].tolist())
    return ys


def ideal_proxy(text: str = "linear ideal (up to the CPU count)") -> Line2D:
    return Line2D([], [], label=text, **IDEAL_STYLE)


def _drawn(axes: np.ndarray, gid: str, prefix: bool = False) -> bool:
    """Whether any artist with this gid (or gid prefix) was drawn on the panels."""
    for ax in axes.flat:
        for a in [*ax.collections, *ax.get_lines(), *ax.patches]:
            g = a.get_gid() or ""
            if g == gid or (prefix and g.startswith(gid)):
                return True
    return False


def marks(axes: np.ndarray) -> list[tuple[str, Any]]:
    """Legend entries for the marks that were drawn, and only those: flagged points, audit
    failures, points without a valid repetition."""
    out: list[tuple[str, Any]] = []
    if _drawn(axes, "flagged", prefix=True):
        text = "flagged (load, shift, placement, noisy, oversub.): hollow, dashed"
        out.append((text, Line2D([], [], color="0.3", ls=FLAGGED_LS, marker="o", mfc="white")))
    if _drawn(axes, "audit-failed"):
        out.append(("audit failed", Line2D([], [], marker="x", color="0.2", ls="none", mew=2)))
    if _drawn(axes, "no-valid"):
        diamond = {"marker": "D", "mfc": "none", "mec": "0.5", "ls": "none"}
        out.append(("no valid repetition (not an audit failure)", Line2D([], [], **diamond)))
    return out


def legend(
    fig: Figure, axes: np.ndarray, extra: Sequence[Any] = (), title: str | None = None
) -> None:
    """One legend for the figure, outside the panels: every series, the extra encodings,
    shading and the marks drawn."""
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        h, labels = ax.get_legend_handles_labels()
        for hh, ll in zip(h, labels, strict=True):
            handles.setdefault(ll, hh)
    items = list(handles.items())
    for proxy in extra:
        items.append((proxy.get_label(), proxy))
    spans = [p for ax in axes.flat for p in ax.patches if p.get_gid() == "oversubscribed"]
    if spans:
        text = spans[0].get_label().lstrip("_")
        items.append((text, Patch(label=text, **OVERSUB_STYLE)))
    rings = [c for ax in axes.flat for c in ax.collections if c.get_gid() == "oversubscribed-point"]
    if rings:
        text = rings[0].get_label().lstrip("_")
        ring = {"marker": "o", "ms": 12, "mfc": "none", "mec": "0.35", "ls": "none"}
        items.append((text, Line2D([], [], **ring)))
    items += marks(axes)
    if items:
        fig.legend(
            [h for _, h in items],
            [lbl for lbl, _ in items],
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            title=title,
        )
    fig.tight_layout()


def facet_title(ax: Axes, facet_label: str, panel: str = "") -> None:
    t = " — ".join(p for p in (facet_label, panel) if p)
    if t:
        ax.set_title(t, loc="left")
