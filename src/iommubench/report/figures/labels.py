"""Words on a figure: the unit of a rate follows the workload, titles name what is fixed."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence

import pandas as pd

from iommubench.analysis.run_reader import norm_value, param_columns
from iommubench.spec.catalogue import DEFAULT_UNIT, applies, unit_for

TITLE_WIDTH = 110
WALKER_PARAMS = frozenset({"walker_safety", "walker_gap_us"})
# harness settings, not the modelled system: the window is stated apart, the rest left out
HARNESS_PARAMS = frozenset({"seed", "sample_every", "warmup_s", "duration_s_requested"})


def rate_unit(workloads: Iterable[object]) -> str:
    """The unit of throughput for the given workloads: I/O/s for dma, ops/s for prefault."""
    names = sorted({norm_value(w) for w in workloads} - {""})
    units = {unit_for(w) for w in names}
    if len(units) <= 1:
        return units.pop() if units else DEFAULT_UNIT
    return DEFAULT_UNIT + " (" + ", ".join(f"{w}: {unit_for(w)}" for w in names) + ")"


def frame_unit(frame: pd.DataFrame) -> str:
    """The throughput unit of the rows of one panel."""
    return rate_unit(frame["workload"]) if "workload" in frame else DEFAULT_UNIT


def fixed_params(summary: pd.DataFrame, exclude: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(parameter, value) for every parameter that takes one non-empty value across the run."""
    out = []
    for c in param_columns(summary):
        if c in exclude:
            continue
        values = {norm_value(v) for v in summary[c]}
        if len(values) == 1 and "" not in values:
            out.append((c, values.pop()))
    return out


def _not_shown(summary: pd.DataFrame, workloads: Sequence[str]) -> set[str]:
    """Parameters that say nothing in a title: harness settings, those no point of the run
    reads (the catalogue says which strategies read which), and the walker settings of a run
    without walkers."""
    out = set(HARNESS_PARAMS)
    points = [
        {c: norm_value(v) for c, v in row.items()}
        for row in summary[param_columns(summary)].to_dict("records")
    ]
    if workloads and points:
        out |= {c for c in param_columns(summary) if not any(applies(c, p) for p in points)}
    walkers = {norm_value(v) for v in summary.get("walkers", [])}
    if walkers <= {"", "0"}:
        out |= WALKER_PARAMS | {"walkers"}
    return out


def _window(summary: pd.DataFrame) -> str:
    """'window 1 s after 0.2 s warm-up' when every point used the same window."""
    got = dict(fixed_params(summary))
    dur, warm = got.get("duration_s_requested"), got.get("warmup_s")
    if dur is None:
        return ""
    return f"window {dur} s" + (f" after {warm} s warm-up" if warm not in (None, "0") else "")


def title(what: str, summary: pd.DataFrame, encoded: Sequence[str | None] = ()) -> str:
    """'<what>: <workload> workload' and wrapped lines naming the parameters that do not
    vary (those the figure does not encode, and that the workload reads)."""
    wl = sorted({norm_value(v) for v in summary.get("workload", [])} - {""})
    head = f"{what}: {' / '.join(wl)} workload" if wl else what
    skip = {"workload", *(e for e in encoded if e)} | _not_shown(summary, wl)
    fixed = [f"{k}={v}" for k, v in fixed_params(summary, exclude=sorted(skip))]
    window = _window(summary)
    text = ", ".join(fixed) + ("; " if fixed and window else "") + window
    if not text:
        return head
    return head + "\n" + "\n".join(textwrap.wrap("fixed: " + text, TITLE_WIDTH))


def axis_name(column: str) -> str:
    """A column name as axis or legend text."""
    return column.replace("_", " ")
