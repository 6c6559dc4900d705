"""What this machine (or a fleet's hosts) allows a point: CPUs, workers, memory, and what
`workers: auto` expands to."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

AUTO = "auto"  # workers: auto


# The allowed-CPU counts of the hosts a fleet run sweeps on (fleet_cpus), else None: this
# process' own CPUs then decide what `workers: auto` expands to and the worker limit.
_FLEET_CPUS: list[int] | None = None


@contextlib.contextmanager
def fleet_cpus(counts: Sequence[int]) -> Iterator[None]:
    """Load a config for a fleet whose hosts allow these CPU counts: `workers: auto` expands
    to the union of every host's own list, and the worker limit is 64 x the largest host's."""
    global _FLEET_CPUS
    _FLEET_CPUS = sorted(set(counts))
    try:
        yield
    finally:
        _FLEET_CPUS = None


def cpus_available() -> int:
    """The number of CPUs this process may run on (with fleet_cpus: the largest host's)."""
    if _FLEET_CPUS:
        return max(_FLEET_CPUS)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def max_workers() -> int:
    """The most workers a point may ask for: 64 per CPU this process may use."""
    return 64 * cpus_available()


def physical_memory_mib() -> int | None:
    """This machine's physical memory in MiB, or None when the OS will not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (AttributeError, ValueError, OSError):
        return None


def auto_workers() -> list[int]:
    """What `workers: auto` expands to here, or on a fleet the union of its hosts' lists."""
    if _FLEET_CPUS:
        return sorted({w for n in _FLEET_CPUS for w in auto_workers_for(n)})
    return auto_workers_for(cpus_available())


def auto_workers_for(cpus: int) -> list[int]:
    """`workers: auto` on `cpus` allowed CPUs: 1, 2, 4, ... below the count, then the count."""
    counts = [1 << k for k in range(cpus.bit_length()) if 1 << k < cpus]
    return [*counts, cpus]
