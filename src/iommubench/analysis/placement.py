"""Placement states from the handoff probes taken before and after every repetition.

Some VMs move their vCPUs between two placements every few seconds: a cross-core cache-line
handoff then costs ~35-60 ns in one state and ~210-230 ns in the other, and lock throughput
moves up to 6x between them. The probes of a whole run (or of two runs being compared) are
clustered on a log scale: when the largest gap between sorted probe values is at least
`SPLIT_RATIO` and each side holds at least `MIN_CLUSTER` values, the values below it are
the `fast` state and those above it the `slow` one; otherwise every probe is one `stable`
state (bare metal loses nothing, and one probe disturbed by preemption is not a state). A
repetition whose before and after probes fall in different states is `changed`. Without
probes (one CPU) the state is "" and matches anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

SPLIT_RATIO = 2.0
MIN_CLUSTER = 2
FAST, SLOW, STABLE, CHANGED = "fast", "slow", "stable", "changed"
PROBES = ("handoff_ns_before", "handoff_ns_after")


@dataclass(frozen=True)
class States:
    """The split between the two states in ns, or None when the probes show one state."""

    threshold: float | None

    def of(self, ns: float | None) -> str:
        """The state of one probe value ('' when there is none)."""
        if ns is None or not np.isfinite(ns) or ns <= 0:
            return ""
        if self.threshold is None:
            return STABLE
        return FAST if ns < self.threshold else SLOW

    def of_rep(self, before: float | None, after: float | None) -> str:
        """A repetition's state: its probes' common state, `changed` when they differ."""
        b, a = self.of(before), self.of(after)
        if b and a and b != a:
            return CHANGED
        return b or a


def classify(values: Iterable[float]) -> States:
    """Cluster probe values into one or two states (see the module docstring)."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = np.sort(x[np.isfinite(x) & (x > 0)])
    if x.size < 2:
        return States(None)
    gaps = np.diff(np.log(x))
    inner = gaps[MIN_CLUSTER - 1 : x.size - MIN_CLUSTER]  # splits leaving MIN_CLUSTER a side
    if inner.size == 0:
        return States(None)
    i = int(np.argmax(inner)) + MIN_CLUSTER - 1
    if np.exp(gaps[i]) < SPLIT_RATIO:
        return States(None)
    return States(float(np.sqrt(x[i] * x[i + 1])))


def probe_values(*frames: object) -> list[float]:
    """Every probe value of the given points frames (for `classify`)."""
    out: list[float] = []
    for df in frames:
        for col in PROBES:
            if col in df:  # type: ignore[operator]
                out.extend(float(v) for v in df[col].to_numpy(dtype=float))  # type: ignore[index]
    return out


def majority(states: Iterable[str]) -> str:
    """The most common consistent state ('' when none); a tie goes to `fast`."""
    counts: dict[str, int] = {}
    for s in states:
        if s and s != CHANGED:
            counts[s] = counts.get(s, 0) + 1
    if not counts:
        return ""
    order = {FAST: 0, STABLE: 1, SLOW: 2}
    return min(counts, key=lambda s: (-counts[s], order.get(s, 3)))
