"""The catalogue of strategies, read from the native registrations.

Every registry entry of the native core (a workload, driver, lock, IOVA allocator,
invalidation mode or walker-safety mode) declares its name, a one-line description, the
parameters only it reads on its axis, whether it takes a lock of the `lock` axis, whether it
is a negative control and, for a workload, its throughput unit (core/native/catalogue.h).
This module reads that one list; names, descriptions, parameter scopes, units and the
negative controls everywhere else derive from it, so a new strategy is one native file and
one registration line with no Python edit. The catalogue also lists the per-worker counters
the core declares as measures (IB_MEASURE in the counters.def files): each is a points.csv
column summed over the workers and a workers.csv column (`counter_measures`).

What is kept here by hand is only what is not a registry entry: the two old driver names that
stand for a (driver, lock) pair, the value lists of three parameters the core encodes by
index (completion, depot, map_mode), and the lock counters points.csv carries.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from iommubench.core import binding
from iommubench.spec import profiles

# The axes whose choices are native registry entries, as their YAML parameter names.
AXES: tuple[str, ...] = (
    "workload",
    "driver",
    "lock",
    "allocator",
    "invalidation",
    "walker_safety",
    "pgtable",
)

# What a driver that takes no lock records as its lock.
NO_LOCK = "none"

# The two older driver names: one (driver, lock) pair each, so their results compare with the
# pair's.
DRIVER_ALIASES: dict[str, tuple[str, str]] = {
    "serial-spin": ("domain-lock", "ttas"),
    "serial-mutex": ("domain-lock", "pthread-mutex"),
}

# Choices of parameters that are not strategies: the core reads them as an index.
COMPLETIONS: dict[str, str] = {
    "local": "the CPU that submitted an I/O completes it",
    "remote": "another CPU completes it, as with fewer device queues than CPUs",
}
DEPOTS: dict[str, str] = {
    "bounded": "32 full magazines per size class (before v6.7)",
    "list": "unbounded list trimmed while it holds more magazines than CPUs (v6.7)",
}
MAP_MODES: dict[str, str] = {
    "sg": "one map call per page entry of an I/O, as dma_map_sg",
    "single": "one map call for the whole I/O, as dma_map_page",
}

LOCK_SUFFIXES: tuple[str, ...] = ("_acquisitions", "_contended", "_wait_ns", "_max_wait_ns")

DEFAULT_UNIT = "ops/s"


@dataclass(frozen=True)
class Entry:
    """One native registry entry, as it describes itself."""

    axis: str
    name: str
    description: str
    reads: tuple[str, ...]  # parameters only this entry reads on its axis
    unit: str  # a workload's throughput unit ("" elsewhere)
    takes_lock: bool
    negative_control: bool
    prevents_uaf: bool  # a walker-safety mode under which no pass may read a freed table
    fifo: bool  # a lock that serves its waiters in arrival order
    wait_outlives_abort: bool  # a lock whose waiter cannot leave while its holder lives


@functools.cache
def entries() -> tuple[Entry, ...]:
    """Every native registry entry, axis by axis in `iommubench list` order."""
    ffi, lib = binding.load()
    row = ffi.new("struct ib_catalogue_entry *")
    out = []
    for i in range(lib.ib_catalogue_size()):
        lib.ib_catalogue_get(i, row)
        reads = ffi.string(row.reads).decode()
        out.append(
            Entry(
                ffi.string(row.axis).decode(),
                ffi.string(row.name).decode(),
                ffi.string(row.description).decode(),
                tuple(r for r in reads.split(",") if r),
                ffi.string(row.unit).decode(),
                bool(row.takes_lock),
                bool(row.negative_control),
                bool(row.prevents_uaf),
                bool(row.fifo),
                bool(row.wait_outlives_abort),
            )
        )
    return tuple(out)


@functools.cache
def counter_measures() -> tuple[str, ...]:
    """The counters the core reports as columns of their own (IB_MEASURE in counters.def and
    the files it includes), in declaration order: points.csv sums each over a point's workers
    and workers.csv keeps each worker's own. Every other counter is internal: what the harness
    reports from it (a max, a ratio, an audit finding) is derived by hand."""
    ffi, lib = binding.load()
    count = lib.ib_catalogue_measure_count()
    return tuple(ffi.string(lib.ib_catalogue_measure_name(i)).decode() for i in range(count))


@functools.cache
def lock_families() -> dict[str, str]:
    """The locks the core counts, as column prefix -> what it locks (IB_LOCK_FAMILY in the
    counters.def files, in declaration order): each has the columns <prefix>_acquisitions,
    _contended, _wait_ns and _max_wait_ns in points.csv."""
    ffi, lib = binding.load()
    count = lib.ib_catalogue_lock_family_count()
    return {
        ffi.string(lib.ib_catalogue_lock_family_prefix(i)).decode(): ffi.string(
            lib.ib_catalogue_lock_family_about(i)
        ).decode()
        for i in range(count)
    }


def axis(name: str) -> dict[str, Entry]:
    """The entries of one axis by name, in registry order."""
    return {e.name: e for e in entries() if e.axis == name}


def names(axis_name: str) -> list[str]:
    return list(axis(axis_name))


def descriptions(axis_name: str) -> dict[str, str]:
    """name -> description, for an axis or one of the index-encoded parameters."""
    fixed = {
        "completion": COMPLETIONS,
        "depot": DEPOTS,
        "map_mode": MAP_MODES,
        "profile": profiles.DESCRIPTIONS,
    }
    if axis_name in fixed:
        return dict(fixed[axis_name])
    return {name: e.description for name, e in axis(axis_name).items()}


def lock_taking_drivers() -> frozenset[str]:
    return frozenset(name for name, e in axis("driver").items() if e.takes_lock)


def uaf_preventing_modes() -> frozenset[str]:
    """Walker-safety modes that promise no pass reads a freed table: any such read fails the
    audit (under the others the reads are the measurement)."""
    return frozenset(name for name, e in axis("walker_safety").items() if e.prevents_uaf)


def negative_controls() -> frozenset[str]:
    """Drivers expected to fail their audit: a caught failure is the control working, never
    a regression, and a control is never a candidate for "winner"."""
    return frozenset(name for name, e in axis("driver").items() if e.negative_control)


def is_negative_control(row: Mapping[str, Any]) -> bool:
    """A point of a negative control: its driver's, or its page table's (a racy build of the
    kernel's code)."""
    if row.get("driver") in negative_controls():
        return True
    entry = axis("pgtable").get(str(row.get("pgtable")))
    return bool(entry and entry.negative_control)


def __getattr__(name: str) -> Any:
    """NEGATIVE_CONTROLS, LOCK_TAKING_DRIVERS and LOCKS (the lock families), read from the
    native core when first used (importing this module never loads the core)."""
    if name == "LOCKS":
        return lock_families()
    if name == "NEGATIVE_CONTROLS":
        return negative_controls()
    if name == "LOCK_TAKING_DRIVERS":
        return lock_taking_drivers()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def unit_for(workload: object) -> str:
    """The throughput unit of a workload ("ops/s" for an unknown or mixed one)."""
    entry = axis("workload").get(str(workload))
    return entry.unit if entry is not None and entry.unit else DEFAULT_UNIT


def resolve_driver(driver: str, lock: str | None) -> tuple[str, str]:
    """(driver, lock) as recorded: an alias fixes both; a lock-free driver records NO_LOCK;
    a locking driver with no lock given takes ttas."""
    if driver in DRIVER_ALIASES:
        return DRIVER_ALIASES[driver]
    if driver not in lock_taking_drivers():
        return driver, NO_LOCK
    return driver, lock if lock and lock != NO_LOCK else "ttas"


def strategy(driver: object, lock: object = None) -> str:
    """The locking strategy a point measured, the axis the report compares: `driver/lock`
    for a driver that takes a lock (`domain-lock/ticket`), the driver alone for one that
    takes none (`lockfree`), an old driver name as its pair (`serial-spin` is
    `domain-lock/ttas`); '' without a driver."""
    name = "" if driver is None else str(driver)
    if name in DRIVER_ALIASES:
        return "/".join(DRIVER_ALIASES[name])
    lock_name = "" if lock is None else str(lock)
    if name in lock_taking_drivers() and lock_name and lock_name not in ("-", NO_LOCK, "nan"):
        return f"{name}/{lock_name}"
    return name


def _entry_of(axis_name: str, point: Mapping[str, Any]) -> Entry | None:
    value = point.get(axis_name)
    if axis_name == "driver" and value in DRIVER_ALIASES:
        value = DRIVER_ALIASES[str(value)][0]
    return axis(axis_name).get(str(value)) if value is not None else None


@functools.cache
def readers(parameter: str) -> tuple[str, ...]:
    """The axes some of whose entries list `parameter` as their own."""
    return tuple(dict.fromkeys(e.axis for e in entries() if parameter in e.reads))


def applies(parameter: str, point: Mapping[str, Any] | object) -> bool:
    """Whether `parameter` means anything for `point` (a point's parameters, or a workload
    name): on every axis that has entries reading it as their own, the point's entry must be
    one of them, and that axis must itself apply (depot: the allocator must be rcache and
    the workload dma, which reads `allocator`). An unknown or missing entry applies."""
    values = point if isinstance(point, Mapping) else {"workload": point}
    for axis_name in readers(parameter):
        entry = _entry_of(axis_name, values)
        if entry is None:
            continue
        if parameter not in entry.reads:
            return False
        if axis_name != parameter and not applies(axis_name, values):
            return False
    return True


def choices() -> dict[str, dict[str, str]]:
    """Every parameter whose value is a name: name -> description, per parameter."""
    return {
        name: descriptions(name) for name in (*AXES, "completion", "depot", "map_mode", "profile")
    }
