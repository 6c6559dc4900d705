"""A summary split into series (one line per hue value and combination of other varying
parameters), and the drawing of those lines: valid points joined, invalid points as crosses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from iommubench.analysis.run_reader import norm_value, varying_params
from iommubench.report.figures.labels import axis_name
from iommubench.report.figures.style import COLORS, FAILED_MARK, LINESTYLES, MARKERS
from iommubench.spec.parameters import applies


@dataclass
class Series:
    """One line: the points of one hue value (and one combination of other varying params)."""

    hue: str
    rest: str
    hue_index: int
    rest_index: int
    frame: pd.DataFrame

    @property
    def label(self) -> str:
        return ", ".join(p for p in (self.hue, self.rest) if p) or "all"

    def style(self, many_rest: bool) -> dict[str, Any]:
        i = self.hue_index
        ls = LINESTYLES[(self.rest_index if many_rest else i) % len(LINESTYLES)]
        # the marker tells the other parameters apart too, since the latency figure spends
        # the line style on the percentile
        shift = self.rest_index * (len(MARKERS) // 2) if many_rest else 0
        return {
            "color": COLORS[i % len(COLORS)],
            "marker": MARKERS[(i + shift) % len(MARKERS)],
            "linestyle": ls,
            "linewidth": 1.6,
            "markersize": 6,
        }


@dataclass
class Split:
    """Facet label -> its series, the category labels of a non-numeric x, and the names of
    the variables each series label encodes (hue first, then the other varying parameters)."""

    groups: dict[str, list[Series]]
    cats: list[str] | None
    encoded: list[str] = field(default_factory=list)

    @property
    def legend_title(self) -> str | None:
        return ", ".join(axis_name(c) for c in self.encoded) or None


def is_numeric(values: pd.Series) -> bool:
    return bool(pd.to_numeric(values.dropna(), errors="coerce").notna().all())


def natural(s: str) -> tuple[Any, ...]:
    """Sort key: numbers by value, then strings."""
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


def _x_values(summary: pd.DataFrame, x: str) -> tuple[pd.Series, list[str] | None]:
    """Numeric x positions, and category labels when x is not numeric."""
    if is_numeric(summary[x]):
        return pd.to_numeric(summary[x], errors="coerce"), None
    cats = sorted({norm_value(v) for v in summary[x]}, key=natural)
    pos = {c: i for i, c in enumerate(cats)}
    return summary[x].map(lambda v: pos[norm_value(v)]).astype(float), cats


def rest_label(row: pd.Series, cols: Sequence[str]) -> str:
    """'allocator=global, chunk_pages=1': every other varying parameter, by name (one the
    row's workload does not read left out, e.g. chunk_pages of a dma point)."""
    workload = row.get("workload")
    return ", ".join(f"{c}={norm_value(row.get(c))}" for c in cols if applies(c, workload))


def split_series(summary: pd.DataFrame, x: str, hue: str | None, facet: str | None) -> Split:
    """Split a summary into facets of series."""
    df = summary.copy()
    df["_x"], cats = _x_values(df, x)
    hue = hue if hue and hue in df else None
    rest_cols = varying_params(df, exclude=[c for c in (x, hue, facet) if c])
    hue_vals = sorted({norm_value(v) for v in df[hue]}, key=natural) if hue else [""]
    facet_vals = sorted({norm_value(v) for v in df[facet]}, key=natural) if facet else [""]
    rl_all = df.apply(lambda r: rest_label(r, rest_cols), axis=1)
    rest_labels = sorted(set(rl_all))
    groups: dict[str, list[Series]] = {}
    for fv in facet_vals:
        fmask = df[facet].map(norm_value) == fv if facet else pd.Series(True, df.index)
        series = []
        for hi, hv in enumerate(hue_vals):
            hmask = fmask & (df[hue].map(norm_value) == hv) if hue else fmask
            for ri, rv in enumerate(rest_labels):
                sdf = df[hmask & (rl_all == rv)].sort_values("_x")
                if len(sdf):
                    series.append(Series(hv, rv, hi, ri, sdf))
        if cats is not None and len(hue_vals) > 1:
            # dodge: hue values side by side around each category instead of on top
            for se in series:
                off = (se.hue_index - (len(hue_vals) - 1) / 2) * min(0.6 / len(hue_vals), 0.12)
                se.frame = se.frame.assign(_x=se.frame["_x"] + off)
        groups[f"{facet}={fv}" if facet else ""] = series
    encoded = [c for c in (hue, *rest_cols) if c]
    return Split(groups, cats, encoded)


def valid_runs(frame: pd.DataFrame, ycol: str) -> list[pd.DataFrame]:
    """Consecutive (in x order) valid points with a value: each becomes one line segment."""
    f = frame[frame[ycol].notna()]
    runs: list[pd.DataFrame] = []
    cur: list[Any] = []
    for idx, r in f.iterrows():
        if bool(r["valid"]):
            cur.append(idx)
        elif cur:
            runs.append(f.loc[cur])
            cur = []
    if cur:
        runs.append(f.loc[cur])
    return runs


def draw_series(
    ax: Axes,
    series: Sequence[Series],
    ycol: str,
    band: tuple[str, str] | None = None,
    linestyle: Any = None,
    label_suffix: str = "",
    hollow: bool = False,
    join: bool = True,
) -> None:
    """Valid points as lines (with an optional interval band), invalid points as crosses.

    With `join=False` (a categorical x) valid points are markers with interval error bars.
    """
    many_rest = len({s.rest for s in series}) > 1
    for s in series:
        st = s.style(many_rest)
        if linestyle is not None:
            st["linestyle"] = linestyle
        if hollow:
            st["markerfacecolor"] = "white"
        first = True
        if not join:
            first = not _draw_markers(ax, s, ycol, band, st, label_suffix)
        for seg in valid_runs(s.frame, ycol) if join else []:
            ax.plot(
                seg["_x"],
                seg[ycol],
                label=(s.label + label_suffix) if first else "_nolegend_",
                gid=f"series:{s.label}",
                **st,
            )
            if band and len(seg) and band[0] in seg:
                lo, hi = seg[band[0]].astype(float), seg[band[1]].astype(float)
                ax.fill_between(seg["_x"], lo, hi, color=st["color"], alpha=0.18, lw=0)
            first = False
        bad = s.frame[~s.frame["valid"].astype(bool) & s.frame[ycol].notna()]
        if len(bad):
            ax.scatter(bad["_x"], bad[ycol], color=st["color"], gid="audit-failed", **FAILED_MARK)
            if first:  # no valid segment: still name the series in the legend
                ax.plot([], [], label=s.label + label_suffix, **st)


def _draw_markers(
    ax: Axes,
    s: Series,
    ycol: str,
    band: tuple[str, str] | None,
    st: dict[str, Any],
    label_suffix: str,
) -> bool:
    """Valid points of a categorical x as markers with error bars; whether any was drawn."""
    v = s.frame[s.frame["valid"].astype(bool) & s.frame[ycol].notna()]
    if v.empty:
        return False
    yerr = None
    if band and band[0] in v:
        y = v[ycol].astype(float)
        lo, hi = v[band[0]].astype(float), v[band[1]].astype(float)
        yerr = np.vstack([(y - lo).clip(lower=0), (hi - y).clip(lower=0)])
    ax.errorbar(
        v["_x"],
        v[ycol],
        yerr=yerr,
        capsize=3,
        label=s.label + label_suffix,
        gid=f"series:{s.label}",
        **{**st, "linestyle": "none"},
    )
    return True
