"""Figures of a run: throughput, scaling, contention, latency, fairness (PNG and SVG each).

One style for every figure, readable in grayscale: each hue value gets its own colour, marker
and line style. Points whose audit failed (or that have no valid repetition) are drawn as
crosses and never joined into a line; a line breaks where such a point sits. When x is
`workers`, the region beyond the CPUs available is shaded and labelled "oversubscribed".

Any parameter can be x, hue or facet; the remaining parameters that vary split a hue into
several series (told apart by line style).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import EngFormatter, FixedLocator, NullLocator, PercentFormatter

from iommubench import stats

# Okabe-Ito: distinguishable with colour-vision deficiency; markers/lines carry it in grayscale
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
MARKERS = ["o", "s", "^", "D", "v", "P", "*", "X"]
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (3, 1)), (0, (1, 2)), (0, (8, 2))]
FAILED_MARK = {"marker": "x", "s": 70, "linewidths": 2.0, "zorder": 6}
FORMATS = ("png", "svg")
RC = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.color": "0.88",
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "svg.fonttype": "none",
}
PANEL_W, PANEL_H = 5.2, 3.6
P99_SUFFIX = " (p99)"
OVERSUB_STYLE = {"facecolor": "0.92", "edgecolor": "0.72", "hatch": "///"}


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
        return f"{self.hue} {self.rest}".strip() or "all"

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


# --------------------------------------------------------------------------- data


def load_summary(run_dir: str | Path) -> tuple[stats.Run, pd.DataFrame]:
    """The run and its per-point summary with scaling columns."""
    run = stats.load_run(run_dir)
    return run, stats.with_scaling(stats.summarize(run))


def _is_numeric(values: pd.Series) -> bool:
    return pd.to_numeric(values.dropna(), errors="coerce").notna().all()


def _x_values(summary: pd.DataFrame, x: str) -> tuple[pd.Series, list[str] | None]:
    """Numeric x positions, and category labels when x is not numeric."""
    if _is_numeric(summary[x]):
        return pd.to_numeric(summary[x], errors="coerce"), None
    cats = sorted({stats.norm_value(v) for v in summary[x]})
    pos = {c: i for i, c in enumerate(cats)}
    return summary[x].map(lambda v: pos[stats.norm_value(v)]).astype(float), cats


def split_series(
    summary: pd.DataFrame, x: str, hue: str | None, facet: str | None
) -> tuple[dict[str, list[Series]], list[str] | None]:
    """Facet label -> its series; plus category labels for a non-numeric x."""
    df = summary.copy()
    df["_x"], cats = _x_values(df, x)
    rest_cols = stats.varying_params(df, exclude=[c for c in (x, hue, facet) if c])
    hue_vals = sorted({stats.norm_value(v) for v in df[hue]}) if hue and hue in df else [""]
    facet_vals = sorted({stats.norm_value(v) for v in df[facet]}, key=_natural) if facet else [""]
    rest_labels = sorted({stats.label(r, rest_cols) for _, r in df.iterrows()})
    out: dict[str, list[Series]] = {}
    for fv in facet_vals:
        fdf = df[df[facet].map(stats.norm_value) == fv] if facet else df
        series = []
        for hi, hv in enumerate(hue_vals):
            hdf = fdf[fdf[hue].map(stats.norm_value) == hv] if hue and hue in fdf else fdf
            if hdf.empty:
                continue
            rl = hdf.apply(lambda r: stats.label(r, rest_cols), axis=1)
            for ri, rv in enumerate(rest_labels):
                sdf = hdf[rl == rv].sort_values("_x")
                if len(sdf):
                    series.append(Series(hv, rv, hi, ri, sdf))
        if cats is not None and len(hue_vals) > 1:
            # dodge: hue values side by side around each category instead of on top
            for se in series:
                off = (se.hue_index - (len(hue_vals) - 1) / 2) * min(0.6 / len(hue_vals), 0.12)
                se.frame = se.frame.assign(_x=se.frame["_x"] + off)
        out[f"{facet}={fv}" if facet else ""] = series
    return out, cats


def _natural(s: str) -> tuple[Any, ...]:
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


def _valid_runs(frame: pd.DataFrame, ycol: str) -> list[pd.DataFrame]:
    """Consecutive (in x order) valid points with a value: each becomes one line segment."""
    f = frame[frame[ycol].notna()]
    runs: list[pd.DataFrame] = []
    cur: list[int] = []
    for idx, r in f.iterrows():
        if bool(r["valid"]):
            cur.append(idx)
        elif cur:
            runs.append(f.loc[cur])
            cur = []
    if cur:
        runs.append(f.loc[cur])
    return runs


# --------------------------------------------------------------------------- drawing


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
    """Valid points as lines (with an optional CI band), invalid points as crosses.

    With `join=False` (a categorical x) valid points are markers with CI error bars.
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
            v = s.frame[s.frame["valid"].astype(bool) & s.frame[ycol].notna()]
            if len(v):
                yerr = None
                if band and band[0] in v:
                    y = v[ycol].astype(float)
                    lo, hi = v[band[0]].astype(float), v[band[1]].astype(float)
                    yerr = np.vstack([(y - lo).clip(lower=0), (hi - y).clip(lower=0)])
                st["linestyle"] = "none"
                ax.errorbar(
                    v["_x"],
                    v[ycol],
                    yerr=yerr,
                    capsize=3,
                    label=s.label + label_suffix,
                    gid=f"series:{s.label}",
                    **st,
                )
                first = False
        for seg in _valid_runs(s.frame, ycol) if join else []:
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


def shade_oversubscribed(ax: Axes, xs: Sequence[float], cpus: float | None, log: bool) -> None:
    """Shade x > cpus (the workers beyond the CPUs available) and label it."""
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
    # labelled once per figure, in the legend (see _legend), so no title or data is covered
    span.set_label(f"_oversubscribed (> {cpus:g} CPUs available)")
    ax.set_xlim(lo, hi)


def _setup_x(ax: Axes, summary: pd.DataFrame, x: str, cats: list[str] | None) -> bool:
    """Label the x axis; log2 for wide positive numeric ranges. Returns whether it is log."""
    ax.set_xlabel(x.replace("_", " "))
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
    ax.set_xticklabels([stats.norm_value(v) for v in xs])
    return log


def _cpus(summary: pd.DataFrame) -> float | None:
    if "cpus_available" not in summary:
        return None
    c = pd.to_numeric(summary["cpus_available"], errors="coerce").dropna()
    return float(c.max()) if len(c) else None


def _grid(nrows: int, ncols: int, title: str) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(PANEL_W * ncols, PANEL_H * nrows), squeeze=False
    )
    fig.suptitle(title, fontsize=11)
    return fig, axes


def _legend(
    fig: Figure, axes: np.ndarray, extra: Sequence[Any] = (), title: str | None = None
) -> None:
    handles: dict[str, Any] = {}
    failed = False
    for ax in axes.flat:
        h, labels = ax.get_legend_handles_labels()
        for hh, ll in zip(h, labels, strict=True):
            if not ll.endswith(P99_SUFFIX):  # one legend entry per series, styles explained apart
                handles.setdefault(ll, hh)
        failed = failed or any(c.get_gid() == "audit-failed" for c in ax.collections)
    items = list(handles.items())
    for proxy in extra:
        items.append((proxy.get_label(), proxy))
    spans = [p for ax in axes.flat for p in ax.patches if p.get_gid() == "oversubscribed"]
    if spans:
        text = spans[0].get_label().lstrip("_")
        items.append((text, Patch(label=text, **OVERSUB_STYLE)))
    if failed:
        items.append(
            ("audit failed / invalid", Line2D([], [], marker="x", color="0.2", ls="none", mew=2))
        )
    if items:
        fig.legend(
            [h for _, h in items],
            [lbl for lbl, _ in items],
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            title=title.replace("_", " ") if title else None,
        )
    fig.tight_layout()


def _empty(summary: pd.DataFrame, cols: Sequence[str]) -> bool:
    return all(c not in summary or summary[c].isna().all() for c in cols)


def _facet_title(ax: Axes, facet_label: str, panel: str = "") -> None:
    t = " — ".join(p for p in (facet_label, panel) if p)
    if t:
        ax.set_title(t, loc="left")


# --------------------------------------------------------------------------- figures


def throughput_figure(
    summary: pd.DataFrame,
    x: str = "workers",
    hue: str | None = "driver",
    facet: str | None = None,
    title: str = "throughput",
) -> Figure:
    """Median ops/s vs x with 95% CI bands, the linear ideal per series when x is workers."""
    groups, cats = split_series(summary, x, hue, facet)
    n = len(groups)
    ncols = min(n, 3)
    fig, axes = _grid(math.ceil(n / ncols), ncols, title)
    cpus = _cpus(summary)
    extra = []
    for ax, (flabel, series) in zip(axes.flat, groups.items(), strict=False):
        log = _setup_x(ax, summary, x, cats)
        draw_series(ax, series, "ops_per_s", band=("ci_lo", "ci_hi"), join=cats is None)
        ymax = np.nanmax([s.frame[["ops_per_s", "ci_hi"]].max().max() for s in series] + [0])
        if x == "workers":
            many_rest = len({s.rest for s in series}) > 1
            for s in series:
                v = s.frame[s.frame["valid"].astype(bool) & s.frame["ops_per_s"].notna()]
                if v.empty:
                    continue
                base = v.iloc[0]
                x0, x1 = float(base["_x"]), float(s.frame["_x"].max())
                xs = np.geomspace(x0, x1, 50) if log else np.linspace(x0, x1, 50)
                ideal = base["ops_per_s"] * xs / base["_x"]
                ax.plot(
                    xs,
                    ideal,
                    color=s.style(many_rest)["color"],
                    ls=":",
                    lw=1.0,
                    alpha=0.8,
                    gid=f"ideal:{s.label}",
                    label="_nolegend_",
                )
            extra = [Line2D([], [], color="0.3", ls=":", lw=1.0, label="linear ideal")]
        ax.set_ylim(0, ymax * 1.12 if ymax > 0 else 1)
        ax.yaxis.set_major_formatter(EngFormatter(sep=" "))
        ax.set_ylabel("ops/s (median, 95% CI)")
        if x == "workers":
            shade_oversubscribed(ax, summary["workers"].astype(float), cpus, log)
        _facet_title(ax, flabel)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    _legend(fig, axes, extra, title=hue)
    return fig


def _panel_figure(
    summary: pd.DataFrame,
    panels: Sequence[dict[str, Any]],
    x: str,
    hue: str | None,
    facet: str | None,
    title: str,
) -> Figure | None:
    """Facets as rows, panels as columns; panels whose column is all empty are dropped."""
    panels = [p for p in panels if not _empty(summary, p["cols"])]
    if not panels:
        return None
    groups, cats = split_series(summary, x, hue, facet)
    fig, axes = _grid(len(groups), len(panels), title)
    cpus = _cpus(summary)
    extra: list[Any] = []
    for row, (flabel, series) in enumerate(groups.items()):
        for col, p in enumerate(panels):
            ax = axes[row][col]
            log = _setup_x(ax, summary, x, cats)
            extra = p["draw"](ax, series, cats is None) or extra
            ax.set_ylabel(p["ylabel"])
            if p.get("yfmt"):
                ax.yaxis.set_major_formatter(p["yfmt"])
            if x == "workers":
                shade_oversubscribed(ax, summary["workers"].astype(float), cpus, log)
            _facet_title(ax, flabel, p["title"])
    _legend(fig, axes, extra, title=hue)
    return fig


def scaling_figure(
    summary: pd.DataFrame, hue: str | None = "driver", facet: str | None = None
) -> Figure | None:
    """Speedup and parallel efficiency vs workers, relative to each group's 1-worker point."""
    if "speedup" not in summary or _empty(summary, ["speedup"]):
        return None
    if hue == "workers":
        hue = "driver" if "driver" in summary else None
    if facet in ("workers", hue):
        facet = None

    def speedup(ax: Axes, series: Sequence[Series], join: bool) -> list[Any]:
        xs = summary["workers"].astype(float)
        ax.plot([xs.min(), xs.max()], [xs.min(), xs.max()], color="0.3", ls=":", lw=1.0)
        draw_series(ax, series, "speedup", join=join)
        ax.set_ylim(bottom=0)
        return [Line2D([], [], color="0.3", ls=":", lw=1.0, label="linear ideal")]

    def efficiency(ax: Axes, series: Sequence[Series], join: bool) -> None:
        ax.axhline(1.0, color="0.3", ls=":", lw=1.0)
        draw_series(ax, series, "efficiency", join=join)
        ax.set_ylim(0, 1.15)

    panels = [
        {"cols": ["speedup"], "draw": speedup, "ylabel": "speedup vs 1 worker", "title": "speedup"},
        {
            "cols": ["efficiency"],
            "draw": efficiency,
            "ylabel": "parallel efficiency",
            "title": "efficiency",
            "yfmt": PercentFormatter(1.0),
        },
    ]
    return _panel_figure(summary, panels, "workers", hue, facet, "scaling")


def contention_figure(
    summary: pd.DataFrame, x: str = "workers", hue: str | None = "driver", facet: str | None = None
) -> Figure | None:
    """Share of worker time spent waiting for a lock, and CAS failures per op."""

    def share(ax: Axes, series: Sequence[Series], join: bool) -> None:
        draw_series(ax, series, "contention_share", join=join)
        ax.set_ylim(0, max(0.05, float(summary["contention_share"].max()) * 1.12))

    def cas(ax: Axes, series: Sequence[Series], join: bool) -> None:
        draw_series(ax, series, "cas_fail_per_op", join=join)
        ax.set_ylim(bottom=0)

    panels = [
        {
            "cols": ["contention_share"],
            "draw": share,
            "ylabel": "lock wait / worker time",
            "title": "lock wait share (all locks)",
            "yfmt": PercentFormatter(1.0),
        },
        {
            "cols": ["cas_fail_per_op"],
            "draw": cas,
            "ylabel": "CAS failures per op",
            "title": "CAS failures",
        },
    ]
    return _panel_figure(summary, panels, x, hue, facet, "contention")


def latency_figure(
    summary: pd.DataFrame, x: str = "workers", hue: str | None = "driver", facet: str | None = None
) -> Figure | None:
    """Map and unmap latency percentiles (p50 solid, p99 dashed, hollow markers), log y."""

    def make(kind: str) -> Any:
        def draw(ax: Axes, series: Sequence[Series], join: bool) -> list[Any]:
            draw_series(ax, series, f"{kind}_p50_ns", linestyle="-", label_suffix="", join=join)
            draw_series(
                ax,
                series,
                f"{kind}_p99_ns",
                linestyle="--",
                label_suffix=P99_SUFFIX,
                hollow=True,
                join=join,
            )
            ax.set_yscale("log")
            return [
                Line2D([], [], color="0.3", ls="-", marker="o", label="p50: solid, filled"),
                Line2D(
                    [],
                    [],
                    color="0.3",
                    ls="--",
                    marker="o",
                    mfc="white",
                    label="p99: dashed, hollow",
                ),
            ]

        return draw

    panels = [
        {
            "cols": [f"{k}_p50_ns", f"{k}_p99_ns"],
            "draw": make(k),
            "ylabel": "latency (ns)",
            "title": f"{k} latency",
        }
        for k in ("map", "unmap")
    ]
    return _panel_figure(summary, panels, x, hue, facet, "latency percentiles")


def fairness_figure(
    summary: pd.DataFrame, x: str = "workers", hue: str | None = "driver", facet: str | None = None
) -> Figure | None:
    """Per-worker fairness: Jain's index and the least/most busy worker's ops ratio."""
    s = summary.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        s["worker_min_max"] = s["worker_ops_min"] / s["worker_ops_max"]
    s["worker_min_max"] = s["worker_min_max"].replace([np.inf, -np.inf], np.nan)

    def jain(ax: Axes, series: Sequence[Series], join: bool) -> None:
        draw_series(ax, series, "jain", join=join)
        ax.set_ylim(0, 1.05)

    def minmax(ax: Axes, series: Sequence[Series], join: bool) -> list[Any]:
        ax.axhline(0.5, color="0.3", ls=":", lw=1.0)
        draw_series(ax, series, "worker_min_max", join=join)
        ax.set_ylim(0, 1.05)
        return [Line2D([], [], color="0.3", ls=":", lw=1.0, label="starvation (max > 2x min)")]

    panels = [
        {"cols": ["jain"], "draw": jain, "ylabel": "Jain's index", "title": "Jain's fairness"},
        {
            "cols": ["worker_min_max"],
            "draw": minmax,
            "ylabel": "min / max worker ops",
            "title": "least / most busy worker",
        },
    ]
    return _panel_figure(s, panels, x, hue, facet, "per-worker fairness")


# --------------------------------------------------------------------------- entry point


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write `name`.png and `name`.svg and close the figure."""
    paths = []
    for fmt in FORMATS:
        p = out_dir / f"{name}.{fmt}"
        fig.savefig(p, format=fmt, bbox_inches="tight")
        paths.append(p)
    plt.close(fig)
    return paths


def make_figures(
    run_dir: str | Path,
    out_dir: str | Path,
    x: str = "workers",
    hue: str | None = "driver",
    facet: str | None = None,
    summary: pd.DataFrame | None = None,
) -> list[Path]:
    """Every figure of a run as PNG and SVG in `out_dir`; figures without data are skipped."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = stats.load_run(run_dir)
    if summary is None:
        summary = stats.with_scaling(stats.summarize(run))
    for name in (x, hue, facet):
        if name and name not in summary:
            raise ValueError(f"unknown parameter {name!r}: not a column of points.csv")
    if hue == x or (facet and facet in (x, hue)):
        raise ValueError("x, hue and facet must be different parameters")
    if summary.empty:
        return []
    title = f"{run.run_id}: throughput"
    paths: list[Path] = []
    with plt.rc_context(RC):
        figures: list[tuple[str, Figure | None]] = [
            ("throughput", throughput_figure(summary, x, hue, facet, title=title)),
            ("scaling", scaling_figure(summary, hue, facet) if "workers" in summary else None),
            ("contention", contention_figure(summary, x, hue, facet)),
            ("latency", latency_figure(summary, x, hue, facet)),
            ("fairness", fairness_figure(summary, x, hue, facet)),
        ]
        for name, fig in figures:
            if fig is not None:
                paths.extend(save(fig, out, name))
    return paths
