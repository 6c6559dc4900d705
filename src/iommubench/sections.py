"""Report sections that only some sweeps have: each takes a loaded run and returns a
(title, markdown) pair, or None when the run has nothing for it."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from iommubench import stats

Section = tuple[str, str]


def _median(rows: pd.DataFrame, column: str) -> float | None:
    values = pd.to_numeric(rows[column], errors="coerce").dropna() if column in rows else None
    return float(values.median()) if values is not None and len(values) else None


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    return "–" if value is None else f"{value / scale:.{digits}f}{unit}"


def walker_section(run: stats.Run) -> Section | None:
    """Each walker_safety mode against the same driver and worker count with no walker."""
    df = run.points
    if "walkers" not in df or not (pd.to_numeric(df["walkers"], errors="coerce") > 0).any():
        return None
    ok = df[df["status"] == "ok"].copy()
    ok["walkers"] = pd.to_numeric(ok["walkers"], errors="coerce").fillna(0).astype(int)
    keys = [k for k in ("workload", "driver", "workers") if k in ok]
    lines = [
        "Throughput with one or more walkers dumping the table, against the same driver and "
        "worker count with none (every `walkers: 0` row of that driver and worker count is "
        "the baseline; `walker_safety` has no effect there). A use-after-free read is an "
        "entry read from a table page that was freed, or freed and reused, while the walker "
        "was reading it (a lower bound: see walker.c). `exclusive` and `deferred-free` fail "
        "their audit on any such read; `unsafe` and `group-mutex` only report them.",
        "",
        "| " + " | ".join([*keys, "walker_safety", "Mops/s", "baseline Mops/s", "cost",
                           "UAF reads / M reads", "pass µs", "limbo max", "grace µs"]) + " |",
        "|" + "---|" * (len(keys) + 8),
    ]  # fmt: skip
    baseline = ok[ok["walkers"] == 0]
    for params, rows in ok[ok["walkers"] > 0].groupby([*keys, "walker_safety"], sort=True):
        params = params if isinstance(params, tuple) else (params,)
        match = baseline
        for key, value in zip(keys, params, strict=False):
            match = match[match[key] == value]
        with_walker = _median(rows, "ops_per_s")
        base = _median(match, "ops_per_s")
        cost = 1 - with_walker / base if with_walker is not None and base else None
        audit = rows["audit_ok"].astype(str).str.lower().eq("true").all()
        lines.append(
            "| "
            + " | ".join(
                [
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
            )
            + " |"
        )
    return "Walkers: the debugfs race", "\n".join(lines)


SECTIONS: list[Callable[[stats.Run], Section | None]] = [walker_section]


def for_run(run: stats.Run) -> list[Section]:
    return [s for s in (make(run) for make in SECTIONS) if s is not None]
