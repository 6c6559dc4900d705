"""No configuration hangs: points with less than one clock batch of work per phase, workers
with no chunk at all, and two exclusive walkers all close their window and finish.

The bound asserted is the point timeout (a generous margin over warm-up + window): a point
that hung would come back as "point timed out", never as ok. No timing is asserted.
"""

from __future__ import annotations

import pytest

from conftest import prefault_point
from iommubench.run.point import run_point

pytestmark = pytest.mark.slow  # starts worker processes, runs or compiles

TIMEOUT_S = 30.0  # warm-up + window are well under a second in every point here


def timed(**overrides):
    return prefault_point(cycles=0, warmup_s=0.05, duration_s_requested=0.2, **overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        # 9 workers, 8 chunks of 128 MiB: worker 8 owns no chunk at all
        dict(workers=9, chunk_pages=32768, region_mib=1024),
        # 9 workers share 4 MiB in one-page chunks: 114 pages per phase, far under a batch
        dict(workers=9, chunk_pages=1, region_mib=4),
        # one 128 MiB chunk for two workers: worker 1 owns no chunk at all
        dict(workers=2, chunk_pages=32768, region_mib=128),
        # 3 MiB is 768 pages: one worker's whole phase is under one batch
        dict(workers=1, chunk_pages=512, region_mib=3),
    ],
    ids=["9-workers-8-chunks", "9-workers-1-page-chunks", "no-chunk", "3-mib"],
)
def test_less_than_a_batch_of_work_still_closes_the_window(overrides) -> None:
    result = run_point(timed(**overrides), timeout_s=TIMEOUT_S)
    assert result.status == "ok", result.error
    assert result.measures["audit_ok"], result.measures
    assert result.measures["ops"] > 0


def test_a_worker_with_no_chunk_counts_no_ops_and_is_not_stuck() -> None:
    result = run_point(timed(workers=2, chunk_pages=32768, region_mib=128), timeout_s=TIMEOUT_S)
    assert result.status == "ok", result.error
    ops = [w["ops"] for w in result.workers]
    assert ops[0] > 0 and ops[1] == 0


def dma_point(**overrides):
    point = {
        "workload": "dma",
        "driver": "lockfree",
        "workers": 1,
        "allocator": "rcache",
        "invalidation": "lazy",
        "queues_per_worker": 1,
        "queue_depth": 32,
        "granule_pages": [1],
        "dma_ns": 0,
        "inv_ns": 0,
        "dma_bits": 32,
        "warmup_s": 0.05,
        "duration_s_requested": 0.2,
        "sample_every": 64,
        "seed": 1,
    }
    point.update(overrides)
    return point


@pytest.mark.parametrize(
    "point",
    [
        timed(workers=2, walkers=2, walker_safety="exclusive", unmap_pages=512,
              region_mib=512, chunk_pages=32768),
        dma_point(workers=2, walkers=2, walker_safety="exclusive"),
    ],
    ids=["prefault", "dma"],
)  # fmt: skip
def test_two_exclusive_walkers_do_not_starve_the_workers(point) -> None:
    result = run_point(point, timeout_s=TIMEOUT_S)
    assert result.status == "ok", result.error
    m = result.measures
    assert m["audit_ok"], m
    # a guard that prefers walkers let each worker through about one batch, or none
    assert min(w["ops"] for w in result.workers) > 10 * 1024
    assert m["walker_passes"] > 0
    assert m["walker_uaf_reads"] == 0 and m["walker_uaf_tables"] == 0
