"""Walkers dumping the table while unmap frees tables: the three safety modes under a real
race (worker and walker processes), plus table freeing itself."""

from __future__ import annotations

import pytest

from conftest import prefault_point
from iommubench.run.point import run_point
from iommubench.spec import catalogue

pytestmark = pytest.mark.slow  # starts worker processes, runs or compiles

RETRIES = 6


def freeing_point(**overrides):
    """Timed prefault whose unmaps cover whole leaf tables, so every cycle frees them."""
    params = dict(
        region_mib=128,
        chunk_pages=32768,
        unmap_pages=512,
        cycles=0,
        warmup_s=0.0,
        duration_s_requested=0.3,
    )
    params.update(overrides)
    return prefault_point(**params)


def run_ok(point):
    result = run_point(point)
    assert result.status == "ok", result.error
    return result.measures


@pytest.mark.parametrize("driver", ["lockfree", "serial-spin"])
def test_unmap_covering_whole_tables_frees_them_all(driver: str) -> None:
    m = run_ok(freeing_point(driver=driver, workers=2, cycles=3))
    assert m["audit_ok"], m
    # 3 cycles x 64 leaf tables; the upper levels stay (a 128 MiB chunk covers no 1 GiB table)
    assert m["tables_freed"] == 3 * 64
    assert m["leaked_tables"] == 0 and m["lost_mappings"] == 0


@pytest.mark.parametrize("safety", catalogue.names("walker_safety"))
def test_every_walker_mode_keeps_its_promise(safety: str) -> None:
    """Every mode of the catalogue, two workers freeing tables under one walker: the page
    table stays correct, and a mode that promises no freed-table read (`IB_PREVENTS_UAF`)
    reads none, or the audit says so. A new mode is tested here with no edit."""
    m = run_ok(freeing_point(workers=2, walkers=1, walker_safety=safety))
    assert m["walker_passes"] > 0, m
    assert m["lost_mappings"] == 0 and m["leaked_tables"] == 0 and m["double_frees"] == 0, m
    if safety in catalogue.uaf_preventing_modes():
        assert m["walker_uaf_reads"] == 0 and m["walker_uaf_tables"] == 0, m
        assert m["audit_ok"], m
    else:  # the reads are the measurement, never an audit failure
        assert m["audit_ok"], m


@pytest.mark.parametrize(
    "safety", sorted(set(catalogue.names("walker_safety")) - catalogue.uaf_preventing_modes())
)
def test_unprotected_walkers_read_freed_tables(safety: str) -> None:
    seen = []
    for _ in range(RETRIES):
        m = run_ok(freeing_point(walkers=1, walker_safety=safety))
        # reading freed tables is what is measured here, not a failure of the page table
        assert m["audit_ok"], m
        assert m["walker_passes"] > 0 and m["walker_reads"] > 0
        seen.append(m["walker_uaf_reads"])
        if m["walker_uaf_reads"] > 0:
            assert m["walker_uaf_tables"] > 0
            return
    pytest.fail(f"{safety}: no freed-table read detected in {RETRIES} runs: {seen}")


@pytest.mark.parametrize("driver", ["lockfree", "serial-spin"])
def test_deferred_free_never_reads_freed_tables_and_reclaims_all(driver: str) -> None:
    m = run_ok(freeing_point(driver=driver, workers=1, walkers=1, walker_safety="deferred-free"))
    assert m["walker_uaf_reads"] == 0
    assert m["tables_freed"] > 0 and m["limbo_pages_max"] > 0  # pages did wait in limbo
    assert m["limbo_pages_end"] == 0
    assert m["grace_ns_mean"] is not None and m["grace_ns_mean"] > 0
    assert m["audit_ok"], m


def test_deferred_free_with_two_workers_and_fixed_cycles() -> None:
    m = run_ok(
        freeing_point(workers=2, walkers=1, walker_safety="deferred-free", cycles=4, region_mib=256)
    )
    assert m["walker_uaf_reads"] == 0 and m["limbo_pages_end"] == 0
    assert m["tables_freed"] == 4 * 128
    assert m["audit_ok"], m


def test_exclusive_walkers_read_no_freed_table() -> None:
    m = run_ok(freeing_point(workers=1, walkers=1, walker_safety="exclusive"))
    assert m["walker_uaf_reads"] == 0 and m["walker_passes"] > 0
    assert m["ops"] > 0
    assert m["audit_ok"], m


def test_dma_granules_covering_a_table_free_it_after_the_invalidation() -> None:
    for invalidation in ("strict", "lazy"):
        point = {
            **prefault_point(),
            "workload": "dma",
            "workers": 2,
            "allocator": "rcache",
            "invalidation": invalidation,
            "granule_pages": (1, 512),
            "queue_depth": 8,
            "cycles": 0,
            "duration_s_requested": 0.2,
            "walkers": 1,
            "walker_safety": "deferred-free",
        }
        m = run_ok(point)
        assert m["tables_freed"] > 0 and m["walker_uaf_reads"] == 0, m
        assert m["limbo_pages_end"] == 0 and m["audit_ok"], m
