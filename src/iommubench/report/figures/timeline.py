"""Throughput over time of every repetition of the headline points: per tick, the workers'
summed ops over the tick's length. A repetition with a level shift, or measured in another
placement state than the rest of its point, is drawn dashed or dotted and named so."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from iommubench.analysis import point_flags
from iommubench.analysis.run_reader import Run, norm_value, valid_mask, varying_params
from iommubench.report.figures.axes import show_x_labels
from iommubench.report.figures.data import tick_rates
from iommubench.report.figures.labels import rate_unit, title
from iommubench.report.figures.series import split_series
from iommubench.report.figures.style import COLORS, grid

ALL_POINTS_UP_TO = 6  # runs with this few points show every point
HANDOFF_RATIO = point_flags.HANDOFF_RATIO
CHANGED = "changed"


def truthy(v: Any) -> bool:
    """A points.csv flag value (bool, number or 'True'/'true'/'1') as a bool."""
    if v is None or v is pd.NA:
        return False
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "1.0", "yes")
    try:
        return bool(v) and not (isinstance(v, float) and math.isnan(v))
    except (TypeError, ValueError):
        return False


def headline_points(summary: pd.DataFrame, hue: str | None) -> list[int]:
    """Every point of a small run; else per series its valid point with the most workers
    short of oversubscription."""
    if len(summary) <= ALL_POINTS_UP_TO or "workers" not in summary:
        return [int(p) for p in summary["point"]][: ALL_POINTS_UP_TO * 2]
    ok = summary["valid"].astype(bool)
    if "oversubscribed" in summary:
        ok &= ~summary["oversubscribed"].astype(bool)
    sub = summary[ok]
    if sub.empty:
        return []
    out = []
    for s in split_series(sub, "workers", hue if hue != "workers" else None, None).groups[""]:
        out.append(int(s.frame.loc[s.frame["_x"].idxmax(), "point"]))
    return out


def rep_states(points: pd.DataFrame) -> pd.Series | None:
    """Every repetition's placement state, from the handoff probes clustered over the whole
    run (`fast`, `slow`, `stable`, `changed` or ''), when the analysis layer classifies them."""
    try:
        from iommubench.analysis import placement
    except ImportError:
        return None
    if not {"handoff_ns_before", "handoff_ns_after"} <= set(points.columns):
        return None
    states = placement.classify(placement.probe_values(points))
    return points.apply(
        lambda r: states.of_rep(_num(r["handoff_ns_before"]), _num(r["handoff_ns_after"])), axis=1
    )


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def rep_marks(rows: pd.DataFrame) -> dict[int, list[str]]:
    """rep -> what sets it apart: 'level shift', a placement state other than the point's
    usual one (or 'placement changed' during it), the row's flags (e.g. 'competing-load',
    'window-stretched'), 'invalid'."""
    marks: dict[int, list[str]] = {int(r): [] for r in rows["rep"]}
    states = rows["state"].fillna("").astype(str) if "state" in rows else None
    settled = Counter(s for s in (states if states is not None else []) if s and s != CHANGED)
    common = settled.most_common(1)[0][0] if settled else ""
    valid = valid_mask(rows)
    for i, r in rows.iterrows():
        m = marks[int(r["rep"])]
        if truthy(r.get("level_shift")):
            m.append("level shift")
        if states is not None:
            if states[i] == CHANGED:
                m.append("placement changed")
            elif states[i] and common and states[i] != common:
                m.append(f"placement {states[i]}")
        elif _probes_disagree(r):
            m.append("placement changed")
        flags = r.get("flags")
        if isinstance(flags, str) and flags.strip():
            m.extend(f for f in flags.split(";") if f and f not in m)
        if not bool(valid[i]):
            m.append("invalid")
    return marks


def _probes_disagree(r: pd.Series) -> bool:
    try:
        a, b = float(r.get("handoff_ns_before")), float(r.get("handoff_ns_after"))
    except (TypeError, ValueError):
        return False
    if not (a > 0 and b > 0):
        return False
    return max(a, b) / min(a, b) > HANDOFF_RATIO


def timeline_figure(
    run: Run,
    summary: pd.DataFrame,
    hue: str | None = "driver",
    notes: list[str] | None = None,
) -> Figure | None:
    """One panel per headline point, one line per repetition; None when no series exist."""
    points = run.points
    if "state" not in points:
        states = rep_states(points)
        if states is not None:
            points = points.assign(state=states)
    panels = []
    for p in headline_points(summary, hue):
        rows = points[points["point"] == p].sort_values("rep")
        lines = []
        for _, r in rows.iterrows():
            series = run.series(p, int(r["rep"]))
            if series is not None:
                t, rate = tick_rates(*series)
                if rate.size:
                    lines.append((int(r["rep"]), t, rate))
        if lines:
            panels.append((p, rows, lines))
    if not panels:
        if notes is not None:
            notes.append("timeline: figure skipped (no throughput time series in this run)")
        return None
    ncols = min(len(panels), 3)
    fig, axes = grid(
        math.ceil(len(panels) / ncols), ncols, title("throughput over time", summary), sharex=True
    )
    shown = varying_params(summary)
    for ax, (p, rows, lines) in zip(axes.flat, panels, strict=False):
        srow = summary[summary["point"] == p].iloc[0]
        _draw_point(ax, rows, lines, rate_unit([srow.get("workload", "")]))
        ax.set_title(", ".join(f"{c}={norm_value(srow[c])}" for c in shown), loc="left")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    show_x_labels(axes)
    fig.tight_layout()
    return fig


def _draw_point(
    ax: Axes, rows: pd.DataFrame, lines: list[tuple[int, np.ndarray, np.ndarray]], unit: str
) -> None:
    marks = rep_marks(rows)
    for rep, t, rate in lines:
        m = marks.get(rep, [])
        ls = "--" if "level shift" in m else (":" if any("placement" in x for x in m) else "-")
        color = "0.55" if "invalid" in m else COLORS[rep % len(COLORS)]
        label = f"rep {rep}" + (f" ({', '.join(m)})" if m else "")
        # each tick's rate held over the whole tick, from its start edge to its end edge
        ys = np.concatenate([rate, rate[-1:]])
        ax.step(t, ys, where="post", color=color, ls=ls, lw=1.3, label=label, gid=f"rep:{rep}")
    ax.set_xlabel("time in the counted window (s)")
    ax.set_ylabel(f"{unit} per tick")
    ax.yaxis.set_major_formatter(EngFormatter(sep=" "))
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
