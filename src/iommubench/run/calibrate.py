"""Calibration of cost profiles: the model's own single-page call measured on this machine,
and the busy work that makes a call cost a profile's published figure (spec/profiles.py says
what a profile is and why it is calibrated this way).

It sits beside the point runner because it runs points; `run_point` (run/point.py) applies
its costs to every point.
"""

from __future__ import annotations

import functools
from typing import Any

from iommubench.run import runner
from iommubench.run.runner import Busy
from iommubench.spec import profiles

# The calibration point: one worker maps and unmaps 16 MiB page by page, 20 times, with the
# tables in place after the first cycle and no timer in the loop (a single call takes a few
# ns on a current CPU, less than the clock resolves once its own cost is subtracted).
_CALIBRATION_POINT: dict[str, Any] = {
    "workload": "prefault",
    "driver": "lockfree",
    "workers": 1,
    "region_mib": 16,
    "chunk_pages": 4096,
    "unmap_pages": 1,
    "cycles": 20,
    "cs_ns": 0,
    "sample_every": 0,
    "seed": 1,
    "warmup_s": 0.0,
    "duration_s_requested": 1.0,
}
TRIES = 12  # runs at most per amount of busy work
CLEAN = 3  # runs that never waited for a CPU: enough; the fastest of them counts
MAX_RUNQ_SHARE = 0.02  # a run whose worker waited longer for a CPU was slowed by another


def per_call_ns(busy: int) -> float:
    """ns per single-page call of the calibration point with `busy` ns of busy work: the
    counted time over the calls made (maps and unmaps alternate by phase, so this is their
    mean). The fastest of the runs whose worker hardly waited for a CPU (its schedstat), or
    of every run when another process kept the CPUs busy throughout."""
    clean: list[float] = []
    every: list[float] = []
    for _ in range(TRIES):
        point = {**_CALIBRATION_POINT, "cs_ns": busy}
        result = runner.measure_point(point, busy_for(point), timeout_s=60.0)
        m = result.measures
        if result.status != "ok" or not m.get("ops"):
            raise RuntimeError(f"cost-profile calibration failed: {result.error or 'no calls'}")
        every.append(m["duration_s"] * 1e9 / m["ops"])
        if (m.get("runq_wait_share") or 0.0) <= MAX_RUNQ_SHARE:
            clean.append(every[-1])
            if len(clean) == CLEAN:
                break
    return min(clean or every)


@functools.cache
def bare_call_ns() -> float:
    """The model's own single-page call on this machine, measured once per process."""
    return per_call_ns(0)


def busy_for(point: dict[str, Any]) -> Busy:
    """(busy map ns, busy unmap ns, bare map ns, bare unmap ns) for the point's profile and
    its cs_map_ns / cs_unmap_ns on top; the bare costs are None without a profile target
    (map and unmap share one bare figure: see per_call_ns)."""
    both = point.get("cs_ns", 0)
    extra_map = point.get("cs_map_ns")
    extra_unmap = point.get("cs_unmap_ns")
    extra_map = both if extra_map is None else extra_map
    extra_unmap = both if extra_unmap is None else extra_unmap
    profile = profiles.PROFILES[point.get("profile", profiles.NONE)]
    if profile.map_ns is None and profile.unmap_ns is None:
        return extra_map, extra_unmap, None, None
    bare = bare_call_ns()
    return (
        profiles.busy_ns(profile.map_ns, bare) + extra_map,
        profiles.busy_ns(profile.unmap_ns, bare) + extra_unmap,
        bare,
        bare,
    )
