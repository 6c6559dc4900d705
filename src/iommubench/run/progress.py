"""Progress of a sweep: a live display on a terminal, plain lines otherwise.

Each point is named as the report names it: the parameters that vary across the sweep (the
locking strategy, driver with lock, standing in for both), and always the worker count,
e.g. `#3 rep 0 domain-lock/ttas rcache w=2`. A finished point says its throughput, its audit,
and what qualifies the number: oversubscribed, competing load (with the share of the window
its workers waited for a CPU), or any other row flag.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from iommubench.run.row_flags import ENVIRONMENT_FAILURES
from iommubench.spec.catalogue import strategy, unit_for
from iommubench.spec.parameters import NAMES, applies

STRATEGY_PARTS = ("driver", "lock")
# named when the sweep's varying parameters are not known (e.g. a task made apart from plan)
DEFAULT_SHOWN = ("workload", "strategy", "allocator", "workers")


def _value(params: dict[str, Any], name: str) -> str:
    if name == "strategy":
        return strategy(params.get("driver"), params.get("lock"))
    v = params.get(name)
    if isinstance(v, (list, tuple)):
        return ";".join(str(x) for x in v)
    return "" if v is None else str(v)


def varying(points: Iterable[dict[str, Any]]) -> tuple[str, ...]:
    """The parameters that take more than one value across the points, in the parameter
    table's order, `strategy` in place of the driver and the lock; always `workers`."""
    pts = list(points)
    names = [n for n in NAMES if n not in STRATEGY_PARTS]
    names.insert(names.index("pgtable") if "pgtable" in names else 1, "strategy")
    out = [n for n in names if len({_value(p, n) for p in pts}) > 1]
    return tuple(out if "workers" in out else [*out, "workers"])


def point_label(point: int, rep: int, params: dict[str, Any], shown: Sequence[str] = ()) -> str:
    """'#3 rep 0 domain-lock/ttas rcache w=2': the point as the report names it."""
    parts = []
    for name in shown or DEFAULT_SHOWN:
        if name not in ("strategy", "workers") and not applies(name, params):
            continue  # e.g. the allocator of a prefault point
        v = _value(params, name)
        if name == "workers":
            parts.append(f"w={v}")
        elif name in ("workload", "strategy", "allocator", "invalidation", "walker_safety"):
            parts.append(v)
        elif v:
            parts.append(f"{name}={v}")
    return f"#{point} rep {rep} " + " ".join(p for p in parts if p)


def result_text(row: dict[str, Any]) -> str:
    """'3.2 M I/O/s, audit ok, oversubscribed, competing load 31%': a finished point."""
    flags = [f for f in str(row.get("flags") or "").split(";") if f]
    if row["status"] != "ok":
        outside = [f for f in flags if f in ENVIRONMENT_FAILURES]
        kind = f"{', '.join(outside)}: --resume redoes it" if outside else "the point's own: kept"
        return f"FAILED ({kind}): {row['error']}"
    audit = "audit ok" if row["audit_ok"] else "AUDIT FAILED"
    marks = ["oversubscribed"] if row.get("oversubscribed") else []
    for flag in flags:
        share = row.get("runq_wait_share")
        if flag == "competing-load" and isinstance(share, (int, float)):
            marks.append(f"competing load {share:.0%}")
        else:
            marks.append(flag)
    tail = "".join(f", {m}" for m in marks)
    return f"{row['ops_per_s'] / 1e6:.1f} M {unit_for(row.get('workload'))}, {audit}{tail}"


class Reporter(Protocol):
    def start(self, total: int) -> None: ...
    def point_started(self, label: str) -> None: ...
    def point_finished(self, label: str, summary: str) -> None: ...
    def close(self) -> None: ...


class LiveReporter:
    def __init__(self) -> None:
        self._console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[last]}"),
            console=self._console,
        )
        self._task = None

    def start(self, total: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task("sweep", total=total, last="")

    def point_started(self, label: str) -> None:
        self._progress.update(self._task, description=label)

    def point_finished(self, label: str, summary: str) -> None:
        self._progress.update(self._task, advance=1, last=f"last: {label}: {summary}")

    def close(self) -> None:
        self._progress.stop()


class PlainReporter:
    def __init__(self) -> None:
        self._total = 0
        self._done = 0
        self._t0 = time.monotonic()

    def start(self, total: int) -> None:
        self._total = total
        self._t0 = time.monotonic()

    def point_started(self, label: str) -> None:
        pass

    def point_finished(self, label: str, summary: str) -> None:
        self._done += 1
        elapsed = time.monotonic() - self._t0
        eta = elapsed / self._done * (self._total - self._done)
        print(
            f"[{self._done}/{self._total}] {label}: {summary} (eta {eta:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        pass


def make_reporter() -> Reporter:
    return LiveReporter() if sys.stderr.isatty() else PlainReporter()
