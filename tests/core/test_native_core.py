"""Loading the native core: registries agree, and a stale build is refused."""

from __future__ import annotations

from typing import Any

import pytest

from iommubench.core import binding, hist
from iommubench.core.native import build_core
from iommubench.spec import catalogue


def test_the_catalogue_is_the_native_registries() -> None:
    """Every registry the core binds is in the catalogue, described, nothing else."""
    from iommubench.core.binding import walker_safety_names as safety_names

    registries = {
        "workload": binding.workload_names(),
        "driver": binding.driver_names(),
        "lock": binding.lock_names(),
        "allocator": binding.allocator_names(),
        "invalidation": binding.invalidation_names(),
        "walker_safety": safety_names(),
        "pgtable": binding.pgtable_names(),
    }
    assert {axis: catalogue.names(axis) for axis in catalogue.AXES} == registries
    for entry in catalogue.entries():
        assert entry.description, entry
        assert entry.axis != "workload" or entry.unit, entry


def test_what_an_entry_reads_is_a_parameter() -> None:
    from iommubench.spec import parameters

    for entry in catalogue.entries():
        assert set(entry.reads) <= set(parameters.NAMES), entry


def test_the_negative_control_and_the_lock_takers_come_from_the_core() -> None:
    lib = binding.lib()
    drivers = binding.driver_names()
    takers = {d for i, d in enumerate(drivers) if lib.ib_driver_takes_lock(i)}
    assert catalogue.lock_taking_drivers() == takers
    assert catalogue.negative_controls() == {"naive"}


def test_lock_promises_come_from_the_lock_files() -> None:
    """IB_FIFO and IB_WAIT_OUTLIVES_ABORT reach the catalogue (the lock-order test reads them
    to choose what to check), and only locks make them."""
    locks = catalogue.axis("lock")
    assert any(e.fifo for e in locks.values()) and not all(e.fifo for e in locks.values())
    assert any(e.wait_outlives_abort for e in locks.values())
    others = [e for e in catalogue.entries() if e.axis != "lock"]
    assert not any(e.fifo or e.wait_outlives_abort for e in others)


def test_a_core_built_from_other_sources_is_refused(monkeypatch) -> None:
    binding.load.cache_clear()
    monkeypatch.setattr(build_core, "source_hash", lambda: "0" * 16)
    with pytest.raises(binding.NativeCoreError, match="make install"):
        binding.load()
    monkeypatch.undo()
    binding.load.cache_clear()
    binding.load()


@pytest.mark.parametrize("value", [0, 1, 63, 64, 65, 127, 128, 1000, 12345, 10**9, 2**41, 2**50])
def test_native_histogram_buckets_mirror_python(value: int) -> None:
    assert binding.lib().ib_hist_index(value) == hist.bucket_index(value)


def test_handoff_probe_measures_something_on_two_cpus() -> None:
    import os

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("one CPU")
    assert binding.lib().ib_handoff_probe_ns(cpus[0], cpus[1], 1000) > 0
    assert os.sched_getaffinity(0) == set(cpus)  # the caller's thread was not pinned


@pytest.mark.parametrize("bad_first", [True, False])
def test_handoff_probe_fails_when_a_player_cannot_be_pinned(bad_first: bool) -> None:
    """A CPU outside the allowed set: no measurement, and the other player does not hang."""
    import os

    cpus = sorted(os.sched_getaffinity(0))
    missing = 1023  # the last CPU a cpu_set_t can name; not a CPU of any test machine
    assert missing not in cpus
    a, b = (missing, cpus[0]) if bad_first else (cpus[0], missing)
    assert binding.lib().ib_handoff_probe_ns(a, b, 1000) == -1.0


def _small_point(**kw: Any) -> dict[str, Any]:
    return dict(
        workload="prefault",
        driver="domain-lock",
        lock="ttas",
        workers=1,
        region_mib=1,
        chunk_pages=1,
        cycles=1,
        warmup_s=0,
        duration_s_requested=1,
        sample_every=0,
        seed=1,
        **kw,
    )


def test_an_audit_that_cannot_allocate_returns_an_error() -> None:
    from iommubench.core.arena import Arena
    from iommubench.spec.parameters import native_params

    ffi, lib = binding.load()
    with Arena(native_params(_small_point())) as arena:
        result = ffi.new("struct ib_audit_result *")
        assert lib.ib_audit(arena.base, result) == 0
        # struct ib_header starts with magic (8 bytes), version and padding (8), then the
        # params: claim a pool no calloc can mark
        params = ffi.cast("struct ib_params *", ffi.cast("char *", arena.base) + 16)
        assert params.workers == 1 and params.region_pages == 256  # the header's copy
        params.pool_pages = 2**62
        assert lib.ib_audit(arena.base, result) == lib.IB_ERR_AUDIT


class _FailingAudit:
    """The native core, except that its audit cannot run."""

    def __init__(self, lib: Any) -> None:
        self._lib = lib

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lib, name)

    def ib_audit(self, base: Any, out: Any) -> int:
        return int(self._lib.IB_ERR_AUDIT)


def test_a_point_whose_audit_could_not_run_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from iommubench.run.point import run_point

    ffi, lib = binding.load()
    monkeypatch.setattr(binding, "load", lambda: (ffi, _FailingAudit(lib)))
    result = run_point(_small_point())
    assert result.status == "failed"
    assert "audit could not run" in result.error
