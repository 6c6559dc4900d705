"""The dma workload under real concurrency: two pinned worker processes, audited afterwards.

What must hold for every correct driver, both allocators, both invalidation modes and both
completion modes: no IOVA handed out twice while live (a second map of a live range finds its
leaf present; the audit finds no range cached twice and no overlapping ranges), every IOVA back
after the drain (no leak, nothing in flight), no mapping left, and in lazy mode no IOVA released
before a flush that began after it was queued. No timing is asserted.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import dma_point
from iommubench.core import hist
from iommubench.run import dma_measures
from iommubench.run.point import run_point
from iommubench.spec import catalogue

pytestmark = pytest.mark.slow  # starts worker processes, runs or compiles

# Every choice of the catalogue, so a new driver, allocator or invalidation mode is tested with
# no edit here (the kernel's own code, which needs its built object, is tests/kernel's).
CORRECT_DRIVERS = [
    d
    for d in catalogue.names("driver")
    if d not in catalogue.negative_controls() and not d.startswith("kernel-")
]
ALLOCATORS = [a for a in catalogue.names("allocator") if not a.startswith("kernel-")]
INVALIDATIONS = catalogue.names("invalidation")
RETRIES = 6


def check_clean(result) -> dict:
    """Every correctness check; these hold on every run, however it was scheduled."""
    assert result.status == "ok", result.error
    m = result.measures
    assert m["audit_ok"], m
    assert m["iova_double_allocs"] == 0 and m["iova_leaks"] == 0, m
    assert m["lost_mappings"] == 0 and m["stray_mappings"] == 0 and m["leaked_tables"] == 0
    assert m["fq_early_frees"] == 0
    return m


def run_clean(point, busy=lambda m: True) -> dict:
    """Runs until a run shows activity (both workers did I/O, and `busy`): on a loaded machine
    a worker may be descheduled for a whole window. Every run must be clean regardless."""
    for _ in range(RETRIES):
        result = run_point(point)
        m = check_clean(result)
        if m["ops"] > 0 and all(w["ops"] > 0 for w in result.workers) and busy(m):
            return m
    pytest.fail(f"no run with activity in {RETRIES} tries: {m}")


@pytest.mark.parametrize("completion", ["local", "remote"])
@pytest.mark.parametrize("allocator", ALLOCATORS)
def test_no_iova_handed_out_twice(allocator: str, completion: str) -> None:
    point = dma_point(allocator=allocator, completion=completion)
    if allocator == "rcache":  # its magazines serve most allocations
        run_clean(point, lambda m: m["rcache_hits"] > 0)
    else:  # every other allocator at least reaches the tree
        m = run_clean(point, lambda m: m["iova_lock_acquisitions"] > 0)
        assert allocator != "global" or m["rcache_hits"] == 0


@pytest.mark.parametrize("depot", ["bounded", "list"])
def test_magazines_flow_through_the_depot_under_remote_completion(depot: str) -> None:
    point = dma_point(completion="remote", depot=depot)
    run_clean(point, lambda m: m["depot_pushes"] > 0 and m["depot_pops"] > 0)


@pytest.mark.parametrize("completion", ["local", "remote"])
@pytest.mark.parametrize("allocator", ALLOCATORS)
def test_lazy_never_frees_an_iova_before_its_flush(allocator: str, completion: str) -> None:
    point = dma_point(allocator=allocator, completion=completion, invalidation="lazy")
    m = run_clean(point, lambda m: m["flushes"] > 0)
    assert m["entries_per_flush"] > 0 and m["fq_early_frees"] == 0


def test_strict_invalidates_every_unmap() -> None:
    m = run_clean(dma_point(invalidation="strict"))
    assert m["flushes"] == 0
    assert m["invalidations"] >= m["unmaps"] > 0


@pytest.mark.parametrize("invalidation", INVALIDATIONS)
@pytest.mark.parametrize("driver", CORRECT_DRIVERS)
def test_audit_clean_for_every_correct_driver(driver: str, invalidation: str) -> None:
    point = dma_point(driver=driver, invalidation=invalidation, completion="remote")
    run_clean(point)


def test_table_lock_frees_whole_tables_under_remote_completion() -> None:
    """512-page I/Os cover whole leaf tables: their unmap detaches each under its parent's
    lock, and the table goes back to the pool after the invalidation."""
    point = dma_point(driver="table-lock", granule_pages=(1, 512), completion="remote")
    m = run_clean(point, busy=lambda m: m["tables_freed"] > 0)
    assert m["tables_freed"] > 0


def test_large_granules_bypass_the_cache_and_deep_mask_works() -> None:
    point = dma_point(granule_pages=(1, 3, 64, 1024), dma_bits=48, dma_ns=2000, queue_depth=4)
    run_clean(point, lambda m: m["iova_fallbacks"] > 0)  # 64 and 1024 pages use the tree


def test_one_worker_remote_is_local() -> None:
    run_clean(dma_point(workers=1, completion="remote"))


def test_the_naive_control_fails_the_audit() -> None:
    for seed in range(1, 4 * RETRIES):
        point = dma_point(driver="naive", granule_pages=(1, 2, 4, 8, 16, 32), seed=seed)
        result = run_point(point)
        assert result.status == "ok", result.error
        if not result.measures["audit_ok"]:
            assert result.measures["lost_mappings"] > 0
            return
    pytest.skip("the naive workers never raced on a table install in these runs")


def test_histogram_mean_and_sd_follow_the_samples() -> None:
    rng = np.random.default_rng(1)
    samples = rng.integers(100, 5000, size=20000)
    h = np.zeros(hist.NBUCKETS, dtype=np.uint64)
    np.add.at(h, hist.bucket_indices(samples), 1)
    mean, sd = dma_measures.hist_mean_sd_ns(h)
    assert abs(mean - samples.mean()) / samples.mean() < 0.01
    assert abs(sd - samples.std()) / samples.std() < 0.02


def test_config_dma_bits_and_prefault_only_parameters() -> None:
    from iommubench.spec.config import ConfigError, parse_sweep

    sweep = parse_sweep({"defaults": {"workload": "dma", "dma_bits": 48}}, "t.yaml")
    assert sweep.points[0]["dma_bits"] == 48
    assert parse_sweep({}, "t.yaml").points[0]["dma_bits"] == 32
    for bad in (19, 65, "32"):
        with pytest.raises(ConfigError, match="dma_bits"):
            parse_sweep({"defaults": {"workload": "dma", "dma_bits": bad}}, "t.yaml")
    # a chunk larger than the region is a prefault error only: dma ignores both
    doc = {"defaults": {"workload": "dma", "region_mib": 1, "chunk_pages": 32768}}
    assert parse_sweep(doc, "t.yaml").points[0]["workload"] == "dma"
    with pytest.raises(ConfigError, match="chunk_pages"):
        parse_sweep({"defaults": {"region_mib": 1, "chunk_pages": 32768}}, "t.yaml")
    with pytest.raises(ConfigError, match="at most 64"):
        parse_sweep({"defaults": {"workload": "dma", "granule_pages": [1] * 65}}, "t.yaml")


def test_bench_configs_load() -> None:
    from pathlib import Path

    from iommubench.spec.config import auto_workers, load_sweep

    bench = Path(__file__).resolve().parents[2] / "bench"
    default = load_sweep(bench / "default.yaml")
    assert {p["workload"] for p in default.points} == {"dma"}
    assert default.axes["driver"] == ["serial-spin", "serial-mutex", "lockfree"]
    assert default.axes["allocator"] == ["global", "rcache"]
    assert default.axes["workers"] == auto_workers()  # workers: auto
    assert {p["invalidation"] for p in default.points} == {"lazy"}
    assert load_sweep(bench / "invalidation.yaml").axes["invalidation"] == ["strict", "lazy"]
    assert load_sweep(bench / "remote-completion.yaml").axes["completion"] == ["local", "remote"]


@pytest.mark.parametrize("map_mode, calls_per_map", [("sg", 8), ("single", 1)])
def test_map_mode_decides_the_map_calls_per_io(map_mode: str, calls_per_map: int) -> None:
    """sg maps each page entry in its own driver call (the domain lock taken per entry), single
    maps the I/O's pages in one call; either way the unmap is one call per I/O."""
    point = dma_point(
        driver="serial-spin", workers=1, granule_pages=(8,), map_mode=map_mode, warmup_s=0.0
    )
    m = check_clean(run_point(point))
    assert m["maps"] > 10_000
    # every call takes the domain lock once; the counts are batched (a few hundred I/Os at the
    # window's edges), so the ratio is exact only up to that slack
    per_map = (m["lock_acquisitions"] - m["unmaps"]) / m["maps"]
    assert per_map == pytest.approx(calls_per_map, rel=0.05)


@pytest.mark.parametrize("bits", [0, 5, 11, 12])
def test_pool_sizing_survives_a_dma_mask_below_one_page(bits: int) -> None:
    """The pool is sized before dma_bits is validated: a mask below 4 KiB sizes the pool for
    a one-page IOVA space (the smallest), not for a shift by a negative amount."""
    from iommubench.spec.parameters import native_params

    _, lib = __import__("iommubench.core.binding", fromlist=["load"]).load()
    small = lib.ib_pool_pages_for(native_params(dma_point(dma_bits=bits)))
    mask32 = lib.ib_pool_pages_for(native_params(dma_point(dma_bits=32)))
    assert small == lib.ib_pool_pages_for(native_params(dma_point(dma_bits=12)))
    assert small < mask32
