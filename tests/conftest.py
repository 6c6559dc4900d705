"""Shared fixtures: points for the native runner and a check that nothing is left behind."""

from __future__ import annotations

import os
from typing import Any

import pytest

from iommubench.core.arena import our_segments


def prefault_point(**overrides: Any) -> dict[str, Any]:
    """A small prefault point with every parameter the runner reads."""
    point: dict[str, Any] = {
        "workload": "prefault",
        "driver": "lockfree",
        "workers": 1,
        "region_mib": 64,
        "chunk_pages": 1,
        "cycles": 1,
        "cs_ns": 0,
        "warmup_s": 0.0,
        "duration_s_requested": 0.2,
        "sample_every": 64,
        "seed": 1,
    }
    point.update(overrides)
    return point


def dma_point(**overrides: Any) -> dict[str, Any]:
    """A short two-worker point of the dma workload with every parameter the runner reads."""
    point = {
        "workload": "dma",
        "driver": "lockfree",
        "allocator": "rcache",
        "invalidation": "lazy",
        "depot": "list",
        "completion": "local",
        "workers": 2,
        "queues_per_worker": 2,
        "queue_depth": 16,
        "granule_pages": (1, 1, 2, 4),
        "dma_ns": 0,
        "inv_ns": 100,
        "cs_ns": 0,
        "warmup_s": 0.02,
        "duration_s_requested": 0.15,
        "sample_every": 16,
        "seed": 1,
    }
    point.update(overrides)
    return point


@pytest.fixture(autouse=True)
def no_leftover_segments():
    """Every test leaves no arena of this process behind (other processes may run tests)."""
    yield
    leaked = our_segments(os.getpid())
    assert not leaked, f"shared-memory segments left behind: {sorted(leaked)}"
