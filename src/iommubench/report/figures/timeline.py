"""Throughput over time of every repetition of the headline points, one panel per point:
the workers' summed ops over bins of at least 50 ms (ticks of 10 ms read as noise). Each
repetition has its own colour, the same in every panel; a flagged repetition (competing
load, a level shift, another placement state) is dashed, a set-aside one grey; the thin
black line is the point's median. One legend, outside the panels; each panel's title names
its point and what sets its repetitions apart."""

from __future__ import annotations

import math
import textwrap
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter

from iommubench.analysis import load, point_flags
from iommubench.analysis.run_reader import Run, norm_value, valid_mask, varying_params
from iommubench.report.figures.axes import show_x_labels
from iommubench.report.figures.data import tick_rates
from iommubench.report.figures.labels import rate_unit, title
from iommubench.report.figures.series import split_series
from iommubench.report.figures.style import COLORS, grid

ALL_POINTS_UP_TO = 6  # runs with this few points show every point
BIN_S = 0.05  # the shortest bin a line is drawn over
NOTE_WIDTH = 70  # characters of a panel's note per line
MAX_BINS = 40
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


def rep_colors(n: int) -> list[Any]:
    """n distinct colours: the figures' palette up to 8, tab10 / tab20 up to 20, then a
    sequential map (a long run reads as early to late)."""
    if n <= len(COLORS):
        return COLORS[:n]
    if n <= 20:
        cmap = colormaps["tab10" if n <= 10 else "tab20"]
        return [cmap(i) for i in range(n)]
    return [colormaps["viridis"](i / (n - 1)) for i in range(n)]


def binned(edges: np.ndarray, rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres in s, throughput per bin) over bins of at least BIN_S and at most
    MAX_BINS per window, each the ops of its ticks over their time."""
    if rate.size == 0:
        return np.array([]), np.array([])
    dt = np.diff(edges)
    span = float(edges[-1] - edges[0])
    per = max(1, int(np.ceil(rate.size / MAX_BINS)), round(BIN_S / max(np.median(dt), 1e-9)))
    groups = np.arange(rate.size) // per
    ops = np.bincount(groups, weights=rate * dt)
    secs = np.bincount(groups, weights=dt)
    starts = edges[:-1][::per][: ops.size]
    centres = starts + secs / 2
    return (centres, ops / secs) if span > 0 else (np.array([]), np.array([]))


def _reps(reps: list[int]) -> str:
    return "r" + ", r".join(map(str, reps)) if len(reps) <= 4 else f"{len(reps)} reps"


def _rep_note(rows: pd.DataFrame, marks: dict[int, list[str]]) -> str:
    """'load: 9 of 10 reps (31-73%); level shift: r2; set aside: r4', wrapped to a panel."""
    loaded, shifted, aside = [], [], []
    for _, r in rows.iterrows():
        rep, m = int(r["rep"]), marks.get(int(r["rep"]), [])
        if "competing-load" in m:
            loaded.append(load.load_share(r))
        if "level shift" in m:
            shifted.append(rep)
        if "invalid" in m or any(x.startswith("placement") for x in m):
            aside.append(rep)
    parts = []
    if loaded:
        spread = (
            f"{min(loaded):.0%}" if len(loaded) == 1 else f"{min(loaded):.0%}-{max(loaded):.0%}"
        )
        parts.append(f"load: {len(loaded)} of {len(rows)} reps ({spread})")
    parts += [
        f"{what}: {_reps(v)}" for what, v in (("level shift", shifted), ("set aside", aside)) if v
    ]
    return "\n".join(textwrap.wrap("; ".join(parts) or "no repetition flagged", NOTE_WIDTH))


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
                    lines.append((int(r["rep"]), *binned(t, rate)))
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
    reps = sorted({rep for _, _, lines in panels for rep, _, _ in lines})
    colors = dict(zip(reps, rep_colors(len(reps)), strict=True))
    kinds: set[str] = set()
    for ax, (p, rows, lines) in zip(axes.flat, panels, strict=False):
        srow = summary[summary["point"] == p].iloc[0]
        marks = rep_marks(rows)
        kinds |= _draw_point(ax, marks, lines, colors, rate_unit([srow.get("workload", "")]))
        ax.axhline(float(srow["ops_per_s"]), color="0.1", lw=1.0, ls=":", gid="median", zorder=5)
        name = ", ".join(f"{c}={norm_value(srow[c])}" for c in shown) or "all"
        ax.set_title(f"{name}\n{_rep_note(rows, marks)}", loc="left", fontsize=8.5)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    show_x_labels(axes)
    _legend(fig, colors, kinds)
    return fig


STYLES = {  # what each kind of line means, for the legend (only those drawn)
    "clean": ("clean repetition", {"color": "0.3", "ls": "-"}),
    "flagged": ("flagged: load, level shift", {"color": "0.3", "ls": "--"}),
    "aside": ("set aside (placement, invalid)", {"color": "0.65", "ls": "--", "lw": 1}),
}


def _legend(fig: Figure, colors: dict[int, Any], kinds: set[str]) -> None:
    handles = [Line2D([], [], color=c, lw=2, label=f"rep {r}") for r, c in colors.items()]
    handles += [Line2D([], [], label=text, **st) for k, (text, st) in STYLES.items() if k in kinds]
    handles.append(Line2D([], [], color="0.1", lw=1.0, ls=":", label="the point's median"))
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), title="repetition")
    fig.tight_layout()


def _draw_point(
    ax: Axes,
    marks: dict[int, list[str]],
    lines: list[tuple[int, np.ndarray, np.ndarray]],
    colors: dict[int, Any],
    unit: str,
) -> set[str]:
    """Draw one point's repetitions; returns the kinds of line drawn (see STYLES)."""
    kinds: set[str] = set()
    for rep, t, rate in lines:
        m = marks.get(rep, [])
        aside = "invalid" in m or any(x.startswith("placement") for x in m)
        flagged = aside or "level shift" in m or "competing-load" in m
        color, lw = ("0.65", 1.0) if aside else (colors[rep], 1.5)
        kinds.add("aside" if aside else "flagged" if flagged else "clean")
        label = f"rep {rep}" + (f" ({', '.join(m)})" if m else "")
        ax.plot(t, rate, color=color, ls="--" if flagged else "-", lw=lw, label=label,
                gid=f"rep:{rep}")  # fmt: skip
    ax.set_xlabel("time in the counted window (s)")
    ax.set_ylabel(f"{unit} (per {BIN_S * 1000:.0f} ms or more)")
    ax.yaxis.set_major_formatter(EngFormatter(sep=" "))
    ax.set_ylim(bottom=0)
    return kinds
