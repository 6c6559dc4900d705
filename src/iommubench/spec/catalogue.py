"""The names a config may use for each strategy, and what each one models.

The native core is the source of truth for what it implements; `tests/test_registry.py`
checks that these names and the native registration tables agree.
"""

from iommubench.spec import profiles

WORKLOADS: dict[str, str] = {
    "prefault": "VFIO/iommufd VM start: map a region in chunks dealt to the workers, then unmap it",
    "dma": "streaming DMA: per I/O allocate an IOVA, map, hold dma_ns, unmap, invalidate, free",
}

DRIVERS: dict[str, str] = {
    "domain-lock": "one per-domain lock around every map and unmap (rockchip, exynos, tegra)",
    "table-lock": "split locks: one per table page, taken to install into or clear it",
    "lockfree": "compare-and-swap install of missing tables (io-pgtable-arm since v4.13, VT-d)",
    "naive": "plain stores, no lock: the negative control the audit must catch",
}

# What a driver that takes no lock records as its lock.
NO_LOCK = "none"

# The lock algorithms of the `lock` axis (every lock a locking driver takes).
LOCK_ALGORITHMS: dict[str, str] = {
    "tas": "test-and-set: every waiter retries the exchange",
    "ttas": "test-and-test-and-set with a pause loop",
    "ticket": "ticket lock: FIFO, every waiter spins on the one line (Linux before 4.2)",
    "mcs": "MCS queue lock: FIFO, each waiter spins on its own node",
    "qspinlock": "Linux spinlock_t: locked byte, pending bit, MCS tail",
    "pthread-mutex": "process-shared robust pthread mutex (sleeps)",
    "adaptive-mutex": "Linux struct mutex: spin while the holder runs, then sleep on a futex",
}


def resolve_driver(driver: str, lock: str | None) -> tuple[str, str]:
    """(driver, lock) as recorded: an alias fixes both; a lock-free driver records NO_LOCK;
    a locking driver with no lock given takes ttas."""
    if driver in DRIVER_ALIASES:
        return DRIVER_ALIASES[driver]
    if driver not in LOCK_TAKING_DRIVERS:
        return driver, NO_LOCK
    return driver, lock if lock and lock != NO_LOCK else "ttas"


ALLOCATORS: dict[str, str] = {
    "global": "one ordered tree of allocated ranges under one spinlock (iova_rbtree_lock)",
    "rcache": "per-CPU magazines of 127 IOVAs per size class in front of global",
}

INVALIDATIONS: dict[str, str] = {
    "strict": "invalidate on every unmap, inv_ns under one invalidation-queue lock",
    "lazy": "per-CPU flush queues of 256 entries, 10 ms timeout",
}

WALKER_SAFETY: dict[str, str] = {
    "unsafe": "no protection; reads of freed tables are counted",
    "exclusive": "reader/writer lock: map/unmap shared, walkers exclusive",
    "deferred-free": "epoch-based reclamation of freed table pages",
    "group-mutex": "the merged VT-d behaviour: protects nothing against unmap",
}

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

CATALOGUE: dict[str, dict[str, str]] = {
    "workload": WORKLOADS,
    "driver": DRIVERS,
    "lock": LOCK_ALGORITHMS,
    "allocator": ALLOCATORS,
    "invalidation": INVALIDATIONS,
    "walker_safety": WALKER_SAFETY,
    "completion": COMPLETIONS,
    "depot": DEPOTS,
    "map_mode": MAP_MODES,
    "profile": profiles.DESCRIPTIONS,
}

# The drivers that take a lock: the `lock` parameter picks its algorithm. The two older driver
# names are one (driver, lock) pair each, so their results compare with the pair's.
LOCK_TAKING_DRIVERS: frozenset[str] = frozenset({"domain-lock", "table-lock"})
DRIVER_ALIASES: dict[str, tuple[str, str]] = {
    "serial-spin": ("domain-lock", "ttas"),
    "serial-mutex": ("domain-lock", "pthread-mutex"),
}


def strategy(driver: object, lock: object = None) -> str:
    """The locking strategy a point measured, the axis the report compares: `driver/lock`
    for a driver that takes a lock (`domain-lock/ticket`), the driver alone for one that
    takes none (`lockfree`), an old driver name as its pair (`serial-spin` is
    `domain-lock/ttas`); '' without a driver."""
    name = "" if driver is None else str(driver)
    if name in DRIVER_ALIASES:
        return "/".join(DRIVER_ALIASES[name])
    lock_name = "" if lock is None else str(lock)
    if name in LOCK_TAKING_DRIVERS and lock_name and lock_name not in ("-", NO_LOCK, "nan"):
        return f"{name}/{lock_name}"
    return name


# Drivers expected to fail their audit: a caught failure is the control working, never a
# regression, and a control is never a candidate for "winner".
NEGATIVE_CONTROLS: frozenset[str] = frozenset({"naive"})

# What one counted operation is, per workload: an I/O for dma, a map or unmap for prefault.
UNITS: dict[str, str] = {"dma": "I/O/s", "prefault": "ops/s"}


def unit_for(workload: object) -> str:
    """The throughput unit of a workload ("ops/s" for an unknown or mixed one)."""
    return UNITS.get(str(workload), "ops/s")


# The locks whose counters points.csv carries, as column prefix -> human name; each has the
# columns <prefix>_acquisitions, _contended, _wait_ns and _max_wait_ns.
LOCKS: dict[str, str] = {
    "lock": "driver's lock (domain or table)",
    "iova_lock": "IOVA tree",
    "depot_lock": "rcache depot",
    "inv_lock": "invalidation queue",
    "guard": "walk guard",
    "pool_lock": "page pool",
}

LOCK_SUFFIXES: tuple[str, ...] = ("_acquisitions", "_contended", "_wait_ns", "_max_wait_ns")
