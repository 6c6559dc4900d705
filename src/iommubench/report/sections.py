"""Report sections that only some sweeps have: each takes a loaded run and returns its
content as data (a title, a paragraph, table headers and rows of cells), or None when the
run has nothing for it. Renderers lay the data out; nothing here writes Markdown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from iommubench.analysis.run_reader import STRATEGY, Run

Section = dict[str, Any]

WALKER_TEXT = (
    "Throughput with one or more walkers dumping the table, against the same strategy and "
    "worker count with none (every `walkers: 0` row of that strategy and worker count is "
    "the baseline; `walker_safety` has no effect there). A use-after-free read is an "
    "entry read from a table page that was freed, or freed and reused, while the walker "
    "was reading it (a lower bound: see walker.c). `exclusive` and `deferred-free` fail "
    "their audit on any such read; `unsafe` and `group-mutex` only report them."
)


def _median(rows: pd.DataFrame, column: str) -> float | None:
    values = pd.to_numeric(rows[column], errors="coerce").dropna() if column in rows else None
    return float(values.median()) if values is not None and len(values) else None


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    return "–" if value is None else f"{value / scale:.{digits}f}{unit}"


def _walker_row(params: tuple[Any, ...], rows: pd.DataFrame, match: pd.DataFrame) -> list[str]:
    with_walker = _median(rows, "ops_per_s")
    base = _median(match, "ops_per_s")
    cost = 1 - with_walker / base if with_walker is not None and base else None
    audit = rows["audit_ok"].astype(str).str.lower().eq("true").all()
    return [
        *(str(v) for v in params[:-1]),
        f"{params[-1]}{'' if audit else ' (AUDIT FAILED)'}",
        _fmt(with_walker, 1e6),
        _fmt(base, 1e6),
        _fmt(None if cost is None else cost * 100, digits=0, unit="%"),
        _fmt(_median(rows, "walker_uaf_per_million"), digits=1),
        _fmt(_median(rows, "walker_pass_ns"), 1e3),
        _fmt(_median(rows, "limbo_pages_max"), digits=0),
        _fmt(_median(rows, "grace_ns_mean"), 1e3),
    ]


def walker_section(run: Run) -> Section | None:
    """Each walker_safety mode against the same strategy and worker count with no walker."""
    df = run.points
    if "walkers" not in df or not (pd.to_numeric(df["walkers"], errors="coerce") > 0).any():
        return None
    ok = df[df["status"] == "ok"].copy()
    ok["walkers"] = pd.to_numeric(ok["walkers"], errors="coerce").fillna(0).astype(int)
    strategy = STRATEGY if STRATEGY in ok else "driver"
    # the page table too where the run has more than one (the model's walk, the kernel's)
    table = ["pgtable"] if "pgtable" in ok and ok["pgtable"].nunique() > 1 else []
    keys = [k for k in ("workload", *table, strategy, "workers") if k in ok]
    headers = [
        *keys,
        "walker_safety",
        "Mops/s",
        "baseline Mops/s",
        "cost",
        "UAF reads / M reads",
        "pass µs",
        "limbo max",
        "grace µs",
    ]
    baseline = ok[ok["walkers"] == 0]
    rows = []
    for params, group in ok[ok["walkers"] > 0].groupby([*keys, "walker_safety"], sort=True):
        params = params if isinstance(params, tuple) else (params,)
        match = baseline
        for key, value in zip(keys, params, strict=False):
            match = match[match[key] == value]
        rows.append(_walker_row(params, group, match))
    return {
        "title": "Walkers: the debugfs race",
        "text": WALKER_TEXT,
        "headers": headers,
        "rows": rows,
    }


SECTIONS: list[Callable[[Run], Section | None]] = [walker_section]


def for_run(run: Run) -> list[Section]:
    return [s for s in (make(run) for make in SECTIONS) if s is not None]
