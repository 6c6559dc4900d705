"""The native core under ThreadSanitizer, driven by threads from a plain C program.

tests/native/stress.c runs the prefault workload with one-page chunks (workers race to
install the same tables) for a fixed number of cycles, audits the arena and prints the audit;
it is compiled here with -fsanitize=thread together with every C source of the core. The
drivers that claim to be correct must run with a clean audit and no TSan report. The naive
driver is racy by design (a logical race made of atomic stores), so it is not run here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "src" / "iommubench" / "native"
STRESS = Path(__file__).resolve().parent / "native" / "stress.c"
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


@pytest.mark.parametrize("driver", ["lockfree", "serial-spin", "serial-mutex"])
@pytest.mark.parametrize(
    ("workers", "region_mib", "cycles"),
    [(2, 4, 3), (4, 32, 2)],
    ids=["2w-4MiB", "4w-32MiB"],
)
def test_core_is_race_free(
    stress_exe: Path, driver: str, workers: int, region_mib: int, cycles: int
) -> None:
    run = _run_stress(stress_exe, driver, workers, region_mib, cycles)
    report = f"stdout:\n{run.stdout}\nstderr:\n{run.stderr[-6000:]}"
    assert TSAN_WARNING not in run.stderr, report
    assert run.returncode == 0, report
    got = _parse(run.stdout)
    assert got.get("audit_ok") == 1, report
    for name in (
        "lost_mappings",
        "wrong_translations",
        "stray_mappings",
        "leaked_tables",
        "double_frees",
        "multiply_linked",
        "corrupt_entries",
        "present_mappings",
    ):
        assert got[f"audit.{name}"] == 0, (name, report)
    assert got["counters.unmap_missing"] == 0 and got["counters.map_conflicts"] == 0, report
    region_pages = region_mib * 256
    assert got["counters.maps"] == got["counters.unmaps"] == region_pages * cycles, report
    assert got["audit.reachable_tables"] >= 4, report  # root + L2 + L1 + leaf tables
    if driver == "lockfree":
        assert got["counters.lock_acquisitions"] == 0, report
        assert (
            got["counters.cas_attempts"]
            == got["audit.reachable_tables"] - 1 + got["counters.cas_failures"]
        ), report
    else:
        assert got["counters.lock_acquisitions"] == 2 * region_pages * cycles, report


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
