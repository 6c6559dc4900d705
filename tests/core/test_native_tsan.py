"""The native core under ThreadSanitizer, driven by threads from a plain C program.

tests/native/stress.c drives the core with pthreads and no Python, audits the arena and
prints the audit; it is compiled here with -fsanitize=thread together with every C source of
the core. Three workloads:

- prefault with one-page chunks (workers race to install the same tables) for a fixed number
  of cycles;
- dma (streaming DMA): both allocators x both invalidation modes x local and remote
  completion, with a granule mix that includes 512 pages so unmaps free whole leaf tables;
- prefault with 512-page chunks and 512-page unmaps (every leaf table freed and reallocated
  every cycle) while a walker thread dumps the table, for the walker-safety modes that claim
  to be safe (exclusive, deferred-free). unsafe and group-mutex race by design: not run here.

The drivers that claim to be correct must run with a clean audit and no TSan report. The naive
driver is racy by design (a logical race made of atomic stores), so it is not run here.

Two sensitivity checks rebuild a deliberately broken copy of the core: one with the lock-free
install weakened to relaxed ordering (TSan must report), one whose lazy flush queue releases
IOVAs without waiting for a covering flush (the fq_early_frees witness must fire).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from iommubench.core import binding
from iommubench.spec import catalogue

pytestmark = pytest.mark.slow  # starts worker processes, runs or compiles

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "src" / "iommubench" / "core" / "native"
STRESS = Path(__file__).resolve().parents[1] / "native" / "stress.c"
# GCC expands the 4 KiB memset that zeroes a new table into an uninstrumented `rep stos`,
# which hides exactly the race the installers' release/acquire settles (zeroes seen before the
# entry): keep memset and memcpy real calls so TSan's interceptors see them.
CFLAGS = [
    "-O1",
    "-g",
    "-fsanitize=thread",
    "-fno-builtin-memset",
    "-fno-builtin-memcpy",
    "-std=gnu11",
    "-pthread",
]
TSAN_WARNING = "WARNING: ThreadSanitizer"
TIMEOUT_S = 60

TRIVIAL = """
#include <pthread.h>
static int counter;
static void *bump(void *arg) { __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED); return arg; }
int main(void)
{
    pthread_t t;
    if (pthread_create(&t, 0, bump, 0)) return 1;
    bump(0);
    pthread_join(t, 0);
    return counter == 2 ? 0 : 1;
}
"""


def _tsan_env() -> dict[str, str]:
    # a report makes the program exit 66 instead of its own status; never halt on the first
    return {**os.environ, "TSAN_OPTIONS": "halt_on_error=0 exitcode=66 second_deadlock_stack=1"}


def _tsan_unusable(workdir: Path) -> str | None:
    """Why TSan cannot be used here (no gcc, no runtime, a kernel it rejects), or None.

    Checked once per session, by the module-scoped fixture."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return "gcc not found"
    src, exe = workdir / "trivial.c", workdir / "trivial"
    src.write_text(TRIVIAL)
    build = subprocess.run(
        [gcc, *CFLAGS, str(src), "-o", str(exe)], capture_output=True, text=True, timeout=60
    )
    if build.returncode != 0:
        return f"-fsanitize=thread does not link: {build.stderr.strip()[-300:]}"
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=_tsan_env(), timeout=30)
    if run.returncode != 0:
        return f"a trivial TSan program fails (rc {run.returncode}): {run.stderr.strip()[-300:]}"
    return None


def _build_stress(native: Path, exe: Path) -> None:
    sources = sorted(str(p) for p in native.rglob("*.c"))
    flags = [*CFLAGS, "-I", str(native), "-Wall", "-Wextra", "-o", str(exe)]
    build = subprocess.run(
        ["gcc", *flags, str(STRESS), *sources],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr


def _run_stress(exe: Path, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(exe), *map(str, args)],
        capture_output=True,
        text=True,
        env=_tsan_env(),
        timeout=TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def tsan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("tsan")
    reason = _tsan_unusable(workdir)
    if reason:
        pytest.skip(reason)
    return workdir


@pytest.fixture(scope="module")
def stress_exe(tsan_dir: Path) -> Path:
    exe = tsan_dir / "stress"
    _build_stress(NATIVE, exe)
    return exe


def _parse(stdout: str) -> dict[str, int]:
    out = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and value.isdigit():
            out[key] = int(value)
    return out


def _report(run: subprocess.CompletedProcess[str]) -> str:
    return f"stdout:\n{run.stdout}\nstderr:\n{run.stderr[-6000:]}"


class TsanReport(AssertionError):
    """TSan reported a race (kept apart so an expected race cannot hide another failure)."""


def _longer_window(arg: object) -> object:
    """duration_ms=N as duration_ms=4N; anything else unchanged."""
    if isinstance(arg, str) and arg.startswith("duration_ms="):
        return f"duration_ms={4 * int(arg.split('=', 1)[1])}"
    return arg


def _run_audited(
    exe: Path, *args: object
) -> tuple[dict[str, int], subprocess.CompletedProcess[str]]:
    """Run the stress program and check its audit; the caller ends with _assert_no_race.

    A timed run whose workers counted no op at all (on a loaded machine a TSan worker can be
    off its CPU for the whole short window, and with remote completion its partner then only
    sees a full ring) proves nothing either way: it is run once more with a window four times
    as long before the audit is judged."""
    run = _run_stress(exe, *args)
    got = _parse(run.stdout)
    if got.get("counters.ops") == 0 and got.get("counters.cycles") == 0:
        longer = [_longer_window(a) for a in args]
        if longer != list(args):
            run = _run_stress(exe, *longer)
            got = _parse(run.stdout)
    report = _report(run)
    assert got.get("audit_ok") == 1, report
    for name in PAGE_TABLE_AUDIT:
        assert got[f"audit.{name}"] == 0, (name, report)
    assert got["audit.limbo_pages"] == 0, report
    assert got["counters.unmap_missing"] == 0 and got["counters.map_conflicts"] == 0, report
    assert got["counters.ops"] > 0, report
    return got, run


def _assert_no_race(run: subprocess.CompletedProcess[str]) -> None:
    """No TSan report and exit 0 (last, so every other check has run either way)."""
    if TSAN_WARNING in run.stderr:
        raise TsanReport(_report(run))
    assert run.returncode == 0, _report(run)


PAGE_TABLE_AUDIT = (
    "lost_mappings",
    "wrong_translations",
    "stray_mappings",
    "leaked_tables",
    "double_frees",
    "multiply_linked",
    "corrupt_entries",
)
IOVA_AUDIT = ("iova_leaks", "iova_double_allocs", "iova_corrupt", "inflight_left")
# dma: 2 workers for 50 ms (warm-up 0); a 512-page IOVA is exactly one leaf table, so its
# unmap frees the table (through the gather list, after the invalidation that covers it)
DMA_RUN = ("workload=dma", "granules=1,2,4,512", "duration_ms=50")
# walkers: 2 workers own one 512-page chunk each of 8 MiB and unmap it 512 pages at a time,
# freeing and reallocating every leaf table each cycle, for 50 ms, with walker threads
WALKER_RUN = (2, 8, "chunk_pages=512", "unmap_pages=512", "duration_ms=50")


# Every registered lock under both lock-taking drivers (2 workers racing on one-page chunks),
# and the larger case for lockfree and for the default lock.
# (Both lists iterate the catalogue: a new lock or driver is stressed with no edit here.)
LOCK_TAKERS = sorted(catalogue.lock_taking_drivers())
CORRECT = [d for d in catalogue.names("driver") if d not in catalogue.negative_controls()]
LOCKED_CASES = [
    pytest.param(driver, lock, 2, 4, 3, id=f"{driver}-{lock}-2w-4MiB")
    for driver in LOCK_TAKERS
    for lock in binding.lock_names()
]
WIDE_CASES = [
    pytest.param(driver, "ttas", workers, mib, cycles, id=f"{driver}-{workers}w-{mib}MiB")
    for driver in CORRECT
    for workers, mib, cycles in ((2, 4, 3), (4, 32, 2))
    if (driver, workers) not in {(d, 2) for d in LOCK_TAKERS}
]


@pytest.mark.parametrize(
    ("driver", "lock", "workers", "region_mib", "cycles"), LOCKED_CASES + WIDE_CASES
)
def test_core_is_race_free(
    stress_exe: Path, driver: str, lock: str, workers: int, region_mib: int, cycles: int
) -> None:
    run = _run_stress(stress_exe, driver, workers, region_mib, cycles, f"lock={lock}")
    report = f"stdout:\n{run.stdout}\nstderr:\n{run.stderr[-6000:]}"
    assert TSAN_WARNING not in run.stderr, report
    assert run.returncode == 0, report
    got = _parse(run.stdout)
    assert got.get("audit_ok") == 1, report
    for name in (*PAGE_TABLE_AUDIT, "present_mappings"):
        assert got[f"audit.{name}"] == 0, (name, report)
    assert got["counters.unmap_missing"] == 0 and got["counters.map_conflicts"] == 0, report
    region_pages = region_mib * 256
    assert got["counters.maps"] == got["counters.unmaps"] == region_pages * cycles, report
    assert got["audit.reachable_tables"] >= 4, report  # root + L2 + L1 + leaf tables
    if driver not in LOCK_TAKERS:  # a lock-free driver: every table came from one CAS
        assert got["counters.lock_acquisitions"] == 0, report
        assert (
            got["counters.cas_attempts"]
            == got["audit.reachable_tables"] - 1 + got["counters.cas_failures"]
        ), report
    elif driver == "domain-lock":
        assert got["counters.lock_acquisitions"] == 2 * region_pages * cycles, report
    elif driver == "table-lock":
        # table-lock: one leaf-table lock per map and per unmap, plus one per install,
        # and one per install a racer beat (at most workers - 1 per table installed)
        want = 2 * region_pages * cycles + got["counters.tables_allocated"]
        lost_races = got["counters.lock_acquisitions"] - want
        assert 0 <= lost_races <= (workers - 1) * got["counters.tables_allocated"], report


def test_tsan_sees_a_missing_release(tsan_dir: Path) -> None:
    """Sensitivity: the same program over a copy of the core whose lock-free install and walk
    are weakened to relaxed ordering must draw a TSan report (the new table's zeroing races
    with the other worker's walk). Guards against the race going unseen, as it did while GCC
    inlined the memset."""
    mutant = tsan_dir / "mutant"
    shutil.copytree(NATIVE, mutant / "native")
    for rel in ("drivers/lockfree.c", "pgtable.h"):
        path = mutant / "native" / rel
        text = path.read_text()
        weak = text.replace("__ATOMIC_RELEASE", "__ATOMIC_RELAXED").replace(
            "__ATOMIC_ACQUIRE", "__ATOMIC_RELAXED"
        )
        if weak == text:
            pytest.skip(f"{rel} no longer has the orderings this check weakens")
        path.write_text(weak)
    exe = mutant / "stress"
    _build_stress(mutant / "native", exe)
    run = _run_stress(exe, "lockfree", 4, 32, 2)
    assert TSAN_WARNING in run.stderr, run.stdout + run.stderr[-3000:]


@pytest.mark.parametrize("completion", ["local", "remote"])
@pytest.mark.parametrize("invalidation", catalogue.names("invalidation"))
@pytest.mark.parametrize(
    "allocator", [a for a in catalogue.names("allocator") if not a.startswith("kernel-")]
)
@pytest.mark.parametrize("driver", CORRECT)
def test_dma_is_race_free(
    stress_exe: Path, driver: str, allocator: str, invalidation: str, completion: str
) -> None:
    got, run = _run_audited(
        stress_exe,
        driver,
        2,
        *DMA_RUN,
        f"allocator={allocator}",
        f"invalidation={invalidation}",
        f"completion={completion}",
    )
    report = repr(got)
    for name in IOVA_AUDIT:
        assert got[f"audit.{name}"] == 0, (name, report)
    assert got["counters.fq_early_frees"] == 0, report
    assert got["counters.iova_bad_frees"] == 0, report
    # drained: nothing left mapped, every IOVA still allocated sits in a magazine
    assert got["audit.present_mappings"] == 0, report
    assert got["audit.iova_ranges"] == got["audit.iova_cached"], report
    if allocator == "global":
        assert got["audit.iova_ranges"] == 0, report
    # the 512-page granules freed leaf tables, which went back to the pool
    assert got["counters.tables_freed"] > 0, report
    if invalidation == "strict":
        assert got["counters.invalidations"] > 0 and got["counters.flushes"] == 0, report
    elif invalidation == "lazy":
        assert got["counters.fq_entries"] > 0, report
    _assert_no_race(run)


@pytest.mark.parametrize(
    ("safety", "gap", "walkers"),
    [
        # back-to-back passes let a worker through once per pass (phase-fair); a 20 us gap
        # between passes lets the workers run whole map/unmap cycles in 50 ms
        ("exclusive", 20, 1),
        # two walkers queue on the guard's tickets and take turns with the workers
        ("exclusive", 20, 2),
        # found by this test and fixed: the walker's entry load is acquire (pairs with the
        # install), and limbo.count is updated atomically (a dry pool reads it unlocked)
        ("deferred-free", 0, 1),
    ],
    ids=["exclusive", "exclusive-2-walkers", "deferred-free"],
)
@pytest.mark.parametrize("driver", ["lockfree", "domain-lock", "table-lock"])
def test_walkers_are_race_free(
    stress_exe: Path, driver: str, safety: str, gap: int, walkers: int
) -> None:
    got, run = _run_audited(
        stress_exe,
        driver,
        *WALKER_RUN,
        f"walkers={walkers}",
        f"walker_safety={safety}",
        f"walker_gap_us={gap}",
    )
    report = repr(got)
    assert got["walkers.passes"] > 0, report
    assert got["walkers.uaf_reads"] == 0 and got["walkers.uaf_tables"] == 0, report
    assert got["counters.tables_freed"] > 0, report
    # timed: each worker left its chunk mapped
    assert got["audit.expected_mappings"] == got["audit.present_mappings"] == 8 * 256, report
    _assert_no_race(run)


def test_lazy_witness_sees_an_early_free(tsan_dir: Path) -> None:
    """Sensitivity: over a copy of the core whose lazy flush queue releases entries without
    waiting for a flush that covers them, the fq_early_frees witness must fire and fail the
    audit. Guards against a witness that can never be non-zero."""
    mutant = tsan_dir / "early-free"
    shutil.copytree(NATIVE, mutant / "native")
    path = mutant / "native" / "inval" / "lazy.c"
    text = path.read_text()
    covered = "if (e->counter >= finish)"
    if text.count(covered) != 1:
        pytest.fail(f"{path.name} no longer has the covering-flush test this check removes")
    path.write_text(text.replace(covered, "if (0 && e->counter >= finish)"))
    exe = mutant / "stress"
    _build_stress(mutant / "native", exe)
    run = _run_stress(
        exe,
        "lockfree",
        2,
        *DMA_RUN,
        "allocator=rcache",
        "invalidation=lazy",
        "completion=remote",
    )
    report = _report(run)
    got = _parse(run.stdout)
    assert run.returncode != 0, report
    assert got.get("counters.fq_early_frees", 0) > 0, report
    assert got.get("audit_ok") == 0, report
