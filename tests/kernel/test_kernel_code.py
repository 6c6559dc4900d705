"""The kernel's own io-pgtable-arm.c and iova.c, compiled unmodified, in user space: the file's
own self-test, forked workers racing on one table, the racy-cmpxchg control caught, and iova.c
under racing workers."""

from __future__ import annotations

import pytest

from iommubench.core.kernel import build as kbuild
from iommubench.core.kernel import checks
from iommubench.core.kernel import sources as ksources
from iommubench.core.kernel.measure import time_map_unmap

pytestmark = pytest.mark.slow


def test_kernel_selftest_passes_in_user_space(kernel_object: kbuild.KernelObject) -> None:
    res = checks.selftest(kernel_object)
    assert res.ok, res.log[-2000:]
    assert res.passed == 18 and res.failed == 0
    assert res.pool_bytes_live == 0  # every table page the self-test took came back


def test_two_workers_race_to_install_tables_and_every_translation_is_right(
    kernel_object: kbuild.KernelObject,
) -> None:
    lost = 0
    # racing needs both workers on a CPU at once; a loaded machine may not, so longer each try
    for attempt in range(10):
        res = checks.race_map(kernel_object, workers=2, rounds=300 << min(attempt, 3))
        assert res.exit_codes == [0, 0]
        assert res.map_errors == 0
        assert res.race["caught_round"] == 0, res.race
        assert not res.audit_failed, res.audit
        a = res.audit
        assert a["leaves"] == 2048 and a["wrong"] == a["walk_missing"] == a["kernel_missing"] == 0
        assert a["extra"] == a["strays"] == 0
        assert a["leaked_bytes"] == 0 and a["pool_bytes_live"] == a["table_bytes"]
        assert res.stats["warns"] == 0, res.first_warn
        assert res.pool_bytes_after_free == 0  # the pool is empty after free_io_pgtable_ops
        lost += res.race["installs_lost"]
        if lost:
            break
    assert lost > 0, "the workers never raced to install a table"


def test_racy_cmpxchg_control_is_caught(racy_object: kbuild.KernelObject) -> None:
    res, rounds = checks.race_until_caught(racy_object, workers=2, chunk_rounds=500, max_chunks=20)
    assert res.caught, f"racy cmpxchg not caught in {rounds} rounds"
    r = res.race
    assert r["wrong"] > 0 or r["leaked_bytes"] > 0


def test_iova_under_two_workers_no_overlap_and_everything_back(
    kernel_object: kbuild.KernelObject,
) -> None:
    # burst frees push full magazines to the depot; the skewed tick makes its trim due at once
    res = checks.iova_race(
        kernel_object, workers=2, ops=100_000, depth=2048, burst=True, tick_skew_ns=10**9
    )
    assert res.exit_codes == [0, 0]
    assert res.allocs == res.frees == 200_000 - res.failures
    assert res.failures == 0
    assert res.overlaps == 0
    assert res.before_drain["overlaps"] == 0
    assert res.ticks_run > 0 and res.stats["works_run"] > 0  # the depot trim ran
    assert res.after_drain == {"ranges": 0, "pages": 0, "overlaps": 0, "iova_objects_live": 0}
    assert res.stats["warns"] == 0, res.first_warn
    assert res.stats["lock_acquisitions"] > 0


def test_timing_loops_run_clean(kernel_object: kbuild.KernelObject) -> None:
    t = time_map_unmap(kernel_object, workers=1, pages=4096, passes=1)
    assert t.errors == 0
    assert all(r > 0 for mode in t.rates for op in mode for r in op)


def test_linux_6_1_when_cached() -> None:
    """The older packaged kernel (no cfg->alloc hook, the struct page API) works too."""
    try:
        src = ksources.from_package("linux-source-6.1", download=False)
    except ksources.KernelSourceUnavailable as exc:
        pytest.skip(str(exc))
    obj = kbuild.build(src, "normal")
    assert not obj.has_cfg_alloc
    st = checks.selftest(obj)
    assert st.ok and st.passed == 18
    res = checks.race_map(obj, workers=2, rounds=50)
    assert not res.audit_failed and res.race["caught_round"] == 0 and res.pool_bytes_after_free == 0
    io = checks.iova_race(obj, workers=2, ops=20_000, depth=2048, burst=True)
    assert io.overlaps == 0 and io.failures == 0
    assert io.after_drain["ranges"] == 0  # 6.1's fixed depot, flushed as on a failed alloc


def test_walkers_count_reads_of_tables_the_kernel_freed(kernel_object: kbuild.KernelObject) -> None:
    """The debugfs race on the kernel's own walk: iova_to_phys passes while range unmaps free
    leaf tables; reads of freed table pages are counted, faults caught, nothing crashes."""
    freed = 0
    # the walker must overlap the unmaps; a loaded machine may not let it, so one mapper (two
    # processes on two CPUs) and longer tries each time
    for attempt in range(10):
        res = checks.walk_race(kernel_object, workers=1, walkers=1, rounds=300 << min(attempt, 4))
        assert res.exit_codes == [0, 0]
        assert res.map_errors == 0
        assert res.walk["passes"] > 0  # a corrupt read (garbage in a reused page) is allowed
        assert res.stats["warns"] == 0, res.first_warn
        assert res.stats["pages_allocated"] - res.stats["pages_freed"] == 3  # pgd + 2 levels
        assert res.pool_bytes_after_free == 0
        freed += res.walk["freed_reads"]
        if freed:
            break
    assert freed > 0, "no walker pass overlapped a table-freeing unmap"
