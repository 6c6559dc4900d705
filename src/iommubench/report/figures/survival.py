"""Latency survival curves from the histograms: P(latency > t) on log-log axes, one line per
series, at the smallest worker count and the largest one the CPUs can run without
oversubscription. On a log y axis the tail is readable: p99 is where a curve crosses 10^-2,
p99.9 where it crosses 10^-3 (both marked)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from iommubench.analysis.run_reader import Run, varying_params
from iommubench.core import hist
from iommubench.report.figures.labels import title
from iommubench.report.figures.series import Series, flagged, split_series
from iommubench.report.figures.style import FLAGGED_LS, SOLID, caption, grid

TAILS = {99.0: "p99", 99.9: "p99.9"}
KINDS = ("map", "unmap")


def survival(h: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Step points (t, P(latency > t)) of a histogram: 1 before the first bucket, then after
    each occupied bucket's upper bound the share of samples above it (the final 0 left out,
    since a log axis cannot show it). None for an empty histogram."""
    h = np.asarray(h, dtype=np.float64)
    n = h.sum()
    if n == 0:
        return None
    idx = np.flatnonzero(h)
    surv = 1.0 - np.cumsum(h)[idx] / n
    ends = np.array([hist.bucket_bounds(int(i))[1] for i in idx], dtype=np.float64)
    start = max(float(hist.bucket_bounds(int(idx[0]))[0]), 1.0)
    xs = np.concatenate([[start], ends])
    ys = np.concatenate([[1.0], surv])
    keep = ys > 0
    return xs[keep], ys[keep]


def headline_workers(summary: pd.DataFrame) -> list[float | None]:
    """The smallest worker count and the largest valid, non-oversubscribed one."""
    if "workers" not in summary:
        return [None]
    ws = pd.to_numeric(summary["workers"], errors="coerce")
    ok = summary["valid"].astype(bool) & ws.notna()
    if "oversubscribed" in summary:
        ok &= ~summary["oversubscribed"].astype(bool)
    if not ok.any():
        return []
    lo, hi = float(ws[ok].min()), float(ws[ok].max())
    return [lo] if lo == hi else [lo, hi]


def survival_figure(
    run: Run,
    summary: pd.DataFrame,
    hue: str | None = "driver",
    notes: list[str] | None = None,
) -> Figure | None:
    """Map and unmap survival curves (rows) at the headline worker counts (columns)."""
    counts = headline_workers(summary)
    hue = hue if hue != "workers" else None
    curves: dict[tuple[str, float | None], list[tuple[Series, np.ndarray]]] = {}
    for w in counts:
        sub = summary if w is None else summary[pd.to_numeric(summary["workers"]) == w]
        sub = sub[sub["valid"].astype(bool)]
        if sub.empty:
            continue
        x = "workers" if w is not None else "point"
        for s in split_series(sub, x, hue, None).groups[""]:
            for kind in KINDS:
                h = run.point_hist(int(s.frame["point"].iloc[0]), kind)
                if hist.count(h):
                    curves.setdefault((kind, w), []).append((s, h))
    if not curves:
        if notes is not None:
            notes.append("latency survival: figure skipped (no latency histograms)")
        return None
    kinds = [k for k in KINDS if any(key[0] == k for key in curves)]
    cols = [w for w in counts if any(key[1] == w for key in curves)]
    encoded = varying_params(summary, exclude=["workers"])
    fig, axes = grid(
        len(kinds), len(cols), title("latency survival", summary, ["workers"]), True, True
    )
    proxies: dict[str, Line2D] = {}
    for r, kind in enumerate(kinds):
        for c, w in enumerate(cols):
            ax = axes[r][c]
            _draw_panel(ax, curves.get((kind, w), []), proxies)
            where = f"workers={w:g}" if w is not None else "all points"
            ax.set_title(f"{kind} latency, {where}", loc="left")
            ax.set_xlabel(f"{kind} latency t (ns)")
            ax.set_ylabel("P(latency > t)")
    _legend(fig, proxies, ", ".join(encoded) or None)
    unresolved = _unresolved(curves)
    if unresolved:
        caption(fig, [unresolved])
        if notes is not None:
            notes.append(f"latency survival: {unresolved}")
    return fig


def _unresolved(
    curves: dict[tuple[str, float | None], list[tuple[Series, np.ndarray]]],
) -> str:
    """A line when a curve's samples sit in the 0 ns bucket: faster than the timer resolves
    once its own cost is subtracted, so a log axis cannot show them (the curve starts at 1)."""
    worst = max(
        (float(h[0]) / hist.count(h), kind, s.label)
        for (kind, _), pairs in curves.items()
        for s, h in pairs
        if hist.count(h)
    )
    if worst[0] < 0.01:
        return ""
    return (
        f"up to {worst[0]:.1%} of samples ({worst[1]}, {worst[2]}) read 0 ns once the timer's "
        "own cost is subtracted: below what the clock resolves; each curve starts at 1 ns"
    )


def _draw_panel(
    ax: Axes, curves: list[tuple[Series, np.ndarray]], proxies: dict[str, Line2D]
) -> None:
    many_rest = len({s.rest for s, _ in curves}) > 1
    nmax = 1.0
    for s, h in curves:
        pts = survival(h)
        if pts is None:
            continue
        st = s.style(many_rest)
        bad = bool(flagged(s.frame).iloc[0])
        ax.step(
            *pts,
            where="post",
            color=st["color"],
            ls=FLAGGED_LS if bad else SOLID,
            lw=1.4,
            label="_nolegend_",
            gid=f"{'flagged-' if bad else ''}survival:{s.label}",
        )
        # the legend shows the marker too: it is what tells the p99 / p99.9 marks apart
        proxies.setdefault(
            s.label, Line2D([], [], color=st["color"], ls=SOLID, marker=st["marker"], lw=1.4)
        )
        if bad:
            proxies.setdefault(
                "flagged (load, shift, placement, noisy): dashed",
                Line2D([], [], color="0.3", ls=FLAGGED_LS, lw=1.4),
            )
        for q, y in zip(TAILS, (1e-2, 1e-3), strict=True):
            t = hist.percentile(h, q)
            ax.plot(
                [t],
                [y],
                marker=st["marker"],
                color=st["color"],
                ms=6,
                ls="none",
                gid=f"{TAILS[q]}:{s.label}",
                label="_nolegend_",
            )
        nmax = max(nmax, float(hist.count(h)))
    ax.set_xscale("log")
    ax.set_yscale("log")
    for y, name in ((1e-2, "p99"), (1e-3, "p99.9")):
        ax.axhline(y, color="0.55", lw=0.8, ls=":", zorder=0)  # a reference line: dotted
        ax.annotate(
            name,
            (1.0, y),
            xycoords=("axes fraction", "data"),
            fontsize=8,
            ha="right",
            va="bottom",
            color="0.35",
        )
    ax.set_ylim(min(5e-4, 0.5 / nmax), 1.5)


def _legend(fig: Figure, proxies: dict[str, Line2D], legend_title: str | None) -> None:
    flag = [k for k in proxies if k.startswith("flagged")]
    handles = {k: v for k, v in proxies.items() if k not in flag}
    handles["p99 / p99.9 of each curve (marker)"] = Line2D(
        [], [], marker="o", color="0.3", ls="none"
    )
    handles.update({k: proxies[k] for k in flag})
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        title=legend_title,
    )
    fig.tight_layout()
