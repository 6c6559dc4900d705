"""The kernel code's own checks: its self-test, racing mappers, racing IOVA users.

Each function builds nothing: it takes a built object (``build.build``), forks workers around
shared memory created first, and returns what the audit found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .build import KernelObject
from .lib import Env, fork_workers, load, log, make_env

PAGE = 4096


@dataclass
class SelftestResult:
    """io-pgtable-arm.c's own self-test (its initcall), run in user space."""

    code: int  # the initcall's return value: 0 passed
    initcalls: int
    passed: int | None
    failed: int | None
    warns: int
    pool_bytes_live: int  # table bytes still allocated afterwards
    log: str

    @property
    def ok(self) -> bool:
        return self.code == 0 and self.failed == 0 and self.warns == 0 and self.initcalls > 0


def selftest(obj: KernelObject) -> SelftestResult:
    kl = load(obj)
    env = make_env(kl, nr_cpus=1, window_bytes=256 << 20)
    try:
        log(kl)  # drop older messages
        ran = kl.ffi.new("int *")
        code = kl.lib.ibk_run_initcalls(ran)
        text = log(kl)
        m = re.search(r"completed with (\d+) PASS (\d+) FAIL", text)
        st = env.stats()
        return SelftestResult(
            code=int(code),
            initcalls=int(ran[0]),
            passed=int(m.group(1)) if m else None,
            failed=int(m.group(2)) if m else None,
            warns=st["warns"],
            pool_bytes_live=st["page_bytes_live"],
            log=text,
        )
    finally:
        env.close()


_RACE_FIELDS = (
    "rounds_done",
    "caught_round",
    "installs_lost",
    "tables_installed",
    "wrong",
    "leaked_bytes",
    "strays",
)
_AUDIT_FIELDS = (
    "tables",
    "table_bytes",
    "leaves",
    "mapped_bytes",
    "strays",
    "wrong",
    "walk_missing",
    "kernel_missing",
    "extra",
    "pool_bytes_live",
    "leaked_bytes",
)


@dataclass
class RaceResult:
    """Workers racing to install the same tables (see ibk_drive.h)."""

    variant: str
    workers: int
    exit_codes: list[int]
    race: dict[str, int]
    map_errors: int
    audit: dict[str, int] = field(default_factory=dict)  # the last round, by the caller
    audit_failed: bool = False
    stats: dict[str, int] = field(default_factory=dict)
    pool_bytes_after_free: int = -1  # table bytes left once free_io_pgtable_ops has run
    first_warn: str = ""

    @property
    def caught(self) -> bool:
        return bool(self.race.get("caught_round")) or self.audit_failed


def race_map(
    obj: KernelObject,
    workers: int = 2,
    rounds: int = 200,
    npages: int = 2048,
    stop_on_catch: bool = False,
    iova0: int = 1 << 30,
    pa0: int = 1 << 36,
) -> RaceResult:
    """Map interleaved pages of one range from `workers` processes, round after round."""
    kl = load(obj)
    ffi, lib = kl.ffi, kl.lib
    env = make_env(kl, nr_cpus=workers, window_bytes=256 << 20)
    try:
        t = lib.ibk_pgtable_create(env.env, 48, 48, ffi.NULL)
        if t == ffi.NULL:
            raise RuntimeError("ibk_pgtable_create failed")
        r = env.new("struct ibk_race")
        lib.ibk_barrier_init(ffi.addressof(r.bar), workers)
        r.iova0, r.pa0, r.npages = iova0, pa0, npages
        r.nworkers, r.rounds = workers, rounds
        r.stop_on_catch, r.leave_mapped = int(stop_on_catch), 1
        codes = fork_workers(workers, lambda w: lib.ibk_drive_race(t, r, w))
        res = RaceResult(
            variant=obj.variant,
            workers=workers,
            exit_codes=codes,
            race={f: int(getattr(r, f)) for f in _RACE_FIELDS},
            map_errors=sum(int(r.map_errors[w]) for w in range(workers)),
        )
        a = ffi.new("struct ibk_audit *")
        res.audit_failed = bool(lib.ibk_audit_range(t, iova0, pa0, npages, a))
        res.audit = {f: int(getattr(a, f)) for f in _AUDIT_FIELDS}
        res.stats = env.stats()
        res.first_warn = env.first_warn()
        lib.ibk_pgtable_destroy(t)
        res.pool_bytes_after_free = env.stats()["page_bytes_live"]
        return res
    finally:
        env.close()


def race_until_caught(
    obj: KernelObject, workers: int = 2, chunk_rounds: int = 500, max_chunks: int = 20
) -> tuple[RaceResult, int]:
    """Race in chunks until an audit fails; returns the last result and the rounds it took."""
    total = 0
    res: RaceResult | None = None
    for _ in range(max_chunks):
        res = race_map(obj, workers=workers, rounds=chunk_rounds, stop_on_catch=True)
        if res.race["caught_round"]:
            return res, total + res.race["caught_round"]
        total += res.race["rounds_done"]
        if res.caught:
            return res, total
    assert res is not None
    return res, total


@dataclass
class IovaResult:
    """iova.c under racing workers, then drained (every CPU offline, the depot trimmed)."""

    workers: int
    exit_codes: list[int]
    allocs: int
    frees: int
    overlaps: int
    failures: int
    ticks_run: int
    before_drain: dict[str, int]
    after_drain: dict[str, int]
    drain_runs: int
    stats: dict[str, int]
    first_warn: str


def _census(kl: Any, d: Any) -> dict[str, int]:
    c = kl.ffi.new("struct ibk_iova_census *")
    kl.lib.ibk_iova_census(d, c)
    return {f: int(getattr(c, f)) for f in ("ranges", "pages", "overlaps", "iova_objects_live")}


def iova_race(
    obj: KernelObject,
    workers: int = 2,
    ops: int = 100_000,
    depth: int = 64,
    limit_pfn: int = 1 << 18,
    tick_every: int = 256,
    tick_skew_ns: int = 0,
    seed: int = 1,
    burst: bool = False,
) -> IovaResult:
    """Allocate and free IOVAs from `workers` processes; every live range is marked in a
    shared bitmap (a second mark is an overlap)."""
    kl = load(obj)
    ffi, lib = kl.ffi, kl.lib
    env: Env = make_env(kl, nr_cpus=workers, window_bytes=1 << 20)
    try:
        d = lib.ibk_iova_create(env.env, PAGE, 1)
        if d == ffi.NULL:
            raise RuntimeError("ibk_iova_create failed")
        r = env.new("struct ibk_iova_race")
        lib.ibk_barrier_init(ffi.addressof(r.bar), workers)
        bitmap = lib.ibk_shared_alloc(env.env, limit_pfn // 8 + 8)
        if bitmap == ffi.NULL:
            raise MemoryError("shared heap exhausted (iova bitmap)")
        r.bitmap = ffi.cast("unsigned long *", bitmap)
        r.limit_pfn, r.ops, r.nworkers, r.depth = limit_pfn, ops, workers, depth
        r.tick_every, r.tick_skew_ns, r.seed = tick_every, tick_skew_ns, seed
        r.burst = int(burst)
        codes = fork_workers(workers, lambda w: lib.ibk_drive_iova(d, r, w))

        def total(name: str) -> int:
            return sum(int(getattr(r, name)[w]) for w in range(workers))

        before = _census(kl, d)
        runs = int(lib.ibk_iova_drain(d))
        after = _census(kl, d)
        res = IovaResult(
            workers=workers,
            exit_codes=codes,
            allocs=total("allocs"),
            frees=total("frees"),
            overlaps=total("overlaps"),
            failures=total("failures"),
            ticks_run=total("ticks_run"),
            before_drain=before,
            after_drain=after,
            drain_runs=runs,
            stats=env.stats(),
            first_warn=env.first_warn(),
        )
        lib.ibk_iova_destroy(d)
        return res
    finally:
        env.close()


@dataclass
class WalkResult:
    """Walkers making iova_to_phys passes while unmaps free tables (see ibk_drive.h)."""

    exit_codes: list[int]
    map_errors: int
    walk: dict[str, int]
    stats: dict[str, int]
    pool_bytes_after_free: int
    first_warn: str


_WALK_FIELDS = (
    "passes",
    "lookups",
    "translated",
    "tables_read",
    "freed_reads",
    "faults",
    "corrupt",
)


def walk_race(
    obj: KernelObject,
    workers: int = 2,
    walkers: int = 1,
    rounds: int = 200,
    npages: int = 4096,
    iova0: int = 1 << 30,
    pa0: int = 1 << 36,
) -> WalkResult:
    """Mappers map and range-unmap 2 MiB chunks (freeing leaf tables) under walkers."""
    kl = load(obj)
    ffi, lib = kl.ffi, kl.lib
    env = make_env(kl, nr_cpus=workers + walkers, window_bytes=64 << 20)
    try:
        t = lib.ibk_pgtable_create(env.env, 48, 48, ffi.NULL)
        if t == ffi.NULL:
            raise RuntimeError("ibk_pgtable_create failed")
        r = env.new("struct ibk_walk_race")
        lib.ibk_barrier_init(ffi.addressof(r.bar), workers + walkers)
        r.iova0, r.pa0, r.npages = iova0, pa0, npages
        r.nworkers, r.nwalkers, r.rounds = workers, walkers, rounds
        codes = fork_workers(workers + walkers, lambda i: lib.ibk_drive_walk(t, r, i))
        walk = {f: sum(int(getattr(r.walk[i], f)) for i in range(walkers)) for f in _WALK_FIELDS}
        res = WalkResult(
            exit_codes=codes,
            map_errors=sum(int(r.map_errors[w]) for w in range(workers)),
            walk=walk,
            stats=env.stats(),
            pool_bytes_after_free=-1,
            first_warn=env.first_warn(),
        )
        lib.ibk_pgtable_destroy(t)
        res.pool_bytes_after_free = env.stats()["page_bytes_live"]
        return res
    finally:
        env.close()
