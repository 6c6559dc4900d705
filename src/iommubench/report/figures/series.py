"""A summary split into series (one line per hue value and combination of other varying
parameters), and the drawing of those lines: valid points joined (solid between clean
points, dashed to or from a flagged one, whose marker is hollow), audit failures as crosses,
points without a valid repetition as grey diamonds, never joined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from iommubench.analysis import point_flags
from iommubench.analysis.load import LOAD_FLAGS
from iommubench.analysis.run_reader import norm_value, varying_params
from iommubench.report.figures.labels import axis_name
from iommubench.report.figures.style import (
    COLORS,
    FAILED_MARK,
    FLAGGED_LS,
    MARKERS,
    NO_VALID_MARK,
    SOLID,
)
from iommubench.spec.parameters import applies

# a point with one of these flags is drawn hollow, and every segment to or from it dashed
FIGURE_FLAGS = frozenset({"oversubscribed", "noisy", *LOAD_FLAGS})
AUDIT_FAILURES = ("audit-failed", "caught")


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
        """The colour is the hue value, the marker the other parameters (or the hue again
        when nothing else varies); the line style is kept for flags."""
        i = self.hue_index
        m = self.rest_index if many_rest else i
        return {
            "color": COLORS[i % len(COLORS)],
            "marker": MARKERS[m % len(MARKERS)],
            "linestyle": SOLID,
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


def flagged(frame: pd.DataFrame) -> pd.Series:
    """Points whose flags say their number carries more than the strategy's cost."""
    if "flags" not in frame:
        return pd.Series(frame.get("oversubscribed", False), index=frame.index).astype(bool)
    return frame["flags"].map(lambda f: bool(point_flags.split(f) & FIGURE_FLAGS)).astype(bool)


def valid_runs(frame: pd.DataFrame, ycol: str) -> list[pd.DataFrame]:
    """Consecutive (in x order) valid points with a value: each becomes one line."""
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


def _clean_runs(seg: pd.DataFrame, bad: pd.Series) -> list[pd.DataFrame]:
    """Maximal stretches of consecutive unflagged points of one valid run."""
    out, cur = [], []
    for idx in seg.index:
        if bad[idx]:
            if cur:
                out.append(seg.loc[cur])
            cur = []
        else:
            cur.append(idx)
    return [*out, seg.loc[cur]] if cur else out


def _draw_run(
    ax: Axes, s: Series, seg: pd.DataFrame, ycol: str, st: dict[str, Any], bad: pd.Series
) -> None:
    """One valid run: solid between clean points, dashed to or from flagged ones, hollow
    markers on the flagged points."""
    for clean in _clean_runs(seg, bad):
        ax.plot(clean["_x"], clean[ycol], label="_nolegend_", gid=f"series:{s.label}", **st)
    xs, ys = seg["_x"].to_numpy(), seg[ycol].to_numpy(dtype=float)
    marks = bad[seg.index].to_numpy()
    dashed = {k: v for k, v in st.items() if k not in ("marker", "linestyle")}
    for i in range(len(seg) - 1):
        if marks[i] or marks[i + 1]:
            ax.plot(xs[i : i + 2], ys[i : i + 2], ls=FLAGGED_LS, marker="", label="_nolegend_",
                    gid=f"flagged-segment:{s.label}", **dashed)  # fmt: skip
    if marks.any():
        hollow = {**st, "linestyle": "none", "markerfacecolor": "white"}
        ax.plot(xs[marks], ys[marks], label="_nolegend_", gid=f"flagged:{s.label}", **hollow)


def draw_invalid(ax: Axes, s: Series, ycol: str, color: str) -> None:
    """Points without a valid result: a cross when their audit failed, else a grey
    diamond (failed repetitions, stretched windows, no work); never joined."""
    f = s.frame
    bad = f[~f["valid"].astype(bool) & f[ycol].notna()]
    if bad.empty:
        return
    audit = bad["verdict"].isin(AUDIT_FAILURES) if "verdict" in bad else pd.Series(False, bad.index)
    if audit.any():
        ax.scatter(
            bad[audit]["_x"], bad[audit][ycol], color=color, gid="audit-failed", **FAILED_MARK
        )
    if (~audit).any():
        ax.scatter(bad[~audit]["_x"], bad[~audit][ycol], gid="no-valid", **NO_VALID_MARK)


def draw_series(
    ax: Axes,
    series: Sequence[Series],
    ycol: str,
    band: tuple[str, str] | None = None,
    label_suffix: str = "",
    join: bool = True,
) -> None:
    """Valid points as lines with an optional interval band (see the module docstring).

    With `join=False` (a categorical x) valid points are markers with interval error bars.
    """
    many_rest = len({s.rest for s in series}) > 1
    for s in series:
        st = s.style(many_rest)
        bad = flagged(s.frame)
        # the legend shows each series once, solid and filled, whatever its points' flags
        ax.plot([], [], label=s.label + label_suffix, gid=f"legend:{s.label}", **st)
        if not join:
            _draw_markers(ax, s, ycol, band, st, bad)
        for seg in valid_runs(s.frame, ycol) if join else []:
            _draw_run(ax, s, seg, ycol, st, bad)
            if band and len(seg) and band[0] in seg:
                lo, hi = seg[band[0]].astype(float), seg[band[1]].astype(float)
                ax.fill_between(seg["_x"], lo, hi, color=st["color"], alpha=0.18, lw=0)
        draw_invalid(ax, s, ycol, st["color"])


def _draw_markers(
    ax: Axes,
    s: Series,
    ycol: str,
    band: tuple[str, str] | None,
    st: dict[str, Any],
    bad: pd.Series,
) -> None:
    """Valid points of a categorical x as markers with error bars (hollow when flagged)."""
    v = s.frame[s.frame["valid"].astype(bool) & s.frame[ycol].notna()]
    for hollow in (False, True):
        part = v[bad[v.index] == hollow]
        if part.empty:
            continue
        yerr = None
        if band and band[0] in part:
            y = part[ycol].astype(float)
            lo, hi = part[band[0]].astype(float), part[band[1]].astype(float)
            yerr = np.vstack([(y - lo).clip(lower=0), (hi - y).clip(lower=0)])
        face = {"markerfacecolor": "white"} if hollow else {}
        gid = f"flagged:{s.label}" if hollow else f"series:{s.label}"
        ax.errorbar(part["_x"], part[ycol], yerr=yerr, capsize=3, label="_nolegend_", gid=gid,
                    **{**st, **face, "linestyle": "none"})  # fmt: skip
