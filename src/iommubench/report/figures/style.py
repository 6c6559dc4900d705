"""One style for every figure, readable in grayscale, and the helpers that lay figures out."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

# Okabe-Ito: distinguishable with colour-vision deficiency; markers carry it in grayscale
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
MARKERS = ["o", "s", "^", "D", "v", "P", "*", "X"]
# A line style means one thing in every figure: a series (a hue value) is its colour and
# marker; solid joins points measured under clean conditions; dashed, with hollow markers,
# touches a flagged point (load, level shift, stretched window, placement change, noisy or
# oversubscribed: series.FIGURE_FLAGS); dotted is an ideal or reference line; thin
# dash-dot is a fitted model. Nothing else varies the line style.
SOLID = "-"
FLAGGED_LS = (0, (4, 2))
FAILED_MARK = {"marker": "x", "s": 70, "linewidths": 2.0, "zorder": 6}
NO_VALID_MARK = {"marker": "D", "s": 40, "facecolors": "none", "edgecolors": "0.5",
                 "linewidths": 1.2, "zorder": 6}  # fmt: skip
OVERSUB_STYLE = {"facecolor": "0.92", "edgecolor": "0.72", "hatch": "///"}
IDEAL_STYLE = {"color": "0.3", "ls": ":", "lw": 1.0}
# a fitted model, not a measurement: thin, dash-dot, no markers, drawn in its series' colour
MODEL_STYLE = {"color": "0.3", "ls": "-.", "lw": 0.9, "alpha": 0.75, "marker": ""}
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


def grid(
    nrows: int,
    ncols: int,
    title: str,
    sharex: bool | str = False,
    sharey: bool | str = False,
) -> tuple[Figure, np.ndarray]:
    """A figure of nrows x ncols panels under one title."""
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(PANEL_W * ncols, PANEL_H * nrows + 0.25 * title.count("\n")),
        squeeze=False,
        sharex=sharex,
        sharey=sharey,
    )
    fig.suptitle(title, fontsize=11)
    return fig, axes


def caption(fig: Figure, lines: list[str]) -> None:
    """Notes under the panels, e.g. which panels were left out because they were empty."""
    if lines:
        fig.text(0.01, -0.01, "\n".join(lines), ha="left", va="top", fontsize=9, color="0.25")


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write `name`.png and `name`.svg and close the figure."""
    paths = []
    for fmt in FORMATS:
        p = out_dir / f"{name}.{fmt}"
        fig.savefig(p, format=fmt, bbox_inches="tight")
        paths.append(p)
    plt.close(fig)
    return paths
