"""Which lock the waiting goes to: per point, the share of worker time spent waiting on each
lock (`{prefix}_wait_ns / (duration_s x workers)`), stacked by lock, one panel per series."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, PercentFormatter

from iommubench.analysis.run_reader import norm_value, valid_mask
from iommubench.report.figures import axes as fa
from iommubench.report.figures.labels import axis_name, title
from iommubench.report.figures.series import (
    AUDIT_FAILURES,
    Series,
    flagged,
    natural,
    split_series,
)
from iommubench.report.figures.style import (
    COLORS,
    FAILED_MARK,
    NO_VALID_MARK,
    OVERSUB_STYLE,
    caption,
    grid,
)
from iommubench.spec.catalogue import LOCKS

SHARE_PREFIX = "wait_share:"


def lock_shares(points: pd.DataFrame) -> pd.DataFrame:
    """Per point: the median over valid repetitions of each lock's share of worker time.

    Columns `point` and `wait_share:<prefix>` for every lock whose wait column exists."""
    rows = points[valid_mask(points)] if len(points) else points
    out = pd.DataFrame({"point": rows["point"]}) if "point" in rows else pd.DataFrame()
    if out.empty or not {"duration_s", "workers"} <= set(rows.columns):
        return pd.DataFrame(columns=["point"])
    worker_ns = rows["duration_s"].astype(float) * rows["workers"].astype(float) * 1e9
    for prefix in LOCKS:
        col = f"{prefix}_wait_ns"
        if col in rows:
            with np.errstate(divide="ignore", invalid="ignore"):
                share = pd.to_numeric(rows[col], errors="coerce") / worker_ns
            out[SHARE_PREFIX + prefix] = share.replace([np.inf, -np.inf], np.nan)
    return out.groupby("point", as_index=False).median()


def lock_color(prefix: str) -> str:
    """Each lock keeps its colour in every run, whichever locks a run waited on."""
    return COLORS[list(LOCKS).index(prefix) % len(COLORS)]


def _panel_title(hue: str | None, s: Series, facet_label: str) -> str:
    head = f"{hue}={s.hue}" if hue and s.hue else s.hue
    return ", ".join(p for p in (facet_label, head, s.rest) if p) or "all"


def locks_figure(
    points: pd.DataFrame,
    summary: pd.DataFrame,
    x: str = "workers",
    hue: str | None = "driver",
    facet: str | None = None,
    notes: list[str] | None = None,
) -> Figure | None:
    """Stacked per-lock wait shares; None (with a note) when no lock recorded any waiting."""
    shares = lock_shares(points)
    measured = [p for p in LOCKS if SHARE_PREFIX + p in shares]
    waited = [p for p in measured if fa.uninformative(shares[SHARE_PREFIX + p]) is None]
    if not waited:
        if notes is not None:
            why = "no per-lock wait columns" if not measured else "no lock waited at any point"
            notes.append(f"locks: figure skipped ({why})")
        return None
    df = summary.drop(columns=[c for c in shares if c != "point" and c in summary])
    df = df.merge(shares, on="point", how="left")
    split = split_series(df, x, hue, facet)
    panels, quiet = [], []
    cols = [SHARE_PREFIX + p for p in waited]
    for fl, ss in split.groups.items():
        for s in ss:
            # a series that never waited on any lock gets no panel, only a caption line
            if fa.uninformative(s.frame[cols].to_numpy().ravel()) is None:
                panels.append((fl, s))
            else:
                quiet.append(_panel_title(hue, s, fl))
    ncols = min(len(panels), 3)
    fig, axes = grid(
        math.ceil(len(panels) / ncols),
        ncols,
        title("lock wait by lock", summary, [x, hue, facet]),
        sharey=True,
    )
    xs_all = sorted({norm_value(v) for v in df[x]}, key=natural)
    pos = {v: i for i, v in enumerate(xs_all)}
    cpus = fa.cpus_available(summary)
    top = 0.0
    oversub = False
    for ax, (flabel, s) in zip(axes.flat, panels, strict=False):
        top, over = _draw_stack(ax, s, waited, x, pos, top)
        oversub |= over
        ax.xaxis.set_major_locator(FixedLocator(range(len(xs_all))))
        ax.set_xticklabels(xs_all)
        ax.set_xlim(-0.6, len(xs_all) - 0.4)
        ax.set_xlabel(axis_name(x))
        ax.set_ylabel("share of worker time waiting")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title(_panel_title(hue, s, flabel), loc="left")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    axes.flat[0].set_ylim(0, top * 1.12 if top > 0 else 1.0)
    idle = [LOCKS[p] for p in measured if p not in waited]
    unmeasured = [LOCKS[p] for p in LOCKS if p not in measured]
    lines = []
    if quiet:
        lines.append("no lock waiting at any point, so no panel: " + "; ".join(quiet))
    if idle:
        lines.append("no waiting recorded at any point on: " + ", ".join(idle))
    if unmeasured:
        lines.append("not measured in this run: " + ", ".join(unmeasured))
    caption(fig, lines)
    extra = [
        Patch(color=COLORS[list(LOCKS).index(p) % len(COLORS)], label=LOCKS[p]) for p in waited
    ]
    if oversub and cpus is not None:
        label = f"oversubscribed (> {cpus:g} CPUs available)"
        extra.append(Patch(facecolor="white", edgecolor="0.4", hatch="///", label=label))
    if any(ln.get_gid() == "faded-bar" for ax in axes.flat for ln in ax.get_lines()):
        label = "flagged (load, shift, placement, noisy): faded, dashed outline"
        extra.append(Patch(facecolor="0.6", alpha=0.45, edgecolor="0.2", ls="--", label=label))
    fa.legend(fig, axes, extra, title="lock")
    return fig


def _draw_stack(
    ax: Axes, s: Series, locks: list[str], x: str, pos: dict[str, int], top: float
) -> tuple[float, bool]:
    """One series' stacked bars; returns the tallest stack so far and whether any bar is
    oversubscribed (hatched)."""
    oversub = False
    bad = flagged(s.frame)
    for i, r in s.frame.iterrows():
        xi = pos[norm_value(r[x])]
        if not bool(r.get("valid", True)):
            if r.get("verdict") in AUDIT_FAILURES:
                ax.scatter([xi], [0.0], color="0.2", gid="audit-failed", **FAILED_MARK)
            else:
                ax.scatter([xi], [0.0], gid="no-valid", **NO_VALID_MARK)
            continue
        over = bool(r.get("oversubscribed", False))
        oversub |= over
        faded = bool(bad[i]) and not over  # oversubscribed bars are hatched instead
        bottom = 0.0
        for p in locks:
            v = r.get(SHARE_PREFIX + p)
            v = float(v) if v is not None and np.isfinite(v) else 0.0
            ax.bar(
                xi,
                v,
                0.7,
                bottom=bottom,
                color=lock_color(p),
                edgecolor=OVERSUB_STYLE["edgecolor"] if over else ("0.2" if faded else "white"),
                hatch="///" if over else None,
                linewidth=0.5,
                linestyle="--" if faded else "-",
                alpha=0.45 if faded else 1.0,
                gid=f"lock:{p}",
                label="_nolegend_",
            )
            if faded:
                ax.plot([], [], gid="faded-bar")
            bottom += v
        top = max(top, bottom)
    return top, oversub
