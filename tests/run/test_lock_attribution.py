"""Per-lock attribution: every lock's four counters, summed over workers except the longest
single wait (max over workers), on crafted rows and on real contended points."""

from __future__ import annotations

import pytest

from conftest import prefault_point
from iommubench.run.point import run_point
from iommubench.run.runner import lock_columns
from iommubench.spec.catalogue import LOCK_SUFFIXES, LOCKS
from iommubench.spec.columns import POINT_COLUMNS

pytestmark = pytest.mark.slow  # starts worker processes, runs or compiles

RETRIES = 4


def zero_worker() -> dict[str, int]:
    return {prefix + suffix: 0 for prefix in LOCKS for suffix in LOCK_SUFFIXES}


def test_lock_columns_sum_counts_and_take_the_longest_wait() -> None:
    a, b = zero_worker(), zero_worker()
    a.update(iova_lock_acquisitions=10, iova_lock_contended=2, iova_lock_wait_ns=300,
             iova_lock_max_wait_ns=250)  # fmt: skip
    b.update(iova_lock_acquisitions=5, iova_lock_contended=3, iova_lock_wait_ns=90,
             iova_lock_max_wait_ns=40)  # fmt: skip
    cols = lock_columns([a, b])
    assert cols["iova_lock_acquisitions"] == 15
    assert cols["iova_lock_contended"] == 5
    assert cols["iova_lock_wait_ns"] == 390
    assert cols["iova_lock_max_wait_ns"] == 250
    assert set(cols) <= set(POINT_COLUMNS)
    assert len(cols) == len(LOCKS) * len(LOCK_SUFFIXES)


def contended(measures: dict, prefix: str) -> bool:
    return measures[f"{prefix}_contended"] > 0


def assert_consistent(m: dict, prefix: str) -> None:
    acq, cont = m[f"{prefix}_acquisitions"], m[f"{prefix}_contended"]
    wait, longest = m[f"{prefix}_wait_ns"], m[f"{prefix}_max_wait_ns"]
    assert cont <= acq
    assert longest <= wait
    if cont == 0:  # wait and the longest wait are timed on the contended path only
        assert wait == 0 and longest == 0


@pytest.mark.parametrize("driver", ["serial-spin", "serial-mutex"])
def test_the_domain_lock_records_its_longest_wait(driver: str) -> None:
    point = prefault_point(driver=driver, workers=2, chunk_pages=1, region_mib=16, cycles=0,
                           duration_s_requested=0.2)  # fmt: skip
    seen = []
    for _ in range(RETRIES):
        result = run_point(point)
        assert result.status == "ok", result.error
        m = result.measures
        assert_consistent(m, "lock")
        assert m["lock_acquisitions"] == m["maps"] + m["unmaps"]
        if contended(m, "lock"):
            assert 0 < m["lock_max_wait_ns"] <= m["lock_wait_ns"]
            per_worker = max(w["lock_max_wait_ns"] for w in result.workers)
            assert m["lock_max_wait_ns"] == per_worker
            return
        seen.append(m["lock_contended"])
    pytest.fail(f"two workers on one domain lock never contended in {RETRIES} runs: {seen}")


def test_the_iova_tree_and_invalidation_queue_are_counted_apart() -> None:
    point = {
        "workload": "dma", "driver": "lockfree", "workers": 2, "allocator": "global",
        "invalidation": "strict", "queues_per_worker": 1, "queue_depth": 32,
        "granule_pages": [1], "dma_ns": 0, "inv_ns": 100, "warmup_s": 0.02,
        "duration_s_requested": 0.2, "sample_every": 64, "seed": 1,
    }  # fmt: skip
    result = run_point(point)
    assert result.status == "ok", result.error
    m = result.measures
    for prefix in LOCKS:
        assert_consistent(m, prefix)
    # each I/O allocates and frees under the tree lock and invalidates under the queue lock
    assert m["iova_lock_acquisitions"] >= m["ops"]
    assert m["inv_lock_acquisitions"] >= m["ops"]
    assert m["lock_acquisitions"] == 0 and m["guard_acquisitions"] == 0


def test_the_page_pool_lock_is_counted() -> None:
    # 256 MiB: 128 leaf tables, beyond the two workers' first batches of 32 pages each
    result = run_point(prefault_point(workers=2, chunk_pages=1, region_mib=256, cycles=1))
    assert result.status == "ok", result.error
    m = result.measures
    assert m["pool_lock_acquisitions"] > 0
    assert m["pool_lock_acquisitions"] >= sum(w["pool_refills"] for w in result.workers)
    assert_consistent(m, "pool_lock")


def test_the_walk_guard_counts_every_shared_acquisition() -> None:
    point = prefault_point(cycles=0, warmup_s=0.0, duration_s_requested=0.2, region_mib=16,
                           chunk_pages=512, walkers=1, walker_safety="exclusive",
                           walker_gap_us=100)  # fmt: skip
    result = run_point(point)
    assert result.status == "ok", result.error
    m = result.measures
    # one shared acquisition per map or unmap (counted from the start, so at least the ops)
    assert m["guard_acquisitions"] >= m["maps"] + m["unmaps"] > 0
    assert_consistent(m, "guard")
